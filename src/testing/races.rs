//! Races between workers and restarts between steps: scenarios every store runs
//! besides the rest of the suite, each with tasks racing on a Tokio runtime (run them on
//! a multi-threaded one, as `#[tokio::test(flavor = "multi_thread")]` does).
//!
//! ```
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() {
//! use std::sync::Arc;
//!
//! use approval_gate::{MemoryStore, testing::races};
//!
//! races::racing_grant_uses_stop_at_the_limit(Arc::new(MemoryStore::new())).await;
//! # }
//! ```

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::approval::{ApprovalRequest, Approver, RequestId, RequestState};
use crate::audit::{AuditEvent, AuditRecord};
use crate::call::ToolCall;
use crate::clock::{Clock, ManualClock};
use crate::gate::{Execution, Gate, GateOutcome, Gated, StopReason, ToolExecutor};
use crate::grant::{Grant, GrantScope, GrantSpec};
use crate::policy::{Decision, Policy};
use crate::run::{KillScope, UsageDelta};
use crate::store::{ApprovalStore, AuditQuery, StoreError};
use crate::token::{Key, Keyring};
use serde_json::{Value, json};
use uuid::Uuid;

/// How many tasks race in each scenario.
pub const RACERS: usize = 16;

const POLICY: &str = "\
approvals:
  required_for: [email.send]
  ttl_seconds: 300
  approval_ttl_seconds: 600
";

/// A store the restart scenarios can close, as a process does when it exits.
/// Implemented here for `SqliteStore` and `PostgresStore`; a host implements it for its
/// own store.
pub trait Reopen: ApprovalStore + Clone + 'static {
    /// Closes every connection.
    fn close(&self) -> impl Future<Output = ()> + Send;
}

#[cfg(feature = "sqlite")]
impl Reopen for crate::store::SqliteStore {
    fn close(&self) -> impl Future<Output = ()> + Send {
        let store = self.clone();
        async move { crate::store::SqliteStore::close(&store).await }
    }
}

#[cfg(feature = "postgres")]
impl Reopen for crate::store::PostgresStore {
    fn close(&self) -> impl Future<Output = ()> + Send {
        let store = self.clone();
        async move { crate::store::PostgresStore::close(&store).await }
    }
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", Uuid::new_v4().simple())
}

fn policy() -> Policy {
    Policy::from_yaml_str(POLICY).unwrap()
}

fn keys() -> Keyring {
    Keyring::new(Key::new("k1", [7u8; 32]).unwrap())
}

/// A pending request for an email in `run`, filed at `now`.
pub fn request(run: &str, now: time::OffsetDateTime) -> ApprovalRequest {
    let call = email(run);
    let policy = policy();
    let hash = call.args_hash().unwrap();
    ApprovalRequest::new(
        RequestId::new(),
        call.clone(),
        hash,
        &policy.evaluate(&call),
        policy.version().clone(),
        now,
    )
}

/// A record naming the version and state `r` was written with, so that a test can tell
/// whose write the trail holds.
pub fn rec(r: &ApprovalRequest) -> AuditRecord {
    let event = AuditEvent::Stopped {
        reason: "test".into(),
        detail: Some(format!("v{} {}", r.version(), r.stored_state())),
    };
    AuditRecord::for_request(r.created_at(), r, event)
}

/// What the trail says of request `id`: the `detail` of each record, in order.
async fn trail(store: &dyn ApprovalStore, id: RequestId) -> Vec<String> {
    let records = store.audit_records(&AuditQuery::request(id)).await.unwrap();
    records
        .into_iter()
        .map(|r| match r.event {
            AuditEvent::Stopped { detail, .. } => detail.unwrap_or_default(),
            other => other.name().to_owned(),
        })
        .collect()
}

fn email(run: &str) -> ToolCall {
    ToolCall::new(
        run,
        "call-1",
        "email.send",
        json!({"to": "bob@example.com", "subject": "Your refund"}),
    )
    .with_requester("agent-user")
}

fn gate(store: impl ApprovalStore + 'static, clock: &ManualClock) -> Gate {
    Gate::builder(policy(), keys())
        .store(store)
        .clock(clock.clone())
        .build()
}

