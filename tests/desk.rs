//! The desk's rules through the public API: who may approve, quorum, and edits.

use std::sync::{Arc, Mutex};

use approval_gate::{
    Approver, DeskError, Execution, Gate, GateOutcome, Gated, Key, Keyring, ManualClock,
    MemorySink, Policy, RequestId, RequestState, ToolCall, ToolExecutor,
    desk::{EditRefusal, TransitionError},
};
use serde_json::{Value, json};

const POLICY: &str = "\
tiers:
  high:
    approvers: [finance-lead]
  critical:
    approvers: [finance-lead, cfo]
    quorum: 2
rules:
  - id: refunds
    tool: payments.refund
    effect: approval_required
    tier: high
    when: { field: args.amount, lte: 5000 }
  - id: big-refunds
    tool: payments.refund
    effect: approval_required
    tier: critical
    when: { field: args.amount, gt: 5000 }
  - id: wires
    tool: payments.wire
    effect: approval_required
    tier: critical
  - id: no-wires-abroad
    tool: payments.wire
    effect: deny
    reason: wires leave only to domestic accounts
    when: { field: args.iban, matches: '^(?:[^D]|D[^E])' }
";

struct World {
    gate: Gate,
    audit: MemorySink,
    ran: Arc<Mutex<Vec<Execution>>>,
}

impl World {
    fn new() -> Self {
        let audit = MemorySink::new();
        let gate = Gate::builder(
            Policy::from_yaml_str(POLICY).unwrap(),
            Keyring::new(Key::new("k1", [9u8; 32]).unwrap()),
        )
        .audit(audit.clone())
        .clock(ManualClock::default())
        .build();
        World {
            gate,
            audit,
            ran: Arc::default(),
        }
    }

    fn tool(&self) -> Gated<impl ToolExecutor<Output = Value, Error = std::io::Error> + use<>> {
        let ran = self.ran.clone();
        self.gate.wrap(move |exec: Execution| {
            let ran = ran.clone();
            async move {
                let out = exec.args().clone();
                ran.lock().unwrap().push(exec);
                Ok::<Value, std::io::Error>(out)
            }
        })
    }

    async fn file(&self, call: ToolCall) -> RequestId {
        match self.tool().call(call).await.unwrap() {
            GateOutcome::Pending(p) => p.request_id,
            other => panic!("expected pending, got {}", other.name()),
        }
    }
}

fn refund() -> ToolCall {
    ToolCall::new(
        "run-1",
        "c1",
        "payments.refund",
        json!({"amount": 900, "order": 17}),
    )
    .with_requester("bob")
    .with_tenant("acme")
}

fn wire() -> ToolCall {
    ToolCall::new(
        "run-1",
        "c2",
        "payments.wire",
        json!({"amount": 25000, "iban": "DE89370400440532013000"}),
    )
    .with_requester("bob")
    .with_tenant("acme")
}

fn lead(id: &str) -> Approver {
    Approver::new(id)
        .with_role("finance-lead")
        .with_tenant("acme")
}

#[tokio::test]
async fn who_may_not_approve_is_refused_and_nothing_changes() {
    let w = World::new();
    let id = w.file(refund()).await;
    let desk = w.gate.desk();
    let cases = [
        // The one who asked, even with the right role.
        (
            Approver::new("bob")
                .with_role("finance-lead")
                .with_tenant("acme"),
            "self",
        ),
        // Another tenant.
        (
            Approver::new("eve")
                .with_role("finance-lead")
                .with_tenant("globex"),
            "tenant",
        ),
        // The right tenant, not a role the tier names.
        (
            Approver::new("dan")
                .with_role("support")
                .with_tenant("acme"),
            "role",
        ),
    ];
    for (approver, why) in cases {
        let err = desk.approve(id, &approver).await.unwrap_err();
        let DeskError::Refused { reason, .. } = err else {
            panic!("{why}: expected refused, got {err}")
        };
        match why {
            "self" => assert!(matches!(reason, TransitionError::SelfApproval { .. })),
            "tenant" => assert!(matches!(reason, TransitionError::WrongTenant { .. })),
            _ => assert!(
                matches!(reason, TransitionError::MissingRole { ref needed, .. } if needed == &["finance-lead"])
            ),
        }
    }
    // Someone from another tenant cannot deny it either.
    let err = desk
        .deny(
            id,
            &Approver::new("eve")
                .with_role("finance-lead")
                .with_tenant("globex"),
            None,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, DeskError::Refused { .. }));

    let request = desk.show(id).await.unwrap();
    assert_eq!(request.stored_state(), RequestState::Pending);
    assert!(request.approvers().is_empty());
    assert_eq!(w.audit.event_names(), ["approval_required"]);

    desk.approve(id, &lead("ann")).await.unwrap();
    assert!(
        w.tool()
            .resume(id, refund())
            .await
            .unwrap()
            .executed()
            .is_some()
    );
}

