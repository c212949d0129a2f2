//! The hook: a rig `Agent` on a scripted model, run with rig's own loop and a `GateHook`.
//! A call that needs approval stops the run with the request id; once a person approves,
//! prompting again lets the identical call through (rig runs its tool); a call the policy
//! denies reaches the model as a message.
//!
//! A hook decides but cannot bind execution to the approval: the tool rig runs is rig's,
//! not run through `Gated::resume` (see the `driver` example for that).
//!
//! Run it with `cargo run -p approval-gate-rig --all-features --example hook`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use approval_gate::{Approver, Gate, Key, Keyring, MemoryStore, Policy};
use approval_gate_rig::rig_agent::AgentBuilder;
use approval_gate_rig::rig_core::test_utils::{MockCompletionModel, MockTurn};
use approval_gate_rig::rig_core::tool::{Tool, ToolContext};
use approval_gate_rig::{GateHook, pending_request};
use serde_json::{Value, json};

const POLICY: &str = "\
approvals:
  required_for: [send_email]
  ttl_seconds: 300
  fallback_when_not_approved: continue
rules:
  - id: no-deletes
    tool: delete_repo
    effect: deny
    reason: deleting repositories is not allowed, archive it instead
";

/// rig's tool: sends an email (counted).
#[derive(Clone, Default)]
struct SendEmail(Arc<AtomicUsize>);

impl Tool for SendEmail {
    const NAME: &'static str = "send_email";
    type Args = Value;
    type Output = String;
    type Error = std::io::Error;

    fn description(&self) -> String {
        "Send an email".into()
    }

    fn parameters(&self) -> Value {
        json!({"type": "object", "properties": {"to": {"type": "string"}}})
    }

    async fn call(&self, _context: &mut ToolContext, args: Value) -> Result<String, Self::Error> {
        self.0.fetch_add(1, Ordering::SeqCst);
        println!("    >> rig runs send_email {args}");
        Ok("sent".into())
    }
}

/// rig's tool: deletes a repository (the policy never lets it).
#[derive(Clone, Default)]
struct DeleteRepo;

impl Tool for DeleteRepo {
    const NAME: &'static str = "delete_repo";
    type Args = Value;
    type Output = String;
    type Error = std::io::Error;

    fn description(&self) -> String {
        "Delete a repository".into()
    }

    fn parameters(&self) -> Value {
        json!({"type": "object", "properties": {"name": {"type": "string"}}})
    }

    async fn call(&self, _context: &mut ToolContext, args: Value) -> Result<String, Self::Error> {
        println!("    >> rig runs delete_repo {args} (it should not!)");
        Ok("deleted".into())
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let gate = Gate::builder(
        Policy::from_yaml_str(POLICY)?,
        Keyring::new(Key::generate("k1")?),
    )
    .store(MemoryStore::new())
    .build();
    let hook = GateHook::new(gate.clone(), "run-1").with_requester("support-agent");
    let send = SendEmail::default();
    let email = || MockTurn::tool_call("call-1", "send_email", json!({"to": "bob@example.com"}));
    let model = MockCompletionModel::from_turns([
        email(),
        email(),
        MockTurn::text("Bob has been told."),
        MockTurn::tool_call("call-2", "delete_repo", json!({"name": "billing"})),
        MockTurn::text("I cannot delete it; I will archive it."),
    ]);
    let agent = AgentBuilder::new(model.clone())
        .tool(send.clone())
        .tool(DeleteRepo)
        .build();

    println!("== the agent emails Bob ==");
    let error = match agent
        .prompt("Tell Bob")
        .add_hook(hook.clone())
        .max_turns(3)
        .await
    {
        Ok(response) => return Err(format!("expected a stop, got {:?}", response.output()).into()),
        Err(error) => error,
    };
    println!("the run stopped: {error}");
    let id = pending_request(&error).ok_or("the stop names no request")?;
    println!("emails sent: {}", send.0.load(Ordering::SeqCst));

    gate.desk()
        .approve(id, &Approver::new("ann@example.com"))
        .await?;
    println!("ann approves request {id}");

    println!("\n== prompted again, the identical call goes through ==");
    let response = agent
        .prompt("Tell Bob")
        .add_hook(hook.clone())
        .max_turns(3)
        .await?;
    println!("the run is done: {:?}", response.output());
    println!("emails sent: {}", send.0.load(Ordering::SeqCst));

    println!("\n== a call the policy denies ==");
    let response = agent
        .prompt("Delete the billing repo")
        .add_hook(hook)
        .max_turns(3)
        .await?;
    println!("the run is done: {:?}", response.output());
    let seen = serde_json::to_string(&model.requests().last())?;
    println!(
        "the model was told why: {}",
        seen.contains("deleting repositories is not allowed")
    );
    Ok(())
}
