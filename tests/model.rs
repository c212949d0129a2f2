//! Model-based tests: random sequences of calls, approvals (plain, with edits, with a
//! standing grant, toward a quorum), denials, cancels, clock moves, sweeps, resumes and
//! grant uses, run against a small reference model of the request state machine in
//! DESIGN.md, on every store. After every step the store's requests, the executor's runs,
//! the standing grants and the audit trail are checked against the model and against the
//! invariants every store keeps.
//!
//! Failures proptest finds are kept in `tests/model.regressions` and replayed first; each
//! real defect found this way also has a named test at the end of this file with its
//! shrunk sequence of steps.
//!
//! `PROPTEST_CASES` raises the number of cases (for every backend). PostgreSQL runs when
//! `APPROVAL_GATE_TEST_POSTGRES_URL` is set, each case in a schema of its own.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use approval_gate::{
    ApprovalRequest, ApprovalStore, Approver, ArgsHash, DeskError, Execution, Gate, GateError,
    GateOutcome, Gated, GrantScope, GrantSpec, Key, Keyring, ManualClock, MemoryStore, Policy,
    RequestId, RequestState, StopReason, ToolCall, ToolExecutor,
    desk::{GrantId, TransitionError},
    outcome::MismatchField,
    trail::{AuditQuery, AuditRecord, verify_chain},
};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::macros::datetime;

// ---------------------------------------------------------------------------------------
// The world: a policy with one tool per behaviour, runs, argument variants, approvers.
// ---------------------------------------------------------------------------------------

const POLICY: &str = "\
approvals:
  ttl_seconds: 300
  approval_ttl_seconds: 900
tiers:
  quick:
    ttl_seconds: 60
    approval_ttl_seconds: 30
    grants: false
  pair:
    approvers: [finance]
    quorum: 2
    ttl_seconds: 120
    approval_ttl_seconds: 60
    grants: false
  board:
    approvers: [finance]
    quorum: 2
    ttl_seconds: 120
    approval_ttl_seconds: 60
  standing:
    ttl_seconds: 90
    approval_ttl_seconds: 45
rules:
  - id: reads
    tool: kb.search
    effect: allow
  - id: drops
    tool: db.drop
    effect: deny
    reason: nobody drops tables
  - id: email
    tool: email.send
    effect: approval_required
    tier: quick
  - id: email-outside
    tool: email.send
    effect: deny
    reason: no mail to outsiders
    when: { field: args.to, matches: '@evil' }
  - id: wires
    tool: payments.wire
    effect: approval_required
    tier: pair
  - id: tickets
    tool: ticket.close
    effect: approval_required
    tier: standing
  - id: vault
    tool: vault.open
    effect: approval_required
    tier: board
";

/// A risk tier as the model knows it.
#[derive(Debug)]
struct TierSpec {
    decision_ttl: i64,
    approval_ttl: i64,
    quorum: usize,
    role: Option<&'static str>,
    grants: bool,
}

const QUICK: TierSpec = TierSpec {
    decision_ttl: 60,
    approval_ttl: 30,
    quorum: 1,
    role: None,
    grants: false,
};
const PAIR: TierSpec = TierSpec {
    decision_ttl: 120,
    approval_ttl: 60,
    quorum: 2,
    role: Some("finance"),
    grants: false,
};
/// A quorum tier whose approvers may leave grants: a grant needs two of them.
const BOARD: TierSpec = TierSpec {
    decision_ttl: 120,
    approval_ttl: 60,
    quorum: 2,
    role: Some("finance"),
    grants: true,
};
const STANDING: TierSpec = TierSpec {
    decision_ttl: 90,
    approval_ttl: 45,
    quorum: 1,
    role: None,
    grants: true,
};

#[derive(Debug, Clone, Copy)]
enum Kind {
    Allow,
    Deny,
    Approval(&'static TierSpec),
}

const TOOLS: [(&str, Kind); 6] = [
    ("kb.search", Kind::Allow),
    ("db.drop", Kind::Deny),
    ("email.send", Kind::Approval(&QUICK)),
    ("payments.wire", Kind::Approval(&PAIR)),
    ("ticket.close", Kind::Approval(&STANDING)),
    ("vault.open", Kind::Approval(&BOARD)),
];
const EMAIL: usize = 2;
const TICKET: usize = 4;

const RUNS: [&str; 3] = ["run-a", "run-b", "run-c"];

/// Every call is asked for by `bob` of tenant `acme`.
const REQUESTER: &str = "bob";

/// `bob` is also an approver: he may deny his own call but never approve it.
const APPROVERS: [(&str, &str); 4] = [
    ("ann", "finance"),
    ("cid", "finance"),
    ("bob", "finance"),
    ("dan", "support"),
];

/// The argument variants. Variant 2 is variant 0 in another key order and number form
/// (same hash); variant 3 is denied for `email.send`; the tool fails on variant 4.
fn args(variant: usize) -> Value {
    match variant {
        0 => json!({"to": "ann@ok.example", "n": 1}),
        1 => json!({"to": "cid@ok.example", "n": 2}),
        2 => json!({"n": 1.0, "to": "ann@ok.example"}),
        3 => json!({"to": "x@evil.example", "n": 1}),
        _ => json!({"to": "ann@ok.example", "n": 3}),
    }
}
const ARGS: usize = 5;

/// The variant whose hash `variant` has.
fn class(variant: usize) -> usize {
    if variant == 2 { 0 } else { variant }
}

/// Whether the policy denies `tool` with arguments of class `c`.
fn denied(tool: usize, c: usize) -> bool {
    matches!(TOOLS[tool].1, Kind::Deny) || (tool == EMAIL && c == 3)
}

/// Whether the tool succeeds with arguments of class `c`.
fn succeeds(c: usize) -> bool {
    c != 4
}

const T0: OffsetDateTime = datetime!(2026-01-01 00:00:00 UTC);

fn secs(s: i64) -> time::Duration {
    time::Duration::seconds(s)
}

/// `t` cut to the whole second: approvals and grants end on a whole second, like the
/// `exp` of their tokens.
fn whole(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_nanosecond(0).unwrap()
}

// ---------------------------------------------------------------------------------------
// Steps.
// ---------------------------------------------------------------------------------------

/// One step. Request indices pick among the requests filed so far, counted back from the
/// latest, modulo their number.
#[derive(Debug, Clone)]
enum Op {
    /// An agent calls `TOOLS[tool]` in `RUNS[run]` with `args(args)`, with a fresh call id.
    Call {
        run: usize,
        tool: usize,
        args: usize,
    },
    /// An approver approves, plainly, with edits, or leaving a standing grant.
    Approve { req: usize, by: usize, how: How },
    /// An approver denies.
    Deny { req: usize, by: usize },
    /// Someone cancels: the requester, an approver, or someone without the tier's role.
    Cancel { req: usize, by: usize },
    /// The clock moves on.
    Advance { millis: u64 },
    /// The clock moves to the request's deadline plus `millis` (-1000, -500 or 0), if
    /// that is later than now.
    ToDeadline { req: usize, millis: i64 },
    /// A sweeper records timeouts.
    Sweep,
    /// The agent runtime resumes a request.
    Resume { req: usize, with: ResumeWith },
}

#[derive(Debug, Clone)]
enum How {
    Plain,
    Edit {
        args: usize,
    },
    Grant {
        lifetime: u64,
        same_args: bool,
        max_uses: Option<u32>,
        /// `tool_pattern("*")`: every tool, in whatever tier its authors may approve.
        any_tool: bool,
    },
}

/// What a grant was asked for with: lifetime, same args, max uses, any tool.
type GrantKey = (u64, bool, Option<u32>, bool);

/// The call handed to `resume`.
#[derive(Debug, Clone)]
enum ResumeWith {
    /// The call as filed.
    Filed,
    /// The call with the arguments an approver approved (as filed when not edited).
    Edited,
    /// The call with other arguments.
    Args(usize),
    /// Another call id.
    CallId,
    /// Another run.
    Run,
    /// Another tenant (same run, call id, tool and arguments).
    Tenant,
    /// Another requester (same run, call id, tool and arguments).
    Requester,
}

use How::{Edit, Grant, Plain};
use Op::{Advance, Approve, Call, Cancel, Deny, Resume, Sweep, ToDeadline};

fn how() -> impl Strategy<Value = How> {
    prop_oneof![
        3 => Just(Plain),
        2 => (0..ARGS).prop_map(|args| Edit { args }),
        2 => (
            prop_oneof![Just(20u64), Just(100)],
            any::<bool>(),
            prop_oneof![Just(None), Just(Some(1u32)), Just(Some(2))],
            any::<bool>(),
        )
            .prop_map(|(lifetime, same_args, max_uses, any_tool)| Grant {
                lifetime,
                same_args,
                max_uses,
                any_tool,
            }),
    ]
}

fn resume_with() -> impl Strategy<Value = ResumeWith> {
    prop_oneof![
        5 => Just(ResumeWith::Filed),
        2 => Just(ResumeWith::Edited),
        2 => (0..ARGS).prop_map(ResumeWith::Args),
        1 => Just(ResumeWith::CallId),
        1 => Just(ResumeWith::Run),
        1 => Just(ResumeWith::Tenant),
        1 => Just(ResumeWith::Requester),
    ]
}

fn call_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0..RUNS.len(), 0..TOOLS.len(), 0..ARGS)
            .prop_map(|(run, tool, args)| Call { run, tool, args }),
        // Calls a grant may cover.
        1 => (0..RUNS.len(), 0..ARGS).prop_map(|(run, args)| Call { run, tool: TICKET, args }),
    ]
}

