//! Bad configs get a typed error naming the field and the line, through the public API.

use approval_gate::{
    ArgsError, ArgsHash, ArgsLimits, Effect, Policy, PolicyError, ToolCall, canonical_json,
    config::Condition,
};
use serde_json::json;

/// Loads `yaml`, expecting an error at `field` on `line` whose message holds `words`.
fn refused(yaml: &str, field: &str, line: usize, words: &str) {
    let err = match Policy::from_yaml_str(yaml) {
        Ok(_) => panic!("loaded, but should fail at {field}:\n{yaml}"),
        Err(e) => e,
    };
    let shown = err.to_string();
    assert!(matches!(err, PolicyError::Invalid { .. }), "{shown}");
    assert_eq!(err.field(), Some(field), "{shown}");
    assert_eq!(err.line(), Some(line), "{shown}");
    assert!(shown.contains(words), "{shown}");
    assert!(shown.contains(&format!("line {line}")), "{shown}");
}

#[test]
fn unknown_keys() {
    refused(
        "approvals:\n  required_for: [email.send]\n  ttl: 300\n",
        "approvals.ttl",
        3,
        "unknown field `ttl`",
    );
    refused(
        "rules:\n  - id: r\n    tool: a\n    effect: allow\n    resaon: typo\n",
        "rules[0].resaon",
        5,
        "unknown field `resaon`",
    );
}

#[test]
fn unknown_tiers() {
    refused(
        "rules:\n  - id: r\n    tool: db.write\n    effect: approval_required\n    tier: critcal\ntiers:\n  high: {}\n  low: {}\n",
        "rules[0].tier",
        5,
        "unknown tier `critcal`, expected one of `high`, `low`",
    );
}

#[test]
fn bad_durations() {
    for bad in ["0", "-5", "1.5", "2592001", "5m"] {
        refused(
            &format!("approvals:\n  required_for: [email.send]\n  ttl_seconds: {bad}\n"),
            "approvals.ttl_seconds",
            3,
            "a TTL is a whole number of seconds",
        );
    }
}

#[test]
fn empty_patterns() {
    refused(
        "approvals:\n  required_for:\n    - email.send\n    - ''\n",
        "approvals.required_for[1]",
        4,
        "empty tool pattern",
    );
    refused(
        "rules:\n  - id: r\n    tools: []\n    effect: deny\n",
        "rules[0].tools",
        3,
        "`tools` is empty",
    );
}

#[test]
fn invalid_regexes() {
    refused(
        "rules:\n  - id: r\n    tool: email.send\n    effect: deny\n    when:\n      field: args.to\n      matches: '(unclosed'\n",
        "rules[0].when.matches",
        7,
        "invalid regex `(unclosed`",
    );
}

#[test]
fn rules_that_can_never_match() {
    refused(
        "rules:\n  - id: r\n    tool: db.write\n    effect: deny\n    when: { field: args.table, in: [] }\n",
        "rules[0].when.in",
        5,
        "`in: []` lists no values",
    );
    // Two rules with the same tools and condition but other effects: one never decides.
    let err = Policy::from_yaml_str(
        "rules:\n  - { id: a, tool: db.write, effect: allow }\n  - { id: b, tool: db.write, effect: deny }\n",
    )
    .unwrap_err();
    assert_eq!(err.line(), Some(3), "{err}");
}

#[test]
fn not_yaml_at_all() {
    let err = Policy::from_yaml_str("approvals: [unclosed\n").unwrap_err();
    assert!(matches!(err, PolicyError::Syntax { .. }), "{err}");
    assert!(err.line().is_some(), "{err}");
}

