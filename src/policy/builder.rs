//! [`PolicyBuilder`], [`Rule`] and [`Tier`]: a policy built in code, checked like YAML.

use std::fmt;
use std::sync::Arc;

use super::condition::Condition;
use super::config::{PolicyConfig, RuleConfig, TierConfig};
use super::controls::Budgets;
use super::effect::{Effect, Fallback};
use super::names::{RoleName, RuleId, TierName, TtlSeconds};
use super::path::FieldPath;
use super::pattern::ToolPattern;
use super::preview::{self, PreviewTemplate};
use super::validate;
use super::{Policy, PolicyCheck, PolicyError};

/// Builds a [`Policy`] in code. Each setter mirrors a key of the YAML config; values are
/// checked as they are given and the first problem is returned by [`build`](Self::build),
/// naming the field as the YAML loader would.
///
/// ```
/// use approval_gate::{Effect, Policy, ToolCall, config::{Condition, Op, Rule, Tier}};
/// use serde_json::json;
///
/// let policy = Policy::builder()
///     .require_approval_for("email.send")
///     .tier("high", Tier::new().ttl_seconds(600).approvers(["finance-lead"]).quorum(2))
///     .rule(Rule::allow("reads").tool("*.read"))
///     .rule(
///         Rule::approval_required("refunds-large")
///             .tool("payments.refund")
///             .when(Condition::field("args.amount", Op::Gt(100.into()))?)
///             .tier("high")
///             .reason("refunds over 100 need a second pair of eyes"),
///     )
///     .build()?;
///
/// let call = ToolCall::new("run-1", "call-1", "payments.refund", json!({"amount": 250}));
/// let decision = policy.evaluate(&call);
/// assert_eq!(decision.effect(), Effect::ApprovalRequired);
/// assert_eq!(decision.decision_ttl().as_secs(), 600);
/// assert_eq!(&*decision.approver_roles()[0], "finance-lead");
/// assert_eq!(decision.quorum(), 2);
/// # Ok::<(), approval_gate::PolicyError>(())
/// ```
#[must_use = "a builder does nothing until `build` is called"]
pub struct PolicyBuilder {
    config: PolicyConfig,
    checks: Vec<(Arc<str>, Arc<dyn PolicyCheck>)>,
    error: Option<PolicyError>,
}

impl PolicyBuilder {
    pub(crate) fn new() -> PolicyBuilder {
        PolicyBuilder {
            config: PolicyConfig::default(),
            checks: Vec::new(),
            error: None,
        }
    }

    fn fail(&mut self, error: PolicyError) {
        self.error.get_or_insert(error);
    }

    /// `policy.default`: the effect for a call no rule and no check matches.
    pub fn default_effect(mut self, effect: Effect) -> Self {
        self.config.policy.default = effect;
        self
    }

    /// Adds a pattern to `approvals.required_for`.
    pub fn require_approval_for(mut self, pattern: &str) -> Self {
        let at = format!(
            "approvals.required_for[{}]",
            self.config.approvals.required_for.len()
        );
        match ToolPattern::new(pattern) {
            Ok(p) => self.config.approvals.required_for.push(p),
            Err(e) => self.fail(e.at_field(at)),
        }
        self
    }

    /// `approvals.ttl_seconds`: the default decision TTL.
    pub fn ttl_seconds(mut self, seconds: u64) -> Self {
        match TtlSeconds::new(seconds) {
            Ok(t) => self.config.approvals.ttl_seconds = t,
            Err(e) => self.fail(e.at_field("approvals.ttl_seconds")),
        }
        self
    }

    /// `approvals.approval_ttl_seconds`: the default approval TTL.
    pub fn approval_ttl_seconds(mut self, seconds: u64) -> Self {
        match TtlSeconds::new(seconds) {
            Ok(t) => self.config.approvals.approval_ttl_seconds = t,
            Err(e) => self.fail(e.at_field("approvals.approval_ttl_seconds")),
        }
        self
    }

    /// `approvals.fallback_when_not_approved`.
    pub fn fallback(mut self, fallback: Fallback) -> Self {
        self.config.approvals.fallback_when_not_approved = fallback;
        self
    }

