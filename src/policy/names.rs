//! Small validated config values: [`RuleId`], [`TierName`], [`RoleName`] and [`TtlSeconds`].
//!
//! Each checks itself inside its `Deserialize` visitor, so a bad value in YAML is reported
//! at its own line and column (serde_yaml marks an error with the position of the value
//! whose visitor raised it).

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};

use super::PolicyError;

/// Deserializes a string through `check`, raising its message as the error of that string.
pub(crate) fn checked_str<'de, D, T>(
    d: D,
    expecting: &'static str,
    check: fn(&str) -> Result<T, String>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    struct V<T> {
        expecting: &'static str,
        check: fn(&str) -> Result<T, String>,
        out: PhantomData<T>,
    }
    impl<T> Visitor<'_> for V<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.expecting)
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<T, E> {
            (self.check)(s).map_err(E::custom)
        }
    }
    d.deserialize_str(V {
        expecting,
        check,
        out: PhantomData,
    })
}

/// True for the characters of rule ids and tier names.
fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-')
}

const MAX_NAME_LEN: usize = 128;

fn check_name(what: &str, s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err(format!("empty {what}"));
    }
    if s.len() > MAX_NAME_LEN {
        return Err(format!(
            "{what} `{s}` is longer than {MAX_NAME_LEN} characters"
        ));
    }
    if let Some(bad) = s.chars().find(|c| !is_name_char(*c)) {
        return Err(format!(
            "{what} `{s}` has the character `{bad}`; use letters, digits and `_` `.` `:` `-`"
        ));
    }
    Ok(())
}

/// Why `call` cannot be decided, if it cannot: its tool name is no name (see
/// [`tool_name_problem`]), its run id or call id is empty, blank or has a control
/// character, or its requester or tenant is no valid id (see
/// [`id_problem`](crate::identity::id_problem)). The policy denies such a call whatever
/// its rules say (rule id `tool_call`), so it never reaches a tool or the approval queue.
/// Allocates only when it refuses, or for a requester or tenant beyond printable ASCII.
pub(crate) fn call_problem(call: &crate::call::ToolCall) -> Option<String> {
    // The common case, checked byte by byte: printable ASCII without spaces passes every
    // check below.
    let plain = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic());
    if plain(call.tool())
        && plain(call.run_id())
        && plain(call.call_id())
        && call.requester().is_none_or(plain)
        && call.tenant().is_none_or(plain)
    {
        return None;
    }
    if let Some(problem) = tool_name_problem(call.tool()) {
        return Some(problem);
    }
    for (what, id) in [("run id", call.run_id()), ("call id", call.call_id())] {
        if id.trim().is_empty() {
            return Some(format!("the {what} is empty"));
        }
        if id.chars().any(char::is_control) {
            let shown: String = id.chars().take(64).collect();
            return Some(format!(
                "the {what} `{}` has a control character",
                shown.escape_debug()
            ));
        }
    }
    for (what, id) in [("requester", call.requester()), ("tenant", call.tenant())] {
        if let Some(problem) = id.and_then(crate::identity::id_problem) {
            return Some(format!("the {what} is refused: {problem}"));
        }
    }
    None
}

/// Why `tool` cannot be the name of a tool, if it cannot: it is empty, or has whitespace,
/// a control character, or an invisible formatting character (bidirectional marks and
/// overrides, zero-width characters), which would make a name look like another.
fn tool_name_problem(tool: &str) -> Option<String> {
    if tool.is_empty() {
        return Some("the tool name is empty".to_owned());
    }
    let bad = tool.chars().find(|&c| {
        c.is_whitespace()
            || c.is_control()
            || matches!(c,
                '\u{00ad}' | '\u{061c}' | '\u{180e}' | '\u{200b}'..='\u{200f}'
                | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{206f}' | '\u{feff}' | '\u{fff9}'..='\u{fffb}')
    })?;
    let shown: String = tool.chars().take(64).collect::<String>();
    let cut = if shown.len() < tool.len() { "…" } else { "" };
    Some(format!(
        "the tool name `{}{cut}` has the character `{}`, which no tool name has",
        shown.escape_debug(),
        bad.escape_unicode()
    ))
}

/// The id of a rule: unique in its config, made of ASCII letters, digits and `_` `.` `:` `-`.
///
/// Ids appear in [`Decision::rule_ids`](crate::policy::Decision::rule_ids) and on the audit trail.
/// Ids starting with `check:` are kept for host checks.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct RuleId(String);

impl RuleId {
    /// Checks and wraps a rule id.
    pub fn new(id: impl Into<String>) -> Result<RuleId, PolicyError> {
        let id = id.into();
        Self::check(&id).map_err(|m| PolicyError::config("", m))?;
        Ok(RuleId(id))
    }

    pub(crate) fn parse(s: &str) -> Result<RuleId, String> {
        Self::check(s).map(|()| RuleId(s.to_owned()))
    }

    fn check(s: &str) -> Result<(), String> {
        check_name("rule id", s)?;
        if s.starts_with("check:") {
            return Err(format!(
                "rule id `{s}` starts with `check:`, which names host checks"
            ));
        }
        Ok(())
    }

    /// The id as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for RuleId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        checked_str(d, "a rule id", RuleId::parse)
    }
}

