//! Where the deployment's parts are: the store, the policy and the signing key, from
//! flags, the environment, or a config file; and the gate built from them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use approval_gate::store::ApprovalStore;
use approval_gate::token::KeyFileError;
use approval_gate::{Gate, Key, Keyring, Policy, PostgresStore, SqliteStore};
use serde::Deserialize;

use crate::error::CliError;

/// The flags that say where the deployment is. Each also reads its environment variable;
/// a flag or variable wins over the config file.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct DeployArgs {
    /// A config file (YAML) naming the store, policy and key file (and the console's
    /// settings); relative paths in it are read from its directory.
    #[arg(long, env = "APPROVAL_GATE_CONFIG", global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The store: `sqlite:PATH` or `postgres://USER@HOST/DB[?schema=NAME]`.
    #[arg(long, env = "APPROVAL_GATE_STORE", global = true, value_name = "URL")]
    pub store: Option<String>,
    /// The PostgreSQL schema the store's tables are in (overrides `?schema=`).
    #[arg(long, env = "APPROVAL_GATE_SCHEMA", global = true, value_name = "NAME")]
    pub schema: Option<String>,
    /// The policy file (YAML).
    #[arg(long, env = "APPROVAL_GATE_POLICY", global = true, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// The signing key file (`KEY-ID:BASE64-SECRET` lines; the last one signs).
    #[arg(
        long,
        env = "APPROVAL_GATE_KEY_FILE",
        global = true,
        value_name = "FILE"
    )]
    pub key_file: Option<PathBuf>,
}

/// The config file: every field optional; unknown fields are errors.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// The store, as `--store` takes it.
    #[serde(default)]
    pub store: Option<String>,
    /// The PostgreSQL schema.
    #[serde(default)]
    pub schema: Option<String>,
    /// The policy file.
    #[serde(default)]
    pub policy: Option<PathBuf>,
    /// The signing key file.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// The console's settings, for `serve`.
    #[serde(default)]
    pub serve: ServeConfig,
    /// The notifier's settings, for `notify run` and `serve`.
    #[serde(default)]
    pub notify: Option<approval_gate_server::notify::NotifyConfig>,
}

/// The console's settings in the config file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeConfig {
    /// The address to listen on, such as `127.0.0.1:8080`.
    #[serde(default)]
    pub listen: Option<String>,
    /// The role of the console's administrators (default `approval-admin`).
    #[serde(default)]
    pub admin_role: Option<String>,
    /// Bearer tokens, each kept as the SHA-256 hash of its text, and who it acts as.
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
    /// Trust a reverse proxy's identity headers: `true` for the default header names, or
    /// a map naming them.
    #[serde(default)]
    pub trust_proxy: Option<ProxyConfig>,
    /// Slack's interactive endpoint (`POST /slack/actions`): the app's signing secret,
    /// the bot token and who each Slack user is at the desk.
    #[serde(default)]
    pub slack: Option<approval_gate_server::SlackConfig>,
}

/// One bearer token of the console.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// The hex SHA-256 of the token's text (`approval-gate token-hash` prints it).
    pub sha256: String,
    /// Who the token acts as.
    #[serde(rename = "as")]
    pub id: String,
    /// Their roles.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Their tenant.
    #[serde(default)]
    pub tenant: Option<String>,
}

/// Whether and how to trust a reverse proxy's headers.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ProxyConfig {
    /// `true`: the default names; `false`: no proxy.
    Enabled(bool),
    /// The header names.
    Headers {
        /// The user's id (default `x-forwarded-user`).
        #[serde(default)]
        user: Option<String>,
        /// The user's groups, taken as roles (default `x-forwarded-groups`).
        #[serde(default)]
        groups: Option<String>,
        /// The user's tenant (default `x-forwarded-tenant`).
        #[serde(default)]
        tenant: Option<String>,
    },
}

/// The deployment, resolved: flags and environment over the config file.
#[derive(Debug, Clone, Default)]
pub struct Deployment {
    /// The store URL.
    pub store: Option<String>,
    /// The PostgreSQL schema.
    pub schema: Option<String>,
    /// The policy file.
    pub policy: Option<PathBuf>,
    /// The key file.
    pub key_file: Option<PathBuf>,
    /// The console's settings.
    pub serve: ServeConfig,
    /// The notifier's settings.
    pub notify: Option<approval_gate_server::notify::NotifyConfig>,
}

