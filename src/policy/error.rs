//! [`PolicyError`]: everything that can be wrong with a policy config, found when it loads.

use std::fmt;

use thiserror::Error;

/// Why a policy config could not be loaded.
///
/// Every problem with a config is found when it loads, never while a call is evaluated.
/// Errors from YAML name the field as a path (`rules[1].tier`) and its line and column;
/// errors from a config built in code name the field without a line.
///
/// ```
/// use approval_gate::{Policy, PolicyError};
///
/// let yaml = "rules:\n  - id: r\n    tool: db.write\n    effect: approval_required\n    tier: critcal\n";
/// let err = Policy::from_yaml_str(yaml).unwrap_err();
/// assert_eq!(err.field(), Some("rules[0].tier"));
/// assert_eq!(err.line(), Some(5));
/// assert!(err.to_string().contains("unknown tier `critcal`"));
/// ```
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// A value in a YAML config is wrong.
    #[error("invalid policy config at line {line} column {column}: {}", FieldMessage(.field, .message))]
    Invalid {
        /// Where, as a path from the top of the config: `rules[1].tier`, `approvals.ttl_seconds`.
        field: String,
        /// The line, counting from 1.
        line: usize,
        /// The column, counting from 1.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// A value in a config built in code (or given to a constructor) is wrong.
    #[error("invalid policy config: {}", FieldMessage(.field, .message))]
    InvalidConfig {
        /// Where, as a path from the top of the config; empty when a constructor of a single
        /// value refused it.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The text is not YAML at all (or holds more than one document, or expands aliases
    /// beyond the parser's limit). The message gives the parser's reason, such as `found
    /// character that cannot start any token` or `repetition limit exceeded`.
    #[error(
        "policy config is not valid YAML{}: {}",
        At(*.line, *.column),
        SyntaxReason(.source, *.line, *.column)
    )]
    Syntax {
        /// The line of the problem, counting from 1; 0 when the parser gave none.
        line: usize,
        /// The column of the problem, counting from 1; 0 when the parser gave none.
        column: usize,
        /// The parser's error.
        #[source]
        source: YamlError,
    },
    /// A policy version is not 64 hex digits.
    #[error("`{text}` is not a policy version, expected 64 lowercase hex digits")]
    InvalidVersion {
        /// The text that was given.
        text: String,
    },
    /// The config nests deeper than its version can hash: more than 512 levels in its
    /// JSON form, which only a config built in code with conditions nested far beyond
    /// what YAML allows can reach. A config's size is not limited.
    #[error("policy config {}", HashLimit(.source))]
    TooLarge {
        /// What the hashing refused.
        #[source]
        source: crate::call::ArgsError,
    },
}

impl PolicyError {
    /// The path of the field at fault, such as `rules[1].tier`, when the error names one.
    pub fn field(&self) -> Option<&str> {
        match self {
            PolicyError::Invalid { field, .. } | PolicyError::InvalidConfig { field, .. } => {
                Some(field)
            }
            _ => None,
        }
    }

    /// The line of the problem in the YAML text, counting from 1, when known.
    pub fn line(&self) -> Option<usize> {
        match self {
            PolicyError::Invalid { line, .. } => Some(*line),
            PolicyError::Syntax { line, .. } if *line > 0 => Some(*line),
            _ => None,
        }
    }

    /// What is wrong with the field, without the field and line.
    pub fn message(&self) -> Option<&str> {
        match self {
            PolicyError::Invalid { message, .. } | PolicyError::InvalidConfig { message, .. } => {
                Some(message)
            }
            _ => None,
        }
    }

