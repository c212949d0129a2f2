//! Fault injection: a store and an audit sink that fail at their k-th operation, for
//! every k of each scenario, failing before the operation (it is not applied) or after it
//! (applied and committed, then the reply is lost), once or from k to the end of the step.
//!
//! After each run, checked against the store's own trail and requests: no write ran
//! without its approval on record, no request is in a state the state machine forbids,
//! the trail's chain verifies and ends where each request stands, and the caller was told
//! the truth about what ran.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use approval_gate::{
    ApprovalRequest, ApprovalStore, Approver, ArgsHash, AuditSink, Clock, DeskError, Execution,
    Gate, GateError, GateOutcome, Gated, GrantScope, GrantSpec, Key, Keyring, KillScope,
    ManualClock, MemorySink, MemoryStore, Policy, RequestId, RequestQuery, RequestState,
    StoreError, ToolCall, ToolExecutor,
    desk::{Grant, GrantId},
    store::{
        ControlStore, CursorStore, Expired, Filed, GrantStore, RequestStore, RunUsage,
        Subscription, Switches, TrailCursor, TrailReader, TrailWriter, UsageDelta,
    },
    trail::{AuditError, AuditEvent, AuditQuery, AuditRecord, verify_chain},
};
use async_trait::async_trait;
use serde_json::{Value, json};
use time::OffsetDateTime;

const POLICY: &str = "\
approvals:
  required_for: [email.send]
  ttl_seconds: 300
  approval_ttl_seconds: 60
tiers:
  critical: { quorum: 2 }
rules:
  - { id: reads, tools: ['*.read'], effect: allow }
  - { id: wires, tool: payments.wire, effect: approval_required, tier: critical }
";

// ---------------------------------------------------------------------------------------
// Faults
// ---------------------------------------------------------------------------------------

/// Where a faulted operation fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Not applied; an error comes back (the backend is unreachable).
    Before,
    /// Applied and committed; then an error comes back (the reply was lost).
    After,
}

/// What fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Store,
    Sink,
}

/// One planned fault: `source`'s operation number `k` (from 0) fails in `mode`; with
/// `outage`, so does every later one until the step ends.
#[derive(Debug, Clone, Copy)]
struct Plan {
    source: Source,
    mode: Mode,
    k: usize,
    outage: bool,
}

/// Counts operations and says which one fails.
#[derive(Debug, Default)]
struct Trip {
    ops: AtomicUsize,
    plan: Mutex<Option<Armed>>,
    fired: AtomicBool,
}

#[derive(Debug, Clone, Copy)]
struct Armed {
    k: usize,
    mode: Mode,
    outage: bool,
    /// Only this method fails (its first call from the k-th operation on).
    only: Option<&'static str>,
}

impl Trip {
    /// Counts one operation, `method`; `Some(mode)` when it is to fail.
    fn hit(&self, method: &'static str) -> Option<Mode> {
        let n = self.ops.fetch_add(1, Ordering::SeqCst);
        let armed = (*self.plan.lock().unwrap())?;
        let due = n >= armed.k && armed.only.is_none_or(|m| m == method);
        if due && (armed.outage || !self.fired.swap(true, Ordering::SeqCst)) {
            self.fired.store(true, Ordering::SeqCst);
            return Some(armed.mode);
        }
        None
    }

    fn arm(&self, k: usize, mode: Mode, outage: bool) {
        self.arm_only(k, mode, outage, None);
    }

    fn arm_only(&self, k: usize, mode: Mode, outage: bool, only: Option<&'static str>) {
        self.fired.store(false, Ordering::SeqCst);
        *self.plan.lock().unwrap() = Some(Armed {
            k,
            mode,
            outage,
            only,
        });
    }

    /// Clears the fault once it has fired; whether it had.
    fn clear_if_fired(&self) -> bool {
        let fired = self.fired.load(Ordering::SeqCst);
        if fired {
            *self.plan.lock().unwrap() = None;
        }
        fired
    }

    fn ops(&self) -> usize {
        self.ops.load(Ordering::SeqCst)
    }
}

fn unreachable_store() -> StoreError {
    StoreError::backend(std::io::Error::other("connection refused"))
}

fn lost_reply() -> StoreError {
    StoreError::backend(std::io::Error::other("connection reset before the reply"))
}

/// A real store behind a [`Trip`]: every method is delegated and counted, and the
/// faulted one fails before or after delegating.
struct FlakyStore {
    inner: Arc<dyn ApprovalStore>,
    trip: Arc<Trip>,
}

impl FlakyStore {
    async fn op<T>(
        &self,
        method: &'static str,
        op: impl Future<Output = Result<T, StoreError>> + Send,
    ) -> Result<T, StoreError> {
        match self.trip.hit(method) {
            None => op.await,
            Some(Mode::Before) => Err(unreachable_store()),
            Some(Mode::After) => {
                op.await?;
                Err(lost_reply())
            }
        }
    }
}

