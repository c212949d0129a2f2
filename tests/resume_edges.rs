//! `resume` at its edges, through the public API: the filed call's whole identity is
//! bound, a policy that tightened since the approval asks again, requests left in doubt
//! are settled at the desk, every call counts, and `call_or_resume` runs an approval
//! given meanwhile for the identical call, once.

use std::sync::{Arc, Mutex};

use approval_gate::{
    Approver, DeskError, Execution, Gate, GateOutcome, Gated, Key, Keyring, ManualClock,
    MemorySink, Policy, RequestId, RequestState, StopReason, ToolCall, ToolExecutor,
    desk::{Settlement, TransitionError},
    outcome::{ApprovalShortfall, MismatchField},
    trail::AuditQuery,
};
use serde_json::{Value, json};

const POLICY: &str = "\
tiers:
  refunds:
    approvers: [finance]
rules:
  - id: refunds
    tool: payments.refund
    effect: approval_required
    tier: refunds
";

struct World {
    gate: Gate,
    ran: Arc<Mutex<Vec<Execution>>>,
}

impl World {
    fn new(policy: &str) -> Self {
        let gate = Gate::builder(
            Policy::from_yaml_str(policy).unwrap(),
            Keyring::new(Key::new("k1", [8u8; 32]).unwrap()),
        )
        .audit(MemorySink::new())
        .clock(ManualClock::default())
        .build();
        World {
            gate,
            ran: Arc::default(),
        }
    }

    fn tool(&self) -> Gated<impl ToolExecutor<Output = (), Error = std::io::Error> + use<>> {
        let ran = self.ran.clone();
        self.gate.wrap(move |exec: Execution| {
            let ran = ran.clone();
            async move {
                ran.lock().unwrap().push(exec);
                Ok::<(), std::io::Error>(())
            }
        })
    }

    async fn file(&self, call: ToolCall) -> RequestId {
        match self.tool().call(call).await.unwrap() {
            GateOutcome::Pending(p) => p.request_id,
            other => panic!("expected pending, got {}", other.name()),
        }
    }

    async fn resume(&self, id: RequestId, call: ToolCall) -> GateOutcome<(), std::io::Error> {
        self.tool().resume(id, call).await.unwrap()
    }

    fn runs(&self) -> usize {
        self.ran.lock().unwrap().len()
    }

    async fn again(&self, call: ToolCall) -> GateOutcome<(), std::io::Error> {
        self.tool().call_or_resume(call).await.unwrap()
    }

    /// Each run of the tool: its idempotency key and the arguments it got.
    fn ran_with(&self) -> Vec<(Option<RequestId>, Value)> {
        self.ran
            .lock()
            .unwrap()
            .iter()
            .map(|e| (e.idempotency_key(), e.args().clone()))
            .collect()
    }
}

fn refund() -> ToolCall {
    ToolCall::new("run-t", "c1", "payments.refund", json!({"amount": 40}))
        .with_tenant("acme")
        .with_requester("bob")
}

fn finance(id: &str) -> Approver {
    Approver::new(id).with_role("finance").with_tenant("acme")
}

fn stop_reason(outcome: GateOutcome<(), std::io::Error>) -> StopReason {
    match outcome {
        GateOutcome::Stopped(stop) => stop.reason,
        other => panic!("expected a stop, got {}", other.name()),
    }
}

#[tokio::test]
async fn resume_refuses_another_tenant_or_requester_and_runs_the_filed_identity() {
    let w = World::new(POLICY);
    let id = w.file(refund()).await;
    w.gate.desk().approve(id, &finance("ann")).await.unwrap();

    for (changed, field) in [
        (refund().with_tenant("globex"), MismatchField::Tenant),
        (refund().with_requester("mallory"), MismatchField::Requester),
        (
            refund().with_tenant("globex").with_requester("mallory"),
            MismatchField::Tenant,
        ),
    ] {
        let reason = stop_reason(w.resume(id, changed).await);
        assert!(
            matches!(reason, StopReason::ArgsMismatch { field: f } if f == field),
            "{reason:?}"
        );
    }
    assert_eq!(w.runs(), 0);
    // Left as it was, and each refusal is on the record.
    let request = w.gate.desk().show(id).await.unwrap();
    assert_eq!(request.stored_state(), RequestState::Approved);
    let refusals = w
        .gate
        .store()
        .audit_records(&AuditQuery::request(id))
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.event_name() == "stopped")
        .count();
    assert_eq!(refusals, 3);

    assert!(w.resume(id, refund()).await.executed().is_some());
    let ran = &w.ran.lock().unwrap()[0];
    assert_eq!(ran.call().tenant(), Some("acme"));
    assert_eq!(ran.call().requester(), Some("bob"));
}

