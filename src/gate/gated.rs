//! [`Gated`]: a tool executor behind the gate.

use std::borrow::Cow;

use time::OffsetDateTime;

use super::outcome::{
    ArgsEdit, Executed, GateOutcome, MismatchField, PendingApproval, Stop, StopReason,
};
use super::{Gate, GateError, NotRun, error_chain};
use crate::approval::{ApprovalRequest, RequestId, RequestState};
use crate::audit::{AuditEvent, AuditRecord};
use crate::call::{ArgsHash, ToolCall};
use crate::gate::{Execution, ToolExecutor};
use crate::grant::Grant;
use crate::policy::{Decision, Effect, Policy, RuleId};
use crate::store::{RequestQuery, StoreError};
use crate::token::{Claims, Expectations, UnverifiedToken};

/// A tool executor wrapped by a [`Gate`]: every call is decided by the policy, recorded,
/// and run only when allowed or approved.
///
/// Shaped like tower's wrappers: `new`, `get_ref`, `get_mut`, `into_inner`.
/// [`call`](Self::call) and [`resume`](Self::resume) never wait for a person: they return
/// [`GateOutcome::Pending`] or [`GateOutcome::Stopped`] at once.
#[derive(Debug, Clone)]
pub struct Gated<E> {
    gate: Gate,
    inner: E,
}

type Outcome<E> = GateOutcome<<E as ToolExecutor>::Output, <E as ToolExecutor>::Error>;

impl<E: ToolExecutor> Gated<E> {
    /// Wraps `inner` with `gate`.
    pub fn new(gate: Gate, inner: E) -> Self {
        Gated { gate, inner }
    }

    /// The gate.
    pub fn gate(&self) -> &Gate {
        &self.gate
    }

    /// The wrapped executor.
    pub fn get_ref(&self) -> &E {
        &self.inner
    }

    /// The wrapped executor, mutably.
    pub fn get_mut(&mut self) -> &mut E {
        &mut self.inner
    }

    /// Unwraps the executor.
    pub fn into_inner(self) -> E {
        self.inner
    }

    /// Decides `call` and acts on the decision:
    ///
    /// - `allow`: records `allow`, runs the tool, records its result → [`GateOutcome::Executed`].
    /// - `deny`: records `policy_denied` → [`GateOutcome::Stopped`] with
    ///   [`StopReason::PolicyDenied`].
    /// - `approval_required`: files an approval request (or finds the identical one still
    ///   pending) and records `approval_required` → [`GateOutcome::Pending`].
    ///
    /// Fails only when the store or audit sink fails, and then nothing ran.
    ///
    /// # Cancellation
    ///
    /// Dropping the future (a host's timeout, a cancelled task) leaves:
    ///
    /// - before the request is filed: nothing;
    /// - after it is filed: a pending request, which a person may decide; the same call
    ///   again gets it back (`created = false`);
    /// - after a grant's use is counted: the use, and its `grant_used` record with no
    ///   result after it; the tool may not have run;
    /// - while the tool runs (allowed, or covered by a grant): the tool may have run, and
    ///   its result is not recorded.
    pub async fn call(&self, call: ToolCall) -> Result<Outcome<E>, GateError> {
        let span = crate::observe::call_span(&call);
        crate::observe::traced(span.clone(), self.call_inner(call, span)).await
    }

