//! Checks over a whole config, shared by the YAML loader (which makes them as it reads, to
//! give lines) and [`Policy::from_config`](crate::policy::Policy::from_config) (which makes them all
//! at once, for configs built in code).

use std::collections::{BTreeSet, HashMap};

use super::PolicyError;
use super::condition::Condition;
use super::config::{PolicyConfig, RuleConfig, TierConfig};
use super::effect::Effect;
use super::names::TtlSeconds;
use super::pattern::ToolPattern;
use super::preview;

/// Checks everything about `config` that its types do not already guarantee.
pub(crate) fn validate(config: &PolicyConfig) -> Result<(), PolicyError> {
    let required_for: Vec<&str> = config
        .approvals
        .required_for
        .iter()
        .map(ToolPattern::as_str)
        .collect();
    let redact = &config.approvals.redact;
    for (i, path) in redact.iter().enumerate() {
        let at = || format!("approvals.redact[{i}]");
        preview::check_redact_path(path).map_err(|m| PolicyError::config(at(), m))?;
        if let Some(first) = redact[..i].iter().position(|p| p == path) {
            return Err(PolicyError::config(
                at(),
                preview::duplicate_redact_message(path.as_str(), first),
            ));
        }
    }
    if let Some(list) = &config.policy.tool_allowlist {
        check_allowlist(list).map_err(|m| PolicyError::config("policy.tool_allowlist", m))?;
    }
    config
        .budgets
        .check()
        .map_err(|(key, m)| PolicyError::config(format!("budgets.{key}"), m))?;
    for (name, tier) in &config.tiers {
        let ttl = tier.ttl_seconds.unwrap_or(config.approvals.ttl_seconds);
        check_tier(&format!("tiers.{name}"), tier, ttl)?;
    }
    let mut ids: HashMap<&str, usize> = HashMap::new();
    let mut shadows = ShadowIndex::new(&required_for);
    for (i, rule) in config.rules.iter().enumerate() {
        let at = format!("rules[{i}]");
        if let Some(first) = ids.insert(rule.id.as_str(), i) {
            return Err(PolicyError::config(
                format!("{at}.id"),
                duplicate_id_message(rule.id.as_str(), first),
            ));
        }
        check_tools(&rule.tools).map_err(|m| PolicyError::config(format!("{at}.tools"), m))?;
        if let Some(tier) = rule
            .tier
            .as_ref()
            .filter(|t| !config.tiers.contains_key(*t))
        {
            return Err(PolicyError::config(
                format!("{at}.tier"),
                unknown_tier_message(tier.as_str(), config.tiers.keys().map(|t| t.as_str())),
            ));
        }
        if let Some(when) = &rule.when {
            when.validate(&format!("{at}.when"))?;
        }
        shadows
            .admit(rule)
            .map_err(|m| PolicyError::config(at, m))?;
    }
    Ok(())
}

/// A rule names at least one tool.
pub(crate) fn check_tools(tools: &[ToolPattern]) -> Result<(), String> {
    if tools.is_empty() {
        Err(
            "`tools` is empty, so the rule applies to nothing; name at least one tool or pattern"
                .into(),
        )
    } else {
        Ok(())
    }
}

/// `policy.tool_allowlist`, when set, names at least one tool.
pub(crate) fn check_allowlist(tools: &[ToolPattern]) -> Result<(), String> {
    if tools.is_empty() {
        Err("`tool_allowlist` is empty, so every call would be denied; list the tools the agent may call, or leave the key out".into())
    } else {
        Ok(())
    }
}

/// The largest `quorum` a tier may ask for.
pub(crate) const MAX_QUORUM: u32 = 10;

/// A tier's `quorum`: from 1 to [`MAX_QUORUM`].
pub(crate) fn check_quorum(n: u64) -> Result<u32, String> {
    match u32::try_from(n) {
        Ok(n) if (1..=MAX_QUORUM).contains(&n) => Ok(n),
        _ => Err(quorum_message(n)),
    }
}

pub(crate) fn quorum_message(found: impl std::fmt::Display) -> String {
    format!("a quorum is a whole number of approvers from 1 to {MAX_QUORUM}, found `{found}`")
}

pub(crate) fn duplicate_role_message(role: &str, first: usize) -> String {
    format!("duplicate role `{role}`, already listed at approvers[{first}]")
}

pub(crate) fn duplicate_escalation_role_message(role: &str, first: usize) -> String {
    format!("duplicate role `{role}`, already listed at escalate_to[{first}]")
}