/// The email tool, counting its runs in `runs`.
fn email_tool(
    gate: &Gate,
    runs: Arc<AtomicUsize>,
) -> Gated<impl ToolExecutor<Output = Value, Error = std::io::Error> + use<>> {
    gate.wrap(move |exec: Execution| {
        let runs = runs.clone();
        async move {
            runs.fetch_add(1, Ordering::SeqCst);
            tokio::task::yield_now().await;
            Ok::<Value, std::io::Error>(json!({"sent_to": exec.args()["to"]}))
        }
    })
}

/// Runs `write` in `RACERS` tasks at once, one per item of `inputs`; the results in order.
async fn race<I, T, F, Fut>(inputs: Vec<I>, write: F) -> Vec<T>
where
    I: Send + 'static,
    T: Send + 'static,
    F: Fn(I) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
{
    let start = Arc::new(tokio::sync::Barrier::new(inputs.len()));
    let tasks: Vec<_> = inputs
        .into_iter()
        .map(|input| {
            let start = start.clone();
            let fut = write(input);
            tokio::spawn(async move {
                start.wait().await;
                fut.await
            })
        })
        .collect();
    let mut out = Vec::with_capacity(tasks.len());
    for task in tasks {
        out.push(task.await.unwrap());
    }
    out
}

/// Of racing transitions computed from the same version, exactly one is written, for
/// every version along a request's life: decide (approve, deny, cancel), claim, finish.
pub async fn racing_updates_write_one_per_version(store: Arc<dyn ApprovalStore>) {
    let clock = ManualClock::default();
    let now = clock.now();
    let r = request(&unique("run"), now);
    store.create(r.clone(), &rec(&r), now).await.unwrap();

    // Version 1 → 2: approvals by different people, denials and cancels.
    let decisions: Vec<ApprovalRequest> = (0..RACERS)
        .map(|i| match i % 3 {
            0 => r.approve(&Approver::new(format!("a{i}")), now).unwrap(),
            1 => r.deny(&Approver::new(format!("d{i}")), None, now).unwrap(),
            _ => r
                .cancel(&Approver::new(format!("c{i}")), None, now)
                .unwrap(),
        })
        .collect();
    let results = race(decisions.clone(), |next| {
        let store = store.clone();
        async move { store.update(&next, &rec(&next)).await.map(|_| ()) }
    })
    .await;
    let winner = one_winner(&results);
    let stored = store.get(r.id()).await.unwrap();
    assert_eq!(stored.version(), 2);
    assert_eq!(
        serde_json::to_value(&stored).unwrap(),
        serde_json::to_value(&decisions[winner]).unwrap(),
        "the stored request is the winner's"
    );
    assert_eq!(
        trail(&*store, r.id()).await,
        [
            "v1 pending".to_owned(),
            format!("v2 {}", decisions[winner].stored_state())
        ],
        "the trail holds the winner's record, and only the winner's"
    );

    // Make sure the life goes on through an approval.
    let approved = if stored.stored_state() == RequestState::Approved {
        stored
    } else {
        let r = request(&unique("run"), now);
        store.create(r.clone(), &rec(&r), now).await.unwrap();
        let ok = r.approve(&Approver::new("ann"), now).unwrap();
        store.update(&ok, &rec(&ok)).await.unwrap();
        ok
    };

    // Version 2 → 3: claims, and cancels racing them.
    let claims: Vec<ApprovalRequest> = (0..RACERS)
        .map(|i| {
            if i % 4 == 3 {
                approved.cancel(&Approver::new("ops"), None, now).unwrap()
            } else {
                approved.claim(now).unwrap()
            }
        })
        .collect();
    let results = race(claims.clone(), |next| {
        let store = store.clone();
        async move { store.update(&next, &rec(&next)).await.map(|_| ()) }
    })
    .await;
    let winner = one_winner(&results);
    let stored = store.get(approved.id()).await.unwrap();
    assert_eq!(stored.stored_state(), claims[winner].stored_state());

    // Version 3 → 4: the tool's result, recorded once.
    if stored.stored_state() == RequestState::Executing {
        let finishes: Vec<ApprovalRequest> = (0..RACERS)
            .map(|i| stored.finish(i % 2 == 0, now).unwrap())
            .collect();
        let results = race(finishes, |next| {
            let store = store.clone();
            async move { store.update(&next, &rec(&next)).await.map(|_| ()) }
        })
        .await;
        one_winner(&results);
        assert_eq!(store.get(approved.id()).await.unwrap().version(), 4);
        assert_eq!(
            trail(&*store, approved.id()).await.len(),
            4,
            "one record per version"
        );
    }
}

