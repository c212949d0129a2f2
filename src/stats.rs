//! [`ApprovalStats`]: what happened to calls and approval requests over a time window,
//! read from any store's audit trail, for dashboards and alerts.

use std::collections::HashMap;
use std::time::Duration;

use serde::{Serialize, Serializer};
use time::OffsetDateTime;

use crate::approval::RequestId;
use crate::audit::{AuditEvent, AuditRecord};
use crate::store::{AuditQuery, RequestQuery, RequestStore, StoreError, TrailReader};

/// Figures over a time window, computed from a store's audit trail and its pending
/// requests with [`ApprovalStats::compute`] (or [`Gate::stats`](crate::gate::Gate::stats) for
/// the window ending now), for dashboards and alerts ("more than 20% of approvals time
/// out", "a request has waited an hour").
///
/// The window is `from` (inclusive) to `until` (exclusive), by the records' `at` times.
/// The counts are of audit records in the window, by event name. The decision figures
/// (`decided`, `decided_by_timeout`, `timeout_rate` and the times to decision) are over
/// the requests *decided* in the window: those whose first decision, the first of
/// `approval_granted`, `approval_denied`, `approval_cancelled` or `approval_timeout` with
/// `from: "pending"` in their history (a decision undone by `transition_reverted` does not
/// count), went on the record in the window, wherever in time they were filed.
///
/// Serializes (for a host's export) as a flat JSON object with times in RFC 3339 and
/// durations as seconds in fields named `..._seconds`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ApprovalStats {
    /// The start of the window, inclusive.
    #[serde(with = "time::serde::rfc3339")]
    pub from: OffsetDateTime,
    /// The end of the window, exclusive; also the "now" of `pending` and `oldest_pending`.
    #[serde(with = "time::serde::rfc3339")]
    pub until: OffsetDateTime,
    /// `approval_required` records: approval requests filed.
    pub approvals_required: u64,
    /// `approval_granted` records: requests approved (their quorum met).
    pub granted: u64,
    /// `approval_denied` records: requests a person denied.
    pub denied: u64,
    /// `approval_timeout` records, from `pending` (nobody decided in time) and from
    /// `approved` (an approval not used in time) alike.
    pub timed_out: u64,
    /// `approval_cancelled` records: requests withdrawn, pending or approved.
    pub cancelled: u64,
    /// `executed` records: tools that ran and succeeded, approved or allowed outright.
    pub executed: u64,
    /// `execution_failed` records: tools that ran and returned an error.
    pub execution_failed: u64,
    /// `execution_in_doubt` records: calls sent to a tool that may or may not have acted
    /// (the connection to it was lost).
    pub execution_in_doubt: u64,
    /// `policy_denied` records: calls the policy denied (at `call`, or at `resume` under
    /// a changed policy).
    pub policy_denied: u64,
    /// `allow` records: calls the policy allowed outright.
    pub allowed: u64,
    /// `grant_used` records: calls that needed approval and ran under a standing grant.
    pub grants_used: u64,
    /// Requests decided in the window (see the type's docs): the denominator of
    /// `timeout_rate`.
    pub decided: u64,
    /// Of `decided`, those decided by a timeout: nobody approved, denied or cancelled them
    /// before their decision TTL ran out.
    pub decided_by_timeout: u64,
    /// `decided_by_timeout / decided`, from 0 to 1; `None` when nothing was decided.
    /// An approval that times out unused after being granted does not count: it was
    /// decided (granted) in time.
    pub timeout_rate: Option<f64>,
    /// The median time from filing to first decision of the requests decided in the
    /// window, by nearest rank (the `⌈n/2⌉`-th smallest of `n`, so of an even number the
    /// lower middle one); `None` when nothing was decided. For a timeout, the time to
    /// its expiry instant (its decision TTL), however late the timeout went on the record.
    #[serde(rename = "time_to_decision_median_seconds", serialize_with = "seconds")]
    pub time_to_decision_median: Option<Duration>,
    /// The 95th percentile of the same times, by nearest rank (the `⌈0.95·n⌉`-th
    /// smallest of `n`); `None` when nothing was decided.
    #[serde(rename = "time_to_decision_p95_seconds", serialize_with = "seconds")]
    pub time_to_decision_p95: Option<Duration>,
    /// Requests pending at `until`, in the store as it stands (expiry applied at
    /// `until`).
    pub pending: u64,
    /// The oldest of them, if any.
    pub oldest_pending: Option<OldestPending>,
}

/// The request that has waited longest for a decision: see
/// [`ApprovalStats::oldest_pending`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct OldestPending {
    /// The request.
    pub request_id: RequestId,
    /// Its tool.
    pub tool: String,
    /// When it was filed.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// How long it has waited at [`ApprovalStats::until`].
    #[serde(rename = "age_seconds", serialize_with = "seconds_some")]
    pub age: Duration,
}

