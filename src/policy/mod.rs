//! The policy: a YAML config of rules, validated when it loads and compiled once, that
//! decides for each tool call whether it may run, must wait for a person, or must not run.
//!
//! - [`Policy`] loads ([`Policy::from_yaml_str`], [`Policy::from_config`],
//!   [`Policy::builder`]) and decides ([`Policy::evaluate`] → [`Decision`]).
//! - [`PolicyConfig`] and the types under it are the serde form of the YAML.
//! - [`PolicyCheck`] lets the host add what a config cannot say.
//! - What a person sees of a call: [`Policy::preview`] and [`Policy::redact`]; what the
//!   gate enforces per run: [`Policy::budgets`], [`Policy::controls`],
//!   [`Policy::is_read_tool`].
//!
//! Module map: `config` (serde types), `controls` (the `budgets` and `controls`
//! sections), `names`, `pattern`, `path`, `regex_pattern` (small validated values),
//! `preview` (preview templates and redaction), `condition` (conditions and their checks),
//! `eval` (conditions against a call), `load` (YAML passes and the error positions),
//! `validate` (whole-config checks), `check` (every error of a config, for `policy check`), `matcher` and `compile` (the compiled form),
//! `decision`, `effect`, `version`, `builder`, `error`.

mod builder;
mod check;
mod compile;
mod condition;
mod config;
mod controls;
mod decision;
mod effect;
mod error;
mod eval;
mod load;
mod matcher;
mod names;
mod path;
mod pattern;
mod preview;
mod regex_pattern;
mod validate;
mod version;

use std::borrow::Cow;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

pub use builder::{PolicyBuilder, Rule, Tier};
pub use condition::{Condition, Op};
pub use config::{ApprovalsConfig, PolicyConfig, PolicySettings, RuleConfig, TierConfig};
pub use controls::{Budgets, Controls, ControlsConfig, KillSwitchConfig};
pub use decision::Decision;
pub use effect::{Effect, Fallback};
pub use error::{PolicyError, YamlError};
pub use names::{RoleName, RuleId, TierName, TtlSeconds};
pub use path::FieldPath;
pub use pattern::ToolPattern;
pub use preview::PreviewTemplate;
pub(crate) use preview::restore_redacted;
pub use regex_pattern::RegexPattern;
pub use version::PolicyVersion;

use compile::Compiled;
use decision::RuleIds;

use crate::call::ToolCall;

/// A check written by the host for what a config cannot say (a customer's spending limit,
/// a business-hours rule). It sees every call after the rules and returns a decision, or
/// `None` for no opinion; its decision joins the rules' by the usual precedence, named
/// `check:NAME` in [`Decision::rule_ids`].
///
/// Implemented for closures:
///
/// ```
/// use approval_gate::{Decision, Policy, ToolCall};
///
/// let policy = Policy::from_yaml_str("policy:\n  default: allow\n")?
///     .with_check("no-prod", |call: &ToolCall| {
///         (call.mode() == Some("prod")).then(|| Decision::deny("no tools in prod runs"))
///     });
/// let call = ToolCall::new("r", "c", "db.write", serde_json::json!({})).with_mode("prod");
/// assert_eq!(&*policy.evaluate(&call).rule_ids()[0], "check:no-prod");
/// # Ok::<(), approval_gate::PolicyError>(())
/// ```
pub trait PolicyCheck: Send + Sync {
    /// The check's decision for `call`, or `None` when it has no opinion.
    fn check(&self, call: &ToolCall) -> Option<Decision>;
}

impl<F> PolicyCheck for F
where
    F: Fn(&ToolCall) -> Option<Decision> + Send + Sync,
{
    fn check(&self, call: &ToolCall) -> Option<Decision> {
        self(call)
    }
}

/// A loaded policy: the config, its version, its compiled rules and the host's checks.
/// Cheap to clone (one `Arc`), and shared freely across threads.
///
/// ```
/// use approval_gate::{Effect, Policy, ToolCall};
/// use serde_json::json;
///
/// let policy = Policy::from_yaml_str(
///     "approvals:\n  required_for: [email.send]\n  ttl_seconds: 300\n",
/// )?;
/// let send = ToolCall::new("run-1", "call-1", "email.send", json!({"to": "bob@example.com"}));
/// let decision = policy.evaluate(&send);
/// assert_eq!(decision.effect(), Effect::ApprovalRequired);
/// assert_eq!(decision.decision_ttl().as_secs(), 300);
///
/// let other = ToolCall::new("run-1", "call-2", "files.delete", json!({}));
/// assert_eq!(policy.evaluate(&other).effect(), Effect::Deny);
/// # Ok::<(), approval_gate::PolicyError>(())
/// ```
#[derive(Clone)]
pub struct Policy {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    config: PolicyConfig,
    version: PolicyVersion,
    compiled: Compiled,
    checks: Vec<NamedCheck>,
}

#[derive(Clone)]
struct NamedCheck {
    /// `check:NAME`.
    id: Arc<str>,
    check: Arc<dyn PolicyCheck>,
}

impl NamedCheck {
    /// The check's decision, with its id first and the TTLs, approvers and quorum of its
    /// tier (or the defaults) from the policy.
    fn join(&self, mut decision: Decision, compiled: &Compiled) -> Decision {
        let own = std::mem::replace(&mut decision.rule_ids, RuleIds::One(self.id.clone()));
        for id in own_ids(&own) {
            decision.rule_ids.push(id.clone());
        }
        compiled.fill_from_tier(&mut decision);
        decision.is_default = false;
        decision
    }

    fn panicked(&self) -> Decision {
        let name = self.id.strip_prefix("check:").unwrap_or(&self.id);
        Decision::deny(format!(
            "check `{name}` panicked; the call is denied (fail closed)"
        ))
        .with_rule(self.id.clone())
    }
}

fn own_ids(ids: &RuleIds) -> &[Arc<str>] {
    match ids {
        RuleIds::None => &[],
        RuleIds::One(id) => std::slice::from_ref(id),
        RuleIds::Many(ids) => ids,
    }
}

impl Policy {
    /// Loads a policy from YAML (see the config reference in the crate docs).
    ///
    /// Every problem is found here, with the field and line: unknown keys, unknown tiers,
    /// bad TTLs, empty patterns, invalid regexes, conditions that can never hold, duplicate
    /// rule ids, and rules that can never decide because another rule with the same tools
    /// and condition has a stronger effect.
    pub fn from_yaml_str(yaml: &str) -> Result<Policy, PolicyError> {
        Policy::from_config(load::parse_yaml(yaml)?).map_err(|e| check::with_line(yaml, e))
    }

    /// Every error of a YAML config, in the order found, each with its field and line:
    /// what a `policy check` reports. Empty when [`from_yaml_str`](Self::from_yaml_str)
    /// loads it; otherwise the first error is the one it returns.
    ///
    /// After an error in a rule, the rule is set aside and the others are checked; after
    /// an error in a one-line `key: value` elsewhere, that line is. The check stops at an
    /// error it cannot set aside (text that is not YAML, an error in a nested block outside
    /// the rules), and after 100 errors. Errors of the whole-config checks, which
    /// `from_yaml_str` gives without a line, get the line of their field where the text
    /// spells it in block style.
    ///
    /// ```
    /// use approval_gate::Policy;
    ///
    /// let yaml = "rules:\n  - { id: a, tool: x, effect: maybe }\n  - { id: b, tool: y, effect: allow }\n  - { id: c, tool: z, effect: never }\n";
    /// let errors = Policy::check_yaml(yaml);
    /// let fields: Vec<_> = errors.iter().map(|e| (e.field(), e.line())).collect();
    /// assert_eq!(fields, [(Some("rules[0].effect"), Some(2)), (Some("rules[2].effect"), Some(4))]);
    /// ```
    pub fn check_yaml(yaml: &str) -> Vec<PolicyError> {
        check::check_yaml(yaml)
    }

    /// Builds a policy from a config made in code, with the same checks as
    /// [`from_yaml_str`](Self::from_yaml_str) (errors name the field but no line).
    pub fn from_config(config: PolicyConfig) -> Result<Policy, PolicyError> {
        validate::validate(&config)?;
        let version = PolicyVersion::of(&config)?;
        let compiled = Compiled::new(&config);
        Ok(Policy {
            inner: Arc::new(Inner {
                config,
                version,
                compiled,
                checks: Vec::new(),
            }),
        })
    }

    /// Starts a [`PolicyBuilder`].
    pub fn builder() -> PolicyBuilder {
        PolicyBuilder::new()
    }

