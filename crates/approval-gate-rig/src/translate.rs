//! What the gate's outcomes become for rig: the text a tool result carries to the model,
//! and the reason a stopped run carries its request id in.

use std::fmt::Display;

use approval_gate::outcome::{Executed, PendingApproval};
use approval_gate::time::format_description::well_known::Rfc3339;
use approval_gate::{RequestId, ToolCall};
use rig_agent::run::PromptError;
use serde::Serialize;
use serde_json::Value;

/// The start of the reason a run stopped at `approval_required` carries.
const PENDING_PREFIX: &str = "approval_required: request ";

/// The reason a run stops with while `pending` waits for a person:
/// `approval_required: request ID waits for a person to decide (tool `T`, expires …)`.
pub(crate) fn pending_reason(pending: &PendingApproval) -> String {
    let expires = pending
        .expires_at
        .format(&Rfc3339)
        .unwrap_or_else(|_| pending.expires_at.to_string());
    format!(
        "{PENDING_PREFIX}{} waits for a person to decide (tool `{}`, expires {expires})",
        pending.request_id, pending.tool
    )
}

/// The request a run stopped for, when `error` is the stop of a [`GateHook`]: its
/// cancellation reason names it. `None` for any other error.
///
/// [`GateHook`]: crate::GateHook
pub fn pending_request(error: &PromptError) -> Option<RequestId> {
    let PromptError::Cancelled { reason, .. } = error else {
        return None;
    };
    let rest = reason.strip_prefix(PENDING_PREFIX)?;
    rest.split(' ').next()?.parse().ok()
}

/// The gate's view of a tool call the model made in run `run_id`, with the host's
/// requester, tenant and roles.
pub(crate) fn tool_call(
    context: &CallContext,
    run_id: &str,
    call_id: &str,
    tool: &str,
    args: Value,
) -> ToolCall {
    let mut call = ToolCall::new(run_id, call_id, tool, args);
    if let Some(requester) = &context.requester {
        call = call.with_requester(requester.as_str());
    }
    if let Some(tenant) = &context.tenant {
        call = call.with_tenant(tenant.as_str());
    }
    for role in &context.roles {
        call = call.with_role(role.as_str());
    }
    call
}

/// Who the agent acts for, as the host configured it: the same on every call.
#[derive(Debug, Clone, Default)]
pub(crate) struct CallContext {
    pub(crate) requester: Option<String>,
    pub(crate) tenant: Option<String>,
    pub(crate) roles: Vec<String>,
}

/// The text the model sees for a tool that ran: its output (a JSON string as it is,
/// any other value as JSON), or why it failed; and, when an approver edited the
/// arguments, which fields they changed. `Err` when the output cannot be serialized.
pub(crate) fn executed_text<T: Serialize, E: Display>(
    executed: &Executed<T, E>,
) -> Result<(String, bool), serde_json::Error> {
    let (mut text, is_error) = match &executed.result {
        Ok(output) => match serde_json::to_value(output)? {
            Value::String(s) => (s, false),
            other => (other.to_string(), false),
        },
        Err(e) => (format!("the tool failed: {e}"), true),
    };
    if let Some(edit) = &executed.edit {
        text.push_str(&format!(
            "\n(an approver changed the arguments before it ran: {}; it ran with {})",
            edit.changed_fields.join(", "),
            edit.args
        ));
    }
    Ok((text, is_error))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pending_reason_names_its_request() {
        let id = RequestId::new();
        let reason = format!("{PENDING_PREFIX}{id} waits for a person to decide");
        let error = PromptError::cancelled(Vec::new(), reason);
        assert_eq!(pending_request(&error), Some(id));
    }

    #[test]
    fn other_cancellations_name_no_request() {
        let error = PromptError::cancelled(Vec::new(), "the user left");
        assert_eq!(pending_request(&error), None);
        let error = PromptError::cancelled(Vec::new(), format!("{PENDING_PREFIX}not-an-id x"));
        assert_eq!(pending_request(&error), None);
    }
}