    /// A programmatic config error at `field`.
    pub(crate) fn config(field: impl Into<String>, message: impl Into<String>) -> PolicyError {
        PolicyError::InvalidConfig {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The same error placed under `field`: used by the builder, which knows where a value
    /// it converted belongs.
    pub(crate) fn at_field(self, field: impl Into<String>) -> PolicyError {
        match self {
            PolicyError::InvalidConfig { message, .. } => PolicyError::InvalidConfig {
                field: field.into(),
                message,
            },
            other => other,
        }
    }

    /// An error from the YAML parser itself (the first pass, which reads no types).
    pub(crate) fn syntax(source: serde_yaml::Error) -> PolicyError {
        let (line, column) = source.location().map_or((0, 0), |l| (l.line(), l.column()));
        PolicyError::Syntax {
            line,
            column,
            source: YamlError(source),
        }
    }

    /// An error from deserializing the config, split into field, line and message.
    ///
    /// serde_yaml 0.9 gives the line and column through `location()` but the field path only
    /// inside its `Display`, which is `{path}: {message} at line {l} column {c}` (the path
    /// left out at the top level, the position left out at line 1 column 1). The path is
    /// made of config keys, tier names and rule indices, none of which can hold `": "` or a
    /// space, so the first `": "` after a run of path characters ends it. The text of
    /// serde's "unknown/missing/duplicate field `x`" messages adds `x` to the path, so the
    /// field names the key itself.
    pub(crate) fn from_yaml(err: serde_yaml::Error) -> PolicyError {
        let location = err.location().map(|l| (l.line(), l.column()));
        let mut text = err.to_string();
        if let Some((line, column)) = location {
            let suffix = format!(" at line {line} column {column}");
            if text.ends_with(&suffix) {
                text.truncate(text.len() - suffix.len());
            }
        }
        let (mut field, message) = split_path(&text);
        if let Some(key) = named_key(message) {
            if !field.is_empty() {
                field.push('.');
            }
            field.push_str(key);
        }
        let message = message.to_owned();
        match location {
            Some((line, column)) => PolicyError::Invalid {
                field,
                line,
                column,
                message,
            },
            None => PolicyError::InvalidConfig { field, message },
        }
    }
}

/// Splits `rules[0].tier: unknown tier ...` into its path and message.
fn split_path(text: &str) -> (String, &str) {
    if let Some(at) = text.find(": ") {
        let path = &text[..at];
        let is_path = !path.is_empty()
            && path.chars().all(|c| {
                c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-' | '[' | ']' | '?')
            });
        if is_path {
            return (path.to_owned(), &text[at + 2..]);
        }
    }
    (String::new(), text)
}

/// The key named by serde's "unknown field `x`", "missing field `x`" and "duplicate field
/// `x`" messages, and by the loader's "duplicate key `x`".
fn named_key(message: &str) -> Option<&str> {
    [
        "unknown field `",
        "missing field `",
        "duplicate field `",
        "duplicate key `",
    ]
    .iter()
    .find_map(|prefix| message.strip_prefix(prefix))
    .and_then(|rest| rest.split_once('`'))
    .map(|(key, _)| key)
    .filter(|key| !key.is_empty() && !key.contains(char::is_whitespace))
}

struct FieldMessage<'a>(&'a str, &'a str);

impl fmt::Display for FieldMessage<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str(self.1)
        } else {
            write!(f, "{}: {}", self.0, self.1)
        }
    }
}

/// What the YAML parser said of a config that is not YAML: its message, which
/// [`PolicyError::Syntax`] repeats. Opaque, so that the parser behind it can change
/// without changing this crate's API.
pub struct YamlError(serde_yaml::Error);

impl fmt::Debug for YamlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for YamlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for YamlError {}

/// The YAML parser's reason, without the position the message already gives.
struct SyntaxReason<'a>(&'a YamlError, usize, usize);

impl fmt::Display for SyntaxReason<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.0.to_string();
        let at = format!(" at line {} column {}", self.1, self.2);
        match text.find(&at) {
            Some(i) if self.1 > 0 => write!(f, "{}{}", &text[..i], &text[i + at.len()..]),
            _ => f.write_str(&text),
        }
    }
}

/// The limit that hashing a config into its version ran into, in words about the config.
struct HashLimit<'a>(&'a crate::call::ArgsError);

impl fmt::Display for HashLimit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            crate::call::ArgsError::TooDeep { limit } => write!(
                f,
                "nests deeper than the limit of {limit} levels, too deep to hash into its version"
            ),
            crate::call::ArgsError::TooLarge { limit } => write!(
                f,
                "is larger than the limit of {limit} bytes, too large to hash into its version"
            ),
            other => write!(f, "cannot be hashed into its version: {other}"),
        }
    }
}

struct At(usize, usize);

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            Ok(())
        } else {
            write!(f, " at line {} column {}", self.0, self.1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_path_separates_field_from_message() {
        assert_eq!(
            split_path("rules[0].tier: unknown tier `x`"),
            ("rules[0].tier".to_owned(), "unknown tier `x`")
        );
        // A top-level message whose own text holds ": " is not mistaken for a path.
        assert_eq!(
            split_path("invalid type: sequence, expected a map"),
            (String::new(), "invalid type: sequence, expected a map")
        );
    }

    #[test]
    fn serde_field_messages_extend_the_path_with_the_key() {
        assert_eq!(
            named_key("unknown field `toolz`, expected one of"),
            Some("toolz")
        );
        assert_eq!(named_key("missing field `effect`"), Some("effect"));
        assert_eq!(named_key("unknown tier `x`"), None);
    }

    #[test]
    fn messages_read_well_with_and_without_a_field() {
        let e = PolicyError::config("rules[0].tools", "a rule needs at least one tool pattern");
        assert_eq!(
            e.to_string(),
            "invalid policy config: rules[0].tools: a rule needs at least one tool pattern"
        );
        let e = PolicyError::config("", "empty tool pattern");
        assert_eq!(e.to_string(), "invalid policy config: empty tool pattern");
    }
}
