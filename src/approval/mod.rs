//! Approval requests: their states, and the transitions between them as pure functions.
//!
//! Nothing here reads a clock or touches a store: every transition takes `now` and returns
//! the next version of the request, which a store then writes with compare-and-set.

mod approver;
mod shortfall;
mod state;

pub use approver::Approver;
pub use shortfall::ApprovalShortfall;
pub use state::RequestState;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use thiserror::Error;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::call::{ArgsHash, ToolCall};
use crate::grant::{GrantConsent, GrantSpec};
use crate::policy::{Decision, PolicyVersion, RuleId, TierName};
use crate::token::{ApprovalToken, Claims};

/// The id of an approval request; also the idempotency key handed to the executor.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RequestId(Uuid);

impl RequestId {
    /// A fresh random id.
    pub fn new() -> RequestId {
        RequestId(Uuid::new_v4())
    }

    /// The id whose 128 bits are `n` (for fixtures and tests; real ids are random).
    pub const fn from_u128(n: u128) -> RequestId {
        RequestId(Uuid::from_u128(n))
    }

    /// The id as 128 bits.
    pub const fn as_u128(&self) -> u128 {
        self.0.as_u128()
    }
}

impl Default for RequestId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RequestId({self})")
    }
}

/// The text was not a request id (a UUID).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("`{0}` is not a request id")]
pub struct ParseRequestIdError(String);

impl FromStr for RequestId {
    type Err = ParseRequestIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s)
            .map(RequestId)
            .map_err(|_| ParseRequestIdError(s.chars().take(64).collect()))
    }
}

/// Why a transition was refused. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum TransitionError {
    /// The request's time ran out: the decision TTL for a pending request, the approval
    /// TTL for an approved one.
    #[error("request expired at {}", crate::clock::Rfc3339Display(*expired_at))]
    Expired {
        /// When it expired.
        expired_at: OffsetDateTime,
    },
    /// The request is not in a state that allows the transition.
    #[error("request is `{state}`, not `{expected}`")]
    WrongState {
        /// The state it is in (with expiry applied).
        state: RequestState,
        /// The state the transition needs.
        expected: RequestState,
    },
    /// The approver asked for the call: nobody approves their own request.
    #[error("`{approver}` asked for this call and cannot approve it")]
    SelfApproval {
        /// The approver.
        approver: String,
    },
    /// The approver belongs to another tenant than the call.
    #[error("`{approver}` belongs to another tenant than this call")]
    WrongTenant {
        /// The approver.
        approver: String,
    },
    /// The request's tier lets only certain roles approve, and the approver has none.
    #[error("`{approver}` holds none of the roles that may approve this request ({})", .needed.join(", "))]
    MissingRole {
        /// The approver.
        approver: String,
        /// The roles that may approve.
        needed: Vec<String>,
    },
    /// The id is the gate's own ([`GATE_ACTOR`]): no person acts under it, so the trail
    /// can tell the gate's own withdrawals from people's.
    #[error("`{approver}` is the gate's own name and cannot act at the desk")]
    ReservedId {
        /// The id.
        approver: String,
    },
    /// The approver approved this request already; a quorum needs distinct people.
    #[error("`{approver}` approved this request already")]
    AlreadyApproved {
        /// The approver.
        approver: String,
    },
    /// The approver's id or tenant is no valid id (empty, padded with spaces, with a
    /// control or invisible character, mixing scripts): nobody decides under it.
    #[error("the approver's {what} is refused: {source}")]
    InvalidIdentity {
        /// `id` or `tenant`.
        what: &'static str,
        /// What is wrong with it.
        #[source]
        source: crate::identity::IdError,
    },
}

/// Refuses an approver whose id or tenant is no valid id.
fn check_identity(approver: &Approver) -> Result<(), TransitionError> {
    let fields = [("id", Some(approver.id())), ("tenant", approver.tenant())];
    for (what, value) in fields {
        if let Some(source) = value.and_then(crate::identity::id_problem) {
            return Err(TransitionError::InvalidIdentity { what, source });
        }
    }
    Ok(())
}

/// The name under which the gate itself acts on the trail (withdrawing a request whose
/// filing its audit sink refused, or whose approval the policy in force no longer
/// accepts). Reserved: no person decides, cancels or settles under it.
pub const GATE_ACTOR: &str = "approval-gate";

fn check_not_reserved(person: &Approver) -> Result<(), TransitionError> {
    if person.id() == GATE_ACTOR {
        return Err(TransitionError::ReservedId {
            approver: person.id().to_owned(),
        });
    }
    Ok(())
}

/// What a person found out about a request left in doubt; see
/// [`ApprovalRequest::settle`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Settlement {
    /// The tool ran and its write happened.
    Ran,
    /// The tool ran and failed.
    Failed,
    /// The tool never ran (or its write was undone): this approval will not run it.
    NotRun,
}

impl Settlement {
    /// The name on the trail: `ran`, `failed`, `not_run`.
    pub fn as_str(self) -> &'static str {
        match self {
            Settlement::Ran => "ran",
            Settlement::Failed => "failed",
            Settlement::NotRun => "not_run",
        }
    }
}

/// One call that a policy said needs a person's approval, and everything that happened
/// to it since.
///
/// A request moves through [`RequestState`]s; each method below that changes it returns
/// the next version (with [`version`](Self::version) one higher) and leaves `self` as it
/// was, so a store can write it with compare-and-set.
///
/// Cheap to clone: the versions of a request share what was filed (the call and its
/// arguments, the policy's verdict, the preview) and what a transition did not change.
#[derive(Clone)]
pub struct ApprovalRequest {
    id: RequestId,
    version: u64,
    state: RequestState,
    approved_args_hash: Option<ArgsHash>,
    decided_at: Option<OffsetDateTime>,
    approval_expires_at: Option<OffsetDateTime>,
    finished_at: Option<OffsetDateTime>,
    filed: Arc<Filed>,
    /// `None` until a transition sets one of its fields: a pending request has none.
    progress: Option<Arc<Progress>>,
}

/// What a request was filed with; no transition changes it.
#[derive(Clone)]
struct Filed {
    call: ToolCall,
    args_hash: ArgsHash,
    rule_ids: Vec<RuleId>,
    reason: Option<String>,
    tier: Option<TierName>,
    preview: Option<String>,
    shown_args: Option<Value>,
    policy_version: PolicyVersion,
    created_at: OffsetDateTime,
    expires_at: OffsetDateTime,
    approval_ttl_secs: u64,
    approver_roles: Vec<String>,
    quorum: u32,
    grants_allowed: bool,
}

/// What the transitions record that is not `Copy`; copied on write.
#[derive(Clone, Default)]
struct Progress {
    approvers: Vec<String>,
    /// An `Arc` of its own, so that copying the rest never copies the arguments.
    approved_args: Option<Arc<Value>>,
    changed_fields: Vec<String>,
    decided_by: Option<String>,
    feedback: Option<String>,
    token: Option<ApprovalToken>,
    /// Who made the edit that `approved_args` holds.
    edited_by: Option<String>,
    /// The preview and redacted arguments of the edited call, set with the edit.
    edited_preview: Option<String>,
    edited_shown_args: Option<Arc<Value>>,
    /// The approvers who asked for a standing grant with their vote, and which.
    grant_consents: Vec<GrantConsent>,
}

/// The progress of a request no transition touched yet.
static NO_PROGRESS: Progress = Progress {
    approvers: Vec::new(),
    approved_args: None,
    changed_fields: Vec::new(),
    decided_by: None,
    feedback: None,
    token: None,
    edited_by: None,
    edited_preview: None,
    edited_shown_args: None,
    grant_consents: Vec::new(),
};

