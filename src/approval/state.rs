use std::fmt;

use serde::{Deserialize, Serialize};

/// Where an approval request stands.
///
/// ```text
/// Pending ──approve──▶ Approved ──claim──▶ Executing ──▶ Executed | Failed
///    │                    └──(approval TTL passes)──▶ Expired
///    ├──deny──▶ Denied
///    ├──(decision TTL passes)──▶ Expired
///    └──cancel──▶ Cancelled
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestState {
    /// Waiting for a person to decide.
    Pending,
    /// Approved and not yet used.
    Approved,
    /// A person said no.
    Denied,
    /// Nobody decided in time, or the approval was not used in time.
    Expired,
    /// Withdrawn before it was used.
    Cancelled,
    /// Claimed by a `resume`: the tool is running, or the process died while it ran (in
    /// doubt: never run again on its own).
    Executing,
    /// The tool ran and succeeded.
    Executed,
    /// The tool ran and failed.
    Failed,
}

impl RequestState {
    /// The name used in the audit trail and in stores: `pending`, `approved`, ….
    pub fn as_str(self) -> &'static str {
        match self {
            RequestState::Pending => "pending",
            RequestState::Approved => "approved",
            RequestState::Denied => "denied",
            RequestState::Expired => "expired",
            RequestState::Cancelled => "cancelled",
            RequestState::Executing => "executing",
            RequestState::Executed => "executed",
            RequestState::Failed => "failed",
        }
    }

    /// Whether no transition leaves this state.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RequestState::Denied
                | RequestState::Expired
                | RequestState::Cancelled
                | RequestState::Executed
                | RequestState::Failed
        )
    }
}

impl fmt::Display for RequestState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