/// Mostly the approvers of every tier; `bob` (the requester) and `dan` (no `finance`)
/// less often.
fn by() -> impl Strategy<Value = usize> {
    prop_oneof![3 => Just(0usize), 3 => Just(1), 1 => Just(2), 1 => Just(3)]
}

fn op() -> impl Strategy<Value = Op> {
    // Counted back from the latest request: mostly the last two.
    let req = prop_oneof![3 => 0..2usize, 1 => 0..8usize];
    let millis = prop_oneof![
        3 => prop_oneof![Just(500u64), Just(1_000), Just(5_000)],
        2 => prop_oneof![Just(29_000u64), Just(30_000), Just(31_000), Just(45_000), Just(60_000)],
        1 => prop_oneof![Just(90_000u64), Just(121_000)],
    ];
    prop_oneof![
        6 => call_op(),
        7 => (req.clone(), by(), how()).prop_map(|(req, by, how)| Approve { req, by, how }),
        1 => (req.clone(), by()).prop_map(|(req, by)| Deny { req, by }),
        1 => (req.clone(), by()).prop_map(|(req, by)| Cancel { req, by }),
        2 => millis.prop_map(|millis| Advance { millis }),
        1 => (req.clone(), prop_oneof![Just(-1_000i64), Just(-500), Just(0)])
            .prop_map(|(req, millis)| ToDeadline { req, millis }),
        1 => Just(Sweep),
        5 => (req, resume_with()).prop_map(|(req, with)| Resume { req, with }),
    ]
}

/// A case: where the clock starts (a whole second, or half past) and the steps.
#[derive(Debug, Clone)]
struct Case {
    start_millis: i64,
    ops: Vec<Op>,
}

fn case(max_ops: usize) -> impl Strategy<Value = Case> {
    (
        prop_oneof![Just(0i64), Just(500)],
        call_op(),
        proptest::collection::vec(op(), 0..max_ops),
    )
        .prop_map(|(start_millis, first, mut ops)| {
            ops.insert(0, first);
            Case { start_millis, ops }
        })
}

// ---------------------------------------------------------------------------------------
// The reference model.
// ---------------------------------------------------------------------------------------

/// A request as the model sees it.
#[derive(Debug, Clone)]
struct MReq {
    id: RequestId,
    call: ToolCall,
    run: usize,
    tool: usize,
    class: usize,
    tier: &'static TierSpec,
    /// The state as recorded (expiry recorded only by sweeps and by decisions and resumes
    /// that find the request timed out).
    stored: RequestState,
    expires_at: OffsetDateTime,
    approval_expires_at: Option<OffsetDateTime>,
    votes: Vec<String>,
    /// The variant an approver edited the arguments to, when its hash differs.
    edited: Option<usize>,
    decided_by: Option<String>,
    /// The voters who asked for a grant with their vote, and which.
    consents: Vec<(&'static str, &'static str, GrantKey)>,
}

impl MReq {
    fn effective(&self, now: OffsetDateTime) -> RequestState {
        match self.stored {
            RequestState::Pending if now >= self.expires_at => RequestState::Expired,
            RequestState::Approved if self.approval_expires_at.is_some_and(|t| now >= t) => {
                RequestState::Expired
            }
            s => s,
        }
    }

    fn approved_class(&self) -> usize {
        self.edited.map_or(self.class, class)
    }

    fn timeout_at(&self) -> OffsetDateTime {
        self.approval_expires_at.unwrap_or(self.expires_at)
    }

