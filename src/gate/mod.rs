//! Orchestration: [`Gate`] holds the parts, [`Gated`] wraps a tool executor with them.

mod executor;
mod gated;
pub(crate) mod grants;
mod outcome;

pub use executor::{Execution, ToolExecutor};
pub use gated::Gated;
pub use outcome::{
    ArgsEdit, Executed, GateOutcome, MismatchField, PendingApproval, Stop, StopReason, SwitchSource,
};

use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use thiserror::Error;
use time::OffsetDateTime;

use crate::approval::ApprovalRequest;

use crate::audit::{AuditError, AuditEvent, AuditRecord, AuditSink};

use crate::call::{ArgsLimits, ToolCall};

use crate::clock::{Clock, SystemClock};

use crate::desk::Desk;

use crate::policy::{Budgets, Policy};

use crate::run::{KillScope, RunUsage, Switches, UsageDelta};

use crate::store::{ApprovalStore, MemoryStore, StoreError, Subscription};

use crate::token::Keyring;

/// An infrastructure fault: the store or the audit sink failed. Unless the error says
/// otherwise (see [`Executed::unrecorded`]), nothing ran.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum GateError {
    /// The approval store failed.
    #[error("approval store failed")]
    Store(#[from] StoreError),
    /// The audit sink failed, so the step it was to record did not happen.
    #[error("audit sink failed")]
    Audit(#[from] AuditError),
}

/// The parts of the gate: policy, store, clock, signing keys, and optionally an audit sink
/// beside the store's own trail.
///
/// Cheap to clone (one `Arc`); clones share everything, including the policy, which
/// [`set_policy`](Self::set_policy) replaces for every clone at once.
///
/// ```
/// use approval_gate::{Gate, Key, Keyring, ManualClock, MemorySink, MemoryStore, Policy};
///
/// let policy = Policy::from_yaml_str("approvals:\n  required_for: [email.send]\n").unwrap();
/// let keys = Keyring::new(Key::new("k1", [42u8; 32]).unwrap());
/// let gate = Gate::builder(policy, keys)
///     .store(MemoryStore::new())
///     .audit(MemorySink::new())
///     .clock(ManualClock::default())
///     .build();
/// # let _ = gate;
/// ```
#[derive(Clone)]
pub struct Gate {
    inner: Arc<Inner>,
}

struct Inner {
    policy: RwLock<Policy>,
    keys: RwLock<Keyring>,
    store: Arc<dyn ApprovalStore>,
    audit: Option<Arc<dyn AuditSink>>,
    clock: Arc<dyn Clock>,
    limits: ArgsLimits,
}

impl fmt::Debug for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gate")
            .field("policy_version", &self.policy().version().to_string())
            .field("clock", &self.inner.clock)
            .field("limits", &self.inner.limits)
            .finish_non_exhaustive()
    }
}

