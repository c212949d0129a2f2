//! The conformance suite every [`ApprovalStore`] must pass.
//!
//! Plain public async functions, one per behaviour, each taking the store under test and
//! a [`ManualClock`] that gives the `now` of every call (stores never read a clock). They
//! panic, like `assert!`, on the first broken promise. Every function uses fresh run ids
//! and tenants, so all of them can share one store; [`run_all`] runs them in order.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use approval_gate::{ManualClock, MemoryStore, testing};
//!
//! testing::run_all(&MemoryStore::new(), &ManualClock::default()).await;
//! # }
//! ```
//!
//! A host that writes its own store runs the same suite against it.

pub mod races;

use std::time::Duration;

use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::approval::{ApprovalRequest, Approver, RequestId, RequestState};

use crate::audit::{AuditEvent, AuditRecord};

use crate::call::{ArgsHash, ToolCall};

use crate::clock::{Clock, ManualClock};

use crate::grant::{Grant, GrantScope, GrantSpec};

use crate::policy::Policy;

use crate::run::{KillScope, UsageDelta};

use crate::store::{ApprovalStore, AuditQuery, ListCursor, RequestQuery, StoreError};

use crate::token::{Key, Keyring};

const POLICY: &str = "\
approvals:
  ttl_seconds: 300
  approval_ttl_seconds: 60
tiers:
  high: { approvers: [lead] }
  pair: { approvers: [lead], quorum: 2 }
rules:
  - { id: sends, tool: email.send, effect: approval_required }
  - { id: wires, tool: payments.wire, effect: approval_required, tier: high }
  - { id: drops, tool: db.drop, effect: approval_required, tier: pair }
";

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", Uuid::new_v4().simple())
}

/// A pending request for `tool` in `run`, filed at `now`.
fn request(
    run: &str,
    tenant: &str,
    tool: &str,
    args: serde_json::Value,
    now: OffsetDateTime,
) -> ApprovalRequest {
    request_with_id(RequestId::new(), run, tenant, tool, args, now)
}

/// A pending request for `call`, filed at `now`.
fn request_for(call: ToolCall, now: OffsetDateTime) -> ApprovalRequest {
    let policy = Policy::from_yaml_str(POLICY).expect("the suite's policy loads");
    let decision = policy.evaluate(&call);
    let hash = call.args_hash().expect("small args hash");
    let version = policy.version().clone();
    ApprovalRequest::new(RequestId::new(), call, hash, &decision, version, now)
}

/// [`request`] with the id given.
fn request_with_id(
    id: RequestId,
    run: &str,
    tenant: &str,
    tool: &str,
    args: serde_json::Value,
    now: OffsetDateTime,
) -> ApprovalRequest {
    let policy = Policy::from_yaml_str(POLICY).expect("the suite's policy loads");
    let call = ToolCall::new(run, "call-1", tool, args)
        .with_requester("requester")
        .with_tenant(tenant);
    let decision = policy.evaluate(&call);
    let hash = call.args_hash().expect("small args hash");
    ApprovalRequest::new(id, call, hash, &decision, policy.version().clone(), now)
}

/// The audit record of the transition that made `r` what it is.
fn rec(r: &ApprovalRequest) -> AuditRecord {
    let at = r
        .finished_at()
        .or(r.decided_at())
        .unwrap_or_else(|| r.created_at());
    let event = match r.stored_state() {
        RequestState::Pending => AuditEvent::ApprovalRequired {
            rule_ids: r.rule_ids().iter().map(ToString::to_string).collect(),
            reason: None,
            tier: r.tier().map(ToString::to_string),
            expires_at: r.expires_at(),
        },
        RequestState::Approved => AuditEvent::ApprovalGranted {
            approver: r.approvers().last().cloned().unwrap_or_default(),
            approvers: r.approvers().to_vec(),
            approved_args_hash: None,
            changed_fields: Vec::new(),
            approval_expires_at: r.approval_expires_at().unwrap_or(at),
        },
        RequestState::Denied => AuditEvent::ApprovalDenied {
            approver: r.decided_by().unwrap_or_default().to_owned(),
            feedback: r.feedback().map(str::to_owned),
        },
        RequestState::Cancelled => AuditEvent::ApprovalCancelled {
            by: r.decided_by().unwrap_or_default().to_owned(),
            reason: r.feedback().map(str::to_owned),
        },
        RequestState::Expired => return AuditRecord::timeout(at, r),
        RequestState::Executing => AuditEvent::ExecutionStarted {
            approvers: r.approvers().to_vec(),
            approved_args_hash: None,
        },
        RequestState::Executed => AuditEvent::Executed {
            status: "ok".into(),
        },
        RequestState::Failed => AuditEvent::ExecutionFailed {
            error: "failed".into(),
        },
    };
    AuditRecord::for_request(at, r, event)
}

/// What the policy asks of the suite's calls when a grant is used: approval, by anyone.
fn suite_decision() -> crate::policy::Decision {
    crate::policy::Decision::approval_required("suite")
}

fn approver(tenant: &str) -> Approver {
    Approver::new("approver")
        .with_role("lead")
        .with_tenant(tenant)
}

fn token_for(request: &ApprovalRequest, now: OffsetDateTime) -> crate::token::ApprovalToken {
    let keys = Keyring::new(Key::new("suite", [5u8; 32]).expect("valid key"));
    keys.sign(&request.claims(now))
}

/// A request written by `create` reads back the same from `get`.
pub async fn create_then_get_round_trips(store: &dyn ApprovalStore, clock: &ManualClock) {
    let now = clock.now();
    let run = unique("run");
    let r = request(
        &run,
        "t1",
        "email.send",
        json!({"to": "a@x", "n": [1, 2.5]}),
        now,
    );
    let filed = store
        .create(r.clone(), &rec(&r), now)
        .await
        .expect("create");
    assert!(filed.created);
    assert_eq!(filed.request.id(), r.id());
    let got = store.get(r.id()).await.expect("get");
    assert_eq!(
        serde_json::to_value(&got).expect("json"),
        serde_json::to_value(&r).expect("json")
    );
    assert!(matches!(
        store.get(RequestId::new()).await,
        Err(StoreError::NotFound { .. })
    ));

    // Another call under an id that is taken is refused, and nothing is recorded.
    let clash = request_with_id(r.id(), &unique("run"), "t1", "email.send", json!({}), now);
    let record = rec(&clash);
    assert!(matches!(
        store.create(clash, &record, now).await,
        Err(StoreError::Duplicate { .. })
    ));
    let records = store
        .audit_records(&AuditQuery::request(r.id()))
        .await
        .expect("audit records");
    assert_eq!(records.len(), 1, "only the first filing is on the record");
}

