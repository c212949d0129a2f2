//! The desk from a terminal: list, show, approve (with edits or a standing grant), deny,
//! cancel; list and revoke grants. Every decision goes through the library's `Desk`, so
//! its rules (no self-approval, tenant, roles, quorum, one decision) hold here as on every
//! surface.

use std::path::PathBuf;
use std::time::Duration;

use approval_gate::desk::{Grant, GrantId};
use approval_gate::serde_json::{self, Value};
use approval_gate::store::RequestQuery;
use approval_gate::trail::AuditQuery;
use approval_gate::{
    ApprovalRequest, Approver, Desk, Gate, GrantScope, GrantSpec, RequestId, RequestState,
};
use serde::Serialize;

use crate::deploy::Deployment;
use crate::error::CliError;
use crate::output::{
    Format, GrantView, HistoryView, Out, RequestView, cell, rfc3339, seconds, short,
};

/// Who is acting at the desk. Established by whoever runs the command: the command
/// trusts its caller as far as the store's credentials do.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Identity {
    /// Who is acting (default: the OS user, from $USER).
    #[arg(long = "as", env = "APPROVAL_GATE_AS", value_name = "ID")]
    pub acting_as: Option<String>,
    /// A role of the person acting (repeat for several).
    #[arg(long = "role", value_name = "ROLE")]
    pub roles: Vec<String>,
    /// The tenant of the person acting.
    #[arg(long, env = "APPROVAL_GATE_TENANT", value_name = "TENANT")]
    pub tenant: Option<String>,
}

impl Identity {
    /// The approver these flags name.
    pub fn approver(&self) -> Result<Approver, CliError> {
        let mut approver = Approver::new(person(self.acting_as.as_deref())?);
        for role in &self.roles {
            approver = approver.with_role(role);
        }
        if let Some(tenant) = &self.tenant {
            approver = approver.with_tenant(tenant);
        }
        Ok(approver)
    }
}

/// The person acting: `--as`, else $USER, else $LOGNAME.
pub fn person(id: Option<&str>) -> Result<String, CliError> {
    if let Some(id) = id.filter(|id| !id.trim().is_empty()) {
        return Ok(id.to_owned());
    }
    ["USER", "LOGNAME"]
        .into_iter()
        .filter_map(|name| std::env::var(name).ok())
        .find(|user| !user.trim().is_empty())
        .ok_or_else(|| {
            CliError::usage(
                "who is acting is not known",
                "pass `--as ID` or set APPROVAL_GATE_AS",
            )
        })
}

/// Parses a request id.
pub fn request_id(text: &str) -> Result<RequestId, CliError> {
    text.trim().parse().map_err(|_| {
        CliError::usage(
            format!("`{text}` is not a request id"),
            "copy the id from `approval-gate pending`",
        )
    })
}

/// Filters of `pending`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct PendingArgs {
    #[command(flatten)]
    identity: Identity,
    /// Only this tool.
    #[arg(long)]
    tool: Option<String>,
    /// Only this risk tier.
    #[arg(long)]
    tier: Option<String>,
    /// Only this agent run.
    #[arg(long)]
    run: Option<String>,
    /// At most this many, oldest first.
    #[arg(long)]
    limit: Option<usize>,
    /// Every tenant's requests, not only those of `--tenant`.
    #[arg(long)]
    all_tenants: bool,
}

/// `pending`: the requests waiting for a decision, oldest first.
pub async fn pending(deploy: &Deployment, args: &PendingArgs, out: &Out) -> Result<(), CliError> {
    let gate = deploy.reader().await?;
    let desk = viewer(&gate, &args.identity, args.all_tenants)?;
    let query = RequestQuery {
        tool: args.tool.clone(),
        tier: args.tier.clone(),
        run_id: args.run.clone(),
        limit: args.limit,
        ..RequestQuery::pending()
    };
    let now = gate.now();
    let requests = desk.list(&query).await?;
    match out.format() {
        Format::Json => {
            for request in &requests {
                out.json(&RequestView::of(request, now));
            }
        }
        Format::Table => {
            if requests.is_empty() {
                out.line("no pending requests");
                return Ok(());
            }
            let rows: Vec<Vec<String>> = requests
                .iter()
                .map(|r| {
                    let v = RequestView::of(r, now);
                    vec![
                        v.id,
                        v.tool,
                        cell(v.tier.as_deref()),
                        cell(v.requester.as_deref()),
                        cell(v.tenant.as_deref()),
                        format!("{}/{}", v.approvers.len(), v.quorum),
                        v.remaining_seconds
                            .map(seconds)
                            .unwrap_or_else(|| "-".into()),
                        short(&v.preview, 60),
                    ]
                })
                .collect();
            out.table(
                &[
                    "ID",
                    "TOOL",
                    "TIER",
                    "REQUESTER",
                    "TENANT",
                    "VOTES",
                    "EXPIRES IN",
                    "PREVIEW",
                ],
                &rows,
            );
        }
    }
    Ok(())
}

