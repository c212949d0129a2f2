//! `approval-gate`: the command of the approval gate. Decide approval requests at the
//! desk, flip run controls, read figures and the audit trail, check and test policies,
//! serve the console, notify people of requests, and gate an MCP server's tools (`mcp`), against the same store the
//! agents' gates use.
//!
//! The store, the policy and the signing key come from flags, environment variables or
//! a config file (`--config`); `approval-gate init DIR` writes a starter. Exit codes are
//! stable: 0 success, 1 a check failed, 2 usage, 3 not found, 4 refused / already decided
//! / expired, 5 store, key or policy failure (see the README).
#![forbid(unsafe_code)]

mod controls;
mod deploy;
mod desk;
mod error;
mod init;
mod insight;
mod mcp;
mod notify;
mod output;
mod policy;
mod serve;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::controls::{Actor, Switch};
use crate::deploy::{DeployArgs, Deployment};
use crate::desk::{ApproveArgs, Identity, PendingArgs};
use crate::error::{CliError, exit};
use crate::insight::AuditCommand;
use crate::mcp::McpArgs;
use crate::notify::NotifyCommand;
use crate::output::{Format, Out};
use crate::policy::PolicyCommand;

/// The approval gate's command: decide approval requests, flip run controls, read the
/// audit trail, check policies, serve the console.
#[derive(Debug, Parser)]
#[command(name = "approval-gate", version, about, propagate_version = true)]
struct Cli {
    #[command(flatten)]
    deploy: DeployArgs,
    /// How reads print: `table` for people, `json` for scripts (one object a line for
    /// lists).
    #[arg(long, value_enum, default_value_t = Format::Table, global = true)]
    format: Format,
    #[command(subcommand)]
    command: Command,
}

/// Every subcommand.
#[derive(Debug, Subcommand)]
enum Command {
    /// Write a starter deployment into DIR: the seed policy, a new signing key (0600),
    /// an SQLite store and a config file naming them.
    Init {
        /// The directory (created if missing; its files must not exist yet).
        dir: PathBuf,
    },
    /// List the requests waiting for a decision, oldest first.
    Pending(PendingArgs),
    /// Show a request as a person sees it before deciding, with its history.
    Show {
        /// The request.
        id: String,
        #[command(flatten)]
        identity: Identity,
        /// See requests of every tenant, not only those of `--tenant`.
        #[arg(long)]
        all_tenants: bool,
    },
    /// Approve a request (optionally with edited arguments, or leaving a standing grant).
    Approve(ApproveArgs),
    /// Deny a request; the feedback reaches the agent.
    Deny {
        /// The request.
        id: String,
        #[command(flatten)]
        identity: Identity,
        /// Why, for the agent's model to adjust its next step.
        #[arg(long, value_name = "TEXT")]
        feedback: Option<String>,
    },
    /// Withdraw a pending or approved, unused request.
    Cancel {
        /// The request.
        id: String,
        #[command(flatten)]
        identity: Identity,
        /// Why.
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
    },
    /// List the live standing grants.
    Grants {
        #[command(flatten)]
        identity: Identity,
        /// Every tenant's grants, not only those of `--tenant`.
        #[arg(long)]
        all_tenants: bool,
    },
    /// Revoke a standing grant.
    Revoke {
        /// The grant.
        grant: String,
        #[command(flatten)]
        identity: Identity,
    },
    /// Engage or release a kill switch: global, or for one tenant or one tool.
    KillSwitch {
        /// `on` or `off`.
        #[arg(value_enum)]
        switch: Switch,
        /// Only this tenant's calls.
        #[arg(long, conflicts_with = "tool")]
        tenant: Option<String>,
        /// Only this tool's calls.
        #[arg(long)]
        tool: Option<String>,
        #[command(flatten)]
        actor: Actor,
    },
    /// Turn read-only mode on or off: every tool that is not a read is denied.
    ReadOnly {
        /// `on` or `off`.
        #[arg(value_enum)]
        switch: Switch,
        #[command(flatten)]
        actor: Actor,
    },
    /// Show the run controls in force: kill switches and read-only mode.
    Controls,
    /// Show what an agent run has used: steps, tool calls, cost.
    Usage {
        /// The run id.
        run: String,
    },
    /// Figures of the last window: decisions, timeouts, time to decision, oldest pending.
    Stats {
        /// The window (`90s`, `15m`, `1h`, `7d`).
        #[arg(long, default_value = "1h")]
        window: String,
    },
    /// The audit trail: verify its chain, print a request's or a run's history, export.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Check a policy file, or test it against listed calls.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Serve the web console (the config file's `serve` section says who may use it).
    Serve {
        /// The address to listen on (default: the config's `serve.listen`, else
        /// 127.0.0.1:8080).
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
    /// Tell people of requests through the config file's `notify.channels` (webhooks),
    /// or show where the notifier stands.
    #[command(subcommand)]
    Notify(NotifyCommand),
    /// Print the SHA-256 of a bearer token read from standard input, for `serve.tokens`.
    TokenHash,
    /// Run an MCP gateway on stdin and stdout in front of the MCP server started by
    /// UPSTREAM-COMMAND: the upstream's tools, every call through the gate (reads pass,
    /// writes wait for approval, the identical call runs once approved).
    Mcp(McpArgs),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout with 0; usage errors to stderr with 2.
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            });
        }
    };
    let out = Out::new(cli.format);
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Failed {
            message: "cannot start the runtime".into(),
            source: Some(Box::new(e)),
        })
        .and_then(|rt| {
            let result = rt.block_on(run(cli, &out));
            // The command's work is done. A read of standard input still blocked on the
            // runtime's thread (`mcp`'s, when the upstream ended before the client) must
            // not keep the process from exiting, as dropping the runtime would.
            rt.shutdown_background();
            result
        });
    match result {
        Ok(()) => ExitCode::from(exit::OK),
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "error: {}", e.line());
            ExitCode::from(e.exit_code())
        }
    }
}

