//! `JsonlSink::record` with a sync per record (the default), from 1 task and from 16
//! tasks at once on one sink. Records that arrive while a sync is under way share the
//! next one, so the time per record with 16 tasks should be well under one task's.
//! Run with `cargo bench --bench jsonl_sink`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use approval_gate::trail::{AuditEvent, AuditRecord};
use approval_gate::{AuditSink, JsonlSink, ToolCall};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;
use time::OffsetDateTime;

static DIR: AtomicU64 = AtomicU64::new(0);

fn record() -> AuditRecord {
    let call = ToolCall::new("run-1", "c1", "crm.read", json!({"id": 7}));
    AuditRecord::new(
        OffsetDateTime::UNIX_EPOCH,
        &call,
        None,
        "v1",
        AuditEvent::Allow {
            rule_ids: vec!["reads".into()],
        },
    )
}

/// A fresh trail file under the target directory's `tmp`, removed when dropped.
struct Trail(PathBuf);

impl Trail {
    fn new() -> Trail {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "jsonl-bench-{}-{}",
            std::process::id(),
            DIR.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Trail(dir)
    }
}

impl Drop for Trail {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `iters` records spread over `tasks` tasks on one sink; the elapsed time.
fn spread(rt: &tokio::runtime::Runtime, sink: &JsonlSink, tasks: u64, iters: u64) -> Duration {
    let record = record();
    rt.block_on(async {
        let start = Instant::now();
        let handles: Vec<_> = (0..tasks)
            .map(|t| {
                let (sink, record) = (sink.clone(), record.clone());
                let n = iters / tasks + u64::from(t < iters % tasks);
                tokio::spawn(async move {
                    for _ in 0..n {
                        sink.record(&record).await.unwrap();
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

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("jsonl_sink/record_synced");
    group.throughput(Throughput::Elements(1));
    for tasks in [1u64, 16] {
        group.bench_with_input(BenchmarkId::from_parameter(tasks), &tasks, |b, &tasks| {
            let trail = Trail::new();
            let sink = JsonlSink::open(trail.0.join("trail.jsonl")).unwrap();
            b.iter_custom(|iters| spread(&rt, &sink, tasks, iters));
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
