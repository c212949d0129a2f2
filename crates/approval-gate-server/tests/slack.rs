//! Slack as a team meets it: the notifier posts to a local stand-in for Slack's Web API
//! (answering as Slack does), and signed interactive payloads, made as Slack makes them,
//! decide through the endpoint. Time moves with `ManualClock`.
//!
//! The signatures are made by Slack's own Python SDK (`slack_sdk`'s `SignatureVerifier`)
//! and the messages' blocks are parsed back by its Block Kit models, given
//! `APPROVAL_GATE_TEST_PYTHON`, an interpreter with the pinned `slack_sdk`. Without it
//! the test signs with its own HMAC, says `skipped: the slack_sdk checks`, and the rest
//! still runs.

mod common;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use approval_gate::serde_json::{Value, json};
use approval_gate::{
    Approver, Execution, Gate, GateOutcome, Gated, Key, Keyring, ManualClock, MemoryStore, Policy,
    RequestId, RequestState, ToolCall, ToolExecutor,
};
use approval_gate_server::notify::{Notifier, NotifyConfig};
use approval_gate_server::{SlackActions, SlackConfig};
use axum::body::Body;
use axum::extract::Path;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::routing::post;
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;

const POLICY: &str = "\
approvals:
  redact: [args.password]
tiers:
  payments:
    ttl_seconds: 600
    remind_after_seconds: 60
rules:
  - id: pay
    tool: payments.send
    effect: approval_required
    tier: payments
    preview: 'pay {amount} to {to}'
";

const SIGNING_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
const BOT_TOKEN: &str = "xoxb-1234-5678-test";
const CHANNEL: &str = "C123";
const TS: &str = "1700000000.000100";
const REPLY_TS: &str = "1700000000.000200";

/// One call to the Web API.
#[derive(Debug, Clone)]
struct ApiCall {
    method: String,
    authorization: String,
    body: Value,
    raw: String,
}

/// A stand-in for Slack's Web API on 127.0.0.1: answers every method as Slack does when
/// it succeeds, and records each call.
#[derive(Clone)]
struct SlackApi {
    base: String,
    calls: Arc<Mutex<Vec<ApiCall>>>,
}

