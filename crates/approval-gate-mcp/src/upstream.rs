//! [`Upstream`]: a server handler whose tools are another MCP server's.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rmcp::model::*;
use rmcp::service::{RequestContext, RunningService, ServiceError};
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ErrorData as McpError, Peer, RoleClient, RoleServer, ServerHandler, ServiceExt as _};
use thiserror::Error;

use crate::doubt::outcome_unknown;
use crate::translate;

/// A server handler that forwards `tools/list` and `tools/call` to another MCP server,
/// the upstream, through an rmcp client's [`Peer`]: its tools are the upstream's. Wrap
/// it in a [`GatedServer`](crate::GatedServer) to put the upstream's tools behind the
/// gate.
///
/// A call is forwarded with its name and arguments (and an MRTR retry's
/// `inputResponses` and `requestState`); the request's `_meta` is not, since the
/// upstream may speak another protocol version. The upstream's result comes back as it
/// is; an upstream's JSON-RPC error too. When the upstream is gone:
///
/// - a call it was sent and never answered (or answered with something that is not a
///   result) ends in an [`outcome_unknown`](crate::outcome_unknown) error: it may have
///   acted, and a `GatedServer` records it in doubt and never sends it again;
/// - a request made after it went ends in an internal error that says so, and nothing
///   was sent;
/// - an upstream started with [`spawn`](Self::spawn) is started again at the next
///   request, and one reached with [`connect`](Self::connect) is connected again, so
///   the session goes on (with a fresh upstream session: what the upstream kept for
///   the old one is gone).
///
/// Only tools are served: the upstream's resources, prompts and notifications are not
/// forwarded.
#[derive(Clone)]
pub struct Upstream {
    inner: Arc<Inner>,
}

/// Opens a new session with the upstream: starts it again, or connects again.
type Reconnect = Box<
    dyn Fn() -> Pin<Box<dyn Future<Output = Result<Session, UpstreamError>> + Send>> + Send + Sync,
>;

struct Inner {
    /// The session now in use.
    current: Mutex<Session>,
    /// Opens the next session when this one ends, for an upstream this handler reached
    /// on its own ([`Upstream::spawn`], [`Upstream::connect`]).
    reconnect: Option<Reconnect>,
    /// Held while the upstream is started again, so that one request does it.
    restarting: tokio::sync::Mutex<()>,
    /// Set by [`Upstream::close`]: not started again.
    closed: AtomicBool,
}

#[derive(Clone)]
struct Session {
    peer: Peer<RoleClient>,
    /// The client of a spawned upstream: dropping the last clone stops the child.
    client: Option<Arc<RunningService<RoleClient, ()>>>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("reconnects", &self.inner.reconnect.is_some())
            .finish_non_exhaustive()
    }
}

