//! What a recorded approval lacks under the policy in force now.

use std::fmt;

use crate::policy::Decision;

use super::ApprovalRequest;

/// How the approvals recorded on a request fall short of what the policy in force asks
/// now: the policy tightened between the approval and its use.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ApprovalShortfall {
    /// The tier now needs more distinct approvers than approved.
    Quorum {
        /// Approvers needed now.
        needed: u32,
        /// Approvers recorded.
        approvals: u32,
    },
    /// The tier now accepts approvers of other roles than the request's tier did.
    Roles {
        /// The roles that may approve now.
        needed: Vec<String>,
    },
}

impl fmt::Display for ApprovalShortfall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApprovalShortfall::Quorum { needed, approvals } => write!(
                f,
                "the policy now needs {needed} approvers and this call has {approvals}"
            ),
            ApprovalShortfall::Roles { needed } => write!(
                f,
                "the policy now needs an approver with one of the roles {}",
                needed.join(", ")
            ),
        }
    }
}

impl ApprovalRequest {
    /// How the approvals recorded on this request fall short of `decision`, the policy's
    /// verdict on the call now; `None` when they meet it.
    ///
    /// A decision that does not ask for approval is met (a deny is the caller's to
    /// handle). One that does is met when it needs no more approvers than approved and
    /// accepts every role the request's tier accepted (or any approver). The roles each
    /// approver held are not kept, so a tier whose roles changed is met only when none of
    /// the roles accepted then is refused now: when in doubt, it falls short.
    pub fn shortfall(&self, decision: &Decision) -> Option<ApprovalShortfall> {
        if decision.effect() != crate::policy::Effect::ApprovalRequired {
            return None;
        }
        let needed = decision.quorum().max(1);
        let approvals = u32::try_from(self.approvers().len()).unwrap_or(u32::MAX);
        if approvals < needed {
            return Some(ApprovalShortfall::Quorum { needed, approvals });
        }
        let now_roles = decision.approver_roles();
        let then_roles = self.approver_roles();
        let covered = now_roles.is_empty()
            || (!then_roles.is_empty()
                && then_roles
                    .iter()
                    .all(|r| now_roles.iter().any(|n| &**n == r.as_str())));
        if !covered {
            return Some(ApprovalShortfall::Roles {
                needed: now_roles.iter().map(|r| r.to_string()).collect(),
            });
        }
        None
    }
}
