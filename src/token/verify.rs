//! Verification: [`UnverifiedToken`] → [`VerifiedApproval`], checked against [`Expectations`].

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use hmac::Mac;
use serde::{Deserialize, Deserializer};
use time::OffsetDateTime;

use super::key::is_valid_key_id;
use super::{ALG, ApprovalToken, B64, Claims, KeyProvider, TokenError};
use crate::call::{ArgsHash, ToolCall};

/// The longest token accepted, in bytes.
const MAX_TOKEN_LEN: usize = 8 * 1024;
/// The longest encoded header accepted; ours is about 60 characters.
const MAX_HEADER_B64_LEN: usize = 512;
/// An HS256 signature: 32 bytes are 43 base64url characters without padding.
const SIGNATURE_B64_LEN: usize = 43;

/// What the caller is about to do, which a token must match to be accepted.
///
/// The required fields come from [`Expectations::new`] or [`Expectations::for_call`]; the
/// optional checks are set with the builder methods. Each field says what it checks and
/// what happens when it is left at its default.
///
/// ```
/// use approval_gate::{ArgsHash, token::Expectations};
/// use serde_json::json;
/// use std::time::Duration;
///
/// let hash = ArgsHash::compute(&json!({"to": "bob@example.com"})).unwrap();
/// let expected = Expectations::new("email.send", &hash, "run-1")
///     .call_id("call-1")
///     .request_id("req-1")
///     .leeway(Duration::from_secs(5));
/// assert_eq!(expected.call_id, Some("call-1"));
/// ```
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Expectations<'a> {
    /// The tool about to run. Always checked: a token for another tool fails with
    /// [`TokenError::WrongTool`].
    pub tool: &'a str,
    /// The hash of the arguments about to be used. Always checked: a token for other
    /// arguments fails with [`TokenError::WrongArgs`].
    pub args_hash: &'a ArgsHash,
    /// The agent run the call belongs to. Always checked: a token from another run fails
    /// with [`TokenError::WrongRun`].
    pub run_id: &'a str,
    /// The tool call's id within the run. Default `None`: not checked, any call in the run
    /// with the same tool and args is accepted. Set it (the gate does, and
    /// [`for_call`](Expectations::for_call) does) to bind the token to one call;
    /// a mismatch fails with [`TokenError::WrongCall`].
    pub call_id: Option<&'a str>,
    /// The approval request's id (the `jti` claim). Default `None`: not checked. Set it
    /// when resuming a known request; a mismatch fails with [`TokenError::WrongRequest`].
    /// Single use is not checked here: the store's claim on the request id enforces it.
    pub request_id: Option<&'a str>,
    /// The policy version the token must have been issued under. Default `None`: not
    /// checked, so a policy change alone does not void approvals (the gate re-evaluates
    /// the policy instead). Set it to void every token issued under another policy; a
    /// mismatch fails with [`TokenError::WrongPolicyVersion`].
    pub policy_version: Option<&'a str>,
    /// How long after `exp` a token is still accepted, for clock skew between issuer and
    /// verifier. Default zero: a token is expired from its `exp` second on
    /// ([`TokenError::Expired`]).
    pub leeway: Duration,
}

impl<'a> Expectations<'a> {
    /// Expect a token for `tool` with args hashing to `args_hash` in run `run_id`; the
    /// optional checks are off and the leeway is zero.
    pub fn new(tool: &'a str, args_hash: &'a ArgsHash, run_id: &'a str) -> Self {
        Expectations {
            tool,
            args_hash,
            run_id,
            call_id: None,
            request_id: None,
            policy_version: None,
            leeway: Duration::ZERO,
        }
    }

    /// Expect a token for exactly this call: its tool, run and call id, with args hashing
    /// to `args_hash` (the hash of `call.args()`, or of the edited args that were approved).
    pub fn for_call(call: &'a ToolCall, args_hash: &'a ArgsHash) -> Self {
        Expectations::new(call.tool(), args_hash, call.run_id()).call_id(call.call_id())
    }

