//! What a person sees of a request: the same on the page and in the API, built from
//! `shown_args` and the preview, never the raw arguments.

use approval_gate::serde_json::{self, Value};
use approval_gate::time::OffsetDateTime;
use approval_gate::time::format_description::well_known::Rfc3339;
use approval_gate::trail::{AuditEvent, AuditRecord};
use approval_gate::{ApprovalRequest, RequestState};
use serde::Serialize;

/// A request as a person sees it before deciding: the same on the console's pages, in
/// its JSON API and in the `approval-gate` command's JSON output. Built from
/// `shown_args` and the preview, never the raw arguments.
#[derive(Debug, Clone, Serialize)]
pub struct RequestView {
    /// The request id.
    pub id: String,
    /// Where it stands now (`pending`, `approved`, …).
    pub state: String,
    /// The tool.
    pub tool: String,
    /// The preview of what will run (of the edited call after an edit).
    pub preview: String,
    /// The arguments that will run, secrets redacted.
    pub shown_args: Value,
    /// The hash of the arguments that will run.
    pub args_hash: String,
    /// The rules that asked for approval.
    pub rule_ids: Vec<String>,
    /// The policy's reason.
    pub reason: Option<String>,
    /// The risk tier.
    pub tier: Option<String>,
    /// Who asked for the call.
    pub requester: Option<String>,
    /// The call's tenant.
    pub tenant: Option<String>,
    /// The agent run.
    pub run_id: String,
    /// The tool call's id.
    pub call_id: String,
    /// Who approved so far.
    pub approvers: Vec<String>,
    /// How many approvers it needs.
    pub quorum: u32,
    /// When it was filed (RFC 3339).
    pub created_at: String,
    /// When it expires unless decided (RFC 3339).
    pub expires_at: String,
    /// Seconds left to decide; `None` unless pending.
    pub remaining_seconds: Option<u64>,
    /// When an approval expires unless used (RFC 3339).
    pub approval_expires_at: Option<String>,
    /// Who edited the arguments, when someone did.
    pub edited_by: Option<String>,
    /// The fields an edit changed.
    pub changed_fields: Vec<String>,
    /// Who denied or cancelled it.
    pub decided_by: Option<String>,
    /// Their message.
    pub feedback: Option<String>,
}

impl RequestView {
    /// The view of `request` at `now`.
    pub fn of(request: &ApprovalRequest, now: OffsetDateTime) -> Self {
        let call = request.call();
        let state = request.state_at(now);
        RequestView {
            id: request.id().to_string(),
            state: state.as_str().to_owned(),
            tool: call.tool().to_owned(),
            preview: request.preview().unwrap_or(call.tool()).to_owned(),
            shown_args: request.shown_args().clone(),
            args_hash: request.approved_args_hash().to_string(),
            rule_ids: request.rule_ids().iter().map(ToString::to_string).collect(),
            reason: request.reason().map(str::to_owned),
            tier: request.tier().map(ToString::to_string),
            requester: call.requester().map(str::to_owned),
            tenant: call.tenant().map(str::to_owned),
            run_id: call.run_id().to_owned(),
            call_id: call.call_id().to_owned(),
            approvers: request.approvers().to_vec(),
            quorum: request.quorum(),
            created_at: rfc3339(request.created_at()),
            expires_at: rfc3339(request.expires_at()),
            remaining_seconds: (state == RequestState::Pending)
                .then(|| request.remaining(now).map(|d| d.as_secs()))
                .flatten(),
            approval_expires_at: request.approval_expires_at().map(rfc3339),
            edited_by: request.edited_by().map(str::to_owned),
            changed_fields: request.changed_fields().to_vec(),
            decided_by: request.decided_by().map(str::to_owned),
            feedback: request.feedback().map(str::to_owned),
        }
    }

    /// The shown arguments as indented JSON, for a page or a terminal.
    pub fn shown_args_text(&self) -> String {
        serde_json::to_string_pretty(&self.shown_args).unwrap_or_default()
    }

    /// Whether a person may still approve or deny it.
    pub fn is_pending(&self) -> bool {
        self.state == "pending"
    }

    /// Whether it may still be cancelled.
    pub fn is_open(&self) -> bool {
        self.state == "pending" || self.state == "approved"
    }
}

/// One line of a request's history.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryLine {
    /// When (RFC 3339).
    pub at: String,
    /// The event's name.
    pub event: String,
    /// Who acted, if a person did.
    pub actor: Option<String>,
}

