#![doc = include_str!("../README.md")]
//!
//! # Layers
//!
//! - Pure types, no I/O: [`ToolCall`] and [`ArgsHash`]; [`Policy`] and its [`Decision`];
//!   [`ApprovalRequest`] and its transitions; approval tokens ([`Keyring`],
//!   [`UnverifiedToken`]); audit records ([`AuditRecord`]).
//! - Effects behind traits: [`Clock`], [`ApprovalStore`], [`AuditSink`].
//! - Orchestration: [`Gate`], [`Gated`] and the [`Desk`].
//!
//! # Cargo features
//!
//! - `testing`: the [`testing`] module, the conformance suite every
//!   [`ApprovalStore`] must pass, for hosts that write their own store.
//! - `sqlite`: `SqliteStore`, a durable store in one SQLite file (bundled), the default
//!   for one machine.
//! - `postgres`: `PostgresStore`, a durable store in PostgreSQL for many workers and hosts.
//! - `tracing`: spans `approval_gate.call` and `approval_gate.resume`, and `TracingSink`.
//! - `metrics`: counters, a histogram and a gauge through the `metrics` facade; see
//!   `describe_metrics`.
//! - `cli`: the `approval-gate-audit` command (verify a JSON-lines trail, print a
//!   request's or a run's history); adds no dependencies.
//!
//! `sqlite` re-exports [`rusqlite`](https://docs.rs/rusqlite/0.32) as
//! `approval_gate::rusqlite`; `postgres` re-exports [`sqlx`](https://docs.rs/sqlx/0.8) as
//! `approval_gate::sqlx`.
//!
//! The core needs no runtime and no database.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod approval;
mod audit;
mod call;
mod chunked;
mod clock;
mod desk;
mod gate;
mod grant;
mod identity;
mod observe;
mod policy;
mod run;
mod stats;
mod store;
mod token;

#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;

/// The `rusqlite` crate, on which `SqliteStore` runs, at the version this crate uses
/// (for the host's own connections to the store's file).
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use rusqlite;
/// The `serde_json` crate, whose `Value` holds tool arguments, at the version this crate uses.
pub use serde_json;
/// The `sqlx` crate, whose pools and connection options `PostgresStore` takes, at the
/// version this crate uses.
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use sqlx;
/// The `time` crate, whose `OffsetDateTime` the API uses, at the version this crate uses.
pub use time;

pub use approval::{
    ApprovalRequest, ApprovalShortfall, Approver, GATE_ACTOR, ParseRequestIdError, RequestId,
    RequestState, Settlement, TransitionError,
};
#[cfg(feature = "tracing")]
#[cfg_attr(docsrs, doc(cfg(feature = "tracing")))]
pub use audit::TracingSink;
pub use audit::{
    AUDIT_SCHEMA_VERSION, AuditError, AuditEvent, AuditHash, AuditRecord, AuditSink, ChainError,
    ChainHead, ChainLink, ChainVerifier, ExportError, FanoutSink, MemorySink, export_jsonl,
    verify_chain,
};
pub use audit::{
    JsonlSink, JsonlSinkBuilder, TrailFileError, jsonl_trail_files, read_jsonl_files,
    verify_jsonl_files, verify_jsonl_files_with,
};
pub use call::{
    ArgsError, ArgsHash, ArgsLimits, ParseArgsHashError, ToolCall, canonical_json, parse_args,
};
pub use clock::{Clock, ManualClock, SystemClock};
pub use desk::{Desk, DeskError, EditRefusal};
pub use gate::{
    ArgsEdit, Executed, Execution, Gate, GateBuilder, GateError, GateOutcome, Gated, MismatchField,
    PendingApproval, Stop, StopReason, SwitchSource, ToolExecutor,
};
pub use grant::{Grant, GrantError, GrantId, GrantScope, GrantSpec, MAX_GRANT_LIFETIME};
pub use identity::{IdError, canonical_id};
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub use observe::describe_metrics;
pub use policy::{
    ApprovalsConfig, Budgets, Condition, Controls, ControlsConfig, Decision, Effect, Fallback,
    FieldPath, KillSwitchConfig, Op, Policy, PolicyBuilder, PolicyCheck, PolicyConfig, PolicyError,
    PolicySettings, PolicyVersion, PreviewTemplate, RegexPattern, RoleName, Rule, RuleConfig,
    RuleId, Tier, TierConfig, TierName, ToolPattern, TtlSeconds, YamlError,
};
pub use run::{Budget, KillScope, RunUsage, Switches, UsageDelta};
pub use stats::{ApprovalStats, OldestPending};
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use store::PostgresStore;
pub use store::{
    ApprovalStore, AuditQuery, ChangeSource, Filed, MemoryStore, Notifier, RequestChange,
    RequestQuery, StoreError, Subscription,
};
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use store::{SqliteOptions, SqliteStore, SqliteSynchronous};
pub use token::{
    ApprovalToken, Claims, Expectations, Key, KeyProvider, Keyring, TokenError, UnverifiedToken,
    VerifiedApproval, dangerous,
};
