//! `GateHook` on rig's own agent loop: a rig `Agent` on rig's scripted completion model,
//! with counted rig tools, and the hook deciding each call.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use approval_gate::{Approver, Gate, ManualClock, MemoryStore, Policy};
use approval_gate_rig::rig_agent::{Agent, AgentBuilder};
use approval_gate_rig::rig_core::test_utils::{MockCompletionModel, MockTurn};
use approval_gate_rig::rig_core::tool::{Tool, ToolContext};
use approval_gate_rig::{GateHook, pending_request};
use common::{POLICY, flaky_sink, keys, memory_gate, seen};
use serde_json::{Value, json};

/// A rig tool that counts its runs.
macro_rules! counted_tool {
    ($ty:ident, $name:literal) => {
        #[derive(Clone, Default)]
        struct $ty(Arc<AtomicUsize>);

        impl Tool for $ty {
            const NAME: &'static str = $name;
            type Args = Value;
            type Output = String;
            type Error = std::io::Error;

            fn description(&self) -> String {
                format!("the test's {}", $name)
            }

            fn parameters(&self) -> Value {
                json!({"type": "object"})
            }

            async fn call(
                &self,
                _context: &mut ToolContext,
                _args: Value,
            ) -> Result<String, std::io::Error> {
                self.0.fetch_add(1, Ordering::SeqCst);
                Ok(format!("{} done", $name))
            }
        }
    };
}

counted_tool!(SendEmail, "send_email");
counted_tool!(DeleteRepo, "delete_repo");
counted_tool!(WipeDisk, "wipe_disk");

#[derive(Default)]
struct Tools {
    send: SendEmail,
    delete: DeleteRepo,
    wipe: WipeDisk,
}

impl Tools {
    fn agent(&self, model: &MockCompletionModel) -> Agent {
        AgentBuilder::new(model.clone())
            .tool(self.send.clone())
            .tool(self.delete.clone())
            .tool(self.wipe.clone())
            .build()
    }

    fn runs(&self) -> usize {
        self.send.0.load(Ordering::SeqCst)
            + self.delete.0.load(Ordering::SeqCst)
            + self.wipe.0.load(Ordering::SeqCst)
    }
}

fn email() -> MockTurn {
    MockTurn::tool_call("call-1", "send_email", json!({"to": "bob@example.com"}))
}

fn hook(gate: &Gate) -> GateHook {
    GateHook::new(gate.clone(), "run-1").with_requester("agent-alice")
}

#[tokio::test]
async fn approval_required_stops_the_run_with_the_request_id() {
    let clock = ManualClock::default();
    let gate = memory_gate(&clock);
    let tools = Tools::default();
    let model = MockCompletionModel::from_turns([email(), email(), MockTurn::text("Sent.")]);
    let agent = tools.agent(&model);

    let error = agent
        .prompt("Email Bob")
        .add_hook(hook(&gate))
        .max_turns(3)
        .await
        .unwrap_err();
    let id = pending_request(&error).expect("the stop names the request");
    assert_eq!(tools.runs(), 0, "nothing runs before approval");
    assert_eq!(gate.desk().pending().await.unwrap()[0].id(), id);

    // Approved: prompting again, the model's identical call proceeds, once.
    gate.desk()
        .approve(id, &Approver::new("ann@example.com"))
        .await
        .unwrap();
    let response = agent
        .prompt("Email Bob")
        .add_hook(hook(&gate))
        .max_turns(3)
        .await
        .unwrap();
    assert_eq!(response.output(), "Sent.");
    assert_eq!(tools.send.0.load(Ordering::SeqCst), 1);
    assert!(
        seen(&model)[2].contains("send_email done"),
        "rig ran its tool"
    );
}

