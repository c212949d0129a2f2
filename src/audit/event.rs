//! The audit record: a stable, versioned JSON schema.

use std::fmt;

use serde::de::{self, Deserializer};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::ChainLink;
use crate::approval::{ApprovalRequest, RequestId};
use crate::call::{ArgsHash, ToolCall};
use crate::grant::{Grant, GrantId, GrantScope};
use crate::run::KillScope;

/// The version of the audit record's JSON schema. It changes only when a field changes
/// meaning or disappears; new optional fields and new events keep it.
pub const AUDIT_SCHEMA_VERSION: u32 = 1;

/// One line of the audit trail: what happened, to which call, when.
///
/// Serialized as one flat JSON object with the event's name under `"event"`:
///
/// ```json
/// {"schema":1,"at":"2026-01-01T00:00:00Z","event":"approval_granted",
///  "run_id":"run-1","call_id":"call-1","tool":"email.send",
///  "args_hash":"3f6c…","request_id":"9b1d…","policy_version":"aa01…","approver":"ann"}
/// ```
///
/// A record written by a newer version may carry fields this version does not know
/// (a new optional field of a known event): they are kept as read and written back
/// unchanged, so the record's chain hash still verifies.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditRecord {
    /// [`AUDIT_SCHEMA_VERSION`] when written.
    pub schema: u32,
    /// Its place in the trail's hash chain: set by the trail that keeps the record
    /// (a store, a file), absent on a record not yet written.
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<ChainLink>,
    /// When it happened, by the gate's clock.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// The agent run.
    pub run_id: String,
    /// The tool call within the run.
    pub call_id: String,
    /// The tool.
    pub tool: String,
    /// The hash of the arguments (never the arguments themselves); absent when they could
    /// not be hashed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args_hash: Option<ArgsHash>,
    /// The approval request, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<RequestId>,
    /// The version of the policy that decided.
    pub policy_version: String,
    /// Who asked for the call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
    /// The tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// What happened.
    #[serde(flatten)]
    pub event: AuditEvent,
    /// Fields of a newer version's record that this version does not know, kept whole.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub(crate) extra: Option<Box<Map<String, Value>>>,
    /// Whether the store that writes the record counts its call: see
    /// [`counts_call`](Self::counts_call).
    #[serde(skip)]
    pub(crate) counts_call: CountsCall,
}

/// An instruction to the store that writes an [`AuditRecord`], not part of the record:
/// never serialized, never read back, and ignored when records are compared.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CountsCall(pub(crate) bool);

impl PartialEq for CountsCall {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// The fields of an [`AuditRecord`] as read, with the event's and any unknown ones in
/// `rest`.
#[derive(Deserialize)]
struct RecordRepr {
    schema: u32,
    #[serde(flatten, default)]
    chain: Option<ChainLink>,
    #[serde(with = "time::serde::rfc3339")]
    at: OffsetDateTime,
    run_id: String,
    call_id: String,
    tool: String,
    #[serde(default)]
    args_hash: Option<ArgsHash>,
    #[serde(default)]
    request_id: Option<RequestId>,
    policy_version: String,
    #[serde(default)]
    requested_by: Option<String>,
    #[serde(default)]
    tenant: Option<String>,
    #[serde(flatten)]
    rest: Map<String, Value>,
}

impl<'de> Deserialize<'de> for AuditRecord {
    /// Reads the record; fields its event does not have (written by a newer version)
    /// are kept in the record, to be written back as they were.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let r = RecordRepr::deserialize(d)?;
        let rest = Value::Object(r.rest);
        let event = <AuditEvent as Deserialize>::deserialize(&rest).map_err(de::Error::custom)?;
        let extra = match (&event, rest) {
            (AuditEvent::Unknown { .. }, _) => None,
            (_, Value::Object(mut rest)) => {
                let known = serde_json::to_value(&event).map_err(de::Error::custom)?;
                if let Value::Object(known) = known {
                    rest.retain(|k, _| !known.contains_key(k));
                }
                (!rest.is_empty()).then(|| Box::new(rest))
            }
            _ => None,
        };
        Ok(AuditRecord {
            schema: r.schema,
            chain: r.chain,
            at: r.at,
            run_id: r.run_id,
            call_id: r.call_id,
            tool: r.tool,
            args_hash: r.args_hash,
            request_id: r.request_id,
            policy_version: r.policy_version,
            requested_by: r.requested_by,
            tenant: r.tenant,
            event,
            extra,
            counts_call: CountsCall::default(),
        })
    }
}

