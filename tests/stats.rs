//! Approval statistics over a window, through the public API, with time moved by hand.

use std::time::Duration;

use approval_gate::{
    Approver, Clock, Execution, Gate, GateOutcome, Gated, Key, Keyring, ManualClock, MemoryStore,
    Policy, RequestId, ToolCall, ToolExecutor, trail::ApprovalStats,
};
use serde_json::{Value, json};

const POLICY: &str = "\
approvals:
  ttl_seconds: 300
  approval_ttl_seconds: 200
rules:
  - id: mail
    tool: email.send
    effect: approval_required
  - id: writes
    tool: db.write
    effect: approval_required
  - id: reads
    tool: db.read
    effect: allow
";

struct World {
    gate: Gate,
    clock: ManualClock,
    start: approval_gate::time::OffsetDateTime,
    ann: Approver,
}

impl World {
    fn new() -> Self {
        let clock = ManualClock::default();
        let gate = Gate::builder(
            Policy::from_yaml_str(POLICY).unwrap(),
            Keyring::new(Key::new("k1", [3u8; 32]).unwrap()),
        )
        .store(MemoryStore::new())
        .clock(clock.clone())
        .build();
        World {
            start: clock.now(),
            gate,
            clock,
            ann: Approver::new("ann"),
        }
    }

    /// Sets the clock to `s` seconds after the start.
    fn at(&self, s: u64) {
        self.clock.set(self.start + Duration::from_secs(s));
    }

    /// A tool that fails when its arguments say `"fail": true`.
    fn tool(&self) -> Gated<impl ToolExecutor<Output = Value, Error = std::io::Error> + use<>> {
        self.gate.wrap(|exec: Execution| async move {
            if exec.args()["fail"] == json!(true) {
                Err(std::io::Error::other("refused by the mail server"))
            } else {
                Ok(json!({"ok": true}))
            }
        })
    }

    async fn file(&self, tool: &str, n: u32, args: Value) -> (RequestId, ToolCall) {
        let call = ToolCall::new("run-1", format!("call-{n}"), tool, args);
        match self.tool().call(call.clone()).await.unwrap() {
            GateOutcome::Pending(p) => (p.request_id, call),
            other => panic!("expected pending, got {}", other.name()),
        }
    }
}

#[tokio::test]
async fn counts_rates_and_times_over_a_window() {
    let w = World::new();
    let desk = w.gate.desk();
    let tool = w.tool();

    // Before the window (it starts at 100 s): filed, approved, filed.
    w.at(0);
    let (old, old_call) = w.file("email.send", 0, json!({"n": 0})).await;
    w.at(10);
    desk.approve(old, &w.ann).await.unwrap();
    w.at(50);
    let (early, _) = w.file("email.send", 1, json!({"n": 1})).await;

    // In the window.
    w.at(100);
    let allowed = tool
        .call(ToolCall::new("run-1", "read", "db.read", json!({})))
        .await
        .unwrap();
    assert!(allowed.executed().is_some());
    let denied = tool
        .call(ToolCall::new("run-1", "rm", "fs.delete", json!({})))
        .await
        .unwrap();
    assert!(denied.stopped().is_some());
    let (r1, r1_call) = w.file("db.write", 11, json!({"fail": true})).await;
    let (r2, _) = w.file("db.write", 12, json!({"n": 2})).await;
    let (r3, _) = w.file("email.send", 13, json!({"n": 3})).await;
    let (r4, _) = w.file("email.send", 14, json!({"n": 4})).await;
    let (_r5, _) = w.file("email.send", 15, json!({"n": 5})).await;

    w.at(110);
    let ran = tool.resume(old, old_call).await.unwrap();
    assert!(ran.executed().unwrap().result.is_ok());
    // Filed at 50, decided at 120: 70 s, though filed before the window.
    w.at(120);
    desk.deny(early, &w.ann, Some("no")).await.unwrap();
    w.at(130);
    desk.approve(r1, &w.ann).await.unwrap(); // 30 s
    w.at(140);
    let failed = tool.resume(r1, r1_call).await.unwrap();
    assert!(failed.executed().unwrap().result.is_err());
    w.at(160);
    desk.approve(r2, &w.ann).await.unwrap(); // 60 s, then never used
    w.at(200);
    desk.deny(r3, &w.ann, None).await.unwrap(); // 100 s
    w.at(220);
    desk.cancel(r4, &Approver::new("bob"), Some("not needed"))
        .await
        .unwrap(); // 120 s

    // r5 expired at 400 while pending, r2's approval at 360: the sweep at 450 records
    // both. r5's time to decision is its TTL, 300 s, not the 350 s to the sweep.
    w.at(450);
    assert_eq!(w.gate.sweep_expired(100).await.unwrap().len(), 2);

    w.at(800);
    let (r6, _) = w.file("email.send", 16, json!({"n": 6})).await;
    w.at(900);
    w.file("db.write", 17, json!({"n": 7})).await;

    w.at(1000);
    let stats = w.gate.stats(Duration::from_secs(900)).await.unwrap();
    assert_eq!(stats.from, w.start + Duration::from_secs(100));
    assert_eq!(stats.until, w.start + Duration::from_secs(1000));

    // Records in the window only: the filings at 0 and 50 and the approval at 10 are out.
    assert_eq!(stats.approvals_required, 7);
    assert_eq!(stats.granted, 2);
    assert_eq!(stats.denied, 2);
    assert_eq!(stats.timed_out, 2);
    assert_eq!(stats.cancelled, 1);
    assert_eq!(stats.executed, 2);
    assert_eq!(stats.execution_failed, 1);
    assert_eq!(stats.policy_denied, 1);
    assert_eq!(stats.allowed, 1);
    assert_eq!(stats.grants_used, 0);

    // Decided in the window: early, r1, r2, r3, r4 by people, r5 by timeout. r2's
    // approval timing out unused is not a second decision.
    assert_eq!(stats.decided, 6);
    assert_eq!(stats.decided_by_timeout, 1);
    assert_eq!(stats.timeout_rate, Some(1.0 / 6.0));
    // 30, 60, 70, 100, 120, 300: nearest rank ⌈3⌉ = 3rd and ⌈5.7⌉ = 6th.
    assert_eq!(stats.time_to_decision_median, Some(Duration::from_secs(70)));
    assert_eq!(stats.time_to_decision_p95, Some(Duration::from_secs(300)));

    assert_eq!(stats.pending, 2);
    let oldest = stats.oldest_pending.as_ref().unwrap();
    assert_eq!(oldest.request_id, r6);
    assert_eq!(oldest.tool, "email.send");
    assert_eq!(oldest.created_at, w.start + Duration::from_secs(800));
    assert_eq!(oldest.age, Duration::from_secs(200));

    // A window that ends before the timeouts: the same counts up to 450 s, less them.
    let earlier = ApprovalStats::compute(
        w.gate.store().as_ref(),
        w.start + Duration::from_secs(100),
        w.start + Duration::from_secs(450),
    )
    .await
    .unwrap();
    assert_eq!(earlier.timed_out, 0);
    assert_eq!(earlier.decided, 5);
    assert_eq!(earlier.timeout_rate, Some(0.0));
    assert_eq!(
        earlier.time_to_decision_median,
        Some(Duration::from_secs(70))
    );
    assert_eq!(earlier.time_to_decision_p95, Some(Duration::from_secs(120)));

    // A window that starts after the filings still finds the start of each decision.
    let late = ApprovalStats::compute(
        w.gate.store().as_ref(),
        w.start + Duration::from_secs(125),
        w.start + Duration::from_secs(1000),
    )
    .await
    .unwrap();
    assert_eq!(late.approvals_required, 2);
    assert_eq!(late.decided, 5);
    assert_eq!(late.time_to_decision_median, Some(Duration::from_secs(100)));
}

