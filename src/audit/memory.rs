use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;

use super::{AuditError, AuditRecord, AuditSink};

/// An audit sink that keeps records in memory, for tests, examples and prototypes.
///
/// Clones share one trail, so a test can keep a handle while the gate writes.
#[derive(Debug, Clone, Default)]
pub struct MemorySink {
    records: Arc<Mutex<Vec<AuditRecord>>>,
}

impl MemorySink {
    /// An empty trail.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of every record so far, oldest first.
    pub fn records(&self) -> Vec<AuditRecord> {
        self.lock().clone()
    }

    /// The event names so far, oldest first: `["approval_required", "approval_granted", …]`.
    pub fn event_names(&self) -> Vec<&'static str> {
        self.lock().iter().map(AuditRecord::event_name).collect()
    }

    /// How many records there are.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<AuditRecord>> {
        self.records.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl AuditSink for MemorySink {
    async fn record(&self, record: &AuditRecord) -> Result<(), AuditError> {
        self.lock().push(record.clone());
        Ok(())
    }
}
