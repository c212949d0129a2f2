//! Slack through its Web API: one message per request, with Approve and Deny buttons,
//! updated in place as the request is decided, times out or runs.

use std::time::Duration;

use serde_json::{Value, json};

use super::{Channel, Delivered, DeliveryError, Notice, NoticeKind};

/// The Slack Web API's base URL.
pub const SLACK_API_BASE: &str = "https://slack.com/api";

/// The longest text a section block takes is 3000 characters; arguments are cut well
/// before that.
const ARGS_LIMIT: usize = 2500;

/// A [`Channel`] that posts to a Slack channel with a bot token (`chat:write` scope).
///
/// - `approval_required`: `chat.postMessage` with the preview, the redacted arguments
///   (`shown_args`, never the raw ones), tier, requester, expiry, the console's link,
///   and Approve / Deny buttons (action ids `approve` and `deny`, value the request id)
///   while the request is pending. The message's `{channel}:{ts}` is the delivery's
///   [reference](Delivered::reference).
/// - A later event about the same request (granted, denied, timed out, cancelled,
///   executed, failed) with a reference: `chat.update` of that message showing the
///   outcome (who decided, their feedback), without buttons once the request is no
///   longer pending.
/// - A reminder or an escalation with a reference: a reply in the message's thread
///   (`chat.postMessage` with `thread_ts`), so the buttons stay on the first message
///   and the people in the thread are notified; the reference stays the first message.
/// - Any request's event without a reference (the channel was not sent the
///   `approval_required`): a new message, with buttons if the request is still pending.
/// - A timeout spike or its end: a plain message.
///
/// Slack answers HTTP 200 with `{"ok": true, ...}` or `{"ok": false, "error": "..."}`;
/// anything but `ok: true` is a failed attempt, retried by the notifier.
#[derive(Debug, Clone)]
pub struct Slack {
    api_base: String,
    bot_token: String,
    channel: String,
    client: reqwest::Client,
}

impl Slack {
    /// Posts to `channel` (an id such as `C0123456789`, or a name the bot can post to)
    /// with `bot_token` (`xoxb-…`), through the API at `api_base` (usually
    /// [`SLACK_API_BASE`]), each attempt given `timeout`.
    pub fn new(
        api_base: &str,
        bot_token: &str,
        channel: &str,
        timeout: Duration,
    ) -> Result<Slack, String> {
        let url =
            reqwest::Url::parse(api_base).map_err(|e| format!("`{api_base}` is not a URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("`{api_base}` is not an http:// or https:// URL"));
        }
        if bot_token.trim().is_empty() {
            return Err("the bot token is empty".into());
        }
        if channel.trim().is_empty() {
            return Err("the channel is empty".into());
        }
        Ok(Slack {
            api_base: api_base.trim_end_matches('/').to_owned(),
            bot_token: bot_token.trim().to_owned(),
            channel: channel.trim().to_owned(),
            client: super::http_client(timeout)?,
        })
    }

    /// Calls the Web API's `method` with `body`; Slack's answer when it says `ok`.
    async fn call(&self, method: &str, body: &Value) -> Result<Value, DeliveryError> {
        let answer = self
            .client
            .post(format!("{}/{method}", self.api_base))
            .bearer_auth(&self.bot_token)
            .header("content-type", "application/json; charset=utf-8")
            .body(serde_json::to_vec(body).unwrap_or_default())
            .send()
            .await
            .map_err(DeliveryError::new)?;
        let status = answer.status();
        if !status.is_success() {
            return Err(DeliveryError::new(format!(
                "slack's `{method}` answered {status}"
            )));
        }
        let bytes = answer.bytes().await.map_err(DeliveryError::new)?;
        let said: Value = serde_json::from_slice(&bytes).map_err(DeliveryError::new)?;
        if said["ok"] != Value::Bool(true) {
            let error = said["error"].as_str().unwrap_or("no error given");
            return Err(DeliveryError::new(format!(
                "slack's `{method}` refused: {error}"
            )));
        }
        Ok(said)
    }
}

#[async_trait::async_trait]
impl Channel for Slack {
    async fn deliver(&self, notice: &Notice) -> Result<Delivered, DeliveryError> {
        let data = &notice.payload["data"];
        let request = &data["request"];
        if !request.is_object() {
            let body = json!({"channel": self.channel, "text": spike_text(notice.kind, data)});
            self.call("chat.postMessage", &body).await?;
            return Ok(Delivered::default());
        }
        let (text, blocks) = message(notice.kind, data);
        let referred = notice.reference.as_deref().and_then(|r| r.split_once(':'));
        match (referred, notice.kind) {
            (Some((channel, ts)), NoticeKind::ApprovalReminded | NoticeKind::ApprovalEscalated) => {
                let body = json!({
                    "channel": channel,
                    "thread_ts": ts,
                    "text": text,
                    "blocks": [section(&text)],
                });
                self.call("chat.postMessage", &body).await?;
                Ok(Delivered::default())
            }
            (Some((channel, ts)), _) => {
                let body = json!({"channel": channel, "ts": ts, "text": text, "blocks": blocks});
                self.call("chat.update", &body).await?;
                Ok(Delivered::default())
            }
            (None, _) => {
                let body = json!({"channel": self.channel, "text": text, "blocks": blocks});
                let said = self.call("chat.postMessage", &body).await?;
                match (said["channel"].as_str(), said["ts"].as_str()) {
                    (Some(channel), Some(ts)) => {
                        Ok(Delivered::with_reference(format!("{channel}:{ts}")))
                    }
                    _ => Err(DeliveryError::new(
                        "slack's `chat.postMessage` answered without `channel` and `ts`",
                    )),
                }
            }
        }
    }

