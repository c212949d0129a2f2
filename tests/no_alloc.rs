//! Evaluating an allowed call allocates nothing: rules are compiled once, at load.
//!
//! This binary counts the allocations made by the test's own thread through a counting
//! global allocator, so it holds only this one test.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use approval_gate::{Effect, Policy, ToolCall};
use serde_json::json;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded unchanged to the system allocator; the thread-local
// counter is const-initialized, so touching it never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

#[test]
fn evaluating_an_allowed_call_does_not_allocate() {
    let policy = Policy::from_yaml_str(
        r#"
tiers:
  high: { ttl_seconds: 600 }
rules:
  - id: no-drops
    tools: ["db.drop*"]
    effect: deny
  - id: big-refunds
    tools: [payments.refund]
    effect: approval_required
    tier: high
    when: { field: args.amount, gt: 100 }
  - id: small-refunds
    tools: [payments.refund]
    effect: allow
    when:
      all:
        - { field: args.amount, lte: 100 }
        - { field: args.currency, in: [EUR, USD] }
        - { field: args.note, matches: "^[a-z ]*$" }
        - { field: context.roles, contains: support }
        - not: { field: args.customer.flags, contains: fraud }
  - id: reads
    tools: ["*.read", crm.lookup]
    effect: allow
"#,
    )
    .unwrap();
    let refund = ToolCall::new(
        "run-1",
        "call-1",
        "payments.refund",
        json!({"amount": 40, "currency": "EUR", "note": "late delivery",
               "customer": {"id": 7, "flags": ["vip"]}}),
    )
    .with_role("support");
    let read = ToolCall::new("run-1", "call-2", "orders.read", json!({"id": 7}));

    // Warm up once: the regex engine fills its per-thread cache on first use.
    assert_eq!(policy.evaluate(&refund).effect(), Effect::Allow);
    assert_eq!(policy.evaluate(&read).effect(), Effect::Allow);

    let before = allocations();
    for _ in 0..100 {
        let decision = policy.evaluate(&refund);
        assert_eq!(decision.effect(), Effect::Allow);
        let decision = policy.evaluate(&read);
        assert_eq!(decision.effect(), Effect::Allow);
    }
    assert_eq!(
        allocations() - before,
        0,
        "allocations while evaluating allowed calls"
    );
}