/// While an identical call (run, tool, args hash) is pending, `create` returns it;
/// once it is no longer pending (decided, or its TTL passed even unswept) a new one is filed.
pub async fn create_dedupes_an_identical_pending_call(
    store: &dyn ApprovalStore,
    clock: &ManualClock,
) {
    let now = clock.now();
    let run = unique("run");
    let first = request(&run, "t1", "email.send", json!({"to": "a@x"}), now);
    store
        .create(first.clone(), &rec(&first), now)
        .await
        .expect("create");
    let again = request(&run, "t1", "email.send", json!({"to": "a@x"}), now);
    let record = rec(&again);
    let filed = store.create(again, &record, now).await.expect("create");
    assert!(
        !filed.created,
        "an identical pending call is not filed twice"
    );
    assert_eq!(filed.request.id(), first.id());

    // Other args, tool or run: a request of its own.
    for (r, t, a) in [
        (run.as_str(), "email.send", json!({"to": "b@x"})),
        (run.as_str(), "payments.wire", json!({"to": "a@x"})),
    ] {
        let other = request(r, "t1", t, a, now);
        let record = rec(&other);
        assert!(
            store
                .create(other, &record, now)
                .await
                .expect("create")
                .created
        );
    }
    let other_run = request(
        &unique("run"),
        "t1",
        "email.send",
        json!({"to": "a@x"}),
        now,
    );
    let record = rec(&other_run);
    assert!(
        store
            .create(other_run, &record, now)
            .await
            .expect("create")
            .created
    );

    // Past its TTL (unswept), the first no longer blocks a new request.
    let later = now + Duration::from_secs(300);
    let fresh = request(&run, "t1", "email.send", json!({"to": "a@x"}), later);
    let filed = store
        .create(fresh.clone(), &rec(&fresh), later)
        .await
        .expect("create");
    assert!(filed.created);
    assert_eq!(filed.request.id(), fresh.id());
}

/// Only a call of the same tenant and requester (compared exactly: none matches only
/// none) joins a pending request: a call from another tenant or requester, with the
/// same run, tool and args, files its own. A call that joins leaves its own
/// `approval_merged` record ([`AuditRecord::merged`]) on the trail: its call id,
/// requester, tenant and args hash, and the request it joined.
pub async fn create_merges_only_the_same_callers_calls(
    store: &dyn ApprovalStore,
    clock: &ManualClock,
) {
    let now = clock.now();
    let run = unique("run");
    let call = |id: &str, requester: Option<&str>, tenant: Option<&str>| {
        let mut call = ToolCall::new(run.as_str(), id, "email.send", json!({"to": "a@x"}));
        if let Some(r) = requester {
            call = call.with_requester(r);
        }
        if let Some(t) = tenant {
            call = call.with_tenant(t);
        }
        call
    };
    let file = |r: ApprovalRequest| async move {
        let record = rec(&r);
        store.create(r, &record, now).await.expect("create")
    };
    let bob = request_for(call("c-bob", Some("bob"), Some("acme")), now);
    assert!(file(bob.clone()).await.created);

    // Same run, tool and args from other callers: each files its own.
    let mut own = Vec::new();
    for (id, requester, tenant) in [
        ("c-mallory", Some("mallory"), Some("globex")),
        ("c-bob-globex", Some("bob"), Some("globex")),
        ("c-eve", Some("eve"), Some("acme")),
        ("c-anon", None, Some("acme")),
        ("c-untenanted", Some("bob"), None),
        ("c-nobody", None, None),
    ] {
        let other = request_for(call(id, requester, tenant), now);
        let filed = file(other.clone()).await;
        assert!(filed.created, "{id} gets a request of its own");
        assert_eq!(filed.request.id(), other.id(), "{id}");
        own.push(other);
    }

    // The same caller again, under its own call id: joins, and is on the record.
    let bob_again = request_for(call("c-bob-2", Some("bob"), Some("acme")), now);
    let filed = file(bob_again.clone()).await;
    assert!(!filed.created);
    assert_eq!(filed.request.id(), bob.id());
    // None matches none.
    let nobody_again = request_for(call("c-nobody-2", None, None), now);
    let filed = file(nobody_again.clone()).await;
    assert!(!filed.created);
    assert_eq!(filed.request.id(), own[5].id());

    let mut records = store
        .audit_records(&AuditQuery::request(bob.id()))
        .await
        .expect("audit records");
    for x in &mut records {
        x.chain = None;
    }
    let merged = AuditRecord::merged(now, bob_again.call(), bob_again.args_hash(), &bob);
    assert_eq!(records, [rec(&bob), merged.clone()]);
    assert_eq!(merged.event_name(), "approval_merged");
    assert_eq!(merged.call_id, "c-bob-2");
    assert_eq!(merged.requested_by.as_deref(), Some("bob"));
    assert_eq!(merged.tenant.as_deref(), Some("acme"));
    assert_eq!(merged.args_hash, Some(bob_again.args_hash()));
    assert_eq!(merged.request_id, Some(bob.id()));
    let nobody = store
        .audit_records(&AuditQuery::request(own[5].id()))
        .await
        .expect("audit records");
    let names: Vec<_> = nobody.iter().map(|r| r.event_name()).collect();
    assert_eq!(names, ["approval_required", "approval_merged"]);
    assert_eq!(nobody[1].call_id, "c-nobody-2");
}

/// `update` writes only over the version it was computed from: of two transitions from
/// the same version, exactly one wins; the loser gets `Conflict`.
pub async fn update_is_compare_and_set(store: &dyn ApprovalStore, clock: &ManualClock) {
    let now = clock.now();
    let r = request(&unique("run"), "t1", "email.send", json!({}), now);
    store
        .create(r.clone(), &rec(&r), now)
        .await
        .expect("create");
    let approved = r.approve(&approver("t1"), now).expect("approve");
    let denied = r
        .deny(&approver("t1"), Some("no".into()), now)
        .expect("deny");
    store
        .update(&approved, &rec(&approved))
        .await
        .expect("first transition wins");
    assert!(matches!(
        store.update(&denied, &rec(&denied)).await,
        Err(StoreError::Conflict {
            expected: 1,
            found: 2,
            ..
        })
    ));
    let stored = store.get(r.id()).await.expect("get");
    assert_eq!(stored.stored_state(), RequestState::Approved);
    assert_eq!(stored.version(), 2);
    // Replaying the same write is a conflict too.
    assert!(matches!(
        store.update(&approved, &rec(&approved)).await,
        Err(StoreError::Conflict { .. })
    ));
    // An unknown request is not found.
    let ghost = request(&unique("run"), "t1", "email.send", json!({}), now);
    let ghost = ghost.approve(&approver("t1"), now).expect("approve");
    assert!(matches!(
        store.update(&ghost, &rec(&ghost)).await,
        Err(StoreError::NotFound { .. })
    ));
}

