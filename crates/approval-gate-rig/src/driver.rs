//! [`GatedDriver`]: drives rig's serializable [`AgentRun`], running every tool call
//! through the gate.

use approval_gate::outcome::Stop;
use approval_gate::{Gate, GateError, GateOutcome, Gated, RequestId, ToolExecutor, parse_args};
use rig_agent::agent::{AgentRun, AgentRunStep, ModelTurn, ModelTurnOutcome, PendingToolCall};
use rig_agent::run::{PrepareError, PromptError, PromptResponse, RunSpec, prepare_request};
use rig_core::DynModel;
use rig_core::completion::{CompletionRequest, ProviderCapabilities, ToolDefinition};
use rig_core::error::ProviderError;
use rig_core::message::{ToolResultContent, UserContent};
use rig_core::operation::Completion;
use rig_core::transcript::tool_result_message;
use serde::{Deserialize, Serialize};

use crate::translate::{self, CallContext};

/// Drives rig's serializable [`AgentRun`] and runs every tool call the model makes
/// through the gate, so that a tool runs only as the gate allows: allowed outright, or
/// approved by a person, with a valid token bound to the exact tool and arguments,
/// exactly once.
///
/// The driver owns the loop: it asks the model (a rig [`DynModel`], with this
/// driver's preamble and tool definitions), feeds the answer to the run, and answers
/// each tool call with what the gate says:
///
/// - allowed: the gate runs the tool (the [`Gated`] executor), and its output is the
///   tool result the model sees;
/// - `approval_required`: the driver stops and gives back [`DriveOutcome::Pending`],
///   a [`PendingRun`] holding the run as it stands and the request id. It is
///   serializable: save it, let the process end, and once a person has decided, hand
///   it to [`resume`](Self::resume) (in this process or another one, with a gate on
///   the same store and keys). `resume` runs the tool through [`Gated::resume`]: only
///   if approved, with the approved arguments, once; a second resume of the same
///   pending run finds the approval used and does not run the tool again;
/// - denied (by the policy, a person, a timeout, a run control): with
///   `fallback_when_not_approved: continue` the model sees the reason (a person's
///   feedback included) as the tool's result and the run goes on; with `stop` (the
///   default) the driver ends with [`DriveOutcome::Stopped`];
/// - the gate failed (store, audit sink, clock): [`DriveError::Gate`], and the call
///   did not run.
///
/// Calls of one model turn are decided one by one, in order. A turn whose second call
/// waits for approval keeps the first call's result in the [`PendingRun`]: the first
/// call is not run again on resume.
///
/// Each call becomes a [`ToolCall`](approval_gate::ToolCall) of the run id given to
/// [`run`](Self::run), with the model's call id, the tool's name, its JSON arguments
/// (arguments that are not valid JSON are answered with why, and nothing runs), and the
/// requester, tenant and roles this driver was given. Tool output reaches the model as
/// text: a JSON string as it is, any other value as JSON.
///
/// A tool the model names that this driver did not advertise is an invalid call for
/// rig: the run's own policy (`AgentRun::with_unhandled_invalid_tool_call`, failing
/// the run by default) decides, and nothing runs. A tool the driver advertised but the
/// policy names nowhere is denied by the policy's default (fail closed).
#[derive(Debug, Clone)]
pub struct GatedDriver<E> {
    gated: Gated<E>,
    model: DynModel<Completion>,
    spec: RunSpec,
    tools: Vec<ToolDefinition>,
    context: CallContext,
}

/// Where a driven run stands when the driver gives it back.
#[derive(Debug)]
pub enum DriveOutcome {
    /// The run is done: the model answered without calling a tool.
    Done(PromptResponse),
    /// A tool call waits for a person's decision. Nothing of it ran. Save the
    /// pending run and [`resume`](GatedDriver::resume) it once a person decided.
    Pending(PendingRun),
    /// A call did not run and the policy says to end the run
    /// (`fallback_when_not_approved: stop`).
    Stopped(StoppedRun),
}

