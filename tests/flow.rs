//! The whole flow through the public API, in memory, with time moved by hand.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use approval_gate::{
    Approver, Clock, DeskError, Execution, Gate, GateOutcome, Gated, Key, Keyring, ManualClock,
    MemorySink, Policy, RequestId, RequestState, StopReason, ToolCall, ToolExecutor,
    outcome::MismatchField,
    token::{Expectations, UnverifiedToken},
};
use serde_json::{Value, json};

/// The seed config of the design, verbatim.
const SEED: &str = "\
approvals:
  required_for:
    - email.send
    - ticket.close_bulk
    - db.write
  ttl_seconds: 300
  fallback_when_not_approved: stop
";

struct World {
    gate: Gate,
    clock: ManualClock,
    audit: MemorySink,
    runs: Arc<AtomicUsize>,
    seen: Arc<std::sync::Mutex<Vec<Execution>>>,
}

impl World {
    fn new(yaml: &str) -> Self {
        let clock = ManualClock::default();
        let audit = MemorySink::new();
        let keys = Keyring::new(Key::new("k1", [7u8; 32]).unwrap());
        let gate = Gate::builder(Policy::from_yaml_str(yaml).unwrap(), keys)
            .clock(clock.clone())
            .audit(audit.clone())
            .build();
        World {
            gate,
            clock,
            audit,
            runs: Arc::new(AtomicUsize::new(0)),
            seen: Arc::default(),
        }
    }

    fn seed() -> Self {
        Self::new(SEED)
    }

    /// A tool that counts its runs, remembers what it was handed, yields once (so racing
    /// resumes interleave), and succeeds.
    fn tool(&self) -> Gated<impl ToolExecutor<Output = Value, Error = std::io::Error> + use<>> {
        let runs = self.runs.clone();
        let seen = self.seen.clone();
        self.gate.wrap(move |exec: Execution| {
            let runs = runs.clone();
            let seen = seen.clone();
            async move {
                runs.fetch_add(1, Ordering::SeqCst);
                tokio::task::yield_now().await;
                let out = json!({"ran": exec.tool(), "args": exec.args().clone()});
                seen.lock().unwrap().push(exec);
                Ok::<Value, std::io::Error>(out)
            }
        })
    }

    fn runs(&self) -> usize {
        self.runs.load(Ordering::SeqCst)
    }

    fn events(&self) -> Vec<&'static str> {
        self.audit.event_names()
    }
}

fn email(call_id: &str) -> ToolCall {
    ToolCall::new(
        "run-1",
        call_id,
        "email.send",
        json!({"to": "bob@example.com", "subject": "Your refund", "body": "Done."}),
    )
    .with_requester("agent-user")
}

async fn file<E: ToolExecutor>(tool: &Gated<E>, call: ToolCall) -> RequestId {
    match tool.call(call).await.unwrap() {
        GateOutcome::Pending(p) => p.request_id,
        other => panic!("expected pending, got {}", other.name()),
    }
}

/// Files the email call and approves it as `ann`.
async fn approved<E: ToolExecutor>(w: &World, tool: &Gated<E>) -> RequestId {
    let id = file(tool, email("c1")).await;
    w.gate
        .desk()
        .approve(id, &Approver::new("ann"))
        .await
        .unwrap();
    id
}

fn stop_reason<T, E>(outcome: GateOutcome<T, E>) -> StopReason {
    match outcome {
        GateOutcome::Stopped(stop) => stop.reason,
        other => panic!("expected stopped, got {}", other.name()),
    }
}