    fn deadline(&self) -> Option<OffsetDateTime> {
        match self.stored {
            RequestState::Pending => Some(self.expires_at),
            RequestState::Approved => self.approval_expires_at,
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
struct MGrant {
    id: GrantId,
    request: RequestId,
    run: usize,
    class: Option<usize>,
    /// The tool it covers; `None` for every tool.
    tool: Option<usize>,
    /// Who agreed to it, with their role.
    authors: Vec<(&'static str, &'static str)>,
    expires_at: OffsetDateTime,
    max_uses: Option<u32>,
    uses: u32,
    /// Ended with its request's cancel.
    revoked: bool,
}

impl MGrant {
    fn live(&self, now: OffsetDateTime) -> bool {
        !self.revoked && now < self.expires_at && self.max_uses.is_none_or(|m| self.uses < m)
    }

    /// Whether it covers a call of `tool` in `run` with arguments of class `c`, whose
    /// tier is `tier`: live, in scope, and within its authors' authority in that tier.
    fn covers(
        &self,
        now: OffsetDateTime,
        run: usize,
        tool: usize,
        c: usize,
        tier: &TierSpec,
    ) -> bool {
        let able = self
            .authors
            .iter()
            .filter(|(_, role)| tier.role.is_none_or(|r| r == *role))
            .count();
        self.live(now)
            && self.run == run
            && self.class.is_none_or(|gc| gc == c)
            && self.tool.is_none_or(|t| t == tool)
            && tier.grants
            && able >= tier.quorum
    }
}

/// One run of the tool, as the executor saw it.
#[derive(Debug, Clone, PartialEq)]
struct Ran {
    tool: String,
    args_hash: ArgsHash,
    key: Option<RequestId>,
    approvers: Vec<String>,
}

/// What a step came to, in terms the model and the crate share.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    Executed {
        request: Option<RequestId>,
        ok: bool,
        edited_to: Option<ArgsHash>,
    },
    Pending {
        request: RequestId,
        created: bool,
        expires_at: OffsetDateTime,
    },
    /// Predicted only: a new request, whose id the crate picks.
    NewPending {
        expires_at: OffsetDateTime,
    },
    Stopped {
        reason: StopSeen,
        request: Option<RequestId>,
    },
    Decided {
        state: RequestState,
        approvers: Vec<String>,
        grant: bool,
    },
    Refused(DeskSeen),
    Swept(BTreeSet<RequestId>),
}

#[derive(Debug, Clone, PartialEq)]
enum StopSeen {
    PolicyDenied,
    Denied { by: String },
    Timeout { at: OffsetDateTime },
    Cancelled { by: String },
    Mismatch(MismatchField),
    Used(RequestState),
    Unknown,
    Other(String),
}

#[derive(Debug, Clone, PartialEq)]
enum DeskSeen {
    NotFound,
    AlreadyDecided(RequestState),
    Expired(OffsetDateTime),
    SelfApproval,
    MissingRole,
    AlreadyApproved,
    EditRefused,
    GrantRefused,
    Other(String),
}

#[derive(Debug, Default)]
struct Model {
    reqs: Vec<MReq>,
    grants: Vec<MGrant>,
    runs: Vec<Ran>,
}

impl Model {
    /// A cancel or a denial of request `id` revokes the grants left on it.
    fn end_grants(&mut self, id: RequestId) {
        for g in self.grants.iter_mut().filter(|g| g.request == id) {
            g.revoked = true;
        }
    }
}

// ---------------------------------------------------------------------------------------
// The harness: the crate and the model side by side.
// ---------------------------------------------------------------------------------------

#[derive(Clone)]
struct Recorder {
    log: Arc<Mutex<Vec<Ran>>>,
}

#[async_trait::async_trait]
impl ToolExecutor for Recorder {
    type Output = ();
    type Error = String;

    async fn execute(&self, exec: Execution) -> Result<(), String> {
        let ran = Ran {
            tool: exec.tool().to_owned(),
            args_hash: ArgsHash::compute(exec.args()).unwrap(),
            key: exec.idempotency_key(),
            approvers: exec
                .approval()
                .map(|a| a.approvers().to_vec())
                .unwrap_or_default(),
        };
        self.log.lock().unwrap().push(ran);
        if exec.args()["n"].as_f64() == Some(3.0) {
            Err("the tool failed".into())
        } else {
            Ok(())
        }
    }
}

struct Harness {
    gate: Gate,
    clock: ManualClock,
    tool: Gated<Recorder>,
    log: Arc<Mutex<Vec<Ran>>>,
    model: Model,
    hashes: Vec<ArgsHash>,
    calls: usize,
}

type Outcome = GateOutcome<(), String>;

/// Fails the case with `$($msg)*` unless `$cond` holds.
macro_rules! ensure {
    ($cond:expr, $($msg:tt)*) => {
        if !$cond {
            return Err(format!($($msg)*));
        }
    };
}

impl Harness {
    fn new(store: Arc<dyn ApprovalStore>, start_millis: i64) -> Self {
        let clock = ManualClock::new(T0 + time::Duration::milliseconds(start_millis));
        let gate = Gate::builder(
            Policy::from_yaml_str(POLICY).unwrap(),
            Keyring::new(Key::new("k1", [3u8; 32]).unwrap()),
        )
        .shared_store(store)
        .clock(clock.clone())
        .build();
        let log = Arc::new(Mutex::new(Vec::new()));
        let tool = gate.wrap(Recorder { log: log.clone() });
        Harness {
            gate,
            clock,
            tool,
            log,
            model: Model::default(),
            hashes: (0..ARGS)
                .map(|v| ArgsHash::compute(&args(v)).unwrap())
                .collect(),
            calls: 0,
        }
    }

    fn now(&self) -> OffsetDateTime {
        approval_gate::Clock::now(&self.clock)
    }

    fn pick(&self, req: usize) -> Option<usize> {
        let n = self.model.reqs.len();
        (n > 0).then(|| n - 1 - req % n)
    }

    async fn run(&mut self, ops: &[Op]) -> Result<(), String> {
        for (step, op) in ops.iter().enumerate() {
            self.step(op)
                .await
                .map_err(|e| format!("step {step} ({op:?}): {e}"))?;
            self.check()
                .await
                .map_err(|e| format!("after step {step} ({op:?}): {e}"))?;
        }
        Ok(())
    }

    async fn step(&mut self, op: &Op) -> Result<(), String> {
        match op {
            Call { run, tool, args: v } => self.call(*run, *tool, *v).await,
            Approve { req, by, how } => self.approve(*req, *by, how).await,
            Deny { req, by } => self.deny(*req, *by).await,
            Cancel { req, by } => self.cancel(*req, *by).await,
            Advance { millis } => {
                self.clock.advance(Duration::from_millis(*millis));
                Ok(())
            }
            ToDeadline { req, millis } => {
                let now = self.now();
                if let Some(i) = self.pick(*req)
                    && let Some(at) = self.model.reqs[i].deadline()
                {
                    let to = at + time::Duration::milliseconds(*millis);
                    if to > now {
                        self.clock.set(to);
                    }
                }
                Ok(())
            }
            Sweep => self.sweep().await,
            Resume { req, with } => self.resume(*req, with).await,
        }
    }

    // --- the steps, each predicted by the model and compared with the crate ---