impl SlackApi {
    async fn start() -> SlackApi {
        let calls: Arc<Mutex<Vec<ApiCall>>> = Arc::default();
        let app = axum::Router::new().route(
            "/api/{method}",
            post({
                let calls = calls.clone();
                move |Path(method): Path<String>, headers: HeaderMap, raw: String| async move {
                    let authorization = headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    let body = approval_gate::serde_json::from_str(&raw).unwrap_or(Value::Null);
                    calls.lock().unwrap().push(ApiCall {
                        method: method.clone(),
                        authorization,
                        body: body.clone(),
                        raw,
                    });
                    let answer = match method.as_str() {
                        "views.open" => json!({"ok": true, "view": {"id": "V123"}}),
                        "chat.postEphemeral" => json!({"ok": true, "message_ts": TS}),
                        // A reply in a thread is a message of its own.
                        _ if body.get("thread_ts").is_some() => {
                            json!({"ok": true, "channel": CHANNEL, "ts": REPLY_TS})
                        }
                        _ => json!({"ok": true, "channel": CHANNEL, "ts": TS}),
                    };
                    axum::Json(answer)
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}/api", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        SlackApi { base, calls }
    }

    fn calls(&self) -> Vec<ApiCall> {
        self.calls.lock().unwrap().clone()
    }

    fn of(&self, method: &str) -> Vec<ApiCall> {
        self.calls()
            .into_iter()
            .filter(|c| c.method == method)
            .collect()
    }
}

struct World {
    gate: Gate,
    clock: ManualClock,
    api: SlackApi,
    notifier: Notifier,
    endpoint: axum::Router,
    signer: Signer,
}

impl World {
    async fn new() -> World {
        let api = SlackApi::start().await;
        let clock = ManualClock::default();
        let gate = Gate::builder(
            Policy::from_yaml_str(POLICY).unwrap(),
            Keyring::new(Key::new("k1", [7u8; 32]).unwrap()),
        )
        .store(MemoryStore::new())
        .clock(clock.clone())
        .build();
        let config = NotifyConfig::from_yaml_str(&format!(
            "console_url: https://approvals.example.com\n\
             retry: {{attempts: 1, backoff_ms: 0}}\n\
             channels:\n  team:\n    kind: slack\n    bot_token: {BOT_TOKEN}\n    channel: {CHANNEL}\n    api_base: {}\n",
            api.base
        ))
        .unwrap();
        let notifier = Notifier::new(gate.clone(), &config).unwrap();
        // Started before anything happened: the channel's cursor begins here.
        notifier.step().await.unwrap();
        let slack = SlackConfig::from_yaml_str(&format!(
            "signing_secret: {SIGNING_SECRET}\n\
             bot_token: {BOT_TOKEN}\n\
             api_base: {}\n\
             users:\n  UANN: {{id: ann, roles: [finance]}}\n  UBOB: {{id: bob, roles: [finance]}}\n",
            api.base
        ))
        .unwrap();
        let endpoint = SlackActions::new(gate.clone(), &slack).unwrap().router();
        World {
            gate,
            clock,
            api,
            notifier,
            endpoint,
            signer: Signer::new(),
        }
    }

    fn tool(&self) -> Gated<impl ToolExecutor<Output = (), Error = std::io::Error> + use<>> {
        self.gate
            .wrap(|_exec: Execution| async move { Ok::<(), std::io::Error>(()) })
    }

    async fn file(&self, call_id: &str) -> RequestId {
        match self.tool().call(payment(call_id)).await.unwrap() {
            GateOutcome::Pending(p) => p.request_id,
            other => panic!("expected pending, got {}", other.name()),
        }
    }

    async fn step(&self) {
        let step = self.notifier.step().await.unwrap();
        assert_eq!(step.failed, 0);
    }

    /// The form Slack posts for `payload`, signed at `timestamp`.
    fn signed(&self, payload: &Value, timestamp: i64) -> (String, String) {
        let body = format!("payload={}", form_encode(&payload.to_string()));
        let signature = self.signer.sign(timestamp, &body);
        (body, signature)
    }

    /// Posts a signed `payload` to the endpoint, signed now by the gate's clock.
    async fn post(&self, payload: &Value) -> (StatusCode, Value) {
        let (body, signature) = self.signed(payload, self.now());
        self.send(&body, self.now(), &signature).await
    }

    async fn send(&self, body: &str, timestamp: i64, signature: &str) -> (StatusCode, Value) {
        let request = Request::post("/slack/actions")
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-slack-request-timestamp", timestamp.to_string())
            .header("x-slack-signature", signature)
            .body(Body::from(body.to_owned()))
            .unwrap();
        let response = self.endpoint.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let value = approval_gate::serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, value)
    }

    fn now(&self) -> i64 {
        self.gate.now().unix_timestamp()
    }

    /// Asserts `id` is pending with no vote: nothing changed.
    async fn untouched(&self, id: RequestId) {
        let request = self.gate.desk().show(id).await.unwrap();
        assert_eq!(request.state_at(self.gate.now()), RequestState::Pending);
        assert!(request.approvers().is_empty(), "{:?}", request.approvers());
    }
}

/// Encodes `text` as a form value, as Slack does: everything but `A-Za-z0-9*-._` as
/// `%XX`, a space as `+`.
fn form_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                (b as char).to_string()
            }
            b' ' => "+".to_owned(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn payment(call_id: &str) -> ToolCall {
    ToolCall::new(
        "run-1",
        call_id,
        "payments.send",
        json!({"amount": 120, "to": "acme", "password": "hunter2-SECRET"}),
    )
    .with_requester("bob")
}

fn click(user: &str, action: &str, id: RequestId) -> Value {
    json!({
        "type": "block_actions",
        "user": {"id": user, "username": user.to_lowercase()},
        "trigger_id": "13345224609.738474920.8088930838d88f008e0",
        "channel": {"id": CHANNEL},
        "message": {"ts": TS},
        "actions": [{"type": "button", "action_id": action, "block_id": "decision",
                     "value": id.to_string(), "action_ts": "1700000001.000200"}],
    })
}

fn submission(user: &str, id: &str, feedback: &str) -> Value {
    json!({
        "type": "view_submission",
        "user": {"id": user},
        "view": {
            "id": "V123",
            "callback_id": "deny_feedback",
            "private_metadata": id,
            "state": {"values": {"feedback": {"feedback": {"type": "plain_text_input", "value": feedback}}}},
        },
    })
}

fn python() -> Option<PathBuf> {
    common::python_with("slack_sdk")
}

/// Runs a script of `tests/slack` with `input` on its standard input.
fn run(python: &std::path::Path, name: &str, args: &[&str], input: &str) -> String {
    common::run_script(python, &format!("slack/{name}"), args, input)
}

/// Signs as Slack does: with Slack's own SDK when there is one, else with HMAC here.
enum Signer {
    SlackSdk(PathBuf),
    Here,
}

impl Signer {
    fn new() -> Signer {
        match python() {
            Some(python) => Signer::SlackSdk(python),
            None => {
                eprintln!(
                    "skipped: the slack_sdk checks (APPROVAL_GATE_TEST_PYTHON names no Python with `slack_sdk`); signing in Rust"
                );
                Signer::Here
            }
        }
    }

    fn sign(&self, timestamp: i64, body: &str) -> String {
        match self {
            Signer::SlackSdk(python) => {
                let line = json!({"timestamp": timestamp.to_string(), "body": body});
                let out = run(python, "sign.py", &[SIGNING_SECRET], &format!("{line}\n"));
                out.trim().to_owned()
            }
            Signer::Here => sign_here(timestamp, body),
        }
    }
}

fn sign_here(timestamp: i64, body: &str) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SIGNING_SECRET.as_bytes()).unwrap();
    mac.update(format!("v0:{timestamp}:{body}").as_bytes());
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("v0={hex}")
}

