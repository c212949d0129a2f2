//! `GatedDriver` as a host meets it: rig's scripted completion model, a counted tool
//! behind the gate, and a person deciding at the desk in between.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use approval_gate::{
    Approver, Execution, Gate, Gated, ManualClock, MemoryStore, Policy, SqliteStore, ToolExecutor,
};
use approval_gate_rig::rig_agent::AgentRun;
use approval_gate_rig::rig_agent::run::PromptError;
use approval_gate_rig::rig_core::completion::ToolDefinition;
use approval_gate_rig::rig_core::message::{AssistantContent, ToolCall, ToolFunction, ToolName};
use approval_gate_rig::rig_core::test_utils::{MockCompletionModel, MockTurn};
use approval_gate_rig::{DriveError, DriveOutcome, GatedDriver, PendingRun};
use common::{POLICY, flaky_sink, keys, memory_gate, seen, stopping_policy};
use serde_json::{Value, json};

/// The tools, behind the gate: each run is counted, per tool.
#[derive(Clone, Default)]
struct Tools {
    sent: Arc<AtomicUsize>,
    read: Arc<AtomicUsize>,
    other: Arc<AtomicUsize>,
}

impl Tools {
    fn executor(&self) -> impl ToolExecutor<Output = Value, Error = std::io::Error> + use<> {
        let tools = self.clone();
        move |exec: Execution| {
            let tools = tools.clone();
            async move {
                match exec.tool() {
                    "send_email" => {
                        tools.sent.fetch_add(1, Ordering::SeqCst);
                        Ok(json!({"sent_to": exec.args()["to"]}))
                    }
                    "read_inbox" => {
                        tools.read.fetch_add(1, Ordering::SeqCst);
                        Ok(json!("2 unread"))
                    }
                    _ => {
                        tools.other.fetch_add(1, Ordering::SeqCst);
                        Ok(json!("done"))
                    }
                }
            }
        }
    }

    fn runs(&self) -> usize {
        self.sent.load(Ordering::SeqCst)
            + self.read.load(Ordering::SeqCst)
            + self.other.load(Ordering::SeqCst)
    }
}

fn tool(name: &str) -> ToolDefinition {
    ToolDefinition::new(
        ToolName::new(name).expect("a tool name"),
        format!("the test's {name}"),
        json!({"type": "object"}),
    )
}

fn driver<E>(model: &MockCompletionModel, gated: Gated<E>) -> GatedDriver<E>
where
    E: ToolExecutor,
    E::Output: serde::Serialize,
{
    [
        "send_email",
        "read_inbox",
        "delete_repo",
        "refund",
        "wipe_disk",
    ]
    .into_iter()
    .fold(GatedDriver::new(model.clone(), gated), |driver, name| {
        driver.tool(tool(name))
    })
    .with_requester("agent-alice")
}

/// One tool call of a model turn.
fn tool_call(id: &str, name: &str, args: Value) -> AssistantContent {
    AssistantContent::ToolCall(ToolCall::from_wire(
        id,
        ToolFunction::new(ToolName::new(name).expect("a tool name"), args),
    ))
}

fn email() -> MockTurn {
    MockTurn::tool_call("call-1", "send_email", json!({"to": "bob@example.com"}))
}

fn run() -> AgentRun {
    AgentRun::new("Email Bob the refund news").max_turns(4)
}

fn pending(outcome: DriveOutcome) -> PendingRun {
    match outcome {
        DriveOutcome::Pending(pending) => pending,
        other => panic!("expected a pending run, got {}", other.name()),
    }
}

fn done(outcome: DriveOutcome) -> String {
    match outcome {
        DriveOutcome::Done(response) => response.output(),
        other => panic!("expected a finished run, got {}", other.name()),
    }
}

fn ann() -> Approver {
    Approver::new("ann@example.com")
}

#[tokio::test]
async fn the_tool_waits_for_approval_then_runs_exactly_once() {
    let clock = ManualClock::default();
    let gate = memory_gate(&clock);
    let tools = Tools::default();
    let model = MockCompletionModel::from_turns([
        email(),
        MockTurn::text("Sent."),
        MockTurn::text("Still sent."),
    ]);
    let driver = driver(&model, gate.wrap(tools.executor()));

    let waiting = pending(driver.run("run-1", run()).await.unwrap());
    assert_eq!(waiting.tool(), "send_email");
    assert_eq!(waiting.call_id(), "call-1");
    assert_eq!(tools.runs(), 0, "nothing runs before approval");

    // Resumed before anyone decided: still pending, and still nothing ran.
    let waiting = pending(driver.resume(waiting).await.unwrap());
    assert_eq!(tools.runs(), 0);
    assert_eq!(model.request_count(), 1);

    gate.desk()
        .approve(waiting.request_id(), &ann())
        .await
        .unwrap();
    let copy = waiting.clone();
    assert_eq!(done(driver.resume(waiting).await.unwrap()), "Sent.");
    assert_eq!(tools.sent.load(Ordering::SeqCst), 1);
    assert!(
        seen(&model)[1].contains("sent_to"),
        "the model saw the tool's output"
    );

    // The same pending run resumed again: the approval is used, the tool does not run.
    assert_eq!(done(driver.resume(copy).await.unwrap()), "Still sent.");
    assert_eq!(
        tools.sent.load(Ordering::SeqCst),
        1,
        "a second resume runs nothing"
    );
    assert!(seen(&model)[2].contains("this approval was used already"));
}