    /// Adds a path to `approvals.redact`: a secret field of the args, such as
    /// `args.password`, shown as `"[redacted]"` to people and the audit trail.
    pub fn redact(mut self, path: &str) -> Self {
        let at = format!("approvals.redact[{}]", self.config.approvals.redact.len());
        match FieldPath::parse(path).and_then(|p| preview::check_redact_path(&p).map(|()| p)) {
            Ok(p) => {
                let redact = &mut self.config.approvals.redact;
                match redact.iter().position(|q| *q == p) {
                    Some(first) => self.fail(PolicyError::config(
                        at,
                        preview::duplicate_redact_message(path, first),
                    )),
                    None => redact.push(p),
                }
            }
            Err(m) => self.fail(PolicyError::config(at, m)),
        }
        self
    }

    /// Adds a pattern to `policy.tool_allowlist`. Once one is added, a call whose tool
    /// matches none is denied before any rule.
    pub fn tool_allowlist(mut self, pattern: &str) -> Self {
        let list = self
            .config
            .policy
            .tool_allowlist
            .get_or_insert_with(Vec::new);
        let at = format!("policy.tool_allowlist[{}]", list.len());
        match ToolPattern::new(pattern) {
            Ok(p) => list.push(p),
            Err(e) => self.fail(e.at_field(at)),
        }
        self
    }

    /// Sets `policy.read_tools`, the patterns of the tools that only read, replacing the
    /// default list (and any set before); an empty list makes no tool a read.
    pub fn read_tools<I: IntoIterator<Item = S>, S: Into<String>>(mut self, patterns: I) -> Self {
        let mut list = Vec::new();
        for (i, p) in patterns.into_iter().enumerate() {
            match ToolPattern::new(p) {
                Ok(p) => list.push(p),
                Err(e) => {
                    self.fail(e.at_field(format!("policy.read_tools[{i}]")));
                    return self;
                }
            }
        }
        self.config.policy.read_tools = list;
        self
    }

    /// `budgets`: the per-run limits, checked by [`build`](Self::build).
    pub fn budgets(mut self, budgets: Budgets) -> Self {
        self.config.budgets = budgets;
        self
    }

    /// `controls.kill_switch.enabled`: when true, every call is denied.
    pub fn kill_switch(mut self, enabled: bool) -> Self {
        self.config.controls.kill_switch.enabled = enabled;
        self
    }

    /// `controls.read_only`: when true, every tool that is not a read is denied.
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.config.controls.read_only = read_only;
        self
    }

    /// Adds a risk tier under `tiers`.
    pub fn tier(mut self, name: &str, tier: Tier) -> Self {
        let name = match TierName::new(name) {
            Ok(n) => n,
            Err(e) => {
                self.fail(e.at_field("tiers"));
                return self;
            }
        };
        if self.config.tiers.contains_key(&name) {
            self.fail(PolicyError::config(
                "tiers",
                format!("duplicate tier `{name}`"),
            ));
            return self;
        }
        match tier.into_config(&format!("tiers.{name}")) {
            Ok(t) => {
                self.config.tiers.insert(name, t);
            }
            Err(e) => self.fail(e),
        }
        self
    }

    /// Adds a rule after those already added.
    pub fn rule(mut self, rule: Rule) -> Self {
        let at = format!("rules[{}]", self.config.rules.len());
        match rule.into_config(&at) {
            Ok(r) => self.config.rules.push(r),
            Err(e) => self.fail(e),
        }
        self
    }

    /// Adds a host check, as [`Policy::with_check`] does.
    pub fn check(mut self, name: impl Into<Arc<str>>, check: impl PolicyCheck + 'static) -> Self {
        self.checks.push((name.into(), Arc::new(check)));
        self
    }

    /// Checks the whole config and builds the policy.
    pub fn build(self) -> Result<Policy, PolicyError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let mut policy = Policy::from_config(self.config)?;
        for (name, check) in self.checks {
            policy = policy.with_shared_check(name, check);
        }
        Ok(policy)
    }
}

impl fmt::Debug for PolicyBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicyBuilder")
            .field("config", &self.config)
            .field(
                "checks",
                &self.checks.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field("error", &self.error)
            .finish()
    }
}

/// One rule for [`PolicyBuilder::rule`]; mirrors an entry under `rules`.
#[derive(Debug, Clone)]
#[must_use = "a rule does nothing until given to `PolicyBuilder::rule`"]
pub struct Rule {
    id: String,
    effect: Effect,
    tools: Vec<String>,
    tier: Option<String>,
    reason: Option<String>,
    when: Option<Condition>,
    ttl_seconds: Option<u64>,
    approval_ttl_seconds: Option<u64>,
    preview: Option<String>,
}

