//! The notifier: tells people of requests the moment they are filed, reminds and
//! escalates before the TTL runs out, and alerts when timeouts spike, through
//! webhooks, [`Slack`] or any [`Channel`] of a host's own.
//!
//! It reads the store's audit trail, so it can run in any process that opens the store
//! (inside `approval-gate serve`, or a host's own):
//!
//! - **Nothing lost.** Each channel keeps its place in the trail in the store
//!   ([`CursorStore`](approval_gate::store::CursorStore)), moved on after each record is
//!   delivered (or given up on), so a restart goes on where the last run stopped.
//!   Delivery is at least once: a notifier that dies between a delivery and moving the
//!   cursor delivers that record again, under the same id, which a receiver that drops
//!   duplicates by `webhook-id` sees once.
//! - **One deliverer.** A channel's cursor is held under a lease: of two notifiers on one
//!   store, one delivers a channel's records and the other waits; it takes over when the
//!   lease runs out (`lease_seconds` after the holder's last renewal). Reminders,
//!   escalations and the spike alert are written by whoever holds the lease named
//!   `notify-timers`.
//! - **Faults stay in their lane.** Channels deliver independently: a slow or failing
//!   receiver delays its own deliveries only, never the gate or another channel. A
//!   delivery is retried with backoff ([`RetryPolicy`]); after the last attempt it is
//!   recorded as `delivery_failed` in the trail and the channel goes on.
//!   [`status`] shows the cursors and the failures.
//! - **Nothing secret.** Payloads carry the request as a person sees it
//!   ([`RequestView`](crate::RequestView): the preview and `shown_args`, redacted by the
//!   policy), never the raw arguments.
//!
//! ```no_run
//! use approval_gate::{Gate, Key, Keyring, Policy};
//! use approval_gate_server::notify::{Notifier, NotifyConfig};
//!
//! # async fn demo(gate: Gate) -> Result<(), Box<dyn std::error::Error>> {
//! let config = NotifyConfig::from_yaml_str(r#"
//! channels:
//!   ops:
//!     kind: webhook
//!     url: https://hooks.example.com/approvals
//!     secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
//! "#)?;
//! let notifier = Notifier::new(gate, &config)?;
//! // Runs until the future given resolves (here: never).
//! notifier.run(std::future::pending()).await?;
//! # Ok(()) }
//! ```

mod config;
mod payload;
mod slack;
mod timers;
mod webhook;

pub use config::{ChannelConfig, NoticeKind, NotifyConfig, RetryPolicy, SpikeRule};
pub use slack::{SLACK_API_BASE, Slack};
pub use webhook::{Webhook, WebhookSecret};

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use approval_gate::Gate;
use approval_gate::store::{ApprovalStore, AuditQuery, StoreError, TrailCursor};
use approval_gate::time::OffsetDateTime;
use approval_gate::trail::{AuditEvent, AuditRecord};
use serde_json::Value;
use thiserror::Error;

/// How many records a channel reads from the trail at a time.
const BATCH: usize = 100;

/// The prefix of the cursors the notifier keeps in the store: `notify:{channel}`.
pub const CURSOR_PREFIX: &str = "notify:";

/// The lease under which reminders, escalations and spike alerts are written: outside
/// the channels' `notify:` names, so that no channel's name can take it.
const TIMERS: &str = "notify-timers";

/// One notice, ready to go: the id that stays the same on every retry, and the JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    /// Unique per record of the trail and stable across retries and restarts: a receiver
    /// drops duplicates by it (`webhook-id`).
    pub id: String,
    /// What happened.
    pub kind: NoticeKind,
    /// The payload: `type` (the kind), `timestamp` (when it happened, RFC 3339) and
    /// `data` (the request as a person sees it, who acted, the URL of the request in the
    /// console; or the spike's counts).
    pub payload: Value,
    /// For a channel that [refers back](Channel::refers_back): the reference its last
    /// delivery about the same request answered with ([`Delivered::reference`]), such as
    /// the chat message to update; `None` when there was none.
    pub reference: Option<String>,
}

