//! Secrets stay secret: key material never shows in `Debug` output or token errors, and the
//! argument fields the config redacts never reach the audit trail (store, memory sink,
//! JSON-lines file, tracing), the stop reasons and errors of the flows, nor the preview a
//! person sees.
//!
//! The arguments themselves are kept on the request, since the executor needs them; the
//! claim here is about everything that is written down or shown.
#![cfg(feature = "tracing")]

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use approval_gate::store::{RequestStore, TrailReader};
use approval_gate::{
    ApprovalRequest, Approver, ArgsHash, AuditSink, DeskError, Execution, Gate, GateError,
    GateOutcome, Gated, JsonlSink, Key, Keyring, ManualClock, MemorySink, MemoryStore, Policy,
    RequestId, StopReason, ToolCall, ToolExecutor,
    token::{Claims, Expectations, TokenError, UnverifiedToken},
    trail::{AuditError, AuditQuery, AuditRecord, FanoutSink, TracingSink, jsonl_trail_files},
};
use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use time::macros::datetime;

// ---------------------------------------------------------------------------------------
// Key material
// ---------------------------------------------------------------------------------------

const KEY_SECRET: &[u8] = b"RECOGNISABLE-signing-secret-Zq8Xw3-0123456789";
const RETIRED_SECRET: &[u8] = b"RETIRED-signing-secret-Kp4Lm7-9876543210-xyz";

/// Every spelling of `secret` (and of long enough pieces of it) worth searching for.
fn spellings(secret: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let text = String::from_utf8_lossy(secret).into_owned();
    if secret.is_ascii() {
        for start in (0..secret.len().saturating_sub(12)).step_by(6) {
            out.push(text[start..start + 12].to_owned());
        }
    }
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    out.push(hex[..24].to_owned());
    out.push(hex[..24].to_uppercase());
    out.push(hex[hex.len() - 24..].to_owned());
    for engine in [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD] {
        // Base64 of the secret from each of the three byte alignments.
        for skip in 0..3 {
            let encoded = engine.encode(&secret[skip..]);
            out.push(encoded[..16].to_owned());
        }
    }
    // As `Debug` shows a byte slice or array: `[82, 69, 67, ...`.
    let list = format!("{secret:?}");
    out.push(list[1..25].to_owned());
    // As `Debug` shows bytes in a byte string: `b"RECOG..."`-like escapes.
    out.push(secret.escape_ascii().to_string()[..12].to_owned());
    out
}

fn assert_no_secret(what: &str, text: &str, secret: &[u8]) {
    for needle in spellings(secret) {
        assert!(
            !text.contains(&needle),
            "{what} shows key material ({needle:?}): {text}"
        );
    }
}

/// `Display`, `Debug`, alternate `Debug` and the `source` chain of an error.
fn error_texts(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = format!("{e} | {e:?} | {e:#?}");
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(&format!(" | {s} | {s:?}"));
        source = s.source();
    }
    text
}

/// A tool executor that can be shown with `Debug`, as `Gated` needs for its own.
#[derive(Debug, Clone, Default)]
struct Tool {
    seen: Arc<Mutex<Vec<Value>>>,
}

#[async_trait]
impl ToolExecutor for Tool {
    type Output = &'static str;
    type Error = std::io::Error;

    async fn execute(&self, execution: Execution) -> Result<&'static str, std::io::Error> {
        self.seen.lock().unwrap().push(execution.args().clone());
        Ok("done")
    }
}

fn ring() -> Keyring {
    let mut ring = Keyring::new(Key::new("k0", RETIRED_SECRET).unwrap());
    ring.rotate(Key::new("k1", KEY_SECRET).unwrap());
    ring
}

#[test]
fn the_spellings_would_find_the_secret() {
    // The search is meaningful: each spelling finds the secret where it is written out.
    let hex: String = KEY_SECRET.iter().map(|b| format!("{b:02x}")).collect();
    for shown in [
        String::from_utf8_lossy(KEY_SECRET).into_owned(),
        hex,
        STANDARD.encode(KEY_SECRET),
        URL_SAFE_NO_PAD.encode(&KEY_SECRET[1..]),
        format!("{KEY_SECRET:?}"),
    ] {
        assert!(
            spellings(KEY_SECRET).iter().any(|n| shown.contains(n)),
            "{shown}"
        );
    }
}