    fn refers_back(&self) -> bool {
        true
    }
}

/// Escapes text for Slack's mrkdwn: `&`, `<` and `>`, as Slack asks.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Cuts `text` to at most `limit` characters, saying so.
fn cut(text: &str, limit: usize) -> String {
    if text.chars().count() <= limit {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(limit).collect();
    cut.push_str("\n… (cut)");
    cut
}

fn section(text: &str) -> Value {
    json!({"type": "section", "text": {"type": "mrkdwn", "text": text}})
}

fn str_of<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value[key].as_str().filter(|s| !s.is_empty())
}

/// The headline of a request's notice, in mrkdwn.
fn headline(kind: NoticeKind, data: &Value) -> String {
    let request = &data["request"];
    let preview = escape(str_of(request, "preview").unwrap_or("a tool call"));
    let by = str_of(data, "by").map(escape);
    let by = by.as_deref().unwrap_or("someone");
    match kind {
        NoticeKind::ApprovalRequired => format!("Approval required: *{preview}*"),
        NoticeKind::ApprovalGranted => format!(":white_check_mark: Approved by {by}: *{preview}*"),
        NoticeKind::ApprovalDenied => format!(":no_entry: Denied by {by}: *{preview}*"),
        NoticeKind::ApprovalTimeout => format!(":hourglass: Timed out: *{preview}*"),
        NoticeKind::ApprovalCancelled => {
            format!(":heavy_multiplication_x: Cancelled by {by}: *{preview}*")
        }
        NoticeKind::Executed => format!(":white_check_mark: Approved and ran: *{preview}*"),
        NoticeKind::ExecutionFailed => {
            format!(":warning: Approved, but the call failed: *{preview}*")
        }
        NoticeKind::ApprovalReminded => format!(":bell: Still waiting for a decision: *{preview}*"),
        NoticeKind::ApprovalEscalated => {
            let to: Vec<String> = data["escalate_to"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(escape)
                .collect();
            format!(
                ":rotating_light: Escalated to {}: *{preview}*",
                if to.is_empty() {
                    "the escalation roles".into()
                } else {
                    to.join(", ")
                }
            )
        }
        NoticeKind::TimeoutSpike | NoticeKind::TimeoutSpikeCleared => preview,
    }
}

/// The fallback text and the Block Kit blocks of a request's notice.
fn message(kind: NoticeKind, data: &Value) -> (String, Value) {
    let request = &data["request"];
    let headline = headline(kind, data);
    let mut blocks = vec![section(&headline)];
    let field = |name: &str, value: Option<&str>| json!({"type": "mrkdwn", "text": format!("*{name}*\n{}", escape(value.unwrap_or("none")))});
    let mut fields = vec![
        field("Tool", str_of(request, "tool")),
        field("Tier", str_of(request, "tier")),
        field("Requested by", str_of(request, "requester")),
        field("Expires", str_of(request, "expires_at")),
    ];
    if let Some(tenant) = str_of(request, "tenant") {
        fields.push(field("Tenant", Some(tenant)));
    }
    if let Some(state) = str_of(request, "state") {
        fields.push(field("State", Some(state)));
    }
    let approvers: Vec<&str> = request["approvers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if !approvers.is_empty() {
        fields.push(field("Approved by", Some(&approvers.join(", "))));
    }
    if let Some(decided_by) = str_of(request, "decided_by") {
        fields.push(field("Decided by", Some(decided_by)));
    }
    blocks.push(json!({"type": "section", "fields": fields}));
    // The redacted arguments: the payload carries `shown_args` only. A value holding
    // three backticks would end the code block and have the rest read as formatting:
    // a zero-width space between them keeps it inside.
    let args = serde_json::to_string_pretty(&request["shown_args"])
        .unwrap_or_default()
        .replace("```", "`\u{200b}`\u{200b}`");
    blocks.push(section(&format!(
        "*Arguments* (secrets redacted)\n```{}```",
        escape(&cut(&args, ARGS_LIMIT))
    )));
    if let Some(feedback) = str_of(request, "feedback") {
        blocks.push(section(&format!(
            "*Feedback*\n{}",
            escape(&cut(feedback, ARGS_LIMIT))
        )));
    }
    if let Some(url) = str_of(data, "url") {
        blocks.push(json!({
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": format!("<{}|Open in the console>", escape(url))}],
        }));
    }
    if let (Some("pending"), Some(id)) = (str_of(request, "state"), str_of(request, "id")) {
        blocks.push(json!({
            "type": "actions",
            "block_id": "decision",
            "elements": [
                {"type": "button", "action_id": "approve", "style": "primary",
                 "text": {"type": "plain_text", "text": "Approve"}, "value": id},
                {"type": "button", "action_id": "deny", "style": "danger",
                 "text": {"type": "plain_text", "text": "Deny"}, "value": id},
            ],
        }));
    }
    (headline, Value::Array(blocks))
}

/// The text of a timeout-spike alert or its end.
fn spike_text(kind: NoticeKind, data: &Value) -> String {
    let timeouts = data["timeouts"].as_u64().unwrap_or(0);
    let decided = data["decided"].as_u64().unwrap_or(0);
    let window = data["window_seconds"].as_u64().unwrap_or(0);
    match kind {
        NoticeKind::TimeoutSpikeCleared => format!(
            "Timeout spike over: {timeouts} of {decided} requests timed out in the last {window} s"
        ),
        _ => format!(
            ":rotating_light: Timeout spike: {timeouts} of {decided} requests timed out in the last {window} s"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pending_request_has_buttons_and_a_decided_one_none() {
        let data = json!({"request": {"id": "r1", "state": "pending", "preview": "pay <b> & co",
            "shown_args": {"password": "[redacted]"}}, "url": "https://c/requests/r1"});
        let (text, blocks) = message(NoticeKind::ApprovalRequired, &data);
        assert_eq!(text, "Approval required: *pay &lt;b&gt; &amp; co*");
        let last = blocks.as_array().unwrap().last().unwrap();
        assert_eq!(last["elements"][0]["action_id"], "approve");
        assert_eq!(last["elements"][1]["value"], "r1");
        let data =
            json!({"request": {"id": "r1", "state": "denied", "feedback": "no"}, "by": "ann"});
        let (text, blocks) = message(NoticeKind::ApprovalDenied, &data);
        assert!(text.contains("Denied by ann"));
        assert!(
            blocks
                .as_array()
                .unwrap()
                .iter()
                .all(|b| b["type"] != "actions")
        );
    }

    #[test]
    fn arguments_stay_in_their_code_block() {
        let data = json!({"request": {"id": "r1", "state": "pending",
            "shown_args": {"note": "```\n*Approved by the CFO*"}}});
        let (_, blocks) = message(NoticeKind::ApprovalRequired, &data);
        let args = blocks[2]["text"]["text"].as_str().unwrap();
        assert_eq!(args.matches("```").count(), 2, "{args}");
    }

    #[test]
    fn a_spike_is_a_plain_message() {
        let data = json!({"timeouts": 3, "decided": 4, "window_seconds": 600});
        assert!(spike_text(NoticeKind::TimeoutSpike, &data).contains("3 of 4"));
        assert!(
            spike_text(NoticeKind::TimeoutSpikeCleared, &data).starts_with("Timeout spike over")
        );
    }

    #[test]
    fn long_arguments_are_cut() {
        let long = "x".repeat(5000);
        assert!(cut(&long, ARGS_LIMIT).chars().count() < 2600);
    }
}