/// Exactly one `Ok`, every other a `Conflict`; the winner's index.
fn one_winner(results: &[Result<(), StoreError>]) -> usize {
    let winners: Vec<usize> = (0..results.len()).filter(|i| results[*i].is_ok()).collect();
    assert_eq!(winners.len(), 1, "exactly one write wins: {results:?}");
    for r in results.iter().filter(|r| r.is_err()) {
        assert!(
            matches!(r, Err(StoreError::Conflict { .. })),
            "losers conflict: {r:?}"
        );
    }
    winners[0]
}

/// Identical calls filed at once make one request; every caller gets it back.
pub async fn racing_creates_file_one_request(store: Arc<dyn ApprovalStore>) {
    let now = ManualClock::default().now();
    let run = unique("run");
    let requests: Vec<ApprovalRequest> = (0..RACERS).map(|_| request(&run, now)).collect();
    let results = race(requests, |r| {
        let store = store.clone();
        async move {
            let record = rec(&r);
            store.create(r, &record, now).await.unwrap()
        }
    })
    .await;
    assert_eq!(results.iter().filter(|f| f.created).count(), 1);
    let id = results[0].request.id();
    assert!(results.iter().all(|f| f.request.id() == id));
    let query = crate::RequestQuery {
        run_id: Some(run),
        ..Default::default()
    };
    assert_eq!(store.list(&query, now).await.unwrap().len(), 1);
}

/// A grant of three uses covers three of many racing calls.
pub async fn racing_grant_uses_stop_at_the_limit(store: Arc<dyn ApprovalStore>) {
    let now = ManualClock::default().now();
    let run = unique("run");
    let approved = request(&run, now)
        .approve(&Approver::new("ann"), now)
        .unwrap();
    let spec = GrantSpec::new(GrantScope::Run, Duration::from_secs(3600)).max_uses(3);
    let grant = Grant::from_approval(&approved, &[Approver::new("ann")], &spec, now).unwrap();
    let record = AuditRecord::for_request(
        now,
        &approved,
        AuditEvent::GrantCreated {
            grant_id: grant.id(),
            by: "ann".into(),
            scope: grant.scope(),
            grant_tool: grant.tool().to_owned(),
            expires_at: grant.expires_at(),
            max_uses: grant.max_uses(),
        },
    );
    store.put_grant(&grant, &record).await.unwrap();
    let call = email(&run);
    let hash = call.args_hash().unwrap();
    let results = race((0..RACERS).collect(), |_| {
        let store = store.clone();
        let call = call.clone();
        async move {
            let wanted = Decision::approval_required("race");
            let used =
                crate::gate::grants::use_grant(&*store, &call, &hash, &wanted, "v", false, now);
            used.await.unwrap().map(|(grant, _)| grant)
        }
    })
    .await;
    let mut uses: Vec<u32> = results.iter().flatten().map(|g| g.uses()).collect();
    uses.sort_unstable();
    assert_eq!(uses, [1, 2, 3], "each use counted once, three at most");
    assert!(
        store
            .grants(now)
            .await
            .unwrap()
            .iter()
            .all(|g| g.id() != grant.id())
    );
}

/// Usage added by racing workers adds up; the run starts at the first use.
pub async fn racing_usage_adds_up(store: Arc<dyn ApprovalStore>) {
    let clock = ManualClock::default();
    let run = unique("run");
    let results = race((0..RACERS).collect(), |i: usize| {
        let store = store.clone();
        let run = run.clone();
        let at = clock.now() + Duration::from_secs(i as u64);
        async move {
            let delta = UsageDelta {
                steps: 1,
                tool_calls: 2,
                usd: 0.5,
            };
            store.add_usage(&run, delta, at).await.unwrap()
        }
    })
    .await;
    let total = store
        .add_usage(&run, UsageDelta::default(), clock.now())
        .await
        .unwrap();
    assert_eq!(total.steps, RACERS as u64);
    assert_eq!(total.tool_calls, 2 * RACERS as u64);
    assert!((total.usd - 0.5 * RACERS as f64).abs() < 1e-9);
    let mut seen: Vec<u64> = results.iter().map(|u| u.steps).collect();
    seen.sort_unstable();
    assert_eq!(seen, (1..=RACERS as u64).collect::<Vec<_>>());
    assert!(total.started_at.is_some());
}

