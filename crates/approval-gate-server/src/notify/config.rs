//! What the notifier is told: its channels, which events go where, retries, the
//! timeout-spike rule. Read from YAML (the `notify` section of `approval-gate`'s config
//! file) or built in code.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// The events a channel may be sent: the trail's own names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum NoticeKind {
    /// A request was filed: someone must decide it.
    ApprovalRequired,
    /// A request was approved.
    ApprovalGranted,
    /// A request was denied.
    ApprovalDenied,
    /// A request timed out undecided (or its approval went unused).
    ApprovalTimeout,
    /// A request was cancelled.
    ApprovalCancelled,
    /// An approved call ran.
    Executed,
    /// An approved call ran and failed.
    ExecutionFailed,
    /// A request is still pending after its tier's `remind_after_seconds`.
    ApprovalReminded,
    /// A request is still pending after its tier's `escalate_after_seconds`.
    ApprovalEscalated,
    /// Timeouts spiked above the timeout-spike rule.
    TimeoutSpike,
    /// A timeout spike is over.
    TimeoutSpikeCleared,
}

impl NoticeKind {
    /// Every kind, in order.
    pub const ALL: [NoticeKind; 11] = [
        NoticeKind::ApprovalRequired,
        NoticeKind::ApprovalGranted,
        NoticeKind::ApprovalDenied,
        NoticeKind::ApprovalTimeout,
        NoticeKind::ApprovalCancelled,
        NoticeKind::Executed,
        NoticeKind::ExecutionFailed,
        NoticeKind::ApprovalReminded,
        NoticeKind::ApprovalEscalated,
        NoticeKind::TimeoutSpike,
        NoticeKind::TimeoutSpikeCleared,
    ];

    /// The kind of a trail event, by its name; `None` for events that are not sent.
    pub fn of_event(name: &str) -> Option<NoticeKind> {
        NoticeKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// The event's name, as in the trail and in payloads' `type`.
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeKind::ApprovalRequired => "approval_required",
            NoticeKind::ApprovalGranted => "approval_granted",
            NoticeKind::ApprovalDenied => "approval_denied",
            NoticeKind::ApprovalTimeout => "approval_timeout",
            NoticeKind::ApprovalCancelled => "approval_cancelled",
            NoticeKind::Executed => "executed",
            NoticeKind::ExecutionFailed => "execution_failed",
            NoticeKind::ApprovalReminded => "approval_reminded",
            NoticeKind::ApprovalEscalated => "approval_escalated",
            NoticeKind::TimeoutSpike => "timeout_spike",
            NoticeKind::TimeoutSpikeCleared => "timeout_spike_cleared",
        }
    }
}

/// The notifier's settings. Every key but `channels` has a default; unknown keys are
/// errors.
///
/// ```
/// use approval_gate_server::notify::NotifyConfig;
///
/// let config = NotifyConfig::from_yaml_str(r#"
/// console_url: https://approvals.example.com
/// channels:
///   ops:
///     kind: webhook
///     url: https://hooks.example.com/approvals
///     secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
///     events: [approval_required, approval_reminded, approval_escalated]
/// timeout_spike:
///   window_seconds: 3600
///   threshold: 0.5
///   min_count: 5
/// "#)?;
/// assert_eq!(config.channels.len(), 1);
/// # Ok::<(), approval_gate_server::notify::NotifyError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// The console's base URL: payloads link to `{console_url}/requests/{id}`.
    #[serde(default)]
    pub console_url: Option<String>,
    /// The channels, by name (the name keys the channel's cursor in the store: renaming a
    /// channel starts it afresh at the end of the trail).
    #[serde(default)]
    pub channels: BTreeMap<String, ChannelConfig>,
    /// How often and how long a delivery is tried.
    #[serde(default)]
    pub retry: RetryPolicy,
    /// When to raise a timeout-spike alert; none by default.
    #[serde(default)]
    pub timeout_spike: Option<SpikeRule>,
    /// How long a notifier holds a channel's lease without renewing it: after a crash,
    /// another notifier takes the channel over this long after the last renewal. The
    /// lease is renewed after each notice, so it should outlast one notice's attempts
    /// (their timeouts and backoff); a shorter lease lets a second notifier deliver
    /// the same notice beside a slow first one. Default 60.
    #[serde(default = "default_lease_seconds")]
    pub lease_seconds: u64,
    /// How often a running notifier looks at the trail when no change woke it, in
    /// seconds, and how often at most it looks for reminders, escalations and timeout
    /// spikes due (they come due without a change). Default 5.
    #[serde(default = "default_poll_seconds")]
    pub poll_seconds: u64,
}

