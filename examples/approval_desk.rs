//! The human side, end to end: a two-person rule (quorum), an approval with edits, a
//! denial whose feedback reaches the agent, and a standing grant.
//!
//! Run it with `cargo run --example approval_desk`.

use std::time::Duration;

use approval_gate::{
    Approver, Execution, Gate, GateOutcome, GrantScope, GrantSpec, Key, Keyring, ManualClock,
    MemorySink, Policy, RequestId, ToolCall,
};
use serde_json::{Value, json};

const POLICY: &str = r#"
approvals:
  redact: [args.card_number]
tiers:
  standard:
    approvers: [support-lead]
  critical:
    approvers: [finance-lead, cfo]
    quorum: 2
    grants: false
rules:
  - id: refunds
    tool: payments.refund
    effect: approval_required
    tier: standard
    preview: "Refund {amount} EUR on order {order}"
  - id: wires
    tool: payments.wire
    effect: approval_required
    tier: critical
    preview: "Wire {amount} EUR to {iban}"
  - id: customer-email
    tool: email.send
    effect: approval_required
    tier: standard
    preview: "Email {to}: {subject}"
"#;

type Error = Box<dyn std::error::Error>;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let audit = MemorySink::new();
    let gate = Gate::builder(
        Policy::from_yaml_str(POLICY)?,
        Keyring::new(Key::generate("desk-example")?),
    )
    .audit(audit.clone())
    .clock(ManualClock::default())
    .build();
    let tools = gate.wrap(|exec: Execution| async move {
        let approvers = exec.approval().map(|a| a.approvers().to_vec());
        println!(
            "    >> {} runs with {} (approved by {approvers:?})",
            exec.tool(),
            exec.args()
        );
        Ok::<Value, std::io::Error>(json!("done"))
    });
    let desk = gate.desk();
    let lead = |id: &str, role: &str| Approver::new(id).with_role(role).with_tenant("acme");
    let call = |id: &str, tool: &str, args: Value| {
        ToolCall::new("run-7", id, tool, args)
            .with_requester("agent-for-bob")
            .with_tenant("acme")
    };

    println!("== quorum: a wire needs two people ==");
    let wire = call(
        "c1",
        "payments.wire",
        json!({"amount": 25000, "iban": "DE89370400440532013000"}),
    );
    let id = file(&tools.call(wire.clone()).await?)?;
    show(&desk, id).await?;
    let after_one = desk.approve(id, &lead("fay", "finance-lead")).await?;
    println!(
        "fay approves: {} ({} of {})",
        after_one.stored_state(),
        after_one.approvers().len(),
        after_one.quorum()
    );
    match desk.approve(id, &lead("fay", "finance-lead")).await {
        Ok(_) => println!("fay again: accepted (unexpected)"),
        Err(e) => println!("fay again: refused: {e}"),
    }
    let done = desk.approve(id, &lead("carl", "cfo")).await?;
    println!("carl approves: {}", done.stored_state());
    report(tools.resume(id, wire).await?);

    println!("\n== edit: the approver lowers a refund ==");
    let refund = call(
        "c2",
        "payments.refund",
        json!({"amount": 900, "order": 17, "card_number": "4111111111111111"}),
    );
    let id = file(&tools.call(refund.clone()).await?)?;
    show(&desk, id).await?;
    desk.approve_with_edits(
        id,
        &lead("sue", "support-lead"),
        json!({"amount": 90, "order": 17, "card_number": "4111111111111111"}),
    )
    .await?;
    let outcome = tools.resume(id, refund).await?;
    if let GateOutcome::Executed(done) = &outcome
        && let Some(edit) = &done.edit
    {
        println!(
            "tell the model: the approver changed {:?}",
            edit.changed_fields
        );
    }
    report(outcome);

    println!("\n== deny with feedback ==");
    let email = call(
        "c3",
        "email.send",
        json!({"to": "bob@example.com", "subject": "Refund denied"}),
    );
    let id = file(&tools.call(email.clone()).await?)?;
    desk.deny(
        id,
        &lead("sue", "support-lead"),
        Some("use the apology template and offer a voucher"),
    )
    .await?;
    report(tools.resume(id, email).await?);

    println!("\n== standing grant: approve once, for the rest of the run ==");
    let email = call(
        "c4",
        "email.send",
        json!({"to": "bob@example.com", "subject": "Voucher"}),
    );
    let id = file(&tools.call(email.clone()).await?)?;
    let spec = GrantSpec::new(GrantScope::Run, Duration::from_secs(3600)).max_uses(5);
    let (_, grant) = desk
        .approve_with_grant(id, &lead("sue", "support-lead"), &spec)
        .await?;
    report(tools.resume(id, email).await?);
    let follow_up = call(
        "c5",
        "email.send",
        json!({"to": "bob@example.com", "subject": "Voucher code"}),
    );
    println!("a follow-up email in the same run:");
    report(tools.call(follow_up).await?);
    if let Some(grant) = grant {
        desk.revoke_grant(grant.id(), &lead("sue", "support-lead"))
            .await?;
        println!("sue revokes the grant");
    }
    let another = call(
        "c6",
        "email.send",
        json!({"to": "bob@example.com", "subject": "One more"}),
    );
    report(tools.call(another).await?);

    println!("\n== audit trail ==");
    for name in audit.event_names() {
        println!("  {name}");
    }
    Ok(())
}

fn file(outcome: &GateOutcome<Value, std::io::Error>) -> Result<RequestId, Error> {
    report_ref(outcome);
    Ok(outcome
        .pending()
        .ok_or("expected the call to wait for approval")?
        .request_id)
}

async fn show(desk: &approval_gate::Desk, id: RequestId) -> Result<(), Error> {
    let request = desk.show(id).await?;
    println!(
        "desk: {} | args {} | tier {} | approvers {:?} | quorum {}",
        request.preview().unwrap_or(request.call().tool()),
        request.shown_args(),
        request.tier().map_or("-", |t| t.as_str()),
        request.approver_roles(),
        request.quorum()
    );
    Ok(())
}

fn report(outcome: GateOutcome<Value, std::io::Error>) {
    report_ref(&outcome);
}

fn report_ref(outcome: &GateOutcome<Value, std::io::Error>) {
    match outcome {
        GateOutcome::Executed(done) => println!("  -> executed: {:?}", done.result),
        GateOutcome::Pending(p) => println!("  -> pending: {}", p.request_id),
        GateOutcome::Stopped(stop) => println!("  -> stopped: {}", stop.message()),
    }
}