impl AuditRecord {
    /// A record of `event` for `call` at `at`.
    pub fn new(
        at: OffsetDateTime,
        call: &ToolCall,
        args_hash: Option<ArgsHash>,
        policy_version: &str,
        event: AuditEvent,
    ) -> Self {
        AuditRecord {
            schema: AUDIT_SCHEMA_VERSION,
            chain: None,
            at,
            run_id: call.run_id().to_owned(),
            call_id: call.call_id().to_owned(),
            tool: call.tool().to_owned(),
            args_hash,
            request_id: None,
            policy_version: policy_version.to_owned(),
            requested_by: call.requester().map(str::to_owned),
            tenant: call.tenant().map(str::to_owned),
            event,
            extra: None,
            counts_call: CountsCall::default(),
        }
    }

    /// A record of `event` about `request` (its call, args hash, policy version and id).
    pub fn for_request(at: OffsetDateTime, request: &ApprovalRequest, event: AuditEvent) -> Self {
        AuditRecord::new(
            at,
            request.call(),
            Some(request.args_hash()),
            request.policy_version().as_str(),
            event,
        )
        .with_request(request.id())
    }

    /// The `approval_timeout` record of `expired`, a request that [`ApprovalRequest::expire`]
    /// expired at `at`: what a store's [`sweep_expired`](crate::store::RequestStore::sweep_expired)
    /// writes for each request it expires.
    pub fn timeout(at: OffsetDateTime, expired: &ApprovalRequest) -> Self {
        let from = if expired.approval_expires_at().is_some() {
            "approved"
        } else {
            "pending"
        };
        AuditRecord::for_request(
            at,
            expired,
            AuditEvent::ApprovalTimeout { from: from.into() },
        )
    }

    /// The `grant_used` record of `grant` (as used: its count includes this use) covering
    /// `call` at `at`: what the gate writes with a grant's use
    /// ([`update_grant`](crate::store::GrantStore::update_grant)).
    pub fn grant_used(
        at: OffsetDateTime,
        call: &ToolCall,
        args_hash: ArgsHash,
        policy_version: &str,
        grant: &Grant,
    ) -> Self {
        let event = AuditEvent::GrantUsed {
            grant_id: grant.id(),
            granted_by: grant.created_by().to_owned(),
            uses: grant.uses(),
        };
        AuditRecord::new(at, call, Some(args_hash), policy_version, event)
    }

    /// The `grant_revoked` record of grant `grant_id`, left on `request`, revoked by `by`
    /// at `at`: what the desk writes with a revocation, and a store with each grant that a
    /// cancel or denial ends ([`update`](crate::store::RequestStore::update)).
    pub fn grant_revoked(
        at: OffsetDateTime,
        request: &ApprovalRequest,
        grant_id: GrantId,
        by: &str,
    ) -> Self {
        let event = AuditEvent::GrantRevoked {
            grant_id,
            by: by.to_owned(),
        };
        AuditRecord::for_request(at, request, event)
    }

    /// A record of `event` that goes with no call (a kill switch engaged or released,
    /// read-only mode turned on or off) at `at`, under the policy of `policy_version`:
    /// what a store's [`set_kill_switch`](crate::store::ControlStore::set_kill_switch) and
    /// [`set_read_only`](crate::store::ControlStore::set_read_only) write.
    ///
    /// Its `run_id`, `call_id` and `tool` are empty strings, so that the record keeps
    /// schema 1, where they are required strings, and every reader of it still parses
    /// it; it has no args hash, request, requester or tenant. Who acted is in the event
    /// ([`AuditEvent::actor`]).
    pub fn control(at: OffsetDateTime, policy_version: &str, event: AuditEvent) -> Self {
        AuditRecord {
            schema: AUDIT_SCHEMA_VERSION,
            chain: None,
            at,
            run_id: String::new(),
            call_id: String::new(),
            tool: String::new(),
            args_hash: None,
            request_id: None,
            policy_version: policy_version.to_owned(),
            requested_by: None,
            tenant: None,
            event,
            extra: None,
            counts_call: CountsCall::default(),
        }
    }