impl Progress {
    fn is_empty(&self) -> bool {
        self.approvers.is_empty()
            && self.approved_args.is_none()
            && self.changed_fields.is_empty()
            && self.decided_by.is_none()
            && self.feedback.is_none()
            && self.token.is_none()
            && self.edited_by.is_none()
            && self.edited_preview.is_none()
            && self.edited_shown_args.is_none()
            && self.grant_consents.is_empty()
    }
}

/// The serialized form of an [`ApprovalRequest`], borrowed from it: the fields in their
/// order, as the request was derived before its parts were shared. Stored rows depend on
/// it; change it only with a migration.
#[derive(Serialize)]
#[serde(rename = "ApprovalRequest")]
struct RequestRef<'a> {
    id: RequestId,
    version: u64,
    state: RequestState,
    call: &'a ToolCall,
    args_hash: ArgsHash,
    rule_ids: &'a [RuleId],
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tier: Option<&'a TierName>,
    #[serde(skip_serializing_if = "Option::is_none")]
    preview: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    shown_args: Option<&'a Value>,
    policy_version: &'a PolicyVersion,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    expires_at: OffsetDateTime,
    approval_ttl_secs: u64,
    #[serde(skip_serializing_if = "no_strings")]
    approver_roles: &'a [String],
    quorum: u32,
    grants_allowed: bool,
    #[serde(skip_serializing_if = "no_strings")]
    approvers: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    approved_args: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    approved_args_hash: Option<ArgsHash>,
    #[serde(skip_serializing_if = "no_strings")]
    changed_fields: &'a [String],
    #[serde(
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    decided_at: Option<OffsetDateTime>,
    #[serde(skip_serializing_if = "Option::is_none")]
    decided_by: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    feedback: Option<&'a str>,
    #[serde(
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    approval_expires_at: Option<OffsetDateTime>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<&'a ApprovalToken>,
    #[serde(
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    finished_at: Option<OffsetDateTime>,
    #[serde(skip_serializing_if = "Option::is_none")]
    edited_by: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    edited_preview: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    edited_shown_args: Option<&'a Value>,
    #[serde(skip_serializing_if = "<[GrantConsent]>::is_empty")]
    grant_consents: &'a [GrantConsent],
}

fn no_strings(v: &&[String]) -> bool {
    v.is_empty()
}

/// The serialized form of an [`ApprovalRequest`], owned, to read one back; the same
/// fields as [`RequestRef`].
#[derive(Deserialize)]
#[serde(rename = "ApprovalRequest")]
struct RequestRepr {
    id: RequestId,
    version: u64,
    state: RequestState,
    call: ToolCall,
    args_hash: ArgsHash,
    rule_ids: Vec<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    tier: Option<String>,
    #[serde(default)]
    preview: Option<String>,
    #[serde(default)]
    shown_args: Option<Value>,
    policy_version: PolicyVersion,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    expires_at: OffsetDateTime,
    approval_ttl_secs: u64,
    #[serde(default)]
    approver_roles: Vec<String>,
    #[serde(default = "one")]
    quorum: u32,
    #[serde(default = "yes")]
    grants_allowed: bool,
    #[serde(default)]
    approvers: Vec<String>,
    #[serde(default)]
    approved_args: Option<Value>,
    #[serde(default)]
    approved_args_hash: Option<ArgsHash>,
    #[serde(default)]
    changed_fields: Vec<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    decided_at: Option<OffsetDateTime>,
    #[serde(default)]
    decided_by: Option<String>,
    #[serde(default)]
    feedback: Option<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    approval_expires_at: Option<OffsetDateTime>,
    #[serde(default)]
    token: Option<ApprovalToken>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    finished_at: Option<OffsetDateTime>,
    #[serde(default)]
    edited_by: Option<String>,
    #[serde(default)]
    edited_preview: Option<String>,
    #[serde(default)]
    edited_shown_args: Option<Value>,
    #[serde(default)]
    grant_consents: Vec<GrantConsent>,
}

impl Serialize for ApprovalRequest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let f = &*self.filed;
        let p = self.progress();
        RequestRef {
            id: self.id,
            version: self.version,
            state: self.state,
            call: &f.call,
            args_hash: f.args_hash,
            rule_ids: &f.rule_ids,
            reason: f.reason.as_deref(),
            tier: f.tier.as_ref(),
            preview: f.preview.as_deref(),
            shown_args: f.shown_args.as_ref(),
            policy_version: &f.policy_version,
            created_at: f.created_at,
            expires_at: f.expires_at,
            approval_ttl_secs: f.approval_ttl_secs,
            approver_roles: &f.approver_roles,
            quorum: f.quorum,
            grants_allowed: f.grants_allowed,
            approvers: &p.approvers,
            approved_args: p.approved_args.as_deref(),
            approved_args_hash: self.approved_args_hash,
            changed_fields: &p.changed_fields,
            decided_at: self.decided_at,
            decided_by: p.decided_by.as_deref(),
            feedback: p.feedback.as_deref(),
            approval_expires_at: self.approval_expires_at,
            token: p.token.as_ref(),
            finished_at: self.finished_at,
            edited_by: p.edited_by.as_deref(),
            edited_preview: p.edited_preview.as_deref(),
            edited_shown_args: p.edited_shown_args.as_deref(),
            grant_consents: &p.grant_consents,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for ApprovalRequest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let r = RequestRepr::deserialize(d)?;
        let progress = Progress {
            approvers: r.approvers,
            approved_args: r.approved_args.map(Arc::new),
            changed_fields: r.changed_fields,
            decided_by: r.decided_by,
            feedback: r.feedback,
            token: r.token,
            edited_by: r.edited_by,
            edited_preview: r.edited_preview,
            edited_shown_args: r.edited_shown_args.map(Arc::new),
            grant_consents: r.grant_consents,
        };
        Ok(ApprovalRequest {
            id: r.id,
            version: r.version,
            state: r.state,
            approved_args_hash: r.approved_args_hash,
            decided_at: r.decided_at,
            approval_expires_at: r.approval_expires_at,
            finished_at: r.finished_at,
            filed: Arc::new(Filed {
                call: r.call,
                args_hash: r.args_hash,
                rule_ids: r.rule_ids.into_iter().map(RuleId::trusted).collect(),
                reason: r.reason,
                tier: r.tier.map(TierName::trusted),
                preview: r.preview,
                shown_args: r.shown_args,
                policy_version: r.policy_version,
                created_at: r.created_at,
                expires_at: r.expires_at,
                approval_ttl_secs: r.approval_ttl_secs,
                approver_roles: r.approver_roles,
                quorum: r.quorum,
                grants_allowed: r.grants_allowed,
            }),
            progress: (!progress.is_empty()).then(|| Arc::new(progress)),
        })
    }
}