impl Rule {
    /// A rule with `id` and `effect`, for no tools yet.
    pub fn new(id: impl Into<String>, effect: Effect) -> Rule {
        Rule {
            id: id.into(),
            effect,
            tools: Vec::new(),
            tier: None,
            reason: None,
            when: None,
            ttl_seconds: None,
            approval_ttl_seconds: None,
            preview: None,
        }
    }

    /// A rule that allows.
    pub fn allow(id: impl Into<String>) -> Rule {
        Rule::new(id, Effect::Allow)
    }

    /// A rule that denies.
    pub fn deny(id: impl Into<String>) -> Rule {
        Rule::new(id, Effect::Deny)
    }

    /// A rule that requires approval.
    pub fn approval_required(id: impl Into<String>) -> Rule {
        Rule::new(id, Effect::ApprovalRequired)
    }

    /// Adds a tool pattern.
    pub fn tool(mut self, pattern: impl Into<String>) -> Self {
        self.tools.push(pattern.into());
        self
    }

    /// Adds tool patterns.
    pub fn tools<I: IntoIterator<Item = S>, S: Into<String>>(mut self, patterns: I) -> Self {
        self.tools.extend(patterns.into_iter().map(Into::into));
        self
    }

    /// `tier`: a tier added with [`PolicyBuilder::tier`].
    pub fn tier(mut self, tier: impl Into<String>) -> Self {
        self.tier = Some(tier.into());
        self
    }

    /// `reason`.
    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    /// `when`: the rule applies only when `condition` holds.
    pub fn when(mut self, condition: Condition) -> Self {
        self.when = Some(condition);
        self
    }

    /// `ttl_seconds`: the decision TTL of this rule.
    pub fn ttl_seconds(mut self, seconds: u64) -> Self {
        self.ttl_seconds = Some(seconds);
        self
    }

    /// `approval_ttl_seconds`: the approval TTL of this rule.
    pub fn approval_ttl_seconds(mut self, seconds: u64) -> Self {
        self.approval_ttl_seconds = Some(seconds);
        self
    }

    /// `preview`: the template an approver sees, such as `"Send email to {to}: {subject}"`
    /// (see [`PreviewTemplate`]).
    pub fn preview(mut self, template: impl Into<String>) -> Self {
        self.preview = Some(template.into());
        self
    }

    fn into_config(self, at: &str) -> Result<RuleConfig, PolicyError> {
        let id = RuleId::new(self.id).map_err(|e| e.at_field(format!("{at}.id")))?;
        let tools = self
            .tools
            .into_iter()
            .enumerate()
            .map(|(i, p)| ToolPattern::new(p).map_err(|e| e.at_field(format!("{at}.tools[{i}]"))))
            .collect::<Result<Vec<_>, _>>()?;
        let tier = self
            .tier
            .map(|t| TierName::new(t).map_err(|e| e.at_field(format!("{at}.tier"))))
            .transpose()?;
        let ttl = |secs: Option<u64>, key: &str| {
            secs.map(|s| TtlSeconds::new(s).map_err(|e| e.at_field(format!("{at}.{key}"))))
                .transpose()
        };
        Ok(RuleConfig {
            id,
            tools,
            effect: self.effect,
            tier,
            reason: self.reason,
            when: self.when,
            ttl_seconds: ttl(self.ttl_seconds, "ttl_seconds")?,
            approval_ttl_seconds: ttl(self.approval_ttl_seconds, "approval_ttl_seconds")?,
            preview: self
                .preview
                .map(|t| {
                    PreviewTemplate::parse(&t)
                        .map_err(|m| PolicyError::config(format!("{at}.preview"), m))
                })
                .transpose()?,
        })
    }
}

/// One risk tier for [`PolicyBuilder::tier`]; mirrors an entry under `tiers`.
#[derive(Debug, Clone, Default)]
#[must_use = "a tier does nothing until given to `PolicyBuilder::tier`"]
pub struct Tier {
    ttl_seconds: Option<u64>,
    approval_ttl_seconds: Option<u64>,
    description: Option<String>,
    approvers: Vec<String>,
    quorum: Option<u32>,
    grants: Option<bool>,
    remind_after_seconds: Option<u64>,
    escalate_after_seconds: Option<u64>,
    escalate_to: Vec<String>,
}

