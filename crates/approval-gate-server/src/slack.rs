//! Slack's interactive endpoint: the Approve and Deny buttons of the notifier's Slack
//! messages ([`Slack`](crate::notify::Slack)) decide requests through the desk.
//!
//! Who decides is established by authentication only: Slack's request signature
//! (HMAC-SHA256 with the app's signing secret, checked in constant time, at most five
//! minutes from the gate's clock, never twice) proves the payload came from Slack, and
//! the payload's Slack user id is mapped to an [`Approver`] by the configuration. A
//! Slack user who is not mapped decides nothing; nothing in the payload names an
//! approver, a role or a tenant.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use approval_gate::{Approver, DeskError, Gate, RequestId};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha256;

/// How far a request's timestamp may be from the gate's clock, either way, in seconds:
/// five minutes, as Slack's own verifiers allow.
pub const SLACK_MAX_SKEW_SECONDS: i64 = 300;

/// The Slack app's settings for its interactive endpoint. Read from YAML or built in
/// code; unknown keys are errors.
///
/// ```
/// use approval_gate_server::SlackConfig;
///
/// let config = SlackConfig::from_yaml_str(r#"
/// signing_secret: 8f742231b10e8888abcd99yyyzzz85a5
/// bot_token: xoxb-1234-5678-abcdef
/// users:
///   U0123ANN: {id: ann, roles: [finance]}
///   U0456CAL: {id: cal, roles: [finance-lead], tenant: acme}
/// "#)?;
/// assert_eq!(config.users.len(), 2);
/// # Ok::<(), approval_gate_server::SlackConfigError>(())
/// ```
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// The app's signing secret (Basic Information, App Credentials).
    pub signing_secret: String,
    /// The bot's token (`xoxb-…`), used to open the deny dialog (`views.open`) and to
    /// tell a person why a click was refused (`chat.postEphemeral`).
    pub bot_token: String,
    /// The Web API's base URL. Default `https://slack.com/api`.
    #[serde(default = "default_api_base")]
    pub api_base: String,
    /// Who each Slack user is at the desk, by Slack user id (`U…`); users not listed
    /// decide nothing.
    #[serde(default)]
    pub users: BTreeMap<String, SlackUser>,
    /// How long a call to Slack's API may take, in seconds. Default 5 (Slack waits three
    /// seconds for the endpoint's answer).
    #[serde(default = "default_timeout_seconds")]
    pub timeout_seconds: u64,
}

impl fmt::Debug for SlackConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlackConfig")
            .field("api_base", &self.api_base)
            .field("users", &self.users)
            .finish_non_exhaustive()
    }
}

fn default_api_base() -> String {
    crate::notify::SLACK_API_BASE.to_owned()
}

fn default_timeout_seconds() -> u64 {
    5
}

/// Who a Slack user is at the desk.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackUser {
    /// The approver's id, as the desk knows them (the same as on the console).
    pub id: String,
    /// Their roles.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Their tenant, if they are bound to one.
    #[serde(default)]
    pub tenant: Option<String>,
}

impl SlackUser {
    fn approver(&self) -> Approver {
        let mut approver = Approver::new(self.id.clone());
        for role in &self.roles {
            approver = approver.with_role(role.clone());
        }
        if let Some(tenant) = &self.tenant {
            approver = approver.with_tenant(tenant.clone());
        }
        approver
    }
}

