//! Attacks on approval tokens, each refused with its own error: forged and altered
//! signatures, altered claims, algorithm and header tricks, unknown and retired keys,
//! malformed encodings, and, at the gate, a token moved onto another request, a replayed
//! approval and a token minted with another key.
//!
//! Forged tokens are minted with the independent `jsonwebtoken` crate where it can make
//! them (it signs any header and payload bytes with `crypto::sign`), so the attacks do not
//! depend on this crate's own signing code.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use approval_gate::store::{RequestStore, TrailReader};
use approval_gate::{
    ApprovalRequest, Approver, ArgsHash, Clock, Execution, Gate, GateOutcome, Gated, Key, Keyring,
    ManualClock, MemoryStore, Policy, RequestId, RequestState, StopReason, ToolCall, ToolExecutor,
    token::{Claims, Expectations, TokenError, UnverifiedToken, VerifiedApproval},
    trail::{AuditEvent, AuditRecord},
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, EncodingKey, Header, crypto, encode};
use serde_json::{Value, json};
use time::macros::datetime;
use time::{Duration as TimeDuration, OffsetDateTime};

const SECRET: &[u8] = b"token-attacks-secret-token-attacks-secret";
const OTHER_SECRET: &[u8] = b"an-attackers-own-secret-an-attackers-own";

/// Asserts that `$result` is `Err` matching `$pat`, showing what it was otherwise.
macro_rules! assert_refused {
    ($result:expr, $pat:pat $(if $guard:expr)?) => {
        match $result {
            Err($pat) $(if $guard)? => {}
            other => panic!("expected Err({}), got {other:?}", stringify!($pat)),
        }
    };
    ($result:expr, $pat:pat $(if $guard:expr)?, $($ctx:tt)+) => {
        match $result {
            Err($pat) $(if $guard)? => {}
            other => panic!(
                "{}: expected Err({}), got {other:?}",
                format!($($ctx)+),
                stringify!($pat)
            ),
        }
    };
}

/// 2026-01-01T00:00:00Z, when the test tokens are issued.
fn t0() -> OffsetDateTime {
    datetime!(2026-01-01 00:00:00 UTC)
}

/// The fixed instant tokens are verified at: ten seconds after issue.
fn now() -> OffsetDateTime {
    t0() + TimeDuration::seconds(10)
}

fn args_hash() -> ArgsHash {
    ArgsHash::compute(&json!({"to": "bob@example.com", "subject": "Hi"})).unwrap()
}

/// Claims issued at [`t0`], expiring 300 s later.
fn claims() -> Claims {
    Claims {
        jti: "req-1".into(),
        run_id: "run-1".into(),
        call_id: "call-1".into(),
        tool: "email.send".into(),
        args_hash: args_hash(),
        policy_version: "policy-v1".into(),
        approvers: vec!["alice".into(), "bob".into()],
        iat: t0().unix_timestamp(),
        exp: t0().unix_timestamp() + 300,
    }
}

fn keys() -> Keyring {
    Keyring::new(Key::new("k1", SECRET).unwrap())
}

/// Every check on: tool, args, run, call, request and policy version.
fn verify_with(
    token: &str,
    keys: &Keyring,
    at: OffsetDateTime,
) -> Result<VerifiedApproval, TokenError> {
    let hash = args_hash();
    let expected = Expectations::new("email.send", &hash, "run-1")
        .call_id("call-1")
        .request_id("req-1")
        .policy_version("policy-v1");
    UnverifiedToken::parse(token)?.verify(keys, &expected, at)
}

fn verify(token: &str) -> Result<VerifiedApproval, TokenError> {
    verify_with(token, &keys(), now())
}

/// A valid token for [`claims`], signed by this crate.
fn good() -> String {
    keys().sign(&claims()).into_string()
}

/// `header.payload.signature` over raw header and payload bytes, the HS256 MAC computed by
/// `jsonwebtoken` with `secret`.
fn sign_raw(header: &[u8], payload: &[u8], secret: &[u8]) -> String {
    let input = format!("{}.{}", B64.encode(header), B64.encode(payload));
    let signature = crypto::sign(
        input.as_bytes(),
        &EncodingKey::from_secret(secret),
        Algorithm::HS256,
    )
    .unwrap();
    format!("{input}.{signature}")
}

/// A token with `header` and our claims, minted by `jsonwebtoken` with `secret`.
fn mint(header: &Header, claims: &Claims, secret: &[u8]) -> String {
    encode(header, claims, &EncodingKey::from_secret(secret)).unwrap()
}

fn hs256(kid: Option<&str>) -> Header {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = kid.map(str::to_owned);
    header
}

fn claims_json() -> Value {
    serde_json::to_value(claims()).unwrap()
}

/// A small deterministic generator (xorshift64*), for "random" signatures.
fn pseudo_random_bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

fn split(token: &str) -> (&str, &str, &str) {
    let mut parts = token.split('.');
    (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    )
}

#[test]
fn the_untouched_token_verifies_so_the_attacks_below_are_meaningful() {
    let approval = verify(&good()).unwrap();
    assert_eq!(approval.claims(), &claims());
    // The same claims minted by `jsonwebtoken` verify too: the forgeries below differ
    // from a valid token only in what each attack changes.
    let minted = mint(&hs256(Some("k1")), &claims(), SECRET);
    assert_eq!(verify(&minted).unwrap().claims(), &claims());
}

// ---------------------------------------------------------------------------------------
// Forged signatures
// ---------------------------------------------------------------------------------------

#[test]
fn random_signatures_are_bad_signatures() {
    let token = good();
    let (header, payload, _) = split(&token);
    for seed in 1..=64 {
        let forged = format!(
            "{header}.{payload}.{}",
            B64.encode(pseudo_random_bytes(seed, 32))
        );
        assert_refused!(verify(&forged), TokenError::BadSignature, "seed {seed}");
    }
    for byte in [0x00, 0xFF] {
        let forged = format!("{header}.{payload}.{}", B64.encode([byte; 32]));
        assert_refused!(verify(&forged), TokenError::BadSignature, "all {byte:#x}");
    }
}