#[tokio::test]
async fn seed_granted_step_by_step() {
    let w = World::seed();
    let tool = w.tool();

    // 1. The agent asks; the policy wants a person; nothing runs.
    let outcome = tool.call(email("c1")).await.unwrap();
    let pending = outcome
        .pending()
        .expect("email.send needs approval")
        .clone();
    assert_eq!(pending.expires_at, w.clock.now() + Duration::from_secs(300));
    assert!(pending.created);
    assert_eq!(w.runs(), 0);
    assert_eq!(w.events(), ["approval_required"]);

    // 2. A person sees it on the desk and approves.
    let desk = w.gate.desk();
    let listed = desk.pending().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id(), pending.request_id);
    assert_eq!(listed[0].call().tool(), "email.send");
    w.clock.advance(Duration::from_secs(60));
    let approved = desk
        .approve(pending.request_id, &Approver::new("ann"))
        .await
        .unwrap();
    assert_eq!(approved.stored_state(), RequestState::Approved);
    assert!(desk.pending().await.unwrap().is_empty());

    // 3. The runtime resumes; the tool runs once with the approved call.
    let outcome = tool.resume(pending.request_id, email("c1")).await.unwrap();
    let GateOutcome::Executed(done) = outcome else {
        panic!("expected executed")
    };
    assert_eq!(done.result.unwrap()["ran"], "email.send");
    assert_eq!(done.request_id, Some(pending.request_id));
    assert!(done.unrecorded.is_none());
    assert_eq!(w.runs(), 1);

    let exec = w.seen.lock().unwrap().pop().unwrap();
    assert_eq!(exec.idempotency_key(), Some(pending.request_id));
    let approval = exec.approval().expect("approved call carries its approval");
    assert_eq!(approval.approvers(), ["ann"]);

    assert_eq!(
        desk.show(pending.request_id).await.unwrap().stored_state(),
        RequestState::Executed
    );
    assert_eq!(
        w.events(),
        [
            "approval_required",
            "approval_granted",
            "execution_started",
            "executed"
        ]
    );
    let granted = &w.audit.records()[1];
    assert_eq!(granted.request_id, Some(pending.request_id));
    assert_eq!(granted.args_hash, Some(email("c1").args_hash().unwrap()));
}

#[tokio::test]
async fn seed_timeout_step_by_step() {
    let w = World::seed();
    let tool = w.tool();
    let id = file(&tool, email("c1")).await;

    // One second before the TTL it is still pending, and resume does not block.
    w.clock.advance(Duration::from_secs(299));
    assert!(
        tool.resume(id, email("c1"))
            .await
            .unwrap()
            .pending()
            .is_some()
    );

    // At the TTL nobody has decided: resume stops, though nothing swept the request.
    w.clock.advance(Duration::from_secs(1));
    let reason = stop_reason(tool.resume(id, email("c1")).await.unwrap());
    assert!(
        matches!(reason, StopReason::ApprovalTimeout { expired_at } if expired_at == w.clock.now())
    );
    assert_eq!(w.runs(), 0);
    assert_eq!(
        w.events(),
        ["approval_required", "approval_timeout", "stopped"]
    );
    assert_eq!(
        w.gate.desk().show(id).await.unwrap().stored_state(),
        RequestState::Expired
    );
}

#[tokio::test]
async fn seed_policy_deny_step_by_step() {
    let w = World::seed();
    let tool = w.tool();
    // No rule names `db.drop`: the seed config denies it (fail closed).
    let call = ToolCall::new("run-1", "c1", "db.drop", json!({"table": "users"}));
    let outcome = tool.call(call).await.unwrap();
    let GateOutcome::Stopped(stop) = outcome else {
        panic!("expected stopped")
    };
    assert!(
        matches!(stop.reason, StopReason::PolicyDenied { ref rule_ids, .. } if rule_ids.is_empty())
    );
    assert!(stop.ends_run(), "fallback_when_not_approved: stop");
    assert!(stop.request_id.is_none());
    assert_eq!(w.runs(), 0);
    assert_eq!(w.events(), ["policy_denied"]);
    assert!(w.gate.desk().pending().await.unwrap().is_empty());
}

#[tokio::test]
async fn every_listed_seed_tool_needs_approval() {
    let w = World::seed();
    let tool = w.tool();
    for (i, name) in ["email.send", "ticket.close_bulk", "db.write"]
        .iter()
        .enumerate()
    {
        let call = ToolCall::new("run-1", format!("c{i}"), *name, json!({}));
        assert!(tool.call(call).await.unwrap().pending().is_some(), "{name}");
    }
    assert_eq!(w.gate.desk().pending().await.unwrap().len(), 3);
    assert_eq!(w.runs(), 0);
}

#[tokio::test]
async fn cancel_stops_the_call() {
    let w = World::seed();
    let tool = w.tool();
    let id = file(&tool, email("c1")).await;
    let cancelled = w
        .gate
        .desk()
        .cancel(id, &Approver::new("ops"), Some("customer withdrew"))
        .await
        .unwrap();
    assert_eq!(cancelled.stored_state(), RequestState::Cancelled);
    let reason = stop_reason(tool.resume(id, email("c1")).await.unwrap());
    assert!(
        matches!(reason, StopReason::ApprovalCancelled { ref by, ref reason } if by == "ops" && reason.as_deref() == Some("customer withdrew"))
    );
    assert_eq!(w.runs(), 0);
    assert_eq!(
        w.events(),
        ["approval_required", "approval_cancelled", "stopped"]
    );
}

