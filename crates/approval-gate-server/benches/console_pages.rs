//! What the console's pages cost the server at scale: `GET /` (the queue, the 50 oldest
//! pending requests) and `GET /requests/{id}` (a request and its history), each on a
//! store holding N pending requests of the viewer's tenant, driven in-process through
//! the router (`tower::ServiceExt::oneshot`, no sockets) as a browser behind the proxy
//! sends them. N is `APPROVAL_GATE_BENCH_SCALE` (default 10,000).
//!
//! ```text
//! APPROVAL_GATE_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test \
//!     cargo bench -p approval-gate-server --bench console_pages
//! ```
//!
//! Stores:
//!
//! - `SqliteStore`: a file under the target directory's `tmp`, filled with `synchronous =
//!   OFF`, then reopened on the defaults (`FULL`) to be measured; deleted at the end.
//! - `PostgresStore`: when `APPROVAL_GATE_TEST_POSTGRES_URL` is set, in a schema of its
//!   own (`ag_bench_console_<pid>`), dropped at the end; skipped (and said so) otherwise.
//!
//! The requests are filed with `RequestStore::create` (each with its `approval_required`
//! record, as the gate files them), several at a time on PostgreSQL. In criterion's test
//! mode (`cargo bench -- --test`, as CI runs it) each store holds at most 1,000, so that
//! the setup stays short; the pages are still checked on it. Before measuring, the setup
//! checks that the queue shows 50 requests, the oldest first, with a link to the next
//! page, and that the request page shows the request.

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::time::{Duration, Instant};

use approval_gate::serde_json::json;
use approval_gate::sqlx::Executor as _;
use approval_gate::store::SqliteSynchronous;
use approval_gate::time::OffsetDateTime;
use approval_gate::trail::{AuditEvent, AuditRecord};
use approval_gate::{
    ApprovalRequest, ApprovalStore, ArgsHash, Decision, Gate, Key, Keyring, ManualClock, Policy,
    PostgresStore, RequestId, SqliteStore, ToolCall, config::PolicyVersion,
};
use approval_gate_server::{AppState, Auth, ProxyHeaders, router};
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use criterion::{Criterion, criterion_group, criterion_main};
use futures_util::StreamExt as _;
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;

const POLICY: &str = "\
approvals:
  ttl_seconds: 86400
rules:
  - id: mail
    tool: email.send
    effect: approval_required
    preview: 'mail to {to}: {subject}'
";

/// When the first request is filed (2026-01-01T00:00Z); request `n` is filed `n` ms
/// later.
fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_767_225_600).unwrap()
}

/// What the gate's clock reads while the pages are measured, an hour after [`t0`]:
/// every request is pending (they wait a day).
fn now() -> OffsetDateTime {
    t0() + Duration::from_secs(3600)
}
/// How many rows the queue page shows (the console's `PAGE`).
const PAGE: usize = 50;
/// The most requests filed in criterion's test mode.
const TEST_MODE_SCALE: usize = 1000;

/// The size of each store: `APPROVAL_GATE_BENCH_SCALE` (default 10,000), at most
/// [`TEST_MODE_SCALE`] in test mode.
fn scale() -> usize {
    let n = std::env::var("APPROVAL_GATE_BENCH_SCALE")
        .ok()
        .and_then(|s| s.replace('_', "").parse().ok())
        .unwrap_or(10_000);
    assert!(
        n >= 2 * PAGE,
        "APPROVAL_GATE_BENCH_SCALE must be at least {}",
        2 * PAGE
    );
    if std::env::args().any(|a| a == "--test") {
        n.min(TEST_MODE_SCALE)
    } else {
        n
    }
}

/// Request `n`'s id: fixed, so the bench knows which one is the oldest.
fn id(n: usize) -> RequestId {
    RequestId::from_u128(0x0000_0000_0000_4000_8000_0000_0000_0000 | n as u128)
}

/// Builds the requests: one policy decision shared by all, as the gate would make it.
struct Requests {
    decision: Decision,
    version: PolicyVersion,
}

impl Requests {
    fn new(policy: &Policy) -> Self {
        Requests {
            decision: policy.evaluate(&Self::call(0)),
            version: policy.version().clone(),
        }
    }

    /// A mail of bob's, in tenant acme, run `run-n`.
    fn call(n: usize) -> ToolCall {
        ToolCall::new(
            format!("run-{n}"),
            "c1",
            "email.send",
            json!({
                "to": format!("customer-{n}@example.com"),
                "subject": format!("Refund for order {n}"),
                "body": "Hello, your refund has been processed.",
            }),
        )
        .with_requester("bob")
        .with_tenant("acme")
    }

    /// Request `n` with its `approval_required` record.
    fn request(&self, n: usize) -> (ApprovalRequest, AuditRecord) {
        let call = Self::call(n);
        let hash: ArgsHash = call.args_hash().unwrap();
        let at = t0() + Duration::from_millis(n as u64);
        let r = ApprovalRequest::new(id(n), call, hash, &self.decision, self.version.clone(), at);
        let event = AuditEvent::ApprovalRequired {
            rule_ids: r.rule_ids().iter().map(ToString::to_string).collect(),
            reason: None,
            tier: None,
            expires_at: r.expires_at(),
        };
        let record = AuditRecord::for_request(at, &r, event);
        (r, record)
    }
}