#[test]
fn a_yaml_syntax_error_says_why_and_where_in_its_message() {
    let cases = [
        (
            "approvals:\n\trequired_for: [email.send]\n",
            "policy config is not valid YAML at line 2 column 1: found character that cannot \
             start any token, while scanning for the next token",
        ),
        (
            "rules: [a, b\n",
            "policy config is not valid YAML at line 2 column 1: did not find expected ',' or \
             ']', while parsing a flow sequence at line 1 column 8",
        ),
        (
            "approvals: *nowhere\n",
            "policy config is not valid YAML at line 1 column 12: unknown anchor",
        ),
        (
            "approvals: {}\n---\nrules: []\n",
            "policy config is not valid YAML: deserializing from YAML containing more than one \
             document is not supported",
        ),
    ];
    for (yaml, want) in cases {
        let err = Policy::from_yaml_str(yaml).unwrap_err();
        assert!(matches!(err, PolicyError::Syntax { .. }), "{err:?}");
        assert_eq!(err.to_string(), want);
        assert!(std::error::Error::source(&err).is_some());
    }
    // Aliases that expand beyond the parser's limit (a billion laughs) have no position.
    let mut bomb = String::from("a0: &a0 [lol]\n");
    for i in 1..=9 {
        let list = vec![format!("*a{}", i - 1); 9].join(", ");
        bomb.push_str(&format!("a{i}: &a{i} [{list}]\n"));
    }
    let err = Policy::from_yaml_str(&bomb).unwrap_err();
    assert_eq!(
        err.to_string(),
        "policy config is not valid YAML: repetition limit exceeded"
    );
}

#[test]
fn a_refused_config_leaves_the_policy_in_force_untouched() {
    let good = Policy::from_yaml_str("approvals:\n  required_for: [email.send]\n").unwrap();
    assert!(Policy::from_yaml_str("approvals:\n  required_for: ['']\n").is_err());
    let call = ToolCall::new("r", "c", "email.send", json!({}));
    assert_eq!(good.evaluate(&call).effect(), Effect::ApprovalRequired);
}

/// A generated config of `n` rules whose reasons are `reason_len` bytes each.
fn generated(n: usize, reason_len: usize) -> String {
    let mut yaml = String::from("tiers:\n  ops: { approvers: [oncall] }\nrules:\n");
    for i in 0..n {
        let reason: String = format!("tenant {i}: ")
            .chars()
            .chain("x".repeat(reason_len).chars())
            .take(reason_len)
            .collect();
        yaml.push_str(&format!(
            "  - id: tenant{i}.writes\n    tools: [svc{i}.write, \"svc{i}.bulk.*\"]\n    \
             effect: approval_required\n    tier: ops\n    reason: \"{reason}\"\n    \
             when: {{ field: args.amount, gt: {i} }}\n"
        ));
    }
    yaml
}

#[test]
fn a_config_larger_than_the_args_limit_loads_and_hashes_all_of_itself() {
    // 1,500 rules of 3 KB: a canonical form of nearly 5 MB, beyond the 4 MiB that
    // arguments may have, which used to refuse the config as too large to hash.
    let yaml = generated(1_500, 3_000);
    let policy = Policy::from_yaml_str(&yaml).unwrap();
    assert_eq!(policy.config().rules.len(), 1_500);
    let value = serde_json::to_value(policy.config()).unwrap();
    assert_eq!(
        canonical_json(&value),
        Err(ArgsError::TooLarge {
            limit: 4 * 1024 * 1024
        })
    );
    // The version is SHA-256 over the whole canonical form, as for a small config.
    let whole = ArgsLimits {
        max_depth: 64,
        max_bytes: usize::MAX,
    };
    let digest = ArgsHash::compute_with_limits(&value, &whole).unwrap();
    assert_eq!(policy.version().as_str(), digest.to_string());
    // The last rule decides as written.
    let call = ToolCall::new("run-1", "c1", "svc1499.write", json!({"amount": 5000}));
    let decision = policy.evaluate(&call);
    assert_eq!(decision.effect(), Effect::ApprovalRequired);
    assert_eq!(decision.rule_ids().len(), 1);
    assert_eq!(&*decision.rule_ids()[0], "tenant1499.writes");
    // One byte changed in the last rule changes the version.
    let changed =
        Policy::from_yaml_str(&yaml.replace("tenant 1499: xx", "tenant 1499: xy")).unwrap();
    assert_ne!(changed.version(), policy.version());
}

#[test]
fn a_config_nested_beyond_what_its_version_hashes_names_the_limit() {
    let mut config = Policy::from_yaml_str("rules: [{ id: r, tool: db.write, effect: deny }]")
        .unwrap()
        .config()
        .clone();
    let mut when = Condition::All(Vec::new());
    for _ in 0..600 {
        when = Condition::Not(Box::new(when));
    }
    config.rules[0].when = Some(when);
    let err = Policy::from_config(config).unwrap_err();
    assert!(matches!(err, PolicyError::TooLarge { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "policy config nests deeper than the limit of 512 levels, too deep to hash into its \
         version"
    );
}