/// An approval is claimed at most once: the second claim from the same version conflicts.
pub async fn a_claim_wins_once(store: &dyn ApprovalStore, clock: &ManualClock) {
    let now = clock.now();
    let r = request(&unique("run"), "t1", "email.send", json!({}), now);
    store
        .create(r.clone(), &rec(&r), now)
        .await
        .expect("create");
    let approved = r.approve(&approver("t1"), now).expect("approve");
    let approved = approved.clone().with_token(token_for(&approved, now));
    store
        .update(&approved, &rec(&approved))
        .await
        .expect("approve");
    let claim = approved.claim(now).expect("claim");
    store
        .update(&claim, &rec(&claim))
        .await
        .expect("first claim");
    assert!(matches!(
        store.update(&claim, &rec(&claim)).await,
        Err(StoreError::Conflict { .. })
    ));
    let stored = store.get(r.id()).await.expect("get");
    assert_eq!(stored.stored_state(), RequestState::Executing);
    assert!(
        stored.token().is_some(),
        "the token survives the round trip"
    );
}

/// `list` applies expiry at `now`, filters by state, run, tenant, tool, tier and age,
/// orders oldest first, and honours the limit.
pub async fn list_filters_and_orders(store: &dyn ApprovalStore, clock: &ManualClock) {
    let t0 = clock.now();
    let tenant = unique("tenant");
    let run = unique("run");
    let a = request(&run, &tenant, "email.send", json!({"i": 1}), t0);
    let b = request(
        &run,
        &tenant,
        "payments.wire",
        json!({"i": 2}),
        t0 + Duration::from_secs(10),
    );
    let c = request(
        &unique("run"),
        &tenant,
        "email.send",
        json!({"i": 3}),
        t0 + Duration::from_secs(20),
    );
    for r in [&a, &b, &c] {
        store
            .create(r.clone(), &rec(r), r.created_at())
            .await
            .expect("create");
    }
    let now = t0 + Duration::from_secs(30);
    let ids = |found: Vec<ApprovalRequest>| found.iter().map(|r| r.id()).collect::<Vec<_>>();
    let by_tenant = RequestQuery {
        tenant: Some(tenant.clone()),
        ..RequestQuery::pending()
    };
    assert_eq!(
        ids(store.list(&by_tenant, now).await.expect("list")),
        [a.id(), b.id(), c.id()]
    );
    let q = RequestQuery {
        run_id: Some(run.clone()),
        ..by_tenant.clone()
    };
    assert_eq!(
        ids(store.list(&q, now).await.expect("list")),
        [a.id(), b.id()]
    );
    let q = RequestQuery {
        tool: Some("email.send".into()),
        ..by_tenant.clone()
    };
    assert_eq!(
        ids(store.list(&q, now).await.expect("list")),
        [a.id(), c.id()]
    );
    let q = RequestQuery {
        tier: Some("high".into()),
        ..by_tenant.clone()
    };
    assert_eq!(ids(store.list(&q, now).await.expect("list")), [b.id()]);
    let q = RequestQuery {
        created_before: Some(t0 + Duration::from_secs(15)),
        ..by_tenant.clone()
    };
    assert_eq!(
        ids(store.list(&q, now).await.expect("list")),
        [a.id(), b.id()]
    );
    let q = RequestQuery {
        limit: Some(1),
        ..by_tenant.clone()
    };
    assert_eq!(ids(store.list(&q, now).await.expect("list")), [a.id()]);

    // Pages: `after` the last one shown reads on from there, one at a time, each request
    // once, in order; requests filed at the same instant are ordered by id.
    let tie_tenant = unique("tenant");
    let twins: Vec<ApprovalRequest> = (0..3)
        .map(|i| request(&run, &tie_tenant, "email.send", json!({"twin": i}), t0))
        .collect();
    for r in &twins {
        store
            .create(r.clone(), &rec(r), r.created_at())
            .await
            .expect("create");
    }
    for (tenant, expected) in [
        (&tenant, vec![a.id(), b.id(), c.id()]),
        (&tie_tenant, {
            let mut ids: Vec<RequestId> = twins.iter().map(ApprovalRequest::id).collect();
            ids.sort();
            ids
        }),
    ] {
        let mut seen = Vec::new();
        let mut page = RequestQuery {
            tenant: Some(tenant.clone()),
            limit: Some(1),
            ..RequestQuery::pending()
        };
        loop {
            let found = store.list(&page, now).await.expect("list");
            let Some(last) = found.last() else { break };
            page.after = Some(ListCursor::after(last));
            seen.extend(found.iter().map(ApprovalRequest::id));
            assert!(seen.len() <= expected.len(), "paging does not end");
        }
        assert_eq!(seen, expected, "pages of one, after the last shown");
    }

    // `a` times out at t0 + 300 even though nothing swept it.
    let late = t0 + Duration::from_secs(305);
    assert_eq!(
        ids(store.list(&by_tenant, late).await.expect("list")),
        [b.id(), c.id()]
    );
    let expired = RequestQuery {
        state: Some(RequestState::Expired),
        tenant: Some(tenant),
        ..RequestQuery::default()
    };
    assert_eq!(
        ids(store.list(&expired, late).await.expect("list")),
        [a.id()]
    );
}

