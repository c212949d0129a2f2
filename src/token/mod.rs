//! Approval tokens: proof that a tool call, with these args, in this run, was approved by
//! these people, until this time.
//!
//! A token is a JWT in the JWS compact form, signed with HMAC-SHA256 (`HS256`), so any JWT
//! library in any language can verify it with the shared key. Its header is exactly
//! `{"alg":"HS256","typ":"JWT","kid":"<key id>"}` and its payload is [`Claims`].
//!
//! - Keys: [`Key`], [`Keyring`] (rotation); a deployment's keys as a file:
//!   [`Keyring::read_key_file`], [`Keyring::to_key_file`].
//! - Issue: [`Keyring::sign`] (or [`Key::sign`]) turns [`Claims`] into an [`ApprovalToken`].
//! - Verify: [`UnverifiedToken::parse`] checks the structure, then
//!   [`UnverifiedToken::verify`] checks key id, signature, expiry and the [`Expectations`],
//!   and only then hands out the claims inside a [`VerifiedApproval`].
//! - Nothing else reads the claims of an unverified token, except
//!   [`dangerous::insecure_claims`].
//!
//! The MAC is compared only with `hmac`'s `Mac::verify_slice`, in constant time. The claims
//! compared after it are authenticated and hold no secret, so they are compared plainly.

mod claims;
pub mod dangerous;
mod error;
mod key;
mod key_file;
mod sign;
mod verify;

pub use claims::Claims;
pub use error::TokenError;
pub use key::{Key, KeyProvider, Keyring};
pub use key_file::KeyFileError;
pub use sign::ApprovalToken;
pub use verify::{Expectations, UnverifiedToken, VerifiedApproval};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The one base64 form of tokens: URL-safe alphabet, no padding, canonical trailing bits.
const B64: base64::engine::GeneralPurpose = URL_SAFE_NO_PAD;

/// The only algorithm tokens are signed and verified with.
const ALG: &str = "HS256";

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

#[cfg(test)]
pub(crate) mod test_support {
    //! Shared fixtures for the token tests.

    use super::*;
    use crate::call::ArgsHash;
    use time::OffsetDateTime;
    use time::macros::datetime;

    /// A secret that is easy to search for in `Debug` output.
    pub const SECRET: &[u8] = b"super-secret-key-material-0123456789-abcdef";

    pub fn key(id: &str) -> Key {
        Key::new(id, SECRET).unwrap()
    }

    pub fn args_hash() -> ArgsHash {
        ArgsHash::compute(&serde_json::json!({"to": "bob@example.com", "subject": "Hi"})).unwrap()
    }

    /// 2026-01-01T00:00:00Z.
    pub fn t0() -> OffsetDateTime {
        datetime!(2026-01-01 00:00:00 UTC)
    }

    /// Claims issued at [`t0`], expiring 300 s later.
    pub fn claims() -> Claims {
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
}