/// A run stopped at a tool call that waits for approval: the run as it stands and the
/// request id. Serializable (serde), so it outlives the process.
///
/// Nothing in it grants anything: the gate checks the approval on resume, and a call
/// whose tool, arguments or ids were changed in the saved form stops with
/// `args_mismatch` instead of running.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingRun {
    run_id: String,
    request_id: RequestId,
    call_id: String,
    tool: String,
    /// The results of the turn's earlier calls, in order.
    answered: Vec<UserContent>,
    run: AgentRun,
}

impl PendingRun {
    /// The approval request the run waits for.
    pub fn request_id(&self) -> RequestId {
        self.request_id
    }

    /// The run id the calls carry.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The tool that waits.
    pub fn tool(&self) -> &str {
        &self.tool
    }

    /// The model's id of the call that waits.
    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    /// The rig run, stopped at its tool calls.
    pub fn run(&self) -> &AgentRun {
        &self.run
    }
}

/// A run ended because a call did not run and the policy says to stop
/// (`fallback_when_not_approved: stop`).
#[derive(Debug)]
#[non_exhaustive]
pub struct StoppedRun {
    /// Why the call did not run; [`Stop::message`] is a sentence for a person.
    pub stop: Stop,
    /// The tool of the call that stopped.
    pub tool: String,
    /// The rig run, stopped at its tool calls (the stopped call unanswered).
    pub run: AgentRun,
}