/// Parses every block of every message with Slack's SDK and checks it gives back the
/// same JSON.
fn check_blocks(calls: &[ApiCall]) {
    let Some(python) = python() else {
        eprintln!("skipped: the slack_sdk checks (the blocks)");
        return;
    };
    let messages: Vec<&Value> = calls.iter().filter_map(|c| c.body.get("blocks")).collect();
    let n: usize = messages.iter().map(|b| b.as_array().unwrap().len()).sum();
    assert!(n > 0);
    let out = run(&python, "blocks.py", &[], &json!(messages).to_string());
    let said: Value = approval_gate::serde_json::from_str(out.trim()).unwrap();
    assert_eq!(said["blocks"], n, "{said}");
}

/// No call to Slack carried the call's secret, and every block sent parses.
fn no_secret_and_blocks_parse(world: &World) {
    for call in world.api.calls() {
        assert!(!call.raw.contains("hunter2"), "{}", call.raw);
    }
    check_blocks(&world.api.calls());
}

fn has_buttons(blocks: &Value) -> bool {
    blocks
        .as_array()
        .unwrap()
        .iter()
        .any(|b| b["type"] == "actions")
}

#[tokio::test]
async fn a_filed_request_is_posted_with_buttons_and_redacted_arguments() {
    let world = World::new().await;
    let id = world.file("c1").await;
    world.step().await;

    let posts = world.api.of("chat.postMessage");
    assert_eq!(posts.len(), 1);
    let post = &posts[0];
    assert_eq!(post.authorization, format!("Bearer {BOT_TOKEN}"));
    assert_eq!(post.body["channel"], CHANNEL);
    assert!(
        post.body["text"]
            .as_str()
            .unwrap()
            .contains("pay 120 to acme")
    );
    let blocks = &post.body["blocks"];
    let actions = blocks
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "actions")
        .expect("buttons");
    let buttons = actions["elements"].as_array().unwrap();
    assert_eq!(
        buttons
            .iter()
            .map(|b| (
                b["action_id"].as_str().unwrap(),
                b["style"].as_str().unwrap(),
                b["value"].as_str().unwrap()
            ))
            .collect::<Vec<_>>(),
        [
            ("approve", "primary", id.to_string().as_str()),
            ("deny", "danger", id.to_string().as_str())
        ]
    );
    let raw = &post.raw;
    assert!(raw.contains("[redacted]"), "{raw}");
    assert!(raw.contains("payments"), "{raw}");
    assert!(raw.contains("bob"), "{raw}");
    assert!(raw.contains(&format!("https://approvals.example.com/requests/{id}")));
    no_secret_and_blocks_parse(&world);
}

