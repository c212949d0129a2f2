//! Bad input of every kind gets a typed error (or a stop), never a panic or a stack
//! overflow, and changes nothing: malformed configs, arguments too deep, too large or not
//! strict JSON, tool names that are no names, and ids of the wrong form.

use approval_gate::store::{ControlStore, RequestStore, TrailReader};
use std::sync::{Arc, Mutex};

use approval_gate::{
    Approver, ArgsError, ArgsHash, ArgsLimits, Clock as _, DeskError, Effect, Execution, Gate,
    GateOutcome, Gated, Key, Keyring, ManualClock, MemoryStore, Policy, PolicyError, RequestId,
    RequestQuery, RequestState, StopReason, ToolCall, ToolExecutor, canonical_json, parse_args,
    trail::{AuditQuery, AuditRecord},
};
use serde_json::{Map, Value, json};

// ---------------------------------------------------------------------------------------
// Configs
// ---------------------------------------------------------------------------------------

/// Where a bad config must be refused: the field's path (`None` for YAML that is not
/// YAML, which has no field) and the line, counting from 1.
struct Bad {
    yaml: &'static str,
    field: Option<&'static str>,
    line: usize,
    words: &'static str,
}

const fn bad(yaml: &'static str, field: &'static str, line: usize, words: &'static str) -> Bad {
    Bad {
        yaml,
        field: Some(field),
        line,
        words,
    }
}

const fn not_yaml(yaml: &'static str, line: usize, words: &'static str) -> Bad {
    Bad {
        yaml,
        field: None,
        line,
        words,
    }
}

