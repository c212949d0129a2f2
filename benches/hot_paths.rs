//! The hot paths of a gated call: hashing the arguments, evaluating the policy, and the
//! whole `Gated::call` of an allowed call. Run with `cargo bench --bench hot_paths`.

use std::hint::black_box;

use approval_gate::{
    ArgsHash, AuditRecord, Execution, Gate, Key, Keyring, MemoryStore, Policy, ToolCall,
    canonical_json,
};
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// About 1 KiB of arguments in canonical form.
fn args_1kib() -> Value {
    json!({
        "to": "bob@example.com",
        "cc": ["carol@example.com", "dave@example.com"],
        "subject": "Your refund for order 12345 has been processed",
        "body": "x".repeat(700),
        "amount": 42.5,
        "metadata": {"order_id": 12345, "priority": "high", "tags": ["refund", "vip"]}
    })
}

fn hashing(c: &mut Criterion) {
    let args = args_1kib();
    let text = canonical_json(&args).unwrap();
    let mut group = c.benchmark_group("args_hash_1kib");
    group.bench_function("sha256_of_canonical_bytes_floor", |b| {
        b.iter(|| Sha256::digest(black_box(text.as_bytes())))
    });
    group.bench_function("args_hash", |b| {
        b.iter(|| ArgsHash::compute(black_box(&args)).unwrap())
    });
    group.finish();
}

fn policy() -> Policy {
    Policy::from_yaml_str(
        r#"
approvals:
  required_for: [email.send, ticket.close_bulk, db.write]
rules:
  - id: reads
    tools: ["*.read", crm.lookup]
    effect: allow
  - id: small-refunds
    tools: [payments.refund]
    effect: allow
    when: { field: args.amount, lte: 100 }
"#,
    )
    .unwrap()
}

fn evaluation(c: &mut Criterion) {
    let policy = policy();
    let allowed = ToolCall::new("run-1", "c1", "payments.refund", json!({"amount": 40}));
    let unknown = ToolCall::new("run-1", "c1", "shell.exec", json!({}));
    let mut group = c.benchmark_group("policy_evaluate");
    group.bench_function("allowed", |b| {
        b.iter(|| policy.evaluate(black_box(&allowed)))
    });
    group.bench_function("unknown_tool", |b| {
        b.iter(|| policy.evaluate(black_box(&unknown)))
    });
    group.finish();
}

fn gated_call(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let gate = Gate::builder(policy(), Keyring::new(Key::new("k1", [1u8; 32]).unwrap()))
        .store(MemoryStore::new())
        // A sink that keeps nothing, so the bench measures the gate, not a growing Vec.
        .audit(|_: &AuditRecord| Ok(()))
        .build();
    let gated = gate.wrap(|_exec: Execution| async { Ok::<(), std::io::Error>(()) });
    let call = ToolCall::new("run-1", "c1", "orders.read", args_1kib());
    let direct = |call: ToolCall| async move {
        black_box(call);
        Ok::<(), std::io::Error>(())
    };

    let mut group = c.benchmark_group("gated_call_allow_1kib");
    group.bench_function("executor_called_directly", |b| {
        b.to_async(&runtime)
            .iter(|| async { direct(black_box(call.clone())).await.unwrap() })
    });
    group.bench_function("gated_call", |b| {
        b.to_async(&runtime)
            .iter(|| async { gated.call(black_box(call.clone())).await.unwrap() })
    });
    group.finish();
}

criterion_group!(benches, hashing, evaluation, gated_call);
criterion_main!(benches);