/// `sweep_expired` records as expired exactly the requests due at `now` (pending past the
/// decision TTL, approved past the approval TTL), at most `limit` of them, once.
pub async fn sweep_expires_what_is_due(store: &dyn ApprovalStore, clock: &ManualClock) {
    let t0 = clock.now();
    let tenant = unique("tenant");
    let pending = request(&unique("run"), &tenant, "email.send", json!({}), t0);
    let fresh = request(
        &unique("run"),
        &tenant,
        "email.send",
        json!({}),
        t0 + Duration::from_secs(200),
    );
    let approved = request(&unique("run"), &tenant, "email.send", json!({}), t0);
    for r in [&pending, &fresh, &approved] {
        store
            .create(r.clone(), &rec(r), r.created_at())
            .await
            .expect("create");
    }
    let ok = approved
        .approve(&approver(&tenant), t0 + Duration::from_secs(250))
        .expect("approve");
    store.update(&ok, &rec(&ok)).await.expect("approve");

    // Each comes back with the `approval_timeout` record the store kept with it.
    let ids = |found: &[crate::store::Expired]| {
        for e in found {
            assert_eq!(e.request.stored_state(), RequestState::Expired);
            assert_eq!(e.record.request_id, Some(e.request.id()));
            assert!(matches!(e.record.event, AuditEvent::ApprovalTimeout { .. }));
        }
        found.iter().map(|e| e.request.id()).collect::<Vec<_>>()
    };
    let first = store
        .sweep_expired(t0 + Duration::from_secs(309), usize::MAX)
        .await
        .expect("sweep");
    let first = ids(&first);
    assert!(
        first.contains(&pending.id()),
        "pending past its decision TTL"
    );
    assert!(!first.contains(&fresh.id()), "not yet due");
    assert!(
        !first.contains(&approved.id()),
        "its approval TTL ends at t0 + 310"
    );
    assert_eq!(
        store.get(pending.id()).await.expect("get").stored_state(),
        RequestState::Expired
    );

    // The limit is honoured, and nothing expires twice.
    let t1 = t0 + Duration::from_secs(1000);
    let more = [
        request(&unique("run"), &tenant, "email.send", json!({}), t1),
        request(&unique("run"), &tenant, "email.send", json!({}), t1),
    ];
    for r in &more {
        store.create(r.clone(), &rec(r), t1).await.expect("create");
    }
    let due = t1 + Duration::from_secs(300);
    let limited = store.sweep_expired(due, 1).await.expect("sweep");
    assert_eq!(limited.len(), 1);
    let rest = store.sweep_expired(due, usize::MAX).await.expect("sweep");
    let all: Vec<RequestId> = ids(&limited).into_iter().chain(ids(&rest)).collect();
    for id in [fresh.id(), approved.id(), more[0].id(), more[1].id()] {
        assert_eq!(all.iter().filter(|x| **x == id).count(), 1, "swept once");
    }
    assert!(!all.contains(&pending.id()), "expired once");
    assert_eq!(
        store.get(approved.id()).await.expect("get").stored_state(),
        RequestState::Expired
    );
}

/// Kill switches and read-only mode round-trip and are idempotent, and every flip is on
/// the trail with it, naming who flipped it (found by [`AuditQuery::actor`]).
pub async fn switches_round_trip(store: &dyn ApprovalStore, clock: &ManualClock) {
    let now = clock.now();
    let who = unique("ops");
    let tool = KillScope::Tool(unique("tool"));
    let kill = |engaged| {
        let event = AuditEvent::KillSwitchChanged {
            by: who.clone(),
            scope: tool.clone(),
            engaged,
        };
        AuditRecord::control(now, "v", event)
    };
    let read_only = |on| {
        let event = AuditEvent::ReadOnlyChanged {
            by: who.clone(),
            on,
        };
        AuditRecord::control(now, "v", event)
    };
    store
        .set_kill_switch(tool.clone(), true, &kill(true))
        .await
        .expect("kill");
    store
        .set_kill_switch(tool.clone(), true, &kill(true))
        .await
        .expect("kill twice");
    let s = store.switches().await.expect("switches");
    assert_eq!(s.killed.iter().filter(|k| **k == tool).count(), 1);
    store
        .set_kill_switch(tool.clone(), false, &kill(false))
        .await
        .expect("release");
    assert!(
        !store
            .switches()
            .await
            .expect("switches")
            .killed
            .contains(&tool)
    );
    let before = store.switches().await.expect("switches").read_only;
    store
        .set_read_only(!before, &read_only(!before))
        .await
        .expect("read only");
    assert_eq!(store.switches().await.expect("switches").read_only, !before);
    store
        .set_read_only(before, &read_only(before))
        .await
        .expect("read only");

    let mut trail = store
        .audit_records(&AuditQuery::actor(who.as_str()))
        .await
        .expect("audit records");
    assert!(trail.iter().all(|x| x.chain.is_some()), "read back linked");
    for x in &mut trail {
        x.chain = None;
    }
    assert_eq!(
        trail,
        [
            kill(true),
            kill(true),
            kill(false),
            read_only(!before),
            read_only(before)
        ],
        "every flip on the record, as given, under who flipped it"
    );
}

/// Usage adds up per run and the run starts at its first counted use; `usage` reads the
/// totals without counting or starting anything.
pub async fn usage_adds_up_per_run(store: &dyn ApprovalStore, clock: &ManualClock) {
    let now = clock.now();
    let run = unique("run");
    let read = store
        .add_usage(&run, UsageDelta::default(), now)
        .await
        .expect("read");
    assert_eq!(read.tool_calls, 0);
    assert_eq!(read.started_at, None);
    assert_eq!(store.usage(&run).await.expect("usage"), read);
    let delta = UsageDelta {
        steps: 1,
        tool_calls: 2,
        usd: 0.25,
    };
    store.add_usage(&run, delta, now).await.expect("add");
    let u = store
        .add_usage(&run, delta, now + Duration::from_secs(5))
        .await
        .expect("add");
    assert_eq!((u.steps, u.tool_calls), (2, 4));
    assert!((u.usd - 0.5).abs() < 1e-9);
    assert_eq!(u.started_at, Some(now));
    assert_eq!(store.usage(&run).await.expect("usage"), u);
    assert_eq!(
        store.usage(&run).await.expect("usage"),
        u,
        "reading counts nothing"
    );
    let other = store
        .add_usage(&unique("run"), UsageDelta::default(), now)
        .await
        .expect("read");
    assert_eq!(other.tool_calls, 0);
}

/// [`switches_then_add_usage`](crate::store::ControlStore::switches_then_add_usage)
/// counts only when the switches do not stop the call, and hands back the switches
/// either way.
pub async fn switches_then_add_usage_counts_unless_stopped(
    store: &dyn ApprovalStore,
    clock: &ManualClock,
) {
    let now = clock.now();
    let run = unique("run");
    let one = UsageDelta {
        tool_calls: 1,
        ..UsageDelta::default()
    };
    let (switches, usage) = store
        .switches_then_add_usage(&|_| true, &run, one, now)
        .await
        .expect("stopped");
    assert_eq!(usage, None, "a stopped call is not counted");
    assert_eq!(store.usage(&run).await.expect("usage").tool_calls, 0);
    // The store may be shared: compare with a read of the switches made just before.
    let before = store.switches().await.expect("switches");
    let (again, usage) = store
        .switches_then_add_usage(&|_| false, &run, one, now)
        .await
        .expect("counted");
    assert_eq!((again, switches), (before.clone(), before));
    let usage = usage.expect("a call not stopped is counted");
    assert_eq!((usage.tool_calls, usage.started_at), (1, Some(now)));
    assert_eq!(store.usage(&run).await.expect("usage"), usage);
}

/// One use of a grant covering `call`, decided above the store as the gate does
/// ([`Grant::covers`], then [`GrantStore::update_grant`](crate::store::GrantStore::update_grant)).
/// The tool calls run `run` has used.
async fn tool_calls(store: &dyn ApprovalStore, run: &str) -> u64 {
    store.usage(run).await.expect("usage").tool_calls
}