#[tokio::test]
async fn a_quiet_window_has_no_rates_and_serializes_in_seconds() {
    let w = World::new();
    w.at(0);
    let (id, _) = w.file("email.send", 1, json!({})).await;
    w.at(90);
    let stats = w.gate.stats(Duration::from_secs(60)).await.unwrap();
    assert_eq!(stats.approvals_required, 0);
    assert_eq!(stats.decided, 0);
    assert_eq!(stats.timeout_rate, None);
    assert_eq!(stats.time_to_decision_median, None);
    assert_eq!(stats.time_to_decision_p95, None);
    // Pending is now, whatever the window.
    assert_eq!(stats.pending, 1);

    let json = serde_json::to_value(&stats).unwrap();
    assert_eq!(json["time_to_decision_median_seconds"], Value::Null);
    assert_eq!(json["timeout_rate"], Value::Null);
    assert_eq!(json["until"], "2026-01-01T00:01:30Z");
    assert_eq!(json["oldest_pending"]["request_id"], id.to_string());
    assert_eq!(json["oldest_pending"]["age_seconds"], 90.0);
}

#[tokio::test]
async fn a_decision_undone_because_the_sink_failed_does_not_count() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use approval_gate::trail::{AuditError, AuditRecord};

    let clock = ManualClock::default();
    let start = clock.now();
    let sink_down = Arc::new(AtomicBool::new(false));
    let down = sink_down.clone();
    let gate = Gate::builder(
        Policy::from_yaml_str(POLICY).unwrap(),
        Keyring::new(Key::new("k1", [3u8; 32]).unwrap()),
    )
    .clock(clock.clone())
    .audit(move |_: &AuditRecord| {
        if down.load(Ordering::SeqCst) {
            Err(AuditError::backend("disk full"))
        } else {
            Ok(())
        }
    })
    .build();
    let tool = gate.wrap(|_: Execution| async { Ok::<_, std::io::Error>(json!({})) });
    let call = ToolCall::new("run-1", "c1", "email.send", json!({}));
    let id = tool.call(call).await.unwrap().pending().unwrap().request_id;
    let ann = Approver::new("ann");

    // Approved at 10 s, but the sink fails: the approval is reverted.
    clock.set(start + Duration::from_secs(10));
    sink_down.store(true, Ordering::SeqCst);
    assert!(gate.desk().approve(id, &ann).await.is_err());
    // Denied at 40 s: this is its decision.
    clock.set(start + Duration::from_secs(40));
    sink_down.store(false, Ordering::SeqCst);
    gate.desk().deny(id, &ann, None).await.unwrap();

    clock.set(start + Duration::from_secs(50));
    let stats = gate.stats(Duration::from_secs(60)).await.unwrap();
    assert_eq!(stats.granted, 1, "the reverted approval is on the record");
    assert_eq!(stats.denied, 1);
    assert_eq!(stats.decided, 1);
    assert_eq!(stats.time_to_decision_median, Some(Duration::from_secs(40)));
}
