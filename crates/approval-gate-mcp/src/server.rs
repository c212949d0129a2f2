//! [`GatedServer`]: an rmcp server handler whose tool calls go through the gate.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use approval_gate::{
    ArgsHash, Effect, Execution, Gate, GateError, GateOutcome, Gated, RequestQuery, RequestState,
    ToolCall, ToolExecutor,
};
use async_trait::async_trait;
use rmcp::model::*;
use rmcp::service::{MaybeSendFuture, NotificationContext, RequestContext, SubscriptionContext};
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use serde_json::Value;

use crate::in_client::{self, InClientApproval};
use crate::translate::{self, Forwarded};

/// An MCP server handler behind an approval gate: every `tools/call` is decided by the
/// gate's policy before the inner handler sees it; every other request (`tools/list`,
/// `initialize`, resources, prompts, …) goes to the inner handler as it is.
///
/// Each call becomes a [`ToolCall`]: the run id of this server (one per session: made
/// fresh by [`new`](Self::new), or set with [`with_run_id`](Self::with_run_id)), a
/// call id from the JSON-RPC request id, the tool's name, its arguments (`{}` when the
/// client sent none), and the requester, tenant and roles this server was configured
/// with. The gate decides it with
/// [`Gated::call_or_resume`](approval_gate::Gated::call_or_resume):
///
/// - allowed: the inner handler runs it and its result comes back unchanged, its
///   failures too (an `isError` result is recorded on the trail as a failed execution);
///   when the handler lost the call on its way ([`outcome_unknown`](crate::outcome_unknown)),
///   it is recorded in doubt (an approved request stays `executing` for a person to
///   settle), never sent again on its own, and the client gets an `isError` result
///   saying it may have run, with `structuredContent` `{"status": "in_doubt"}`;
/// - approval required: nothing runs; the client gets an `isError` result saying that
///   the call waits for a person and that calling again with the same arguments runs it
///   once approved, with `structuredContent`
///   `{"status": "approval_pending", "request_id", "expires_at", "console_url"}`
///   (`console_url` only with [`with_console_url`](Self::with_console_url));
/// - once a person has approved, the identical call (same tool and arguments) runs,
///   once, with the arguments as approved (an approver's edits included); the next
///   identical call files a new request;
/// - denied by the policy, or stopped by a run control: an `isError` result whose text
///   says why, with `structuredContent` `{"status": "stopped", "reason"}`;
/// - denied or cancelled by a person: the next identical call is told so, once, with
///   their feedback (a stop, `approval_denied` or `approval_cancelled`, on the trail
///   too); the one after that files a new request;
/// - the gate failed (store, audit sink): a JSON-RPC internal error, and nothing ran.
///
/// Shaped like tower's wrappers: `new`, `get_ref`, `get_mut`, `into_inner`.
///
/// The requester and tenant are what the gateway was told at start, not something the
/// MCP client says: whoever can talk to this server acts as them.
#[derive(Debug, Clone)]
pub struct GatedServer<S> {
    inner: S,
    gate: Gate,
    run_id: String,
    requester: Option<String>,
    tenant: Option<String>,
    roles: Vec<String>,
    console_url: Option<String>,
    /// The requests denied or cancelled by a person whose end a call was told already.
    told: Arc<Mutex<HashSet<approval_gate::RequestId>>>,
    /// The name of the server the tools are from, for the policy (`tool_info.server`).
    server_name: Option<String>,
    /// The annotations of each tool, as the last `tools/list` gave them.
    annotations: Arc<Mutex<HashMap<String, Value>>>,
    /// How long a call may take, gate and tool together, before the client is answered.
    call_timeout: Duration,
    /// Who may approve in the client, for which tiers.
    in_client: Option<InClientApproval>,
}

/// How long a call may take by default: under the 60 s after which the TypeScript MCP
/// SDK gives up on a request, so the client hears why.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(50);