/// Every case is written with a leading newline, dropped before loading, so line 1 is the
/// first line written.
const BAD_CONFIGS: &[Bad] = &[
    // Unknown keys, at each level.
    bad(
        "\napproval:\n  required_for: [email.send]\n",
        "approval",
        1,
        "unknown field `approval`",
    ),
    bad(
        "\napprovals:\n  required_for: [email.send]\n  ttl: 300\n",
        "approvals.ttl",
        3,
        "unknown field `ttl`",
    ),
    bad(
        "\nrules:\n  - id: r\n    tool: a\n    effect: allow\n    resaon: typo\n",
        "rules[0].resaon",
        5,
        "unknown field `resaon`",
    ),
    bad(
        "\ntiers:\n  high:\n    quorom: 2\n",
        "tiers.high.quorom",
        3,
        "unknown field `quorom`",
    ),
    bad(
        "\npolicy:\n  defualt: deny\n",
        "policy.defualt",
        2,
        "unknown field `defualt`",
    ),
    bad(
        "\nbudgets:\n  max_step: 5\n",
        "budgets.max_step",
        2,
        "unknown field `max_step`",
    ),
    bad(
        "\ncontrols:\n  kill_switch: { enabled: true, tools: [a] }\n",
        "controls.kill_switch.tools",
        2,
        "unknown field `tools`",
    ),
    // Wrong types.
    bad(
        "\nrules:\n  id: r\n  tool: a\n",
        "rules",
        2,
        "expected a sequence",
    ),
    bad(
        "\napprovals:\n  required_for: email.send\n",
        "approvals.required_for",
        2,
        "invalid type: string \"email.send\", expected a sequence",
    ),
    bad(
        "\nrules:\n  - id: r\n    tool: a\n    effect: 5\n",
        "rules[0].effect",
        4,
        "expected",
    ),
    bad(
        "\ncontrols:\n  read_only: 'yes'\n",
        "controls.read_only",
        2,
        "expected a boolean",
    ),
    // TTLs: zero, negative, huge, a string, not a number.
    bad(
        "\napprovals:\n  ttl_seconds: 0\n",
        "approvals.ttl_seconds",
        2,
        "found `0`",
    ),
    bad(
        "\napprovals:\n  ttl_seconds: -5\n",
        "approvals.ttl_seconds",
        2,
        "found `-5`",
    ),
    bad(
        "\napprovals:\n  ttl_seconds: 99999999999999999999999\n",
        "approvals.ttl_seconds",
        2,
        "a TTL is a whole number of seconds from 1 to 2592000 (30 days), found `99999999999999999999999`",
    ),
    bad(
        "\napprovals:\n  ttl_seconds: -99999999999999999999999\n",
        "approvals.ttl_seconds",
        2,
        "found `-99999999999999999999999`",
    ),
    bad(
        "\napprovals:\n  ttl_seconds: '300'\n",
        "approvals.ttl_seconds",
        2,
        "a TTL is a whole number of seconds",
    ),
    bad(
        "\ntiers:\n  high:\n    ttl_seconds: 5m\n",
        "tiers.high.ttl_seconds",
        3,
        "a TTL is a whole number of seconds",
    ),
    bad(
        "\ntiers:\n  high:\n    approval_ttl_seconds: .inf\n",
        "tiers.high.approval_ttl_seconds",
        3,
        "a TTL is a whole number of seconds",
    ),
    bad(
        "\nrules:\n  - id: r\n    tool: a\n    effect: approval_required\n    ttl_seconds: .nan\n",
        "rules[0].ttl_seconds",
        5,
        "a TTL is a whole number of seconds",
    ),
    // Unknown tiers.
    bad(
        "\ntiers:\n  high: {}\nrules:\n  - id: r\n    tool: db.write\n    effect: approval_required\n    tier: critcal\n",
        "rules[0].tier",
        7,
        "unknown tier `critcal`",
    ),
    // Empty and bad patterns.
    bad(
        "\napprovals:\n  required_for:\n    - email.send\n    - ''\n",
        "approvals.required_for[1]",
        4,
        "empty tool pattern",
    ),
    bad(
        "\nrules:\n  - id: r\n    tools: [a, '']\n    effect: deny\n",
        "rules[0].tools[1]",
        3,
        "empty tool pattern",
    ),
    bad(
        "\nrules:\n  - id: r\n    tools: []\n    effect: deny\n",
        "rules[0].tools",
        3,
        "`tools` is empty",
    ),
    bad(
        "\npolicy:\n  tool_allowlist: ['crm.*', 'db write']\n",
        "policy.tool_allowlist[1]",
        2,
        "tool pattern `db write` has whitespace",
    ),
    bad(
        "\nrules:\n  - id: r\n    tool: \"email.\\u0000send\"\n    effect: deny\n",
        "rules[0].tool",
        3,
        "control characters",
    ),
    // Bad regexes.
    bad(
        "\nrules:\n  - id: r\n    tool: a\n    effect: deny\n    when:\n      field: args.to\n      matches: '(unclosed'\n",
        "rules[0].when.matches",
        7,
        "invalid regex `(unclosed`",
    ),
    bad(
        "\nrules:\n  - id: r\n    tool: a\n    effect: deny\n    when: { field: args.to, matches: 'a{99999999}' }\n",
        "rules[0].when.matches",
        5,
        "invalid regex",
    ),
    // Overlapping rules that contradict.
    bad(
        "\nrules:\n  - { id: a, tool: db.write, effect: allow }\n  - { id: b, tool: db.write, effect: deny }\n",
        "rules[1]",
        3,
        "can never decide",
    ),
    // Bad conditions.
    bad(
        "\nrules:\n  - id: r\n    tool: a\n    effect: deny\n    when: { field: args.amount, gt: }\n",
        "rules[0].when.gt",
        5,
        "",
    ),
    bad(
        "\nrules:\n  - id: r\n    tool: a\n    effect: deny\n    when:\n      field: args.amount\n      greater: 100\n",
        "rules[0].when",
        7,
        "unknown condition operator `greater`",
    ),
    bad(
        "\nrules:\n  - id: r\n    tool: a\n    effect: deny\n    when: { field: args.table, in: users }\n",
        "rules[0].when.in",
        5,
        "",
    ),
    bad(
        "\nrules:\n  - id: r\n    tool: a\n    effect: deny\n    when: { field: args.amount, gt: .nan }\n",
        "rules[0].when.gt",
        5,
        "",
    ),
    bad(
        "\nrules:\n  - id: r\n    tool: a\n    effect: deny\n    when: { field: args.amount, gt: .inf }\n",
        "rules[0].when.gt",
        5,
        "",
    ),
    // Reminders and escalations come before the TTL, and escalate only with a delay.
    bad(
        "\ntiers:\n  high:\n    ttl_seconds: 600\n    remind_after_seconds: 600\n",
        "tiers.high.remind_after_seconds",
        4,
        "not before the tier's decision TTL of 600 seconds",
    ),
    bad(
        "\napprovals:\n  ttl_seconds: 300\ntiers:\n  high:\n    escalate_after_seconds: 900\n",
        "tiers.high.escalate_after_seconds",
        5,
        "not before the tier's decision TTL of 300 seconds",
    ),
    bad(
        "\ntiers:\n  high:\n    escalate_to: [cfo]\n",
        "tiers.high.escalate_to",
        3,
        "sets no `escalate_after_seconds`",
    ),
    bad(
        "\ntiers:\n  high:\n    escalate_after_seconds: 60\n    escalate_to: [cfo, cfo]\n",
        "tiers.high.escalate_to[1]",
        4,
        "already listed at escalate_to[0]",
    ),
    bad(
        "\ntiers:\n  high:\n    remind_after_secs: 60\n",
        "tiers.high.remind_after_secs",
        3,
        "unknown field `remind_after_secs`",
    ),
    // Quorum.
    bad(
        "\ntiers:\n  high:\n    approvers: [cfo]\n    quorum: 0\n",
        "tiers.high.quorum",
        4,
        "found `0`",
    ),
    bad(
        "\ntiers:\n  high:\n    approvers: [cfo]\n    quorum: 11\n",
        "tiers.high.quorum",
        4,
        "found `11`",
    ),
    bad(
        "\ntiers:\n  high:\n    quorum: 99999999999999999999999\n",
        "tiers.high.quorum",
        3,
        "found `99999999999999999999999`",
    ),
    bad(
        "\ntiers:\n  high:\n    quorum: .nan\n",
        "tiers.high.quorum",
        3,
        "a quorum is a whole number",
    ),
    // Budgets.
    bad(
        "\nbudgets:\n  max_tool_calls: 0\n",
        "budgets.max_tool_calls",
        2,
        "a budget is a whole number of at least 1",
    ),
    bad(
        "\nbudgets:\n  max_seconds: -3\n",
        "budgets.max_seconds",
        2,
        "a budget is a whole number of at least 1",
    ),
    bad(
        "\nbudgets:\n  max_steps: 99999999999999999999999\n",
        "budgets.max_steps",
        2,
        "found `99999999999999999999999`",
    ),
    bad(
        "\nbudgets:\n  max_usd: -99999999999999999999999\n",
        "budgets.max_usd",
        2,
        "found `-99999999999999999999999`",
    ),
    bad(
        "\nbudgets:\n  max_usd: 1e400\n",
        "budgets.max_usd",
        2,
        "greater than 0",
    ),
    bad(
        "\nbudgets:\n  max_usd: .nan\n",
        "budgets.max_usd",
        2,
        "greater than 0",
    ),
    bad(
        "\nbudgets:\n  max_usd: .inf\n",
        "budgets.max_usd",
        2,
        "greater than 0",
    ),
    // Duplicate rule ids; duplicate YAML keys.
    bad(
        "\nrules:\n  - { id: refunds, tool: a, effect: allow }\n  - { id: refunds, tool: b, effect: deny }\n",
        "rules[1].id",
        3,
        "duplicate rule id `refunds`",
    ),
    bad(
        "\napprovals:\n  ttl_seconds: 60\n  ttl_seconds: 600\n",
        "approvals.ttl_seconds",
        3,
        "duplicate key `ttl_seconds`",
    ),
    bad(
        "\nrules:\n  - id: r\n    tool: a\n    effect: allow\n    effect: deny\n",
        "rules[0].effect",
        5,
        "duplicate key `effect`",
    ),
    bad(
        "\nrules: []\napprovals: {}\nrules: []\n",
        "rules",
        3,
        "duplicate key `rules`",
    ),
    bad(
        "\nrules:\n  - id: r\n    tool: a\n    effect: deny\n    when: { field: args.a, in: [x, y], in: [z] }\n",
        "rules[0].when.in",
        5,
        "duplicate key `in`",
    ),
    bad(
        "\ntiers:\n  high: {}\n  high: {}\n",
        "tiers.high",
        3,
        "duplicate key `high`",
    ),
    // Not YAML: tabs, unclosed brackets, two documents.
    not_yaml(
        "\napprovals:\n\trequired_for: [email.send]\n",
        2,
        "not valid YAML",
    ),
    not_yaml("\nrules: [a, b\n", 2, "not valid YAML"),
];