    async fn call_inner(
        &self,
        call: ToolCall,
        span: crate::observe::Span,
    ) -> Result<Outcome<E>, GateError> {
        let now = self.gate.now();
        let policy = self.gate.policy();
        let args_hash = match ArgsHash::compute_with_limits(call.args(), self.gate.args_limits()) {
            Ok(hash) => hash,
            Err(e) => {
                let reason = StopReason::InvalidArgs(e);
                let record = stop_record(now, &call, None, &policy, &reason);
                self.gate.record(&record).await?;
                return Ok(stopped(reason, None, &policy));
            }
        };
        let controls = self.gate.run_controls(&call, &policy, true, now).await?;
        if let Some(reason) = controls.stop {
            return self
                .stop(now, &call, Some(args_hash), None, &policy, reason)
                .await;
        }
        // Without budgets, the store counts the call with the record written next.
        let counts = controls.count_in_record;
        let decision = policy.evaluate(&call);
        crate::observe::decided(&decision, call.tool());
        match decision.effect() {
            Effect::Allow => {
                let event = AuditEvent::Allow {
                    rule_ids: rule_ids(&decision),
                };
                let version = policy.version().as_str();
                let record = AuditRecord::new(now, &call, Some(args_hash), version, event)
                    .counting_call(counts);
                self.gate.record_before_run(&record).await?;
                Ok(self
                    .execute_then_record(Execution::allowed(call), record)
                    .await)
            }
            Effect::Deny => {
                let event = AuditEvent::PolicyDenied {
                    rule_ids: rule_ids(&decision),
                    reason: decision.reason().map(str::to_owned),
                };
                let version = policy.version().as_str();
                self.gate
                    .record(
                        &AuditRecord::new(now, &call, Some(args_hash), version, event)
                            .counting_call(counts),
                    )
                    .await?;
                Ok(stopped(denied(&decision), None, &policy))
            }
            Effect::ApprovalRequired => {
                if decision.grants_allowed() {
                    let store = self.gate.store().as_ref();
                    let version = policy.version().as_str();
                    match crate::gate::grants::use_grant(
                        store, &call, &args_hash, &decision, version, counts, now,
                    )
                    .await
                    {
                        Ok(Some((grant, record))) => {
                            return self
                                .run_granted(call, args_hash, grant, record, &policy, now)
                                .await;
                        }
                        Ok(None) => {}
                        Err(e) => {
                            // The store may have counted the use and kept its `grant_used`
                            // all the same (its reply lost): say that the call did not run.
                            // Best effort: the caller's error stops the tool anyway.
                            let event = AuditEvent::Stopped {
                                reason: NotRun::StoreFailed.as_str().into(),
                                detail: Some(error_chain(&e)),
                            };
                            let record =
                                AuditRecord::new(now, &call, Some(args_hash), version, event);
                            let _ = self.gate.store().append_audit(&record).await;
                            return Err(e.into());
                        }
                    }
                }
                let preview = policy.preview(&decision, &call);
                let redacted = match policy.redacted(call.args()) {
                    Cow::Owned(redacted) => Some(redacted),
                    Cow::Borrowed(_) => None,
                };
                let request = ApprovalRequest::new(
                    RequestId::new(),
                    call,
                    args_hash,
                    &decision,
                    policy.version().clone(),
                    now,
                )
                .displaying(preview, redacted);
                let event = AuditEvent::ApprovalRequired {
                    rule_ids: rule_ids(&decision),
                    reason: decision.reason().map(str::to_owned),
                    tier: decision.tier().map(str::to_owned),
                    expires_at: request.expires_at(),
                };
                let record = AuditRecord::for_request(now, &request, event).counting_call(counts);
                let filed = self.gate.store().create(request, &record, now).await?;
                if !filed.created {
                    // The store recorded the merge; the sink hears of it too.
                    self.gate.mirror(&filed.record).await?;
                } else if let Err(e) = self.gate.mirror(&filed.record).await {
                    // Withdraw the request the sink did not record, so nobody approves it.
                    let _ = self
                        .gate
                        .withdraw(&filed.request, "audit sink failed".into(), now)
                        .await;
                    return Err(e.into());
                }
                crate::observe::filed(&span, &filed.request, filed.created);
                Ok(GateOutcome::Pending(PendingApproval::of(
                    &filed.request,
                    filed.created,
                )))
            }
        }
    }

