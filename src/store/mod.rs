//! Where approval requests live: the [`ApprovalStore`] trait, [`MemoryStore`], and the
//! durable `SqliteStore` and `PostgresStore` behind the features `sqlite` and `postgres`.
//!
//! Stores are dumb on purpose: they keep requests and refuse a write that lost a race
//! (compare-and-set on [`ApprovalRequest::version`]). Every decision about what may
//! happen to a request is made by the pure transitions of [`ApprovalRequest`], with the
//! `now` the gate read from its clock; stores never read a clock.

mod memory;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;
#[cfg(feature = "sqlite")]
mod sqlite;

pub use memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use postgres::PostgresStore;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;

use std::error::Error as StdError;

use async_trait::async_trait;
use thiserror::Error;
use time::OffsetDateTime;

use crate::{
    ApprovalRequest, ArgsHash, Grant, GrantId, KillScope, RequestId, RequestState, RunUsage,
    Switches, ToolCall, UsageDelta,
};

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

/// The answer to [`ApprovalStore::create`].
#[derive(Debug, Clone)]
pub struct Filed {
    /// The request now on file: the new one, or the identical one already pending.
    pub request: ApprovalRequest,
    /// `true` when `request` is the new one, `false` when an identical call (same run,
    /// tool and args hash) was already pending.
    pub created: bool,
}

/// Which requests [`ApprovalStore::list`] returns. Every field left `None` matches all.
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
    /// At most this many, oldest first.
    pub limit: Option<usize>,
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
                .is_none_or(|t| call.tenant_id() == Some(t))
            && self.tool.as_deref().is_none_or(|t| call.tool() == t)
            && self
                .tier
                .as_deref()
                .is_none_or(|t| request.tier() == Some(t))
            && self.created_before.is_none_or(|t| request.created_at() < t)
    }
}

/// Keeps approval requests. Object-safe: hosts hold it as `Arc<dyn ApprovalStore>`.
///
/// Every implementation keeps these promises, under any interleaving of callers:
///
/// - [`update`](Self::update) is compare-and-set: it writes only if the stored version is
///   one less than the new one, so of two racing transitions exactly one wins.
/// - [`create`](Self::create) files at most one pending request per run, tool and args
///   hash: a second identical call gets the first request back.
/// - Nothing reads a clock: methods that depend on time take `now`.
#[async_trait]
pub trait ApprovalStore: Send + Sync {
    /// Files `request`, unless a request for the same run, tool and args hash is pending
    /// at `now`; then returns that one unchanged.
    async fn create(
        &self,
        request: ApprovalRequest,
        now: OffsetDateTime,
    ) -> Result<Filed, StoreError>;

    /// The request with this id, as stored (apply [`ApprovalRequest::state_at`] for its
    /// state at a given time).
    async fn get(&self, id: RequestId) -> Result<ApprovalRequest, StoreError>;

    /// Replaces the stored request with `next` if the stored version is
    /// `next.version() - 1`; otherwise fails with [`StoreError::Conflict`].
    async fn update(&self, next: &ApprovalRequest) -> Result<(), StoreError>;

    /// The requests matching `query` at `now`, oldest first.
    async fn list(
        &self,
        query: &RequestQuery,
        now: OffsetDateTime,
    ) -> Result<Vec<ApprovalRequest>, StoreError>;

    /// Records as `Expired` up to `limit` requests whose time ran out by `now`, and returns
    /// them as written.
    async fn sweep_expired(
        &self,
        now: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<ApprovalRequest>, StoreError>;

    /// The run-time switches: engaged kill switches and read-only mode.
    async fn switches(&self) -> Result<Switches, StoreError>;

    /// Engages (`engaged = true`) or releases a kill switch. Idempotent.
    async fn set_kill_switch(&self, scope: KillScope, engaged: bool) -> Result<(), StoreError>;

    /// Turns read-only mode on or off.
    async fn set_read_only(&self, on: bool) -> Result<(), StoreError>;

    /// Adds `delta` to the usage of run `run_id` atomically and returns the new totals;
    /// the run's start is recorded at its first use.
    async fn add_usage(
        &self,
        run_id: &str,
        delta: UsageDelta,
        now: OffsetDateTime,
    ) -> Result<RunUsage, StoreError>;

    /// Keeps a new standing grant.
    async fn put_grant(&self, grant: &Grant) -> Result<(), StoreError>;

    /// Finds a live grant covering `call` at `now` and counts one use of it atomically
    /// (so a grant of `n` uses covers at most `n` calls across all workers); returns it
    /// as used.
    async fn use_grant(
        &self,
        call: &ToolCall,
        args_hash: &ArgsHash,
        now: OffsetDateTime,
    ) -> Result<Option<Grant>, StoreError>;

    /// Revokes a grant at `now` and returns it as revoked.
    async fn revoke_grant(&self, id: GrantId, now: OffsetDateTime) -> Result<Grant, StoreError>;

    /// The grants still live at `now`.
    async fn grants(&self, now: OffsetDateTime) -> Result<Vec<Grant>, StoreError>;
}
