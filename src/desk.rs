//! The human side of the gate: list and show pending requests, approve, deny, cancel.

use thiserror::Error;
use time::OffsetDateTime;

use crate::clock::Rfc3339Display;
use crate::{
    ApprovalRequest, Approver, AuditError, AuditEvent, Claims, Gate, GateError, RequestId,
    RequestQuery, RequestState, StoreError, TransitionError,
};

/// A decision could not be made. Nothing changed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DeskError {
    /// No request has this id.
    #[error("approval request `{id}` not found")]
    NotFound {
        /// The id asked for.
        id: RequestId,
    },
    /// The request was decided already (or withdrawn, or used): one decision per request.
    #[error("approval request `{id}` is `{state}` already")]
    AlreadyDecided {
        /// The request.
        id: RequestId,
        /// Where it stands.
        state: RequestState,
    },
    /// The request's time ran out before the decision.
    #[error("approval request `{id}` expired at {}", Rfc3339Display(*expired_at))]
    Expired {
        /// The request.
        id: RequestId,
        /// When it expired.
        expired_at: OffsetDateTime,
    },
    /// The approval store failed.
    #[error("approval store failed")]
    Store(#[source] StoreError),
    /// The audit sink failed, so the decision was not made.
    #[error("audit sink failed")]
    Audit(#[source] AuditError),
}

impl From<StoreError> for DeskError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { id } => DeskError::NotFound { id },
            e => DeskError::Store(e),
        }
    }
}

impl From<GateError> for DeskError {
    fn from(e: GateError) -> Self {
        match e {
            GateError::Store(e) => e.into(),
            GateError::Audit(e) => DeskError::Audit(e),
        }
    }
}

/// Where people decide approval requests. Get one from [`Gate::desk`].
///
/// Every decision is a compare-and-set on the store with its audit record: of two people
/// deciding at once, one wins and the other gets [`DeskError::AlreadyDecided`]; a decision
/// after the request's TTL gets [`DeskError::Expired`], whether or not anything swept it.
#[derive(Debug, Clone)]
pub struct Desk {
    gate: Gate,
}

impl Desk {
    /// The desk of `gate`.
    pub fn new(gate: Gate) -> Self {
        Desk { gate }
    }

    /// The requests waiting for a decision now, oldest first.
    pub async fn pending(&self) -> Result<Vec<ApprovalRequest>, DeskError> {
        self.list(&RequestQuery::pending()).await
    }

    /// The requests matching `query` now, oldest first.
    pub async fn list(&self, query: &RequestQuery) -> Result<Vec<ApprovalRequest>, DeskError> {
        Ok(self.gate.store().list(query, self.gate.now()).await?)
    }

    /// One request. A request whose time has run out is recorded as timed out first, so
    /// what is shown is what holds.
    pub async fn show(&self, id: RequestId) -> Result<ApprovalRequest, DeskError> {
        let now = self.gate.now();
        let request = self.gate.store().get(id).await?;
        Ok(self
            .gate
            .record_timeout(&request, now)
            .await?
            .unwrap_or(request))
    }

    /// Approves a pending request. The approval may be used (by `resume`) until the
    /// approval TTL runs out; it carries a signed token naming `approver`.
    pub async fn approve(
        &self,
        id: RequestId,
        approver: &Approver,
    ) -> Result<ApprovalRequest, DeskError> {
        let now = self.gate.now();
        let request = self.gate.store().get(id).await?;
        let approvers = vec![approver.id().to_owned()];
        let token = self.gate.keys().sign(&claims(&request, approvers, now));
        let next = self
            .decide(&request, request.approve(approver, token, now), now)
            .await?;
        let event = AuditEvent::ApprovalGranted {
            approver: approver.id().to_owned(),
            approval_expires_at: next.approval_expires_at().unwrap_or(now),
        };
        self.commit(&request, next, event, now).await
    }

    /// Denies a pending request. `feedback` reaches the agent in
    /// [`StopReason::ApprovalDenied`](crate::StopReason::ApprovalDenied), so the model can
    /// adjust its next step.
    pub async fn deny(
        &self,
        id: RequestId,
        approver: &Approver,
        feedback: Option<&str>,
    ) -> Result<ApprovalRequest, DeskError> {
        let now = self.gate.now();
        let request = self.gate.store().get(id).await?;
        let feedback = feedback.map(str::to_owned);
        let next = request.deny(approver, feedback.clone(), now);
        let next = self.decide(&request, next, now).await?;
        let event = AuditEvent::ApprovalDenied {
            approver: approver.id().to_owned(),
            feedback,
        };
        self.commit(&request, next, event, now).await
    }

    /// Withdraws a pending or approved (not yet used) request.
    pub async fn cancel(
        &self,
        id: RequestId,
        by: &str,
        reason: Option<&str>,
    ) -> Result<ApprovalRequest, DeskError> {
        let now = self.gate.now();
        let request = self.gate.store().get(id).await?;
        let reason = reason.map(str::to_owned);
        let next = self
            .decide(&request, request.cancel(by, reason.clone(), now), now)
            .await?;
        let event = AuditEvent::ApprovalCancelled {
            by: by.to_owned(),
            reason,
        };
        self.commit(&request, next, event, now).await
    }

    /// Turns a refused transition into the desk's error, recording a timeout found on
    /// the way.
    async fn decide(
        &self,
        request: &ApprovalRequest,
        next: Result<ApprovalRequest, TransitionError>,
        now: OffsetDateTime,
    ) -> Result<ApprovalRequest, DeskError> {
        match next {
            Ok(next) => Ok(next),
            Err(TransitionError::Expired { expired_at }) => {
                self.gate.record_timeout(request, now).await?;
                Err(DeskError::Expired {
                    id: request.id(),
                    expired_at,
                })
            }
            Err(TransitionError::WrongState {
                state: RequestState::Expired,
                ..
            }) => Err(DeskError::Expired {
                id: request.id(),
                expired_at: request.timeout_at(),
            }),
            Err(TransitionError::WrongState { state, .. }) => Err(DeskError::AlreadyDecided {
                id: request.id(),
                state,
            }),
        }
    }

    async fn commit(
        &self,
        request: &ApprovalRequest,
        next: ApprovalRequest,
        event: AuditEvent,
        now: OffsetDateTime,
    ) -> Result<ApprovalRequest, DeskError> {
        match self.gate.commit(request, &next, event, now).await {
            Ok(()) => Ok(next),
            Err(GateError::Store(StoreError::Conflict { id, .. })) => {
                // Lost the race: report what the winner made of it.
                let fresh = self.gate.store().get(id).await?;
                Err(DeskError::AlreadyDecided {
                    id,
                    state: fresh.state_at(now),
                })
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// The token claims for approving `request` at `now`.
fn claims(request: &ApprovalRequest, approvers: Vec<String>, now: OffsetDateTime) -> Claims {
    let call = request.call();
    Claims {
        jti: request.id().to_string(),
        run_id: call.run_id().to_owned(),
        call_id: call.call_id().to_owned(),
        tool: call.tool().to_owned(),
        args_hash: request.args_hash(),
        policy_version: request.policy_version().to_string(),
        approvers,
        iat: now.unix_timestamp(),
        exp: request.approval_expiry(now).unix_timestamp(),
    }
}
