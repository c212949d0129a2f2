//! Standing grants: an approver's "yes, and to calls like this too", bounded in scope,
//! lifetime and uses, and revocable.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::approval::{ApprovalRequest, Approver, RequestId};
use crate::call::{ArgsHash, ToolCall};
use crate::identity::{same_id, same_person, same_tenant};
use crate::policy::{Condition, Decision, Effect, ToolPattern};

/// The longest lifetime a grant may have: ten years.
pub const MAX_GRANT_LIFETIME: Duration = Duration::from_secs(10 * 366 * 24 * 3600);

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

/// The text was not a grant id (a UUID).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a grant id")]
pub struct ParseGrantIdError(String);

impl std::str::FromStr for GrantId {
    type Err = ParseGrantIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s)
            .map(GrantId)
            .map_err(|_| ParseGrantIdError(s.chars().take(64).collect()))
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

    /// Whether the spec can make a grant: a lifetime from one second to
    /// [`MAX_GRANT_LIFETIME`], a valid tool pattern, and at least one use.
    pub fn check(&self) -> Result<(), GrantError> {
        if self.lifetime < Duration::from_secs(1) || self.lifetime > MAX_GRANT_LIFETIME {
            return Err(GrantError::Lifetime {
                secs: self.lifetime.as_secs(),
            });
        }
        if self.max_uses == Some(0) {
            return Err(GrantError::NoUses);
        }
        if let Some(p) = &self.tool {
            ToolPattern::new(p.clone()).map_err(|e| GrantError::Pattern(e.to_string()))?;
        }
        Ok(())
    }
}

/// An approver's agreement to a standing grant, given with their vote and kept on the
/// request until its quorum is met.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct GrantConsent {
    pub(crate) approver: Approver,
    pub(crate) spec: GrantSpec,
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
    /// The lifetime is under a second or over [`MAX_GRANT_LIFETIME`].
    #[error("a grant lives from 1 second to 10 years, not {secs} seconds")]
    Lifetime {
        /// The lifetime asked for, in whole seconds.
        secs: u64,
    },
    /// `max_uses(0)`: a grant that covers nothing.
    #[error("a grant must allow at least one use")]
    NoUses,
    /// Fewer of the request's approvers asked for this grant than its tier's quorum: on
    /// a quorum tier, a grant needs as many of them to agree to it as the request
    /// needed to be approved.
    #[error("{agreed} of the approvers asked for this grant; the tier needs {needed}")]
    Quorum {
        /// Approvers who asked for this same grant.
        agreed: u32,
        /// The tier's quorum.
        needed: u32,
    },
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
    /// Everyone who agreed to the grant (with their roles when they agreed): the
    /// approvers who asked for it with their approval.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    authors: Vec<Approver>,
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
    /// One higher after every change (a use, a revocation); stores compare it to detect
    /// a lost race. Grants kept before it was recorded read as the first version.
    #[serde(default = "first_version")]
    version: u64,
}

/// The version of a new grant, and of one kept before versions were recorded.
fn first_version() -> u64 {
    1
}