/// A tier's `approvers` (each role once), `quorum` (in range), `escalate_to` (each role
/// once), for configs built in code (the YAML loader makes these checks as it reads);
/// and, for both, a reminder and an escalation that come before the decision TTL `ttl`
/// ends, and `escalate_to` only with `escalate_after_seconds`.
fn check_tier(at: &str, tier: &TierConfig, ttl: TtlSeconds) -> Result<(), PolicyError> {
    for (i, role) in tier.escalate_to.iter().enumerate() {
        if let Some(first) = tier.escalate_to[..i].iter().position(|r| r == role) {
            return Err(PolicyError::config(
                format!("{at}.escalate_to[{i}]"),
                duplicate_escalation_role_message(role.as_str(), first),
            ));
        }
    }
    for (key, after) in [
        ("remind_after_seconds", tier.remind_after_seconds),
        ("escalate_after_seconds", tier.escalate_after_seconds),
    ] {
        if let Some(after) = after.filter(|after| *after >= ttl) {
            return Err(PolicyError::config(
                format!("{at}.{key}"),
                format!(
                    "{} seconds is not before the tier's decision TTL of {} seconds: \
                     the request would time out first",
                    after.as_duration().as_secs(),
                    ttl.as_duration().as_secs()
                ),
            ));
        }
    }
    if !tier.escalate_to.is_empty() && tier.escalate_after_seconds.is_none() {
        return Err(PolicyError::config(
            format!("{at}.escalate_to"),
            "names roles to escalate to, but the tier sets no `escalate_after_seconds`",
        ));
    }
    for (i, role) in tier.approvers.iter().enumerate() {
        if let Some(first) = tier.approvers[..i].iter().position(|r| r == role) {
            return Err(PolicyError::config(
                format!("{at}.approvers[{i}]"),
                duplicate_role_message(role.as_str(), first),
            ));
        }
    }
    if let Some(n) = tier.quorum {
        check_quorum(u64::from(n)).map_err(|m| PolicyError::config(format!("{at}.quorum"), m))?;
    }
    Ok(())
}

pub(crate) fn duplicate_id_message(id: &str, first: usize) -> String {
    format!("duplicate rule id `{id}`, already used by rules[{first}]")
}

pub(crate) fn unknown_tier_message<'a>(name: &str, known: impl Iterator<Item = &'a str>) -> String {
    let known: Vec<String> = known.map(|t| format!("`{t}`")).collect();
    if known.is_empty() {
        format!("unknown tier `{name}`; the config has no `tiers`")
    } else {
        format!(
            "unknown tier `{name}`, expected one of {}",
            known.join(", ")
        )
    }
}

/// The rules admitted so far, grouped by their set of tools, so that a new rule is
/// compared only with the earlier rules on the same tools: loading stays linear in the
/// number of rules (unless many rules share one set of tools).
#[derive(Debug, Default)]
pub(crate) struct ShadowIndex {
    /// `approvals.required_for` patterns and their positions.
    required_for: HashMap<String, usize>,
    /// Per sorted set of tools: the effect, condition and id of each earlier rule.
    by_tools: HashMap<Vec<String>, Vec<Earlier>>,
}

/// An earlier rule, as far as shadowing goes: its effect, condition and id.
type Earlier = (Effect, Option<Condition>, String);

impl ShadowIndex {
    /// An index that knows the `required_for` patterns.
    pub(crate) fn new<S: AsRef<str>>(required_for: &[S]) -> Self {
        let mut index = ShadowIndex::default();
        for (i, p) in required_for.iter().enumerate() {
            index.required_for.entry(p.as_ref().to_owned()).or_insert(i);
        }
        index
    }

    /// Refuses `rule` if it has the same tools and condition as an earlier rule (or a
    /// `required_for` entry) but another effect: one of the two could never decide, since
    /// the stronger effect always wins. Otherwise remembers it.
    pub(crate) fn admit(&mut self, rule: &RuleConfig) -> Result<(), String> {
        let tools: BTreeSet<&str> = rule.tools.iter().map(ToolPattern::as_str).collect();
        let key: Vec<String> = tools.iter().map(|t| (*t).to_owned()).collect();
        if let Some(group) = self.by_tools.get(&key) {
            for (effect, when, id) in group {
                if *effect != rule.effect && *when == rule.when {
                    return Err(shadow_message(rule, &format!("rule `{id}`"), *effect));
                }
            }
        }
        let unconditional_single = rule.when.is_none() && tools.len() == 1;
        if unconditional_single && rule.effect != Effect::ApprovalRequired {
            let same = tools.iter().find_map(|t| self.required_for.get(*t));
            if let Some(i) = same {
                return Err(shadow_message(
                    rule,
                    &format!("`approvals.required_for[{i}]`"),
                    Effect::ApprovalRequired,
                ));
            }
        }
        self.by_tools.entry(key).or_default().push((
            rule.effect,
            rule.when.clone(),
            rule.id.as_str().to_owned(),
        ));
        Ok(())
    }
}

fn shadow_message(rule: &RuleConfig, other: &str, other_effect: Effect) -> String {
    let this = format!("rule `{}`", rule.id);
    let (loser, winner_effect, loser_effect) = if rule.effect > other_effect {
        (other, rule.effect, other_effect)
    } else {
        (this.as_str(), other_effect, rule.effect)
    };
    format!(
        "{this} has the same tools and condition as {other} but another effect, so {loser} can never decide (`{winner_effect}` always wins over `{loser_effect}`); give one a condition or remove it"
    )
}