#[tokio::test]
async fn the_model_sees_a_denials_feedback() {
    let clock = ManualClock::default();
    let gate = memory_gate(&clock);
    let tools = Tools::default();
    let model = MockCompletionModel::from_turns([email(), MockTurn::text("I will not send it.")]);
    let driver = driver(&model, gate.wrap(tools.executor()));

    let waiting = pending(driver.run("run-1", run()).await.unwrap());
    gate.desk()
        .deny(
            waiting.request_id(),
            &ann(),
            Some("use the refund template, not free text"),
        )
        .await
        .unwrap();
    assert_eq!(
        done(driver.resume(waiting).await.unwrap()),
        "I will not send it."
    );
    assert_eq!(tools.runs(), 0);
    let second = &seen(&model)[1];
    assert!(
        second.contains("use the refund template, not free text"),
        "{second}"
    );
    assert!(
        second.contains("ann@example.com denied this call"),
        "{second}"
    );
}

/// The model calls `tool` with `args` and then answers: the run ends with the answer,
/// nothing ran, and the model was told `told` as the tool's result.
async fn denied_and_told(tool: &str, args: Value, told: &str) {
    let clock = ManualClock::default();
    let gate = memory_gate(&clock);
    let tools = Tools::default();
    let model = MockCompletionModel::from_turns([
        MockTurn::tool_call("call-1", tool, args),
        MockTurn::text("Could not."),
    ]);
    let driver = driver(&model, gate.wrap(tools.executor()));

    assert_eq!(
        done(driver.run("run-1", run()).await.unwrap()),
        "Could not."
    );
    assert_eq!(tools.runs(), 0, "`{tool}` ran");
    let second = &seen(&model)[1];
    assert!(second.contains(told), "{second}");
}

#[tokio::test]
async fn a_deny_by_policy_reaches_the_model_as_the_tool_result() {
    denied_and_told(
        "delete_repo",
        json!({"name": "billing"}),
        "deleting repositories is not allowed, archive it instead",
    )
    .await;
}

#[tokio::test]
async fn a_tool_no_rule_names_is_denied() {
    // Fail closed: the policy's default.
    denied_and_told("wipe_disk", json!({}), "the policy denies this call").await;
}

#[tokio::test]
async fn a_condition_that_cannot_be_evaluated_denies() {
    // `amount < 100` on a string: the policy cannot decide, so it denies.
    denied_and_told(
        "refund",
        json!({"amount": "lots"}),
        "the policy denies this call",
    )
    .await;
}

#[tokio::test]
async fn a_tool_the_driver_did_not_advertise_fails_the_run() {
    let clock = ManualClock::default();
    let gate = memory_gate(&clock);
    let tools = Tools::default();
    let model =
        MockCompletionModel::from_turns([MockTurn::tool_call("call-1", "format_disk", json!({}))]);
    let driver = driver(&model, gate.wrap(tools.executor()));

    let error = driver.run("run-1", run()).await.unwrap_err();
    let DriveError::Run(error) = error else {
        panic!("expected the run to fail, got {error:?}");
    };
    assert!(
        matches!(*error, PromptError::UnknownToolCall { ref tool_name, .. } if tool_name == "format_disk"),
        "{error:?}"
    );
    assert_eq!(tools.runs(), 0);
}

#[tokio::test]
async fn an_approval_timeout_reaches_the_model() {
    let clock = ManualClock::default();
    let gate = memory_gate(&clock);
    let tools = Tools::default();
    let model = MockCompletionModel::from_turns([email(), MockTurn::text("Nobody answered.")]);
    let driver = driver(&model, gate.wrap(tools.executor()));

    let waiting = pending(driver.run("run-1", run()).await.unwrap());
    clock.advance(Duration::from_secs(299));
    let waiting = pending(driver.resume(waiting).await.unwrap());
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        done(driver.resume(waiting).await.unwrap()),
        "Nobody answered."
    );
    assert_eq!(tools.runs(), 0);
    assert!(seen(&model)[1].contains("nobody approved this call in time"));
}