fn default_lease_seconds() -> u64 {
    60
}

fn default_poll_seconds() -> u64 {
    5
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            console_url: None,
            channels: BTreeMap::new(),
            retry: RetryPolicy::default(),
            timeout_spike: None,
            lease_seconds: default_lease_seconds(),
            poll_seconds: default_poll_seconds(),
        }
    }
}

impl NotifyConfig {
    /// Reads the settings from YAML; an error names the field and line.
    pub fn from_yaml_str(yaml: &str) -> Result<NotifyConfig, super::NotifyError> {
        serde_yaml::from_str(yaml).map_err(|e| super::NotifyError::Config {
            field: String::new(),
            message: e.to_string(),
        })
    }
}

/// One channel: where its notices go, and which.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum ChannelConfig {
    /// An HTTP endpoint, sent each notice as a POST signed as Standard Webhooks
    /// specifies.
    Webhook {
        /// Where to POST (`http://` or `https://`).
        url: String,
        /// The signing secret, `whsec_` and the secret's base64.
        secret: String,
        /// The events sent; every event when empty.
        #[serde(default)]
        events: BTreeSet<NoticeKind>,
        /// How long one attempt may take, in seconds. Default 10.
        #[serde(default = "default_timeout_seconds")]
        timeout_seconds: u64,
    },
    /// A Slack channel, posted to with a bot token through Slack's Web API: one message
    /// per request with Approve and Deny buttons, updated as the request is decided
    /// (see [`Slack`](super::Slack)).
    Slack {
        /// The bot's token (`xoxb-…`), with the `chat:write` scope.
        bot_token: String,
        /// The channel's id (`C0123456789`), or a name the bot may post to.
        channel: String,
        /// The Web API's base URL. Default `https://slack.com/api`.
        #[serde(default = "default_slack_api_base")]
        api_base: String,
        /// The events sent; every event when empty.
        #[serde(default)]
        events: BTreeSet<NoticeKind>,
        /// How long one attempt may take, in seconds. Default 10.
        #[serde(default = "default_timeout_seconds")]
        timeout_seconds: u64,
    },
}

fn default_slack_api_base() -> String {
    super::slack::SLACK_API_BASE.to_owned()
}

fn default_timeout_seconds() -> u64 {
    10
}

/// How a delivery is retried: `attempts` tries in all, waiting `backoff_ms` before the
/// second, twice that before the third, and so on up to `max_backoff_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryPolicy {
    /// Tries in all, at least 1. Default 5.
    pub attempts: u32,
    /// The wait before the second try, in milliseconds. Default 1000.
    pub backoff_ms: u64,
    /// The longest wait between tries, in milliseconds. Default 60000.
    pub max_backoff_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            backoff_ms: 1000,
            max_backoff_ms: 60_000,
        }
    }
}

impl RetryPolicy {
    /// The wait before try `n` (counting from 1; none before the first).
    pub fn backoff(&self, n: u32) -> std::time::Duration {
        if n <= 1 {
            return std::time::Duration::ZERO;
        }
        let factor = 1u64.checked_shl(n - 2).unwrap_or(u64::MAX);
        std::time::Duration::from_millis(
            self.backoff_ms
                .saturating_mul(factor)
                .min(self.max_backoff_ms),
        )
    }
}

/// When timeouts spike: of the requests decided in the last `window_seconds` (at least
/// `min_count` of them), more than `threshold` (0 to 1) timed out. The alert is raised
/// once per episode, and cleared once when the rate falls back to the threshold or under.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpikeRule {
    /// The window, in seconds.
    pub window_seconds: u64,
    /// The timeout rate above which it is a spike, from 0 to 1.
    pub threshold: f64,
    /// The fewest decided requests in the window for the rate to count. Default 1.
    #[serde(default = "default_min_count")]
    pub min_count: u64,
}

fn default_min_count() -> u64 {
    1
}