    /// [`call`](Self::call), unless a person approved an identical call before: then that
    /// approval runs, once. For a host that keeps no request ids between calls (an MCP
    /// gateway, where the model simply calls the tool again once told it waits for
    /// approval).
    ///
    /// An identical call is one of the same run, tool and args hash, tenant and requester
    /// (its call id may differ). If such a request is approved and its approval unused,
    /// this resumes it ([`resume`](Self::resume), with the filed call id and this call's
    /// roles and mode): the tool runs with the arguments as approved (an approver's edits
    /// included), and the approval is used. Otherwise it is a plain `call`: an identical
    /// request still pending is joined (`created = false`), and once the approval has been
    /// used, the next identical call files a new request. When two identical calls race
    /// for one approval, one runs and the other stops with [`StopReason::ApprovalUsed`].
    ///
    /// Only a call the policy holds for approval is looked for: one the policy in force
    /// allows or denies is a plain `call` (an approval left unused then expires).
    ///
    /// A request that was denied, cancelled or that timed out is not looked for: the next
    /// identical call files a new request. Its feedback reached the trail, and the
    /// console; a host that must tell the model of a denial looks the request up
    /// ([`Desk::list`](crate::desk::Desk::list)) before calling again.
    pub async fn call_or_resume(&self, call: ToolCall) -> Result<Outcome<E>, GateError> {
        // Only a call the policy holds for approval can have an approval waiting: an
        // allowed or denied call costs no look in the store.
        if self.gate.policy().evaluate(&call).effect() != Effect::ApprovalRequired {
            return self.call(call).await;
        }
        let Ok(args_hash) = ArgsHash::compute_with_limits(call.args(), self.gate.args_limits())
        else {
            // `call` stops it with the reason.
            return self.call(call).await;
        };
        let query = RequestQuery {
            state: Some(RequestState::Approved),
            run_id: Some(call.run_id().to_owned()),
            tool: Some(call.tool().to_owned()),
            tenant: call.tenant().map(str::to_owned),
            ..RequestQuery::default()
        };
        let approved = self.gate.store().list(&query, self.gate.now()).await?;
        let found = approved
            .into_iter()
            .find(|r| r.args_hash() == args_hash && crate::store::same_caller(r.call(), &call));
        match found {
            Some(request) => {
                let filed = call.with_call_id(request.call().call_id());
                self.resume(request.id(), filed).await
            }
            None => self.call(call).await,
        }
    }

    /// Decides all the calls of one agent turn, each on its own, and returns one outcome
    /// per call, in order: denying one leaves the others' decisions and approvals intact.
    /// Allowed calls run one after another, in the order given.
    pub async fn call_batch(
        &self,
        calls: impl IntoIterator<Item = ToolCall>,
    ) -> Vec<Result<Outcome<E>, GateError>> {
        let mut outcomes = Vec::new();
        for call in calls {
            outcomes.push(self.call(call).await);
        }
        outcomes
    }

    /// Resumes several filed calls, each on its own; one outcome per pair, in order.
    pub async fn resume_batch(
        &self,
        resumes: impl IntoIterator<Item = (RequestId, ToolCall)>,
    ) -> Vec<Result<Outcome<E>, GateError>> {
        let mut outcomes = Vec::new();
        for (id, call) in resumes {
            outcomes.push(self.resume(id, call).await);
        }
        outcomes
    }

    /// Picks up the call filed as `request_id` and runs it if, and only if, it was
    /// approved and everything still holds:
    ///
    /// - `call` is the call that was approved (same run, call id, tool, args hash, tenant
    ///   and requester), else [`StopReason::ArgsMismatch`];
    /// - still pending → [`GateOutcome::Pending`] again (never blocks);
    /// - denied, cancelled or timed out (even if nothing swept it) → the matching stop;
    /// - the current policy does not deny the call, else [`StopReason::PolicyDenied`];
    /// - the approval's token verifies;
    /// - this resume wins the claim: an approval runs at most once, a second resume gets
    ///   [`StopReason::ApprovalUsed`].
    ///
    /// The executor gets the verified approval and the request id as idempotency key, and
    /// the call as filed (its tenant and requester: a `call` for another tenant or
    /// requester stops with [`MismatchField::Tenant`] or [`MismatchField::Requester`]),
    /// with the approver's edited arguments if any, and the roles and mode given here,
    /// which the policy's re-evaluation sees. When the policy in force asks more of the
    /// approval than it got (a larger quorum, other roles), the call stops with
    /// [`StopReason::ApprovalInsufficient`] and the request is withdrawn.
    ///
    /// # Cancellation
    ///
    /// Dropping the future leaves:
    ///
    /// - before the claim: nothing changed; resume again;
    /// - after the claim (`execution_started` on the record), before, during or after the
    ///   tool and before its result is recorded: the request `Executing`, in doubt. It
    ///   never runs again on its own (every later resume stops with
    ///   [`StopReason::ApprovalUsed`]); a person who may decide it settles it with
    ///   [`Desk::settle`](crate::desk::Desk::settle): it ran, it failed, or it did not run.
    pub async fn resume(
        &self,
        request_id: RequestId,
        call: ToolCall,
    ) -> Result<Outcome<E>, GateError> {
        let span = crate::observe::resume_span(request_id, &call);
        crate::observe::traced(span, self.resume_inner(request_id, call)).await
    }

