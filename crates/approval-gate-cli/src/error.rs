//! The command's one error type, and the one place that maps errors to exit codes.

use std::path::PathBuf;

use approval_gate::{DeskError, GateError, PolicyError, StoreError};
use thiserror::Error;

/// The exit codes, stable and documented in the README.
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// A check found a problem: a policy test case failed, an audit trail does not verify.
    pub const CHECK_FAILED: u8 = 1;
    /// Bad usage: unknown flag, bad value, missing setting, unreadable input file.
    pub const USAGE: u8 = 2;
    /// No such request, grant, or record.
    pub const NOT_FOUND: u8 = 3;
    /// The desk refused: self-approval, wrong tenant or role, a second vote, an edit or
    /// grant refused, already decided, expired.
    pub const REFUSED: u8 = 4;
    /// The store, the signing key, the policy or the audit sink failed.
    pub const FAILURE: u8 = 5;
}

/// Why a command failed. Each variant says what went wrong; [`CliError::hint`] says what
/// to do, and [`CliError::exit_code`] is the process's exit status.
#[derive(Debug, Error)]
pub enum CliError {
    /// The command was used wrongly: a bad value, a missing setting.
    #[error("{message}")]
    Usage {
        /// What is wrong.
        message: String,
        /// What to do.
        hint: Option<String>,
    },
    /// Something asked for does not exist.
    #[error("{message}")]
    NotFound {
        /// What was not found.
        message: String,
        /// What to do.
        hint: Option<String>,
    },
    /// A check found problems (policy test cases failed, a trail does not verify).
    #[error("{message}")]
    CheckFailed {
        /// What failed.
        message: String,
    },
    /// The desk refused or failed.
    #[error(transparent)]
    Desk(#[from] DeskError),
    /// The gate's store or audit sink failed.
    #[error(transparent)]
    Gate(#[from] GateError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The store could not be opened.
    #[error("cannot open the store `{store}`")]
    OpenStore {
        /// The store as given (without a password).
        store: String,
        /// Why.
        #[source]
        source: StoreError,
    },
    /// A policy file does not load.
    #[error("policy `{}`: {source}", path.display())]
    Policy {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: PolicyError,
    },
    /// The signing key file is missing, malformed or too open.
    #[error("key file `{}`: {message}", path.display())]
    Key {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A file could not be read or written.
    #[error("{what} `{}`", path.display())]
    Io {
        /// What was being done: `cannot read`, `cannot write`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Another failure of the store, the network or the console.
    #[error("{message}")]
    Failed {
        /// What failed.
        message: String,
        /// Why.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

impl CliError {
    /// A usage error with a hint.
    pub fn usage(message: impl Into<String>, hint: impl Into<String>) -> Self {
        CliError::Usage {
            message: message.into(),
            hint: Some(hint.into()),
        }
    }

    /// A not-found error with a hint.
    pub fn not_found(message: impl Into<String>, hint: impl Into<String>) -> Self {
        CliError::NotFound {
            message: message.into(),
            hint: Some(hint.into()),
        }
    }

    /// The process's exit status for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage { .. } => exit::USAGE,
            CliError::NotFound { .. } => exit::NOT_FOUND,
            CliError::CheckFailed { .. } => exit::CHECK_FAILED,
            CliError::Desk(e) => match e {
                DeskError::NotFound { .. } | DeskError::GrantNotFound { .. } => exit::NOT_FOUND,
                DeskError::AlreadyDecided { .. }
                | DeskError::Expired { .. }
                | DeskError::Refused { .. }
                | DeskError::EditRefused { .. }
                | DeskError::InvalidArgs { .. }
                | DeskError::GrantRefused { .. } => exit::REFUSED,
                _ => exit::FAILURE,
            },
            CliError::Store(StoreError::NotFound { .. } | StoreError::GrantNotFound { .. }) => {
                exit::NOT_FOUND
            }
            CliError::Gate(_)
            | CliError::Store(_)
            | CliError::OpenStore { .. }
            | CliError::Policy { .. }
            | CliError::Key { .. }
            | CliError::Io { .. }
            | CliError::Failed { .. } => exit::FAILURE,
        }
    }

    /// What to do about it, in a few words, if there is something to say.
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            CliError::Usage { hint, .. } | CliError::NotFound { hint, .. } => hint.clone()?,
            CliError::CheckFailed { .. } => return None,
            CliError::Desk(e) => match e {
                DeskError::NotFound { .. } => {
                    "list the requests you may see with `approval-gate pending`".into()
                }
                DeskError::GrantNotFound { .. } => {
                    "list the live grants with `approval-gate grants`".into()
                }
                DeskError::AlreadyDecided { id, .. } => {
                    format!("see where it stands with `approval-gate show {id}`")
                }
                DeskError::Expired { .. } => {
                    "nothing to decide: the agent must call again to file a new request".into()
                }
                DeskError::Refused { .. } => {
                    "ask someone who may decide it (not the requester; its tenant; a role of its tier)"
                        .into()
                }
                DeskError::EditRefused { .. } => {
                    "edit within the request's tier, or deny with `--feedback`".into()
                }
                DeskError::InvalidArgs { .. } => "send smaller edited arguments".into(),
                DeskError::GrantRefused { .. } => "approve without `--grant`".into(),
                DeskError::Store(_) => {
                    "check the store; the decision may stand: look with `approval-gate show ID` before deciding again".into()
                }
                DeskError::Audit(_) => "check the audit sink; nothing was decided".into(),
                _ => return None,
            },
            CliError::Gate(_) | CliError::Store(_) => {
                "check that the store is reachable and try again".into()
            }
            CliError::OpenStore { .. } => {
                "check `--store` (sqlite:PATH or postgres://…), or create one with `approval-gate init DIR`".into()
            }
            CliError::Policy { .. } => "fix the policy; `approval-gate policy check FILE` lists the problem".into(),
            // A message that says what to do already needs no hint.
            CliError::Key { message, .. } if message.contains("chmod") => return None,
            CliError::Key { .. } => {
                "point `--key-file` at a key file (`approval-gate init DIR` writes one)".into()
            }
            CliError::Io { .. } => "check the path and its permissions".into(),
            CliError::Failed { .. } => return None,
        })
    }

    /// The one line printed on standard error: the error, its sources, and the hint.
    pub fn line(&self) -> String {
        let mut text = self.to_string();
        let mut source = std::error::Error::source(self);
        // `transparent` variants show their source's text already: skip that one.
        if matches!(
            self,
            CliError::Desk(_) | CliError::Gate(_) | CliError::Store(_)
        ) {
            source = source.and_then(std::error::Error::source);
        }
        while let Some(e) = source {
            let more = e.to_string();
            if !text.ends_with(&more) {
                text.push_str(": ");
                text.push_str(&more);
            }
            source = e.source();
        }
        if let Some(hint) = self.hint() {
            text.push_str(" (");
            text.push_str(&hint);
            text.push(')');
        }
        // One line, whatever the sources hold.
        text.replace(['\n', '\r'], " ")
    }
}