#[tokio::test]
async fn key_material_is_in_no_debug_output() {
    let key = Key::new("k1", KEY_SECRET).unwrap();
    let generated = Key::generate("k2").unwrap();
    let keys = ring();
    let policy = Policy::from_yaml_str("approvals:\n  required_for: [email.send]\n").unwrap();
    let builder = Gate::builder(policy, keys.clone())
        .audit(MemorySink::new())
        .clock(ManualClock::default());
    let builder_debug = format!("{builder:?} {builder:#?}");
    let gate = builder.build();
    let gated: Gated<Tool> = gate.wrap(Tool::default());
    let desk = gate.desk();

    let shown = [
        ("Key", format!("{key:?} {key:#?}")),
        ("Keyring", format!("{keys:?} {keys:#?}")),
        ("GateBuilder", builder_debug),
        ("Gate", format!("{gate:?} {gate:#?}")),
        ("Gate::keys", format!("{:?}", gate.keys())),
        ("Gated", format!("{gated:?} {gated:#?}")),
        ("Desk", format!("{desk:?} {desk:#?}")),
    ];
    for (what, text) in &shown {
        assert_no_secret(what, text, KEY_SECRET);
        assert_no_secret(what, text, RETIRED_SECRET);
        assert_no_secret(what, text, generated.expose_secret());
    }
    let generated_debug = format!("{generated:?} {generated:#?}");
    assert_no_secret("generated Key", &generated_debug, generated.expose_secret());
    // The ids are shown: `Debug` is still useful.
    assert!(shown[1].1.contains("k0") && shown[1].1.contains("k1"));

    // After a rotation through the gate, too.
    gate.set_keys(Keyring::new(generated.clone()));
    let text = format!("{gate:?} {gated:?} {desk:?}");
    assert_no_secret("Gate after set_keys", &text, generated.expose_secret());
}

#[test]
fn key_material_is_in_no_token_error() {
    let t0 = datetime!(2026-01-01 00:00:00 UTC);
    let hash = ArgsHash::compute(&json!({"to": "bob@example.com"})).unwrap();
    let claims = Claims {
        jti: "req-1".into(),
        run_id: "run-1".into(),
        call_id: "call-1".into(),
        tool: "email.send".into(),
        args_hash: hash,
        policy_version: "policy-v1".into(),
        approvers: vec!["alice".into()],
        iat: t0.unix_timestamp(),
        exp: t0.unix_timestamp() + 300,
    };
    let keys = ring();
    let token = keys.sign(&claims).into_string();
    let expected = Expectations::new("email.send", &hash, "run-1");
    let verify = |token: &str, keys: &Keyring, e: &Expectations<'_>, at| {
        UnverifiedToken::parse(token)?.verify(keys, e, at)
    };
    let other_hash = ArgsHash::compute(&json!({})).unwrap();
    let impostor = Key::new("k1", [0x5A; 32])
        .unwrap()
        .sign(&claims)
        .into_string();
    let (rest, _) = token.rsplit_once('.').unwrap();
    let mut errors: Vec<TokenError> = vec![
        Key::new("bad id", KEY_SECRET).unwrap_err(),
        Key::new("k1", &KEY_SECRET[..31]).unwrap_err(),
        Key::new("", RETIRED_SECRET).unwrap_err(),
        Key::generate("bad id").unwrap_err(),
        verify(&impostor, &keys, &expected, t0).unwrap_err(),
        verify(
            &token,
            &Keyring::new(Key::new("k9", KEY_SECRET).unwrap()),
            &expected,
            t0,
        )
        .unwrap_err(),
        verify(&token, &keys, &expected, t0 + time::Duration::hours(1)).unwrap_err(),
        verify(
            &token,
            &keys,
            &Expectations::new("db.write", &hash, "run-1"),
            t0,
        )
        .unwrap_err(),
        verify(
            &token,
            &keys,
            &Expectations::new("email.send", &other_hash, "run-1"),
            t0,
        )
        .unwrap_err(),
        verify(&token, &keys, &expected.request_id("req-2"), t0).unwrap_err(),
        verify(&token[..token.len() - 1], &keys, &expected, t0).unwrap_err(),
        verify(&format!("{rest}.!!!"), &keys, &expected, t0).unwrap_err(),
        verify(&format!("{token}.x"), &keys, &expected, t0).unwrap_err(),
    ];
    // Malformed with a decoding error underneath.
    errors.push(
        UnverifiedToken::parse("e30.e30.!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!").unwrap_err(),
    );
    for e in &errors {
        let text = error_texts(e);
        assert_no_secret("TokenError", &text, KEY_SECRET);
        assert_no_secret("TokenError", &text, RETIRED_SECRET);
    }
    // And the token itself, which carries a MAC of the secret, never the secret.
    assert_no_secret("token", &token, KEY_SECRET);
    let parsed = UnverifiedToken::parse(&token).unwrap();
    assert_no_secret("UnverifiedToken", &format!("{parsed:?}"), KEY_SECRET);
    let verified = parsed.verify(&keys, &expected, t0).unwrap();
    assert_no_secret("VerifiedApproval", &format!("{verified:?}"), KEY_SECRET);
}