impl ApprovalStats {
    /// Computes the figures of the window from `from` (inclusive) to `until` (exclusive)
    /// through the public store API, reads only, so it works on every store:
    ///
    /// - one [`audit_records`](TrailReader::audit_records) query for the window;
    /// - one more per request decided in the window but filed before it, for its
    ///   `approval_required` record (the start of its time to decision) and to be sure its
    ///   decision in the window is its first;
    /// - one [`list`](RequestStore::list) of the requests pending at `until`.
    ///
    /// `pending` and `oldest_pending` describe the store as it stands now, with expiry
    /// applied at `until`: pass the present as `until` for them to be meaningful. The
    /// counts and decision figures hold for any window.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// use std::time::Duration;
    /// use approval_gate::{Clock, ManualClock, MemoryStore, trail::ApprovalStats};
    ///
    /// let store = MemoryStore::new();
    /// let now = ManualClock::default().now();
    /// let stats = ApprovalStats::compute(&store, now - Duration::from_secs(3600), now).await?;
    /// assert_eq!(stats.decided, 0);
    /// assert_eq!(stats.timeout_rate, None);
    /// assert_eq!(stats.time_to_decision_median, None);
    /// assert_eq!(stats.oldest_pending, None);
    /// # Ok::<(), approval_gate::StoreError>(())
    /// # }).unwrap();
    /// ```
    pub async fn compute(
        store: &(impl RequestStore + TrailReader + ?Sized),
        from: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<ApprovalStats, StoreError> {
        let window = AuditQuery {
            from: Some(from),
            until: Some(until),
            ..AuditQuery::default()
        };
        let records = store.audit_records(&window).await?;

        let mut stats = ApprovalStats::empty(from, until);
        // The window's records of each request, in trail order.
        let mut histories: HashMap<RequestId, Vec<&AuditRecord>> = HashMap::new();
        for record in &records {
            stats.count(&record.event);
            if let Some(id) = record.request_id {
                histories.entry(id).or_default().push(record);
            }
        }

        let mut times = Vec::new();
        for (id, history) in histories {
            if !history.iter().any(|r| may_decide(&r.event)) {
                continue;
            }
            let filed_in_window = history
                .iter()
                .any(|r| matches!(r.event, AuditEvent::ApprovalRequired { .. }));
            let first = if filed_in_window {
                // Records of a request come after its filing: the window holds all of
                // its history up to `until`.
                first_decision(history)
            } else {
                let query = AuditQuery {
                    until: Some(until),
                    ..AuditQuery::request(id)
                };
                first_decision(&store.audit_records(&query).await?)
            };
            let Some(first) = first.filter(|d| d.at >= from) else {
                continue;
            };
            stats.decided += 1;
            stats.decided_by_timeout += u64::from(first.by_timeout);
            times.extend(first.took);
        }
        times.sort_unstable();
        stats.timeout_rate =
            (stats.decided > 0).then(|| stats.decided_by_timeout as f64 / stats.decided as f64);
        stats.time_to_decision_median = nearest_rank(&times, 50);
        stats.time_to_decision_p95 = nearest_rank(&times, 95);

        let pending = store.list(&RequestQuery::pending(), until).await?;
        stats.pending = pending.len() as u64;
        stats.oldest_pending =
            pending
                .iter()
                .min_by_key(|r| r.created_at())
                .map(|r| OldestPending {
                    request_id: r.id(),
                    tool: r.call().tool().to_owned(),
                    created_at: r.created_at(),
                    age: elapsed(r.created_at(), until),
                });
        Ok(stats)
    }

    fn empty(from: OffsetDateTime, until: OffsetDateTime) -> Self {
        ApprovalStats {
            from,
            until,
            approvals_required: 0,
            granted: 0,
            denied: 0,
            timed_out: 0,
            cancelled: 0,
            executed: 0,
            execution_failed: 0,
            execution_in_doubt: 0,
            policy_denied: 0,
            allowed: 0,
            grants_used: 0,
            decided: 0,
            decided_by_timeout: 0,
            timeout_rate: None,
            time_to_decision_median: None,
            time_to_decision_p95: None,
            pending: 0,
            oldest_pending: None,
        }
    }

    fn count(&mut self, event: &AuditEvent) {
        let counter = match event {
            AuditEvent::ApprovalRequired { .. } => &mut self.approvals_required,
            AuditEvent::ApprovalGranted { .. } => &mut self.granted,
            AuditEvent::ApprovalDenied { .. } => &mut self.denied,
            AuditEvent::ApprovalTimeout { .. } => &mut self.timed_out,
            AuditEvent::ApprovalCancelled { .. } => &mut self.cancelled,
            AuditEvent::Executed { .. } => &mut self.executed,
            AuditEvent::ExecutionFailed { .. } => &mut self.execution_failed,
            AuditEvent::ExecutionInDoubt { .. } => &mut self.execution_in_doubt,
            AuditEvent::PolicyDenied { .. } => &mut self.policy_denied,
            AuditEvent::Allow { .. } => &mut self.allowed,
            AuditEvent::GrantUsed { .. } => &mut self.grants_used,
            _ => return,
        };
        *counter += 1;
    }
}

/// A request's first decision.
struct FirstDecision {
    /// When it went on the record.
    at: OffsetDateTime,
    /// Its event's name, to match a `transition_reverted` that undoes it.
    event: &'static str,
    by_timeout: bool,
    /// From filing to the decision; `None` when the filing is not in the history read.
    took: Option<Duration>,
}

/// Whether `event` may be a request's first decision, or undo one.
fn may_decide(event: &AuditEvent) -> bool {
    matches!(
        event,
        AuditEvent::ApprovalGranted { .. }
            | AuditEvent::ApprovalDenied { .. }
            | AuditEvent::ApprovalCancelled { .. }
            | AuditEvent::ApprovalTimeout { .. }
            | AuditEvent::TransitionReverted { .. }
    )
}

/// The first decision in a request's history (in trail order), if any.
fn first_decision<'a>(history: impl IntoIterator<Item = &'a AuditRecord>) -> Option<FirstDecision> {
    // When it was filed, and when it expires unless decided.
    let mut filed: Option<(OffsetDateTime, OffsetDateTime)> = None;
    let mut first: Option<FirstDecision> = None;
    for record in history {
        let by_timeout = match &record.event {
            AuditEvent::ApprovalRequired { expires_at, .. } => {
                filed = Some((record.at, *expires_at));
                continue;
            }
            AuditEvent::TransitionReverted { reverted, .. } => {
                if first.as_ref().is_some_and(|f| f.event == reverted.as_str()) {
                    first = None;
                }
                continue;
            }
            AuditEvent::ApprovalTimeout { from } if from == "pending" => true,
            AuditEvent::ApprovalGranted { .. }
            | AuditEvent::ApprovalDenied { .. }
            | AuditEvent::ApprovalCancelled { .. } => false,
            _ => continue,
        };
        if first.is_some() {
            continue;
        }
        // A timeout is noticed late (by a sweep, a resume, a look at the desk); it
        // happened when the decision TTL ran out.
        let took = filed.map(|(created, expires_at)| {
            let decided = if by_timeout {
                expires_at.min(record.at)
            } else {
                record.at
            };
            elapsed(created, decided)
        });
        first = Some(FirstDecision {
            at: record.at,
            event: record.event_name(),
            by_timeout,
            took,
        });
    }
    first
}

