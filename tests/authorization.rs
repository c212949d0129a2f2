//! Who may decide, through the public API: grants stay within their authors' authority,
//! nobody approves their own call through a grant, every voter sees what will run, a
//! cancel ends what its approval left, and only those who may decide a request cancel it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use approval_gate::{
    Approver, DeskError, Execution, Gate, GateOutcome, Gated, GrantScope, GrantSpec, Key, Keyring,
    ManualClock, MemorySink, Policy, RequestId, RequestState, ToolCall, ToolExecutor,
    desk::{GrantError, TransitionError},
    trail::AuditQuery,
};
use serde_json::{Value, json};

const POLICY: &str = "\
approvals:
  redact: [args.secret]
tiers:
  low: {}
  high:
    approvers: [finance-lead]
    quorum: 2
  pair:
    quorum: 2
rules:
  - id: notes
    tool: crm.note
    effect: approval_required
    tier: low
  - id: mail
    tool: email.send
    effect: approval_required
    tier: low
    preview: 'mail to {to}'
  - id: wires
    tool: payments.wire
    effect: approval_required
    tier: high
  - id: pair-mail
    tool: email.bulk
    effect: approval_required
    tier: pair
    preview: 'bulk mail to {to}'
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
            Keyring::new(Key::new("k1", [4u8; 32]).unwrap()),
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

    async fn outcome(&self, call: ToolCall) -> GateOutcome<(), std::io::Error> {
        self.tool().call(call).await.unwrap()
    }

    async fn file(&self, call: ToolCall) -> RequestId {
        match self.outcome(call).await {
            GateOutcome::Pending(p) => p.request_id,
            other => panic!("expected pending, got {}", other.name()),
        }
    }

    fn runs(&self) -> usize {
        self.ran.lock().unwrap().len()
    }
}

fn call(run: &str, id: &str, tool: &str, args: Value) -> ToolCall {
    ToolCall::new(run, id, tool, args)
        .with_requester("bob")
        .with_tenant("acme")
}

fn person(id: &str) -> Approver {
    Approver::new(id).with_tenant("acme")
}

fn lead(id: &str) -> Approver {
    person(id).with_role("finance-lead")
}

fn an_hour() -> GrantSpec {
    GrantSpec::new(GrantScope::Run, Duration::from_secs(3600))
}

#[tokio::test]
async fn a_grant_from_a_light_tier_does_not_cover_a_heavier_one() {
    let w = World::new();
    let note = w
        .file(call("r1", "c1", "crm.note", json!({"text": "hi"})))
        .await;
    let (_, grant) = w
        .gate
        .desk()
        .approve_with_grant(note, &person("ann"), &an_hour().tool_pattern("*"))
        .await
        .unwrap();
    assert!(grant.is_some());

    // The same run's wire needs two finance leads: ann's grant does not carry it.
    let wire = w
        .outcome(call("r1", "c2", "payments.wire", json!({"amount": 9000})))
        .await;
    assert!(wire.pending().is_some(), "the wire ran on a note's grant");
    assert_eq!(w.runs(), 0);

    // Another note in the run is within the grant.
    let again = w
        .outcome(call("r1", "c3", "crm.note", json!({"text": "again"})))
        .await;
    assert!(again.executed().is_some());
    assert_eq!(
        w.ran.lock().unwrap()[0].approval().unwrap().approvers(),
        ["ann"]
    );
}

