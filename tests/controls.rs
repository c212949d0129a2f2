//! Run controls and standing grants through the public API: kill switches, read-only
//! mode, budgets, grants, and batches of calls.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use approval_gate::{
    Approver, DeskError, Execution, Gate, GateOutcome, Gated, GrantScope, GrantSpec, Key, Keyring,
    KillScope, ManualClock, MemorySink, Policy, StopReason, ToolCall, ToolExecutor,
    desk::GrantError,
    outcome::{Budget, SwitchSource},
    trail::{AuditEvent, AuditQuery},
};
use serde_json::{Value, json};

const POLICY: &str = "\
approvals:
  required_for: [email.send]
budgets:
  max_tool_calls: 5
  max_seconds: 600
  max_usd: 2.5
tiers:
  critical: { grants: false }
rules:
  - { id: reads, tools: ['*.read'], effect: allow }
  - { id: notes, tool: crm.note, effect: allow }
  - { id: wires, tool: payments.wire, effect: approval_required, tier: critical }
  - { id: no-drops, tool: db.drop, effect: deny }
";

struct World {
    gate: Gate,
    clock: ManualClock,
    audit: MemorySink,
    runs: Arc<AtomicUsize>,
}

impl World {
    fn new() -> Self {
        let clock = ManualClock::default();
        let audit = MemorySink::new();
        let gate = Gate::builder(
            Policy::from_yaml_str(POLICY).unwrap(),
            Keyring::new(Key::new("k1", [3u8; 32]).unwrap()),
        )
        .clock(clock.clone())
        .audit(audit.clone())
        .build();
        World {
            gate,
            clock,
            audit,
            runs: Arc::default(),
        }
    }

    fn tool(&self) -> Gated<impl ToolExecutor<Output = Value, Error = std::io::Error> + use<>> {
        let runs = self.runs.clone();
        self.gate.wrap(move |exec: Execution| {
            let runs = runs.clone();
            async move {
                runs.fetch_add(1, Ordering::SeqCst);
                let approvers = exec.approval().map(|a| a.approvers().to_vec());
                Ok::<Value, std::io::Error>(json!({ "approvers": approvers }))
            }
        })
    }

    fn runs(&self) -> usize {
        self.runs.load(Ordering::SeqCst)
    }
}

fn call(run: &str, id: &str, tool: &str, args: Value) -> ToolCall {
    ToolCall::new(run, id, tool, args)
        .with_requester("bob")
        .with_tenant("acme")
}

/// An operator of the acme tenant.
fn ops(id: &str) -> Approver {
    Approver::new(id).with_tenant("acme")
}

fn reason<T, E>(outcome: GateOutcome<T, E>) -> StopReason {
    match outcome {
        GateOutcome::Stopped(stop) => stop.reason,
        other => panic!("expected stopped, got {}", other.name()),
    }
}

#[tokio::test]
async fn kill_switches_stop_calls_and_resumes_until_released() {
    let w = World::new();
    let tool = w.tool();
    let email = call("r1", "c1", "email.send", json!({"to": "x"}));
    let id = tool
        .call(email.clone())
        .await
        .unwrap()
        .pending()
        .unwrap()
        .request_id;
    w.gate
        .desk()
        .approve(id, &Approver::new("ann").with_tenant("acme"))
        .await
        .unwrap();

    for scope in [
        KillScope::Global,
        KillScope::Tenant("acme".into()),
        KillScope::Tool("email.send".into()),
    ] {
        w.gate
            .set_kill_switch(scope.clone(), true, &ops("olga"))
            .await
            .unwrap();
        let r = reason(tool.resume(id, email.clone()).await.unwrap());
        assert!(
            matches!(r, StopReason::KillSwitch { scope: ref s, .. } if *s == scope),
            "{scope}"
        );
        w.gate
            .set_kill_switch(scope, false, &ops("olga"))
            .await
            .unwrap();
    }
    // Another tenant's switch does not touch this call.
    w.gate
        .set_kill_switch(KillScope::Tenant("globex".into()), true, &ops("olga"))
        .await
        .unwrap();
    assert!(tool.resume(id, email).await.unwrap().executed().is_some());
    assert_eq!(w.runs(), 1);
}