    async fn resume_inner(
        &self,
        request_id: RequestId,
        call: ToolCall,
    ) -> Result<Outcome<E>, GateError> {
        let now = self.gate.now();
        let policy = self.gate.policy();
        let args_hash = match ArgsHash::compute_with_limits(call.args(), self.gate.args_limits()) {
            Ok(hash) => hash,
            Err(e) => {
                return self
                    .stop(
                        now,
                        &call,
                        None,
                        Some(request_id),
                        &policy,
                        StopReason::InvalidArgs(e),
                    )
                    .await;
            }
        };
        if let Some(reason) = self
            .gate
            .run_controls(&call, &policy, false, now)
            .await?
            .stop
        {
            return self
                .stop(
                    now,
                    &call,
                    Some(args_hash),
                    Some(request_id),
                    &policy,
                    reason,
                )
                .await;
        }
        let request = match self.gate.store().get(request_id).await {
            Ok(r) => r,
            Err(StoreError::NotFound { id }) => {
                let reason = StopReason::UnknownRequest { id };
                return self
                    .stop(now, &call, Some(args_hash), None, &policy, reason)
                    .await;
            }
            Err(e) => return Err(e.into()),
        };
        let reason = if let Some(field) = mismatch(&request, &call, &args_hash) {
            StopReason::ArgsMismatch { field }
        } else {
            match request.state_at(now) {
                RequestState::Pending => {
                    return Ok(GateOutcome::Pending(PendingApproval::of(&request, false)));
                }
                RequestState::Approved => {
                    return self.run_approved(request, call, now, &policy).await;
                }
                RequestState::Expired => {
                    self.gate.record_timeout(&request, now).await?;
                    settled_reason(&request, now)
                }
                _ => settled_reason(&request, now),
            }
        };
        self.stop(
            now,
            &call,
            Some(args_hash),
            Some(request_id),
            &policy,
            reason,
        )
        .await
    }

    /// Runs a call that a standing grant covers, with a token naming the grant's author.
    async fn run_granted(
        &self,
        call: ToolCall,
        args_hash: ArgsHash,
        grant: Grant,
        record: AuditRecord,
        policy: &Policy,
        now: OffsetDateTime,
    ) -> Result<Outcome<E>, GateError> {
        let version = policy.version().as_str();
        // The store wrote this record with the use; the sink gets it before the tool runs.
        self.gate.mirror_before_run(&record).await?;
        let claims = Claims {
            jti: format!("grant:{}:{}", grant.id(), grant.uses()),
            run_id: call.run_id().to_owned(),
            call_id: call.call_id().to_owned(),
            tool: call.tool().to_owned(),
            args_hash,
            policy_version: version.to_owned(),
            approvers: match grant.authors() {
                [] => vec![grant.created_by().to_owned()],
                authors => authors.iter().map(|a| a.id().to_owned()).collect(),
            },
            iat: now.unix_timestamp(),
            exp: grant.expires_at().unix_timestamp(),
        };
        let keys = self.gate.keys();
        let token = keys.sign(&claims);
        let expected = Expectations::for_call(&call, &args_hash);
        let approval = match UnverifiedToken::parse(token.as_str())
            .and_then(|t| t.verify(&keys, &expected, now))
        {
            Ok(approval) => approval,
            Err(e) => {
                let reason = StopReason::InvalidToken(e);
                return self
                    .stop(now, &call, Some(args_hash), None, policy, reason)
                    .await;
            }
        };
        Ok(self
            .execute_then_record(Execution::granted(call, approval), record)
            .await)
    }

    /// Runs a call that needs no approval request, then records its result as
    /// `record` (the record that let it run) with the result's event and time.
    async fn execute_then_record(
        &self,
        execution: Execution,
        mut record: AuditRecord,
    ) -> Outcome<E> {
        let result = self.inner.execute(execution).await;
        let in_doubt = self.in_doubt(&result);
        record.at = self.gate.now();
        record.event = result_event(&result, in_doubt);
        // The call was counted with the record that let it run.
        record = record.counting_call(false);
        let unrecorded = self.gate.record(&record).await.err();
        GateOutcome::Executed(Executed {
            result,
            request_id: None,
            edit: None,
            unrecorded,
            in_doubt,
        })
    }

