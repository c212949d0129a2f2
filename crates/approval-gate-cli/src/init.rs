//! `init DIR`: a starter deployment: the seed policy, a new signing key (mode 0600), an
//! SQLite store, and a config file naming them.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use approval_gate::time::OffsetDateTime;
use approval_gate::{Key, Keyring};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::deploy::{load_policy, open_store};
use crate::error::CliError;
use crate::output::{Format, Out};

/// The seed policy of the project (README, "Policy config reference").
pub const SEED_POLICY: &str = "\
# The approval-gate policy: which tool calls need a person's approval.
# Reference: the approval-gate README, \"Policy config reference\".
approvals:
  required_for:
    - email.send
    - ticket.close_bulk
    - db.write
  ttl_seconds: 300
  fallback_when_not_approved: stop
";

/// The names of the files `init` writes.
pub const CONFIG_FILE: &str = "approval-gate.yaml";
const POLICY_FILE: &str = "policy.yaml";
const KEY_FILE: &str = "signing.key";
const STORE_FILE: &str = "approvals.db";

/// What `init` prints as JSON.
#[derive(Serialize)]
struct Initialized {
    config: String,
    policy: String,
    key_file: String,
    store: String,
    /// Who the console token signs in.
    console_user: String,
    /// The console token: shown once, kept nowhere but as its hash.
    console_token: String,
}

/// The role that sees the console's run controls and every tenant's figures.
const ADMIN_ROLE: &str = "approval-admin";

/// A new console token: 64 hex digits of a fresh 256-bit secret.
fn console_token() -> Result<String, CliError> {
    let secret = Key::generate("console").map_err(|e| CliError::Failed {
        message: format!("cannot make a console token: {e}"),
        source: None,
    })?;
    Ok(hex(secret.expose_secret()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes the starter into `dir` (created if missing); refuses to overwrite any file.
pub async fn init(dir: &Path, out: &Out) -> Result<(), CliError> {
    std::fs::create_dir_all(dir).map_err(|source| CliError::Io {
        what: "cannot create the directory",
        path: dir.to_owned(),
        source,
    })?;
    // Absolute, so that the printed next commands work from anywhere.
    let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_owned());
    let dir = dir.as_path();
    let config = dir.join(CONFIG_FILE);
    let policy = dir.join(POLICY_FILE);
    let key_file = dir.join(KEY_FILE);
    let store = dir.join(STORE_FILE);
    for path in [&config, &policy, &key_file, &store] {
        if path.exists() {
            return Err(CliError::usage(
                format!("`{}` exists already", path.display()),
                "init writes a new deployment: pick an empty directory",
            ));
        }
    }
    let key_id = format!("k{}", OffsetDateTime::now_utc().unix_timestamp());
    let key = Key::generate(key_id).map_err(|e| CliError::Key {
        path: key_file.clone(),
        message: e.to_string(),
    })?;
    write_private(&key_file, &Keyring::new(key.clone()).to_key_file())?;
    write_new(&policy, SEED_POLICY)?;
    load_policy(&policy)?;
    let store_url = format!("sqlite:{}", store.display());
    open_store(&store_url, None, true).await?;
    let user = crate::desk::person(None).unwrap_or_else(|_| "admin".to_owned());
    let token = console_token()?;
    let token_hash = hex(&Sha256::digest(token.as_bytes()));
    let config_text = format!(
        "# approval-gate deployment: `approval-gate --config {}` reads it.\n\
         # Relative paths are read from this file's directory.\n\
         store: sqlite:{STORE_FILE}\n\
         policy: {POLICY_FILE}\n\
         key_file: {KEY_FILE}\n\
         # The console (`approval-gate serve`): who may use it.\n\
         serve:\n\
         \x20 listen: 127.0.0.1:8080\n\
         \x20 tokens:            # `approval-gate token-hash` prints a token's sha256\n\
         \x20   - sha256: {token_hash}   # the token `init` printed\n\
         \x20     as: {user}\n\
         \x20     roles: [{ADMIN_ROLE}]\n\
         \x20 # trust_proxy: true  # only behind a proxy that sets and strips x-forwarded-user\n",
        config.display()
    );
    write_new(&config, &config_text)?;
    if out.format() == Format::Json {
        out.json(&Initialized {
            config: config.display().to_string(),
            policy: policy.display().to_string(),
            key_file: key_file.display().to_string(),
            store: store_url,
            console_user: user,
            console_token: token,
        });
        return Ok(());
    }
    let c = shell_word(&config);
    out.line(&format!("wrote {}", config.display()));
    out.line(&format!("wrote {} (the seed policy)", policy.display()));
    out.line(&format!(
        "wrote {} (signing key `{}`, mode 0600: share it only with hosts that gate tools)",
        key_file.display(),
        key.id()
    ));
    out.line(&format!("created the store {}", store.display()));
    out.line("");
    out.line("next:");
    out.line(&format!("  export APPROVAL_GATE_CONFIG={c}"));
    out.line(&format!(
        "  approval-gate policy check {}",
        shell_word(&policy)
    ));
    out.line("  approval-gate pending");
    out.line("  approval-gate approve ID   # or: deny ID --feedback TEXT");
    out.line("  approval-gate serve        # the console on http://127.0.0.1:8080/");
    out.line("");
    out.line(&format!(
        "sign in to the console as `{user}` (role {ADMIN_ROLE}) with this token; it is shown \
         only now, and the config keeps only its hash:"
    ));
    out.line(&format!("  {token}"));
    Ok(())
}

/// A path as one shell word.
fn shell_word(path: &Path) -> String {
    let text = path.display().to_string();
    if text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+,:@".contains(c))
    {
        text
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

fn open_new(path: &Path, mode: u32) -> Result<std::fs::File, CliError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    options.open(path).map_err(|source| CliError::Io {
        what: "cannot write",
        path: PathBuf::from(path),
        source,
    })
}

fn write_with(path: &Path, text: &str, mode: u32) -> Result<(), CliError> {
    let mut file = open_new(path, mode)?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|source| CliError::Io {
            what: "cannot write",
            path: path.to_owned(),
            source,
        })
}

fn write_new(path: &Path, text: &str) -> Result<(), CliError> {
    write_with(path, text, 0o644)
}

/// Writes a file only its owner may read (0600, whatever the umask).
fn write_private(path: &Path, text: &str) -> Result<(), CliError> {
    write_with(path, text, 0o600)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(
            |source| CliError::Io {
                what: "cannot restrict",
                path: path.to_owned(),
                source,
            },
        )?;
    }
    Ok(())
}
