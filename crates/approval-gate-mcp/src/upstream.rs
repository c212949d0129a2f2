//! [`Upstream`]: a server handler whose tools are another MCP server's.

use rmcp::model::*;
use rmcp::service::{RequestContext, RunningService, ServiceError};
use rmcp::transport::TokioChildProcess;
use rmcp::{ErrorData as McpError, Peer, RoleClient, RoleServer, ServerHandler, ServiceExt as _};
use thiserror::Error;

use crate::translate;

/// A server handler that forwards `tools/list` and `tools/call` to another MCP server,
/// the upstream, through an rmcp client's [`Peer`]: its tools are the upstream's. Wrap
/// it in a [`GatedServer`](crate::GatedServer) to put the upstream's tools behind the
/// gate.
///
/// A call is forwarded with its name and arguments (and an MRTR retry's
/// `inputResponses` and `requestState`); the request's `_meta` is not, since the
/// upstream may speak another protocol version. The upstream's result comes back as it
/// is; an upstream's JSON-RPC error too; and when the upstream is gone, the call ends in
/// an internal error that says so.
///
/// Only tools are served: the upstream's resources, prompts and notifications are not
/// forwarded.
#[derive(Debug, Clone)]
pub struct Upstream {
    peer: Peer<RoleClient>,
}

/// The upstream server could not be started or did not answer `initialize`.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum UpstreamError {
    /// The command could not be started.
    #[error("cannot start the upstream MCP server")]
    Spawn(#[source] std::io::Error),
    /// The upstream did not complete MCP's initialization.
    #[error("the upstream MCP server did not initialize")]
    Initialize(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl Upstream {
    /// Forwards to the server at the other end of `peer`.
    pub fn new(peer: Peer<RoleClient>) -> Self {
        Upstream { peer }
    }

    /// Starts `command` as a child process speaking MCP on its stdin and stdout (its
    /// stderr is this process's), initializes a client session with it, and returns the
    /// handler and the running client. Keep the client: dropping it, or
    /// [`cancel`](RunningService::cancel)ling it, closes the session and stops the
    /// child; [`waiting`](RunningService::waiting) ends when the child does.
    pub async fn spawn(
        command: tokio::process::Command,
    ) -> Result<(Upstream, RunningService<RoleClient, ()>), UpstreamError> {
        let transport = TokioChildProcess::new(command).map_err(UpstreamError::Spawn)?;
        let client = ().serve(transport).await.map_err(|e| UpstreamError::Initialize(Box::new(e)))?;
        Ok((Upstream::new(client.peer().clone()), client))
    }

    /// The client's peer: the upstream.
    pub fn peer(&self) -> &Peer<RoleClient> {
        &self.peer
    }
}

/// The upstream's failure as the gateway's client sees it: the upstream's own JSON-RPC
/// error as it gave it, anything else an internal error that names the upstream.
fn upstream_error(error: ServiceError) -> McpError {
    match error {
        ServiceError::McpError(e) => e,
        ServiceError::TransportClosed | ServiceError::TransportSend(_) => McpError::internal_error(
            format!("the upstream MCP server is gone ({error}); restart the gateway"),
            None,
        ),
        other => McpError::internal_error(format!("the upstream MCP server failed: {other}"), None),
    }
}

impl ServerHandler for Upstream {
    fn get_info(&self) -> ServerConfig {
        let mut info = ServerConfig::new(ServerCapabilities::builder().enable_tools().build());
        info.server_info = Implementation::new("approval-gate-mcp", env!("CARGO_PKG_VERSION"));
        info.instructions = self
            .peer
            .peer_info()
            .and_then(|upstream| upstream.instructions.clone());
        info
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let request = request.map(|mut page| {
            page.meta = None;
            page
        });
        let mut tools = self
            .peer
            .list_tools(request)
            .await
            .map_err(upstream_error)?;
        translate::mark_complete(&mut tools.result_type);
        Ok(tools)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let mut forwarded = CallToolRequestParams::new(request.name);
        forwarded.arguments = request.arguments;
        forwarded.input_responses = request.input_responses;
        forwarded.request_state = request.request_state;
        let mut response = self
            .peer
            .call_tool_once(forwarded)
            .await
            .map_err(upstream_error)?;
        if let CallToolResponse::Complete(result) = &mut response {
            translate::mark_complete(&mut result.result_type);
        }
        Ok(response)
    }
}
