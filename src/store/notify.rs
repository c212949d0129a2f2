//! Knowing when to resume: [`Subscription`]s to the changes of approval requests, and
//! the in-process [`Notifier`] behind them.

use std::collections::VecDeque;
use std::fmt;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Poll, Waker};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::StoreError;
use crate::approval::{RequestId, RequestState};

/// How many changes a subscriber may leave unread before the oldest are dropped (and
/// it learns of it through [`StoreError::Lagged`]).
const QUEUE: usize = 1024;

/// A request changed: it was filed, decided, voted on, claimed, finished or expired.
///
/// A notice, not the request: read it with [`RequestStore::get`](super::RequestStore::get)
/// (or simply `resume` the call) for what holds now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestChange {
    /// The request.
    pub request_id: RequestId,
    /// Its stored state after the change.
    pub state: RequestState,
}

/// A stream of [`RequestChange`]s from a store, from
/// [`RequestStore::subscribe`](super::RequestStore::subscribe).
///
/// Lets a host learn that a decision was made without polling in a loop:
///
/// ```
/// # async fn demo(store: &dyn approval_gate::ApprovalStore, id: approval_gate::RequestId)
/// # -> Result<(), approval_gate::StoreError> {
/// use approval_gate::{RequestState, StoreError};
///
/// let mut changes = store.subscribe().await?;
/// // Subscribe first, then look, so that no decision falls in between.
/// let mut state = store.get(id).await?.stored_state();
/// while state == RequestState::Pending {
///     state = match changes.next().await {
///         Ok(change) if change.request_id == id => change.state,
///         Ok(_) => continue,
///         // Notices were missed: look again.
///         Err(StoreError::Lagged { .. }) => store.get(id).await?.stored_state(),
///         Err(e) => return Err(e),
///     };
/// }
/// // Decided: resume the call now.
/// # Ok(())
/// # }
/// ```
///
/// Only changes committed after `subscribe` returned are seen; a notice may arrive for a
/// change that a later one has overtaken. Dropping the subscription ends it.
pub struct Subscription {
    source: Box<dyn ChangeSource>,
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription").finish_non_exhaustive()
    }
}

impl Subscription {
    /// A subscription reading from `source`: for a store with its own way of carrying
    /// changes across processes. Stores without one use [`Notifier::subscribe`].
    pub fn new(source: impl ChangeSource + 'static) -> Self {
        Subscription {
            source: Box::new(source),
        }
    }

    /// Waits for the next change. Fails with [`StoreError::Lagged`] when notices were
    /// lost (the subscriber fell behind, or a connection dropped): look at the requests
    /// you wait for again, then go on reading.
    pub async fn next(&mut self) -> Result<RequestChange, StoreError> {
        self.source.next().await
    }
}

/// Where a [`Subscription`] reads its changes from. Implemented by this crate's stores;
/// a host's own store implements it only to carry changes across processes.
#[async_trait]
pub trait ChangeSource: Send {
    /// Waits for the next change; [`StoreError::Lagged`] when some were lost.
    async fn next(&mut self) -> Result<RequestChange, StoreError>;
}

/// Tells this process's subscribers of the changes a store commits: what
/// [`MemoryStore`](crate::store::MemoryStore) and `SqliteStore` use, and what a host's own store
/// can use.
///
/// Clones share the subscribers. Notifying never waits: a subscriber that falls more
/// than 1,024 changes behind loses the oldest and is told so.
///
/// ```
/// # async fn demo() -> Result<(), approval_gate::StoreError> {
/// use approval_gate::{RequestId, RequestState, store::{Notifier, RequestChange}};
///
/// let notifier = Notifier::new();
/// let mut changes = notifier.subscribe();
/// let change = RequestChange { request_id: RequestId::new(), state: RequestState::Approved };
/// notifier.notify(change);
/// assert_eq!(changes.next().await?, change);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    subscribers: Arc<Mutex<Vec<Weak<Mutex<Queue>>>>>,
}

#[derive(Debug, Default)]
struct Queue {
    changes: VecDeque<RequestChange>,
    missed: u64,
    waker: Option<Waker>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section below completes without panicking, so a poisoned lock
    // still holds consistent data.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Notifier {
    /// A notifier with no subscribers.
    pub fn new() -> Self {
        Self::default()
    }

