//! A run's trail: every record the store keeps of one agent run, oldest first, as the
//! caller may see it, a page at a time.

use approval_gate::trail::{AuditQuery, AuditRecord};
use askama::Template;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::Html;
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ConsoleError};
use crate::view::TrailLine;

/// How many records a page of a run's trail shows.
pub(crate) const TRAIL_PAGE: usize = 200;

/// How many reads of the store one page makes at most while it skips records the
/// caller may not see; past them, the page ends early with a link to read on.
const MAX_READS: usize = 10;

/// Where a page of a run's trail starts, from the query string: `?after=SEQ`, the
/// number of the last record of the page before.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct TrailCursor {
    after: Option<String>,
}

impl TrailCursor {
    fn after_seq(&self) -> Result<Option<u64>, ConsoleError> {
        match self.after.as_deref().map(str::trim) {
            None | Some("") => Ok(None),
            Some(seq) => seq.parse().map(Some).map_err(|_| {
                ConsoleError::BadForm("`after` is the number of a record in the trail")
            }),
        }
    }
}

/// A page of a run's trail, as the API answers it.
#[derive(Debug, Serialize)]
pub(crate) struct TrailPage {
    /// The run.
    run_id: String,
    /// Its records the caller may see, oldest first.
    records: Vec<TrailLine>,
    /// Where the next page starts (`?after=`), when there may be more.
    next_after: Option<u64>,
}

/// Whether the caller may see `record`: a record of their tenant, or of any for an
/// administrator without a tenant. Tenants are compared in their canonical form.
fn visible(app: &AppState, caller: &Caller, record: &AuditRecord) -> bool {
    let tenant = record
        .tenant
        .as_deref()
        .map(|t| approval_gate::canonical_id(t).unwrap_or_else(|_| t.to_owned()));
    caller.sees(app, tenant.as_deref())
}

/// Reads one page of `run_id`'s trail after record `after`: up to [`TRAIL_PAGE`]
/// records the caller may see. The store is asked a page at a time, by its own cursor
/// (`after_seq`); records of other tenants are skipped, for at most [`MAX_READS`]
/// reads.
async fn read(
    app: &AppState,
    caller: &Caller,
    run_id: &str,
    after: Option<u64>,
) -> Result<TrailPage, ConsoleError> {
    let mut records = Vec::new();
    let mut cursor = after;
    for _ in 0..MAX_READS {
        let query = AuditQuery {
            after_seq: cursor,
            // One more than a page, to know whether another page follows.
            limit: Some(TRAIL_PAGE + 1),
            ..AuditQuery::run(run_id)
        };
        let read = app
            .gate
            .store()
            .audit_records(&query)
            .await
            .map_err(|e| ConsoleError::Desk(e.into()))?;
        let exhausted = read.len() <= TRAIL_PAGE;
        for record in &read {
            if visible(app, caller, record) {
                if records.len() == TRAIL_PAGE {
                    // A record past the page: the next page starts after the last shown.
                    let next_after = records.last().and_then(|l: &TrailLine| l.seq);
                    return Ok(page(run_id, records, next_after));
                }
                records.push(TrailLine::of(record));
            }
            cursor = record.chain.as_ref().map(|c| c.seq);
        }
        // A store that numbers no records cannot be read on from a place.
        if exhausted || cursor.is_none() {
            return Ok(page(run_id, records, None));
        }
    }
    Ok(page(run_id, records, cursor))
}

fn page(run_id: &str, records: Vec<TrailLine>, next_after: Option<u64>) -> TrailPage {
    TrailPage {
        run_id: run_id.to_owned(),
        records,
        next_after,
    }
}

#[derive(Template)]
#[template(path = "run.html")]
struct RunPage {
    who: String,
    run_id: String,
    records: Vec<TrailLine>,
    next_after: Option<u64>,
    /// Whether the person sees every tenant: then the page has a tenant column.
    all_tenants: bool,
}

/// `GET /runs/{run_id}`: the run's trail, oldest first, [`TRAIL_PAGE`] records a page
/// (`?after=SEQ` for the next).
pub(crate) async fn run(
    State(app): State<AppState>,
    caller: Caller,
    Path(run_id): Path<String>,
    Query(cursor): Query<TrailCursor>,
) -> Result<Html<String>, ConsoleError> {
    let found = read(&app, &caller, &run_id, cursor.after_seq()?).await?;
    let page = RunPage {
        who: caller.approver.id().to_owned(),
        run_id: found.run_id,
        records: found.records,
        next_after: found.next_after,
        all_tenants: caller.sees_every_tenant(&app),
    };
    Ok(Html(page.render()?))
}

/// `GET /api/v1/runs/{run_id}/trail`: the same as JSON, `{"run_id", "records",
/// "next_after"}`.
pub(crate) async fn trail(
    State(app): State<AppState>,
    caller: Caller,
    Path(run_id): Path<String>,
    Query(cursor): Query<TrailCursor>,
) -> Result<Json<TrailPage>, ApiError> {
    let after = cursor.after_seq()?;
    Ok(Json(read(&app, &caller, &run_id, after).await?))
}