#[tokio::test]
async fn signed_clicks_approve_and_deny_and_the_message_follows() {
    let world = World::new().await;
    let first = world.file("c1").await;
    world.step().await;

    // Approve.
    let (status, said) = world.post(&click("UANN", "approve", first)).await;
    assert_eq!(status, StatusCode::OK, "{said}");
    let request = world.gate.desk().show(first).await.unwrap();
    assert_eq!(request.state_at(world.gate.now()), RequestState::Approved);
    assert_eq!(request.approvers(), ["ann"]);
    world.step().await;
    let updates = world.api.of("chat.update");
    assert_eq!(updates.len(), 1);
    let update = &updates[0].body;
    assert_eq!(
        (update["channel"].as_str(), update["ts"].as_str()),
        (Some(CHANNEL), Some(TS))
    );
    assert!(
        update["text"].as_str().unwrap().contains("Approved by ann"),
        "{update}"
    );
    assert!(!has_buttons(&update["blocks"]));

    // Deny: the click asks for feedback, the dialog's submission denies.
    let second = world.file("c2").await;
    world.step().await;
    let (status, said) = world.post(&click("UANN", "deny", second)).await;
    assert_eq!(status, StatusCode::OK, "{said}");
    world.untouched(second).await;
    let opened = world.api.of("views.open");
    assert_eq!(opened.len(), 1);
    let view = &opened[0].body["view"];
    assert_eq!(opened[0].authorization, format!("Bearer {BOT_TOKEN}"));
    assert_eq!(
        opened[0].body["trigger_id"],
        "13345224609.738474920.8088930838d88f008e0"
    );
    assert_eq!(view["callback_id"], "deny_feedback");
    assert_eq!(view["private_metadata"], second.to_string());
    assert_eq!(view["blocks"][0]["element"]["action_id"], "feedback");
    let private = view["private_metadata"].as_str().unwrap();
    let (status, said) = world
        .post(&submission("UANN", private, "not this month"))
        .await;
    assert_eq!(status, StatusCode::OK, "{said}");
    let request = world.gate.desk().show(second).await.unwrap();
    assert_eq!(request.state_at(world.gate.now()), RequestState::Denied);
    assert_eq!(request.feedback(), Some("not this month"));
    assert_eq!(request.decided_by(), Some("ann"));
    world.step().await;
    let updates = world.api.of("chat.update");
    assert_eq!(updates.len(), 2);
    let update = &updates[1];
    assert_eq!(update.body["ts"], TS);
    assert!(
        update.body["text"]
            .as_str()
            .unwrap()
            .contains("Denied by ann")
    );
    assert!(update.raw.contains("not this month"));
    assert!(!has_buttons(&update.body["blocks"]));

    no_secret_and_blocks_parse(&world);
}

#[tokio::test]
async fn a_decision_taken_elsewhere_updates_the_message_too() {
    let world = World::new().await;
    let id = world.file("c1").await;
    world.step().await;
    world
        .gate
        .desk()
        .approve(id, &Approver::new("ann").with_role("finance"))
        .await
        .unwrap();
    world.step().await;
    let updates = world.api.of("chat.update");
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0].body["channel"], CHANNEL);
    assert_eq!(updates[0].body["ts"], TS);
    assert!(
        updates[0].body["text"]
            .as_str()
            .unwrap()
            .contains("Approved by ann")
    );
    assert!(!has_buttons(&updates[0].body["blocks"]));
    check_blocks(&world.api.calls());
}