impl<S: ServerHandler> GatedServer<S> {
    /// Wraps `inner` with `gate`, under a fresh run id (`mcp-` and a UUID), with no
    /// requester, tenant or roles.
    pub fn new(inner: S, gate: Gate) -> Self {
        GatedServer {
            inner,
            gate,
            run_id: format!("mcp-{}", uuid::Uuid::new_v4()),
            requester: None,
            tenant: None,
            roles: Vec::new(),
            console_url: None,
            told: Arc::default(),
            server_name: None,
            annotations: Arc::default(),
            call_timeout: DEFAULT_CALL_TIMEOUT,
            in_client: None,
        }
    }

    /// Sets the run id every call of this server carries, instead of a fresh one: an
    /// approval is found again only by a call of the same run.
    pub fn with_run_id(mut self, run_id: impl Into<String>) -> Self {
        self.run_id = run_id.into();
        self
    }

    /// Sets who asks for every call: the person or service the agent acts for. Nobody
    /// may approve their own requests.
    pub fn with_requester(mut self, requester: impl Into<String>) -> Self {
        self.requester = Some(requester.into());
        self
    }

    /// Sets the tenant of every call.
    pub fn with_tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }

    /// Adds a role of the requester, which policy conditions can test.
    pub fn with_role(mut self, role: impl Into<String>) -> Self {
        self.roles.push(role.into());
        self
    }

    /// Sets the console's base URL (`https://gate.example.com`): a pending call's
    /// result then links the request's page, `{base}/requests/{id}`.
    pub fn with_console_url(mut self, base: impl Into<String>) -> Self {
        self.console_url = Some(base.into());
        self
    }

    /// Sets how long a call may take, the gate's work and the tool's together, before
    /// the client is answered ([`DEFAULT_CALL_TIMEOUT`] by default). A call that runs
    /// out is left as it stands: its `allow` on the trail with no result, or an approved
    /// request `executing`, in doubt, never sent again on its own (a person settles it at
    /// the desk); the client gets an `isError` result saying so, with
    /// `structuredContent` `{"status": "in_doubt"}`. Keep it under the client's own
    /// request timeout.
    pub fn with_call_timeout(mut self, limit: Duration) -> Self {
        self.call_timeout = limit;
        self
    }

    /// Lets the person at the client approve or deny the calls of some tiers in the
    /// client (see [`InClientApproval`]). The question and the person's answer count
    /// against the [call timeout](Self::with_call_timeout), as does the tool run that
    /// follows an approval: a call is never held open past it.
    pub fn with_in_client_approval(mut self, approval: InClientApproval) -> Self {
        self.in_client = Some(approval);
        self
    }

    /// Sets the name of the server the tools are from (the upstream's, for a proxy): the
    /// policy sees it as `tool_info.server`.
    pub fn with_server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// The run id every call of this server carries.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The gate.
    pub fn gate(&self) -> &Gate {
        &self.gate
    }

    /// The wrapped handler.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped handler, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the handler.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// The gate's view of a `tools/call`, as call `call_id`.
    fn tool_call(&self, request: &CallToolRequestParams, call_id: String) -> ToolCall {
        let args = Value::Object(request.arguments.clone().unwrap_or_default());
        let mut call = ToolCall::new(self.run_id.as_str(), call_id, request.name.as_ref(), args);
        if let Some(requester) = &self.requester {
            call = call.with_requester(requester.as_str());
        }
        if let Some(tenant) = &self.tenant {
            call = call.with_tenant(tenant.as_str());
        }
        for role in &self.roles {
            call = call.with_role(role.as_str());
        }
        match self.tool_info(request.name.as_ref()) {
            Some(info) => call.with_tool_info(info),
            None => call,
        }
    }

    /// What the policy sees of the tool `name` as `tool_info`: the server's name and the
    /// tool's annotations (`readOnlyHint`, `destructiveHint`, …), from the inner
    /// handler's [`get_tool`](ServerHandler::get_tool) or else the last `tools/list`.
    /// Nothing is known of a tool no list named: its calls get the policy's other rules.
    fn tool_info(&self, name: &str) -> Option<Value> {
        let annotations = match self.inner.get_tool(name) {
            Some(tool) => tool.annotations.and_then(|a| serde_json::to_value(a).ok()),
            None => self
                .annotations
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(name)
                .cloned(),
        };
        let mut info = serde_json::Map::new();
        if let Some(server) = &self.server_name {
            info.insert("server".into(), Value::String(server.clone()));
        }
        if let Some(annotations) = annotations {
            info.insert("annotations".into(), annotations);
        }
        (!info.is_empty()).then_some(Value::Object(info))
    }

    async fn gated_call(
        &self,
        mut request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let deadline = tokio::time::Instant::now() + self.call_timeout;
        // The client's answer to the gateway's own question (2026-07-28: the call again,
        // with it); never forwarded.
        let answered = self.take_answer(&mut request);
        let mut outcome = self.decide_by(&request, &context, deadline).await;
        if let Some(Ok(GateOutcome::Pending(pending))) = &outcome
            && let Some(in_client) = &self.in_client
            && in_client.covers(pending.tier.as_ref().map(|t| t.as_str()))
        {
            let id = pending.request_id;
            let answer = match answered {
                Some(answer) => answer,
                None => match self.ask(id, &context, deadline).await {
                    Ok(Asked::Answer(answer)) => answer,
                    Ok(Asked::InputRequired(result)) => {
                        return Ok(CallToolResponse::InputRequired(result));
                    }
                    Err(e) => return Err(translate::gate_error(&e)),
                },
            };
            let desk = self.gate.desk();
            let approver = in_client.approver();
            let decided = match &answer {
                in_client::Answer::Approve => Some(desk.approve(id, approver).await),
                in_client::Answer::Deny(feedback) => {
                    Some(desk.deny(id, approver, feedback.as_deref()).await)
                }
                in_client::Answer::Undecided => None,
            };
            match decided {
                // Decided: the gate runs the approved call, or tells the denial.
                Some(Ok(_)) => outcome = self.decide_by(&request, &context, deadline).await,
                Some(Err(refused)) => {
                    tracing::warn!("the in-client decision was refused: {refused}");
                    let mut result = translate::pending(pending, self.console_url.as_deref());
                    translate::add_refusal(&mut result, &refused);
                    return Ok(result.into());
                }
                None => {}
            }
        }
        // Dropping the gate's future leaves what it did as it stands (see
        // `Gated::call`'s cancellation): nothing is sent twice.
        let Some(outcome) = outcome else {
            tracing::warn!(
                "a call took longer than {:?}; it is left in doubt",
                self.call_timeout
            );
            return Ok(translate::timed_out(self.call_timeout).into());
        };
        match outcome {
            Ok(GateOutcome::Executed(done)) => {
                if let Some(e) = &done.unrecorded {
                    tracing::warn!(
                        request_id = ?done.request_id,
                        "the tool ran but its result could not be recorded: {e}"
                    );
                }
                if done.in_doubt {
                    tracing::warn!(
                        request_id = ?done.request_id,
                        "a call was lost on its way: it is left in doubt"
                    );
                    return Ok(translate::in_doubt(done.request_id).into());
                }
                translate::executed(done.result)
            }
            Ok(GateOutcome::Pending(pending)) => {
                Ok(translate::pending(&pending, self.console_url.as_deref()).into())
            }
            Ok(GateOutcome::Stopped(stop)) => Ok(translate::stopped(&stop).into()),
            Err(e) => {
                tracing::warn!("the approval gate failed; the call did not run: {e}");
                Err(translate::gate_error(&e))
            }
        }
    }

    /// What the gate says of `request`, by `deadline`; `None` when the deadline passed
    /// first (what the gate did so far stands).
    async fn decide_by(
        &self,
        request: &CallToolRequestParams,
        context: &RequestContext<RoleServer>,
        deadline: tokio::time::Instant,
    ) -> Option<Result<GateOutcome<CallToolResponse, Forwarded>, GateError>> {
        tokio::time::timeout_at(deadline, self.decide(request, context))
            .await
            .ok()
    }

    /// What the gate says of `request`: it runs, waits, or is told why not (a person's
    /// denial of the identical call included, once).
    async fn decide(
        &self,
        request: &CallToolRequestParams,
        context: &RequestContext<RoleServer>,
    ) -> Result<GateOutcome<CallToolResponse, Forwarded>, GateError> {
        let call = self.tool_call(request, format!("mcp-{}", context.id));
        let filed = self
            .untold_end(&call)
            .await?
            .map(|(id, call_id)| (id, self.tool_call(request, call_id)));
        let gated = Gated::new(
            self.gate.clone(),
            Forward {
                inner: &self.inner,
                request: request.clone(),
                context: context.clone(),
            },
        );
        match filed {
            // The gate records the stop and says why: the person's words.
            Some((id, filed)) => gated.resume(id, filed).await,
            None => gated.call_or_resume(call).await,
        }
    }

    /// Takes the answer to the gateway's own question out of `request`'s
    /// `inputResponses`, when in-client approval is on.
    fn take_answer(&self, request: &mut CallToolRequestParams) -> Option<in_client::Answer> {
        self.in_client.as_ref()?;
        let responses = request.input_responses.as_mut()?;
        let answer = responses.remove(in_client::INPUT_KEY)?;
        if responses.is_empty() {
            request.input_responses = None;
        }
        Some(in_client::Answer::from_result(&answer))
    }

    /// Asks the person at the client about request `id`, if the client can be asked: an
    /// `elicitation/create` request answered by `deadline`, or the `input_required`
    /// result to give back (2026-07-28).
    async fn ask(
        &self,
        id: approval_gate::RequestId,
        context: &RequestContext<RoleServer>,
        deadline: tokio::time::Instant,
    ) -> Result<Asked, GateError> {
        let Some(asking) = in_client::asking(context) else {
            return Ok(Asked::Answer(in_client::Answer::Undecided));
        };
        let request = self.gate.store().get(id).await?;
        let question = in_client::question(&request);
        match asking {
            in_client::Asking::InputRequired => {
                Ok(Asked::InputRequired(in_client::input_required(question)))
            }
            in_client::Asking::Request => {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                let asked = tokio::time::timeout(left, context.peer.create_elicitation(question));
                Ok(Asked::Answer(match asked.await {
                    Ok(Ok(result)) => serde_json::to_value(result)
                        .map(|r| in_client::Answer::from_result(&r))
                        .unwrap_or(in_client::Answer::Undecided),
                    Ok(Err(e)) => {
                        tracing::warn!("the client could not ask its user: {e}");
                        in_client::Answer::Undecided
                    }
                    Err(_) => in_client::Answer::Undecided,
                }))
            }
        }
    }

    /// The latest request for a call identical to `call` (same run, tool, arguments,
    /// tenant and requester) that a person denied or cancelled and that no call was told
    /// of yet, with the call id it was filed as; every such request counts as told from
    /// now on. Looked for only when the policy asks approval for `call`.
    async fn untold_end(
        &self,
        call: &ToolCall,
    ) -> Result<Option<(approval_gate::RequestId, String)>, GateError> {
        if self.gate.policy().evaluate(call).effect() != Effect::ApprovalRequired {
            return Ok(None);
        }
        let Ok(hash) = ArgsHash::compute_with_limits(call.args(), self.gate.args_limits()) else {
            return Ok(None);
        };
        let query = RequestQuery {
            run_id: Some(call.run_id().to_owned()),
            tool: Some(call.tool().to_owned()),
            tenant: call.tenant().map(str::to_owned),
            ..RequestQuery::default()
        };
        let now = self.gate.now();
        let requests = self.gate.store().list(&query, now).await?;
        let mut told = self.told.lock().unwrap_or_else(|e| e.into_inner());
        let mut latest = None;
        // Oldest first: the last one found is the latest.
        for request in requests {
            let ended = matches!(
                request.state_at(now),
                RequestState::Denied | RequestState::Cancelled
            );
            if ended
                && request.args_hash() == hash
                && request.call().requester() == call.requester()
                && request.call().tenant() == call.tenant()
                && told.insert(request.id())
            {
                latest = Some((request.id(), request.call().call_id().to_owned()));
            }
        }
        Ok(latest)
    }
}

