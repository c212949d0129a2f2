//! [`ApprovalToken`] and how it is signed.

use std::fmt;

use base64::Engine as _;
use hmac::Mac;
use serde::{Deserialize, Serialize};

use super::{B64, Claims, Key};

/// A signed approval token: a JWT in the JWS compact form (`header.payload.signature`).
///
/// Made by [`Keyring::sign`](crate::token::Keyring::sign); checked by
/// [`UnverifiedToken::parse`](crate::token::UnverifiedToken::parse) and
/// [`verify`](crate::token::UnverifiedToken::verify). It is a bearer credential until used, so
/// `Debug` shows only its first characters; `Display` and [`as_str`](ApprovalToken::as_str)
/// give the whole token. Serialized as a plain JSON string; a deserialized token is not
/// verified.
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ApprovalToken(String);

impl ApprovalToken {
    /// The compact JWS text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The compact JWS text, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for ApprovalToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How many characters of a token `Debug` shows: part of the header, never the signature.
const DEBUG_PREFIX: usize = 12;

impl fmt::Debug for ApprovalToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix = self
            .0
            .char_indices()
            .nth(DEBUG_PREFIX)
            .map_or(self.0.as_str(), |(i, _)| &self.0[..i]);
        write!(f, "ApprovalToken({prefix:?}…)")
    }
}

impl AsRef<str> for ApprovalToken {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<ApprovalToken> for String {
    fn from(token: ApprovalToken) -> String {
        token.0
    }
}

impl ApprovalToken {
    pub(super) fn from_verified(token: &str) -> ApprovalToken {
        ApprovalToken(token.to_owned())
    }
}

/// `header.payload.signature`, each part base64url without padding.
pub(super) fn sign(key: &Key, claims: &Claims) -> ApprovalToken {
    let payload = serde_json::to_vec(claims)
        .expect("claims serialize: only strings, integers and a hex args hash, no maps");
    let header = key.header_b64();
    let payload_len = payload.len().div_ceil(3) * 4;
    let mut out = String::with_capacity(header.len() + 1 + payload_len + 1 + 43);
    out.push_str(header);
    out.push('.');
    B64.encode_string(&payload, &mut out);
    let mut mac = key.mac();
    mac.update(out.as_bytes());
    let tag = mac.finalize().into_bytes();
    out.push('.');
    B64.encode_string(tag, &mut out);
    ApprovalToken(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::test_support::{SECRET, claims, key};
    use hmac::KeyInit;

    #[test]
    fn token_is_three_base64url_parts_with_hs256_mac() {
        let token = key("k1").sign(&claims());
        let parts: Vec<&str> = token.as_str().split('.').collect();
        assert_eq!(parts.len(), 3);
        for p in &parts {
            assert!(
                p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "{p}"
            );
        }
        let payload: Claims = serde_json::from_slice(&B64.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(payload, claims());
        // The MAC is HMAC-SHA256 over `header.payload`, as RFC 7515 says.
        let mut mac = crate::token::HmacSha256::new_from_slice(SECRET).unwrap();
        mac.update(format!("{}.{}", parts[0], parts[1]).as_bytes());
        assert_eq!(
            B64.decode(parts[2]).unwrap(),
            mac.finalize().into_bytes()[..]
        );
    }

    #[test]
    fn debug_shows_only_a_prefix() {
        let token = key("k1").sign(&claims());
        let d = format!("{token:?}");
        let signature = token.as_str().rsplit('.').next().unwrap();
        assert!(!d.contains(signature));
        assert!(d.len() < 40, "{d}");
        assert!(!d.contains(&String::from_utf8_lossy(&SECRET[..12]).into_owned()));
        // Short or odd tokens (from deserializing) do not panic.
        let odd: ApprovalToken = serde_json::from_str(r#""äöü""#).unwrap();
        assert_eq!(format!("{odd:?}"), r#"ApprovalToken("äöü"…)"#);
    }

    #[test]
    fn serializes_as_a_plain_string() {
        let token = key("k1").sign(&claims());
        let json = serde_json::to_string(&token).unwrap();
        assert_eq!(json, format!("\"{token}\""));
        let back: ApprovalToken = serde_json::from_str(&json).unwrap();
        assert_eq!(back.as_str(), token.as_str());
        assert_eq!(back.into_string(), token.to_string());
    }
}
