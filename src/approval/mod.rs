//! Approval requests: their states, and the transitions between them as pure functions.
//!
//! Nothing here reads a clock or touches a store: every transition takes `now` and returns
//! the next version of the request, which a store then writes with compare-and-set.

mod approver;
mod state;

pub use approver::Approver;
pub use state::RequestState;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{ApprovalToken, ArgsHash, Claims, Decision, PolicyVersion, ToolCall};

/// The id of an approval request; also the idempotency key handed to the executor.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RequestId(Uuid);

impl RequestId {
    /// A fresh random id.
    pub fn new() -> RequestId {
        RequestId(Uuid::new_v4())
    }

    /// The underlying UUID.
    pub fn as_uuid(&self) -> &Uuid {
        &self.0
    }
}

impl Default for RequestId {
    fn default() -> Self {
        Self::new()
    }
}

impl From<Uuid> for RequestId {
    fn from(u: Uuid) -> Self {
        RequestId(u)
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
    /// The approver approved this request already; a quorum needs distinct people.
    #[error("`{approver}` approved this request already")]
    AlreadyApproved {
        /// The approver.
        approver: String,
    },
}

/// One call that a policy said needs a person's approval, and everything that happened
/// to it since.
///
/// A request moves through [`RequestState`]s; each method below that changes it returns
/// the next version (with [`version`](Self::version) one higher) and leaves `self` as it
/// was, so a store can write it with compare-and-set.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApprovalRequest {
    id: RequestId,
    version: u64,
    state: RequestState,
    call: ToolCall,
    args_hash: ArgsHash,
    rule_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    preview: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    shown_args: Option<Value>,
    policy_version: PolicyVersion,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    expires_at: OffsetDateTime,
    approval_ttl_secs: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    approver_roles: Vec<String>,
    #[serde(default = "one")]
    quorum: u32,
    #[serde(default = "yes")]
    grants_allowed: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    approvers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    approved_args: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    approved_args_hash: Option<ArgsHash>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    changed_fields: Vec<String>,
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    decided_at: Option<OffsetDateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    decided_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    feedback: Option<String>,
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    approval_expires_at: Option<OffsetDateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token: Option<ApprovalToken>,
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    finished_at: Option<OffsetDateTime>,
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
            call,
            args_hash,
            rule_ids: decision.rule_ids().iter().map(|r| r.to_string()).collect(),
            reason: decision.reason().map(str::to_owned),
            tier: decision.tier().map(str::to_owned),
            preview: None,
            shown_args: None,
            policy_version,
            created_at: now,
            expires_at: now + decision.decision_ttl(),
            approval_ttl_secs: decision.approval_ttl().as_secs(),
            approver_roles: decision
                .approver_roles()
                .iter()
                .map(|r| r.to_string())
                .collect(),
            quorum: decision.quorum().max(1),
            grants_allowed: decision.grants_allowed(),
            approvers: Vec::new(),
            approved_args: None,
            approved_args_hash: None,
            changed_fields: Vec::new(),
            decided_at: None,
            decided_by: None,
            feedback: None,
            approval_expires_at: None,
            token: None,
            finished_at: None,
        }
    }

    /// Sets what a person is shown: the rendered `preview` and the arguments with the
    /// fields the config marks secret redacted (see [`Policy::preview`](crate::Policy::preview)
    /// and [`Policy::redact`](crate::Policy::redact)).
    pub fn with_display(mut self, preview: String, shown_args: Value) -> Self {
        self.preview = Some(preview);
        self.shown_args = Some(shown_args);
        self
    }

    /// The preview of the action for the person deciding, rendered from the rule's
    /// template over the redacted arguments.
    pub fn preview(&self) -> Option<&str> {
        self.preview.as_deref()
    }

    /// The arguments as a person may see them: secret fields redacted. Show these, never
    /// [`call().args()`](ToolCall::args), on an approval surface.
    pub fn shown_args(&self) -> &Value {
        self.shown_args.as_ref().unwrap_or(self.call.args())
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
            RequestState::Pending if now >= self.expires_at => RequestState::Expired,
            RequestState::Approved if self.approval_expires_at.is_some_and(|t| now >= t) => {
                RequestState::Expired
            }
            s => s,
        }
    }

    /// The call as filed.
    pub fn call(&self) -> &ToolCall {
        &self.call
    }

    /// The hash of the arguments the request is bound to.
    pub fn args_hash(&self) -> ArgsHash {
        self.args_hash
    }

    /// The ids of the rules that asked for approval.
    pub fn rule_ids(&self) -> &[String] {
        &self.rule_ids
    }

    /// The policy's reason for asking.
    pub fn reason(&self) -> Option<&str> {
        self.reason.as_deref()
    }

    /// The risk tier.
    pub fn tier(&self) -> Option<&str> {
        self.tier.as_deref()
    }

    /// The version of the policy that asked for approval.
    pub fn policy_version(&self) -> &PolicyVersion {
        &self.policy_version
    }

    /// When the request was filed.
    pub fn created_at(&self) -> OffsetDateTime {
        self.created_at
    }

    /// When a pending request expires (its decision TTL).
    pub fn expires_at(&self) -> OffsetDateTime {
        self.expires_at
    }

    /// How long an approval may wait to be used.
    pub fn approval_ttl(&self) -> Duration {
        Duration::from_secs(self.approval_ttl_secs)
    }

    /// When an approval of this request stops being usable, once approved.
    pub fn approval_expires_at(&self) -> Option<OffsetDateTime> {
        self.approval_expires_at
    }

    /// The instant the request expired or will expire, in its current state.
    pub fn deadline(&self) -> Option<OffsetDateTime> {
        match self.state {
            RequestState::Pending => Some(self.expires_at),
            RequestState::Approved => self.approval_expires_at,
            _ => None,
        }
    }

    /// When the request timed out or times out: the approval TTL's end once approved,
    /// the decision TTL's end before.
    pub fn timeout_at(&self) -> OffsetDateTime {
        self.approval_expires_at.unwrap_or(self.expires_at)
    }

    /// Who approved it so far (all of them once approved).
    pub fn approvers(&self) -> &[String] {
        &self.approvers
    }

    /// The roles that may approve it (from its tier); empty means any approver.
    pub fn approver_roles(&self) -> &[String] {
        &self.approver_roles
    }

    /// Whether its tier lets an approver leave a standing grant with the approval.
    pub fn grants_allowed(&self) -> bool {
        self.grants_allowed
    }

    /// How many distinct approvers it needs.
    pub fn quorum(&self) -> u32 {
        self.quorum
    }

    /// The arguments the approval binds to: the edited ones if an approver edited them,
    /// else the call's own.
    pub fn approved_args(&self) -> &Value {
        self.approved_args.as_ref().unwrap_or(self.call.args())
    }

    /// The hash of [`approved_args`](Self::approved_args).
    pub fn approved_args_hash(&self) -> ArgsHash {
        self.approved_args_hash.unwrap_or(self.args_hash)
    }

    /// Whether an approver changed the arguments.
    pub fn is_edited(&self) -> bool {
        self.approved_args.is_some()
    }

    /// The argument fields an approver changed (`args.to`, …; `args` when the arguments
    /// are not an object); empty unless edited.
    pub fn changed_fields(&self) -> &[String] {
        &self.changed_fields
    }

    /// When it was approved, denied, cancelled or timed out.
    pub fn decided_at(&self) -> Option<OffsetDateTime> {
        self.decided_at
    }

    /// Who denied or cancelled it.
    pub fn decided_by(&self) -> Option<&str> {
        self.decided_by.as_deref()
    }

    /// The message a person left with a denial or cancellation.
    pub fn feedback(&self) -> Option<&str> {
        self.feedback.as_deref()
    }

    /// The approval token, once approved.
    pub fn token(&self) -> Option<&ApprovalToken> {
        self.token.as_ref()
    }

    /// When the tool finished (as `Executed` or `Failed`).
    pub fn finished_at(&self) -> Option<OffsetDateTime> {
        self.finished_at
    }

    /// Time left to decide at `now`, zero once expired; `None` unless pending.
    pub fn remaining(&self, now: OffsetDateTime) -> Option<Duration> {
        (self.state == RequestState::Pending)
            .then(|| Duration::try_from(self.expires_at - now).unwrap_or(Duration::ZERO))
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
    /// `Pending` with the approvers so far. An approved request needs its token
    /// ([`with_token`](Self::with_token)) before it can be used.
    pub fn approve(
        &self,
        approver: &Approver,
        now: OffsetDateTime,
    ) -> Result<ApprovalRequest, TransitionError> {
        self.expect(RequestState::Pending, now)?;
        self.check_approver(approver)?;
        if self.approvers.iter().any(|a| a == approver.id()) {
            return Err(TransitionError::AlreadyApproved {
                approver: approver.id().to_owned(),
            });
        }
        let mut next = self.next(RequestState::Pending);
        next.approvers.push(approver.id().to_owned());
        if next.approvers.len() >= self.quorum as usize {
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
    /// the editor is the first approver of the edited call.
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
        base.approvers.clear();
        base.changed_fields = changed_fields(self.call.args(), &args);
        if args_hash == self.args_hash {
            base.approved_args = None;
            base.approved_args_hash = None;
        } else {
            base.approved_args = Some(args);
            base.approved_args_hash = Some(args_hash);
        }
        let mut next = base.approve(approver, now)?;
        next.version = self.version + 1;
        Ok(next)
    }

    fn check_approver(&self, approver: &Approver) -> Result<(), TransitionError> {
        if self.call.requester() == Some(approver.id()) {
            return Err(TransitionError::SelfApproval {
                approver: approver.id().to_owned(),
            });
        }
        self.check_scope(approver)
    }

    /// Tenant and role: who may decide this request at all, approving or denying.
    fn check_scope(&self, approver: &Approver) -> Result<(), TransitionError> {
        let id = || approver.id().to_owned();
        if self.call.tenant_id() != approver.tenant_id() {
            return Err(TransitionError::WrongTenant { approver: id() });
        }
        if !self.approver_roles.is_empty()
            && !self.approver_roles.iter().any(|r| approver.has_role(r))
        {
            return Err(TransitionError::MissingRole {
                approver: id(),
                needed: self.approver_roles.clone(),
            });
        }
        Ok(())
    }

    /// The claims of this request's approval token, approved at `now`: bound to the
    /// approved args hash and naming every approver so far.
    pub fn claims(&self, now: OffsetDateTime) -> Claims {
        Claims {
            jti: self.id.to_string(),
            run_id: self.call.run_id().to_owned(),
            call_id: self.call.call_id().to_owned(),
            tool: self.call.tool().to_owned(),
            args_hash: self.approved_args_hash(),
            policy_version: self.policy_version.to_string(),
            approvers: self.approvers.clone(),
            iat: now.unix_timestamp(),
            exp: self.approval_expiry(now).unix_timestamp(),
        }
    }

    /// Attaches the signed token of an approved request (see
    /// [`Keyring::sign`](crate::Keyring::sign)); part of the same transition as the
    /// approval that completed the quorum.
    pub fn with_token(mut self, token: ApprovalToken) -> ApprovalRequest {
        self.token = Some(token);
        self
    }

    /// When an approval given at `now` would expire.
    pub fn approval_expiry(&self, now: OffsetDateTime) -> OffsetDateTime {
        now + self.approval_ttl()
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
        self.check_scope(approver)?;
        let mut next = self.next(RequestState::Denied);
        next.decided_at = Some(now);
        next.decided_by = Some(approver.id().to_owned());
        next.feedback = feedback;
        Ok(next)
    }

    /// Cancels a pending or approved (not yet used) request.
    pub fn cancel(
        &self,
        by: &str,
        reason: Option<String>,
        now: OffsetDateTime,
    ) -> Result<ApprovalRequest, TransitionError> {
        if self.expect(RequestState::Approved, now).is_err() {
            self.expect(RequestState::Pending, now)?;
        }
        let mut next = self.next(RequestState::Cancelled);
        next.decided_at = Some(now);
        next.decided_by = Some(by.to_owned());
        next.feedback = reason;
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
    pub fn revert_to(&self, previous: &ApprovalRequest) -> ApprovalRequest {
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
    use crate::{Key, Keyring, Policy};
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
        assert!(denied.cancel("ann", None, T0).is_err());
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
        .requested_by("bob")
        .tenant("acme")
    }

    #[test]
    fn a_quorum_needs_that_many_distinct_approvers() {
        let r = request_with("t: { approvers: [finance], quorum: 2 }", refund());
        let ann = Approver::new("ann").role("finance").tenant("acme");
        let cid = Approver::new("cid").role("finance").tenant("acme");
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
                Approver::new("bob").role("finance").tenant("acme"),
                TransitionError::SelfApproval {
                    approver: "bob".into(),
                },
            ),
            (
                Approver::new("eve").role("finance").tenant("globex"),
                TransitionError::WrongTenant {
                    approver: "eve".into(),
                },
            ),
            (
                Approver::new("eve").role("finance"),
                TransitionError::WrongTenant {
                    approver: "eve".into(),
                },
            ),
            (
                Approver::new("dan").role("support").tenant("acme"),
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
        let ann = Approver::new("ann").tenant("acme");
        let cid = Approver::new("cid").tenant("acme");
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
}
