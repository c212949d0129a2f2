//! Standing grants: an approver's "yes, and to calls like this too", bounded in scope,
//! lifetime and uses, and revocable.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{ApprovalRequest, ArgsHash, Condition, RequestId, ToolCall, ToolPattern};

/// The id of a standing grant.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct GrantId(Uuid);

impl GrantId {
    /// A fresh random id.
    pub fn new() -> GrantId {
        GrantId(Uuid::new_v4())
    }
}

impl Default for GrantId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for GrantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl fmt::Debug for GrantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GrantId({self})")
    }
}

/// Whose later calls a grant covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantScope {
    /// Calls in the same agent run.
    Run,
    /// Calls asked for by the same user (`requested_by`).
    User,
    /// Calls of the same tenant.
    Tenant,
}

/// What an approver asks for when leaving a grant with an approval.
///
/// ```
/// use approval_gate::{GrantScope, GrantSpec};
/// use std::time::Duration;
///
/// // This run may send this exact email again, three more times, within the hour.
/// let spec = GrantSpec::new(GrantScope::Run, Duration::from_secs(3600))
///     .same_args()
///     .max_uses(3);
/// # let _ = spec;
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct GrantSpec {
    scope: GrantScope,
    lifetime: Duration,
    tool: Option<String>,
    same_args: bool,
    constraint: Option<Condition>,
    max_uses: Option<u32>,
}

impl GrantSpec {
    /// A grant for calls in `scope` to the approved tool, with any args, for `lifetime`.
    pub fn new(scope: GrantScope, lifetime: Duration) -> Self {
        GrantSpec {
            scope,
            lifetime,
            tool: None,
            same_args: false,
            constraint: None,
            max_uses: None,
        }
    }

    /// Covers only calls for which `condition` holds (the policy's condition syntax, for
    /// example `args.amount` at most 50); a call it cannot evaluate is not covered.
    pub fn when(mut self, condition: Condition) -> Self {
        self.constraint = Some(condition);
        self
    }

    /// Covers tools matching `pattern` (`crm.*`) instead of the approved tool only.
    pub fn tool_pattern(mut self, pattern: impl Into<String>) -> Self {
        self.tool = Some(pattern.into());
        self
    }

    /// Covers only calls with the same args hash as the approved call.
    pub fn same_args(mut self) -> Self {
        self.same_args = true;
        self
    }

    /// Covers at most `n` calls.
    pub fn max_uses(mut self, n: u32) -> Self {
        self.max_uses = Some(n);
        self
    }
}

/// Why a grant could not be made from an approval.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GrantError {
    /// The request's tier forbids standing grants.
    #[error("the request's tier forbids standing grants")]
    Forbidden,
    /// The scope needs a fact the call does not have (a user or tenant).
    #[error("the call has no {0} to scope a grant to")]
    NoScope(&'static str),
    /// The tool pattern is not a valid pattern.
    #[error("invalid grant tool pattern: {0}")]
    Pattern(String),
    /// The request is not approved.
    #[error("only an approved request can leave a grant")]
    NotApproved,
}

/// A standing grant: later calls it covers are allowed without asking again, each use
/// audited as `grant_used`. It never lifts a `deny`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Grant {
    id: GrantId,
    tool: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    args_hash: Option<ArgsHash>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    constraint: Option<Condition>,
    scope: GrantScope,
    /// The value the scope binds: the run id, user or tenant.
    scope_value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tenant: Option<String>,
    created_by: String,
    request_id: RequestId,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    expires_at: OffsetDateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_uses: Option<u32>,
    uses: u32,
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    revoked_at: Option<OffsetDateTime>,
}