/// What a delivery left behind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Delivered {
    /// What the channel will refer to this notice by when the request changes again (a
    /// chat message's id): the notifier records it in the trail (`notice_posted`) and
    /// hands it back in [`Notice::reference`].
    pub reference: Option<String>,
}

impl Delivered {
    /// A delivery that left something to refer back to.
    pub fn with_reference(reference: impl Into<String>) -> Self {
        Delivered {
            reference: Some(reference.into()),
        }
    }
}

/// A place notices go. [`Webhook`] is one; a host writes its own (a pager, an email
/// sender) and adds it with [`Notifier::channel`].
#[async_trait::async_trait]
pub trait Channel: Send + Sync {
    /// Delivers one notice; an error is a failed attempt, retried by the notifier as its
    /// [`RetryPolicy`] says.
    async fn deliver(&self, notice: &Notice) -> Result<Delivered, DeliveryError>;

    /// Whether the channel refers back to its earlier notices about a request (updates a
    /// message rather than posting a new one): then the notifier looks up the last
    /// [`Delivered::reference`] for the request and passes it in
    /// [`Notice::reference`]. Default `false`.
    fn refers_back(&self) -> bool {
        false
    }
}

/// One attempt to deliver a notice failed.
#[derive(Debug, Error)]
#[error("{message}")]
pub struct DeliveryError {
    message: String,
}

impl DeliveryError {
    /// An error saying `what` went wrong.
    pub fn new(what: impl fmt::Display) -> Self {
        DeliveryError {
            message: what.to_string(),
        }
    }
}

/// The notifier could not start or go on.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum NotifyError {
    /// The settings are wrong.
    #[error("notify config: {}{message}", if field.is_empty() { String::new() } else { format!("{field}: ") })]
    Config {
        /// Where (`channels.ops.secret`), when known.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The store failed; the step changed nothing it did not record.
    #[error("the notifier's store failed")]
    Store(#[from] StoreError),
}

fn config_error(field: impl Into<String>, message: impl Into<String>) -> NotifyError {
    NotifyError::Config {
        field: field.into(),
        message: message.into(),
    }
}

/// An HTTP client for channels: TLS by rustls, the system's roots.
pub(crate) fn http_client(timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("the HTTP client cannot be made: {e}"))
}

/// A channel with its name and the events it is sent.
struct Route {
    name: String,
    cursor: String,
    events: BTreeSet<NoticeKind>,
    channel: Arc<dyn Channel>,
}

/// Delivers the trail's notices to channels, and writes reminders, escalations and
/// spike alerts. See the [module docs](self).
pub struct Notifier {
    gate: Gate,
    routes: Vec<Route>,
    retry: RetryPolicy,
    lease: Duration,
    poll: Duration,
    console_url: Option<String>,
    spike: Option<SpikeRule>,
    holder: String,
    /// When this notifier last ran the timers.
    timers_ran: std::sync::Mutex<Option<OffsetDateTime>>,
}

impl fmt::Debug for Notifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Notifier")
            .field(
                "channels",
                &self.routes.iter().map(|r| &r.name).collect::<Vec<_>>(),
            )
            .field("holder", &self.holder)
            .finish_non_exhaustive()
    }
}

/// What one [`Notifier::step`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Step {
    /// Notices delivered.
    pub delivered: usize,
    /// Notices given up on after the last attempt (each recorded as `delivery_failed`).
    pub failed: usize,
    /// Channels another notifier holds, left to it.
    pub held_elsewhere: usize,
    /// Reminders, escalations and spike records written.
    pub written: usize,
}