// ---------------------------------------------------------------------------------------
// Redacted arguments
// ---------------------------------------------------------------------------------------

const POLICY: &str = r#"
approvals:
  required_for: [email.send]
  ttl_seconds: 300
  redact: [args.password, args.card.number]

rules:
  - id: send
    tool: email.send
    effect: approval_required
    preview: "Send email to {to} with password {password}"
  - id: charge
    tool: payments.charge
    effect: approval_required
    preview: "Charge {amount} to card {card}"
  - id: no-test-passwords
    tool: email.send
    effect: deny
    reason: "test passwords are not allowed"
    when: { field: args.password, matches: "^deny-" }
"#;

const PASSWORD: &str = "PW-SECRET-hunter2-a81f";
const CARD: &str = "4111-SECRET-CARD-77e2";
const EDITED_PASSWORD: &str = "PW-SECRET-edited-c3d9";
const OTHER_PASSWORD: &str = "PW-SECRET-mismatch-5b0a";
const DENIED_PASSWORD: &str = "deny-PW-SECRET-0f6e";
const SECRETS: [&str; 5] = [
    PASSWORD,
    CARD,
    EDITED_PASSWORD,
    OTHER_PASSWORD,
    DENIED_PASSWORD,
];

fn assert_redacted(what: &str, text: &str) {
    for secret in SECRETS {
        assert!(
            !text.contains(secret),
            "{what} shows the secret {secret:?}: {text}"
        );
    }
}

// A `tracing` subscriber of the test's own that keeps every span's and event's fields.

#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Vec<String>>>);

struct Visitor<'a>(&'a mut BTreeMap<String, String>);

impl tracing::field::Visit for Visitor<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl tracing::Subscriber for Collector {
    fn register_callsite(
        &self,
        _: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        tracing::subscriber::Interest::sometimes()
    }

    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let mut fields = BTreeMap::new();
        span.record(&mut Visitor(&mut fields));
        let mut seen = self.0.lock().unwrap();
        seen.push(format!("span {} {fields:?}", span.metadata().name()));
        tracing::span::Id::from_u64(seen.len() as u64)
    }

    fn record(&self, _: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        let mut fields = BTreeMap::new();
        values.record(&mut Visitor(&mut fields));
        self.0.lock().unwrap().push(format!("record {fields:?}"));
    }

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        let mut fields = BTreeMap::new();
        event.record(&mut Visitor(&mut fields));
        self.0.lock().unwrap().push(format!("event {fields:?}"));
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}

/// An audit sink that fails while `down` is set.
#[derive(Clone, Default)]
struct Flaky {
    down: Arc<AtomicBool>,
}

#[async_trait]
impl AuditSink for Flaky {
    async fn record(&self, _: &AuditRecord) -> Result<(), AuditError> {
        if self.down.load(Ordering::SeqCst) {
            Err(AuditError::backend(std::io::Error::other("disk full")))
        } else {
            Ok(())
        }
    }
}