impl Grant {
    /// The grant `spec` asks for, left by `approver` on the approved `request` at `now`.
    pub fn from_approval(
        request: &ApprovalRequest,
        approver: &str,
        spec: &GrantSpec,
        now: OffsetDateTime,
    ) -> Result<Grant, GrantError> {
        if !request.grants_allowed() {
            return Err(GrantError::Forbidden);
        }
        if request.stored_state() != crate::RequestState::Approved {
            return Err(GrantError::NotApproved);
        }
        let call = request.call();
        let scope_value = match spec.scope {
            GrantScope::Run => call.run_id().to_owned(),
            GrantScope::User => call
                .requester()
                .ok_or(GrantError::NoScope("user"))?
                .to_owned(),
            GrantScope::Tenant => call
                .tenant_id()
                .ok_or(GrantError::NoScope("tenant"))?
                .to_owned(),
        };
        let tool = match &spec.tool {
            Some(p) => ToolPattern::new(p.clone())
                .map_err(|e| GrantError::Pattern(e.to_string()))?
                .as_str()
                .to_owned(),
            None => call.tool().to_owned(),
        };
        Ok(Grant {
            id: GrantId::new(),
            tool,
            args_hash: spec.same_args.then(|| request.approved_args_hash()),
            constraint: spec.constraint.clone(),
            scope: spec.scope,
            scope_value,
            tenant: call.tenant_id().map(str::to_owned),
            created_by: approver.to_owned(),
            request_id: request.id(),
            created_at: now,
            // Whole seconds, like the `exp` of the token that each use carries.
            expires_at: {
                let at = now + spec.lifetime;
                at.replace_nanosecond(0).unwrap_or(at)
            },
            max_uses: spec.max_uses,
            uses: 0,
            revoked_at: None,
        })
    }

    /// Whether the grant covers `call` (with `args_hash`) at `now`: live, not used up,
    /// same tenant, in scope, the tool matching, and the args hash when bound.
    pub fn covers(&self, call: &ToolCall, args_hash: &ArgsHash, now: OffsetDateTime) -> bool {
        self.is_live(now)
            && call.tenant_id() == self.tenant.as_deref()
            && match self.scope {
                GrantScope::Run => call.run_id() == self.scope_value,
                GrantScope::User => call.requester() == Some(self.scope_value.as_str()),
                GrantScope::Tenant => call.tenant_id() == Some(self.scope_value.as_str()),
            }
            && self.args_hash.is_none_or(|h| h == *args_hash)
            && self
                .constraint
                .as_ref()
                .is_none_or(|c| matches!(c.eval(call), Ok(true)))
            && ToolPattern::new(self.tool.clone()).is_ok_and(|p| p.matches(call.tool()))
    }

    /// Whether the grant can still be used at `now`.
    pub fn is_live(&self, now: OffsetDateTime) -> bool {
        self.revoked_at.is_none()
            && now < self.expires_at
            && self.max_uses.is_none_or(|m| self.uses < m)
    }

    /// The grant after one more use.
    pub fn used(&self) -> Grant {
        let mut next = self.clone();
        next.uses = next.uses.saturating_add(1);
        next
    }

    /// The grant revoked at `now`.
    pub fn revoked(&self, now: OffsetDateTime) -> Grant {
        let mut next = self.clone();
        next.revoked_at.get_or_insert(now);
        next
    }

    /// The grant's id.
    pub fn id(&self) -> GrantId {
        self.id
    }

    /// The tool name or pattern it covers.
    pub fn tool(&self) -> &str {
        &self.tool
    }

    /// The condition on the call it is bound to, if any.
    pub fn constraint(&self) -> Option<&Condition> {
        self.constraint.as_ref()
    }

    /// The args hash it is bound to, if any.
    pub fn args_hash(&self) -> Option<ArgsHash> {
        self.args_hash
    }

    /// Its scope.
    pub fn scope(&self) -> GrantScope {
        self.scope
    }

    /// Who left it.
    pub fn created_by(&self) -> &str {
        &self.created_by
    }

    /// The approval request it was left on.
    pub fn request_id(&self) -> RequestId {
        self.request_id
    }

    /// When it stops covering calls.
    pub fn expires_at(&self) -> OffsetDateTime {
        self.expires_at
    }

    /// How many calls it has covered.
    pub fn uses(&self) -> u32 {
        self.uses
    }

    /// How many calls it may cover at most.
    pub fn max_uses(&self) -> Option<u32> {
        self.max_uses
    }

    /// When it was revoked.
    pub fn revoked_at(&self) -> Option<OffsetDateTime> {
        self.revoked_at
    }
}
