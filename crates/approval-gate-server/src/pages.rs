//! The console's pages: the queue, a request, and the decisions as plain forms.

use approval_gate::store::ListCursor;
use approval_gate::{ApprovalRequest, RequestId, RequestQuery, RequestState};
use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ConsoleError;
use crate::guard::same_origin;
use crate::view::{HistoryLine, RequestView};

/// How many requests a page of the queue shows.
pub(crate) const PAGE: usize = 50;

/// The queue's filters, from the query string.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct QueueFilter {
    tool: Option<String>,
    tier: Option<String>,
    run: Option<String>,
    /// Only this tenant's requests. It narrows, never widens: a person bound to a
    /// tenant who names another sees nothing of it.
    tenant: Option<String>,
    /// Show requests filed before this instant (RFC 3339).
    before: Option<String>,
    /// Show the requests that come after this one (its id): the next page.
    after: Option<String>,
}

fn nonempty(s: &Option<String>) -> Option<String> {
    s.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

impl QueueFilter {
    /// The list query of these filters, one page long; `after` is looked up in the store
    /// for its place in the list. `None` when the filters ask for a tenant the caller
    /// may not see: the list is empty, and nothing is asked of the store.
    pub(crate) async fn query(
        &self,
        app: &AppState,
        caller: &Caller,
        state: Option<RequestState>,
    ) -> Result<Option<RequestQuery>, ConsoleError> {
        let tenant = match nonempty(&self.tenant) {
            None => None,
            Some(t) => Some(
                approval_gate::canonical_id(&t)
                    .map_err(|_| ConsoleError::BadForm("the tenant filter is not a valid id"))?,
            ),
        };
        if let Some(t) = &tenant
            && !caller.sees(app, Some(t))
        {
            return Ok(None);
        }
        let after = match nonempty(&self.after) {
            None => None,
            Some(id) => {
                let id = parse_id(&id)?;
                let request = app
                    .gate
                    .store()
                    .get(id)
                    .await
                    .map_err(|e| ConsoleError::Desk(e.into()))?;
                Some(ListCursor::after(&request))
            }
        };
        // Every field is named now; the rest is left to its default should the core
        // add one.
        #[allow(clippy::needless_update)]
        let query = RequestQuery {
            state,
            tool: nonempty(&self.tool),
            tier: nonempty(&self.tier),
            run_id: nonempty(&self.run),
            tenant,
            created_before: self.before.as_deref().and_then(|t| {
                approval_gate::time::OffsetDateTime::parse(
                    t,
                    &approval_gate::time::format_description::well_known::Rfc3339,
                )
                .ok()
            }),
            after,
            limit: Some(PAGE),
            ..RequestQuery::default()
        };
        Ok(Some(query))
    }

    /// The page of pending requests these filters show the caller: their tenant's, or
    /// every tenant's for an administrator without one.
    pub(crate) async fn pending(
        &self,
        app: &AppState,
        caller: &Caller,
    ) -> Result<Vec<ApprovalRequest>, ConsoleError> {
        match self.query(app, caller, Some(RequestState::Pending)).await? {
            Some(query) => Ok(caller.desk(app).list(&query).await?),
            None => Ok(Vec::new()),
        }
    }
}

#[derive(Template)]
#[template(path = "queue.html")]
struct QueuePage {
    who: String,
    requests: Vec<RequestView>,
    next: Option<String>,
    tool: String,
    tier: String,
    run: String,
    tenant: String,
    before: String,
    /// Whether the person sees every tenant: then the queue has a tenant column.
    all_tenants: bool,
}

/// `GET /`: the pending requests the person may see, oldest first, a page at a time.
pub(crate) async fn queue(
    State(app): State<AppState>,
    caller: Caller,
    Query(filter): Query<QueueFilter>,
) -> Result<Html<String>, ConsoleError> {
    let now = app.gate.now();
    let found = filter.pending(&app, &caller).await?;
    let next = (found.len() == PAGE)
        .then(|| found.last().map(|r| r.id().to_string()))
        .flatten();
    let page = QueuePage {
        who: caller.approver.id().to_owned(),
        requests: found.iter().map(|r| RequestView::of(r, now)).collect(),
        next,
        tool: filter.tool.clone().unwrap_or_default(),
        tier: filter.tier.clone().unwrap_or_default(),
        run: filter.run.clone().unwrap_or_default(),
        tenant: filter.tenant.clone().unwrap_or_default(),
        before: filter.before.clone().unwrap_or_default(),
        all_tenants: caller.sees_every_tenant(&app),
    };
    Ok(Html(page.render()?))
}

#[derive(Template)]
#[template(path = "request.html")]
struct RequestPage {
    who: String,
    request: RequestView,
    history: Vec<HistoryLine>,
    notice: Option<String>,
}

pub(crate) fn parse_id(id: &str) -> Result<RequestId, ConsoleError> {
    id.parse()
        .map_err(|_| ConsoleError::BadId(id.chars().take(64).collect()))
}

async fn request_page(
    app: &AppState,
    caller: &Caller,
    id: RequestId,
    notice: Option<String>,
) -> Result<String, ConsoleError> {
    let (request, history) = crate::act::shown(app, caller, id).await?;
    let page = RequestPage {
        who: caller.approver.id().to_owned(),
        request,
        history,
        notice,
    };
    Ok(page.render()?)
}

/// `GET /requests/{id}`: everything a person sees before deciding, and the history.
pub(crate) async fn request(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Html<String>, ConsoleError> {
    let id = parse_id(&id)?;
    Ok(Html(request_page(&app, &caller, id, None).await?))
}

/// A refused decision: the request page again, with the refusal as its notice and the
/// refusal's status; or the error page when the request cannot be shown.
async fn refused(app: &AppState, caller: &Caller, id: RequestId, error: ConsoleError) -> Response {
    let status = error.status();
    if matches!(status, StatusCode::NOT_FOUND | StatusCode::UNAUTHORIZED) {
        return error.into_response();
    }
    match request_page(app, caller, id, Some(error.message())).await {
        Ok(html) => (status, Html(html)).into_response(),
        Err(_) => error.into_response(),
    }
}

/// The approve form: optional edited arguments as JSON text, or an optional standing
/// grant (`grant_scope` `run`, `user` or `tenant`; `grant_minutes`; `grant_max_uses`;
/// `grant_same_args`).
#[derive(Debug, Deserialize)]
pub(crate) struct ApproveForm {
    #[serde(default)]
    edit: String,
    #[serde(default)]
    grant_scope: String,
    #[serde(default)]
    grant_minutes: String,
    #[serde(default)]
    grant_max_uses: String,
    #[serde(default)]
    grant_same_args: Option<String>,
}

impl ApproveForm {
    /// The grant the form asks for, if any.
    fn grant(&self) -> Result<Option<crate::act::GrantAsk>, ConsoleError> {
        let Some(scope) = text(&self.grant_scope) else {
            return Ok(None);
        };
        let number = |s: &str, what| match text(s) {
            None => Ok(None),
            Some(n) => n.parse().map(Some).map_err(|_| ConsoleError::BadForm(what)),
        };
        Ok(Some(crate::act::GrantAsk {
            scope: scope.to_owned(),
            minutes: number(&self.grant_minutes, "a grant's minutes are a whole number")?,
            max_uses: number(&self.grant_max_uses, "a grant's uses are a whole number")?
                .map(|n: u64| u32::try_from(n).unwrap_or(u32::MAX)),
            same_args: self.grant_same_args.is_some(),
        }))
    }
}

/// The deny form.
#[derive(Debug, Deserialize)]
pub(crate) struct DenyForm {
    #[serde(default)]
    feedback: String,
}

/// The cancel form.
#[derive(Debug, Deserialize)]
pub(crate) struct CancelForm {
    #[serde(default)]
    reason: String,
}

fn text(s: &str) -> Option<&str> {
    let s = s.trim();
    (!s.is_empty()).then_some(s)
}

/// `POST /requests/{id}/approve`.
pub(crate) async fn approve(
    State(app): State<AppState>,
    caller: Caller,
    method: Method,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<ApproveForm>,
) -> Response {
    let id = match parse_id(&id) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    let done = async {
        same_origin(&caller, &method, &headers)?;
        let edit = text(&form.edit).map(crate::act::parse_edit).transpose()?;
        let grant = form.grant()?;
        crate::act::approve(&app, &caller, id, edit, grant.as_ref()).await
    };
    match done.await {
        Ok(()) => Redirect::to(&format!("/requests/{id}")).into_response(),
        Err(e) => refused(&app, &caller, id, e).await,
    }
}

/// `POST /requests/{id}/deny`.
pub(crate) async fn deny(
    State(app): State<AppState>,
    caller: Caller,
    method: Method,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<DenyForm>,
) -> Response {
    let id = match parse_id(&id) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    let done = async {
        same_origin(&caller, &method, &headers)?;
        let desk = caller.desk(&app);
        desk.deny(id, &caller.approver, text(&form.feedback))
            .await?;
        Ok::<(), ConsoleError>(())
    };
    match done.await {
        Ok(()) => Redirect::to(&format!("/requests/{id}")).into_response(),
        Err(e) => refused(&app, &caller, id, e).await,
    }
}

/// `POST /requests/{id}/cancel`.
pub(crate) async fn cancel(
    State(app): State<AppState>,
    caller: Caller,
    method: Method,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<CancelForm>,
) -> Response {
    let id = match parse_id(&id) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    let done = async {
        same_origin(&caller, &method, &headers)?;
        let desk = caller.desk(&app);
        desk.cancel(id, &caller.approver, text(&form.reason))
            .await?;
        Ok::<(), ConsoleError>(())
    };
    match done.await {
        Ok(()) => Redirect::to(&format!("/requests/{id}")).into_response(),
        Err(e) => refused(&app, &caller, id, e).await,
    }
}

/// `GET /assets/console.js`: live updates, the countdown and the JSON editor's checks;
/// every page works without it.
pub(crate) async fn script() -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/javascript; charset=utf-8",
        )],
        include_str!("../assets/console.js"),
    )
}

/// `GET /assets/console.css`.
pub(crate) async fn stylesheet() -> impl IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../assets/console.css"),
    )
}
