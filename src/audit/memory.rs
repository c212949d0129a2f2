use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;

use super::{AuditError, AuditRecord, AuditSink, Keeper, KeptRecord};
use crate::chunked::Chunked;

/// An audit sink that keeps records in memory, for tests, examples and prototypes.
///
/// Clones share one trail, so a test can keep a handle while the gate writes. It keeps
/// every record unless made [`with_capacity`](Self::with_capacity), which keeps only the
/// newest, for a long-lived process that wants recent records at hand.
#[derive(Debug, Clone, Default)]
pub struct MemorySink {
    shared: Arc<Mutex<Trail>>,
}

#[derive(Debug, Default)]
struct Trail {
    records: Chunked<KeptRecord>,
    /// Shares the strings of each record kept with the one before.
    keeper: Keeper,
    capacity: Option<usize>,
    dropped: u64,
}

impl MemorySink {
    /// An empty trail that keeps every record.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty trail that keeps the newest `capacity` records (at least one), dropping
    /// the oldest.
    ///
    /// ```
    /// # async fn demo() -> Result<(), approval_gate::trail::AuditError> {
    /// use approval_gate::{AuditSink, MemorySink, ToolCall, trail::{AuditEvent, AuditRecord}};
    /// # use approval_gate::time::OffsetDateTime;
    ///
    /// let sink = MemorySink::with_capacity(2);
    /// let call = ToolCall::new("run-1", "call-1", "crm.read", serde_json::json!({}));
    /// for _ in 0..3 {
    ///     let allow = AuditEvent::Allow { rule_ids: vec![] };
    ///     sink.record(&AuditRecord::new(OffsetDateTime::UNIX_EPOCH, &call, None, "v1", allow))
    ///         .await?;
    /// }
    /// assert_eq!((sink.len(), sink.dropped()), (2, 1));
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_capacity(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        MemorySink {
            shared: Arc::new(Mutex::new(Trail {
                records: Chunked::holding_at_most(capacity),
                keeper: Keeper::default(),
                capacity: Some(capacity),
                dropped: 0,
            })),
        }
    }

    /// A copy of every record kept, oldest first.
    pub fn records(&self) -> Vec<AuditRecord> {
        self.lock()
            .records
            .iter()
            .map(KeptRecord::to_record)
            .collect()
    }

    /// The event names of the records kept, oldest first:
    /// `["approval_required", "approval_granted", …]`.
    pub fn event_names(&self) -> Vec<&'static str> {
        self.lock()
            .records
            .iter()
            .map(|kept| kept.event.name())
            .collect()
    }

    /// How many records are kept.
    pub fn len(&self) -> usize {
        self.lock().records.len()
    }

    /// Whether none are kept.
    pub fn is_empty(&self) -> bool {
        self.lock().records.len() == 0
    }

    /// How many records were dropped to stay within the capacity.
    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }

    fn lock(&self) -> MutexGuard<'_, Trail> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl AuditSink for MemorySink {
    async fn record(&self, record: &AuditRecord) -> Result<(), AuditError> {
        let mut trail = self.lock();
        if trail.capacity.is_some_and(|c| trail.records.len() >= c) {
            trail.records.pop_front();
            trail.dropped += 1;
        }
        let kept = trail.keeper.keep(record);
        trail.records.push_back(kept);
        Ok(())
    }
}
