//! Fail closed: when the audit sink or the store fails, no write runs and nothing is left
//! in a state that lets it run unrecorded.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use approval_gate::{
    ApprovalRequest, Approver, AuditSink, DeskError, Execution, Gate, GateError, GateOutcome, Key,
    Keyring, ManualClock, MemorySink, MemoryStore, Policy, RequestId, RequestQuery, RequestState,
    StoreError, ToolCall,
    desk::{Grant, GrantId},
    store::{
        ControlStore, CursorStore, Expired, Filed, GrantStore, RequestStore, RunUsage,
        Subscription, Switches, TrailCursor, TrailReader, TrailWriter, UsageDelta,
    },
    trail::{AuditError, AuditQuery, AuditRecord},
};
use async_trait::async_trait;
use serde_json::{Value, json};
use time::OffsetDateTime;

const POLICY: &str = "\
approvals:
  required_for: [email.send]
  ttl_seconds: 300
rules:
  - id: reads
    tools: [\"*.read\"]
    effect: allow
";

/// An audit sink that can be switched off, failing every record while off.
#[derive(Clone, Default)]
struct SwitchSink {
    down: Arc<AtomicBool>,
    inner: MemorySink,
}

#[async_trait]
impl AuditSink for SwitchSink {
    async fn record(&self, record: &AuditRecord) -> Result<(), AuditError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(AuditError::backend(std::io::Error::other("disk full")));
        }
        self.inner.record(record).await
    }
}

/// A store whose operations can be switched to fail.
#[derive(Default)]
struct SwitchStore {
    inner: MemoryStore,
    fail_create: AtomicBool,
    fail_update: AtomicBool,
    fail_trail: AtomicBool,
}

fn backend_down() -> StoreError {
    StoreError::backend(std::io::Error::other("connection refused"))
}

#[async_trait]
impl RequestStore for SwitchStore {
    async fn create(
        &self,
        r: ApprovalRequest,
        record: &AuditRecord,
        now: OffsetDateTime,
    ) -> Result<Filed, StoreError> {
        if self.fail_create.load(Ordering::SeqCst) {
            return Err(backend_down());
        }
        self.inner.create(r, record, now).await
    }
    async fn get(&self, id: RequestId) -> Result<ApprovalRequest, StoreError> {
        self.inner.get(id).await
    }
    async fn update(
        &self,
        next: &ApprovalRequest,
        record: &AuditRecord,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        if self.fail_update.load(Ordering::SeqCst) {
            return Err(backend_down());
        }
        self.inner.update(next, record).await
    }
    async fn list(
        &self,
        q: &RequestQuery,
        now: OffsetDateTime,
    ) -> Result<Vec<ApprovalRequest>, StoreError> {
        self.inner.list(q, now).await
    }
    async fn sweep_expired(
        &self,
        now: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<Expired>, StoreError> {
        self.inner.sweep_expired(now, limit).await
    }
    async fn subscribe(&self) -> Result<Subscription, StoreError> {
        self.inner.subscribe().await
    }
}

#[async_trait]
impl ControlStore for SwitchStore {
    async fn switches(&self) -> Result<Switches, StoreError> {
        self.inner.switches().await
    }
    async fn set_kill_switch(
        &self,
        scope: approval_gate::KillScope,
        engaged: bool,
        record: &AuditRecord,
    ) -> Result<(), StoreError> {
        self.inner.set_kill_switch(scope, engaged, record).await
    }
    async fn set_read_only(&self, on: bool, record: &AuditRecord) -> Result<(), StoreError> {
        self.inner.set_read_only(on, record).await
    }
    async fn add_usage(
        &self,
        run_id: &str,
        delta: UsageDelta,
        now: OffsetDateTime,
    ) -> Result<RunUsage, StoreError> {
        self.inner.add_usage(run_id, delta, now).await
    }
    async fn usage(&self, run_id: &str) -> Result<RunUsage, StoreError> {
        self.inner.usage(run_id).await
    }
}

#[async_trait]
impl GrantStore for SwitchStore {
    async fn put_grant(&self, grant: &Grant, record: &AuditRecord) -> Result<(), StoreError> {
        self.inner.put_grant(grant, record).await
    }
    async fn grant(&self, id: GrantId) -> Result<Grant, StoreError> {
        self.inner.grant(id).await
    }
    async fn grants(&self, now: OffsetDateTime) -> Result<Vec<Grant>, StoreError> {
        self.inner.grants(now).await
    }
    async fn update_grant(&self, next: &Grant, record: &AuditRecord) -> Result<(), StoreError> {
        self.inner.update_grant(next, record).await
    }
}

#[async_trait]
impl TrailWriter for SwitchStore {
    async fn append_audit(&self, record: &AuditRecord) -> Result<(), StoreError> {
        if self.fail_trail.load(Ordering::SeqCst) {
            return Err(backend_down());
        }
        self.inner.append_audit(record).await
    }
}

#[async_trait]
impl TrailReader for SwitchStore {
    async fn audit_records(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        self.inner.audit_records(query).await
    }
}

#[async_trait]
impl CursorStore for SwitchStore {
    async fn lease_cursor(
        &self,
        name: &str,
        holder: &str,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<Option<TrailCursor>, StoreError> {
        self.inner.lease_cursor(name, holder, now, until).await
    }

    async fn advance_cursor(
        &self,
        name: &str,
        holder: &str,
        after_seq: u64,
        until: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        self.inner
            .advance_cursor(name, holder, after_seq, until)
            .await
    }

    async fn release_cursor(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        self.inner.release_cursor(name, holder).await
    }

    async fn cursors(&self) -> Result<Vec<TrailCursor>, StoreError> {
        self.inner.cursors().await
    }
}

struct World {
    gate: Gate,
    sink: SwitchSink,
    store: Arc<SwitchStore>,
    runs: Arc<AtomicUsize>,
}

impl World {
    fn new() -> Self {
        let sink = SwitchSink::default();
        let store = Arc::new(SwitchStore::default());
        let gate = Gate::builder(
            Policy::from_yaml_str(POLICY).unwrap(),
            Keyring::new(Key::new("k1", [1u8; 32]).unwrap()),
        )
        .shared_store(store.clone())
        .audit(sink.clone())
        .clock(ManualClock::default())
        .build();
        World {
            gate,
            sink,
            store,
            runs: Arc::default(),
        }
    }

