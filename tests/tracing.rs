//! Spans around `call` and `resume`, and `TracingSink`, caught by a subscriber of the
//! test's own (no `tracing-subscriber`), set as this thread's default.
#![cfg(feature = "tracing")]

use approval_gate::store::TrailReader;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use approval_gate::{
    Approver, Execution, Gate, Key, Keyring, ManualClock, MemoryStore, Policy, ToolCall,
    trail::TracingSink,
};
use serde_json::{Value, json};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};

type Fields = BTreeMap<String, String>;

#[derive(Debug)]
struct SpanSeen {
    metadata: &'static Metadata<'static>,
    fields: Fields,
}

#[derive(Debug)]
struct EventSeen {
    target: String,
    level: Level,
    fields: Fields,
    /// The name of the span it happened in, if any.
    within: Option<&'static str>,
}

#[derive(Debug, Default)]
struct Seen {
    spans: Vec<SpanSeen>,
    events: Vec<EventSeen>,
    /// The spans entered now, innermost last.
    stack: Vec<Id>,
}

/// Keeps every span (with its fields, as recorded so far) and event.
#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Seen>>);

struct Visitor<'a>(&'a mut Fields);

impl Visit for Visitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl Subscriber for Collector {
    fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
        // Asked every time: other tests' threads may have no subscriber.
        Interest::sometimes()
    }

    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut fields = Fields::new();
        span.record(&mut Visitor(&mut fields));
        let mut seen = self.0.lock().unwrap();
        seen.spans.push(SpanSeen {
            metadata: span.metadata(),
            fields,
        });
        Id::from_u64(seen.spans.len() as u64)
    }

    fn record(&self, span: &Id, values: &Record<'_>) {
        let mut seen = self.0.lock().unwrap();
        let index = span.into_u64() as usize - 1;
        values.record(&mut Visitor(&mut seen.spans[index].fields));
    }

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields::new();
        event.record(&mut Visitor(&mut fields));
        let mut seen = self.0.lock().unwrap();
        let within = seen
            .stack
            .last()
            .map(|id| seen.spans[id.into_u64() as usize - 1].metadata.name());
        seen.events.push(EventSeen {
            target: event.metadata().target().to_owned(),
            level: *event.metadata().level(),
            fields,
            within,
        });
    }

    fn enter(&self, span: &Id) {
        self.0.lock().unwrap().stack.push(span.clone());
    }

    fn exit(&self, span: &Id) {
        let mut seen = self.0.lock().unwrap();
        assert_eq!(seen.stack.pop().as_ref(), Some(span), "spans exit in order");
    }
}

impl Collector {
    fn spans(&self, name: &str) -> Vec<Fields> {
        let seen = self.0.lock().unwrap();
        seen.spans
            .iter()
            .filter(|s| s.metadata.name() == name)
            .map(|s| s.fields.clone())
            .collect()
    }

    fn audit_events(&self) -> Vec<(Fields, Option<&'static str>)> {
        let seen = self.0.lock().unwrap();
        seen.events
            .iter()
            .filter(|e| e.target == "approval_gate::audit")
            .inspect(|e| assert_eq!(e.level, Level::INFO))
            .map(|e| (e.fields.clone(), e.within))
            .collect()
    }
}

const POLICY: &str = "approvals:\n  required_for: [email.send]\n";
const SECRET: &str = "secret-recipient@example.com";

#[tokio::test(flavor = "current_thread")]
async fn spans_carry_the_call_and_the_sink_emits_every_record() {
    let collector = Collector::default();
    let _guard = tracing::subscriber::set_default(collector.clone());

    let store = Arc::new(MemoryStore::new());
    let gate = Gate::builder(
        Policy::from_yaml_str(POLICY).unwrap(),
        Keyring::new(Key::new("k1", [1u8; 32]).unwrap()),
    )
    .shared_store(store.clone())
    .audit(TracingSink::new())
    .clock(ManualClock::default())
    .build();
    let tool = gate.wrap(|_: Execution| async { Ok::<_, std::io::Error>(json!({"sent": true})) });
    let call = ToolCall::new("run-7", "call-3", "email.send", json!({"to": SECRET}));

    let id = tool
        .call(call.clone())
        .await
        .unwrap()
        .pending()
        .unwrap()
        .request_id;
    gate.desk()
        .approve(id, &Approver::new("ann"))
        .await
        .unwrap();
    let done = tool.resume(id, call).await.unwrap();
    assert!(done.executed().unwrap().result.is_ok());
    assert!(
        collector.0.lock().unwrap().stack.is_empty(),
        "no span left entered"
    );

    let calls = collector.spans("approval_gate.call");
    assert_eq!(calls.len(), 1);
    let span = &calls[0];
    assert_eq!(span["run_id"], "run-7");
    assert_eq!(span["tool"], "email.send");
    assert_eq!(span["call_id"], "call-3");
    assert_eq!(span["request_id"], id.to_string(), "recorded once filed");
    assert_eq!(span["outcome"], "pending");

    let resumes = collector.spans("approval_gate.resume");
    assert_eq!(resumes.len(), 1);
    let span = &resumes[0];
    assert_eq!(span["run_id"], "run-7");
    assert_eq!(span["tool"], "email.send");
    assert_eq!(span["call_id"], "call-3");
    assert_eq!(span["request_id"], id.to_string());
    assert_eq!(span["outcome"], "executed");

    // One event per record of the trail, in order, with its fields.

    let trail = store.audit_records(&Default::default()).await.unwrap();
    let events = collector.audit_events();
    let names: Vec<&str> = events.iter().map(|(f, _)| f["event"].as_str()).collect();
    assert_eq!(
        names,
        [
            "approval_required",
            "approval_granted",
            "execution_started",
            "executed"
        ]
    );
    assert_eq!(events.len(), trail.len());
    for ((fields, _), record) in events.iter().zip(&trail) {
        assert_eq!(fields["event"], record.event_name());
        assert_eq!(fields["run_id"], "run-7");
        assert_eq!(fields["call_id"], "call-3");
        assert_eq!(fields["tool"], "email.send");
        assert_eq!(fields["request_id"], id.to_string());
        assert_eq!(fields["args_hash"], record.args_hash.unwrap().to_string());
        // The gate hands its sink each record before the store numbers it.
        assert!(!fields.contains_key("seq"));
        let json: Value = serde_json::from_str(&fields["record"]).unwrap();
        let mut unnumbered = record.clone();
        unnumbered.chain = None;
        assert_eq!(json, serde_json::to_value(&unnumbered).unwrap());
        assert!(
            fields.values().all(|v| !v.contains(SECRET)),
            "never the arguments"
        );
    }
    // Emitted within the step that recorded them.
    assert_eq!(events[0].1, Some("approval_gate.call"));
    assert_eq!(events[3].1, Some("approval_gate.resume"));

    // Records read back from the store carry their place in the chain.
    collector.0.lock().unwrap().events.clear();
    let sink = TracingSink::new();
    for record in &trail {
        sink.emit(record);
    }
    let seqs: Vec<String> = collector
        .audit_events()
        .iter()
        .map(|(f, _)| f["seq"].clone())
        .collect();
    assert_eq!(seqs, ["1", "2", "3", "4"]);
}