    async fn call(&mut self, run: usize, tool: usize, v: usize) -> Result<(), String> {
        let now = self.now();
        self.calls += 1;
        let call = ToolCall::new(
            RUNS[run],
            format!("c{}", self.calls),
            TOOLS[tool].0,
            args(v),
        )
        .with_requester(REQUESTER)
        .with_tenant("acme");
        let c = class(v);
        let expected = match TOOLS[tool].1 {
            _ if denied(tool, c) => Seen::Stopped {
                reason: StopSeen::PolicyDenied,
                request: None,
            },
            Kind::Allow | Kind::Deny => {
                self.model.runs.push(Ran {
                    tool: TOOLS[tool].0.into(),
                    args_hash: self.hashes[c],
                    key: None,
                    approvers: vec![],
                });
                Seen::Executed {
                    request: None,
                    ok: succeeds(c),
                    edited_to: None,
                }
            }
            Kind::Approval(tier) => {
                let grant = self
                    .model
                    .grants
                    .iter_mut()
                    .find(|g| g.covers(now, run, tool, c, tier));
                if let Some(grant) = grant {
                    grant.uses += 1;
                    let by = grant.authors.iter().map(|(a, _)| a.to_string()).collect();
                    self.model.runs.push(Ran {
                        tool: TOOLS[tool].0.into(),
                        args_hash: self.hashes[c],
                        key: None,
                        approvers: by,
                    });
                    Seen::Executed {
                        request: None,
                        ok: succeeds(c),
                        edited_to: None,
                    }
                } else if let Some(twin) = self.model.reqs.iter().find(|r| {
                    r.run == run
                        && r.tool == tool
                        && r.class == c
                        && r.effective(now) == RequestState::Pending
                }) {
                    Seen::Pending {
                        request: twin.id,
                        created: false,
                        expires_at: twin.expires_at,
                    }
                } else {
                    Seen::NewPending {
                        expires_at: now + secs(tier.decision_ttl),
                    }
                }
            }
        };
        let outcome = self.tool.call(call.clone()).await.map_err(gate_error)?;
        let seen = seen_outcome(&outcome);
        if let Seen::NewPending { expires_at } = expected {
            let Seen::Pending {
                request,
                created: true,
                expires_at: got,
            } = seen
            else {
                return Err(format!("expected a new request, got {seen:?}"));
            };
            ensure!(
                got == expires_at,
                "new request expires at {got}, not {expires_at}"
            );
            ensure!(
                self.model.reqs.iter().all(|r| r.id != request),
                "new request {request} has a taken id"
            );
            let Kind::Approval(tier) = TOOLS[tool].1 else {
                unreachable!()
            };
            self.model.reqs.push(MReq {
                id: request,
                call,
                run,
                tool,
                class: c,
                tier,
                stored: RequestState::Pending,
                expires_at,
                approval_expires_at: None,
                votes: vec![],
                edited: None,
                decided_by: None,
                consents: vec![],
            });
            return Ok(());
        }
        compare(&expected, &seen)
    }

    /// The desk's checks common to every decision on request `i` at `now`: a timed-out
    /// request is refused (and its timeout recorded), a settled one too.
    fn settled(&mut self, i: usize, now: OffsetDateTime, approved_ok: bool) -> Option<Seen> {
        let r = &mut self.model.reqs[i];
        match r.effective(now) {
            RequestState::Pending => None,
            RequestState::Approved if approved_ok => None,
            RequestState::Expired => {
                r.stored = RequestState::Expired;
                Some(Seen::Refused(DeskSeen::Expired(r.timeout_at())))
            }
            s => Some(Seen::Refused(DeskSeen::AlreadyDecided(s))),
        }
    }

    async fn approve(&mut self, req: usize, by: usize, how: &How) -> Result<(), String> {
        let now = self.now();
        let approver = approver(by);
        let Some(i) = self.pick(req) else {
            let got = match how {
                Grant { .. } => self
                    .gate
                    .desk()
                    .approve_with_grant(
                        unknown_id(),
                        &approver,
                        &GrantSpec::new(GrantScope::Run, Duration::from_secs(1)),
                    )
                    .await
                    .map(|(r, g)| (r, g.is_some())),
                _ => self
                    .gate
                    .desk()
                    .approve(unknown_id(), &approver)
                    .await
                    .map(|r| (r, false)),
            };
            return compare(&Seen::Refused(DeskSeen::NotFound), &seen_desk(got));
        };
        let expected = self.predict_approve(i, by, how, now);
        let id = self.model.reqs[i].id;
        let desk = self.gate.desk();
        let got = match how {
            Plain => desk.approve(id, &approver).await.map(|r| (r, false)),
            Edit { args: v } => desk
                .approve_with_edits(id, &approver, args(*v))
                .await
                .map(|r| (r, false)),
            Grant {
                lifetime,
                same_args,
                max_uses,
                any_tool,
            } => {
                let got = desk
                    .approve_with_grant(
                        id,
                        &approver,
                        &grant_spec(*lifetime, *same_args, *max_uses, *any_tool),
                    )
                    .await;
                if let Ok((_, Some(grant))) = &got {
                    // The model made the grant in `predict_approve`; it takes the id.
                    match self.model.grants.last_mut() {
                        Some(g) if g.id == unknown_grant() => g.id = grant.id(),
                        _ => return Err(format!("unexpected grant {grant:?}")),
                    }
                }
                got.map(|(r, g)| (r, g.is_some()))
            }
        };
        compare(&expected, &seen_desk(got))
    }

