//! What `call` and `resume` return: [`GateOutcome`] and its parts.

use std::fmt;

use serde_json::Value;
use time::OffsetDateTime;

use super::GateError;
use crate::approval::ApprovalShortfall;
use crate::approval::{ApprovalRequest, RequestId, RequestState};
use crate::call::{ArgsError, ArgsHash};
use crate::policy::Fallback;
use crate::policy::{RuleId, TierName};
use crate::run::{Budget, KillScope};
use crate::token::TokenError;

/// What became of a gated call. A value, not an error: `Err(GateError)` is kept for
/// infrastructure faults.
///
/// The enum is exhaustive on purpose: a host's `match` stops compiling when an outcome is
/// added, rather than silently mishandling it.
#[derive(Debug)]
pub enum GateOutcome<T, E> {
    /// The tool ran; its own result is inside, success or failure.
    Executed(Executed<T, E>),
    /// A person must decide first. Nothing ran; resume later with the request id.
    Pending(PendingApproval),
    /// The call will not run. The reason says why.
    Stopped(Stop),
}

impl<T, E> GateOutcome<T, E> {
    /// The execution, if the tool ran.
    pub fn executed(&self) -> Option<&Executed<T, E>> {
        match self {
            GateOutcome::Executed(e) => Some(e),
            _ => None,
        }
    }

    /// The pending approval, if a person must decide.
    pub fn pending(&self) -> Option<&PendingApproval> {
        match self {
            GateOutcome::Pending(p) => Some(p),
            _ => None,
        }
    }

    /// The stop, if the call will not run.
    pub fn stopped(&self) -> Option<&Stop> {
        match self {
            GateOutcome::Stopped(s) => Some(s),
            _ => None,
        }
    }

    /// The outcome's name: `executed`, `pending` or `stopped`.
    pub fn name(&self) -> &'static str {
        match self {
            GateOutcome::Executed(_) => "executed",
            GateOutcome::Pending(_) => "pending",
            GateOutcome::Stopped(_) => "stopped",
        }
    }
}

/// The tool ran.
#[derive(Debug)]
#[non_exhaustive]
pub struct Executed<T, E> {
    /// What the tool returned.
    pub result: Result<T, E>,
    /// The approval request it ran under; `None` when the policy allowed it outright.
    pub request_id: Option<RequestId>,
    /// Set when an approver edited the arguments: the tool ran with the edited ones, and
    /// the host should tell the model what changed.
    pub edit: Option<ArgsEdit>,
    /// Set when the tool ran but its result could not be recorded (store or audit sink
    /// failed afterwards): the request stays `Executing`, in doubt, and the audit trail
    /// lacks the result. The output is still handed back, since the write happened.
    pub unrecorded: Option<GateError>,
    /// Set when the tool's error leaves it unknown whether it acted
    /// ([`ToolExecutor::in_doubt`](crate::ToolExecutor::in_doubt)): the trail records
    /// `execution_in_doubt`, and an approved request stays `executing` until a person
    /// settles it. Tell the model it may have run, and do not send it again.
    pub in_doubt: bool,
}

/// How an approver changed a call's arguments before approving it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ArgsEdit {
    /// The hash of the arguments the model proposed.
    pub original_args_hash: ArgsHash,
    /// The hash of the arguments that were approved and run.
    pub approved_args_hash: ArgsHash,
    /// The arguments that were approved and run.
    pub args: Value,
    /// The fields that changed (`args.to`, …; `args` when the arguments are not an
    /// object).
    pub changed_fields: Vec<String>,
}

/// A call waiting for a person. Nothing ran.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct PendingApproval {
    /// The request to resume with.
    pub request_id: RequestId,
    /// When the request expires unless decided.
    pub expires_at: OffsetDateTime,
    /// The tool.
    pub tool: String,
    /// The call id the request is bound to. For a repeated identical call, this is the
    /// first call's id: resume with that call.
    pub call_id: String,
    /// The rules that asked for approval.
    pub rule_ids: Vec<RuleId>,
    /// The policy's reason.
    pub reason: Option<String>,
    /// The risk tier.
    pub tier: Option<TierName>,
    /// `true` when this call filed the request, `false` when an identical call had
    /// already filed it (or when resuming a request still pending).
    pub created: bool,
}