/// The upstream server could not be started or did not answer `initialize`.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum UpstreamError {
    /// The command could not be started.
    #[error("cannot start the upstream MCP server")]
    Spawn(#[source] std::io::Error),
    /// The URL is not one this crate can connect to (only `http://`).
    #[error("cannot connect to `{0}`: only http:// URLs are built in")]
    Url(String),
    /// The upstream did not complete MCP's initialization.
    #[error("the upstream MCP server did not initialize")]
    Initialize(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl Upstream {
    /// Forwards to the server at the other end of `peer`. When that session ends, every
    /// later request is an error: the caller owns the session.
    pub fn new(peer: Peer<RoleClient>) -> Self {
        Upstream::with_session(Session { peer, client: None }, None)
    }

    fn with_session(session: Session, reconnect: Option<Reconnect>) -> Self {
        Upstream {
            inner: Arc::new(Inner {
                current: Mutex::new(session),
                reconnect,
                restarting: tokio::sync::Mutex::new(()),
                closed: AtomicBool::new(false),
            }),
        }
    }

    /// Starts the command `command` makes as a child process speaking MCP on its stdin
    /// and stdout (its stderr is this process's), and initializes a client session with
    /// it. When the child exits, the next request starts it again with a fresh command
    /// from `command`.
    ///
    /// The child runs while the handler (or a clone of it) lives, or until
    /// [`close`](Self::close).
    pub async fn spawn(
        command: impl Fn() -> tokio::process::Command + Send + Sync + 'static,
    ) -> Result<Upstream, UpstreamError> {
        let session = start(command()).await?;
        let reconnect: Reconnect = Box::new(move || Box::pin(start(command())));
        Ok(Upstream::with_session(session, Some(reconnect)))
    }

    /// Connects to the MCP server at `url` (`http://host:port/mcp`) over streamable
    /// HTTP, and initializes a client session with it. When the session ends, the next
    /// request connects again.
    ///
    /// Only `http://` is built in: no TLS library comes with this crate. Reach an
    /// `https://` server through a local proxy that terminates TLS, or connect an rmcp
    /// client of your own with TLS and use [`new`](Self::new).
    pub async fn connect(url: impl Into<String>) -> Result<Upstream, UpstreamError> {
        let url: Arc<str> = url.into().into();
        if !url.starts_with("http://") {
            return Err(UpstreamError::Url(url.to_string()));
        }
        let session = open(url.clone()).await?;
        let reconnect: Reconnect = Box::new(move || Box::pin(open(url.clone())));
        Ok(Upstream::with_session(session, Some(reconnect)))
    }

    /// The upstream's peer in the session now in use.
    pub fn peer(&self) -> Peer<RoleClient> {
        self.session().peer
    }

    /// Ends the session with the upstream, which stops a spawned child, and does not
    /// start it again.
    pub async fn close(&self) {
        let _restarting = self.inner.restarting.lock().await;
        self.inner.closed.store(true, Ordering::Release);
        let client = self.session().client;
        if let Some(client) = client {
            client.cancellation_token().cancel();
        }
    }

    fn session(&self) -> Session {
        self.inner
            .current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The upstream's peer, started again first if it was spawned and is gone.
    async fn live_peer(&self) -> Result<Peer<RoleClient>, McpError> {
        let peer = self.peer();
        let Some(reconnect) = &self.inner.reconnect else {
            return Ok(peer);
        };
        if !peer.is_transport_closed() {
            return Ok(peer);
        }
        let _restarting = self.inner.restarting.lock().await;
        let session = self.session();
        if !session.peer.is_transport_closed() {
            // Another request started it meanwhile.
            return Ok(session.peer);
        }
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(gone("it was closed"));
        }
        tracing::warn!("the upstream MCP server's session ended; opening another");
        let fresh = reconnect().await.map_err(|e| {
            McpError::internal_error(
                format!(
                    "the upstream MCP server's session ended and another could not be opened: \
                     {e}"
                ),
                None,
            )
        })?;
        let peer = fresh.peer.clone();
        *self.inner.current.lock().unwrap_or_else(|e| e.into_inner()) = fresh;
        Ok(peer)
    }
}

/// Starts the upstream with `command` and initializes a session with it.
async fn start(command: tokio::process::Command) -> Result<Session, UpstreamError> {
    let transport = TokioChildProcess::new(command).map_err(UpstreamError::Spawn)?;
    session(().serve(transport).await)
}

/// Connects to the upstream at `url` over streamable HTTP and initializes a session.
async fn open(url: Arc<str>) -> Result<Session, UpstreamError> {
    session(().serve(StreamableHttpClientTransport::from_uri(url)).await)
}

/// The session `served` opened, or why it did not.
fn session<E: std::error::Error + Send + Sync + 'static>(
    served: Result<RunningService<RoleClient, ()>, E>,
) -> Result<Session, UpstreamError> {
    let client = served.map_err(|e| UpstreamError::Initialize(Box::new(e)))?;
    Ok(Session {
        peer: client.peer().clone(),
        client: Some(Arc::new(client)),
    })
}

fn gone(why: &str) -> McpError {
    McpError::internal_error(
        format!("the upstream MCP server is gone ({why}); nothing was sent to it"),
        None,
    )
}

/// The upstream's failure as the gateway's client sees it, for a request that was sent:
/// the upstream's own JSON-RPC error as it gave it; a request that could not be written,
/// an error that says nothing was sent; and anything else (the session ended before the
/// answer came, or the answer was not one it could read), `unanswered`.
fn upstream_error(error: ServiceError, unanswered: impl FnOnce(String) -> McpError) -> McpError {
    match error {
        ServiceError::McpError(e) => e,
        ServiceError::TransportSend(_) => gone(&error.to_string()),
        ServiceError::TransportClosed => unanswered(format!(
            "the upstream MCP server went away before it answered ({error})"
        )),
        other => unanswered(format!(
            "the upstream MCP server did not answer as MCP says: {other}"
        )),
    }
}

impl ServerHandler for Upstream {
    fn get_info(&self) -> ServerConfig {
        let mut info = ServerConfig::new(ServerCapabilities::builder().enable_tools().build());
        info.server_info = Implementation::new("approval-gate-mcp", env!("CARGO_PKG_VERSION"));
        info.instructions = self
            .peer()
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
        let peer = self.live_peer().await?;
        if peer.is_transport_closed() {
            return Err(gone("its session ended"));
        }
        let mut tools = peer
            .list_tools(request)
            .await
            .map_err(|e| upstream_error(e, |m| McpError::internal_error(m, None)))?;
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
        let peer = self.live_peer().await?;
        if peer.is_transport_closed() {
            return Err(gone("its session ended"));
        }
        // From here the call may reach the upstream: losing it now leaves the outcome
        // unknown.
        let mut response = peer
            .call_tool_once(forwarded)
            .await
            .map_err(|e| upstream_error(e, outcome_unknown))?;
        if let CallToolResponse::Complete(result) = &mut response {
            translate::mark_complete(&mut result.result_type);
        }
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn only_http_urls_are_connected_to() {
        for url in [
            "https://mcp.example.com/mcp",
            "ftp://h/mcp",
            "mcp.example.com",
        ] {
            let refused = Upstream::connect(url).await.unwrap_err();
            assert!(
                matches!(refused, UpstreamError::Url(ref u) if u == url),
                "{refused}"
            );
            assert!(refused.to_string().contains("only http://"), "{refused}");
        }
    }
}