    fn predict_approve(&mut self, i: usize, by: usize, how: &How, now: OffsetDateTime) -> Seen {
        let (who, role) = APPROVERS[by];
        let r = &self.model.reqs[i];
        if let Edit { args: v } = how
            && denied(r.tool, class(*v))
        {
            return Seen::Refused(DeskSeen::EditRefused);
        }
        if let Some(refused) = self.settled(i, now, false) {
            return refused;
        }
        let r = &mut self.model.reqs[i];
        if who == REQUESTER {
            return Seen::Refused(DeskSeen::SelfApproval);
        }
        if r.tier.role.is_some_and(|needed| needed != role) {
            return Seen::Refused(DeskSeen::MissingRole);
        }
        let mut votes = r.votes.clone();
        let mut edited = r.edited;
        let mut rebinds = false;
        match how {
            Edit { args: v } => {
                // The approval binds to the edited arguments: votes for other arguments
                // no longer count, votes for these do.
                let c = class(*v);
                if c != r.approved_class() {
                    votes.clear();
                    rebinds = true;
                }
                edited = (c != r.class).then_some(*v);
            }
            _ => {
                if votes.iter().any(|v| v == who) {
                    return Seen::Refused(DeskSeen::AlreadyApproved);
                }
            }
        }
        if votes.iter().any(|v| v == who) {
            // An edit by someone who voted for these arguments already.
            return Seen::Refused(DeskSeen::AlreadyApproved);
        }
        if matches!(how, Grant { .. }) && !r.tier.grants {
            return Seen::Refused(DeskSeen::GrantRefused);
        }
        votes.push(who.to_owned());
        let approved = votes.len() >= r.tier.quorum;
        let key: Option<GrantKey> = match how {
            Grant {
                lifetime,
                same_args,
                max_uses,
                any_tool,
            } => Some((*lifetime, *same_args, *max_uses, *any_tool)),
            _ => None,
        };
        // A grant needs as many of the voters to ask for it as the quorum: else this
        // approval is refused and nothing changes.
        let authors: Vec<(&'static str, &'static str)> = match key {
            Some(k) if approved => {
                let mut authors: Vec<_> = r
                    .consents
                    .iter()
                    .filter(|(a, _, ck)| *ck == k && votes.iter().any(|v| v == a))
                    .map(|(a, role, _)| (*a, *role))
                    .collect();
                authors.push((who, role));
                if authors.len() < r.tier.quorum {
                    return Seen::Refused(DeskSeen::GrantRefused);
                }
                authors
            }
            _ => Vec::new(),
        };
        r.votes = votes.clone();
        if let Edit { .. } = how {
            r.edited = edited;
        }
        if rebinds {
            // Asked for with a vote on other arguments.
            r.consents.clear();
        }
        let mut grant = false;
        if approved {
            r.stored = RequestState::Approved;
            r.approval_expires_at = Some(whole(now + secs(r.tier.approval_ttl)));
            if let Some((lifetime, same_args, max_uses, any_tool)) = key {
                grant = true;
                let g = MGrant {
                    id: unknown_grant(),
                    request: r.id,
                    run: r.run,
                    class: same_args.then_some(r.approved_class()),
                    tool: (!any_tool).then_some(r.tool),
                    authors,
                    expires_at: whole(now + secs(lifetime as i64)),
                    max_uses,
                    uses: 0,
                    revoked: false,
                };
                self.model.grants.push(g);
            }
        } else if let Some(k) = key {
            r.consents.push((who, role, k));
        }
        Seen::Decided {
            state: if approved {
                RequestState::Approved
            } else {
                RequestState::Pending
            },
            approvers: votes,
            grant,
        }
    }

    async fn deny(&mut self, req: usize, by: usize) -> Result<(), String> {
        let now = self.now();
        let approver = approver(by);
        let Some(i) = self.pick(req) else {
            let got = self
                .gate
                .desk()
                .deny(unknown_id(), &approver, Some("no"))
                .await;
            return compare(
                &Seen::Refused(DeskSeen::NotFound),
                &seen_desk(got.map(|r| (r, false))),
            );
        };
        let (who, role) = APPROVERS[by];
        let expected = match self.settled(i, now, false) {
            Some(refused) => refused,
            None => {
                let r = &mut self.model.reqs[i];
                if r.tier.role.is_some_and(|needed| needed != role) {
                    Seen::Refused(DeskSeen::MissingRole)
                } else {
                    r.stored = RequestState::Denied;
                    r.decided_by = Some(who.to_owned());
                    Seen::Decided {
                        state: RequestState::Denied,
                        approvers: r.votes.clone(),
                        grant: false,
                    }
                }
            }
        };
        let id = self.model.reqs[i].id;
        if matches!(expected, Seen::Decided { .. }) {
            self.model.end_grants(id);
        }
        let got = self.gate.desk().deny(id, &approver, Some("no")).await;
        compare(&expected, &seen_desk(got.map(|r| (r, false))))
    }

    async fn cancel(&mut self, req: usize, by: usize) -> Result<(), String> {
        let now = self.now();
        let person = approver(by);
        let Some(i) = self.pick(req) else {
            let got = self.gate.desk().cancel(unknown_id(), &person, None).await;
            return compare(
                &Seen::Refused(DeskSeen::NotFound),
                &seen_desk(got.map(|r| (r, false))),
            );
        };
        let (who, role) = APPROVERS[by];
        let expected = match self.settled(i, now, true) {
            Some(refused) => refused,
            None => {
                let r = &mut self.model.reqs[i];
                // The requester may withdraw their own call; anyone else needs the tier's
                // role.
                if who != REQUESTER && r.tier.role.is_some_and(|needed| needed != role) {
                    Seen::Refused(DeskSeen::MissingRole)
                } else {
                    r.stored = RequestState::Cancelled;
                    r.decided_by = Some(who.into());
                    let id = r.id;
                    let votes = r.votes.clone();
                    // The grants its approval left end with it.
                    for g in &mut self.model.grants {
                        if g.request == id {
                            g.revoked = true;
                        }
                    }
                    Seen::Decided {
                        state: RequestState::Cancelled,
                        approvers: votes,
                        grant: false,
                    }
                }
            }
        };
        let id = self.model.reqs[i].id;
        let got = self.gate.desk().cancel(id, &person, None).await;
        compare(&expected, &seen_desk(got.map(|r| (r, false))))
    }

    async fn sweep(&mut self) -> Result<(), String> {
        let now = self.now();
        let mut expected = BTreeSet::new();
        for r in &mut self.model.reqs {
            if r.stored != RequestState::Expired && r.effective(now) == RequestState::Expired {
                r.stored = RequestState::Expired;
                expected.insert(r.id);
            }
        }
        let swept = self.gate.sweep_expired(1_000).await.map_err(gate_error)?;
        let seen = Seen::Swept(swept.iter().map(ApprovalRequest::id).collect());
        compare(&Seen::Swept(expected), &seen)
    }