impl Grant {
    /// The grant `spec` asks for, left on the approved `request` at `now` by `authors`:
    /// the approvers who asked for it with their approval, the one who completed the
    /// approval last. Refused when the tier forbids grants, the request is not approved,
    /// the spec is out of range ([`GrantSpec::check`]), or fewer authors agreed than the
    /// tier's quorum.
    pub fn from_approval(
        request: &ApprovalRequest,
        authors: &[Approver],
        spec: &GrantSpec,
        now: OffsetDateTime,
    ) -> Result<Grant, GrantError> {
        if !request.grants_allowed() {
            return Err(GrantError::Forbidden);
        }
        if request.stored_state() != crate::approval::RequestState::Approved {
            return Err(GrantError::NotApproved);
        }
        spec.check()?;
        let agreed = u32::try_from(authors.len()).unwrap_or(u32::MAX);
        let Some(last) = authors.last().filter(|_| agreed >= request.quorum()) else {
            return Err(GrantError::Quorum {
                agreed,
                needed: request.quorum(),
            });
        };
        let call = request.call();
        let scope_value = match spec.scope {
            GrantScope::Run => call.run_id().to_owned(),
            GrantScope::User => call
                .requester()
                .ok_or(GrantError::NoScope("user"))?
                .to_owned(),
            GrantScope::Tenant => call
                .tenant()
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
        let lifetime = time::Duration::try_from(spec.lifetime).ok();
        let Some(at) = lifetime.and_then(|l| now.checked_add(l)) else {
            return Err(GrantError::Lifetime {
                secs: spec.lifetime.as_secs(),
            });
        };
        Ok(Grant {
            id: GrantId::new(),
            tool,
            args_hash: spec.same_args.then(|| request.approved_args_hash()),
            constraint: spec.constraint.clone(),
            scope: spec.scope,
            scope_value,
            tenant: call.tenant().map(str::to_owned),
            created_by: last.id().to_owned(),
            authors: authors.to_vec(),
            request_id: request.id(),
            created_at: now,
            // Whole seconds, like the `exp` of the token that each use carries.
            expires_at: at.replace_nanosecond(0).unwrap_or(at),
            max_uses: spec.max_uses,
            uses: 0,
            revoked_at: None,
            version: first_version(),
        })
    }

    /// Whether the grant covers `call` (with `args_hash`) at `now`, when the policy in
    /// force asks for the approval that `decision` describes:
    ///
    /// - live, not used up, same tenant, in scope, the tool matching, the args hash when
    ///   bound, the condition when set;
    /// - not a call that one of its authors asked for (nobody approves their own call,
    ///   through a grant either);
    /// - within its authors' authority now: the decision's tier allows grants, and at
    ///   least its quorum of authors held one of its approver roles (any author, when it
    ///   names none). A grant never carries more authority than the approval that made
    ///   it, and a policy that tightened since it was made is obeyed.
    pub fn covers(
        &self,
        call: &ToolCall,
        args_hash: &ArgsHash,
        decision: &Decision,
        now: OffsetDateTime,
    ) -> bool {
        self.is_live(now)
            && same_tenant(call.tenant(), self.tenant.as_deref())
            && match self.scope {
                GrantScope::Run => call.run_id() == self.scope_value,
                GrantScope::User => call
                    .requester()
                    .is_some_and(|r| same_id(r, &self.scope_value)),
                GrantScope::Tenant => same_tenant(call.tenant(), Some(&self.scope_value)),
            }
            && self.args_hash.is_none_or(|h| h == *args_hash)
            && !call
                .requester()
                .is_some_and(|r| self.author_or_look_alike(r))
            && self.within_authority(decision)
            && self
                .constraint
                .as_ref()
                .is_none_or(|c| matches!(c.eval(call), Ok(true)))
            && ToolPattern::new(self.tool.clone()).is_ok_and(|p| p.matches(call.tool()))
    }

    /// Whether the authors could approve what `decision` asks for.
    fn within_authority(&self, decision: &Decision) -> bool {
        if decision.effect() != Effect::ApprovalRequired || !decision.grants_allowed() {
            return false;
        }
        let roles = decision.approver_roles();
        let holds = |a: &Approver| roles.is_empty() || roles.iter().any(|r| a.has_role(r));
        let able = if self.authors.is_empty() {
            // A grant kept before authors were recorded: its maker, with no roles.
            usize::from(roles.is_empty())
        } else {
            self.authors.iter().filter(|a| holds(a)).count()
        };
        able >= decision.quorum().max(1) as usize
    }

    /// Whether `person` agreed to the grant (its maker, or another author), by their
    /// canonical id (see [`canonical_id`](crate::identity::canonical_id)).
    pub fn is_author(&self, person: &str) -> bool {
        same_id(&self.created_by, person) || self.authors.iter().any(|a| same_id(a.id(), person))
    }

    /// Whether `person` is an author or looks like one: such a person's calls are never
    /// covered.
    fn author_or_look_alike(&self, person: &str) -> bool {
        same_person(&self.created_by, person)
            || self.authors.iter().any(|a| same_person(a.id(), person))
    }

    /// Everyone who agreed to the grant, with the roles they held then.
    pub fn authors(&self) -> &[Approver] {
        &self.authors
    }

    /// The tenant of the call it was left on.
    pub fn tenant(&self) -> Option<&str> {
        self.tenant.as_deref()
    }

    /// Whether the grant can still be used at `now`.
    pub fn is_live(&self, now: OffsetDateTime) -> bool {
        self.revoked_at.is_none()
            && now < self.expires_at
            && self.max_uses.is_none_or(|m| self.uses < m)
    }

    /// The grant after one more use: the next version, which a store writes with
    /// compare-and-set ([`GrantStore::update_grant`](crate::store::GrantStore::update_grant)).
    pub fn used(&self) -> Grant {
        let mut next = self.clone();
        next.uses = next.uses.saturating_add(1);
        next.version = next.version.saturating_add(1);
        next
    }

    /// The grant revoked at `now` (kept revoked at its first revocation): the next
    /// version, which a store writes with compare-and-set.
    pub fn revoked(&self, now: OffsetDateTime) -> Grant {
        let mut next = self.clone();
        next.revoked_at.get_or_insert(now);
        next.version = next.version.saturating_add(1);
        next
    }

    /// The version, one higher after every use and revocation; stores compare it to
    /// detect a lost race (see [`GrantStore`](crate::store::GrantStore)).
    pub fn version(&self) -> u64 {
        self.version
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