fn load(yaml: &str) -> Result<Policy, PolicyError> {
    Policy::from_yaml_str(yaml.strip_prefix('\n').unwrap_or(yaml))
}

#[test]
fn every_malformed_config_names_its_field_and_line() {
    assert!(BAD_CONFIGS.len() >= 30);
    let mut wrong = Vec::new();
    for case in BAD_CONFIGS {
        let err = match load(case.yaml) {
            Ok(_) => {
                wrong.push(format!("loaded:{}", case.yaml));
                continue;
            }
            Err(e) => e,
        };
        let shown = err.to_string();
        let ok = err.field() == case.field
            && err.line() == Some(case.line)
            && shown.contains(&format!("line {}", case.line))
            && shown.contains(case.words)
            && match case.field {
                Some(_) => matches!(err, PolicyError::Invalid { .. }),
                None => matches!(err, PolicyError::Syntax { .. }),
            };
        if !ok {
            wrong.push(format!(
                "{:?}\n  want field {:?} line {} words {:?}\n  got  field {:?} line {:?}: {shown}",
                case.yaml,
                case.field,
                case.line,
                case.words,
                err.field(),
                err.line()
            ));
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

#[test]
fn an_empty_config_loads_and_denies_everything() {
    // An empty file is the empty config: nothing is allowed (fail closed).
    for empty in ["", "\n", "# nothing but a comment\n", "---\n"] {
        let policy = Policy::from_yaml_str(empty).unwrap();
        for tool in ["email.send", "db.read"] {
            let call = ToolCall::new("r", "c", tool, json!({}));
            assert_eq!(policy.evaluate(&call).effect(), Effect::Deny, "{empty:?}");
        }
    }
}

#[test]
fn a_yaml_bomb_is_refused_quickly() {
    // Billion laughs: nine levels of nine aliases each, 9^9 strings if expanded.
    let mut yaml = String::from("a0: &a0 [\"lol\"]\n");
    for i in 1..=9 {
        let prev = format!("*a{}", i - 1);
        let list = [prev.as_str(); 9].join(", ");
        yaml.push_str(&format!("a{i}: &a{i} [{list}]\n"));
    }
    // The same bomb under known fields, used where a list is expected.
    let inside = format!(
        "approvals:\n  required_for: &l0 [email.send]\nrules:\n{}  - {{ id: r, tools: *l9, effect: deny }}\n",
        (1..=9)
            .map(|i| format!(
                "  - {{ id: r{i}, tools: &l{i} [{}], effect: deny }}\n",
                [format!("*l{}", i - 1).as_str(); 9].join(", ")
            ))
            .collect::<String>()
    );
    for bomb in [yaml, inside] {
        let err = Policy::from_yaml_str(&bomb).unwrap_err();
        // The reader stops expanding aliases long before 9^9 and refuses the document as
        // a whole, so there is no line to give.
        assert!(matches!(err, PolicyError::Syntax { .. }), "{err}");
        let source = std::error::Error::source(&err).unwrap().to_string();
        assert!(source.contains("repetition limit exceeded"), "{source}");
    }
}

#[test]
fn deep_yaml_nesting_is_refused_without_overflowing_the_stack() {
    for deep in [
        format!("rules: {}", "[".repeat(100_000)),
        format!("rules: {}{}", "[".repeat(10_000), "]".repeat(10_000)),
        format!("approvals: {}", "{a: ".repeat(10_000)),
        {
            // Block style: one more indented map per level.
            let mut y = String::from("tiers:\n");
            for i in 0..2_000 {
                y.push_str(&" ".repeat(i + 2));
                y.push_str("k:\n");
            }
            y
        },
    ] {
        let err = Policy::from_yaml_str(&deep).unwrap_err();
        assert!(
            err.line().is_some(),
            "{err} for {}",
            &deep[..deep.len().min(40)]
        );
    }
    // Refused before the reader, whose time grows with the square of the nesting.
    let err = Policy::from_yaml_str(&format!("rules:\n  - {}", "[".repeat(100_000))).unwrap_err();
    assert_eq!(err.line(), Some(2), "{err}");
    assert_eq!(err.field(), Some(""), "{err}");
    assert!(
        err.to_string()
            .contains("brackets nested deeper than 1000 levels"),
        "{err}"
    );
    // Deep conditions that are valid YAML but nest `all` past any sense.
    let mut when = String::from("{ field: args.a, exists: true }");
    for _ in 0..200 {
        when = format!("{{ all: [{when}] }}");
    }
    let yaml = format!("rules:\n  - id: r\n    tool: a\n    effect: deny\n    when: {when}\n");
    let _ = Policy::from_yaml_str(&yaml); // refused or loaded; no overflow
}

#[test]
fn a_config_refused_by_its_numbers_says_where_for_nan_and_infinity() {
    for (value, field) in [
        ("approvals:\n  ttl_seconds: .NaN\n", "approvals.ttl_seconds"),
        (
            "approvals:\n  ttl_seconds: -.inf\n",
            "approvals.ttl_seconds",
        ),
        ("tiers:\n  high: { quorum: .Inf }\n", "tiers.high.quorum"),
        ("budgets:\n  max_steps: .nan\n", "budgets.max_steps"),
    ] {
        let err = Policy::from_yaml_str(value).unwrap_err();
        assert_eq!(err.field(), Some(field), "{err}");
        assert_eq!(err.line(), Some(2), "{err}");
    }
}

// ---------------------------------------------------------------------------------------
// Arguments
// ---------------------------------------------------------------------------------------

const POLICY: &str = "\
approvals:
  required_for: [email.send, payments.refund]
rules:
  - { id: reads, tool: db.read, effect: allow }
";

struct World {
    gate: Gate,
    store: MemoryStore,
    clock: ManualClock,
    ran: Arc<Mutex<Vec<Execution>>>,
}

impl World {
    fn new() -> Self {
        Self::with_limits(ArgsLimits::default())
    }

    fn with_limits(limits: ArgsLimits) -> Self {
        Self::with_policy(POLICY, limits)
    }

    fn with_policy(yaml: &str, limits: ArgsLimits) -> Self {
        let store = MemoryStore::new();
        let clock = ManualClock::default();
        let gate = Gate::builder(
            Policy::from_yaml_str(yaml).unwrap(),
            Keyring::new(Key::new("k1", [7u8; 32]).unwrap()),
        )
        .store(store.clone())
        .clock(clock.clone())
        .args_limits(limits)
        .build();
        World {
            gate,
            store,
            clock,
            ran: Arc::default(),
        }
    }

    fn tool(&self) -> Gated<impl ToolExecutor<Output = Value, Error = std::io::Error> + use<>> {
        let ran = self.ran.clone();
        self.gate.wrap(move |exec: Execution| {
            let ran = ran.clone();
            async move {
                ran.lock().unwrap().push(exec);
                Ok::<Value, std::io::Error>(json!("done"))
            }
        })
    }

    /// Everything a bad input could change: the requests and the audit trail.
    async fn snapshot(&self) -> (String, Vec<AuditRecord>) {
        let now = self.clock.now();
        let requests = self
            .store
            .list(&RequestQuery::default(), now)
            .await
            .unwrap();
        let trail = self
            .store
            .audit_records(&AuditQuery::default())
            .await
            .unwrap();
        (format!("{requests:?}"), trail)
    }

    /// The trail written since `before`, as event names.
    async fn new_events(&self, before: &(String, Vec<AuditRecord>)) -> Vec<String> {
        let (requests, trail) = self.snapshot().await;
        assert_eq!(requests, before.0, "the requests changed");
        assert_eq!(
            trail[..before.1.len()],
            before.1[..],
            "the trail was rewritten"
        );
        trail[before.1.len()..]
            .iter()
            .map(|r| serde_json::to_value(&r.event).unwrap()["event"].to_string())
            .collect()
    }

    async fn file(&self, call: ToolCall) -> RequestId {
        match self.tool().call(call).await.unwrap() {
            GateOutcome::Pending(p) => p.request_id,
            other => panic!("expected pending, got {}", other.name()),
        }
    }
}

/// A value nested `depth` levels deep, alternating arrays and objects, built without
/// recursion.
fn deep_value(depth: usize) -> Value {
    let mut v = json!("bottom");
    for i in 0..depth {
        v = if i % 2 == 0 {
            Value::Array(vec![v])
        } else {
            let mut m = Map::new();
            m.insert("k".into(), v);
            Value::Object(m)
        };
    }
    v
}

/// Takes `v` apart level by level: dropping a value this deep by recursion would overflow
/// the stack.
fn dismantle(v: Value) {
    let mut stack = vec![v];
    while let Some(mut v) = stack.pop() {
        match &mut v {
            Value::Array(items) => stack.append(items),
            Value::Object(m) => stack.extend(std::mem::take(m).into_iter().map(|(_, v)| v)),
            _ => {}
        }
    }
}

#[track_caller]
fn stop_reason<T, E>(outcome: GateOutcome<T, E>) -> StopReason {
    match outcome {
        GateOutcome::Stopped(stop) => stop.reason,
        other => panic!("expected a stop, got {}", other.name()),
    }
}

#[track_caller]
fn is_stopped_invalid_args<T, E>(outcome: GateOutcome<T, E>, want: &ArgsError) {
    match stop_reason(outcome) {
        StopReason::InvalidArgs(e) => assert_eq!(&e, want),
        other => panic!("expected invalid_args, got {}", other.name()),
    }
}

#[tokio::test]
async fn args_nested_100000_deep_stop_the_call_and_file_nothing() {
    let w = World::new();
    let before = w.snapshot().await;
    for tool in ["email.send", "db.read"] {
        let call = ToolCall::new("run-1", "call-1", tool, deep_value(100_000));
        // The gate drops its copy without deep recursion; the test keeps one to check.
        let kept = call.clone();
        let outcome = w.tool().call(call).await.unwrap();
        is_stopped_invalid_args(outcome, &ArgsError::TooDeep { limit: 64 });
        dismantle(kept.into_args());
    }
    // A call the host does not keep is dropped by the gate, without overflowing.
    let outcome = w
        .tool()
        .call(ToolCall::new(
            "run-1",
            "call-2",
            "email.send",
            deep_value(100_000),
        ))
        .await
        .unwrap();
    is_stopped_invalid_args(outcome, &ArgsError::TooDeep { limit: 64 });
    assert!(w.ran.lock().unwrap().is_empty(), "the executor ran");
    let events = w.new_events(&before).await;
    assert_eq!(events, vec!["\"stopped\""; 3], "{events:?}");

    // The same shape as text: refused while reading.
    let text = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert_eq!(parse_args(&text), Err(ArgsError::TooDeep { limit: 64 }));
    assert_eq!(
        parse_args(&"{\"a\":".repeat(100_000)),
        Err(ArgsError::TooDeep { limit: 64 })
    );
}

#[tokio::test]
async fn the_depth_limit_is_configurable() {
    let limits = ArgsLimits {
        max_depth: 3,
        ..ArgsLimits::default()
    };
    let w = World::with_limits(limits);
    let ok = w
        .tool()
        .call(ToolCall::new("r", "c1", "db.read", deep_value(3)))
        .await
        .unwrap();
    assert_eq!(ok.name(), "executed");
    let outcome = w
        .tool()
        .call(ToolCall::new("r", "c2", "db.read", deep_value(4)))
        .await
        .unwrap();
    is_stopped_invalid_args(outcome, &ArgsError::TooDeep { limit: 3 });
    assert_eq!(w.ran.lock().unwrap().len(), 1);
    assert!(limits.parse("[[[1]]]").is_ok());
    assert_eq!(
        limits.parse("[[[[1]]]]"),
        Err(ArgsError::TooDeep { limit: 3 })
    );
}

const MIB: usize = 1024 * 1024;

#[tokio::test]
async fn args_of_100_mib_are_refused_by_size() {
    let w = World::new();
    let before = w.snapshot().await;
    let big = "x".repeat(100 * MIB);
    let mut body = Map::new();
    body.insert("body".into(), Value::String(big));
    let call = ToolCall::new("run-1", "call-1", "email.send", Value::Object(body));
    let outcome = w.tool().call(call).await.unwrap();
    is_stopped_invalid_args(outcome, &ArgsError::TooLarge { limit: 4 * MIB });

    // Many keys instead of one long string.
    let mut many = Map::new();
    for i in 0..400_000 {
        many.insert(format!("key-{i:08}"), json!(i));
    }
    let outcome = w
        .tool()
        .call(ToolCall::new(
            "run-1",
            "call-2",
            "db.read",
            Value::Object(many),
        ))
        .await
        .unwrap();
    is_stopped_invalid_args(outcome, &ArgsError::TooLarge { limit: 4 * MIB });
    assert!(w.ran.lock().unwrap().is_empty());
    assert_eq!(w.new_events(&before).await, vec!["\"stopped\""; 2]);

    // As text: refused by its length before it is read.
    let text = format!("{{\"body\": \"{}\"}}", "x".repeat(100 * MIB));
    assert_eq!(
        parse_args(&text),
        Err(ArgsError::TextTooLong {
            len: text.len(),
            limit: 4 * MIB
        })
    );
    // The limit is configurable.
    let roomy = ArgsLimits {
        max_bytes: 200 * MIB,
        ..ArgsLimits::default()
    };
    assert_eq!(
        roomy.parse(&text).unwrap()["body"].as_str().unwrap().len(),
        100 * MIB
    );
}

#[test]
fn non_finite_numbers_and_duplicate_keys_in_text_are_refused_where_they_are() {
    for text in [
        r#"{"amount": NaN}"#,
        r#"{"amount": Infinity}"#,
        r#"{"amount": -Infinity}"#,
    ] {
        let err = parse_args(text).unwrap_err();
        assert!(
            matches!(err, ArgsError::NonFiniteNumber { line: 1, .. }),
            "{text}: {err:?}"
        );
    }
    for text in [r#"{"amount": 1e400}"#, r#"{"amount": -1e400}"#] {
        let err = parse_args(text).unwrap_err();
        assert!(
            matches!(err, ArgsError::NumberOutOfRange { line: 1, .. }),
            "{text}: {err:?}"
        );
    }
    let err =
        parse_args("{\"to\": \"alice@example.com\",\n \"to\": \"mallory@evil.test\"}").unwrap_err();
    assert_eq!(
        err,
        ArgsError::DuplicateKey {
            key: "to".into(),
            line: 2,
            column: 5
        }
    );
    assert_eq!(err.to_string(), "duplicate key `to` at line 2 column 5");
    // serde_json alone keeps the last value: what a person sees could differ from what
    // a tool reads.
    let lenient: Value =
        serde_json::from_str("{\"to\": \"alice@example.com\", \"to\": \"mallory@evil.test\"}")
            .unwrap();
    assert_eq!(lenient["to"], "mallory@evil.test");
    // A Value cannot hold a non-finite number: `json!` turns one into null.
    assert_eq!(json!(f64::NAN), Value::Null);
    let err = parse_args("{\"a\": 1,}").unwrap_err();
    assert!(
        matches!(
            err,
            ArgsError::Invalid {
                line: 1,
                column: 9,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(std::error::Error::source(&err).is_some());
}

#[test]
fn integers_beyond_64_bits_are_refused_and_64_bit_integers_hash_exactly() {
    // 2^64, -(2^63) - 1 and 2^64 + 1 would be read as doubles: 2^64 and 2^64 + 1 would
    // hash the same, and unlike the exact integers another language hashes.
    for (text, column) in [
        (r#"{"amount": 18446744073709551616}"#, 31),
        (r#"{"amount": -9223372036854775809}"#, 31),
        (r#"{"amount": 18446744073709551617}"#, 31),
    ] {
        assert_eq!(
            parse_args(text),
            Err(ArgsError::NumberOutOfRange { line: 1, column }),
            "{text}"
        );
    }
    assert_eq!(
        parse_args("[1,\n 18446744073709551616]")
            .unwrap_err()
            .to_string(),
        "number out of range at line 2 column 21"
    );
    // u64::MAX and i64::MIN are read as the exact integers, and hash as them.
    for (text, canonical) in [
        (
            r#"{"amount": 18446744073709551615}"#,
            r#"{"amount":18446744073709551615}"#,
        ),
        (
            r#"{"amount": -9223372036854775808}"#,
            r#"{"amount":-9223372036854775808}"#,
        ),
    ] {
        let args = parse_args(text).unwrap();
        assert_eq!(canonical_json(&args).unwrap(), canonical);
        let exact: Value = serde_json::from_str(canonical).unwrap();
        assert!(exact["amount"].is_i64() || exact["amount"].is_u64());
        assert_eq!(
            ArgsHash::compute(&args).unwrap(),
            ArgsHash::compute(&exact).unwrap()
        );
    }
    assert_eq!(
        parse_args("18446744073709551615").unwrap().as_u64(),
        Some(u64::MAX)
    );
    assert_eq!(
        parse_args("-9223372036854775808").unwrap().as_i64(),
        Some(i64::MIN)
    );
    // The neighbours below u64::MAX hash apart.
    assert_ne!(
        ArgsHash::compute(&parse_args("18446744073709551615").unwrap()).unwrap(),
        ArgsHash::compute(&parse_args("18446744073709551614").unwrap()).unwrap()
    );
}

#[tokio::test]
async fn resume_with_a_call_beyond_the_limits_stops_and_leaves_the_request() {
    let w = World::new();
    let call =
        ToolCall::new("run-1", "call-1", "email.send", json!({"to": "bob"})).with_requester("bob");
    let id = w.file(call.clone()).await;
    w.gate
        .desk()
        .approve(id, &Approver::new("ann"))
        .await
        .unwrap();
    let before = w.snapshot().await;

    let deep = call.clone().with_args(deep_value(100_000));
    let kept = deep.clone();
    let outcome = w.tool().resume(id, deep).await.unwrap();
    is_stopped_invalid_args(outcome, &ArgsError::TooDeep { limit: 64 });
    dismantle(kept.into_args());

    let large = call.clone().with_args(json!({"to": "x".repeat(5 * MIB)}));
    let outcome = w.tool().resume(id, large).await.unwrap();
    is_stopped_invalid_args(outcome, &ArgsError::TooLarge { limit: 4 * MIB });

    assert!(w.ran.lock().unwrap().is_empty());
    assert_eq!(w.new_events(&before).await, vec!["\"stopped\""; 2]);
    // The approval is still there to use with the call that was approved.
    assert_eq!(w.tool().resume(id, call).await.unwrap().name(), "executed");
}

#[tokio::test]
async fn edits_beyond_the_limits_are_refused_and_leave_the_request_pending() {
    let w = World::new();
    let call =
        ToolCall::new("run-1", "call-1", "email.send", json!({"to": "bob"})).with_requester("bob");
    let id = w.file(call).await;
    let before = w.snapshot().await;
    let desk = w.gate.desk();
    let ann = Approver::new("ann");

    let err = desk
        .approve_with_edits(id, &ann, deep_value(100_000))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            DeskError::InvalidArgs {
                reason: ArgsError::TooDeep { limit: 64 },
                ..
            }
        ),
        "{err:?}"
    );
    assert!(std::error::Error::source(&err).is_some());
    let err = desk
        .approve_with_edits(id, &ann, json!({"to": "x".repeat(5 * MIB)}))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            DeskError::InvalidArgs {
                reason: ArgsError::TooLarge { .. },
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(w.new_events(&before).await, Vec::<String>::new());
    assert_eq!(
        desk.show(id).await.unwrap().state_at(w.clock.now()),
        RequestState::Pending
    );
}

// ---------------------------------------------------------------------------------------
// Tool names
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn tool_names_that_are_no_names_are_denied_and_only_recorded() {
    let names: Vec<String> = vec![
        String::new(),
        " ".into(),
        "\t".into(),
        "email.send ".into(),
        " email.send".into(),
        "email.send\u{200f}".into(),
        "\u{202e}dnes.liame".into(),
        "email\u{200b}.send".into(),
        "email.send\u{0}".into(),
        "\u{0}".into(),
        "email.\nsend".into(),
    ];
    // Under the fail-closed default, under a default that allows, and under a rule that
    // asks for approval of every tool: none of these names reaches a tool or the queue.
    let configs = [
        POLICY.to_owned(),
        format!("{POLICY}policy:\n  default: allow\n"),
        "rules:\n  - { id: all, tool: '*', effect: approval_required }\n".to_owned(),
    ];
    for config in &configs {
        let w = World::with_policy(config, ArgsLimits::default());
        for name in &names {
            let before = w.snapshot().await;
            let call = ToolCall::new("run-1", "call-1", name.as_str(), json!({}));
            let outcome = w.tool().call(call).await.unwrap();
            let shown: String = name.chars().take(20).collect();
            let GateOutcome::Stopped(stop) = outcome else {
                panic!("{shown:?} under {config}: {}", outcome.name());
            };
            match stop.reason {
                StopReason::PolicyDenied { reason, .. } => {
                    assert!(reason.is_some(), "{shown:?}");
                }
                other => panic!("{shown:?}: expected policy_denied, got {}", other.name()),
            }
            let events = w.new_events(&before).await;
            assert_eq!(events, vec!["\"policy_denied\""], "{shown:?}");
        }
        assert!(w.ran.lock().unwrap().is_empty());
    }
}

#[tokio::test]
async fn unknown_tool_names_are_denied_by_the_fail_closed_default() {
    let w = World::new();
    let huge = "a".repeat(MIB);
    for name in [
        "emai1.send",
        "émail.send",
        "EMAIL.SEND",
        "email.send.",
        "db",
        &huge,
    ] {
        let before = w.snapshot().await;
        let outcome = w
            .tool()
            .call(ToolCall::new("r", "c", name, json!({})))
            .await
            .unwrap();
        let shown: String = name.chars().take(20).collect();
        assert_eq!(stop_reason(outcome).name(), "policy_denied", "{shown}");
        assert_eq!(w.new_events(&before).await, vec!["\"policy_denied\""]);
    }
    assert!(w.ran.lock().unwrap().is_empty());
}

// ---------------------------------------------------------------------------------------
// Ids
// ---------------------------------------------------------------------------------------

#[test]
fn request_ids_and_args_hashes_of_the_wrong_form_are_typed_errors() {
    let long = "a".repeat(100_000);
    for text in [
        "",
        " ",
        "not-a-uuid",
        "0000",
        "6f1c8a2e-7f0b-4b6a-9f5e-3c2d1b0a9e8",
        "6f1c8a2e-7f0b-4b6a-9f5e-3c2d1b0a9e8f0",
        " 6f1c8a2e-7f0b-4b6a-9f5e-3c2d1b0a9e8f",
        "6f1c8a2e-7f0b-4b6a-9f5e-3c2d1b0a9e8f\n",
        "6f1c8a2e-7f0b-4b6a-9f5e-3c2d1b0a9e8g",
        "６f1c8a2e-7f0b-4b6a-9f5e-3c2d1b0a9e8f",
        long.as_str(),
    ] {
        let err = text.parse::<RequestId>().unwrap_err();
        let shown = err.to_string();
        assert!(shown.len() < 300, "{shown}");
        assert!(!shown.is_empty());
    }
    assert!(
        "6f1c8a2e-7f0b-4b6a-9f5e-3c2d1b0a9e8f"
            .parse::<RequestId>()
            .is_ok()
    );

    let good = ArgsHash::compute(&json!({})).unwrap().to_string();
    assert_eq!(good.parse::<ArgsHash>().unwrap().to_string(), good);
    for text in [
        String::new(),
        good[..63].to_owned(),
        format!("{good}0"),
        good.to_uppercase()
            .replace(|c: char| c.is_ascii_digit(), "G"),
        format!(" {}", &good[1..]),
        good.replacen(&good[..2], "é", 1),
        long.clone(),
    ] {
        let err = text.parse::<ArgsHash>().unwrap_err();
        assert_eq!(err.to_string(), "an args hash is 64 hex digits");
    }
}

#[tokio::test]
async fn the_desk_refuses_unknown_ids_and_changes_nothing() {
    let w = World::new();
    let call = ToolCall::new("run-1", "call-1", "email.send", json!({})).with_requester("bob");
    let id = w.file(call).await;
    let before = w.snapshot().await;
    let desk = w.gate.desk();
    let ann = Approver::new("ann");
    let unknown = RequestId::new();
    let is_not_found = |e: DeskError| matches!(e, DeskError::NotFound { id } if id == unknown);
    assert!(is_not_found(desk.show(unknown).await.unwrap_err()));
    assert!(is_not_found(desk.approve(unknown, &ann).await.unwrap_err()));
    // Too deep for its id to matter: refused for the args, without overflowing.
    let err = desk
        .approve_with_edits(unknown, &ann, deep_value(100_000))
        .await
        .unwrap_err();
    assert!(
        matches!(err, DeskError::InvalidArgs { id, .. } if id == unknown),
        "{err:?}"
    );
    assert!(is_not_found(
        desk.approve_with_edits(unknown, &ann, json!({}))
            .await
            .unwrap_err()
    ));
    assert!(is_not_found(
        desk.deny(unknown, &ann, Some("no")).await.unwrap_err()
    ));
    assert!(is_not_found(
        desk.cancel(unknown, &Approver::new("ann"), None)
            .await
            .unwrap_err()
    ));
    assert_eq!(w.new_events(&before).await, Vec::<String>::new());
    assert_eq!(
        desk.show(id).await.unwrap().state_at(w.clock.now()),
        RequestState::Pending
    );

    // Resuming an id nobody filed stops, on the record, and runs nothing.
    let call = ToolCall::new("run-1", "call-1", "email.send", json!({})).with_requester("bob");
    let outcome = w.tool().resume(unknown, call).await.unwrap();
    assert!(matches!(stop_reason(outcome), StopReason::UnknownRequest { id } if id == unknown));
    assert_eq!(w.new_events(&before).await, vec!["\"stopped\""]);
    assert!(w.ran.lock().unwrap().is_empty());
}

#[tokio::test]
async fn empty_run_and_call_ids_are_denied_and_huge_ones_never_panic() {
    let configs = [
        POLICY.to_owned(),
        format!("{POLICY}policy:\n  default: allow\n"),
    ];
    for config in &configs {
        let w = World::with_policy(config, ArgsLimits::default());
        for (run, call_id) in [("", "c"), ("r", ""), ("", ""), (" ", "c"), ("r", "c\n")] {
            for tool in ["db.read", "email.send", "nope"] {
                let before = w.snapshot().await;
                let call = ToolCall::new(run, call_id, tool, json!({}));
                let outcome = w.tool().call(call).await.unwrap();
                match stop_reason(outcome) {
                    StopReason::PolicyDenied { rule_ids, .. } => {
                        assert_eq!(rule_ids, ["tool_call"], "{run:?} {call_id:?}")
                    }
                    other => panic!("{run:?} {call_id:?}: {}", other.name()),
                }
                assert_eq!(w.new_events(&before).await, vec!["\"policy_denied\""]);
            }
        }
        assert!(w.ran.lock().unwrap().is_empty());
    }
    // Huge ids are ids: they go through as any other.
    let w = World::new();
    let huge = "r".repeat(MIB);
    let call = ToolCall::new(huge.as_str(), huge.as_str(), "db.read", json!({}));
    assert_eq!(w.tool().call(call).await.unwrap().name(), "executed");
    let call = ToolCall::new(huge.as_str(), huge.as_str(), "email.send", json!({}));
    assert_eq!(w.tool().call(call).await.unwrap().name(), "pending");
}

#[tokio::test]
async fn a_clock_moved_to_the_end_of_time_stops_there_and_files_without_panicking() {
    let w = World::new();
    // `advance` used to panic past the latest instant `time` holds; it stops there.
    w.clock.advance(std::time::Duration::MAX);
    let end = w.clock.now();
    assert_eq!(end.year(), 9999);
    w.clock.advance(std::time::Duration::from_secs(1));
    assert_eq!(w.clock.now(), end);
    // Filing a request there (its TTL beyond the end) used to panic; it expires at the
    // end, and approving it (its approval TTL beyond the end too) neither panics nor
    // lets anything run.
    let call = ToolCall::new("run-1", "c1", "email.send", json!({"to": "bob"}));
    let pending = match w.tool().call(call.clone()).await.unwrap() {
        GateOutcome::Pending(p) => p,
        other => panic!("expected pending, got {}", other.name()),
    };
    assert_eq!(pending.expires_at, end);
    let _ = w
        .gate
        .desk()
        .approve(pending.request_id, &Approver::new("ann"))
        .await;
    assert!(w.ran.lock().unwrap().is_empty());
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn a_sqlite_busy_timeout_beyond_what_sqlite_counts_is_held_at_its_limit() {
    use approval_gate::{SqliteStore, store::SqliteOptions};
    let dir = std::env::temp_dir().join(format!("approval-gate-it-{}", RequestId::new()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("busy.db");
    // Used to panic in the SQLite binding ("too big") when the store opened a connection.
    let options = SqliteOptions::new(path.to_str().unwrap())
        .busy_timeout(std::time::Duration::from_secs(365 * 24 * 3600));
    let store = SqliteStore::connect_with(options).await.unwrap();
    assert!(store.switches().await.is_ok());
    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}