#[tokio::test]
async fn a_policy_that_now_needs_a_larger_quorum_asks_again() {
    let w = World::new(POLICY);
    let id = w.file(refund()).await;
    w.gate.desk().approve(id, &finance("ann")).await.unwrap();
    let stricter = POLICY.replace(
        "approvers: [finance]",
        "approvers: [finance]\n    quorum: 2",
    );
    w.gate.set_policy(Policy::from_yaml_str(&stricter).unwrap());

    let reason = stop_reason(w.resume(id, refund()).await);
    assert!(
        matches!(
            reason,
            StopReason::ApprovalInsufficient {
                shortfall: ApprovalShortfall::Quorum {
                    needed: 2,
                    approvals: 1
                }
            }
        ),
        "{reason:?}"
    );
    assert_eq!(w.runs(), 0);
    // The approval is withdrawn by the gate, on the record; a new call files a request
    // that the current policy decides (two approvers).
    let request = w.gate.desk().show(id).await.unwrap();
    assert_eq!(request.stored_state(), RequestState::Cancelled);
    assert_eq!(request.decided_by(), Some(approval_gate::desk::GATE_ACTOR));
    let again = w.file(refund()).await;
    assert_ne!(again, id);
    let desk = w.gate.desk();
    desk.approve(again, &finance("ann")).await.unwrap();
    desk.approve(again, &finance("cid")).await.unwrap();
    assert!(w.resume(again, refund()).await.executed().is_some());
}

#[tokio::test]
async fn a_policy_that_now_needs_other_roles_asks_again() {
    let w = World::new(POLICY);
    let id = w.file(refund()).await;
    w.gate.desk().approve(id, &finance("ann")).await.unwrap();
    let other_role = POLICY.replace("approvers: [finance]", "approvers: [cfo]");
    w.gate
        .set_policy(Policy::from_yaml_str(&other_role).unwrap());
    let reason = stop_reason(w.resume(id, refund()).await);
    assert!(
        matches!(
            reason,
            StopReason::ApprovalInsufficient {
                shortfall: ApprovalShortfall::Roles { ref needed }
            } if needed == &["cfo"]
        ),
        "{reason:?}"
    );
    assert_eq!(w.runs(), 0);
}

#[tokio::test]
async fn a_looser_or_unchanged_policy_runs_as_approved() {
    // A longer TTL and an added role: looser.
    let w = World::new(POLICY);
    let id = w.file(refund()).await;
    w.gate.desk().approve(id, &finance("ann")).await.unwrap();
    let looser = POLICY.replace(
        "approvers: [finance]",
        "approvers: [finance, cfo]\n    ttl_seconds: 900",
    );
    w.gate.set_policy(Policy::from_yaml_str(&looser).unwrap());
    assert!(w.resume(id, refund()).await.executed().is_some());

    // A tool that is now allowed outright.
    let w = World::new(POLICY);
    let id = w.file(refund()).await;
    w.gate.desk().approve(id, &finance("ann")).await.unwrap();
    w.gate
        .set_policy(Policy::from_yaml_str("policy:\n  default: allow\n").unwrap());
    assert!(w.resume(id, refund()).await.executed().is_some());
}

/// Resumes `id` with an executor that says when it starts and then never finishes, and
/// drops the resume while the tool runs (as a host's `tokio::time::timeout` would).
async fn leave_in_doubt(w: &World, id: RequestId) {
    let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
    let started = Arc::new(Mutex::new(Some(started_tx)));
    let hanging = w.gate.wrap(move |_exec: Execution| {
        let started = started.clone();
        async move {
            if let Some(tx) = started.lock().unwrap().take() {
                let _ = tx.send(());
            }
            std::future::pending::<Result<(), std::io::Error>>().await
        }
    });
    let task = tokio::spawn(async move { hanging.resume(id, refund()).await });
    started_rx.await.unwrap();
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
}

#[tokio::test]
async fn a_request_left_in_doubt_is_settled_at_the_desk() {
    let w = World::new(POLICY);
    let id = w.file(refund()).await;
    w.gate.desk().approve(id, &finance("ann")).await.unwrap();
    leave_in_doubt(&w, id).await;

    // In doubt: never run again on its own.
    let reason = stop_reason(w.resume(id, refund()).await);
    assert!(matches!(
        reason,
        StopReason::ApprovalUsed {
            state: RequestState::Executing
        }
    ));
    let desk = w.gate.desk();
    // Only someone who may decide the request settles it.
    let err = desk
        .settle(
            id,
            &Approver::new("ops").with_tenant("acme"),
            Settlement::NotRun,
            None,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            DeskError::Refused {
                reason: TransitionError::MissingRole { .. },
                ..
            }
        ),
        "{err:?}"
    );
    let settled = desk
        .settle(
            id,
            &finance("cid"),
            Settlement::NotRun,
            Some("the bank has no record of it"),
        )
        .await
        .unwrap();
    assert_eq!(settled.stored_state(), RequestState::Cancelled);
    let trail = w
        .gate
        .store()
        .audit_records(&AuditQuery::request(id))
        .await
        .unwrap();
    assert_eq!(trail.last().unwrap().event_name(), "execution_settled");
    // It does not run on this approval; settling twice is refused.
    let reason = stop_reason(w.resume(id, refund()).await);
    assert!(
        matches!(reason, StopReason::ApprovalCancelled { .. }),
        "{reason:?}"
    );
    assert!(matches!(
        desk.settle(id, &finance("cid"), Settlement::Ran, None)
            .await,
        Err(DeskError::AlreadyDecided { .. })
    ));
    assert_eq!(w.runs(), 0);
}