    async fn run_approved(
        &self,
        request: ApprovalRequest,
        call: ToolCall,
        now: OffsetDateTime,
        policy: &Policy,
    ) -> Result<Outcome<E>, GateError> {
        let id = request.id();
        let hash = request.args_hash();
        // What runs is the approved call: with an approver's edits, if any.
        let edit = request.is_edited().then(|| ArgsEdit {
            original_args_hash: request.args_hash(),
            approved_args_hash: request.approved_args_hash(),
            args: request.approved_args().clone(),
            changed_fields: request.changed_fields().to_vec(),
        });
        let call = match &edit {
            Some(edit) => call.with_args(edit.args.clone()),
            None => call,
        };
        // The policy in force now decides whether the approved call may still run, and
        // whether the approval it got still suffices.
        let decision = policy.evaluate(&call);
        if let Some(shortfall) = request.shortfall(&decision) {
            let reason = StopReason::ApprovalInsufficient { shortfall };
            // The approval was given under rules that no longer hold: it is withdrawn, so
            // that a new call files a request the current rules decide.
            match self.gate.withdraw(&request, reason.to_string(), now).await {
                Ok(()) | Err(GateError::Store(StoreError::Conflict { .. })) => {}
                Err(e) => return Err(e),
            }
            return self
                .stop(now, &call, Some(hash), Some(id), policy, reason)
                .await;
        }
        if decision.effect() == Effect::Deny {
            let event = AuditEvent::PolicyDenied {
                rule_ids: rule_ids(&decision),
                reason: decision.reason().map(str::to_owned),
            };
            let record = AuditRecord::new(now, &call, Some(hash), policy.version().as_str(), event)
                .with_request(id);
            self.gate.record(&record).await?;
            return Ok(stopped(denied(&decision), Some(id), policy));
        }
        let approval = match verify_token(&self.gate, &request, now) {
            Ok(approval) => approval,
            Err(reason) => {
                return self
                    .stop(now, &call, Some(hash), Some(id), policy, reason)
                    .await;
            }
        };
        let claimed = match request.claim(now) {
            Ok(claimed) => claimed,
            Err(_) => {
                let reason = StopReason::ApprovalUsed {
                    state: request.state_at(now),
                };
                return self
                    .stop(now, &call, Some(hash), Some(id), policy, reason)
                    .await;
            }
        };
        let event = AuditEvent::ExecutionStarted {
            approvers: request.approvers().to_vec(),
            approved_args_hash: edit.as_ref().map(|e| e.approved_args_hash),
        };
        match self.gate.commit(&request, &claimed, event, now).await {
            Ok(()) => {}
            Err(GateError::Store(StoreError::Conflict { .. })) => {
                // Another resume claimed it, or it was cancelled, in between.
                let fresh = self.gate.store().get(id).await?;
                let reason = settled_reason(&fresh, now);
                return self
                    .stop(now, &call, Some(hash), Some(id), policy, reason)
                    .await;
            }
            Err(e) => return Err(e),
        }

        let result = self
            .inner
            .execute(Execution::approved(call, approval, id))
            .await;

        let done_at = self.gate.now();
        let in_doubt = self.in_doubt(&result);
        let event = result_event(&result, in_doubt);
        let unrecorded = if in_doubt {
            // The request stays `executing` for a person to settle; the trail says why.
            let record = AuditRecord::for_request(done_at, &claimed, event);
            self.gate.record(&record).await.err()
        } else {
            match claimed.finish(result.is_ok(), done_at) {
                Ok(finished) => self
                    .gate
                    .commit(&claimed, &finished, event, done_at)
                    .await
                    .err(),
                Err(_) => None,
            }
        };
        Ok(GateOutcome::Executed(Executed {
            result,
            request_id: Some(id),
            edit,
            unrecorded,
            in_doubt,
        }))
    }

    /// Whether the executor says `result` leaves it unknown if the tool acted.
    fn in_doubt(&self, result: &Result<E::Output, E::Error>) -> bool {
        result.as_ref().is_err_and(|e| self.inner.in_doubt(e))
    }

    /// Records a stop and returns it.
    async fn stop(
        &self,
        now: OffsetDateTime,
        call: &ToolCall,
        args_hash: Option<ArgsHash>,
        request_id: Option<RequestId>,
        policy: &Policy,
        reason: StopReason,
    ) -> Result<Outcome<E>, GateError> {
        let mut record = stop_record(now, call, args_hash, policy, &reason);
        record.request_id = request_id;
        self.gate.record(&record).await?;
        Ok(stopped(reason, request_id, policy))
    }
}

