//! The audit trail through the public API: each seed scenario leaves its events, the
//! trail is one verifying chain, exports verify, tampering is found, and no sink's output
//! holds a secret argument.

use approval_gate::store::{TrailReader, TrailWriter};
use std::time::Duration;

use approval_gate::{
    ApprovalStore, Approver, Execution, Gate, GateOutcome, Key, Keyring, ManualClock, MemorySink,
    MemoryStore, Policy, RequestId, ToolCall,
    trail::{
        AuditQuery, AuditRecord, ChainError, ChainVerifier, FanoutSink, export_jsonl, verify_chain,
    },
};
use serde_json::{Value, json};

const POLICY: &str = "\
approvals:
  required_for: [email.send]
  ttl_seconds: 300
  redact: [args.password]
rules:
  - { id: reads, tool: crm.read, effect: allow }
";

const SECRET: &str = "hunter2-do-not-log";

struct World {
    gate: Gate,
    clock: ManualClock,
    mirror: MemorySink,
}

impl World {
    fn new(store: impl ApprovalStore + 'static) -> Self {
        let clock = ManualClock::default();
        let mirror = MemorySink::new();
        let gate = Gate::builder(
            Policy::from_yaml_str(POLICY).unwrap(),
            Keyring::new(Key::new("k1", [3u8; 32]).unwrap()),
        )
        .store(store)
        .audit(FanoutSink::new().required(mirror.clone()))
        .clock(clock.clone())
        .build();
        World {
            gate,
            clock,
            mirror,
        }
    }

    fn email(run: &str) -> ToolCall {
        ToolCall::new(
            run,
            "call-1",
            "email.send",
            json!({"to": "bob@example.com", "password": SECRET}),
        )
        .with_requester("agent")
    }

    async fn file(&self, run: &str) -> RequestId {
        let tool = self.tool();
        match tool.call(Self::email(run)).await.unwrap() {
            GateOutcome::Pending(p) => p.request_id,
            other => panic!("expected pending, got {}", other.name()),
        }
    }

    fn tool(
        &self,
    ) -> approval_gate::Gated<impl approval_gate::ToolExecutor<Output = Value> + use<>> {
        self.gate
            .wrap(|_: Execution| async { Ok::<Value, std::io::Error>(json!("done")) })
    }

    async fn events(&self, id: RequestId) -> Vec<&'static str> {
        let records = self
            .gate
            .store()
            .audit_records(&AuditQuery::request(id))
            .await
            .unwrap();
        records.iter().map(AuditRecord::event_name).collect()
    }

    /// Runs the four seed scenarios and an allowed read; the request ids in order:
    /// approved and run, denied, timed out, cancelled.
    async fn scenarios(&self) -> [RequestId; 4] {
        let desk = self.gate.desk();
        let approved = self.file("run-approve").await;
        desk.approve(approved, &Approver::new("ann")).await.unwrap();
        let done = self
            .tool()
            .resume(approved, Self::email("run-approve"))
            .await
            .unwrap();
        assert!(done.executed().is_some());

        let denied = self.file("run-deny").await;
        desk.deny(denied, &Approver::new("ann"), Some("use the template"))
            .await
            .unwrap();

        let cancelled = self.file("run-cancel").await;
        desk.cancel(cancelled, &Approver::new("ops"), Some("duplicate"))
            .await
            .unwrap();

        let timed_out = self.file("run-timeout").await;
        self.clock.advance(Duration::from_secs(301));
        self.gate.sweep_expired(100).await.unwrap();

        let read = ToolCall::new("run-read", "call-1", "crm.read", json!({"id": 7}));
        assert!(self.tool().call(read).await.unwrap().executed().is_some());
        [approved, denied, timed_out, cancelled]
    }
}