#[tokio::test]
async fn a_turns_earlier_calls_do_not_run_again_on_resume() {
    let clock = ManualClock::default();
    let gate = memory_gate(&clock);
    let tools = Tools::default();
    let model = MockCompletionModel::from_turns([
        MockTurn::from_contents([
            tool_call("call-1", "read_inbox", json!({})),
            tool_call("call-2", "send_email", json!({"to": "bob@example.com"})),
        ]),
        MockTurn::text("Read and sent."),
    ]);
    let driver = driver(&model, gate.wrap(tools.executor()));

    let waiting = pending(driver.run("run-1", run()).await.unwrap());
    assert_eq!(tools.read.load(Ordering::SeqCst), 1, "the allowed read ran");
    assert_eq!(tools.sent.load(Ordering::SeqCst), 0);

    gate.desk()
        .approve(waiting.request_id(), &ann())
        .await
        .unwrap();
    assert_eq!(
        done(driver.resume(waiting).await.unwrap()),
        "Read and sent."
    );
    assert_eq!(
        tools.read.load(Ordering::SeqCst),
        1,
        "the read did not run again"
    );
    assert_eq!(tools.sent.load(Ordering::SeqCst), 1);
    let second = &seen(&model)[1];
    assert!(second.contains("2 unread") && second.contains("sent_to"));
}

#[tokio::test]
async fn a_refusal_under_fallback_stop_ends_the_run() {
    let clock = ManualClock::default();
    let gate = Gate::builder(Policy::from_yaml_str(&stopping_policy()).unwrap(), keys())
        .store(MemoryStore::new())
        .clock(clock.clone())
        .build();
    let tools = Tools::default();
    let model = MockCompletionModel::from_turns([MockTurn::tool_call(
        "call-1",
        "delete_repo",
        json!({"name": "billing"}),
    )]);
    let driver = driver(&model, gate.wrap(tools.executor()));

    match driver.run("run-1", run()).await.unwrap() {
        DriveOutcome::Stopped(stopped) => {
            assert_eq!(stopped.tool, "delete_repo");
            assert_eq!(stopped.stop.reason.name(), "policy_denied");
        }
        other => panic!("expected a stopped run, got {}", other.name()),
    }
    assert_eq!(tools.runs(), 0);
    assert_eq!(model.request_count(), 1, "the model is not asked again");
}

#[tokio::test]
async fn a_failing_audit_sink_never_lets_the_tool_run() {
    let clock = ManualClock::default();
    let failing = Arc::new(AtomicBool::new(false));
    let gate = Gate::builder(Policy::from_yaml_str(POLICY).unwrap(), keys())
        .store(MemoryStore::new())
        .audit(flaky_sink(failing.clone()))
        .clock(clock.clone())
        .build();
    let tools = Tools::default();
    let model = MockCompletionModel::from_turns([
        email(),
        MockTurn::tool_call("call-2", "read_inbox", json!({})),
    ]);
    let driver = driver(&model, gate.wrap(tools.executor()));

    let waiting = pending(driver.run("run-1", run()).await.unwrap());
    gate.desk()
        .approve(waiting.request_id(), &ann())
        .await
        .unwrap();
    failing.store(true, Ordering::SeqCst);
    let error = driver.resume(waiting.clone()).await.unwrap_err();
    assert!(matches!(error, DriveError::Gate(_)), "{error:?}");
    assert_eq!(
        tools.runs(),
        0,
        "an approved call does not run when the sink fails"
    );

    // Nor does an allowed one.
    let error = driver.run("run-2", run()).await.unwrap_err();
    assert!(matches!(error, DriveError::Gate(_)), "{error:?}");
    assert_eq!(tools.runs(), 0);
}

#[tokio::test]
async fn a_failing_store_never_lets_the_tool_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gate.db");
    let path = path.to_str().unwrap();
    let store = SqliteStore::connect(path).await.unwrap();
    store.migrate().await.unwrap();
    let clock = ManualClock::default();
    let gate = Gate::builder(Policy::from_yaml_str(POLICY).unwrap(), keys())
        .store(store)
        .clock(clock.clone())
        .build();
    let tools = Tools::default();
    let model = MockCompletionModel::from_turns([email()]);
    let driver = driver(&model, gate.wrap(tools.executor()));

    let waiting = pending(driver.run("run-1", run()).await.unwrap());
    gate.desk()
        .approve(waiting.request_id(), &ann())
        .await
        .unwrap();
    // The store breaks under the gate: its requests are gone.
    let conn = approval_gate::rusqlite::Connection::open(path).unwrap();
    conn.execute_batch("DROP TABLE approval_requests").unwrap();

    let error = driver.resume(waiting).await.unwrap_err();
    assert!(matches!(error, DriveError::Gate(_)), "{error:?}");
    assert_eq!(tools.runs(), 0);
}

