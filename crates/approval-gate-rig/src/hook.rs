//! [`GateHook`]: a rig agent hook that asks the gate before each tool call.

use std::convert::Infallible;
use std::future::{Ready, ready};

use approval_gate::{Execution, Gate, GateOutcome, Gated, parse_args};
use rig_agent::agent::{AgentHook, DispatchAction, DispatchEvent, HookContext};

use crate::translate::{self, CallContext};

/// The executor behind the hook's gate: it runs nothing. The gate "runs" it when it
/// lets a call through, and rig then runs the tool.
type Release = fn(Execution) -> Ready<Result<(), Infallible>>;

fn release(_: Execution) -> Ready<Result<(), Infallible>> {
    ready(Ok(()))
}

/// A rig [`AgentHook`] that asks the gate before rig dispatches each tool call
/// ([`AgentHook::on_dispatch`]), for agents run with rig's own loop
/// (`agent.prompt(..).add_hook(hook)`).
///
/// Each tool call becomes a [`ToolCall`](approval_gate::ToolCall) of this hook's run id,
/// with the model's call id, the tool's name, its JSON arguments, and the requester,
/// tenant and roles this hook was given. The gate decides it with
/// [`Gated::call_or_resume`]:
///
/// - allowed, or approved before (the identical call, once): rig runs the tool, with
///   the arguments as approved (an approver's edits patch the call);
/// - `approval_required`: nothing runs, and the run stops
///   ([`DispatchAction::stop`]): the agent's `.await` fails with
///   `PromptError::Cancelled`, whose reason names the request;
///   [`pending_request`](crate::pending_request) reads its id back. Once a person
///   approves, prompt again with the same hook: the model's identical call runs, once;
/// - denied (by the policy, a person, a timeout, a run control): with
///   `fallback_when_not_approved: continue` the tool is skipped and the model sees why
///   as the tool's result ([`DispatchAction::skip`]); with `stop` (the default) the run
///   stops with that reason;
/// - arguments that are not valid JSON: skipped, the model told why;
/// - the gate failed (store, audit sink, clock): the run stops, and nothing ran.
///
/// # What a hook cannot do
///
/// A hook decides; it cannot bind execution to the approval. When it answers
/// "proceed", the tool rig then runs is rig's own, not run through
/// [`Gated::resume`]: the gate records the call as executed when the hook lets it
/// through, before the tool runs, and never sees the tool's result or error. Nothing
/// but rig's loop stands between the decision and the tool. The hook is for
/// convenience. [`GatedDriver`](crate::GatedDriver) is the one that binds execution
/// to the approval: it runs the tool itself, through the gate, with a valid token for
/// the exact tool and arguments, exactly once.
///
/// The requester and tenant are what the host told the hook, not something the model
/// says.
#[derive(Debug, Clone)]
pub struct GateHook {
    gated: Gated<Release>,
    run_id: String,
    context: CallContext,
}

impl GateHook {
    /// A hook asking `gate`, for calls of the run `run_id`. Give the same run id when
    /// prompting again after an approval: an approval is found again only by a call of
    /// the same run.
    pub fn new(gate: Gate, run_id: impl Into<String>) -> Self {
        GateHook {
            gated: Gated::new(gate, release as Release),
            run_id: run_id.into(),
            context: CallContext::default(),
        }
    }

    /// Sets who asks for every call: the person or service the agent acts for. Nobody
    /// may approve their own requests.
    pub fn with_requester(mut self, requester: impl Into<String>) -> Self {
        self.context.requester = Some(requester.into());
        self
    }

    /// Sets the tenant of every call.
    pub fn with_tenant(mut self, tenant: impl Into<String>) -> Self {
        self.context.tenant = Some(tenant.into());
        self
    }

    /// Adds a role of the requester, which policy conditions can test.
    pub fn with_role(mut self, role: impl Into<String>) -> Self {
        self.context.roles.push(role.into());
        self
    }

    /// The run id every call of this hook carries.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The gate.
    pub fn gate(&self) -> &Gate {
        self.gated.gate()
    }

    /// What the gate says of one tool call, as a dispatch action.
    async fn decide(&self, event: DispatchEvent<'_>, tool: &str) -> DispatchAction {
        let args = match parse_args(event.tool_args().unwrap_or("{}")) {
            Ok(args) => args,
            Err(e) => return DispatchAction::skip(format!("invalid arguments: {e}")),
        };
        let call_id = match event.call_id {
            Some(id) => id.to_string(),
            None => event.id.to_string(),
        };
        let call = translate::tool_call(&self.context, &self.run_id, &call_id, tool, args);
        match self.gated.call_or_resume(call).await {
            Ok(GateOutcome::Executed(executed)) => match executed.edit {
                Some(edit) => DispatchAction::rewrite_tool_args(event.kind, edit.args),
                None => DispatchAction::proceed(),
            },
            Ok(GateOutcome::Pending(pending)) => {
                DispatchAction::stop(translate::pending_reason(&pending))
            }
            Ok(GateOutcome::Stopped(stop)) if stop.ends_run() => {
                DispatchAction::stop(stop.message())
            }
            Ok(GateOutcome::Stopped(stop)) => DispatchAction::skip(stop.message()),
            Err(e) => DispatchAction::stop(format!("the approval gate failed: {e}")),
        }
    }
}

impl AgentHook for GateHook {
    fn name(&self) -> Option<String> {
        Some(format!("approval_gate::GateHook({})", self.run_id))
    }

    /// Tool calls go to the gate; every other dispatch (completions) proceeds.
    async fn on_dispatch(&self, _ctx: &HookContext, event: DispatchEvent<'_>) -> DispatchAction {
        match event.tool_name() {
            Some(tool) => self.decide(event, tool).await,
            None => DispatchAction::proceed(),
        }
    }
}
