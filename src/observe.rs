//! Metrics (feature `metrics`) and spans (feature `tracing`): every emission of the crate
//! in one place, as small functions that the gate calls at the steps worth counting.
//!
//! Each function is a no-op without its feature, so call sites need no `cfg` and a build
//! without the features pays nothing.
//!
//! The metrics, through the [`metrics`](https://docs.rs/metrics/0.24) facade (nothing is
//! recorded until the host installs a recorder, such as a Prometheus exporter):
//!
//! | name | kind | labels | what |
//! |------|------|--------|------|
//! | `approval_gate_decisions_total` | counter | `outcome`, `tool`, `tier` | policy decisions of [`Gated::call`](crate::gate::Gated::call): `outcome` is `allow`, `deny` or `approval_required`; `tier` is `none` without one |
//! | `approval_gate_approvals_total` | counter | `result` | requests decided: `granted`, `denied`, `timeout` or `cancelled`, each request counted once, at its first decision |
//! | `approval_gate_time_to_decision_seconds` | histogram | | from filing to that first decision (to the expiry instant for a timeout) |
//! | `approval_gate_pending_requests` | gauge | | requests filed and not yet decided, as seen by this process |

use std::future::Future;

use time::OffsetDateTime;

use crate::approval::{ApprovalRequest, RequestId, RequestState};

use crate::audit::{AuditEvent, AuditRecord};

use crate::call::ToolCall;

use crate::gate::{GateError, GateOutcome};

use crate::policy::Decision;

/// The span of one `call` or `resume`: a `tracing::Span` with the feature `tracing`,
/// nothing without it.
#[cfg(feature = "tracing")]
pub(crate) type Span = tracing::Span;

/// The span of one `call` or `resume`: a `tracing::Span` with the feature `tracing`,
/// nothing without it.
#[cfg(not(feature = "tracing"))]
#[derive(Debug, Clone)]
pub(crate) struct Span;

/// The span of [`Gated::call`](crate::gate::Gated::call): `approval_gate.call` with `run_id`,
/// `tool` and `call_id`, and `request_id` once a request is filed (see [`filed`]).
pub(crate) fn call_span(call: &ToolCall) -> Span {
    #[cfg(feature = "tracing")]
    return tracing::info_span!(
        "approval_gate.call",
        run_id = call.run_id(),
        tool = call.tool(),
        call_id = call.call_id(),
        request_id = tracing::field::Empty,
        outcome = tracing::field::Empty,
    );
    #[cfg(not(feature = "tracing"))]
    {
        let _ = call;
        Span
    }
}

/// The span of [`Gated::resume`](crate::gate::Gated::resume): `approval_gate.resume` with
/// `run_id`, `tool`, `call_id` and `request_id`.
pub(crate) fn resume_span(request_id: RequestId, call: &ToolCall) -> Span {
    #[cfg(feature = "tracing")]
    return tracing::info_span!(
        "approval_gate.resume",
        run_id = call.run_id(),
        tool = call.tool(),
        call_id = call.call_id(),
        request_id = %request_id,
        outcome = tracing::field::Empty,
    );
    #[cfg(not(feature = "tracing"))]
    {
        let _ = (request_id, call);
        Span
    }
}

/// Runs `step` inside `span` (entered on every poll, never across an `.await` of the
/// caller) and records its `outcome` (`executed`, `pending`, `stopped` or `error`) on it.
/// Without the feature `tracing`, `step` itself.
pub(crate) fn traced<T, E, F>(
    span: Span,
    step: F,
) -> impl Future<Output = Result<GateOutcome<T, E>, GateError>>
where
    F: Future<Output = Result<GateOutcome<T, E>, GateError>>,
{
    #[cfg(feature = "tracing")]
    {
        use tracing::Instrument as _;
        async move {
            let result = step.instrument(span.clone()).await;
            let outcome = match &result {
                Ok(outcome) => outcome.name(),
                Err(_) => "error",
            };
            span.record("outcome", outcome);
            result
        }
    }
    #[cfg(not(feature = "tracing"))]
    {
        let _ = span;
        step
    }
}

/// The policy decided a call: counts it in `approval_gate_decisions_total`.
pub(crate) fn decided(decision: &Decision, tool: &str) {
    #[cfg(feature = "metrics")]
    metrics::counter!(
        "approval_gate_decisions_total",
        "outcome" => decision.effect().as_str(),
        "tool" => tool.to_owned(),
        "tier" => decision.tier().unwrap_or("none").to_owned(),
    )
    .increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = (decision, tool);
}

