//! Where approval requests live: the store traits, one per concern ([`RequestStore`],
//! [`GrantStore`], [`ControlStore`], [`TrailWriter`], [`TrailReader`], [`CursorStore`])
//! and their sum
//! [`ApprovalStore`]; [`MemoryStore`], and the durable `SqliteStore` and `PostgresStore`
//! behind the features `sqlite` and `postgres`.
//!
//! Stores are dumb on purpose: they keep requests and grants and refuse a write that lost
//! a race (compare-and-set on [`ApprovalRequest::version`] and [`Grant::version`]). Every
//! decision about what may happen to a request or a grant is made by the pure
//! transitions of [`ApprovalRequest`] and [`Grant`], with the `now` the gate read from its
//! clock; stores never read a clock.

mod cursor;
mod memory;
mod notify;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;
#[cfg(feature = "sqlite")]
mod sqlite;

pub use crate::run::{RunUsage, Switches, UsageDelta};
pub use cursor::{CursorStore, TrailCursor};
pub use memory::MemoryStore;
pub use notify::{ChangeSource, Notifier, RequestChange, Subscription};
#[cfg(feature = "postgres")]
pub use postgres::{PostgresOptions, PostgresStore};
#[cfg(feature = "sqlite")]
pub use sqlite::{SqliteOptions, SqliteStore, SqliteSynchronous};

use std::error::Error as StdError;

use async_trait::async_trait;
use thiserror::Error;
use time::OffsetDateTime;

use crate::approval::{ApprovalRequest, RequestId, RequestState};
use crate::audit::AuditRecord;
use crate::audit::{AuditEvent, ChainLink, KeptRecord};
use crate::grant::{Grant, GrantId};
use crate::run::KillScope;

/// A store could not do what was asked. Nothing changed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No request has this id.
    #[error("approval request `{id}` not found")]
    NotFound {
        /// The id asked for.
        id: RequestId,
    },
    /// The write lost a race: the request changed since it was read.
    #[error(
        "approval request `{id}` changed concurrently (expected version {expected}, found {found})"
    )]
    Conflict {
        /// The request.
        id: RequestId,
        /// The version the write expected to replace.
        expected: u64,
        /// The version found.
        found: u64,
    },
    /// The grant write lost a race: the grant changed (used or revoked) since it was
    /// read.
    #[error("grant `{id}` changed concurrently (expected version {expected}, found {found})")]
    GrantConflict {
        /// The grant.
        id: GrantId,
        /// The version the write expected to replace.
        expected: u64,
        /// The version found.
        found: u64,
    },
    /// No grant has this id.
    #[error("grant `{id}` not found")]
    GrantNotFound {
        /// The id asked for.
        id: GrantId,
    },
    /// A request with this id exists already.
    #[error("approval request `{id}` exists already")]
    Duplicate {
        /// The id.
        id: RequestId,
    },
    /// A [`Subscription`] lost change notices: it fell behind, or its connection dropped
    /// and was made again. Look at the requests you wait for, then go on reading.
    #[error("change notices were lost{}", missed.map(|n| format!(" ({n} of them)")).unwrap_or_default())]
    Lagged {
        /// How many, when known.
        missed: Option<u64>,
    },
    /// The backend failed (connection, disk, serialization).
    #[error("approval store failed")]
    Backend {
        /// What went wrong.
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
}

impl StoreError {
    /// Wraps a backend's error.
    pub fn backend(source: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        StoreError::Backend {
            source: source.into(),
        }
    }
}

/// The answer to [`RequestStore::create`].
#[derive(Debug, Clone)]
pub struct Filed {
    /// The request now on file: the new one, or the identical one already pending, which
    /// the call joined.
    pub request: ApprovalRequest,
    /// `true` when `request` is the new one, `false` when an identical call (same run,
    /// tool, args hash, tenant and requester) was already pending and the call joined it
    /// (recorded as `approval_merged`).
    pub created: bool,
    /// The record the store appended: the `approval_required` it was given when
    /// `created`, else the call's `approval_merged`.
    pub record: AuditRecord,
}

/// A request that [`RequestStore::sweep_expired`] recorded as expired.
#[derive(Debug, Clone)]
pub struct Expired {
    /// The request as written, `Expired`.
    pub request: ApprovalRequest,
    /// Its `approval_timeout` record, as appended.
    pub record: AuditRecord,
}