/// A record that [counts its call](AuditRecord::counts_call) adds one tool call to its
/// run's usage in the write that takes it (`append_audit`, `create` filing or merging,
/// `update_grant`); a record without the mark counts nothing; the mark is not kept.
pub async fn records_that_count_their_call_add_to_usage(
    store: &dyn ApprovalStore,
    clock: &ManualClock,
) {
    let now = clock.now();
    let tenant = unique("tenant");
    let run = unique("run");

    let call = ToolCall::new(run.as_str(), "c1", "email.send", json!({"to": "a@x"}))
        .with_requester("requester")
        .with_tenant(tenant.as_str());
    let allow = AuditEvent::Allow {
        rule_ids: Vec::new(),
    };
    let plain = AuditRecord::new(now, &call, None, "v", allow.clone());
    store.append_audit(&plain).await.expect("append");
    assert_eq!(
        tool_calls(store, &run).await,
        0,
        "a record without the mark counts nothing"
    );
    let counted = AuditRecord::new(now, &call, None, "v", allow).counting_call(true);
    store.append_audit(&counted).await.expect("append");
    let usage = store.usage(&run).await.expect("usage");
    assert_eq!((usage.tool_calls, usage.started_at), (1, Some(now)));

    // Filing, then an identical call merged into the filing.
    let r = request(&run, &tenant, "email.send", json!({"to": "b@x"}), now);
    let filed = store
        .create(r.clone(), &rec(&r).counting_call(true), now)
        .await
        .expect("create");
    assert!(filed.created);
    assert_eq!(tool_calls(store, &run).await, 2, "filing counts the call");
    let twin = request(&run, &tenant, "email.send", json!({"to": "b@x"}), now);
    let record = rec(&twin).counting_call(true);
    let merged = store.create(twin, &record, now).await.expect("create");
    assert!(!merged.created);
    assert_eq!(
        tool_calls(store, &run).await,
        3,
        "merging counts the call too"
    );

    // A grant's use.
    let approved = r.approve(&approver(&tenant), now).expect("approve");
    store
        .update(&approved, &rec(&approved))
        .await
        .expect("approve");
    let spec = GrantSpec::new(GrantScope::Run, Duration::from_secs(60));
    let grant = Grant::from_approval(&approved, &[approver(&tenant)], &spec, now).expect("grant");
    store.put_grant(&grant, &rec(&approved)).await.expect("put");
    assert_eq!(
        tool_calls(store, &run).await,
        3,
        "approving and granting count nothing"
    );
    let hash: ArgsHash = call.args_hash().expect("hash");
    let used =
        crate::gate::grants::use_grant(store, &call, &hash, &suite_decision(), "v", true, now)
            .await
            .expect("use");
    assert!(used.is_some(), "the grant covers the call");
    assert_eq!(
        tool_calls(store, &run).await,
        4,
        "a grant's use counts the call"
    );

    let kept = store
        .audit_records(&AuditQuery::run(run.as_str()))
        .await
        .expect("audit records");
    assert!(
        kept.iter().all(|r| !r.counts_call()),
        "the mark is an instruction, not kept"
    );
}

async fn use_grant(
    store: &dyn ApprovalStore,
    call: &ToolCall,
    hash: &ArgsHash,
    decision: &crate::Decision,
    policy_version: &str,
    now: OffsetDateTime,
) -> Result<Option<Grant>, StoreError> {
    let used =
        crate::gate::grants::use_grant(store, call, hash, decision, policy_version, false, now)
            .await?;
    Ok(used.map(|(grant, _)| grant))
}

/// Revokes grant `id` as `by` at `now`, as the desk does.
async fn revoke_grant(
    store: &dyn ApprovalStore,
    id: crate::desk::GrantId,
    by: &str,
    now: OffsetDateTime,
) -> Result<Grant, StoreError> {
    let grant = store.grant(id).await?;
    let request = store.get(grant.request_id()).await?;
    let (grant, _) = crate::gate::grants::revoke_grant(store, id, &request, by, now).await?;
    Ok(grant)
}

/// Grants cover what they cover, count uses up to their limit, and stop at revocation
/// and expiry.
pub async fn grants_cover_count_and_revoke(store: &dyn ApprovalStore, clock: &ManualClock) {
    let now = clock.now();
    let tenant = unique("tenant");
    let run = unique("run");
    let r = request(&run, &tenant, "email.send", json!({"to": "a@x"}), now);
    store
        .create(r.clone(), &rec(&r), now)
        .await
        .expect("create");
    let approved = r.approve(&approver(&tenant), now).expect("approve");
    store
        .update(&approved, &rec(&approved))
        .await
        .expect("approve");
    let spec = GrantSpec::new(GrantScope::Run, Duration::from_secs(60)).max_uses(2);
    let grant = Grant::from_approval(&approved, &[approver(&tenant)], &spec, now).expect("grant");
    store.put_grant(&grant, &rec(&approved)).await.expect("put");

    let call = ToolCall::new(run.as_str(), "c2", "email.send", json!({"to": "b@x"}))
        .with_requester("requester")
        .with_tenant(tenant.as_str());
    let hash: ArgsHash = call.args_hash().expect("hash");
    let first = use_grant(store, &call, &hash, &suite_decision(), "v", now)
        .await
        .expect("use");
    assert_eq!(first.map(|g| g.uses()), Some(1));
    let second = use_grant(store, &call, &hash, &suite_decision(), "v", now)
        .await
        .expect("use");
    assert_eq!(second.map(|g| g.uses()), Some(2));
    assert!(
        use_grant(store, &call, &hash, &suite_decision(), "v", now)
            .await
            .expect("use")
            .is_none(),
        "used up"
    );
    let records = store
        .audit_records(&AuditQuery::run(run.as_str()))
        .await
        .expect("audit records");
    let uses: Vec<u32> = records
        .iter()
        .filter_map(|r| match r.event {
            AuditEvent::GrantUsed { uses, .. } => Some(uses),
            _ => None,
        })
        .collect();
    assert_eq!(
        uses,
        [1, 2],
        "each use on the record with it, none for a refusal"
    );

    let grant = Grant::from_approval(
        &approved,
        &[approver(&tenant)],
        &GrantSpec::new(GrantScope::Run, Duration::from_secs(60)),
        now,
    )
    .expect("grant");
    store.put_grant(&grant, &rec(&approved)).await.expect("put");
    assert!(
        store
            .grants(now)
            .await
            .expect("list")
            .iter()
            .any(|g| g.id() == grant.id())
    );
    let late = now + Duration::from_secs(60);
    assert!(
        use_grant(store, &call, &hash, &suite_decision(), "v", late)
            .await
            .expect("use")
            .is_none(),
        "expired"
    );
    let revoked = revoke_grant(store, grant.id(), "approver", now)
        .await
        .expect("revoke");
    assert_eq!(revoked.revoked_at(), Some(now));
    let records = store
        .audit_records(&AuditQuery::request(r.id()))
        .await
        .expect("audit records");
    assert!(
        records.iter().any(|x| matches!(
            &x.event,
            AuditEvent::GrantRevoked { grant_id, by } if *grant_id == grant.id() && by == "approver"
        )),
        "the revocation is on the record with it"
    );
    assert!(
        use_grant(store, &call, &hash, &suite_decision(), "v", now)
            .await
            .expect("use")
            .is_none(),
        "revoked"
    );
    assert!(
        !store
            .grants(now)
            .await
            .expect("list")
            .iter()
            .any(|g| g.id() == grant.id())
    );
    assert!(matches!(
        revoke_grant(store, crate::desk::GrantId::new(), "approver", now).await,
        Err(StoreError::GrantNotFound { .. })
    ));
}