impl Notifier {
    /// A notifier over `gate` (its store, clock and policy), with the channels of
    /// `config`. Checks every channel's settings (URL, secret) first.
    pub fn new(gate: Gate, config: &NotifyConfig) -> Result<Notifier, NotifyError> {
        if config.retry.attempts == 0 {
            return Err(config_error("retry.attempts", "must be at least 1"));
        }
        if config.lease_seconds == 0 {
            return Err(config_error("lease_seconds", "must be at least 1"));
        }
        if let Some(rule) = &config.timeout_spike {
            if !(0.0..1.0).contains(&rule.threshold) {
                return Err(config_error(
                    "timeout_spike.threshold",
                    format!("{} is not a rate from 0 up to 1", rule.threshold),
                ));
            }
            if rule.window_seconds == 0 {
                return Err(config_error(
                    "timeout_spike.window_seconds",
                    "must be at least 1",
                ));
            }
        }
        let mut notifier = Notifier {
            gate,
            routes: Vec::new(),
            retry: config.retry,
            lease: Duration::from_secs(config.lease_seconds),
            poll: Duration::from_secs(config.poll_seconds.max(1)),
            console_url: config
                .console_url
                .as_deref()
                .map(|u| u.trim_end_matches('/').to_owned()),
            spike: config.timeout_spike,
            holder: format!("notifier-{}", uuid_like()),
            timers_ran: std::sync::Mutex::new(None),
        };
        for (name, channel) in &config.channels {
            match channel {
                ChannelConfig::Webhook {
                    url,
                    secret,
                    events,
                    timeout_seconds,
                } => {
                    let at = |key: &str| format!("channels.{name}.{key}");
                    let secret =
                        WebhookSecret::parse(secret).map_err(|m| config_error(at("secret"), m))?;
                    let webhook = Webhook::new(url, secret, Duration::from_secs(*timeout_seconds))
                        .map_err(|m| config_error(at("url"), m))?;
                    notifier = notifier.channel(name, events.iter().copied(), webhook);
                }
                ChannelConfig::Slack {
                    bot_token,
                    channel,
                    api_base,
                    events,
                    timeout_seconds,
                } => {
                    let at = |key: &str| format!("channels.{name}.{key}");
                    if bot_token.trim().is_empty() {
                        return Err(config_error(at("bot_token"), "is empty"));
                    }
                    if channel.trim().is_empty() {
                        return Err(config_error(at("channel"), "is empty"));
                    }
                    let slack = Slack::new(
                        api_base,
                        bot_token,
                        channel,
                        Duration::from_secs(*timeout_seconds),
                    )
                    .map_err(|m| config_error(at("api_base"), m))?;
                    notifier = notifier.channel(name, events.iter().copied(), slack);
                }
            }
        }
        Ok(notifier)
    }

    /// Adds a channel of the host's own, named `name` (which keys its cursor), sent the
    /// `events` given (every event when none). A channel of the same name, from the
    /// config or added before, is replaced: two routes on one cursor would both deliver.
    pub fn channel(
        mut self,
        name: &str,
        events: impl IntoIterator<Item = NoticeKind>,
        channel: impl Channel + 'static,
    ) -> Self {
        self.routes.retain(|route| route.name != name);
        self.routes.push(Route {
            name: name.to_owned(),
            cursor: format!("{CURSOR_PREFIX}{name}"),
            events: events.into_iter().collect(),
            channel: Arc::new(channel),
        });
        self
    }