#[tokio::test]
async fn each_seed_scenario_leaves_its_events_in_a_verifying_chain() {
    let w = World::new(MemoryStore::new());
    let [approved, denied, timed_out, cancelled] = w.scenarios().await;
    assert_eq!(
        w.events(approved).await,
        [
            "approval_required",
            "approval_granted",
            "execution_started",
            "executed"
        ]
    );
    assert_eq!(
        w.events(denied).await,
        ["approval_required", "approval_denied"]
    );
    assert_eq!(
        w.events(timed_out).await,
        ["approval_required", "approval_timeout"]
    );
    assert_eq!(
        w.events(cancelled).await,
        ["approval_required", "approval_cancelled"]
    );
    let read = w
        .gate
        .store()
        .audit_records(&AuditQuery::run("run-read"))
        .await
        .unwrap();
    let read: Vec<_> = read.iter().map(AuditRecord::event_name).collect();
    assert_eq!(read, ["allow", "executed"]);

    // What each record says of the decision.
    let granted = &w
        .gate
        .store()
        .audit_records(&AuditQuery::actor("ann"))
        .await
        .unwrap();
    assert_eq!(granted.len(), 2, "ann approved one and denied one");
    for record in granted {
        assert_eq!(record.tool, "email.send");
        assert!(record.args_hash.is_some());
        assert!(!record.policy_version.is_empty());
        assert_eq!(record.requested_by.as_deref(), Some("agent"));
    }

    // The whole trail is one chain, and the sink beside it saw the same records.
    let trail = w
        .gate
        .store()
        .audit_records(&AuditQuery::default())
        .await
        .unwrap();
    let head = verify_chain(&trail, None).unwrap();
    assert_eq!(head.seq, trail.len() as u64);
    let unlinked: Vec<AuditRecord> = trail
        .iter()
        .cloned()
        .map(|mut r| {
            r.chain = None;
            r
        })
        .collect();
    assert_eq!(unlinked, w.mirror.records());
}

#[tokio::test]
async fn an_export_verifies_line_by_line_and_tampering_is_named() {
    let w = World::new(MemoryStore::new());
    w.scenarios().await;
    // Enough allowed reads that the export reads several pages.
    for i in 0..600 {
        let read = ToolCall::new("run-bulk", format!("c{i}"), "crm.read", json!({"id": i}));
        w.tool().call(read).await.unwrap();
    }
    let mut out = Vec::new();
    let n = export_jsonl(&**w.gate.store(), &AuditQuery::default(), &mut out)
        .await
        .unwrap();
    let lines: Vec<Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len() as u64, n);
    assert!(n > 1200);
    let verify = |lines: &[Value]| {
        let mut v = ChainVerifier::new();
        for line in lines {
            v.push_value(line)?;
        }
        v.finish()
    };
    let head = verify(&lines).unwrap();
    assert_eq!(head.seq, n);

    // A limited export stops at its limit.
    let mut out = Vec::new();
    let query = AuditQuery {
        limit: Some(1001),
        ..AuditQuery::default()
    };
    let n = export_jsonl(&**w.gate.store(), &query, &mut out)
        .await
        .unwrap();
    assert_eq!(n, 1001);

    // An approver's approval quietly edited afterwards is found at its record.
    let mut edited = lines.clone();
    let at = edited
        .iter()
        .position(|l| l["event"] == "approval_granted")
        .unwrap();
    edited[at]["approver"] = json!("mallory");
    assert_eq!(
        verify(&edited),
        Err(ChainError::Modified { seq: at as u64 + 1 })
    );
    // A deleted record, and a tail cut off since a known head.
    let mut deleted = lines.clone();
    deleted.remove(3);
    assert!(matches!(
        verify(&deleted),
        Err(ChainError::Missing {
            seq: 5,
            expected: 4
        })
    ));
    let mut v = ChainVerifier::new().expect_head(head);
    for line in &lines[..lines.len() - 2] {
        v.push_value(line).unwrap();
    }
    assert!(matches!(v.finish(), Err(ChainError::Truncated { .. })));
}

#[tokio::test]
async fn no_sink_output_holds_a_secret_argument() {
    let w = World::new(MemoryStore::new());
    let [approved, ..] = w.scenarios().await;
    // The person deciding saw it redacted, and the executor got the real value.
    let request = w.gate.desk().show(approved).await.unwrap();
    assert_eq!(request.shown_args()["password"], "[redacted]");
    assert_eq!(request.call().args()["password"], SECRET);

    let mut export = Vec::new();
    export_jsonl(&**w.gate.store(), &AuditQuery::default(), &mut export)
        .await
        .unwrap();
    let export = String::from_utf8(export).unwrap();
    assert!(export.contains("email.send"));
    assert!(!export.contains(SECRET), "the store's trail");
    let mirrored = serde_json::to_string(&w.mirror.records()).unwrap();
    assert!(!mirrored.contains(SECRET), "the sink beside it");
}