impl PendingApproval {
    pub(crate) fn of(request: &ApprovalRequest, created: bool) -> Self {
        PendingApproval {
            request_id: request.id(),
            expires_at: request.expires_at(),
            tool: request.call().tool().to_owned(),
            call_id: request.call().call_id().to_owned(),
            rule_ids: request.rule_ids().to_vec(),
            reason: request.reason().map(str::to_owned),
            tier: request.tier().cloned(),
            created,
        }
    }
}

/// A call that will not run, and why.
#[derive(Debug)]
#[non_exhaustive]
pub struct Stop {
    /// Why.
    pub reason: StopReason,
    /// The approval request involved, if any.
    pub request_id: Option<RequestId>,
    /// What the policy says the host should do now (`approvals.fallback_when_not_approved`).
    pub fallback: Fallback,
}

impl Stop {
    /// Whether the host should end the run (`fallback_when_not_approved: stop`) rather
    /// than hand [`message`](Self::message) back to the model as the tool's result.
    pub fn ends_run(&self) -> bool {
        self.fallback == Fallback::Stop
    }

    /// A sentence for the model, saying why the call did not run.
    pub fn message(&self) -> String {
        self.reason.to_string()
    }
}

/// Why a call did not run. Names follow the field: `policy_denied`, `approval_denied`,
/// `approval_timeout`, `approval_cancelled`.
#[derive(Debug)]
pub enum StopReason {
    /// The policy denies the call.
    PolicyDenied {
        /// The rules that denied it (empty when the config's default did).
        rule_ids: Vec<RuleId>,
        /// The policy's reason.
        reason: Option<String>,
    },
    /// A person denied the approval request.
    ApprovalDenied {
        /// Who.
        approver: String,
        /// Their message for the agent, so the model can adjust.
        feedback: Option<String>,
    },
    /// Nobody decided in time, or the approval was not used in time.
    ApprovalTimeout {
        /// When it expired.
        expired_at: OffsetDateTime,
    },
    /// The request was withdrawn.
    ApprovalCancelled {
        /// Who withdrew it.
        by: String,
        /// Why.
        reason: Option<String>,
    },
    /// The call given to `resume` is not the call that was approved.
    ArgsMismatch {
        /// What differs.
        field: MismatchField,
    },
    /// The approval was claimed by an earlier `resume`: a tool runs at most once per
    /// approval.
    ApprovalUsed {
        /// Where the request stands: `executing` (running, or in doubt after a crash),
        /// `executed` or `failed`.
        state: RequestState,
    },
    /// The arguments are larger or deeper than the gate's limits.
    InvalidArgs(ArgsError),
    /// The approval's token did not verify (a removed key, or a tampered store).
    InvalidToken(TokenError),
    /// No approval request has the id given to `resume`.
    UnknownRequest {
        /// The id given.
        id: RequestId,
    },
    /// A kill switch is engaged for this call: the config's
    /// (`controls.kill_switch.enabled`, scope [`KillScope::Global`]) or one engaged in the
    /// store ([`Gate::set_kill_switch`](crate::gate::Gate::set_kill_switch)).
    KillSwitch {
        /// Which switch.
        scope: KillScope,
        /// Where it was set.
        source: SwitchSource,
    },
    /// The call was approved, but the policy in force now asks more of its approval than
    /// it got (a larger quorum, other roles): it did not run, and the request was
    /// withdrawn (cancelled by the gate). Calling again files a new request under the
    /// policy in force.
    ApprovalInsufficient {
        /// What the approval lacks.
        shortfall: ApprovalShortfall,
    },
    /// Read-only mode is on and the tool is not a read.
    ReadOnly,
    /// The run used up one of its budgets.
    BudgetExceeded {
        /// Which budget.
        budget: Budget,
        /// Its limit.
        limit: f64,
        /// What the run has used.
        used: f64,
    },
}

