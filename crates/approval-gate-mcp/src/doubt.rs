//! Errors that leave a call's outcome unknown: sent, and never answered.

use std::borrow::Cow;

use rmcp::ErrorData as McpError;
use serde_json::{Value, json};

/// A JSON-RPC internal error that says a call was sent on and whether it acted is
/// unknown: the connection to the service that runs it was lost before the answer came.
///
/// A handler inside a [`GatedServer`](crate::GatedServer) returns it so the gate records
/// the call `execution_in_doubt` and leaves an approved request `executing` for a person
/// to settle, instead of recording a failure, and so the call is never sent again on its
/// own. [`Upstream`](crate::Upstream) returns it when the upstream goes away mid-call.
/// Its `data` is `{"outcome": "unknown"}`.
pub fn outcome_unknown(message: impl Into<Cow<'static, str>>) -> McpError {
    McpError::internal_error(message, Some(json!({"outcome": "unknown"})))
}

/// Whether `error` is an [`outcome_unknown`] error.
pub fn is_outcome_unknown(error: &McpError) -> bool {
    error
        .data
        .as_ref()
        .and_then(|data| data.get("outcome"))
        .and_then(Value::as_str)
        == Some("unknown")
}