#[tokio::test]
async fn the_trail_names_who_engaged_and_who_released_a_switch() {
    let w = World::new();
    let acme = KillScope::Tenant("acme".into());
    w.clock.advance(Duration::from_secs(10));
    w.gate
        .set_kill_switch(acme.clone(), true, &ops("olga"))
        .await
        .unwrap();
    w.clock.advance(Duration::from_secs(50));
    w.gate
        .set_kill_switch(acme.clone(), false, &ops("pete"))
        .await
        .unwrap();
    w.gate.set_read_only(true, &ops("pete")).await.unwrap();

    let did = |who: &'static str| {
        let gate = w.gate.clone();
        async move {
            gate.store()
                .audit_records(&AuditQuery::actor(who))
                .await
                .unwrap()
        }
    };
    let olga = did("olga").await;
    assert_eq!(olga.len(), 1);
    assert_eq!(olga[0].at, w.gate.now() - Duration::from_secs(50));
    assert_eq!(
        olga[0].event,
        AuditEvent::KillSwitchChanged {
            by: "olga".into(),
            scope: acme.clone(),
            engaged: true,
        }
    );
    let pete: Vec<AuditEvent> = did("pete").await.into_iter().map(|r| r.event).collect();
    assert_eq!(
        pete,
        [
            AuditEvent::KillSwitchChanged {
                by: "pete".into(),
                scope: acme,
                engaged: false,
            },
            AuditEvent::ReadOnlyChanged {
                by: "pete".into(),
                on: true,
            },
        ]
    );
    // The sink beside the store got the same records.
    let mirrored: Vec<&str> = w.audit.records().iter().map(|r| r.event_name()).collect();
    assert_eq!(
        mirrored,
        [
            "kill_switch_changed",
            "kill_switch_changed",
            "read_only_changed"
        ]
    );
}

#[tokio::test]
async fn read_only_mode_denies_every_write_but_not_reads() {
    let w = World::new();
    let tool = w.tool();
    w.gate.set_read_only(true, &ops("olga")).await.unwrap();
    let r = reason(
        tool.call(call("r1", "c1", "crm.note", json!({})))
            .await
            .unwrap(),
    );
    assert!(matches!(r, StopReason::ReadOnly));
    assert!(
        tool.call(call("r1", "c2", "crm.read", json!({})))
            .await
            .unwrap()
            .executed()
            .is_some()
    );
    w.gate.set_read_only(false, &ops("olga")).await.unwrap();
    assert!(
        tool.call(call("r1", "c3", "crm.note", json!({})))
            .await
            .unwrap()
            .executed()
            .is_some()
    );
}

#[tokio::test]
async fn every_call_counts_but_one_the_switches_stop_with_or_without_budgets() {
    let unbounded = "rules:\n  - { id: reads, tools: ['*.read'], effect: allow }\n  - { id: notes, tool: crm.note, effect: allow }\n";
    for policy in [POLICY, unbounded] {
        let gate = Gate::builder(
            Policy::from_yaml_str(policy).unwrap(),
            Keyring::new(Key::new("k1", [3u8; 32]).unwrap()),
        )
        .build();
        let tool = gate.wrap(|_: Execution| async { Ok::<(), std::io::Error>(()) });
        let note = |id: &str| call("r1", id, "crm.note", json!({}));
        let counted = || async { gate.usage("r1").await.unwrap().tool_calls };

        assert!(tool.call(note("c1")).await.unwrap().executed().is_some());
        assert_eq!(counted().await, 1, "{policy}");
        gate.set_kill_switch(KillScope::Global, true, &ops("olga"))
            .await
            .unwrap();
        let r = reason(tool.call(note("c2")).await.unwrap());
        assert!(matches!(r, StopReason::KillSwitch { .. }));
        assert_eq!(counted().await, 1, "a killed call is not counted");
        gate.set_kill_switch(KillScope::Global, false, &ops("olga"))
            .await
            .unwrap();
        gate.set_read_only(true, &ops("olga")).await.unwrap();
        assert!(matches!(
            reason(tool.call(note("c3")).await.unwrap()),
            StopReason::ReadOnly
        ));
        assert_eq!(counted().await, 1, "a read-only stop is not counted");
        let read = call("r1", "c4", "crm.read", json!({}));
        assert!(tool.call(read).await.unwrap().executed().is_some());
        assert_eq!(counted().await, 2, "a read in read-only mode counts");
    }
}