/// What asking the person at the client gave.
enum Asked {
    /// Their answer (or none).
    Answer(in_client::Answer),
    /// The result that asks them, for the client to call again with the answer.
    InputRequired(InputRequiredResult),
}

/// The gate's executor for one `tools/call`: hands the call, with the arguments the
/// gate lets run, to the inner handler with the request's context.
struct Forward<'a, S> {
    inner: &'a S,
    request: CallToolRequestParams,
    context: RequestContext<RoleServer>,
}

#[async_trait]
impl<S: ServerHandler> ToolExecutor for Forward<'_, S> {
    type Output = CallToolResponse;
    type Error = Forwarded;

    async fn execute(&self, execution: Execution) -> Result<CallToolResponse, Forwarded> {
        let mut request = self.request.clone();
        request.arguments = match execution.args() {
            // The client sent none, and none were edited in: send none.
            Value::Object(args) if args.is_empty() && self.request.arguments.is_none() => None,
            Value::Object(args) => Some(args.clone()),
            _ => return Err(Forwarded::NotAnObject),
        };
        match self.inner.call_tool(request, self.context.clone()).await {
            Ok(CallToolResponse::Complete(result)) if result.is_error == Some(true) => {
                Err(Forwarded::Tool(result))
            }
            Ok(response) => Ok(response),
            Err(e) => Err(Forwarded::Protocol(e)),
        }
    }

    fn in_doubt(&self, error: &Forwarded) -> bool {
        matches!(error, Forwarded::Protocol(e) if crate::is_outcome_unknown(e))
    }
}

