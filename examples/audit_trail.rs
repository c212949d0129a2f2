//! The audit trail: one record of every event, the hash chain that links them, and a
//! JSON-lines export that `approval-gate audit verify` checks.
//!
//! Run it with `cargo run --example audit_trail [-- TRAIL.jsonl]`; the trail is written
//! to the path given, or to `audit-trail.jsonl` in the system's temporary directory.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use approval_gate::{
    Execution, Gate, GateOutcome, GrantScope, GrantSpec, Key, Keyring, ManualClock, MemoryStore,
    Policy, RequestId, ToolCall,
    trail::{AuditError, AuditQuery, AuditRecord, FanoutSink, export_jsonl, verify_chain},
};
use serde_json::{Value, json};

const POLICY: &str = r#"
approvals:
  ttl_seconds: 300
  redact: [args.password]
tiers:
  standard: { approvers: [support-lead] }
  critical: { approvers: [finance-lead], quorum: 2, grants: false }
rules:
  - { id: reads, tools: ["*.read"], effect: allow }
  - { id: no-drops, tool: db.drop, effect: deny, reason: "dropping tables is never allowed" }
  - { id: emails, tool: email.send, effect: approval_required, tier: standard }
  - { id: wires, tool: payments.wire, effect: approval_required, tier: critical }
"#;

type Error = Box<dyn std::error::Error>;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let path = std::env::args()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("audit-trail.jsonl"));

    // A sink beside the store's trail that we can break, to show a step put back.
    let sink_down = Arc::new(AtomicBool::new(false));
    let down = sink_down.clone();
    let sink = FanoutSink::new().required(move |_: &AuditRecord| {
        if down.load(Ordering::SeqCst) {
            return Err(AuditError::backend(std::io::Error::other("disk full")));
        }
        Ok(())
    });
    let clock = ManualClock::default();
    let store = MemoryStore::new();
    let gate = Gate::builder(
        Policy::from_yaml_str(POLICY)?,
        Keyring::new(Key::generate("trail-example")?),
    )
    .store(store.clone())
    .audit(sink)
    .clock(clock.clone())
    .build();
    let tools = gate.wrap(|exec: Execution| async move {
        if exec.tool() == "email.send" && exec.args()["to"] == "nobody@invalid" {
            return Err(std::io::Error::other("mailbox unavailable"));
        }
        Ok::<Value, std::io::Error>(json!("done"))
    });
    let desk = gate.desk();
    let lead = |id: &str| approval_gate::Approver::new(id).with_role("support-lead");
    let finance = |id: &str| approval_gate::Approver::new(id).with_role("finance-lead");
    let email = |call: &str, to: &str| {
        ToolCall::new(
            "run-1",
            call,
            "email.send",
            json!({"to": to, "password": "s3cret"}),
        )
        .with_requester("agent-for-bob")
    };

    // allow, executed; policy_denied.
    tools
        .call(ToolCall::new("run-1", "c1", "crm.read", json!({"id": 7})))
        .await?;
    tools
        .call(ToolCall::new(
            "run-1",
            "c2",
            "db.drop",
            json!({"table": "users"}),
        ))
        .await?;

    // approval_required, approval_granted, grant_created, execution_started, executed,
    // then grant_used for a later call, and grant_revoked.
    let id = pending(tools.call(email("c3", "bob@example.com")).await?)?;
    let spec = GrantSpec::new(GrantScope::Run, Duration::from_secs(600));
    let (_, grant) = desk.approve_with_grant(id, &lead("ann"), &spec).await?;
    tools.resume(id, email("c3", "bob@example.com")).await?;
    tools.call(email("c4", "carol@example.com")).await?;
    if let Some(grant) = grant {
        desk.revoke_grant(grant.id(), &lead("ann")).await?;
    }

    // approval_vote, then the second vote grants; the tool fails: execution_failed.
    let wire = ToolCall::new("run-1", "c5", "payments.wire", json!({"amount": 25000}));
    let id = pending(tools.call(wire.clone()).await?)?;
    desk.approve(id, &finance("fay")).await?;
    desk.approve(id, &finance("gus")).await?;
    tools.resume(id, wire).await?;
    let id = pending(tools.call(email("c6", "nobody@invalid")).await?)?;
    desk.approve(id, &lead("ann")).await?;
    tools.resume(id, email("c6", "nobody@invalid")).await?;

    // approval_denied, and a resume of it: stopped.
    let id = pending(tools.call(email("c7", "dan@example.com")).await?)?;
    desk.deny(id, &lead("ann"), Some("use the refund template"))
        .await?;
    tools.resume(id, email("c7", "dan@example.com")).await?;

    // approval_cancelled.
    let id = pending(tools.call(email("c8", "eve@example.com")).await?)?;
    desk.cancel(id, &lead("ops"), Some("customer called"))
        .await?;

    // transition_reverted: the sink beside the store fails as ann approves.
    let id = pending(tools.call(email("c9", "fred@example.com")).await?)?;
    sink_down.store(true, Ordering::SeqCst);
    assert!(desk.approve(id, &lead("ann")).await.is_err());
    sink_down.store(false, Ordering::SeqCst);

    // approval_timeout: nobody decides in time.
    clock.advance(Duration::from_secs(301));
    gate.sweep_expired(100).await?;

    // One record of each event, as stored.
    let trail = gate.store().audit_records(&AuditQuery::default()).await?;
    let mut seen = Vec::new();
    for record in &trail {
        if !seen.contains(&record.event_name()) {
            seen.push(record.event_name());
            println!("{}", serde_json::to_string(record)?);
        }
    }
    println!("\n{} events: {}", seen.len(), seen.join(", "));

    // The chain: verify it here, and export it for `approval-gate audit verify`.
    let head = verify_chain(&trail, None)?;
    let mut file = std::fs::File::create(&path)?;
    let lines = export_jsonl(&store, &AuditQuery::default(), &mut file).await?;
    println!(
        "trail: {lines} records, head {}:{}, written to {}",
        head.seq,
        head.hash,
        path.display()
    );
    Ok(())
}

fn pending(outcome: GateOutcome<Value, std::io::Error>) -> Result<RequestId, Error> {
    match outcome {
        GateOutcome::Pending(p) => Ok(p.request_id),
        other => Err(format!("expected pending, got {}", other.name()).into()),
    }
}