impl Tier {
    /// A tier with the default TTLs, any approver role and a quorum of 1.
    pub fn new() -> Tier {
        Tier::default()
    }

    /// `ttl_seconds`: the decision TTL of rules in this tier.
    pub fn ttl_seconds(mut self, seconds: u64) -> Self {
        self.ttl_seconds = Some(seconds);
        self
    }

    /// `approval_ttl_seconds`: the approval TTL of rules in this tier.
    pub fn approval_ttl_seconds(mut self, seconds: u64) -> Self {
        self.approval_ttl_seconds = Some(seconds);
        self
    }

    /// `description`.
    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.description = Some(text.into());
        self
    }

    /// `approvers`: adds roles that may approve requests in this tier (none added: any
    /// role may). Each role may be given once.
    pub fn approvers<I: IntoIterator<Item = S>, S: Into<String>>(mut self, roles: I) -> Self {
        self.approvers.extend(roles.into_iter().map(Into::into));
        self
    }

    /// `quorum`: how many distinct approvers a request in this tier needs, from 1 to 10.
    pub fn quorum(mut self, approvers: u32) -> Self {
        self.quorum = Some(approvers);
        self
    }

    /// `grants`: whether standing grants may allow calls of this tier (default `true`).
    pub fn grants(mut self, allowed: bool) -> Self {
        self.grants = Some(allowed);
        self
    }

    /// `remind_after_seconds`: remind those who may decide a request of this tier still
    /// pending this long after it was filed (by a notifier; before the decision TTL).
    pub fn remind_after_seconds(mut self, seconds: u64) -> Self {
        self.remind_after_seconds = Some(seconds);
        self
    }

    /// `escalate_after_seconds`: escalate a request of this tier still pending this long
    /// after it was filed (by a notifier; before the decision TTL).
    pub fn escalate_after_seconds(mut self, seconds: u64) -> Self {
        self.escalate_after_seconds = Some(seconds);
        self
    }

    /// `escalate_to`: adds roles an escalation names. Each role may be given once.
    pub fn escalate_to<I: IntoIterator<Item = S>, S: Into<String>>(mut self, roles: I) -> Self {
        self.escalate_to.extend(roles.into_iter().map(Into::into));
        self
    }

    fn into_config(self, at: &str) -> Result<TierConfig, PolicyError> {
        let ttl = |secs: Option<u64>, key: &str| {
            secs.map(|s| TtlSeconds::new(s).map_err(|e| e.at_field(format!("{at}.{key}"))))
                .transpose()
        };
        let mut approvers: Vec<RoleName> = Vec::with_capacity(self.approvers.len());
        for (i, role) in self.approvers.into_iter().enumerate() {
            let role =
                RoleName::new(role).map_err(|e| e.at_field(format!("{at}.approvers[{i}]")))?;
            if let Some(first) = approvers.iter().position(|r| *r == role) {
                return Err(PolicyError::config(
                    format!("{at}.approvers[{i}]"),
                    validate::duplicate_role_message(role.as_str(), first),
                ));
            }
            approvers.push(role);
        }
        let quorum = self
            .quorum
            .map(|n| {
                validate::check_quorum(u64::from(n))
                    .map_err(|m| PolicyError::config(format!("{at}.quorum"), m))
            })
            .transpose()?;
        Ok(TierConfig {
            ttl_seconds: ttl(self.ttl_seconds, "ttl_seconds")?,
            approval_ttl_seconds: ttl(self.approval_ttl_seconds, "approval_ttl_seconds")?,
            description: self.description,
            approvers,
            quorum,
            grants: self.grants.unwrap_or(true),
            remind_after_seconds: ttl(self.remind_after_seconds, "remind_after_seconds")?,
            escalate_after_seconds: ttl(self.escalate_after_seconds, "escalate_after_seconds")?,
            escalate_to: self
                .escalate_to
                .into_iter()
                .enumerate()
                .map(|(i, role)| {
                    RoleName::new(role).map_err(|e| e.at_field(format!("{at}.escalate_to[{i}]")))
                })
                .collect::<Result<_, _>>()?,
        })
    }
}
