//! The key file: the signing keys of a deployment as text, one `KEY-ID:BASE64-SECRET` a
//! line, the last one signing. What `approval-gate init` writes and every process of a
//! deployment (the command, the console, each host that gates tools) reads, so that all
//! of them sign and verify with the same keys.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::{Key, Keyring};

/// The first line of a key file written by [`Keyring::to_key_file`].
const HEADER: &str =
    "# approval-gate signing keys: one `KEY-ID:BASE64-SECRET` a line; the last one signs";

/// Why a key file could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// The file could not be read.
    #[error("cannot read the key file {}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error underneath.
        #[source]
        source: std::io::Error,
    },
    /// Its group or others may read or write it (Unix only): a key anyone may read
    /// lets them forge approvals.
    #[error("others may read the key file {} (mode {mode:o}); run `chmod 600 {}`", .path.display(), .path.display())]
    Exposed {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A line is not `KEY-ID:BASE64-SECRET` with a valid key.
    #[error("key file line {line}: {message}")]
    Line {
        /// The line, counting from 1.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// The file holds no key.
    #[error("the key file holds no key")]
    Empty,
}

impl Keyring {
    /// Reads a keyring from the text of a key file: `KEY-ID:BASE64-SECRET` lines (standard
    /// base64 with padding), blank lines and `#` comments skipped. Every key verifies; the
    /// last one signs, so a rotation appends a line.
    ///
    /// ```
    /// use approval_gate::{Key, Keyring};
    ///
    /// let keys = Keyring::from_key_file_str("# keys\nold:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\nnew:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\n")?;
    /// assert_eq!(keys.signing_key_id(), "new");
    /// assert!(keys.get("old").is_some());
    /// # Ok::<(), approval_gate::token::KeyFileError>(())
    /// ```
    pub fn from_key_file_str(text: &str) -> Result<Keyring, KeyFileError> {
        let mut keyring: Option<Keyring> = None;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |message: String| KeyFileError::Line {
                line: n + 1,
                message,
            };
            let Some((id, secret)) = line.split_once(':') else {
                return Err(bad("expected `KEY-ID:BASE64-SECRET`".into()));
            };
            let secret = STANDARD
                .decode(secret.trim())
                .map_err(|_| bad("the secret is not base64".into()))?;
            let key = Key::new(id.trim(), secret).map_err(|e| bad(e.to_string()))?;
            match &mut keyring {
                Some(ring) => ring.rotate(key),
                None => keyring = Some(Keyring::new(key)),
            }
        }
        keyring.ok_or(KeyFileError::Empty)
    }

    /// Reads the key file at `path` ([`from_key_file_str`](Self::from_key_file_str)).
    /// On Unix, refuses a file its group or others may read or write
    /// ([`KeyFileError::Exposed`]).
    pub fn read_key_file(path: impl AsRef<Path>) -> Result<Keyring, KeyFileError> {
        let path = path.as_ref();
        let io = |source| KeyFileError::Io {
            path: path.to_owned(),
            source,
        };
        let text = std::fs::read_to_string(path).map_err(io)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(path).map_err(io)?.permissions().mode();
            if mode & 0o077 != 0 {
                return Err(KeyFileError::Exposed {
                    path: path.to_owned(),
                    mode: mode & 0o777,
                });
            }
        }
        Keyring::from_key_file_str(&text)
    }

    /// The text of a key file holding this keyring: a comment line, then the retired keys,
    /// oldest first, and the signing key last, so that
    /// [`from_key_file_str`](Self::from_key_file_str) reads the same keyring back. It holds
    /// the secrets: write it with mode `0600`.
    pub fn to_key_file(&self) -> String {
        let mut text = format!("{HEADER}\n");
        for key in self.keys() {
            text.push_str(key.id());
            text.push(':');
            text.push_str(&STANDARD.encode(key.expose_secret()));
            text.push('\n');
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_keyring_reads_back_from_its_key_file() {
        let mut keys = Keyring::new(Key::new("k1", [1u8; 32]).unwrap());
        keys.rotate(Key::new("k2", [2u8; 32]).unwrap());
        let again = Keyring::from_key_file_str(&keys.to_key_file()).unwrap();
        assert_eq!(again.signing_key_id(), "k2");
        assert_eq!(again.get("k1").unwrap().expose_secret(), [1u8; 32]);
        assert_eq!(again.get("k2").unwrap().expose_secret(), [2u8; 32]);
    }

    #[test]
    fn a_bad_line_is_named() {
        for (text, line, words) in [
            ("k1 AAAA\n", 1, "expected `KEY-ID:BASE64-SECRET`"),
            ("# c\n\nk1:not base64!\n", 3, "not base64"),
            ("k1:AAAA\n", 1, "shorter than 32 bytes"),
        ] {
            match Keyring::from_key_file_str(text) {
                Err(KeyFileError::Line {
                    line: l, message, ..
                }) => {
                    assert_eq!(l, line, "{text}");
                    assert!(message.contains(words), "{text}: {message}");
                }
                other => panic!("{text}: {other:?}"),
            }
        }
        assert!(matches!(
            Keyring::from_key_file_str("# nothing\n"),
            Err(KeyFileError::Empty)
        ));
    }

    #[test]
    fn the_secret_is_not_in_the_error() {
        let err = Keyring::from_key_file_str("k1:c2VjcmV0\n").unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("c2VjcmV0"), "{shown}");
    }
}
