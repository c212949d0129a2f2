//! The compiled form of a config: rules in one list with their resolved TTLs and shared
//! strings, and an index from tool names to rules. Built once; evaluating against it
//! allocates nothing for an allowed call.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::condition::Condition;
use super::config::PolicyConfig;
use super::decision::{Decision, RuleIds};
use super::effect::Effect;
use super::eval::Mismatch;
use super::matcher::ToolIndex;
use super::preview::PreviewTemplate;
use crate::call::ToolCall;

/// One rule, ready to decide.
#[derive(Debug, Clone)]
pub(crate) struct CompiledRule {
    pub(crate) id: Arc<str>,
    pub(crate) effect: Effect,
    pub(crate) when: Option<Condition>,
    pub(crate) reason: Arc<str>,
    pub(crate) tier: Option<Arc<str>>,
    pub(crate) decision_ttl: Duration,
    pub(crate) approval_ttl: Duration,
    /// The tier's `approvers`, shared with the tier; `None` when any role may approve.
    pub(crate) approvers: Option<Arc<[Arc<str>]>>,
    /// The tier's `quorum`, 1 when it sets none.
    pub(crate) quorum: u32,
    /// The tier's `grants`, true without a tier.
    pub(crate) grants: bool,
    /// The rule's `preview`.
    pub(crate) preview: Option<PreviewTemplate>,
}

impl CompiledRule {
    /// The decision of this rule alone.
    pub(crate) fn decision(&self) -> Decision {
        Decision {
            effect: self.effect,
            rule_ids: RuleIds::One(self.id.clone()),
            reason: Some(self.reason.clone()),
            tier: self.tier.clone(),
            decision_ttl: self.decision_ttl,
            approval_ttl: self.approval_ttl,
            approvers: self.approvers.clone(),
            quorum: self.quorum,
            grants: self.grants,
            preview: self.preview.clone(),
            is_default: false,
        }
    }

    /// The deny given when this rule's condition met a value it cannot test.
    pub(crate) fn mismatch_decision(&self, mismatch: &Mismatch<'_>) -> Decision {
        Decision {
            effect: Effect::Deny,
            reason: Some(
                format!(
                    "rule `{}` could not be evaluated: {mismatch}; the call is denied (fail closed)",
                    self.id
                )
                .into(),
            ),
            tier: None,
            approvers: None,
            quorum: 1,
            grants: true,
            ..self.decision()
        }
    }
}

/// TTLs of a tier, with the defaults filled in.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ttls {
    pub(crate) decision: Duration,
    pub(crate) approval: Duration,
}

/// A tier, with the defaults filled in.
#[derive(Debug, Clone)]
pub(crate) struct CompiledTier {
    pub(crate) ttls: Ttls,
    /// `approvers`; `None` when the tier lists none (any role may approve).
    pub(crate) approvers: Option<Arc<[Arc<str>]>>,
    /// `quorum`, 1 when the tier sets none.
    pub(crate) quorum: u32,
    /// `grants`.
    pub(crate) grants: bool,
}

/// A config compiled for evaluation.
#[derive(Debug, Clone)]
pub(crate) struct Compiled {
    /// `approvals.required_for` entries first, then `rules`, in config order.
    pub(crate) rules: Vec<CompiledRule>,
    pub(crate) index: ToolIndex,
    pub(crate) default_effect: Effect,
    pub(crate) defaults: Ttls,
    pub(crate) tiers: HashMap<Arc<str>, CompiledTier>,
}

/// What the rules (without host checks) found for a call.
pub(crate) struct RuleMatches {
    /// The first matching rule of each effect, by [`Effect::index`].
    pub(crate) first: [Option<u32>; 3],
    /// Every matching deny or approval rule; empty (so unallocated) when none matched.
    pub(crate) strong: Vec<u32>,
}

