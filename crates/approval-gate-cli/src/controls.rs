//! Run controls from a terminal: kill switches, read-only mode, a run's usage. Each flip
//! is in the store, so every worker's next call obeys it, and on the trail under who
//! made it.

use approval_gate::{Approver, KillScope};
use serde::Serialize;

use crate::deploy::Deployment;
use crate::desk::person;
use crate::error::CliError;
use crate::output::{Format, Out, rfc3339};

/// `on` or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Switch {
    /// Engage.
    On,
    /// Release.
    Off,
}

/// Who flips a control: `--as` and roles (a control has no tenant of its own; its scope
/// may name one).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Actor {
    /// Who is acting (default: the OS user, from $USER).
    #[arg(long = "as", env = "APPROVAL_GATE_AS", value_name = "ID")]
    pub acting_as: Option<String>,
}

impl Actor {
    fn approver(&self) -> Result<Approver, CliError> {
        Ok(Approver::new(person(self.acting_as.as_deref())?))
    }
}

/// What `kill-switch` and `read-only` print as JSON.
#[derive(Serialize)]
struct Flipped {
    control: &'static str,
    scope: Option<KillScope>,
    on: bool,
    by: String,
}

/// `kill-switch on|off [--tenant T | --tool NAME]`.
pub async fn kill_switch(
    deploy: &Deployment,
    actor: &Actor,
    switch: Switch,
    tenant: Option<&str>,
    tool: Option<&str>,
    out: &Out,
) -> Result<(), CliError> {
    let scope = match (tenant, tool) {
        (Some(t), None) => KillScope::Tenant(t.to_owned()),
        (None, Some(t)) => KillScope::Tool(t.to_owned()),
        (None, None) => KillScope::Global,
        (Some(_), Some(_)) => {
            return Err(CliError::usage(
                "a kill switch covers a tenant or a tool, not both",
                "flip one switch per command",
            ));
        }
    };
    let by = actor.approver()?;
    let gate = deploy.gate().await?;
    let on = switch == Switch::On;
    gate.set_kill_switch(scope.clone(), on, &by).await?;
    match out.format() {
        Format::Json => out.json(&Flipped {
            control: "kill_switch",
            scope: Some(scope),
            on,
            by: by.id().to_owned(),
        }),
        Format::Table => out.line(&format!(
            "kill switch ({scope}) {}",
            if on { "engaged" } else { "released" }
        )),
    }
    Ok(())
}

/// `read-only on|off`.
pub async fn read_only(
    deploy: &Deployment,
    actor: &Actor,
    switch: Switch,
    out: &Out,
) -> Result<(), CliError> {
    let by = actor.approver()?;
    let gate = deploy.gate().await?;
    let on = switch == Switch::On;
    gate.set_read_only(on, &by).await?;
    match out.format() {
        Format::Json => out.json(&Flipped {
            control: "read_only",
            scope: None,
            on,
            by: by.id().to_owned(),
        }),
        Format::Table => out.line(&format!("read-only mode {}", if on { "on" } else { "off" })),
    }
    Ok(())
}

/// `controls`: the switches engaged now.
pub async fn controls(deploy: &Deployment, out: &Out) -> Result<(), CliError> {
    let gate = deploy.reader().await?;
    let switches = gate.store().switches().await?;
    match out.format() {
        Format::Json => out.json(&switches),
        Format::Table => {
            out.line(&format!(
                "read-only mode: {}",
                if switches.read_only { "on" } else { "off" }
            ));
            if switches.killed.is_empty() {
                out.line("kill switches: none engaged");
            } else {
                out.line("kill switches engaged:");
                for scope in &switches.killed {
                    out.line(&format!("  {scope}"));
                }
            }
        }
    }
    Ok(())
}

/// What `usage` prints as JSON.
#[derive(Serialize)]
struct Usage {
    run_id: String,
    steps: u64,
    tool_calls: u64,
    usd: f64,
    started_at: Option<String>,
}

/// `usage RUN`: what a run has used so far.
pub async fn usage(deploy: &Deployment, run: &str, out: &Out) -> Result<(), CliError> {
    let gate = deploy.reader().await?;
    let used = gate.usage(run).await?;
    let usage = Usage {
        run_id: run.to_owned(),
        steps: used.steps,
        tool_calls: used.tool_calls,
        usd: used.usd,
        started_at: used.started_at.map(rfc3339),
    };
    match out.format() {
        Format::Json => out.json(&usage),
        Format::Table => out.pairs(&[
            ("run", usage.run_id),
            ("steps", usage.steps.to_string()),
            ("tool calls", usage.tool_calls.to_string()),
            ("usd", format!("{:.2}", usage.usd)),
            ("started", usage.started_at.unwrap_or_else(|| "-".into())),
        ]),
    }
    Ok(())
}
