//! [`RegexPattern`]: a regular expression from the config, compiled when it loads.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::PolicyError;
use super::names::checked_str;

/// A regular expression in the syntax of the `regex` crate, compiled when the config loads.
///
/// It matches anywhere in the text, as `regex::Regex::is_match` does: anchor it with `^` and
/// `$` to match a whole value.
///
/// ```
/// use approval_gate::config::RegexPattern;
///
/// let p = RegexPattern::new(r"@example\.com$")?;
/// assert!(p.is_match("bob@example.com"));
/// assert!(RegexPattern::new("(").is_err());
/// # Ok::<(), approval_gate::PolicyError>(())
/// ```
#[derive(Clone)]
pub struct RegexPattern {
    source: Box<str>,
    regex: regex::Regex,
}

impl RegexPattern {
    /// Compiles `pattern`.
    pub fn new(pattern: &str) -> Result<RegexPattern, PolicyError> {
        Self::compile(pattern).map_err(|m| PolicyError::config("", m))
    }

    fn compile(pattern: &str) -> Result<RegexPattern, String> {
        match regex::Regex::new(pattern) {
            Ok(regex) => Ok(RegexPattern {
                source: pattern.into(),
                regex,
            }),
            Err(e) => Err(format!("invalid regex `{pattern}`: {}", problem(&e))),
        }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// True when the pattern matches somewhere in `text`.
    pub fn is_match(&self, text: &str) -> bool {
        self.regex.is_match(text)
    }
}

/// The one line of a regex error that says what is wrong (its `Display` draws a caret
/// diagram over several lines).
fn problem(e: &regex::Error) -> String {
    match e {
        regex::Error::Syntax(text) => text
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .map(|l| l.trim().trim_start_matches("error: ").to_owned())
            .unwrap_or_else(|| text.clone()),
        regex::Error::CompiledTooBig(limit) => {
            format!("the compiled regex is larger than the limit of {limit} bytes")
        }
        other => other.to_string(),
    }
}

impl PartialEq for RegexPattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for RegexPattern {}

impl fmt::Debug for RegexPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RegexPattern({:?})", self.source)
    }
}

impl fmt::Display for RegexPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl Serialize for RegexPattern {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.source)
    }
}

impl<'de> Deserialize<'de> for RegexPattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        checked_str(d, "a regular expression", RegexPattern::compile)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_regexes_say_what_is_wrong_on_one_line() {
        let e = RegexPattern::compile("(ab").err().unwrap();
        assert_eq!(e, "invalid regex `(ab`: unclosed group");
        assert!(!e.contains('\n'));
    }

    #[test]
    fn patterns_match_anywhere_unless_anchored() {
        let p = RegexPattern::new("prod").unwrap();
        assert!(p.is_match("eu-prod-1"));
        let anchored = RegexPattern::new("^prod$").unwrap();
        assert!(!anchored.is_match("eu-prod-1"));
        assert_eq!(p, RegexPattern::new("prod").unwrap());
    }
}
