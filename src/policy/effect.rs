//! [`Effect`] and [`Fallback`]: what a decision does, and what happens when approval never comes.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What a policy decides for a call.
///
/// The order is precedence: when several rules or checks match a call, the greatest effect
/// wins, so `Allow < ApprovalRequired < Deny`.
///
/// ```
/// use approval_gate::Effect;
///
/// assert!(Effect::Deny > Effect::ApprovalRequired);
/// assert!(Effect::ApprovalRequired > Effect::Allow);
/// assert_eq!(Effect::ApprovalRequired.to_string(), "approval_required");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// The call may run.
    Allow,
    /// The call waits for a person to approve it.
    ApprovalRequired,
    /// The call must not run.
    Deny,
}

impl Effect {
    /// The config spelling: `allow`, `approval_required` or `deny`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Effect::Allow => "allow",
            Effect::ApprovalRequired => "approval_required",
            Effect::Deny => "deny",
        }
    }

    /// A small index for per-effect tables.
    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the host should do when a call ends unapproved (denied by a person or timed out).
///
/// Set by `approvals.fallback_when_not_approved`; the default is [`Fallback::Stop`].
///
/// ```
/// use approval_gate::{Policy, config::Fallback};
///
/// let policy = Policy::from_yaml_str("approvals:\n  fallback_when_not_approved: continue\n")?;
/// assert_eq!(policy.fallback(), Fallback::Continue);
/// # Ok::<(), approval_gate::PolicyError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fallback {
    /// `stop`: end the agent run.
    #[default]
    Stop,
    /// `continue`: hand the refusal back to the model as the tool's result and let the run go on.
    Continue,
}

impl Fallback {
    /// The config spelling: `stop` or `continue`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Fallback::Stop => "stop",
            Fallback::Continue => "continue",
        }
    }
}

impl fmt::Display for Fallback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_orders_deny_over_approval_over_allow() {
        let mut effects = [Effect::Deny, Effect::Allow, Effect::ApprovalRequired];
        effects.sort();
        assert_eq!(
            effects,
            [Effect::Allow, Effect::ApprovalRequired, Effect::Deny]
        );
    }

    #[test]
    fn effects_and_fallbacks_use_config_spelling() {
        let e: Effect = serde_yaml::from_str("approval_required").unwrap();
        assert_eq!(e, Effect::ApprovalRequired);
        assert_eq!(serde_json::to_string(&Effect::Deny).unwrap(), "\"deny\"");
        let f: Fallback = serde_yaml::from_str("continue").unwrap();
        assert_eq!(f, Fallback::Continue);
        assert_eq!(Fallback::default(), Fallback::Stop);
        assert_eq!(Fallback::Stop.to_string(), "stop");
    }
}
