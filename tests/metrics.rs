//! The metrics of feature `metrics`, caught by a recorder of the test's own, through the
//! `metrics` facade's thread-local recorder (the test runs on one thread).
#![cfg(feature = "metrics")]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use approval_gate::{
    Approver, Execution, Gate, GateOutcome, Key, Keyring, ManualClock, Policy, ToolCall,
};
use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key as MetricKey, KeyName,
    Metadata, Recorder, SharedString, Unit,
};
use serde_json::json;

/// What was recorded, by metric and labels: `name{a=x,b=y}` (labels sorted).
#[derive(Debug, Default)]
struct Seen {
    counters: BTreeMap<String, u64>,
    gauges: BTreeMap<String, f64>,
    histograms: BTreeMap<String, Vec<f64>>,
}

#[derive(Debug, Clone, Default)]
struct TestRecorder(Arc<Mutex<Seen>>);

impl TestRecorder {
    fn counter(&self, key: &str) -> u64 {
        self.0
            .lock()
            .unwrap()
            .counters
            .get(key)
            .copied()
            .unwrap_or(0)
    }

    fn gauge(&self, key: &str) -> f64 {
        self.0
            .lock()
            .unwrap()
            .gauges
            .get(key)
            .copied()
            .unwrap_or(0.0)
    }

    fn histogram(&self, key: &str) -> Vec<f64> {
        let seen = self.0.lock().unwrap();
        seen.histograms.get(key).cloned().unwrap_or_default()
    }
}

/// One registered metric, writing into the shared `Seen`.
struct Handle {
    seen: Arc<Mutex<Seen>>,
    key: String,
}

impl CounterFn for Handle {
    fn increment(&self, value: u64) {
        *self
            .seen
            .lock()
            .unwrap()
            .counters
            .entry(self.key.clone())
            .or_default() += value;
    }

    fn absolute(&self, value: u64) {
        self.seen
            .lock()
            .unwrap()
            .counters
            .insert(self.key.clone(), value);
    }
}

impl GaugeFn for Handle {
    fn increment(&self, value: f64) {
        *self
            .seen
            .lock()
            .unwrap()
            .gauges
            .entry(self.key.clone())
            .or_default() += value;
    }

    fn decrement(&self, value: f64) {
        *self
            .seen
            .lock()
            .unwrap()
            .gauges
            .entry(self.key.clone())
            .or_default() -= value;
    }

    fn set(&self, value: f64) {
        self.seen
            .lock()
            .unwrap()
            .gauges
            .insert(self.key.clone(), value);
    }
}

impl HistogramFn for Handle {
    fn record(&self, value: f64) {
        let mut seen = self.seen.lock().unwrap();
        seen.histograms
            .entry(self.key.clone())
            .or_default()
            .push(value);
    }
}

impl TestRecorder {
    fn handle(&self, key: &MetricKey) -> Arc<Handle> {
        let mut labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        labels.sort();
        let key = if labels.is_empty() {
            key.name().to_owned()
        } else {
            format!("{}{{{}}}", key.name(), labels.join(","))
        };
        Arc::new(Handle {
            seen: self.0.clone(),
            key,
        })
    }
}

impl Recorder for TestRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &MetricKey, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.handle(key))
    }

    fn register_gauge(&self, key: &MetricKey, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.handle(key))
    }

    fn register_histogram(&self, key: &MetricKey, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(self.handle(key))
    }
}

const POLICY: &str = "\
approvals:
  ttl_seconds: 300
  approval_ttl_seconds: 300
tiers:
  high: {}
rules:
  - id: mail
    tool: email.send
    effect: approval_required
    tier: high
  - id: reads
    tool: db.read
    effect: allow
";

const PENDING: &str = "approval_gate_pending_requests";
const TIMES: &str = "approval_gate_time_to_decision_seconds";

fn approvals(result: &str) -> String {
    format!("approval_gate_approvals_total{{result={result}}}")
}

#[tokio::test(flavor = "current_thread")]
async fn decisions_approvals_times_and_pending_are_counted() {
    let recorder = TestRecorder::default();
    // Held for the whole test: this runtime polls every future on this thread.
    let _guard = metrics::set_default_local_recorder(&recorder);
    approval_gate::describe_metrics();

    let clock = ManualClock::default();
    let gate = Gate::builder(
        Policy::from_yaml_str(POLICY).unwrap(),
        Keyring::new(Key::new("k1", [5u8; 32]).unwrap()),
    )
    .clock(clock.clone())
    .build();
    let tool = gate.wrap(|_: Execution| async { Ok::<_, std::io::Error>(json!({"ok": true})) });
    let desk = gate.desk();
    let ann = Approver::new("ann");
    let mail = |n: u32| ToolCall::new("run-1", format!("c{n}"), "email.send", json!({"n": n}));
    let file = |outcome: GateOutcome<_, _>| outcome.pending().unwrap().request_id;

    let a = file(tool.call(mail(1)).await.unwrap());
    let b = file(tool.call(mail(2)).await.unwrap());
    let c = file(tool.call(mail(3)).await.unwrap());
    let _d = file(tool.call(mail(4)).await.unwrap());
    // The same call again finds the pending request: a decision, but no new request.
    assert!(!tool.call(mail(1)).await.unwrap().pending().unwrap().created);
    tool.call(ToolCall::new("run-1", "r", "db.read", json!({})))
        .await
        .unwrap();
    tool.call(ToolCall::new("run-1", "x", "fs.delete", json!({})))
        .await
        .unwrap();
    assert_eq!(recorder.gauge(PENDING), 4.0);

    clock.advance(Duration::from_secs(30));
    desk.approve(a, &ann).await.unwrap();
    assert_eq!(recorder.gauge(PENDING), 3.0);
    clock.advance(Duration::from_secs(10));
    desk.deny(b, &ann, Some("no")).await.unwrap();
    clock.advance(Duration::from_secs(20));
    desk.cancel(c, &Approver::new("bob"), None).await.unwrap();
    // d expired at 300 s; the sweep notices at 400 s.
    clock.advance(Duration::from_secs(340));
    assert_eq!(gate.sweep_expired(10).await.unwrap().len(), 2);
    // a's approval (granted at 30 s, usable for 300 s) timed out unused too: not a second
    // decision.

    assert_eq!(
        recorder.counter(
            "approval_gate_decisions_total{outcome=approval_required,tier=high,tool=email.send}"
        ),
        5
    );
    assert_eq!(
        recorder.counter("approval_gate_decisions_total{outcome=allow,tier=none,tool=db.read}"),
        1
    );
    assert_eq!(
        recorder.counter("approval_gate_decisions_total{outcome=deny,tier=none,tool=fs.delete}"),
        1
    );
    assert_eq!(recorder.counter(&approvals("granted")), 1);
    assert_eq!(recorder.counter(&approvals("denied")), 1);
    assert_eq!(recorder.counter(&approvals("cancelled")), 1);
    assert_eq!(recorder.counter(&approvals("timeout")), 1);
    assert_eq!(recorder.histogram(TIMES), vec![30.0, 40.0, 60.0, 300.0]);
    assert_eq!(recorder.gauge(PENDING), 0.0);
}
