//! One person, one identity: approver, requester and tenant ids through the public API.
//! Another spelling of the same id (case, width, spaces, invisible characters, look-alike
//! letters) never makes a second person, and an id that is no id is refused.

use approval_gate::{
    Approver, DeskError, Execution, Gate, GateOutcome, Gated, IdError, Key, Keyring, ManualClock,
    MemorySink, Policy, RequestId, RequestQuery, RequestState, StopReason, ToolCall, ToolExecutor,
    canonical_id, desk::TransitionError, trail::AuditEvent,
};
use serde_json::{Value, json};

const POLICY: &str = "\
tiers:
  high:
    approvers: [finance-lead]
  critical:
    approvers: [finance-lead]
    quorum: 2
rules:
  - id: refunds
    tool: payments.refund
    effect: approval_required
    tier: high
  - id: wires
    tool: payments.wire
    effect: approval_required
    tier: critical
";

/// Other spellings of `ann`: each is refused as no id, or counted as `ann` herself.
const ANN_AGAIN: [&str; 10] = [
    "ann ",
    " ann",
    "ann\u{200b}",
    "a\u{200d}nn",
    "ANN",
    "Ann",
    "\u{ff41}\u{ff4e}\u{ff4e}", // full-width `ａｎｎ`
    "\u{430}nn",                // a Cyrillic `а` before Latin `nn`
    "\u{202e}nna",              // `nna` shown right to left
    "ann\u{fe0f}",
];

struct World {
    gate: Gate,
    audit: MemorySink,
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
        World { gate, audit }
    }

    fn tool(&self) -> Gated<impl ToolExecutor<Output = Value, Error = std::io::Error> + use<>> {
        self.gate
            .wrap(|exec: Execution| async move { Ok::<Value, std::io::Error>(exec.args().clone()) })
    }

    async fn file(&self, call: ToolCall) -> RequestId {
        match self.tool().call(call).await.unwrap() {
            GateOutcome::Pending(p) => p.request_id,
            other => panic!("expected pending, got {}", other.name()),
        }
    }

    /// What the desk says when `approver` approves `id`, which must be a refusal.
    async fn refusal(&self, id: RequestId, approver: &Approver) -> TransitionError {
        match self.gate.desk().approve(id, approver).await {
            Err(DeskError::Refused { reason, .. }) => reason,
            Err(other) => panic!("{:?}: expected refused, got {other}", approver.id()),
            Ok(r) => panic!("{:?}: approved, now {}", approver.id(), r.stored_state()),
        }
    }
}

/// A wire in its own run: a request of its own.
fn wire(run: &str) -> ToolCall {
    ToolCall::new(run, "c1", "payments.wire", json!({"amount": 25000}))
        .with_requester("bob")
        .with_tenant("acme")
}

fn refund(requester: &str, tenant: &str) -> ToolCall {
    ToolCall::new("run-1", "c1", "payments.refund", json!({"amount": 90}))
        .with_requester(requester)
        .with_tenant(tenant)
}

fn lead(id: &str) -> Approver {
    Approver::new(id)
        .with_role("finance-lead")
        .with_tenant("acme")
}

fn is_invalid_id(reason: &TransitionError) -> bool {
    matches!(reason, TransitionError::InvalidIdentity { what: "id", .. })
}

#[tokio::test]
async fn one_person_under_two_spellings_does_not_make_a_quorum() {
    let w = World::new();
    for (n, again) in ANN_AGAIN.into_iter().enumerate() {
        let id = w.file(wire(&format!("run-{n}"))).await;
        w.gate.desk().approve(id, &lead("ann")).await.unwrap();

        let reason = w.refusal(id, &lead(again)).await;
        assert!(
            is_invalid_id(&reason) || matches!(reason, TransitionError::AlreadyApproved { .. }),
            "{again:?}: {reason}"
        );
        let request = w.gate.desk().show(id).await.unwrap();
        assert_eq!(request.stored_state(), RequestState::Pending, "{again:?}");
        assert_eq!(request.approvers(), ["ann"], "{again:?}");
    }

    // Letters of another script that look like the same id are one person too.
    let id = w.file(wire("whole-script")).await;
    w.gate.desk().approve(id, &lead("ace")).await.unwrap();
    let cyrillic_ace = lead("\u{430}\u{441}\u{435}");
    assert!(matches!(
        w.refusal(id, &cyrillic_ace).await,
        TransitionError::AlreadyApproved { .. }
    ));

    // A second, different person completes it.
    let done = w.gate.desk().approve(id, &lead("cid")).await.unwrap();
    assert_eq!(done.stored_state(), RequestState::Approved);
    assert_eq!(done.approvers(), ["ace", "cid"]);
}

