//! The JSON-lines file trail beside a gate, through the public API: an approval flow
//! lands in the file in order, verifies, and holds no secret argument.

use std::path::PathBuf;
use std::time::Duration;

use approval_gate::{
    Approver, ArgsHash, Execution, Gate, GateOutcome, JsonlSink, Key, Keyring, ManualClock,
    MemoryStore, Policy, ToolCall,
    trail::{
        AuditEvent, AuditRecord, ChainHead, TrailFileError, jsonl_trail_files, read_jsonl_files,
        verify_chain, verify_jsonl_files,
    },
};
use serde_json::{Value, json};

const POLICY: &str = "\
approvals:
  required_for: [db.write]
  ttl_seconds: 300
  redact: [args.password]
";

const SECRET: &str = "hunter2-correct-horse-battery";

/// A fresh directory under the system's temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("approval-gate-it-{}", uuid_like()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A name unique to this test run, from a request id (a v4 UUID).
fn uuid_like() -> String {
    approval_gate::RequestId::new().to_string()
}

fn call() -> ToolCall {
    ToolCall::new(
        "run-1",
        "call-1",
        "db.write",
        json!({"table": "users", "user": "bob", "password": SECRET}),
    )
    .with_requester("agent-user")
}

#[tokio::test]
async fn an_approval_flow_lands_in_the_file_trail_in_order_without_secrets() {
    let dir = TempDir::new();
    let live = dir.0.join("trail.jsonl");
    // Small files, so the flow's records rotate across several.
    let sink = JsonlSink::builder(&live).max_bytes(600).open().unwrap();
    let clock = ManualClock::default();
    let keys = Keyring::new(Key::new("k1", [7u8; 32]).unwrap());
    let gate = Gate::builder(Policy::from_yaml_str(POLICY).unwrap(), keys)
        .store(MemoryStore::new())
        .audit(sink.clone())
        .clock(clock.clone())
        .build();
    let tool = gate.wrap(|exec: Execution| async move {
        Ok::<Value, std::io::Error>(json!({"wrote": exec.args()["user"].clone()}))
    });

    let GateOutcome::Pending(pending) = tool.call(call()).await.unwrap() else {
        panic!("db.write needs approval");
    };
    clock.advance(Duration::from_secs(30));
    gate.desk()
        .approve(pending.request_id, &Approver::new("ann"))
        .await
        .unwrap();
    clock.advance(Duration::from_secs(5));
    let outcome = tool.resume(pending.request_id, call()).await.unwrap();
    assert!(matches!(outcome, GateOutcome::Executed(_)));

    // The whole trail verifies up to the head the sink reports.
    let files = jsonl_trail_files(&live).unwrap();
    assert_eq!(files, sink.files());
    assert!(files.len() > 1, "expected rotation, got {files:?}");
    let head = sink.head();
    assert_eq!(head.seq, 4);
    assert_eq!(verify_jsonl_files(&files, Some(head)).unwrap(), head);

    // The request's steps, in order, each linked to the one before.
    let records = read_jsonl_files(&files).unwrap();
    let events: Vec<&str> = records.iter().map(|r| r.event_name()).collect();
    assert_eq!(
        events,
        [
            "approval_required",
            "approval_granted",
            "execution_started",
            "executed"
        ]
    );
    assert!(
        records
            .iter()
            .all(|r| r.request_id == Some(pending.request_id))
    );
    assert_eq!(records[1].event.actor(), Some("ann"));
    let mut prev = ChainHead::GENESIS;
    for r in &records {
        let link = r.chain.unwrap();
        assert_eq!((link.seq, link.prev_hash), (prev.seq + 1, prev.hash));
        prev = ChainHead {
            seq: link.seq,
            hash: link.hash,
        };
    }

    // The secret is nowhere in the files: records hold the args hash, never the args.
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        assert!(!text.contains(SECRET), "secret found in {}", file.display());
    }
}

#[tokio::test]
async fn a_gate_restarted_on_the_same_trail_continues_its_chain() {
    let dir = TempDir::new();
    let live = dir.0.join("trail.jsonl");
    let keys = Keyring::new(Key::new("k1", [7u8; 32]).unwrap());
    let policy = Policy::from_yaml_str(POLICY).unwrap();

    let mut heads = Vec::new();
    for _ in 0..2 {
        let sink = JsonlSink::open(&live).unwrap();
        let gate = Gate::builder(policy.clone(), keys.clone())
            .audit(sink.clone())
            .clock(ManualClock::default())
            .build();
        let tool = gate.wrap(|_: Execution| async { Ok::<Value, std::io::Error>(json!({})) });
        let outcome = tool.call(call()).await.unwrap();
        assert!(outcome.pending().is_some());
        heads.push(sink.head());
    }
    assert_eq!(heads[0].seq, 1);
    assert_eq!(heads[1].seq, 2);
    let files = jsonl_trail_files(&live).unwrap();
    assert_eq!(
        verify_jsonl_files(&files, Some(heads[0])).unwrap(),
        heads[1]
    );

    // Cutting the second record off is caught against the head noted after it.
    let text = std::fs::read_to_string(&live).unwrap();
    let first_line = text.lines().next().unwrap();
    std::fs::write(&live, format!("{first_line}\n")).unwrap();
    let err = verify_jsonl_files(&files, Some(heads[1])).unwrap_err();
    assert!(
        matches!(err, TrailFileError::Chain { line: 1, .. }),
        "{err:?}"
    );
}

