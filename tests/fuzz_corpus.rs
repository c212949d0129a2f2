//! The fuzz corpus as tests: every kept input under `fuzz/corpus/<target>/` and every
//! input that once failed under `fuzz/regressions/<target>/` runs through the same target
//! functions the fuzzer runs (`fuzz/targets.rs`), so a fixed defect stays fixed without
//! a nightly toolchain or a fuzzing run. See `fuzz/README.md`.

#[path = "../fuzz/targets.rs"]
mod targets;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use approval_gate::serde_json::{self, json};
use approval_gate::{ArgsHash, Key, ToolCall, token::Claims};

/// The files of `fuzz/<kind>/<target>`, sorted; none if the directory does not exist.
fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(kind)
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("a readable directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Runs every kept input of `target` through `run`, and fails naming each input that
/// panicked. The corpus must not be empty, so a moved directory cannot pass silently.
fn replay(target: &str, run: fn(&[u8])) {
    let corpus = inputs("corpus", target);
    assert!(
        !corpus.is_empty(),
        "no inputs under fuzz/corpus/{target}: the corpus moved or is gone"
    );
    let mut failed = Vec::new();
    for path in corpus.iter().chain(&inputs("regressions", target)) {
        let data = std::fs::read(path).expect("a readable input");
        if catch_unwind(AssertUnwindSafe(|| run(&data))).is_err() {
            failed.push(path.display().to_string());
        }
    }
    assert!(failed.is_empty(), "{target} failed on {failed:#?}");
}

#[test]
fn config_corpus_loads_or_is_refused_without_panicking() {
    replay("config", targets::config);
}

#[test]
fn token_corpus_never_verifies_a_token_the_keyring_did_not_mint() {
    replay("token", targets::token);
}

#[test]
fn args_corpus_hashes_consistently() {
    replay("args", targets::args);
}

/// The token target on tokens minted now, so the path that accepts a token and every
/// claim check stay covered even if the kept corpus goes stale.
#[test]
fn freshly_minted_tokens_pass_the_token_target() {
    let keys = targets::token_keyring();
    let good = targets::token_claims();
    let valid = keys.sign(&good);
    let now = approval_gate::time::OffsetDateTime::from_unix_timestamp(targets::TOKEN_NOW)
        .expect("in range");
    let hash = ArgsHash::compute(&targets::token_args()).expect("small args");
    let expected = approval_gate::token::Expectations::new("email.send", &hash, "run-1");
    assert!(
        approval_gate::token::UnverifiedToken::parse(valid.as_str())
            .and_then(|t| t.verify(&keys, &expected, now))
            .is_ok(),
        "the target's fixed token verifies, so the fuzzer starts from an accepted token"
    );

    let variants: [fn(&mut Claims); 7] = [
        |_| {},
        |c| c.exp = targets::TOKEN_NOW - 10,
        |c| c.tool = "email.sendx".into(),
        |c| c.run_id = "run-2".into(),
        |c| c.call_id = "call-2".into(),
        |c| c.jti = "req-2".into(),
        |c| c.policy_version = "policy-v2".into(),
    ];
    let stranger = Key::new("k1", [9u8; 32]).expect("a valid key");
    for change in variants {
        let mut claims = good.clone();
        change(&mut claims);
        let token = keys.sign(&claims);
        targets::token(token.as_str().as_bytes());
        targets::token(stranger.sign(&claims).as_str().as_bytes());
    }
}

/// A call's args hash survives the call's JSON form, as a queue or a store writes and
/// reads it. `serde_json` without its `float_roundtrip` feature read some doubles it
/// wrote itself as a neighbouring double, so the call read back hashed differently; the
/// fuzzer found it through the canonical form (its inputs are in `fuzz/regressions/args/`).
#[test]
fn args_hash_survives_the_json_form() {
    // serde_json writes this double as `1.8446744073709555e+41`.
    let double = 1.8446744073709555e41_f64;
    let call = ToolCall::new("run-1", "c1", "payments.refund", json!({"amount": double}));
    let text = serde_json::to_string(&call).expect("a call is JSON");
    let back: ToolCall = serde_json::from_str(&text).expect("reads back");
    assert_eq!(back.args()["amount"].as_f64(), Some(double), "{text}");
    assert_eq!(back.args_hash(), call.args_hash(), "{text}");
}
