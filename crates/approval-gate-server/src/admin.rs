//! Standing grants for everyone who may see them; the run controls and the figures for
//! the console's administrators only.

use std::time::Duration;

use approval_gate::KillScope;
use approval_gate::desk::GrantId;
use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ConsoleError;
use crate::guard::same_origin;
use crate::view::rfc3339;

/// A live grant as the console shows it.
struct GrantLine {
    id: String,
    tool: String,
    scope: String,
    authors: String,
    uses: String,
    expires_at: String,
}

#[derive(Template)]
#[template(path = "grants.html")]
struct GrantsPage {
    who: String,
    grants: Vec<GrantLine>,
}

/// `GET /grants`: the live standing grants of the person's tenant.
pub(crate) async fn grants(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Html<String>, ConsoleError> {
    let desk = app.gate.desk().for_approver(caller.approver.clone());
    let grants = desk.grants().await?;
    let page = GrantsPage {
        who: caller.approver.id().to_owned(),
        grants: grants
            .iter()
            .map(|g| GrantLine {
                id: g.id().to_string(),
                tool: g.tool().to_owned(),
                scope: format!("{:?}", g.scope()).to_lowercase(),
                authors: if g.authors().is_empty() {
                    g.created_by().to_owned()
                } else {
                    g.authors()
                        .iter()
                        .map(|a| a.id())
                        .collect::<Vec<_>>()
                        .join(", ")
                },
                uses: match g.max_uses() {
                    Some(max) => format!("{} of {max}", g.uses()),
                    None => g.uses().to_string(),
                },
                expires_at: rfc3339(g.expires_at()),
            })
            .collect(),
    };
    Ok(Html(page.render()?))
}

/// `POST /grants/{id}/revoke`: by the grant's author or someone who may decide its
/// request.
pub(crate) async fn revoke(
    State(app): State<AppState>,
    caller: Caller,
    method: Method,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Redirect, ConsoleError> {
    same_origin(&caller, &method, &headers)?;
    let id: GrantId = id
        .parse()
        .map_err(|_| ConsoleError::BadId(id.chars().take(64).collect()))?;
    let desk = app.gate.desk().for_approver(caller.approver.clone());
    desk.revoke_grant(id, &caller.approver).await?;
    Ok(Redirect::to("/grants"))
}

/// Refuses a caller without the console's administrator role.
fn admin(app: &AppState, caller: &Caller) -> Result<(), ConsoleError> {
    if caller.approver.has_role(&app.admin_role) {
        Ok(())
    } else {
        Err(ConsoleError::NotAdmin)
    }
}

#[derive(Template)]
#[template(path = "controls.html")]
struct ControlsPage {
    who: String,
    killed: Vec<String>,
    read_only: bool,
}

/// `GET /controls`: the kill switches and read-only mode (administrators only).
pub(crate) async fn controls(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Html<String>, ConsoleError> {
    admin(&app, &caller)?;
    let switches = app
        .gate
        .store()
        .switches()
        .await
        .map_err(|e| ConsoleError::Desk(e.into()))?;
    let page = ControlsPage {
        who: caller.approver.id().to_owned(),
        killed: switches.killed.iter().map(ToString::to_string).collect(),
        read_only: switches.read_only,
    };
    Ok(Html(page.render()?))
}

/// The kill switch form: `scope` = `global`, `tenant` or `tool`, `name` for the last two,
/// `engaged` = `on` or `off`.
#[derive(Debug, Deserialize)]
pub(crate) struct KillForm {
    scope: String,
    #[serde(default)]
    name: String,
    engaged: String,
}

/// `POST /controls/kill-switch` (administrators only).
pub(crate) async fn kill_switch(
    State(app): State<AppState>,
    caller: Caller,
    method: Method,
    headers: HeaderMap,
    Form(form): Form<KillForm>,
) -> Result<Redirect, ConsoleError> {
    same_origin(&caller, &method, &headers)?;
    admin(&app, &caller)?;
    let name = form.name.trim().to_owned();
    let scope = match (form.scope.as_str(), name.is_empty()) {
        ("global", _) => KillScope::Global,
        ("tenant", false) => KillScope::Tenant(name),
        ("tool", false) => KillScope::Tool(name),
        _ => {
            return Err(ConsoleError::BadForm(
                "a kill switch is `global`, or `tenant` or `tool` with a name",
            ));
        }
    };
    let engaged = on_off(&form.engaged)?;
    app.gate
        .set_kill_switch(scope, engaged, &caller.approver)
        .await
        .map_err(|e| ConsoleError::Desk(e.into()))?;
    Ok(Redirect::to("/controls"))
}

/// The read-only form: `on` = `on` or `off`.
#[derive(Debug, Deserialize)]
pub(crate) struct ReadOnlyForm {
    on: String,
}

/// `POST /controls/read-only` (administrators only).
pub(crate) async fn read_only(
    State(app): State<AppState>,
    caller: Caller,
    method: Method,
    headers: HeaderMap,
    Form(form): Form<ReadOnlyForm>,
) -> Result<Redirect, ConsoleError> {
    same_origin(&caller, &method, &headers)?;
    admin(&app, &caller)?;
    let on = on_off(&form.on)?;
    app.gate
        .set_read_only(on, &caller.approver)
        .await
        .map_err(|e| ConsoleError::Desk(e.into()))?;
    Ok(Redirect::to("/controls"))
}

fn on_off(text: &str) -> Result<bool, ConsoleError> {
    match text {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(ConsoleError::BadForm("a switch is `on` or `off`")),
    }
}

/// The stats window, from the query string: `?window=3600` (seconds; one hour by default).
#[derive(Debug, Deserialize)]
pub(crate) struct Window {
    window: Option<u64>,
}

#[derive(Template)]
#[template(path = "stats.html")]
struct StatsPage {
    who: String,
    window_secs: u64,
    required: u64,
    decided: u64,
    timed_out: u64,
    timeout_rate: String,
    median: String,
    p95: String,
    pending: u64,
    oldest: String,
    channels: Vec<ChannelRow>,
    failed: Vec<FailedRow>,
}

/// A notifier channel's place, on the stats page.
struct ChannelRow {
    name: String,
    after_seq: u64,
    behind: String,
}

/// A delivery the notifier gave up on, on the stats page.
struct FailedRow {
    at: String,
    channel: String,
    record_seq: u64,
    record_event: String,
    attempts: u32,
    error: String,
}

/// `GET /stats`: timeout rate, time to decision, oldest pending (administrators only:
/// the figures span every tenant).
pub(crate) async fn stats(
    State(app): State<AppState>,
    caller: Caller,
    Query(window): Query<Window>,
) -> Result<Response, ConsoleError> {
    admin(&app, &caller)?;
    let secs = window.window.unwrap_or(3600).clamp(1, 366 * 24 * 3600);
    let stats = app
        .gate
        .stats(Duration::from_secs(secs))
        .await
        .map_err(|e| ConsoleError::Desk(e.into()))?;
    let secs_of = |d: Option<Duration>| d.map_or("-".to_owned(), |d| format!("{} s", d.as_secs()));
    let notifier = crate::notify::status(&**app.gate.store())
        .await
        .map_err(|e| ConsoleError::Desk(e.into()))?;
    let channels = notifier
        .channels
        .iter()
        .map(|c| ChannelRow {
            name: c.channel.clone(),
            after_seq: c.cursor.after_seq,
            behind: if c.behind >= 1000 {
                "1000+".to_owned()
            } else {
                c.behind.to_string()
            },
        })
        .collect();
    let failed = notifier
        .failed
        .iter()
        .rev()
        .take(50)
        .map(|f| FailedRow {
            at: crate::view::rfc3339(f.at),
            channel: f.channel.clone(),
            record_seq: f.record_seq,
            record_event: f.record_event.clone(),
            attempts: f.attempts,
            error: f.error.clone(),
        })
        .collect();
    let page = StatsPage {
        who: caller.approver.id().to_owned(),
        window_secs: secs,
        required: stats.approvals_required,
        decided: stats.decided,
        timed_out: stats.decided_by_timeout,
        timeout_rate: stats
            .timeout_rate
            .map_or("-".to_owned(), |r| format!("{:.1} %", r * 100.0)),
        median: secs_of(stats.time_to_decision_median),
        p95: secs_of(stats.time_to_decision_p95),
        pending: stats.pending,
        oldest: stats.oldest_pending.as_ref().map_or("-".to_owned(), |o| {
            format!("{} ({}, {} s old)", o.request_id, o.tool, o.age.as_secs())
        }),
        channels,
        failed,
    };
    Ok(Html(page.render()?).into_response())
}