    /// A subscription to every change notified from now on.
    pub fn subscribe(&self) -> Subscription {
        let queue = Arc::new(Mutex::new(Queue::default()));
        lock(&self.subscribers).push(Arc::downgrade(&queue));
        Subscription::new(Listener { queue })
    }

    /// Tells every live subscriber of `change`.
    pub fn notify(&self, change: RequestChange) {
        let mut subscribers = lock(&self.subscribers);
        subscribers.retain(|weak| {
            let Some(queue) = weak.upgrade() else {
                return false;
            };
            let mut queue = lock(&queue);
            if queue.changes.len() == QUEUE {
                queue.changes.pop_front();
                queue.missed += 1;
            }
            queue.changes.push_back(change);
            if let Some(waker) = queue.waker.take() {
                waker.wake();
            }
            true
        });
    }
}

/// One subscriber's end of a [`Notifier`].
struct Listener {
    queue: Arc<Mutex<Queue>>,
}

#[async_trait]
impl ChangeSource for Listener {
    async fn next(&mut self) -> Result<RequestChange, StoreError> {
        poll_fn(|cx| {
            let mut queue = lock(&self.queue);
            if queue.missed > 0 {
                let missed = std::mem::take(&mut queue.missed);
                return Poll::Ready(Err(StoreError::Lagged {
                    missed: Some(missed),
                }));
            }
            match queue.changes.pop_front() {
                Some(change) => Poll::Ready(Ok(change)),
                None => {
                    queue.waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::pin;
    use std::task::Context;

    fn change(state: RequestState) -> RequestChange {
        RequestChange {
            request_id: RequestId::new(),
            state,
        }
    }

    /// Polls `next` once without a runtime.
    fn poll_once(sub: &mut Subscription) -> Poll<Result<RequestChange, StoreError>> {
        let mut cx = Context::from_waker(Waker::noop());
        pin!(sub.next()).as_mut().poll(&mut cx)
    }

    #[test]
    fn every_subscriber_gets_every_change_in_order() {
        let notifier = Notifier::new();
        let mut a = notifier.subscribe();
        let mut b = notifier.clone().subscribe();
        let first = change(RequestState::Approved);
        let second = change(RequestState::Denied);
        notifier.notify(first);
        notifier.notify(second);
        for sub in [&mut a, &mut b] {
            assert!(matches!(poll_once(sub), Poll::Ready(Ok(c)) if c == first));
            assert!(matches!(poll_once(sub), Poll::Ready(Ok(c)) if c == second));
            assert!(poll_once(sub).is_pending(), "nothing more yet");
        }
    }

    #[test]
    fn a_subscriber_sees_only_later_changes() {
        let notifier = Notifier::new();
        notifier.notify(change(RequestState::Approved));
        let mut sub = notifier.subscribe();
        assert!(poll_once(&mut sub).is_pending());
    }

    #[test]
    fn a_subscriber_that_falls_behind_is_told_how_much_it_missed() {
        let notifier = Notifier::new();
        let mut sub = notifier.subscribe();
        for _ in 0..QUEUE + 3 {
            notifier.notify(change(RequestState::Expired));
        }
        assert!(matches!(
            poll_once(&mut sub),
            Poll::Ready(Err(StoreError::Lagged { missed: Some(3) }))
        ));
        assert!(matches!(poll_once(&mut sub), Poll::Ready(Ok(_))));
    }

    #[test]
    fn dropped_subscribers_are_forgotten() {
        let notifier = Notifier::new();
        drop(notifier.subscribe());
        let _kept = notifier.subscribe();
        notifier.notify(change(RequestState::Approved));
        assert_eq!(lock(&notifier.subscribers).len(), 1);
    }

    #[test]
    fn a_waiting_subscriber_is_woken() {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::task::Wake;

        struct Flag(AtomicBool);
        impl Wake for Flag {
            fn wake(self: Arc<Self>) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let flag = Arc::new(Flag(AtomicBool::new(false)));
        let waker = Waker::from(flag.clone());
        let mut cx = Context::from_waker(&waker);
        let notifier = Notifier::new();
        let mut sub = notifier.subscribe();
        let mut next = pin!(sub.next());
        assert!(next.as_mut().poll(&mut cx).is_pending());
        let c = change(RequestState::Cancelled);
        notifier.notify(c);
        assert!(flag.0.load(Ordering::SeqCst), "woken");
        assert!(matches!(next.as_mut().poll(&mut cx), Poll::Ready(Ok(got)) if got == c));
    }
}
