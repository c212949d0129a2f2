//! Reading a config from YAML, with every error placed at its field and line.
//!
//! Three passes over the text:
//!
//! 1. **Syntax**: the text is read into nothing, so an error here is a YAML error
//!    ([`PolicyError::Syntax`]), never a config error; except for a key written twice in
//!    one map, refused here at the second key with its path ([`PolicyError::Invalid`]).
//! 2. **Names**: the names rules refer to are read leniently: the tier names under `tiers`
//!    and the patterns under `approvals.required_for`. Tiers may come after the rules that
//!    use them, so these must be known before the rules are read.
//! 3. **Config**: the typed [`PolicyConfig`], checked as it is read. Checks that need the
//!    names of pass 2, or the rules read so far (unknown tiers, duplicate ids, a rule that
//!    duplicates another with a different effect), read them from a thread-local
//!    [`LoadState`] that [`parse_yaml`] sets for the length of this pass and clears when
//!    the pass ends, by success, error or panic (a drop guard). When no state is set (a
//!    `PolicyConfig` deserialized by other means) these checks are left to
//!    [`Policy::from_config`](crate::policy::Policy::from_config), which makes them without lines.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, Visitor};

use super::PolicyError;
use super::config::{PolicyConfig, RuleConfig};
use super::names::{RuleId, TierName, checked_str};
use super::validate;

thread_local! {
    /// The state of the config pass running on this thread, if one is.
    static LOADING: RefCell<Option<LoadState>> = const { RefCell::new(None) };
}

/// What pass 3 knows beyond the value it is reading.
#[derive(Debug, Default)]
struct LoadState {
    /// The tier names under `tiers`; `None` when pass 2 could not read them, in which case
    /// tier references are checked after the pass.
    tiers: Option<BTreeSet<String>>,
    /// The patterns under `approvals.required_for`, as written.
    required_for: Vec<String>,
    /// The rule ids read so far, with their positions.
    rule_ids: HashMap<String, usize>,
    /// The rules read so far, for the shadowing check; made when the first rule is read,
    /// once `required_for` is known.
    shadows: Option<validate::ShadowIndex>,
}

/// Sets the state for the pass and clears it when dropped.
struct Loading;

impl Loading {
    fn enter(state: LoadState) -> Loading {
        LOADING.with(|s| *s.borrow_mut() = Some(state));
        Loading
    }
}

impl Drop for Loading {
    fn drop(&mut self) {
        LOADING.with(|s| *s.borrow_mut() = None);
    }
}

/// Runs `f` on the state of the running pass, if there is one.
fn with_state<R>(f: impl FnOnce(&mut LoadState) -> R) -> Option<R> {
    LOADING.with(|s| s.borrow_mut().as_mut().map(f))
}

/// Reads and checks a config from YAML.
pub(crate) fn parse_yaml(yaml: &str) -> Result<PolicyConfig, PolicyError> {
    check_flow_depth(yaml)?;
    serde_yaml::from_str::<UniqueKeys>(yaml).map_err(|e| {
        if e.to_string().contains(DUPLICATE_KEY) {
            PolicyError::from_yaml(e)
        } else {
            PolicyError::syntax(e)
        }
    })?;
    let _loading = Loading::enter(scan_names(yaml));
    serde_yaml::from_str::<PolicyConfig>(yaml).map_err(PolicyError::from_yaml)
}

/// The most `[` and `{` open at once that the reader is given. The YAML reader takes time
/// quadratic in this nesting (seconds for 100,000 levels) before its own limit of 128
/// levels refuses it; a config never comes near either.
const MAX_FLOW_DEPTH: usize = 1000;