/// A cancel or a denial ends the request's grants: cancelling an approved request that
/// left a grant revokes the grant in the same write (at the cancel's time, by whoever
/// cancelled), so it no longer shows in `grants` nor covers a call, and the trail has its
/// `grant_revoked` right after the `approval_cancelled`. Another request's grant stays.
pub async fn cancelling_ends_the_requests_grants(store: &dyn ApprovalStore, clock: &ManualClock) {
    let now = clock.now();
    let tenant = unique("tenant");
    let run = unique("run");
    let file_and_approve = |args: serde_json::Value| {
        let r = request(&run, &tenant, "email.send", args, now);
        let tenant = tenant.clone();
        async move {
            store
                .create(r.clone(), &rec(&r), now)
                .await
                .expect("create");
            let approved = r.approve(&approver(&tenant), now).expect("approve");
            store
                .update(&approved, &rec(&approved))
                .await
                .expect("approve");
            let spec = GrantSpec::new(GrantScope::Run, Duration::from_secs(600));
            let by = [approver(&tenant)];
            let grant = Grant::from_approval(&approved, &by, &spec, now).expect("grant");
            store.put_grant(&grant, &rec(&approved)).await.expect("put");
            (approved, grant)
        }
    };
    let (approved, grant) = file_and_approve(json!({"to": "a@x"})).await;
    let (_, kept) = file_and_approve(json!({"to": "b@x"})).await;
    let call = ToolCall::new(run.as_str(), "c2", "email.send", json!({"to": "a@x"}))
        .with_requester("requester")
        .with_tenant(tenant.as_str());
    let hash: ArgsHash = call.args_hash().expect("hash");

    let at = now + Duration::from_secs(5);
    let cancelled = approved
        .cancel(&approver(&tenant), Some("wrong recipient".into()), at)
        .expect("cancel");
    store
        .update(&cancelled, &rec(&cancelled))
        .await
        .expect("cancel");

    let live = store.grants(at).await.expect("grants");
    assert!(!live.iter().any(|g| g.id() == grant.id()), "revoked");
    assert!(
        live.iter().any(|g| g.id() == kept.id()),
        "another request's grant stays"
    );
    let used = use_grant(store, &call, &hash, &suite_decision(), "v", at)
        .await
        .expect("use");
    assert!(
        used.is_none_or(|g| g.id() != grant.id()),
        "the revoked grant covers nothing"
    );
    let mut trail = store
        .audit_records(&AuditQuery::request(approved.id()))
        .await
        .expect("audit records");
    for x in &mut trail {
        x.chain = None;
    }
    let at_cancel = trail
        .iter()
        .position(|x| x.event_name() == "approval_cancelled")
        .expect("the cancel is on the record");
    assert_eq!(
        trail[at_cancel + 1..],
        [AuditRecord::grant_revoked(
            at,
            &cancelled,
            grant.id(),
            "approver"
        )],
        "the revocation right after the cancel, and nothing else"
    );
    // Once, under who cancelled.
    let revocations = store
        .audit_records(&AuditQuery::actor("approver"))
        .await
        .expect("audit records")
        .into_iter()
        .filter(|x| matches!(&x.event, AuditEvent::GrantRevoked { grant_id, .. } if *grant_id == grant.id()))
        .count();
    assert_eq!(revocations, 1);
}

/// A vote toward a quorum is a write like any other: the request stays pending with the
/// vote kept, votes racing from one version conflict, and the vote that completes the
/// quorum approves it, naming both approvers.
pub async fn quorum_votes_are_kept(store: &dyn ApprovalStore, clock: &ManualClock) {
    let now = clock.now();
    let tenant = unique("tenant");
    let r = request(&unique("run"), &tenant, "db.drop", json!({}), now);
    store
        .create(r.clone(), &rec(&r), now)
        .await
        .expect("create");
    let voter = |id: &str| {
        Approver::new(id)
            .with_role("lead")
            .with_tenant(tenant.as_str())
    };
    let first = r.approve(&voter("a1"), now).expect("vote");
    let racing = r.approve(&voter("a2"), now).expect("vote");
    assert_eq!(
        first.stored_state(),
        RequestState::Pending,
        "a vote, not yet approved"
    );
    store.update(&first, &rec(&first)).await.expect("vote");
    assert!(matches!(
        store.update(&racing, &rec(&racing)).await,
        Err(StoreError::Conflict { .. })
    ));
    let stored = store.get(r.id()).await.expect("get");
    assert_eq!(stored.stored_state(), RequestState::Pending);
    assert_eq!(stored.approvers(), ["a1"]);
    let second = stored.approve(&voter("a2"), now).expect("vote");
    store.update(&second, &rec(&second)).await.expect("vote");
    let stored = store.get(r.id()).await.expect("get");
    assert_eq!(stored.stored_state(), RequestState::Approved);
    assert_eq!(stored.approvers(), ["a1", "a2"]);
}

