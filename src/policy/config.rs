//! [`PolicyConfig`]: the serde form of the YAML config.
//!
//! Every struct refuses unknown keys. Values check themselves as they are read (see
//! `names`, `pattern`, `condition`), and a rule checks itself as a whole once read, so an
//! error carries the line of the value or rule it is about.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

use super::condition::Condition;
use super::controls::{Budgets, ControlsConfig};
use super::effect::{Effect, Fallback};
use super::load;
use super::names::{RoleName, RuleId, TierName, TtlSeconds};
use super::path::FieldPath;
use super::pattern::ToolPattern;
use super::preview::{self, PreviewTemplate};
use super::validate;

/// A whole policy config: the YAML document, section by section. Every section may be
/// left out.
///
/// ```
/// use approval_gate::{Effect, config::PolicyConfig};
///
/// let config: PolicyConfig = serde_yaml::from_str("approvals:\n  required_for: [email.send]\n").unwrap();
/// assert_eq!(config.approvals.required_for[0].as_str(), "email.send");
/// assert_eq!(config.approvals.ttl_seconds.seconds(), 300);
/// assert_eq!(config.policy.default, Effect::Deny);
/// ```
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, expecting = "a policy config map")]
pub struct PolicyConfig {
    /// `approvals`: the tools that always need approval, and the default TTLs.
    pub approvals: ApprovalsConfig,
    /// `policy`: what happens to a call no rule matches, the tool allowlist and which
    /// tools are reads.
    pub policy: PolicySettings,
    /// `budgets`: limits on one agent run; left out of the version when none is set.
    #[serde(skip_serializing_if = "Budgets::is_unset")]
    pub budgets: Budgets,
    /// `controls`: the kill switch and read-only mode; left out of the version when both
    /// are off.
    #[serde(skip_serializing_if = "ControlsConfig::is_default")]
    pub controls: ControlsConfig,
    /// `tiers`: named risk tiers with their own TTLs, referred to by rules.
    #[serde(deserialize_with = "deserialize_tiers")]
    pub tiers: BTreeMap<TierName, TierConfig>,
    /// `rules`: the rules, in order; order breaks ties between rules of the same effect.
    pub rules: Vec<RuleConfig>,
}

/// The `approvals` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, expecting = "a map of approval settings")]
pub struct ApprovalsConfig {
    /// `required_for`: tool patterns that always need approval. Each is a rule with the id
    /// `approvals.required_for[N]`, effect `approval_required` and no condition.
    pub required_for: Vec<ToolPattern>,
    /// `ttl_seconds`: how long a person has to decide, unless a tier or rule says otherwise.
    /// Default 300.
    pub ttl_seconds: TtlSeconds,
    /// `approval_ttl_seconds`: how long an approval may wait to be used, unless a tier or
    /// rule says otherwise. Default 900.
    pub approval_ttl_seconds: TtlSeconds,
    /// `fallback_when_not_approved`: what the host does when a call ends unapproved.
    /// Default `stop`.
    pub fallback_when_not_approved: Fallback,
    /// `redact`: paths into the args (`args.password`, `args.card.number`) whose values are
    /// secret: [`Policy::redact`](crate::policy::Policy::redact) and
    /// [`Policy::preview`](crate::policy::Policy::preview) show them as `"[redacted]"`. Each path
    /// is listed once.
    #[serde(
        deserialize_with = "deserialize_redact",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub redact: Vec<FieldPath>,
}

impl Default for ApprovalsConfig {
    fn default() -> Self {
        ApprovalsConfig {
            required_for: Vec::new(),
            ttl_seconds: TtlSeconds::DEFAULT_DECISION,
            approval_ttl_seconds: TtlSeconds::DEFAULT_APPROVAL,
            fallback_when_not_approved: Fallback::Stop,
            redact: Vec::new(),
        }
    }
}

/// The `policy` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, expecting = "a map of policy settings")]
pub struct PolicySettings {
    /// `default`: the effect for a call that no rule and no check matches. Default `deny`,
    /// so a tool nobody thought of does not run (fail closed).
    pub default: Effect,
    /// `tool_allowlist`: when set, a call whose tool matches none of these patterns is
    /// denied before any rule, with the rule id `policy.tool_allowlist`. Not empty.
    #[serde(
        deserialize_with = "deserialize_allowlist",
        skip_serializing_if = "Option::is_none"
    )]
    pub tool_allowlist: Option<Vec<ToolPattern>>,
    /// `read_tools`: the patterns of the tools that only read, which read-only mode
    /// (`controls.read_only`) lets through. Default
    /// [`DEFAULT_READ_TOOLS`](Self::DEFAULT_READ_TOOLS); an empty list makes no tool a read.
    #[serde(skip_serializing_if = "is_default_read_tools")]
    pub read_tools: Vec<ToolPattern>,
}