/// Refuses text with more than [`MAX_FLOW_DEPTH`] brackets open at once, counting every
/// bracket, quoted or not (so it can only refuse text that nests too deep or has a
/// thousand unclosed brackets in its strings).
fn check_flow_depth(yaml: &str) -> Result<(), PolicyError> {
    let mut depth = 0usize;
    for (n, line) in yaml.lines().enumerate() {
        for (col, c) in line.chars().enumerate() {
            match c {
                '[' | '{' => depth += 1,
                ']' | '}' => depth = depth.saturating_sub(1),
                _ => continue,
            }
            if depth > MAX_FLOW_DEPTH {
                return Err(PolicyError::Invalid {
                    field: String::new(),
                    line: n + 1,
                    column: col + 1,
                    message: format!("brackets nested deeper than {MAX_FLOW_DEPTH} levels"),
                });
            }
        }
    }
    Ok(())
}

/// The start of pass 1's message for a key written twice.
const DUPLICATE_KEY: &str = "duplicate key `";

/// Pass 1: reads any YAML into nothing, refusing a key written twice in one map where the
/// second is written. (serde's own "duplicate field" error, in pass 3, would place it at
/// the map's first key, and a map of tiers would keep only the last.)
struct UniqueKeys;

impl<'de> Deserialize<'de> for UniqueKeys {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UniqueKeys)
    }
}

