//! Reading a token's claims without verifying it.
//!
//! Nothing here checks the signature, the key or the expiry: anyone can write a token that
//! says anything. Use it to look at a token (logs, debugging, finding which request a
//! rejected token was for), never to decide whether to act on it; for that, use
//! [`UnverifiedToken::verify`](crate::token::UnverifiedToken::verify).

use super::{Claims, TokenError, UnverifiedToken};

/// The claims of `token`, decoded WITHOUT verifying its signature, key or expiry.
///
/// Fails with [`TokenError::Malformed`] if the payload is not a claims object.
///
/// ```
/// use approval_gate::{ArgsHash, Key, token::{Claims, UnverifiedToken, dangerous}};
/// use serde_json::json;
///
/// // Signed with a key this verifier does not hold: `verify` would refuse it.
/// let stranger = Key::new("k1", [7u8; 32]).unwrap();
/// let token = stranger.sign(&Claims {
///     jti: "req-1".into(),
///     run_id: "run-1".into(),
///     call_id: "call-1".into(),
///     tool: "email.send".into(),
///     args_hash: ArgsHash::compute(&json!({})).unwrap(),
///     policy_version: "policy-v1".into(),
///     approvers: vec!["mallory".into()],
///     iat: 0,
///     exp: 0,
/// });
/// let unverified = UnverifiedToken::parse(token.as_str()).unwrap();
/// let claims = dangerous::insecure_claims(&unverified).unwrap();
/// assert_eq!(claims.jti, "req-1");
/// ```
pub fn insecure_claims(token: &UnverifiedToken<'_>) -> Result<Claims, TokenError> {
    super::verify::decode_claims(token.payload())
}
