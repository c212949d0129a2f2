//! The driver: a rig `AgentRun` on a scripted model sends an email that needs approval.
//! The run stops and is saved as JSON; the process "restarts" (a new gate on the same
//! SQLite file, a new model); a person approves; the run resumes from the JSON and the
//! tool runs, once, through `Gated::resume`. A second resume of the same JSON runs nothing.
//!
//! Run it with `cargo run -p approval-gate-rig --all-features --example driver`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use approval_gate::{Approver, Execution, Gate, Key, Keyring, Policy, SqliteStore, ToolExecutor};
use approval_gate_rig::rig_agent::AgentRun;
use approval_gate_rig::rig_core::completion::ToolDefinition;
use approval_gate_rig::rig_core::message::ToolName;
use approval_gate_rig::rig_core::test_utils::{MockCompletionModel, MockTurn};
use approval_gate_rig::{DriveOutcome, GatedDriver, PendingRun};
use serde_json::{Value, json};

const POLICY: &str = "\
approvals:
  required_for: [send_email]
  ttl_seconds: 300
  fallback_when_not_approved: continue
";

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("gate.db");
    let db = db.to_str().ok_or("a temporary path that is not UTF-8")?;
    let key = [42u8; 32];
    let sent = Arc::new(AtomicUsize::new(0));

    println!("== process one: the agent runs ==");
    let saved = {
        let gate = gate(db, key).await?;
        let model = MockCompletionModel::from_turns([MockTurn::tool_call(
            "call-1",
            "send_email",
            json!({"to": "bob@example.com", "subject": "Your refund"}),
        )]);
        let driver = driver(model, &gate, &sent)?;
        let run = AgentRun::new("Tell Bob his refund is on its way").max_turns(3);
        match driver.run("run-1", run).await? {
            DriveOutcome::Pending(pending) => {
                println!(
                    "the model called {}: request {} waits for a person; {} emails sent",
                    pending.tool(),
                    pending.request_id(),
                    sent.load(Ordering::SeqCst)
                );
                let saved = serde_json::to_string(&pending)?;
                println!("saved the run: {} bytes of JSON", saved.len());
                saved
            }
            other => return Err(format!("expected a pending run, got {}", other.name()).into()),
        }
    };

    println!("\n== a person decides ==");
    let pending: PendingRun = serde_json::from_str(&saved)?;
    let gate = gate(db, key).await?;
    for request in gate.desk().pending().await? {
        println!(
            "the desk shows {} {} {}",
            request.id(),
            request.call().tool(),
            request.shown_args()
        );
    }
    gate.desk()
        .approve(pending.request_id(), &Approver::new("ann@example.com"))
        .await?;
    println!("ann approves");

    println!("\n== process two: a new gate on the same file, the run resumes from JSON ==");
    let model = MockCompletionModel::from_turns([
        MockTurn::text("Bob has been told."),
        MockTurn::text("Nothing more to do."),
    ]);
    let driver = driver(model.clone(), &gate, &sent)?;
    report(driver.resume(pending).await?);
    println!("emails sent: {}", sent.load(Ordering::SeqCst));

    println!("\n== the same JSON resumed again ==");
    report(driver.resume(serde_json::from_str(&saved)?).await?);
    println!(
        "emails sent: {} (the approval was used)",
        sent.load(Ordering::SeqCst)
    );
    Ok(())
}

async fn gate(db: &str, key: [u8; 32]) -> Result<Gate, Box<dyn std::error::Error>> {
    let store = SqliteStore::connect(db).await?;
    store.migrate().await?;
    Ok(Gate::builder(
        Policy::from_yaml_str(POLICY)?,
        Keyring::new(Key::new("k1", key)?),
    )
    .store(store)
    .build())
}

fn driver(
    model: MockCompletionModel,
    gate: &Gate,
    sent: &Arc<AtomicUsize>,
) -> Result<GatedDriver<impl ToolExecutor<Output = Value> + use<>>, Box<dyn std::error::Error>> {
    let sent = sent.clone();
    let tools = gate.wrap(move |exec: Execution| {
        let sent = sent.clone();
        async move {
            sent.fetch_add(1, Ordering::SeqCst);
            println!(
                "    >> sending {} (idempotency key {:?})",
                exec.args(),
                exec.idempotency_key().map(|id| id.to_string())
            );
            Ok::<Value, std::io::Error>(json!({"status": "sent"}))
        }
    });
    let send_email = ToolDefinition::new(
        ToolName::new("send_email")?,
        "Send an email",
        json!({"type": "object", "properties": {"to": {"type": "string"}, "subject": {"type": "string"}}}),
    );
    Ok(GatedDriver::new(model, tools)
        .preamble("You are a support agent.")
        .tool(send_email)
        .with_requester("support-agent"))
}

fn report(outcome: DriveOutcome) {
    match outcome {
        DriveOutcome::Done(response) => println!("the run is done: {:?}", response.output()),
        DriveOutcome::Pending(pending) => println!("still waiting: {}", pending.request_id()),
        DriveOutcome::Stopped(stopped) => println!("stopped: {}", stopped.stop.message()),
    }
}