/// The same text as the `Debug` derived before the parts were shared: every field, in the
/// serialized order.
impl fmt::Debug for ApprovalRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = &*self.filed;
        let p = self.progress();
        f.debug_struct("ApprovalRequest")
            .field("id", &self.id)
            .field("version", &self.version)
            .field("state", &self.state)
            .field("call", &d.call)
            .field("args_hash", &d.args_hash)
            .field("rule_ids", &d.rule_ids)
            .field("reason", &d.reason)
            .field("tier", &d.tier)
            .field("preview", &d.preview)
            .field("shown_args", &d.shown_args)
            .field("policy_version", &d.policy_version)
            .field("created_at", &d.created_at)
            .field("expires_at", &d.expires_at)
            .field("approval_ttl_secs", &d.approval_ttl_secs)
            .field("approver_roles", &d.approver_roles)
            .field("quorum", &d.quorum)
            .field("grants_allowed", &d.grants_allowed)
            .field("approvers", &p.approvers)
            .field("approved_args", &p.approved_args.as_deref())
            .field("approved_args_hash", &self.approved_args_hash)
            .field("changed_fields", &p.changed_fields)
            .field("decided_at", &self.decided_at)
            .field("decided_by", &p.decided_by)
            .field("feedback", &p.feedback)
            .field("approval_expires_at", &self.approval_expires_at)
            .field("token", &p.token)
            .field("finished_at", &self.finished_at)
            .field("edited_by", &p.edited_by)
            .field("edited_preview", &p.edited_preview)
            .field("edited_shown_args", &p.edited_shown_args.as_deref())
            .field("grant_consents", &p.grant_consents)
            .finish()
    }
}

impl ApprovalRequest {
    /// Files a request for `call`, as `decision` asked, at `now`.
    ///
    /// The request is pending until `now + decision.decision_ttl()`.
    pub fn new(
        id: RequestId,
        call: ToolCall,
        args_hash: ArgsHash,
        decision: &Decision,
        policy_version: PolicyVersion,
        now: OffsetDateTime,
    ) -> Self {
        ApprovalRequest {
            id,
            version: 1,
            state: RequestState::Pending,
            approved_args_hash: None,
            decided_at: None,
            approval_expires_at: None,
            finished_at: None,
            filed: Arc::new(Filed {
                call,
                args_hash,
                rule_ids: decision
                    .rule_ids()
                    .iter()
                    .map(|r| RuleId::trusted(r.as_ref()))
                    .collect(),
                reason: decision.reason().map(str::to_owned),
                tier: decision.tier().map(TierName::trusted),
                preview: None,
                shown_args: None,
                policy_version,
                created_at: now,
                expires_at: crate::clock::saturating_add(now, decision.decision_ttl()),
                approval_ttl_secs: decision.approval_ttl().as_secs(),
                approver_roles: decision
                    .approver_roles()
                    .iter()
                    .map(|r| r.to_string())
                    .collect(),
                quorum: decision.quorum().max(1),
                grants_allowed: decision.grants_allowed(),
            }),
            progress: None,
        }
    }

    /// What the transitions recorded so far.
    fn progress(&self) -> &Progress {
        self.progress.as_deref().unwrap_or(&NO_PROGRESS)
    }

    /// What the transitions recorded, to change: copied first if another version shares it.
    fn progress_mut(&mut self) -> &mut Progress {
        Arc::make_mut(self.progress.get_or_insert_with(Default::default))
    }

    /// Sets what a person is shown: the rendered `preview` and the arguments with the
    /// fields the config marks secret redacted (see [`Policy::preview`](crate::policy::Policy::preview)
    /// and [`Policy::redact`](crate::policy::Policy::redact)).
    ///
    /// When `shown_args` are the call's own arguments (nothing was redacted), the request
    /// keeps, serializes and stores one copy of them, not two.
    pub fn with_display(self, preview: String, shown_args: Value) -> Self {
        let redacted = (shown_args != *self.filed.call.args()).then_some(shown_args);
        self.displaying(preview, redacted)
    }

    /// [`with_display`](Self::with_display) for a caller that knows whether anything was
    /// redacted: `redacted` is `None` when the call's arguments are shown as they are.
    pub(crate) fn displaying(mut self, preview: String, redacted: Option<Value>) -> Self {
        let filed = Arc::make_mut(&mut self.filed);
        filed.preview = Some(preview);
        filed.shown_args = redacted;
        self
    }

    /// The preview of the action for the person deciding, rendered from the rule's
    /// template over the redacted arguments: of the arguments that will run, so after an
    /// approver's edit, of the edited ones (see [`is_edited`](Self::is_edited),
    /// [`edited_by`](Self::edited_by), [`changed_fields`](Self::changed_fields); the
    /// model's own is [`filed_preview`](Self::filed_preview)).
    pub fn preview(&self) -> Option<&str> {
        let p = self.progress();
        match &p.approved_args {
            Some(_) => p
                .edited_preview
                .as_deref()
                .or(self.filed.preview.as_deref()),
            None => self.filed.preview.as_deref(),
        }
    }

    /// The preview of the call as the model proposed it, before any edit.
    pub fn filed_preview(&self) -> Option<&str> {
        self.filed.preview.as_deref()
    }

    /// The arguments as a person may see them, secret fields redacted: those that will
    /// run, so after an approver's edit, the edited ones. Show these, never
    /// [`call().args()`](ToolCall::args), on an approval surface, with
    /// [`approved_args_hash`](Self::approved_args_hash) as their hash.
    pub fn shown_args(&self) -> &Value {
        let p = self.progress();
        // A request edited before edits kept their display shows what it showed then.
        if let Some(edited) = p
            .approved_args
            .as_ref()
            .filter(|_| p.edited_preview.is_some())
        {
            return p.edited_shown_args.as_deref().unwrap_or(edited);
        }
        self.filed
            .shown_args
            .as_ref()
            .unwrap_or(self.filed.call.args())
    }

    /// Who edited the arguments that will run, when an approver did.
    pub fn edited_by(&self) -> Option<&str> {
        self.progress()
            .approved_args
            .as_ref()
            .and(self.progress().edited_by.as_deref())
    }

    /// What an edit shows a person: the edited call's preview and its arguments with
    /// secrets redacted (`None` when nothing was redacted). Part of the edit's transition.
    pub(crate) fn displaying_edit(mut self, preview: String, redacted: Option<Value>) -> Self {
        let progress = self.progress_mut();
        if progress.approved_args.is_some() {
            progress.edited_preview = Some(preview);
            progress.edited_shown_args = redacted.map(Arc::new);
        }
        self
    }

    /// The approvers who asked for a standing grant with their vote so far, with the
    /// grant each asked for.
    pub(crate) fn grant_consents(&self) -> &[GrantConsent] {
        &self.progress().grant_consents
    }

    /// Records that `approver`, voting now, asks for the grant `spec`.
    pub(crate) fn with_grant_consent(mut self, approver: &Approver, spec: &GrantSpec) -> Self {
        self.progress_mut().grant_consents.push(GrantConsent {
            approver: approver.clone(),
            spec: spec.clone(),
        });
        self
    }

    /// The request's id.
    pub fn id(&self) -> RequestId {
        self.id
    }

    /// The version, one higher after every transition; stores compare it to detect a lost
    /// race.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The state as stored, without expiry applied; see [`state_at`](Self::state_at).
    pub fn stored_state(&self) -> RequestState {
        self.state
    }

    /// The state at `now`: a pending request past its decision TTL, or an approved one past
    /// its approval TTL, is [`RequestState::Expired`] whether or not anything recorded it.
    pub fn state_at(&self, now: OffsetDateTime) -> RequestState {
        match self.state {
            RequestState::Pending if now >= self.filed.expires_at => RequestState::Expired,
            RequestState::Approved if self.approval_expires_at.is_some_and(|t| now >= t) => {
                RequestState::Expired
            }
            s => s,
        }
    }

    /// The call as filed.
    pub fn call(&self) -> &ToolCall {
        &self.filed.call
    }

    /// The hash of the arguments the request is bound to.
    pub fn args_hash(&self) -> ArgsHash {
        self.filed.args_hash
    }

    /// The ids of the rules that asked for approval.
    pub fn rule_ids(&self) -> &[RuleId] {
        &self.filed.rule_ids
    }