#[tokio::test]
async fn a_critical_tier_needs_two_distinct_approvers() {
    let w = World::new();
    let id = w.file(wire()).await;
    let desk = w.gate.desk();

    let after_one = desk.approve(id, &lead("ann")).await.unwrap();
    assert_eq!(after_one.stored_state(), RequestState::Pending);
    assert_eq!(after_one.approvers(), ["ann"]);
    assert_eq!(after_one.quorum(), 2);
    // Still waiting: resume does not run it.
    assert!(
        w.tool()
            .resume(id, wire())
            .await
            .unwrap()
            .pending()
            .is_some()
    );

    // The same person twice does not make two.
    let err = desk.approve(id, &lead("ann")).await.unwrap_err();
    assert!(matches!(
        err,
        DeskError::Refused {
            reason: TransitionError::AlreadyApproved { .. },
            ..
        }
    ));

    let cfo = Approver::new("carl").with_role("cfo").with_tenant("acme");
    let done = desk.approve(id, &cfo).await.unwrap();
    assert_eq!(done.stored_state(), RequestState::Approved);

    assert!(
        w.tool()
            .resume(id, wire())
            .await
            .unwrap()
            .executed()
            .is_some()
    );
    let exec = w.ran.lock().unwrap().pop().unwrap();
    assert_eq!(
        exec.approval().unwrap().approvers(),
        ["ann", "carl"],
        "the token lists every approver"
    );
    assert_eq!(
        w.audit.event_names(),
        [
            "approval_required",
            "approval_vote",
            "approval_granted",
            "execution_started",
            "executed"
        ]
    );
}

#[tokio::test]
async fn one_deny_ends_a_quorum() {
    let w = World::new();
    let id = w.file(wire()).await;
    let desk = w.gate.desk();
    desk.approve(id, &lead("ann")).await.unwrap();
    desk.deny(
        id,
        &Approver::new("carl").with_role("cfo").with_tenant("acme"),
        Some("call the customer first"),
    )
    .await
    .unwrap();
    let outcome = w.tool().resume(id, wire()).await.unwrap();
    assert!(
        outcome
            .stopped()
            .unwrap()
            .message()
            .contains("call the customer first")
    );
    assert!(w.ran.lock().unwrap().is_empty());
}

