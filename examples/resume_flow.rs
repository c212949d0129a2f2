//! The main example: the seed config's three scenarios (granted, timeout, policy deny)
//! and a cancel, on `MemoryStore` with a `ManualClock`, printing each step, each outcome
//! and the audit trail.
//!
//! Run it with `cargo run --example resume_flow`.

use std::time::Duration;

use approval_gate::{
    Approver, Execution, Gate, GateOutcome, Gated, Key, Keyring, ManualClock, MemorySink,
    MemoryStore, Policy, RequestId, ToolCall, ToolExecutor,
};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const SEED: &str = "\
approvals:
  required_for:
    - email.send
    - ticket.close_bulk
    - db.write
  ttl_seconds: 300
  fallback_when_not_approved: stop
";

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let clock = ManualClock::default();
    let audit = MemorySink::new();
    let policy = Policy::from_yaml_str(SEED)?;
    println!("policy version {}", policy.version());

    let gate = Gate::builder(policy, Keyring::new(Key::generate("example-key")?))
        .store(MemoryStore::new())
        .audit(audit.clone())
        .clock(clock.clone())
        .build();
    // The tool executor: one async closure. A real one would send the email, using the
    // idempotency key so a retry downstream cannot send it twice.
    let tools = gate.wrap(|exec: Execution| async move {
        println!(
            "    >> running {} {} (idempotency key {:?})",
            exec.tool(),
            exec.args(),
            exec.idempotency_key().map(|id| id.to_string())
        );
        Ok::<Value, std::io::Error>(json!({"status": "sent"}))
    });
    let desk = gate.desk();
    let ann = Approver::new("ann@example.com");

    println!("\n== 1. approval granted ==");
    let call = email("run-1", "call-1");
    let id = step_call(&tools, "agent calls email.send", call.clone()).await?;
    for request in desk.pending().await? {
        println!(
            "desk shows {} {} (rule {:?}, expires {})",
            request.id(),
            request.call().tool(),
            request.rule_ids(),
            rfc3339(request.expires_at())
        );
    }
    clock.advance(Duration::from_secs(45));
    desk.approve(id, &ann).await?;
    println!("ann approves after 45 s");
    step_resume(&tools, "agent resumes", id, call.clone()).await?;
    step_resume(&tools, "agent resumes again", id, call).await?;

    println!("\n== 2. approval timeout ==");
    let call = email("run-2", "call-1");
    let id = step_call(&tools, "agent calls email.send", call.clone()).await?;
    clock.advance(Duration::from_secs(299));
    step_resume(&tools, "agent resumes after 299 s", id, call.clone()).await?;
    clock.advance(Duration::from_secs(1));
    step_resume(&tools, "agent resumes after 300 s", id, call).await?;
    match desk.approve(id, &ann).await {
        Ok(_) => println!("ann approves late: accepted (unexpected)"),
        Err(e) => println!("ann approves late: refused: {e}"),
    }

    println!("\n== 3. policy deny ==");
    let call = ToolCall::new(
        "run-3",
        "call-1",
        "db.drop_table",
        json!({"table": "users"}),
    );
    step_call(&tools, "agent calls db.drop_table (no rule names it)", call).await?;

    println!("\n== 4. cancel ==");
    let call = ToolCall::new(
        "run-4",
        "call-1",
        "ticket.close_bulk",
        json!({"ids": [17, 18, 19]}),
    );
    let id = step_call(&tools, "agent calls ticket.close_bulk", call.clone()).await?;
    desk.cancel(
        id,
        &Approver::new("ops@example.com"),
        Some("the customer replied"),
    )
    .await?;
    println!("ops cancels the request");
    step_resume(&tools, "agent resumes", id, call).await?;

    println!("\n== audit trail ==");
    for record in audit.records() {
        println!("{}", serde_json::to_string(&record)?);
    }
    Ok(())
}

fn email(run: &str, call: &str) -> ToolCall {
    ToolCall::new(
        run,
        call,
        "email.send",
        json!({"to": "bob@example.com", "subject": "Your refund", "body": "It is on its way."}),
    )
    .with_requester("support-agent")
}

async fn step_call<E>(
    tools: &Gated<E>,
    what: &str,
    call: ToolCall,
) -> Result<RequestId, Box<dyn std::error::Error>>
where
    E: ToolExecutor<Output = Value, Error = std::io::Error>,
{
    println!("{what}");
    let outcome = tools.call(call).await?;
    print_outcome(&outcome);
    Ok(outcome.pending().map(|p| p.request_id).unwrap_or_default())
}

async fn step_resume<E>(
    tools: &Gated<E>,
    what: &str,
    id: RequestId,
    call: ToolCall,
) -> Result<(), Box<dyn std::error::Error>>
where
    E: ToolExecutor<Output = Value, Error = std::io::Error>,
{
    println!("{what}");
    print_outcome(&tools.resume(id, call).await?);
    Ok(())
}

fn print_outcome(outcome: &GateOutcome<Value, std::io::Error>) {
    match outcome {
        GateOutcome::Executed(done) => println!("  -> executed: {:?}", done.result),
        GateOutcome::Pending(p) => println!(
            "  -> pending: request {} expires {}",
            p.request_id,
            rfc3339(p.expires_at)
        ),
        GateOutcome::Stopped(stop) => println!(
            "  -> stopped ({}): {}{}",
            stop.reason.name(),
            stop.message(),
            if stop.ends_run() {
                "; the run ends"
            } else {
                ""
            }
        ),
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}