/// Whether writing `next` ends the grants left on its request: it is now `Cancelled` or
/// `Denied` (see [`RequestStore::update`]).
pub(crate) fn ends_grants(next: &ApprovalRequest) -> bool {
    matches!(
        next.stored_state(),
        RequestState::Cancelled | RequestState::Denied
    )
}

/// `grant`, left on `next`'s request, revoked at `at` because `next` ended it, with its
/// `grant_revoked` record (by whoever cancelled or denied the request).
pub(crate) fn end_grant(
    next: &ApprovalRequest,
    grant: &Grant,
    at: OffsetDateTime,
) -> (Grant, AuditRecord) {
    let by = next.decided_by().unwrap_or_default();
    let record = AuditRecord::grant_revoked(at, next, grant.id(), by);
    (grant.revoked(at), record)
}

/// Whether `a` and `b` were asked for by the same caller: the same tenant and the same
/// requester, compared exactly (`None` matches only `None`). Only such calls are merged
/// by [`RequestStore::create`], and resumed by
/// [`Gated::call_or_resume`](crate::Gated::call_or_resume).
pub(crate) fn same_caller(a: &crate::call::ToolCall, b: &crate::call::ToolCall) -> bool {
    a.tenant() == b.tenant() && a.requester() == b.requester()
}

/// Which requests [`RequestStore::list`] returns. Every field left `None` matches all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestQuery {
    /// Only requests in this state at `now` (expiry applied).
    pub state: Option<RequestState>,
    /// Only requests of this run.
    pub run_id: Option<String>,
    /// Only requests of this tenant.
    pub tenant: Option<String>,
    /// Only requests for this tool.
    pub tool: Option<String>,
    /// Only requests in this risk tier.
    pub tier: Option<String>,
    /// Only requests filed before this instant (at least this old).
    pub created_before: Option<OffsetDateTime>,
    /// Only requests that come after this place in the list's order (filed later, or at
    /// the same instant with a greater id): the next page after a page that ended there.
    pub after: Option<ListCursor>,
    /// At most this many, oldest first.
    pub limit: Option<usize>,
}

/// A place in a list of requests, which runs oldest first (by filing time, then id):
/// right after the request filed at `created_at` with id `id`. [`RequestQuery::after`]
/// takes it to read the next page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ListCursor {
    /// When the request was filed.
    pub created_at: OffsetDateTime,
    /// Its id, which orders requests filed at the same instant.
    pub id: RequestId,
}

impl ListCursor {
    /// The place right after `request`.
    pub fn after(request: &ApprovalRequest) -> Self {
        ListCursor {
            created_at: request.created_at(),
            id: request.id(),
        }
    }
}

impl RequestQuery {
    /// Requests still pending at `now`.
    pub fn pending() -> Self {
        RequestQuery {
            state: Some(RequestState::Pending),
            ..Self::default()
        }
    }

    /// Whether `request` matches at `now`.
    pub fn matches(&self, request: &ApprovalRequest, now: OffsetDateTime) -> bool {
        let call = request.call();
        self.state.is_none_or(|s| request.state_at(now) == s)
            && self.run_id.as_deref().is_none_or(|r| call.run_id() == r)
            && self
                .tenant
                .as_deref()
                .is_none_or(|t| call.tenant() == Some(t))
            && self.tool.as_deref().is_none_or(|t| call.tool() == t)
            && self
                .tier
                .as_deref()
                .is_none_or(|t| request.tier().is_some_and(|r| r == t))
            && self.created_before.is_none_or(|t| request.created_at() < t)
            && self.after.is_none_or(|c| ListCursor::after(request) > c)
    }
}

/// Which audit records [`TrailReader::audit_records`] returns. Every field left `None`
/// matches all.
///
/// ```
/// use approval_gate::trail::AuditQuery;
/// # use approval_gate::time::macros::datetime;
///
/// // Everything ann decided in March, oldest first.
/// let query = AuditQuery {
///     from: Some(datetime!(2026-03-01 00:00 UTC)),
///     until: Some(datetime!(2026-04-01 00:00 UTC)),
///     ..AuditQuery::actor("ann")
/// };
/// # let _ = query;
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only the records of this approval request.
    pub request_id: Option<RequestId>,
    /// Only the records of this run.
    pub run_id: Option<String>,
    /// Only the records of what this person did ([`AuditEvent::actor`](crate::audit::AuditEvent::actor)).
    pub actor: Option<String>,
    /// Only records at or after this time.
    pub from: Option<OffsetDateTime>,
    /// Only records before this time.
    pub until: Option<OffsetDateTime>,
    /// Only records after this `seq` (to read a long trail page by page).
    pub after_seq: Option<u64>,
    /// At most this many, oldest first.
    pub limit: Option<usize>,
}