#[tokio::test]
async fn an_approval_with_edits_runs_the_edited_args_and_says_what_changed() {
    let w = World::new();
    let id = w.file(refund()).await;
    let edited = json!({"amount": 90, "order": 17});
    let approved = w
        .gate
        .desk()
        .approve_with_edits(id, &lead("ann"), edited.clone())
        .await
        .unwrap();
    assert_eq!(approved.changed_fields(), ["args.amount"]);

    // The runtime resumes with the call the model made; the tool gets the edited args.
    let outcome = w.tool().resume(id, refund()).await.unwrap();
    let GateOutcome::Executed(done) = outcome else {
        panic!("expected executed")
    };
    assert_eq!(done.result.unwrap(), edited);
    let edit = done.edit.expect("the host learns of the edit");
    assert_eq!(edit.changed_fields, ["args.amount"]);
    assert_eq!(edit.original_args_hash, refund().args_hash().unwrap());
    assert_eq!(
        edit.approved_args_hash,
        refund().with_args(edited.clone()).args_hash().unwrap()
    );

    // The token binds the edited args, so a tool service checks what actually runs.
    let exec = w.ran.lock().unwrap().pop().unwrap();
    assert_eq!(
        exec.approval().unwrap().claims().args_hash,
        edit.approved_args_hash
    );

    // The audit trail has both hashes and the changed fields.
    let granted = w
        .audit
        .records()
        .into_iter()
        .find(|r| r.event_name() == "approval_granted")
        .unwrap();
    let json = serde_json::to_value(&granted).unwrap();
    assert_eq!(json["args_hash"], edit.original_args_hash.to_string());
    assert_eq!(
        json["approved_args_hash"],
        edit.approved_args_hash.to_string()
    );
    assert_eq!(json["changed_fields"], json!(["args.amount"]));
}

#[tokio::test]
async fn an_edit_the_policy_would_deny_is_refused() {
    let w = World::new();
    let id = w.file(wire()).await;
    let abroad = json!({"amount": 25000, "iban": "FR1420041010050500013M02606"});
    let err = w
        .gate
        .desk()
        .approve_with_edits(id, &lead("ann"), abroad)
        .await
        .unwrap_err();
    assert!(
        matches!(err, DeskError::EditRefused { ref reason, .. } if reason.to_string().contains("domestic")),
        "{err}"
    );
    let request = w.gate.desk().show(id).await.unwrap();
    assert!(!request.is_edited());
    assert!(request.approvers().is_empty());
}

#[tokio::test]
async fn an_edit_cannot_move_a_call_into_a_stricter_tier() {
    let w = World::new();
    let id = w.file(refund()).await;
    // A `high` approver raising the refund past 5000 would need the critical tier's quorum.
    let err = w
        .gate
        .desk()
        .approve_with_edits(id, &lead("ann"), json!({"amount": 9000, "order": 17}))
        .await
        .unwrap_err();
    assert!(
        matches!(err, DeskError::EditRefused { ref reason, .. } if matches!(reason, EditRefusal::OtherTier { tier: Some(t) } if t == "critical")),
        "{err}"
    );
    let request = w.gate.desk().show(id).await.unwrap();
    assert_eq!(request.stored_state(), RequestState::Pending);
    assert!(!request.is_edited());
}

#[tokio::test]
async fn a_person_sees_the_preview_with_secret_fields_redacted() {
    let policy = "\
approvals:
  redact: [args.card, args.auth.token]
rules:
  - id: refunds
    tool: payments.refund
    effect: approval_required
    preview: 'Refund {amount} on card {card}'
";
    let audit = MemorySink::new();
    let gate = Gate::builder(
        Policy::from_yaml_str(policy).unwrap(),
        Keyring::new(Key::new("k1", [9u8; 32]).unwrap()),
    )
    .audit(audit.clone())
    .build();
    let tool = gate.wrap(|_exec: Execution| async { Ok::<Value, std::io::Error>(json!(null)) });
    let call = ToolCall::new(
        "run-1",
        "c1",
        "payments.refund",
        json!({"amount": 5, "card": "4111111111111111", "auth": {"token": "s3cr3t", "user": "bob"}}),
    );
    let id = tool.call(call).await.unwrap().pending().unwrap().request_id;
    let request = gate.desk().show(id).await.unwrap();
    assert_eq!(request.preview(), Some("Refund 5 on card [redacted]"));
    assert_eq!(
        request.shown_args(),
        &json!({"amount": 5, "card": "[redacted]", "auth": {"token": "[redacted]", "user": "bob"}})
    );
    for record in audit.records() {
        let line = serde_json::to_string(&record).unwrap();
        assert!(
            !line.contains("4111111111111111") && !line.contains("s3cr3t"),
            "{line}"
        );
    }
}
