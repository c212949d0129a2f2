//! [`TokenError`]: every way issuing keys or verifying a token can fail.

use std::error::Error;

use time::OffsetDateTime;

use crate::clock::Rfc3339Display;

/// Why a token was refused, or why a key could not be made.
///
/// One variant per failure, in the order verification checks them: the structure
/// ([`Malformed`](TokenError::Malformed), [`UnsupportedAlgorithm`](TokenError::UnsupportedAlgorithm)),
/// the key ([`UnknownKeyId`](TokenError::UnknownKeyId)), the signature
/// ([`BadSignature`](TokenError::BadSignature)), then the claims against the caller's
/// [`Expectations`](crate::token::Expectations).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The token is not a well-formed compact JWS: not three parts, longer than 8 KiB,
    /// bad base64url, bad header or claims JSON, missing claims or header fields, a `crit`
    /// header, or a `typ` other than `JWT`.
    #[error("malformed token: {reason}")]
    Malformed {
        /// What is wrong, in a few words.
        reason: &'static str,
        /// The decoding error underneath, if any.
        #[source]
        source: Option<Box<dyn Error + Send + Sync + 'static>>,
    },

    /// The header names an algorithm other than `HS256` (including `none`).
    #[error("unsupported token algorithm `{alg}`, only `HS256` is accepted")]
    UnsupportedAlgorithm {
        /// The algorithm the header named, with control and other unprintable characters
        /// escaped as in Rust's `escape_debug` (`\n`, `\u{202e}`).
        alg: String,
    },

    /// No key with the header's key id is held (never issued, or removed since).
    #[error("unknown key id `{kid}`")]
    UnknownKeyId {
        /// The key id the header named.
        kid: String,
    },

    /// The signature does not match the token under the key with its key id: the token
    /// was altered, or signed with another secret.
    #[error("token signature does not match")]
    BadSignature,

    /// The token's expiry (plus any leeway) has passed.
    #[error("token expired at {}", Rfc3339Display(*.expired_at))]
    Expired {
        /// When the token expired (its `exp` claim, without leeway).
        expired_at: OffsetDateTime,
    },

    /// The token approves another tool.
    #[error("token is for tool `{found}`, not `{expected}`")]
    WrongTool {
        /// The tool the caller is about to run.
        expected: String,
        /// The tool the token approves.
        found: String,
    },

    /// The token approves other arguments: the args hash differs.
    #[error("token is for other arguments: the args hash differs")]
    WrongArgs,

    /// The token belongs to another agent run.
    #[error("token is for another run")]
    WrongRun,

    /// The token belongs to another tool call in the run.
    #[error("token is for another tool call")]
    WrongCall,

    /// The token was issued for another approval request.
    #[error("token is for another approval request")]
    WrongRequest,

    /// The token was issued under another policy version.
    #[error("token was issued under another policy version")]
    WrongPolicyVersion,

    /// A key could not be made: bad key id or too short a secret.
    #[error("invalid key: {reason}")]
    InvalidKey {
        /// What is wrong, in a few words.
        reason: &'static str,
    },
}

impl TokenError {
    pub(crate) fn malformed(reason: &'static str) -> TokenError {
        TokenError::Malformed {
            reason,
            source: None,
        }
    }

    pub(crate) fn malformed_by(
        reason: &'static str,
        source: impl Error + Send + Sync + 'static,
    ) -> TokenError {
        TokenError::Malformed {
            reason,
            source: Some(Box::new(source)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn messages_are_lowercase_without_final_period() {
        let all = [
            TokenError::malformed("not three dot-separated parts"),
            TokenError::UnsupportedAlgorithm { alg: "none".into() },
            TokenError::UnknownKeyId { kid: "k9".into() },
            TokenError::BadSignature,
            TokenError::Expired {
                expired_at: datetime!(2026-01-01 00:05:00 UTC),
            },
            TokenError::WrongTool {
                expected: "a".into(),
                found: "b".into(),
            },
            TokenError::WrongArgs,
            TokenError::WrongRun,
            TokenError::WrongCall,
            TokenError::WrongRequest,
            TokenError::WrongPolicyVersion,
            TokenError::InvalidKey {
                reason: "secret is shorter than 32 bytes",
            },
        ];
        for e in all {
            let m = e.to_string();
            assert!(m.starts_with(|c: char| c.is_lowercase()), "{m}");
            assert!(!m.ends_with('.'), "{m}");
        }
    }

    #[test]
    fn expiry_is_shown_as_rfc3339() {
        let e = TokenError::Expired {
            expired_at: datetime!(2026-01-01 00:05:00 UTC),
        };
        assert_eq!(e.to_string(), "token expired at 2026-01-01T00:05:00Z");
    }

    #[test]
    fn malformed_keeps_its_source() {
        let inner = serde_json::from_str::<u8>("x").unwrap_err();
        let e = TokenError::malformed_by("claims are not valid JSON", inner);
        assert_eq!(e.to_string(), "malformed token: claims are not valid JSON");
        assert!(e.source().is_some());
    }
}
