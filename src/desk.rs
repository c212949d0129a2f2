//! The human side of the gate: list and show pending requests, approve, deny, cancel,
//! settle; the desk's refusals and the standing grants it leaves. [`Desk`] and
//! [`DeskError`] are at the crate root too.

pub use crate::approval::{GATE_ACTOR, ParseRequestIdError, Settlement, TransitionError};
pub use crate::grant::{Grant, GrantError, GrantId, MAX_GRANT_LIFETIME, ParseGrantIdError};

use serde_json::Value;
use thiserror::Error;
use time::OffsetDateTime;

use crate::approval::{ApprovalRequest, Approver, RequestId, RequestState};
use crate::audit::{AuditError, AuditEvent, AuditRecord};
use crate::call::{ArgsError, ArgsHash};
use crate::clock::Rfc3339Display;
use crate::gate::{Gate, GateError};
use crate::grant::GrantSpec;
use crate::policy::Effect;
use crate::store::{ListCursor, RequestQuery, StoreError};

/// Why an edit was refused; see [`Desk::approve_with_edits`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EditRefusal {
    /// The policy denies the edited call.
    Denied {
        /// The policy's reason, if it gave one.
        reason: Option<String>,
    },
    /// The edited call needs approval in another risk tier than the request's (whose
    /// approvers and quorum would then apply), or in none.
    OtherTier {
        /// The tier the edited call would need; `None` when it needs no tier.
        tier: Option<String>,
    },
}

impl std::fmt::Display for EditRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EditRefusal::Denied { reason: Some(r) } => f.write_str(r),
            EditRefusal::Denied { reason: None } => {
                f.write_str("the policy denies the edited call")
            }
            EditRefusal::OtherTier { tier } => write!(
                f,
                "the edited call needs approval in tier `{}`, not this request's",
                tier.as_deref().unwrap_or("none")
            ),
        }
    }
}

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
    /// The approver may not decide this request: they asked for the call, belong to
    /// another tenant, lack the tier's roles, or approved it already.
    #[error("approval request `{id}`: {reason}")]
    Refused {
        /// The request.
        id: RequestId,
        /// Why.
        #[source]
        reason: TransitionError,
    },
    /// The edited arguments are refused: the policy denies the edited call, or puts it
    /// in another risk tier.
    #[error("approval request `{id}`: edit refused: {reason}")]
    EditRefused {
        /// The request.
        id: RequestId,
        /// Why.
        reason: EditRefusal,
    },
    /// The edited arguments are beyond the gate's [`ArgsLimits`](crate::call::ArgsLimits)
    /// (too deep or too large). The request stays as it was.
    #[error("approval request `{id}`: edited arguments refused")]
    InvalidArgs {
        /// The request.
        id: RequestId,
        /// What the limits refused.
        #[source]
        reason: ArgsError,
    },
    /// The grant asked for cannot be made; the approval was not given either.
    #[error("approval request `{id}`: grant refused: {reason}")]
    GrantRefused {
        /// The request.
        id: RequestId,
        /// Why.
        #[source]
        reason: GrantError,
    },
    /// No grant has this id.
    #[error("grant `{id}` not found")]
    GrantNotFound {
        /// The id.
        id: GrantId,
    },
    /// The approval store failed. Usually nothing changed; but when the store kept the
    /// change and only its reply was lost, the decision stands: look the request up
    /// ([`Desk::show`]) before deciding again.
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
            StoreError::GrantNotFound { id } => DeskError::GrantNotFound { id },
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
/// at or after the request's `expires_at` gets [`DeskError::Expired`], whether or not
/// anything swept it.
///
/// A desk [bound to one person](Self::for_approver) lists, shows and counts only the
/// requests and grants of that person's tenant, so every surface built on it gets the
/// tenant rule without writing it again.
#[derive(Debug, Clone)]
pub struct Desk {
    gate: Gate,
    viewer: Option<Approver>,
}

impl Desk {
    /// The desk of `gate`, seeing every tenant's requests (for the host itself, or a
    /// surface that applies its own rules).
    pub fn new(gate: Gate) -> Self {
        Desk { gate, viewer: None }
    }