/// A tool service reached over a connection: a lost connection leaves it unknown
/// whether the call acted; a refusal does not.
struct Remote {
    sent: Arc<Mutex<usize>>,
}

#[derive(Debug, thiserror::Error)]
enum RemoteError {
    #[error("the connection to the tool service was lost")]
    ConnectionLost,
}

#[async_trait::async_trait]
impl ToolExecutor for Remote {
    type Output = ();
    type Error = RemoteError;

    async fn execute(&self, _: Execution) -> Result<(), RemoteError> {
        *self.sent.lock().unwrap() += 1;
        Err(RemoteError::ConnectionLost)
    }

    fn in_doubt(&self, error: &RemoteError) -> bool {
        matches!(error, RemoteError::ConnectionLost)
    }
}

#[tokio::test]
async fn an_executor_that_cannot_tell_whether_the_tool_acted_leaves_the_request_in_doubt() {
    let w = World::new(POLICY);
    let id = w.file(refund()).await;
    w.gate.desk().approve(id, &finance("ann")).await.unwrap();
    let sent = Arc::new(Mutex::new(0));
    let remote = w.gate.wrap(Remote { sent: sent.clone() });

    let outcome = remote.resume(id, refund()).await.unwrap();
    let done = outcome.executed().expect("the call was sent");
    assert!(done.in_doubt);
    assert!(done.result.is_err());
    assert!(done.unrecorded.is_none());
    let request = w.gate.store().get(id).await.unwrap();
    assert_eq!(request.stored_state(), RequestState::Executing);
    let trail = w
        .gate
        .store()
        .audit_records(&AuditQuery::request(id))
        .await
        .unwrap();
    let last = trail.last().unwrap();
    assert_eq!(last.event_name(), "execution_in_doubt");
    assert_eq!(
        serde_json::to_value(last).unwrap()["error"],
        "the connection to the tool service was lost"
    );

    // Never sent again on its own: not by resume, not by an identical call.
    let reason = stop_reason(w.resume(id, refund()).await);
    assert!(matches!(
        reason,
        StopReason::ApprovalUsed {
            state: RequestState::Executing
        }
    ));
    assert!(matches!(
        remote.call_or_resume(refund()).await.unwrap(),
        GateOutcome::Pending(p) if p.request_id != id
    ));
    assert_eq!(*sent.lock().unwrap(), 1);

    // A person settles it.
    let settled = w
        .gate
        .desk()
        .settle(id, &finance("cid"), Settlement::Ran, None)
        .await
        .unwrap();
    assert_eq!(settled.stored_state(), RequestState::Executed);
}

#[tokio::test]
async fn an_allowed_call_whose_tool_may_have_acted_is_recorded_in_doubt() {
    let w = World::new("policy:\n  default: allow\n");
    let sent = Arc::new(Mutex::new(0));
    let remote = w.gate.wrap(Remote { sent: sent.clone() });
    let outcome = remote.call(refund()).await.unwrap();
    assert!(outcome.executed().unwrap().in_doubt);
    let trail = w
        .gate
        .store()
        .audit_records(&AuditQuery::run("run-t"))
        .await
        .unwrap();
    let events: Vec<_> = trail.iter().map(|r| r.event_name()).collect();
    assert_eq!(events, ["allow", "execution_in_doubt"]);
}

#[tokio::test]
async fn a_request_that_ran_is_settled_as_executed() {
    let w = World::new(POLICY);
    let id = w.file(refund()).await;
    w.gate.desk().approve(id, &finance("ann")).await.unwrap();
    leave_in_doubt(&w, id).await;
    let settled = w
        .gate
        .desk()
        .settle(id, &finance("cid"), Settlement::Ran, None)
        .await
        .unwrap();
    assert_eq!(settled.stored_state(), RequestState::Executed);
    let reason = stop_reason(w.resume(id, refund()).await);
    assert!(matches!(
        reason,
        StopReason::ApprovalUsed {
            state: RequestState::Executed
        }
    ));
}