impl PolicySettings {
    /// The `read_tools` of a config that sets none.
    pub const DEFAULT_READ_TOOLS: [&'static str; 4] = ["*.read", "*.list", "*.get", "*.search"];
}

/// True for the default `read_tools`, which the version leaves out as if unwritten.
fn is_default_read_tools(tools: &[ToolPattern]) -> bool {
    tools
        .iter()
        .map(ToolPattern::as_str)
        .eq(PolicySettings::DEFAULT_READ_TOOLS)
}

impl Default for PolicySettings {
    fn default() -> Self {
        PolicySettings {
            default: Effect::Deny,
            tool_allowlist: None,
            read_tools: Self::DEFAULT_READ_TOOLS
                .iter()
                .map(|p| ToolPattern::known(p))
                .collect(),
        }
    }
}

/// One risk tier under `tiers`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, expecting = "a map of tier settings")]
pub struct TierConfig {
    /// `ttl_seconds`: the decision TTL of rules in this tier that set none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<TtlSeconds>,
    /// `approval_ttl_seconds`: the approval TTL of rules in this tier that set none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval_ttl_seconds: Option<TtlSeconds>,
    /// `description`: what the tier is for, for people.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `approvers`: the roles that may approve requests in this tier, each listed once;
    /// empty means any approver role may. Decisions carry it as
    /// [`Decision::approver_roles`](crate::policy::Decision::approver_roles).
    #[serde(
        deserialize_with = "deserialize_approvers",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub approvers: Vec<RoleName>,
    /// `quorum`: how many distinct approvers a request in this tier needs, from 1 to 10;
    /// `None` means 1. Decisions carry it as [`Decision::quorum`](crate::policy::Decision::quorum).
    #[serde(
        deserialize_with = "deserialize_quorum",
        skip_serializing_if = "Option::is_none"
    )]
    pub quorum: Option<u32>,
    /// `grants`: whether a standing grant may turn an `approval_required` of this tier
    /// into an allow. Default `true`; `false` makes every call of the tier wait for a
    /// person. Decisions carry it as
    /// [`Decision::grants_allowed`](crate::policy::Decision::grants_allowed).
    #[serde(skip_serializing_if = "is_true")]
    pub grants: bool,
    /// `remind_after_seconds`: how long after a request of this tier was filed, if no
    /// one has decided it, a notifier reminds those who may (once per request,
    /// recorded as `approval_reminded`). Less than the tier's decision TTL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remind_after_seconds: Option<TtlSeconds>,
    /// `escalate_after_seconds`: how long after a request of this tier was filed, if no
    /// one has decided it, a notifier escalates it to `escalate_to` (once per request,
    /// recorded as `approval_escalated`). Less than the tier's decision TTL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub escalate_after_seconds: Option<TtlSeconds>,
    /// `escalate_to`: the roles an escalation names, each listed once (a notifier's
    /// channels carry them to whoever holds them). Needs `escalate_after_seconds`.
    #[serde(
        deserialize_with = "deserialize_escalate_to",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub escalate_to: Vec<RoleName>,
}

impl Default for TierConfig {
    fn default() -> Self {
        TierConfig {
            ttl_seconds: None,
            approval_ttl_seconds: None,
            description: None,
            approvers: Vec::new(),
            quorum: None,
            grants: true,
            remind_after_seconds: None,
            escalate_after_seconds: None,
            escalate_to: Vec::new(),
        }
    }
}

fn is_true(b: &bool) -> bool {
    *b
}

/// One rule under `rules`.
///
/// In YAML a rule names its tools with `tools: [..]` or, for one, `tool: NAME`; both
/// become [`tools`](RuleConfig::tools).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleConfig {
    /// `id`: unique within the config; decisions and the audit trail name the rule by it.
    pub id: RuleId,
    /// `tools` (or `tool`): the tool patterns the rule applies to; not empty.
    pub tools: Vec<ToolPattern>,
    /// `effect`: `allow`, `deny` or `approval_required`.
    pub effect: Effect,
    /// `tier`: a risk tier named under `tiers`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tier: Option<TierName>,
    /// `reason`: why, for the person who approves and for the audit trail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `when`: the rule applies only when this holds; without it, always.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub when: Option<Condition>,
    /// `ttl_seconds`: the decision TTL, over the tier's and the default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<TtlSeconds>,
    /// `approval_ttl_seconds`: the approval TTL, over the tier's and the default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval_ttl_seconds: Option<TtlSeconds>,
    /// `preview`: what the approver sees of the call, rendered over its redacted args by
    /// [`Policy::preview`](crate::policy::Policy::preview).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preview: Option<PreviewTemplate>,
}

