//! [`FanoutSink`]: one record, several sinks.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

use super::{AuditError, AuditRecord, AuditSink};

/// An audit sink that hands every record to several sinks, in the order they were added.
///
/// A *required* sink that fails fails the whole record (fail closed: the gate then puts
/// the step back and nothing runs); an *optional* one's failure is ignored, and reported
/// to the `on_error` callback if one is set. The sinks after a failed required one are
/// not called.
///
/// ```
/// use approval_gate::{MemorySink, trail::{AuditError, AuditRecord, FanoutSink}};
///
/// let kept = MemorySink::new();
/// let sink = FanoutSink::new()
///     .required(kept.clone())
///     .optional(|r: &AuditRecord| -> Result<(), AuditError> {
///         println!("{}", r.event_name());
///         Ok(())
///     });
/// # let _ = sink;
/// ```
#[derive(Clone, Default)]
pub struct FanoutSink {
    sinks: Vec<(Arc<dyn AuditSink>, bool)>,
    on_error: Option<ErrorReport>,
}

/// What [`FanoutSink::on_error`] calls.
type ErrorReport = Arc<dyn Fn(&AuditError) + Send + Sync>;

impl fmt::Debug for FanoutSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let required: Vec<bool> = self.sinks.iter().map(|(_, r)| *r).collect();
        f.debug_struct("FanoutSink")
            .field("required", &required)
            .finish_non_exhaustive()
    }
}

impl FanoutSink {
    /// A sink with no sinks behind it yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a sink whose failure fails the record.
    pub fn required(mut self, sink: impl AuditSink + 'static) -> Self {
        self.sinks.push((Arc::new(sink), true));
        self
    }

    /// Adds a sink whose failure is reported to `on_error` and otherwise ignored.
    pub fn optional(mut self, sink: impl AuditSink + 'static) -> Self {
        self.sinks.push((Arc::new(sink), false));
        self
    }

    /// Adds a shared sink, required or not.
    pub fn shared(mut self, sink: Arc<dyn AuditSink>, required: bool) -> Self {
        self.sinks.push((sink, required));
        self
    }

    /// Calls `f` with each error of an optional sink.
    pub fn on_error(mut self, f: impl Fn(&AuditError) + Send + Sync + 'static) -> Self {
        self.on_error = Some(Arc::new(f));
        self
    }
}

#[async_trait]
impl AuditSink for FanoutSink {
    async fn record(&self, record: &AuditRecord) -> Result<(), AuditError> {
        for (sink, required) in &self.sinks {
            if let Err(e) = sink.record(record).await {
                if *required {
                    return Err(e);
                }
                if let Some(report) = &self.on_error {
                    report(&e);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{AuditEvent, MemorySink};
    use crate::call::ToolCall;
    use serde_json::json;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use time::OffsetDateTime;

    fn record() -> AuditRecord {
        let call = ToolCall::new("r", "c", "t", json!({}));
        let event = AuditEvent::Allow {
            rule_ids: Vec::new(),
        };
        AuditRecord::new(OffsetDateTime::UNIX_EPOCH, &call, None, "v", event)
    }

    fn failing(_: &AuditRecord) -> Result<(), AuditError> {
        Err(AuditError::backend(std::io::Error::other("disk full")))
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        let mut f = std::pin::pin!(f);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        loop {
            if let std::task::Poll::Ready(out) = f.as_mut().poll(&mut cx) {
                return out;
            }
        }
    }

    #[test]
    fn every_sink_gets_the_record_in_order() {
        let (a, b) = (MemorySink::new(), MemorySink::new());
        let sink = FanoutSink::new().required(a.clone()).optional(b.clone());
        block_on(sink.record(&record())).unwrap();
        assert_eq!((a.len(), b.len()), (1, 1));
    }

    #[test]
    fn a_failing_required_sink_fails_the_record_and_stops_there() {
        let later = MemorySink::new();
        let sink = FanoutSink::new().required(failing).required(later.clone());
        assert!(block_on(sink.record(&record())).is_err());
        assert!(later.is_empty());
    }

    #[test]
    fn a_failing_optional_sink_is_reported_not_fatal() {
        let errors = Arc::new(AtomicUsize::new(0));
        let seen = errors.clone();
        let kept = MemorySink::new();
        let sink = FanoutSink::new()
            .optional(failing)
            .required(kept.clone())
            .on_error(move |_| {
                seen.fetch_add(1, Ordering::SeqCst);
            });
        block_on(sink.record(&record())).unwrap();
        assert_eq!(errors.load(Ordering::SeqCst), 1);
        assert_eq!(kept.len(), 1);
    }
}