/// Holders racing for one cursor's lease, when it is new and again when it has run out:
/// each time exactly one wins, and only the winner can move the cursor.
pub async fn racing_leases_have_one_winner(store: Arc<dyn ApprovalStore>) {
    let clock = ManualClock::default();
    let name = unique("cursor");
    for round in 0..2u64 {
        let now = clock.now() + Duration::from_secs(120 * round);
        let until = now + Duration::from_secs(60);
        let holders: Vec<String> = (0..RACERS).map(|i| format!("holder-{round}-{i}")).collect();
        let won = race(holders.clone(), |holder: String| {
            let store = store.clone();
            let name = name.clone();
            async move {
                store
                    .lease_cursor(&name, &holder, now, until)
                    .await
                    .unwrap()
            }
        })
        .await;
        let winners: Vec<_> = won.into_iter().flatten().collect();
        assert_eq!(winners.len(), 1, "round {round}: one holder wins the lease");
        let winner = &winners[0].holder;
        for holder in &holders {
            let moved = store
                .advance_cursor(&name, holder, round + 1, until)
                .await
                .unwrap();
            assert_eq!(moved, holder == winner, "only the holder moves the cursor");
        }
    }
}

/// Racing resumes of one approval through gates on the same store, some of them for
/// another tenant or requester: the tool runs once, for the filed call; every other
/// resume of the filed call stops with `ApprovalUsed`, and every changed one with
/// `ArgsMismatch`.
pub async fn racing_resumes_run_the_tool_once<S: ApprovalStore + Clone + 'static>(store: S) {
    let clock = ManualClock::default();
    let runs = Arc::new(AtomicUsize::new(0));
    let run = unique("run");
    let gate = gate(store.clone(), &clock);
    let tool = email_tool(&gate, runs.clone());
    let id = tool
        .call(email(&run))
        .await
        .unwrap()
        .pending()
        .unwrap()
        .request_id;
    gate.desk()
        .approve(id, &Approver::new("ann"))
        .await
        .unwrap();
    let tools: Vec<_> = (0..RACERS)
        .map(|_| {
            // Each racer a worker of its own: its own gate on the shared store.
            let gate = self::gate(store.clone(), &clock);
            email_tool(&gate, runs.clone())
        })
        .collect();
    let racers: Vec<_> = tools.into_iter().enumerate().collect();
    let outcomes = race(racers, |(i, tool)| {
        let call = match i % 3 {
            0 => email(&run),
            1 => email(&run).with_tenant("globex"),
            _ => email(&run).with_requester("mallory"),
        };
        async move {
            let told = match tool.resume(id, call).await.unwrap() {
                GateOutcome::Executed(_) => None,
                GateOutcome::Stopped(stop) => Some(stop.reason.name()),
                GateOutcome::Pending(_) => Some("pending"),
            };
            (i % 3 == 0, told)
        }
    })
    .await;
    assert_eq!(runs.load(Ordering::SeqCst), 1, "the tool ran once");
    assert_eq!(outcomes.iter().filter(|(_, o)| o.is_none()).count(), 1);
    for (filed, told) in &outcomes {
        let expected = if *filed {
            "approval_used"
        } else {
            "args_mismatch"
        };
        assert!(
            told.is_none() && *filed || *told == Some(expected),
            "{outcomes:?}"
        );
    }
}