#[async_trait]
impl RequestStore for FlakyStore {
    async fn create(
        &self,
        request: ApprovalRequest,
        record: &AuditRecord,
        now: OffsetDateTime,
    ) -> Result<Filed, StoreError> {
        self.op("create", self.inner.create(request, record, now))
            .await
    }
    async fn get(&self, id: RequestId) -> Result<ApprovalRequest, StoreError> {
        self.op("get", self.inner.get(id)).await
    }
    async fn update(
        &self,
        next: &ApprovalRequest,
        record: &AuditRecord,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        self.op("update", self.inner.update(next, record)).await
    }
    async fn list(
        &self,
        query: &RequestQuery,
        now: OffsetDateTime,
    ) -> Result<Vec<ApprovalRequest>, StoreError> {
        self.op("list", self.inner.list(query, now)).await
    }
    async fn sweep_expired(
        &self,
        now: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<Expired>, StoreError> {
        self.op("sweep_expired", self.inner.sweep_expired(now, limit))
            .await
    }
    async fn subscribe(&self) -> Result<Subscription, StoreError> {
        self.op("subscribe", self.inner.subscribe()).await
    }
}

#[async_trait]
impl ControlStore for FlakyStore {
    async fn switches(&self) -> Result<Switches, StoreError> {
        self.op("switches", self.inner.switches()).await
    }
    async fn set_kill_switch(
        &self,
        scope: KillScope,
        engaged: bool,
        record: &AuditRecord,
    ) -> Result<(), StoreError> {
        self.op(
            "set_kill_switch",
            self.inner.set_kill_switch(scope, engaged, record),
        )
        .await
    }
    async fn set_read_only(&self, on: bool, record: &AuditRecord) -> Result<(), StoreError> {
        self.op("set_read_only", self.inner.set_read_only(on, record))
            .await
    }
    async fn add_usage(
        &self,
        run_id: &str,
        delta: UsageDelta,
        now: OffsetDateTime,
    ) -> Result<RunUsage, StoreError> {
        self.op("add_usage", self.inner.add_usage(run_id, delta, now))
            .await
    }
    async fn usage(&self, run_id: &str) -> Result<RunUsage, StoreError> {
        self.op("usage", self.inner.usage(run_id)).await
    }
}

#[async_trait]
impl GrantStore for FlakyStore {
    async fn put_grant(&self, grant: &Grant, record: &AuditRecord) -> Result<(), StoreError> {
        self.op("put_grant", self.inner.put_grant(grant, record))
            .await
    }
    async fn grant(&self, id: GrantId) -> Result<Grant, StoreError> {
        self.op("grant", self.inner.grant(id)).await
    }
    async fn grants(&self, now: OffsetDateTime) -> Result<Vec<Grant>, StoreError> {
        self.op("grants", self.inner.grants(now)).await
    }
    async fn update_grant(&self, next: &Grant, record: &AuditRecord) -> Result<(), StoreError> {
        self.op("update_grant", self.inner.update_grant(next, record))
            .await
    }
}

#[async_trait]
impl TrailWriter for FlakyStore {
    async fn append_audit(&self, record: &AuditRecord) -> Result<(), StoreError> {
        self.op("append_audit", self.inner.append_audit(record))
            .await
    }
}

#[async_trait]
impl TrailReader for FlakyStore {
    async fn audit_records(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        self.op("audit_records", self.inner.audit_records(query))
            .await
    }
}

#[async_trait]
impl CursorStore for FlakyStore {
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

/// The gate's mirror sink, failing at its k-th record: before keeping it, or after.
#[derive(Clone, Default)]
struct FlakySink {
    kept: MemorySink,
    trip: Arc<Trip>,
}

#[async_trait]
impl AuditSink for FlakySink {
    async fn record(&self, record: &AuditRecord) -> Result<(), AuditError> {
        let full = || AuditError::backend(std::io::Error::other("disk full"));
        match self.trip.hit(record.event_name()) {
            None => self.kept.record(record).await,
            Some(Mode::Before) => Err(full()),
            Some(Mode::After) => {
                self.kept.record(record).await?;
                Err(full())
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// The tool: counts every run, with what the trail held when it ran
// ---------------------------------------------------------------------------------------

/// One run of the tool.
#[derive(Debug, Clone)]
struct Run {
    call_id: String,
    args: Value,
    key: Option<RequestId>,
    /// The store's trail at the moment the tool ran.
    trail: Vec<AuditRecord>,
}

#[derive(Clone)]
struct Counting {
    store: Arc<dyn ApprovalStore>,
    runs: Arc<Mutex<Vec<Run>>>,
}

#[async_trait]
impl ToolExecutor for Counting {
    type Output = Value;
    type Error = std::io::Error;

    async fn execute(&self, exec: Execution) -> Result<Value, std::io::Error> {
        let trail = self
            .store
            .audit_records(&AuditQuery::default())
            .await
            .expect("the inner store reads");
        self.runs.lock().unwrap().push(Run {
            call_id: exec.call().call_id().to_owned(),
            args: exec.args().clone(),
            key: exec.idempotency_key(),
            trail,
        });
        if exec.args()["fail"] == json!(true) {
            return Err(std::io::Error::other("mailbox full"));
        }
        Ok(json!({"done": exec.call().call_id()}))
    }
}

// ---------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------

/// The calls the scenarios make, all in run `run-1`.
#[derive(Debug, Clone, Copy)]
enum Call {
    /// Allowed.
    Read,
    /// Allowed, and the tool fails.
    ReadFailing,
    /// Needs one approval.
    Email,
    /// Needs one approval, and the tool fails.
    EmailFailing,
    /// Another email in the same run (a standing grant covers it).
    EmailAgain,
    /// Needs two approvers.
    Wire,
}

impl Call {
    fn tool_call(self) -> ToolCall {
        let (id, tool, args) = match self {
            Call::Read => ("c-read", "crm.read", json!({"id": 7})),
            Call::ReadFailing => ("c-read-fail", "crm.read", json!({"id": 8, "fail": true})),
            Call::Email => ("c-email", "email.send", json!({"to": "bob@example.com"})),
            Call::EmailFailing => (
                "c-email-fail",
                "email.send",
                json!({"to": "bob@example.com", "fail": true}),
            ),
            Call::EmailAgain => ("c-email-2", "email.send", json!({"to": "dan@example.com"})),
            Call::Wire => ("c-wire", "payments.wire", json!({"amount": 900})),
        };
        ToolCall::new("run-1", id, tool, args)
    }
}

#[derive(Debug, Clone, Copy)]
enum Step {
    Call(Call),
    Approve(&'static str),
    ApproveEdited,
    ApproveWithGrant,
    Deny,
    Cancel,
    Advance(u64),
    Sweep,
    Resume,
}

struct Scenario {
    name: &'static str,
    steps: &'static [Step],
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "allowed",
        steps: &[Step::Call(Call::Read)],
    },
    Scenario {
        name: "approve_resume",
        steps: &[Step::Call(Call::Email), Step::Approve("ann"), Step::Resume],
    },
    Scenario {
        name: "approve_edited",
        steps: &[Step::Call(Call::Email), Step::ApproveEdited, Step::Resume],
    },
    Scenario {
        name: "deny",
        steps: &[Step::Call(Call::Email), Step::Deny, Step::Resume],
    },
    Scenario {
        name: "cancel",
        steps: &[
            Step::Call(Call::Email),
            Step::Approve("ann"),
            Step::Cancel,
            Step::Resume,
        ],
    },
    Scenario {
        name: "decision_ttl",
        steps: &[
            Step::Call(Call::Email),
            Step::Advance(301),
            Step::Sweep,
            Step::Resume,
        ],
    },
    Scenario {
        name: "approval_ttl",
        steps: &[
            Step::Call(Call::Email),
            Step::Approve("ann"),
            Step::Advance(61),
            Step::Sweep,
            Step::Resume,
        ],
    },
    Scenario {
        name: "grant",
        steps: &[
            Step::Call(Call::Email),
            Step::ApproveWithGrant,
            Step::Resume,
            Step::Call(Call::EmailAgain),
        ],
    },
    Scenario {
        name: "quorum",
        steps: &[
            Step::Call(Call::Wire),
            Step::Approve("ann"),
            Step::Approve("bob"),
            Step::Resume,
        ],
    },
    Scenario {
        name: "tool_fails",
        steps: &[
            Step::Call(Call::ReadFailing),
            Step::Call(Call::EmailFailing),
            Step::Approve("ann"),
            Step::Resume,
        ],
    },
];

/// What a step told its caller.
#[derive(Debug, Clone)]
enum Told {
    Executed {
        call_id: String,
        request_id: Option<RequestId>,
        unrecorded: bool,
    },
    Pending,
    Stopped,
    /// The desk decided (or refused to, for a reason that is not a fault).
    Desk,
    Swept,
    /// Nothing to act on (no request filed).
    Skipped,
    /// An infrastructure fault: the store or the sink failed.
    Fault(String),
}

struct StepLog {
    step: Step,
    attempt: u32,
    told: Told,
    runs_before: usize,
    runs_after: usize,
    /// The request's state by the clock, before and after the step.
    state_before: Option<RequestState>,
    state_after: Option<RequestState>,
}

/// The store to run on.
#[derive(Debug, Clone)]
enum Backend {
    Memory,
    /// A fresh copy of this migrated database file for each case.
    #[cfg(feature = "sqlite")]
    Sqlite(std::path::PathBuf),
}

struct World {
    gate: Gate,
    clock: ManualClock,
    inner: Arc<dyn ApprovalStore>,
    store_trip: Arc<Trip>,
    sink: FlakySink,
    tool: Gated<Counting>,
    runs: Arc<Mutex<Vec<Run>>>,
    filed: Option<(RequestId, ToolCall)>,
    log: Vec<StepLog>,
    #[cfg(feature = "sqlite")]
    sqlite: Option<approval_gate::SqliteStore>,
    _dir: Option<TempDir>,
}

/// A temporary directory, removed when dropped.
struct TempDir(std::path::PathBuf);

#[cfg(feature = "sqlite")]
impl TempDir {
    fn new() -> TempDir {
        let name = format!("approval-gate-faults-{}", uuid::Uuid::new_v4().simple());
        let dir = std::env::temp_dir().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

/// A `SqliteStore` on the file at `path`, migrated.
#[cfg(feature = "sqlite")]
async fn sqlite_store(path: &std::path::Path) -> approval_gate::SqliteStore {
    // Durability is not under test here: no fsync, to keep a thousand databases quick.
    let options = approval_gate::SqliteStore::options(path.to_str().unwrap())
        .synchronous(approval_gate::store::SqliteSynchronous::Off);
    approval_gate::SqliteStore::connect_with(options)
        .await
        .unwrap()
}

/// An empty, migrated database file in `dir`, to copy for each case.
#[cfg(feature = "sqlite")]
async fn sqlite_template(dir: &TempDir) -> std::path::PathBuf {
    let path = dir.0.join("template.db");
    sqlite_store(&path).await.close().await;
    path
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl World {
    async fn new(backend: &Backend) -> World {
        #[cfg(feature = "sqlite")]
        let mut sqlite = None;
        let (inner, dir): (Arc<dyn ApprovalStore>, Option<TempDir>) = match backend {
            Backend::Memory => (Arc::new(MemoryStore::new()), None),
            #[cfg(feature = "sqlite")]
            Backend::Sqlite(template) => {
                let dir = TempDir::new();
                let path = dir.0.join("approvals.db");
                std::fs::copy(template, &path).unwrap();
                let store = sqlite_store(&path).await;
                sqlite = Some(store.clone());
                (Arc::new(store), Some(dir))
            }
        };
        let store_trip = Arc::new(Trip::default());
        let flaky = FlakyStore {
            inner: inner.clone(),
            trip: store_trip.clone(),
        };
        let sink = FlakySink::default();
        let clock = ManualClock::default();
        let gate = Gate::builder(
            Policy::from_yaml_str(POLICY).unwrap(),
            Keyring::new(Key::new("k1", [5u8; 32]).unwrap()),
        )
        .store(flaky)
        .audit(sink.clone())
        .clock(clock.clone())
        .build();
        let runs = Arc::<Mutex<Vec<Run>>>::default();
        let tool = gate.wrap(Counting {
            store: inner.clone(),
            runs: runs.clone(),
        });
        World {
            gate,
            clock,
            inner,
            store_trip,
            sink,
            tool,
            runs,
            filed: None,
            log: Vec::new(),
            #[cfg(feature = "sqlite")]
            sqlite,
            _dir: dir,
        }
    }

    /// Closes the database, if any, before its directory goes.
    async fn close(self) {
        #[cfg(feature = "sqlite")]
        if let Some(store) = &self.sqlite {
            store.close().await;
        }
    }

    fn runs(&self) -> usize {
        self.runs.lock().unwrap().len()
    }

    fn trip(&self, source: Source) -> &Trip {
        match source {
            Source::Store => &self.store_trip,
            Source::Sink => &self.sink.trip,
        }
    }

    async fn state(&self) -> Option<RequestState> {
        let (id, _) = self.filed.as_ref()?;
        let request = self.inner.get(*id).await.ok()?;
        Some(request.state_at(self.clock.now()))
    }

    /// Runs `step` once and logs what it told.
    async fn step(&mut self, step: Step, attempt: u32) -> Told {
        let runs_before = self.runs();
        let state_before = self.state().await;
        let told = self.act(step).await;
        let log = StepLog {
            step,
            attempt,
            told: told.clone(),
            runs_before,
            runs_after: self.runs(),
            state_before,
            state_after: self.state().await,
        };
        self.log.push(log);
        told
    }

    async fn act(&mut self, step: Step) -> Told {
        let desk = self.gate.desk();
        let filed = self.filed.clone();
        let id = filed.as_ref().map(|(id, _)| *id);
        match (step, id) {
            (Step::Call(which), _) => {
                let call = which.tool_call();
                let outcome = self.tool.call(call.clone()).await;
                if let Ok(GateOutcome::Pending(p)) = &outcome {
                    self.filed = Some((p.request_id, call.clone()));
                }
                told(outcome, &call)
            }
            (Step::Resume, Some(id)) => {
                let call = filed.unwrap().1;
                told(self.tool.resume(id, call.clone()).await, &call)
            }
            (Step::Approve(who), Some(id)) => {
                desk_told(desk.approve(id, &Approver::new(who)).await)
            }
            (Step::ApproveEdited, Some(id)) => desk_told(
                desk.approve_with_edits(
                    id,
                    &Approver::new("ann"),
                    json!({"to": "carol@example.com"}),
                )
                .await,
            ),
            (Step::ApproveWithGrant, Some(id)) => {
                let spec = GrantSpec::new(GrantScope::Run, Duration::from_secs(3600));
                desk_told(
                    desk.approve_with_grant(id, &Approver::new("ann"), &spec)
                        .await,
                )
            }
            (Step::Deny, Some(id)) => desk_told(
                desk.deny(id, &Approver::new("ann"), Some("not today"))
                    .await,
            ),
            (Step::Cancel, Some(id)) => desk_told(
                desk.cancel(id, &Approver::new("ops"), Some("changed plans"))
                    .await,
            ),
            (Step::Advance(secs), _) => {
                self.clock.advance(Duration::from_secs(secs));
                Told::Desk
            }
            (Step::Sweep, _) => match self.gate.sweep_expired(100).await {
                Ok(_) => Told::Swept,
                Err(e) => Told::Fault(format!("{e:?}")),
            },
            (_, None) => Told::Skipped,
        }
    }
}

fn told(outcome: Result<GateOutcome<Value, std::io::Error>, GateError>, call: &ToolCall) -> Told {
    match outcome {
        Ok(GateOutcome::Executed(done)) => Told::Executed {
            call_id: call.call_id().to_owned(),
            request_id: done.request_id,
            unrecorded: done.unrecorded.is_some(),
        },
        Ok(GateOutcome::Pending(_)) => Told::Pending,
        Ok(GateOutcome::Stopped(_)) => Told::Stopped,
        Err(e) => Told::Fault(format!("{e:?}")),
    }
}

fn desk_told<T>(result: Result<T, DeskError>) -> Told {
    match result {
        Err(e @ (DeskError::Store(_) | DeskError::Audit(_))) => Told::Fault(format!("{e:?}")),
        _ => Told::Desk,
    }
}

// ---------------------------------------------------------------------------------------
// Running a case
// ---------------------------------------------------------------------------------------

/// What one run of a scenario did: how many operations each part saw, and what broke.
struct Report {
    store_ops: usize,
    sink_ops: usize,
    violations: Vec<String>,
}

async fn run_case(backend: Backend, scenario: &Scenario, plan: Option<Plan>) -> Report {
    let mut w = World::new(&backend).await;
    if let Some(p) = plan {
        w.trip(p.source).arm(p.k, p.mode, p.outage);
    }
    for &step in scenario.steps {
        let told = w.step(step, 1).await;
        let fired = plan.is_some_and(|p| w.trip(p.source).clear_if_fired());
        if fired && matches!(told, Told::Fault(_)) {
            // As a host would: the store or sink is back, try the step again.
            w.step(step, 2).await;
        }
    }
    let violations = check(&w, plan).await;
    let report = Report {
        store_ops: w.store_trip.ops(),
        sink_ops: w.sink.trip.ops(),
        violations,
    };
    w.close().await;
    report
}

/// Runs every scenario fault-free, then with a fault at every k of its operations, in
/// every mode; returns how many cases ran. Panics listing every broken invariant.
async fn run_all(backend: &Backend) -> usize {
    let mut cases = 0;
    let mut failures = Vec::new();
    for scenario in SCENARIOS {
        let clean = run_case(backend.clone(), scenario, None).await;
        cases += 1;
        for v in clean.violations {
            failures.push(format!("{} fault-free: {v}", scenario.name));
        }
        for source in [Source::Store, Source::Sink] {
            let n = match source {
                Source::Store => clean.store_ops,
                Source::Sink => clean.sink_ops,
            };
            for mode in [Mode::Before, Mode::After] {
                for outage in [false, true] {
                    for k in 0..n {
                        let plan = Plan {
                            source,
                            mode,
                            k,
                            outage,
                        };
                        let case = run_case(backend.clone(), scenario, Some(plan));
                        // A panic is a violation too: report it with its case.
                        let violations = match tokio::spawn(case).await {
                            Ok(report) => report.violations,
                            Err(e) => vec![format!("panicked: {e}")],
                        };
                        cases += 1;
                        for v in violations {
                            failures.push(format!("{} {plan:?}: {v}", scenario.name));
                        }
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} violations in {cases} cases:\n{}",
        failures.len(),
        failures.join("\n")
    );
    cases
}

// ---------------------------------------------------------------------------------------
// Invariants
// ---------------------------------------------------------------------------------------

/// One state of a request as its trail tells it, with the approval it holds.
#[derive(Debug, Clone)]
struct Held {
    state: RequestState,
    event: &'static str,
    approved_hash: Option<ArgsHash>,
    approval_expires_at: Option<OffsetDateTime>,
}

/// Replays the trail's request records through the state machine; returns each request's
/// history of states (the last is where the trail says it stands) and what is illegal.
fn replay(
    trail: &[AuditRecord],
    requests: &HashMap<RequestId, ApprovalRequest>,
) -> (HashMap<RequestId, Vec<Held>>, Vec<String>) {
    use RequestState::*;
    let mut states: HashMap<RequestId, Vec<Held>> = HashMap::new();
    let mut bad = Vec::new();
    for r in trail {
        let Some(id) = r.request_id else { continue };
        let stack = states.entry(id).or_default();
        let top = stack.last().cloned();
        let name = r.event_name();
        let from = top.as_ref().map(|t| t.state);
        let push = |state: RequestState, stack: &mut Vec<Held>| {
            let mut next = top.clone().unwrap_or(Held {
                state,
                event: name,
                approved_hash: None,
                approval_expires_at: None,
            });
            next.state = state;
            next.event = name;
            stack.push(next);
        };
        let legal = match (&r.event, from) {
            (AuditEvent::ApprovalRequired { .. }, None) => {
                push(Pending, stack);
                true
            }
            (AuditEvent::ApprovalVote { .. }, Some(Pending)) => {
                push(Pending, stack);
                true
            }
            (
                AuditEvent::ApprovalGranted {
                    approvers,
                    approved_args_hash,
                    approval_expires_at,
                    ..
                },
                Some(Pending),
            ) => {
                if let Some(req) = requests.get(&id) {
                    if r.at >= req.expires_at() {
                        bad.push(format!(
                            "request {id} approved at {} after its expiry",
                            r.at
                        ));
                    }
                    let mut distinct = approvers.clone();
                    distinct.sort();
                    distinct.dedup();
                    if distinct.len() < req.quorum() as usize {
                        bad.push(format!(
                            "request {id} approved by {approvers:?}, quorum {}",
                            req.quorum()
                        ));
                    }
                }
                push(Approved, stack);
                let top = stack.last_mut().unwrap();
                top.approved_hash = approved_args_hash.or(r.args_hash);
                top.approval_expires_at = Some(*approval_expires_at);
                true
            }
            (AuditEvent::ApprovalDenied { .. }, Some(Pending)) => {
                push(Denied, stack);
                true
            }
            (AuditEvent::ApprovalCancelled { .. }, Some(Pending | Approved))
            | (AuditEvent::ApprovalTimeout { .. }, Some(Pending | Approved)) => {
                let state = if name == "approval_cancelled" {
                    Cancelled
                } else {
                    Expired
                };
                push(state, stack);
                true
            }
            (AuditEvent::ExecutionStarted { .. }, Some(Approved)) => {
                let until = top.as_ref().and_then(|t| t.approval_expires_at);
                if until.is_none_or(|u| r.at >= u) {
                    bad.push(format!("request {id} claimed at {} after {until:?}", r.at));
                }
                push(Executing, stack);
                true
            }
            (AuditEvent::Executed { .. }, Some(Executing)) => {
                push(Executed, stack);
                true
            }
            (AuditEvent::ExecutionFailed { .. }, Some(Executing)) => {
                push(Failed, stack);
                true
            }
            (AuditEvent::TransitionReverted { reverted, .. }, Some(_)) => {
                let undone = stack.pop().unwrap();
                if undone.event != reverted.as_str() || stack.is_empty() {
                    bad.push(format!(
                        "request {id}: `{reverted}` reverted, but the last step was `{}`",
                        undone.event
                    ));
                }
                true
            }
            (AuditEvent::GrantCreated { .. }, Some(Approved | Executing | Executed | Failed))
            | (AuditEvent::GrantRevoked { .. }, Some(_))
            | (AuditEvent::ApprovalMerged { .. }, Some(Pending))
            | (AuditEvent::Stopped { .. }, Some(_))
            | (AuditEvent::PolicyDenied { .. }, Some(_)) => true,
            _ => false,
        };
        if !legal {
            bad.push(format!("request {id}: `{name}` from {from:?}"));
        }
    }
    (states, bad)
}

/// Every invariant, after the run (faults cleared), against the inner store.
async fn check(w: &World, plan: Option<Plan>) -> Vec<String> {
    let mut bad = Vec::new();
    let now = w.clock.now();
    let trail = w.inner.audit_records(&AuditQuery::default()).await.unwrap();
    if let Err(e) = verify_chain(&trail, None) {
        bad.push(format!("the trail's chain does not verify: {e}"));
    }
    let stored = w.inner.list(&RequestQuery::default(), now).await.unwrap();
    let requests: HashMap<RequestId, ApprovalRequest> =
        stored.into_iter().map(|r| (r.id(), r)).collect();
    let (states, illegal) = replay(&trail, &requests);
    bad.extend(illegal);
    let runs = w.runs.lock().unwrap().clone();

    // Where each request stands: the trail agrees, and what ran matches.
    for (id, request) in &requests {
        let stored = request.stored_state();
        let told = states.get(id).and_then(|s| s.last()).map(|t| t.state);
        if told != Some(stored) {
            bad.push(format!(
                "request {id} stands {stored:?}, its trail ends at {told:?}"
            ));
        }
        let ran = runs.iter().filter(|r| r.key == Some(*id)).count();
        let allowed = match stored {
            RequestState::Executed | RequestState::Failed => ran == 1,
            RequestState::Executing => ran <= 1,
            _ => ran == 0,
        };
        if !allowed {
            bad.push(format!(
                "request {id} stands {stored:?} and ran {ran} times"
            ));
        }
        let approved = matches!(
            stored,
            RequestState::Approved
                | RequestState::Executing
                | RequestState::Executed
                | RequestState::Failed
        );
        if approved
            && (request.token().is_none() || request.approvers().len() < request.quorum() as usize)
        {
            bad.push(format!(
                "request {id} stands {stored:?} without its approval"
            ));
        }
    }
    for id in states.keys() {
        if !requests.contains_key(id) {
            bad.push(format!(
                "the trail names request {id}, which the store lacks"
            ));
        }
    }

    // Every run had its approval (or allow, or grant) on record when it ran, with the
    // arguments approved; at most once per approval.
    let mut used_seqs = Vec::new();
    for run in &runs {
        let hash = ArgsHash::compute(&run.args).unwrap();
        match run.key {
            Some(id) => {
                if runs.iter().filter(|r| r.key == Some(id)).count() > 1 {
                    bad.push(format!("request {id} ran more than once"));
                }
                let (then, _) = replay(&run.trail, &requests);
                match then.get(&id).and_then(|s| s.last()) {
                    Some(t) if t.state == RequestState::Executing => {
                        if t.approved_hash != Some(hash) {
                            bad.push(format!(
                                "request {id} ran with args {} it was not approved for",
                                run.args
                            ));
                        }
                    }
                    other => bad.push(format!(
                        "request {id} ran while its trail said {:?}",
                        other.map(|t| t.state)
                    )),
                }
            }
            None => {
                let last = run
                    .trail
                    .iter()
                    .rev()
                    .find(|r| r.call_id == run.call_id && r.request_id.is_none());
                match last {
                    Some(r)
                        if matches!(r.event_name(), "allow" | "grant_used")
                            && r.args_hash == Some(hash) =>
                    {
                        let seq = r.chain.map(|c| c.seq);
                        if used_seqs.contains(&seq) {
                            bad.push(format!("`{}` of {} ran twice", r.event_name(), run.call_id));
                        }
                        used_seqs.push(seq);
                    }
                    other => bad.push(format!(
                        "{} ran while its trail's last word was {:?}",
                        run.call_id,
                        other.map(AuditRecord::event_name)
                    )),
                }
            }
        }
    }

    // A store that stays down until the step ends leaves no room to undo or annotate a
    // step whose reply was lost: those cases are in doubt by nature.
    let store_outage = plan.is_some_and(|p| p.source == Source::Store && p.outage);

    // Every `allow` or `grant_used` is followed by the result of the run it let through,
    // or by a `stopped` that says it did not run.
    for (i, r) in trail.iter().enumerate() {
        if r.request_id.is_some() || !matches!(r.event_name(), "allow" | "grant_used") {
            continue;
        }
        let seq = r.chain.map(|c| c.seq);
        let ran = used_seqs.contains(&seq);
        let next = trail[i + 1..]
            .iter()
            .find(|n| n.call_id == r.call_id && n.request_id.is_none())
            .map(AuditRecord::event_name);
        let told_unrecorded = w.log.iter().any(|l| {
            matches!(&l.told, Told::Executed { call_id, unrecorded: true, .. } if *call_id == r.call_id)
        });
        let fine = match (ran, next) {
            (true, Some("executed" | "execution_failed")) => true,
            (true, _) => told_unrecorded,
            (false, Some("stopped")) => true,
            // With the store down for good, nothing can say so.
            (false, _) => store_outage,
        };
        if !fine {
            bad.push(format!(
                "`{}` of {} (ran: {ran}) is followed by {next:?}",
                r.event_name(),
                r.call_id
            ));
        }
    }

    // What each step told its caller is true.
    for l in &w.log {
        let ran = l.runs_after - l.runs_before;
        let step = format!("{:?} (attempt {})", l.step, l.attempt);
        match &l.told {
            Told::Executed {
                call_id,
                request_id,
                unrecorded,
            } => {
                let this = runs.get(l.runs_before);
                if ran != 1 || this.is_none_or(|r| r.key != *request_id) {
                    bad.push(format!(
                        "{step} told executed, but the tool ran {ran} times"
                    ));
                }
                if !unrecorded {
                    let recorded = match request_id {
                        Some(id) => matches!(
                            requests.get(id).map(ApprovalRequest::stored_state),
                            Some(RequestState::Executed | RequestState::Failed)
                        ),
                        None => trail.iter().any(|r| {
                            &r.call_id == call_id
                                && matches!(r.event_name(), "executed" | "execution_failed")
                        }),
                    };
                    if !recorded {
                        bad.push(format!("{step} told executed and recorded, but it is not"));
                    }
                }
            }
            Told::Fault(e) => {
                if ran != 0 {
                    bad.push(format!("{step} told an error ({e}), but the tool ran"));
                }
                let lost_reply = plan.is_some_and(|p| p.mode == Mode::After);
                if !lost_reply && !store_outage && l.state_before != l.state_after {
                    bad.push(format!(
                        "{step} told an error ({e}), but its request went from {:?} to {:?}",
                        l.state_before, l.state_after
                    ));
                }
            }
            _ => {
                if ran != 0 {
                    bad.push(format!("{step} told {:?}, but the tool ran", l.told));
                }
            }
        }
    }

    // The sink beside the store hears only what the store's trail holds.
    for s in w.sink.kept.records() {
        let held = trail.iter().any(|r| {
            r.at == s.at
                && r.call_id == s.call_id
                && r.request_id == s.request_id
                && r.event == s.event
        });
        if !held {
            bad.push(format!(
                "the sink holds `{}` of {}, the store's trail does not",
                s.event_name(),
                s.call_id
            ));
        }
    }
    bad
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn every_fault_of_the_memory_store_and_the_sink_keeps_the_invariants() {
    let cases = run_all(&Backend::Memory).await;
    println!("memory store: {cases} cases");
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn every_fault_of_the_sqlite_store_and_the_sink_keeps_the_invariants() {
    let dir = TempDir::new();
    let cases = run_all(&Backend::Sqlite(sqlite_template(&dir).await)).await;
    println!("sqlite store: {cases} cases");
}

// ---------------------------------------------------------------------------------------
// Defects the sweep found, each minimised
// ---------------------------------------------------------------------------------------

async fn events(w: &World, query: AuditQuery) -> Vec<&'static str> {
    let trail = w.inner.audit_records(&query).await.unwrap();
    trail.iter().map(AuditRecord::event_name).collect()
}

async fn filed(w: &mut World, call: Call) -> RequestId {
    assert!(matches!(w.step(Step::Call(call), 1).await, Told::Pending));
    w.filed.as_ref().unwrap().0
}

/// An approval with a grant whose grant cannot be kept is not given: the approver is told
/// so, and telling them "failed" while the approval stood would be false.
#[tokio::test]
async fn a_grant_the_store_cannot_keep_takes_its_approval_back() {
    let mut w = World::new(&Backend::Memory).await;
    let id = filed(&mut w, Call::Email).await;
    w.store_trip
        .arm_only(0, Mode::Before, false, Some("put_grant"));
    assert!(matches!(
        w.step(Step::ApproveWithGrant, 1).await,
        Told::Fault(e) if e.starts_with("Store")
    ));
    w.store_trip.clear_if_fired();

    let request = w.inner.get(id).await.unwrap();
    assert_eq!(request.stored_state(), RequestState::Pending);
    assert!(w.inner.grants(w.clock.now()).await.unwrap().is_empty());
    assert_eq!(
        events(&w, AuditQuery::request(id)).await,
        [
            "approval_required",
            "approval_granted",
            "transition_reverted"
        ]
    );
    // The sink, which heard of the approval, hears that it was taken back.
    assert_eq!(
        w.sink.kept.event_names(),
        [
            "approval_required",
            "approval_granted",
            "transition_reverted"
        ]
    );

    // The approver tries again, and this time it holds.
    assert!(matches!(
        w.step(Step::ApproveWithGrant, 2).await,
        Told::Desk
    ));
    assert_eq!(
        w.inner.get(id).await.unwrap().stored_state(),
        RequestState::Approved
    );
    assert_eq!(w.inner.grants(w.clock.now()).await.unwrap().len(), 1);
    assert_eq!(check(&w, None).await, Vec::<String>::new());
}

/// The same when the sink beside the store refuses the grant's record: the grant is
/// revoked and the approval taken back.
#[tokio::test]
async fn a_grant_the_sink_cannot_record_takes_its_approval_back() {
    let mut w = World::new(&Backend::Memory).await;
    let id = filed(&mut w, Call::Email).await;
    w.sink
        .trip
        .arm_only(0, Mode::Before, false, Some("grant_created"));
    assert!(matches!(
        w.step(Step::ApproveWithGrant, 1).await,
        Told::Fault(e) if e.starts_with("Audit")
    ));
    w.sink.trip.clear_if_fired();

    let request = w.inner.get(id).await.unwrap();
    assert_eq!(request.stored_state(), RequestState::Pending);
    assert!(w.inner.grants(w.clock.now()).await.unwrap().is_empty());
    assert_eq!(
        events(&w, AuditQuery::request(id)).await,
        [
            "approval_required",
            "approval_granted",
            "grant_created",
            "grant_revoked",
            "transition_reverted"
        ]
    );
    // Nothing that the grant would have covered runs on it.
    w.step(Step::Call(Call::EmailAgain), 1).await;
    assert_eq!(w.runs(), 0);
}

/// A store that kept the `allow` but lost its reply: the tool does not run, and the
/// trail, which shows the call allowed, says that it did not run.
#[tokio::test]
async fn an_allow_kept_despite_a_store_error_is_marked_not_run() {
    let mut w = World::new(&Backend::Memory).await;
    w.store_trip
        .arm_only(0, Mode::After, false, Some("append_audit"));
    assert!(matches!(
        w.step(Step::Call(Call::Read), 1).await,
        Told::Fault(_)
    ));
    assert_eq!(w.runs(), 0);
    assert_eq!(
        events(&w, AuditQuery::run("run-1")).await,
        ["allow", "stopped"]
    );
    let trail = w.inner.audit_records(&AuditQuery::default()).await.unwrap();
    assert!(matches!(
        &trail[1].event,
        AuditEvent::Stopped { reason, .. } if reason == "store_failed"
    ));
}

/// The same for a standing grant's use that the store counted but whose reply was lost.
#[tokio::test]
async fn a_grant_use_kept_despite_a_store_error_is_marked_not_run() {
    let mut w = World::new(&Backend::Memory).await;
    filed(&mut w, Call::Email).await;
    assert!(matches!(
        w.step(Step::ApproveWithGrant, 1).await,
        Told::Desk
    ));
    w.store_trip
        .arm_only(0, Mode::After, false, Some("update_grant"));
    assert!(matches!(
        w.step(Step::Call(Call::EmailAgain), 1).await,
        Told::Fault(_)
    ));
    assert_eq!(w.runs(), 0);
    let trail = w.inner.audit_records(&AuditQuery::default()).await.unwrap();
    let again: Vec<_> = trail
        .iter()
        .filter(|r| r.call_id == "c-email-2")
        .map(AuditRecord::event_name)
        .collect();
    assert_eq!(again, ["grant_used", "stopped"]);
}
