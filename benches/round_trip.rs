//! The approval round trip: call → pending → approve → resume → executed.
//!
//! - `MemoryStore`: against the args hash of the same arguments (target: at most 20×).
//! - `SqliteStore` on a file (WAL, `synchronous = FULL`, the default): against the same
//!   number of bare SQLite commits, the floor (target: at most 2×). A round trip commits
//!   four times: the request with its record, the approval, the claim, the result. The
//!   floor's commits run with `rusqlite` directly on the bench's thread (no thread hop,
//!   no runtime), each `BEGIN IMMEDIATE`, a one-row insert and `COMMIT` on a file in
//!   the same directory with the same `synchronous`: the strictest floor. Beside it,
//!   `bare_commits_async_floor` makes the same commits each in one `spawn_blocking`, as
//!   an async store must, to show what the thread hop costs. The round trip runs on a
//!   current-thread runtime and again on a two-worker multi-thread one.
//! - `PostgresStore`: reported, when `APPROVAL_GATE_TEST_POSTGRES_URL` is set.
//!
//! Run with `cargo bench --all-features --bench round_trip`.

mod common;

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use approval_gate::rusqlite::{self, TransactionBehavior};
use approval_gate::sqlx::Executor as _;
use approval_gate::{
    ApprovalStore, Approver, ArgsHash, Execution, Gate, GateOutcome, MemorySink, MemoryStore,
    PostgresStore, SqliteStore, ToolCall, store::SqliteSynchronous,
};
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::Value;

/// Write commits in one round trip.
const COMMITS: u64 = 4;

static RUN: AtomicU64 = AtomicU64::new(0);

/// One round trip through `gate`; panics unless the tool ran.
async fn round_trip(gate: &Gate, args: &Value) {
    let tool = gate.wrap(|_: Execution| async { Ok::<(), std::io::Error>(()) });
    let run = format!("run-{}", RUN.fetch_add(1, Ordering::Relaxed));
    let call = ToolCall::new(run, "c1", "email.send", args.clone());
    let id = match tool.call(call.clone()).await.unwrap() {
        GateOutcome::Pending(p) => p.request_id,
        other => panic!("expected pending, got {}", other.name()),
    };
    gate.desk()
        .approve(id, &Approver::new("ann"))
        .await
        .unwrap();
    let done = tool.resume(id, call).await.unwrap();
    assert!(done.executed().is_some());
}

/// One bare commit of the floor: a one-row insert in its own write transaction.
fn bare_commit(floor: &mut rusqlite::Connection, value: &str) {
    let tx = floor
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .unwrap();
    tx.prepare_cached("INSERT INTO bench_floor (v) VALUES (?1)")
        .unwrap()
        .execute([value])
        .unwrap();
    tx.commit().unwrap();
}

fn gate_on(store: impl ApprovalStore + 'static) -> Gate {
    common::gate_builder()
        .store(store)
        .audit(MemorySink::with_capacity(10_000))
        .build()
}

fn memory(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let args = common::args_1kib();
    let mut group = c.benchmark_group("round_trip/memory");
    group.bench_function("args_hash", |b| {
        b.iter(|| ArgsHash::compute(black_box(&args)).unwrap())
    });
    group.bench_function("round_trip", |b| {
        b.iter_custom(|iters| {
            let gate = gate_on(MemoryStore::new());
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    round_trip(&gate, &args).await;
                }
                start.elapsed()
            })
        })
    });
    group.finish();
}

fn sqlite(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let multi_thread = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for (name, sync, pragma) in [
        ("sqlite_full", SqliteSynchronous::Full, "FULL"),
        ("sqlite_normal", SqliteSynchronous::Normal, "NORMAL"),
    ] {
        let dir =
            std::env::temp_dir().join(format!("approval-gate-bench-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("round_trip.db");
        let options = SqliteStore::options(path.to_str().unwrap()).synchronous(sync);
        let store = rt.block_on(SqliteStore::connect_with(options)).unwrap();
        let mut floor = rusqlite::Connection::open(dir.join("floor.db")).unwrap();
        floor
            .execute_batch(&format!(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = {pragma}; \
                 CREATE TABLE IF NOT EXISTS bench_floor (id INTEGER PRIMARY KEY, v TEXT NOT NULL)"
            ))
            .unwrap();
        let value = "x".repeat(200);
        let gate = gate_on(store.clone());
        let args = common::args_1kib();
        let mut group = c.benchmark_group(format!("round_trip/{name}"));
        group.sample_size(20);
        group.measurement_time(Duration::from_secs(10));
        // The floor: as many bare commits, each a one-row insert in its own write
        // transaction, synchronously on this thread, with the same `synchronous`.
        group.bench_function("bare_commits_floor", |b| {
            b.iter(|| {
                for _ in 0..COMMITS {
                    bare_commit(&mut floor, &value);
                }
            })
        });
        // The same commits made the way an async store must make them: each on a
        // blocking thread (`spawn_blocking`), awaited from the runtime. Reported beside
        // the strict floor, to show what the hop itself costs on this machine.
        let floor = Arc::new(Mutex::new(floor));
        group.bench_function("bare_commits_async_floor", |b| {
            b.to_async(&rt).iter(|| async {
                for _ in 0..COMMITS {
                    let (floor, value) = (floor.clone(), value.clone());
                    tokio::task::spawn_blocking(move || {
                        bare_commit(&mut floor.lock().unwrap(), &value);
                    })
                    .await
                    .unwrap();
                }
            })
        });
        group.bench_function("round_trip", |b| {
            b.to_async(&rt).iter(|| round_trip(&gate, &args))
        });
        // The same on tokio's multi-thread runtime, what `#[tokio::main]` builds.
        group.bench_function("round_trip_multi_thread", |b| {
            b.to_async(&multi_thread).iter(|| round_trip(&gate, &args))
        });
        group.finish();
        rt.block_on(store.close());
        drop(floor);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

fn postgres(c: &mut Criterion) {
    let Some(url) = std::env::var("APPROVAL_GATE_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!("round_trip/postgres skipped: APPROVAL_GATE_TEST_POSTGRES_URL is not set");
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let schema = format!("ag_bench_{}", std::process::id());
    let store = rt
        .block_on(PostgresStore::connect_with(
            approval_gate::PostgresStore::options(&url).schema(&schema),
        ))
        .unwrap();
    let gate = gate_on(store.clone());
    let args = common::args_1kib();
    let mut group = c.benchmark_group("round_trip/postgres");
    group.sample_size(20);
    group.bench_function("round_trip", |b| {
        b.to_async(&rt).iter(|| round_trip(&gate, &args))
    });
    group.finish();
    let drop = format!("DROP SCHEMA \"{schema}\" CASCADE");
    rt.block_on(store.pool().execute(drop.as_str())).unwrap();
    rt.block_on(store.pool().close());
}

criterion_group!(benches, memory, sqlite, postgres);
criterion_main!(benches);