impl<'de> Visitor<'de> for UniqueKeys {
    type Value = UniqueKeys;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self, E> {
        Ok(self)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self, E> {
        Ok(self)
    }

    fn visit_i128<E: de::Error>(self, _: i128) -> Result<Self, E> {
        Ok(self)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self, E> {
        Ok(self)
    }

    fn visit_u128<E: de::Error>(self, _: u128) -> Result<Self, E> {
        Ok(self)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self, E> {
        Ok(self)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self, E> {
        Ok(self)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self, E> {
        Ok(self)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self, E> {
        Ok(self)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self, D::Error> {
        UniqueKeys::deserialize(d)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self, A::Error> {
        while seq.next_element::<UniqueKeys>()?.is_some() {}
        Ok(self)
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self, A::Error> {
        let mut seen = BTreeSet::new();
        while map.next_key_seed(Key(&mut seen))?.is_some() {
            map.next_value::<UniqueKeys>()?;
        }
        Ok(self)
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<Self, A::Error> {
        // A tagged value (`!tag value`): read the value.
        use de::VariantAccess;
        data.variant::<IgnoredAny>()?
            .1
            .newtype_variant::<UniqueKeys>()
    }
}

/// A key of a map, refused when the map had it already. Only string keys are compared:
/// a config has no other kind.
struct Key<'a>(&'a mut BTreeSet<String>);

impl<'de> de::DeserializeSeed<'de> for Key<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Key<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a map key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<(), E> {
        if self.0.contains(key) {
            let shown: String = key.chars().take(64).collect();
            return Err(E::custom(format_args!(
                "{DUPLICATE_KEY}{shown}` in one map"
            )));
        }
        self.0.insert(key.to_owned());
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_i128<E: de::Error>(self, _: i128) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u128<E: de::Error>(self, _: u128) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        UniqueKeys.visit_seq(seq).map(drop)
    }

    fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        UniqueKeys.visit_map(map).map(drop)
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<(), A::Error> {
        UniqueKeys.visit_enum(data).map(drop)
    }
}

/// Pass 2: reads the tier names and `required_for` patterns, ignoring everything else and
/// giving up quietly on anything malformed (pass 3 reports it properly). One read of the
/// text for both: each section is taken as a YAML value first, so a malformed one loses
/// only its own names.
fn scan_names(yaml: &str) -> LoadState {
    #[derive(Deserialize)]
    struct Names {
        #[serde(default)]
        tiers: Option<serde_yaml::Value>,
        #[serde(default)]
        approvals: Option<serde_yaml::Value>,
    }
    #[derive(Deserialize)]
    struct RequiredFor {
        #[serde(default)]
        required_for: Vec<String>,
    }
    let Ok(names) = serde_yaml::from_str::<Names>(yaml) else {
        return LoadState::default();
    };
    let tiers = match names.tiers {
        None => Some(BTreeSet::new()),
        Some(tiers) => serde_yaml::from_value::<Option<BTreeMap<String, IgnoredAny>>>(tiers)
            .ok()
            .map(|t| t.unwrap_or_default().into_keys().collect()),
    };
    let required_for = names
        .approvals
        .and_then(|a| serde_yaml::from_value::<Option<RequiredFor>>(a).ok())
        .flatten()
        .map(|a| a.required_for)
        .unwrap_or_default();
    LoadState {
        tiers,
        required_for,
        ..LoadState::default()
    }
}

/// Reads a rule id, refusing one that an earlier rule has.
pub(crate) fn rule_id<'de, D: Deserializer<'de>>(d: D) -> Result<RuleId, D::Error> {
    checked_str(d, "a rule id", |s| {
        let id = RuleId::parse(s)?;
        with_state(|state| {
            if let Some(first) = state.rule_ids.get(s) {
                return Err(validate::duplicate_id_message(s, *first));
            }
            let n = state.rule_ids.len();
            state.rule_ids.insert(s.to_owned(), n);
            Ok(())
        })
        .transpose()?;
        Ok(id)
    })
}

/// Reads a rule's `tier`, refusing a name that is not under `tiers`.
pub(crate) fn tier_ref<'de, D: Deserializer<'de>>(d: D) -> Result<Option<TierName>, D::Error> {
    checked_str(d, "a tier name", |s| {
        let name = TierName::parse(s)?;
        with_state(|state| match &state.tiers {
            Some(tiers) if !tiers.contains(s) => Err(validate::unknown_tier_message(
                s,
                tiers.iter().map(String::as_str),
            )),
            _ => Ok(()),
        })
        .transpose()?;
        Ok(Some(name))
    })
}

/// Checks a rule that has just been read against the rules before it and `required_for`,
/// then remembers it.
pub(crate) fn admit_rule(rule: &RuleConfig) -> Result<(), String> {
    with_state(|state| {
        let required_for = &state.required_for;
        state
            .shadows
            .get_or_insert_with(|| validate::ShadowIndex::new(required_for))
            .admit(rule)
    })
    .unwrap_or(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Policy;

    /// Loads `yaml` (a leading newline is dropped, so line 1 is the first written line) and
    /// asserts that it fails at `field` on `line` with a message containing `words`.
    #[track_caller]
    fn fails_at(yaml: &str, field: &str, line: usize, words: &str) {
        let yaml = yaml.strip_prefix('\n').unwrap_or(yaml);
        let err = match Policy::from_yaml_str(yaml) {
            Ok(_) => panic!("loaded, but should fail at {field}"),
            Err(e) => e,
        };
        let shown = err.to_string();
        assert!(
            matches!(err, PolicyError::Invalid { .. }),
            "not a located error: {shown}"
        );
        assert_eq!(err.field(), Some(field), "{shown}");
        assert_eq!(err.line(), Some(line), "{shown}");
        assert!(shown.contains(words), "{shown}");
        assert!(
            !shown.contains("Config") && !shown.contains("Vec<"),
            "a Rust type name leaked: {shown}"
        );
    }

    #[test]
    fn unknown_keys_are_refused_at_every_level() {
        fails_at(
            "\napprovals:\n  ttl_seconds: 300\nrulez: []\n",
            "rulez",
            3,
            "unknown field `rulez`",
        );
        fails_at(
            "\napprovals:\n  required_for: [a]\n  ttl: 300\n",
            "approvals.ttl",
            3,
            "unknown field `ttl`, expected one of `required_for`",
        );
        fails_at(
            "\npolicy:\n  defualt: allow\n",
            "policy.defualt",
            2,
            "unknown field `defualt`",
        );
        fails_at(
            "\ntiers:\n  high:\n    ttl_seconds: 60\n    quorom: 2\n",
            "tiers.high.quorom",
            4,
            "unknown field `quorom`",
        );
        fails_at(
            "\nrules:\n  - id: r\n    tool: a\n    effect: allow\n    resaon: typo\n",
            "rules[0].resaon",
            5,
            "unknown field `resaon`",
        );
    }

    #[test]
    fn an_unknown_tier_names_the_tiers_there_are_even_when_they_come_later() {
        fails_at(
            "
rules:
  - id: r
    tool: a
    effect: approval_required
    tier: critcal
tiers:
  high: {}
  low: {}
",
            "rules[0].tier",
            5,
            "unknown tier `critcal`, expected one of `high`, `low`",
        );
        fails_at(
            "\nrules:\n  - { id: r, tool: a, effect: deny, tier: high }\n",
            "rules[0].tier",
            2,
            "the config has no `tiers`",
        );
        // A tier on an allow rule is fine.
        assert!(
            Policy::from_yaml_str(
                "tiers: {low: {}}\nrules:\n  - { id: r, tool: a, effect: allow, tier: low }\n"
            )
            .is_ok()
        );
    }

    #[test]
    fn bad_durations_are_refused_where_they_are_written() {
        for bad in ["0", "-5", "1.5", "2592001", "5m", "'300'"] {
            fails_at(
                &format!("\napprovals:\n  ttl_seconds: {bad}\n"),
                "approvals.ttl_seconds",
                2,
                "a TTL is a whole number of seconds from 1 to 2592000 (30 days)",
            );
        }
        fails_at(
            "\ntiers:\n  high:\n    approval_ttl_seconds: 0\n",
            "tiers.high.approval_ttl_seconds",
            3,
            "found `0`",
        );
        fails_at(
            "\nrules:\n  - id: r\n    tool: a\n    effect: approval_required\n    ttl_seconds: -1\n",
            "rules[0].ttl_seconds",
            5,
            "found `-1`",
        );
    }

    #[test]
    fn empty_patterns_and_tool_lists_are_refused() {
        fails_at(
            "\napprovals:\n  required_for:\n    - email.send\n    - ''\n",
            "approvals.required_for[1]",
            4,
            "empty tool pattern",
        );
        fails_at(
            "\nrules:\n  - id: r\n    tools: [a, '']\n    effect: deny\n",
            "rules[0].tools[1]",
            3,
            "empty tool pattern",
        );
        fails_at(
            "\nrules:\n  - id: r\n    tools: []\n    effect: deny\n",
            "rules[0].tools",
            3,
            "`tools` is empty",
        );
        fails_at(
            "\nrules:\n  - id: r\n    effect: deny\n",
            "rules[0].tools",
            2,
            "missing field `tools`",
        );
        fails_at(
            "\nrules:\n  - id: r\n    tool: a\n    tools: [b]\n    effect: deny\n",
            "rules[0]",
            2,
            "`tool` and `tools` are both set",
        );
    }

    #[test]
    fn rule_ids_must_be_present_well_formed_and_unique() {
        fails_at(
            "\nrules:\n  - { id: refunds, tool: a, effect: allow }\n  - { id: refunds, tool: b, effect: deny }\n",
            "rules[1].id",
            3,
            "duplicate rule id `refunds`, already used by rules[0]",
        );
        fails_at(
            "\nrules:\n  - { tool: a, effect: allow }\n",
            "rules[0].id",
            2,
            "missing field `id`",
        );
        fails_at(
            "\nrules:\n  - { id: 'my rule', tool: a, effect: allow }\n",
            "rules[0].id",
            2,
            "rule id `my rule` has the character ` `",
        );
        fails_at(
            "\nrules:\n  - { id: r, tool: a, effect: permit }\n",
            "rules[0].effect",
            2,
            "unknown variant `permit`, expected one of `allow`, `approval_required`, `deny`",
        );
        fails_at(
            "\nrules:\n  - { id: r, tool: a }\n",
            "rules[0].effect",
            2,
            "missing field `effect`",
        );
    }

    #[test]
    fn bad_conditions_are_refused_at_the_operator() {
        fails_at(
            "\nrules:\n  - id: r\n    tool: a\n    effect: deny\n    when:\n      field: args.to\n      matches: '(unclosed'\n",
            "rules[0].when.matches",
            7,
            "invalid regex `(unclosed`: unclosed group",
        );
        fails_at(
            "\nrules:\n  - id: r\n    tool: a\n    effect: deny\n    when: { field: args.table, in: [] }\n",
            "rules[0].when.in",
            5,
            "`in: []` lists no values",
        );
        fails_at(
            "\nrules:\n  - id: r\n    tool: a\n    effect: deny\n    when:\n      field: args.table\n      equals: users\n",
            "rules[0].when",
            7,
            "unknown condition operator `equals`",
        );
        fails_at(
            "\nrules:\n  - id: r\n    tool: a\n    effect: deny\n    when:\n      field: args.n\n      gt: 1\n      lt: 5\n",
            "rules[0].when",
            8,
            "two operators `gt` and `lt` in one condition",
        );
        fails_at(
            "\nrules:\n  - id: r\n    tool: a\n    effect: deny\n    when: { field: arguments.n, gt: 1 }\n",
            "rules[0].when.field",
            5,
            "unknown field path `arguments.n`",
        );
        fails_at(
            "\nrules:\n  - id: r\n    tool: a\n    effect: deny\n    when: { field: context.roles, gt: 1 }\n",
            "rules[0].when",
            5,
            "it compares numbers, but `context.roles` is a list of strings",
        );
    }

    #[test]
    fn rules_that_can_never_match_are_refused() {
        fails_at(
            "
rules:
  - id: r
    tool: a
    effect: deny
    when:
      any: []
",
            "rules[0].when.any",
            6,
            "`any: []` offers no condition",
        );
        fails_at(
            "
rules:
  - id: r
    tool: a
    effect: deny
    when:
      all:
        - { field: args.amount, gt: 100 }
        - { field: args.amount, lte: 100 }
",
            "rules[0].when.all",
            7,
            "`args.amount` cannot be both `gt: 100` and `lte: 100`",
        );
        // The list form of `all` is checked the same way.
        fails_at(
            "
rules:
  - id: r
    tool: a
    effect: deny
    when:
      - { field: args.amount, gte: 10 }
      - { field: args.amount, lt: 10 }
",
            "rules[0].when",
            6,
            "cannot be both",
        );
    }

    #[test]
    fn a_rule_that_another_always_overrules_is_refused() {
        fails_at(
            "
rules:
  - id: block-prod
    tools: [db.write, db.drop]
    effect: deny
    when: { field: context.mode, eq: prod }
  - id: allow-prod
    tools: [db.drop, db.write]
    effect: allow
    when: { field: context.mode, eq: prod }
",
            "rules[1]",
            6,
            "so rule `allow-prod` can never decide (`deny` always wins over `allow`)",
        );
        // The later rule may be the stronger one: then the earlier never decides.
        fails_at(
            "\nrules:\n  - { id: a, tool: x, effect: allow }\n  - { id: b, tool: x, effect: approval_required }\n",
            "rules[1]",
            3,
            "so rule `a` can never decide",
        );
        // An unconditional rule on a `required_for` tool.
        fails_at(
            "
rules:
  - { id: send-ok, tool: email.send, effect: allow }
approvals:
  required_for: [email.send]
",
            "rules[0]",
            2,
            "as `approvals.required_for[0]`",
        );
        // Same effect, or a different condition, is fine.
        assert!(
            Policy::from_yaml_str(
                "rules:\n  - { id: a, tool: x, effect: deny }\n  - { id: b, tool: x, effect: deny }\n  - { id: c, tool: x, effect: allow, when: { field: args.a, exists: true } }\n"
            )
            .is_ok()
        );
    }

    #[test]
    fn a_quorum_outside_one_to_ten_or_not_a_whole_number_is_refused() {
        for bad in ["0", "11", "-1", "1.5", "two", "'2'", "true", "4294967297"] {
            fails_at(
                &format!("\ntiers:\n  high:\n    ttl_seconds: 60\n    quorum: {bad}\n"),
                "tiers.high.quorum",
                4,
                "a quorum is a whole number of approvers from 1 to 10, found `",
            );
        }
        fails_at(
            "\ntiers:\n  critical: { quorum: 0 }\n",
            "tiers.critical.quorum",
            2,
            "found `0`",
        );
        for good in ["1", "10"] {
            assert!(
                Policy::from_yaml_str(&format!("tiers:\n  high: {{ quorum: {good} }}\n")).is_ok()
            );
        }
    }

    #[test]
    fn approver_roles_must_be_well_formed_and_listed_once() {
        fails_at(
            "\ntiers:\n  high:\n    approvers:\n      - finance-lead\n      - ''\n",
            "tiers.high.approvers[1]",
            5,
            "empty role name",
        );
        fails_at(
            "\ntiers:\n  high:\n    approvers: [finance-lead, 'chief officer']\n",
            "tiers.high.approvers[1]",
            3,
            "role name `chief officer` has the character ` `; use letters, digits and `_` `.` `:` `-`",
        );
        fails_at(
            "\ntiers:\n  high:\n    approvers: [cfo/eu]\n",
            "tiers.high.approvers[0]",
            3,
            "has the character `/`",
        );
        fails_at(
            "\ntiers:\n  high:\n    approvers:\n      - cfo\n      - finance-lead\n      - cfo\n",
            "tiers.high.approvers[2]",
            6,
            "duplicate role `cfo`, already listed at approvers[0]",
        );
        fails_at(
            "\ntiers:\n  high:\n    approvers: cfo\n",
            "tiers.high.approvers",
            3,
            "expected a list of role names",
        );
    }

    #[test]
    fn duplicate_tiers_and_non_yaml_are_refused() {
        fails_at(
            "\ntiers:\n  high: {}\n  high: {}\n",
            "tiers.high",
            3,
            "duplicate key `high`",
        );
        let err = Policy::from_yaml_str("rules: [a, b\n").unwrap_err();
        assert!(
            matches!(err, PolicyError::Syntax { line: 2, .. }),
            "{err:?}"
        );
        assert!(std::error::Error::source(&err).is_some());
        let err = Policy::from_yaml_str("a: 1\n---\nb: 2\n").unwrap_err();
        assert!(matches!(err, PolicyError::Syntax { .. }), "{err:?}");
        fails_at(
            "\n- just\n- a list\n",
            "",
            1,
            "expected a policy config map",
        );
    }

    #[test]
    fn redact_paths_must_point_into_the_args_once_each() {
        fails_at(
            "\napprovals:\n  redact:\n    - args.password\n    - context.tenant\n",
            "approvals.redact[1]",
            4,
            "`redact` takes paths into the args such as `args.password`, found `context.tenant`",
        );
        fails_at(
            "\napprovals:\n  redact: [args]\n",
            "approvals.redact[0]",
            2,
            "`args` would redact every argument",
        );
        fails_at(
            "\napprovals:\n  redact:\n    - args.a\n    - args.b\n    - args.a\n",
            "approvals.redact[2]",
            5,
            "duplicate redact path `args.a`, already listed at redact[0]",
        );
        fails_at(
            "\napprovals:\n  redact: ['args..x']\n",
            "approvals.redact[0]",
            2,
            "has an empty key",
        );
        fails_at(
            "\napprovals:\n  redact: args.password\n",
            "approvals.redact",
            2,
            "expected a list of field paths",
        );
    }

    #[test]
    fn the_tool_allowlist_and_read_tools_refuse_bad_patterns() {
        fails_at(
            "\npolicy:\n  default: allow\n  tool_allowlist: []\n",
            "policy.tool_allowlist",
            3,
            "`tool_allowlist` is empty, so every call would be denied",
        );
        fails_at(
            "\npolicy:\n  tool_allowlist:\n    - crm.*\n    - ''\n",
            "policy.tool_allowlist[1]",
            4,
            "empty tool pattern",
        );
        fails_at(
            "\npolicy:\n  read_tools: ['*.read', 'db select']\n",
            "policy.read_tools[1]",
            2,
            "tool pattern `db select` has whitespace",
        );
        fails_at(
            "\npolicy:\n  tool_allowlist: email.send\n",
            "policy.tool_allowlist",
            2,
            "expected a list of tool patterns",
        );
    }

    #[test]
    fn budgets_out_of_range_are_refused_where_they_are_written() {
        for key in ["max_steps", "max_tool_calls", "max_seconds"] {
            for bad in ["0", "-3", "2.5", "'10'", "true"] {
                fails_at(
                    &format!("\nbudgets:\n  max_usd: 5\n  {key}: {bad}\n"),
                    &format!("budgets.{key}"),
                    3,
                    "a budget is a whole number of at least 1, found `",
                );
            }
        }
        for bad in ["0", "-1", "0.0", ".inf", ".nan", "'5'"] {
            fails_at(
                &format!("\nbudgets:\n  max_usd: {bad}\n"),
                "budgets.max_usd",
                2,
                "`max_usd` is a number of US dollars greater than 0, found `",
            );
        }
        fails_at(
            "\nbudgets:\n  max_step: 5\n",
            "budgets.max_step",
            2,
            "unknown field `max_step`, expected one of `max_steps`",
        );
    }

    #[test]
    fn controls_grants_and_previews_are_checked_where_they_are_written() {
        fails_at(
            "\ncontrols:\n  kill_switch: true\n",
            "controls.kill_switch",
            2,
            "expected a map of kill switch settings",
        );
        fails_at(
            "\ncontrols:\n  kill_switch: { enabled: true, tools: [a] }\n",
            "controls.kill_switch.tools",
            2,
            "unknown field `tools`, expected `enabled`",
        );
        fails_at(
            "\ncontrols:\n  read_only: 'yes'\n",
            "controls.read_only",
            2,
            "expected a boolean",
        );
        fails_at(
            "\ncontrols:\n  readonly: true\n",
            "controls.readonly",
            2,
            "unknown field `readonly`",
        );
        fails_at(
            "\ntiers:\n  critical:\n    quorum: 2\n    grants: never\n",
            "tiers.critical.grants",
            4,
            "expected a boolean",
        );
        fails_at(
            "
rules:
  - id: send
    tool: email.send
    effect: approval_required
    preview: 'Send email to {to: {subject}'
",
            "rules[0].preview",
            5,
            "preview template has a `{` inside a placeholder at character 20",
        );
        fails_at(
            "\nrules:\n  - { id: r, tool: a, effect: deny, preview: 'to {to' }\n",
            "rules[0].preview",
            2,
            "preview template has a `{` without `}` at character 4; write `{{` for a literal brace",
        );
        fails_at(
            "\nrules:\n  - { id: r, tool: a, effect: deny, preview: 'x {}' }\n",
            "rules[0].preview",
            2,
            "empty placeholder",
        );
    }

    #[test]
    fn the_load_state_is_cleared_even_after_an_error() {
        let bad = "tiers: {high: {}}\nrules:\n  - { id: r, tool: a, effect: deny, tier: nope }\n";
        assert!(Policy::from_yaml_str(bad).is_err());
        assert!(LOADING.with(|s| s.borrow().is_none()));
        // Without a load in progress, a config deserialized directly skips the checks
        // that need the whole document; `from_config` still makes them, without a line.
        let config: PolicyConfig = serde_yaml::from_str(bad).unwrap();
        let err = Policy::from_config(config).unwrap_err();
        assert!(matches!(err, PolicyError::InvalidConfig { .. }));
        assert_eq!(err.field(), Some("rules[0].tier"));
    }
}
