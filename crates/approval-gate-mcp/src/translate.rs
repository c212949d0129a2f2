//! What a gated call's outcome becomes on the wire: the one place where the gate's values
//! turn into MCP results and errors.
//!
//! - ran: the inner handler's result, unchanged (its `isError` result or its JSON-RPC
//!   error as it gave them);
//! - waits for a person: an `isError` result whose text tells the model to call again
//!   with the same arguments once approved, and whose `structuredContent` carries the
//!   request id, its expiry and the console's page for it;
//! - will not run: an `isError` result whose text says why, so the model can choose
//!   another way;
//! - the gate failed (store, audit): a JSON-RPC internal error, and nothing ran.
//!
//! And, for the proxy, what differs between protocol versions on the way back from the
//! upstream: a final result's `resultType`.

use std::fmt;

use approval_gate::outcome::{PendingApproval, Stop};
use approval_gate::time::format_description::well_known::Rfc3339;
use approval_gate::{GateError, RequestId};
use rmcp::ErrorData as McpError;
use rmcp::model::{CallToolResponse, CallToolResult, ContentBlock, ResultType};
use serde_json::{Value, json};

/// How the inner handler's call failed, as the gate's executor reports it: the trail
/// records the call as failed, and the client gets the failure as the inner gave it.
#[derive(Debug)]
pub(crate) enum Forwarded {
    /// The handler answered with a JSON-RPC error.
    Protocol(McpError),
    /// The tool ran and reported an error (`isError: true`).
    Tool(CallToolResult),
    /// The arguments to run with are not a JSON object (an approver's edit made them
    /// something else); nothing was sent to the handler.
    NotAnObject,
}

/// What the audit trail keeps of a tool's error text, at most.
const TRAIL_TEXT: usize = 500;

impl fmt::Display for Forwarded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Forwarded::Protocol(e) => write!(f, "mcp error {}: {}", e.code.0, e.message),
            Forwarded::Tool(result) => {
                let text = result
                    .content
                    .iter()
                    .find_map(|c| c.as_text().map(|t| t.text.as_str()))
                    .unwrap_or("");
                let mut end = text.len().min(TRAIL_TEXT);
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                write!(f, "the tool returned an error: {}", &text[..end])
            }
            Forwarded::NotAnObject => f.write_str("the approved arguments are not a JSON object"),
        }
    }
}

/// The inner handler's result, as it gave it.
pub(crate) fn executed(
    result: Result<CallToolResponse, Forwarded>,
) -> Result<CallToolResponse, McpError> {
    match result {
        Ok(response) => Ok(response),
        Err(Forwarded::Protocol(e)) => Err(e),
        Err(Forwarded::Tool(result)) => Ok(result.into()),
        Err(e @ Forwarded::NotAnObject) => Err(McpError::invalid_params(e.to_string(), None)),
    }
}

/// The console's page of a request: `{base}/requests/{id}`.
pub(crate) fn console_page(base: &str, id: RequestId) -> String {
    format!("{}/requests/{id}", base.trim_end_matches('/'))
}

/// A call that waits for a person: nothing ran.
pub(crate) fn pending(pending: &PendingApproval, console: Option<&str>) -> CallToolResult {
    let expires_at = pending
        .expires_at
        .format(&Rfc3339)
        .unwrap_or_else(|_| pending.expires_at.to_string());
    let id = pending.request_id;
    let page = console.map(|base| console_page(base, id));
    let mut text = format!(
        "`{}` needs a person's approval, so it did not run. Approval request {id} is \
         pending until {expires_at}. Call this tool again with the same arguments once it \
         is approved: it will then run, once.",
        pending.tool
    );
    if let Some(reason) = &pending.reason {
        text.push_str(&format!(" Why approval is needed: {reason}."));
    }
    if let Some(page) = &page {
        text.push_str(&format!(" The request is at {page}."));
    }
    let mut structured = json!({
        "status": "approval_pending",
        "request_id": id.to_string(),
        "expires_at": expires_at,
    });
    if let Some(page) = page {
        structured["console_url"] = Value::String(page);
    }
    error_result(text, structured)
}

/// Adds to a pending result why the in-client decision did not count (the desk refused
/// it: the approver asked for the call, lacks the tier's role, …).
pub(crate) fn add_refusal(result: &mut CallToolResult, refused: &approval_gate::DeskError) {
    result.content.push(ContentBlock::text(format!(
        "The decision given in the client did not count: {refused}."
    )));
    if let Some(structured) = &mut result.structured_content {
        structured["in_client_refused"] = Value::String(refused.to_string());
    }
}

/// A call that will not run, and why.
pub(crate) fn stopped(stop: &Stop) -> CallToolResult {
    let text = format!("This call did not run: {}.", stop.message());
    let mut structured = json!({
        "status": "stopped",
        "reason": stop.reason.name(),
    });
    if let Some(id) = stop.request_id {
        structured["request_id"] = Value::String(id.to_string());
    }
    error_result(text, structured)
}

/// A call whose upstream did not answer within `limit`: it may have run, and it will
/// not be sent again on its own.
pub(crate) fn timed_out(limit: std::time::Duration) -> CallToolResult {
    let text = format!(
        "The tool did not answer within {} s. It may have run; it will not be sent again \
         on its own, so check its effect before calling it again.",
        limit.as_secs()
    );
    error_result(
        text,
        json!({"status": "in_doubt", "timeout_seconds": limit.as_secs()}),
    )
}