    /// The policy's reason for asking.
    pub fn reason(&self) -> Option<&str> {
        self.filed.reason.as_deref()
    }

    /// The risk tier.
    pub fn tier(&self) -> Option<&TierName> {
        self.filed.tier.as_ref()
    }

    /// The version of the policy that asked for approval.
    pub fn policy_version(&self) -> &PolicyVersion {
        &self.filed.policy_version
    }

    /// When the request was filed.
    pub fn created_at(&self) -> OffsetDateTime {
        self.filed.created_at
    }

    /// When a pending request expires (its decision TTL).
    pub fn expires_at(&self) -> OffsetDateTime {
        self.filed.expires_at
    }

    /// How long an approval may wait to be used.
    pub fn approval_ttl(&self) -> Duration {
        Duration::from_secs(self.filed.approval_ttl_secs)
    }

    /// When an approval of this request stops being usable, once approved.
    pub fn approval_expires_at(&self) -> Option<OffsetDateTime> {
        self.approval_expires_at
    }

    /// The instant the request expired or will expire, in its current state.
    pub fn deadline(&self) -> Option<OffsetDateTime> {
        match self.state {
            RequestState::Pending => Some(self.filed.expires_at),
            RequestState::Approved => self.approval_expires_at,
            _ => None,
        }
    }

    /// When the request timed out or times out: the approval TTL's end once approved,
    /// the decision TTL's end before.
    pub fn timeout_at(&self) -> OffsetDateTime {
        self.approval_expires_at.unwrap_or(self.filed.expires_at)
    }

    /// Who approved it so far (all of them once approved).
    pub fn approvers(&self) -> &[String] {
        &self.progress().approvers
    }

    /// The roles that may approve it (from its tier); empty means any approver.
    pub fn approver_roles(&self) -> &[String] {
        &self.filed.approver_roles
    }

    /// Whether its tier lets an approver leave a standing grant with the approval.
    pub fn grants_allowed(&self) -> bool {
        self.filed.grants_allowed
    }

    /// How many distinct approvers it needs.
    pub fn quorum(&self) -> u32 {
        self.filed.quorum
    }

    /// The arguments the approval binds to: the edited ones if an approver edited them,
    /// else the call's own.
    pub fn approved_args(&self) -> &Value {
        self.progress()
            .approved_args
            .as_deref()
            .unwrap_or(self.filed.call.args())
    }

    /// The hash of [`approved_args`](Self::approved_args).
    pub fn approved_args_hash(&self) -> ArgsHash {
        self.approved_args_hash.unwrap_or(self.filed.args_hash)
    }

    /// Whether an approver changed the arguments.
    pub fn is_edited(&self) -> bool {
        self.progress().approved_args.is_some()
    }

    /// The argument fields an approver changed (`args.to`, …; `args` when the arguments
    /// are not an object); empty unless edited.
    pub fn changed_fields(&self) -> &[String] {
        &self.progress().changed_fields
    }

    /// When it was approved, denied, cancelled or timed out.
    pub fn decided_at(&self) -> Option<OffsetDateTime> {
        self.decided_at
    }

    /// Who denied or cancelled it.
    pub fn decided_by(&self) -> Option<&str> {
        self.progress().decided_by.as_deref()
    }

    /// The message a person left with a denial or cancellation.
    pub fn feedback(&self) -> Option<&str> {
        self.progress().feedback.as_deref()
    }

    /// The approval token, once approved.
    pub fn token(&self) -> Option<&ApprovalToken> {
        self.progress().token.as_ref()
    }

    /// When the tool finished (as `Executed` or `Failed`).
    pub fn finished_at(&self) -> Option<OffsetDateTime> {
        self.finished_at
    }

    /// Time left to decide at `now`, zero once expired; `None` unless pending.
    pub fn remaining(&self, now: OffsetDateTime) -> Option<Duration> {
        (self.state == RequestState::Pending)
            .then(|| Duration::try_from(self.filed.expires_at - now).unwrap_or(Duration::ZERO))
    }

    fn next(&self, state: RequestState) -> ApprovalRequest {
        let mut next = self.clone();
        next.version += 1;
        next.state = state;
        next
    }

    fn expect(&self, expected: RequestState, now: OffsetDateTime) -> Result<(), TransitionError> {
        match self.state_at(now) {
            s if s == expected => Ok(()),
            RequestState::Expired if self.state != RequestState::Expired => {
                Err(TransitionError::Expired {
                    expired_at: self.timeout_at(),
                })
            }
            state => Err(TransitionError::WrongState { state, expected }),
        }
    }

    /// Records `approver`'s approval of a pending request.
    ///
    /// Refused when the approver asked for the call, belongs to another tenant, lacks
    /// every role the tier names, or approved already. The request becomes `Approved` once
    /// [`quorum`](Self::quorum) distinct approvers have approved; until then it stays
    /// `Pending` with the approvers so far. An approved request needs its token, which
    /// [`Desk::approve`](crate::desk::Desk::approve) signs, before it can be used.
    pub fn approve(
        &self,
        approver: &Approver,
        now: OffsetDateTime,
    ) -> Result<ApprovalRequest, TransitionError> {
        self.expect(RequestState::Pending, now)?;
        self.check_approver(approver)?;
        let voted = |a: &String| crate::identity::same_person(a, approver.id());
        if self.approvers().iter().any(voted) {
            return Err(TransitionError::AlreadyApproved {
                approver: approver.id().to_owned(),
            });
        }
        let mut next = self.next(RequestState::Pending);
        let approvers = &mut next.progress_mut().approvers;
        approvers.push(approver.id().to_owned());
        if approvers.len() >= self.quorum() as usize {
            next.state = RequestState::Approved;
            next.decided_at = Some(now);
            next.approval_expires_at = Some(self.approval_expiry(now));
        }
        Ok(next)
    }

    /// Records `approver`'s approval with changed arguments: the approval binds to
    /// `args` (whose hash is `args_hash`), and `resume` runs those.
    ///
    /// Approvals given before the edit were for other arguments, so they no longer count:
    /// the editor is the first approver of the edited call. An edit to the arguments
    /// already approved (the same hash) keeps their votes, so it is refused as
    /// [`AlreadyApproved`](TransitionError::AlreadyApproved) from someone who voted.
    pub fn approve_with_edits(
        &self,
        approver: &Approver,
        args: Value,
        args_hash: ArgsHash,
        now: OffsetDateTime,
    ) -> Result<ApprovalRequest, TransitionError> {
        self.expect(RequestState::Pending, now)?;
        self.check_approver(approver)?;
        let mut base = self.clone();
        let changed = changed_fields(self.call().args(), &args);
        let edited = args_hash != self.args_hash();
        let rebinds = args_hash != self.approved_args_hash();
        let progress = base.progress_mut();
        if rebinds {
            progress.approvers.clear();
            progress.grant_consents.clear();
            progress.edited_preview = None;
            progress.edited_shown_args = None;
            progress.edited_by = edited.then(|| approver.id().to_owned());
        }
        progress.changed_fields = changed;
        progress.approved_args = edited.then(|| Arc::new(args));
        base.approved_args_hash = edited.then_some(args_hash);
        let mut next = base.approve(approver, now)?;
        next.version = self.version + 1;
        Ok(next)
    }

    /// Nobody approves a call they asked for, under their id or one that looks like it.
    fn check_approver(&self, approver: &Approver) -> Result<(), TransitionError> {
        check_not_reserved(approver)?;
        check_identity(approver)?;
        let requester = self.call().requester();
        if requester.is_some_and(|r| crate::identity::same_person(r, approver.id())) {
            return Err(TransitionError::SelfApproval {
                approver: approver.id().to_owned(),
            });
        }
        self.check_scope(approver)
    }