    /// This desk as seen by `approver`: [`pending`](Self::pending), [`list`](Self::list),
    /// [`show`](Self::show) and [`grants`](Self::grants) return only what belongs to
    /// their tenant (a request of another tenant is [`DeskError::NotFound`], as if it did
    /// not exist). Decisions keep taking the person acting, checked by the same rules.
    pub fn for_approver(&self, approver: Approver) -> Desk {
        Desk {
            gate: self.gate.clone(),
            viewer: Some(approver),
        }
    }

    /// The person this desk is bound to, if any.
    pub fn approver(&self) -> Option<&Approver> {
        self.viewer.as_ref()
    }

    /// Whether the bound person (if any) may see a request of `tenant`.
    fn sees(&self, tenant: Option<&str>) -> bool {
        self.viewer
            .as_ref()
            .is_none_or(|v| crate::identity::same_tenant(v.tenant(), tenant))
    }

    /// The requests waiting for a decision now, oldest first.
    pub async fn pending(&self) -> Result<Vec<ApprovalRequest>, DeskError> {
        self.list(&RequestQuery::pending()).await
    }

    /// The requests matching `query` now, oldest first.
    pub async fn list(&self, query: &RequestQuery) -> Result<Vec<ApprovalRequest>, DeskError> {
        let now = self.gate.now();
        let Some(viewer) = &self.viewer else {
            return Ok(self.gate.store().list(query, now).await?);
        };
        if let Some(tenant) = viewer.tenant() {
            if query.tenant.as_deref().is_some_and(|t| t != tenant) {
                return Ok(Vec::new());
            }
            let query = RequestQuery {
                tenant: Some(tenant.to_owned()),
                ..query.clone()
            };
            return Ok(self.gate.store().list(&query, now).await?);
        }
        // Without a tenant the person sees only requests without one: read on, a page
        // at a time, until the limit is met or the store has no more.
        let mut found = Vec::new();
        let mut page = query.clone();
        loop {
            let read = self.gate.store().list(&page, now).await?;
            let full = query.limit.is_some_and(|n| read.len() >= n);
            page.after = read.last().map(ListCursor::after);
            found.extend(read.into_iter().filter(|r| r.call().tenant().is_none()));
            if let Some(limit) = query.limit
                && found.len() >= limit
            {
                found.truncate(limit);
                return Ok(found);
            }
            if !full {
                return Ok(found);
            }
        }
    }

    /// One request. A request whose time has run out is recorded as timed out first, so
    /// what is shown is what holds.
    pub async fn show(&self, id: RequestId) -> Result<ApprovalRequest, DeskError> {
        let now = self.gate.now();
        let request = self.get(id).await?;
        Ok(self
            .gate
            .record_timeout(&request, now)
            .await?
            .unwrap_or(request))
    }

    /// The request, if the bound person may see it.
    async fn get(&self, id: RequestId) -> Result<ApprovalRequest, DeskError> {
        let request = self.gate.store().get(id).await?;
        if !self.sees(request.call().tenant()) {
            return Err(DeskError::NotFound { id });
        }
        Ok(request)
    }

    /// Approves a pending request as `approver`.
    ///
    /// Refused ([`DeskError::Refused`]) when the approver asked for the call, belongs to
    /// another tenant, lacks every role the request's tier names, or approved already.
    /// When the tier's quorum needs more approvers, the request stays pending with this
    /// approval counted (audited as `approval_vote`); the approval that completes the
    /// quorum approves it (`approval_granted`) and signs its token, naming every approver.
    /// The approval may then be used by `resume` until the approval TTL runs out.
    pub async fn approve(
        &self,
        id: RequestId,
        approver: &Approver,
    ) -> Result<ApprovalRequest, DeskError> {
        let now = self.gate.now();
        let request = self.get(id).await?;
        let next = self
            .decide(&request, request.approve(approver, now), now)
            .await?;
        self.record_approval(&request, next, approver, now).await
    }