impl fmt::Display for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The name of a risk tier, made of ASCII letters, digits and `_` `.` `:` `-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct TierName(String);

impl TierName {
    /// Checks and wraps a tier name.
    pub fn new(name: impl Into<String>) -> Result<TierName, PolicyError> {
        let name = name.into();
        Self::check(&name).map_err(|m| PolicyError::config("", m))?;
        Ok(TierName(name))
    }

    pub(crate) fn parse(s: &str) -> Result<TierName, String> {
        check_name("tier name", s).map(|()| TierName(s.to_owned()))
    }

    fn check(s: &str) -> Result<(), String> {
        check_name("tier name", s)
    }

    /// The name as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for TierName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        checked_str(d, "a tier name", TierName::parse)
    }
}

impl fmt::Display for TierName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The name of an approver role, as a tier's `approvers` lists it: ASCII letters, digits
/// and `_` `.` `:` `-`, at most 128 characters.
///
/// ```
/// use approval_gate::config::RoleName;
///
/// assert_eq!(RoleName::new("finance-lead")?.as_str(), "finance-lead");
/// assert!(RoleName::new("finance lead").is_err());
/// assert!(RoleName::new("").is_err());
/// # Ok::<(), approval_gate::PolicyError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct RoleName(String);

impl RoleName {
    /// Checks and wraps a role name.
    pub fn new(name: impl Into<String>) -> Result<RoleName, PolicyError> {
        let name = name.into();
        check_name("role name", &name).map_err(|m| PolicyError::config("", m))?;
        Ok(RoleName(name))
    }

    pub(crate) fn parse(s: &str) -> Result<RoleName, String> {
        check_name("role name", s).map(|()| RoleName(s.to_owned()))
    }

    /// The name as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for RoleName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        checked_str(d, "a role name", RoleName::parse)
    }
}

impl fmt::Display for RoleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A duration in whole seconds, from 1 second to 30 days: the TTLs of the config.
///
/// ```
/// use approval_gate::config::TtlSeconds;
/// use std::time::Duration;
///
/// assert_eq!(TtlSeconds::new(300)?.as_duration(), Duration::from_secs(300));
/// assert!(TtlSeconds::new(0).is_err());
/// # Ok::<(), approval_gate::PolicyError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct TtlSeconds(u32);

impl TtlSeconds {
    /// The longest TTL allowed: 30 days.
    pub const MAX: u32 = 30 * 24 * 60 * 60;

    /// The default decision TTL, `approvals.ttl_seconds`: 300 seconds.
    pub const DEFAULT_DECISION: TtlSeconds = TtlSeconds(300);

    /// The default approval TTL, `approvals.approval_ttl_seconds`: 900 seconds.
    pub const DEFAULT_APPROVAL: TtlSeconds = TtlSeconds(900);

    /// Checks and wraps a number of seconds.
    pub fn new(seconds: u64) -> Result<TtlSeconds, PolicyError> {
        Self::check(seconds).map_err(|m| PolicyError::config("", m))
    }

    fn check(seconds: u64) -> Result<TtlSeconds, String> {
        match u32::try_from(seconds) {
            Ok(s) if (1..=Self::MAX).contains(&s) => Ok(TtlSeconds(s)),
            _ => Err(Self::range_message(seconds)),
        }
    }

    fn range_message(found: impl fmt::Display) -> String {
        format!(
            "a TTL is a whole number of seconds from 1 to {} (30 days), found `{found}`",
            Self::MAX
        )
    }

    /// The number of seconds.
    pub fn seconds(self) -> u32 {
        self.0
    }

    /// As a [`Duration`].
    pub fn as_duration(self) -> Duration {
        Duration::from_secs(u64::from(self.0))
    }
}