#[tokio::test]
async fn empty_and_blank_ids_decide_nothing() {
    let w = World::new();
    let id = w.file(wire("c1")).await;
    let desk = w.gate.desk();
    for blank in ["", " ", "\u{3000}"] {
        let reason = w.refusal(id, &lead(blank)).await;
        assert!(
            matches!(
                reason,
                TransitionError::InvalidIdentity {
                    what: "id",
                    source: IdError::Empty
                }
            ),
            "{blank:?}: {reason}"
        );
        let err = desk.deny(id, &lead(blank), None).await.unwrap_err();
        assert!(
            matches!(err, DeskError::Refused { ref reason, .. } if is_invalid_id(reason)),
            "{blank:?}: {err}"
        );
    }
    assert_eq!(
        w.refusal(id, &lead("")).await.to_string(),
        "the approver's id is refused: the id is empty"
    );
    // A tenant that is no id is refused the same way.
    let bad_tenant = Approver::new("ann")
        .with_role("finance-lead")
        .with_tenant("acme\u{200b}");
    assert!(matches!(
        w.refusal(id, &bad_tenant).await,
        TransitionError::InvalidIdentity { what: "tenant", .. }
    ));

    let request = desk.show(id).await.unwrap();
    assert_eq!(request.stored_state(), RequestState::Pending);
    assert!(request.approvers().is_empty());
    assert_eq!(w.audit.event_names(), ["approval_required"]);
}

#[tokio::test]
async fn nobody_approves_their_own_call_under_another_spelling() {
    let w = World::new();
    let id = w.file(refund("bob", "acme")).await;
    for (again, invalid) in [
        ("Bob", false),
        ("BOB", false),
        ("\u{ff42}\u{ff4f}\u{ff42}", false), // full-width `ｂｏｂ`
        (" bob", true),
        ("bob ", true),
        ("bob\u{200b}", true),
        ("b\u{43e}b", true), // a Cyrillic `о` between Latin `b`s
    ] {
        let reason = w.refusal(id, &lead(again)).await;
        if invalid {
            assert!(is_invalid_id(&reason), "{again:?}: {reason}");
        } else {
            assert!(
                matches!(reason, TransitionError::SelfApproval { ref approver } if approver == "bob"),
                "{again:?}: {reason}"
            );
        }
    }

    // Asked as `Ace`, approved as Cyrillic `асе`: the same person.
    let w = World::new();
    let id = w.file(refund("Ace", "acme")).await;
    let reason = w.refusal(id, &lead("\u{430}\u{441}\u{435}")).await;
    assert!(
        matches!(reason, TransitionError::SelfApproval { .. }),
        "{reason}"
    );
    assert_eq!(w.audit.event_names(), ["approval_required"]);
}

#[tokio::test]
async fn tenants_are_the_same_in_any_case_but_look_alikes_are_others() {
    // `Acme` and `acme` are one tenant.
    let w = World::new();
    let id = w.file(refund("bob", "acme")).await;
    let ann = Approver::new("ann")
        .with_role("finance-lead")
        .with_tenant("Acme");
    let approved = w.gate.desk().approve(id, &ann).await.unwrap();
    assert_eq!(approved.stored_state(), RequestState::Approved);

    let w = World::new();
    let id = w.file(refund("bob", "ACME")).await;
    let approved = w.gate.desk().approve(id, &lead("ann")).await.unwrap();
    assert_eq!(approved.stored_state(), RequestState::Approved);

    // Cyrillic `асе` looks like Latin `ace`, and is another tenant.
    let w = World::new();
    let id = w.file(refund("bob", "ace")).await;
    let look_alike = Approver::new("ann")
        .with_role("finance-lead")
        .with_tenant("\u{430}\u{441}\u{435}");
    assert!(matches!(
        w.refusal(id, &look_alike).await,
        TransitionError::WrongTenant { .. }
    ));
    let err = w.gate.desk().deny(id, &look_alike, None).await.unwrap_err();
    assert!(matches!(
        err,
        DeskError::Refused {
            reason: TransitionError::WrongTenant { .. },
            ..
        }
    ));
    assert_eq!(
        w.gate.desk().show(id).await.unwrap().stored_state(),
        RequestState::Pending
    );
}