    /// Approves a pending request with changed arguments (the "edit" of other
    /// frameworks): the approval binds to `args`, and `resume` runs the call with them and
    /// reports what changed, so the host can tell the model.
    ///
    /// Refused with [`DeskError::EditRefused`] when the policy denies the edited call or
    /// puts it in another risk tier than the request's (whose approvers and quorum would
    /// then not apply), and with [`DeskError::InvalidArgs`] when the arguments exceed the
    /// gate's limits; the request is left as it was. Approvals given before the edit no
    /// longer count toward the quorum: they were for other arguments (an "edit" to the
    /// arguments already approved keeps them).
    ///
    /// A value of `args` left as `"[redacted]"` where the request shows `"[redacted]"`
    /// ([`ApprovalRequest::shown_args`]) keeps the value it stands for: edit the shown
    /// arguments and pass them back, and the secrets you never saw stay as they were.
    pub async fn approve_with_edits(
        &self,
        id: RequestId,
        approver: &Approver,
        args: Value,
    ) -> Result<ApprovalRequest, DeskError> {
        let now = self.gate.now();
        // Checked first: arguments beyond the limits may be too deep to drop by recursion.
        if let Err(reason) = ArgsHash::compute_with_limits(&args, self.gate.args_limits()) {
            let mut args = args;
            crate::call::dispose(&mut args);
            return Err(DeskError::InvalidArgs { id, reason });
        }
        let request = self.get(id).await?;
        // A secret left as the placeholder people were shown keeps its approved value.
        let mut args = args;
        crate::policy::restore_redacted(&mut args, request.shown_args(), request.approved_args());
        let hash = ArgsHash::compute_with_limits(&args, self.gate.args_limits())
            .map_err(|reason| DeskError::InvalidArgs { id, reason })?;
        let refused = |reason: EditRefusal| DeskError::EditRefused { id, reason };
        let edited = request.call().clone().with_args(args.clone());
        let decision = self.gate.policy().evaluate(&edited);
        if decision.effect() == Effect::Deny {
            let reason = decision.reason().map(str::to_owned);
            return Err(refused(EditRefusal::Denied { reason }));
        }
        // An edit must not move the call out of the request's tier: otherwise an approver
        // of a light tier could edit a call into one that needs other roles or a quorum.
        if decision.effect() == Effect::ApprovalRequired
            && decision.tier() != request.tier().map(AsRef::as_ref)
        {
            let tier = decision.tier().map(str::to_owned);
            return Err(refused(EditRefusal::OtherTier { tier }));
        }
        // Every later voter sees what will run: the edited call's preview and its
        // arguments with secrets redacted.
        let policy = self.gate.policy();
        let preview = policy.preview(&decision, &edited);
        let redacted = match policy.redacted(edited.args()) {
            std::borrow::Cow::Owned(redacted) => Some(redacted),
            std::borrow::Cow::Borrowed(_) => None,
        };
        let next = request
            .approve_with_edits(approver, args, hash, now)
            .map(|next| next.displaying_edit(preview, redacted));
        let next = self.decide(&request, next, now).await?;
        self.record_approval(&request, next, approver, now).await
    }

