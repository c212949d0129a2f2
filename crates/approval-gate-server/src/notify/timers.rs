//! What comes due with time rather than with a change: reminders and escalations of
//! requests still pending, and the timeout-spike alert.

use std::time::Duration;

use approval_gate::store::{AuditQuery, RequestQuery};
use approval_gate::time::OffsetDateTime;
use approval_gate::trail::{ApprovalStats, AuditEvent, AuditRecord};
use approval_gate::{ApprovalRequest, Gate};

use super::{NotifyError, SpikeRule};

/// How many pending requests one pass looks at for reminders and escalations.
const PENDING_PAGE: usize = 1000;

/// Writes the reminders, escalations and spike records due at `now`; returns how many.
pub(super) async fn run(
    gate: &Gate,
    spike: Option<&SpikeRule>,
    now: OffsetDateTime,
) -> Result<usize, NotifyError> {
    let mut written = remind_and_escalate(gate, now).await?;
    if let Some(rule) = spike {
        written += spike_alert(gate, rule, now).await?;
    }
    Ok(written)
}

/// A reminder or an escalation due for `request` at `now`, by its tier: the events due
/// that the request's history does not have yet.
async fn remind_and_escalate(gate: &Gate, now: OffsetDateTime) -> Result<usize, NotifyError> {
    let policy = gate.policy();
    let tiers = &policy.config().tiers;
    if tiers
        .values()
        .all(|t| t.remind_after_seconds.is_none() && t.escalate_after_seconds.is_none())
    {
        return Ok(0);
    }
    let store = gate.store();
    let query = RequestQuery {
        limit: Some(PENDING_PAGE),
        ..RequestQuery::pending()
    };
    let mut written = 0;
    for request in store.list(&query, now).await? {
        let Some(tier) = request.tier().and_then(|t| tiers.get(t)) else {
            continue;
        };
        let age = now - request.created_at();
        let due = |after: Option<approval_gate::config::TtlSeconds>| {
            after.is_some_and(|a| age >= a.as_duration())
        };
        let (remind, escalate) = (
            due(tier.remind_after_seconds),
            due(tier.escalate_after_seconds),
        );
        if !remind && !escalate {
            continue;
        }
        let history = store
            .audit_records(&AuditQuery::request(request.id()))
            .await?;
        let has = |name: &str| history.iter().any(|r| r.event.written_name() == name);
        if remind && !has("approval_reminded") {
            let event = AuditEvent::ApprovalReminded {
                approvers: request.approver_roles().to_vec(),
            };
            append(gate, &request, event, now).await?;
            written += 1;
        }
        if escalate && !has("approval_escalated") {
            let event = AuditEvent::ApprovalEscalated {
                to: tier
                    .escalate_to
                    .iter()
                    .map(|r| r.as_str().to_owned())
                    .collect(),
            };
            append(gate, &request, event, now).await?;
            written += 1;
        }
    }
    Ok(written)
}

async fn append(
    gate: &Gate,
    request: &ApprovalRequest,
    event: AuditEvent,
    now: OffsetDateTime,
) -> Result<(), NotifyError> {
    let record = AuditRecord::for_request(now, request, event);
    gate.store().append_audit(&record).await?;
    Ok(())
}

/// Raises the spike alert when the rule holds and the last spike record is not a raise;
/// clears it when the rule no longer holds and the last one is. One record at most.
async fn spike_alert(
    gate: &Gate,
    rule: &SpikeRule,
    now: OffsetDateTime,
) -> Result<usize, NotifyError> {
    let store = gate.store();
    let window = Duration::from_secs(rule.window_seconds);
    // The window ends just after `now`, so that it holds what happened at `now`.
    let until = now + Duration::from_nanos(1);
    let stats = ApprovalStats::compute(&**store, until - window, until).await?;
    let spiking = stats.decided >= rule.min_count
        && stats.timeout_rate.is_some_and(|rate| rate > rule.threshold);
    // Records of no call carry an empty run id: the spike records are among them.
    let raised = store
        .audit_records(&AuditQuery::run(""))
        .await?
        .iter()
        .rev()
        .find_map(|r| match r.event {
            AuditEvent::TimeoutSpike { .. } => Some(true),
            AuditEvent::TimeoutSpikeCleared { .. } => Some(false),
            _ => None,
        })
        .unwrap_or(false);
    if spiking == raised {
        return Ok(0);
    }
    let (timeouts, finished, window_seconds) =
        (stats.decided_by_timeout, stats.decided, rule.window_seconds);
    let event = if spiking {
        AuditEvent::TimeoutSpike {
            timeouts,
            finished,
            window_seconds,
        }
    } else {
        AuditEvent::TimeoutSpikeCleared {
            timeouts,
            finished,
            window_seconds,
        }
    };
    let version = gate.policy().version().as_str().to_owned();
    store
        .append_audit(&AuditRecord::control(now, &version, event))
        .await?;
    Ok(1)
}