/// Files a request, closes the store, reopens it and approves, closes it again, reopens
/// and resumes: nothing is lost, the tool runs once, and a second resume stops.
pub async fn restart_between_steps_runs_the_tool_once<S, F, Fut>(open: F)
where
    S: Reopen,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let clock = ManualClock::default();
    let runs = Arc::new(AtomicUsize::new(0));
    let run = unique("run");

    // Process 1: the agent's worker files the call and exits.
    let store = open().await;
    let id = {
        let gate = gate(store.clone(), &clock);
        let tool = email_tool(&gate, runs.clone());
        let outcome = tool.call(email(&run)).await.unwrap();
        outcome
            .pending()
            .expect("email.send waits for a person")
            .request_id
    };
    store.close().await;
    drop(store);

    // Process 2: a person approves on the desk.
    clock.advance(Duration::from_secs(60));
    let store = open().await;
    {
        let gate = gate(store.clone(), &clock);
        let pending = gate.desk().pending().await.unwrap();
        assert!(pending.iter().any(|r| r.id() == id), "the request survived");
        gate.desk()
            .approve(id, &Approver::new("ann"))
            .await
            .unwrap();
    }
    store.close().await;
    drop(store);

    // Process 3: a worker resumes; the tool runs once.
    clock.advance(Duration::from_secs(60));
    let store = open().await;
    {
        let gate = gate(store.clone(), &clock);
        let tool = email_tool(&gate, runs.clone());
        match tool.resume(id, email(&run)).await.unwrap() {
            GateOutcome::Executed(done) => {
                assert_eq!(done.request_id, Some(id));
                assert!(done.result.is_ok());
            }
            other => panic!("expected executed, got {}", other.name()),
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }
    store.close().await;
    drop(store);

    // Process 4: a second resume, after another restart, runs nothing.
    let store = open().await;
    let gate = gate(store.clone(), &clock);
    let tool = email_tool(&gate, runs.clone());
    match tool.resume(id, email(&run)).await.unwrap() {
        GateOutcome::Stopped(stop) => assert!(
            matches!(
                stop.reason,
                StopReason::ApprovalUsed {
                    state: RequestState::Executed
                }
            ),
            "{}",
            stop.reason.name()
        ),
        other => panic!("expected stopped, got {}", other.name()),
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1, "the tool ran once in all");
    // The trail survived every restart too, one record per step.
    let trail = store.audit_records(&AuditQuery::request(id)).await.unwrap();
    let events: Vec<&str> = trail.iter().map(AuditRecord::event_name).collect();
    assert_eq!(
        events,
        [
            "approval_required",
            "approval_granted",
            "execution_started",
            "executed",
            "stopped"
        ]
    );
    store.close().await;
}

/// A request left `Executing` by a crash is in doubt after a restart: resuming it stops
/// with `ApprovalUsed` and runs nothing.
pub async fn in_doubt_after_a_crash_is_not_run_again<S, F, Fut>(open: F)
where
    S: Reopen,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let clock = ManualClock::default();
    let runs = Arc::new(AtomicUsize::new(0));
    let run = unique("run");
    let store = open().await;
    let id = {
        let gate = gate(store.clone(), &clock);
        let tool = email_tool(&gate, runs.clone());
        let id = tool
            .call(email(&run))
            .await
            .unwrap()
            .pending()
            .unwrap()
            .request_id;
        gate.desk()
            .approve(id, &Approver::new("ann"))
            .await
            .unwrap();
        id
    };
    // The worker claims the approval, then dies before the tool returns.
    let approved = store.get(id).await.unwrap();
    let claimed = approved.claim(clock.now()).unwrap();
    store.update(&claimed, &rec(&claimed)).await.unwrap();
    store.close().await;
    drop(store);

    let store = open().await;
    let gate = gate(store.clone(), &clock);
    let tool = email_tool(&gate, runs.clone());
    match tool.resume(id, email(&run)).await.unwrap() {
        GateOutcome::Stopped(stop) => assert!(matches!(
            stop.reason,
            StopReason::ApprovalUsed {
                state: RequestState::Executing
            }
        )),
        other => panic!("expected stopped, got {}", other.name()),
    }
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    store.close().await;
}

/// The record of `ops` engaging or releasing the kill switch of `scope`.
pub fn kill_switch_changed(scope: &KillScope, engaged: bool) -> AuditRecord {
    let event = AuditEvent::KillSwitchChanged {
        by: "ops".into(),
        scope: scope.clone(),
        engaged,
    };
    AuditRecord::control(ManualClock::default().now(), "v", event)
}

/// The record of `ops` turning read-only mode on or off.
pub fn read_only_changed(on: bool) -> AuditRecord {
    let event = AuditEvent::ReadOnlyChanged {
        by: "ops".into(),
        on,
    };
    AuditRecord::control(ManualClock::default().now(), "v", event)
}

/// A switch engaged again moves to the end of the list, as in `MemoryStore`.
pub async fn kill_switches_keep_their_order(store: &dyn ApprovalStore) {
    let a = KillScope::Tool(unique("a"));
    let b = KillScope::Tenant(unique("b"));
    let flip = |scope: KillScope, engaged: bool| async move {
        let record = kill_switch_changed(&scope, engaged);
        store
            .set_kill_switch(scope, engaged, &record)
            .await
            .unwrap();
    };
    flip(a.clone(), true).await;
    flip(b.clone(), true).await;
    flip(KillScope::Global, true).await;
    flip(a.clone(), true).await;
    let killed = store.switches().await.unwrap().killed;
    assert_eq!(killed, [b.clone(), KillScope::Global, a.clone()]);
    for s in [a, b, KillScope::Global] {
        flip(s, false).await;
    }
    assert!(store.switches().await.unwrap().killed.is_empty());
}