    /// The `approval_merged` record of `call`, which [`create`](crate::store::RequestStore::create)
    /// joined to `joined`, the identical request already pending, at `at`: the merged
    /// call's own `call_id`, requester and tenant, its `args_hash`, and the id, policy
    /// version and expiry of the request it joined. What every store writes when it
    /// merges a call, and what the gate hands to its sink.
    pub fn merged(
        at: OffsetDateTime,
        call: &ToolCall,
        args_hash: ArgsHash,
        joined: &ApprovalRequest,
    ) -> Self {
        let event = AuditEvent::ApprovalMerged {
            expires_at: joined.expires_at(),
        };
        AuditRecord::new(
            at,
            call,
            Some(args_hash),
            joined.policy_version().as_str(),
            event,
        )
        .with_request(joined.id())
    }

    /// Whether the store that writes this record adds one tool call to the usage of
    /// `run_id` (as [`add_usage`](crate::store::ControlStore::add_usage) would, at `at`)
    /// in the same transaction: set on the first record of a gated call (its `allow`,
    /// `policy_denied`, `grant_used` or `approval_required`) when the policy sets no
    /// budgets, so that counting the call costs no commit of its own. With budgets, the
    /// gate counts the call before the policy decides, and this is `false`. Always
    /// `false` for a record of any other event.
    ///
    /// Every store honours it in whichever write takes the record:
    /// [`append_audit`](crate::store::TrailWriter::append_audit),
    /// [`create`](crate::store::RequestStore::create) (for the merge record too, when the
    /// call joins a pending request) and
    /// [`update_grant`](crate::store::GrantStore::update_grant). It is an instruction to
    /// the store, not part of the record: never serialized, `false` on every record read
    /// back, and ignored by `==`.
    pub fn counts_call(&self) -> bool {
        // Only a call's first record counts it: a record made from a marked one (the
        // tool's result, a `stopped` after it) never counts the call twice.
        self.counts_call.0
            && matches!(
                self.event,
                AuditEvent::Allow { .. }
                    | AuditEvent::PolicyDenied { .. }
                    | AuditEvent::ApprovalRequired { .. }
                    | AuditEvent::ApprovalMerged { .. }
                    | AuditEvent::GrantUsed { .. }
            )
    }

    /// Marks the record as counting its call ([`counts_call`](Self::counts_call)) when
    /// `counts` is true. A store's [`create`](crate::store::RequestStore::create) carries
    /// the mark of the record it was given over to the merge record it writes instead.
    pub fn counting_call(mut self, counts: bool) -> Self {
        self.counts_call = CountsCall(counts);
        self
    }

    /// Sets the approval request the record belongs to.
    pub fn with_request(mut self, id: RequestId) -> Self {
        self.request_id = Some(id);
        self
    }

    /// The event's name, as in the JSON: `approval_granted`, `policy_denied`, …; `unknown`
    /// for an event this version does not know (see [`AuditEvent::written_name`]).
    pub fn event_name(&self) -> &'static str {
        self.event.name()
    }
}