/// A rule as written, before `tool`/`tools` become one list.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a rule map")]
struct RawRule {
    #[serde(deserialize_with = "load::rule_id")]
    id: RuleId,
    #[serde(default)]
    tool: Option<ToolPattern>,
    #[serde(default, deserialize_with = "deserialize_tools")]
    tools: Option<Vec<ToolPattern>>,
    effect: Effect,
    #[serde(default, deserialize_with = "load::tier_ref")]
    tier: Option<TierName>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    when: Option<Condition>,
    #[serde(default)]
    ttl_seconds: Option<TtlSeconds>,
    #[serde(default)]
    approval_ttl_seconds: Option<TtlSeconds>,
    #[serde(default)]
    preview: Option<PreviewTemplate>,
}

impl RawRule {
    fn into_rule(self) -> Result<RuleConfig, String> {
        let tools = match (self.tool, self.tools) {
            (Some(_), Some(_)) => {
                return Err(
                    "`tool` and `tools` are both set; use `tools` for a list or `tool` for one"
                        .into(),
                );
            }
            (Some(one), None) => vec![one],
            (None, Some(list)) => list,
            (None, None) => {
                return Err(
                    "missing field `tools`: say which tools the rule is for, as `tools: [..]` or `tool: NAME`".into(),
                );
            }
        };
        Ok(RuleConfig {
            id: self.id,
            tools,
            effect: self.effect,
            tier: self.tier,
            reason: self.reason,
            when: self.when,
            ttl_seconds: self.ttl_seconds,
            approval_ttl_seconds: self.approval_ttl_seconds,
            preview: self.preview,
        })
    }
}

impl<'de> Deserialize<'de> for RuleConfig {
    /// Reads the rule's keys through the derived form, then checks the rule as a whole;
    /// an error raised here is marked by serde_yaml with the rule's own line.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RuleConfig;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a rule map with `id`, `tools` and `effect`")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RuleConfig, A::Error> {
                let raw = RawRule::deserialize(de::value::MapAccessDeserializer::new(map))?;
                let rule = raw.into_rule().map_err(de::Error::custom)?;
                load::admit_rule(&rule).map_err(de::Error::custom)?;
                Ok(rule)
            }
        }
        d.deserialize_map(V)
    }
}

/// A non-empty list of tool patterns.
fn deserialize_tools<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Vec<ToolPattern>>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Vec<ToolPattern>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list of tool patterns")
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(p) = seq.next_element()? {
                out.push(p);
            }
            validate::check_tools(&out).map_err(de::Error::custom)?;
            Ok(out)
        }
    }
    d.deserialize_seq(V).map(Some)
}

/// `policy.tool_allowlist`: a non-empty list of tool patterns.
fn deserialize_allowlist<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Vec<ToolPattern>>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Vec<ToolPattern>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list of tool patterns")
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(p) = seq.next_element()? {
                out.push(p);
            }
            validate::check_allowlist(&out).map_err(de::Error::custom)?;
            Ok(out)
        }
    }
    d.deserialize_seq(V).map(Some)
}

/// `approvals.redact`: paths into the args, each listed once; an error is raised at the
/// entry, with its index and line.
fn deserialize_redact<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<FieldPath>, D::Error> {
    let parse = |s: &str| {
        let path = FieldPath::parse(s)?;
        preview::check_redact_path(&path)?;
        Ok(path)
    };
    deserialize_unique(
        d,
        (
            "a field path such as `args.password`",
            "a list of field paths",
        ),
        parse,
        preview::duplicate_redact_message,
    )
}