impl Deployment {
    /// Resolves `args` over the config file they name, if any.
    pub fn resolve(args: &DeployArgs) -> Result<Deployment, CliError> {
        let mut deployment = Deployment::default();
        if let Some(path) = &args.config {
            let text = std::fs::read_to_string(path).map_err(|source| CliError::Io {
                what: "cannot read the config file",
                path: path.clone(),
                source,
            })?;
            let file: ConfigFile = serde_yaml::from_str(&text).map_err(|e| {
                let at = e
                    .location()
                    .map(|l| format!(":{}:{}", l.line(), l.column()))
                    .unwrap_or_default();
                CliError::usage(
                    format!("config file `{}{at}`: {e}", path.display()),
                    "the config file takes `store`, `schema`, `policy`, `key_file`, `serve` and `notify`",
                )
            })?;
            let dir = path.parent().unwrap_or(Path::new(""));
            deployment.store = file.store.map(|s| relative_store(&s, dir));
            deployment.schema = file.schema;
            deployment.policy = file.policy.map(|p| dir.join(p));
            deployment.key_file = file.key_file.map(|p| dir.join(p));
            deployment.serve = file.serve;
            deployment.notify = file.notify;
        }
        if args.store.is_some() {
            deployment.store = args.store.clone();
        }
        if args.schema.is_some() {
            deployment.schema = args.schema.clone();
        }
        if args.policy.is_some() {
            deployment.policy = args.policy.clone();
        }
        if args.key_file.is_some() {
            deployment.key_file = args.key_file.clone();
        }
        Ok(deployment)
    }

    /// Opens the store. An SQLite file must exist already (`init` creates one), so that
    /// a mistyped path is an error rather than an empty store.
    pub async fn open_store(&self) -> Result<Arc<dyn ApprovalStore>, CliError> {
        let Some(url) = &self.store else {
            return Err(CliError::usage(
                "no store given",
                "pass `--store sqlite:PATH` or `--store postgres://…`, set APPROVAL_GATE_STORE, or `--config FILE`",
            ));
        };
        open_store(url, self.schema.as_deref(), false).await
    }

    /// Loads the policy file.
    pub fn load_policy(&self) -> Result<Policy, CliError> {
        let Some(path) = &self.policy else {
            return Err(CliError::usage(
                "no policy given",
                "pass `--policy FILE`, set APPROVAL_GATE_POLICY, or `--config FILE`",
            ));
        };
        load_policy(path)
    }

    /// Reads the signing keys.
    pub fn load_keys(&self) -> Result<Keyring, CliError> {
        let Some(path) = &self.key_file else {
            return Err(CliError::usage(
                "no signing key given",
                "pass `--key-file FILE`, set APPROVAL_GATE_KEY_FILE, or `--config FILE`",
            ));
        };
        read_key_file(path)
    }

    /// The gate over the store, with the policy and keys, for commands that decide or
    /// flip controls.
    pub async fn gate(&self) -> Result<Gate, CliError> {
        let policy = self.load_policy()?;
        let keys = self.load_keys()?;
        let store = self.open_store().await?;
        Ok(Gate::builder(policy, keys).shared_store(store).build())
    }

    /// A gate for commands that only read: the policy and key when given, else a policy
    /// that denies everything and a throwaway key, neither of which a read uses.
    pub async fn reader(&self) -> Result<Gate, CliError> {
        let policy = match &self.policy {
            Some(_) => self.load_policy()?,
            None => Policy::from_yaml_str("{}").map_err(|source| CliError::Policy {
                path: PathBuf::from("(empty)"),
                source,
            })?,
        };
        let keys = match &self.key_file {
            Some(_) => self.load_keys()?,
            None => Keyring::new(Key::generate("read-only").map_err(|e| CliError::Key {
                path: PathBuf::from("(generated)"),
                message: e.to_string(),
            })?),
        };
        let store = self.open_store().await?;
        Ok(Gate::builder(policy, keys).shared_store(store).build())
    }
}

/// `sqlite:REL` in a config file is read from the config file's directory.
fn relative_store(store: &str, dir: &Path) -> String {
    match store.strip_prefix("sqlite:") {
        Some(rest) if !rest.starts_with('/') && !rest.starts_with("//") => {
            format!("sqlite:{}", dir.join(rest).display())
        }
        _ => store.to_owned(),
    }
}