/// A fresh directory under the system's temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("approval-gate-secrets-{}", RequestId::new()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A gate whose every trail is kept for searching: the store's, a memory sink, a
/// JSON-lines file and `tracing` (through `TracingSink` and the gate's spans).
struct World {
    gate: Gate,
    store: Arc<MemoryStore>,
    memory: MemorySink,
    flaky: Flaky,
    trail: PathBuf,
    collector: Collector,
    tool: Tool,
    /// What the flows returned to the host: outcomes, stop reasons, errors, previews.
    shown: Vec<(String, String)>,
    _dir: TempDir,
}

impl World {
    fn new() -> Self {
        let dir = TempDir::new();
        let trail = dir.0.join("trail.jsonl");
        let store = Arc::new(MemoryStore::new());
        let memory = MemorySink::new();
        let flaky = Flaky::default();
        let sinks = FanoutSink::new()
            .required(memory.clone())
            .required(JsonlSink::open(&trail).unwrap())
            .required(TracingSink::new())
            .required(flaky.clone());
        let gate = Gate::builder(
            Policy::from_yaml_str(POLICY).unwrap(),
            Keyring::new(Key::new("k1", KEY_SECRET).unwrap()),
        )
        .shared_store(store.clone())
        .audit(sinks)
        .clock(ManualClock::new(datetime!(2026-01-01 00:00:00 UTC)))
        .build();
        World {
            gate,
            store,
            memory,
            flaky,
            trail,
            collector: Collector::default(),
            tool: Tool::default(),
            shown: Vec::new(),
            _dir: dir,
        }
    }

    fn gated(&self) -> Gated<Tool> {
        self.gate.wrap(self.tool.clone())
    }

    fn show(&mut self, what: &str, text: impl Into<String>) {
        self.shown.push((what.to_owned(), text.into()));
    }

    fn show_outcome(&mut self, what: &str, outcome: &GateOutcome<&'static str, std::io::Error>) {
        let mut text = format!("{outcome:?} {outcome:#?}");
        if let Some(stop) = outcome.stopped() {
            text.push_str(&format!(" {} {}", stop.reason, stop.message()));
        }
        self.show(what, text);
    }

    fn show_reason(&mut self, what: &str, reason: &StopReason) {
        self.show(what, format!("{reason} | {reason:?} | {reason:#?}"));
    }

    /// Files `call`, which must wait for a person, and records what the person sees.
    /// Approves request `id` as `ann`.
    async fn approve(&self, id: RequestId) -> ApprovalRequest {
        self.gate
            .desk()
            .approve(id, &Approver::new("ann"))
            .await
            .unwrap()
    }

    async fn file(&mut self, call: ToolCall) -> RequestId {
        let outcome = self.gated().call(call).await.unwrap();
        self.show_outcome("pending outcome", &outcome);
        let id = outcome.pending().unwrap().request_id;
        let request = self.gate.desk().show(id).await.unwrap();
        let preview = request.preview().unwrap().to_owned();
        let shown_args = request.shown_args().to_string();
        assert!(preview.contains("[redacted]"), "{preview}");
        self.show("preview", preview);
        self.show("shown args", shown_args);
        for pending in self.gate.desk().pending().await.unwrap() {
            let preview = pending.preview().unwrap_or_default().to_owned();
            self.show("pending preview", preview);
            self.show("pending shown args", pending.shown_args().to_string());
        }
        id
    }

    /// Searches every trail and everything shown for the secrets.
    async fn assert_nothing_leaked(&self) {
        for record in self
            .store
            .audit_records(&AuditQuery::default())
            .await
            .unwrap()
        {
            let json = serde_json::to_string(&record).unwrap();
            assert_redacted("the store's trail", &format!("{json} {record:?}"));
        }
        let records = self.memory.records();
        assert!(!records.is_empty());
        for record in records {
            let json = serde_json::to_string(&record).unwrap();
            assert_redacted("the memory sink", &format!("{json} {record:?}"));
        }
        let files = jsonl_trail_files(&self.trail).unwrap();
        assert!(!files.is_empty());
        for file in files {
            let text = std::fs::read_to_string(Path::new(&file)).unwrap();
            assert!(!text.is_empty());
            assert_redacted("the JSON-lines trail", &text);
        }
        let traced = self.collector.0.lock().unwrap().join("\n");
        assert!(traced.contains("approval_gate.call"), "{traced}");
        assert!(traced.contains("audit record"), "{traced}");
        assert_redacted("tracing", &traced);
        for (what, text) in &self.shown {
            assert_redacted(what, text);
        }
    }
}