impl HistoryLine {
    /// The line of `record`.
    pub fn of(record: &AuditRecord) -> Self {
        HistoryLine {
            at: rfc3339(record.at),
            event: record.event.written_name().to_owned(),
            actor: record.event.actor().map(str::to_owned),
        }
    }
}

/// One record of a run's trail, as the run's page and its API show it.
#[derive(Debug, Clone, Serialize)]
pub struct TrailLine {
    /// The record's number in the store's trail (the cursor of the next page).
    pub seq: Option<u64>,
    /// When (RFC 3339).
    pub at: String,
    /// The event's name (`approval_required`, `executed`, …).
    pub event: String,
    /// The tool.
    pub tool: String,
    /// The tool call's id.
    pub call_id: String,
    /// The approval request, when there is one.
    pub request_id: Option<String>,
    /// Who acted, if a person did.
    pub actor: Option<String>,
    /// The call's tenant.
    pub tenant: Option<String>,
    /// A short detail: the reason, the feedback, the votes, the error, …
    pub detail: Option<String>,
}

impl TrailLine {
    /// The line of `record`.
    pub fn of(record: &AuditRecord) -> Self {
        TrailLine {
            seq: record.chain.as_ref().map(|c| c.seq),
            at: rfc3339(record.at),
            event: record.event.written_name().to_owned(),
            tool: record.tool.clone(),
            call_id: record.call_id.clone(),
            request_id: record.request_id.map(|id| id.to_string()),
            actor: record.event.actor().map(str::to_owned),
            tenant: record.tenant.clone(),
            detail: detail(&record.event),
        }
    }
}

/// The short detail of an event, where it has one worth a line.
fn detail(event: &AuditEvent) -> Option<String> {
    let rules = |ids: &[String]| (!ids.is_empty()).then(|| format!("rules {}", ids.join(", ")));
    let joined = |parts: Vec<Option<String>>| {
        let parts: Vec<String> = parts.into_iter().flatten().collect();
        (!parts.is_empty()).then(|| parts.join("; "))
    };
    match event {
        AuditEvent::Allow { rule_ids } => rules(rule_ids),
        AuditEvent::PolicyDenied { rule_ids, reason } => {
            joined(vec![reason.clone(), rules(rule_ids)])
        }
        AuditEvent::ApprovalRequired {
            rule_ids,
            reason,
            tier,
            ..
        } => joined(vec![
            reason.clone(),
            rules(rule_ids),
            tier.as_ref().map(|t| format!("tier {t}")),
        ]),
        AuditEvent::ApprovalVote { votes, quorum, .. } => Some(format!("{votes} of {quorum}")),
        AuditEvent::ApprovalGranted { changed_fields, .. } => {
            (!changed_fields.is_empty()).then(|| format!("edited {}", changed_fields.join(", ")))
        }
        AuditEvent::ApprovalDenied { feedback, .. } => feedback.clone(),
        AuditEvent::ApprovalTimeout { from } => Some(format!("while {from}")),
        AuditEvent::ApprovalCancelled { reason, .. } => reason.clone(),
        AuditEvent::GrantCreated {
            grant_id,
            grant_tool,
            max_uses,
            ..
        } => Some(match max_uses {
            Some(n) => format!("grant {grant_id} for {grant_tool}, at most {n} uses"),
            None => format!("grant {grant_id} for {grant_tool}"),
        }),
        AuditEvent::GrantRevoked { grant_id, .. } => Some(format!("grant {grant_id}")),
        AuditEvent::GrantUsed {
            grant_id,
            granted_by,
            uses,
        } => Some(format!("grant {grant_id} left by {granted_by}, use {uses}")),
        AuditEvent::Executed { status } => Some(status.clone()),
        AuditEvent::ExecutionFailed { error } | AuditEvent::ExecutionInDoubt { error } => {
            Some(error.clone())
        }
        AuditEvent::ExecutionSettled { outcome, note, .. } => {
            joined(vec![Some(outcome.as_str().to_owned()), note.clone()])
        }
        AuditEvent::TransitionReverted { reverted, reason } => {
            Some(format!("{reverted} undone: {reason}"))
        }
        AuditEvent::Stopped { reason, detail } => {
            joined(vec![Some(reason.clone()), detail.clone()])
        }
        _ => None,
    }
}

pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}
