//! [`ToolPattern`]: an exact tool name or a glob where `*` matches any run of characters.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use super::PolicyError;
use super::names::checked_str;

/// A pattern over tool names: an exact name (`email.send`) or a glob in which `*` matches
/// any run of characters, dots included (`db.*`, `*.read`, `*`). No other character is
/// special.
///
/// ```
/// use approval_gate::config::ToolPattern;
///
/// let p = ToolPattern::new("db.*")?;
/// assert!(p.matches("db.write"));
/// assert!(p.matches("db.admin.drop"));
/// assert!(!p.matches("dbx.write"));
/// assert!(ToolPattern::new("*.read")?.matches("files.read"));
/// assert!(ToolPattern::new("").is_err());
/// # Ok::<(), approval_gate::PolicyError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ToolPattern(String);

impl ToolPattern {
    /// Checks and wraps a pattern.
    pub fn new(pattern: impl Into<String>) -> Result<ToolPattern, PolicyError> {
        let pattern = pattern.into();
        Self::check(&pattern).map_err(|m| PolicyError::config("", m))?;
        Ok(ToolPattern(pattern))
    }

    fn check(s: &str) -> Result<(), String> {
        if s.is_empty() {
            return Err("empty tool pattern; write a tool name, or `*` for every tool".into());
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "tool pattern `{}` has whitespace or control characters",
                s.escape_debug()
            ));
        }
        Ok(())
    }

    /// A pattern written in this crate's own source, known to be valid.
    pub(crate) fn known(pattern: &'static str) -> ToolPattern {
        debug_assert!(Self::check(pattern).is_ok(), "{pattern}");
        ToolPattern(pattern.to_owned())
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True when the pattern has a `*`.
    pub fn is_glob(&self) -> bool {
        self.0.contains('*')
    }

    /// True when `tool` matches the pattern.
    pub fn matches(&self, tool: &str) -> bool {
        glob_matches(&self.0, tool)
    }
}

impl<'de> Deserialize<'de> for ToolPattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        checked_str(d, "a tool name or pattern", |s| {
            Self::check(s).map(|()| ToolPattern(s.to_owned()))
        })
    }
}

impl fmt::Display for ToolPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Matches `text` against a glob whose only metacharacter is `*`.
///
/// Written here rather than taken from a glob crate because it is a few lines: the text must
/// start with the part before the first `*` and end with the part after the last, and the
/// parts in between must appear in order in what is left. Taking the leftmost place for
/// each middle part is always right when `*` is the only wildcard.
pub(crate) fn glob_matches(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let Some(last) = parts.next_back() else {
        // No `*` at all: an exact name.
        return rest.is_empty();
    };
    for middle in parts {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_any_run_of_characters_including_dots() {
        assert!(glob_matches("email.send", "email.send"));
        assert!(!glob_matches("email.send", "email.sendx"));
        assert!(glob_matches("db.*", "db."));
        assert!(glob_matches("db.*", "db.a.b"));
        assert!(!glob_matches("db.*", "db"));
        assert!(glob_matches("*.read", "files.read"));
        assert!(!glob_matches("*.read", "files.reader"));
        assert!(glob_matches("*", ""));
        assert!(glob_matches("*", "anything.at.all"));
        assert!(glob_matches("a*b*c", "abc"));
        assert!(glob_matches("a*b*c", "a-b-b-c"));
        assert!(!glob_matches("a*b*c", "acb"));
        // The suffix may not reuse characters the prefix took.
        assert!(!glob_matches("ab*ba", "aba"));
        assert!(glob_matches("ab*ba", "abba"));
        assert!(glob_matches("**", "x"));
        // Other glob metacharacters are plain characters.
        assert!(glob_matches("a?c", "a?c"));
        assert!(!glob_matches("a?c", "abc"));
    }

    #[test]
    fn empty_and_whitespace_patterns_are_refused() {
        assert!(ToolPattern::new("").is_err());
        assert!(ToolPattern::new("email send").is_err());
        assert!(ToolPattern::new("db.*").unwrap().is_glob());
    }
}