    async fn resume(&mut self, req: usize, with: &ResumeWith) -> Result<(), String> {
        let now = self.now();
        let Some(i) = self.pick(req) else {
            let call = ToolCall::new(RUNS[0], "c0", TOOLS[EMAIL].0, args(0))
                .with_requester(REQUESTER)
                .with_tenant("acme");
            let got = self
                .tool
                .resume(unknown_id(), call)
                .await
                .map_err(gate_error)?;
            let expected = Seen::Stopped {
                reason: StopSeen::Unknown,
                request: None,
            };
            return compare(&expected, &seen_outcome(&got));
        };
        let r = &self.model.reqs[i];
        let (call, given) = match with {
            ResumeWith::Filed => (r.call.clone(), None),
            ResumeWith::Edited => match r.edited {
                Some(v) => (r.call.clone().with_args(args(v)), Some(v)),
                None => (r.call.clone(), None),
            },
            ResumeWith::Args(v) => (r.call.clone().with_args(args(*v)), Some(*v)),
            ResumeWith::CallId => (rebuild(&r.call, r.call.run_id(), "other"), None),
            ResumeWith::Run => {
                let run = RUNS[(r.run + 1) % RUNS.len()];
                (rebuild(&r.call, run, r.call.call_id()), None)
            }
            ResumeWith::Tenant => (r.call.clone().with_tenant("globex"), None),
            ResumeWith::Requester => (r.call.clone().with_requester("mallory"), None),
        };
        let given_class = given.map_or(r.class, class);
        let mismatch = match with {
            ResumeWith::CallId => Some(MismatchField::CallId),
            ResumeWith::Run => Some(MismatchField::RunId),
            ResumeWith::Tenant => Some(MismatchField::Tenant),
            ResumeWith::Requester => Some(MismatchField::Requester),
            _ if given_class != r.class && given_class != r.approved_class() => {
                Some(MismatchField::Args)
            }
            _ => None,
        };
        let id = r.id;
        let expected = if let Some(field) = mismatch {
            Seen::Stopped {
                reason: StopSeen::Mismatch(field),
                request: Some(id),
            }
        } else {
            let r = &mut self.model.reqs[i];
            match r.effective(now) {
                RequestState::Pending => Seen::Pending {
                    request: id,
                    created: false,
                    expires_at: r.expires_at,
                },
                RequestState::Approved => {
                    let ac = r.approved_class();
                    r.stored = if succeeds(ac) {
                        RequestState::Executed
                    } else {
                        RequestState::Failed
                    };
                    // Unless edited, the tool runs the call given, which hashes as filed.
                    self.model.runs.push(Ran {
                        tool: TOOLS[r.tool].0.into(),
                        args_hash: self.hashes[ac],
                        key: Some(id),
                        approvers: r.votes.clone(),
                    });
                    Seen::Executed {
                        request: Some(id),
                        ok: succeeds(ac),
                        edited_to: r.edited.map(|v| self.hashes[class(v)]),
                    }
                }
                RequestState::Expired => {
                    r.stored = RequestState::Expired;
                    Seen::Stopped {
                        reason: StopSeen::Timeout { at: r.timeout_at() },
                        request: Some(id),
                    }
                }
                RequestState::Denied => Seen::Stopped {
                    reason: StopSeen::Denied {
                        by: r.decided_by.clone().unwrap_or_default(),
                    },
                    request: Some(id),
                },
                RequestState::Cancelled => Seen::Stopped {
                    reason: StopSeen::Cancelled {
                        by: r.decided_by.clone().unwrap_or_default(),
                    },
                    request: Some(id),
                },
                s => Seen::Stopped {
                    reason: StopSeen::Used(s),
                    request: Some(id),
                },
            }
        };
        let got = self.tool.resume(id, call).await.map_err(gate_error)?;
        compare(&expected, &seen_outcome(&got))
    }

    // --- the invariants, checked after every step ---

