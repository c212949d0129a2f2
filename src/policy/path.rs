//! [`FieldPath`]: what a condition looks at, parsed once when the config loads.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::PolicyError;
use super::names::checked_str;

/// The context fields a condition may name, with the `ToolCall` getter each reads.
const CONTEXT_FIELDS: [&str; 7] = [
    "context.roles",
    "context.tenant",
    "context.mode",
    "context.requested_by",
    "context.run_id",
    "tool",
    "tool_info",
];

/// What a condition looks at in a call.
///
/// - `args`, `args.a.b`, `args.items[0].sku`: a value inside the call's JSON arguments;
///   `.key` steps into an object, `[n]` into an array.
/// - `context.roles` (a list of strings), `context.tenant`, `context.mode`,
///   `context.requested_by`, `context.run_id`: what the host said about the call.
/// - `tool`: the tool's name.
/// - `tool_info`, `tool_info.a.b`: what the tool's server says about the tool
///   ([`ToolCall::with_tool_info`](crate::ToolCall::with_tool_info)), stepped into like
///   `args`; missing when the host gave none.
///
/// ```
/// use approval_gate::config::FieldPath;
///
/// assert!(FieldPath::new("args.items[0].sku").is_ok());
/// assert!(FieldPath::new("context.roles").is_ok());
/// assert!(FieldPath::new("ctx.roles").is_err());
/// # Ok::<(), approval_gate::PolicyError>(())
/// ```
#[derive(Clone)]
pub struct FieldPath {
    source: Box<str>,
    target: Target,
}

/// The parsed form of a path.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    Args(Box<[Step]>),
    Roles,
    Tenant,
    Mode,
    RequestedBy,
    RunId,
    Tool,
    ToolInfo(Box<[Step]>),
}

/// One step into the JSON arguments.
#[derive(Debug, Clone)]
pub(crate) enum Step {
    Key(Box<str>),
    Index(usize),
}

/// The kind of value a path gives, when the config can know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// Any JSON value from the arguments.
    Json,
    /// A single string from the context.
    Text,
    /// A list of strings (`context.roles`).
    Texts,
}

impl FieldPath {
    /// Parses a path.
    pub fn new(path: &str) -> Result<FieldPath, PolicyError> {
        Self::parse(path).map_err(|m| PolicyError::config("", m))
    }