/// Files requests `0..n` into `store`, `in_flight` at a time.
async fn fill(store: &dyn ApprovalStore, n: usize, in_flight: usize) {
    let requests = Requests::new(&Policy::from_yaml_str(POLICY).unwrap());
    let requests = &requests;
    futures_util::stream::iter(0..n)
        .map(|i| async move {
            let (r, record) = requests.request(i);
            let at = r.created_at();
            let filed = store.create(r, &record, at).await.unwrap();
            assert!(filed.created, "request {i} joined another");
        })
        .buffer_unordered(in_flight)
        .collect::<()>()
        .await;
}

/// The console on `store`, with its clock at [`now`], trusting the proxy's headers.
fn console(store: impl ApprovalStore + 'static) -> axum::Router {
    let gate = Gate::builder(
        Policy::from_yaml_str(POLICY).unwrap(),
        Keyring::new(Key::new("k1", [6u8; 32]).unwrap()),
    )
    .store(store)
    .clock(ManualClock::new(now()))
    .build();
    let auth = Auth::new().trust_proxy(ProxyHeaders::default());
    router(AppState::new(gate, auth))
}

/// `GET uri` from ann of tenant acme, as the proxy forwards a browser's request.
fn get(uri: &str) -> Request<Body> {
    Request::get(uri)
        .header(header::HOST, "console.test")
        .header("x-forwarded-user", "ann")
        .header("x-forwarded-tenant", "acme")
        .body(Body::empty())
        .unwrap()
}

/// One page, served and read whole; panics unless it is 200.
async fn page(app: &axum::Router, uri: &str) -> String {
    let response = app.clone().oneshot(get(uri)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "GET {uri}");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(body.to_vec()).unwrap()
}

/// Checks what the pages show on a store of `n` requests before they are measured.
async fn check(app: &axum::Router, n: usize, label: &str) {
    let started = Instant::now();
    let queue = page(app, "/").await;
    let rows = queue.matches("href=\"/requests/").count();
    assert_eq!(rows, PAGE, "{label}: the queue shows one page");
    for i in 0..PAGE {
        assert!(
            queue.contains(&format!("/requests/{}", id(i))),
            "{label}: the queue does not show request {i}, one of the {PAGE} oldest"
        );
    }
    assert!(
        !queue.contains(&format!("/requests/{}", id(PAGE))),
        "{label}: the queue shows more than the {PAGE} oldest"
    );
    assert!(
        queue.contains("/?after="),
        "{label}: no link to the next page"
    );
    let middle = n / 2;
    let request = page(app, &format!("/requests/{}", id(middle))).await;
    assert!(
        request.contains(&format!("customer-{middle}@example.com")),
        "{label}: the request page does not show request {middle}"
    );
    assert!(request.contains("approval_required"), "{label}: no history");
    eprintln!(
        "console_pages/{label}/{n}: pages checked in {:.2?}",
        started.elapsed()
    );
}

/// The two pages' benchmarks on `app`, a store of `n` requests.
fn measure(c: &mut Criterion, rt: &tokio::runtime::Runtime, app: &axum::Router, label: &str) {
    let n = scale();
    rt.block_on(check(app, n, label));
    let mut group = c.benchmark_group(format!("console_pages/{label}"));
    group
        .sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    group.bench_function(format!("queue/{n}"), |b| {
        b.to_async(rt).iter(|| page(app, "/"))
    });
    let uri = format!("/requests/{}", id(n / 2));
    group.bench_function(format!("request/{n}"), |b| {
        b.to_async(rt).iter(|| page(app, &uri))
    });
    group.finish();
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The SQLite file and its `-wal` and `-shm` companions.
fn remove_db(path: &std::path::Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        let _ = std::fs::remove_file(file);
    }
}

fn sqlite(c: &mut Criterion) {
    let rt = runtime();
    let n = scale();
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("console-pages-{}.db", std::process::id()));
    remove_db(&path);
    let file = path.to_str().unwrap();
    let started = Instant::now();
    rt.block_on(async {
        let options = SqliteStore::options(file).synchronous(SqliteSynchronous::Off);
        let store = SqliteStore::connect_with(options).await.unwrap();
        fill(&store, n, 1).await;
        store.close().await;
    });
    eprintln!(
        "console_pages/sqlite/{n}: filled in {:.2?}",
        started.elapsed()
    );
    let store = rt.block_on(SqliteStore::connect(file)).unwrap();
    let measured = catch_unwind(AssertUnwindSafe(|| {
        measure(c, &rt, &console(store.clone()), "sqlite")
    }));
    rt.block_on(store.close());
    remove_db(&path);
    if let Err(panic) = measured {
        resume_unwind(panic);
    }
}

fn postgres(c: &mut Criterion) {
    let Some(url) = std::env::var("APPROVAL_GATE_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!("console_pages/postgres skipped: APPROVAL_GATE_TEST_POSTGRES_URL is not set");
        return;
    };
    let rt = runtime();
    let n = scale();
    let schema = format!("ag_bench_console_{}", std::process::id());
    let store = rt
        .block_on(PostgresStore::connect_with(
            PostgresStore::options(&url).schema(&schema),
        ))
        .unwrap();
    // The schema is dropped even when filling or measuring fails.
    let measured = catch_unwind(AssertUnwindSafe(|| {
        let started = Instant::now();
        rt.block_on(fill(&store, n, 8));
        eprintln!(
            "console_pages/postgres/{n}: filled in {:.2?}",
            started.elapsed()
        );
        measure(c, &rt, &console(store.clone()), "postgres")
    }));
    let drop = format!("DROP SCHEMA \"{schema}\" CASCADE");
    rt.block_on(store.pool().execute(drop.as_str())).unwrap();
    rt.block_on(store.close());
    if let Err(panic) = measured {
        resume_unwind(panic);
    }
}

criterion_group!(benches, sqlite, postgres);
criterion_main!(benches);