#[test]
fn the_signature_of_another_token_is_a_bad_signature() {
    let token = good();
    let other = keys()
        .sign(&Claims {
            jti: "req-2".into(),
            ..claims()
        })
        .into_string();
    let (header, payload, _) = split(&token);
    let (_, _, other_signature) = split(&other);
    let spliced = format!("{header}.{payload}.{other_signature}");
    assert_refused!(verify(&spliced), TokenError::BadSignature);
    // And the other way round: the other token's payload under this token's signature.
    let (_, other_payload, _) = split(&other);
    let (_, _, signature) = split(&token);
    let spliced = format!("{header}.{other_payload}.{signature}");
    assert_refused!(verify(&spliced), TokenError::BadSignature);
}

#[test]
fn every_single_flipped_signature_bit_is_a_bad_signature() {
    let token = good();
    let (header, payload, signature) = split(&token);
    let mac = B64.decode(signature).unwrap();
    assert_eq!(mac.len(), 32);
    for bit in 0..256 {
        let mut flipped = mac.clone();
        flipped[bit / 8] ^= 1 << (bit % 8);
        let forged = format!("{header}.{payload}.{}", B64.encode(&flipped));
        assert_refused!(verify(&forged), TokenError::BadSignature, "bit {bit}");
    }
}

#[test]
fn every_single_flipped_payload_bit_is_refused() {
    // A flipped bit in the claims' bytes: the signature no longer matches (or the payload
    // is no longer JSON at all, and then the MAC is checked first anyway).
    let token = good();
    let (header, payload, signature) = split(&token);
    let bytes = B64.decode(payload).unwrap();
    for bit in 0..bytes.len() * 8 {
        let mut flipped = bytes.clone();
        flipped[bit / 8] ^= 1 << (bit % 8);
        let forged = format!("{header}.{}.{signature}", B64.encode(&flipped));
        assert_refused!(verify(&forged), TokenError::BadSignature, "bit {bit}");
    }
}

// ---------------------------------------------------------------------------------------
// Claims altered after signing, and claims signed but not the ones expected
// ---------------------------------------------------------------------------------------

type Alteration = (&'static str, fn(&mut Claims));

/// One change per claim, as an attacker holding a token would make it.
fn alterations() -> Vec<Alteration> {
    vec![
        ("tool", |c| c.tool = "db.drop_table".into()),
        ("args_hash", |c| {
            c.args_hash = ArgsHash::compute(&json!({"to": "mallory@example.com"})).unwrap()
        }),
        ("run_id", |c| c.run_id = "run-2".into()),
        ("call_id", |c| c.call_id = "call-2".into()),
        ("jti", |c| c.jti = "req-2".into()),
        ("exp", |c| c.exp += 86_400),
        ("policy_version", |c| c.policy_version = "policy-v0".into()),
        ("approvers", |c| c.approvers = vec!["ceo".into()]),
        ("approvers added", |c| c.approvers.push("ceo".into())),
        ("iat", |c| c.iat -= 1),
    ]
}

#[test]
fn each_claim_altered_after_signing_is_a_bad_signature() {
    let token = good();
    let (header, _, signature) = split(&token);
    for (claim, alter) in alterations() {
        let mut altered = claims();
        alter(&mut altered);
        assert_ne!(altered, claims(), "{claim}");
        let payload = B64.encode(serde_json::to_vec(&altered).unwrap());
        let forged = format!("{header}.{payload}.{signature}");
        assert_refused!(verify(&forged), TokenError::BadSignature, "{claim}");
    }
}

#[test]
fn the_same_claims_spelled_differently_are_a_bad_signature() {
    // The MAC covers the bytes, not their meaning: reordered keys, added whitespace, an
    // extra field or an escaped character are all another token.
    let token = good();
    let (header, _, signature) = split(&token);
    let c = claims_json();
    let reordered = {
        let mut pairs: Vec<(String, Value)> = c.as_object().unwrap().clone().into_iter().collect();
        pairs.reverse();
        let body: Vec<String> = pairs
            .iter()
            .map(|(k, v)| format!("{}:{}", Value::from(k.as_str()), v))
            .collect();
        format!("{{{}}}", body.join(","))
    };
    let spaced = serde_json::to_string_pretty(&c).unwrap();
    let mut extra = c.clone();
    extra["admin"] = json!(true);
    let escaped = serde_json::to_string(&c)
        .unwrap()
        .replacen("email.send", "email\\u002esend", 1);
    for (what, payload) in [
        ("reordered", reordered),
        ("pretty", spaced),
        ("extra field", extra.to_string()),
        ("escaped", escaped),
    ] {
        // Each still means the same claims (or more): only the signature refuses it.
        let forged = format!("{header}.{}.{signature}", B64.encode(payload));
        assert_refused!(verify(&forged), TokenError::BadSignature, "{what}");
    }
}

#[test]
fn each_claim_signed_but_not_expected_has_its_own_error() {
    let hash = args_hash();
    let other_hash = ArgsHash::compute(&json!({"to": "mallory@example.com"})).unwrap();
    let full = |tool, hash, run| {
        Expectations::new(tool, hash, run)
            .call_id("call-1")
            .request_id("req-1")
            .policy_version("policy-v1")
    };
    let check = |c: &Claims, e: Expectations<'_>| {
        let token = mint(&hs256(Some("k1")), c, SECRET);
        UnverifiedToken::parse(&token)?.verify(&keys(), &e, now())
    };
    let base = full("email.send", &hash, "run-1");

    let c = Claims {
        tool: "db.drop_table".into(),
        ..claims()
    };
    assert_refused!(
        check(&c, base),
        TokenError::WrongTool { expected, found }
            if expected == "email.send" && found == "db.drop_table"
    );
    let c = Claims {
        args_hash: other_hash,
        ..claims()
    };
    assert_refused!(check(&c, base), TokenError::WrongArgs);
    // And the other way round: the right token, another call's args about to run.
    assert_refused!(
        check(&claims(), full("email.send", &other_hash, "run-1")),
        TokenError::WrongArgs
    );
    let c = Claims {
        run_id: "run-2".into(),
        ..claims()
    };
    assert_refused!(check(&c, base), TokenError::WrongRun);
    let c = Claims {
        call_id: "call-2".into(),
        ..claims()
    };
    assert_refused!(check(&c, base), TokenError::WrongCall);
    let c = Claims {
        jti: "req-2".into(),
        ..claims()
    };
    assert_refused!(check(&c, base), TokenError::WrongRequest);
    let c = Claims {
        policy_version: "policy-v0".into(),
        ..claims()
    };
    assert_refused!(check(&c, base), TokenError::WrongPolicyVersion);
    let c = Claims {
        exp: now().unix_timestamp(),
        ..claims()
    };
    assert_refused!(
        check(&c, base),
        TokenError::Expired { expired_at } if expired_at == now()
    );

    // Approvers and issued-at are reported, not matched: a signed token says who approved.
    let c = Claims {
        approvers: vec!["carol".into()],
        iat: t0().unix_timestamp() - 60,
        ..claims()
    };
    let ok = check(&c, base).unwrap();
    assert_eq!(ok.approvers(), ["carol"]);
    assert_eq!(ok.claims().issued_at(), t0() - TimeDuration::seconds(60));
}

