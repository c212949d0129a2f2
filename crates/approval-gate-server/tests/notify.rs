//! The notifier as an operator meets it: a local receiver takes its webhooks, the
//! official Standard Webhooks library (Python) verifies them, and time moves with
//! `ManualClock`. Every event reaches the receiver at least once and, deduplicated by
//! `webhook-id`, once; a receiver that stays down is recorded and the gate goes on.
//!
//! The Python check needs `APPROVAL_GATE_TEST_PYTHON`, an interpreter with the pinned
//! `standardwebhooks` package (`.ci/run` makes one); without it that part says it was
//! skipped, and the rest of each test still runs.

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use approval_gate::serde_json::{Value, json};
use approval_gate::{
    Approver, Execution, Gate, GateOutcome, Gated, Key, Keyring, ManualClock, MemoryStore, Policy,
    RequestId, SqliteStore, ToolCall, ToolExecutor, store::ApprovalStore,
};
use approval_gate_server::notify::{
    self, Channel, Delivered, DeliveryError, Notice, NoticeKind, Notifier, NotifyConfig,
    WebhookSecret,
};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use tokio::sync::mpsc;

const POLICY: &str = "\
approvals:
  redact: [args.password]
tiers:
  payments:
    ttl_seconds: 600
    remind_after_seconds: 60
    escalate_after_seconds: 300
    escalate_to: [finance-lead]
  quick:
    ttl_seconds: 60
rules:
  - id: pay
    tool: payments.send
    effect: approval_required
    tier: payments
    preview: 'pay {amount} to {to}'
  - id: mail
    tool: email.send
    effect: approval_required
  - id: quick
    tool: ops.restart
    effect: approval_required
    tier: quick
";

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// One POST the receiver took.
#[derive(Debug, Clone)]
struct Delivery {
    id: String,
    timestamp: String,
    signature: String,
    body: String,
}

impl Delivery {
    fn payload(&self) -> Value {
        approval_gate::serde_json::from_str(&self.body).unwrap()
    }

    fn kind(&self) -> String {
        self.payload()["type"].as_str().unwrap().to_owned()
    }
}

/// A local webhook receiver: keeps every POST, answers 200 (or 503 while `down`), and
/// tells the test of each POST as it arrives.
#[derive(Clone)]
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Delivery>>>,
    down: Arc<Mutex<bool>>,
}