#[tokio::test]
async fn a_grant_on_a_quorum_tier_needs_the_quorum_to_ask_for_it() {
    let w = World::new();
    let desk = w.gate.desk();
    let first = w
        .file(call("r1", "c1", "payments.wire", json!({"amount": 1})))
        .await;
    desk.approve(first, &lead("ann")).await.unwrap();
    // The last voter alone cannot leave a grant for the tier: refused, nothing changed.
    let err = desk
        .approve_with_grant(first, &lead("cid"), &an_hour())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            DeskError::GrantRefused {
                reason: GrantError::Quorum {
                    agreed: 1,
                    needed: 2
                },
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        desk.show(first).await.unwrap().stored_state(),
        RequestState::Pending
    );

    // Both ask for it: the grant is theirs, and covers the next wire of the run.
    let second = w
        .file(call("r2", "c1", "payments.wire", json!({"amount": 2})))
        .await;
    let (pending, none) = desk
        .approve_with_grant(second, &lead("ann"), &an_hour())
        .await
        .unwrap();
    assert_eq!(pending.stored_state(), RequestState::Pending);
    assert!(none.is_none());
    let (_, grant) = desk
        .approve_with_grant(second, &lead("cid"), &an_hour())
        .await
        .unwrap();
    let grant = grant.expect("a grant both asked for");
    let authors: Vec<&str> = grant.authors().iter().map(Approver::id).collect();
    assert_eq!(authors, ["ann", "cid"]);
    let next = w
        .outcome(call("r2", "c2", "payments.wire", json!({"amount": 3})))
        .await;
    assert!(next.executed().is_some());
    assert_eq!(
        w.ran.lock().unwrap()[0].approval().unwrap().approvers(),
        ["ann", "cid"]
    );
}

#[tokio::test]
async fn a_grant_is_checked_against_the_policy_when_used() {
    let w = World::new();
    let note = w.file(call("r1", "c1", "crm.note", json!({}))).await;
    w.gate
        .desk()
        .approve_with_grant(note, &person("ann"), &an_hour())
        .await
        .unwrap();
    // The tier now needs a finance lead: ann's grant no longer covers notes.
    let tighter = POLICY.replace("  low: {}", "  low:\n    approvers: [finance-lead]");
    w.gate.set_policy(Policy::from_yaml_str(&tighter).unwrap());
    let next = w.outcome(call("r1", "c2", "crm.note", json!({}))).await;
    assert!(next.pending().is_some());
    // And a tier that forbids grants stops them too.
    let none = POLICY.replace("  low: {}", "  low:\n    grants: false");
    w.gate.set_policy(Policy::from_yaml_str(&none).unwrap());
    let next = w.outcome(call("r1", "c3", "crm.note", json!({}))).await;
    assert!(next.pending().is_some());
    assert_eq!(w.runs(), 0);
}

#[tokio::test]
async fn a_grant_never_covers_a_call_its_author_asked_for() {
    let w = World::new();
    let mail = w
        .file(call(
            "r1",
            "c1",
            "email.send",
            json!({"to": "x@example.com"}),
        ))
        .await;
    let spec = GrantSpec::new(GrantScope::Tenant, Duration::from_secs(3600));
    w.gate
        .desk()
        .approve_with_grant(mail, &person("ann"), &spec)
        .await
        .unwrap();
    // ann's own mail in the tenant waits for someone else.
    let own = ToolCall::new("r2", "c1", "email.send", json!({"to": "y@example.com"}))
        .with_requester("ann")
        .with_tenant("acme");
    assert!(w.outcome(own).await.pending().is_some());
    // bob's is covered.
    let bobs = call("r3", "c1", "email.send", json!({"to": "z@example.com"}));
    assert!(w.outcome(bobs).await.executed().is_some());
    let used = w
        .gate
        .store()
        .audit_records(&AuditQuery::default())
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.event_name() == "grant_used")
        .count();
    assert_eq!(used, 1);
}