/// The desk bound to the person (their tenant's requests only), or every tenant's.
fn viewer(gate: &Gate, identity: &Identity, all_tenants: bool) -> Result<Desk, CliError> {
    if all_tenants {
        return Ok(gate.desk());
    }
    Ok(gate.desk().for_approver(identity.approver()?))
}

/// `show`'s JSON: the request and its history.
#[derive(Serialize)]
struct Shown {
    #[serde(flatten)]
    request: RequestView,
    history: Vec<HistoryView>,
}

/// `show ID`: what a person sees before deciding, and the request's history.
pub async fn show(
    deploy: &Deployment,
    identity: &Identity,
    all_tenants: bool,
    id: &str,
    out: &Out,
) -> Result<(), CliError> {
    let id = request_id(id)?;
    let gate = deploy.reader().await?;
    let request = viewer(&gate, identity, all_tenants)?.show(id).await?;
    let history: Vec<HistoryView> = gate
        .store()
        .audit_records(&AuditQuery::request(id))
        .await?
        .iter()
        .map(HistoryView::of)
        .collect();
    let view = RequestView::of(&request, gate.now());
    match out.format() {
        Format::Json => out.json(&Shown {
            request: view,
            history,
        }),
        Format::Table => {
            print_request(out, &view);
            out.line("");
            out.line("history:");
            for h in &history {
                let actor = h
                    .actor
                    .as_deref()
                    .map(|a| format!(" by {a}"))
                    .unwrap_or_default();
                out.line(&format!("  {} {}{actor}", h.at, h.event));
            }
        }
    }
    Ok(())
}

/// A request's fields, one a line.
fn print_request(out: &Out, v: &RequestView) {
    let list = |items: &[String]| {
        if items.is_empty() {
            "-".to_owned()
        } else {
            items.join(", ")
        }
    };
    let mut pairs = vec![
        ("id", v.id.clone()),
        ("state", v.state.clone()),
        ("tool", v.tool.clone()),
        ("preview", short(&v.preview, 200)),
        ("args hash", v.args_hash.clone()),
        ("rules", list(&v.rule_ids)),
        ("reason", cell(v.reason.as_deref())),
        ("tier", cell(v.tier.as_deref())),
        ("requester", cell(v.requester.as_deref())),
        ("tenant", cell(v.tenant.as_deref())),
        ("run", v.run_id.clone()),
        ("call", v.call_id.clone()),
        (
            "approvals",
            format!(
                "{} of {} ({})",
                v.approvers.len(),
                v.quorum,
                list(&v.approvers)
            ),
        ),
        ("filed", v.created_at.clone()),
        ("expires", v.expires_at.clone()),
    ];
    if let Some(left) = v.remaining_seconds {
        pairs.push(("time left", seconds(left)));
    }
    if let Some(at) = &v.approval_expires_at {
        pairs.push(("approval valid until", at.clone()));
    }
    if let Some(by) = &v.edited_by {
        pairs.push(("edited by", format!("{by} ({})", list(&v.changed_fields))));
    }
    if let Some(by) = &v.decided_by {
        pairs.push(("decided by", by.clone()));
    }
    if let Some(feedback) = &v.feedback {
        pairs.push(("feedback", short(feedback, 200)));
    }
    out.pairs(&pairs);
    out.line("arguments (secrets redacted):");
    let args = serde_json::to_string_pretty(&v.shown_args).unwrap_or_default();
    for line in args.lines() {
        out.line(&format!("  {line}"));
    }
}

