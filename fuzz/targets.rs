//! The bodies of the fuzz targets, shared by `fuzz/fuzz_targets/*.rs` (cargo-fuzz) and
//! `tests/fuzz_corpus.rs` (which replays the kept corpus and the regressions under
//! `cargo test`). Each takes the fuzzer's bytes and panics only when a property fails.
//!
//! Only the public API of `approval_gate` is used, with `serde_json` and `time` through
//! its re-exports, so the same file compiles in the crate's tests and in the fuzz package.

use std::error::Error as _;

use approval_gate::serde_json::{self, Value, json};
use approval_gate::time::OffsetDateTime;
use approval_gate::{
    ArgsError, ArgsHash, ArgsLimits, Key, Keyring, Policy, PolicyError, ToolCall, canonical_json,
    config::PolicyConfig,
    parse_args,
    token::{Claims, Expectations, TokenError, UnverifiedToken, dangerous},
};

/// `config`: YAML text → [`Policy::from_yaml_str`].
///
/// Properties: loading never panics; a refused config's error formats (Display, Debug, the
/// source chain) and places a YAML error on a line of the text; a loaded policy decides a
/// few fixed calls the same way twice, renders their previews and redacted args, and its
/// config, written as JSON and read back, loads again with the same version.
pub fn config(data: &[u8]) {
    let Ok(yaml) = std::str::from_utf8(data) else {
        return;
    };
    let checked = Policy::check_yaml(yaml);
    match Policy::from_yaml_str(yaml) {
        Ok(policy) => {
            assert!(
                checked.is_empty(),
                "a config that loads checks clean: {checked:?}"
            );
            loaded(&policy)
        }
        Err(err) => {
            // `policy check` reports first what loading refused.
            let first = checked
                .first()
                .expect("a config that fails checks with errors");
            assert_eq!(first.field(), err.field(), "{first} / {err}");
            assert_eq!(first.message(), err.message(), "{first} / {err}");
            refused(yaml, &err)
        }
    }
}

fn loaded(policy: &Policy) {
    for call in fixed_calls() {
        let decision = policy.evaluate(&call);
        assert_eq!(
            decision,
            policy.evaluate(&call),
            "evaluation is deterministic"
        );
        let _ = policy.preview(&decision, &call);
        let _ = policy.redact(call.args());
        let _ = policy.is_read_tool(call.tool());
        let _ = format!("{decision:?}");
    }
    let _ = (policy.budgets(), policy.controls(), policy.fallback());

    // A loaded config survives being written as JSON and read back (hosts store configs),
    // and its version is a property of the config, not of the text it was read from.
    let config = policy.config();
    let again = Policy::from_config(config.clone())
        .unwrap_or_else(|e| panic!("a loaded config loads again from its value: {e}"));
    assert_eq!(again.version(), policy.version());
    let json = serde_json::to_value(config).expect("a loaded config is JSON");
    let back: PolicyConfig = serde_json::from_value(json.clone())
        .unwrap_or_else(|e| panic!("a loaded config reads back from its JSON {json}: {e}"));
    let reloaded = Policy::from_config(back)
        .unwrap_or_else(|e| panic!("a loaded config loads again from its JSON {json}: {e}"));
    assert_eq!(reloaded.version(), policy.version(), "{json}");
}

