//! Signing keys: [`Key`], the rotating [`Keyring`], and the [`KeyProvider`] trait that
//! verification looks keys up through.

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use hmac::KeyInit;
use sha2::{Digest, Sha256};

use super::{ALG, B64, HmacSha256, TokenError};

/// The shortest secret a [`Key`] accepts, in bytes (the HMAC-SHA256 output size).
const MIN_SECRET_LEN: usize = 32;
/// The longest key id a [`Key`] accepts.
const MAX_ID_LEN: usize = 64;

/// An HMAC-SHA256 key with its key id (`kid`), shared by whoever issues and verifies tokens.
///
/// Cheap to clone (the secret is shared, not copied). `Debug` shows the id only, never the
/// secret.
///
/// ```
/// use approval_gate::Key;
///
/// let key = Key::new("2026-01", *b"0123456789abcdef0123456789abcdef").unwrap();
/// assert_eq!(key.id(), "2026-01");
/// assert!(!format!("{key:?}").contains("0123456789"));
/// assert!(Key::new("2026-01", *b"too short").is_err());
/// ```
#[derive(Clone)]
pub struct Key {
    inner: Arc<KeyInner>,
}

struct KeyInner {
    id: String,
    secret: Box<[u8]>,
    /// The HMAC state after absorbing the key, so each token costs only its own blocks.
    mac: HmacSha256,
    /// The token header for this key, already base64url-encoded.
    header_b64: String,
}

