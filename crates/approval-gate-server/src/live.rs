//! Live updates: `GET /events` tells a page that the person's queue changed, so new
//! requests and decisions appear without a reload.
//!
//! The stream listens to the gate's [`subscribe`](approval_gate::Gate::subscribe), which
//! carries changes across processes where the store does (PostgreSQL) and within this
//! process otherwise, and also looks at the queue every [`POLL`], for changes made by
//! other processes on a store that carries no notices across them (SQLite). Either way,
//! it sends an event only when the first page of the person's queue differs from what it
//! sent last.

use std::convert::Infallible;
use std::time::Duration;

use approval_gate::desk::Desk;
use approval_gate::store::Subscription;
use approval_gate::{RequestQuery, RequestState};
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;

use crate::AppState;
use crate::auth::Caller;
use crate::pages::PAGE;

/// How often the queue is looked at when no notice came.
pub(crate) const POLL: Duration = Duration::from_secs(2);

/// What a page of the queue is, for telling whether it changed: each request's id and
/// version; `None` when the store could not be read (the next look tries again).
async fn fingerprint(desk: &Desk) -> Option<Vec<(String, u64)>> {
    let query = RequestQuery {
        state: Some(RequestState::Pending),
        limit: Some(PAGE),
        ..RequestQuery::default()
    };
    let found = desk.list(&query).await.ok()?;
    Some(
        found
            .iter()
            .map(|r| (r.id().to_string(), r.version()))
            .collect(),
    )
}

/// Waits for a notice or the next look, whichever comes first. A subscription that
/// fails for good is dropped, and looking goes on alone.
async fn wait(subscription: &mut Option<Subscription>, tick: &mut tokio::time::Interval) {
    match subscription {
        Some(s) => {
            tokio::select! {
                next = s.next() => {
                    // Lost notices only mean "look"; any other failure ends the
                    // subscription.
                    if let Err(e) = next
                        && !matches!(e, approval_gate::StoreError::Lagged { .. })
                    {
                        *subscription = None;
                    }
                }
                _ = tick.tick() => {}
            }
        }
        None => {
            tick.tick().await;
        }
    }
}

/// `GET /events`: server-sent events named `queue`, one each time the first page of the
/// caller's queue changes.
pub(crate) async fn events(
    State(app): State<AppState>,
    caller: Caller,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let desk = caller.desk(&app);
    let subscription = app.gate.subscribe().await.ok();
    let last = fingerprint(&desk).await;
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let stream = futures_util::stream::unfold(
        (desk, subscription, last, tick),
        |(desk, mut subscription, mut last, mut tick)| async move {
            loop {
                wait(&mut subscription, &mut tick).await;
                let now = fingerprint(&desk).await;
                if now.is_some() && now != last {
                    last = now;
                    let event = Event::default().event("queue").data("changed");
                    return Some((Ok(event), (desk, subscription, last, tick)));
                }
            }
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::default())
}
