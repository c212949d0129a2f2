//! The approval round trip: call → pending → approve → resume → executed.
//!
//! - `MemoryStore`: against the args hash of the same arguments (target: at most 20×).
//! - `SqliteStore` on a file (WAL, `synchronous = FULL`, the default): against the same
//!   number of bare SQLite commits on the same file, the floor (target: at most 2×). A
//!   round trip commits four times: the request with its record, the approval, the
//!   claim, the result.
//! - `PostgresStore`: reported, when `APPROVAL_GATE_TEST_POSTGRES_URL` is set.
//!
//! Run with `cargo bench --all-features --bench round_trip`.

mod common;

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use approval_gate::sqlx::{self, Executor as _};
use approval_gate::{
    ApprovalStore, Approver, ArgsHash, Execution, Gate, GateOutcome, MemorySink, MemoryStore,
    PostgresStore, SqliteStore, ToolCall,
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
    use approval_gate::sqlx::sqlite::SqliteSynchronous;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for (name, sync) in [
        ("sqlite_full", SqliteSynchronous::Full),
        ("sqlite_normal", SqliteSynchronous::Normal),
    ] {
        let dir =
            std::env::temp_dir().join(format!("approval-gate-bench-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("round_trip.db");
        let options = SqliteStore::options(path.to_str().unwrap())
            .unwrap()
            .synchronous(sync);
        let store = rt.block_on(SqliteStore::connect_with(options)).unwrap();
        rt.block_on(store.pool().execute(
            "CREATE TABLE IF NOT EXISTS bench_floor (id INTEGER PRIMARY KEY, v TEXT NOT NULL)",
        ))
        .unwrap();
        let gate = gate_on(store.clone());
        let args = common::args_1kib();
        let mut group = c.benchmark_group(format!("round_trip/{name}"));
        group.sample_size(20);
        group.measurement_time(Duration::from_secs(10));
        // The floor: as many bare commits, each a one-row insert in its own write
        // transaction, on the same file with the same `synchronous`.
        group.bench_function("bare_commits_floor", |b| {
            b.to_async(&rt).iter(|| async {
                for _ in 0..COMMITS {
                    let mut tx = store.pool().begin_with("BEGIN IMMEDIATE").await.unwrap();
                    sqlx::query("INSERT INTO bench_floor (v) VALUES ($1)")
                        .bind("x".repeat(200))
                        .execute(&mut *tx)
                        .await
                        .unwrap();
                    tx.commit().await.unwrap();
                }
            })
        });
        group.bench_function("round_trip", |b| {
            b.to_async(&rt).iter(|| round_trip(&gate, &args))
        });
        group.finish();
        rt.block_on(store.close());
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
        .block_on(PostgresStore::with_schema(&url, &schema))
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