#[test]
fn expiry_holds_to_the_second_and_to_the_leeway() {
    let token = good();
    let exp = t0() + TimeDuration::seconds(300);
    let hash = args_hash();
    let strict = Expectations::new("email.send", &hash, "run-1");
    let at = |e: &Expectations<'_>, when: OffsetDateTime| {
        UnverifiedToken::parse(&token)?.verify(&keys(), e, when)
    };

    assert!(at(&strict, exp - TimeDuration::seconds(1)).is_ok());
    assert!(at(&strict, exp - TimeDuration::nanoseconds(1)).is_ok());
    assert_refused!(
        at(&strict, exp),
        TokenError::Expired { expired_at } if expired_at == exp
    );
    assert_refused!(
        at(&strict, exp + TimeDuration::seconds(1)),
        TokenError::Expired { expired_at } if expired_at == exp
    );

    let lenient = strict.leeway(Duration::from_secs(30));
    assert!(at(&lenient, exp).is_ok());
    assert!(at(&lenient, exp + TimeDuration::seconds(29)).is_ok());
    assert!(at(&lenient, exp + TimeDuration::milliseconds(29_999)).is_ok());
    // The error names the token's own expiry, not the expiry plus leeway.
    assert_refused!(
        at(&lenient, exp + TimeDuration::seconds(30)),
        TokenError::Expired { expired_at } if expired_at == exp
    );

    // A token that expired before it was issued never verifies.
    let backwards = mint(
        &hs256(Some("k1")),
        &Claims {
            exp: t0().unix_timestamp() - 1,
            ..claims()
        },
        SECRET,
    );
    assert_refused!(
        UnverifiedToken::parse(&backwards)
            .unwrap()
            .verify(&keys(), &strict, t0()),
        TokenError::Expired { .. }
    );
    // Expiry is checked before the claims are matched: an expired token for another
    // tool says it is expired.
    let other = Expectations::new("db.write", &hash, "run-2");
    assert_refused!(at(&other, exp), TokenError::Expired { .. });
}

// ---------------------------------------------------------------------------------------
// Algorithms and headers
// ---------------------------------------------------------------------------------------