/// The Slack settings are wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("slack config: {}{message}", if field.is_empty() { String::new() } else { format!("{field}: ") })]
pub struct SlackConfigError {
    /// Where (`signing_secret`), when known.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

fn config_error(field: &str, message: impl Into<String>) -> SlackConfigError {
    SlackConfigError {
        field: field.to_owned(),
        message: message.into(),
    }
}

impl SlackConfig {
    /// Reads the settings from YAML; an error names the field and line.
    pub fn from_yaml_str(yaml: &str) -> Result<SlackConfig, SlackConfigError> {
        serde_yaml::from_str(yaml).map_err(|e| config_error("", e.to_string()))
    }
}

/// Slack's interactive endpoint over a [`Gate`]: serve [`SlackActions::router`]
/// (`POST /slack/actions`) and set that URL as the Slack app's Interactivity Request
/// URL.
///
/// It is a router of its own rather than a route of the console's [`router`](crate::router):
/// it knows callers by Slack's signature, not by the console's [`Auth`](crate::Auth), and
/// takes no part in the console's same-origin checks, so a host can mount it on a
/// different listener or path (`Router::merge` or `nest`) or leave it out.
///
/// - `block_actions`, action `approve`: approves the request (the button's value) as
///   the mapped approver, through the desk.
/// - `block_actions`, action `deny`: opens a dialog asking for feedback
///   (`views.open`: callback id `deny_feedback`, the request id as `private_metadata`,
///   one text input `feedback`).
/// - `view_submission` of `deny_feedback`: denies the request with the feedback, as the
///   mapped approver of the user who submitted it.
///
/// What it answers: 401 for a bad or missing signature, a timestamp more than five
/// minutes off, or a payload seen already (a replay), before anything is read; 400 for
/// a payload it cannot read; 403 for a Slack user who is not mapped; the desk's refusals
/// with their status (403 refused: self-approval, another tenant, a missing role, a
/// second vote; 404 not found; 409 already decided; 410 expired) and a message, also
/// shown to the person as an ephemeral message (`chat.postEphemeral`) when the payload
/// names a channel. A refused dialog submission is answered 200 with
/// `response_action: errors`, so Slack shows the message under the feedback field. A
/// refusal changes nothing.
///
/// The message itself is updated by the notifier when it delivers the decision's event
/// (`chat.update` of the message it posted), not here: a decision taken on the console
/// or in code updates it the same way.
#[derive(Clone)]
pub struct SlackActions {
    inner: Arc<Inner>,
}

struct Inner {
    gate: Gate,
    signing_secret: Vec<u8>,
    bot_token: String,
    api_base: String,
    users: HashMap<String, Approver>,
    client: reqwest::Client,
    /// Signatures accepted in the last five minutes, with their timestamps.
    seen: Mutex<HashMap<String, i64>>,
}

impl fmt::Debug for SlackActions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlackActions")
            .field("api_base", &self.inner.api_base)
            .field("users", &self.inner.users)
            .finish_non_exhaustive()
    }
}