/// A record as a newer worker writes it, linked after `head`, with `event`'s fields: its
/// hash computed as the chain documents it (SHA-256 over the canonical JSON of the record
/// without `hash`), not through this version's record type.
fn newer_workers_line(head: ChainHead, event: Value) -> Value {
    let mut record = json!({
        "schema": 1,
        "seq": head.seq + 1,
        "prev_hash": head.hash.to_string(),
        "at": "2026-01-01T00:00:05Z",
        "run_id": "run-1",
        "call_id": "call-1",
        "tool": "db.write",
        "policy_version": "v2",
    });
    let fields = record.as_object_mut().unwrap();
    fields.extend(event.as_object().unwrap().clone());
    let hash = ArgsHash::compute(&record).unwrap();
    record["hash"] = json!(hash.to_string());
    record
}

/// A record of an event this version does not know.
fn newer_workers_record(head: ChainHead) -> Value {
    newer_workers_line(
        head,
        json!({
            "event": "approval_delegated",
            "escalated_to": "oncall",
            "level": 2,
            "after": {"seconds": 120.5, "reminders": [1, 2]},
        }),
    )
}

#[test]
fn a_newer_workers_event_in_the_file_trail_is_read_verified_and_kept_whole() {
    let dir = TempDir::new();
    let live = dir.0.join("trail.jsonl");
    let allow = |at: i64| {
        AuditRecord::new(
            approval_gate::time::OffsetDateTime::from_unix_timestamp(at).unwrap(),
            &call(),
            None,
            "v1",
            AuditEvent::Allow { rule_ids: vec![] },
        )
    };
    let sink = JsonlSink::open(&live).unwrap();
    let head = sink.append(&allow(1_767_225_600)).unwrap();
    drop(sink);
    // A newer worker appends a record of an event this version does not know.
    let newer = newer_workers_record(head);
    let mut text = std::fs::read_to_string(&live).unwrap();
    text.push_str(&format!("{newer}\n"));
    std::fs::write(&live, text).unwrap();
    // This version's sink carries on after it.
    let sink = JsonlSink::open(&live).unwrap();
    assert_eq!(sink.head().seq, 2);
    let head = sink.append(&allow(1_767_225_610)).unwrap();
    assert_eq!(head.seq, 3);

    let files = jsonl_trail_files(&live).unwrap();
    assert_eq!(verify_jsonl_files(&files, None).unwrap(), head);
    let records = read_jsonl_files(&files).unwrap();
    assert_eq!(records.len(), 3);
    assert_eq!(records[1].event_name(), "unknown");
    assert_eq!(records[1].event.written_name(), "approval_delegated");
    let AuditEvent::Unknown { name, fields } = &records[1].event else {
        panic!("{:?}", records[1].event);
    };
    assert_eq!(name, "approval_delegated");
    assert_eq!(fields["escalated_to"], "oncall");
    assert_eq!(verify_chain(&records, Some(&head)).unwrap(), head);
    // Written back out, every record is the line it was read from.
    let lines: Vec<Value> = std::fs::read_to_string(&live)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let written: Vec<Value> = records
        .iter()
        .map(|r| serde_json::to_value(r).unwrap())
        .collect();
    assert_eq!(written, lines);
    assert_eq!(written[1], newer);
}

/// A newer worker's record of an event this version knows, with a field it added since:
/// read, verified and written back whole.
#[test]
fn a_newer_field_on_a_known_event_is_kept_and_verifies() {
    let dir = TempDir::new();
    let live = dir.0.join("trail.jsonl");
    let sink = JsonlSink::open(&live).unwrap();
    let first = AuditRecord::new(
        approval_gate::time::OffsetDateTime::from_unix_timestamp(1_767_225_600).unwrap(),
        &call(),
        None,
        "v1",
        AuditEvent::Allow { rule_ids: vec![] },
    );
    let head = sink.append(&first).unwrap();
    drop(sink);
    let newer = newer_workers_line(
        head,
        json!({
            "event": "approval_denied",
            "approver": "ann",
            "feedback": "not today",
            "category": {"code": 7, "label": "risk"},
            "record_origin": "worker-9",
        }),
    );
    let mut text = std::fs::read_to_string(&live).unwrap();
    text.push_str(&format!("{newer}\n"));
    std::fs::write(&live, text).unwrap();

    let files = jsonl_trail_files(&live).unwrap();
    let records = read_jsonl_files(&files).unwrap();
    // Read as the event this version knows...
    assert!(matches!(
        &records[1].event,
        AuditEvent::ApprovalDenied { approver, .. } if approver == "ann"
    ));
    assert_eq!(records[1].event.actor(), Some("ann"));
    // ...and the fields it does not know are kept: the chain verifies, the line
    // writes back as it was read.
    let head = verify_jsonl_files(&files, None).unwrap();
    assert_eq!(head.seq, 2);
    assert_eq!(verify_chain(&records, Some(&head)).unwrap(), head);
    assert_eq!(serde_json::to_value(&records[1]).unwrap(), newer);
    // This version's sink carries on after it.
    let sink = JsonlSink::open(&live).unwrap();
    assert_eq!(sink.append(&first).unwrap().seq, 3);
}
