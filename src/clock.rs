//! Time: the [`Clock`] trait, the system clock, and a manual clock for tests.

use std::fmt::Debug;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A source of the current time.
///
/// The gate reads its clock once per step and passes that instant down; stores never read
/// a clock of their own. Implemented for [`SystemClock`], [`ManualClock`] and `Arc<C>`.
pub trait Clock: Send + Sync + Debug {
    /// The current time, in UTC.
    fn now(&self) -> OffsetDateTime;
}

/// The operating system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that moves only when told to, for tests and examples.
///
/// Clones share one time, so a test can keep a handle and move the gate's clock:
///
/// ```
/// use approval_gate::{Clock, ManualClock};
/// use std::time::Duration;
///
/// let clock = ManualClock::default();
/// let shared = clock.clone();
/// let start = clock.now();
/// shared.advance(Duration::from_secs(301));
/// assert_eq!(clock.now() - start, Duration::from_secs(301));
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<OffsetDateTime>>,
}

impl ManualClock {
    /// A clock that reads `start` until moved.
    pub fn new(start: OffsetDateTime) -> Self {
        ManualClock {
            now: Arc::new(Mutex::new(start)),
        }
    }

    /// Moves the clock forward by `by`. Past the latest instant the `time` crate holds
    /// (9999-12-31T23:59:59.999999999Z) it stops there, rather than panicking:
    /// `advance(Duration::MAX)` is "the end of time".
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(PoisonError::into_inner);
        *now = saturating_add(*now, by);
    }

    /// Sets the clock to `to` (which may be earlier than now).
    pub fn set(&self, to: OffsetDateTime) {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner) = to;
    }
}

/// The latest instant the `time` crate holds: 9999-12-31T23:59:59.999999999Z.
pub(crate) const LATEST: OffsetDateTime = time::PrimitiveDateTime::MAX.assume_utc();

/// `at + by`, or [`LATEST`] when that is beyond it (where `+` panics).
pub(crate) fn saturating_add(at: OffsetDateTime, by: Duration) -> OffsetDateTime {
    time::Duration::try_from(by)
        .ok()
        .and_then(|by| at.checked_add(by))
        .unwrap_or(LATEST)
}

impl Default for ManualClock {
    /// A clock that starts at 2026-01-01T00:00:00Z.
    fn default() -> Self {
        ManualClock::new(time::macros::datetime!(2026-01-01 00:00:00 UTC))
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> OffsetDateTime {
        (**self).now()
    }
}

/// Shows an instant as RFC 3339 (`2026-01-01T00:05:00Z`) in messages.
pub(crate) struct Rfc3339Display(pub(crate) OffsetDateTime);

impl std::fmt::Display for Rfc3339Display {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.format(&Rfc3339) {
            Ok(s) => f.write_str(&s),
            Err(_) => write!(f, "unix time {}", self.0.unix_timestamp()),
        }
    }
}
