//! Our approval tokens are plain HS256 JWTs: the `jsonwebtoken` crate verifies ours, and
//! ours verifies its. Uses only the public API, as a tool service in another process would.

use approval_gate::{
    ArgsHash, Clock, Key, Keyring, SystemClock,
    token::{Claims, Expectations, TokenError, UnverifiedToken},
};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{
    Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, decode_header, encode,
};
use serde_json::json;

const SECRET: &[u8] = b"interop-secret-interop-secret-interop-secret";

fn args_hash() -> ArgsHash {
    ArgsHash::compute(&json!({"to": "bob@example.com", "subject": "Hi"})).unwrap()
}

/// Claims valid for five minutes from the real clock: `jsonwebtoken` reads it.
fn claims_valid_for(seconds: i64) -> Claims {
    let now = SystemClock.now().unix_timestamp();
    Claims {
        jti: "req-1".into(),
        run_id: "run-1".into(),
        call_id: "call-1".into(),
        tool: "email.send".into(),
        args_hash: args_hash(),
        policy_version: "policy-v1".into(),
        approvers: vec!["alice".into(), "bob".into()],
        iat: now,
        exp: now + seconds,
    }
}

fn strict_hs256() -> Validation {
    let mut v = Validation::new(Algorithm::HS256);
    v.leeway = 0;
    v
}

#[test]
fn jsonwebtoken_verifies_our_token() {
    let keys = Keyring::new(Key::new("k1", SECRET).unwrap());
    let claims = claims_valid_for(300);
    let token = keys.sign(&claims);

    let header = decode_header(token.as_str()).unwrap();
    assert_eq!(header.alg, Algorithm::HS256);
    assert_eq!(header.typ.as_deref(), Some("JWT"));
    assert_eq!(header.kid.as_deref(), Some("k1"));

    let data = decode::<Claims>(
        token.as_str(),
        &DecodingKey::from_secret(SECRET),
        &strict_hs256(),
    )
    .unwrap();
    assert_eq!(data.claims, claims);
    assert_eq!(data.claims.args_hash.to_string().len(), 64);
}

#[test]
fn jsonwebtoken_refuses_our_expired_token_and_a_wrong_secret() {
    let key = Key::new("k1", SECRET).unwrap();
    let expired = key.sign(&claims_valid_for(-10));
    let err = decode::<Claims>(
        expired.as_str(),
        &DecodingKey::from_secret(SECRET),
        &strict_hs256(),
    )
    .unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::ExpiredSignature);

    let fresh = key.sign(&claims_valid_for(300));
    let err = decode::<Claims>(
        fresh.as_str(),
        &DecodingKey::from_secret(&[0u8; 32]),
        &strict_hs256(),
    )
    .unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::InvalidSignature);
}

#[test]
fn we_verify_a_token_made_by_jsonwebtoken() {
    let claims = claims_valid_for(300);
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("k1".into());
    let token = encode(&header, &claims, &EncodingKey::from_secret(SECRET)).unwrap();

    let keys = Keyring::new(Key::new("k1", SECRET).unwrap());
    let hash = args_hash();
    let expected = Expectations::new("email.send", &hash, "run-1")
        .call_id("call-1")
        .request_id("req-1");
    let parsed = UnverifiedToken::parse(&token).unwrap();
    assert_eq!(parsed.key_id(), "k1");
    let approval = parsed.verify(&keys, &expected, SystemClock.now()).unwrap();
    assert_eq!(approval.claims(), &claims);
    assert_eq!(approval.approvers(), ["alice", "bob"]);
    assert_eq!(approval.token().as_str(), token);
}

#[test]
fn we_refuse_jsonwebtoken_tokens_with_another_algorithm_or_secret() {
    let claims = claims_valid_for(300);
    let mut header = Header::new(Algorithm::HS512);
    header.kid = Some("k1".into());
    let hs512 = encode(&header, &claims, &EncodingKey::from_secret(SECRET)).unwrap();
    match UnverifiedToken::parse(&hs512) {
        Err(TokenError::UnsupportedAlgorithm { alg }) => assert_eq!(alg, "HS512"),
        other => panic!("{other:?}"),
    }

    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("k1".into());
    let other_secret = encode(&header, &claims, &EncodingKey::from_secret(&[7u8; 32])).unwrap();
    let key = Key::new("k1", SECRET).unwrap();
    let hash = args_hash();
    let expected = Expectations::new("email.send", &hash, "run-1");
    let result =
        UnverifiedToken::parse(&other_secret)
            .unwrap()
            .verify(&key, &expected, SystemClock.now());
    assert!(matches!(result, Err(TokenError::BadSignature)));

    let no_kid = encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap();
    assert!(matches!(
        UnverifiedToken::parse(&no_kid),
        Err(TokenError::Malformed { .. })
    ));
}