    fn tool(
        &self,
    ) -> approval_gate::Gated<impl approval_gate::ToolExecutor<Output = Value> + use<>> {
        let runs = self.runs.clone();
        self.gate.wrap(move |_exec: Execution| {
            let runs = runs.clone();
            async move {
                runs.fetch_add(1, Ordering::SeqCst);
                Ok::<Value, std::io::Error>(json!("done"))
            }
        })
    }

    fn audit_down(&self, down: bool) {
        self.sink.down.store(down, Ordering::SeqCst);
    }

    fn runs(&self) -> usize {
        self.runs.load(Ordering::SeqCst)
    }
}

fn email() -> ToolCall {
    ToolCall::new(
        "run-1",
        "c1",
        "email.send",
        json!({"to": "bob@example.com"}),
    )
}

async fn pending_id(w: &World) -> RequestId {
    match w.tool().call(email()).await.unwrap() {
        GateOutcome::Pending(p) => p.request_id,
        other => panic!("expected pending, got {}", other.name()),
    }
}

async fn approved_id(w: &World) -> RequestId {
    let id = pending_id(w).await;
    w.gate
        .desk()
        .approve(id, &Approver::new("ann"))
        .await
        .unwrap();
    id
}

#[tokio::test]
async fn an_allowed_write_does_not_run_when_the_audit_sink_fails() {
    let w = World::new();
    w.audit_down(true);
    let result = w
        .tool()
        .call(ToolCall::new("run-1", "c1", "crm.read", json!({})))
        .await;
    assert!(matches!(result, Err(GateError::Audit(_))));
    assert_eq!(w.runs(), 0);
    // The store's trail, which took the `allow`, says the call did not run after all.
    let trail = w
        .store
        .audit_records(&AuditQuery::run("run-1"))
        .await
        .unwrap();
    let events: Vec<_> = trail.iter().map(AuditRecord::event_name).collect();
    assert_eq!(events, ["allow", "stopped"]);
    assert!(matches!(
        &trail[1].event,
        approval_gate::trail::AuditEvent::Stopped { reason, .. } if reason == "audit_failed"
    ));
}

#[tokio::test]
async fn an_allowed_write_does_not_run_when_the_stores_trail_fails() {
    let w = World::new();
    w.store.fail_trail.store(true, Ordering::SeqCst);
    let result = w
        .tool()
        .call(ToolCall::new("run-1", "c1", "crm.read", json!({})))
        .await;
    assert!(matches!(result, Err(GateError::Store(_))));
    assert_eq!(w.runs(), 0);
    assert!(
        w.sink.inner.is_empty(),
        "the sink hears only what the trail holds"
    );
}

#[tokio::test]
async fn an_unrecorded_request_is_withdrawn() {
    let w = World::new();
    w.audit_down(true);
    assert!(matches!(
        w.tool().call(email()).await,
        Err(GateError::Audit(_))
    ));
    w.audit_down(false);
    assert!(w.gate.desk().pending().await.unwrap().is_empty());
}

#[tokio::test]
async fn an_approval_that_cannot_be_recorded_is_not_given() {
    let w = World::new();
    let id = pending_id(&w).await;
    w.audit_down(true);
    let err = w
        .gate
        .desk()
        .approve(id, &Approver::new("ann"))
        .await
        .unwrap_err();
    assert!(matches!(err, DeskError::Audit(_)));
    w.audit_down(false);

    let request = w.gate.desk().show(id).await.unwrap();
    assert_eq!(request.stored_state(), RequestState::Pending);
    assert!(
        w.tool()
            .resume(id, email())
            .await
            .unwrap()
            .pending()
            .is_some()
    );
    assert_eq!(w.runs(), 0);
    assert!(!w.sink.inner.event_names().contains(&"approval_granted"));
    // The store's trail tells what happened: given, then taken back.
    let trail = w
        .store
        .audit_records(&AuditQuery::request(id))
        .await
        .unwrap();
    let events: Vec<_> = trail.iter().map(AuditRecord::event_name).collect();
    assert_eq!(
        events,
        [
            "approval_required",
            "approval_granted",
            "transition_reverted"
        ]
    );
}

#[tokio::test]
async fn a_claim_that_cannot_be_recorded_does_not_run_and_keeps_the_approval() {
    let w = World::new();
    let id = approved_id(&w).await;

    w.audit_down(true);
    assert!(matches!(
        w.tool().resume(id, email()).await,
        Err(GateError::Audit(_))
    ));
    assert_eq!(w.runs(), 0);

    w.audit_down(false);
    assert_eq!(
        w.gate.desk().show(id).await.unwrap().stored_state(),
        RequestState::Approved
    );
    assert!(
        w.tool()
            .resume(id, email())
            .await
            .unwrap()
            .executed()
            .is_some()
    );
    assert_eq!(w.runs(), 1);
}

#[tokio::test]
async fn a_store_that_cannot_file_lets_nothing_run() {
    let w = World::new();
    w.store.fail_create.store(true, Ordering::SeqCst);
    assert!(matches!(
        w.tool().call(email()).await,
        Err(GateError::Store(_))
    ));
    assert_eq!(w.runs(), 0);
}

#[tokio::test]
async fn a_store_that_cannot_claim_lets_nothing_run() {
    let w = World::new();
    let id = approved_id(&w).await;
    w.store.fail_update.store(true, Ordering::SeqCst);
    assert!(matches!(
        w.tool().resume(id, email()).await,
        Err(GateError::Store(_))
    ));
    assert_eq!(w.runs(), 0);
    assert!(!w.sink.inner.event_names().contains(&"execution_started"));
}

#[tokio::test]
async fn a_result_that_cannot_be_recorded_is_still_returned_and_flagged() {
    let w = World::new();
    let id = approved_id(&w).await;
    // The claim is recorded; then the store fails before the result is.
    let store = w.store.clone();
    let tool = w.gate.wrap(move |_exec: Execution| {
        let store = store.clone();
        async move {
            store.fail_update.store(true, Ordering::SeqCst);
            Ok::<Value, std::io::Error>(json!("sent"))
        }
    });
    let outcome = tool.resume(id, email()).await.unwrap();
    let done = outcome.executed().expect("the tool ran");
    assert!(done.result.is_ok());
    assert!(matches!(done.unrecorded, Some(GateError::Store(_))));
    w.store.fail_update.store(false, Ordering::SeqCst);
    // In doubt: never run again on its own.
    assert_eq!(
        w.gate.desk().show(id).await.unwrap().stored_state(),
        RequestState::Executing
    );
    assert!(
        w.tool()
            .resume(id, email())
            .await
            .unwrap()
            .stopped()
            .is_some()
    );
    assert_eq!(w.runs(), 0);
}