    /// Adds a host check named `name`, run after the rules on every evaluation. Its
    /// decisions are named `check:NAME`; a check that panics denies the call.
    ///
    /// Checks do not change [`version`](Self::version), which hashes the config only.
    pub fn with_check(
        self,
        name: impl Into<Arc<str>>,
        check: impl PolicyCheck + 'static,
    ) -> Policy {
        self.with_shared_check(name.into(), Arc::new(check))
    }

    fn with_shared_check(mut self, name: Arc<str>, check: Arc<dyn PolicyCheck>) -> Policy {
        let id: Arc<str> = format!("check:{name}").into();
        Arc::make_mut(&mut self.inner)
            .checks
            .push(NamedCheck { id, check });
        self
    }

    /// Decides what to do with `call`.
    ///
    /// First the config's controls, each a deny before any rule or check:
    /// `controls.kill_switch.enabled` denies every call (rule id `controls.kill_switch`);
    /// `policy.tool_allowlist`, when set, denies a tool that matches none of its patterns
    /// (`policy.tool_allowlist`); `controls.read_only` denies every tool that is not a read
    /// (`controls.read_only`, see [`is_read_tool`](Self::is_read_tool)).
    ///
    /// Then every rule whose tool pattern matches and whose condition holds takes part, and
    /// every host check that has an opinion. The strongest effect wins (`deny` over
    /// `approval_required` over `allow`); among the winners the first in config order
    /// (`approvals.required_for` entries, then `rules`, then checks in the order added)
    /// gives the reason, tier and TTLs. [`Decision::rule_ids`] names all the winners for a
    /// deny or an approval, and only the first for an allow. When nothing matches,
    /// `policy.default` decides ([`Decision::is_default`]).
    ///
    /// Evaluation never fails: it fails closed. A condition that meets a value it cannot
    /// test (`gt` on a string, `matches` on a number) makes the decision a deny naming the
    /// rule and the problem, and so does a host check that panics. A call whose tool name
    /// is empty or has whitespace, control or invisible formatting characters, or whose
    /// run id or call id is empty or has control characters, is denied whatever the rules
    /// say, naming the rule `tool_call`.
    ///
    /// Deciding an allowed call allocates no memory: tool names are looked up by `&str`,
    /// paths were parsed at load, numbers compare in place, and the decision shares the
    /// rule's strings. (A `matches` condition builds its regex cache the first time a thread
    /// uses it.)
    pub fn evaluate(&self, call: &ToolCall) -> Decision {
        let inner = &*self.inner;
        let compiled = &inner.compiled;
        if let Some(problem) = names::call_problem(call) {
            return compiled.control_deny("tool_call", problem);
        }
        if let Some(deny) = self.controls_deny(call.tool()) {
            return deny;
        }
        let found = match compiled.match_rules(call) {
            Ok(found) => found,
            Err(deny) => return deny,
        };

        // Host checks: the first allow, and every stronger answer.
        let mut check_allow: Option<(&NamedCheck, Decision)> = None;
        let mut check_strong: Vec<(&NamedCheck, Decision)> = Vec::new();
        for named in &inner.checks {
            match catch_unwind(AssertUnwindSafe(|| named.check.check(call))) {
                Ok(None) => {}
                Ok(Some(d)) if d.effect == Effect::Allow => {
                    if check_allow.is_none() {
                        check_allow = Some((named, d));
                    }
                }
                Ok(Some(d)) => check_strong.push((named, d)),
                Err(_) => return named.panicked(),
            }
        }

        let from_rules = [Effect::Deny, Effect::ApprovalRequired, Effect::Allow]
            .into_iter()
            .find(|e| found.first[e.index()].is_some());
        let from_checks = check_strong
            .iter()
            .map(|(_, d)| d.effect)
            .max()
            .or(check_allow.as_ref().map(|_| Effect::Allow));
        let Some(effect) = from_rules.max(from_checks) else {
            return compiled.default_decision(call.tool());
        };

        if effect == Effect::Allow {
            if let Some(n) = found.first[Effect::Allow.index()] {
                return compiled.rules[n as usize].decision();
            }
            if let Some((named, d)) = check_allow {
                return named.join(d, compiled);
            }
        }

        let mut rule_hits: Vec<u32> = found
            .strong
            .into_iter()
            .filter(|n| compiled.rules[*n as usize].effect == effect)
            .collect();
        rule_hits.sort_unstable();
        rule_hits.dedup();
        let mut ids: Vec<Arc<str>> = rule_hits
            .iter()
            .map(|n| compiled.rules[*n as usize].id.clone())
            .collect();
        let mut first_check: Option<Decision> = None;
        for (named, d) in check_strong.into_iter().filter(|(_, d)| d.effect == effect) {
            ids.push(named.id.clone());
            ids.extend(own_ids(&d.rule_ids).iter().cloned());
            if first_check.is_none() {
                first_check = Some(named.join(d, compiled));
            }
        }
        let mut decision = match (rule_hits.first(), first_check) {
            (Some(n), _) => compiled.rules[*n as usize].decision(),
            (None, Some(d)) => d,
            // A winning effect always has a rule or a check behind it.
            (None, None) => return compiled.default_decision(call.tool()),
        };
        // The preview comes from the first winning rule that has one, so a template is
        // not lost behind a `required_for` entry or a rule without one.
        if decision.preview.is_none() {
            decision.preview = rule_hits
                .iter()
                .find_map(|n| compiled.rules[*n as usize].preview.clone());
        }
        decision.rule_ids = RuleIds::from_vec(ids);
        decision
    }

    /// The deny of the kill switch, the tool allowlist or read-only mode, in that order,
    /// if one applies to `tool`. Allocates only when it denies.
    fn controls_deny(&self, tool: &str) -> Option<Decision> {
        let config = &self.inner.config;
        let compiled = &self.inner.compiled;
        if config.controls.kill_switch.enabled {
            return Some(compiled.control_deny(
                "controls.kill_switch",
                "the kill switch is on, so every call is denied".to_owned(),
            ));
        }
        if let Some(list) = &config.policy.tool_allowlist
            && !list.iter().any(|p| p.matches(tool))
        {
            return Some(compiled.control_deny(
                "policy.tool_allowlist",
                format!("`{tool}` is not in the tool allowlist"),
            ));
        }
        if config.controls.read_only && !self.is_read_tool(tool) {
            return Some(compiled.control_deny(
                "controls.read_only",
                format!("read-only mode denies `{tool}`"),
            ));
        }
        None
    }

    /// The per-run limits of `budgets` (each `None` when the config sets none). The gate
    /// counts against them; the policy only holds them.
    pub fn budgets(&self) -> &Budgets {
        &self.inner.config.budgets
    }

    /// The config's run controls: `controls.kill_switch.enabled` and
    /// `controls.read_only`. [`evaluate`](Self::evaluate) already obeys them; the gate
    /// adds the switches held in its store.
    pub fn controls(&self) -> Controls {
        Controls::from(&self.inner.config.controls)
    }

    /// True when `tool` matches a pattern of `policy.read_tools` (by default
    /// `*.read`, `*.list`, `*.get`, `*.search`): the tools read-only mode lets through.
    ///
    /// ```
    /// use approval_gate::Policy;
    ///
    /// let policy = Policy::from_yaml_str("")?;
    /// assert!(policy.is_read_tool("crm.contacts.list"));
    /// assert!(!policy.is_read_tool("crm.contacts.delete"));
    /// let custom = Policy::from_yaml_str("policy:\n  read_tools: [\"db.select\"]\n")?;
    /// assert!(custom.is_read_tool("db.select"));
    /// assert!(!custom.is_read_tool("files.read"));
    /// # Ok::<(), approval_gate::PolicyError>(())
    /// ```
    pub fn is_read_tool(&self, tool: &str) -> bool {
        self.inner
            .config
            .policy
            .read_tools
            .iter()
            .any(|p| p.matches(tool))
    }

    /// A copy of `args` with the value at every `approvals.redact` path replaced by the
    /// string `"[redacted]"`; paths `args` does not have are skipped. Use it wherever a
    /// person or the audit trail sees a call's args (the args hash and the executor still
    /// get the real ones).
    ///
    /// ```
    /// use approval_gate::Policy;
    /// use serde_json::json;
    ///
    /// let policy = Policy::from_yaml_str("approvals:\n  redact: [args.password, args.card.number]\n")?;
    /// let args = json!({"user": "bob", "password": "hunter2", "card": {"number": "4111", "exp": "12/30"}});
    /// assert_eq!(
    ///     policy.redact(&args),
    ///     json!({"user": "bob", "password": "[redacted]", "card": {"number": "[redacted]", "exp": "12/30"}})
    /// );
    /// # Ok::<(), approval_gate::PolicyError>(())
    /// ```
    pub fn redact(&self, args: &serde_json::Value) -> serde_json::Value {
        self.redacted(args).into_owned()
    }