    /// Also require the tool call id `call_id`.
    pub fn call_id(mut self, call_id: &'a str) -> Self {
        self.call_id = Some(call_id);
        self
    }

    /// Also require the approval request id `request_id`.
    pub fn request_id(mut self, request_id: &'a str) -> Self {
        self.request_id = Some(request_id);
        self
    }

    /// Also require the policy version `policy_version`.
    pub fn policy_version(mut self, policy_version: &'a str) -> Self {
        self.policy_version = Some(policy_version);
        self
    }

    /// Accept tokens up to `leeway` after their expiry.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }
}

/// A token whose structure has been checked but whose signature and claims have not.
///
/// The only way on is [`verify`](UnverifiedToken::verify), which yields a
/// [`VerifiedApproval`]; the claims cannot be read before that except through
/// [`dangerous::insecure_claims`](crate::token::dangerous::insecure_claims).
///
/// ```
/// use approval_gate::{ArgsHash, Key, Keyring, token::{Claims, Expectations, TokenError, UnverifiedToken}};
/// use serde_json::json;
/// use time::macros::datetime;
///
/// let keys = Keyring::new(Key::new("k1", [42u8; 32]).unwrap());
/// let args_hash = ArgsHash::compute(&json!({"to": "bob@example.com"})).unwrap();
/// let issued = datetime!(2026-01-01 00:00:00 UTC);
/// let token = keys.sign(&Claims {
///     jti: "req-1".into(),
///     run_id: "run-1".into(),
///     call_id: "call-1".into(),
///     tool: "email.send".into(),
///     args_hash,
///     policy_version: "policy-v1".into(),
///     approvers: vec!["alice".into()],
///     iat: issued.unix_timestamp(),
///     exp: issued.unix_timestamp() + 300,
/// });
///
/// let expected = Expectations::new("email.send", &args_hash, "run-1").call_id("call-1");
/// let approval = UnverifiedToken::parse(token.as_str())?
///     .verify(&keys, &expected, issued + time::Duration::seconds(60))?;
/// assert_eq!(approval.approvers(), ["alice"]);
///
/// let late = UnverifiedToken::parse(token.as_str())?
///     .verify(&keys, &expected, issued + time::Duration::seconds(300));
/// assert!(matches!(late, Err(TokenError::Expired { .. })));
/// # Ok::<(), TokenError>(())
/// ```
#[derive(Clone)]
pub struct UnverifiedToken<'a> {
    /// The whole token.
    token: &'a str,
    /// The length of `header.payload`, the signing input.
    signed_len: usize,
    kid: String,
    payload: Vec<u8>,
    signature: [u8; 32],
}

/// The header fields we read; others are ignored. Duplicate fields are refused by serde.
#[derive(Deserialize)]
struct RawHeader<'h> {
    #[serde(borrow)]
    alg: Option<Cow<'h, str>>,
    #[serde(borrow)]
    typ: Option<Cow<'h, str>>,
    #[serde(borrow)]
    kid: Option<Cow<'h, str>>,
    #[serde(default, deserialize_with = "present")]
    crit: bool,
}

/// `true` whenever the field is there, whatever its value (even `null`).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(d).map(|_| true)
}