#[tokio::test]
async fn resume_with_other_args_or_ids_is_a_mismatch_and_runs_nothing() {
    let w = World::seed();
    let tool = w.tool();
    let id = approved(&w, &tool).await;

    let other_args = email("c1").with_args(json!({"to": "mallory@example.com"}));
    let cases = [
        (other_args, MismatchField::Args),
        (email("c2"), MismatchField::CallId),
        (
            ToolCall::new("run-2", "c1", "email.send", email("c1").args().clone()),
            MismatchField::RunId,
        ),
        (
            ToolCall::new("run-1", "c1", "db.write", email("c1").args().clone()),
            MismatchField::Tool,
        ),
    ];
    for (call, want) in cases {
        let reason = stop_reason(tool.resume(id, call).await.unwrap());
        assert!(
            matches!(reason, StopReason::ArgsMismatch { field } if field == want),
            "{want:?}"
        );
    }
    assert_eq!(w.runs(), 0);

    // The approval is intact: the approved call still runs.
    assert!(
        tool.resume(id, email("c1"))
            .await
            .unwrap()
            .executed()
            .is_some()
    );
    assert_eq!(w.runs(), 1);
}

#[tokio::test]
async fn same_args_in_another_key_order_are_the_same_call() {
    let w = World::seed();
    let tool = w.tool();
    let id = approved(&w, &tool).await;
    let reordered = email("c1").with_args(
        serde_json::from_str(r#"{"body":"Done.","subject":"Your refund","to":"bob@example.com"}"#)
            .unwrap(),
    );
    assert!(
        tool.resume(id, reordered)
            .await
            .unwrap()
            .executed()
            .is_some()
    );
}

#[tokio::test]
async fn a_second_resume_never_executes_twice() {
    let w = World::seed();
    let tool = w.tool();
    let id = approved(&w, &tool).await;

    assert!(
        tool.resume(id, email("c1"))
            .await
            .unwrap()
            .executed()
            .is_some()
    );
    let reason = stop_reason(tool.resume(id, email("c1")).await.unwrap());
    assert!(matches!(
        reason,
        StopReason::ApprovalUsed {
            state: RequestState::Executed
        }
    ));
    assert_eq!(w.runs(), 1);
}

#[tokio::test]
async fn racing_resumes_run_the_tool_once() {
    let w = World::seed();
    let tool = w.tool();
    let id = approved(&w, &tool).await;

    // The tool yields while running, so the second resume meets the claimed request.
    let (a, b) = tokio::join!(tool.resume(id, email("c1")), tool.resume(id, email("c1")));
    let outcomes = [a.unwrap(), b.unwrap()];
    let executed = outcomes.iter().filter(|o| o.executed().is_some()).count();
    assert_eq!(executed, 1);
    assert_eq!(w.runs(), 1);
    let loser = outcomes.iter().find_map(|o| o.stopped()).unwrap();
    assert!(matches!(
        loser.reason,
        StopReason::ApprovalUsed {
            state: RequestState::Executing
        }
    ));
}

#[tokio::test]
async fn a_decision_after_the_ttl_is_refused_and_changes_nothing_else() {
    let w = World::seed();
    let tool = w.tool();
    let id = file(&tool, email("c1")).await;
    w.clock.advance(Duration::from_secs(300));
    let desk = w.gate.desk();

    let err = desk.approve(id, &Approver::new("ann")).await.unwrap_err();
    assert!(matches!(err, DeskError::Expired { expired_at, .. } if expired_at == w.clock.now()));
    // Refused the same way once the timeout is on record.
    let err = desk
        .deny(id, &Approver::new("ann"), None)
        .await
        .unwrap_err();
    assert!(matches!(err, DeskError::Expired { expired_at, .. } if expired_at == w.clock.now()));

    assert_eq!(
        desk.show(id).await.unwrap().stored_state(),
        RequestState::Expired
    );
    assert!(
        tool.resume(id, email("c1"))
            .await
            .unwrap()
            .stopped()
            .is_some()
    );
    assert_eq!(w.runs(), 0);
    assert!(!w.events().contains(&"approval_granted"));
}

#[tokio::test]
async fn an_approval_not_used_within_its_ttl_times_out() {
    let w = World::new(
        "approvals:\n  required_for: [email.send]\n  ttl_seconds: 300\n  approval_ttl_seconds: 60\n",
    );
    let tool = w.tool();
    let id = approved(&w, &tool).await;
    w.clock.advance(Duration::from_secs(60));
    let reason = stop_reason(tool.resume(id, email("c1")).await.unwrap());
    assert!(matches!(reason, StopReason::ApprovalTimeout { .. }));
    assert_eq!(w.runs(), 0);
}

#[tokio::test]
async fn a_policy_changed_between_approval_and_resume_is_obeyed() {
    let w = World::seed();
    let tool = w.tool();
    let id = approved(&w, &tool).await;

    w.gate.set_policy(
        Policy::from_yaml_str(
            "rules:\n  - id: no-email\n    tools: [email.send]\n    effect: deny\n    reason: email is frozen\n",
        )
        .unwrap(),
    );
    let reason = stop_reason(tool.resume(id, email("c1")).await.unwrap());
    assert!(
        matches!(reason, StopReason::PolicyDenied { ref rule_ids, ref reason }
        if rule_ids == &["no-email"] && reason.as_deref() == Some("email is frozen"))
    );
    assert_eq!(w.runs(), 0);
}

#[tokio::test]
async fn a_denial_carries_the_feedback_to_the_agent() {
    let w = World::seed();
    let tool = w.tool();
    let id = file(&tool, email("c1")).await;
    w.gate
        .desk()
        .deny(id, &Approver::new("ann"), Some("use the refund template"))
        .await
        .unwrap();
    let outcome = tool.resume(id, email("c1")).await.unwrap();
    let stop = outcome.stopped().unwrap();
    assert!(
        matches!(&stop.reason, StopReason::ApprovalDenied { approver, feedback }
        if approver == "ann" && feedback.as_deref() == Some("use the refund template"))
    );
    assert!(stop.message().contains("use the refund template"));
    assert_eq!(w.runs(), 0);
}

#[tokio::test]
async fn racing_decisions_leave_one_winner() {
    let w = World::seed();
    let tool = w.tool();
    let id = file(&tool, email("c1")).await;
    let desk = w.gate.desk();
    let (ann, bob) = (Approver::new("ann"), Approver::new("bob"));
    let (a, b) = tokio::join!(desk.approve(id, &ann), desk.deny(id, &bob, Some("no")));
    assert!(a.is_ok() != b.is_ok(), "exactly one decision wins");
    let loser = a.err().or(b.err()).unwrap();
    assert!(matches!(loser, DeskError::AlreadyDecided { .. }));
    let decisions = w
        .events()
        .iter()
        .filter(|e| **e == "approval_granted" || **e == "approval_denied")
        .count();
    assert_eq!(decisions, 1);
}

#[tokio::test]
async fn an_identical_pending_call_is_not_filed_twice() {
    let w = World::seed();
    let tool = w.tool();
    let first = tool
        .call(email("c1"))
        .await
        .unwrap()
        .pending()
        .unwrap()
        .clone();
    let again = tool
        .call(email("c2"))
        .await
        .unwrap()
        .pending()
        .unwrap()
        .clone();
    assert_eq!(again.request_id, first.request_id);
    assert!(!again.created);
    assert_eq!(again.call_id, "c1", "resume with the first call's id");
    assert_eq!(w.gate.desk().pending().await.unwrap().len(), 1);
    assert_eq!(w.events(), ["approval_required", "approval_merged"]);

    // Once it is no longer pending, the same call files a new request.
    w.gate
        .desk()
        .deny(first.request_id, &Approver::new("ann"), None)
        .await
        .unwrap();
    let third = tool
        .call(email("c3"))
        .await
        .unwrap()
        .pending()
        .unwrap()
        .clone();
    assert_ne!(third.request_id, first.request_id);
}

#[tokio::test]
async fn calls_of_one_turn_are_decided_one_by_one() {
    let w = World::seed();
    let tool = w.tool();
    let close = ToolCall::new(
        "run-1",
        "c2",
        "ticket.close_bulk",
        json!({"ids": [1, 2, 3]}),
    );
    let email_id = file(&tool, email("c1")).await;
    let close_id = file(&tool, close.clone()).await;
    let desk = w.gate.desk();
    desk.deny(close_id, &Approver::new("ann"), Some("not all of them"))
        .await
        .unwrap();
    desk.approve(email_id, &Approver::new("ann")).await.unwrap();

    assert!(
        tool.resume(email_id, email("c1"))
            .await
            .unwrap()
            .executed()
            .is_some()
    );
    assert!(
        tool.resume(close_id, close)
            .await
            .unwrap()
            .stopped()
            .is_some()
    );
    assert_eq!(w.runs(), 1);
}

#[tokio::test]
async fn allowed_calls_run_at_once_and_failures_are_recorded() {
    let w = World::new("rules:\n  - id: reads\n    tools: [\"*.read\"]\n    effect: allow\n");
    let ok = w.tool();
    let outcome = ok
        .call(ToolCall::new("run-1", "c1", "crm.read", json!({"id": 7})))
        .await
        .unwrap();
    let done = outcome.executed().expect("allowed");
    assert!(done.result.is_ok());
    assert!(done.request_id.is_none());
    assert_eq!(w.events(), ["allow", "executed"]);

    let failing = w.gate.wrap(|_exec: Execution| async move {
        Err::<Value, _>(std::io::Error::other("crm is down"))
    });
    let outcome = failing
        .call(ToolCall::new("run-1", "c2", "crm.read", json!({})))
        .await
        .unwrap();
    assert!(outcome.executed().unwrap().result.is_err());
    assert_eq!(
        w.events(),
        ["allow", "executed", "allow", "execution_failed"]
    );
}

#[tokio::test]
async fn a_separate_tool_service_can_verify_the_token() {
    let w = World::seed();
    let tool = w.tool();
    let id = approved(&w, &tool).await;
    tool.resume(id, email("c1")).await.unwrap();
    let exec = w.seen.lock().unwrap().pop().unwrap();
    let token = exec.approval().unwrap().token().as_str().to_owned();

    // The tool service holds the shared key and checks the token against what it is
    // about to do.
    let keys = Keyring::new(Key::new("k1", [7u8; 32]).unwrap());
    let hash = email("c1").args_hash().unwrap();
    let expected = Expectations::new("email.send", &hash, "run-1");
    let verified = UnverifiedToken::parse(&token)
        .unwrap()
        .verify(&keys, &expected, w.clock.now())
        .unwrap();
    assert_eq!(verified.approvers(), ["ann"]);

    let other = ToolCall::new(
        "run-1",
        "c1",
        "email.send",
        json!({"to": "eve@example.com"}),
    )
    .args_hash()
    .unwrap();
    let wrong = Expectations::new("email.send", &other, "run-1");
    assert!(
        UnverifiedToken::parse(&token)
            .unwrap()
            .verify(&keys, &wrong, w.clock.now())
            .is_err()
    );
}

#[tokio::test]
async fn sweeping_records_timeouts_and_empties_the_queue() {
    let w = World::seed();
    let tool = w.tool();
    file(&tool, email("c1")).await;
    file(&tool, ToolCall::new("run-2", "c1", "db.write", json!({}))).await;
    w.clock.advance(Duration::from_secs(299));
    assert!(w.gate.sweep_expired(100).await.unwrap().is_empty());
    w.clock.advance(Duration::from_secs(1));
    assert!(
        w.gate.desk().pending().await.unwrap().is_empty(),
        "expiry applies on read"
    );
    assert_eq!(w.gate.sweep_expired(100).await.unwrap().len(), 2);
    assert!(w.gate.sweep_expired(100).await.unwrap().is_empty());
    assert_eq!(
        w.events()
            .iter()
            .filter(|e| **e == "approval_timeout")
            .count(),
        2
    );
}

#[tokio::test]
async fn resume_of_an_unknown_request_stops() {
    let w = World::seed();
    let tool = w.tool();
    let reason = stop_reason(tool.resume(RequestId::new(), email("c1")).await.unwrap());
    assert!(matches!(reason, StopReason::UnknownRequest { .. }));
    assert_eq!(w.runs(), 0);
}

#[tokio::test]
async fn fallback_continue_lets_the_host_hand_the_refusal_to_the_model() {
    let w = World::new(
        "approvals:\n  required_for: [email.send]\n  fallback_when_not_approved: continue\n",
    );
    let tool = w.tool();
    let outcome = tool
        .call(ToolCall::new(
            "run-1",
            "c1",
            "shell.exec",
            json!({"cmd": "rm -rf /"}),
        ))
        .await
        .unwrap();
    let stop = outcome.stopped().expect("no rule names shell.exec");
    assert!(!stop.ends_run());
    assert!(
        stop.message().contains("no rule allows `shell.exec`"),
        "{}",
        stop.message()
    );
}