/// The nearest-rank `percent`-th percentile of `sorted` (ascending): its
/// `⌈percent/100 · n⌉`-th smallest.
fn nearest_rank(sorted: &[Duration], percent: usize) -> Option<Duration> {
    let rank = (percent * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

/// The time from `start` to `end`, zero if `end` is earlier.
fn elapsed(start: OffsetDateTime, end: OffsetDateTime) -> Duration {
    Duration::try_from(end - start).unwrap_or(Duration::ZERO)
}

fn seconds<S: Serializer>(value: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(d) => s.serialize_some(&d.as_secs_f64()),
        None => s.serialize_none(),
    }
}

fn seconds_some<S: Serializer>(value: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(value.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: &[u64]) -> Vec<Duration> {
        s.iter().copied().map(Duration::from_secs).collect()
    }

    #[test]
    fn nearest_rank_percentiles() {
        assert_eq!(nearest_rank(&[], 50), None);
        assert_eq!(nearest_rank(&secs(&[7]), 50), Some(Duration::from_secs(7)));
        assert_eq!(nearest_rank(&secs(&[7]), 95), Some(Duration::from_secs(7)));
        // Of an even number, the lower middle one.
        let four = secs(&[1, 2, 3, 4]);
        assert_eq!(nearest_rank(&four, 50), Some(Duration::from_secs(2)));
        assert_eq!(nearest_rank(&four, 95), Some(Duration::from_secs(4)));
        // ⌈0.95 · 20⌉ = 19: the 19th of 20.
        let twenty: Vec<u64> = (1..=20).collect();
        assert_eq!(
            nearest_rank(&secs(&twenty), 95),
            Some(Duration::from_secs(19))
        );
        assert_eq!(
            nearest_rank(&secs(&twenty), 50),
            Some(Duration::from_secs(10))
        );
    }
}