impl<'a> UnverifiedToken<'a> {
    /// Checks the token's structure: at most 8 KiB, three base64url parts without padding,
    /// a JSON header with `alg` `HS256`, no `crit`, `typ` absent or `JWT`, and a key id; a
    /// base64url payload and a 32-byte signature.
    ///
    /// Fails with [`TokenError::Malformed`] or [`TokenError::UnsupportedAlgorithm`].
    pub fn parse(token: &'a str) -> Result<UnverifiedToken<'a>, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::malformed("token is longer than 8 KiB"));
        }
        let parts = token.split_once('.').and_then(|(header, rest)| {
            let (payload, signature) = rest.split_once('.')?;
            (!signature.contains('.')).then_some((header, payload, signature))
        });
        let Some((header_b64, payload_b64, signature_b64)) = parts else {
            return Err(TokenError::malformed(
                "token is not three dot-separated parts",
            ));
        };

        if header_b64.len() > MAX_HEADER_B64_LEN {
            return Err(TokenError::malformed(
                "header is longer than 512 characters",
            ));
        }
        let mut header_buf = [0u8; MAX_HEADER_B64_LEN / 4 * 3 + 3];
        let header_len = B64
            .decode_slice(header_b64, &mut header_buf)
            .map_err(|e| TokenError::malformed_by("header is not base64url", e))?;
        let header_json = &header_buf[..header_len];
        if !is_json_object(header_json) {
            return Err(TokenError::malformed("header is not a JSON object"));
        }
        let header: RawHeader<'_> = serde_json::from_slice(header_json)
            .map_err(|e| TokenError::malformed_by("header is not a JSON object", e))?;
        match header.alg.as_deref() {
            Some(ALG) => {}
            Some(other) => {
                // Escaped: it is the sender's text, and goes into messages and logs.
                return Err(TokenError::UnsupportedAlgorithm {
                    alg: other.escape_debug().to_string(),
                });
            }
            None => return Err(TokenError::malformed("header has no `alg`")),
        }
        if header.crit {
            return Err(TokenError::malformed(
                "header has `crit` extensions, none are supported",
            ));
        }
        if header
            .typ
            .as_deref()
            .is_some_and(|t| !t.eq_ignore_ascii_case("JWT"))
        {
            return Err(TokenError::malformed("header `typ` is not `JWT`"));
        }
        let kid = match header.kid {
            Some(kid) if is_valid_key_id(&kid) => kid.into_owned(),
            Some(_) => {
                return Err(TokenError::malformed(
                    "header `kid` is not 1 to 64 characters of `A-Z a-z 0-9 . _ -`",
                ));
            }
            None => return Err(TokenError::malformed("header has no `kid`")),
        };

        let payload = B64
            .decode(payload_b64)
            .map_err(|e| TokenError::malformed_by("payload is not base64url", e))?;

        if signature_b64.len() != SIGNATURE_B64_LEN {
            return Err(TokenError::malformed("signature is not 32 bytes"));
        }
        let mut signature_buf = [0u8; 33];
        let n = B64
            .decode_slice(signature_b64, &mut signature_buf)
            .map_err(|e| TokenError::malformed_by("signature is not base64url", e))?;
        let mut signature = [0u8; 32];
        if n != signature.len() {
            return Err(TokenError::malformed("signature is not 32 bytes"));
        }
        signature.copy_from_slice(&signature_buf[..32]);

        Ok(UnverifiedToken {
            token,
            signed_len: header_b64.len() + 1 + payload_b64.len(),
            kid,
            payload,
            signature,
        })
    }

    /// The key id in the token's header: which key it claims to be signed with.
    pub fn key_id(&self) -> &str {
        &self.kid
    }

    /// Verifies the token and checks it against `expected` at the instant `now`.
    ///
    /// In this order, stopping at the first failure: the key id is known to `keys`
    /// ([`UnknownKeyId`](TokenError::UnknownKeyId)); the signature matches, compared in
    /// constant time ([`BadSignature`](TokenError::BadSignature)); the claims decode
    /// ([`Malformed`](TokenError::Malformed)); `now` is before `exp` plus the leeway
    /// ([`Expired`](TokenError::Expired)); then tool, args hash, run, call, request and
    /// policy version as [`Expectations`] describes.
    ///
    /// `now` is the caller's clock reading; verification never reads a clock itself.
    pub fn verify(
        self,
        keys: &(impl KeyProvider + ?Sized),
        expected: &Expectations<'_>,
        now: OffsetDateTime,
    ) -> Result<VerifiedApproval, TokenError> {
        let Some(key) = keys.verification_key(&self.kid) else {
            return Err(TokenError::UnknownKeyId { kid: self.kid });
        };
        let mut mac = key.mac();
        mac.update(&self.token.as_bytes()[..self.signed_len]);
        mac.verify_slice(&self.signature)
            .map_err(|_| TokenError::BadSignature)?;

        let claims = decode_claims(&self.payload)?;
        check(&claims, expected, now)?;
        Ok(VerifiedApproval {
            claims,
            token: ApprovalToken::from_verified(self.token),
        })
    }

    /// The decoded payload bytes, for [`dangerous`](crate::token::dangerous) only.
    pub(super) fn payload(&self) -> &[u8] {
        &self.payload
    }
}