impl StopReason {
    /// The reason's name, as in the audit trail: `policy_denied`, `args_mismatch`, ….
    pub fn name(&self) -> &'static str {
        match self {
            StopReason::PolicyDenied { .. } => "policy_denied",
            StopReason::ApprovalDenied { .. } => "approval_denied",
            StopReason::ApprovalTimeout { .. } => "approval_timeout",
            StopReason::ApprovalCancelled { .. } => "approval_cancelled",
            StopReason::ArgsMismatch { .. } => "args_mismatch",
            StopReason::ApprovalUsed { .. } => "approval_used",
            StopReason::InvalidArgs(_) => "invalid_args",
            StopReason::InvalidToken(_) => "invalid_token",
            StopReason::UnknownRequest { .. } => "unknown_request",
            StopReason::KillSwitch { .. } => "kill_switch",
            StopReason::ApprovalInsufficient { .. } => "approval_insufficient",
            StopReason::ReadOnly => "read_only",
            StopReason::BudgetExceeded { .. } => "budget_exceeded",
        }
    }
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopReason::PolicyDenied { reason, .. } => match reason {
                Some(r) => write!(f, "the policy denies this call: {r}"),
                None => f.write_str("the policy denies this call"),
            },
            StopReason::ApprovalDenied { approver, feedback } => match feedback {
                Some(fb) => write!(f, "{approver} denied this call: {fb}"),
                None => write!(f, "{approver} denied this call"),
            },
            StopReason::ApprovalTimeout { .. } => f.write_str("nobody approved this call in time"),
            StopReason::ApprovalCancelled { by, reason } => match reason {
                Some(r) => write!(f, "{by} cancelled this call: {r}"),
                None => write!(f, "{by} cancelled this call"),
            },
            StopReason::ArgsMismatch { field } => {
                write!(f, "this call's {field} differs from the approved call's")
            }
            StopReason::ApprovalUsed { state } => {
                write!(f, "this approval was used already (the request is {state})")
            }
            StopReason::InvalidArgs(e) => write!(f, "invalid arguments: {e}"),
            StopReason::InvalidToken(e) => write!(f, "the approval token is invalid: {e}"),
            StopReason::UnknownRequest { id } => write!(f, "no approval request `{id}`"),
            StopReason::KillSwitch { scope, source } => match source {
                SwitchSource::Config => f.write_str("the config's kill switch is on"),
                SwitchSource::Store => write!(f, "the {scope} kill switch is engaged"),
            },
            StopReason::ApprovalInsufficient { shortfall } => {
                write!(f, "this call's approval no longer suffices: {shortfall}")
            }
            StopReason::ReadOnly => f.write_str("read-only mode is on and this tool writes"),
            StopReason::BudgetExceeded {
                budget,
                limit,
                used,
            } => write!(
                f,
                "the run is over its budget `{budget}` ({used} of {limit})"
            ),
        }
    }
}

/// Where a kill switch was set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SwitchSource {
    /// In the policy config: `controls.kill_switch.enabled`.
    Config,
    /// In the store, by a person at run time, for every worker sharing it.
    Store,
}

/// Which part of a resumed call differs from the approved one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MismatchField {
    /// The tool.
    Tool,
    /// The run id.
    RunId,
    /// The tool call id.
    CallId,
    /// The arguments (their hash).
    Args,
    /// The tenant: an approval is for the tenant whose call was filed.
    Tenant,
    /// Who asked for the call: an approval is for the person whose call was filed.
    Requester,
}

impl fmt::Display for MismatchField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MismatchField::Tool => "tool",
            MismatchField::RunId => "run id",
            MismatchField::CallId => "call id",
            MismatchField::Args => "arguments",
            MismatchField::Tenant => "tenant",
            MismatchField::Requester => "requester",
        })
    }
}