/// A trail in a SQLite store holding a record of an event this version does not know,
/// written straight into the store's table as a newer worker would, reads, verifies,
/// exports, filters and counts.
#[cfg(feature = "sqlite")]
#[tokio::test]
async fn a_newer_workers_event_in_a_store_trail_is_read_verified_and_exported() {
    use approval_gate::time::OffsetDateTime;
    use approval_gate::{
        ArgsHash, SqliteStore,
        trail::{ApprovalStats, AuditEvent},
    };

    let dir = std::env::temp_dir().join(format!("approval-gate-it-{}", RequestId::new()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("trail.db");
    let store = SqliteStore::connect(path.to_str().unwrap()).await.unwrap();
    let at = |s: i64| OffsetDateTime::from_unix_timestamp(1_767_225_600 + s).unwrap();
    let call = ToolCall::new("run-new", "call-1", "crm.read", json!({}));
    let allow = |s| {
        AuditRecord::new(
            at(s),
            &call,
            None,
            "v1",
            approval_gate::trail::AuditEvent::Allow {
                rule_ids: vec!["reads".into()],
            },
        )
    };
    store.append_audit(&allow(0)).await.unwrap();
    let head = store.audit_records(&AuditQuery::default()).await.unwrap()[0]
        .chain
        .unwrap();

    // The newer worker's record, linked and written as the store writes its rows.
    let mut newer = json!({
        "schema": 1, "seq": 2, "prev_hash": head.hash.to_string(),
        "at": "2026-01-01T00:00:05Z", "run_id": "run-new", "call_id": "call-1",
        "tool": "crm.read", "policy_version": "v2",
        "event": "approval_delegated", "escalated_to": "oncall", "by": "ann", "level": 2,
    });
    let hash = ArgsHash::compute(&newer).unwrap().to_string();
    newer["hash"] = json!(hash);
    let db = approval_gate::rusqlite::Connection::open(&path).unwrap();
    db.execute(
        "INSERT INTO approval_audit \
         (seq, prev_hash, hash, at, event, run_id, request_id, actor, body) \
         VALUES (2, ?1, ?2, ?3, 'approval_delegated', 'run-new', NULL, 'ann', ?4)",
        approval_gate::rusqlite::params![
            head.hash.to_string(),
            hash,
            i64::try_from(at(5).unix_timestamp_nanos()).unwrap(),
            newer.to_string()
        ],
    )
    .unwrap();
    drop(db);
    // This version's worker appends after it.
    store.append_audit(&allow(10)).await.unwrap();

    let records = store
        .audit_records(&AuditQuery::run("run-new"))
        .await
        .unwrap();
    let names: Vec<&str> = records.iter().map(|r| r.event.written_name()).collect();
    assert_eq!(names, ["allow", "approval_delegated", "allow"]);
    assert_eq!(records[1].event_name(), "unknown");
    assert!(matches!(
        &records[1].event,
        AuditEvent::Unknown { name, fields } if name == "approval_delegated" && fields["level"] == 2
    ));
    let head = verify_chain(&records, None).unwrap();
    assert_eq!(head.seq, 3);

    // Exported, the record is the one the newer worker wrote, and the export verifies.
    let mut out = Vec::new();
    assert_eq!(
        export_jsonl(&store, &AuditQuery::default(), &mut out)
            .await
            .unwrap(),
        3
    );
    let lines: Vec<Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[1], newer);
    let mut verifier = ChainVerifier::new();
    for line in &lines {
        verifier.push_value(line).unwrap();
    }
    assert_eq!(verifier.finish().unwrap(), head);

    // Queries by actor use what the newer worker wrote; stats leave the event out.
    let by_ann = store
        .audit_records(&AuditQuery::actor("ann"))
        .await
        .unwrap();
    assert_eq!(by_ann.len(), 1);
    assert_eq!(by_ann[0].event.written_name(), "approval_delegated");
    let stats = ApprovalStats::compute(&store, at(0), at(60)).await.unwrap();
    assert_eq!(stats.decided, 0);
    assert_eq!(stats.pending, 0);

    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}