/// Whether `json` is a JSON object at its top level. RFC 7515 and 7519 require one for the
/// header and the claims; serde's derived structs would also take an array of their fields
/// in order, which another verifier would refuse.
fn is_json_object(json: &[u8]) -> bool {
    json.trim_ascii_start().first() == Some(&b'{')
}

/// The claims in a payload: one JSON object, each claim once (serde refuses duplicates).
pub(super) fn decode_claims(payload: &[u8]) -> Result<Claims, TokenError> {
    if !is_json_object(payload) {
        return Err(TokenError::malformed("claims are not a JSON object"));
    }
    serde_json::from_slice(payload)
        .map_err(|e| TokenError::malformed_by("claims are missing or invalid", e))
}

fn check(
    claims: &Claims,
    expected: &Expectations<'_>,
    now: OffsetDateTime,
) -> Result<(), TokenError> {
    // Integer nanoseconds: exact, and no range errors for any `exp` or leeway.
    let deadline = i128::from(claims.exp) * 1_000_000_000
        + i128::try_from(expected.leeway.as_nanos()).unwrap_or(i128::MAX / 2);
    if now.unix_timestamp_nanos() >= deadline {
        return Err(TokenError::Expired {
            expired_at: claims.expires_at(),
        });
    }
    if claims.tool != expected.tool {
        return Err(TokenError::WrongTool {
            expected: expected.tool.to_owned(),
            found: claims.tool.clone(),
        });
    }
    if claims.args_hash != *expected.args_hash {
        return Err(TokenError::WrongArgs);
    }
    if claims.run_id != expected.run_id {
        return Err(TokenError::WrongRun);
    }
    if expected.call_id.is_some_and(|c| c != claims.call_id) {
        return Err(TokenError::WrongCall);
    }
    if expected.request_id.is_some_and(|r| r != claims.jti) {
        return Err(TokenError::WrongRequest);
    }
    if expected
        .policy_version
        .is_some_and(|p| p != claims.policy_version)
    {
        return Err(TokenError::WrongPolicyVersion);
    }
    Ok(())
}

impl fmt::Debug for UnverifiedToken<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnverifiedToken")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// A token that passed [`UnverifiedToken::verify`]: signed by a held key, unexpired at the
/// instant checked, and matching the caller's [`Expectations`].
///
/// Only verification makes one. It does not prove the token is unused: the store's claim on
/// [`request_id`](VerifiedApproval::request_id) does that.
#[derive(Debug, Clone)]
pub struct VerifiedApproval {
    claims: Claims,
    token: ApprovalToken,
}

impl VerifiedApproval {
    /// The verified claims.
    pub fn claims(&self) -> &Claims {
        &self.claims
    }

    /// The token that was verified.
    pub fn token(&self) -> &ApprovalToken {
        &self.token
    }

    /// Who approved the call.
    pub fn approvers(&self) -> &[String] {
        &self.claims.approvers
    }

    /// The approval request's id (the `jti` claim): the idempotency key for the tool.
    pub fn request_id(&self) -> &str {
        &self.claims.jti
    }

    /// When the token expires.
    pub fn expires_at(&self) -> OffsetDateTime {
        self.claims.expires_at()
    }

