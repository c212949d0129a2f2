//! [`export_jsonl`]: a store's trail, or a part of it, as JSON lines.

use std::io::Write;

use thiserror::Error;

use crate::store::{AuditQuery, StoreError, TrailReader};

/// How many records [`export_jsonl`] reads from the store at a time.
const PAGE: usize = 1000;

/// An export stopped part way: the lines written so far are whole.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ExportError {
    /// The store could not be read.
    #[error("reading the audit trail failed")]
    Store(#[source] StoreError),
    /// The output could not be written.
    #[error("writing the export failed")]
    Io(#[source] std::io::Error),
}

/// Writes the records of `store`'s trail that match `query` to `out`, one JSON object
/// per line, oldest first, chain fields included, and returns how many. Reads the trail
/// a page at a time, so a long time range needs little memory.
///
/// An export of the whole trail (or of a range of it by `after_seq`) verifies with
/// `approval-gate audit verify`, or [`ChainVerifier`](crate::audit::ChainVerifier) on the lines.
///
/// ```
/// # async fn demo(store: &dyn approval_gate::ApprovalStore) -> Result<(), approval_gate::trail::ExportError> {
/// use approval_gate::{trail::{AuditQuery, export_jsonl}};
/// # use approval_gate::time::macros::datetime;
///
/// // March's records, to standard output.
/// let march = AuditQuery {
///     from: Some(datetime!(2026-03-01 00:00 UTC)),
///     until: Some(datetime!(2026-04-01 00:00 UTC)),
///     ..AuditQuery::default()
/// };
/// let lines = export_jsonl(store, &march, &mut std::io::stdout().lock()).await?;
/// # let _ = lines;
/// # Ok(())
/// # }
/// ```
pub async fn export_jsonl<W: Write + ?Sized>(
    store: &dyn TrailReader,
    query: &AuditQuery,
    out: &mut W,
) -> Result<u64, ExportError> {
    let mut left = query.limit.unwrap_or(usize::MAX);
    let mut page = query.clone();
    let mut written = 0;
    while left > 0 {
        page.limit = Some(left.min(PAGE));
        let records = store
            .audit_records(&page)
            .await
            .map_err(ExportError::Store)?;
        for record in &records {
            serde_json::to_writer(&mut *out, record).map_err(|e| ExportError::Io(e.into()))?;
            out.write_all(b"\n").map_err(ExportError::Io)?;
            written += 1;
        }
        match records.last().and_then(|r| r.chain) {
            Some(link) if records.len() == page.limit.unwrap_or(0) => {
                page.after_seq = Some(link.seq);
                left -= records.len();
            }
            _ => break,
        }
    }
    out.flush().map_err(ExportError::Io)?;
    Ok(written)
}
