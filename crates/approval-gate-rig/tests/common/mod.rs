//! What the driver's and the hook's tests share: the policy, a gate, the model's view.

#![allow(dead_code)] // Each test file uses its own part.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use approval_gate::trail::{AuditError, AuditRecord};
use approval_gate::{Gate, Key, Keyring, ManualClock, MemoryStore, Policy};
use approval_gate_rig::rig_core::test_utils::MockCompletionModel;

/// The tests' policy: `read_inbox` is allowed, `send_email` needs approval,
/// `delete_repo` is denied with a reason, `refund` is allowed under 100, and any other
/// tool is denied by the default. A refusal goes back to the model
/// (`fallback_when_not_approved: continue`).
pub const POLICY: &str = "\
approvals:
  required_for: [send_email]
  ttl_seconds: 300
  fallback_when_not_approved: continue
rules:
  - id: reads
    tool: read_inbox
    effect: allow
  - id: no-deletes
    tool: delete_repo
    effect: deny
    reason: deleting repositories is not allowed, archive it instead
  - id: small-refunds
    tool: refund
    effect: allow
    when: { field: args.amount, lt: 100 }
";

/// The same policy, ending the run on a refusal (`fallback_when_not_approved: stop`).
pub fn stopping_policy() -> String {
    POLICY.replace(
        "fallback_when_not_approved: continue",
        "fallback_when_not_approved: stop",
    )
}

/// The signing key every gate of a test shares (a restart reads the same key).
pub fn keys() -> Keyring {
    Keyring::new(Key::new("k1", [7u8; 32]).expect("a 32-byte key"))
}

/// An audit sink that refuses every record once `failing` is set.
pub fn flaky_sink(failing: Arc<AtomicBool>) -> impl Fn(&AuditRecord) -> Result<(), AuditError> {
    move |_: &AuditRecord| {
        if failing.load(Ordering::SeqCst) {
            Err(AuditError::backend("the audit disk is full"))
        } else {
            Ok(())
        }
    }
}

/// A gate on a `MemoryStore` with `POLICY`, on `clock`.
pub fn memory_gate(clock: &ManualClock) -> Gate {
    Gate::builder(
        Policy::from_yaml_str(POLICY).expect("the policy loads"),
        keys(),
    )
    .store(MemoryStore::new())
    .clock(clock.clone())
    .build()
}

/// Everything the model was sent, request by request, as text: what it "saw".
pub fn seen(model: &MockCompletionModel) -> Vec<String> {
    model
        .requests()
        .iter()
        .map(|request| serde_json::to_string(request).expect("a request serializes"))
        .collect()
}