    /// Who this notifier is when it holds a lease: unique per notifier.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    fn store(&self) -> &Arc<dyn ApprovalStore> {
        self.gate.store()
    }

    fn until(&self, now: OffsetDateTime) -> OffsetDateTime {
        now + self.lease
    }

    /// One pass: writes the reminders, escalations and spike records due (if it holds
    /// the timers' lease, and at most once every `poll_seconds`), then delivers what
    /// each channel has not yet been sent (each channel whose lease it holds, all at
    /// once), up to 100 records a channel.
    pub async fn step(&self) -> Result<Step, NotifyError> {
        let mut step = Step::default();
        let now = self.gate.now();
        // Every change wakes a running notifier; the timers' reads (the pending requests,
        // the spike window) are paid once a poll, not once a change.
        let due = {
            let last = self.timers_ran.lock().unwrap_or_else(|e| e.into_inner());
            last.is_none_or(|last| now < last || now - last >= self.poll)
        };
        if due
            && self
                .store()
                .lease_cursor(TIMERS, &self.holder, now, self.until(now))
                .await?
                .is_some()
        {
            step.written = timers::run(&self.gate, self.spike.as_ref(), now).await?;
            *self.timers_ran.lock().unwrap_or_else(|e| e.into_inner()) = Some(now);
        }
        let passes = self.routes.iter().map(|route| self.deliver_route(route));
        for pass in futures_util::future::join_all(passes).await {
            match pass? {
                None => step.held_elsewhere += 1,
                Some((delivered, failed)) => {
                    step.delivered += delivered;
                    step.failed += failed;
                }
            }
        }
        Ok(step)
    }

    /// Steps until `stop` resolves: at once when the store tells of a change, and every
    /// `poll_seconds` otherwise. A store error ends it (after letting its leases go);
    /// a delivery error never does.
    pub async fn run(
        &self,
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<(), NotifyError> {
        let mut changes = Some(self.store().subscribe().await?);
        let looping = async {
            loop {
                self.step().await?;
                let Some(subscription) = &mut changes else {
                    tokio::time::sleep(self.poll).await;
                    continue;
                };
                tokio::select! {
                    heard = subscription.next() => match heard {
                        Ok(_) | Err(StoreError::Lagged { .. }) => {}
                        // The subscription ended: poll from now on.
                        Err(_) => changes = None,
                    },
                    () = tokio::time::sleep(self.poll) => {}
                }
            }
        };
        let out = tokio::select! {
            out = looping => out,
            () = stop => Ok(()),
        };
        self.release().await;
        out
    }

    /// Lets every lease this notifier holds go, so another may take over at once.
    pub async fn release(&self) {
        let store = self.store();
        for name in self
            .routes
            .iter()
            .map(|r| r.cursor.as_str())
            .chain([TIMERS])
        {
            // Failing to let go only delays a takeover until the lease runs out.
            let _ = store.release_cursor(name, &self.holder).await;
        }
    }

    /// Delivers one batch of `route`'s records; `None` when another notifier holds it.
    async fn deliver_route(&self, route: &Route) -> Result<Option<(usize, usize)>, NotifyError> {
        let store = self.store();
        let now = self.gate.now();
        let Some(cursor) = store
            .lease_cursor(&route.cursor, &self.holder, now, self.until(now))
            .await?
        else {
            return Ok(None);
        };
        let records = store
            .audit_records(&AuditQuery {
                after_seq: Some(cursor.after_seq),
                limit: Some(BATCH),
                ..AuditQuery::default()
            })
            .await?;
        let (mut delivered, mut failed) = (0, 0);
        let mut passed = cursor.after_seq;
        for record in &records {
            let Some(seq) = record.chain.as_ref().map(|c| c.seq) else {
                continue;
            };
            let kind = NoticeKind::of_event(record.event.written_name())
                .filter(|k| route.events.is_empty() || route.events.contains(k));
            if let Some(kind) = kind {
                let mut notice =
                    payload::notice(&self.gate, record, kind, self.console_url.as_deref()).await?;
                if route.channel.refers_back()
                    && let Some(request_id) = record.request_id
                {
                    notice.reference = last_reference(&**store, request_id, &route.name).await?;
                }
                match self.deliver(route, &notice).await {
                    Ok(Delivered {
                        reference: Some(reference),
                    }) => {
                        delivered += 1;
                        if let Some(request_id) = record.request_id {
                            let request = store.get(request_id).await?;
                            let event = AuditEvent::NoticePosted {
                                channel: route.name.clone(),
                                reference,
                            };
                            let posted = AuditRecord::for_request(self.gate.now(), &request, event);
                            store.append_audit(&posted).await?;
                        }
                    }
                    Ok(_) => delivered += 1,
                    Err(error) => {
                        failed += 1;
                        let event = AuditEvent::DeliveryFailed {
                            channel: route.name.clone(),
                            record_seq: seq,
                            record_event: kind.as_str().to_owned(),
                            attempts: self.retry.attempts,
                            error: error.to_string(),
                        };
                        let version = self.gate.policy().version().as_str().to_owned();
                        let record = AuditRecord::control(self.gate.now(), &version, event);
                        store.append_audit(&record).await?;
                    }
                }
                // Done with it: move on, renewing the lease; stop if it was taken over.
                let now = self.gate.now();
                if !store
                    .advance_cursor(&route.cursor, &self.holder, seq, self.until(now))
                    .await?
                {
                    return Ok(Some((delivered, failed)));
                }
            }
            passed = seq;
        }
        if passed != cursor.after_seq {
            let now = self.gate.now();
            store
                .advance_cursor(&route.cursor, &self.holder, passed, self.until(now))
                .await?;
        }
        Ok(Some((delivered, failed)))
    }

    /// Tries `notice` on `route` as the retry policy says; the last attempt's error when
    /// none got through.
    async fn deliver(&self, route: &Route, notice: &Notice) -> Result<Delivered, DeliveryError> {
        let mut last = DeliveryError::new("no attempt was made");
        for attempt in 1..=self.retry.attempts {
            tokio::time::sleep(self.retry.backoff(attempt)).await;
            match route.channel.deliver(notice).await {
                Ok(delivered) => return Ok(delivered),
                Err(error) => last = error,
            }
        }
        Err(last)
    }
}