fn stopped<T, E>(
    reason: StopReason,
    request_id: Option<RequestId>,
    policy: &Policy,
) -> GateOutcome<T, E> {
    GateOutcome::Stopped(Stop {
        reason,
        request_id,
        fallback: policy.fallback(),
    })
}

fn stop_record(
    now: OffsetDateTime,
    call: &ToolCall,
    args_hash: Option<ArgsHash>,
    policy: &Policy,
    reason: &StopReason,
) -> AuditRecord {
    let event = AuditEvent::Stopped {
        reason: reason.name().to_owned(),
        detail: Some(reason.to_string()),
    };
    AuditRecord::new(now, call, args_hash, policy.version().as_str(), event)
}

fn rule_ids(decision: &Decision) -> Vec<String> {
    decision.rule_ids().iter().map(|r| r.to_string()).collect()
}

fn denied(decision: &Decision) -> StopReason {
    StopReason::PolicyDenied {
        rule_ids: decision
            .rule_ids()
            .iter()
            .map(|r| RuleId::trusted(r.as_ref()))
            .collect(),
        reason: decision.reason().map(str::to_owned),
    }
}

/// The record of a tool's result: `executed`, `execution_failed`, or, where the executor
/// cannot tell whether the tool acted, `execution_in_doubt`.
fn result_event<T, E: std::fmt::Display>(result: &Result<T, E>, in_doubt: bool) -> AuditEvent {
    match result {
        Ok(_) => AuditEvent::Executed {
            status: "ok".into(),
        },
        Err(e) if in_doubt => AuditEvent::ExecutionInDoubt {
            error: e.to_string(),
        },
        Err(e) => AuditEvent::ExecutionFailed {
            error: e.to_string(),
        },
    }
}

/// Why a request that is neither pending nor approved at `now` will not run.
fn settled_reason(request: &ApprovalRequest, now: OffsetDateTime) -> StopReason {
    match request.state_at(now) {
        RequestState::Denied => StopReason::ApprovalDenied {
            approver: request.decided_by().unwrap_or_default().to_owned(),
            feedback: request.feedback().map(str::to_owned),
        },
        RequestState::Cancelled => StopReason::ApprovalCancelled {
            by: request.decided_by().unwrap_or_default().to_owned(),
            reason: request.feedback().map(str::to_owned),
        },
        RequestState::Expired => StopReason::ApprovalTimeout {
            expired_at: request.timeout_at(),
        },
        state => StopReason::ApprovalUsed { state },
    }
}

/// What differs between the approved request and the call given to resume.
fn mismatch(
    request: &ApprovalRequest,
    call: &ToolCall,
    args_hash: &ArgsHash,
) -> Option<MismatchField> {
    let approved = request.call();
    if approved.tool() != call.tool() {
        Some(MismatchField::Tool)
    } else if approved.run_id() != call.run_id() {
        Some(MismatchField::RunId)
    } else if approved.call_id() != call.call_id() {
        Some(MismatchField::CallId)
    } else if request.args_hash() != *args_hash && request.approved_args_hash() != *args_hash {
        Some(MismatchField::Args)
    } else if approved.tenant() != call.tenant() {
        Some(MismatchField::Tenant)
    } else if approved.requester() != call.requester() {
        Some(MismatchField::Requester)
    } else {
        None
    }
}

fn verify_token(
    gate: &Gate,
    request: &ApprovalRequest,
    now: OffsetDateTime,
) -> Result<crate::token::VerifiedApproval, StopReason> {
    let token = request.token().ok_or(StopReason::InvalidToken(
        crate::token::TokenError::Malformed {
            reason: "approved request has no token",
            source: None,
        },
    ))?;
    let call = request.call();
    let id = request.id().to_string();
    let hash = request.approved_args_hash();
    let version = request.policy_version().to_string();
    let expected = Expectations::new(call.tool(), &hash, call.run_id())
        .call_id(call.call_id())
        .request_id(&id)
        .policy_version(&version);
    let keys = gate.keys();
    UnverifiedToken::parse(token.as_str())
        .and_then(|t| t.verify(&keys, &expected, now))
        .map_err(StopReason::InvalidToken)
}