/// A store URL with any password replaced, for messages.
fn shown(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Opens the store at `url`: `sqlite:PATH` (created when `create`), or `postgres://…`
/// with an optional `schema` (from the argument, else from `?schema=`).
pub async fn open_store(
    url: &str,
    schema: Option<&str>,
    create: bool,
) -> Result<Arc<dyn ApprovalStore>, CliError> {
    if let Some(path) = url.strip_prefix("sqlite:") {
        let path = path.strip_prefix("//").unwrap_or(path);
        let path = path.split('?').next().unwrap_or(path);
        if path.is_empty() {
            return Err(CliError::usage(
                format!("`{url}` names no file"),
                "write `sqlite:PATH`, such as `sqlite:approvals.db`",
            ));
        }
        if !create && !Path::new(path).exists() {
            return Err(CliError::not_found(
                format!("no store at `{path}`"),
                "check `--store`, or create one with `approval-gate init DIR`",
            ));
        }
        let options = SqliteStore::options(url).create_if_missing(create);
        let store =
            SqliteStore::connect_with(options)
                .await
                .map_err(|source| CliError::OpenStore {
                    store: url.to_owned(),
                    source,
                })?;
        return Ok(Arc::new(store));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let (base, from_url) = split_schema(url);
        // A command should not hang on a server that is down: 10 s, not the pool's 30.
        let mut options = PostgresStore::options(&base)
            .max_connections(4)
            .acquire_timeout(std::time::Duration::from_secs(10));
        if let Some(schema) = schema.map(str::to_owned).or(from_url) {
            options = options.schema(&schema);
        }
        let store = PostgresStore::connect_with(options)
            .await
            .map_err(|source| CliError::OpenStore {
                store: shown(url),
                source,
            })?;
        return Ok(Arc::new(store));
    }
    Err(CliError::usage(
        format!("`{}` is not a store", shown(url)),
        "write `sqlite:PATH` or `postgres://USER@HOST/DB`",
    ))
}

/// The URL without its `schema` parameter, and that parameter.
fn split_schema(url: &str) -> (String, Option<String>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_owned(), None);
    };
    let mut schema = None;
    let rest: Vec<&str> = query
        .split('&')
        .filter(|p| match p.strip_prefix("schema=") {
            Some(s) => {
                schema = Some(s.to_owned());
                false
            }
            None => !p.is_empty(),
        })
        .collect();
    if rest.is_empty() {
        (base.to_owned(), schema)
    } else {
        (format!("{base}?{}", rest.join("&")), schema)
    }
}

/// Loads the policy file at `path`.
pub fn load_policy(path: &Path) -> Result<Policy, CliError> {
    let text = std::fs::read_to_string(path).map_err(|source| CliError::Io {
        what: "cannot read the policy",
        path: path.to_owned(),
        source,
    })?;
    Policy::from_yaml_str(&text).map_err(|source| CliError::Policy {
        path: path.to_owned(),
        source,
    })
}

/// Reads a key file ([`Keyring::read_key_file`]: `KEY-ID:BASE64-SECRET` lines, every key
/// verifies, the last one signs; refused when others may read it).
pub fn read_key_file(path: &Path) -> Result<Keyring, CliError> {
    Keyring::read_key_file(path).map_err(|e| match e {
        KeyFileError::Io { path, source } => CliError::Io {
            what: "cannot read the key file",
            path,
            source,
        },
        other => CliError::Key {
            path: path.to_owned(),
            message: other.to_string(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_parameter_is_taken_out_of_the_url() {
        assert_eq!(
            split_schema("postgres://u@h/db?schema=ag"),
            ("postgres://u@h/db".into(), Some("ag".into()))
        );
        assert_eq!(
            split_schema("postgres://u@h/db?sslmode=disable&schema=ag"),
            (
                "postgres://u@h/db?sslmode=disable".into(),
                Some("ag".into())
            )
        );
        assert_eq!(
            split_schema("postgres://u@h/db"),
            ("postgres://u@h/db".into(), None)
        );
    }

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(shown("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(shown("postgres://u@h/db"), "postgres://u@h/db");
    }

    #[test]
    fn relative_sqlite_paths_are_read_from_the_config_directory() {
        assert_eq!(
            relative_store("sqlite:a.db", Path::new("/etc/ag")),
            "sqlite:/etc/ag/a.db"
        );
        assert_eq!(
            relative_store("sqlite:/x/a.db", Path::new("/etc/ag")),
            "sqlite:/x/a.db"
        );
        assert_eq!(
            relative_store("postgres://h/db", Path::new("/etc")),
            "postgres://h/db"
        );
    }
}