    async fn check(&self) -> Result<(), String> {
        let now = self.now();
        let store = self.gate.store();

        // Every request as the model has it.
        for m in &self.model.reqs {
            let r = store
                .get(m.id)
                .await
                .map_err(|e| format!("get {}: {e}", m.id))?;
            let what = format!("request {} ({})", m.id, TOOLS[m.tool].0);
            ensure!(
                r.stored_state() == m.stored,
                "{what}: stored state `{}`, model `{}`",
                r.stored_state(),
                m.stored
            );
            ensure!(
                r.state_at(now) == m.effective(now),
                "{what}: state at now `{}`, model `{}`",
                r.state_at(now),
                m.effective(now)
            );
            ensure!(
                r.approvers() == m.votes.as_slice(),
                "{what}: approvers {:?}, model {:?}",
                r.approvers(),
                m.votes
            );
            ensure!(
                r.approved_args_hash() == self.hashes[m.approved_class()],
                "{what}: approved args {}, model variant {}",
                r.approved_args(),
                m.approved_class()
            );
            ensure!(
                r.is_edited() == m.edited.is_some(),
                "{what}: edited {}, model {:?}",
                r.is_edited(),
                m.edited
            );
            // Every voter sees what will run: after an edit, the edited arguments.
            let will_run = m.edited.map_or_else(|| m.call.args().clone(), args);
            ensure!(
                *r.shown_args() == will_run,
                "{what}: shows {}, will run {will_run}",
                r.shown_args()
            );
            ensure!(
                r.expires_at() == m.expires_at,
                "{what}: expires at {}, model {}",
                r.expires_at(),
                m.expires_at
            );
            ensure!(
                r.approval_expires_at() == m.approval_expires_at,
                "{what}: approval expires at {:?}, model {:?}",
                r.approval_expires_at(),
                m.approval_expires_at
            );
            // No decision after `expires_at`: what decided a request came before its
            // deadline; a timeout of a pending request is dated at its deadline.
            if let Some(at) = r.decided_at() {
                match r.stored_state() {
                    RequestState::Expired if r.approval_expires_at().is_none() => ensure!(
                        at == r.expires_at(),
                        "{what}: timed out at {at}, not at its deadline {}",
                        r.expires_at()
                    ),
                    RequestState::Cancelled => ensure!(
                        at < r.timeout_at(),
                        "{what}: cancelled at {at}, at or after its expiry {}",
                        r.timeout_at()
                    ),
                    _ => ensure!(
                        at < r.expires_at(),
                        "{what}: decided at {at}, at or after its expiry {}",
                        r.expires_at()
                    ),
                }
            }
        }

        // The desk lists what the model has pending.
        let pending: BTreeSet<RequestId> = self
            .gate
            .desk()
            .pending()
            .await
            .map_err(|e| format!("pending: {e}"))?
            .iter()
            .map(ApprovalRequest::id)
            .collect();
        let model_pending: BTreeSet<RequestId> = self
            .model
            .reqs
            .iter()
            .filter(|r| r.effective(now) == RequestState::Pending)
            .map(|r| r.id)
            .collect();
        ensure!(
            pending == model_pending,
            "desk pending {pending:?}, model {model_pending:?}"
        );

        // The tool ran exactly what the model expects: each approval at most once, only
        // once approved, with the approved (edited) arguments.
        let ran = self.log.lock().unwrap().clone();
        ensure!(
            ran == self.model.runs,
            "the tool ran {ran:#?}\nthe model expects {:#?}",
            self.model.runs
        );
        let mut keys = BTreeSet::new();
        for r in &ran {
            if let Some(key) = r.key {
                ensure!(keys.insert(key), "request {key} ran twice");
            }
        }

        // The live grants and their uses.
        let live: BTreeMap<GrantId, u32> = store
            .grants(now)
            .await
            .map_err(|e| format!("grants: {e}"))?
            .iter()
            .map(|g| (g.id(), g.uses()))
            .collect();
        let model_live: BTreeMap<GrantId, u32> = self
            .model
            .grants
            .iter()
            .filter(|g| g.live(now))
            .map(|g| (g.id, g.uses))
            .collect();
        ensure!(
            live == model_live,
            "live grants {live:?}, model {model_live:?}"
        );

        // The trail verifies, and agrees with the requests.
        let records = store
            .audit_records(&AuditQuery::default())
            .await
            .map_err(|e| format!("audit records: {e}"))?;
        verify_chain(&records, None).map_err(|e| format!("the trail does not verify: {e}"))?;
        let used = records
            .iter()
            .filter(|r| r.event_name() == "grant_used")
            .count();
        let model_used: u32 = self.model.grants.iter().map(|g| g.uses).sum();
        ensure!(
            used == model_used as usize,
            "{used} grant_used records, model {model_used} uses"
        );
        let mut per_request: BTreeMap<RequestId, Vec<&AuditRecord>> = BTreeMap::new();
        for record in &records {
            if let Some(id) = record.request_id
                && transition_state(record).is_some()
            {
                per_request.entry(id).or_default().push(record);
            }
        }
        for m in &self.model.reqs {
            let r = store
                .get(m.id)
                .await
                .map_err(|e| format!("get {}: {e}", m.id))?;
            let trail = per_request
                .get(&m.id)
                .map(Vec::as_slice)
                .unwrap_or_default();
            let names: Vec<&str> = trail.iter().map(|r| r.event_name()).collect();
            let last = trail.last().and_then(|r| transition_state(r));
            ensure!(
                last == Some(r.stored_state()),
                "request {}: last transition record {:?} (of {names:?}), state `{}`",
                m.id,
                trail.last().map(|r| r.event_name()),
                r.stored_state()
            );
            ensure!(
                trail.len() as u64 == r.version(),
                "request {}: {} transition records {names:?}, version {}",
                m.id,
                trail.len(),
                r.version()
            );
            for record in trail {
                let late = match record.event_name() {
                    "approval_vote" | "approval_granted" | "approval_denied" => {
                        record.at >= r.expires_at()
                    }
                    "approval_cancelled" | "execution_started" => record.at >= r.timeout_at(),
                    _ => false,
                };
                ensure!(
                    !late,
                    "request {}: `{}` at {} is after its expiry",
                    m.id,
                    record.event_name(),
                    record.at
                );
            }
        }
        Ok(())
    }
}

/// The state a request is in after the transition `record` records, for the records of
/// transitions.
fn transition_state(record: &AuditRecord) -> Option<RequestState> {
    Some(match record.event_name() {
        "approval_required" | "approval_vote" => RequestState::Pending,
        "approval_granted" => RequestState::Approved,
        "approval_denied" => RequestState::Denied,
        "approval_timeout" => RequestState::Expired,
        "approval_cancelled" => RequestState::Cancelled,
        "execution_started" => RequestState::Executing,
        "executed" => RequestState::Executed,
        "execution_failed" => RequestState::Failed,
        _ => return None,
    })
}

fn approver(by: usize) -> Approver {
    let (id, role) = APPROVERS[by];
    Approver::new(id).with_role(role).with_tenant("acme")
}

fn grant_spec(lifetime: u64, same_args: bool, max_uses: Option<u32>, any_tool: bool) -> GrantSpec {
    let mut spec = GrantSpec::new(GrantScope::Run, Duration::from_secs(lifetime));
    if any_tool {
        spec = spec.tool_pattern("*");
    }
    if same_args {
        spec = spec.same_args();
    }
    if let Some(n) = max_uses {
        spec = spec.max_uses(n);
    }
    spec
}

fn unknown_id() -> RequestId {
    RequestId::from_u128(0)
}

/// The id of a grant the model expects before the crate names it.
fn unknown_grant() -> GrantId {
    serde_json::from_value(json!(uuid::Uuid::nil())).unwrap()
}

/// `call` with another run id or call id.
fn rebuild(call: &ToolCall, run: &str, call_id: &str) -> ToolCall {
    ToolCall::new(run, call_id, call.tool(), call.args().clone())
        .with_requester(REQUESTER)
        .with_tenant("acme")
}

fn gate_error(e: GateError) -> String {
    format!("gate error: {e}")
}

fn compare(expected: &Seen, seen: &Seen) -> Result<(), String> {
    ensure!(
        expected == seen,
        "the model expects {expected:?}\nthe crate gave {seen:?}"
    );
    Ok(())
}

fn seen_outcome(outcome: &Outcome) -> Seen {
    match outcome {
        GateOutcome::Executed(e) => Seen::Executed {
            request: e.request_id,
            ok: e.result.is_ok(),
            edited_to: e.edit.as_ref().map(|e| e.approved_args_hash),
        },
        GateOutcome::Pending(p) => Seen::Pending {
            request: p.request_id,
            created: p.created,
            expires_at: p.expires_at,
        },
        GateOutcome::Stopped(stop) => Seen::Stopped {
            reason: match &stop.reason {
                StopReason::PolicyDenied { .. } => StopSeen::PolicyDenied,
                StopReason::ApprovalDenied { approver, .. } => StopSeen::Denied {
                    by: approver.clone(),
                },
                StopReason::ApprovalTimeout { expired_at } => StopSeen::Timeout { at: *expired_at },
                StopReason::ApprovalCancelled { by, .. } => StopSeen::Cancelled { by: by.clone() },
                StopReason::ArgsMismatch { field } => StopSeen::Mismatch(*field),
                StopReason::ApprovalUsed { state } => StopSeen::Used(*state),
                StopReason::UnknownRequest { .. } => StopSeen::Unknown,
                other => StopSeen::Other(format!("{}: {other}", other.name())),
            },
            request: stop.request_id,
        },
    }
}

fn seen_desk(result: Result<(ApprovalRequest, bool), DeskError>) -> Seen {
    match result {
        Ok((r, grant)) => Seen::Decided {
            state: r.stored_state(),
            approvers: r.approvers().to_vec(),
            grant,
        },
        Err(e) => Seen::Refused(match e {
            DeskError::NotFound { .. } => DeskSeen::NotFound,
            DeskError::AlreadyDecided { state, .. } => DeskSeen::AlreadyDecided(state),
            DeskError::Expired { expired_at, .. } => DeskSeen::Expired(expired_at),
            DeskError::Refused { reason, .. } => match reason {
                TransitionError::SelfApproval { .. } => DeskSeen::SelfApproval,
                TransitionError::MissingRole { .. } => DeskSeen::MissingRole,
                TransitionError::AlreadyApproved { .. } => DeskSeen::AlreadyApproved,
                other => DeskSeen::Other(other.to_string()),
            },
            DeskError::EditRefused { .. } => DeskSeen::EditRefused,
            DeskError::GrantRefused { .. } => DeskSeen::GrantRefused,
            other => DeskSeen::Other(other.to_string()),
        }),
    }
}

// ---------------------------------------------------------------------------------------
// Backends.
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq)]
enum Backend {
    Memory,
    #[cfg(feature = "sqlite")]
    Sqlite,
    #[cfg(feature = "postgres")]
    Postgres,
}

#[cfg(feature = "postgres")]
const URL_VAR: &str = "APPROVAL_GATE_TEST_POSTGRES_URL";

#[cfg(feature = "postgres")]
fn postgres_url() -> Option<String> {
    std::env::var(URL_VAR).ok().filter(|u| !u.is_empty())
}