    pub(crate) fn parse(path: &str) -> Result<FieldPath, String> {
        let target = match path {
            "context.roles" => Target::Roles,
            "context.tenant" => Target::Tenant,
            "context.mode" => Target::Mode,
            "context.requested_by" => Target::RequestedBy,
            "context.run_id" => Target::RunId,
            "tool" => Target::Tool,
            _ => match path.strip_prefix("args") {
                Some(rest) if rest.is_empty() || rest.starts_with(['.', '[']) => {
                    Target::Args(parse_steps(path, rest)?.into_boxed_slice())
                }
                _ if path.starts_with("tool_info") => {
                    let rest = &path["tool_info".len()..];
                    if !(rest.is_empty() || rest.starts_with(['.', '['])) {
                        return Err(format!(
                            "unknown field path `{path}`, expected `tool_info` or `tool_info.NAME...`"
                        ));
                    }
                    Target::ToolInfo(parse_steps(path, rest)?.into_boxed_slice())
                }
                _ => {
                    let known = CONTEXT_FIELDS.map(|f| format!("`{f}`")).join(", ");
                    return Err(format!(
                        "unknown field path `{path}`, expected `args` or `args.NAME...` or one of {known}"
                    ));
                }
            },
        };
        Ok(FieldPath {
            source: path.into(),
            target,
        })
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    pub(crate) fn shape(&self) -> Shape {
        match self.target {
            Target::Args(_) | Target::ToolInfo(_) => Shape::Json,
            Target::Roles => Shape::Texts,
            _ => Shape::Text,
        }
    }

    pub(crate) fn target(&self) -> &Target {
        &self.target
    }
}

/// Parses `.a.b[0][1].c` after `args`.
pub(crate) fn parse_steps(path: &str, mut rest: &str) -> Result<Vec<Step>, String> {
    let mut steps = Vec::new();
    while let Some(c) = rest.chars().next() {
        if c == '.' {
            let after = &rest[1..];
            let end = after.find(['.', '[', ']']).unwrap_or(after.len());
            if end == 0 {
                return Err(format!(
                    "field path `{path}` has an empty key; write `args.a.b`"
                ));
            }
            steps.push(Step::Key(after[..end].into()));
            rest = &after[end..];
        } else if c == '[' {
            let Some(close) = rest.find(']') else {
                return Err(format!("field path `{path}` has a `[` without `]`"));
            };
            let digits = &rest[1..close];
            let index = digits
                .parse::<usize>()
                .ok()
                .filter(|_| digits.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| {
                    format!("field path `{path}` has `[{digits}]`; an index is a number like `[0]`")
                })?;
            steps.push(Step::Index(index));
            rest = &rest[close + 1..];
        } else {
            return Err(format!(
                "field path `{path}` has `{c}` where `.` or `[` should be"
            ));
        }
    }
    Ok(steps)
}

/// Follows `steps` into `args`; `None` when a step finds nothing.
pub(crate) fn follow<'a>(args: &'a Value, steps: &[Step]) -> Option<&'a Value> {
    let mut at = args;
    for step in steps {
        at = match step {
            Step::Key(key) => at.as_object()?.get(&**key)?,
            Step::Index(i) => at.as_array()?.get(*i)?,
        };
    }
    Some(at)
}

impl PartialEq for FieldPath {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for FieldPath {}

impl fmt::Debug for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FieldPath({:?})", self.source)
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl Serialize for FieldPath {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.source)
    }
}

impl<'de> Deserialize<'de> for FieldPath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        checked_str(d, "a field path such as `args.amount`", FieldPath::parse)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn get<'a>(path: &str, args: &'a Value) -> Option<&'a Value> {
        match FieldPath::parse(path).unwrap().target {
            Target::Args(steps) => follow(args, &steps),
            _ => panic!("not an args path"),
        }
    }

    #[test]
    fn args_paths_reach_nested_objects_and_arrays() {
        let args = json!({"a": {"b": [{"c": 7}, {"c": 8}]}, "m": [[1, 2], [3]]});
        assert_eq!(get("args.a.b[1].c", &args), Some(&json!(8)));
        assert_eq!(get("args.m[0][1]", &args), Some(&json!(2)));
        assert_eq!(get("args", &args), Some(&args));
        assert_eq!(get("args.a.b[5].c", &args), None);
        assert_eq!(get("args.a.x", &args), None);
        // A key step into an array, or an index into an object, finds nothing.
        assert_eq!(get("args.m.x", &args), None);
        assert_eq!(get("args.a[0]", &args), None);
    }

    #[test]
    fn bad_paths_are_refused_with_a_reason() {
        for bad in [
            "",
            "ctx.roles",
            "argsx",
            "args.",
            "args..a",
            "args.a[",
            "args.a[x]",
            "args.a[-1]",
            "args.a]",
            "context.user",
        ] {
            assert!(FieldPath::parse(bad).is_err(), "{bad} should be refused");
        }
        let msg = FieldPath::parse("context.user").err().unwrap();
        assert!(msg.contains("`context.roles`"), "{msg}");
    }

    #[test]
    fn context_paths_have_known_shapes() {
        assert_eq!(
            FieldPath::parse("context.roles").unwrap().shape(),
            Shape::Texts
        );
        assert_eq!(FieldPath::parse("tool").unwrap().shape(), Shape::Text);
        assert_eq!(FieldPath::parse("args.x").unwrap().shape(), Shape::Json);
    }
}
