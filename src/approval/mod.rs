//! Approval requests: their states, and the transitions between them as pure functions.
//!
//! Nothing here reads a clock or touches a store: every transition takes `now` and returns
//! the next version of the request, which a store then writes with compare-and-set.

mod state;

pub use state::RequestState;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{ApprovalToken, ArgsHash, Decision, PolicyVersion, ToolCall};

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

/// A person who decides approval requests.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Approver {
    id: String,
}

impl Approver {
    /// An approver known to the host by `id`.
    pub fn new(id: impl Into<String>) -> Self {
        Approver { id: id.into() }
    }

    /// The approver's id.
    pub fn id(&self) -> &str {
        &self.id
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
    policy_version: PolicyVersion,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    expires_at: OffsetDateTime,
    approval_ttl_secs: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    approvers: Vec<String>,
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
            policy_version,
            created_at: now,
            expires_at: now + decision.decision_ttl(),
            approval_ttl_secs: decision.approval_ttl().as_secs(),
            approvers: Vec::new(),
            decided_at: None,
            decided_by: None,
            feedback: None,
            approval_expires_at: None,
            token: None,
            finished_at: None,
        }
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

    /// Who approved it.
    pub fn approvers(&self) -> &[String] {
        &self.approvers
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

    /// Approves a pending request. The approval may be used until `now` plus the approval
    /// TTL; `token` is the signed proof of it (see [`Keyring::sign`](crate::Keyring::sign)).
    pub fn approve(
        &self,
        approver: &Approver,
        token: ApprovalToken,
        now: OffsetDateTime,
    ) -> Result<ApprovalRequest, TransitionError> {
        self.expect(RequestState::Pending, now)?;
        let mut next = self.next(RequestState::Approved);
        next.approvers.push(approver.id.clone());
        next.decided_at = Some(now);
        next.approval_expires_at = Some(self.approval_expiry(now));
        next.token = Some(token);
        Ok(next)
    }

    /// When an approval given at `now` would expire.
    pub fn approval_expiry(&self, now: OffsetDateTime) -> OffsetDateTime {
        now + self.approval_ttl()
    }

    /// Denies a pending request, with an optional message for the agent.
    pub fn deny(
        &self,
        approver: &Approver,
        feedback: Option<String>,
        now: OffsetDateTime,
    ) -> Result<ApprovalRequest, TransitionError> {
        self.expect(RequestState::Pending, now)?;
        let mut next = self.next(RequestState::Denied);
        next.decided_at = Some(now);
        next.decided_by = Some(approver.id.clone());
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
        let r = request();
        keys.sign(&crate::Claims {
            jti: r.id().to_string(),
            run_id: "r".into(),
            call_id: "c".into(),
            tool: "email.send".into(),
            args_hash: r.args_hash(),
            policy_version: r.policy_version().to_string(),
            approvers: vec!["ann".into()],
            iat: 0,
            exp: 1,
        })
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
            r.approve(&ann, token(), T0 + secs(300)).unwrap_err(),
            TransitionError::Expired {
                expired_at: T0 + secs(300)
            }
        );
        let ok = r.approve(&ann, token(), T0 + secs(299)).unwrap();
        assert_eq!(ok.stored_state(), RequestState::Approved);
        assert_eq!(ok.version(), r.version() + 1);
        assert_eq!(ok.approvers(), ["ann"]);
    }

    #[test]
    fn approval_expires_after_its_own_ttl() {
        let r = request()
            .approve(&Approver::new("ann"), token(), T0 + secs(10))
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
            denied.approve(&ann, token(), T0).unwrap_err(),
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
        let r = request()
            .approve(&Approver::new("ann"), token(), T0)
            .unwrap();
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
            .approve(&Approver::new("ann"), token(), T0)
            .unwrap();
        let text = serde_json::to_string(&r).unwrap();
        let back: ApprovalRequest = serde_json::from_str(&text).unwrap();
        assert_eq!(serde_json::to_string(&back).unwrap(), text);
        assert_eq!(back.token().unwrap().as_str(), r.token().unwrap().as_str());
    }
}
