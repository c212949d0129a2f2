//! Policy evaluation against the number of rules: the tool index makes the cost of a call
//! depend on its tool name, not on how many rules the policy has. Run with
//! `cargo bench --bench policy_eval`; the report reads `policy_eval/allowed/10` …
//! `policy_eval/unknown_tool/10000`, and `policy_load/10` … `policy_load/10000` for the
//! time to load the same policies from YAML, plus `policy_load/68090`: a large tenant's
//! generated rules, 5 MB of YAML, whose canonical form is larger than the 4 MiB that
//! arguments may have (a config's version hashes it all).

use std::fmt::Write as _;
use std::hint::black_box;

use approval_gate::{Effect, Policy, ToolCall};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use serde_json::json;

const SIZES: [usize; 4] = [10, 100, 1_000, 10_000];

/// The largest policy loaded: 68,090 rules, about 5 MB of YAML.
const LARGE: usize = 68_090;

/// The rules every size starts with; the three probe calls below match only these.
const CORE: &str = r#"
policy:
  default: deny
rules:
  - id: no-drops
    tools: ["db.drop*"]
    effect: deny
  - id: big-refunds
    tools: [payments.refund]
    effect: approval_required
    when: { field: args.amount, gt: 100 }
  - id: small-refunds
    tools: [payments.refund]
    effect: allow
    when:
      - { field: args.amount, lte: 100 }
      - { field: args.currency, in: [EUR, USD] }
  - id: frozen-tenant
    tools: ["payments.*"]
    effect: deny
    when: { field: context.tenant, eq: frozen-co }
  - id: reviewed-drops
    tools: ["*.drop_table"]
    effect: approval_required
    when: { field: context.roles, contains: dba }
  - id: reads
    tools: ["*.read", crm.lookup]
    effect: allow
"#;

const CORE_RULES: usize = 6;

/// A policy of `n` rules: [`CORE`], then rules made from their number `i` so that none
/// matches a probe call. Of every eight: four exact names (`svcI.opK`), a prefix glob
/// (`svcI.*`), a suffix glob (`*.readI`), a glob keyed by its literal prefix
/// (`svcI.*.admin`) and one keyed by its literal suffix (`*.bulk*.purgeI`). Effects cycle
/// allow, deny, approval_required; every other rule has a condition.
fn policy_yaml(n: usize) -> String {
    let mut yaml = String::from(CORE);
    for i in 0..n - CORE_RULES {
        let tool = match i % 8 {
            0..=3 => format!("svc{i}.op{}", i % 5),
            4 => format!("\"svc{i}.*\""),
            5 => format!("\"*.read{i}\""),
            6 => format!("\"svc{i}.*.admin\""),
            _ => format!("\"*.bulk*.purge{i}\""),
        };
        let effect = ["allow", "deny", "approval_required"][i % 3];
        write!(
            yaml,
            "  - id: r{i}\n    tools: [{tool}]\n    effect: {effect}\n"
        )
        .unwrap();
        if i % 2 == 0 {
            let when = match (i / 2) % 3 {
                0 => format!("{{ field: args.amount, lte: {i} }}"),
                1 => "{ field: context.roles, contains: ops }".to_owned(),
                _ => format!("{{ field: args.table, in: [t{i}, t{}] }}", i + 1),
            };
            writeln!(yaml, "    when: {when}").unwrap();
        }
    }
    yaml
}

/// The three calls, each with the effect it must get at every size.
fn probes() -> [(&'static str, ToolCall, Effect); 3] {
    [
        (
            "allowed",
            ToolCall::new(
                "run-1",
                "c1",
                "payments.refund",
                json!({"amount": 40, "currency": "EUR"}),
            ),
            Effect::Allow,
        ),
        (
            "denied",
            ToolCall::new("run-1", "c2", "db.drop_table", json!({"table": "users"})),
            Effect::Deny,
        ),
        (
            "unknown_tool",
            ToolCall::new("run-1", "c3", "shell.exec", json!({"cmd": "ls"})),
            Effect::Deny,
        ),
    ]
}

fn evaluation(c: &mut Criterion) {
    let policies: Vec<(usize, Policy)> = SIZES
        .iter()
        .map(|&n| (n, Policy::from_yaml_str(&policy_yaml(n)).unwrap()))
        .collect();
    for (kind, call, effect) in probes() {
        let mut group = c.benchmark_group(format!("policy_eval/{kind}"));
        for (n, policy) in &policies {
            // The same decision at every size, from the same rule, or the bench would
            // compare different work.
            let decision = policy.evaluate(&call);
            assert_eq!(decision.effect(), effect, "{kind} at {n} rules");
            assert_eq!(
                decision.is_default(),
                kind == "unknown_tool",
                "{kind} at {n}"
            );
            group.bench_with_input(BenchmarkId::from_parameter(n), policy, |b, policy| {
                b.iter(|| policy.evaluate(black_box(&call)))
            });
        }
        group.finish();
    }
}

fn loading(c: &mut Criterion) {
    let mut group = c.benchmark_group("policy_load");
    group.sample_size(10);
    for n in SIZES.into_iter().chain([LARGE]) {
        let yaml = policy_yaml(n);
        group.bench_with_input(BenchmarkId::from_parameter(n), &yaml, |b, yaml| {
            b.iter(|| Policy::from_yaml_str(black_box(yaml)).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, evaluation, loading);
criterion_main!(benches);