#[tokio::test]
async fn a_reminder_replies_in_the_thread_and_a_timeout_updates_the_message() {
    let world = World::new().await;
    let id = world.file("c1").await;
    world.step().await;
    world.clock.advance(Duration::from_secs(60));
    world.step().await;
    world.step().await;
    let posts = world.api.of("chat.postMessage");
    assert_eq!(posts.len(), 2, "{posts:?}");
    let reply = &posts[1].body;
    assert_eq!(
        (reply["channel"].as_str(), reply["thread_ts"].as_str()),
        (Some(CHANNEL), Some(TS))
    );
    assert!(
        reply["text"].as_str().unwrap().contains("Still waiting"),
        "{reply}"
    );
    assert!(!has_buttons(&reply["blocks"]));
    // The message to update is still the first one, not the reply.
    world.clock.advance(Duration::from_secs(540));
    world.gate.sweep_expired(100).await.unwrap();
    world.step().await;
    let updates = world.api.of("chat.update");
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0].body["ts"], TS);
    assert!(
        updates[0].body["text"]
            .as_str()
            .unwrap()
            .contains("Timed out")
    );
    assert!(!has_buttons(&updates[0].body["blocks"]));
    // Clicked after the timeout: refused, nothing changes.
    let (status, said) = world.post(&click("UANN", "approve", id)).await;
    assert!(
        matches!(status, StatusCode::CONFLICT | StatusCode::GONE),
        "{status} {said}"
    );
    check_blocks(&world.api.calls());
}