    /// Approves a pending request and leaves a standing grant: later calls that the grant
    /// covers (see [`GrantSpec`] and [`Grant::covers`]) are allowed without asking again,
    /// each audited as `grant_used`, until it lapses, is used up, is revoked, or its
    /// request is cancelled. A grant never lifts a `deny`, never covers a call one of its
    /// authors asked for, and covers only calls its authors could have approved under
    /// the policy in force when it is used (their roles, the tier's quorum, the tier's
    /// `grants`).
    ///
    /// On a quorum tier every vote may ask for a grant; the grant is made by the vote
    /// that completes the quorum, with the voters who asked for the same grant as its
    /// authors, and only when they are at least the quorum: otherwise this approval is
    /// refused with [`GrantError::Quorum`] and nothing changes (approve without a grant,
    /// or have the others ask for it too). Refused too ([`DeskError::GrantRefused`],
    /// nothing changed) when the request's tier forbids grants, the spec is out of range
    /// ([`GrantSpec::check`]) or its scope names something the call lacks. When the store
    /// cannot keep the grant or the audit sink cannot record it, the approval is taken
    /// back too (recorded as `transition_reverted`) and the error returned.
    pub async fn approve_with_grant(
        &self,
        id: RequestId,
        approver: &Approver,
        spec: &GrantSpec,
    ) -> Result<(ApprovalRequest, Option<Grant>), DeskError> {
        let now = self.gate.now();
        let request = self.get(id).await?;
        let refused = |reason| DeskError::GrantRefused { id, reason };
        spec.check().map_err(refused)?;
        let next = self
            .decide(&request, request.approve(approver, now), now)
            .await?;
        // Refused on every vote, not only the one that completes the quorum.
        if !request.grants_allowed() {
            return Err(refused(GrantError::Forbidden));
        }
        if next.stored_state() != RequestState::Approved {
            let next = next.with_grant_consent(approver, spec);
            let pending = self.record_approval(&request, next, approver, now).await?;
            return Ok((pending, None));
        }
        let mut authors: Vec<Approver> = request
            .grant_consents()
            .iter()
            .filter(|c| c.spec == *spec && next.approvers().contains(&c.approver.id().to_owned()))
            .map(|c| c.approver.clone())
            .collect();
        authors.push(approver.clone());
        let grant = Grant::from_approval(&next, &authors, spec, now).map_err(refused)?;
        let approved = self.record_approval(&request, next, approver, now).await?;
        // On the record before it can allow anything.
        let event = AuditEvent::GrantCreated {
            grant_id: grant.id(),
            by: approver.id().to_owned(),
            scope: grant.scope(),
            grant_tool: grant.tool().to_owned(),
            expires_at: grant.expires_at(),
            max_uses: grant.max_uses(),
        };
        let record = AuditRecord::for_request(now, &approved, event);
        let failed = match self.gate.store().put_grant(&grant, &record).await {
            Err(e) => DeskError::from(e),
            Ok(()) => match self.gate.mirror(&record).await {
                Ok(()) => return Ok((approved, Some(grant))),
                Err(e) => {
                    // The sink did not record the grant: withdraw it before it allows
                    // anything.
                    let store = self.gate.store().as_ref();
                    let _ = crate::gate::grants::revoke_grant(
                        store,
                        grant.id(),
                        &approved,
                        "approval-gate",
                        now,
                    )
                    .await;
                    DeskError::Audit(e)
                }
            },
        };
        // The approval was asked for with its grant: without the grant it is not given
        // either (best effort, as when the sink refuses a decision).
        let granted = approval_granted_record(&approved, approver, now);
        if let Some(reverted) = self
            .gate
            .revert(&approved, &request, &granted, &failed, now)
            .await
        {
            // The sink heard of the approval: it hears that it was taken back.
            let _ = self.gate.mirror(&reverted).await;
        }
        Err(failed)
    }

    /// Revokes a standing grant as `by`: it covers no call from now on. Refused
    /// ([`DeskError::Refused`]) unless `by` left the grant or may decide its request
    /// (its tenant, a role of its tier). The store records it (`grant_revoked`) with the
    /// revocation; if the sink beside the store then fails, the revocation stands (undoing
    /// it would re-open what it closed) and the error says so.
    pub async fn revoke_grant(&self, grant_id: GrantId, by: &Approver) -> Result<Grant, DeskError> {
        let now = self.gate.now();
        let store = self.gate.store();
        let Some(grant) = store
            .grants(now)
            .await?
            .into_iter()
            .find(|g| g.id() == grant_id)
        else {
            // Not live: revoked already, lapsed, used up, or unknown.
            return Err(DeskError::GrantNotFound { id: grant_id });
        };
        let request = self.get(grant.request_id()).await.map_err(|e| match e {
            DeskError::NotFound { .. } => DeskError::GrantNotFound { id: grant_id },
            e => e,
        })?;
        if !grant.is_author(by.id()) || !crate::identity::same_tenant(grant.tenant(), by.tenant()) {
            request
                .may_decide(by)
                .map_err(|reason| DeskError::Refused {
                    id: request.id(),
                    reason,
                })?;
        }
        let (grant, record) =
            crate::gate::grants::revoke_grant(store.as_ref(), grant_id, &request, by.id(), now)
                .await?;
        if let Some(record) = record {
            self.gate.mirror(&record).await.map_err(DeskError::Audit)?;
        }
        Ok(grant)
    }

    /// The standing grants still live (of the bound person's tenant, on a bound desk).
    pub async fn grants(&self) -> Result<Vec<Grant>, DeskError> {
        let mut grants = self.gate.store().grants(self.gate.now()).await?;
        grants.retain(|g| self.sees(g.tenant()));
        Ok(grants)
    }