/// The flags of `approve`.
#[derive(Debug, Clone, clap::Args)]
pub struct ApproveArgs {
    /// The request.
    pub id: String,
    #[command(flatten)]
    identity: Identity,
    /// Approve these arguments instead (JSON): the tool runs with them.
    #[arg(long, value_name = "JSON", conflicts_with = "edit_file")]
    edit: Option<String>,
    /// Approve the arguments in this JSON file instead.
    #[arg(long, value_name = "FILE")]
    edit_file: Option<PathBuf>,
    /// Also leave a standing grant for later calls: `run`, `user` or `tenant`.
    #[arg(long, value_name = "SCOPE", conflicts_with_all = ["edit", "edit_file"])]
    grant: Option<Scope>,
    /// How long the grant lasts (`90s`, `15m`, `1h`, `7d`).
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "1h",
        requires = "grant"
    )]
    grant_for: String,
    /// The grant covers at most this many calls.
    #[arg(long, value_name = "N", requires = "grant")]
    grant_max_uses: Option<u32>,
    /// The grant covers only calls with the approved arguments.
    #[arg(long, requires = "grant")]
    grant_same_args: bool,
    /// The grant covers the tools matching this pattern (default: the approved tool).
    #[arg(long, value_name = "PATTERN", requires = "grant")]
    grant_tool: Option<String>,
}

/// Whose later calls a grant covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scope {
    /// Calls of the same agent run.
    Run,
    /// Calls asked for by the same user.
    User,
    /// Calls of the same tenant.
    Tenant,
}

/// What a decision printed as JSON: the request, and the grant it left.
#[derive(Serialize)]
struct Decided {
    #[serde(flatten)]
    request: RequestView,
    #[serde(skip_serializing_if = "Option::is_none")]
    grant: Option<GrantView>,
}

/// `approve ID`: approve, with edits or a grant.
pub async fn approve(deploy: &Deployment, args: &ApproveArgs, out: &Out) -> Result<(), CliError> {
    let id = request_id(&args.id)?;
    let approver = args.identity.approver()?;
    let edit = match (&args.edit, &args.edit_file) {
        (Some(json), _) => Some(parse_edit(json, "--edit")?),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path).map_err(|source| CliError::Io {
                what: "cannot read the edited arguments",
                path: path.clone(),
                source,
            })?;
            Some(parse_edit(&text, &path.display().to_string())?)
        }
        (None, None) => None,
    };
    let spec = match args.grant {
        Some(scope) => Some(grant_spec(args, scope)?),
        None => None,
    };
    let gate = deploy.gate().await?;
    let desk = gate.desk();
    let (request, grant) = match (edit, spec) {
        (Some(args), _) => (desk.approve_with_edits(id, &approver, args).await?, None),
        (None, Some(spec)) => desk.approve_with_grant(id, &approver, &spec).await?,
        (None, None) => (desk.approve(id, &approver).await?, None),
    };
    print_decided(out, &gate, &request, grant.as_ref());
    Ok(())
}

fn parse_edit(text: &str, from: &str) -> Result<Value, CliError> {
    serde_json::from_str(text).map_err(|e| {
        CliError::usage(
            format!("the edited arguments in `{from}` are not JSON: {e}"),
            "give a JSON object, such as `--edit '{\"to\":\"bob@example.com\"}'`",
        )
    })
}

fn grant_spec(args: &ApproveArgs, scope: Scope) -> Result<GrantSpec, CliError> {
    let scope = match scope {
        Scope::Run => GrantScope::Run,
        Scope::User => GrantScope::User,
        Scope::Tenant => GrantScope::Tenant,
    };
    let mut spec = GrantSpec::new(scope, duration(&args.grant_for, "--grant-for")?);
    if let Some(n) = args.grant_max_uses {
        spec = spec.max_uses(n);
    }
    if args.grant_same_args {
        spec = spec.same_args();
    }
    if let Some(pattern) = &args.grant_tool {
        spec = spec.tool_pattern(pattern);
    }
    Ok(spec)
}

/// Parses `90s`, `15m`, `1h`, `7d`, or a number of seconds.
pub fn duration(text: &str, flag: &str) -> Result<Duration, CliError> {
    let text = text.trim();
    let (number, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => text.split_at(i),
        None => (text, "s"),
    };
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => 0,
    };
    match number.parse::<u64>() {
        Ok(n) if scale > 0 => Ok(Duration::from_secs(n.saturating_mul(scale))),
        _ => Err(CliError::usage(
            format!("`{flag}` takes a duration, not `{text}`"),
            "write `90s`, `15m`, `1h` or `7d`",
        )),
    }
}

