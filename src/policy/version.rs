//! [`PolicyVersion`]: the content hash of a config.

use std::fmt;
use std::str::FromStr;

use super::PolicyError;
use super::config::PolicyConfig;
use crate::call::{ArgsHash, ArgsLimits};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The deepest nesting of a config's JSON form that [`PolicyVersion`] hashes: far more
/// than YAML can give (its reader stops at 128 levels), so only a config built in code
/// with conditions nested over a hundred levels deep reaches it.
pub(crate) const MAX_CONFIG_DEPTH: usize = 512;

/// The version of a policy: SHA-256 over the canonical JSON form (see
/// [`canonical_json`](crate::call::canonical_json)) of its [`PolicyConfig`], as 64 lowercase hex
/// digits.
///
/// It hashes what the config means, not how it is written: comments, whitespace, key order,
/// `tool: x` for `tools: [x]`, and defaults left out or written out all give the same
/// version. Approval tokens carry it, so a verifier can tell which policy approved a call.
///
/// ```
/// use approval_gate::Policy;
///
/// let a = Policy::from_yaml_str("approvals:\n  ttl_seconds: 300\n  required_for: [db.write]\n")?;
/// let b = Policy::from_yaml_str("# same policy\napprovals: {required_for: [db.write]}\n")?;
/// assert_eq!(a.version(), b.version());
/// assert_eq!(a.version().as_str().len(), 64);
/// # Ok::<(), approval_gate::PolicyError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PolicyVersion(Box<str>);

impl PolicyVersion {
    /// Hashes `config`, however large: the canonical form is streamed into the hash,
    /// never built whole, and has no size limit. Only nesting deeper than
    /// [`MAX_CONFIG_DEPTH`] is refused ([`PolicyError::TooLarge`]).
    pub(crate) fn of(config: &PolicyConfig) -> Result<PolicyVersion, PolicyError> {
        let value = serde_json::to_value(config).map_err(|e| {
            PolicyError::config("", format!("the config cannot be written as JSON: {e}"))
        })?;
        let limits = ArgsLimits {
            max_depth: MAX_CONFIG_DEPTH,
            max_bytes: usize::MAX,
        };
        let digest = ArgsHash::compute_with_limits(&value, &limits)
            .map_err(|source| PolicyError::TooLarge { source })?;
        Ok(PolicyVersion(digest.to_string().into()))
    }

    /// The 64 hex digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PolicyVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for PolicyVersion {
    type Err = PolicyError;

    /// Parses 64 hex digits (upper case is accepted and lowered).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(PolicyVersion(s.to_ascii_lowercase().into()))
        } else {
            Err(PolicyError::InvalidVersion { text: s.to_owned() })
        }
    }
}

impl Serialize for PolicyVersion {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for PolicyVersion {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_and_serialize_as_hex() {
        let v = PolicyVersion::of(&PolicyConfig::default()).unwrap();
        assert_eq!(v.as_str().len(), 64);
        assert!(
            v.as_str()
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        let back: PolicyVersion = v.as_str().to_ascii_uppercase().parse().unwrap();
        assert_eq!(back, v);
        let json = serde_json::to_string(&v).unwrap();
        assert_eq!(json, format!("\"{v}\""));
        assert_eq!(serde_json::from_str::<PolicyVersion>(&json).unwrap(), v);
        assert!("abc".parse::<PolicyVersion>().is_err());
        assert!("g".repeat(64).parse::<PolicyVersion>().is_err());
    }

    #[test]
    fn the_default_config_has_a_fixed_version() {
        // Pins the canonical form of the default config; changing it changes every version.
        let v = PolicyVersion::of(&PolicyConfig::default()).unwrap();
        let value = serde_json::to_value(PolicyConfig::default()).unwrap();
        assert_eq!(
            crate::call::canonical_json(&value).unwrap(),
            r#"{"approvals":{"approval_ttl_seconds":900,"fallback_when_not_approved":"stop","required_for":[],"ttl_seconds":300},"policy":{"default":"deny"},"rules":[],"tiers":{}}"#
        );
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(canonical_default().as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(v.as_str(), hex);
    }

    fn canonical_default() -> String {
        r#"{"approvals":{"approval_ttl_seconds":900,"fallback_when_not_approved":"stop","required_for":[],"ttl_seconds":300},"policy":{"default":"deny"},"rules":[],"tiers":{}}"#.to_owned()
    }
}