#[tokio::test]
async fn budgets_stop_the_run_that_exceeds_them_and_only_that_run() {
    let w = World::new();
    let tool = w.tool();
    for i in 0..5 {
        let c = call("r1", &format!("c{i}"), "crm.read", json!({}));
        assert!(tool.call(c).await.unwrap().executed().is_some());
    }
    let r = reason(
        tool.call(call("r1", "c5", "crm.read", json!({})))
            .await
            .unwrap(),
    );
    assert!(
        matches!(r, StopReason::BudgetExceeded { budget: Budget::ToolCalls, limit, .. } if limit == 5.0)
    );
    assert!(
        tool.call(call("r2", "c0", "crm.read", json!({})))
            .await
            .unwrap()
            .executed()
            .is_some()
    );

    // Cost reported by the host.
    w.gate.record_cost("r3", 2.0).await.unwrap();
    assert!(
        tool.call(call("r3", "c0", "crm.read", json!({})))
            .await
            .unwrap()
            .executed()
            .is_some()
    );
    w.gate.record_cost("r3", 1.0).await.unwrap();
    let r = reason(
        tool.call(call("r3", "c1", "crm.read", json!({})))
            .await
            .unwrap(),
    );
    assert!(matches!(
        r,
        StopReason::BudgetExceeded {
            budget: Budget::Usd,
            ..
        }
    ));

    // Wall time since the run's first call.
    assert!(
        tool.call(call("r4", "c0", "crm.read", json!({})))
            .await
            .unwrap()
            .executed()
            .is_some()
    );
    w.clock.advance(Duration::from_secs(601));
    let r = reason(
        tool.call(call("r4", "c1", "crm.read", json!({})))
            .await
            .unwrap(),
    );
    assert!(matches!(
        r,
        StopReason::BudgetExceeded {
            budget: Budget::Seconds,
            ..
        }
    ));
    assert_eq!(w.gate.usage("r1").await.unwrap().tool_calls, 6);
}

#[tokio::test]
async fn a_standing_grant_turns_later_approvals_into_allows_within_its_bounds() {
    let w = World::new();
    let tool = w.tool();
    let email = |id: &str, to: &str| call("r1", id, "email.send", json!({ "to": to }));
    let first = tool
        .call(email("c1", "a@x"))
        .await
        .unwrap()
        .pending()
        .unwrap()
        .request_id;
    let spec = GrantSpec::new(GrantScope::Run, Duration::from_secs(3600)).max_uses(2);
    let (_, grant) = w
        .gate
        .desk()
        .approve_with_grant(first, &Approver::new("ann").with_tenant("acme"), &spec)
        .await
        .unwrap();
    let grant = grant.expect("the approval completed the request");

    // Two later emails in the same run run at once, on the grant.
    for i in 2..4 {
        let outcome = tool.call(email(&format!("c{i}"), "b@x")).await.unwrap();
        let done = outcome.executed().expect("covered by the grant");
        assert_eq!(done.result.as_ref().unwrap()["approvers"], json!(["ann"]));
    }
    // Used up: the next one asks again.
    assert!(
        tool.call(email("c4", "b@x"))
            .await
            .unwrap()
            .pending()
            .is_some()
    );
    // Another run is out of scope.
    assert!(
        tool.call(call("r2", "c1", "email.send", json!({"to": "a@x"})))
            .await
            .unwrap()
            .pending()
            .is_some()
    );
    let used = w
        .audit
        .event_names()
        .iter()
        .filter(|e| **e == "grant_used")
        .count();
    assert_eq!(used, 2);
    assert_eq!(w.runs(), 2);

    // Revoked grants cover nothing.
    let spec = GrantSpec::new(GrantScope::Tenant, Duration::from_secs(3600));
    let id = tool
        .call(call("r3", "c1", "email.send", json!({"to": "d@x"})))
        .await
        .unwrap()
        .pending()
        .unwrap()
        .request_id;
    let (_, g) = w
        .gate
        .desk()
        .approve_with_grant(id, &Approver::new("ann").with_tenant("acme"), &spec)
        .await
        .unwrap();
    let g = g.unwrap();
    assert!(
        tool.call(call("r9", "c1", "email.send", json!({})))
            .await
            .unwrap()
            .executed()
            .is_some()
    );
    w.gate
        .desk()
        .revoke_grant(g.id(), &Approver::new("ann").with_tenant("acme"))
        .await
        .unwrap();
    assert!(
        tool.call(call("r9", "c2", "email.send", json!({})))
            .await
            .unwrap()
            .pending()
            .is_some()
    );
    assert_ne!(grant.id(), g.id());
}

#[tokio::test]
async fn a_grant_never_lifts_a_deny_and_a_tier_may_forbid_grants() {
    let w = World::new();
    let tool = w.tool();
    let wire = call("r1", "c1", "payments.wire", json!({"amount": 10}));
    let id = tool.call(wire).await.unwrap().pending().unwrap().request_id;
    let spec = GrantSpec::new(GrantScope::Tenant, Duration::from_secs(60)).tool_pattern("*");
    let err = w
        .gate
        .desk()
        .approve_with_grant(id, &Approver::new("ann").with_tenant("acme"), &spec)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            DeskError::GrantRefused {
                reason: GrantError::Forbidden,
                ..
            }
        ),
        "{err}"
    );
    assert!(w.gate.desk().grants().await.unwrap().is_empty());

    // A broad grant from an email approval does not allow a denied tool.
    let id = tool
        .call(call("r1", "c2", "email.send", json!({})))
        .await
        .unwrap()
        .pending()
        .unwrap()
        .request_id;
    w.gate
        .desk()
        .approve_with_grant(id, &Approver::new("ann").with_tenant("acme"), &spec)
        .await
        .unwrap();
    let r = reason(
        tool.call(call("r1", "c3", "db.drop", json!({})))
            .await
            .unwrap(),
    );
    assert!(matches!(r, StopReason::PolicyDenied { .. }));
    // Nor a critical-tier call.
    assert!(
        tool.call(call("r1", "c4", "payments.wire", json!({})))
            .await
            .unwrap()
            .pending()
            .is_some()
    );
}