    /// Identity, tenant (the same canonical id) and role: who may decide this request at
    /// all, approving or denying.
    fn check_scope(&self, approver: &Approver) -> Result<(), TransitionError> {
        check_identity(approver)?;
        let id = || approver.id().to_owned();
        self.check_tenant(approver)?;
        let roles = self.approver_roles();
        if !roles.is_empty() && !roles.iter().any(|r| approver.has_role(r)) {
            return Err(TransitionError::MissingRole {
                approver: id(),
                needed: roles.to_vec(),
            });
        }
        Ok(())
    }

    /// Whether `person` may decide this request (deny it, cancel it, settle it, revoke
    /// the grants it left): not the gate's own name, of the call's tenant, and holding a
    /// role of its tier when the tier names roles. Approving asks more (see
    /// [`approve`](Self::approve)).
    pub fn may_decide(&self, person: &Approver) -> Result<(), TransitionError> {
        check_not_reserved(person)?;
        self.check_scope(person)
    }

    /// Whether `person` belongs to the call's tenant.
    fn check_tenant(&self, person: &Approver) -> Result<(), TransitionError> {
        if !crate::identity::same_tenant(self.call().tenant(), person.tenant()) {
            return Err(TransitionError::WrongTenant {
                approver: person.id().to_owned(),
            });
        }
        Ok(())
    }

    /// The claims of this request's approval token, approved at `now`: bound to the
    /// approved args hash and naming every approver so far.
    pub(crate) fn claims(&self, now: OffsetDateTime) -> Claims {
        Claims {
            jti: self.id.to_string(),
            run_id: self.call().run_id().to_owned(),
            call_id: self.call().call_id().to_owned(),
            tool: self.call().tool().to_owned(),
            args_hash: self.approved_args_hash(),
            policy_version: self.policy_version().to_string(),
            approvers: self.approvers().to_vec(),
            iat: now.unix_timestamp(),
            exp: self.approval_expiry(now).unix_timestamp(),
        }
    }

    /// Attaches the signed token of an approved request (see
    /// [`Keyring::sign`](crate::token::Keyring::sign)); part of the same transition as the
    /// approval that completed the quorum.
    pub(crate) fn with_token(mut self, token: ApprovalToken) -> ApprovalRequest {
        self.progress_mut().token = Some(token);
        self
    }

    /// When an approval given at `now` would expire: after the approval TTL, cut to the
    /// whole second, since the token's `exp` counts whole seconds and must neither
    /// outlive the approval nor end before it.
    pub(crate) fn approval_expiry(&self, now: OffsetDateTime) -> OffsetDateTime {
        let at = crate::clock::saturating_add(now, self.approval_ttl());
        at.replace_nanosecond(0).unwrap_or(at)
    }

    /// Denies a pending request, with an optional message for the agent. One denial ends
    /// it, whatever its quorum. Refused for an approver of another tenant or without the
    /// tier's roles.
    pub fn deny(
        &self,
        approver: &Approver,
        feedback: Option<String>,
        now: OffsetDateTime,
    ) -> Result<ApprovalRequest, TransitionError> {
        self.expect(RequestState::Pending, now)?;
        check_not_reserved(approver)?;
        self.check_scope(approver)?;
        let mut next = self.next(RequestState::Denied);
        next.decided_at = Some(now);
        let progress = next.progress_mut();
        progress.decided_by = Some(approver.id().to_owned());
        progress.feedback = feedback;
        Ok(next)
    }

    /// Cancels a pending or approved (not yet used) request as `by`: the person who asked
    /// for the call, or someone who may decide it (of its tenant, with a role of its tier
    /// when the tier names roles). Refused for anyone else
    /// ([`WrongTenant`](TransitionError::WrongTenant),
    /// [`MissingRole`](TransitionError::MissingRole)) and for the gate's own name
    /// ([`ReservedId`](TransitionError::ReservedId)).
    pub fn cancel(
        &self,
        by: &Approver,
        reason: Option<String>,
        now: OffsetDateTime,
    ) -> Result<ApprovalRequest, TransitionError> {
        self.expect_open(now)?;
        check_not_reserved(by)?;
        check_identity(by)?;
        if self.is_requester(by) {
            self.check_tenant(by)?;
        } else {
            self.check_scope(by)?;
        }
        Ok(self.cancelled(by.id(), reason, now))
    }

    /// Withdrawn by the gate itself (recorded as cancelled by [`GATE_ACTOR`]): a request
    /// whose filing its audit sink refused, or whose approval the policy in force no
    /// longer accepts.
    pub(crate) fn withdraw(
        &self,
        reason: String,
        now: OffsetDateTime,
    ) -> Result<ApprovalRequest, TransitionError> {
        self.expect_open(now)?;
        Ok(self.cancelled(GATE_ACTOR, Some(reason), now))
    }

    /// Pending or approved, not yet used, at `now`.
    fn expect_open(&self, now: OffsetDateTime) -> Result<(), TransitionError> {
        if self.expect(RequestState::Approved, now).is_err() {
            self.expect(RequestState::Pending, now)?;
        }
        Ok(())
    }

    fn cancelled(&self, by: &str, reason: Option<String>, now: OffsetDateTime) -> Self {
        let mut next = self.next(RequestState::Cancelled);
        next.decided_at = Some(now);
        let progress = next.progress_mut();
        progress.decided_by = Some(by.to_owned());
        progress.feedback = reason;
        next
    }

    /// Whether `person` is the one who asked for the call.
    fn is_requester(&self, person: &Approver) -> bool {
        self.call()
            .requester()
            .is_some_and(|r| crate::identity::same_id(r, person.id()))
    }

    /// Settles a request left in doubt (`Executing`: its `resume` was dropped or its
    /// process died while the tool ran) as `by`, who may decide it (tenant and tier
    /// roles, as for a denial), with what they found out: it ran
    /// ([`Executed`](RequestState::Executed)), it failed
    /// ([`Failed`](RequestState::Failed)), or it did not run
    /// ([`Cancelled`](RequestState::Cancelled): it never runs on this approval; a new
    /// call files a new request). Settling never runs anything.
    pub fn settle(
        &self,
        by: &Approver,
        outcome: Settlement,
        note: Option<String>,
        now: OffsetDateTime,
    ) -> Result<ApprovalRequest, TransitionError> {
        self.expect(RequestState::Executing, now)?;
        check_not_reserved(by)?;
        self.check_scope(by)?;
        let mut next = self.next(match outcome {
            Settlement::Ran => RequestState::Executed,
            Settlement::Failed => RequestState::Failed,
            Settlement::NotRun => RequestState::Cancelled,
        });
        next.finished_at = Some(now);
        let progress = next.progress_mut();
        progress.decided_by = Some(by.id().to_owned());
        progress.feedback = note;
        Ok(next)
    }

    /// Records that the request's time ran out. Refused unless it is due at `now`.
    pub fn expire(&self, now: OffsetDateTime) -> Result<ApprovalRequest, TransitionError> {
        if self.state_at(now) != RequestState::Expired || self.state == RequestState::Expired {
            return Err(TransitionError::WrongState {
                state: self.state_at(now),
                expected: RequestState::Expired,
            });
        }
        let mut next = self.next(RequestState::Expired);
        if next.decided_at.is_none() {
            next.decided_at = Some(self.timeout_at());
        }
        Ok(next)
    }