#[tokio::test]
async fn after_an_edit_every_voter_sees_what_will_run() {
    let w = World::new();
    let desk = w.gate.desk();
    let id = w
        .file(call(
            "r1",
            "c1",
            "email.bulk",
            json!({"to": "bob@example.com", "secret": "s3"}),
        ))
        .await;
    let before = desk.show(id).await.unwrap();
    assert_eq!(before.preview(), Some("bulk mail to bob@example.com"));
    desk.approve_with_edits(
        id,
        &person("ann"),
        json!({"to": "eve@evil.example", "secret": "s4"}),
    )
    .await
    .unwrap();

    // The next voter sees the edited call, who edited it and what changed, secrets
    // still redacted.
    let shown = desk.show(id).await.unwrap();
    assert_eq!(shown.preview(), Some("bulk mail to eve@evil.example"));
    assert_eq!(shown.filed_preview(), Some("bulk mail to bob@example.com"));
    assert_eq!(
        shown.shown_args(),
        &json!({"to": "eve@evil.example", "secret": "[redacted]"})
    );
    assert_eq!(shown.edited_by(), Some("ann"));
    assert_eq!(shown.changed_fields(), ["args.secret", "args.to"]);
    assert_ne!(shown.approved_args_hash(), shown.args_hash());

    desk.approve(id, &person("cid")).await.unwrap();
    let resumed = w
        .tool()
        .resume(
            id,
            call(
                "r1",
                "c1",
                "email.bulk",
                json!({"to": "bob@example.com", "secret": "s3"}),
            ),
        )
        .await
        .unwrap();
    assert!(resumed.executed().is_some());
    assert_eq!(
        w.ran.lock().unwrap()[0].args()["to"],
        json!("eve@evil.example")
    );
}

#[tokio::test]
async fn a_cancel_ends_the_grants_its_approval_left() {
    let w = World::new();
    let desk = w.gate.desk();
    let args = json!({"to": "x@example.com"});
    let id = w.file(call("r1", "c1", "email.send", args.clone())).await;
    let (_, grant) = desk
        .approve_with_grant(id, &person("ann"), &an_hour().same_args())
        .await
        .unwrap();
    assert!(grant.is_some());
    desk.cancel(id, &person("ops"), Some("customer called: do not send"))
        .await
        .unwrap();
    assert!(desk.grants().await.unwrap().is_empty());

    // The identical email, as a new call, waits again.
    let again = w.outcome(call("r1", "c2", "email.send", args)).await;
    assert!(
        again.pending().is_some(),
        "it ran on the cancelled approval's grant"
    );
    assert_eq!(w.runs(), 0);

    // Both the store's trail and the sink say the grant ended with the cancel.
    let trail = w
        .gate
        .store()
        .audit_records(&AuditQuery::request(id))
        .await
        .unwrap();
    let names: Vec<&str> = trail.iter().map(|r| r.event_name()).collect();
    let cancelled = names
        .iter()
        .position(|n| *n == "approval_cancelled")
        .unwrap();
    assert_eq!(names[cancelled + 1], "grant_revoked", "{names:?}");
    assert!(
        w.audit
            .records()
            .iter()
            .any(|r| r.event_name() == "grant_revoked")
    );
}

#[tokio::test]
async fn only_those_who_may_decide_cancel_and_revoke() {
    let w = World::new();
    let desk = w.gate.desk();
    let wire = w
        .file(call("r1", "c1", "payments.wire", json!({"amount": 1})))
        .await;
    // Not of the tenant, no role, an empty name, the gate's own name: refused.
    for (who, expected) in [
        (
            Approver::new("mallory").with_tenant("globex"),
            "wrong tenant",
        ),
        (person("ops"), "missing role"),
        (
            Approver::new("approval-gate").with_tenant("acme"),
            "reserved",
        ),
    ] {
        let err = desk.cancel(wire, &who, Some("audit sink failed")).await;
        assert!(
            matches!(
                err,
                Err(DeskError::Refused {
                    reason: TransitionError::WrongTenant { .. }
                        | TransitionError::MissingRole { .. }
                        | TransitionError::ReservedId { .. },
                    ..
                })
            ),
            "{expected}: {err:?}"
        );
    }
    assert_eq!(
        desk.show(wire).await.unwrap().stored_state(),
        RequestState::Pending
    );
    // The requester may withdraw their own call; so may a finance lead.
    desk.cancel(wire, &person("bob"), None).await.unwrap();
    let other = w
        .file(call("r1", "c2", "payments.wire", json!({"amount": 2})))
        .await;
    desk.cancel(other, &lead("ann"), None).await.unwrap();

    // Revoking: the grant's author, or who may decide its request; nobody else.
    let note = w.file(call("r2", "c1", "crm.note", json!({}))).await;
    let (_, grant) = desk
        .approve_with_grant(note, &person("ann"), &an_hour())
        .await
        .unwrap();
    let grant = grant.unwrap();
    let err = desk
        .revoke_grant(grant.id(), &Approver::new("mallory").with_tenant("globex"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            DeskError::GrantNotFound { .. } | DeskError::Refused { .. }
        ),
        "{err:?}"
    );
    desk.revoke_grant(grant.id(), &person("ann")).await.unwrap();
    let revoked = w
        .gate
        .store()
        .audit_records(&AuditQuery::actor("ann"))
        .await
        .unwrap();
    assert!(revoked.iter().any(|r| r.event_name() == "grant_revoked"));
}

