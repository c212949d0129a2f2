//! [`ArgsHash`]: SHA-256 over the canonical JSON form of a call's arguments.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::canonical::{ArgsError, ArgsLimits, Out, write_canonical};

/// The SHA-256 hash of a call's arguments in canonical JSON form.
///
/// Two argument values that differ only in key order or in the spelling of a number
/// (`1.0` and `1`) hash the same; see [`canonical_json`](crate::call::canonical_json) for the
/// exact form. Written as 64 lowercase hex digits.
///
/// ```
/// use approval_gate::ArgsHash;
/// use serde_json::json;
///
/// let a = ArgsHash::compute(&json!({"to": "bob", "n": 1})).unwrap();
/// let b = ArgsHash::compute(&json!({"n": 1.0, "to": "bob"})).unwrap();
/// assert_eq!(a, b);
/// assert_eq!(a.to_string().len(), 64);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ArgsHash([u8; 32]);

impl ArgsHash {
    /// Hashes `args` under the default [`ArgsLimits`].
    pub fn compute(args: &Value) -> Result<ArgsHash, ArgsError> {
        Self::compute_with_limits(args, &ArgsLimits::default())
    }

    /// Hashes `args`, refusing arguments beyond `limits`.
    pub fn compute_with_limits(args: &Value, limits: &ArgsLimits) -> Result<ArgsHash, ArgsError> {
        let mut out = HashOut {
            hasher: Sha256::new(),
            buf: [0; BUF],
            len: 0,
        };
        write_canonical(args, limits, &mut out)?;
        out.flush();
        Ok(ArgsHash(out.hasher.finalize().into()))
    }

    /// Wraps a raw 32-byte digest.
    pub const fn from_bytes(bytes: [u8; 32]) -> ArgsHash {
        ArgsHash(bytes)
    }

    /// The raw 32-byte digest.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

const BUF: usize = 256;

/// Batches the canonical writer's many small writes before they reach the hasher.
struct HashOut {
    hasher: Sha256,
    buf: [u8; BUF],
    len: usize,
}

impl HashOut {
    fn flush(&mut self) {
        self.hasher.update(&self.buf[..self.len]);
        self.len = 0;
    }
}

impl Out for HashOut {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        if self.len + bytes.len() > BUF {
            self.flush();
            if bytes.len() > BUF {
                self.hasher.update(bytes);
                return;
            }
        }
        self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }
}

impl fmt::Display for ArgsHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ArgsHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ArgsHash({self})")
    }
}

/// The text was not 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an args hash is 64 hex digits")]
pub struct ParseArgsHashError;

impl FromStr for ArgsHash {
    type Err = ParseArgsHashError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.as_bytes();
        if s.len() != 64 {
            return Err(ParseArgsHashError);
        }
        let mut out = [0u8; 32];
        for (i, pair) in s.chunks_exact(2).enumerate() {
            let hi = hex_val(pair[0]).ok_or(ParseArgsHashError)?;
            let lo = hex_val(pair[1]).ok_or(ParseArgsHashError)?;
            out[i] = hi << 4 | lo;
        }
        Ok(ArgsHash(out))
    }
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl Serialize for ArgsHash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ArgsHash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Known vectors: the canonical text and its SHA-256 as `printf '%s' TEXT | sha256sum`
    /// prints it, for other implementations to check against.
    #[test]
    fn known_vectors() {
        let cases = [
            (
                json!({}),
                "{}",
                "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
            ),
            (
                json!({"b": 2, "a": 1}),
                r#"{"a":1,"b":2}"#,
                "43258cff783fe7036d8a43033f830adfc60ec037382473548ac742b888292777",
            ),
            (
                json!({"to": "bob@example.com", "subject": "Hi", "amount": 12.50}),
                r#"{"amount":12.5,"subject":"Hi","to":"bob@example.com"}"#,
                "3f6caf239f0b7a5a137615f4f6c267566d326920f318d6218bac0124ddb712cf",
            ),
        ];
        for (v, text, hash) in cases {
            assert_eq!(crate::call::canonical_json(&v).unwrap(), text);
            assert_eq!(ArgsHash::compute(&v).unwrap().to_string(), hash, "{v}");
        }
    }

    #[test]
    fn streaming_hash_equals_hash_of_text_for_large_values() {
        let big = json!({"body": "x".repeat(10_000), "list": (0..500).collect::<Vec<_>>()});
        let text = crate::call::canonical_json(&big).unwrap();
        let direct: [u8; 32] = Sha256::digest(text.as_bytes()).into();
        assert_eq!(
            ArgsHash::compute(&big).unwrap(),
            ArgsHash::from_bytes(direct)
        );
    }

    #[test]
    fn parses_its_own_display() {
        let h = ArgsHash::compute(&json!([1, 2, 3])).unwrap();
        assert_eq!(h.to_string().parse::<ArgsHash>().unwrap(), h);
        assert!("zz".parse::<ArgsHash>().is_err());
        assert!("g".repeat(64).parse::<ArgsHash>().is_err());
    }
}