impl AuditQuery {
    /// The history of one approval request.
    pub fn request(id: RequestId) -> Self {
        AuditQuery {
            request_id: Some(id),
            ..Self::default()
        }
    }

    /// The history of one run.
    pub fn run(run_id: impl Into<String>) -> Self {
        AuditQuery {
            run_id: Some(run_id.into()),
            ..Self::default()
        }
    }

    /// What one person did: votes, approvals, denials, cancels, grants, kill switches and
    /// read-only mode flipped.
    pub fn actor(id: impl Into<String>) -> Self {
        AuditQuery {
            actor: Some(id.into()),
            ..Self::default()
        }
    }

    /// Whether `record` matches (its `seq` is checked only when it has one).
    pub fn matches(&self, record: &AuditRecord) -> bool {
        self.matches_parts(
            record.request_id,
            &record.run_id,
            &record.event,
            record.at,
            record.chain.as_ref(),
        )
    }

    /// Whether a record kept in memory matches, read without turning it back into an
    /// [`AuditRecord`].
    pub(crate) fn matches_kept(&self, kept: &KeptRecord) -> bool {
        self.matches_parts(
            kept.request_id,
            &kept.run_id,
            &kept.event,
            kept.at,
            kept.chain(),
        )
    }

    /// [`matches`](Self::matches), on the fields it reads.
    fn matches_parts(
        &self,
        request_id: Option<RequestId>,
        run_id: &str,
        event: &AuditEvent,
        at: OffsetDateTime,
        chain: Option<&ChainLink>,
    ) -> bool {
        self.request_id.is_none_or(|id| request_id == Some(id))
            && self.run_id.as_deref().is_none_or(|r| run_id == r)
            && self
                .actor
                .as_deref()
                .is_none_or(|a| event.actor() == Some(a))
            && self.from.is_none_or(|t| at >= t)
            && self.until.is_none_or(|t| at < t)
            && self
                .after_seq
                .is_none_or(|s| chain.is_none_or(|c| c.seq > s))
    }
}

/// Keeps approval requests: files, reads, writes (compare-and-set), lists and sweeps
/// them, and tells subscribers of their changes. Part of [`ApprovalStore`]; a surface
/// that only shows requests needs only their reads ([`get`](Self::get),
/// [`list`](Self::list), [`subscribe`](Self::subscribe)).
///
/// Every write appends its audit records to the store's trail in the same transaction as
/// the change, and answers with the records it appended, so that the gate hands the sink
/// beside the store exactly what the store kept.
#[async_trait]
pub trait RequestStore: Send + Sync {
    /// Files `request` and appends `record` (its `approval_required`), and tells
    /// subscribers of it, unless a request for the same run, tool, args hash, tenant and
    /// requester (compared exactly: `None` matches only `None`) is pending at `now`.
    /// Then the call joins that request: the store returns it unchanged (`created =
    /// false`), appends [`AuditRecord::merged`]`(now, request.call(),
    /// request.args_hash(), &joined)` in the same transaction instead of `record`, and
    /// tells subscribers nothing. [`Filed::record`] is the record appended.
    ///
    /// When `record` [counts its call](AuditRecord::counts_call), the store adds one tool
    /// call to the run's usage in the same transaction, whether it files or merges (the
    /// merge record carries the mark: [`AuditRecord::counting_call`]).
    async fn create(
        &self,
        request: ApprovalRequest,
        record: &AuditRecord,
        now: OffsetDateTime,
    ) -> Result<Filed, StoreError>;

    /// The request with this id, as stored (apply [`ApprovalRequest::state_at`] for its
    /// state at a given time).
    async fn get(&self, id: RequestId) -> Result<ApprovalRequest, StoreError>;