#[tokio::test]
async fn a_batch_returns_one_outcome_per_call_in_order() {
    let w = World::new();
    let tool = w.tool();
    let outcomes = tool
        .call_batch([
            call("r1", "c1", "crm.read", json!({})),
            call("r1", "c2", "db.drop", json!({})),
            call("r1", "c3", "email.send", json!({})),
        ])
        .await;
    let names: Vec<_> = outcomes
        .iter()
        .map(|o| o.as_ref().unwrap().name())
        .collect();
    assert_eq!(names, ["executed", "stopped", "pending"]);
}

#[tokio::test]
async fn a_grant_can_be_bound_to_the_same_args_or_to_a_condition_and_never_crosses_tenants() {
    let w = World::new();
    let tool = w.tool();
    let email = |run: &str, id: &str, args: Value| call(run, id, "email.send", args);
    let desk = w.gate.desk();
    let ann = Approver::new("ann").with_tenant("acme");

    // Same args only.
    let id = tool
        .call(email("r1", "c1", json!({"to": "a@x"})))
        .await
        .unwrap()
        .pending()
        .unwrap()
        .request_id;
    let spec = GrantSpec::new(GrantScope::Run, Duration::from_secs(600)).same_args();
    desk.approve_with_grant(id, &ann, &spec).await.unwrap();
    assert!(
        tool.call(email("r1", "c2", json!({"to": "a@x"})))
            .await
            .unwrap()
            .executed()
            .is_some()
    );
    assert!(
        tool.call(email("r1", "c3", json!({"to": "b@x"})))
            .await
            .unwrap()
            .pending()
            .is_some()
    );

    // A condition on the args.
    let id = tool
        .call(email("r2", "c1", json!({"n": 1})))
        .await
        .unwrap()
        .pending()
        .unwrap()
        .request_id;
    let small =
        approval_gate::config::Condition::field("args.n", approval_gate::config::Op::Lte(3.into()))
            .unwrap();
    let spec = GrantSpec::new(GrantScope::User, Duration::from_secs(600)).when(small);
    desk.approve_with_grant(id, &ann, &spec).await.unwrap();
    assert!(
        tool.call(email("r3", "c1", json!({"n": 2})))
            .await
            .unwrap()
            .executed()
            .is_some()
    );
    assert!(
        tool.call(email("r3", "c2", json!({"n": 9})))
            .await
            .unwrap()
            .pending()
            .is_some()
    );

    // The same user under another tenant is not covered.
    let other = ToolCall::new("r3", "c3", "email.send", json!({"n": 2}))
        .with_requester("bob")
        .with_tenant("globex");
    assert!(tool.call(other).await.unwrap().pending().is_some());
}

#[tokio::test]
async fn config_controls_deny_from_the_policy_itself() {
    let policy = "\
policy:
  default: allow
  tool_allowlist: ['crm.*']
";
    let gate = Gate::builder(
        Policy::from_yaml_str(policy).unwrap(),
        Keyring::new(Key::new("k1", [3u8; 32]).unwrap()),
    )
    .build();
    let tool = gate.wrap(|_e: Execution| async { Ok::<Value, std::io::Error>(json!(null)) });
    assert!(
        tool.call(call("r", "c1", "crm.read", json!({})))
            .await
            .unwrap()
            .executed()
            .is_some()
    );
    let r = reason(
        tool.call(call("r", "c2", "shell.exec", json!({})))
            .await
            .unwrap(),
    );
    assert!(
        matches!(r, StopReason::PolicyDenied { ref rule_ids, .. } if rule_ids == &["policy.tool_allowlist"])
    );

    let killed = Policy::from_yaml_str(
        "policy:\n  default: allow\ncontrols:\n  kill_switch: { enabled: true }\n",
    )
    .unwrap();
    gate.set_policy(killed);
    let r = reason(
        tool.call(call("r", "c3", "crm.read", json!({})))
            .await
            .unwrap(),
    );
    // One kill switch for a host to match on, saying where it was set.
    assert!(
        matches!(
            r,
            StopReason::KillSwitch {
                scope: KillScope::Global,
                source: SwitchSource::Config
            }
        ),
        "{r:?}"
    );
}