/// Every request but `tools/call` goes to the inner handler as it is.
#[allow(deprecated)]
impl<S: ServerHandler> ServerHandler for GatedServer<S> {
    fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<CallToolResponse, McpError>> + MaybeSendFuture + '_ {
        self.gated_call(request, context)
    }

    fn ping(
        &self,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<(), McpError>> + MaybeSendFuture + '_ {
        self.inner.ping(context)
    }

    fn initialize(
        &self,
        request: InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<InitializeResult, McpError>> + MaybeSendFuture + '_ {
        self.inner.initialize(request, context)
    }

    fn negotiate_initialize(
        &self,
        request: &InitializeRequestParams,
    ) -> Result<InitializeResult, McpError> {
        self.inner.negotiate_initialize(request)
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        self.inner.supported_protocol_versions()
    }

    fn discover(
        &self,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<DiscoverResult, McpError>> + MaybeSendFuture + '_ {
        self.inner.discover(context)
    }

    fn complete(
        &self,
        request: CompleteRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<CompleteResult, McpError>> + MaybeSendFuture + '_ {
        self.inner.complete(request, context)
    }

    fn set_level(
        &self,
        request: SetLevelRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<(), McpError>> + MaybeSendFuture + '_ {
        self.inner.set_level(request, context)
    }

    fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<GetPromptResponse, McpError>> + MaybeSendFuture + '_ {
        self.inner.get_prompt(request, context)
    }

    fn list_prompts(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<ListPromptsResult, McpError>> + MaybeSendFuture + '_ {
        self.inner.list_prompts(request, context)
    }

    fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<ListResourcesResult, McpError>> + MaybeSendFuture + '_ {
        self.inner.list_resources(request, context)
    }

    fn list_resource_templates(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<ListResourceTemplatesResult, McpError>> + MaybeSendFuture + '_
    {
        self.inner.list_resource_templates(request, context)
    }

    fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<ReadResourceResponse, McpError>> + MaybeSendFuture + '_ {
        self.inner.read_resource(request, context)
    }

    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        self.inner.accepted_subscription_filter(requested)
    }

    fn listen(
        &self,
        context: SubscriptionContext,
    ) -> impl Future<Output = Result<(), McpError>> + MaybeSendFuture + '_ {
        self.inner.listen(context)
    }

    fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<(), McpError>> + MaybeSendFuture + '_ {
        self.inner.subscribe(request, context)
    }

    fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<(), McpError>> + MaybeSendFuture + '_ {
        self.inner.unsubscribe(request, context)
    }

    /// Passes through, and keeps each listed tool's annotations for the policy.
    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let listed = self.inner.list_tools(request, context).await?;
        let mut known = self.annotations.lock().unwrap_or_else(|e| e.into_inner());
        for tool in &listed.tools {
            match tool.annotations.as_ref().map(serde_json::to_value) {
                Some(Ok(annotations)) => {
                    known.insert(tool.name.to_string(), annotations);
                }
                _ => {
                    known.remove(tool.name.as_ref());
                }
            }
        }
        Ok(listed)
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.inner.get_tool(name)
    }

    fn on_custom_request(
        &self,
        request: CustomRequest,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<CustomResult, McpError>> + MaybeSendFuture + '_ {
        self.inner.on_custom_request(request, context)
    }

    fn on_cancelled(
        &self,
        notification: CancelledNotificationParam,
        context: NotificationContext<RoleServer>,
    ) -> impl Future<Output = ()> + MaybeSendFuture + '_ {
        self.inner.on_cancelled(notification, context)
    }

    fn on_progress(
        &self,
        notification: ProgressNotificationParam,
        context: NotificationContext<RoleServer>,
    ) -> impl Future<Output = ()> + MaybeSendFuture + '_ {
        self.inner.on_progress(notification, context)
    }

    fn on_initialized(
        &self,
        context: NotificationContext<RoleServer>,
    ) -> impl Future<Output = ()> + MaybeSendFuture + '_ {
        self.inner.on_initialized(context)
    }

    fn on_roots_list_changed(
        &self,
        context: NotificationContext<RoleServer>,
    ) -> impl Future<Output = ()> + MaybeSendFuture + '_ {
        self.inner.on_roots_list_changed(context)
    }

    fn on_custom_notification(
        &self,
        notification: CustomNotification,
        context: NotificationContext<RoleServer>,
    ) -> impl Future<Output = ()> + MaybeSendFuture + '_ {
        self.inner.on_custom_notification(notification, context)
    }

    fn get_info(&self) -> ServerConfig {
        self.inner.get_info()
    }

    fn get_task(
        &self,
        request: GetTaskParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<GetTaskResult, McpError>> + MaybeSendFuture + '_ {
        self.inner.get_task(request, context)
    }

    fn update_task(
        &self,
        request: UpdateTaskParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<(), McpError>> + MaybeSendFuture + '_ {
        self.inner.update_task(request, context)
    }

    fn cancel_task(
        &self,
        request: CancelTaskParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<(), McpError>> + MaybeSendFuture + '_ {
        self.inner.cancel_task(request, context)
    }

    fn list_skills(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<ListSkillsResult, McpError>> + MaybeSendFuture + '_ {
        self.inner.list_skills(request, context)
    }

    fn get_skill(
        &self,
        request: GetSkillRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<GetSkillResult, McpError>> + MaybeSendFuture + '_ {
        self.inner.get_skill(request, context)
    }

    fn read_resource_directory(
        &self,
        request: ReadResourceDirectoryRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<ReadResourceDirectoryResult, McpError>> + MaybeSendFuture + '_
    {
        self.inner.read_resource_directory(request, context)
    }
}