    /// Replaces the stored request with `next` and appends `record`, the transition's
    /// audit record, if the stored version is `next.version() - 1`; otherwise fails with
    /// [`StoreError::Conflict`] and writes nothing. Returns the records appended, in
    /// order: `record` first.
    ///
    /// A cancel or a denial ends the request's grants: when `next` is stored as
    /// `Cancelled` or `Denied`, every grant left on the request that is not yet revoked
    /// is revoked at `record.at` ([`Grant::revoked`], one version higher), each with its
    /// [`AuditRecord::grant_revoked`] (by `next.decided_by()`) appended right after
    /// `record`, all in the same transaction.
    async fn update(
        &self,
        next: &ApprovalRequest,
        record: &AuditRecord,
    ) -> Result<Vec<AuditRecord>, StoreError>;

    /// The requests matching `query` at `now`, oldest first.
    async fn list(
        &self,
        query: &RequestQuery,
        now: OffsetDateTime,
    ) -> Result<Vec<ApprovalRequest>, StoreError>;

    /// Records as `Expired` up to `limit` requests whose time ran out by `now`, each with
    /// its [`AuditRecord::timeout`]`(now, &expired)` in the same transaction, and returns
    /// them as written, each with the record appended.
    async fn sweep_expired(
        &self,
        now: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<Expired>, StoreError>;

    /// A subscription to the changes committed from now on (see [`Subscription`]).
    async fn subscribe(&self) -> Result<Subscription, StoreError>;
}

/// Keeps standing grants. Part of [`ApprovalStore`].
///
/// Stores only keep grants: which grant covers a call ([`Grant::covers`]), counting a
/// use ([`Grant::used`]) and revoking ([`Grant::revoked`]) are decided above them, and
/// written with [`update_grant`](Self::update_grant), compare-and-set on
/// [`Grant::version`] like requests, so that a grant of `n` uses covers at most `n`
/// calls across all workers.
#[async_trait]
pub trait GrantStore: Send + Sync {
    /// Keeps a new standing grant and appends `record`, its `grant_created`, in the same
    /// transaction.
    async fn put_grant(&self, grant: &Grant, record: &AuditRecord) -> Result<(), StoreError>;

    /// The grant with this id, live or not (a store may forget grants that can never
    /// cover a call again and were not revoked); [`StoreError::GrantNotFound`] otherwise.
    async fn grant(&self, id: GrantId) -> Result<Grant, StoreError>;

    /// The grants live at `now` ([`Grant::is_live`]), oldest first. A read: it changes
    /// nothing.
    async fn grants(&self, now: OffsetDateTime) -> Result<Vec<Grant>, StoreError>;

    /// Replaces the stored grant with `next` and appends `record` (its `grant_used` or
    /// `grant_revoked`) in the same transaction, if the stored version is
    /// `next.version() - 1`; otherwise fails with [`StoreError::GrantConflict`] (or
    /// [`StoreError::GrantNotFound`]) and writes nothing. When `record`
    /// [counts its call](AuditRecord::counts_call), adds one tool call to the run's usage
    /// in the same transaction.
    async fn update_grant(&self, next: &Grant, record: &AuditRecord) -> Result<(), StoreError>;
}

/// Keeps the run-time controls: kill switches, read-only mode and the usage of runs.
/// Part of [`ApprovalStore`].
#[async_trait]
pub trait ControlStore: Send + Sync {
    /// The run-time switches: engaged kill switches and read-only mode.
    async fn switches(&self) -> Result<Switches, StoreError>;

    /// Engages (`engaged = true`) or releases a kill switch, and appends `record` (its
    /// `kill_switch_changed`, naming who flipped it) in the same transaction. Idempotent
    /// in effect: engaging an engaged switch keeps one, and still appends `record`.
    async fn set_kill_switch(
        &self,
        scope: KillScope,
        engaged: bool,
        record: &AuditRecord,
    ) -> Result<(), StoreError>;

    /// Turns read-only mode on or off, and appends `record` (its `read_only_changed`,
    /// naming who turned it) in the same transaction.
    async fn set_read_only(&self, on: bool, record: &AuditRecord) -> Result<(), StoreError>;

    /// Adds `delta` to the usage of run `run_id` atomically and returns the new totals;
    /// the run's start is recorded at its first use.
    async fn add_usage(
        &self,
        run_id: &str,
        delta: UsageDelta,
        now: OffsetDateTime,
    ) -> Result<RunUsage, StoreError>;

    /// What run `run_id` has used so far (all zero for a run never counted): a read,
    /// which takes no write lock and starts no run.
    async fn usage(&self, run_id: &str) -> Result<RunUsage, StoreError>;