async fn run(cli: Cli, out: &Out) -> Result<(), CliError> {
    // Commands that need no deployment.
    match &cli.command {
        Command::Init { dir } => return init::init(dir, out).await,
        Command::Policy(command) => return policy::policy(command, out),
        Command::TokenHash => return serve::token_hash(out),
        _ => {}
    }
    let deploy = Deployment::resolve(&cli.deploy)?;
    match &cli.command {
        Command::Init { .. } | Command::Policy(_) | Command::TokenHash => Ok(()),
        Command::Pending(args) => desk::pending(&deploy, args, out).await,
        Command::Show {
            id,
            identity,
            all_tenants,
        } => desk::show(&deploy, identity, *all_tenants, id, out).await,
        Command::Approve(args) => desk::approve(&deploy, args, out).await,
        Command::Deny {
            id,
            identity,
            feedback,
        } => desk::deny(&deploy, identity, id, feedback.as_deref(), out).await,
        Command::Cancel {
            id,
            identity,
            reason,
        } => desk::cancel(&deploy, identity, id, reason.as_deref(), out).await,
        Command::Grants {
            identity,
            all_tenants,
        } => desk::grants(&deploy, identity, *all_tenants, out).await,
        Command::Revoke { grant, identity } => desk::revoke(&deploy, identity, grant, out).await,
        Command::KillSwitch {
            switch,
            tenant,
            tool,
            actor,
        } => {
            controls::kill_switch(
                &deploy,
                actor,
                *switch,
                tenant.as_deref(),
                tool.as_deref(),
                out,
            )
            .await
        }
        Command::ReadOnly { switch, actor } => {
            controls::read_only(&deploy, actor, *switch, out).await
        }
        Command::Controls => controls::controls(&deploy, out).await,
        Command::Usage { run } => controls::usage(&deploy, run, out).await,
        Command::Stats { window } => insight::stats(&deploy, window, out).await,
        Command::Audit(command) => insight::audit(&deploy, command, out).await,
        Command::Serve { listen } => serve::serve(&deploy, listen.as_deref(), out).await,
        Command::Mcp(args) => mcp::mcp(&deploy, args).await,
        Command::Notify(command) => notify::notify(&deploy, command, out).await,
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    #[test]
    fn the_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
