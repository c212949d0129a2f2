//! Round trips (call → pending → approve → resume → executed) with 1, 2, 8 and 64 tasks
//! at once on one gate, on `MemoryStore` and on `SqliteStore` (a file, WAL, FULL). The
//! time reported is per round trip, so throughput is its inverse; more tasks should
//! never make it slower than one. Run with `cargo bench --all-features --bench concurrency`.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use approval_gate::{
    ApprovalStore, Approver, Execution, Gate, GateOutcome, MemorySink, MemoryStore, SqliteStore,
    ToolCall,
};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::Value;

static RUN: AtomicU64 = AtomicU64::new(0);

async fn round_trip(gate: Gate, args: Value) {
    let tool = gate.wrap(|_: Execution| async { Ok::<(), std::io::Error>(()) });
    let run = format!("run-{}", RUN.fetch_add(1, Ordering::Relaxed));
    let call = ToolCall::new(run, "c1", "email.send", args);
    let id = match tool.call(call.clone()).await.unwrap() {
        GateOutcome::Pending(p) => p.request_id,
        other => panic!("expected pending, got {}", other.name()),
    };
    gate.desk()
        .approve(id, &Approver::new("ann"))
        .await
        .unwrap();
    assert!(tool.resume(id, call).await.unwrap().executed().is_some());
}

/// `iters` round trips spread over `tasks` tasks; the elapsed time.
fn spread(rt: &tokio::runtime::Runtime, gate: &Gate, tasks: u64, iters: u64) -> Duration {
    let args = common::args_1kib();
    rt.block_on(async {
        let start = Instant::now();
        let handles: Vec<_> = (0..tasks)
            .map(|t| {
                let (gate, args) = (gate.clone(), args.clone());
                // The first `iters % tasks` tasks take one more.
                let n = iters / tasks + u64::from(t < iters % tasks);
                tokio::spawn(async move {
                    for _ in 0..n {
                        round_trip(gate.clone(), args.clone()).await;
                    }
                })
            })
            .collect();
        for h in handles {
            h.await.unwrap();
        }
        start.elapsed()
    })
}

fn gate_on(store: impl ApprovalStore + 'static) -> Gate {
    common::gate_builder()
        .store(store)
        .audit(MemorySink::with_capacity(10_000))
        .build()
}

fn concurrency(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("concurrency/memory");
    group.throughput(Throughput::Elements(1));
    for tasks in [1u64, 2, 8, 64] {
        group.bench_with_input(BenchmarkId::from_parameter(tasks), &tasks, |b, &tasks| {
            b.iter_custom(|iters| spread(&rt, &gate_on(MemoryStore::new()), tasks, iters))
        });
    }
    group.finish();

    let dir = std::env::temp_dir().join(format!("approval-gate-conc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("concurrency.db");
    let store = rt
        .block_on(SqliteStore::connect(path.to_str().unwrap()))
        .unwrap();
    let gate = gate_on(store.clone());
    let mut group = c.benchmark_group("concurrency/sqlite_full");
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    for tasks in [1u64, 2, 8, 64] {
        group.bench_with_input(BenchmarkId::from_parameter(tasks), &tasks, |b, &tasks| {
            b.iter_custom(|iters| spread(&rt, &gate, tasks, iters))
        });
    }
    group.finish();
    rt.block_on(store.close());
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, concurrency);
criterion_main!(benches);
