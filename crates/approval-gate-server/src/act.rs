//! The decisions both the pages and the API take, through the desk.

use std::time::Duration;

use approval_gate::serde_json::Value;
use approval_gate::trail::AuditQuery;
use approval_gate::{GrantScope, GrantSpec, RequestId};
use serde::Deserialize;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ConsoleError;
use crate::view::{HistoryLine, RequestView};

/// A standing grant asked for with an approval: the form's or the API's fields.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct GrantAsk {
    /// `run`, `user` or `tenant`.
    pub(crate) scope: String,
    /// How long the grant lives, in minutes.
    #[serde(default)]
    pub(crate) minutes: Option<u64>,
    /// How many calls it covers at most.
    #[serde(default)]
    pub(crate) max_uses: Option<u32>,
    /// Whether it covers only calls with the approved arguments.
    #[serde(default)]
    pub(crate) same_args: bool,
}

impl GrantAsk {
    /// The grant spec asked for; a scope it does not know, or a lifetime of zero, is a
    /// bad form.
    fn spec(&self) -> Result<GrantSpec, ConsoleError> {
        let scope = match self.scope.trim() {
            "run" => GrantScope::Run,
            "user" => GrantScope::User,
            "tenant" => GrantScope::Tenant,
            _ => {
                return Err(ConsoleError::BadForm(
                    "a grant's scope is run, user or tenant",
                ));
            }
        };
        let minutes = self.minutes.unwrap_or(60);
        if minutes == 0 {
            return Err(ConsoleError::BadForm("a grant lives at least one minute"));
        }
        let mut spec = GrantSpec::new(scope, Duration::from_secs(minutes.saturating_mul(60)));
        if let Some(n) = self.max_uses {
            spec = spec.max_uses(n);
        }
        if self.same_args {
            spec = spec.same_args();
        }
        Ok(spec)
    }
}

/// Approves `id` as the caller: as it stands, with `edit` as the edited arguments, or
/// with a standing grant (not both: the desk grants what was filed). A value left as
/// `"[redacted]"` where the page showed one keeps the filed value (the desk sees to it).
pub(crate) async fn approve(
    app: &AppState,
    caller: &Caller,
    id: RequestId,
    edit: Option<Value>,
    grant: Option<&GrantAsk>,
) -> Result<(), ConsoleError> {
    let desk = caller.desk(app);
    match (edit, grant) {
        (Some(_), Some(_)) => Err(ConsoleError::BadForm(
            "approve with edited arguments or with a grant, not both",
        )),
        (None, None) => desk
            .approve(id, &caller.approver)
            .await
            .map(drop)
            .map_err(Into::into),
        (None, Some(ask)) => {
            let spec = ask.spec()?;
            desk.approve_with_grant(id, &caller.approver, &spec)
                .await
                .map(drop)
                .map_err(Into::into)
        }
        (Some(args), None) => {
            // The desk keeps a secret left as "[redacted]" as it was.
            desk.approve_with_edits(id, &caller.approver, args)
                .await
                .map(drop)
                .map_err(Into::into)
        }
    }
}

/// Parses the approve form's `edit` text; invalid JSON is refused before anything is
/// asked of the desk.
pub(crate) fn parse_edit(text: &str) -> Result<Value, ConsoleError> {
    approval_gate::parse_args(text).map_err(|e| ConsoleError::BadEdit(e.to_string()))
}

/// What `id` shows the caller: the request as they may see it (of their tenant, or of
/// any for an administrator without one), and its history. The page and the API show
/// the same.
pub(crate) async fn shown(
    app: &AppState,
    caller: &Caller,
    id: RequestId,
) -> Result<(RequestView, Vec<HistoryLine>), ConsoleError> {
    let request = caller.desk(app).show(id).await?;
    let history = app
        .gate
        .store()
        .audit_records(&AuditQuery::request(id))
        .await
        .map_err(|e| ConsoleError::Desk(e.into()))?;
    Ok((
        RequestView::of(&request, app.gate.now()),
        history.iter().map(HistoryLine::of).collect(),
    ))
}