impl Receiver {
    async fn start() -> (Receiver, mpsc::UnboundedReceiver<String>) {
        let got: Arc<Mutex<Vec<Delivery>>> = Arc::default();
        let down: Arc<Mutex<bool>> = Arc::default();
        let (tell, heard) = mpsc::unbounded_channel();
        let app = axum::Router::new().route(
            "/hook",
            post({
                let (got, down) = (got.clone(), down.clone());
                move |headers: HeaderMap, body: String| async move {
                    let header = |name: &str| {
                        headers
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned()
                    };
                    let delivery = Delivery {
                        id: header("webhook-id"),
                        timestamp: header("webhook-timestamp"),
                        signature: header("webhook-signature"),
                        body,
                    };
                    let _ = tell.send(delivery.id.clone());
                    got.lock().unwrap().push(delivery);
                    if *down.lock().unwrap() {
                        StatusCode::SERVICE_UNAVAILABLE
                    } else {
                        StatusCode::OK
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (Receiver { url, got, down }, heard)
    }

    fn deliveries(&self) -> Vec<Delivery> {
        self.got.lock().unwrap().clone()
    }

    /// The deliveries with duplicates (by `webhook-id`) dropped, as a receiver that
    /// drops them sees them.
    fn unique(&self) -> Vec<Delivery> {
        let mut seen = BTreeSet::new();
        self.deliveries()
            .into_iter()
            .filter(|d| seen.insert(d.id.clone()))
            .collect()
    }

    fn kinds(&self) -> Vec<String> {
        self.unique().iter().map(Delivery::kind).collect()
    }
}

fn config(url: &str, events: &str) -> NotifyConfig {
    NotifyConfig::from_yaml_str(&format!(
        "console_url: https://approvals.example.com/\n\
         retry: {{attempts: 3, backoff_ms: 0}}\n\
         lease_seconds: 30\n\
         poll_seconds: 1\n\
         channels:\n  ops:\n    kind: webhook\n    url: {url}\n    secret: {SECRET}\n    events: {events}\n"
    ))
    .unwrap()
}

struct World {
    gate: Gate,
    clock: ManualClock,
    ran: Arc<Mutex<Vec<Value>>>,
}

impl World {
    fn new(store: impl ApprovalStore + 'static) -> World {
        let clock = ManualClock::default();
        let gate = Gate::builder(
            Policy::from_yaml_str(POLICY).unwrap(),
            Keyring::new(Key::new("k1", [7u8; 32]).unwrap()),
        )
        .store(store)
        .clock(clock.clone())
        .build();
        World {
            gate,
            clock,
            ran: Arc::default(),
        }
    }

    fn tool(&self) -> Gated<impl ToolExecutor<Output = (), Error = std::io::Error> + use<>> {
        let ran = self.ran.clone();
        self.gate.wrap(move |exec: Execution| {
            let ran = ran.clone();
            async move {
                ran.lock().unwrap().push(exec.args().clone());
                Ok::<(), std::io::Error>(())
            }
        })
    }

    async fn file(&self, call: ToolCall) -> RequestId {
        match self.tool().call(call).await.unwrap() {
            GateOutcome::Pending(p) => p.request_id,
            other => panic!("expected pending, got {}", other.name()),
        }
    }

    async fn approve_and_run(&self, id: RequestId, call: ToolCall) {
        self.gate.desk().approve(id, &ann()).await.unwrap();
        let outcome = self.tool().resume(id, call).await.unwrap();
        assert!(
            matches!(outcome, GateOutcome::Executed(_)),
            "{}",
            outcome.name()
        );
    }
}

/// A notifier that has run once, as one does from the start: its channels' cursors
/// begin at the end of the trail as it was then.
async fn started(world: &World, config: &NotifyConfig) -> Notifier {
    let notifier = Notifier::new(world.gate.clone(), config).unwrap();
    notifier.step().await.unwrap();
    notifier
}

fn ann() -> Approver {
    Approver::new("ann").with_role("finance")
}

fn payment(call_id: &str) -> ToolCall {
    ToolCall::new(
        "run-1",
        call_id,
        "payments.send",
        json!({"amount": 120, "to": "acme", "password": "hunter2-SECRET"}),
    )
    .with_requester("bob")
}

/// Verifies every delivery with the Standard Webhooks library; checks that it refuses
/// each with its body changed, and one signed an hour ago.
fn verify_independently(deliveries: &[Delivery]) {
    let Some(python) = common::python_with("standardwebhooks") else {
        eprintln!(
            "skipped: the Standard Webhooks check (APPROVAL_GATE_TEST_PYTHON names no Python with `standardwebhooks`)"
        );
        return;
    };
    let secret = WebhookSecret::parse(SECRET).unwrap();
    let old_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        - 3600;
    let old_body = r#"{"type":"approval_required","timestamp":"2026-01-01T00:00:00Z","data":{}}"#;
    let one = |d: &Delivery| json!({"id": d.id, "timestamp": d.timestamp, "signature": d.signature, "body": d.body});
    let input = json!({
        "secret": SECRET,
        "deliveries": deliveries.iter().map(one).collect::<Vec<_>>(),
        "old": {"id": "msg_old", "timestamp": old_at.to_string(), "signature": secret.sign("msg_old", old_at, old_body.as_bytes()), "body": old_body},
    });
    let out = common::run_script(
        &python,
        "notify/verify_webhooks.py",
        &[],
        &input.to_string(),
    );
    let said: Value = approval_gate::serde_json::from_str(&out).unwrap();
    let n = deliveries.len();
    assert_eq!(
        said,
        json!({"verified": n, "tampered_refused": n, "old_refused": true})
    );
}

#[tokio::test]
async fn every_notice_reaches_a_webhook_signed_as_standard_webhooks_specifies() {
    let (receiver, _heard) = Receiver::start().await;
    let world = World::new(MemoryStore::new());
    let notifier = started(&world, &config(&receiver.url, "[]")).await;

    let first = world.file(payment("c1")).await;
    notifier.step().await.unwrap();
    world.approve_and_run(first, payment("c1")).await;
    notifier.step().await.unwrap();
    let second = world.file(payment("c2")).await;
    world
        .gate
        .desk()
        .deny(second, &ann(), Some("not this month"))
        .await
        .unwrap();
    let step = notifier.step().await.unwrap();
    assert_eq!(step.failed, 0);

    assert_eq!(
        receiver.kinds(),
        [
            "approval_required",
            "approval_granted",
            "executed",
            "approval_required",
            "approval_denied"
        ]
    );
    let filed = receiver.unique()[0].payload();
    let request = &filed["data"]["request"];
    assert_eq!(request["id"], first.to_string());
    assert_eq!(request["preview"], "pay 120 to acme");
    assert_eq!(request["tier"], "payments");
    assert_eq!(request["requester"], "bob");
    assert_eq!(request["quorum"], 1);
    assert!(request["expires_at"].is_string());
    assert_ne!(request["shown_args"]["password"], "hunter2-SECRET");
    assert_eq!(
        filed["data"]["url"],
        format!("https://approvals.example.com/requests/{first}")
    );
    let denied = receiver.unique()[4].payload();
    assert_eq!(denied["data"]["by"], "ann");
    assert_eq!(denied["data"]["request"]["feedback"], "not this month");
    // The tool ran with the secret; no notice carried it.
    assert_eq!(world.ran.lock().unwrap()[0]["password"], "hunter2-SECRET");
    for delivery in receiver.deliveries() {
        assert!(!delivery.body.contains("hunter2"), "{}", delivery.body);
    }
    verify_independently(&receiver.deliveries());
}

/// Steps `notifier` until the receiver has its first POST, then drops the step (the
/// process dies): the notice reached the receiver, the cursor did not move.
async fn killed_after_first_post(notifier: &Notifier, heard: &mut mpsc::UnboundedReceiver<String>) {
    while heard.try_recv().is_ok() {}
    tokio::select! {
        step = notifier.step() => { step.unwrap(); }
        Some(_) = heard.recv() => {}
    }
}

fn mail(call_id: &str) -> ToolCall {
    ToolCall::new(
        "run-2",
        call_id,
        "email.send",
        json!({"to": "a@example.com"}),
    )
    .with_requester("bob")
}

#[tokio::test]
async fn a_notifier_killed_and_restarted_at_every_step_delivers_every_event_once_deduplicated() {
    let dir = std::env::temp_dir().join(format!("ag-notify-{}", RequestId::new()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("gate.db");
    let (receiver, mut heard) = Receiver::start().await;
    let world = World::new(SqliteStore::connect(path.to_str().unwrap()).await.unwrap());
    let config = config(&receiver.url, "[]");
    // A notifier ran before anything happened (the channel's cursor starts here), and
    // stopped cleanly.
    started(&world, &config).await.release().await;

    let mut m1 = None;
    for step in 0..4 {
        match step {
            0 => m1 = Some(world.file(mail("m1")).await),
            1 => world.approve_and_run(m1.unwrap(), mail("m1")).await,
            2 => drop(world.file(mail("m2")).await),
            _ => {
                let m2 = world.gate.desk().pending().await.unwrap()[0].id();
                world
                    .gate
                    .desk()
                    .deny(m2, &ann(), Some("no"))
                    .await
                    .unwrap();
            }
        }
        // Killed after its first POST; the next one starts once the lease ran out.
        let dying = Notifier::new(world.gate.clone(), &config).unwrap();
        killed_after_first_post(&dying, &mut heard).await;
        let next = Notifier::new(world.gate.clone(), &config).unwrap();
        assert_eq!(
            next.step().await.unwrap().held_elsewhere,
            1,
            "the dead one's lease holds"
        );
        world.clock.advance(Duration::from_secs(31));
        next.step().await.unwrap();
        next.release().await;
    }

    assert_eq!(
        receiver.kinds(),
        [
            "approval_required",
            "approval_granted",
            "executed",
            "approval_required",
            "approval_denied"
        ]
    );
    assert!(
        receiver.deliveries().len() > receiver.unique().len(),
        "a notice was delivered again after a kill"
    );
    let status = notify::status(&**world.gate.store()).await.unwrap();
    assert_eq!(status.channels.len(), 1);
    assert_eq!(
        (
            status.channels[0].channel.as_str(),
            status.channels[0].behind
        ),
        ("ops", 0)
    );
    assert!(status.failed.is_empty());
    verify_independently(&receiver.deliveries());
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test]
async fn a_receiver_down_past_the_retries_is_recorded_and_the_gate_goes_on() {
    let (receiver, _heard) = Receiver::start().await;
    *receiver.down.lock().unwrap() = true;
    let world = World::new(MemoryStore::new());
    let notifier = started(&world, &config(&receiver.url, "[approval_required]")).await;

    let id = world.file(payment("c1")).await;
    let step = notifier.step().await.unwrap();
    assert_eq!((step.delivered, step.failed), (0, 1));
    // Three attempts, one id.
    let tried = receiver.deliveries();
    assert_eq!(tried.len(), 3);
    assert!(tried.iter().all(|d| d.id == tried[0].id));

    let status = notify::status(&**world.gate.store()).await.unwrap();
    assert_eq!(status.failed.len(), 1);
    let failed = &status.failed[0];
    assert_eq!(
        (
            failed.channel.as_str(),
            failed.record_event.as_str(),
            failed.attempts
        ),
        ("ops", "approval_required", 3)
    );
    assert!(failed.error.contains("503"), "{}", failed.error);
    // The channel went on past it: nothing sent again, nothing left behind.
    assert_eq!(notifier.step().await.unwrap(), Default::default());
    let status = notify::status(&**world.gate.store()).await.unwrap();
    assert_eq!(status.channels[0].behind, 0);
    // An administrator sees it in the console too.
    let console = approval_gate_server::router(approval_gate_server::AppState::new(
        world.gate.clone(),
        approval_gate_server::Auth::new()
            .trust_proxy(approval_gate_server::ProxyHeaders::default()),
    ));
    let page = axum::http::Request::get("/stats")
        .header("host", "console.test")
        .header("x-forwarded-user", "olga")
        .header("x-forwarded-groups", "approval-admin")
        .body(axum::body::Body::empty())
        .unwrap();
    let page = tower::ServiceExt::oneshot(console, page).await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = http_body_util::BodyExt::collect(page.into_body())
        .await
        .unwrap()
        .to_bytes();
    let html = String::from_utf8(html.to_vec()).unwrap();
    assert!(html.contains("Deliveries given up on"), "{html}");
    assert!(
        html.contains("<td>ops</td>") && html.contains("503"),
        "{html}"
    );
    // The gate never waited on the receiver.
    world.approve_and_run(id, payment("c1")).await;
    assert_eq!(world.ran.lock().unwrap().len(), 1);
    // Back up: the next notice goes through.
    *receiver.down.lock().unwrap() = false;
    world.file(payment("c2")).await;
    assert_eq!(notifier.step().await.unwrap().delivered, 1);
}

#[tokio::test]
async fn reminders_and_escalations_are_sent_once_each_before_the_ttl() {
    let (receiver, _heard) = Receiver::start().await;
    let world = World::new(MemoryStore::new());
    let events = "[approval_reminded, approval_escalated]";
    let notifier = started(&world, &config(&receiver.url, events)).await;
    let id = world.file(payment("c1")).await;

    world.clock.advance(Duration::from_secs(59));
    notifier.step().await.unwrap();
    assert!(receiver.kinds().is_empty());
    world.clock.advance(Duration::from_secs(1));
    notifier.step().await.unwrap();
    world.clock.advance(Duration::from_secs(1));
    notifier.step().await.unwrap();
    assert_eq!(receiver.kinds(), ["approval_reminded"]);
    world.clock.advance(Duration::from_secs(239));
    notifier.step().await.unwrap();
    world.clock.advance(Duration::from_secs(1));
    notifier.step().await.unwrap();
    assert_eq!(
        receiver.kinds(),
        ["approval_reminded", "approval_escalated"]
    );
    let escalated = receiver.unique()[1].payload();
    assert_eq!(escalated["data"]["escalate_to"], json!(["finance-lead"]));
    assert_eq!(escalated["data"]["request"]["id"], id.to_string());
    // A second notifier on the same store does not remind again.
    let other = Notifier::new(world.gate.clone(), &config(&receiver.url, events)).unwrap();
    world.clock.advance(Duration::from_secs(61));
    other.step().await.unwrap();
    notifier.step().await.unwrap();
    assert_eq!(receiver.unique().len(), 2);
    // A request decided in time is not reminded.
    let decided = world.file(payment("c2")).await;
    world
        .gate
        .desk()
        .deny(decided, &ann(), Some("no"))
        .await
        .unwrap();
    world.clock.advance(Duration::from_secs(120));
    notifier.step().await.unwrap();
    assert_eq!(receiver.unique().len(), 2);
}

#[tokio::test]
async fn a_timeout_spike_is_alerted_once_and_cleared_once() {
    let (receiver, _heard) = Receiver::start().await;
    let world = World::new(MemoryStore::new());
    let mut config = config(&receiver.url, "[timeout_spike, timeout_spike_cleared]");
    config.timeout_spike = Some(notify::SpikeRule {
        window_seconds: 600,
        threshold: 0.5,
        min_count: 2,
    });
    let notifier = started(&world, &config).await;
    let restart = |n: &str| ToolCall::new("run-3", n, "ops.restart", json!({"host": n}));

    // One timeout is under the minimum count.
    world.file(restart("a")).await;
    world.clock.advance(Duration::from_secs(61));
    world.gate.sweep_expired(100).await.unwrap();
    notifier.step().await.unwrap();
    assert!(receiver.kinds().is_empty());
    // Two of two timed out: a spike, alerted once.
    world.file(restart("b")).await;
    world.clock.advance(Duration::from_secs(61));
    world.gate.sweep_expired(100).await.unwrap();
    notifier.step().await.unwrap();
    world.clock.advance(Duration::from_secs(1));
    notifier.step().await.unwrap();
    assert_eq!(receiver.kinds(), ["timeout_spike"]);
    let alert = receiver.unique()[0].payload();
    assert_eq!(
        (
            &alert["data"]["timeouts"],
            &alert["data"]["decided"],
            &alert["data"]["window_seconds"]
        ),
        (&json!(2), &json!(2), &json!(600))
    );
    // The window passes: cleared, once.
    world.clock.advance(Duration::from_secs(600));
    notifier.step().await.unwrap();
    world.clock.advance(Duration::from_secs(1));
    notifier.step().await.unwrap();
    assert_eq!(receiver.kinds(), ["timeout_spike", "timeout_spike_cleared"]);
}

#[test]
fn bad_settings_are_refused_with_the_field() {
    let gate = Gate::builder(
        Policy::from_yaml_str(POLICY).unwrap(),
        Keyring::new(Key::new("k1", [7u8; 32]).unwrap()),
    )
    .build();
    let refused = |yaml: &str| {
        let config = NotifyConfig::from_yaml_str(yaml).unwrap();
        Notifier::new(gate.clone(), &config)
            .unwrap_err()
            .to_string()
    };
    let hook = |url: &str, secret: &str| {
        format!("channels:\n  ops:\n    kind: webhook\n    url: {url}\n    secret: {secret}\n")
    };
    assert!(
        refused(&hook("http://h/x", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"))
            .contains("channels.ops.secret: a webhook secret starts with `whsec_`")
    );
    assert!(
        refused(&hook("http://h/x", "whsec_c2hvcnQ="))
            .contains("channels.ops.secret: the secret is 5 bytes")
    );
    assert!(refused(&hook("ftp://h/x", SECRET)).contains("channels.ops.url"));
    let err = NotifyConfig::from_yaml_str("channels:\n  ops:\n    kind: webhook\n    url: http://h\n    secret: x\n    events: [approval_requird]\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("line 2") && err.contains("unknown variant `approval_requird`"),
        "{err}"
    );
    let err = NotifyConfig::from_yaml_str("retry:\n  attempt: 3\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("line 2") && err.contains("unknown field `attempt`"),
        "{err}"
    );
}

/// A channel of the host's own that holds each delivery until released.
struct Stuck {
    entered: mpsc::UnboundedSender<()>,
    release: Arc<tokio::sync::Notify>,
}

#[async_trait::async_trait]
impl Channel for Stuck {
    async fn deliver(&self, _: &Notice) -> Result<Delivered, DeliveryError> {
        let _ = self.entered.send(());
        self.release.notified().await;
        Ok(Delivered::default())
    }
}

#[tokio::test]
async fn a_stuck_channel_delays_its_own_deliveries_only() {
    let (receiver, mut heard) = Receiver::start().await;
    let world = World::new(MemoryStore::new());
    let release = Arc::new(tokio::sync::Notify::new());
    let (entered, mut stuck) = mpsc::unbounded_channel();
    let config = config(&receiver.url, "[approval_required]");
    let notifier = Notifier::new(world.gate.clone(), &config).unwrap().channel(
        "pager",
        [NoticeKind::ApprovalRequired],
        Stuck {
            entered,
            release: release.clone(),
        },
    );
    notifier.step().await.unwrap();
    let id = world.file(payment("c1")).await;

    let stepping = notifier.step();
    tokio::pin!(stepping);
    // The webhook is delivered while the pager holds its own delivery.
    tokio::select! {
        _ = &mut stepping => panic!("the step ended while a channel holds a delivery"),
        _ = async {
            heard.recv().await;
            stuck.recv().await;
        } => {}
    }
    assert_eq!(receiver.kinds(), ["approval_required"]);
    // And the gate never waits on either.
    world.approve_and_run(id, payment("c1")).await;
    release.notify_one();
    let step = stepping.await.unwrap();
    assert_eq!((step.delivered, step.failed), (2, 0));
}

/// A channel of the host's own that counts what it is sent.
#[derive(Clone, Default)]
struct Counting(Arc<Mutex<Vec<String>>>);

#[async_trait::async_trait]
impl Channel for Counting {
    async fn deliver(&self, notice: &Notice) -> Result<Delivered, DeliveryError> {
        self.0.lock().unwrap().push(notice.kind.as_str().to_owned());
        Ok(Delivered::default())
    }
}

#[tokio::test]
async fn a_channel_added_under_a_configured_name_replaces_it_and_timers_is_a_name_like_any() {
    let (receiver, _heard) = Receiver::start().await;
    let world = World::new(MemoryStore::new());
    let mut config = config(&receiver.url, "[]");
    // A channel may be called `timers`: the reminders' lease is not a channel's cursor.
    let ops = config.channels.remove("ops").unwrap();
    config.channels.insert("timers".into(), ops);
    let counted = Counting::default();
    let notifier =
        Notifier::new(world.gate.clone(), &config)
            .unwrap()
            .channel("timers", [], counted.clone());
    notifier.step().await.unwrap();
    world.file(payment("c1")).await;
    world.clock.advance(Duration::from_secs(60));
    let step = notifier.step().await.unwrap();

    // One route under the name: the host's channel, not the configured webhook.
    assert!(receiver.deliveries().is_empty());
    assert_eq!(
        *counted.0.lock().unwrap(),
        ["approval_required", "approval_reminded"]
    );
    assert_eq!((step.delivered, step.written), (2, 1));
    let status = notify::status(&**world.gate.store()).await.unwrap();
    assert_eq!(status.channels.len(), 1);
    assert_eq!(
        (
            status.channels[0].channel.as_str(),
            status.channels[0].behind
        ),
        ("timers", 0)
    );
}