impl Key {
    /// A key named `id` with `secret`.
    ///
    /// The id is 1 to 64 characters of `A-Z a-z 0-9 . _ -` (it travels in every token's
    /// header); the secret is at least 32 bytes and should be random.
    pub fn new(id: impl Into<String>, secret: impl Into<Vec<u8>>) -> Result<Key, TokenError> {
        let id = id.into();
        let secret = secret.into().into_boxed_slice();
        if !is_valid_key_id(&id) {
            return Err(TokenError::InvalidKey {
                reason: "key id must be 1 to 64 characters of `A-Z a-z 0-9 . _ -`",
            });
        }
        if secret.len() < MIN_SECRET_LEN {
            return Err(TokenError::InvalidKey {
                reason: "secret is shorter than 32 bytes",
            });
        }
        let mac = HmacSha256::new_from_slice(&secret).map_err(|_| TokenError::InvalidKey {
            reason: "secret has a length hmac refuses",
        })?;
        // The id needs no JSON escaping: its characters are checked above.
        let header = format!(r#"{{"alg":"{ALG}","typ":"JWT","kid":"{id}"}}"#);
        let header_b64 = B64.encode(header);
        Ok(Key {
            inner: Arc::new(KeyInner {
                id,
                secret,
                mac,
                header_b64,
            }),
        })
    }

    /// A key named `id` with a fresh random 32-byte secret.
    ///
    /// The secret is SHA-256 over three version-4 UUIDs, whose 366 random bits come from
    /// the operating system's generator (through `uuid` and `getrandom`); this keeps the
    /// crate free of a separate random-number dependency. Share it with other verifiers
    /// through [`expose_secret`](Key::expose_secret).
    pub fn generate(id: impl Into<String>) -> Result<Key, TokenError> {
        let mut hasher = Sha256::new();
        for _ in 0..3 {
            hasher.update(uuid::Uuid::new_v4().as_bytes());
        }
        let secret: [u8; 32] = hasher.finalize().into();
        Key::new(id, secret)
    }

    /// The key id, as it appears in the `kid` header of tokens signed with this key.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// The secret bytes, to hand to another verifier (a tool service, a JWT library).
    /// Treat them like a password.
    pub fn expose_secret(&self) -> &[u8] {
        &self.inner.secret
    }

    /// Signs `claims` with this key. A [`Keyring`] does this with its newest key.
    pub fn sign(&self, claims: &super::Claims) -> super::ApprovalToken {
        super::sign::sign(self, claims)
    }

    /// The base64url-encoded header of tokens signed with this key.
    pub(super) fn header_b64(&self) -> &str {
        &self.inner.header_b64
    }

    /// The HMAC state keyed with this key's secret, ready for the signing input.
    pub(super) fn mac(&self) -> HmacSha256 {
        self.inner.mac.clone()
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("id", &self.inner.id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// Whether `id` is 1 to 64 characters of `A-Z a-z 0-9 . _ -`.
pub(super) fn is_valid_key_id(id: &str) -> bool {
    (1..=MAX_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Finds the key to verify a token with, by the key id in the token's header.
///
/// Implemented for one [`Key`], a [`Keyring`], `Arc<K>` (so `Arc<dyn KeyProvider>` works)
/// and closures, so a host can look keys up anywhere:
///
/// ```
/// use approval_gate::{Key, token::KeyProvider};
///
/// let key = Key::new("k1", [7u8; 32]).unwrap();
/// let lookup = move |kid: &str| (kid == "k1").then(|| key.clone());
/// assert!(lookup.verification_key("k1").is_some());
/// assert!(lookup.verification_key("k2").is_none());
/// ```
pub trait KeyProvider: Send + Sync {
    /// The key whose id is `kid`, or `None` if none is held.
    fn verification_key(&self, kid: &str) -> Option<Key>;
}

impl KeyProvider for Key {
    fn verification_key(&self, kid: &str) -> Option<Key> {
        (self.id() == kid).then(|| self.clone())
    }
}

impl KeyProvider for Keyring {
    fn verification_key(&self, kid: &str) -> Option<Key> {
        self.get(kid).cloned()
    }
}

impl<K: KeyProvider + ?Sized> KeyProvider for Arc<K> {
    fn verification_key(&self, kid: &str) -> Option<Key> {
        (**self).verification_key(kid)
    }
}

impl<F> KeyProvider for F
where
    F: Fn(&str) -> Option<Key> + Send + Sync,
{
    fn verification_key(&self, kid: &str) -> Option<Key> {
        self(kid)
    }
}

/// The keys of one issuer: signs with the newest key, verifies with every key it still holds.
///
/// Rotation keeps old tokens valid: after [`rotate`](Keyring::rotate) new tokens are signed
/// with the new key, and tokens signed with the old ("retired") key still verify until
/// [`remove`](Keyring::remove) drops it.
///
/// ```
/// use approval_gate::{Key, Keyring, token::KeyProvider};
///
/// let mut keys = Keyring::new(Key::new("k1", [1u8; 32]).unwrap());
/// keys.rotate(Key::new("k2", [2u8; 32]).unwrap());
/// assert_eq!(keys.signing_key_id(), "k2");
/// assert!(keys.verification_key("k1").is_some());
/// assert!(keys.remove("k1"));
/// assert!(keys.verification_key("k1").is_none());
/// assert!(!keys.remove("k2"), "the signing key stays");
/// ```
#[derive(Clone)]
pub struct Keyring {
    signing: Key,
    /// Oldest first; ids are unique and differ from the signing key's.
    retired: Vec<Key>,
}

impl Keyring {
    /// A keyring that signs with `signing`.
    pub fn new(signing: Key) -> Keyring {
        Keyring {
            signing,
            retired: Vec::new(),
        }
    }

    /// Makes `new_signing` the signing key. The previous signing key is retired: it no
    /// longer signs but still verifies. A held key with the same id as `new_signing` is
    /// replaced, so tokens signed with that older secret stop verifying.
    pub fn rotate(&mut self, new_signing: Key) {
        self.retired.retain(|k| k.id() != new_signing.id());
        let old = std::mem::replace(&mut self.signing, new_signing);
        if old.id() != self.signing.id() {
            self.retired.push(old);
        }
    }

    /// Drops the retired key `kid`; tokens signed with it then fail with
    /// [`TokenError::UnknownKeyId`]. Returns whether a key was removed: `false` if no such
    /// key is held, or if `kid` is the signing key, which cannot be removed (rotate first).
    pub fn remove(&mut self, kid: &str) -> bool {
        if kid == self.signing_key_id() {
            return false;
        }
        let before = self.retired.len();
        self.retired.retain(|k| k.id() != kid);
        self.retired.len() != before
    }

    /// The key new tokens are signed with.
    pub fn signing_key(&self) -> &Key {
        &self.signing
    }

    /// The id of the key new tokens are signed with.
    pub fn signing_key_id(&self) -> &str {
        self.signing_key().id()
    }

    /// The held key with id `kid`, signing or retired.
    pub fn get(&self, kid: &str) -> Option<&Key> {
        if self.signing.id() == kid {
            return Some(&self.signing);
        }
        self.retired.iter().find(|k| k.id() == kid)
    }

    /// Signs `claims` with the signing key.
    pub fn sign(&self, claims: &super::Claims) -> super::ApprovalToken {
        self.signing_key().sign(claims)
    }

    /// Every key held: the retired ones, oldest first, then the signing key.
    pub fn keys(&self) -> impl Iterator<Item = &Key> {
        self.retired.iter().chain(std::iter::once(&self.signing))
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let retired: Vec<&str> = self.retired.iter().map(Key::id).collect();
        f.debug_struct("Keyring")
            .field("signing", &self.signing_key_id())
            .field("retired", &retired)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::test_support::{SECRET, key};

    fn assert_no_secret(debug: &str) {
        let as_text = String::from_utf8_lossy(SECRET);
        let as_list = format!("{:?}", SECRET);
        let as_hex: String = SECRET.iter().map(|b| format!("{b:02x}")).collect();
        for needle in [&as_text[..12], &as_list[1..20], &as_hex[..16]] {
            assert!(!debug.contains(needle), "{debug} contains {needle}");
        }
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let k = key("k1");
        let d = format!("{k:?} {k:#?}");
        assert!(d.contains("k1"));
        assert_no_secret(&d);

        let mut ring = Keyring::new(key("k1"));
        ring.rotate(key("k2"));
        let d = format!("{ring:?} {ring:#?}");
        assert!(d.contains("k1") && d.contains("k2"));
        assert_no_secret(&d);
    }

    #[test]
    fn key_ids_and_secrets_are_checked() {
        let ok = [0u8; 32];
        assert!(Key::new("a", ok).is_ok());
        assert!(Key::new("A-z_0.9", ok).is_ok());
        assert!(Key::new("k".repeat(64), ok).is_ok());
        for bad in ["", "has space", "quote\"", "ü", &"k".repeat(65)] {
            assert!(
                matches!(Key::new(bad, ok), Err(TokenError::InvalidKey { .. })),
                "{bad:?}"
            );
        }
        assert!(matches!(
            Key::new("k1", [0u8; 31]),
            Err(TokenError::InvalidKey { .. })
        ));
    }

    #[test]
    fn generated_keys_are_32_fresh_bytes() {
        let a = Key::generate("k1").unwrap();
        let b = Key::generate("k1").unwrap();
        assert_eq!(a.expose_secret().len(), 32);
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert!(matches!(
            Key::generate("bad id"),
            Err(TokenError::InvalidKey { .. })
        ));
    }

    #[test]
    fn header_is_exactly_the_documented_json() {
        let header = B64.decode(key("k1").header_b64()).unwrap();
        assert_eq!(header, br#"{"alg":"HS256","typ":"JWT","kid":"k1"}"#);
    }

    #[test]
    fn keyring_signs_with_newest_and_keeps_retired() {
        let mut ring = Keyring::new(key("k1"));
        assert_eq!(ring.signing_key_id(), "k1");
        ring.rotate(key("k2"));
        assert_eq!(ring.signing_key_id(), "k2");
        assert!(ring.verification_key("k1").is_some());
        assert!(ring.verification_key("k2").is_some());
        assert!(!ring.remove("k2"), "the signing key cannot be removed");
        assert!(!ring.remove("nope"));
        assert!(ring.remove("k1"));
        assert!(ring.verification_key("k1").is_none());
        assert!(!ring.remove("k1"));
    }

    #[test]
    fn rotating_to_a_held_id_replaces_that_key() {
        let mut ring = Keyring::new(key("k1"));
        ring.rotate(key("k2"));
        let fresh = Key::new("k1", [9u8; 32]).unwrap();
        ring.rotate(fresh);
        assert_eq!(ring.signing_key_id(), "k1");
        assert_eq!(ring.get("k1").unwrap().expose_secret(), &[9u8; 32]);
        assert!(ring.remove("k2"));
        assert_eq!(
            format!("{ring:?}"),
            r#"Keyring { signing: "k1", retired: [] }"#
        );
    }

    #[test]
    fn providers_for_key_arc_and_closure() {
        let k = key("k1");
        assert!(k.verification_key("k1").is_some());
        assert!(k.verification_key("k2").is_none());
        let shared: Arc<dyn KeyProvider> = Arc::new(Keyring::new(key("k1")));
        assert_eq!(shared.verification_key("k1").unwrap().id(), "k1");
        let f = |kid: &str| (kid == "x").then(|| key("x"));
        assert_eq!(f.verification_key("x").unwrap().id(), "x");
        assert!(f.verification_key("k1").is_none());
    }
}