/// What happened, with the facts particular to it. The JSON names are the field's words.
///
/// Non-exhaustive: newer versions add events. A record of an event this version does not
/// know (written into a shared trail by a newer worker) reads as [`AuditEvent::Unknown`],
/// kept whole, so it writes back as it was read and its chain hash still verifies.
// `remote = "Self"` makes the derives inherent functions, which the hand-written
// `Serialize` and `Deserialize` below call for the events this version knows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum AuditEvent {
    /// The policy allowed the call; it runs next.
    Allow {
        /// The rule that allowed it (empty when the config's default did).
        rule_ids: Vec<String>,
    },
    /// The policy denied the call; it did not run.
    PolicyDenied {
        /// The rules that denied it (empty when the config's default did).
        rule_ids: Vec<String>,
        /// Why.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// The call needs a person's approval; a request was filed.
    ApprovalRequired {
        /// The rules that asked.
        rule_ids: Vec<String>,
        /// Why.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// The risk tier.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tier: Option<String>,
        /// When the request expires unless decided.
        #[serde(with = "time::serde::rfc3339")]
        expires_at: OffsetDateTime,
    },
    /// A call identical to a pending request (same run, tool, args hash, tenant and
    /// requester) joined that request instead of filing its own. The record carries the
    /// merged call's own `call_id` and the `request_id` it joined.
    ApprovalMerged {
        /// When the joined request expires unless decided.
        #[serde(with = "time::serde::rfc3339")]
        expires_at: OffsetDateTime,
    },
    /// An approver approved a request whose quorum needs more approvers; it stays pending.
    ApprovalVote {
        /// Who.
        approver: String,
        /// Approvals so far, this one included.
        votes: u32,
        /// Approvals needed.
        quorum: u32,
    },
    /// The request is approved (its quorum met): it may now be used.
    ApprovalGranted {
        /// Who gave the approval that completed it.
        approver: String,
        /// Everyone who approved it.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        approvers: Vec<String>,
        /// The hash of the arguments as edited by an approver, when edited; the record's
        /// `args_hash` is the call as filed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        approved_args_hash: Option<ArgsHash>,
        /// The argument fields the edit changed.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        changed_fields: Vec<String>,
        /// Until when the approval may be used.
        #[serde(with = "time::serde::rfc3339")]
        approval_expires_at: OffsetDateTime,
    },
    /// A person denied the request.
    ApprovalDenied {
        /// Who.
        approver: String,
        /// Their message for the agent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        feedback: Option<String>,
    },
    /// Nobody decided in time, or the approval was not used in time.
    ApprovalTimeout {
        /// The state that timed out: `pending` or `approved`.
        from: String,
    },
    /// The request was withdrawn.
    ApprovalCancelled {
        /// Who withdrew it.
        by: String,
        /// Why.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// An approver left a standing grant with an approval.
    GrantCreated {
        /// The grant.
        grant_id: GrantId,
        /// Who left it.
        by: String,
        /// Whose calls it covers: `run`, `user` or `tenant`.
        scope: GrantScope,
        /// The tool or pattern it covers.
        grant_tool: String,
        /// When it lapses.
        #[serde(with = "time::serde::rfc3339")]
        expires_at: OffsetDateTime,
        /// How many calls it may cover.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_uses: Option<u32>,
    },
    /// A grant was revoked.
    GrantRevoked {
        /// The grant.
        grant_id: GrantId,
        /// Who revoked it.
        by: String,
    },
    /// A standing grant allowed a call that needed approval; the tool runs next.
    GrantUsed {
        /// The grant.
        grant_id: GrantId,
        /// Who left the grant.
        granted_by: String,
        /// Its uses so far, this one included.
        uses: u32,
    },
    /// An approval was claimed and the tool is about to run.
    ExecutionStarted {
        /// Who approved it.
        approvers: Vec<String>,
        /// The hash of the arguments the tool runs with, when an approver edited them.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        approved_args_hash: Option<ArgsHash>,
    },
    /// The tool ran and succeeded.
    Executed {
        /// `ok`.
        status: String,
    },
    /// The tool ran and returned an error.
    ExecutionFailed {
        /// The error as the tool described it.
        error: String,
    },
    /// The tool was sent the call, and whether it acted is unknown: the connection to it
    /// was lost, say ([`ToolExecutor::in_doubt`](crate::ToolExecutor::in_doubt)). An
    /// approved request stays `executing` until a person settles it.
    ExecutionInDoubt {
        /// The error as the executor described it.
        error: String,
    },
    /// A person settled a request left in doubt (`executing`): it ran, it failed, or it
    /// did not run.
    ExecutionSettled {
        /// Who settled it.
        by: String,
        /// What they found: `ran`, `failed` or `not_run`.
        outcome: crate::approval::Settlement,
        /// What they wrote about it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    /// A transition was undone because an audit sink beside the store's own trail could
    /// not record it: the request is back where it was, and the step did not happen.
    TransitionReverted {
        /// The event of the transition undone: `approval_granted`, `execution_started`, ….
        reverted: String,
        /// Why.
        reason: String,
    },
    /// A kill switch was engaged or released. A record of no call
    /// ([`AuditRecord::control`]).
    KillSwitchChanged {
        /// Who flipped it.
        by: String,
        /// What it stops.
        scope: KillScope,
        /// `true`: engaged; `false`: released.
        engaged: bool,
    },
    /// Read-only mode was turned on or off. A record of no call
    /// ([`AuditRecord::control`]).
    ReadOnlyChanged {
        /// Who turned it.
        by: String,
        /// Whether it is on now.
        on: bool,
    },
    /// The gate stopped the call for a reason not recorded by another event (an args
    /// mismatch at resume, a denied or expired approval met at resume, …).
    Stopped {
        /// The stop reason's name: `args_mismatch`, `approval_denied`, ….
        reason: String,
        /// Details for a person.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
    },
    /// A person who may decide a request still pending was reminded of it: its tier's
    /// `remind_after_seconds` passed. Written once per request, by a notifier.
    ApprovalReminded {
        /// The roles that may approve it (empty: any approver).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        approvers: Vec<String>,
    },
    /// A request still pending was escalated: its tier's `escalate_after_seconds` passed.
    /// Written once per request, by a notifier.
    ApprovalEscalated {
        /// The roles it was escalated to (the tier's `escalate_to`).
        to: Vec<String>,
    },
    /// More approval requests timed out than a notifier's timeout-spike rule allows: of
    /// the `finished` requests that came to an end (decided, cancelled or timed out) in
    /// the last `window_seconds`, `timeouts` timed out. A record of no call
    /// ([`AuditRecord::control`]), written once per episode.
    TimeoutSpike {
        /// Requests that timed out in the window.
        timeouts: u64,
        /// Requests that came to an end in the window, timed out or not.
        finished: u64,
        /// The window's length.
        window_seconds: u64,
    },
    /// A timeout spike is over: the rate fell back under the rule's threshold. A record
    /// of no call ([`AuditRecord::control`]).
    TimeoutSpikeCleared {
        /// Requests that timed out in the window.
        timeouts: u64,
        /// Requests that came to an end in the window, timed out or not.
        finished: u64,
        /// The window's length.
        window_seconds: u64,
    },
    /// A notifier's channel posted a notice about the request that it will refer to
    /// again (a chat message it updates when the request is decided).
    NoticePosted {
        /// The channel's name.
        channel: String,
        /// What the channel refers to it by (a Slack message's channel and `ts`).
        reference: String,
    },
    /// A notifier gave up delivering a record to a channel after its last attempt.
    DeliveryFailed {
        /// The channel's name.
        channel: String,
        /// The `seq` of the record not delivered.
        record_seq: u64,
        /// That record's event: `approval_required`, ….
        record_event: String,
        /// How many attempts were made.
        attempts: u32,
        /// The last attempt's error.
        error: String,
    },
    /// An event this version does not know, written by a newer version into a shared
    /// trail: its name and every other field of its record that this version does not
    /// read, kept as they were, so the record writes back unchanged. Stats and metrics
    /// leave it out; it has no [`actor`](AuditEvent::actor).
    #[serde(skip)]
    Unknown {
        /// The event's name, as under `"event"`.
        name: String,
        /// The record's other fields that this version does not read, as written.
        fields: Map<String, Value>,
    },
}

impl AuditEvent {
    /// The event's name as written under `"event"`: the same as [`name`](Self::name) for
    /// the events this version knows, and the name a newer version gave an
    /// [`AuditEvent::Unknown`].
    pub fn written_name(&self) -> &str {
        match self {
            AuditEvent::Unknown { name, .. } => name,
            known => known.name(),
        }
    }
}

impl Serialize for AuditEvent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            AuditEvent::Unknown { name, fields } => {
                let mut map = s.serialize_map(Some(fields.len() + 1))?;
                map.serialize_entry("event", name)?;
                for (key, value) in fields.iter().filter(|(key, _)| *key != "event") {
                    map.serialize_entry(key, value)?;
                }
                map.end()
            }
            known => AuditEvent::serialize(known, s),
        }
    }
}