/// `call` filed `request` (`created`) or found it pending already: records its id on
/// `span`, the call's, and counts a new one in `approval_gate_pending_requests`.
pub(crate) fn filed(span: &Span, request: &ApprovalRequest, created: bool) {
    #[cfg(feature = "tracing")]
    span.record("request_id", tracing::field::display(request.id()));
    #[cfg(feature = "metrics")]
    if created {
        metrics::gauge!("approval_gate_pending_requests").increment(1.0);
    }
    let _ = (span, request, created);
}

/// A transition from `prev` was committed with `record`: counts a first decision
/// (approved, denied, cancelled or timed out while pending).
pub(crate) fn committed(prev: &ApprovalRequest, record: &AuditRecord) {
    if prev.stored_state() != RequestState::Pending {
        return;
    }
    match &record.event {
        AuditEvent::ApprovalGranted { .. } => first_decision("granted", prev, record.at),
        AuditEvent::ApprovalDenied { .. } => first_decision("denied", prev, record.at),
        AuditEvent::ApprovalCancelled { .. } => first_decision("cancelled", prev, record.at),
        AuditEvent::ApprovalTimeout { .. } => first_decision("timeout", prev, prev.expires_at()),
        _ => {}
    }
}

/// The store's sweep expired `expired` (as written): counts it if it timed out pending.
pub(crate) fn swept(expired: &ApprovalRequest) {
    // As in `AuditRecord::timeout`: only an approved request has an approval expiry.
    if expired.approval_expires_at().is_none() {
        first_decision("timeout", expired, expired.expires_at());
    }
}

/// Counts the first decision of `request`, taken at `at`.
fn first_decision(result: &'static str, request: &ApprovalRequest, at: OffsetDateTime) {
    #[cfg(feature = "metrics")]
    {
        let took = std::time::Duration::try_from(at - request.created_at())
            .unwrap_or(std::time::Duration::ZERO);
        metrics::counter!("approval_gate_approvals_total", "result" => result).increment(1);
        metrics::histogram!("approval_gate_time_to_decision_seconds").record(took.as_secs_f64());
        metrics::gauge!("approval_gate_pending_requests").decrement(1.0);
    }
    let _ = (result, request, at);
}

/// Describes the crate's metrics (their meaning and unit) to the installed recorder, for
/// exporters that show them (Prometheus' `# HELP` lines). Optional: the metrics are
/// recorded either way. Call it once, after installing the recorder.
///
/// The metrics:
///
/// - `approval_gate_decisions_total{outcome, tool, tier}` (counter): the policy's
///   decisions of [`Gated::call`](crate::gate::Gated::call); `outcome` is `allow`, `deny` or
///   `approval_required`, `tier` the risk tier or `none`.
/// - `approval_gate_approvals_total{result}` (counter): approval requests decided, by
///   `result`: `granted`, `denied`, `timeout` or `cancelled`. Each request counts once, at
///   its first decision (a later cancel or expiry of an approved request does not count).
/// - `approval_gate_time_to_decision_seconds` (histogram): from filing a request to that
///   first decision; for a timeout, to the instant the request expired (its decision TTL),
///   however late the timeout was noticed.
/// - `approval_gate_pending_requests` (gauge): this process's view of the requests
///   waiting for a decision: +1 when this process files a request, -1 when this process
///   records a request's first decision. Summed over every process sharing a store it is
///   the store's count, as long as none restarted; for an exact figure read the store
///   with [`ApprovalStats`](crate::stats::ApprovalStats).
///
/// ```
/// approval_gate::describe_metrics();
/// ```
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub fn describe_metrics() {
    use metrics::Unit;
    metrics::describe_counter!(
        "approval_gate_decisions_total",
        Unit::Count,
        "policy decisions of gated calls, by outcome (allow, deny, approval_required), tool and tier"
    );
    metrics::describe_counter!(
        "approval_gate_approvals_total",
        Unit::Count,
        "approval requests decided, by result (granted, denied, timeout, cancelled), each at its first decision"
    );
    metrics::describe_histogram!(
        "approval_gate_time_to_decision_seconds",
        Unit::Seconds,
        "time from filing an approval request to its first decision"
    );
    metrics::describe_gauge!(
        "approval_gate_pending_requests",
        Unit::Count,
        "approval requests waiting for a decision, as seen by this process"
    );
}
