//! The audit trail: the [`AuditSink`] trait, its record type, and an in-memory sink.

mod chain;
mod event;
mod fanout;
mod file;
mod kept;
mod memory;
#[cfg(feature = "tracing")]
mod tracing_sink;

pub use chain::{AuditHash, ChainError, ChainHead, ChainLink, ChainVerifier, verify_chain};
pub use event::{AUDIT_SCHEMA_VERSION, AuditEvent, AuditRecord};
pub use fanout::FanoutSink;
pub use file::{
    JsonlSink, JsonlSinkBuilder, TrailFileError, jsonl_trail_files, read_jsonl_files,
    verify_jsonl_files, verify_jsonl_files_with,
};
pub(crate) use kept::{Keeper, KeptRecord};
pub use memory::MemorySink;
#[cfg(feature = "tracing")]
pub use tracing_sink::TracingSink;

use std::error::Error as StdError;
use std::fmt::Debug;

use async_trait::async_trait;
use thiserror::Error;

/// A sink could not record an event. The gate treats this as a fault: the call that
/// needed the record does not run.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The sink's backend failed.
    #[error("audit sink failed")]
    Backend {
        /// What went wrong.
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
}

impl AuditError {
    /// Wraps a backend's error.
    pub fn backend(source: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        AuditError::Backend {
            source: source.into(),
        }
    }
}

/// Where audit records go. Every decision and result is recorded before the caller
/// learns of it; when `record` fails, the write it was about does not run.
///
/// Implemented for [`MemorySink`] and for closures
/// `Fn(&AuditRecord) -> Result<(), AuditError>`:
///
/// ```
/// use approval_gate::{AuditSink, trail::{AuditError, AuditRecord}};
///
/// fn assert_sink(_: impl AuditSink) {}
/// assert_sink(|record: &AuditRecord| -> Result<(), AuditError> {
///     println!("{}", serde_json::to_string(record).map_err(AuditError::backend)?);
///     Ok(())
/// });
/// ```
#[async_trait]
pub trait AuditSink: Send + Sync {
    /// Records one event durably (as durably as the sink promises) before returning.
    async fn record(&self, record: &AuditRecord) -> Result<(), AuditError>;
}

#[async_trait]
impl<F> AuditSink for F
where
    F: Fn(&AuditRecord) -> Result<(), AuditError> + Send + Sync,
{
    async fn record(&self, record: &AuditRecord) -> Result<(), AuditError> {
        self(record)
    }
}
