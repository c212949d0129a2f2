//! Tool calls: what an agent asks to run, and who asked.

mod canonical;
mod hash;

pub use canonical::{ArgsError, ArgsLimits, canonical_json};
pub use hash::{ArgsHash, ParseArgsHashError};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One tool call that an agent wants to make, with the facts a policy may look at.
///
/// The ids are the host's own: `run_id` names the agent run (a conversation, a job),
/// `call_id` names this call within the run (the model's tool-call id). The args are the
/// JSON arguments exactly as the model produced them.
///
/// ```
/// use approval_gate::ToolCall;
/// use serde_json::json;
///
/// let call = ToolCall::new("run-1", "call-1", "email.send", json!({"to": "bob@example.com"}))
///     .requested_by("alice")
///     .tenant("acme")
///     .role("support");
/// assert_eq!(call.tool(), "email.send");
/// assert_eq!(call.roles(), ["support"]);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    run_id: String,
    call_id: String,
    tool: String,
    args: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    requested_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tenant: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mode: Option<String>,
}

impl ToolCall {
    /// A call of `tool` with `args` in run `run_id`, identified within the run by `call_id`.
    pub fn new(
        run_id: impl Into<String>,
        call_id: impl Into<String>,
        tool: impl Into<String>,
        args: Value,
    ) -> Self {
        ToolCall {
            run_id: run_id.into(),
            call_id: call_id.into(),
            tool: tool.into(),
            args,
            requested_by: None,
            tenant: None,
            roles: Vec::new(),
            mode: None,
        }
    }

    /// Sets who asked for the call: the end user or service the agent acts for.
    pub fn requested_by(mut self, who: impl Into<String>) -> Self {
        self.requested_by = Some(who.into());
        self
    }

    /// Sets the tenant the call belongs to.
    pub fn tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }

    /// Adds a role of the one who asked; policy conditions can test it (`context.roles`).
    pub fn role(mut self, role: impl Into<String>) -> Self {
        self.roles.push(role.into());
        self
    }

    /// Sets the run's mode (for example `auto` or `plan`); policy conditions can test it.
    pub fn mode(mut self, mode: impl Into<String>) -> Self {
        self.mode = Some(mode.into());
        self
    }

    /// Replaces the arguments, keeping everything else.
    pub fn with_args(mut self, args: Value) -> Self {
        self.args = args;
        self
    }

    /// The agent run this call belongs to.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The call's id within its run.
    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    /// The tool's name, for example `email.send`.
    pub fn tool(&self) -> &str {
        &self.tool
    }

    /// The JSON arguments.
    pub fn args(&self) -> &Value {
        &self.args
    }

    /// Who asked for the call, if the host said.
    pub fn requester(&self) -> Option<&str> {
        self.requested_by.as_deref()
    }

    /// The tenant, if the host said.
    pub fn tenant_id(&self) -> Option<&str> {
        self.tenant.as_deref()
    }

    /// The roles of the one who asked.
    pub fn roles(&self) -> &[String] {
        &self.roles
    }

    /// The run's mode, if the host said.
    pub fn run_mode(&self) -> Option<&str> {
        self.mode.as_deref()
    }

    /// The hash of the arguments under the default [`ArgsLimits`].
    pub fn args_hash(&self) -> Result<ArgsHash, ArgsError> {
        ArgsHash::compute(&self.args)
    }

    /// Takes the arguments out of the call.
    pub fn into_args(self) -> Value {
        self.args
    }
}