impl Compiled {
    pub(crate) fn new(config: &PolicyConfig) -> Compiled {
        let defaults = Ttls {
            decision: config.approvals.ttl_seconds.as_duration(),
            approval: config.approvals.approval_ttl_seconds.as_duration(),
        };
        let tiers: HashMap<Arc<str>, CompiledTier> = config
            .tiers
            .iter()
            .map(|(name, tier)| {
                let ttls = Ttls {
                    decision: tier
                        .ttl_seconds
                        .map_or(defaults.decision, |t| t.as_duration()),
                    approval: tier
                        .approval_ttl_seconds
                        .map_or(defaults.approval, |t| t.as_duration()),
                };
                let approvers = (!tier.approvers.is_empty()).then(|| {
                    tier.approvers
                        .iter()
                        .map(|role| Arc::from(role.as_str()))
                        .collect()
                });
                let compiled = CompiledTier {
                    ttls,
                    approvers,
                    quorum: tier.quorum.unwrap_or(1),
                    grants: tier.grants,
                };
                (Arc::from(name.as_str()), compiled)
            })
            .collect();
        let mut rules = Vec::new();
        let mut index = ToolIndex::default();
        for (i, pattern) in config.approvals.required_for.iter().enumerate() {
            index.insert(pattern.as_str(), rules.len() as u32);
            rules.push(CompiledRule {
                id: format!("approvals.required_for[{i}]").into(),
                effect: Effect::ApprovalRequired,
                when: None,
                reason: format!("approval is required for `{pattern}`").into(),
                tier: None,
                decision_ttl: defaults.decision,
                approval_ttl: defaults.approval,
                approvers: None,
                quorum: 1,
                grants: true,
                preview: None,
            });
        }
        for rule in &config.rules {
            let tier = rule
                .tier
                .as_ref()
                .and_then(|t| tiers.get_key_value(t.as_str()));
            let tier_ttls = tier.map_or(defaults, |(_, t)| t.ttls);
            let n = rules.len() as u32;
            for pattern in &rule.tools {
                index.insert(pattern.as_str(), n);
            }
            let reason = match &rule.reason {
                Some(reason) => reason.as_str().into(),
                None => match rule.effect {
                    Effect::Allow => format!("rule `{}` allows the call", rule.id),
                    Effect::ApprovalRequired => format!("rule `{}` requires approval", rule.id),
                    Effect::Deny => format!("rule `{}` denies the call", rule.id),
                }
                .into(),
            };
            rules.push(CompiledRule {
                id: rule.id.as_str().into(),
                effect: rule.effect,
                when: rule.when.clone(),
                reason,
                tier: tier.map(|(name, _)| name.clone()),
                decision_ttl: rule
                    .ttl_seconds
                    .map_or(tier_ttls.decision, |t| t.as_duration()),
                approval_ttl: rule
                    .approval_ttl_seconds
                    .map_or(tier_ttls.approval, |t| t.as_duration()),
                approvers: tier.and_then(|(_, t)| t.approvers.clone()),
                quorum: tier.map_or(1, |(_, t)| t.quorum),
                grants: tier.is_none_or(|(_, t)| t.grants),
                preview: rule.preview.clone(),
            });
        }
        Compiled {
            rules,
            index,
            default_effect: config.policy.default,
            defaults,
            tiers,
        }
    }

    /// Runs the rules for `call`; a condition that meets a value it cannot test ends the
    /// run with that rule's deny.
    pub(crate) fn match_rules(&self, call: &ToolCall) -> Result<RuleMatches, Decision> {
        let mut found = RuleMatches {
            first: [None; 3],
            strong: Vec::new(),
        };
        for n in self.index.candidates(call.tool()) {
            let rule = &self.rules[n as usize];
            let holds = match &rule.when {
                None => true,
                Some(when) => when
                    .eval(call)
                    .map_err(|mismatch| rule.mismatch_decision(&mismatch))?,
            };
            if !holds {
                continue;
            }
            let first = &mut found.first[rule.effect.index()];
            *first = Some(first.map_or(n, |f| f.min(n)));
            if rule.effect != Effect::Allow {
                found.strong.push(n);
            }
        }
        Ok(found)
    }

    /// Gives a host check's decision the TTLs, approvers and quorum of its tier if the
    /// config has that tier, else the defaults (any role, one approver).
    pub(crate) fn fill_from_tier(&self, decision: &mut Decision) {
        match decision.tier.as_deref().and_then(|t| self.tiers.get(t)) {
            Some(tier) => {
                decision.decision_ttl = tier.ttls.decision;
                decision.approval_ttl = tier.ttls.approval;
                decision.approvers = tier.approvers.clone();
                decision.quorum = tier.quorum;
                decision.grants = tier.grants;
            }
            None => {
                decision.decision_ttl = self.defaults.decision;
                decision.approval_ttl = self.defaults.approval;
                decision.approvers = None;
                decision.quorum = 1;
                decision.grants = true;
            }
        }
    }

    /// The decision when no rule and no check matched.
    pub(crate) fn default_decision(&self, tool: &str) -> Decision {
        let reason: Option<Arc<str>> = match self.default_effect {
            Effect::Allow => None,
            Effect::Deny => Some(
                format!("no rule allows `{tool}`, and the policy denies what no rule allows")
                    .into(),
            ),
            Effect::ApprovalRequired => Some(
                format!("no rule matches `{tool}`, and the policy requires approval by default")
                    .into(),
            ),
        };
        Decision {
            effect: self.default_effect,
            rule_ids: RuleIds::None,
            reason,
            tier: None,
            decision_ttl: self.defaults.decision,
            approval_ttl: self.defaults.approval,
            approvers: None,
            quorum: 1,
            grants: true,
            preview: None,
            is_default: true,
        }
    }

    /// A deny from the run controls or the tool allowlist, decided before any rule, named
    /// `id`.
    pub(crate) fn control_deny(&self, id: &'static str, reason: String) -> Decision {
        Decision {
            effect: Effect::Deny,
            rule_ids: RuleIds::One(Arc::from(id)),
            reason: Some(reason.into()),
            tier: None,
            decision_ttl: self.defaults.decision,
            approval_ttl: self.defaults.approval,
            approvers: None,
            quorum: 1,
            grants: true,
            preview: None,
            is_default: false,
        }
    }
}