#[tokio::test]
async fn a_run_saved_as_json_resumes_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gate.db");
    let path = path.to_str().unwrap().to_owned();
    let tools = Tools::default();
    let clock = ManualClock::default();

    // Process one: the agent runs until the call waits; the run is saved as JSON.
    let (saved, id) = {
        let store = SqliteStore::connect(&path).await.unwrap();
        store.migrate().await.unwrap();
        let gate = Gate::builder(Policy::from_yaml_str(POLICY).unwrap(), keys())
            .store(store)
            .clock(clock.clone())
            .build();
        let model = MockCompletionModel::from_turns([email()]);
        let driver = driver(&model, gate.wrap(tools.executor()));
        let waiting = pending(driver.run("run-1", run()).await.unwrap());
        (
            serde_json::to_string(&waiting).unwrap(),
            waiting.request_id(),
        )
    };
    assert_eq!(tools.runs(), 0);

    // A person approves, from another process on the same store.
    {
        let store = SqliteStore::connect(&path).await.unwrap();
        let gate = Gate::builder(Policy::from_yaml_str(POLICY).unwrap(), keys())
            .store(store)
            .clock(clock.clone())
            .build();
        clock.advance(Duration::from_secs(60));
        gate.desk().approve(id, &ann()).await.unwrap();
    }

    // Process two: a new gate on the same file, a new model; the run resumes from JSON.
    let store = SqliteStore::connect(&path).await.unwrap();
    let gate = Gate::builder(Policy::from_yaml_str(POLICY).unwrap(), keys())
        .store(store)
        .clock(clock.clone())
        .build();
    let model = MockCompletionModel::from_turns([MockTurn::text("Sent after the restart.")]);
    let restarted = driver(&model, gate.wrap(tools.executor()));
    let waiting: PendingRun = serde_json::from_str(&saved).unwrap();
    assert_eq!(waiting.request_id(), id);
    assert_eq!(
        done(restarted.resume(waiting).await.unwrap()),
        "Sent after the restart."
    );
    assert_eq!(tools.sent.load(Ordering::SeqCst), 1);
    let request = &seen(&model)[0];
    assert!(
        request.contains("Email Bob the refund news"),
        "the history came back"
    );
    assert!(
        request.contains("sent_to"),
        "the model saw the tool's output"
    );

    // The JSON resumed once more runs nothing.
    let model = MockCompletionModel::from_turns([MockTurn::text("Already sent.")]);
    let again: PendingRun = serde_json::from_str(&saved).unwrap();
    let once_more = driver(&model, gate.wrap(tools.executor()));
    done(once_more.resume(again).await.unwrap());
    assert_eq!(tools.sent.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_tampered_saved_run_does_not_run_other_arguments() {
    let clock = ManualClock::default();
    let gate = memory_gate(&clock);
    let tools = Tools::default();
    let model =
        MockCompletionModel::from_turns([email(), MockTurn::text("The call did not match.")]);
    let driver = driver(&model, gate.wrap(tools.executor()));

    let waiting = pending(driver.run("run-1", run()).await.unwrap());
    gate.desk()
        .approve(waiting.request_id(), &ann())
        .await
        .unwrap();
    let saved = serde_json::to_string(&waiting).unwrap();
    assert!(saved.contains("bob@example.com"));
    let tampered: PendingRun =
        serde_json::from_str(&saved.replace("bob@example.com", "eve@example.com")).unwrap();

    done(driver.resume(tampered).await.unwrap());
    assert_eq!(
        tools.runs(),
        0,
        "an approval covers the approved arguments only"
    );
    assert!(seen(&model)[1].contains("differs from the approved call"));
}

#[tokio::test]
async fn an_approvers_edit_runs_and_the_model_is_told() {
    let clock = ManualClock::default();
    let gate = memory_gate(&clock);
    let tools = Tools::default();
    let model = MockCompletionModel::from_turns([email(), MockTurn::text("Sent to Carol.")]);
    let driver = driver(&model, gate.wrap(tools.executor()));

    let waiting = pending(driver.run("run-1", run()).await.unwrap());
    gate.desk()
        .approve_with_edits(
            waiting.request_id(),
            &ann(),
            json!({"to": "carol@example.com"}),
        )
        .await
        .unwrap();
    assert_eq!(
        done(driver.resume(waiting).await.unwrap()),
        "Sent to Carol."
    );
    assert_eq!(tools.sent.load(Ordering::SeqCst), 1);
    let second = &seen(&model)[1];
    assert!(
        second.contains(r#"\"sent_to\":\"carol@example.com\""#),
        "{second}"
    );
    assert!(
        second.contains("an approver changed the arguments"),
        "{second}"
    );
}
