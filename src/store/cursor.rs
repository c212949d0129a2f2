//! Readers of the trail that keep their place in the store: [`CursorStore`], and the
//! [`TrailCursor`] it answers with.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::StoreError;

/// A named reader's place in the store's audit trail, and who holds it.
///
/// A reader that tails the trail from another process (a notifier delivering to a
/// webhook, say) keeps its place here, so that it survives a restart; and holds it
/// under a lease, so that of two such readers with the same name only one reads at a
/// time.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TrailCursor {
    /// The cursor's name.
    pub name: String,
    /// The `seq` of the last record the reader is done with: it reads on with
    /// [`AuditQuery::after_seq`](super::AuditQuery::after_seq) set to this.
    pub after_seq: u64,
    /// Who holds the lease, or held it last.
    pub holder: String,
    /// When the lease runs out; another holder may take it from then on.
    pub lease_until: OffsetDateTime,
}

/// Keeps [`TrailCursor`]s: the place of every reader that tails the trail, under a lease.
/// Part of [`ApprovalStore`](super::ApprovalStore).
///
/// The lease is how two processes reading under one name share the work: the one that
/// holds it reads and moves the cursor; the other waits until the lease runs out (its
/// holder died, or let it go) and then takes over at the place the first left. A holder
/// that lost its lease learns it when it tries to move the cursor; what it did since its
/// last move is done again by the next holder, so readers deliver at least once.
#[async_trait]
pub trait CursorStore: Send + Sync {
    /// Takes or renews the lease on cursor `name` for `holder` until `until`, if no one
    /// else holds it at `now` (it is new, its lease ran out by `now`, or `holder` holds
    /// it already). Returns the cursor as held, or `None` when another holder's lease
    /// runs past `now` (nothing changed then).
    ///
    /// A new cursor starts at the end of the trail: its reader reads what is appended
    /// from then on, not the history before it.
    async fn lease_cursor(
        &self,
        name: &str,
        holder: &str,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<Option<TrailCursor>, StoreError>;

    /// Moves cursor `name` to `after_seq` and renews the lease until `until`, if
    /// `holder` still holds it. Returns `false`, changing nothing, when another holder
    /// took it over (or there is no such cursor).
    async fn advance_cursor(
        &self,
        name: &str,
        holder: &str,
        after_seq: u64,
        until: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// Lets the lease on cursor `name` go, if `holder` holds it, so that another holder
    /// may take it at once; the cursor keeps its place.
    async fn release_cursor(&self, name: &str, holder: &str) -> Result<(), StoreError>;

    /// Every cursor, by name.
    async fn cursors(&self) -> Result<Vec<TrailCursor>, StoreError>;
}