#[tokio::test]
async fn every_call_counts_without_budgets() {
    let w = World::new("policy:\n  default: allow\n");
    for n in 0..3 {
        let call = ToolCall::new("run-u", format!("c{n}"), "crm.read", Value::Null);
        assert!(w.tool().call(call).await.unwrap().executed().is_some());
    }
    assert_eq!(w.gate.usage("run-u").await.unwrap().tool_calls, 3);
}

// `Gated::call_or_resume`: a host that keeps no request ids calls again with the same
// arguments, and an approval given meanwhile runs, once.

const MAIL_POLICY: &str = "\
approvals:
  required_for: [email.send]
  ttl_seconds: 300
";

/// The model's call: each attempt gets a call id of its own, as MCP's requests do.
fn mail(call_id: &str) -> ToolCall {
    ToolCall::new(
        "session-1",
        call_id,
        "email.send",
        json!({"to": "bob@example.com"}),
    )
    .with_requester("agent")
    .with_tenant("acme")
}

fn mail_approver() -> Approver {
    Approver::new("ann").with_tenant("acme")
}

fn pending_id(outcome: GateOutcome<(), std::io::Error>) -> (RequestId, bool) {
    match outcome {
        GateOutcome::Pending(p) => (p.request_id, p.created),
        other => panic!("expected pending, got {}", other.name()),
    }
}

#[tokio::test]
async fn an_approval_runs_once_for_the_identical_call_and_the_next_asks_again() {
    let w = World::new(MAIL_POLICY);
    let (id, created) = pending_id(w.again(mail("c1")).await);
    assert!(created);
    let (joined, created) = pending_id(w.again(mail("c2")).await);
    assert_eq!((joined, created), (id, false), "waiting: the same request");
    assert!(w.ran_with().is_empty(), "nothing ran before the approval");

    w.gate.desk().approve(id, &mail_approver()).await.unwrap();
    match w.again(mail("c3")).await {
        GateOutcome::Executed(done) => assert_eq!(done.request_id, Some(id)),
        other => panic!("expected executed, got {}", other.name()),
    }
    assert_eq!(w.ran_with(), [(Some(id), json!({"to": "bob@example.com"}))]);

    let (next, created) = pending_id(w.again(mail("c4")).await);
    assert!(
        created && next != id,
        "the approval was used: a new request"
    );
    assert_eq!(w.ran_with().len(), 1, "the tool ran once");
}

#[tokio::test]
async fn the_approved_edits_run_and_only_for_the_same_caller_and_arguments() {
    let w = World::new(MAIL_POLICY);
    let (id, _) = pending_id(w.again(mail("c1")).await);
    let edited = json!({"to": "bob@example.com", "cc": "audit@example.com"});
    w.gate
        .desk()
        .approve_with_edits(id, &mail_approver(), edited.clone())
        .await
        .unwrap();

    // Other arguments, another requester, another tenant: not the approved call.
    let other_args = mail("c2").with_args(json!({"to": "eve@example.com"}));
    let other_requester = mail("c3").with_requester("someone-else");
    for call in [other_args, other_requester] {
        let (other, created) = pending_id(w.again(call).await);
        assert!(created && other != id);
    }
    let other_tenant = ToolCall::new(
        "session-1",
        "c4",
        "email.send",
        json!({"to": "bob@example.com"}),
    )
    .with_requester("agent")
    .with_tenant("globex");
    let (other, _) = pending_id(w.again(other_tenant).await);
    assert_ne!(other, id);
    assert!(w.ran_with().is_empty());

    // The call as the model made it runs the arguments as approved.
    assert!(matches!(
        w.again(mail("c5")).await,
        GateOutcome::Executed(_)
    ));
    assert_eq!(w.ran_with(), [(Some(id), edited)]);
}

#[tokio::test]
async fn a_denied_call_asks_again_and_the_request_ids_of_calls_still_resume() {
    let w = World::new(MAIL_POLICY);
    let (id, _) = pending_id(w.again(mail("c1")).await);
    w.gate
        .desk()
        .deny(id, &mail_approver(), Some("not to bob"))
        .await
        .unwrap();
    let (next, created) = pending_id(w.again(mail("c2")).await);
    assert!(
        created && next != id,
        "a denial is not looked for: a new request"
    );

    // A host that kept the id still resumes as before; call_or_resume then finds the
    // approval used.
    w.gate.desk().approve(next, &mail_approver()).await.unwrap();
    let resumed = w.tool().resume(next, mail("c2")).await.unwrap();
    assert!(matches!(resumed, GateOutcome::Executed(_)));
    let (third, created) = pending_id(w.again(mail("c3")).await);
    assert!(created && third != next);
    assert_eq!(w.ran_with().len(), 1);
}