impl<'de> Deserialize<'de> for AuditEvent {
    /// Reads an event this version knows as its variant, and any other as
    /// [`AuditEvent::Unknown`], keeping every field.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut fields = Map::<String, Value>::deserialize(d)?;
        let name = match fields.get("event") {
            Some(Value::String(name)) => name.clone(),
            Some(_) => return Err(de::Error::custom("the `event` field is not a string")),
            None => return Err(de::Error::missing_field("event")),
        };
        if is_known_event(&name) {
            return AuditEvent::deserialize(Value::Object(fields)).map_err(de::Error::custom);
        }
        fields.remove("event");
        Ok(AuditEvent::Unknown { name, fields })
    }
}

/// Whether this version has an event named `name`: asks the derived reader with nothing
/// but the name, and sees whether it calls the name an unknown variant.
fn is_known_event(name: &str) -> bool {
    let probe = de::value::MapDeserializer::<_, TagProbe>::new(std::iter::once(("event", name)));
    !matches!(
        AuditEvent::deserialize(probe),
        Err(TagProbe::UnknownVariant)
    )
}

/// The error of [`is_known_event`]'s probe: whether the tag was an unknown variant.
#[derive(Debug)]
enum TagProbe {
    UnknownVariant,
    Other,
}

impl fmt::Display for TagProbe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("probe")
    }
}