/// A list of strings, each parsed by `parse` and listed once.
///
/// The checks run inside each element's own visitor, so serde_yaml marks an error with
/// the element's index and line.
fn deserialize_unique<'de, D, T, P, M>(
    d: D,
    (item, list): (&'static str, &'static str),
    parse: P,
    duplicate: M,
) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: PartialEq,
    P: Fn(&str) -> Result<T, String> + Copy,
    M: Fn(&str, usize) -> String + Copy,
{
    struct Seed<'a, T, P, M> {
        seen: &'a [T],
        item: &'static str,
        parse: P,
        duplicate: M,
    }
    impl<'de, T, P, M> DeserializeSeed<'de> for Seed<'_, T, P, M>
    where
        T: PartialEq,
        P: Fn(&str) -> Result<T, String>,
        M: Fn(&str, usize) -> String,
    {
        type Value = T;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
            d.deserialize_str(self)
        }
    }
    impl<T, P, M> Visitor<'_> for Seed<'_, T, P, M>
    where
        T: PartialEq,
        P: Fn(&str) -> Result<T, String>,
        M: Fn(&str, usize) -> String,
    {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.item)
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<T, E> {
            let value = (self.parse)(s).map_err(E::custom)?;
            match self.seen.iter().position(|v| *v == value) {
                Some(first) => Err(E::custom((self.duplicate)(s, first))),
                None => Ok(value),
            }
        }
    }
    struct V<T, P, M> {
        item: &'static str,
        list: &'static str,
        parse: P,
        duplicate: M,
        out: std::marker::PhantomData<T>,
    }
    impl<'de, T, P, M> Visitor<'de> for V<T, P, M>
    where
        T: PartialEq,
        P: Fn(&str) -> Result<T, String> + Copy,
        M: Fn(&str, usize) -> String + Copy,
    {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.list)
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut out: Vec<T> = Vec::new();
            loop {
                let seed = Seed {
                    seen: &out,
                    item: self.item,
                    parse: self.parse,
                    duplicate: self.duplicate,
                };
                match seq.next_element_seed(seed)? {
                    Some(value) => out.push(value),
                    None => return Ok(out),
                }
            }
        }
    }
    d.deserialize_seq(V {
        item,
        list,
        parse,
        duplicate,
        out: std::marker::PhantomData,
    })
}

/// The `tiers` map; a tier named twice is an error at its second key.
fn deserialize_tiers<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<TierName, TierConfig>, D::Error> {
    struct KeySeed<'a>(&'a BTreeMap<TierName, TierConfig>);
    impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
        type Value = TierName;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<TierName, D::Error> {
            d.deserialize_str(self)
        }
    }
    impl Visitor<'_> for KeySeed<'_> {
        type Value = TierName;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a tier name")
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<TierName, E> {
            let name = TierName::parse(s).map_err(E::custom)?;
            if self.0.contains_key(&name) {
                return Err(E::custom(format!("duplicate tier `{name}`")));
            }
            Ok(name)
        }
    }
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = BTreeMap<TierName, TierConfig>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a map of tier names to tier settings")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some(name) = map.next_key_seed(KeySeed(&out))? {
                let tier = map.next_value()?;
                out.insert(name, tier);
            }
            Ok(out)
        }
    }
    d.deserialize_map(V)
}

/// A tier's `approvers`: role names, a role listed twice being an error at its second
/// entry.
fn deserialize_approvers<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<RoleName>, D::Error> {
    deserialize_unique(
        d,
        ("a role name", "a list of role names"),
        RoleName::parse,
        validate::duplicate_role_message,
    )
}

fn deserialize_escalate_to<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<RoleName>, D::Error> {
    deserialize_unique(
        d,
        ("a role name", "a list of role names"),
        RoleName::parse,
        validate::duplicate_escalation_role_message,
    )
}

/// A tier's `quorum`: a whole number from 1 to [`validate::MAX_QUORUM`]; `null` is no
/// quorum.
fn deserialize_quorum<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = Option<u32>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a whole number of approvers")
        }
        fn visit_unit<E: de::Error>(self) -> Result<Option<u32>, E> {
            Ok(None)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Option<u32>, E> {
            validate::check_quorum(v).map(Some).map_err(E::custom)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Option<u32>, E> {
            match u64::try_from(v) {
                Ok(v) => self.visit_u64(v),
                Err(_) => Err(E::custom(validate::quorum_message(v))),
            }
        }
        // Integers beyond 64 bits, which YAML readers give as 128-bit.
        fn visit_u128<E: de::Error>(self, v: u128) -> Result<Option<u32>, E> {
            Err(E::custom(validate::quorum_message(v)))
        }
        fn visit_i128<E: de::Error>(self, v: i128) -> Result<Option<u32>, E> {
            Err(E::custom(validate::quorum_message(v)))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Option<u32>, E> {
            Err(E::custom(validate::quorum_message(v)))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<u32>, E> {
            Err(E::custom(validate::quorum_message(v)))
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Option<u32>, E> {
            Err(E::custom(validate::quorum_message(v)))
        }
    }
    d.deserialize_any(V)
}