    /// The args with the secret fields redacted, borrowed when there was nothing to
    /// redact.
    pub(crate) fn redacted<'a>(&self, args: &'a serde_json::Value) -> Cow<'a, serde_json::Value> {
        preview::redact(args, &self.inner.config.approvals.redact)
    }

    /// What an approver sees of `call`: the deciding rule's `preview` template (see
    /// [`Decision::preview_template`]) rendered over the call's redacted args, a string
    /// arg without quotes and any other value as compact JSON (a path the args lack shows
    /// as `<missing>`). Without a template: the tool's name, a space and the redacted args
    /// as compact JSON.
    ///
    /// ```
    /// use approval_gate::{Policy, ToolCall};
    /// use serde_json::json;
    ///
    /// let policy = Policy::from_yaml_str(
    ///     r#"
    /// approvals:
    ///   redact: [args.token]
    /// rules:
    ///   - id: send
    ///     tool: email.send
    ///     effect: approval_required
    ///     preview: "Send email to {to}: {subject}"
    ///   - { id: post, tool: http.post, effect: approval_required }
    /// "#,
    /// )?;
    /// let send = ToolCall::new("r", "c1", "email.send", json!({"to": "bob@example.com", "subject": "Hi"}));
    /// let decision = policy.evaluate(&send);
    /// assert_eq!(policy.preview(&decision, &send), "Send email to bob@example.com: Hi");
    ///
    /// let post = ToolCall::new("r", "c2", "http.post", json!({"url": "https://x.test", "token": "s3cret"}));
    /// let decision = policy.evaluate(&post);
    /// assert_eq!(
    ///     policy.preview(&decision, &post),
    ///     r#"http.post {"token":"[redacted]","url":"https://x.test"}"#
    /// );
    /// # Ok::<(), approval_gate::PolicyError>(())
    /// ```
    pub fn preview(&self, decision: &Decision, call: &ToolCall) -> String {
        let args = self.redacted(call.args());
        match &decision.preview {
            Some(template) => template.render(&args),
            None => format!("{} {}", call.tool(), preview::Compact(&args)),
        }
    }

    /// The content hash of the config.
    pub fn version(&self) -> &PolicyVersion {
        &self.inner.version
    }

    /// What the host should do when a call ends unapproved.
    pub fn fallback(&self) -> Fallback {
        self.inner.config.approvals.fallback_when_not_approved
    }

    /// The config the policy was built from.
    pub fn config(&self) -> &PolicyConfig {
        &self.inner.config
    }
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("version", &self.inner.version.as_str())
            .field("rules", &self.inner.compiled.rules.len())
            .field(
                "checks",
                &self.inner.checks.iter().map(|c| &*c.id).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use std::time::Duration;

    const SEED: &str = "\
approvals:
  required_for:
    - email.send
    - ticket.close_bulk
    - db.write
  ttl_seconds: 300
  fallback_when_not_approved: stop
";

    fn call(tool: &str, args: Value) -> ToolCall {
        ToolCall::new("run-1", "call-1", tool, args)
    }

    fn ids(d: &Decision) -> Vec<&str> {
        d.rule_ids().iter().map(|id| &**id).collect()
    }

    fn policy(yaml: &str) -> Policy {
        match Policy::from_yaml_str(yaml) {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn the_seed_config_loads_verbatim_and_behaves_as_written() {
        let p = policy(SEED);
        for (i, tool) in ["email.send", "ticket.close_bulk", "db.write"]
            .iter()
            .enumerate()
        {
            let d = p.evaluate(&call(tool, json!({"any": "args"})));
            assert_eq!(d.effect(), Effect::ApprovalRequired, "{tool}");
            assert_eq!(d.decision_ttl(), Duration::from_secs(300));
            assert_eq!(d.approval_ttl(), Duration::from_secs(900));
            assert_eq!(ids(&d), [format!("approvals.required_for[{i}]")]);
            assert_eq!(
                d.reason(),
                Some(format!("approval is required for `{tool}`").as_str())
            );
            assert!(!d.is_default());
        }
        let other = p.evaluate(&call("files.delete", json!({})));
        assert_eq!(other.effect(), Effect::Deny);
        assert!(other.is_default());
        assert!(other.rule_ids().is_empty());
        assert!(other.reason().unwrap().contains("`files.delete`"));
        assert_eq!(p.fallback(), Fallback::Stop);
    }

    #[test]
    fn deny_beats_approval_beats_allow_and_ids_follow_the_winner() {
        let p = policy(
            "
rules:
  - { id: allow-all-db, tools: ['db.*'], effect: allow }
  - { id: allow-write, tool: db.write, effect: allow }
  - id: big-writes
    tool: db.write
    effect: approval_required
    reason: big writes need a look
    when: { field: args.rows, gt: 100 }
  - id: users-table
    tool: db.write
    effect: approval_required
    when: { field: args.table, eq: users }
  - id: prod-block
    tools: [db.write, db.drop]
    effect: deny
    reason: no writes to prod
    when: { field: args.env, eq: prod }
",
        );
        let small = p.evaluate(&call("db.write", json!({"rows": 1})));
        assert_eq!(small.effect(), Effect::Allow);
        assert_eq!(
            ids(&small),
            ["allow-all-db"],
            "an allow names only the first allow"
        );

        let big = p.evaluate(&call("db.write", json!({"rows": 500, "table": "users"})));
        assert_eq!(big.effect(), Effect::ApprovalRequired);
        assert_eq!(ids(&big), ["big-writes", "users-table"]);
        assert_eq!(
            big.reason(),
            Some("big writes need a look"),
            "the first in config order explains"
        );

        let prod = p.evaluate(&call("db.write", json!({"rows": 500, "env": "prod"})));
        assert_eq!(prod.effect(), Effect::Deny);
        assert_eq!(ids(&prod), ["prod-block"]);
        assert_eq!(prod.reason(), Some("no writes to prod"));
    }

    #[test]
    fn globs_select_rules_by_prefix_suffix_and_anything() {
        let p = policy(
            "
policy: { default: deny }
rules:
  - { id: reads, tool: '*.read', effect: allow }
  - { id: db, tool: 'db.*', effect: approval_required }
  - { id: fallback, tool: '*', effect: approval_required, when: { field: context.mode, eq: supervised } }
  - { id: middle, tool: 'crm.*.export', effect: deny }
",
        );
        assert_eq!(
            p.evaluate(&call("files.read", json!({}))).effect(),
            Effect::Allow
        );
        assert_eq!(
            p.evaluate(&call("db.read", json!({}))).effect(),
            Effect::ApprovalRequired
        );
        assert_eq!(
            p.evaluate(&call("db.admin.drop", json!({}))).effect(),
            Effect::ApprovalRequired
        );
        assert_eq!(
            p.evaluate(&call("crm.contacts.export", json!({}))).effect(),
            Effect::Deny
        );
        assert!(p.evaluate(&call("mail.send", json!({}))).is_default());
        let supervised = call("mail.send", json!({})).with_mode("supervised");
        assert_eq!(ids(&p.evaluate(&supervised)), ["fallback"]);
    }

    #[test]
    fn conditions_read_nested_args_and_the_context() {
        let p = policy(
            "
tiers:
  high: { ttl_seconds: 600 }
rules:
  - id: refunds-large
    tools: [payments.refund]
    effect: approval_required
    tier: high
    when:
      all:
        - field: args.order.lines[0].amount
          gt: 100
        - { field: context.tenant, in: [acme, globex] }
        - not: { field: context.roles, contains: finance-lead }
  - { id: refunds, tool: payments.refund, effect: allow }
",
        );
        let refund = |amount: i64| {
            call(
                "payments.refund",
                json!({"order": {"lines": [{"amount": amount}]}}),
            )
        };
        let d = p.evaluate(&refund(250).with_tenant("acme"));
        assert_eq!(d.effect(), Effect::ApprovalRequired);
        assert_eq!(d.tier(), Some("high"));
        assert_eq!(d.decision_ttl(), Duration::from_secs(600));
        assert_eq!(
            p.evaluate(&refund(50).with_tenant("acme")).effect(),
            Effect::Allow
        );
        assert_eq!(
            p.evaluate(&refund(250).with_tenant("initech")).effect(),
            Effect::Allow
        );
        assert_eq!(
            p.evaluate(&refund(250).with_tenant("acme").with_role("finance-lead"))
                .effect(),
            Effect::Allow
        );
    }

    #[test]
    fn a_value_of_the_wrong_type_denies_and_names_the_rule() {
        let p = policy(
            "
policy: { default: allow }
rules:
  - { id: big, tool: pay, effect: approval_required, when: { field: args.amount, gt: 100 } }
",
        );
        let d = p.evaluate(&call("pay", json!({"amount": "a lot"})));
        assert_eq!(d.effect(), Effect::Deny);
        assert_eq!(ids(&d), ["big"]);
        let reason = d.reason().unwrap();
        assert!(reason.contains("rule `big`"), "{reason}");
        assert!(
            reason.contains("`gt` on `args.amount` expects a number, found a string"),
            "{reason}"
        );
        // A missing field is not a mismatch: the rule just does not apply.
        assert_eq!(p.evaluate(&call("pay", json!({}))).effect(), Effect::Allow);
    }

    #[test]
    fn host_checks_join_by_precedence_and_a_panic_denies() {
        let base = policy(
            "
policy: { default: deny }
tiers:
  high: { ttl_seconds: 1200, approval_ttl_seconds: 60 }
rules:
  - { id: reads, tool: '*.read', effect: allow }
  - { id: no-secrets, tool: vault.read, effect: deny }
",
        );
        let p = base
            .clone()
            .with_check("large-files", |c: &ToolCall| {
                (c.args()["size"].as_u64() > Some(1000))
                    .then(|| Decision::approval_required("large file").with_tier("high"))
            })
            .with_check("sandbox", |c: &ToolCall| {
                (c.tool() == "sandbox.exec").then(Decision::allow)
            })
            .with_check("vault-audit", |c: &ToolCall| {
                (c.tool() == "vault.read")
                    .then(|| Decision::deny("vault reads are off").with_rule("ticket-42"))
            });

        let big = p.evaluate(&call("files.read", json!({"size": 5000})));
        assert_eq!(big.effect(), Effect::ApprovalRequired);
        assert_eq!(ids(&big), ["check:large-files"]);
        assert_eq!(big.tier(), Some("high"));
        assert_eq!(big.decision_ttl(), Duration::from_secs(1200));
        assert_eq!(big.approval_ttl(), Duration::from_secs(60));

        let small = p.evaluate(&call("files.read", json!({"size": 10})));
        assert_eq!(ids(&small), ["reads"]);

        let sandbox = p.evaluate(&call("sandbox.exec", json!({})));
        assert_eq!(sandbox.effect(), Effect::Allow);
        assert_eq!(ids(&sandbox), ["check:sandbox"]);
        assert!(!sandbox.is_default());

        let vault = p.evaluate(&call("vault.read", json!({})));
        assert_eq!(vault.effect(), Effect::Deny);
        assert_eq!(
            ids(&vault),
            ["no-secrets", "check:vault-audit", "ticket-42"]
        );
        assert_eq!(vault.reason(), Some("rule `no-secrets` denies the call"));

        let panicky = base.with_check("broken", |_: &ToolCall| -> Option<Decision> {
            panic!("bug in a host check")
        });
        let d = panicky.evaluate(&call("files.read", json!({})));
        assert_eq!(d.effect(), Effect::Deny);
        assert_eq!(ids(&d), ["check:broken"]);
        assert!(d.reason().unwrap().contains("check `broken` panicked"));
        // The policy the check was added to is unchanged.
        assert_eq!(
            p.evaluate(&call("files.read", json!({}))).effect(),
            Effect::Allow
        );
    }

    #[test]
    fn the_default_effect_decides_what_no_rule_matches() {
        for (default, effect) in [
            ("allow", Effect::Allow),
            ("deny", Effect::Deny),
            ("approval_required", Effect::ApprovalRequired),
        ] {
            let p = policy(&format!(
                "policy: {{ default: {default} }}\napprovals: {{ ttl_seconds: 42 }}\nrules:\n  - {{ id: r, tool: x, effect: deny, when: {{ field: args.a, exists: true }} }}\n"
            ));
            // The rule names the tool, but its condition does not hold: the default decides.
            let d = p.evaluate(&call("x", json!({})));
            assert_eq!(d.effect(), effect);
            assert!(d.is_default());
            assert_eq!(d.decision_ttl(), Duration::from_secs(42));
        }
        // An empty config denies everything.
        let d = policy("").evaluate(&call("anything", json!({})));
        assert_eq!(d.effect(), Effect::Deny);
    }

    #[test]
    fn ttls_come_from_the_rule_then_its_tier_then_the_defaults() {
        let p = policy(
            "
approvals: { ttl_seconds: 100, approval_ttl_seconds: 200 }
tiers:
  high: { ttl_seconds: 600 }
rules:
  - { id: own, tool: a, effect: approval_required, tier: high, ttl_seconds: 30, approval_ttl_seconds: 40 }
  - { id: tiered, tool: b, effect: approval_required, tier: high }
  - { id: plain, tool: c, effect: approval_required }
",
        );
        let ttls = |tool: &str| {
            let d = p.evaluate(&call(tool, json!({})));
            (d.decision_ttl().as_secs(), d.approval_ttl().as_secs())
        };
        assert_eq!(ttls("a"), (30, 40));
        assert_eq!(ttls("b"), (600, 200));
        assert_eq!(ttls("c"), (100, 200));
    }

    #[test]
    fn the_version_hashes_meaning_not_spelling() {
        let a = policy(SEED);
        let reordered = policy(
            "# the seed, rewritten
approvals:
  fallback_when_not_approved: stop   # stop the run
  ttl_seconds: 300
  approval_ttl_seconds: 900
  required_for: [email.send, ticket.close_bulk, db.write]
policy:
  default: deny
",
        );
        assert_eq!(a.version(), reordered.version());
        let changed = policy(&SEED.replace("ttl_seconds: 300", "ttl_seconds: 301"));
        assert_ne!(a.version(), changed.version());
        let reordered_tools = policy(&SEED.replace(
            "    - email.send\n    - ticket.close_bulk\n",
            "    - ticket.close_bulk\n    - email.send\n",
        ));
        assert_ne!(
            a.version(),
            reordered_tools.version(),
            "rule order is meaning"
        );

        let one = policy("rules:\n  - { id: r, tool: x, effect: allow }\n");
        let list = policy("rules:\n  - { effect: allow, tools: [x], id: r }\n");
        assert_eq!(one.version(), list.version());
    }

    #[test]
    fn a_config_survives_a_round_trip_through_yaml() {
        let p = policy(
            "
tiers:
  high: { ttl_seconds: 600, description: risky, approvers: [cfo, finance-lead], quorum: 2 }
rules:
  - id: r
    tools: [db.write]
    effect: approval_required
    tier: high
    reason: why
    when:
      any:
        - { field: args.n, gte: 1.5 }
        - { field: args.to, matches: '^a' }
        - not: { field: args.x, in: [1, two, {three: 3}] }
",
        );
        let yaml = serde_yaml::to_string(p.config()).unwrap();
        let again = policy(&yaml);
        assert_eq!(again.config(), p.config());
        assert_eq!(again.version(), p.version());
    }

    #[test]
    fn the_builder_gives_the_same_policy_as_yaml() {
        let yaml = policy(
            "
approvals:
  required_for: [email.send]
  ttl_seconds: 120
  fallback_when_not_approved: continue
policy: { default: approval_required }
tiers:
  high: { ttl_seconds: 600, description: money moves }
rules:
  - { id: reads, tool: '*.read', effect: allow }
  - id: refunds-large
    tool: payments.refund
    effect: approval_required
    tier: high
    reason: refunds over 100 need a second pair of eyes
    when: { field: args.amount, gt: 100 }
  - { id: prod, tools: [db.write, db.drop], effect: deny, when: { field: context.mode, eq: prod } }
",
        );
        let built = Policy::builder()
            .require_approval_for("email.send")
            .ttl_seconds(120)
            .fallback(Fallback::Continue)
            .default_effect(Effect::ApprovalRequired)
            .tier(
                "high",
                Tier::new().ttl_seconds(600).description("money moves"),
            )
            .rule(Rule::allow("reads").tool("*.read"))
            .rule(
                Rule::approval_required("refunds-large")
                    .tool("payments.refund")
                    .tier("high")
                    .reason("refunds over 100 need a second pair of eyes")
                    .when(Condition::field("args.amount", Op::Gt(100.into())).unwrap()),
            )
            .rule(
                Rule::deny("prod")
                    .tools(["db.write", "db.drop"])
                    .when(Condition::field("context.mode", Op::Eq(json!("prod"))).unwrap()),
            )
            .build()
            .unwrap();
        assert_eq!(built.config(), yaml.config());
        assert_eq!(built.version(), yaml.version());
        assert_eq!(built.fallback(), Fallback::Continue);
        let calls = [
            call("email.send", json!({})),
            call("files.read", json!({})),
            call("payments.refund", json!({"amount": 500})),
            call("payments.refund", json!({"amount": 5})),
            call("db.write", json!({})).with_mode("prod"),
            call("db.write", json!({})),
        ];
        for c in &calls {
            assert_eq!(built.evaluate(c), yaml.evaluate(c), "{}", c.tool());
        }
    }

    #[test]
    fn the_builder_reports_the_first_bad_value_with_its_field() {
        let err = Policy::builder()
            .rule(Rule::allow("ok").tool("a"))
            .rule(Rule::allow("bad").tools(["b", ""]))
            .ttl_seconds(0)
            .build()
            .unwrap_err();
        assert_eq!(err.field(), Some("rules[1].tools[1]"));
        assert_eq!(err.line(), None);
        let err = Policy::builder()
            .rule(Rule::approval_required("r").tool("a").tier("nope"))
            .build()
            .unwrap_err();
        assert_eq!(err.field(), Some("rules[0].tier"));
        assert!(err.to_string().contains("unknown tier `nope`"), "{err}");
    }

    #[test]
    fn from_config_checks_what_the_types_cannot() {
        let rule = |id: &str, effect| RuleConfig {
            id: RuleId::new(id).unwrap(),
            tools: vec![ToolPattern::new("x").unwrap()],
            effect,
            tier: None,
            reason: None,
            when: None,
            ttl_seconds: None,
            approval_ttl_seconds: None,
            preview: None,
        };
        let mut config = PolicyConfig {
            rules: vec![rule("a", Effect::Allow), rule("a", Effect::Allow)],
            ..PolicyConfig::default()
        };
        let err = Policy::from_config(config.clone()).unwrap_err();
        assert!(matches!(err, PolicyError::InvalidConfig { .. }));
        assert_eq!(err.field(), Some("rules[1].id"));

        config.rules = vec![rule("a", Effect::Allow), rule("b", Effect::Deny)];
        assert_eq!(
            Policy::from_config(config.clone()).unwrap_err().field(),
            Some("rules[1]")
        );

        config.rules = vec![RuleConfig {
            tools: vec![],
            ..rule("a", Effect::Allow)
        }];
        assert_eq!(
            Policy::from_config(config.clone()).unwrap_err().field(),
            Some("rules[0].tools")
        );

        config.rules = vec![RuleConfig {
            when: Some(Condition::not(Condition::Field {
                field: FieldPath::new("args.a").unwrap(),
                op: Op::In(vec![]),
            })),
            ..rule("a", Effect::Allow)
        }];
        assert_eq!(
            Policy::from_config(config).unwrap_err().field(),
            Some("rules[0].when.not.in")
        );
    }

    /// The example of the config reference (README), kept in step with it.
    const REFERENCE_EXAMPLE: &str = r#"approvals:
  required_for: [email.send]
  ttl_seconds: 300
  approval_ttl_seconds: 900
  fallback_when_not_approved: stop

policy:
  default: deny

tiers:
  high:
    ttl_seconds: 600
    approval_ttl_seconds: 300
    description: money leaves the company

rules:
  - id: reads
    tools: ["*.read", "*.list"]
    effect: allow

  - id: refunds-large
    tool: payments.refund
    effect: approval_required
    tier: high
    reason: refunds over 100 need a second pair of eyes
    when:
      all:
        - field: args.amount
          gt: 100
        - not: { field: context.roles, contains: finance-lead }

  - id: refunds
    tool: payments.refund
    effect: allow

  - id: sensitive-tables
    tools: ["db.*"]
    effect: approval_required
    when: { field: args.table, in: [users, payments] }

  - id: outside-mail
    tool: email.send
    effect: deny
    reason: mail leaves only for our own domain
    when:
      not: { field: args.to, matches: '@example\.com$' }

  - id: no-prod-writes
    tools: ["db.*", "files.write"]
    effect: deny
    when: { field: context.mode, eq: prod }
"#;

    #[test]
    fn the_reference_example_loads_and_decides_as_documented() {
        let p = policy(REFERENCE_EXAMPLE);
        let refund = |amount: i64| call("payments.refund", json!({"amount": amount}));
        let big = p.evaluate(&refund(500));
        assert_eq!(big.effect(), Effect::ApprovalRequired);
        assert_eq!(big.tier(), Some("high"));
        assert_eq!(big.decision_ttl(), Duration::from_secs(600));
        assert_eq!(
            p.evaluate(&refund(500).with_role("finance-lead")).effect(),
            Effect::Allow
        );
        assert_eq!(p.evaluate(&refund(5)).effect(), Effect::Allow);
        let mail = |to: &str| call("email.send", json!({ "to": to }));
        assert_eq!(
            p.evaluate(&mail("bob@example.com")).effect(),
            Effect::ApprovalRequired
        );
        assert_eq!(
            p.evaluate(&mail("eve@elsewhere.org")).effect(),
            Effect::Deny
        );
        let write = call("db.write", json!({"table": "users"}));
        assert_eq!(p.evaluate(&write).effect(), Effect::ApprovalRequired);
        assert_eq!(
            p.evaluate(&write.clone().with_mode("prod")).effect(),
            Effect::Deny
        );
        assert_eq!(
            p.evaluate(&call("db.write", json!({"table": "logs"})))
                .effect(),
            Effect::Deny
        );
        assert_eq!(
            p.evaluate(&call("files.list", json!({}))).effect(),
            Effect::Allow
        );
    }

    #[test]
    fn the_seed_version_is_pinned() {
        // Computed before tiers had `approvers` and `quorum`: keys a config leaves out
        // are not written into the canonical form, so existing versions stay as they were.
        assert_eq!(
            policy(SEED).version().as_str(),
            "7656fca1f71a25b5bc87eb0609f48bc898484ff3b7857fb16386a7e69b4fdd2c"
        );
        let tiered = "tiers:\n  high: { ttl_seconds: 600, description: money moves }\nrules:\n  - { id: r, tool: x, effect: approval_required, tier: high }\n";
        assert_eq!(
            policy(tiered).version().as_str(),
            "fbfee3b92815b3f0507b5aff19e1e5f5308a28b54e04aecda7000ae21a3d0cb3"
        );
        // Setting them is meaning, so it changes the version.
        let with_quorum = tiered.replace(
            "description: money moves",
            "description: money moves, quorum: 2",
        );
        assert_ne!(policy(tiered).version(), policy(&with_quorum).version());
        let with_roles = tiered.replace(
            "description: money moves",
            "description: money moves, approvers: [cfo]",
        );
        assert_ne!(policy(tiered).version(), policy(&with_roles).version());
    }

    #[test]
    fn a_tier_gives_its_approver_roles_and_quorum_to_decisions() {
        let p = policy(
            "
approvals:
  required_for: [email.send]
tiers:
  critical: { approvers: [cfo, finance-lead], quorum: 2 }
  high: { approvers: [finance-lead] }
  low: { quorum: 3 }
  plain: {}
rules:
  - { id: wire, tool: payments.wire, effect: approval_required, tier: critical }
  - { id: refund, tool: payments.refund, effect: approval_required, tier: high }
  - { id: export, tool: crm.export, effect: approval_required, tier: low }
  - { id: note, tool: crm.note, effect: approval_required, tier: plain }
  - { id: untiered, tool: crm.merge, effect: approval_required }
  - { id: reads, tool: '*.read', effect: allow, tier: critical }
  - { id: drop, tool: db.drop, effect: deny, tier: critical }
  - { id: bad, tool: pay.check, effect: approval_required, tier: critical, when: { field: args.n, gt: 1 } }
",
        );
        let roles_and_quorum = |tool: &str, args: Value| {
            let d = p.evaluate(&call(tool, args));
            let roles: Vec<String> = d.approver_roles().iter().map(|r| r.to_string()).collect();
            (d.effect(), roles, d.quorum())
        };
        assert_eq!(
            roles_and_quorum("payments.wire", json!({})),
            (
                Effect::ApprovalRequired,
                vec!["cfo".to_owned(), "finance-lead".to_owned()],
                2
            )
        );
        assert_eq!(
            roles_and_quorum("payments.refund", json!({})),
            (Effect::ApprovalRequired, vec!["finance-lead".to_owned()], 1),
            "no quorum: one approver"
        );
        assert_eq!(
            roles_and_quorum("crm.export", json!({})),
            (Effect::ApprovalRequired, vec![], 3),
            "no approvers: any role"
        );
        for tool in ["crm.note", "crm.merge", "email.send", "nothing.matches"] {
            let (_, roles, quorum) = roles_and_quorum(tool, json!({}));
            assert!(roles.is_empty(), "{tool}");
            assert_eq!(quorum, 1, "{tool}");
        }
        // Other effects carry the tier's values too, harmlessly.
        assert_eq!(roles_and_quorum("files.read", json!({})).2, 2);
        assert_eq!(roles_and_quorum("db.drop", json!({})).2, 2);
        // A rule that cannot be evaluated denies without its tier.
        let (effect, roles, quorum) = roles_and_quorum("pay.check", json!({"n": "x"}));
        assert_eq!(effect, Effect::Deny);
        assert!(roles.is_empty());
        assert_eq!(quorum, 1);

        // Every decision of a tier shares the tier's one list of roles.
        let a = p.evaluate(&call("payments.wire", json!({})));
        let b = p.evaluate(&call("files.read", json!({})));
        assert!(std::ptr::eq(a.approver_roles(), b.approver_roles()));
    }

    #[test]
    fn a_host_check_decision_takes_its_tiers_roles_and_quorum() {
        let p = policy(
            "
policy: { default: allow }
tiers:
  critical: { approvers: [cfo], quorum: 2, ttl_seconds: 60 }
",
        )
        .with_check("wires", |c: &ToolCall| {
            (c.tool() == "payments.wire")
                .then(|| Decision::approval_required("wires need two").with_tier("critical"))
        })
        .with_check("exports", |c: &ToolCall| {
            (c.tool() == "crm.export")
                .then(|| Decision::approval_required("exports need a look").with_tier("unknown"))
        });
        let wire = p.evaluate(&call("payments.wire", json!({})));
        assert_eq!(ids(&wire), ["check:wires"]);
        assert_eq!(wire.approver_roles().len(), 1);
        assert_eq!(&*wire.approver_roles()[0], "cfo");
        assert_eq!(wire.quorum(), 2);
        assert_eq!(wire.decision_ttl(), Duration::from_secs(60));
        let export = p.evaluate(&call("crm.export", json!({})));
        assert!(export.approver_roles().is_empty());
        assert_eq!(export.quorum(), 1);
    }

    #[test]
    fn the_builder_sets_tier_roles_and_quorum_as_yaml_does() {
        let yaml = policy(
            "
tiers:
  high: { ttl_seconds: 600, approvers: [finance-lead, cfo], quorum: 2 }
rules:
  - { id: wire, tool: payments.wire, effect: approval_required, tier: high }
",
        );
        let built = Policy::builder()
            .tier(
                "high",
                Tier::new()
                    .ttl_seconds(600)
                    .approvers(["finance-lead"])
                    .approvers(["cfo"])
                    .quorum(2),
            )
            .rule(
                Rule::approval_required("wire")
                    .tool("payments.wire")
                    .tier("high"),
            )
            .build()
            .unwrap();
        assert_eq!(built.config(), yaml.config());
        assert_eq!(built.version(), yaml.version());
        let c = call("payments.wire", json!({}));
        assert_eq!(built.evaluate(&c), yaml.evaluate(&c));
        assert_eq!(built.evaluate(&c).quorum(), 2);

        let fails = |tier: Tier| Policy::builder().tier("high", tier).build().unwrap_err();
        let err = fails(Tier::new().quorum(0));
        assert_eq!(err.field(), Some("tiers.high.quorum"));
        assert!(err.to_string().contains("found `0`"), "{err}");
        assert_eq!(
            fails(Tier::new().quorum(11)).field(),
            Some("tiers.high.quorum")
        );
        let err = fails(Tier::new().approvers(["cfo", "finance lead"]));
        assert_eq!(err.field(), Some("tiers.high.approvers[1]"));
        assert!(
            err.to_string().contains("role name `finance lead`"),
            "{err}"
        );
        assert_eq!(
            fails(Tier::new().approvers([""])).field(),
            Some("tiers.high.approvers[0]")
        );
        let err = fails(Tier::new().approvers(["cfo", "cfo"]));
        assert_eq!(err.field(), Some("tiers.high.approvers[1]"));
        assert!(err.to_string().contains("duplicate role `cfo`"), "{err}");
    }

    #[test]
    fn from_config_checks_tier_roles_and_quorum() {
        let with_tier = |tier: TierConfig| PolicyConfig {
            tiers: [(TierName::new("high").unwrap(), tier)].into(),
            ..PolicyConfig::default()
        };
        for n in [0, 11] {
            let err = Policy::from_config(with_tier(TierConfig {
                quorum: Some(n),
                ..TierConfig::default()
            }))
            .unwrap_err();
            assert!(matches!(err, PolicyError::InvalidConfig { .. }));
            assert_eq!(err.field(), Some("tiers.high.quorum"));
        }
        let cfo = RoleName::new("cfo").unwrap();
        let err = Policy::from_config(with_tier(TierConfig {
            approvers: vec![cfo.clone(), cfo],
            ..TierConfig::default()
        }))
        .unwrap_err();
        assert_eq!(err.field(), Some("tiers.high.approvers[1]"));
        assert!(
            Policy::from_config(with_tier(TierConfig {
                approvers: vec![RoleName::new("cfo").unwrap()],
                quorum: Some(10),
                ..TierConfig::default()
            }))
            .is_ok()
        );
    }

    #[test]
    fn policies_are_cheap_shared_values() {
        fn shared<T: Send + Sync + Clone + 'static>() {}
        shared::<Policy>();
        let p = policy(SEED);
        let q = p.clone();
        assert!(Arc::ptr_eq(&p.inner, &q.inner));
        assert!(format!("{p:?}").contains(p.version().as_str()));
    }

    /// Every new key of the human-side config, set.
    const CONTROLLED: &str = r#"
approvals:
  required_for: [email.send]
  redact: [args.password, "args.card.number"]
policy:
  default: allow
  tool_allowlist: ["crm.*", email.send, "*.read"]
  read_tools: ["*.read", "crm.*.list"]
budgets:
  max_steps: 50
  max_tool_calls: 100
  max_seconds: 600
  max_usd: 5.0
controls:
  kill_switch: { enabled: false }
  read_only: false
tiers:
  critical: { grants: false, quorum: 2 }
  high: { grants: true }
rules:
  - id: send
    tool: email.send
    effect: approval_required
    preview: "Send email to {to}: {subject}"
  - id: wire
    tool: crm.payments.wire
    effect: approval_required
    tier: critical
    preview: "Wire {amount} to {card} ({{card}} is redacted in part)"
"#;

    #[test]
    fn the_new_keys_load_into_the_config_and_the_policy() {
        let p = policy(CONTROLLED);
        let config = p.config();
        let redact: Vec<&str> = config
            .approvals
            .redact
            .iter()
            .map(FieldPath::as_str)
            .collect();
        assert_eq!(redact, ["args.password", "args.card.number"]);
        let allow: Vec<&str> = config
            .policy
            .tool_allowlist
            .iter()
            .flatten()
            .map(ToolPattern::as_str)
            .collect();
        assert_eq!(allow, ["crm.*", "email.send", "*.read"]);
        assert_eq!(
            p.budgets(),
            &Budgets {
                max_steps: Some(50),
                max_tool_calls: Some(100),
                max_seconds: Some(600),
                max_usd: Some(5.0),
            }
        );
        assert_eq!(p.controls(), Controls::default());
        assert!(!config.tiers[&TierName::new("critical").unwrap()].grants);
        assert_eq!(
            config.rules[0]
                .preview
                .as_ref()
                .map(PreviewTemplate::as_str),
            Some("Send email to {to}: {subject}")
        );
        assert!(p.is_read_tool("files.read"));
        assert!(p.is_read_tool("crm.contacts.list"));
        assert!(
            !p.is_read_tool("files.list"),
            "the config's list replaces the default"
        );
        assert!(!p.is_read_tool("crm.contacts.delete"));
    }

    #[test]
    fn the_new_keys_default_to_no_limits_no_switches_and_the_standard_reads() {
        let p = policy("");
        assert_eq!(p.budgets(), &Budgets::default());
        assert_eq!(p.controls(), Controls::default());
        assert!(p.config().approvals.redact.is_empty());
        assert_eq!(p.config().policy.tool_allowlist, None);
        for tool in ["files.read", "crm.contacts.list", "kv.get", "docs.search"] {
            assert!(p.is_read_tool(tool), "{tool}");
        }
        for tool in ["files.write", "db.reader", "get", "email.send"] {
            assert!(!p.is_read_tool(tool), "{tool}");
        }
        let tiered = policy("tiers:\n  high: {}\n");
        assert!(tiered.config().tiers[&TierName::new("high").unwrap()].grants);
        // `read_tools: []` makes no tool a read.
        assert!(!policy("policy: { read_tools: [] }\n").is_read_tool("files.read"));
    }

    #[test]
    fn the_tool_allowlist_denies_an_unlisted_tool_before_any_rule() {
        let p = policy(
            "
policy:
  default: allow
  tool_allowlist: ['crm.*', email.send]
rules:
  - { id: deletes, tool: files.delete, effect: allow }
  - { id: exports, tool: 'crm.*.export', effect: approval_required }
",
        );
        let d = p.evaluate(&call("files.delete", json!({})));
        assert_eq!(d.effect(), Effect::Deny);
        assert_eq!(ids(&d), ["policy.tool_allowlist"]);
        assert_eq!(
            d.reason(),
            Some("`files.delete` is not in the tool allowlist")
        );
        assert!(!d.is_default());
        // Listed tools go on to the rules, then the default.
        assert_eq!(
            ids(&p.evaluate(&call("crm.contacts.export", json!({})))),
            ["exports"]
        );
        let listed = p.evaluate(&call("email.send", json!({})));
        assert_eq!(listed.effect(), Effect::Allow);
        assert!(listed.is_default());
        // The allowlist also comes before host checks.
        let checked = p.with_check("all", |_: &ToolCall| Some(Decision::allow()));
        assert_eq!(
            ids(&checked.evaluate(&call("files.delete", json!({})))),
            ["policy.tool_allowlist"]
        );
    }

    #[test]
    fn read_only_mode_denies_every_tool_that_is_not_a_read() {
        let p = policy(
            "
controls: { read_only: true }
policy: { default: allow }
rules:
  - { id: writes, tool: files.write, effect: allow }
  - { id: lists, tool: '*.list', effect: approval_required }
",
        );
        assert_eq!(
            p.controls(),
            Controls {
                kill_switch: false,
                read_only: true
            }
        );
        let d = p.evaluate(&call("files.write", json!({})));
        assert_eq!(d.effect(), Effect::Deny);
        assert_eq!(ids(&d), ["controls.read_only"]);
        assert_eq!(d.reason(), Some("read-only mode denies `files.write`"));
        // Reads go on to the rules as usual.
        assert_eq!(
            p.evaluate(&call("files.read", json!({}))).effect(),
            Effect::Allow
        );
        assert_eq!(ids(&p.evaluate(&call("crm.list", json!({})))), ["lists"]);
        // With its own `read_tools`, only those are reads.
        let custom = policy(
            "controls: { read_only: true }\npolicy: { default: allow, read_tools: [db.select] }\n",
        );
        assert_eq!(
            custom.evaluate(&call("db.select", json!({}))).effect(),
            Effect::Allow
        );
        assert_eq!(
            ids(&custom.evaluate(&call("files.read", json!({})))),
            ["controls.read_only"]
        );
        // Off: writes are decided by the rules.
        let off = policy("controls: { read_only: false }\npolicy: { default: allow }\n");
        assert_eq!(
            off.evaluate(&call("files.write", json!({}))).effect(),
            Effect::Allow
        );
    }

    #[test]
    fn the_kill_switch_denies_every_call_first() {
        let p = policy(
            "
controls:
  kill_switch: { enabled: true }
  read_only: true
policy:
  default: allow
  tool_allowlist: [files.read]
rules:
  - { id: reads, tool: '*.read', effect: allow }
",
        );
        assert!(p.controls().kill_switch);
        for tool in ["files.read", "files.write", "anything"] {
            let d = p.evaluate(&call(tool, json!({})));
            assert_eq!(d.effect(), Effect::Deny, "{tool}");
            assert_eq!(ids(&d), ["controls.kill_switch"], "{tool}");
            assert_eq!(
                d.reason(),
                Some("the kill switch is on, so every call is denied")
            );
        }
        let off =
            policy("controls: { kill_switch: { enabled: false } }\npolicy: { default: allow }\n");
        assert!(!off.controls().kill_switch);
        assert_eq!(off.evaluate(&call("x", json!({}))).effect(), Effect::Allow);
    }

    #[test]
    fn a_tier_may_forbid_standing_grants() {
        let p = policy(CONTROLLED);
        let wire = p.evaluate(&call("crm.payments.wire", json!({})));
        assert_eq!(wire.effect(), Effect::ApprovalRequired);
        assert!(!wire.grants_allowed());
        let send = p.evaluate(&call("email.send", json!({})));
        assert!(send.grants_allowed(), "no tier: grants allowed");
        let high = policy(
            "tiers: { high: {} }\nrules:\n  - { id: r, tool: x, effect: approval_required, tier: high }\n",
        );
        assert!(high.evaluate(&call("x", json!({}))).grants_allowed());
        assert!(
            high.evaluate(&call("y", json!({}))).grants_allowed(),
            "default"
        );
        // A host check's decision takes its tier's `grants` too.
        let checked = policy("policy: { default: allow }\ntiers:\n  critical: { grants: false }\n")
            .with_check("wires", |c: &ToolCall| {
                (c.tool() == "wire")
                    .then(|| Decision::approval_required("wires").with_tier("critical"))
            });
        let d = checked.evaluate(&call("wire", json!({})));
        assert_eq!(d.effect(), Effect::ApprovalRequired);
        assert!(!d.grants_allowed());
    }

    #[test]
    fn previews_render_the_deciding_rules_template_over_redacted_args() {
        let p = policy(CONTROLLED);
        let send = call(
            "email.send",
            json!({"to": "bob@example.com", "subject": "Q3", "password": "hunter2"}),
        );
        let d = p.evaluate(&send);
        assert_eq!(d.preview_template(), Some("Send email to {to}: {subject}"));
        assert_eq!(p.preview(&d, &send), "Send email to bob@example.com: Q3");

        let wire = call(
            "crm.payments.wire",
            json!({"amount": 250.5, "card": {"number": "4111", "exp": "12/30"}}),
        );
        let d = p.evaluate(&wire);
        assert_eq!(
            p.preview(&d, &wire),
            r#"Wire 250.5 to {"exp":"12/30","number":"[redacted]"} ({card} is redacted in part)"#
        );
        // A path the call lacks shows as a marker.
        let bare = call("crm.payments.wire", json!({}));
        assert_eq!(
            p.preview(&p.evaluate(&bare), &bare),
            "Wire <missing> to <missing> ({card} is redacted in part)"
        );
        // No template: the tool and the redacted args.
        let read = call("files.read", json!({"path": "/etc", "password": "x"}));
        let d = p.evaluate(&read);
        assert_eq!(d.preview_template(), None);
        assert_eq!(
            p.preview(&d, &read),
            r#"files.read {"password":"[redacted]","path":"/etc"}"#
        );
        // A control deny has no template either.
        let other = call("vault.open", json!({"password": "x"}));
        let d = p.evaluate(&other);
        assert_eq!(ids(&d), ["policy.tool_allowlist"]);
        assert_eq!(
            p.preview(&d, &other),
            r#"vault.open {"password":"[redacted]"}"#
        );
    }

    #[test]
    fn redact_copies_the_args_with_every_secret_replaced() {
        let p = policy(CONTROLLED);
        let args = json!({
            "user": "bob",
            "password": "hunter2",
            "card": {"number": "4111", "exp": "12/30"},
        });
        assert_eq!(
            p.redact(&args),
            json!({
                "user": "bob",
                "password": "[redacted]",
                "card": {"number": "[redacted]", "exp": "12/30"},
            })
        );
        // Absent paths are skipped; the args given are never changed.
        assert_eq!(p.redact(&json!({"user": "bob"})), json!({"user": "bob"}));
        assert_eq!(p.redact(&json!([1, 2])), json!([1, 2]));
        assert_eq!(args["password"], "hunter2");
        assert_eq!(policy("").redact(&args), args);
    }

    #[test]
    fn the_new_keys_at_their_defaults_leave_versions_unchanged() {
        let seed = policy(SEED);
        let written_out = format!(
            "{SEED}  redact: []
policy:
  default: deny
  read_tools: ['*.read', '*.list', '*.get', '*.search']
budgets: {{}}
controls:
  kill_switch: {{ enabled: false }}
  read_only: false
"
        );
        assert_eq!(policy(&written_out).version(), seed.version());
        let tiered = "tiers:\n  high: { ttl_seconds: 600, description: money moves }\nrules:\n  - { id: r, tool: x, effect: approval_required, tier: high }\n";
        let granted = tiered.replace(
            "description: money moves",
            "description: money moves, grants: true",
        );
        assert_eq!(policy(tiered).version(), policy(&granted).version());
        // Each key set away from its default is meaning, so it changes the version.
        let changes = [
            format!("{SEED}  redact: [args.password]\n"),
            format!("{SEED}policy: {{ tool_allowlist: [email.send] }}\n"),
            format!("{SEED}policy: {{ read_tools: ['*.read'] }}\n"),
            format!("{SEED}budgets: {{ max_usd: 2.5 }}\n"),
            format!("{SEED}controls: {{ read_only: true }}\n"),
            format!("{SEED}controls: {{ kill_switch: {{ enabled: true }} }}\n"),
            tiered.replace(
                "description: money moves",
                "description: money moves, grants: false",
            ),
            tiered.replace("tier: high", "tier: high, preview: 'x {a}'"),
        ];
        for yaml in &changes {
            let base = if yaml.starts_with("tiers") {
                policy(tiered)
            } else {
                seed.clone()
            };
            assert_ne!(policy(yaml).version(), base.version(), "{yaml}");
        }
    }

    #[test]
    fn a_config_with_the_new_keys_survives_a_round_trip() {
        let p = policy(CONTROLLED);
        let yaml = serde_yaml::to_string(p.config()).unwrap();
        let back = policy(&yaml);
        assert_eq!(back.config(), p.config());
        assert_eq!(back.version(), p.version());
        let on = policy("controls: { read_only: true, kill_switch: { enabled: true } }\n");
        let back = policy(&serde_yaml::to_string(on.config()).unwrap());
        assert_eq!(back.controls(), on.controls());
    }

    #[test]
    fn the_builder_sets_the_new_keys_as_yaml_does() {
        let yaml = policy(CONTROLLED);
        let built = Policy::builder()
            .require_approval_for("email.send")
            .redact("args.password")
            .redact("args.card.number")
            .default_effect(Effect::Allow)
            .tool_allowlist("crm.*")
            .tool_allowlist("email.send")
            .tool_allowlist("*.read")
            .read_tools(["*.read", "crm.*.list"])
            .budgets(Budgets {
                max_steps: Some(50),
                max_tool_calls: Some(100),
                max_seconds: Some(600),
                max_usd: Some(5.0),
            })
            .kill_switch(false)
            .read_only(false)
            .tier("critical", Tier::new().grants(false).quorum(2))
            .tier("high", Tier::new().grants(true))
            .rule(
                Rule::approval_required("send")
                    .tool("email.send")
                    .preview("Send email to {to}: {subject}"),
            )
            .rule(
                Rule::approval_required("wire")
                    .tool("crm.payments.wire")
                    .tier("critical")
                    .preview("Wire {amount} to {card} ({{card}} is redacted in part)"),
            )
            .build()
            .unwrap();
        assert_eq!(built.config(), yaml.config());
        assert_eq!(built.version(), yaml.version());
        let switched = Policy::builder()
            .kill_switch(true)
            .read_only(true)
            .build()
            .unwrap();
        assert_eq!(
            switched.controls(),
            Controls {
                kill_switch: true,
                read_only: true
            }
        );

        let field = |b: PolicyBuilder| b.build().unwrap_err().field().map(str::to_owned);
        let b = Policy::builder;
        assert_eq!(
            field(b().redact("context.tenant")).as_deref(),
            Some("approvals.redact[0]")
        );
        assert_eq!(
            field(b().redact("args.a").redact("args.a")).as_deref(),
            Some("approvals.redact[1]")
        );
        assert_eq!(
            field(b().redact("args..a")).as_deref(),
            Some("approvals.redact[0]")
        );
        assert_eq!(
            field(b().tool_allowlist("a").tool_allowlist("")).as_deref(),
            Some("policy.tool_allowlist[1]")
        );
        assert_eq!(
            field(b().read_tools(["x", "a b"])).as_deref(),
            Some("policy.read_tools[1]")
        );
        assert_eq!(
            field(b().budgets(Budgets {
                max_tool_calls: Some(0),
                ..Budgets::default()
            }))
            .as_deref(),
            Some("budgets.max_tool_calls")
        );
        assert_eq!(
            field(b().budgets(Budgets {
                max_usd: Some(-1.0),
                ..Budgets::default()
            }))
            .as_deref(),
            Some("budgets.max_usd")
        );
        let err = b()
            .rule(Rule::deny("r").tool("a").preview("to {to"))
            .build()
            .unwrap_err();
        assert_eq!(err.field(), Some("rules[0].preview"));
        assert!(err.to_string().contains("a `{` without `}`"), "{err}");
    }

    #[test]
    fn from_config_checks_the_new_keys() {
        let mut config = PolicyConfig::default();
        config.policy.tool_allowlist = Some(Vec::new());
        let err = Policy::from_config(config).unwrap_err();
        assert!(matches!(err, PolicyError::InvalidConfig { .. }));
        assert_eq!(err.field(), Some("policy.tool_allowlist"));
        assert!(
            err.to_string().contains("`tool_allowlist` is empty"),
            "{err}"
        );

        let mut config = PolicyConfig::default();
        config.approvals.redact = vec![
            FieldPath::new("args.a").unwrap(),
            FieldPath::new("tool").unwrap(),
        ];
        assert_eq!(
            Policy::from_config(config).unwrap_err().field(),
            Some("approvals.redact[1]")
        );
        let mut config = PolicyConfig::default();
        config.approvals.redact = vec![FieldPath::new("args.a").unwrap(); 2];
        assert_eq!(
            Policy::from_config(config).unwrap_err().field(),
            Some("approvals.redact[1]")
        );

        let mut config = PolicyConfig::default();
        config.budgets.max_usd = Some(f64::INFINITY);
        assert_eq!(
            Policy::from_config(config).unwrap_err().field(),
            Some("budgets.max_usd")
        );
        let mut config = PolicyConfig::default();
        config.budgets.max_steps = Some(0);
        assert_eq!(
            Policy::from_config(config).unwrap_err().field(),
            Some("budgets.max_steps")
        );
    }

    /// The preview and redact example of the config reference (README), kept in step
    /// with it.
    const PREVIEW_EXAMPLE: &str = r#"approvals:
  required_for: [email.send]
  redact: [args.password, "args.card.number"]

rules:
  - id: send
    tool: email.send
    effect: approval_required
    preview: "Send email to {to}: {subject}"

  - id: charge
    tool: payments.charge
    effect: approval_required
    preview: "Charge {amount} {currency} to card {card}"
"#;

    #[test]
    fn the_preview_example_renders_as_documented() {
        let p = policy(PREVIEW_EXAMPLE);
        let shown = |tool: &str, args: Value| {
            let c = call(tool, args);
            p.preview(&p.evaluate(&c), &c)
        };
        assert_eq!(
            shown(
                "payments.charge",
                json!({"amount": 120, "currency": "EUR", "card": {"number": "4111111111111111", "exp": "12/30"}})
            ),
            r#"Charge 120 EUR to card {"exp":"12/30","number":"[redacted]"}"#
        );
        assert_eq!(
            shown(
                "email.send",
                json!({"to": "bob@example.com", "subject": "Q3 numbers", "password": "hunter2"})
            ),
            "Send email to bob@example.com: Q3 numbers"
        );
        assert_eq!(
            shown("crm.merge", json!({"id": 7, "password": "x"})),
            r#"crm.merge {"id":7,"password":"[redacted]"}"#
        );
        // The first winner is the `required_for` entry; the template still shows.
        let send = p.evaluate(&call("email.send", json!({})));
        assert_eq!(ids(&send), ["approvals.required_for[0]", "send"]);
        assert_eq!(
            send.preview_template(),
            Some("Send email to {to}: {subject}")
        );
    }
}
