//! The tool side: [`ToolExecutor`] and what it is handed, [`Execution`].

use std::fmt::Display;
use std::future::Future;

use async_trait::async_trait;
use serde_json::Value;

use crate::approval::RequestId;

use crate::call::ToolCall;

use crate::token::VerifiedApproval;

/// Runs tools. The gate calls it only for a call the policy allows, or for an approved
/// call whose approval it has verified and claimed.
///
/// Implemented for async closures, so the simple case is one line:
///
/// ```
/// use approval_gate::{Execution, ToolExecutor};
/// use serde_json::{json, Value};
///
/// fn assert_executor(_: impl ToolExecutor) {}
/// assert_executor(|exec: Execution| async move {
///     Ok::<Value, std::io::Error>(json!({"sent_to": exec.args()["to"]}))
/// });
/// ```
#[async_trait]
pub trait ToolExecutor: Send + Sync {
    /// What a tool returns when it succeeds.
    type Output: Send;
    /// What a tool returns when it fails; its text goes to the audit trail.
    type Error: Display + Send;

    /// Runs the call in `execution`, with the arguments that were approved.
    async fn execute(&self, execution: Execution) -> Result<Self::Output, Self::Error>;

    /// Whether `error` leaves it unknown if the tool acted: the connection to a tool
    /// service was lost after the call was sent, say. `false` by default: an error means
    /// the tool did not act, or acted and failed.
    ///
    /// For such an error the gate records `execution_in_doubt` instead of
    /// `execution_failed`, and an approved request stays `executing`, in doubt, as after
    /// a crash: it never runs again on its own, and a person settles it at the desk
    /// ([`Desk::settle`](crate::Desk::settle)). [`Executed::in_doubt`](crate::outcome::Executed::in_doubt)
    /// tells the host.
    fn in_doubt(&self, error: &Self::Error) -> bool {
        let _ = error;
        false
    }
}

#[async_trait]
impl<F, Fut, T, E> ToolExecutor for F
where
    F: Fn(Execution) -> Fut + Send + Sync,
    Fut: Future<Output = Result<T, E>> + Send,
    T: Send,
    E: Display + Send,
{
    type Output = T;
    type Error = E;

    async fn execute(&self, execution: Execution) -> Result<T, E> {
        self(execution).await
    }
}

/// One call the gate lets through, as handed to the [`ToolExecutor`].
#[derive(Debug, Clone)]
pub struct Execution {
    call: ToolCall,
    approval: Option<VerifiedApproval>,
    request_id: Option<RequestId>,
}

impl Execution {
    pub(crate) fn allowed(call: ToolCall) -> Self {
        Execution {
            call,
            approval: None,
            request_id: None,
        }
    }

    pub(crate) fn granted(call: ToolCall, approval: VerifiedApproval) -> Self {
        Execution {
            call,
            approval: Some(approval),
            request_id: None,
        }
    }

    pub(crate) fn approved(call: ToolCall, approval: VerifiedApproval, id: RequestId) -> Self {
        Execution {
            call,
            approval: Some(approval),
            request_id: Some(id),
        }
    }

    /// The call to run, with the approved arguments.
    pub fn call(&self) -> &ToolCall {
        &self.call
    }

    /// The tool's name.
    pub fn tool(&self) -> &str {
        self.call.tool()
    }

    /// The arguments to run with.
    pub fn args(&self) -> &Value {
        self.call.args()
    }

    /// The verified approval, when the call needed one: its token (for a tool service
    /// that verifies on its own) and its approvers. For a call a standing grant covered,
    /// the token names the grant's author. `None` when the policy allowed the call
    /// outright.
    pub fn approval(&self) -> Option<&VerifiedApproval> {
        self.approval.as_ref()
    }

    /// A key for the downstream system to deduplicate on: the approval request's id.
    /// The gate runs an approval at most once; this lets the tool's own side hold the same
    /// line across a crash between running and recording.
    pub fn idempotency_key(&self) -> Option<RequestId> {
        self.request_id
    }

    /// Takes the call out.
    pub fn into_call(self) -> ToolCall {
        self.call
    }
}