    /// The claims and the token, owned.
    pub fn into_parts(self) -> (Claims, ApprovalToken) {
        (self.claims, self.token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::HmacSha256;
    use crate::token::test_support::{SECRET, args_hash, claims, key, t0};
    use crate::token::{Key, Keyring};
    use hmac::KeyInit;
    use std::sync::Arc;
    use time::Duration as TimeDuration;

    /// A token with any header and payload JSON, signed with [`SECRET`].
    fn craft(header: &str, payload: &str) -> String {
        let signing_input = format!("{}.{}", B64.encode(header), B64.encode(payload));
        let mut mac = HmacSha256::new_from_slice(SECRET).unwrap();
        mac.update(signing_input.as_bytes());
        format!(
            "{signing_input}.{}",
            B64.encode(mac.finalize().into_bytes())
        )
    }

    fn claims_json() -> String {
        serde_json::to_string(&claims()).unwrap()
    }

    fn now() -> OffsetDateTime {
        t0() + TimeDuration::seconds(10)
    }

    fn verify_at(
        token: &str,
        keys: &(impl KeyProvider + ?Sized),
        expected: &Expectations<'_>,
        now: OffsetDateTime,
    ) -> Result<VerifiedApproval, TokenError> {
        UnverifiedToken::parse(token)?.verify(keys, expected, now)
    }

    fn verify(token: &str) -> Result<VerifiedApproval, TokenError> {
        let hash = args_hash();
        let expected = Expectations::new("email.send", &hash, "run-1");
        verify_at(token, &key("k1"), &expected, now())
    }

    fn reason(r: Result<impl fmt::Debug, TokenError>) -> &'static str {
        match r {
            Err(TokenError::Malformed { reason, .. }) => reason,
            other => panic!("expected malformed, got {other:?}"),
        }
    }

    #[test]
    fn round_trip() {
        let keys = Keyring::new(key("k1"));
        let token = keys.sign(&claims());
        let parsed = UnverifiedToken::parse(token.as_str()).unwrap();
        assert_eq!(parsed.key_id(), "k1");
        let hash = args_hash();
        let expected = Expectations::new("email.send", &hash, "run-1")
            .call_id("call-1")
            .request_id("req-1")
            .policy_version("policy-v1");
        let ok = parsed.verify(&keys, &expected, now()).unwrap();
        assert_eq!(ok.claims(), &claims());
        assert_eq!(ok.token().as_str(), token.as_str());
        assert_eq!(ok.approvers(), ["alice", "bob"]);
        assert_eq!(ok.request_id(), "req-1");
        assert_eq!(ok.expires_at(), t0() + TimeDuration::seconds(300));
        let (c, t) = ok.into_parts();
        assert_eq!((c, t.into_string()), (claims(), token.into_string()));
    }

    #[test]
    fn for_call_binds_tool_run_and_call() {
        let hash = args_hash();
        let call = ToolCall::new("run-1", "call-1", "email.send", serde_json::json!({}));
        let expected = Expectations::for_call(&call, &hash);
        let token = key("k1").sign(&claims());
        assert!(verify_at(token.as_str(), &key("k1"), &expected, now()).is_ok());
        let other = ToolCall::new("run-1", "call-2", "email.send", serde_json::json!({}));
        let expected = Expectations::for_call(&other, &hash);
        assert!(matches!(
            verify_at(token.as_str(), &key("k1"), &expected, now()),
            Err(TokenError::WrongCall)
        ));
    }

    #[test]
    fn accepts_missing_typ_and_other_header_order() {
        let token = craft(r#"{"kid":"k1","alg":"HS256"}"#, &claims_json());
        assert_eq!(verify(&token).unwrap().claims(), &claims());
        let token = craft(r#"{"typ":"JWT","alg":"HS256","kid":"k1"}"#, &claims_json());
        assert!(verify(&token).is_ok());
    }

    #[test]
    fn refuses_alg_none_and_others() {
        for alg in ["none", "HS512", "RS256", "hs256", "ES256"] {
            let header = format!(r#"{{"alg":"{alg}","typ":"JWT","kid":"k1"}}"#);
            // `none` tokens carry an empty signature; the others a real-looking one.
            let mut token = craft(&header, &claims_json());
            if alg == "none" {
                token.truncate(token.rfind('.').unwrap() + 1);
            }
            match UnverifiedToken::parse(&token) {
                Err(TokenError::UnsupportedAlgorithm { alg: found }) => assert_eq!(found, alg),
                other => panic!("{alg}: {other:?}"),
            }
        }
        let hs512 = format!(
            "{}.{}.{}",
            B64.encode(r#"{"alg":"HS512","typ":"JWT","kid":"k1"}"#),
            B64.encode(claims_json()),
            B64.encode([0u8; 64])
        );
        assert!(matches!(
            verify(&hs512),
            Err(TokenError::UnsupportedAlgorithm { .. })
        ));
    }

    #[test]
    fn refuses_bad_headers() {
        let cases = [
            (
                r#"{"alg":"HS256","typ":"JWT","kid":"k1","crit":["exp"]}"#,
                "crit",
            ),
            (r#"{"alg":"HS256","kid":"k1","crit":null}"#, "crit"),
            (r#"{"alg":"HS256","typ":"JOSE","kid":"k1"}"#, "typ"),
            (r#"{"alg":"HS256","typ":"JWT"}"#, "kid"),
            (r#"{"alg":"HS256","kid":"k 1"}"#, "kid"),
            (r#"{"alg":"HS256","kid":""}"#, "kid"),
            (r#"{"typ":"JWT","kid":"k1"}"#, "alg"),
            (r#"{"alg":"HS256","alg":"none","kid":"k1"}"#, "JSON"),
            (r#"["HS256"]"#, "JSON"),
            (r#"["HS256","JWT","k1"]"#, "JSON"),
            ("not json", "JSON"),
        ];
        for (header, word) in cases {
            let r = reason(UnverifiedToken::parse(&craft(header, &claims_json())));
            assert!(r.contains(word), "{header}: {r}");
        }
    }

    #[test]
    fn refuses_malformed_structure() {
        let good = key("k1").sign(&claims()).into_string();
        let (rest, signature) = good.rsplit_once('.').unwrap();
        let (header, payload) = rest.split_once('.').unwrap();

        let truncated = &good[..good.len() - 1];
        let padded = format!("{good}=");
        let padded_payload = format!("{header}.{payload}=.{signature}");
        let std_alphabet = format!("{header}.{}.{signature}", payload.replacen('e', "+", 1));
        let non_b64 = format!("{header}.{payload}*.{signature}");
        let four_parts = format!("{good}.x");
        let oversized = craft(
            r#"{"alg":"HS256","kid":"k1"}"#,
            &format!(r#"{{"pad":"{}"}}"#, "x".repeat(8 * 1024)),
        );
        let long_header = craft(
            &format!(r#"{{"alg":"HS256","kid":"k1","x":"{}"}}"#, "x".repeat(600)),
            "{}",
        );
        let long_signature = format!("{rest}.{}", B64.encode([0u8; 33]));
        // A last character with non-zero trailing bits: same bytes, another spelling.
        let mut sig_chars: Vec<char> = signature.chars().collect();
        let last = sig_chars.last_mut().unwrap();
        let idx = B64_ALPHABET.find(*last).unwrap();
        *last = B64_ALPHABET.as_bytes()[idx ^ 1] as char;
        let non_canonical = format!("{rest}.{}", sig_chars.into_iter().collect::<String>());

        let cases: [(&str, &str); 12] = [
            ("", "three"),
            ("abc", "three"),
            (&good[..good.rfind('.').unwrap()], "three"),
            (&four_parts, "three"),
            (truncated, "signature"),
            (&padded, "signature"),
            (&padded_payload, "payload"),
            (&std_alphabet, "payload"),
            (&non_b64, "payload"),
            (&oversized, "8 KiB"),
            (&long_header, "header"),
            (&long_signature, "signature"),
        ];
        for (token, word) in cases {
            let r = reason(UnverifiedToken::parse(token));
            assert!(r.contains(word), "{token}: {r}");
        }
        assert!(reason(UnverifiedToken::parse(&non_canonical)).contains("signature"));
    }

    const B64_ALPHABET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    #[test]
    fn claims_are_checked_only_after_the_signature() {
        // Signed, but the payload lacks claims: malformed after the signature check.
        let token = craft(r#"{"alg":"HS256","kid":"k1"}"#, r#"{"jti":"req-1"}"#);
        assert!(reason(verify(&token)).contains("claims"));
        // The claims as an array of their values, which serde alone would take.
        let c = claims();
        let array = serde_json::json!([
            c.jti,
            c.run_id,
            c.call_id,
            c.tool,
            c.args_hash,
            c.policy_version,
            c.approvers,
            c.iat,
            c.exp,
        ])
        .to_string();
        let token_of_array = craft(r#"{"alg":"HS256","kid":"k1"}"#, &array);
        assert!(reason(verify(&token_of_array)).contains("claims are not a JSON object"));
        // The same payload under a wrong signature is a bad signature, not malformed.
        let forged = format!(
            "{}.{}",
            &token[..token.rfind('.').unwrap()],
            B64.encode([1u8; 32])
        );
        assert!(matches!(verify(&forged), Err(TokenError::BadSignature)));
    }

    #[test]
    fn unknown_key_id() {
        let token = Key::new("k9", SECRET).unwrap().sign(&claims());
        match verify(token.as_str()) {
            Err(TokenError::UnknownKeyId { kid }) => assert_eq!(kid, "k9"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn same_kid_other_secret_is_a_bad_signature() {
        let impostor = Key::new("k1", [0xAB; 32]).unwrap();
        let token = impostor.sign(&claims());
        assert!(matches!(
            verify(token.as_str()),
            Err(TokenError::BadSignature)
        ));
    }

    #[test]
    fn tampered_payload_is_a_bad_signature() {
        let token = key("k1").sign(&claims()).into_string();
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let mut evil = claims();
        evil.tool = "db.drop".into();
        evil.exp += 10_000;
        parts[1] = B64.encode(serde_json::to_vec(&evil).unwrap());
        assert!(matches!(
            verify(&parts.join(".")),
            Err(TokenError::BadSignature)
        ));
    }

    #[test]
    fn expires_at_the_exact_second() {
        let token = key("k1").sign(&claims());
        let hash = args_hash();
        let expected = Expectations::new("email.send", &hash, "run-1");
        let exp = t0() + TimeDuration::seconds(300);
        let at = |now| verify_at(token.as_str(), &key("k1"), &expected, now);
        assert!(at(exp - TimeDuration::seconds(1)).is_ok());
        assert!(at(exp - TimeDuration::nanoseconds(1)).is_ok());
        match at(exp) {
            Err(TokenError::Expired { expired_at }) => assert_eq!(expired_at, exp),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            at(exp + TimeDuration::days(1)),
            Err(TokenError::Expired { .. })
        ));

        let lenient = expected.leeway(Duration::from_secs(5));
        let at = |now| verify_at(token.as_str(), &key("k1"), &lenient, now);
        assert!(at(exp + TimeDuration::seconds(4)).is_ok());
        assert!(matches!(
            at(exp + TimeDuration::seconds(5)),
            Err(TokenError::Expired { .. })
        ));
        let forever = expected.leeway(Duration::MAX);
        assert!(
            verify_at(
                token.as_str(),
                &key("k1"),
                &forever,
                exp + TimeDuration::days(1)
            )
            .is_ok()
        );
    }

    #[test]
    fn extreme_exp_values_do_not_panic() {
        for exp in [i64::MIN, -1, i64::MAX] {
            let token = key("k1").sign(&Claims { exp, ..claims() });
            let r = verify(token.as_str());
            assert_eq!(r.is_ok(), exp == i64::MAX, "{exp}: {r:?}");
        }
    }

    #[test]
    fn each_expectation_has_its_own_error() {
        let token = key("k1").sign(&claims());
        let hash = args_hash();
        let other_hash = ArgsHash::from_bytes([0; 32]);
        let base = Expectations::new("email.send", &hash, "run-1");
        let check = |e: Expectations<'_>| verify_at(token.as_str(), &key("k1"), &e, now());

        match check(Expectations::new("db.write", &hash, "run-1")) {
            Err(TokenError::WrongTool { expected, found }) => {
                assert_eq!(
                    (expected.as_str(), found.as_str()),
                    ("db.write", "email.send")
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            check(Expectations::new("email.send", &other_hash, "run-1")),
            Err(TokenError::WrongArgs)
        ));
        assert!(matches!(
            check(Expectations::new("email.send", &hash, "run-2")),
            Err(TokenError::WrongRun)
        ));
        assert!(matches!(
            check(base.call_id("call-2")),
            Err(TokenError::WrongCall)
        ));
        assert!(matches!(
            check(base.request_id("req-2")),
            Err(TokenError::WrongRequest)
        ));
        assert!(matches!(
            check(base.policy_version("policy-v2")),
            Err(TokenError::WrongPolicyVersion)
        ));
        // Checks run in the documented order: expiry before tool before args.
        let late = now() + TimeDuration::hours(1);
        assert!(matches!(
            verify_at(
                token.as_str(),
                &key("k1"),
                &Expectations::new("x", &other_hash, "r"),
                late
            ),
            Err(TokenError::Expired { .. })
        ));
        assert!(matches!(
            check(Expectations::new("x", &other_hash, "r")),
            Err(TokenError::WrongTool { .. })
        ));
    }

    #[test]
    fn rotation_keeps_old_tokens_until_removed() {
        let mut keys = Keyring::new(key("k1"));
        let old = keys.sign(&claims());
        keys.rotate(Key::new("k2", [2u8; 32]).unwrap());
        let new = keys.sign(&claims());
        assert_eq!(UnverifiedToken::parse(new.as_str()).unwrap().key_id(), "k2");

        let hash = args_hash();
        let expected = Expectations::new("email.send", &hash, "run-1");
        assert!(verify_at(old.as_str(), &keys, &expected, now()).is_ok());
        assert!(verify_at(new.as_str(), &keys, &expected, now()).is_ok());

        assert!(keys.remove("k1"));
        match verify_at(old.as_str(), &keys, &expected, now()) {
            Err(TokenError::UnknownKeyId { kid }) => assert_eq!(kid, "k1"),
            other => panic!("{other:?}"),
        }
        assert!(verify_at(new.as_str(), &keys, &expected, now()).is_ok());
    }

    #[test]
    fn verifies_through_dyn_arc_and_closure_providers() {
        let token = key("k1").sign(&claims());
        let hash = args_hash();
        let expected = Expectations::new("email.send", &hash, "run-1");
        let shared: Arc<dyn KeyProvider> = Arc::new(Keyring::new(key("k1")));
        assert!(verify_at(token.as_str(), &shared, &expected, now()).is_ok());
        assert!(verify_at(token.as_str(), &*shared, &expected, now()).is_ok());
        let lookup = |kid: &str| (kid == "k1").then(|| key("k1"));
        assert!(verify_at(token.as_str(), &lookup, &expected, now()).is_ok());
    }

    #[test]
    fn dangerous_reads_unverified_claims() {
        let token = Key::new("k1", [0xAB; 32]).unwrap().sign(&claims());
        let parsed = UnverifiedToken::parse(token.as_str()).unwrap();
        assert_eq!(
            crate::token::dangerous::insecure_claims(&parsed).unwrap(),
            claims()
        );
        assert!(matches!(
            parsed.verify(
                &key("k1"),
                &Expectations::new("email.send", &args_hash(), "run-1"),
                now()
            ),
            Err(TokenError::BadSignature)
        ));
        let empty = craft(r#"{"alg":"HS256","kid":"k1"}"#, "{}");
        let parsed = UnverifiedToken::parse(&empty).unwrap();
        assert!(reason(crate::token::dangerous::insecure_claims(&parsed)).contains("claims"));
    }

    #[test]
    fn debug_of_unverified_token_hides_the_payload() {
        let token = key("k1").sign(&claims());
        let parsed = UnverifiedToken::parse(token.as_str()).unwrap();
        let d = format!("{parsed:?}");
        assert_eq!(d, r#"UnverifiedToken { kid: "k1", .. }"#);
    }
}