/// The TTLs hold to the nanosecond in every read: a request is pending one nanosecond
/// before `expires_at` and expired at it, an approval usable one nanosecond before
/// `approval_expires_at` and expired at it, in `list` and in `sweep_expired` alike.
pub async fn ttl_edges_hold_to_the_nanosecond(store: &dyn ApprovalStore, clock: &ManualClock) {
    let now = clock.now();
    let tenant = unique("tenant");
    let ns = time::Duration::nanoseconds(1);
    let r = request(&unique("run"), &tenant, "email.send", json!({}), now);
    let a = request(&unique("run"), &tenant, "email.send", json!({"n": 2}), now);
    for x in [&r, &a] {
        store.create(x.clone(), &rec(x), now).await.expect("create");
    }
    let approved = a.approve(&approver(&tenant), now).expect("approve");
    store
        .update(&approved, &rec(&approved))
        .await
        .expect("approve");
    let ids_in = |state, at| {
        let query = RequestQuery {
            state: Some(state),
            tenant: Some(tenant.clone()),
            ..RequestQuery::default()
        };
        async move {
            let found = store.list(&query, at).await.expect("list");
            found.iter().map(|x| x.id()).collect::<Vec<_>>()
        }
    };
    let swept = |at| async move {
        let swept = store.sweep_expired(at, usize::MAX).await.expect("sweep");
        swept.iter().map(|x| x.request.id()).collect::<Vec<_>>()
    };

    // The approval TTL.
    let used_by = approved.approval_expires_at().expect("approved");
    assert!(
        used_by < r.expires_at(),
        "the suite's approval TTL is the shorter"
    );
    assert_eq!(ids_in(RequestState::Approved, used_by - ns).await, [a.id()]);
    assert!(ids_in(RequestState::Approved, used_by).await.is_empty());
    assert!(
        ids_in(RequestState::Expired, used_by)
            .await
            .contains(&a.id())
    );
    assert!(!swept(used_by - ns).await.contains(&a.id()));
    assert!(swept(used_by).await.contains(&a.id()));

    // The decision TTL.
    let due = r.expires_at();
    assert_eq!(ids_in(RequestState::Pending, due - ns).await, [r.id()]);
    assert!(ids_in(RequestState::Pending, due).await.is_empty());
    assert!(!swept(due - ns).await.contains(&r.id()));
    assert!(ids_in(RequestState::Expired, due).await.contains(&r.id()));
    assert!(swept(due).await.contains(&r.id()));
}