impl Gate {
    /// Starts a gate with `policy`, signing approval tokens with `keys`.
    ///
    /// Unless set otherwise the gate keeps requests and the audit trail in a
    /// [`MemoryStore`], has no audit sink beside the store's trail, and reads the
    /// [`SystemClock`].
    pub fn builder(policy: Policy, keys: Keyring) -> GateBuilder {
        GateBuilder {
            policy,
            keys,
            store: None,
            audit: None,
            clock: None,
            limits: ArgsLimits::default(),
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> Policy {
        self.inner
            .policy
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the policy for every clone of this gate. Calls and resumes that start
    /// afterwards obey the new one, including resumes of requests approved under the old.
    pub fn set_policy(&self, policy: Policy) {
        *self
            .inner
            .policy
            .write()
            .unwrap_or_else(PoisonError::into_inner) = policy;
    }

    /// Replaces the keyring (for key rotation) for every clone of this gate.
    pub fn set_keys(&self, keys: Keyring) {
        *self
            .inner
            .keys
            .write()
            .unwrap_or_else(PoisonError::into_inner) = keys;
    }

    /// The keyring in force.
    pub fn keys(&self) -> Keyring {
        self.inner
            .keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn ApprovalStore> {
        &self.inner.store
    }

    /// A subscription to the changes of requests in the store (filings, decisions, claims,
    /// timeouts), to learn when to `resume` without polling; see [`Subscription`].
    pub async fn subscribe(&self) -> Result<Subscription, GateError> {
        Ok(self.inner.store.subscribe().await?)
    }

    /// The current time by the gate's clock.
    pub fn now(&self) -> OffsetDateTime {
        self.inner.clock.now()
    }

    /// The limits on arguments.
    pub fn args_limits(&self) -> &ArgsLimits {
        &self.inner.limits
    }

    /// The human side of this gate: list, show, approve, deny, cancel.
    pub fn desk(&self) -> Desk {
        Desk::new(self.clone())
    }

    /// Wraps `executor` so that every call goes through this gate.
    pub fn wrap<E: ToolExecutor>(&self, executor: E) -> Gated<E> {
        Gated::new(self.clone(), executor)
    }

    /// Records as timed out every request whose time has run out (up to `limit`), with an
    /// `approval_timeout` audit record each, and returns them.
    ///
    /// Optional: expiry holds without it, since every read applies the TTL. Sweeping keeps
    /// the pending list short and puts timeouts on the record promptly.
    pub async fn sweep_expired(&self, limit: usize) -> Result<Vec<ApprovalRequest>, GateError> {
        let now = self.now();
        let expired = self.inner.store.sweep_expired(now, limit).await?;
        let mut requests = Vec::with_capacity(expired.len());
        for expired in expired {
            self.mirror(&expired.record).await?;
            crate::observe::swept(&expired.request);
            requests.push(expired.request);
        }
        Ok(requests)
    }

    /// Figures of the last `window` of time by the gate's clock, from `now - window`
    /// (inclusive) to now (exclusive: a record made at this very instant counts in the
    /// next window), with the requests pending now; see
    /// [`ApprovalStats::compute`](crate::stats::ApprovalStats::compute).
    pub async fn stats(&self, window: Duration) -> Result<crate::stats::ApprovalStats, GateError> {
        let until = self.now();
        let from = time::Duration::try_from(window)
            .ok()
            .and_then(|w| until.checked_sub(w))
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let store = self.inner.store.as_ref();
        Ok(crate::stats::ApprovalStats::compute(store, from, until).await?)
    }

    /// Records the timeout of `request` if it is due at `now` and not yet recorded.
    /// Returns the request as it stands afterwards when it is expired, `None` when it is
    /// not due.
    pub(crate) async fn record_timeout(
        &self,
        request: &ApprovalRequest,
        now: OffsetDateTime,
    ) -> Result<Option<ApprovalRequest>, GateError> {
        let Ok(expired) = request.expire(now) else {
            return Ok(None);
        };
        let event = AuditEvent::ApprovalTimeout {
            from: request.stored_state().as_str().into(),
        };
        match self.commit(request, &expired, event, now).await {
            Ok(()) => Ok(Some(expired)),
            // Someone else recorded it (or decided first): report what stands.
            Err(GateError::Store(StoreError::Conflict { .. })) => {
                Ok(Some(self.inner.store.get(request.id()).await?))
            }
            Err(e) => Err(e),
        }
    }

    /// Withdraws `request` as the gate itself ([`GATE_ACTOR`](crate::approval::GATE_ACTOR)),
    /// recorded as `approval_cancelled` with `reason`, in the store and then the sink.
    pub(crate) async fn withdraw(
        &self,
        request: &ApprovalRequest,
        reason: String,
        now: OffsetDateTime,
    ) -> Result<(), GateError> {
        let Ok(withdrawn) = request.withdraw(reason.clone(), now) else {
            return Ok(());
        };
        let event = AuditEvent::ApprovalCancelled {
            by: crate::approval::GATE_ACTOR.into(),
            reason: Some(reason),
        };
        let record = AuditRecord::for_request(now, &withdrawn, event);
        for record in self.inner.store.update(&withdrawn, &record).await? {
            self.mirror(&record).await?;
        }
        Ok(())
    }

    /// Engages (`true`) or releases (`false`) a kill switch, in the store, on behalf of
    /// `by`: the next `call` or `resume` of every worker sharing the store obeys it.
    ///
    /// The store records the change (`kill_switch_changed`, naming `by.id()`) in the same
    /// transaction; the record then goes to the audit sink. If the sink fails, the change
    /// stands (it is in the store and its trail; undoing a switch would re-open what it
    /// closed) and [`GateError::Audit`] says the sink did not get the record.
    pub async fn set_kill_switch(
        &self,
        scope: KillScope,
        engaged: bool,
        by: &crate::approval::Approver,
    ) -> Result<(), GateError> {
        let event = AuditEvent::KillSwitchChanged {
            by: by.id().to_owned(),
            scope: scope.clone(),
            engaged,
        };
        let record = AuditRecord::control(self.now(), self.policy().version().as_str(), event);
        self.inner
            .store
            .set_kill_switch(scope, engaged, &record)
            .await?;
        Ok(self.mirror(&record).await?)
    }

    /// Turns read-only mode on or off, in the store, on behalf of `by`: while on, every
    /// tool that is not a read (`policy.read_tools`) is denied, for every worker sharing
    /// the store.
    ///
    /// Recorded (`read_only_changed`, naming `by.id()`) like
    /// [`set_kill_switch`](Self::set_kill_switch): if the audit sink fails, the change
    /// stands and [`GateError::Audit`] says the sink did not get the record.
    pub async fn set_read_only(
        &self,
        on: bool,
        by: &crate::approval::Approver,
    ) -> Result<(), GateError> {
        let event = AuditEvent::ReadOnlyChanged {
            by: by.id().to_owned(),
            on,
        };
        let record = AuditRecord::control(self.now(), self.policy().version().as_str(), event);
        self.inner.store.set_read_only(on, &record).await?;
        Ok(self.mirror(&record).await?)
    }

    /// Counts one agent step of run `run_id` against `budgets.max_steps`.
    pub async fn record_step(&self, run_id: &str) -> Result<RunUsage, GateError> {
        let delta = UsageDelta {
            steps: 1,
            ..UsageDelta::default()
        };
        Ok(self
            .inner
            .store
            .add_usage(run_id, delta, self.now())
            .await?)
    }

    /// Adds the cost of a step of run `run_id` (in US dollars) against `budgets.max_usd`.
    pub async fn record_cost(&self, run_id: &str, usd: f64) -> Result<RunUsage, GateError> {
        let delta = UsageDelta {
            usd,
            ..UsageDelta::default()
        };
        Ok(self
            .inner
            .store
            .add_usage(run_id, delta, self.now())
            .await?)
    }

    /// What run `run_id` has used so far: every `call` of the run that the switches did
    /// not stop, whatever its outcome (with budgets, counted before the policy decides;
    /// without, in the same write as the call's first record, so a call whose record the
    /// store refused is not counted), and the steps and costs the host reported. A
    /// `resume` does not count again.
    pub async fn usage(&self, run_id: &str) -> Result<RunUsage, GateError> {
        Ok(self.inner.store.usage(run_id).await?)
    }

    /// The run controls, checked before the policy on every `call` and `resume`: kill
    /// switches (the config's, then the store's), read-only mode, budgets.
    ///
    /// Every `call` (`counts_as_call`) counts, budgets or not, so that `usage` reads
    /// what happened and a policy that adds budgets later counts from the run's start;
    /// a call the switches stop does not. With budgets, the call is counted here, before
    /// the policy decides, so that concurrent calls cannot overrun them. Without, the
    /// store counts it with the call's first record ([`AuditRecord::counts_call`]), so
    /// that counting costs no commit of its own: [`Controls::count_in_record`] says so.
    pub(crate) async fn run_controls(
        &self,
        call: &ToolCall,
        policy: &Policy,
        counts_as_call: bool,
        now: OffsetDateTime,
    ) -> Result<Controls, GateError> {
        if policy.controls().kill_switch {
            return Ok(Controls::stop(StopReason::KillSwitch {
                scope: KillScope::Global,
                source: SwitchSource::Config,
            }));
        }
        let budgets = policy.budgets();
        if *budgets == Budgets::default() {
            let switches = self.inner.store.switches().await?;
            return Ok(match switch_stop(&switches, call, policy) {
                Some(reason) => Controls::stop(reason),
                None => Controls {
                    stop: None,
                    count_in_record: counts_as_call,
                },
            });
        }
        let delta = UsageDelta {
            tool_calls: u64::from(counts_as_call),
            ..UsageDelta::default()
        };
        let stops = |s: &Switches| switch_stop(s, call, policy).is_some();
        let (switches, usage) = self
            .inner
            .store
            .switches_then_add_usage(&stops, call.run_id(), delta, now)
            .await?;
        if let Some(reason) = switch_stop(&switches, call, policy) {
            return Ok(Controls::stop(reason));
        }
        let stop =
            usage
                .and_then(|usage| usage.exceeded(budgets, now))
                .map(|(budget, limit, used)| StopReason::BudgetExceeded {
                    budget,
                    limit,
                    used,
                });
        Ok(Controls {
            stop,
            count_in_record: false,
        })
    }

    /// Records a step that changes no request: in the store's trail, then in the sink.
    pub(crate) async fn record(&self, record: &AuditRecord) -> Result<(), GateError> {
        self.inner.store.append_audit(record).await?;
        Ok(self.mirror(record).await?)
    }

    /// Records `before` (an `allow` or `grant_used`, which say the tool runs next) in the
    /// store's trail and the sink. When the sink refuses it, the tool must not run: the
    /// store's trail, which holds `before` already, gets a `stopped` record saying so.
    ///
    /// When the store fails, it may have kept `before` all the same (its reply was lost):
    /// a `stopped` record (reason `store_failed`) goes after it, if the store takes it.
    pub(crate) async fn record_before_run(&self, before: &AuditRecord) -> Result<(), GateError> {
        if let Err(e) = self.inner.store.append_audit(before).await {
            self.record_not_run(before, NotRun::StoreFailed, &e).await;
            return Err(e.into());
        }
        self.mirror_before_run(before).await
    }

    /// Best effort: appends to the store's trail that the call of `before` did not run,
    /// because of `error`. If the store fails now, the caller's error still stops the tool.
    pub(crate) async fn record_not_run(
        &self,
        before: &AuditRecord,
        cause: NotRun,
        error: &(dyn std::error::Error + Send + Sync),
    ) {
        let stopped = not_run_record(before, cause, error);
        let _ = self.inner.store.append_audit(&stopped).await;
    }

    /// [`record_before_run`](Self::record_before_run) for a record the store wrote already.
    pub(crate) async fn mirror_before_run(&self, before: &AuditRecord) -> Result<(), GateError> {
        let Err(e) = self.mirror(before).await else {
            return Ok(());
        };
        self.record_not_run(before, NotRun::AuditFailed, &e).await;
        Err(e.into())
    }

    /// Hands a record the store's trail already holds to the sink beside it, if any.
    pub(crate) async fn mirror(&self, record: &AuditRecord) -> Result<(), AuditError> {
        match &self.inner.audit {
            Some(sink) => sink.record(record).await,
            None => Ok(()),
        }
    }

    /// Writes `next` over `prev` (compare-and-set) together with its audit record, then
    /// hands the record to the sink. If the sink fails, puts `prev`'s content back (with a
    /// `transition_reverted` record) so that the step does not stand, and fails. The
    /// records of the grants the store ended with the step then go to the sink too.
    pub(crate) async fn commit(
        &self,
        prev: &ApprovalRequest,
        next: &ApprovalRequest,
        event: AuditEvent,
        now: OffsetDateTime,
    ) -> Result<(), GateError> {
        let record = AuditRecord::for_request(now, next, event);
        let written = self.inner.store.update(next, &record).await?;
        if let Err(e) = self.mirror(&record).await {
            self.revert(next, prev, &record, &e, now).await;
            return Err(e.into());
        }
        crate::observe::committed(prev, &record);
        // The grants the step ended (a cancel, a denial): the revocations stand, whatever
        // the sink says, since undoing them would re-open what they closed.
        for ended in written.iter().skip(1) {
            self.mirror(ended).await?;
        }
        Ok(())
    }

    /// Puts `prev`'s content back over `next`, whose record the sink refused (or whose
    /// step could not be completed because of `error`); returns the
    /// `transition_reverted` record it wrote, if the store took it.
    ///
    /// Best effort: if this loses a race, the racer's own sink write decides (and with
    /// the sink down, it fails closed too).
    pub(crate) async fn revert(
        &self,
        next: &ApprovalRequest,
        prev: &ApprovalRequest,
        refused: &AuditRecord,
        error: &(dyn std::error::Error + Send + Sync),
        now: OffsetDateTime,
    ) -> Option<AuditRecord> {
        let back = next.revert_to(prev);
        let event = AuditEvent::TransitionReverted {
            reverted: refused.event_name().to_owned(),
            reason: error_chain(error),
        };
        let record = AuditRecord::for_request(now, &back, event);
        self.inner.store.update(&back, &record).await.ok()?;
        Some(record)
    }
}

/// What the store's switches say about `call`: a kill switch that covers it, or read-only
/// mode for a tool that is not a read.
fn switch_stop(switches: &Switches, call: &ToolCall, policy: &Policy) -> Option<StopReason> {
    if let Some(scope) = switches.kill_switch_for(call) {
        return Some(StopReason::KillSwitch {
            scope: scope.clone(),
            source: SwitchSource::Store,
        });
    }
    if switches.read_only && !policy.is_read_tool(call.tool()) {
        return Some(StopReason::ReadOnly);
    }
    None
}

/// What the run controls said of a call ([`Gate::run_controls`]).
#[derive(Debug)]
pub(crate) struct Controls {
    /// Why the call stops before the policy decides, if it does.
    pub(crate) stop: Option<StopReason>,
    /// Whether the call is still to be counted, by the store, with its first record.
    pub(crate) count_in_record: bool,
}

impl Controls {
    /// The call stops for `reason`, uncounted (or counted already).
    fn stop(reason: StopReason) -> Self {
        Controls {
            stop: Some(reason),
            count_in_record: false,
        }
    }
}

/// Why a call that was about to run did not: the part of the gate that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotRun {
    /// The store failed (its reply may have been lost after it kept the step).
    StoreFailed,
    /// The audit sink beside the store's trail refused the record.
    AuditFailed,
}

impl NotRun {
    /// The reason's name on the trail's `stopped` record.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            NotRun::StoreFailed => "store_failed",
            NotRun::AuditFailed => "audit_failed",
        }
    }
}

/// The `stopped` record saying that the call of `before` did not run, because of `error`.
pub(crate) fn not_run_record(
    before: &AuditRecord,
    cause: NotRun,
    error: &(dyn std::error::Error + Send + Sync),
) -> AuditRecord {
    let mut stopped = before.clone().counting_call(false);
    stopped.event = AuditEvent::Stopped {
        reason: cause.as_str().into(),
        detail: Some(error_chain(error)),
    };
    stopped
}

/// An error and its sources, one line: `audit sink failed: disk full`.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

/// Builds a [`Gate`]; see [`Gate::builder`].
#[must_use]
pub struct GateBuilder {
    policy: Policy,
    keys: Keyring,
    store: Option<Arc<dyn ApprovalStore>>,
    audit: Option<Arc<dyn AuditSink>>,
    clock: Option<Arc<dyn Clock>>,
    limits: ArgsLimits,
}

impl fmt::Debug for GateBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GateBuilder").finish_non_exhaustive()
    }
}

