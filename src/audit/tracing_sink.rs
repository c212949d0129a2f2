//! [`TracingSink`]: the audit trail as `tracing` events.

use std::fmt;

use async_trait::async_trait;

use super::{AuditError, AuditRecord, AuditSink};

/// An audit sink that emits each record as a `tracing` event at `INFO` with target
/// `approval_gate::audit`, so the trail reaches whatever the host's subscriber writes to
/// (logs, OpenTelemetry, …).
///
/// The event's fields: `event` (`approval_granted`, …), `run_id`, `call_id`, `tool`,
/// `request_id` and `args_hash` when the record has them, `seq` when it has its place in
/// a chain (records read back from a store's trail; the gate hands its sink records before
/// the store numbers them), and `record`, the whole record as JSON. Like the record, no
/// field holds the call's arguments: only their hash.
///
/// Never fails, so as the gate's only sink it never stops a call: a subscriber may drop
/// events. Keep the durable trail in the store (or beside this sink in a
/// [`FanoutSink`](crate::audit::FanoutSink)).
///
/// ```
/// use approval_gate::{Gate, Key, Keyring, Policy, trail::TracingSink};
///
/// let policy = Policy::from_yaml_str("approvals:\n  required_for: [email.send]\n").unwrap();
/// let keys = Keyring::new(Key::new("k1", [42u8; 32]).unwrap());
/// let gate = Gate::builder(policy, keys).audit(TracingSink::new()).build();
/// # let _ = gate;
/// ```
#[derive(Debug, Clone, Copy, Default)]
#[cfg_attr(docsrs, doc(cfg(feature = "tracing")))]
pub struct TracingSink {
    _private: (),
}

impl TracingSink {
    /// The sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// Emits `record` as an event (the same as [`AuditSink::record`], without `async`).
    pub fn emit(&self, record: &AuditRecord) {
        tracing::info!(
            target: "approval_gate::audit",
            event = record.event.written_name(),
            run_id = record.run_id.as_str(),
            call_id = record.call_id.as_str(),
            tool = record.tool.as_str(),
            request_id = record.request_id.map(tracing::field::display),
            args_hash = record.args_hash.map(tracing::field::display),
            seq = record.chain.map(|link| link.seq),
            record = %Json(record),
            "audit record",
        );
    }
}

#[async_trait]
impl AuditSink for TracingSink {
    async fn record(&self, record: &AuditRecord) -> Result<(), AuditError> {
        self.emit(record);
        Ok(())
    }
}

/// Shows a record as its JSON line, serialized only if a subscriber takes the event.
struct Json<'a>(&'a AuditRecord);

impl fmt::Display for Json<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let line = serde_json::to_string(self.0).map_err(|_| fmt::Error)?;
        f.write_str(&line)
    }
}