fn refused(yaml: &str, err: &PolicyError) {
    let shown = err.to_string();
    assert!(!shown.is_empty());
    let _ = format!("{err:?}");
    let _ = (err.field(), err.message());
    let mut source = err.source();
    while let Some(s) = source {
        let _ = s.to_string();
        source = s.source();
    }
    if let Some(line) = err.line() {
        // YAML breaks lines at `\n`, `\r\n` and a lone `\r` (and, being YAML 1.1, at
        // U+0085, U+2028 and U+2029), and may report the line after the last one (an
        // unexpected end).
        let breaks = yaml.replace("\r\n", "\n");
        let last = breaks
            .chars()
            .filter(|c| matches!(c, '\n' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}'))
            .count()
            + 2;
        assert!(line <= last, "line {line} of {last}: {shown}");
    }
}

/// Calls that touch every kind of rule in the seed configs: patterns, conditions on
/// numbers, strings, lists and context, and args of the wrong type for a condition.
fn fixed_calls() -> [ToolCall; 6] {
    [
        ToolCall::new(
            "run-1",
            "c1",
            "email.send",
            json!({"to": "bob@example.com", "subject": "Hi"}),
        )
        .with_requester("alice"),
        ToolCall::new(
            "run-1",
            "c2",
            "payments.refund",
            json!({"amount": 150, "card": {"number": "4111"}}),
        )
        .with_role("support")
        .with_tenant("acme"),
        ToolCall::new(
            "run-1",
            "c3",
            "db.write",
            json!({"table": "users", "items": [{"sku": "X1"}]}),
        )
        .with_mode("prod"),
        ToolCall::new("run-1", "c4", "crm.read", json!({})),
        ToolCall::new(
            "run-1",
            "c5",
            "payments.refund",
            json!({"amount": "lots", "to": 7}),
        )
        .with_role("finance-lead"),
        ToolCall::new("run-2", "c6", "files.write", json!([1, 2.5, null, true]))
            .with_tenant("other")
            .with_mode("auto"),
    ]
}

/// The key the fixed keyring signs with, and the one it keeps for verification only.
pub const TOKEN_KEYS: [(&str, [u8; 32]); 2] = [("k1", [42; 32]), ("k0", [7; 32])];

/// The instant tokens are checked at: 2026-01-01T00:01:00Z.
pub const TOKEN_NOW: i64 = 1_767_225_660;

/// The fixed keyring: signs with `k1`, still verifies `k0`.
pub fn token_keyring() -> Keyring {
    let [(new_id, new_secret), (old_id, old_secret)] = TOKEN_KEYS;
    let mut keys = Keyring::new(Key::new(old_id, old_secret).expect("a valid key"));
    keys.rotate(Key::new(new_id, new_secret).expect("a valid key"));
    keys
}

/// The arguments the fixed expectations are for.
pub fn token_args() -> Value {
    json!({"to": "bob@example.com", "subject": "Hi"})
}

/// Claims that pass the fixed expectations at [`TOKEN_NOW`].
pub fn token_claims() -> Claims {
    Claims {
        jti: "req-1".into(),
        run_id: "run-1".into(),
        call_id: "call-1".into(),
        tool: "email.send".into(),
        args_hash: ArgsHash::compute(&token_args()).expect("small args"),
        policy_version: "policy-v1".into(),
        approvers: vec!["alice".into(), "bob".into()],
        iat: TOKEN_NOW - 60,
        exp: TOKEN_NOW + 240,
    }
}

/// `token`: text → [`UnverifiedToken::parse`] → `verify` with a fixed keyring and fixed
/// expectations at a fixed instant.
///
/// Properties: nothing panics, every error formats, and a token that verifies is exactly
/// the token the keyring mints for its claims: the fuzzer cannot forge a MAC, so any other
/// accepted text would be a forgery or a second spelling of a signed token.
pub fn token(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let unverified = match UnverifiedToken::parse(text) {
        Ok(t) => t,
        Err(err) => return shown(&err),
    };
    let _ = (unverified.key_id(), format!("{unverified:?}"));
    let insecure = dangerous::insecure_claims(&unverified);
    match &insecure {
        Ok(claims) => {
            let _ = (
                claims.issued_at(),
                claims.expires_at(),
                format!("{claims:?}"),
            );
        }
        Err(err) => shown(err),
    }

    let keys = token_keyring();
    let args_hash = ArgsHash::compute(&token_args()).expect("small args");
    let expected = Expectations::new("email.send", &args_hash, "run-1")
        .call_id("call-1")
        .request_id("req-1")
        .policy_version("policy-v1")
        .leeway(std::time::Duration::from_secs(5));
    let now = OffsetDateTime::from_unix_timestamp(TOKEN_NOW).expect("in range");
    let kid = unverified.key_id().to_owned();
    match unverified.verify(&keys, &expected, now) {
        Ok(approval) => {
            let key = keys.get(&kid).expect("verified with a held key");
            let minted = key.sign(approval.claims());
            assert_eq!(
                minted.as_str(),
                text,
                "an accepted token is exactly the one minted for its claims"
            );
            assert_eq!(approval.token().as_str(), text);
            assert_eq!(insecure.ok().as_ref(), Some(approval.claims()));
        }
        Err(err) => shown(&err),
    }
}

fn shown(err: &TokenError) {
    assert!(!err.to_string().is_empty());
    let _ = format!("{err:?}");
    let mut source = err.source();
    while let Some(s) = source {
        let _ = s.to_string();
        source = s.source();
    }
}

/// `args`: JSON text → `serde_json::Value` → [`ArgsHash::compute`] and [`canonical_json`],
/// and the same text → [`parse_args`].
///
/// Properties: the strict reader accepts only what `serde_json` reads, reads the same
/// value, and refuses as too deep only text too deep to hash; the hash and the canonical
/// form succeed or fail together with the same error; hashing is deterministic; the
/// canonical form is JSON that reads back to a value with the same hash and the same
/// canonical form; a hash under tighter limits, when it succeeds, is the same hash; and
/// the hash's text form parses back to it.
pub fn args(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let strict = parse_args(text);
    let Ok(value) = serde_json::from_str::<Value>(text) else {
        if let Ok(v) = strict {
            panic!("the strict reader accepts what serde_json refuses: {v}");
        }
        return;
    };
    let hash = ArgsHash::compute(&value);
    match &strict {
        Ok(v) => {
            assert_eq!(v, &value, "the strict reader reads what serde_json reads");
            assert_eq!(
                ArgsHash::compute(v),
                hash,
                "what the strict reader accepts hashes as the serde_json value does"
            );
            let tight = ArgsLimits {
                max_depth: 3,
                max_bytes: 64,
            };
            if let Ok(t) = tight.parse(text) {
                assert_eq!(&t, v, "limits change whether, never what, text reads");
            }
        }
        Err(ArgsError::TooDeep { limit }) => assert_eq!(
            hash,
            Err(ArgsError::TooDeep { limit: *limit }),
            "text too deep to read is too deep to hash"
        ),
        Err(err) => assert!(!err.to_string().is_empty()),
    }
    let canonical = canonical_json(&value);
    let (hash, canonical) = match (hash, canonical) {
        (Ok(h), Ok(c)) => (h, c),
        (Err(a), Err(b)) => {
            assert_eq!(a, b, "hash and canonical form fail alike");
            assert!(!a.to_string().is_empty());
            return;
        }
        (h, c) => panic!("hash {h:?} and canonical form {c:?} disagree"),
    };
    assert_eq!(
        ArgsHash::compute(&value),
        Ok(hash),
        "hashing is deterministic"
    );

    let back: Value = serde_json::from_str(&canonical)
        .unwrap_or_else(|e| panic!("the canonical form {canonical} is JSON: {e}"));
    assert_eq!(
        ArgsHash::compute(&back),
        Ok(hash),
        "the canonical form {canonical} hashes as its value"
    );
    assert_eq!(
        canonical_json(&back).as_deref(),
        Ok(canonical.as_str()),
        "the canonical form is canonical"
    );

    let tight = ArgsLimits {
        max_depth: 3,
        max_bytes: 64,
    };
    if let Ok(h) = ArgsHash::compute_with_limits(&value, &tight) {
        assert_eq!(h, hash, "limits change whether, never what, a value hashes");
        assert!(canonical.len() <= tight.max_bytes);
    }

    assert_eq!(hash.to_string().parse::<ArgsHash>(), Ok(hash));
    let call = ToolCall::new("run-1", "c1", "t", value);
    assert_eq!(call.args_hash(), Ok(hash));
}