    /// Signs the token if `next` completes the quorum, and commits it with its record.
    async fn record_approval(
        &self,
        request: &ApprovalRequest,
        next: ApprovalRequest,
        approver: &Approver,
        now: OffsetDateTime,
    ) -> Result<ApprovalRequest, DeskError> {
        if next.stored_state() == RequestState::Pending {
            let event = AuditEvent::ApprovalVote {
                approver: approver.id().to_owned(),
                votes: u32::try_from(next.approvers().len()).unwrap_or(u32::MAX),
                quorum: next.quorum(),
            };
            return self.commit(request, next, event, now).await;
        }
        let token = self.gate.keys().sign(&next.claims(now));
        let next = next.with_token(token);
        let event = approval_granted_record(&next, approver, now).event;
        self.commit(request, next, event, now).await
    }

    /// Denies a pending request. `feedback` reaches the agent in
    /// [`StopReason::ApprovalDenied`](crate::gate::StopReason::ApprovalDenied), so the model can
    /// adjust its next step.
    pub async fn deny(
        &self,
        id: RequestId,
        approver: &Approver,
        feedback: Option<&str>,
    ) -> Result<ApprovalRequest, DeskError> {
        let now = self.gate.now();
        let request = self.get(id).await?;
        let feedback = feedback.map(str::to_owned);
        let next = request.deny(approver, feedback.clone(), now);
        let next = self.decide(&request, next, now).await?;
        let event = AuditEvent::ApprovalDenied {
            approver: approver.id().to_owned(),
            feedback,
        };
        self.commit(&request, next, event, now).await
    }

    /// Withdraws a pending or approved (not yet used) request as `by`: the person who
    /// asked for the call, or someone who may decide it (its tenant, a role of its tier).
    /// Anyone else is refused ([`DeskError::Refused`]), and so is the gate's own name
    /// ([`GATE_ACTOR`]), which marks the gate's withdrawals on the
    /// trail.
    ///
    /// The standing grants that the request's approval left end with it, recorded as
    /// `grant_revoked` in the same transaction: a cancel means no more runs on its word.
    pub async fn cancel(
        &self,
        id: RequestId,
        by: &Approver,
        reason: Option<&str>,
    ) -> Result<ApprovalRequest, DeskError> {
        let now = self.gate.now();
        let request = self.get(id).await?;
        let reason = reason.map(str::to_owned);
        let next = self
            .decide(&request, request.cancel(by, reason.clone(), now), now)
            .await?;
        let event = AuditEvent::ApprovalCancelled {
            by: by.id().to_owned(),
            reason,
        };
        // The store ends the request's grants with the cancel; the sink hears of it.
        self.commit(&request, next, event, now).await
    }

    /// Settles a request left in doubt (`executing`: its `resume` was dropped, or its
    /// process died, while the tool ran) with what `by` found out: it ran, it failed, or
    /// it did not run (see [`ApprovalRequest::settle`]). `by` must be able to decide the
    /// request (tenant, tier roles). Recorded as `execution_settled`. Settling never runs
    /// the tool; a request settled as not run stops its `resume` as cancelled.
    pub async fn settle(
        &self,
        id: RequestId,
        by: &Approver,
        outcome: Settlement,
        note: Option<&str>,
    ) -> Result<ApprovalRequest, DeskError> {
        let now = self.gate.now();
        let request = self.get(id).await?;
        let note = note.map(str::to_owned);
        let next = request.settle(by, outcome, note.clone(), now);
        let next = self.decide(&request, next, now).await?;
        let event = AuditEvent::ExecutionSettled {
            by: by.id().to_owned(),
            outcome,
            note,
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
            Err(reason) => Err(DeskError::Refused {
                id: request.id(),
                reason,
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

/// The `approval_granted` record of `approved`, whose quorum `approver` completed at `now`.
fn approval_granted_record(
    approved: &ApprovalRequest,
    approver: &Approver,
    now: OffsetDateTime,
) -> AuditRecord {
    let event = AuditEvent::ApprovalGranted {
        approver: approver.id().to_owned(),
        approvers: approved.approvers().to_vec(),
        approved_args_hash: approved.is_edited().then(|| approved.approved_args_hash()),
        changed_fields: approved.changed_fields().to_vec(),
        approval_expires_at: approved.approval_expires_at().unwrap_or(now),
    };
    AuditRecord::for_request(now, approved, event)
}