    /// Reads the switches and, unless `stops` says they stop the call, adds `delta` to the
    /// usage of run `run_id`: what the gate does before every call. Returns the switches,
    /// and the new totals when it counted.
    ///
    /// The provided method calls [`switches`](Self::switches), then
    /// [`add_usage`](Self::add_usage). A store that can do both in one round trip
    /// overrides it ([`MemoryStore`] does, under one lock).
    async fn switches_then_add_usage(
        &self,
        stops: &(dyn for<'s> Fn(&'s Switches) -> bool + Sync),
        run_id: &str,
        delta: UsageDelta,
        now: OffsetDateTime,
    ) -> Result<(Switches, Option<RunUsage>), StoreError> {
        let switches = self.switches().await?;
        if stops(&switches) {
            return Ok((switches, None));
        }
        let usage = self.add_usage(run_id, delta, now).await?;
        Ok((switches, Some(usage)))
    }
}

/// Appends to the store's audit trail. Part of [`ApprovalStore`].
#[async_trait]
pub trait TrailWriter: Send + Sync {
    /// Appends a record that goes with no change of state (`allow`, `policy_denied`,
    /// `stopped`, a tool's result after an allowed call, …) to the trail. When `record`
    /// [counts its call](AuditRecord::counts_call), adds one tool call to the usage of
    /// `record.run_id` in the same transaction.
    async fn append_audit(&self, record: &AuditRecord) -> Result<(), StoreError>;
}

/// Reads the store's audit trail. Part of [`ApprovalStore`]; what a console, a notifier
/// tailing the trail, [`export_jsonl`](crate::trail::export_jsonl) or
/// [`ApprovalStats`](crate::trail::ApprovalStats) need.
#[async_trait]
pub trait TrailReader: Send + Sync {
    /// The records of the trail matching `query`, in the order they were appended, each
    /// with its [`ChainLink`]: the whole trail (`AuditQuery::default()`)
    /// passes [`verify_chain`](crate::audit::verify_chain).
    async fn audit_records(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError>;
}

/// A whole store: requests, grants, controls, the audit trail and the places of its
/// readers. Object-safe: hosts hold it as `Arc<dyn ApprovalStore>`, and hand a part of
/// it where only that part is needed (`&*store as &dyn TrailReader`).
///
/// Implemented for every type that implements its six parts ([`RequestStore`],
/// [`GrantStore`], [`ControlStore`], [`TrailWriter`], [`TrailReader`],
/// [`CursorStore`]); a host writes those, never this.
///
/// Every implementation keeps these promises, under any interleaving of callers:
///
/// - [`update`](RequestStore::update) and [`update_grant`](GrantStore::update_grant) are
///   compare-and-set: they write only if the stored version is one less than the new
///   one, so of two racing writes exactly one wins.
/// - A change and its audit records are one write: every method that changes state
///   appends its records to the store's trail in the same transaction as the change,
///   so the state and the trail never disagree. The records come from the caller, or,
///   where the store decides what changes (a merge, a sweep, grants ended by a cancel),
///   are returned to it.
/// - [`create`](RequestStore::create) files at most one pending request per run, tool,
///   args hash, tenant and requester: a second identical call from the same caller joins
///   the first request (and leaves its own `approval_merged` record); a call from
///   another tenant or requester never gets another caller's request back.
/// - Every request `create` files (as `pending`; not the identical request it returns
///   instead), every committed `update` and every sweep is told to the store's
///   [`subscribe`](RequestStore::subscribe)rs: in this process at least, across
///   processes where the backend carries notices (PostgreSQL).
/// - A [`CursorStore`] lease is held by one holder at a time: of two racing
///   [`lease_cursor`](CursorStore::lease_cursor)s on a free cursor exactly one wins, and
///   a holder that lost the lease can no longer move the cursor.
/// - Nothing reads a clock: methods that depend on time take `now`.
///
/// The [`testing`](crate#features) module (feature `testing`) holds the suite that checks
/// these promises, races included; a host's own store runs it too.
pub trait ApprovalStore:
    RequestStore + GrantStore + ControlStore + TrailWriter + TrailReader + CursorStore
{
}

impl<T> ApprovalStore for T where
    T: RequestStore + GrantStore + ControlStore + TrailWriter + TrailReader + CursorStore + ?Sized
{
}