/// A call that was sent on and lost before it answered: it may have run, and it will
/// not be sent again on its own.
pub(crate) fn in_doubt(request_id: Option<RequestId>) -> CallToolResult {
    let mut text = "The call was sent to the tool, and the connection to it was lost before \
                    it answered: it may have run. It will not be sent again on its own, so \
                    check its effect before calling it again."
        .to_owned();
    let mut structured = json!({"status": "in_doubt"});
    if let Some(id) = request_id {
        text.push_str(&format!(
            " Approval request {id} stays in doubt until a person settles it."
        ));
        structured["request_id"] = Value::String(id.to_string());
    }
    error_result(text, structured)
}

/// The gate could not decide (its store or audit sink failed): fail closed.
pub(crate) fn gate_error(error: &GateError) -> McpError {
    McpError::internal_error(
        format!("the approval gate failed, so the call did not run: {error}"),
        None,
    )
}

/// Marks an upstream's final result `complete` when the upstream left the type out, as
/// servers of protocol versions before 2026-07-28 do (the spec reads an absent type as
/// `complete`): a client on 2026-07-28 or later requires the field, and rmcp takes it
/// out again for older ones.
pub(crate) fn mark_complete(result_type: &mut Option<ResultType>) {
    result_type.get_or_insert(ResultType::COMPLETE);
}

fn error_result(text: String, structured: Value) -> CallToolResult {
    let mut result = CallToolResult::error(vec![ContentBlock::text(text)]);
    result.structured_content = Some(structured);
    result
}

#[cfg(test)]
mod tests {
    use approval_gate::{Execution, Gate, GateOutcome, Key, Keyring, Policy, ToolCall};
    use rmcp::model::ErrorCode;

    use super::*;

    fn gate() -> Gate {
        let policy = Policy::from_yaml_str(
            "
approvals:
  required_for: [email.send]
  ttl_seconds: 300
rules:
  - id: no-drops
    tool: db.drop
    effect: deny
    reason: archive the table instead
",
        )
        .unwrap();
        Gate::builder(policy, Keyring::new(Key::generate("k1").unwrap())).build()
    }

    async fn outcome(tool: &str) -> GateOutcome<(), std::io::Error> {
        let gated = gate().wrap(|_: Execution| async { Ok::<(), std::io::Error>(()) });
        gated
            .call(ToolCall::new("run-1", "c1", tool, json!({"to": "bob"})))
            .await
            .unwrap()
    }

    fn text(result: &CallToolResult) -> &str {
        result.content[0].as_text().unwrap().text.as_str()
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_pending_call_says_to_call_again_and_carries_the_request() {
        let outcome = outcome("email.send").await;
        let pending = outcome.pending().unwrap();
        let result = super::pending(pending, Some("https://gate.example.com/"));
        assert_eq!(result.is_error, Some(true));
        let id = pending.request_id.to_string();
        assert!(text(&result).contains(&id), "{}", text(&result));
        assert!(text(&result).contains("again with the same arguments"));
        let structured = result.structured_content.unwrap();
        assert_eq!(structured["request_id"], id.as_str());
        assert_eq!(
            structured["console_url"],
            format!("https://gate.example.com/requests/{id}").as_str()
        );
        let expires = structured["expires_at"].as_str().unwrap();
        let parsed = approval_gate::time::OffsetDateTime::parse(expires, &Rfc3339).unwrap();
        assert_eq!(parsed, pending.expires_at);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn without_a_console_there_is_no_console_url() {
        let outcome = outcome("email.send").await;
        let result = super::pending(outcome.pending().unwrap(), None);
        let structured = result.structured_content.as_ref().unwrap();
        assert!(structured.get("console_url").is_none());
        assert!(!text(&result).contains("/requests/"));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_stop_says_why() {
        let outcome = outcome("db.drop").await;
        let result = super::stopped(outcome.stopped().unwrap());
        assert_eq!(result.is_error, Some(true));
        assert!(
            text(&result).contains("archive the table instead"),
            "{}",
            text(&result)
        );
        assert_eq!(
            result.structured_content.unwrap()["reason"],
            "policy_denied"
        );
    }

    #[test]
    fn an_inner_failure_comes_back_as_the_inner_gave_it() {
        let tool_error = CallToolResult::error(vec![ContentBlock::text("disk full")]);
        let back = executed(Err(Forwarded::Tool(tool_error.clone()))).unwrap();
        assert!(matches!(back, CallToolResponse::Complete(r) if r == tool_error));
        let protocol = McpError::invalid_params("no such tool", None);
        let back = executed(Err(Forwarded::Protocol(protocol.clone()))).unwrap_err();
        assert_eq!(back, protocol);
        let back = executed(Err(Forwarded::NotAnObject)).unwrap_err();
        assert_eq!(back.code, ErrorCode::INVALID_PARAMS);
    }

    #[test]
    fn the_trail_keeps_a_bounded_text_of_a_tool_error() {
        let long = "é".repeat(400);
        let failed = Forwarded::Tool(CallToolResult::error(vec![ContentBlock::text(long)]));
        let text = failed.to_string();
        assert!(text.starts_with("the tool returned an error: é"));
        assert!(text.len() <= "the tool returned an error: ".len() + TRAIL_TEXT);
    }

    #[test]
    fn an_upstream_result_without_a_type_is_complete() {
        let mut untyped: CallToolResult = serde_json::from_value(json!({"content": []})).unwrap();
        assert_eq!(untyped.result_type, None);
        mark_complete(&mut untyped.result_type);
        assert_eq!(untyped.result_type, Some(ResultType::COMPLETE));
        let mut typed = Some(ResultType::COMPLETE);
        mark_complete(&mut typed);
        assert_eq!(typed, Some(ResultType::COMPLETE));
    }

    #[test]
    fn console_pages_join_one_slash() {
        let id = RequestId::new();
        assert_eq!(
            console_page("http://h:8080", id),
            format!("http://h:8080/requests/{id}")
        );
        assert_eq!(
            console_page("http://h:8080/", id),
            format!("http://h:8080/requests/{id}")
        );
    }
}