/// One racer's work: what it did to which request.
type Racer = std::pin::Pin<Box<dyn Future<Output = (RequestId, Act)> + Send>>;

/// What one racer did to a request, and what it was told.
#[derive(Debug)]
enum Act {
    Approved(bool),
    Denied(bool),
    Cancelled(bool),
    Resumed(&'static str),
    Looked,
    Swept,
}

/// Workers race to approve (two people), deny, cancel, expire (a sweeper and a reader
/// whose clocks are past the TTL) and resume (three workers) the same requests, each through a gate of
/// its own on the shared store. Every request ends with exactly one decision, the tool
/// runs at most once per request and only after an approval, each caller's success is
/// in the trail once and each failure not at all, and the trail ends where the request
/// stands.
pub async fn mixed_races_leave_one_decision_and_at_most_one_run<S>(store: S)
where
    S: ApprovalStore + Clone + 'static,
{
    const REQUESTS: usize = 4;
    let clock = ManualClock::default();
    let runs: Arc<std::sync::Mutex<Vec<RequestId>>> = Arc::default();
    let counting_tool = |gate: &Gate| {
        let runs = runs.clone();
        gate.wrap(move |exec: Execution| {
            let runs = runs.clone();
            async move {
                runs.lock().unwrap().extend(exec.idempotency_key());
                tokio::task::yield_now().await;
                Ok::<Value, std::io::Error>(json!("sent"))
            }
        })
    };
    let filer = gate(store.clone(), &clock);
    let mut filed = Vec::new();
    for _ in 0..REQUESTS {
        let run = unique("run");
        let outcome = counting_tool(&filer).call(email(&run)).await.unwrap();
        filed.push((run, outcome.pending().unwrap().request_id));
    }
    // Deciders act a little before the deadline; the sweeper's clock is past it.
    clock.advance(Duration::from_secs(299));
    let late = ManualClock::default();
    late.advance(Duration::from_secs(301));

    let mut tasks: Vec<Racer> = Vec::new();
    let sweeper = gate(store.clone(), &late);
    tasks.push(Box::pin(async move {
        sweeper.sweep_expired(1).await.unwrap();
        (RequestId::new(), Act::Swept)
    }));
    for (run, id) in &filed {
        let id = *id;
        for who in ["ann", "ben"] {
            let desk = gate(store.clone(), &clock).desk();
            tasks.push(Box::pin(async move {
                let ok = desk.approve(id, &Approver::new(who)).await.is_ok();
                (id, Act::Approved(ok))
            }));
        }
        let desk = gate(store.clone(), &clock).desk();
        tasks.push(Box::pin(async move {
            let ok = desk.deny(id, &Approver::new("dee"), None).await.is_ok();
            (id, Act::Denied(ok))
        }));
        let desk = gate(store.clone(), &clock).desk();
        tasks.push(Box::pin(async move {
            let ok = desk.cancel(id, &Approver::new("ops"), None).await.is_ok();
            (id, Act::Cancelled(ok))
        }));
        // A look from a worker whose clock is past the deadline records the timeout.
        let desk = gate(store.clone(), &late).desk();
        tasks.push(Box::pin(async move {
            desk.show(id).await.unwrap();
            (id, Act::Looked)
        }));
        for n in 0..4 {
            let tool = counting_tool(&gate(store.clone(), &clock));
            // One resume for another requester, which never runs.
            let call = match n {
                3 => email(run).with_requester("mallory"),
                _ => email(run),
            };
            tasks.push(Box::pin(async move {
                let told = match tool.resume(id, call).await.unwrap() {
                    GateOutcome::Executed(_) => "executed",
                    GateOutcome::Pending(_) => "pending",
                    GateOutcome::Stopped(stop) => stop.reason.name(),
                };
                (id, Act::Resumed(told))
            }));
        }
    }
    // Each racer lets the others go first a random number of times, so that every run
    // tries another interleaving.
    let acts = race(tasks, |task| async move {
        for _ in 0..Uuid::new_v4().as_bytes()[0] % 16 {
            tokio::task::yield_now().await;
        }
        task.await
    })
    .await;

    let runs = runs.lock().unwrap().clone();
    for (_, id) in &filed {
        let records = store
            .audit_records(&AuditQuery::request(*id))
            .await
            .unwrap();
        // The transitions: `stopped` records tell only what a resume was told.
        let events: Vec<&str> = records
            .iter()
            .map(|r| r.event_name())
            .filter(|e| *e != "stopped")
            .collect();
        let count = |name: &str| events.iter().filter(|e| **e == name).count();
        let told = |pred: fn(&Act) -> bool| {
            acts.iter()
                .filter(|(for_id, act)| for_id == id && pred(act))
                .count()
        };

        // One decision: the first transition after filing, and never a second one.
        assert_eq!(events[0], "approval_required", "{events:?}");
        let decision = events[1];
        assert!(
            [
                "approval_granted",
                "approval_denied",
                "approval_cancelled",
                "approval_timeout"
            ]
            .contains(&decision),
            "{events:?}"
        );
        assert_eq!(
            count("approval_granted") + count("approval_denied"),
            usize::from(matches!(decision, "approval_granted" | "approval_denied")),
            "{events:?}"
        );
        if decision != "approval_granted" {
            assert_eq!(events.len(), 2, "nothing after a refusal: {events:?}");
        }

        // At most one run, only after the approval, and each run on the record.
        let ran = runs.iter().filter(|r| *r == id).count();
        assert!(ran <= 1, "ran {ran} times: {events:?}");
        assert_eq!(ran, count("execution_started"), "{events:?}");
        assert_eq!(ran, told(|a| matches!(a, Act::Resumed("executed"))));

        // What each caller was told agrees with the trail.
        assert_eq!(
            told(|a| matches!(a, Act::Approved(true))),
            count("approval_granted")
        );
        assert_eq!(
            told(|a| matches!(a, Act::Denied(true))),
            count("approval_denied")
        );
        assert_eq!(
            told(|a| matches!(a, Act::Cancelled(true))),
            count("approval_cancelled")
        );

        // The trail ends where the request stands.
        let state = store.get(*id).await.unwrap().stored_state();
        let last = *events.last().unwrap();
        let expected = match last {
            "approval_granted" => RequestState::Approved,
            "approval_denied" => RequestState::Denied,
            "approval_cancelled" => RequestState::Cancelled,
            "approval_timeout" => RequestState::Expired,
            "execution_started" => RequestState::Executing,
            "executed" => RequestState::Executed,
            other => panic!("unexpected last event `{other}`: {events:?}"),
        };
        assert_eq!(state, expected, "{events:?}");
    }

    // Racing writers appended to one unbroken chain.
    let trail = store.audit_records(&AuditQuery::default()).await.unwrap();
    let head = crate::trail::verify_chain(&trail, None).unwrap();
    assert_eq!(head.seq, trail.len() as u64);
}

/// A worker subscribed to `worker` hears of a decision made through `desk`, another
/// handle (another process) on the same data.
pub async fn a_decision_reaches_another_store(
    worker: &dyn ApprovalStore,
    desk: &dyn ApprovalStore,
) {
    let now = ManualClock::default().now();
    let mut changes = worker.subscribe().await.unwrap();
    let r = request(&unique("run"), now);
    worker.create(r.clone(), &rec(&r), now).await.unwrap();
    let approved = r.approve(&Approver::new("ann"), now).unwrap();
    desk.update(&approved, &rec(&approved)).await.unwrap();
    let mut heard = Vec::new();
    while heard.len() < 2 {
        let change = changes.next().await.unwrap();
        if change.request_id == r.id() {
            heard.push(change.state);
        }
    }
    assert_eq!(heard, [RequestState::Pending, RequestState::Approved]);
}

/// A request filed through `worker` is heard by a subscriber of `desk` (another store on
/// the same data, as another process would hold), as pending.
pub async fn a_filing_reaches_another_store(worker: &dyn ApprovalStore, desk: &dyn ApprovalStore) {
    let now = ManualClock::default().now();
    let mut changes = desk.subscribe().await.unwrap();
    let r = request(&unique("run"), now);
    assert!(
        worker
            .create(r.clone(), &rec(&r), now)
            .await
            .unwrap()
            .created
    );
    loop {
        let change = changes.next().await.unwrap();
        if change.request_id == r.id() {
            assert_eq!(change.state, RequestState::Pending);
            break;
        }
    }
}