    /// Claims an approved request for execution: recorded before the tool runs, so a
    /// crash leaves it visibly in doubt and it never runs again on its own.
    pub fn claim(&self, now: OffsetDateTime) -> Result<ApprovalRequest, TransitionError> {
        self.expect(RequestState::Approved, now)?;
        Ok(self.next(RequestState::Executing))
    }

    /// Records the tool's result: `Executed` when it succeeded, `Failed` when not.
    pub fn finish(
        &self,
        succeeded: bool,
        now: OffsetDateTime,
    ) -> Result<ApprovalRequest, TransitionError> {
        self.expect(RequestState::Executing, now)?;
        let mut next = self.next(if succeeded {
            RequestState::Executed
        } else {
            RequestState::Failed
        });
        next.finished_at = Some(now);
        Ok(next)
    }

    /// The same content as `previous`, as the version after this one: used to undo a
    /// transition whose audit record could not be written.
    pub(crate) fn revert_to(&self, previous: &ApprovalRequest) -> ApprovalRequest {
        let mut reverted = previous.clone();
        reverted.version = self.version + 1;
        reverted
    }
}

fn one() -> u32 {
    1
}

fn yes() -> bool {
    true
}

/// The fields of `original` that `edited` changes, as `args.KEY`; `args` when either is
/// not an object.
fn changed_fields(original: &Value, edited: &Value) -> Vec<String> {
    match (original, edited) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a
                .keys()
                .chain(b.keys())
                .filter(|k| a.get(*k) != b.get(*k))
                .collect();
            keys.sort();
            keys.dedup();
            keys.into_iter().map(|k| format!("args.{k}")).collect()
        }
        (a, b) if a == b => Vec::new(),
        _ => vec!["args".to_owned()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Policy;
    use crate::token::{Key, Keyring};
    use serde_json::json;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-01-01 00:00:00 UTC);

    fn request() -> ApprovalRequest {
        let policy = Policy::from_yaml_str(
            "approvals:\n  required_for: [email.send]\n  ttl_seconds: 300\n  approval_ttl_seconds: 60\n",
        )
        .unwrap();
        let call = ToolCall::new("r", "c", "email.send", json!({"to": "x"}));
        let decision = policy.evaluate(&call);
        let hash = call.args_hash().unwrap();
        ApprovalRequest::new(
            RequestId::new(),
            call,
            hash,
            &decision,
            policy.version().clone(),
            T0,
        )
    }

    fn token() -> ApprovalToken {
        let keys = Keyring::new(Key::new("k1", [7u8; 32]).unwrap());
        keys.sign(&request().claims(T0))
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn pending_expires_exactly_at_its_decision_ttl() {
        let r = request();
        assert_eq!(r.state_at(T0 + secs(299)), RequestState::Pending);
        assert_eq!(r.state_at(T0 + secs(300)), RequestState::Expired);
        assert_eq!(r.remaining(T0 + secs(100)), Some(secs(200)));
    }

    #[test]
    fn approval_is_refused_after_the_ttl_even_unswept() {
        let r = request();
        let ann = Approver::new("ann");
        assert_eq!(
            r.approve(&ann, T0 + secs(300)).unwrap_err(),
            TransitionError::Expired {
                expired_at: T0 + secs(300)
            }
        );
        let ok = r.approve(&ann, T0 + secs(299)).unwrap();
        assert_eq!(ok.stored_state(), RequestState::Approved);
        assert_eq!(ok.version(), r.version() + 1);
        assert_eq!(ok.approvers(), ["ann"]);
    }

    #[test]
    fn approval_expires_after_its_own_ttl() {
        let r = request()
            .approve(&Approver::new("ann"), T0 + secs(10))
            .unwrap();
        assert_eq!(r.state_at(T0 + secs(69)), RequestState::Approved);
        assert_eq!(r.state_at(T0 + secs(70)), RequestState::Expired);
        assert!(r.claim(T0 + secs(70)).is_err());
        let expired = r.expire(T0 + secs(70)).unwrap();
        assert_eq!(expired.stored_state(), RequestState::Expired);
    }

    #[test]
    fn exactly_one_decision() {
        let r = request();
        let ann = Approver::new("ann");
        let denied = r.deny(&ann, Some("no".into()), T0).unwrap();
        assert_eq!(
            denied.approve(&ann, T0).unwrap_err(),
            TransitionError::WrongState {
                state: RequestState::Denied,
                expected: RequestState::Pending
            }
        );
        assert!(denied.cancel(&ann, None, T0).is_err());
        assert!(denied.claim(T0).is_err());
    }

    #[test]
    fn claim_then_finish() {
        let r = request().approve(&Approver::new("ann"), T0).unwrap();
        let running = r.claim(T0).unwrap();
        assert_eq!(running.stored_state(), RequestState::Executing);
        assert!(running.claim(T0).is_err(), "an approval is claimed once");
        let done = running.finish(true, T0 + secs(1)).unwrap();
        assert_eq!(done.stored_state(), RequestState::Executed);
        assert_eq!(
            running.finish(false, T0).unwrap().stored_state(),
            RequestState::Failed
        );
    }

    #[test]
    fn expire_is_refused_before_the_deadline() {
        let r = request();
        assert!(r.expire(T0 + secs(299)).is_err());
        let e = r.expire(T0 + secs(300)).unwrap();
        assert!(e.expire(T0 + secs(1000)).is_err(), "expires once");
    }

    #[test]
    fn round_trips_through_json() {
        let r = request()
            .approve(&Approver::new("ann"), T0)
            .unwrap()
            .with_token(token());
        let text = serde_json::to_string(&r).unwrap();
        let back: ApprovalRequest = serde_json::from_str(&text).unwrap();
        assert_eq!(serde_json::to_string(&back).unwrap(), text);
        assert_eq!(back.token().unwrap().as_str(), r.token().unwrap().as_str());
    }

    fn request_with(tier: &str, call: ToolCall) -> ApprovalRequest {
        let policy = Policy::from_yaml_str(&format!(
            "tiers:\n  {tier}\nrules:\n  - {{ id: r, tool: payments.refund, effect: approval_required, tier: t }}\n"
        ))
        .unwrap();
        let decision = policy.evaluate(&call);
        let hash = call.args_hash().unwrap();
        ApprovalRequest::new(
            RequestId::new(),
            call,
            hash,
            &decision,
            policy.version().clone(),
            T0,
        )
    }

    fn refund() -> ToolCall {
        ToolCall::new(
            "r",
            "c",
            "payments.refund",
            json!({"amount": 500, "to": "acct-1"}),
        )
        .with_requester("bob")
        .with_tenant("acme")
    }

    #[test]
    fn a_quorum_needs_that_many_distinct_approvers() {
        let r = request_with("t: { approvers: [finance], quorum: 2 }", refund());
        let ann = Approver::new("ann")
            .with_role("finance")
            .with_tenant("acme");
        let cid = Approver::new("cid")
            .with_role("finance")
            .with_tenant("acme");
        let one = r.approve(&ann, T0).unwrap();
        assert_eq!(one.stored_state(), RequestState::Pending);
        assert_eq!(one.approvers(), ["ann"]);
        assert_eq!(
            one.approve(&ann, T0).unwrap_err(),
            TransitionError::AlreadyApproved {
                approver: "ann".into()
            }
        );
        let two = one.approve(&cid, T0).unwrap();
        assert_eq!(two.stored_state(), RequestState::Approved);
        assert_eq!(two.approvers(), ["ann", "cid"]);
    }

    #[test]
    fn approver_refusals_change_nothing() {
        let r = request_with("t: { approvers: [finance] }", refund());
        let cases = [
            (
                Approver::new("bob")
                    .with_role("finance")
                    .with_tenant("acme"),
                TransitionError::SelfApproval {
                    approver: "bob".into(),
                },
            ),
            (
                Approver::new("eve")
                    .with_role("finance")
                    .with_tenant("globex"),
                TransitionError::WrongTenant {
                    approver: "eve".into(),
                },
            ),
            (
                Approver::new("eve").with_role("finance"),
                TransitionError::WrongTenant {
                    approver: "eve".into(),
                },
            ),
            (
                Approver::new("dan")
                    .with_role("support")
                    .with_tenant("acme"),
                TransitionError::MissingRole {
                    approver: "dan".into(),
                    needed: vec!["finance".into()],
                },
            ),
        ];
        for (approver, want) in cases {
            assert_eq!(r.approve(&approver, T0).unwrap_err(), want);
        }
    }

    #[test]
    fn an_edit_rebinds_the_approval_and_resets_earlier_votes() {
        let r = request_with("t: { quorum: 2 }", refund());
        let ann = Approver::new("ann").with_tenant("acme");
        let cid = Approver::new("cid").with_tenant("acme");
        let voted = r.approve(&ann, T0).unwrap();
        let edited_args = json!({"amount": 50, "to": "acct-1"});
        let hash = ArgsHash::compute(&edited_args).unwrap();
        let edited = voted
            .approve_with_edits(&cid, edited_args.clone(), hash, T0)
            .unwrap();
        assert_eq!(edited.version(), voted.version() + 1);
        assert_eq!(edited.approvers(), ["cid"], "ann approved other arguments");
        assert_eq!(edited.stored_state(), RequestState::Pending);
        assert_eq!(edited.approved_args(), &edited_args);
        assert_eq!(edited.approved_args_hash(), hash);
        assert_eq!(
            edited.args_hash(),
            r.args_hash(),
            "the filed call is unchanged"
        );
        assert_eq!(edited.changed_fields(), ["args.amount"]);
        let done = edited.approve(&ann, T0).unwrap();
        assert_eq!(done.stored_state(), RequestState::Approved);
    }

    /// The JSON of a request whose every field is set, written by this crate before the
    /// parts of a request were shared: stored rows hold this form.
    const ALL_FIELDS: &str = r#"{"id":"01234567-89ab-4def-8123-456789abcdef","version":6,"state":"executed","call":{"run_id":"run-1","call_id":"call-1","tool":"payments.refund","args":{"amount":500,"nested":{"a":"é\"\n","b":[1,2.5,null]},"to":"acct-1"},"requested_by":"bob","tenant":"acme","roles":["support","ops"],"mode":"auto"},"args_hash":"f1d580a48c6cfffd07497cc0d34ea725fea43ab2ed059aeb03668c3204649c19","rule_ids":["r"],"reason":"big refund","tier":"t","preview":"refund 500 to acct-1","shown_args":{"amount":500,"to":"***"},"policy_version":"fd4a6316260bec68ac465ecc245fbe4a96f24a4439d1a2c0b0a5a242c1277014","created_at":"2026-01-01T00:00:00Z","expires_at":"2026-01-01T00:10:00Z","approval_ttl_secs":90,"approver_roles":["finance"],"quorum":2,"grants_allowed":false,"approvers":["cid","ann"],"approved_args":{"amount":50,"to":"acct-1"},"approved_args_hash":"69d567af1bca012b25007280a5035def78141f45f4d1775b3a9d2246a1cbf40e","changed_fields":["args.amount","args.nested"],"decided_at":"2026-01-01T00:00:05Z","decided_by":"dan","feedback":"looks \"fine\"","approval_expires_at":"2026-01-01T00:01:35Z","token":"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6ImsxIn0.eyJqdGkiOiIwMTIzNDU2Ny04OWFiLTRkZWYtODEyMy00NTY3ODlhYmNkZWYiLCJydW5faWQiOiJydW4tMSIsImNhbGxfaWQiOiJjYWxsLTEiLCJ0b29sIjoicGF5bWVudHMucmVmdW5kIiwiYXJnc19oYXNoIjoiNjlkNTY3YWYxYmNhMDEyYjI1MDA3MjgwYTUwMzVkZWY3ODE0MWY0NWY0ZDE3NzViM2E5ZDIyNDZhMWNiZjQwZSIsInBvbGljeV92ZXJzaW9uIjoiZmQ0YTYzMTYyNjBiZWM2OGFjNDY1ZWNjMjQ1ZmJlNGE5NmYyNGE0NDM5ZDFhMmMwYjBhNWEyNDJjMTI3NzAxNCIsImFwcHJvdmVycyI6WyJjaWQiLCJhbm4iXSwiaWF0IjoxNzY3MjI1NjA1LCJleHAiOjE3NjcyMjU2OTV9.G1bQdclnAuJ7QNivTdls5HgQ9vmF1UG-2Jbrd3M9nqs","finished_at":"2026-01-01T00:00:07Z"}"#;

    /// The JSON of the request [`flow_request`] builds, captured the same way.
    const FLOW: &str = r#"{"id":"01234567-89ab-4def-8123-456789abcdef","version":6,"state":"executed","call":{"run_id":"run-1","call_id":"call-1","tool":"payments.refund","args":{"amount":500,"nested":{"a":"é\"\n","b":[1,2.5,null]},"to":"acct-1"},"requested_by":"bob","tenant":"acme","roles":["support","ops"],"mode":"auto"},"args_hash":"f1d580a48c6cfffd07497cc0d34ea725fea43ab2ed059aeb03668c3204649c19","rule_ids":["r"],"reason":"big refund","tier":"t","preview":"refund 500 to acct-1","shown_args":{"amount":500,"to":"***"},"policy_version":"fd4a6316260bec68ac465ecc245fbe4a96f24a4439d1a2c0b0a5a242c1277014","created_at":"2026-01-01T00:00:00Z","expires_at":"2026-01-01T00:10:00Z","approval_ttl_secs":90,"approver_roles":["finance"],"quorum":2,"grants_allowed":false,"approvers":["cid","ann"],"approved_args":{"amount":50,"to":"acct-1"},"approved_args_hash":"69d567af1bca012b25007280a5035def78141f45f4d1775b3a9d2246a1cbf40e","changed_fields":["args.amount","args.nested"],"decided_at":"2026-01-01T00:00:05Z","approval_expires_at":"2026-01-01T00:01:35Z","token":"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6ImsxIn0.eyJqdGkiOiIwMTIzNDU2Ny04OWFiLTRkZWYtODEyMy00NTY3ODlhYmNkZWYiLCJydW5faWQiOiJydW4tMSIsImNhbGxfaWQiOiJjYWxsLTEiLCJ0b29sIjoicGF5bWVudHMucmVmdW5kIiwiYXJnc19oYXNoIjoiNjlkNTY3YWYxYmNhMDEyYjI1MDA3MjgwYTUwMzVkZWY3ODE0MWY0NWY0ZDE3NzViM2E5ZDIyNDZhMWNiZjQwZSIsInBvbGljeV92ZXJzaW9uIjoiZmQ0YTYzMTYyNjBiZWM2OGFjNDY1ZWNjMjQ1ZmJlNGE5NmYyNGE0NDM5ZDFhMmMwYjBhNWEyNDJjMTI3NzAxNCIsImFwcHJvdmVycyI6WyJjaWQiLCJhbm4iXSwiaWF0IjoxNzY3MjI1NjA1LCJleHAiOjE3NjcyMjU2OTV9.G1bQdclnAuJ7QNivTdls5HgQ9vmF1UG-2Jbrd3M9nqs","finished_at":"2026-01-01T00:00:07Z","edited_by":"cid"}"#;

    /// The JSON of a freshly filed request with no optional field set.
    const FILED: &str = r#"{"id":"00000000-0000-0000-0000-000000000001","version":1,"state":"pending","call":{"run_id":"r","call_id":"c","tool":"x","args":null},"args_hash":"74234e98afe7498fb5daf1f36ac2d78acc339464f950703b8c019892f982b90b","rule_ids":[],"reason":"no rule allows `x`, and the policy denies what no rule allows","policy_version":"fd4a6316260bec68ac465ecc245fbe4a96f24a4439d1a2c0b0a5a242c1277014","created_at":"2026-01-01T00:00:00Z","expires_at":"2026-01-01T00:05:00Z","approval_ttl_secs":900,"quorum":1,"grants_allowed":true}"#;

    fn flow_policy() -> Policy {
        Policy::from_yaml_str(
            "tiers:\n  t: { approvers: [finance], quorum: 2, grants: false, ttl_seconds: 600, approval_ttl_seconds: 90 }\nrules:\n  - { id: r, tool: payments.refund, effect: approval_required, tier: t, reason: big refund }\n",
        )
        .unwrap()
    }

    #[test]
    fn arguments_shown_as_they_are_are_kept_once() {
        let policy = flow_policy();
        let call = crate::call::every_field();
        let decision = policy.evaluate(&call);
        let hash = call.args_hash().unwrap();
        let file = |shown: Value| {
            ApprovalRequest::new(
                RequestId::new(),
                call.clone(),
                hash,
                &decision,
                policy.version().clone(),
                T0,
            )
            .with_display("refund".into(), shown)
        };
        // Nothing redacted: one copy, in the call; `shown_args` reads it back.
        let plain = file(call.args().clone());
        let json = serde_json::to_value(&plain).unwrap();
        assert!(json.get("shown_args").is_none(), "{json}");
        let read: ApprovalRequest = serde_json::from_value(json).unwrap();
        assert_eq!(read.shown_args(), call.args());
        // Something redacted: kept beside the call's own.
        let redacted = json!({"amount": 500, "to": "***"});
        let json = serde_json::to_value(file(redacted.clone())).unwrap();
        assert_eq!(json["shown_args"], redacted);
        let read: ApprovalRequest = serde_json::from_value(json).unwrap();
        assert_eq!(read.shown_args(), &redacted);
    }

    /// Filed, approved, edited, approved again, signed, claimed and finished.
    fn flow_request() -> ApprovalRequest {
        let policy = flow_policy();
        let call = crate::call::every_field();
        let decision = policy.evaluate(&call);
        let hash = call.args_hash().unwrap();
        let r = ApprovalRequest::new(
            RequestId::from_u128(0x0123_4567_89ab_4def_8123_4567_89ab_cdef),
            call,
            hash,
            &decision,
            policy.version().clone(),
            T0,
        )
        .with_display(
            "refund 500 to acct-1".into(),
            json!({"amount": 500, "to": "***"}),
        );
        let ann = Approver::new("ann")
            .with_role("finance")
            .with_tenant("acme");
        let cid = Approver::new("cid")
            .with_role("finance")
            .with_tenant("acme");
        let edited = json!({"amount": 50, "to": "acct-1"});
        let edited_hash = ArgsHash::compute(&edited).unwrap();
        let approved = r
            .approve(&ann, T0)
            .unwrap()
            .approve_with_edits(&cid, edited, edited_hash, T0)
            .unwrap()
            .approve(&ann, T0 + secs(5))
            .unwrap();
        let keys = Keyring::new(Key::new("k1", [7u8; 32]).unwrap());
        let token = keys.sign(&approved.claims(T0 + secs(5)));
        approved
            .with_token(token)
            .claim(T0 + secs(6))
            .unwrap()
            .finish(true, T0 + secs(7))
            .unwrap()
    }

    #[test]
    fn the_json_form_is_unchanged() {
        crate::call::assert_same_json(&serde_json::to_string(&flow_request()).unwrap(), FLOW);
        let policy = flow_policy();
        let call = ToolCall::new("r", "c", "x", json!(null));
        let filed = ApprovalRequest::new(
            RequestId::from_u128(1),
            call.clone(),
            call.args_hash().unwrap(),
            &policy.evaluate(&call),
            policy.version().clone(),
            T0,
        );
        crate::call::assert_same_json(&serde_json::to_string(&filed).unwrap(), FILED);
        for text in [ALL_FIELDS, FLOW, FILED] {
            let back: ApprovalRequest = serde_json::from_str(text).unwrap();
            assert_eq!(serde_json::to_string(&back).unwrap(), text);
        }
    }

    #[test]
    fn a_stored_row_reads_back_with_every_field() {
        let r: ApprovalRequest = serde_json::from_str(ALL_FIELDS).unwrap();
        assert_eq!(r.version(), 6);
        assert_eq!(r.stored_state(), RequestState::Executed);
        assert_eq!(r.call().requester(), Some("bob"));
        assert_eq!(r.call().roles(), ["support", "ops"]);
        assert_eq!(r.call().mode(), Some("auto"));
        assert_eq!(r.preview(), Some("refund 500 to acct-1"));
        assert_eq!(r.shown_args(), &json!({"amount": 500, "to": "***"}));
        assert_eq!(r.quorum(), 2);
        assert!(!r.grants_allowed());
        assert_eq!(r.approvers(), ["cid", "ann"]);
        assert!(r.is_edited());
        assert_eq!(r.approved_args(), &json!({"amount": 50, "to": "acct-1"}));
        assert_ne!(r.approved_args_hash(), r.args_hash());
        assert_eq!(r.changed_fields(), ["args.amount", "args.nested"]);
        assert_eq!(r.decided_by(), Some("dan"));
        assert_eq!(r.feedback(), Some("looks \"fine\""));
        assert_eq!(r.finished_at(), Some(T0 + secs(7)));
        assert!(r.token().is_some());
        // A row written before `quorum` and `grants_allowed` existed reads with their defaults.
        let mut old: Value = serde_json::from_str(FILED).unwrap();
        old.as_object_mut().unwrap().remove("quorum");
        old.as_object_mut().unwrap().remove("grants_allowed");
        let old: ApprovalRequest = serde_json::from_value(old).unwrap();
        assert_eq!((old.quorum(), old.grants_allowed()), (1, true));
    }

    #[test]
    fn versions_share_the_filed_call_and_leave_each_other_unchanged() {
        let approved = request().approve(&Approver::new("ann"), T0).unwrap();
        let claimed = approved.claim(T0).unwrap();
        assert!(std::ptr::eq(approved.call().args(), claimed.call().args()));
        assert!(std::ptr::eq(
            approved.call().args(),
            approved.clone().approved_args()
        ));
        let denied = request()
            .deny(&Approver::new("ann"), Some("no".into()), T0)
            .unwrap();
        let cancelled = denied
            .revert_to(&request())
            .cancel(&Approver::new("cid"), None, T0)
            .unwrap();
        assert_eq!(denied.decided_by(), Some("ann"));
        assert_eq!(denied.feedback(), Some("no"));
        assert_eq!(cancelled.decided_by(), Some("cid"));
        assert_eq!(cancelled.feedback(), None);
        assert_eq!(approved.stored_state(), RequestState::Approved);
        assert_eq!(approved.approvers(), ["ann"]);
    }
}