#[tokio::test]
async fn a_desk_bound_to_a_person_sees_only_their_tenant() {
    let w = World::new();
    let ours = w.file(call("r1", "c1", "crm.note", json!({}))).await;
    let theirs = w
        .file(
            ToolCall::new("r9", "c1", "crm.note", json!({}))
                .with_requester("zed")
                .with_tenant("globex"),
        )
        .await;
    let desk = w.gate.desk().for_approver(person("ann"));
    let pending: Vec<RequestId> = desk
        .pending()
        .await
        .unwrap()
        .iter()
        .map(|r| r.id())
        .collect();
    assert_eq!(pending, [ours]);
    assert!(matches!(
        desk.show(theirs).await,
        Err(DeskError::NotFound { .. })
    ));
    assert!(desk.show(ours).await.is_ok());
    assert_eq!(w.gate.desk().pending().await.unwrap().len(), 2);
}

#[tokio::test]
async fn out_of_range_grant_lifetimes_are_refused_not_panicked() {
    let w = World::new();
    let desk = w.gate.desk();
    let id = w.file(call("r1", "c1", "crm.note", json!({}))).await;
    for lifetime in [
        Duration::MAX,
        Duration::ZERO,
        Duration::from_secs(400 * 365 * 86_400),
    ] {
        let spec = GrantSpec::new(GrantScope::Run, lifetime);
        let err = desk
            .approve_with_grant(id, &person("ann"), &spec)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                DeskError::GrantRefused {
                    reason: GrantError::Lifetime { .. },
                    ..
                }
            ),
            "{err:?}"
        );
    }
    let zero_uses = an_hour().max_uses(0);
    assert!(matches!(
        desk.approve_with_grant(id, &person("ann"), &zero_uses)
            .await,
        Err(DeskError::GrantRefused {
            reason: GrantError::NoUses,
            ..
        })
    ));
    // Nothing changed: the request still waits.
    assert_eq!(
        desk.show(id).await.unwrap().stored_state(),
        RequestState::Pending
    );
}

#[tokio::test]
async fn a_duplicate_merges_only_within_its_tenant_and_requester_and_is_recorded() {
    let w = World::new();
    let args = json!({"to": "x@example.com"});
    let bobs = w.file(call("r1", "c1", "email.send", args.clone())).await;
    // Same run, tool and args from another tenant's person: her own request.
    let mallory = ToolCall::new("r1", "c2", "email.send", args.clone())
        .with_requester("mallory")
        .with_tenant("globex");
    let theirs = w.outcome(mallory).await;
    let theirs = theirs.pending().expect("pending");
    assert!(theirs.created);
    assert_ne!(theirs.request_id, bobs);
    assert_eq!(theirs.call_id, "c2");
    // Bob's identical call joins his request, and the trail and the sink say so.
    let again = w.outcome(call("r1", "c3", "email.send", args)).await;
    let again = again.pending().expect("pending");
    assert!(!again.created);
    assert_eq!(again.request_id, bobs);
    let merged: Vec<_> = w
        .gate
        .store()
        .audit_records(&AuditQuery::request(bobs))
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.event_name() == "approval_merged")
        .collect();
    assert_eq!(merged.len(), 1);
    assert_eq!(merged[0].call_id, "c3");
    assert!(
        w.audit
            .records()
            .iter()
            .any(|r| r.event_name() == "approval_merged" && r.call_id == "c3")
    );
}