impl GateBuilder {
    /// Keeps approval requests in `store`.
    pub fn store(self, store: impl ApprovalStore + 'static) -> Self {
        self.shared_store(Arc::new(store))
    }

    /// Keeps approval requests in a store shared with other parts of the host.
    pub fn shared_store(mut self, store: Arc<dyn ApprovalStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Records the audit trail to `sink` too, beside the store's own trail.
    ///
    /// The store writes each record in the same transaction as the change it records;
    /// the sink gets it right after. When the sink fails, the step does not stand: a
    /// decision or claim is put back (recorded as `transition_reverted` in the store's
    /// trail), a tool that was about to run does not run, and the caller gets the error.
    pub fn audit(self, sink: impl AuditSink + 'static) -> Self {
        self.shared_audit(Arc::new(sink))
    }

    /// Records the audit trail to a sink shared with other parts of the host, too; see
    /// [`audit`](Self::audit).
    pub fn shared_audit(mut self, sink: Arc<dyn AuditSink>) -> Self {
        self.audit = Some(sink);
        self
    }

    /// Reads time from `clock` (a [`ManualClock`](crate::clock::ManualClock) in tests).
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// Bounds the size and depth of arguments; larger ones stop with
    /// [`StopReason::InvalidArgs`].
    pub fn args_limits(mut self, limits: ArgsLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The gate.
    pub fn build(self) -> Gate {
        Gate {
            inner: Arc::new(Inner {
                policy: RwLock::new(self.policy),
                keys: RwLock::new(self.keys),
                store: self.store.unwrap_or_else(|| Arc::new(MemoryStore::new())),
                audit: self.audit,
                clock: self.clock.unwrap_or_else(|| Arc::new(SystemClock)),
                limits: self.limits,
            }),
        }
    }
}