fn print_decided(out: &Out, gate: &Gate, request: &ApprovalRequest, grant: Option<&Grant>) {
    let now = gate.now();
    let view = RequestView::of(request, now);
    if out.format() == Format::Json {
        out.json(&Decided {
            request: view,
            grant: grant.map(GrantView::of),
        });
        return;
    }
    let line = match request.state_at(now) {
        RequestState::Pending => format!(
            "vote counted on {}: {} of {} approvals; still pending",
            view.id,
            view.approvers.len(),
            view.quorum
        ),
        RequestState::Approved => format!(
            "approved {} ({}); the approval may be used until {}",
            view.id,
            view.tool,
            view.approval_expires_at.as_deref().unwrap_or("-")
        ),
        RequestState::Denied => format!("denied {} ({})", view.id, view.tool),
        RequestState::Cancelled => format!("cancelled {} ({})", view.id, view.tool),
        other => format!("{} is {}", view.id, other.as_str()),
    };
    out.line(&line);
    if let Some(grant) = grant {
        out.line(&format!(
            "left grant {} ({} scope, until {})",
            grant.id(),
            GrantView::of(grant).scope,
            rfc3339(grant.expires_at())
        ));
    }
}

/// `deny ID --feedback TEXT`: the feedback reaches the agent.
pub async fn deny(
    deploy: &Deployment,
    identity: &Identity,
    id: &str,
    feedback: Option<&str>,
    out: &Out,
) -> Result<(), CliError> {
    let id = request_id(id)?;
    let approver = identity.approver()?;
    let gate = deploy.gate().await?;
    let request = gate.desk().deny(id, &approver, feedback).await?;
    print_decided(out, &gate, &request, None);
    Ok(())
}

/// `cancel ID --reason TEXT`: withdraw a pending or approved, unused request.
pub async fn cancel(
    deploy: &Deployment,
    identity: &Identity,
    id: &str,
    reason: Option<&str>,
    out: &Out,
) -> Result<(), CliError> {
    let id = request_id(id)?;
    let by = identity.approver()?;
    let gate = deploy.gate().await?;
    let request = gate.desk().cancel(id, &by, reason).await?;
    print_decided(out, &gate, &request, None);
    Ok(())
}

/// `grants`: the live standing grants.
pub async fn grants(
    deploy: &Deployment,
    identity: &Identity,
    all_tenants: bool,
    out: &Out,
) -> Result<(), CliError> {
    let gate = deploy.reader().await?;
    let grants = viewer(&gate, identity, all_tenants)?.grants().await?;
    match out.format() {
        Format::Json => {
            for grant in &grants {
                out.json(&GrantView::of(grant));
            }
        }
        Format::Table => {
            if grants.is_empty() {
                out.line("no live grants");
                return Ok(());
            }
            let rows: Vec<Vec<String>> = grants
                .iter()
                .map(|g| {
                    let v = GrantView::of(g);
                    vec![
                        v.id,
                        v.tool,
                        v.scope,
                        cell(v.tenant.as_deref()),
                        v.created_by,
                        match v.max_uses {
                            Some(max) => format!("{}/{max}", v.uses),
                            None => v.uses.to_string(),
                        },
                        v.expires_at,
                    ]
                })
                .collect();
            out.table(
                &["ID", "TOOL", "SCOPE", "TENANT", "BY", "USES", "EXPIRES"],
                &rows,
            );
        }
    }
    Ok(())
}

/// `revoke GRANT`: the grant covers no call from now on.
pub async fn revoke(
    deploy: &Deployment,
    identity: &Identity,
    grant: &str,
    out: &Out,
) -> Result<(), CliError> {
    let grant_id: GrantId = grant.trim().parse().map_err(|_| {
        CliError::usage(
            format!("`{grant}` is not a grant id"),
            "copy the id from `approval-gate grants`",
        )
    })?;
    let by = identity.approver()?;
    let gate = deploy.gate().await?;
    let revoked = gate.desk().revoke_grant(grant_id, &by).await?;
    match out.format() {
        Format::Json => out.json(&GrantView::of(&revoked)),
        Format::Table => out.line(&format!("revoked grant {}", revoked.id())),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_a_unit() {
        assert_eq!(duration("90s", "x").unwrap(), Duration::from_secs(90));
        assert_eq!(duration("15m", "x").unwrap(), Duration::from_secs(900));
        assert_eq!(duration("1h", "x").unwrap(), Duration::from_secs(3600));
        assert_eq!(duration("2d", "x").unwrap(), Duration::from_secs(172_800));
        assert_eq!(duration("30", "x").unwrap(), Duration::from_secs(30));
        assert!(duration("1y", "x").is_err());
        assert!(duration("h", "x").is_err());
        assert!(duration("", "x").is_err());
    }
}