impl SlackActions {
    /// The endpoint of `gate` with the settings of `config`; refuses an empty signing
    /// secret or bot token, an API base that is not an http(s) URL, and a user mapped to
    /// an empty id.
    pub fn new(gate: Gate, config: &SlackConfig) -> Result<SlackActions, SlackConfigError> {
        if config.signing_secret.trim().is_empty() {
            return Err(config_error("signing_secret", "is empty"));
        }
        if config.bot_token.trim().is_empty() {
            return Err(config_error("bot_token", "is empty"));
        }
        let url = reqwest::Url::parse(&config.api_base).map_err(|e| {
            config_error(
                "api_base",
                format!("`{}` is not a URL: {e}", config.api_base),
            )
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(config_error(
                "api_base",
                format!("`{}` is not an http:// or https:// URL", config.api_base),
            ));
        }
        let mut users = HashMap::new();
        for (slack_id, user) in &config.users {
            if user.id.trim().is_empty() {
                return Err(config_error(&format!("users.{slack_id}.id"), "is empty"));
            }
            users.insert(slack_id.clone(), user.approver());
        }
        let client = crate::notify::http_client(Duration::from_secs(config.timeout_seconds.max(1)))
            .map_err(|m| config_error("", m))?;
        Ok(SlackActions {
            inner: Arc::new(Inner {
                gate,
                signing_secret: config.signing_secret.trim().as_bytes().to_vec(),
                bot_token: config.bot_token.trim().to_owned(),
                api_base: config.api_base.trim_end_matches('/').to_owned(),
                users,
                client,
                seen: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The endpoint's one route: `POST /slack/actions`.
    pub fn router(self) -> Router {
        Router::new()
            .route("/slack/actions", post(actions))
            .with_state(self)
    }

    /// Checks Slack's signature of `body` and refuses a replay; records the signature
    /// as seen once it verifies.
    fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), &'static str> {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let timestamp = header("x-slack-request-timestamp").ok_or("no request timestamp")?;
        let signature = header("x-slack-signature").ok_or("no signature")?;
        let at: i64 = timestamp
            .trim()
            .parse()
            .map_err(|_| "the request timestamp is not a number")?;
        let now = self.inner.gate.now().unix_timestamp();
        if (now - at).abs() > SLACK_MAX_SKEW_SECONDS {
            return Err("the request timestamp is more than five minutes off");
        }
        let given = signature
            .strip_prefix("v0=")
            .and_then(hex_decode)
            .ok_or("the signature is not `v0=` and hex")?;
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.inner.signing_secret)
            .expect("HMAC takes any key length");
        mac.update(b"v0:");
        mac.update(timestamp.as_bytes());
        mac.update(b":");
        mac.update(body);
        mac.verify_slice(&given)
            .map_err(|_| "the signature does not match")?;
        let mut seen = self.inner.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.retain(|_, at| *at + SLACK_MAX_SKEW_SECONDS >= now);
        if seen.insert(signature.to_ascii_lowercase(), at).is_some() {
            return Err("this request was seen already");
        }
        Ok(())
    }

    /// Calls the Web API's `method`; Slack's answer when it says `ok`.
    async fn call(&self, method: &str, body: &Value) -> Result<Value, String> {
        let answer = self
            .inner
            .client
            .post(format!("{}/{method}", self.inner.api_base))
            .bearer_auth(&self.inner.bot_token)
            .header("content-type", "application/json; charset=utf-8")
            .body(serde_json::to_vec(body).unwrap_or_default())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let bytes = answer.bytes().await.map_err(|e| e.to_string())?;
        let said: Value = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
        if said["ok"] == Value::Bool(true) {
            Ok(said)
        } else {
            Err(said["error"]
                .as_str()
                .unwrap_or("no error given")
                .to_owned())
        }
    }

    /// Tells the person why their click was refused, where the payload says they clicked.
    async fn tell(&self, payload: &Value, text: &str) {
        let (Some(channel), Some(user)) = (
            payload["channel"]["id"].as_str(),
            payload["user"]["id"].as_str(),
        ) else {
            return;
        };
        // Best effort: the answer's status says it too.
        let _ = self
            .call(
                "chat.postEphemeral",
                &json!({"channel": channel, "user": user, "text": text}),
            )
            .await;
    }

    /// The approver the payload's (signed) Slack user is mapped to.
    fn approver(&self, payload: &Value) -> Option<&Approver> {
        self.inner.users.get(payload["user"]["id"].as_str()?)
    }
}

fn hex_decode(text: &str) -> Option<Vec<u8>> {
    // Digits only: `from_str_radix` alone would take a sign (`+f`), and so a second
    // spelling of one signature, which the replay check must not miss.
    if !text.len().is_multiple_of(2) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The form Slack posts: one field, `payload`, the JSON.
#[derive(Deserialize)]
struct Form {
    payload: String,
}

/// Reads the form from the (verified) body, as axum's `Form` reads a POST's.
async fn read_form(body: Bytes) -> Result<axum::Form<Form>, ()> {
    use axum::extract::FromRequest as _;
    let request = axum::http::Request::post("/slack/actions")
        .header(
            axum::http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(axum::body::Body::from(body))
        .map_err(drop)?;
    axum::Form::<Form>::from_request(request, &())
        .await
        .map_err(drop)
}

fn answer(status: StatusCode, text: &str) -> Response {
    (status, axum::Json(json!({"text": text}))).into_response()
}

/// The status and message of a desk refusal.
fn refusal(error: &DeskError) -> (StatusCode, String) {
    let status = match error {
        DeskError::NotFound { .. } => StatusCode::NOT_FOUND,
        DeskError::AlreadyDecided { .. } => StatusCode::CONFLICT,
        DeskError::Expired { .. } => StatusCode::GONE,
        DeskError::Refused { .. } => StatusCode::FORBIDDEN,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(e) = source {
        // A refusal's message already says its reason: add only what it does not.
        let cause = e.to_string();
        if !text.ends_with(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
        source = e.source();
    }
    (status, text)
}

/// `POST /slack/actions`.
async fn actions(State(slack): State<SlackActions>, headers: HeaderMap, body: Bytes) -> Response {
    // The signature first: nothing is read from a request that Slack did not sign.
    if let Err(why) = slack.verify(&headers, &body) {
        return answer(StatusCode::UNAUTHORIZED, why);
    }
    let Ok(axum::Form(form)) = read_form(body).await else {
        return answer(StatusCode::BAD_REQUEST, "the body has no `payload`");
    };
    let Ok(payload) = serde_json::from_str::<Value>(&form.payload) else {
        return answer(StatusCode::BAD_REQUEST, "the payload is not JSON");
    };
    match payload["type"].as_str() {
        Some("block_actions") => block_action(&slack, &payload).await,
        Some("view_submission") => view_submission(&slack, &payload).await,
        _ => answer(StatusCode::BAD_REQUEST, "this payload type is not handled"),
    }
}

const UNMAPPED: &str = "your Slack user is not mapped to an approver: ask an administrator";

async fn block_action(slack: &SlackActions, payload: &Value) -> Response {
    let Some(approver) = slack.approver(payload).cloned() else {
        slack.tell(payload, UNMAPPED).await;
        return answer(StatusCode::FORBIDDEN, UNMAPPED);
    };
    let action = &payload["actions"][0];
    let Some(id) = action["value"]
        .as_str()
        .and_then(|v| v.parse::<RequestId>().ok())
    else {
        return answer(StatusCode::BAD_REQUEST, "the button names no request");
    };
    match action["action_id"].as_str() {
        Some("approve") => match slack.inner.gate.desk().approve(id, &approver).await {
            Ok(_) => answer(StatusCode::OK, "approved"),
            Err(error) => {
                let (status, text) = refusal(&error);
                slack.tell(payload, &text).await;
                answer(status, &text)
            }
        },
        Some("deny") => {
            let Some(trigger) = payload["trigger_id"].as_str() else {
                return answer(StatusCode::BAD_REQUEST, "the payload has no `trigger_id`");
            };
            let view = deny_dialog(id);
            match slack
                .call("views.open", &json!({"trigger_id": trigger, "view": view}))
                .await
            {
                Ok(_) => answer(StatusCode::OK, "asked for feedback"),
                Err(error) => answer(
                    StatusCode::BAD_GATEWAY,
                    &format!("slack's `views.open` refused: {error}"),
                ),
            }
        }
        _ => answer(StatusCode::BAD_REQUEST, "this action is not handled"),
    }
}

/// The dialog that asks for the feedback of a denial.
fn deny_dialog(id: RequestId) -> Value {
    json!({
        "type": "modal",
        "callback_id": "deny_feedback",
        "private_metadata": id.to_string(),
        "title": {"type": "plain_text", "text": "Deny the request"},
        "submit": {"type": "plain_text", "text": "Deny"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [{
            "type": "input",
            "block_id": "feedback",
            "label": {"type": "plain_text", "text": "Feedback for the agent"},
            "element": {"type": "plain_text_input", "action_id": "feedback", "multiline": true},
        }],
    })
}

/// A dialog's refusal: Slack shows `text` under the feedback field.
fn dialog_error(text: &str) -> Response {
    (
        StatusCode::OK,
        axum::Json(json!({"response_action": "errors", "errors": {"feedback": text}})),
    )
        .into_response()
}

async fn view_submission(slack: &SlackActions, payload: &Value) -> Response {
    let view = &payload["view"];
    if view["callback_id"].as_str() != Some("deny_feedback") {
        return answer(StatusCode::BAD_REQUEST, "this dialog is not handled");
    }
    let Some(approver) = slack.approver(payload).cloned() else {
        return dialog_error(UNMAPPED);
    };
    let Some(id) = view["private_metadata"]
        .as_str()
        .and_then(|v| v.parse::<RequestId>().ok())
    else {
        return answer(StatusCode::BAD_REQUEST, "the dialog names no request");
    };
    let feedback = view["state"]["values"]
        .as_object()
        .into_iter()
        .flat_map(|blocks| blocks.values())
        .find_map(|block| block["feedback"]["value"].as_str())
        .map(str::trim)
        .filter(|f| !f.is_empty());
    match slack.inner.gate.desk().deny(id, &approver, feedback).await {
        Ok(_) => StatusCode::OK.into_response(),
        Err(error) => dialog_error(&refusal(&error).1),
    }
}

#[cfg(test)]
mod tests {
    use super::hex_decode;

    #[test]
    fn hex_is_read_or_refused() {
        assert_eq!(hex_decode("00ff10"), Some(vec![0, 255, 16]));
        assert_eq!(hex_decode("0"), None);
        assert_eq!(hex_decode("zz"), None);
        assert_eq!(hex_decode("é1"), None);
        assert_eq!(hex_decode("+f"), None);
    }
}