/// The reference of the last notice `channel` posted about `request_id`.
async fn last_reference(
    store: &dyn ApprovalStore,
    request_id: approval_gate::RequestId,
    channel: &str,
) -> Result<Option<String>, StoreError> {
    let history = store
        .audit_records(&AuditQuery::request(request_id))
        .await?;
    Ok(history.into_iter().rev().find_map(|r| match r.event {
        AuditEvent::NoticePosted {
            channel: c,
            reference,
        } if c == channel => Some(reference),
        _ => None,
    }))
}

/// A fresh random id.
fn uuid_like() -> String {
    approval_gate::RequestId::new().to_string()
}

/// One channel's place, for [`status`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChannelStatus {
    /// The channel's name.
    pub channel: String,
    /// The cursor: the last record done with, who holds it, until when.
    pub cursor: TrailCursor,
    /// How many records of the trail come after it, up to 1000 (of any event: not all
    /// are the channel's).
    pub behind: usize,
}

/// A delivery given up on, from the trail's `delivery_failed` records.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FailedDelivery {
    /// When it was given up on.
    pub at: OffsetDateTime,
    /// The channel.
    pub channel: String,
    /// The record not delivered.
    pub record_seq: u64,
    /// Its event.
    pub record_event: String,
    /// Attempts made.
    pub attempts: u32,
    /// The last attempt's error.
    pub error: String,
}

/// Where the notifier stands: each channel's cursor, and the deliveries given up on
/// (oldest first). What `approval-gate notify status` prints.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct NotifyStatus {
    /// Every channel a notifier has run, by name.
    pub channels: Vec<ChannelStatus>,
    /// Every delivery given up on.
    pub failed: Vec<FailedDelivery>,
}

/// Reads where the notifier stands from `store`.
pub async fn status(store: &dyn ApprovalStore) -> Result<NotifyStatus, StoreError> {
    let mut channels = Vec::new();
    for cursor in store.cursors().await? {
        let Some(channel) = cursor.name.strip_prefix(CURSOR_PREFIX) else {
            continue;
        };
        let after = AuditQuery {
            after_seq: Some(cursor.after_seq),
            limit: Some(1000),
            ..AuditQuery::default()
        };
        channels.push(ChannelStatus {
            channel: channel.to_owned(),
            behind: store.audit_records(&after).await?.len(),
            cursor,
        });
    }
    // Records of no call carry an empty run id: the failures are among them.
    let failed = store
        .audit_records(&AuditQuery::run(""))
        .await?
        .into_iter()
        .filter_map(|record| match record.event {
            AuditEvent::DeliveryFailed {
                channel,
                record_seq,
                record_event,
                attempts,
                error,
            } => Some(FailedDelivery {
                at: record.at,
                channel,
                record_seq,
                record_event,
                attempts,
                error,
            }),
            _ => None,
        })
        .collect();
    Ok(NotifyStatus { channels, failed })
}