#[test]
fn alg_none_is_refused_with_and_without_a_signature() {
    let payload = B64.encode(serde_json::to_vec(&claims()).unwrap());
    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = B64.encode(format!(r#"{{"alg":"{alg}","typ":"JWT","kid":"k1"}}"#));
        // Empty signature part, as RFC 7519 writes unsecured JWTs.
        let empty = format!("{header}.{payload}.");
        assert_refused!(
            verify(&empty),
            TokenError::UnsupportedAlgorithm { alg: found } if found == alg,
            "{alg} with an empty signature"
        );
        // A real-looking signature does not help.
        let token = good();
        let (_, _, signature) = split(&token);
        let signed = format!("{header}.{payload}.{signature}");
        assert_refused!(
            verify(&signed),
            TokenError::UnsupportedAlgorithm { alg: found } if found == alg,
            "{alg} with a signature"
        );
        // No signature part at all: not even a compact JWS.
        let two_parts = format!("{header}.{payload}");
        assert_refused!(
            verify(&two_parts),
            TokenError::Malformed { .. },
            "{alg} without a signature part"
        );
    }
}

#[test]
fn other_algorithms_are_refused() {
    // Minted by jsonwebtoken with the right secret and key id: only the algorithm differs.
    for alg in [Algorithm::HS384, Algorithm::HS512] {
        let mut header = Header::new(alg);
        header.kid = Some("k1".into());
        let token = mint(&header, &claims(), SECRET);
        let name = format!("{alg:?}");
        assert_refused!(
            verify(&token),
            TokenError::UnsupportedAlgorithm { alg: found } if found == name
        );
    }
    // Signed with an HS256 MAC, but the header names another algorithm.
    let payload = serde_json::to_vec(&claims()).unwrap();
    for alg in [
        "RS256", "ES256", "PS256", "EdDSA", "hs256", "HS256 ", "HS2560",
    ] {
        let header = format!(r#"{{"alg":"{alg}","typ":"JWT","kid":"k1"}}"#);
        let token = sign_raw(header.as_bytes(), &payload, SECRET);
        assert_refused!(
            verify(&token),
            TokenError::UnsupportedAlgorithm { alg: found } if found == alg,
            "{alg}"
        );
    }
    // An RS256 token with an RSA-sized signature.
    let rs256 = format!(
        "{}.{}.{}",
        B64.encode(r#"{"alg":"RS256","typ":"JWT","kid":"k1"}"#),
        B64.encode(&payload),
        B64.encode(pseudo_random_bytes(7, 256))
    );
    assert_refused!(
        verify(&rs256),
        TokenError::UnsupportedAlgorithm { alg } if alg == "RS256"
    );
    // A missing, null or non-string alg is malformed.
    for header in [
        r#"{"typ":"JWT","kid":"k1"}"#,
        r#"{"alg":null,"typ":"JWT","kid":"k1"}"#,
        r#"{"alg":["HS256"],"typ":"JWT","kid":"k1"}"#,
        r#"{"alg":256,"typ":"JWT","kid":"k1"}"#,
        // Two algs: which one would another verifier read?
        r#"{"alg":"HS256","alg":"none","kid":"k1"}"#,
        r#"{"alg":"none","alg":"HS256","kid":"k1"}"#,
        r#"{"alg":"HS256","al\u0067":"HS256","kid":"k1"}"#,
    ] {
        let token = sign_raw(header.as_bytes(), &payload, SECRET);
        assert_refused!(verify(&token), TokenError::Malformed { .. }, "{header}");
    }
}

#[test]
fn header_tricks_are_refused() {
    let c = claims();
    // `crit`: extensions we do not understand must not be ignored.
    let mut crit = hs256(Some("k1"));
    crit.crit = Some(vec!["exp".into()]);
    assert_refused!(
        verify(&mint(&crit, &c, SECRET)),
        TokenError::Malformed { .. }
    );
    let mut b64 = hs256(Some("k1"));
    b64.crit = Some(vec!["b64".into()]);
    b64.extras.insert("b64", false);
    assert_refused!(
        verify(&mint(&b64, &c, SECRET)),
        TokenError::Malformed { .. }
    );

    // `typ` other than JWT.
    for typ in ["JOSE", "JWS", "at+jwt", "", "JWT "] {
        let mut header = hs256(Some("k1"));
        header.typ = Some(typ.into());
        assert_refused!(
            verify(&mint(&header, &c, SECRET)),
            TokenError::Malformed { .. },
            "typ {typ:?}"
        );
    }

    // No `kid`, or one that is not a key id.
    assert_refused!(
        verify(&mint(&hs256(None), &c, SECRET)),
        TokenError::Malformed { .. }
    );
    for kid in ["", "k 1", "../k1", "k1\n", "k1\u{0}", &"k".repeat(65)] {
        assert_refused!(
            verify(&mint(&hs256(Some(kid)), &c, SECRET)),
            TokenError::Malformed { .. },
            "kid {kid:?}"
        );
    }
}

#[test]
fn keys_offered_in_the_header_are_ignored() {
    // An attacker signs with their own secret and offers it in `jwk`, or points at it
    // with `jku` / `x5u`: the key is looked up by `kid` in the verifier's keyring only.
    let c = claims();
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(json!({
        "kty": "oct",
        "k": B64.encode(OTHER_SECRET),
        "alg": "HS256",
        "kid": "k1",
    }))
    .unwrap();
    let mut with_jwk = hs256(Some("k1"));
    with_jwk.jwk = Some(jwk.clone());
    assert_refused!(
        verify(&mint(&with_jwk, &c, OTHER_SECRET)),
        TokenError::BadSignature
    );
    let mut with_jku = hs256(Some("k1"));
    with_jku.jku = Some("https://attacker.example/jwks.json".into());
    with_jku.x5u = Some("https://attacker.example/cert.pem".into());
    assert_refused!(
        verify(&mint(&with_jku, &c, OTHER_SECRET)),
        TokenError::BadSignature
    );
    // With a key id of their own, the key is unknown: the offered key is not used.
    let mut own_kid = hs256(Some("attacker"));
    own_kid.jwk = Some(jwk);
    assert_refused!(
        verify(&mint(&own_kid, &c, OTHER_SECRET)),
        TokenError::UnknownKeyId { kid } if kid == "attacker"
    );
    // The same headers on a token signed with the right key are harmless extras.
    assert!(verify(&mint(&with_jku, &c, SECRET)).is_ok());
}

// ---------------------------------------------------------------------------------------
// Key ids
// ---------------------------------------------------------------------------------------

#[test]
fn an_unknown_key_id_is_refused_as_such() {
    let token = mint(&hs256(Some("k9")), &claims(), SECRET);
    assert_refused!(verify(&token), TokenError::UnknownKeyId { kid } if kid == "k9");
    // The key id is matched exactly.
    for kid in ["K1", "k1.", "k10"] {
        let token = mint(&hs256(Some(kid)), &claims(), SECRET);
        assert_refused!(
            verify(&token),
            TokenError::UnknownKeyId { kid: found } if found == kid,
            "{kid}"
        );
    }
}

#[test]
fn a_retired_key_verifies_until_removed() {
    let mut ring = keys();
    let old = ring.sign(&claims()).into_string();
    ring.rotate(Key::new("k2", OTHER_SECRET).unwrap());
    let new = ring.sign(&claims()).into_string();
    assert_eq!(UnverifiedToken::parse(&new).unwrap().key_id(), "k2");

    assert!(verify_with(&old, &ring, now()).is_ok());
    assert!(verify_with(&new, &ring, now()).is_ok());

    assert!(ring.remove("k1"));
    assert_refused!(
        verify_with(&old, &ring, now()),
        TokenError::UnknownKeyId { kid } if kid == "k1"
    );
    assert!(verify_with(&new, &ring, now()).is_ok());
    // A token minted elsewhere under the rotated-in key verifies too.
    let minted = mint(&hs256(Some("k2")), &claims(), OTHER_SECRET);
    assert!(verify_with(&minted, &ring, now()).is_ok());
}

#[test]
fn another_key_under_the_same_key_id_is_a_bad_signature() {
    let impostor = mint(&hs256(Some("k1")), &claims(), OTHER_SECRET);
    assert_refused!(verify(&impostor), TokenError::BadSignature);
    let by_our_code = Key::new("k1", OTHER_SECRET)
        .unwrap()
        .sign(&claims())
        .into_string();
    assert_refused!(verify(&by_our_code), TokenError::BadSignature);

    // Rotating to a new secret under a held id voids the old secret's tokens.
    let mut ring = keys();
    let old = ring.sign(&claims()).into_string();
    ring.rotate(Key::new("k1", OTHER_SECRET).unwrap());
    assert_refused!(verify_with(&old, &ring, now()), TokenError::BadSignature);
}

// ---------------------------------------------------------------------------------------
// Malformed encodings
// ---------------------------------------------------------------------------------------

#[test]
fn every_truncation_is_refused_without_panicking() {
    let token = good();
    assert!(token.is_ascii());
    for end in 0..token.len() {
        let prefix = &token[..end];
        assert_refused!(
            verify(prefix),
            TokenError::Malformed { .. } | TokenError::BadSignature,
            "first {end} bytes"
        );
    }
    for start in 1..=token.len() {
        let suffix = &token[start..];
        assert_refused!(
            verify(suffix),
            TokenError::Malformed { .. } | TokenError::BadSignature,
            "from byte {start}"
        );
    }
    // One byte cut out anywhere.
    for at in 0..token.len() {
        let cut = format!("{}{}", &token[..at], &token[at + 1..]);
        assert_refused!(
            verify(&cut),
            TokenError::Malformed { .. } | TokenError::BadSignature,
            "byte {at} removed"
        );
    }
}

#[test]
fn padding_dots_and_whitespace_are_malformed() {
    let token = good();
    let (header, payload, signature) = split(&token);
    let cases = [
        format!("{token}="),
        format!("{token}=="),
        format!("{header}=.{payload}.{signature}"),
        format!("{header}.{payload}=.{signature}"),
        format!("{header}.{payload}==.{signature}"),
        format!("{header}.{payload}.{signature}="),
        format!("{token}."),
        format!(".{token}"),
        format!("{token}.{signature}"),
        format!("{header}.{payload}..{signature}"),
        format!("{header}..{payload}.{signature}"),
        format!(" {token}"),
        format!("{token} "),
        format!("{token}\n"),
        format!("{token}\r\n"),
        format!("\t{token}"),
        format!("{header} .{payload}.{signature}"),
        format!("{header}.{payload}\n.{signature}"),
        format!("{header}.{} {}.{signature}", &payload[..8], &payload[8..]),
        format!("Bearer {token}"),
    ];
    for forged in &cases {
        assert_refused!(verify(forged), TokenError::Malformed { .. }, "{forged:?}");
    }

    // The standard base64 alphabet (`+` and `/`) instead of the URL-safe one (`-`, `_`):
    // find a signature that has one of them.
    let (token, signature) = (0..)
        .map(|i| {
            let token = keys()
                .sign(&Claims {
                    iat: t0().unix_timestamp() + i,
                    ..claims()
                })
                .into_string();
            let signature = split(&token).2.to_owned();
            (token, signature)
        })
        .find(|(_, s)| s.contains(['-', '_']))
        .unwrap();
    assert!(verify(&token).is_ok());
    let standard =
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(B64.decode(&signature).unwrap());
    assert_ne!(standard, signature);
    let forged = token.replace(&signature, &standard);
    assert_refused!(verify(&forged), TokenError::Malformed { .. }, "{forged:?}");
}

#[test]
fn oversized_tokens_are_refused_before_anything_else() {
    // A properly signed token whose payload carries 9 KiB of padding.
    let mut big = claims_json();
    big["pad"] = json!("x".repeat(9 * 1024));
    let padded = sign_raw(
        br#"{"alg":"HS256","typ":"JWT","kid":"k1"}"#,
        big.to_string().as_bytes(),
        SECRET,
    );
    assert!(padded.len() > 8 * 1024);
    assert_refused!(verify(&padded), TokenError::Malformed { .. });

    // Just under the limit is still read (and here, verified).
    let mut near = claims_json();
    near["pad"] = json!("");
    let base = sign_raw(
        br#"{"alg":"HS256","typ":"JWT","kid":"k1"}"#,
        near.to_string().as_bytes(),
        SECRET,
    )
    .len();
    let room = (8 * 1024 - base) / 4 * 3;
    near["pad"] = json!("x".repeat(room));
    let fits = sign_raw(
        br#"{"alg":"HS256","typ":"JWT","kid":"k1"}"#,
        near.to_string().as_bytes(),
        SECRET,
    );
    assert!(fits.len() <= 8 * 1024, "{}", fits.len());
    assert!(verify(&fits).is_ok());

    // 10 MiB: of junk, and shaped like a token.
    let junk = "A".repeat(10 * 1024 * 1024);
    assert_refused!(verify(&junk), TokenError::Malformed { .. });
    let (header, _, signature) = split(&padded);
    let huge = format!("{header}.{junk}.{signature}");
    assert_refused!(verify(&huge), TokenError::Malformed { .. });
    let dots = ".".repeat(10 * 1024 * 1024);
    assert_refused!(verify(&dots), TokenError::Malformed { .. });
}

#[test]
fn characters_outside_base64url_are_malformed() {
    let token = good();
    let (header, payload, signature) = split(&token);
    for bad in ["*", "+", "/", "%", "~", "é", "\u{0}", "\u{200b}", "="] {
        let cases = [
            format!("{}{bad}.{payload}.{signature}", &header[..header.len() - 1]),
            format!("{header}.{bad}{}.{signature}", &payload[1..]),
            format!("{header}.{payload}.{bad}{}", &signature[1..]),
        ];
        for forged in &cases {
            assert_refused!(verify(forged), TokenError::Malformed { .. }, "{forged:?}");
        }
    }
}

#[test]
fn payloads_that_are_not_a_claims_object_are_malformed_even_when_signed() {
    let header = br#"{"alg":"HS256","typ":"JWT","kid":"k1"}"#;
    let c = claims_json();
    let mut invalid_utf8 = serde_json::to_vec(&c).unwrap();
    let at = invalid_utf8.windows(5).position(|w| w == b"alice").unwrap();
    invalid_utf8[at] = 0xFF;
    let as_array = json!([
        c["jti"],
        c["run_id"],
        c["call_id"],
        c["tool"],
        c["args_hash"],
        c["policy_version"],
        c["approvers"],
        c["iat"],
        c["exp"],
    ]);
    let mut exp_as_float = c.clone();
    exp_as_float["exp"] = json!(1.767_226e9);
    let mut exp_as_string = c.clone();
    exp_as_string["exp"] = json!(c["exp"].to_string());
    let mut no_tool = c.clone();
    no_tool.as_object_mut().unwrap().remove("tool");
    let mut bad_hash = c.clone();
    bad_hash["args_hash"] = json!("not-a-hash");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("invalid UTF-8 in a string", invalid_utf8),
        ("array", b"[]".to_vec()),
        ("claims as an array", as_array.to_string().into_bytes()),
        ("null", b"null".to_vec()),
        ("string", br#""claims""#.to_vec()),
        ("number", b"42".to_vec()),
        ("empty", Vec::new()),
        ("empty object", b"{}".to_vec()),
        ("trailing garbage", format!("{c}x").into_bytes()),
        ("two objects", format!("{c}{c}").into_bytes()),
        ("exp as a float", exp_as_float.to_string().into_bytes()),
        ("exp as a string", exp_as_string.to_string().into_bytes()),
        ("missing tool", no_tool.to_string().into_bytes()),
        ("bad args hash", bad_hash.to_string().into_bytes()),
    ];
    for (what, payload) in cases {
        let token = sign_raw(header, &payload, SECRET);
        assert_refused!(verify(&token), TokenError::Malformed { .. }, "{what}");
        // The unverified reader refuses them the same way.
        let parsed = UnverifiedToken::parse(&token).unwrap();
        assert_refused!(
            approval_gate::token::dangerous::insecure_claims(&parsed),
            TokenError::Malformed { .. },
            "{what} (dangerous)"
        );
    }
}

#[test]
fn headers_that_are_not_an_object_are_malformed_even_when_signed() {
    let payload = serde_json::to_vec(&claims()).unwrap();
    let cases: [&[u8]; 7] = [
        br#"["HS256","JWT","k1"]"#,
        br#"["HS256","JWT","k1",null]"#,
        b"null",
        br#""HS256""#,
        b"",
        b"{\"alg\":\"HS256\",\"kid\":\"k\xff1\"}",
        br#"{"alg":"HS256","kid":"k1"} {}"#,
    ];
    for header in cases {
        let token = sign_raw(header, &payload, SECRET);
        assert_refused!(
            verify(&token),
            TokenError::Malformed { .. },
            "{}",
            String::from_utf8_lossy(header)
        );
    }
}

#[test]
fn duplicate_claims_are_refused_even_when_signed() {
    // Two `tool` claims: one verifier may read the first, another the last. Refuse both.
    let header = br#"{"alg":"HS256","typ":"JWT","kid":"k1"}"#;
    let body = serde_json::to_string(&claims()).unwrap();
    let inner = &body[1..body.len() - 1];
    let cases = [
        format!(r#"{{{inner},"tool":"db.drop_table"}}"#),
        format!(r#"{{"tool":"db.drop_table",{inner}}}"#),
        format!(r#"{{{inner},"to\u006fl":"db.drop_table"}}"#),
        format!(r#"{{{inner},"exp":99999999999}}"#),
        format!(r#"{{{inner},"jti":"req-1"}}"#),
        format!(r#"{{{inner},"approvers":["ceo"]}}"#),
    ];
    for payload in &cases {
        let token = sign_raw(header, payload.as_bytes(), SECRET);
        assert_refused!(verify(&token), TokenError::Malformed { .. }, "{payload}");
    }
    // Duplicate header fields likewise.
    let token = sign_raw(
        br#"{"alg":"HS256","kid":"k1","kid":"k2"}"#,
        body.as_bytes(),
        SECRET,
    );
    assert_refused!(verify(&token), TokenError::Malformed { .. });
}

// ---------------------------------------------------------------------------------------
// At the gate
// ---------------------------------------------------------------------------------------

const POLICY: &str = "approvals:\n  required_for: [email.send]\n  ttl_seconds: 300\n";

struct World {
    store: Arc<MemoryStore>,
    clock: ManualClock,
    runs: Arc<AtomicUsize>,
}

impl World {
    fn new() -> Self {
        World {
            store: Arc::new(MemoryStore::new()),
            clock: ManualClock::new(t0()),
            runs: Arc::default(),
        }
    }

    /// A gate on this world's store and clock, signing and verifying with `keys`.
    fn gate(&self, keys: Keyring) -> Gate {
        Gate::builder(Policy::from_yaml_str(POLICY).unwrap(), keys)
            .shared_store(self.store.clone())
            .clock(self.clock.clone())
            .build()
    }

    /// A tool that counts its runs.
    fn tool(&self, gate: &Gate) -> Gated<impl ToolExecutor<Output = (), Error = String> + use<>> {
        let runs = self.runs.clone();
        gate.wrap(move |_: Execution| {
            let runs = runs.clone();
            async move {
                runs.fetch_add(1, Ordering::SeqCst);
                Ok::<(), String>(())
            }
        })
    }

    fn runs(&self) -> usize {
        self.runs.load(Ordering::SeqCst)
    }

    /// Writes `token` onto the stored request `id`, as a tampering store (or someone with
    /// write access to its database) would: a new version through the public API.
    async fn put_token(&self, id: RequestId, token: approval_gate::token::ApprovalToken) {
        let stored = self.store.get(id).await.unwrap();
        // Rewritten in its stored form, as someone with write access to the rows would.
        let mut row = serde_json::to_value(&stored).unwrap();
        row["token"] = serde_json::to_value(&token).unwrap();
        row["version"] = json!(stored.version() + 1);
        let tampered: ApprovalRequest = serde_json::from_value(row).unwrap();
        let record = AuditRecord::for_request(
            self.clock.now(),
            &tampered,
            AuditEvent::Stopped {
                reason: "tampered".into(),
                detail: None,
            },
        );
        self.store.update(&tampered, &record).await.unwrap();
    }
}

/// `text` as a stored approval token, whatever it holds.
fn token_text(text: &str) -> approval_gate::token::ApprovalToken {
    serde_json::from_value(json!(text)).unwrap()
}

fn email(call_id: &str, to: &str) -> ToolCall {
    ToolCall::new(
        "run-1",
        call_id,
        "email.send",
        json!({"to": to, "subject": "Hi"}),
    )
    .with_requester("agent")
}

async fn file_and_approve<E: ToolExecutor>(gated: &Gated<E>, call: ToolCall) -> RequestId {
    let id = match gated.call(call).await.unwrap() {
        GateOutcome::Pending(p) => {
            assert!(p.created, "a new request is filed");
            p.request_id
        }
        other => panic!("expected pending, got {}", other.name()),
    };
    gated
        .gate()
        .desk()
        .approve(id, &Approver::new("ann"))
        .await
        .unwrap();
    id
}

/// Resumes `call` on request `id` and returns why the gate stopped it.
async fn resume_stop<E: ToolExecutor>(gated: &Gated<E>, id: RequestId, call: ToolCall) -> StopReason
where
    E::Output: std::fmt::Debug,
    E::Error: std::fmt::Debug,
{
    stop_reason(gated.resume(id, call).await.unwrap())
}

/// Resumes `call` on request `id` and asserts that the tool ran.
async fn assert_runs<E: ToolExecutor>(gated: &Gated<E>, id: RequestId, call: ToolCall)
where
    E::Output: std::fmt::Debug,
    E::Error: std::fmt::Debug,
{
    let outcome = gated.resume(id, call).await.unwrap();
    assert!(outcome.executed().is_some(), "{outcome:?}");
}

fn stop_reason<T: std::fmt::Debug, E: std::fmt::Debug>(outcome: GateOutcome<T, E>) -> StopReason {
    match outcome {
        GateOutcome::Stopped(stop) => stop.reason,
        other => panic!("expected stopped, got {other:?}"),
    }
}

#[tokio::test]
async fn a_token_moved_onto_another_request_for_the_same_call_is_refused() {
    let w = World::new();
    let gate = w.gate(keys());
    let tool = w.tool(&gate);
    // The same call filed twice (the first is no longer pending once approved), so the
    // two tokens differ only in the request they name.
    let a = file_and_approve(&tool, email("c1", "bob@example.com")).await;
    let b = file_and_approve(&tool, email("c1", "bob@example.com")).await;
    assert_ne!(a, b);
    let token_a = w.store.get(a).await.unwrap().token().unwrap().clone();

    w.put_token(b, token_a).await;
    let reason = resume_stop(&tool, b, email("c1", "bob@example.com")).await;
    assert!(
        matches!(reason, StopReason::InvalidToken(TokenError::WrongRequest)),
        "{reason:?}"
    );
    assert_eq!(w.runs(), 0, "the tool did not run");
    // Nothing was claimed: B is still approved, and A's own token still works for A.
    assert_eq!(
        w.store.get(b).await.unwrap().state_at(w.clock.now()),
        RequestState::Approved
    );
    assert_runs(&tool, a, email("c1", "bob@example.com")).await;
    assert_eq!(w.runs(), 1);
}

#[tokio::test]
async fn a_token_moved_onto_a_request_for_other_args_is_refused() {
    let w = World::new();
    let gate = w.gate(keys());
    let tool = w.tool(&gate);
    let a = file_and_approve(&tool, email("c1", "bob@example.com")).await;
    let b = file_and_approve(&tool, email("c2", "mallory@example.com")).await;
    let token_a = w.store.get(a).await.unwrap().token().unwrap().clone();

    w.put_token(b, token_a).await;
    let reason = resume_stop(&tool, b, email("c2", "mallory@example.com")).await;
    assert!(
        matches!(reason, StopReason::InvalidToken(TokenError::WrongArgs)),
        "{reason:?}"
    );
    assert_eq!(w.runs(), 0);
    // The stop is on the record, with the token's error.
    let trail = w
        .store
        .audit_records(&approval_gate::trail::AuditQuery::default())
        .await
        .unwrap();
    let last = trail.last().unwrap();
    assert_eq!(last.request_id, Some(b));
    assert!(
        matches!(&last.event, AuditEvent::Stopped { reason, detail }
            if reason == "invalid_token" && detail.as_deref().is_some_and(|d| d.contains("args"))),
        "{last:?}"
    );
}

#[tokio::test]
async fn a_forged_or_extended_token_on_a_request_is_refused() {
    let w = World::new();
    let gate = w.gate(keys());
    let tool = w.tool(&gate);
    let id = file_and_approve(&tool, email("c1", "bob@example.com")).await;
    let stored = w.store.get(id).await.unwrap();
    let genuine = stored.token().unwrap().clone();
    let genuine_claims = {
        let parsed = UnverifiedToken::parse(genuine.as_str()).unwrap();
        approval_gate::token::dangerous::insecure_claims(&parsed).unwrap()
    };

    // The genuine claims, expiry pushed out a day, re-signed with a guessed secret.
    let extended = Claims {
        exp: genuine_claims.exp + 86_400,
        ..genuine_claims.clone()
    };
    let forged = mint(&hs256(Some("k1")), &extended, OTHER_SECRET);
    w.put_token(id, token_text(&forged)).await;
    let reason = resume_stop(&tool, id, email("c1", "bob@example.com")).await;
    assert!(
        matches!(reason, StopReason::InvalidToken(TokenError::BadSignature)),
        "{reason:?}"
    );

    // The genuine header and signature over the extended claims.
    let (header, _, signature) = split(genuine.as_str());
    let payload = B64.encode(serde_json::to_vec(&extended).unwrap());
    let spliced = format!("{header}.{payload}.{signature}");
    w.put_token(id, token_text(&spliced)).await;
    let reason = resume_stop(&tool, id, email("c1", "bob@example.com")).await;
    assert!(
        matches!(reason, StopReason::InvalidToken(TokenError::BadSignature)),
        "{reason:?}"
    );

    // An unsigned token.
    let none = format!(
        "{}.{payload}.",
        B64.encode(r#"{"alg":"none","typ":"JWT","kid":"k1"}"#)
    );
    w.put_token(id, token_text(&none)).await;
    let reason = resume_stop(&tool, id, email("c1", "bob@example.com")).await;
    assert!(
        matches!(
            &reason,
            StopReason::InvalidToken(TokenError::UnsupportedAlgorithm { alg }) if alg == "none"
        ),
        "{reason:?}"
    );
    assert_eq!(w.runs(), 0);

    // Put back, the genuine token works.
    w.put_token(id, genuine).await;
    assert_runs(&tool, id, email("c1", "bob@example.com")).await;
    assert_eq!(w.runs(), 1);
}

#[tokio::test]
async fn a_replayed_approval_is_refused_and_the_tool_runs_once() {
    let w = World::new();
    let gate = w.gate(keys());
    let tool = w.tool(&gate);
    let id = file_and_approve(&tool, email("c1", "bob@example.com")).await;

    assert_runs(&tool, id, email("c1", "bob@example.com")).await;
    for _ in 0..3 {
        let reason = resume_stop(&tool, id, email("c1", "bob@example.com")).await;
        assert!(
            matches!(
                reason,
                StopReason::ApprovalUsed {
                    state: RequestState::Executed
                }
            ),
            "{reason:?}"
        );
    }
    // Still refused later, and from another gate on the same store.
    w.clock.advance(Duration::from_secs(60));
    let other = w.gate(keys());
    let reason = resume_stop(&w.tool(&other), id, email("c1", "bob@example.com")).await;
    assert!(
        matches!(reason, StopReason::ApprovalUsed { .. }),
        "{reason:?}"
    );
    assert_eq!(w.runs(), 1, "the executor ran exactly once");
}

#[tokio::test]
async fn a_gate_holding_other_keys_refuses_the_stored_token() {
    let w = World::new();
    let issuer = w.gate(keys());
    let id = file_and_approve(&w.tool(&issuer), email("c1", "bob@example.com")).await;

    // Same key id, another secret.
    let impostor = w.gate(Keyring::new(Key::new("k1", OTHER_SECRET).unwrap()));
    let reason = resume_stop(&w.tool(&impostor), id, email("c1", "bob@example.com")).await;
    assert!(
        matches!(reason, StopReason::InvalidToken(TokenError::BadSignature)),
        "{reason:?}"
    );

    // Another key id altogether.
    let stranger = w.gate(Keyring::new(Key::new("k2", SECRET).unwrap()));
    let reason = resume_stop(&w.tool(&stranger), id, email("c1", "bob@example.com")).await;
    assert!(
        matches!(&reason, StopReason::InvalidToken(TokenError::UnknownKeyId { kid }) if kid == "k1"),
        "{reason:?}"
    );
    assert_eq!(w.runs(), 0, "the tool did not run");

    // The key rotated out and removed on the issuer: its tokens stop working there too.
    let mut ring = keys();
    ring.rotate(Key::new("k2", OTHER_SECRET).unwrap());
    issuer.set_keys(ring.clone());
    let second = file_and_approve(&w.tool(&issuer), email("c2", "carol@example.com")).await;
    assert!(ring.remove("k1"));
    issuer.set_keys(ring);
    let reason = resume_stop(&w.tool(&issuer), id, email("c1", "bob@example.com")).await;
    assert!(
        matches!(&reason, StopReason::InvalidToken(TokenError::UnknownKeyId { kid }) if kid == "k1"),
        "{reason:?}"
    );
    assert_eq!(w.runs(), 0);
    // The approval signed under the rotated-in key still runs.
    assert_runs(&w.tool(&issuer), second, email("c2", "carol@example.com")).await;
    assert_eq!(w.runs(), 1);
}

#[test]
fn an_algorithm_name_cannot_forge_lines_in_a_log() {
    // The header is the attacker's: whatever it names must not break the error message
    // (which hosts log, and the gate writes to the audit trail) into lines of its own.
    let payload = serde_json::to_vec(&claims()).unwrap();
    for alg in [
        "none\n2026-01-01T00:00:00Z INFO approval granted by admin",
        "none\r\nx",
        "none\u{1b}[2J",
        "none\u{202e}",
        "none\u{0}",
    ] {
        let header = json!({"alg": alg, "typ": "JWT", "kid": "k1"}).to_string();
        let token = sign_raw(header.as_bytes(), &payload, SECRET);
        match verify(&token) {
            Err(e @ TokenError::UnsupportedAlgorithm { .. }) => {
                let message = e.to_string();
                assert!(
                    !message.chars().any(|c| c.is_control() || c == '\u{202e}'),
                    "{message:?}"
                );
                assert!(message.starts_with("unsupported token algorithm `none"));
            }
            other => panic!("{alg:?}: {other:?}"),
        }
    }
}