fn email(call_id: &str, password: &str) -> ToolCall {
    ToolCall::new(
        "run-1",
        call_id,
        "email.send",
        json!({"to": "bob@example.com", "subject": "Hi", "password": password}),
    )
    .with_requester("agent")
}

#[tokio::test(flavor = "current_thread")]
async fn an_approved_call_leaves_no_secret_behind() {
    let mut w = World::new();
    let _guard = tracing::subscriber::set_default(w.collector.clone());
    let id = w.file(email("c1", PASSWORD)).await;
    let preview = w
        .gate
        .desk()
        .show(id)
        .await
        .unwrap()
        .preview()
        .unwrap()
        .to_owned();
    assert_eq!(
        preview,
        "Send email to bob@example.com with password [redacted]"
    );

    let approved = w.approve(id).await;
    w.show("approved preview", approved.preview().unwrap_or_default());
    let outcome = w.gated().resume(id, email("c1", PASSWORD)).await.unwrap();
    assert!(outcome.executed().is_some(), "{outcome:?}");
    w.show_outcome("executed outcome", &outcome);
    // The request keeps the real arguments for the executor (so the search below would
    // find them were they copied anywhere)...
    let stored = w.store.get(id).await.unwrap();
    assert!(format!("{stored:?}").contains(PASSWORD));
    assert_eq!(stored.call().args()["password"], PASSWORD);
    // ...and the executor got them: redaction is of what is shown, not what runs.
    assert_eq!(w.tool.seen.lock().unwrap()[0]["password"], PASSWORD);

    // A replay: the stop says the approval was used, and shows no arguments.
    let again = w.gated().resume(id, email("c1", PASSWORD)).await.unwrap();
    w.show_outcome("replayed outcome", &again);
    w.assert_nothing_leaked().await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_denied_call_leaves_no_secret_behind() {
    let mut w = World::new();
    let _guard = tracing::subscriber::set_default(w.collector.clone());
    let charge = ToolCall::new(
        "run-1",
        "c1",
        "payments.charge",
        json!({"amount": 120, "card": {"number": CARD, "exp": "12/30"}}),
    )
    .with_requester("agent");
    let id = w.file(charge.clone()).await;
    let preview = w
        .gate
        .desk()
        .show(id)
        .await
        .unwrap()
        .preview()
        .unwrap()
        .to_owned();
    assert_eq!(
        preview,
        r#"Charge 120 to card {"exp":"12/30","number":"[redacted]"}"#
    );

    // The one who asked for the call may not approve it.
    let refused = w
        .gate
        .desk()
        .approve(id, &Approver::new("agent"))
        .await
        .unwrap_err();
    assert!(matches!(refused, DeskError::Refused { .. }), "{refused:?}");
    w.show("self-decision error", error_texts(&refused));

    w.gate
        .desk()
        .deny(id, &Approver::new("ann"), Some("use the company card"))
        .await
        .unwrap();
    let outcome = w.gated().resume(id, charge).await.unwrap();
    assert!(
        matches!(
            &outcome.stopped().unwrap().reason,
            StopReason::ApprovalDenied { feedback: Some(f), .. } if f == "use the company card"
        ),
        "{outcome:?}"
    );
    w.show_outcome("denied outcome", &outcome);
    let twice = w
        .gate
        .desk()
        .approve(id, &Approver::new("bea"))
        .await
        .unwrap_err();
    assert!(
        matches!(twice, DeskError::AlreadyDecided { .. }),
        "{twice:?}"
    );
    w.show("decided-twice error", error_texts(&twice));
    assert!(w.tool.seen.lock().unwrap().is_empty());
    w.assert_nothing_leaked().await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_mismatched_resume_leaves_no_secret_behind() {
    let mut w = World::new();
    let _guard = tracing::subscriber::set_default(w.collector.clone());
    let id = w.file(email("c1", PASSWORD)).await;
    w.approve(id).await;
    // The model comes back with another password than the one approved.
    let outcome = w
        .gated()
        .resume(id, email("c1", OTHER_PASSWORD))
        .await
        .unwrap();
    let reason = &outcome.stopped().unwrap().reason;
    assert!(
        matches!(reason, StopReason::ArgsMismatch { .. }),
        "{reason:?}"
    );
    w.show_outcome("mismatch outcome", &outcome);
    if let Some(stop) = outcome.stopped() {
        w.show_reason("mismatch reason", &stop.reason);
    }
    assert!(w.tool.seen.lock().unwrap().is_empty());
    w.assert_nothing_leaked().await;
}

#[tokio::test(flavor = "current_thread")]
async fn an_edited_approval_leaves_no_secret_behind() {
    let mut w = World::new();
    let _guard = tracing::subscriber::set_default(w.collector.clone());
    let id = w.file(email("c1", PASSWORD)).await;
    let desk = w.gate.desk();
    let edited =
        |password: &str| json!({"to": "bob@example.com", "subject": "Hi", "password": password});

    // An edit the policy denies: the error gives the policy's reason, not the values.
    let refused = desk
        .approve_with_edits(id, &Approver::new("ann"), edited(DENIED_PASSWORD))
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, DeskError::EditRefused { reason, .. } if reason.to_string() == "test passwords are not allowed"),
        "{refused:?}"
    );
    w.show("refused edit", error_texts(&refused));

    let approved = desk
        .approve_with_edits(id, &Approver::new("ann"), edited(EDITED_PASSWORD))
        .await
        .unwrap();
    assert_eq!(approved.changed_fields(), ["args.password"]);
    w.show("edited preview", approved.preview().unwrap_or_default());
    w.show("edited shown args", approved.shown_args().to_string());

    // A resume with neither the proposed nor the approved args.
    let outcome = w
        .gated()
        .resume(id, email("c1", OTHER_PASSWORD))
        .await
        .unwrap();
    assert!(outcome.stopped().is_some(), "{outcome:?}");
    w.show_outcome("mismatch after edit", &outcome);

    let outcome = w.gated().resume(id, email("c1", PASSWORD)).await.unwrap();
    let executed = outcome.executed().expect("the edited call runs");
    let edit = executed.edit.as_ref().unwrap();
    assert_eq!(edit.changed_fields, ["args.password"]);
    // The host gets the approved args to run and to tell the model about; they are the
    // host's to handle, so only the rest of the outcome is searched.
    assert_eq!(edit.args["password"], EDITED_PASSWORD);
    w.show(
        "edit hashes",
        format!(
            "{:?} {:?}",
            edit.original_args_hash, edit.approved_args_hash
        ),
    );
    w.show(
        "executed result",
        format!("{:?} {:?}", executed.result, executed.request_id),
    );
    assert_eq!(w.tool.seen.lock().unwrap()[0]["password"], EDITED_PASSWORD);
    w.assert_nothing_leaked().await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_failing_sink_leaves_no_secret_in_its_errors() {
    let mut w = World::new();
    let _guard = tracing::subscriber::set_default(w.collector.clone());
    let id = w.file(email("c1", PASSWORD)).await;
    w.approve(id).await;

    w.flaky.down.store(true, Ordering::SeqCst);
    let error = w
        .gated()
        .call(email("c2", OTHER_PASSWORD))
        .await
        .unwrap_err();
    assert!(matches!(error, GateError::Audit(_)), "{error:?}");
    w.show("call with the sink down", error_texts(&error));
    let error = w
        .gated()
        .resume(id, email("c1", PASSWORD))
        .await
        .unwrap_err();
    w.show("resume with the sink down", error_texts(&error));
    let error = w
        .gate
        .desk()
        .cancel(id, &Approver::new("ann"), Some("changed my mind"))
        .await
        .unwrap_err();
    assert!(matches!(error, DeskError::Audit(_)), "{error:?}");
    w.show("desk with the sink down", error_texts(&error));
    assert!(w.tool.seen.lock().unwrap().is_empty());

    w.flaky.down.store(false, Ordering::SeqCst);
    w.assert_nothing_leaked().await;
}
