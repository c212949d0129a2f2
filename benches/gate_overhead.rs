//! What the gate adds to an allowed call: `Gated::call` with 1 KiB of arguments, a no-op
//! executor, `MemoryStore` and `MemorySink`, against calling the executor directly; and
//! the args hash of the same arguments, measured in the same run, as the yardstick
//! (target: overhead at most 3× the args hash). Run with `cargo bench --bench gate_overhead`.

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use approval_gate::{ArgsHash, Execution, MemorySink, MemoryStore, ToolCall};
use criterion::{Criterion, criterion_group, criterion_main};

fn overhead(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let args = common::args_1kib();
    let call = ToolCall::new("run-1", "c1", "orders.read", args.clone());
    let direct = |call: ToolCall| async move {
        black_box(call);
        Ok::<(), std::io::Error>(())
    };

    let mut group = c.benchmark_group("gate_overhead");
    group.bench_function("args_hash", |b| {
        b.iter(|| ArgsHash::compute(black_box(&args)).unwrap())
    });
    group.bench_function("executor_called_directly", |b| {
        b.to_async(&runtime)
            .iter(|| async { direct(black_box(call.clone())).await.unwrap() })
    });
    // A fresh store and sink per sample: both keep every record, and a sample's worth
    // is what a process gating that many calls would hold.
    group.bench_function("gated_call", |b| {
        b.iter_custom(|iters| {
            let gate = common::gate_builder()
                .store(MemoryStore::new())
                .audit(MemorySink::new())
                .build();
            let gated = gate.wrap(|_exec: Execution| async { Ok::<(), std::io::Error>(()) });
            runtime.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    gated.call(black_box(call.clone())).await.unwrap();
                }
                start.elapsed()
            })
        })
    });
    // For comparison: a sink that keeps only its newest 10,000 records, so its memory
    // stops growing.
    group.bench_function("gated_call_bounded_sink", |b| {
        b.iter_custom(|iters| {
            let gate = common::gate_builder()
                .store(MemoryStore::new())
                .audit(MemorySink::with_capacity(10_000))
                .build();
            let gated = gate.wrap(|_exec: Execution| async { Ok::<(), std::io::Error>(()) });
            runtime.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    gated.call(black_box(call.clone())).await.unwrap();
                }
                start.elapsed()
            })
        })
    });
    // For comparison: the store's own trail and no sink beside it.
    group.bench_function("gated_call_store_trail_only", |b| {
        b.iter_custom(|iters| {
            let gate = common::gate_builder().store(MemoryStore::new()).build();
            let gated = gate.wrap(|_exec: Execution| async { Ok::<(), std::io::Error>(()) });
            runtime.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    gated.call(black_box(call.clone())).await.unwrap();
                }
                start.elapsed()
            })
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5));
    targets = overhead
}
criterion_main!(benches);