/// A store for one case, and what to do when the case is over.
enum Opened {
    Memory,
    #[cfg(feature = "sqlite")]
    Sqlite(approval_gate::SqliteStore, std::path::PathBuf),
    #[cfg(feature = "postgres")]
    Postgres(approval_gate::PostgresStore, String, String),
}

async fn open(backend: Backend) -> (Arc<dyn ApprovalStore>, Opened) {
    match backend {
        Backend::Memory => (Arc::new(MemoryStore::new()), Opened::Memory),
        #[cfg(feature = "sqlite")]
        Backend::Sqlite => {
            let dir = std::env::temp_dir().join(format!(
                "approval-gate-model-{}",
                uuid::Uuid::new_v4().simple()
            ));
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join("approvals.db");
            let store = approval_gate::SqliteStore::connect(path.to_str().unwrap())
                .await
                .unwrap();
            (Arc::new(store.clone()), Opened::Sqlite(store, dir))
        }
        #[cfg(feature = "postgres")]
        Backend::Postgres => {
            let url = postgres_url().expect("checked before");
            let schema = format!("ag_model_{}", uuid::Uuid::new_v4().simple());
            let store = approval_gate::PostgresStore::connect_with(
                approval_gate::PostgresStore::options(&url).schema(&schema),
            )
            .await
            .unwrap();
            (
                Arc::new(store.clone()),
                Opened::Postgres(store, url, schema),
            )
        }
    }
}

impl Opened {
    async fn close(self) {
        match self {
            Opened::Memory => {}
            #[cfg(feature = "sqlite")]
            Opened::Sqlite(store, dir) => {
                store.close().await;
                let _ = std::fs::remove_dir_all(dir);
            }
            #[cfg(feature = "postgres")]
            Opened::Postgres(store, url, schema) => {
                use approval_gate::sqlx::{Connection as _, Executor as _};
                store.pool().close().await;
                let mut conn = approval_gate::sqlx::PgConnection::connect(&url)
                    .await
                    .unwrap();
                let drop = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
                conn.execute(drop.as_str()).await.unwrap();
                conn.close().await.unwrap();
            }
        }
    }
}

fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// Runs `ops` from a clock at `T0 + start_millis` on a fresh store of `backend`.
fn run_case(backend: Backend, case: &Case) -> Result<(), String> {
    block_on(async {
        let (store, opened) = open(backend).await;
        let result = Harness::new(store, case.start_millis).run(&case.ops).await;
        opened.close().await;
        result
    })
}

/// `cases` cases of at most `max_ops` steps each, unless `PROPTEST_CASES` says how many.
fn check_model(backend: Backend, cases: u32, max_ops: usize) {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(cases);
    let config = Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        source_file: Some(file!()),
        max_shrink_iters: 4096,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&case(max_ops), |case| {
        run_case(backend, &case).map_err(TestCaseError::fail)
    });
    if let Err(e) = result {
        panic!("{backend:?}: {e}");
    }
}

#[test]
fn memory_store_follows_the_model() {
    check_model(Backend::Memory, 128, 40);
}

#[cfg(feature = "sqlite")]
#[test]
fn sqlite_store_follows_the_model() {
    check_model(Backend::Sqlite, 24, 30);
}

#[cfg(feature = "postgres")]
#[test]
fn postgres_store_follows_the_model() {
    if postgres_url().is_none() {
        println!("skipped: {URL_VAR} is not set");
        return;
    }
    check_model(Backend::Postgres, 12, 30);
}

// ---------------------------------------------------------------------------------------
// Defects found by the model, each with its shrunk sequence of steps.
// ---------------------------------------------------------------------------------------

/// Runs one shrunk sequence on every store at hand.
fn replay(start_millis: i64, ops: Vec<Op>) {
    let case = Case { start_millis, ops };
    #[allow(unused_mut)] // without the SQL features, memory only
    let mut backends = vec![Backend::Memory];
    #[cfg(feature = "sqlite")]
    backends.push(Backend::Sqlite);
    #[cfg(feature = "postgres")]
    if postgres_url().is_some() {
        backends.push(Backend::Postgres);
    }
    for backend in backends {
        if let Err(e) = run_case(backend, &case) {
            panic!("{backend:?}: {e}");
        }
    }
}

/// A vote that leaves a grant on a request whose tier forbids grants is refused, like the
/// vote that completes the quorum, rather than counted without the grant.
#[test]
fn a_vote_with_a_grant_on_a_tier_without_grants_is_refused() {
    replay(
        0,
        vec![
            Call {
                run: 0,
                tool: 3,
                args: 0,
            },
            Approve {
                req: 0,
                by: 0,
                how: Grant {
                    lifetime: 20,
                    same_args: false,
                    max_uses: None,
                    any_tool: false,
                },
            },
        ],
    );
}

/// An "edit" that leaves the arguments as approved (the same hash) keeps the votes given
/// for them: a second approver completes the quorum, and the first cannot vote twice.
#[test]
fn an_edit_to_the_same_arguments_keeps_the_votes_for_them() {
    let wire = Call {
        run: 0,
        tool: 3,
        args: 0,
    };
    let ann = Approve {
        req: 0,
        by: 0,
        how: Plain,
    };
    // cid "edits" to the same arguments in another form: approved by ann and cid.
    let cid_same = Approve {
        req: 0,
        by: 1,
        how: Edit { args: 2 },
    };
    replay(0, vec![wire.clone(), ann.clone(), cid_same]);
    // ann "edits" to the arguments she approved: refused as a second vote.
    let ann_again = Approve {
        req: 0,
        by: 0,
        how: Edit { args: 0 },
    };
    replay(0, vec![wire, ann, ann_again]);
}

/// An approval given at a fractional second is usable until its approval TTL ends: its
/// token (whose `exp` is in whole seconds) must not expire before the approval does.
#[test]
fn an_approval_is_usable_until_its_approval_ttl_ends() {
    replay(
        500,
        vec![
            Call {
                run: 0,
                tool: 2,
                args: 0,
            },
            Approve {
                req: 0,
                by: 0,
                how: Plain,
            },
            ToDeadline {
                req: 0,
                millis: -500,
            },
            Resume {
                req: 0,
                with: ResumeWith::Filed,
            },
        ],
    );
}

/// A grant left at a fractional second covers calls until it lapses, and a call it
/// covers runs: no use is counted for a call that then stops on the grant's token.
#[test]
fn a_grant_covers_calls_until_it_lapses() {
    let ticket = Call {
        run: 0,
        tool: TICKET,
        args: 0,
    };
    replay(
        500,
        vec![
            ticket.clone(),
            Approve {
                req: 0,
                by: 0,
                how: Grant {
                    lifetime: 20,
                    same_args: false,
                    max_uses: None,
                    any_tool: false,
                },
            },
            Advance { millis: 19_000 },
            ticket.clone(),
            Advance { millis: 500 },
            ticket,
        ],
    );
}