#[tokio::test]
async fn a_deny_by_policy_reaches_the_model_as_a_message() {
    let clock = ManualClock::default();
    let gate = memory_gate(&clock);
    let tools = Tools::default();
    let model = MockCompletionModel::from_turns([
        MockTurn::tool_call("call-1", "delete_repo", json!({"name": "billing"})),
        MockTurn::text("I will archive it instead."),
    ]);
    let agent = tools.agent(&model);

    let response = agent
        .prompt("Delete the billing repo")
        .add_hook(hook(&gate))
        .max_turns(3)
        .await
        .unwrap();
    assert_eq!(response.output(), "I will archive it instead.");
    assert_eq!(tools.runs(), 0);
    assert!(seen(&model)[1].contains("deleting repositories is not allowed, archive it instead"));
}

#[tokio::test]
async fn a_tool_no_rule_names_is_denied() {
    let clock = ManualClock::default();
    let gate = memory_gate(&clock);
    let tools = Tools::default();
    let model = MockCompletionModel::from_turns([
        MockTurn::tool_call("call-1", "wipe_disk", json!({})),
        MockTurn::text("Could not."),
    ]);
    let agent = tools.agent(&model);

    agent
        .prompt("Free some space")
        .add_hook(hook(&gate))
        .max_turns(3)
        .await
        .unwrap();
    assert_eq!(tools.runs(), 0, "an unknown tool is denied (fail closed)");
    assert!(seen(&model)[1].contains("the policy denies this call"));
}

#[tokio::test]
async fn a_failing_gate_stops_the_run_and_nothing_runs() {
    let clock = ManualClock::default();
    let failing = Arc::new(AtomicBool::new(true));
    let gate = Gate::builder(Policy::from_yaml_str(POLICY).unwrap(), keys())
        .store(MemoryStore::new())
        .audit(flaky_sink(failing))
        .clock(clock.clone())
        .build();
    let tools = Tools::default();
    let model = MockCompletionModel::from_turns([email(), MockTurn::text("unreachable")]);
    let agent = tools.agent(&model);

    let error = agent
        .prompt("Email Bob")
        .add_hook(hook(&gate))
        .max_turns(3)
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("the approval gate failed"),
        "{error}"
    );
    assert_eq!(pending_request(&error), None);
    assert_eq!(tools.runs(), 0);
    assert_eq!(model.request_count(), 1);
}

/// A rig tool that keeps the arguments it ran with.
#[derive(Clone, Default)]
struct Recorder(Arc<std::sync::Mutex<Vec<Value>>>);

impl Tool for Recorder {
    const NAME: &'static str = "send_email";
    type Args = Value;
    type Output = String;
    type Error = std::io::Error;

    fn description(&self) -> String {
        "the test's send_email, recording".into()
    }

    fn parameters(&self) -> Value {
        json!({"type": "object"})
    }

    async fn call(&self, _context: &mut ToolContext, args: Value) -> Result<String, Self::Error> {
        self.0.lock().unwrap().push(args);
        Ok("sent".into())
    }
}

#[tokio::test]
async fn an_approvers_edit_patches_the_call_rig_runs() {
    let clock = ManualClock::default();
    let gate = memory_gate(&clock);
    let recorder = Recorder::default();
    let model = MockCompletionModel::from_turns([email(), email(), MockTurn::text("Sent.")]);
    let agent = AgentBuilder::new(model.clone())
        .tool(recorder.clone())
        .build();

    let error = agent
        .prompt("Email Bob")
        .add_hook(hook(&gate))
        .max_turns(3)
        .await
        .unwrap_err();
    let id = pending_request(&error).unwrap();
    gate.desk()
        .approve_with_edits(
            id,
            &Approver::new("ann@example.com"),
            json!({"to": "carol@example.com"}),
        )
        .await
        .unwrap();
    agent
        .prompt("Email Bob")
        .add_hook(hook(&gate))
        .max_turns(3)
        .await
        .unwrap();
    assert_eq!(
        *recorder.0.lock().unwrap(),
        [json!({"to": "carol@example.com"})]
    );
}
