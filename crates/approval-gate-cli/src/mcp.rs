//! `mcp`: an MCP gateway on this process's stdin and stdout, in front of an upstream MCP
//! server started as a child process or reached over streamable HTTP: the upstream's
//! tools, every call through the deployment's gate (`approval_gate_mcp::GatedServer`).
//!
//! Standard output carries MCP's JSON-RPC and nothing else; errors go to standard error,
//! as does the upstream's own standard error.

use std::ffi::OsString;

use approval_gate::Approver;
use approval_gate_mcp::rmcp::ServiceExt as _;
use approval_gate_mcp::rmcp::transport::stdio;
use approval_gate_mcp::{GatedServer, InClientApproval, Upstream};

use crate::deploy::Deployment;
use crate::error::CliError;

/// `approval-gate mcp`'s own flags.
#[derive(Debug, Clone, clap::Args)]
pub struct McpArgs {
    /// Who asks for every call: the person or service the agent acts for (they cannot
    /// approve their own requests).
    #[arg(long = "as-requester", value_name = "ID")]
    pub requester: Option<String>,
    /// The tenant of every call.
    #[arg(long, value_name = "T")]
    pub tenant: Option<String>,
    /// A role of the requester, which policy conditions can test (repeatable).
    #[arg(long = "role", value_name = "R")]
    pub roles: Vec<String>,
    /// The run id of every call (default: `mcp-` and a fresh UUID, one per gateway).
    #[arg(long, value_name = "RUN")]
    pub run_id: Option<String>,
    /// The console's base URL: a pending call's result links the request's page.
    #[arg(long, value_name = "URL")]
    pub console_url: Option<String>,
    /// How long a call may take, gate and tool together, before the client is told it
    /// is in doubt (it is then never sent again on its own). Keep it under the client's
    /// own request timeout (60 s for the TypeScript SDK).
    #[arg(long = "call-timeout", value_name = "SECONDS", default_value_t = 50)]
    pub call_timeout: u64,
    /// Lets the person at the MCP client approve or deny, in the client, the calls of
    /// this tier (repeatable), when the client can ask its user (elicitation). Needs
    /// `--in-client-approver`.
    #[arg(
        long = "approve-in-client",
        value_name = "TIER",
        requires = "in_client_approver"
    )]
    pub in_client_tiers: Vec<String>,
    /// Who decides in the client: the desk's rules apply to them (not the requester,
    /// the tier's roles, the tenant given by `--tenant`).
    #[arg(
        long = "in-client-approver",
        value_name = "ID",
        requires = "in_client_tiers"
    )]
    pub in_client_approver: Option<String>,
    /// A role of the in-client approver (repeatable).
    #[arg(
        long = "in-client-role",
        value_name = "ROLE",
        requires = "in_client_approver"
    )]
    pub in_client_roles: Vec<String>,
    /// The upstream MCP server reached over streamable HTTP (`http://host:port/mcp`),
    /// instead of a command after `--`. Only `http://`: put a TLS-terminating proxy in
    /// front of an `https://` server.
    #[arg(long = "upstream-url", value_name = "URL", conflicts_with = "upstream")]
    pub upstream_url: Option<String>,
    /// The upstream MCP server: its command and arguments, after `--`.
    #[arg(
        last = true,
        required_unless_present = "upstream_url",
        value_name = "UPSTREAM-COMMAND"
    )]
    pub upstream: Vec<OsString>,
}

/// Runs the gateway until the client closes standard input. An upstream that exits (or
/// whose HTTP session ends) is started (or connected) again at the next request; one
/// that cannot be reached at first is an error.
pub async fn mcp(deploy: &Deployment, args: &McpArgs) -> Result<(), CliError> {
    let gate = deploy.gate().await?;
    let upstream = match &args.upstream_url {
        Some(url) => Upstream::connect(url.as_str())
            .await
            .map_err(|e| CliError::Failed {
                message: format!("cannot reach the upstream MCP server at `{url}`"),
                source: Some(Box::new(e)),
            })?,
        None => spawn(&args.upstream).await?,
    };

    // The upstream's own name, for the policy's `tool_info.server`.
    let name = upstream
        .peer()
        .peer_info()
        .and_then(|info| info.server_info.as_ref().map(|i| i.name.clone()));
    let upstream_handle = upstream.clone();
    let mut server = GatedServer::new(upstream, gate);
    if let Some(name) = name {
        server = server.with_server_name(name);
    }
    if let Some(run_id) = &args.run_id {
        server = server.with_run_id(run_id);
    }
    if let Some(requester) = &args.requester {
        server = server.with_requester(requester);
    }
    if let Some(tenant) = &args.tenant {
        server = server.with_tenant(tenant);
    }
    for role in &args.roles {
        server = server.with_role(role);
    }
    if let Some(url) = &args.console_url {
        server = server.with_console_url(url);
    }
    if let Some(id) = &args.in_client_approver {
        let mut approver = Approver::new(id.as_str());
        for role in &args.in_client_roles {
            approver = approver.with_role(role.as_str());
        }
        if let Some(tenant) = &args.tenant {
            approver = approver.with_tenant(tenant.as_str());
        }
        let approval = args
            .in_client_tiers
            .iter()
            .fold(InClientApproval::new(approver), |a, tier| a.tier(tier));
        server = server.with_in_client_approval(approval);
    }
    server = server.with_call_timeout(std::time::Duration::from_secs(args.call_timeout.max(1)));

    let running = server.serve(stdio()).await.map_err(|e| CliError::Failed {
        message: "the MCP client did not initialize a session".into(),
        source: Some(Box::new(e)),
    })?;
    let _ = running.waiting().await;
    // The client is done: close the upstream's session, which stops it.
    upstream_handle.close().await;
    Ok(())
}

/// Starts the upstream's `command` (and its arguments) as a child process.
async fn spawn(command: &[OsString]) -> Result<Upstream, CliError> {
    let Some((program, rest)) = command.split_first() else {
        return Err(CliError::usage(
            "no upstream MCP server given",
            "name its command after `--` (`approval-gate mcp -- python server.py`), or its URL \
             with `--upstream-url`",
        ));
    };
    let shown = program.to_string_lossy().into_owned();
    let (program, rest) = (program.clone(), rest.to_vec());
    Upstream::spawn(move || {
        let mut command = tokio::process::Command::new(&program);
        command.args(&rest);
        command
    })
    .await
    .map_err(|e| CliError::Failed {
        message: format!("cannot start the upstream MCP server `{shown}`"),
        source: Some(Box::new(e)),
    })
}
