#![doc = include_str!("../README.md")]
//!
//! # Layers
//!
//! - Pure types, no I/O: [`ToolCall`] and [`ArgsHash`]; [`Policy`] and its [`Decision`];
//!   [`ApprovalRequest`] and its transitions; approval tokens ([`Keyring`],
//!   [`token::UnverifiedToken`]); audit records ([`trail::AuditRecord`]).
//! - Effects behind traits: [`Clock`], [`ApprovalStore`], [`AuditSink`].
//! - Orchestration: [`Gate`], [`Gated`] and the [`Desk`].
//!
//! # Where things are
//!
//! The root holds what a host needs to gate its tools and decide requests. The rest is
//! in modules named for who needs it: [`config`] (the policy config as data, for tools
//! that write or check configs), [`outcome`] (the parts of an outcome), [`desk`] (the
//! desk's refusals, settlements and standing grants), [`trail`] (reading, verifying and
//! exporting the audit trail), [`token`] (verifying approval tokens in a tool service),
//! and [`store`] (writing a store of your own; with [`testing`] behind the `testing`
//! feature).
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
pub mod desk;
mod export;
mod gate;
mod grant;
mod identity;
mod observe;
mod policy;
mod run;
mod stats;
pub mod store;
pub mod token;

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

pub use approval::{ApprovalRequest, Approver, RequestId, RequestState};
pub use audit::{AuditSink, JsonlSink, MemorySink};
pub use call::{
    ArgsError, ArgsHash, ArgsLimits, ParseArgsHashError, ToolCall, canonical_json, parse_args,
};
pub use clock::{Clock, ManualClock, SystemClock};
pub use desk::{Desk, DeskError};
pub use gate::{
    Execution, Gate, GateBuilder, GateError, GateOutcome, Gated, StopReason, ToolExecutor,
};
pub use grant::{GrantScope, GrantSpec};
pub use identity::{IdError, canonical_id};
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub use observe::describe_metrics;
pub use policy::{Decision, Effect, Policy, PolicyError};
pub use run::KillScope;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use store::PostgresStore;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use store::SqliteStore;
pub use store::{ApprovalStore, MemoryStore, RequestQuery, StoreError};
pub use token::{Key, Keyring};

/// The policy config as data, for tools that write or check configs: the serde structs of
/// the YAML, the typed names in it, and [`PolicyBuilder`](config::PolicyBuilder) for
/// policies written in code. A host that loads YAML needs only [`Policy`].
pub mod config {
    pub use crate::policy::{
        ApprovalsConfig, Budgets, Condition, Controls, ControlsConfig, Fallback, FieldPath,
        KillSwitchConfig, Op, PolicyBuilder, PolicyCheck, PolicyConfig, PolicySettings,
        PolicyVersion, PreviewTemplate, RegexPattern, RoleName, Rule, RuleConfig, RuleId, Tier,
        TierConfig, TierName, ToolPattern, TtlSeconds, YamlError,
    };
}

/// The audit trail, for those who read, verify, export or mirror it: the record and its
/// events, the hash chain, the JSON-lines file trail, queries, and the figures computed
/// from a trail. A host that only configures a sink needs the root's [`AuditSink`],
/// [`MemorySink`] and [`JsonlSink`].
pub mod trail {
    #[cfg(feature = "tracing")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tracing")))]
    pub use crate::audit::TracingSink;
    pub use crate::audit::{
        AUDIT_SCHEMA_VERSION, AuditError, AuditEvent, AuditHash, AuditRecord, ChainError,
        ChainHead, ChainLink, ChainVerifier, FanoutSink, JsonlSinkBuilder, TrailFileError,
        jsonl_trail_files, read_jsonl_files, verify_chain, verify_jsonl_files,
        verify_jsonl_files_with,
    };
    pub use crate::export::{ExportError, export_jsonl};
    pub use crate::stats::{ApprovalStats, OldestPending};
    pub use crate::store::AuditQuery;
}

/// The parts of an outcome, for hosts that look inside one: what ran, what waits, why a
/// call stopped.
pub mod outcome {
    pub use crate::approval::ApprovalShortfall;
    pub use crate::gate::{ArgsEdit, Executed, MismatchField, PendingApproval, Stop, SwitchSource};
    pub use crate::run::Budget;
}