#[tokio::test]
async fn refused_payloads_change_nothing() {
    let world = World::new().await;
    let id = world.file("c1").await;
    world.step().await;
    let approve = click("UANN", "approve", id);

    // A bad signature: one digit changed.
    let (body, signature) = world.signed(&approve, world.now());
    let last = signature.chars().last().unwrap();
    let flipped = format!(
        "{}{}",
        &signature[..signature.len() - 1],
        if last == '0' { '1' } else { '0' }
    );
    assert_eq!(
        world.send(&body, world.now(), &flipped).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        world.send(&body, world.now(), "").await.0,
        StatusCode::UNAUTHORIZED
    );
    // Signed for another time than the header says.
    assert_eq!(
        world.send(&body, world.now() + 1, &signature).await.0,
        StatusCode::UNAUTHORIZED
    );
    world.untouched(id).await;

    // Signed correctly, but more than five minutes ago by the gate's clock.
    let (old_body, old_signature) = world.signed(&approve, world.now());
    let signed_at = world.now();
    world.clock.advance(Duration::from_secs(301));
    let (status, said) = world.send(&old_body, signed_at, &old_signature).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{said}");
    world.untouched(id).await;

    // A Slack user nobody mapped: refused, and told so.
    let (status, said) = world.post(&click("UEVE", "approve", id)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{said}");
    assert!(said["text"].as_str().unwrap().contains("not mapped"));
    let told = world.api.of("chat.postEphemeral");
    assert_eq!(told.len(), 1);
    assert_eq!(told[0].body["user"], "UEVE");
    let (status, said) = world.post(&submission("UEVE", &id.to_string(), "no")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        said["errors"]["feedback"]
            .as_str()
            .unwrap()
            .contains("not mapped")
    );
    world.untouched(id).await;

    // The requester approving their own call: the desk refuses.
    let (status, said) = world.post(&click("UBOB", "approve", id)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{said}");
    assert!(said["text"].as_str().unwrap().contains("bob"), "{said}");
    world.untouched(id).await;

    // A replay: refused before it reaches the desk (or Slack's API).
    let deny = click("UANN", "deny", id);
    let (body, signature) = world.signed(&deny, world.now());
    assert_eq!(
        world.send(&body, world.now(), &signature).await.0,
        StatusCode::OK
    );
    assert_eq!(world.api.of("views.open").len(), 1);
    let (status, said) = world.send(&body, world.now(), &signature).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{said}");
    assert_eq!(world.api.of("views.open").len(), 1);
    world.untouched(id).await;
    // An approval replayed: the replay is refused as a replay, not as a second vote.
    let (body, signature) = world.signed(&approve, world.now());
    assert_eq!(
        world.send(&body, world.now(), &signature).await.0,
        StatusCode::OK
    );
    let before = world
        .gate
        .store()
        .audit_records(&Default::default())
        .await
        .unwrap()
        .len();
    let (status, said) = world.send(&body, world.now(), &signature).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{said}");
    assert!(
        said["text"].as_str().unwrap().contains("seen already"),
        "{said}"
    );
    let after = world
        .gate
        .store()
        .audit_records(&Default::default())
        .await
        .unwrap()
        .len();
    assert_eq!(before, after);
    assert_eq!(
        world.gate.desk().show(id).await.unwrap().approvers(),
        ["ann"]
    );

    // Decided already: a fresh click (a second later) or dialog is refused by the desk,
    // with its reason.
    world.clock.advance(Duration::from_secs(1));
    let (status, said) = world.post(&click("UANN", "approve", id)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{said}");
    let (status, said) = world
        .post(&submission("UANN", &id.to_string(), "late"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        said["errors"]["feedback"]
            .as_str()
            .unwrap()
            .contains("already"),
        "{said}"
    );
    let request = world.gate.desk().show(id).await.unwrap();
    assert_eq!(request.state_at(world.gate.now()), RequestState::Approved);
    assert_eq!(request.feedback(), None);
}

#[tokio::test]
async fn the_signers_agree_with_slacks_documented_example() {
    // Slack's documented example (api.slack.com, "Verifying requests from Slack").
    let body = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    let documented = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
    assert_eq!(sign_here(1_531_420_618, body), documented);
    let Some(python) = python() else {
        eprintln!("skipped: the slack_sdk checks (the signer)");
        return;
    };
    let line = json!({"timestamp": "1531420618", "body": body});
    let theirs = run(&python, "sign.py", &[SIGNING_SECRET], &format!("{line}\n"));
    assert_eq!(theirs.trim(), documented);
}

#[tokio::test]
async fn bad_settings_are_refused_with_the_field() {
    let gate = Gate::builder(
        Policy::from_yaml_str(POLICY).unwrap(),
        Keyring::new(Key::new("k1", [7u8; 32]).unwrap()),
    )
    .build();
    let refused = |yaml: &str| {
        let config = NotifyConfig::from_yaml_str(yaml).unwrap();
        Notifier::new(gate.clone(), &config)
            .unwrap_err()
            .to_string()
    };
    let err = refused("channels:\n  team:\n    kind: slack\n    bot_token: ''\n    channel: C1\n");
    assert!(err.contains("channels.team.bot_token"), "{err}");
    let err = refused(
        "channels:\n  team:\n    kind: slack\n    bot_token: x\n    channel: C1\n    api_base: ftp://x\n",
    );
    assert!(err.contains("channels.team.api_base"), "{err}");
    let err = NotifyConfig::from_yaml_str(
        "channels:\n  team:\n    kind: slack\n    bot_token: x\n    channel: C1\n    token: y\n",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("unknown field `token`"), "{err}");

    let err =
        SlackConfig::from_yaml_str("signing_secret: s\nbot_token: t\nusers:\n  U1: {name: ann}\n")
            .unwrap_err()
            .to_string();
    assert!(err.contains("unknown field `name`"), "{err}");
    let config = SlackConfig::from_yaml_str("signing_secret: ' '\nbot_token: t\n").unwrap();
    let err = SlackActions::new(gate.clone(), &config)
        .unwrap_err()
        .to_string();
    assert!(err.contains("signing_secret"), "{err}");
    // Secrets never show in Debug.
    let config =
        SlackConfig::from_yaml_str("signing_secret: very-secret\nbot_token: xoxb-secret\n")
            .unwrap();
    let shown = format!("{config:?} {:?}", SlackActions::new(gate, &config).unwrap());
    assert!(!shown.contains("secret"), "{shown}");
}