/// Why the driver could not go on. Tools that need approval run only through the gate,
/// so no error lets one run: a call whose decision failed did not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DriveError {
    /// The gate failed (store, audit sink, clock); the call did not run.
    #[error("the approval gate failed")]
    Gate(#[from] GateError),
    /// The model could not be asked, or its answer not read.
    #[error("the model call failed")]
    Model(#[source] Box<ProviderError>),
    /// The model request could not be prepared from the run and the tools.
    #[error("the model request could not be prepared")]
    Prepare(#[from] PrepareError),
    /// The run refused a step, or failed (too many turns, an unknown tool).
    #[error("the agent run failed")]
    Run(#[source] Box<PromptError>),
    /// A tool's output could not be serialized for the model. The tool ran.
    #[error("the output of tool `{tool}` could not be serialized")]
    Output {
        /// The tool.
        tool: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// The saved pending run does not wait at the call it names.
    #[error("the saved run does not wait at call `{call_id}`")]
    NotWaiting {
        /// The call the pending run names.
        call_id: String,
    },
}

impl From<PromptError> for DriveError {
    fn from(error: PromptError) -> Self {
        DriveError::Run(Box::new(error))
    }
}

/// A run being driven: the rig run and the results of its current turn so far.
struct Driving {
    run_id: String,
    run: AgentRun,
    answered: Vec<UserContent>,
}

/// What the driver does with one tool call.
enum Answer {
    /// Answer the call with this result and go on.
    Result(UserContent),
    /// Stop the run at the call.
    Halt(Halt),
}

/// A tool call on its way to the gate.
enum Gating {
    /// Ask the gate.
    Call(approval_gate::ToolCall),
    /// Answered without the gate: a result rig resolved already, or arguments that are
    /// not JSON. Nothing runs.
    Answered(UserContent),
}

/// Why the driver stops at a call.
enum Halt {
    /// The call waits for a person.
    Wait(RequestId),
    /// The call did not run and the policy ends the run.
    Stop(Stop),
}

impl Driving {
    /// The outcome of a run halted at `pending`.
    fn halt(self, pending: &PendingToolCall, halt: Halt) -> DriveOutcome {
        let tool = pending.tool_call.function.name.to_string();
        match halt {
            Halt::Wait(request_id) => DriveOutcome::Pending(PendingRun {
                run_id: self.run_id,
                request_id,
                call_id: pending.tool_call.id.to_string(),
                tool,
                answered: self.answered,
                run: self.run,
            }),
            Halt::Stop(stop) => DriveOutcome::Stopped(StoppedRun {
                stop,
                tool,
                run: self.run,
            }),
        }
    }
}

impl<E> GatedDriver<E>
where
    E: ToolExecutor,
    E::Output: Serialize,
{
    /// A driver asking `model`, running tools through `gated`.
    pub fn new(model: impl Into<DynModel<Completion>>, gated: Gated<E>) -> Self {
        GatedDriver {
            gated,
            model: model.into(),
            spec: RunSpec::new(),
            tools: Vec::new(),
            context: CallContext::default(),
        }
    }

    /// Sets the system prompt sent with every model call.
    pub fn preamble(mut self, preamble: impl Into<String>) -> Self {
        self.spec.preamble = Some(preamble.into());
        self
    }

    /// Advertises a tool to the model. The gated executor runs it, by name.
    pub fn tool(mut self, definition: ToolDefinition) -> Self {
        self.tools.push(definition);
        self
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

    /// The gate.
    pub fn gate(&self) -> &Gate {
        self.gated.gate()
    }

    /// The gated executor.
    pub fn gated(&self) -> &Gated<E> {
        &self.gated
    }

    /// Drives `run` until it is done, waits for a person, or stops. Its calls carry
    /// `run_id`: the gate's budgets and approvals are per run id.
    pub async fn run(
        &self,
        run_id: impl Into<String>,
        run: AgentRun,
    ) -> Result<DriveOutcome, DriveError> {
        let driving = Driving {
            run_id: run_id.into(),
            run,
            answered: Vec::new(),
        };
        self.drive(driving).await
    }

    /// Picks `pending` up after a person's decision: runs the waiting call through
    /// [`Gated::resume`] (the tool runs only if approved, with the approved arguments,
    /// once), answers it with the tool's result or the refusal, and drives the run on.
    /// Still undecided: [`DriveOutcome::Pending`] again, and nothing ran.
    pub async fn resume(&self, pending: PendingRun) -> Result<DriveOutcome, DriveError> {
        let PendingRun {
            run_id,
            request_id,
            call_id,
            answered,
            mut run,
            ..
        } = pending;
        let AgentRunStep::CallTools { calls } = run.next_step()? else {
            return Err(DriveError::NotWaiting { call_id });
        };
        let Some(waiting) = calls
            .get(answered.len())
            .filter(|c| c.tool_call.id.to_string() == call_id)
        else {
            return Err(DriveError::NotWaiting { call_id });
        };
        let mut driving = Driving {
            run_id,
            run,
            answered,
        };
        let call = match self.gate_call(&driving.run_id, waiting) {
            Gating::Call(call) => call,
            Gating::Answered(result) => {
                driving.answered.push(result);
                return self.drive(driving).await;
            }
        };
        let outcome = self.gated.resume(request_id, call).await?;
        match self.answer(waiting, outcome)? {
            Answer::Result(result) => driving.answered.push(result),
            Answer::Halt(halt) => return Ok(driving.halt(waiting, halt)),
        }
        self.drive(driving).await
    }

    /// The loop: model turns and tool steps until done, pending or stopped.
    async fn drive(&self, mut driving: Driving) -> Result<DriveOutcome, DriveError> {
        loop {
            match driving.run.next_step()? {
                AgentRunStep::CallModel {
                    prompt,
                    history,
                    turn,
                } => {
                    self.ask_model(&mut driving.run, prompt, &history, turn)
                        .await?
                }
                AgentRunStep::CallTools { calls } => {
                    while let Some(pending) = calls.get(driving.answered.len()) {
                        match self.call_tool(&driving.run_id, pending).await? {
                            Answer::Result(result) => driving.answered.push(result),
                            Answer::Halt(halt) => return Ok(driving.halt(pending, halt)),
                        }
                    }
                    let results = std::mem::take(&mut driving.answered);
                    driving.run.tool_results(results)?;
                }
                AgentRunStep::Done(response) => return Ok(DriveOutcome::Done(response)),
            }
        }
    }

    /// One model call: prepare the request, ask, feed the answer to the run.
    async fn ask_model(
        &self,
        run: &mut AgentRun,
        prompt: rig_core::message::Message,
        history: &[rig_core::message::Message],
        turn: usize,
    ) -> Result<(), DriveError> {
        let prepared = prepare_request(
            &self.spec,
            &ProviderCapabilities::default(),
            history,
            self.tools.clone(),
            run.output_tool_name(),
            None,
        )?;
        run.advertise_tools(turn, prepared.tools.clone());
        let request = prepared.clone().apply(CompletionRequest::new(prompt));
        let response = self
            .model
            .call(request)
            .await
            .map_err(|e| DriveError::Model(Box::new(e)))?;
        let mut outcome = run.model_response(ModelTurn::from_response(&response, &prepared))?;
        // A call of a tool this driver did not advertise: the run's own policy decides
        // (fail by default); nothing runs.
        while let ModelTurnOutcome::NeedsResolution(_) = outcome {
            outcome = run.resolve_unhandled_invalid_tool_call()?;
        }
        Ok(())
    }

    /// The gate's view of `pending`, or the result that answers it without the gate
    /// (a result rig resolved already, or arguments that are not JSON).
    fn gate_call(&self, run_id: &str, pending: &PendingToolCall) -> Gating {
        let tool_call = &pending.tool_call;
        if let Some(result) = &pending.preresolved_result {
            return Gating::Answered(result.clone());
        }
        let refuse = |reason: String| {
            tool_result_message(
                tool_call.id.clone(),
                tool_call.function.name.clone(),
                reason,
            )
        };
        if let Some(raw) = &tool_call.function.invalid_arguments {
            return Gating::Answered(refuse(format!("invalid arguments, not run: `{raw}`")));
        }
        let args = tool_call.function.arguments_value();
        // The same checks as any host's: duplicate keys, depth.
        let args = match parse_args(&args.to_string()) {
            Ok(args) => args,
            Err(e) => return Gating::Answered(refuse(format!("invalid arguments, not run: {e}"))),
        };
        Gating::Call(translate::tool_call(
            &self.context,
            run_id,
            &tool_call.id.to_string(),
            tool_call.function.name.as_str(),
            args,
        ))
    }

    /// Decides one call with [`Gated::call`] and answers it.
    async fn call_tool(
        &self,
        run_id: &str,
        pending: &PendingToolCall,
    ) -> Result<Answer, DriveError> {
        let call = match self.gate_call(run_id, pending) {
            Gating::Call(call) => call,
            Gating::Answered(result) => return Ok(Answer::Result(result)),
        };
        let outcome = self.gated.call(call).await?;
        self.answer(pending, outcome)
    }

    /// What the driver does with the gate's outcome for `pending`.
    fn answer(
        &self,
        pending: &PendingToolCall,
        outcome: GateOutcome<E::Output, E::Error>,
    ) -> Result<Answer, DriveError> {
        let tool_call = &pending.tool_call;
        match outcome {
            GateOutcome::Executed(executed) => {
                let (text, is_error) =
                    translate::executed_text(&executed).map_err(|source| DriveError::Output {
                        tool: tool_call.function.name.to_string(),
                        source,
                    })?;
                let result = if is_error {
                    tool_result_message(tool_call.id.clone(), tool_call.function.name.clone(), text)
                } else {
                    UserContent::tool_result(
                        tool_call.id.clone(),
                        tool_call.function.name.clone(),
                        vec![ToolResultContent::text(text)],
                    )
                };
                Ok(Answer::Result(result))
            }
            GateOutcome::Pending(waiting) => Ok(Answer::Halt(Halt::Wait(waiting.request_id))),
            GateOutcome::Stopped(stop) if stop.ends_run() => Ok(Answer::Halt(Halt::Stop(stop))),
            GateOutcome::Stopped(stop) => Ok(Answer::Result(tool_result_message(
                tool_call.id.clone(),
                tool_call.function.name.clone(),
                stop.message(),
            ))),
        }
    }
}

impl DriveOutcome {
    /// The pending run, if a call waits for a person.
    pub fn pending(&self) -> Option<&PendingRun> {
        match self {
            DriveOutcome::Pending(pending) => Some(pending),
            _ => None,
        }
    }

    /// The final response, if the run is done.
    pub fn done(&self) -> Option<&PromptResponse> {
        match self {
            DriveOutcome::Done(response) => Some(response),
            _ => None,
        }
    }

    /// The outcome's name: `done`, `pending` or `stopped`.
    pub fn name(&self) -> &'static str {
        match self {
            DriveOutcome::Done(_) => "done",
            DriveOutcome::Pending(_) => "pending",
            DriveOutcome::Stopped(_) => "stopped",
        }
    }
}
