//! The JSON API under `/api/v1`: the same actions as the pages, with the same identity
//! rules, for bots and other UIs.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method};
use serde::Deserialize;
use serde_json::Value;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::guard::same_origin;
use crate::pages::{QueueFilter, parse_id};
use crate::view::RequestView;

/// `GET /api/v1/requests`: the pending requests the caller may see, oldest first (the
/// queue's filters: `tool`, `tier`, `run`, `tenant`, `before`, and `after=ID` for the
/// next page). A `tenant` the caller may not see gives an empty list.
pub(crate) async fn list(
    State(app): State<AppState>,
    caller: Caller,
    Query(filter): Query<QueueFilter>,
) -> Result<Json<Vec<RequestView>>, ApiError> {
    let now = app.gate.now();
    let found = filter.pending(&app, &caller).await?;
    Ok(Json(
        found.iter().map(|r| RequestView::of(r, now)).collect(),
    ))
}

/// `GET /api/v1/requests/{id}`: one request and its history.
pub(crate) async fn show(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    let (request, history) = crate::act::shown(&app, &caller, id).await?;
    Ok(Json(
        serde_json::json!({ "request": request, "history": history }),
    ))
}

/// The body of `POST /api/v1/requests/{id}/approve`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ApproveBody {
    /// The edited arguments, if any.
    #[serde(default)]
    edit: Option<Value>,
    /// A standing grant to leave with the approval, if any.
    #[serde(default)]
    grant: Option<crate::act::GrantAsk>,
}

/// The body of `POST /api/v1/requests/{id}/deny`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DenyBody {
    #[serde(default)]
    feedback: Option<String>,
}

/// The body of `POST /api/v1/requests/{id}/cancel`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CancelBody {
    #[serde(default)]
    reason: Option<String>,
}

async fn answer(
    app: &AppState,
    caller: &Caller,
    id: approval_gate::RequestId,
) -> Result<Json<RequestView>, ApiError> {
    let request = caller.desk(app).show(id).await?;
    Ok(Json(RequestView::of(&request, app.gate.now())))
}

/// `POST /api/v1/requests/{id}/approve`: `{}`, `{"edit": {...}}` or `{"grant": {"scope":
/// "run", "minutes": 60, "max_uses": 3, "same_args": true}}`.
pub(crate) async fn approve(
    State(app): State<AppState>,
    caller: Caller,
    method: Method,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(body): Json<ApproveBody>,
) -> Result<Json<RequestView>, ApiError> {
    same_origin(&caller, &method, &headers)?;
    let id = parse_id(&id)?;
    crate::act::approve(&app, &caller, id, body.edit, body.grant.as_ref()).await?;
    answer(&app, &caller, id).await
}

/// `POST /api/v1/requests/{id}/deny`: `{"feedback": "..."}`.
pub(crate) async fn deny(
    State(app): State<AppState>,
    caller: Caller,
    method: Method,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(body): Json<DenyBody>,
) -> Result<Json<RequestView>, ApiError> {
    same_origin(&caller, &method, &headers)?;
    let id = parse_id(&id)?;
    let desk = caller.desk(&app);
    desk.deny(id, &caller.approver, body.feedback.as_deref())
        .await?;
    answer(&app, &caller, id).await
}

/// `POST /api/v1/requests/{id}/cancel`: `{"reason": "..."}`.
pub(crate) async fn cancel(
    State(app): State<AppState>,
    caller: Caller,
    method: Method,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(body): Json<CancelBody>,
) -> Result<Json<RequestView>, ApiError> {
    same_origin(&caller, &method, &headers)?;
    let id = parse_id(&id)?;
    let desk = caller.desk(&app);
    desk.cancel(id, &caller.approver, body.reason.as_deref())
        .await?;
    answer(&app, &caller, id).await
}