/// Each change's audit record lands in the trail with it, once: `create` (its
/// `approval_merged` instead when it joins a pending twin), `update` (nothing when it
/// conflicts), `sweep_expired` (an
/// `approval_timeout` each), `put_grant` and `append_audit`. `audit_records` returns the
/// records as written, in order, by request or by run, up to the limit.
pub async fn changes_write_their_records(store: &dyn ApprovalStore, clock: &ManualClock) {
    let now = clock.now();
    let run = unique("run");
    let history = |query: AuditQuery| async move {
        let records = store.audit_records(&query).await.expect("audit records");
        records.iter().map(|r| r.event_name()).collect::<Vec<_>>()
    };

    let r = request(&run, "t1", "email.send", json!({}), now);
    store
        .create(r.clone(), &rec(&r), now)
        .await
        .expect("create");
    let twin = request(&run, "t1", "email.send", json!({}), now);
    let record = rec(&twin);
    let filed = store
        .create(twin.clone(), &record, now)
        .await
        .expect("create");
    assert!(!filed.created);
    let approved = r.approve(&approver("t1"), now).expect("approve");
    store
        .update(&approved, &rec(&approved))
        .await
        .expect("approve");
    let denied = r.deny(&approver("t1"), None, now).expect("deny");
    assert!(store.update(&denied, &rec(&denied)).await.is_err());
    let mut records = store
        .audit_records(&AuditQuery::request(r.id()))
        .await
        .expect("audit records");
    assert!(
        records.iter().all(|x| x.chain.is_some()),
        "read back linked"
    );
    for x in &mut records {
        x.chain = None;
    }
    let merged = AuditRecord::merged(now, twin.call(), twin.args_hash(), &r);
    assert_eq!(
        records,
        [rec(&r), merged, rec(&approved)],
        "written as given, once each, the twin's merge, nothing for the loser"
    );

    // A sweep records each timeout, from the state that timed out.
    let other = request(&run, "t1", "email.send", json!({"n": 2}), now);
    store
        .create(other.clone(), &rec(&other), now)
        .await
        .expect("create");
    let due = now + Duration::from_secs(300);
    store.sweep_expired(due, usize::MAX).await.expect("sweep");
    let timeouts = |id| async move {
        let records = store
            .audit_records(&AuditQuery::request(id))
            .await
            .expect("audit records");
        records
            .into_iter()
            .filter_map(|r| match r.event {
                AuditEvent::ApprovalTimeout { from } => Some((r.at, from)),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(timeouts(r.id()).await, [(due, "approved".to_owned())]);
    assert_eq!(timeouts(other.id()).await, [(due, "pending".to_owned())]);

    // Grants and records of no change join the same trail.
    let spec = GrantSpec::new(GrantScope::Run, Duration::from_secs(60));
    let grant = Grant::from_approval(&approved, &[approver("t1")], &spec, now).expect("grant");
    let created = AuditRecord::for_request(
        now,
        &approved,
        AuditEvent::GrantCreated {
            grant_id: grant.id(),
            by: "approver".into(),
            scope: grant.scope(),
            grant_tool: grant.tool().to_owned(),
            expires_at: grant.expires_at(),
            max_uses: grant.max_uses(),
        },
    );
    store.put_grant(&grant, &created).await.expect("put");
    let allow = AuditRecord::new(
        due,
        r.call(),
        Some(r.args_hash()),
        "v",
        AuditEvent::Allow {
            rule_ids: Vec::new(),
        },
    );
    store.append_audit(&allow).await.expect("append");
    let events = history(AuditQuery::run(run.as_str())).await;
    assert_eq!(events.len(), 8, "{events:?}");
    assert_eq!(
        events[..4],
        [
            "approval_required",
            "approval_merged",
            "approval_granted",
            "approval_required"
        ]
    );
    assert_eq!(events[4..6], ["approval_timeout", "approval_timeout"]);
    assert_eq!(events[6..], ["grant_created", "allow"]);
    let first_two = AuditQuery {
        limit: Some(2),
        ..AuditQuery::run(run.as_str())
    };
    assert_eq!(
        history(first_two).await,
        ["approval_required", "approval_merged"]
    );
    assert!(
        history(AuditQuery::run(unique("run"))).await.is_empty(),
        "another run's history is its own"
    );

    // What one person did, a time range, and pages after a `seq`.
    assert_eq!(
        history(AuditQuery {
            run_id: Some(run.clone()),
            ..AuditQuery::actor("approver")
        })
        .await,
        ["approval_granted", "grant_created"]
    );
    assert_eq!(
        history(AuditQuery {
            from: Some(due),
            ..AuditQuery::run(run.as_str())
        })
        .await,
        ["approval_timeout", "approval_timeout", "allow"]
    );
    assert_eq!(
        history(AuditQuery {
            until: Some(due),
            ..AuditQuery::run(run.as_str())
        })
        .await
        .len(),
        5
    );
    let all = store
        .audit_records(&AuditQuery::run(run.as_str()))
        .await
        .expect("audit records");
    let sixth = all[5].chain.expect("linked").seq;
    assert_eq!(
        history(AuditQuery {
            after_seq: Some(sixth),
            ..AuditQuery::run(run.as_str())
        })
        .await,
        ["grant_created", "allow"]
    );

    // The whole trail is one unbroken chain.
    let trail = store
        .audit_records(&AuditQuery::default())
        .await
        .expect("audit records");
    let head = crate::audit::verify_chain(&trail, None).expect("the trail verifies");
    assert_eq!(head.seq, trail.len() as u64);
}

/// A subscriber hears of every request filed, committed `update` and sweep, in order,
/// with the request's new state; a `create` that joins an identical pending request and
/// a write that lost its compare-and-set tell nothing.
///
/// It waits for those notices: a store that never sends them hangs it, so a host's test
/// harness may want a timeout around it.
pub async fn subscribers_hear_of_changes(store: &dyn ApprovalStore, clock: &ManualClock) {
    let now = clock.now();
    let mut changes = store.subscribe().await.expect("subscribe");
    let r = request(&unique("run"), "t1", "email.send", json!({}), now);
    let other = request(&unique("run"), "t1", "email.send", json!({}), now);
    for x in [&r, &other] {
        store.create(x.clone(), &rec(x), now).await.expect("create");
    }
    let twin = request(r.call().run_id(), "t1", "email.send", json!({}), now);
    let record = rec(&twin);
    let joined = store.create(twin, &record, now).await.expect("create");
    assert!(!joined.created, "joins the pending request");
    let approved = r.approve(&approver("t1"), now).expect("approve");
    store
        .update(&approved, &rec(&approved))
        .await
        .expect("approve");
    let denied = r.deny(&approver("t1"), None, now).expect("deny");
    assert!(store.update(&denied, &rec(&denied)).await.is_err());
    let cancelled = approved.cancel(&approver("t1"), None, now).expect("cancel");
    store
        .update(&cancelled, &rec(&cancelled))
        .await
        .expect("cancel");
    store
        .sweep_expired(now + Duration::from_secs(300), usize::MAX)
        .await
        .expect("sweep");

    let expected = [
        (r.id(), RequestState::Pending),
        (other.id(), RequestState::Pending),
        (r.id(), RequestState::Approved),
        (r.id(), RequestState::Cancelled),
        (other.id(), RequestState::Expired),
    ];
    let mut heard = Vec::new();
    while heard.len() < expected.len() {
        let change = changes.next().await.expect("a change");
        // The store may be shared: other requests' changes are not this test's.
        if change.request_id == r.id() || change.request_id == other.id() {
            heard.push((change.request_id, change.state));
        }
    }
    assert_eq!(heard, expected);
}

/// A [`CursorStore`](crate::store::CursorStore) lease is held by one holder at a time: a
/// new cursor starts at the end of the trail; another holder waits until the lease runs
/// out or is let go, then takes it over at the place left; a holder that lost the lease
/// can no longer move the cursor.
pub async fn cursors_lease_one_holder_at_a_time(store: &dyn ApprovalStore, clock: &ManualClock) {
    let name = format!("cursor-{}", Uuid::new_v4().simple());
    let now = clock.now();
    let minute = Duration::from_secs(60);
    // A record appended before the cursor exists is behind it.
    let r = request(&unique("run"), "t1", "email.send", json!({}), now);
    store.create(r.clone(), &rec(&r), now).await.unwrap();
    let end = store
        .audit_records(&AuditQuery::request(r.id()))
        .await
        .unwrap()
        .last()
        .and_then(|record| record.chain.as_ref())
        .map(|link| link.seq)
        .expect("a linked record");

    let held = store
        .lease_cursor(&name, "a", now, now + minute)
        .await
        .unwrap()
        .expect("a new cursor is free");
    assert!(
        held.after_seq >= end,
        "a new cursor starts at the end of the trail"
    );
    assert_eq!(
        (held.holder.as_str(), held.lease_until),
        ("a", now + minute)
    );

    // While a's lease runs, b is refused and nothing changes.
    assert_eq!(
        store
            .lease_cursor(&name, "b", now, now + minute)
            .await
            .unwrap(),
        None
    );
    assert!(
        store
            .advance_cursor(&name, "a", held.after_seq + 7, now + minute)
            .await
            .unwrap()
    );
    assert!(
        !store
            .advance_cursor(&name, "b", 1, now + minute)
            .await
            .unwrap()
    );

    // a renews; once its lease runs out, b takes over where a left.
    let later = now + minute;
    assert!(
        store
            .lease_cursor(&name, "a", now, later)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        store
            .lease_cursor(&name, "b", later - Duration::from_nanos(1), later + minute)
            .await
            .unwrap(),
        None
    );
    let taken = store
        .lease_cursor(&name, "b", later, later + minute)
        .await
        .unwrap()
        .expect("a lease that ran out can be taken");
    assert_eq!(
        (taken.holder.as_str(), taken.after_seq),
        ("b", held.after_seq + 7)
    );
    assert!(
        !store
            .advance_cursor(&name, "a", 1, later + minute)
            .await
            .unwrap(),
        "a lost it"
    );

    // b lets it go: a may take it at once.
    store.release_cursor(&name, "b").await.unwrap();
    store.release_cursor(&name, "a").await.unwrap();
    let back = store
        .lease_cursor(&name, "a", later, later + minute)
        .await
        .unwrap()
        .expect("a released lease is free");
    assert_eq!(back.after_seq, held.after_seq + 7);
    let listed = store.cursors().await.unwrap();
    assert_eq!(
        listed.iter().filter(|c| c.name == name).collect::<Vec<_>>(),
        vec![&back]
    );
}

/// Runs every function of the suite, in order, on one store.
pub async fn run_all(store: &dyn ApprovalStore, clock: &ManualClock) {
    create_then_get_round_trips(store, clock).await;
    create_dedupes_an_identical_pending_call(store, clock).await;
    create_merges_only_the_same_callers_calls(store, clock).await;
    update_is_compare_and_set(store, clock).await;
    a_claim_wins_once(store, clock).await;
    list_filters_and_orders(store, clock).await;
    sweep_expires_what_is_due(store, clock).await;
    switches_round_trip(store, clock).await;
    usage_adds_up_per_run(store, clock).await;
    switches_then_add_usage_counts_unless_stopped(store, clock).await;
    records_that_count_their_call_add_to_usage(store, clock).await;
    grants_cover_count_and_revoke(store, clock).await;
    cancelling_ends_the_requests_grants(store, clock).await;
    quorum_votes_are_kept(store, clock).await;
    ttl_edges_hold_to_the_nanosecond(store, clock).await;
    changes_write_their_records(store, clock).await;
    subscribers_hear_of_changes(store, clock).await;
    cursors_lease_one_holder_at_a_time(store, clock).await;
}