impl<'de> Deserialize<'de> for TtlSeconds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = TtlSeconds;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a whole number of seconds")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<TtlSeconds, E> {
                TtlSeconds::check(v).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<TtlSeconds, E> {
                match u64::try_from(v) {
                    Ok(v) => self.visit_u64(v),
                    Err(_) => Err(E::custom(TtlSeconds::range_message(v))),
                }
            }
            // Integers beyond 64 bits, which YAML readers give as 128-bit.
            fn visit_u128<E: de::Error>(self, v: u128) -> Result<TtlSeconds, E> {
                Err(E::custom(TtlSeconds::range_message(v)))
            }
            fn visit_i128<E: de::Error>(self, v: i128) -> Result<TtlSeconds, E> {
                Err(E::custom(TtlSeconds::range_message(v)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<TtlSeconds, E> {
                Err(E::custom(TtlSeconds::range_message(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<TtlSeconds, E> {
                Err(E::custom(TtlSeconds::range_message(v)))
            }
        }
        d.deserialize_any(V)
    }
}

impl fmt::Display for TtlSeconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}s", self.0)
    }
}

/// Comparisons with text, the trusted constructor for names the policy made, and the
/// lenient reading of names stored earlier, for both [`RuleId`] and [`TierName`].
macro_rules! name_like {
    ($ty:ident) => {
        impl $ty {
            /// A name the policy itself made (a rule id of a host check or a control),
            /// or one read back from a store: taken as it is.
            pub(crate) fn trusted(s: impl Into<String>) -> $ty {
                $ty(s.into())
            }
        }

        impl PartialEq<str> for $ty {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $ty {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

name_like!(RuleId);
name_like!(TierName);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_with_names_or_ids_of_the_wrong_form_are_refused() {
        let call = |run: &str, id: &str, tool: &str| {
            call_problem(&crate::call::ToolCall::new(
                run,
                id,
                tool,
                serde_json::json!({}),
            ))
        };
        assert_eq!(call("r", "c", "email.send"), None);
        assert_eq!(call("r", "c", "émail.send"), None);
        assert_eq!(call("r", "c", "mcp__github__create_issue"), None);
        for tool in [
            "",
            " ",
            "a b",
            "a\u{0}",
            "a\u{200f}",
            "\u{202e}a",
            "a\u{feff}",
        ] {
            assert!(call("r", "c", tool).is_some(), "{tool:?}");
        }
        assert_eq!(call("", "c", "t").unwrap(), "the run id is empty");
        assert_eq!(call("r", " ", "t").unwrap(), "the call id is empty");
        assert!(call("r\n", "c", "t").unwrap().contains("control character"));
        let long = "x".repeat(10_000);
        let problem = call("r", "c", &format!("{long} ")).unwrap();
        assert!(problem.len() < 200, "{problem}");
    }

    #[test]
    fn calls_from_requesters_or_tenants_that_are_no_ids_are_refused() {
        let call = || crate::call::ToolCall::new("r", "c", "t", serde_json::json!({}));
        assert_eq!(
            call_problem(&call().with_requester("Bob").with_tenant("ACME")),
            None
        );
        assert_eq!(call_problem(&call().with_requester("ann lee")), None);
        assert_eq!(
            call_problem(&call().with_requester("")).unwrap(),
            "the requester is refused: the id is empty"
        );
        assert!(
            call_problem(&call().with_requester("bob\u{200b}"))
                .unwrap()
                .starts_with("the requester is refused: the id `bob\\u{200b}` has")
        );
        assert!(
            call_problem(&call().with_tenant("\u{430}cme"))
                .unwrap()
                .starts_with("the tenant is refused: the id `\u{430}cme` mixes")
        );
        assert!(call_problem(&call().with_tenant(" acme")).is_some());
    }

    #[test]
    fn rule_ids_accept_the_documented_characters_only() {
        assert!(RuleId::new("refunds-large.v2:eu_1").is_ok());
        assert!(RuleId::new("").is_err());
        assert!(RuleId::new("has space").is_err());
        assert!(RuleId::new("check:mine").is_err());
        assert!(TierName::new("high").is_ok());
        assert!(TierName::new("hi/gh").is_err());
        assert!(RoleName::new("finance-lead.eu:2_a").is_ok());
        assert!(RoleName::new("").is_err());
        assert!(RoleName::new("cfo!").is_err());
        assert!(RoleName::new("a".repeat(129)).is_err());
    }

    #[test]
    fn ttls_are_whole_seconds_up_to_thirty_days() {
        assert_eq!(TtlSeconds::new(1).unwrap().seconds(), 1);
        assert_eq!(TtlSeconds::new(2_592_000).unwrap().seconds(), 2_592_000);
        assert!(TtlSeconds::new(0).is_err());
        assert!(TtlSeconds::new(2_592_001).is_err());
        assert!(serde_yaml::from_str::<TtlSeconds>("1.5").is_err());
        assert!(serde_yaml::from_str::<TtlSeconds>("-3").is_err());
        assert!(serde_yaml::from_str::<TtlSeconds>("5m").is_err());
        assert_eq!(
            serde_yaml::from_str::<TtlSeconds>("60").unwrap().seconds(),
            60
        );
    }
}