impl std::error::Error for TagProbe {}

impl de::Error for TagProbe {
    fn custom<T: fmt::Display>(_: T) -> Self {
        TagProbe::Other
    }

    fn unknown_variant(_: &str, _: &'static [&'static str]) -> Self {
        TagProbe::UnknownVariant
    }
}

impl AuditEvent {
    /// The person who acted, for the events that have one: the approver of a vote, an
    /// approval or a denial; whoever cancelled a request, made or revoked a grant, or
    /// flipped a kill switch or read-only mode.
    pub fn actor(&self) -> Option<&str> {
        match self {
            AuditEvent::ApprovalVote { approver, .. }
            | AuditEvent::ApprovalGranted { approver, .. }
            | AuditEvent::ApprovalDenied { approver, .. } => Some(approver),
            AuditEvent::ApprovalCancelled { by, .. }
            | AuditEvent::GrantCreated { by, .. }
            | AuditEvent::GrantRevoked { by, .. }
            | AuditEvent::ExecutionSettled { by, .. }
            | AuditEvent::KillSwitchChanged { by, .. }
            | AuditEvent::ReadOnlyChanged { by, .. } => Some(by),
            _ => None,
        }
    }

    /// The event's name, as in the JSON: `approval_granted`, `policy_denied`, …; for an
    /// event this version does not know ([`AuditEvent::Unknown`]), `unknown` (see
    /// [`written_name`](Self::written_name)).
    pub fn name(&self) -> &'static str {
        match self {
            AuditEvent::Unknown { .. } => "unknown",
            AuditEvent::Allow { .. } => "allow",
            AuditEvent::PolicyDenied { .. } => "policy_denied",
            AuditEvent::ApprovalRequired { .. } => "approval_required",
            AuditEvent::ApprovalMerged { .. } => "approval_merged",
            AuditEvent::ApprovalVote { .. } => "approval_vote",
            AuditEvent::ApprovalGranted { .. } => "approval_granted",
            AuditEvent::ApprovalDenied { .. } => "approval_denied",
            AuditEvent::ApprovalTimeout { .. } => "approval_timeout",
            AuditEvent::ApprovalCancelled { .. } => "approval_cancelled",
            AuditEvent::GrantCreated { .. } => "grant_created",
            AuditEvent::GrantRevoked { .. } => "grant_revoked",
            AuditEvent::GrantUsed { .. } => "grant_used",
            AuditEvent::ExecutionStarted { .. } => "execution_started",
            AuditEvent::Executed { .. } => "executed",
            AuditEvent::ExecutionFailed { .. } => "execution_failed",
            AuditEvent::ExecutionInDoubt { .. } => "execution_in_doubt",
            AuditEvent::ExecutionSettled { .. } => "execution_settled",
            AuditEvent::TransitionReverted { .. } => "transition_reverted",
            AuditEvent::KillSwitchChanged { .. } => "kill_switch_changed",
            AuditEvent::ReadOnlyChanged { .. } => "read_only_changed",
            AuditEvent::Stopped { .. } => "stopped",
            AuditEvent::ApprovalReminded { .. } => "approval_reminded",
            AuditEvent::ApprovalEscalated { .. } => "approval_escalated",
            AuditEvent::TimeoutSpike { .. } => "timeout_spike",
            AuditEvent::TimeoutSpikeCleared { .. } => "timeout_spike_cleared",
            AuditEvent::DeliveryFailed { .. } => "delivery_failed",
            AuditEvent::NoticePosted { .. } => "notice_posted",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;

    #[test]
    fn serializes_flat_with_the_event_name() {
        let call = ToolCall::new("run-1", "call-1", "email.send", json!({})).with_requester("bob");
        let record = AuditRecord::new(
            datetime!(2026-01-01 00:00:00 UTC),
            &call,
            None,
            "v1",
            AuditEvent::ApprovalDenied {
                approver: "ann".into(),
                feedback: Some("use the template".into()),
            },
        );
        let v = serde_json::to_value(&record).unwrap();
        assert_eq!(
            v,
            json!({
                "schema": 1, "at": "2026-01-01T00:00:00Z", "run_id": "run-1",
                "call_id": "call-1", "tool": "email.send", "policy_version": "v1",
                "requested_by": "bob",
                "event": "approval_denied", "approver": "ann", "feedback": "use the template"
            })
        );
        let back: AuditRecord = serde_json::from_value(v).unwrap();
        assert_eq!(back, record);
        assert_eq!(back.event_name(), "approval_denied");
    }

    #[test]
    fn an_event_this_version_does_not_know_is_kept_whole() {
        let line = json!({
            "schema": 1, "at": "2026-01-01T00:00:00Z", "run_id": "run-1",
            "call_id": "call-1", "tool": "email.send", "policy_version": "v1",
            "seq": 7, "prev_hash": "0".repeat(64), "hash": "1".repeat(64),
            "event": "approval_delegated", "to": "oncall", "level": 2,
            "detail": {"after": [1, 2.5, null]}, "newer_top_level": true
        });
        let record: AuditRecord = serde_json::from_value(line.clone()).unwrap();
        assert_eq!(record.event_name(), "unknown");
        assert_eq!(record.event.written_name(), "approval_delegated");
        assert_eq!(record.event.actor(), None);
        assert_eq!(record.chain.map(|c| c.seq), Some(7));
        let AuditEvent::Unknown { name, fields } = &record.event else {
            panic!("{:?}", record.event);
        };
        assert_eq!(name, "approval_delegated");
        assert_eq!(fields["level"], 2);
        assert!(!fields.contains_key("event"));
        // Written back, it is the line it was read from.
        assert_eq!(serde_json::to_value(&record).unwrap(), line);
    }

    #[test]
    fn known_events_still_read_strictly() {
        let base = json!({
            "schema": 1, "at": "2026-01-01T00:00:00Z", "run_id": "run-1",
            "call_id": "call-1", "tool": "email.send", "policy_version": "v1",
        });
        let with = |extra: Value| {
            let mut v = base.clone();
            v.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            serde_json::from_value::<AuditRecord>(v)
        };
        let known = with(json!({"event": "approval_timeout", "from": "pending"})).unwrap();
        assert_eq!(
            known.event,
            AuditEvent::ApprovalTimeout {
                from: "pending".into()
            }
        );
        // A known event with a field missing is an error, not an unknown event.
        let err = with(json!({"event": "approval_timeout"})).unwrap_err();
        assert!(err.to_string().contains("missing field `from`"), "{err}");
        assert!(with(json!({})).is_err());
        assert!(with(json!({"event": 3})).is_err());
        assert!(is_known_event("stopped"));
        assert!(is_known_event("approval_granted"));
        assert!(!is_known_event("approval_delegated"));
        assert!(!is_known_event("Unknown"));
        assert!(!is_known_event("unknown"));
    }

    #[test]
    fn control_records_keep_schema_1_and_name_who_acted() {
        let at = datetime!(2026-01-01 00:00:00 UTC);
        for (event, name, fields) in [
            (
                AuditEvent::KillSwitchChanged {
                    by: "ops".into(),
                    scope: KillScope::Tenant("acme".into()),
                    engaged: true,
                },
                "kill_switch_changed",
                json!({"scope": {"scope": "tenant", "name": "acme"}, "engaged": true}),
            ),
            (
                AuditEvent::KillSwitchChanged {
                    by: "ops".into(),
                    scope: KillScope::Global,
                    engaged: false,
                },
                "kill_switch_changed",
                json!({"scope": {"scope": "global"}, "engaged": false}),
            ),
            (
                AuditEvent::ReadOnlyChanged {
                    by: "ops".into(),
                    on: true,
                },
                "read_only_changed",
                json!({"on": true}),
            ),
        ] {
            let record = AuditRecord::control(at, "v1", event);
            let mut expected = json!({
                "schema": 1, "at": "2026-01-01T00:00:00Z", "run_id": "", "call_id": "",
                "tool": "", "policy_version": "v1", "event": name, "by": "ops"
            });
            for (k, v) in fields.as_object().unwrap() {
                expected[k] = v.clone();
            }
            let v = serde_json::to_value(&record).unwrap();
            assert_eq!(v, expected);
            let back: AuditRecord = serde_json::from_value(v).unwrap();
            assert_eq!(back, record);
            assert_eq!(back.event_name(), name);
            assert_eq!(back.event.actor(), Some("ops"));
        }
    }
}