#[tokio::test]
async fn calls_from_requesters_or_tenants_that_are_no_ids_are_denied() {
    let w = World::new();
    let calls = [
        refund("", "acme"),
        refund(" ", "acme"),
        refund("bob\u{200b}", "acme"),
        refund("\u{202e}bob", "acme"),
        refund("b\u{43e}b", "acme"),
        refund("bob", ""),
        refund("bob", "acme "),
        refund("bob", "\u{430}cme"),
    ];
    for call in calls {
        let shown = format!("{:?} {:?}", call.requester(), call.tenant());
        match w.tool().call(call).await.unwrap() {
            GateOutcome::Stopped(stop) => match stop.reason {
                StopReason::PolicyDenied { rule_ids, reason } => {
                    assert_eq!(rule_ids, ["tool_call"], "{shown}");
                    let reason = reason.unwrap();
                    assert!(reason.contains(" is refused: the id "), "{shown}: {reason}");
                }
                other => panic!("{shown}: {}", other.name()),
            },
            other => panic!("{shown}: expected a stop, got {}", other.name()),
        }
    }
    assert!(w.gate.desk().pending().await.unwrap().is_empty());
    assert!(w.audit.event_names().iter().all(|e| *e == "policy_denied"));
}

#[tokio::test]
async fn the_trail_records_canonical_ids() {
    let w = World::new();
    let call = ToolCall::new("run-1", "c1", "payments.wire", json!({"amount": 25000}))
        .with_requester("Bob")
        .with_tenant("ACME");
    let id = w.file(call).await;
    let desk = w.gate.desk();
    let ann = Approver::new("Ann")
        .with_role("finance-lead")
        .with_tenant("Acme");
    let cid = Approver::new("\u{ff23}id")
        .with_role("finance-lead")
        .with_tenant("acme");
    desk.approve(id, &ann).await.unwrap();
    let done = desk.approve(id, &cid).await.unwrap();
    assert_eq!(done.approvers(), ["ann", "cid"]);
    assert_eq!(done.call().requester(), Some("bob"));
    assert_eq!(done.call().tenant(), Some("acme"));

    let records = w.audit.records();
    assert_eq!(
        w.audit.event_names(),
        ["approval_required", "approval_vote", "approval_granted"]
    );
    for record in &records {
        assert_eq!(record.requested_by.as_deref(), Some("bob"));
        assert_eq!(record.tenant.as_deref(), Some("acme"));
    }
    assert_eq!(records[1].event.actor(), Some("ann"));
    let AuditEvent::ApprovalGranted {
        approver,
        approvers,
        ..
    } = &records[2].event
    else {
        panic!("expected approval_granted, got {}", records[2].event_name());
    };
    assert_eq!(approver, "cid");
    assert_eq!(approvers, &["ann", "cid"]);

    // A host looks requests up by the canonical form of what it holds.
    let query = RequestQuery {
        tenant: Some(canonical_id("Acme").unwrap()),
        ..RequestQuery::default()
    };
    let found = desk.list(&query).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id(), id);
}

#[test]
fn canonical_ids_name_what_is_wrong() {
    assert_eq!(canonical_id("Ann Lee").unwrap(), "ann lee");
    assert_eq!(canonical_id("ann@Example.COM").unwrap(), "ann@example.com");
    assert_eq!(canonical_id(""), Err(IdError::Empty));
    let err = canonical_id("ann\u{202e}").unwrap_err();
    assert_eq!(
        err.to_string(),
        "the id `ann\\u{202e}` has the character `\\u{202e}`, which no id may have \
         (a control, format, invisible, private-use or unassigned character)"
    );
    assert!(matches!(
        canonical_id("\u{430}nn"),
        Err(IdError::MixedScripts { .. })
    ));
    assert!(matches!(
        canonical_id("ann  lee"),
        Err(IdError::Spaces { .. })
    ));
}
