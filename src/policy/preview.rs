//! [`PreviewTemplate`]: what an approver sees of a call, parsed once when the config
//! loads; and the redaction of secret args (`approvals.redact`).

use std::borrow::Cow;
use std::fmt::{self, Write as _};
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::PolicyError;
use super::names::checked_str;
use super::path::{FieldPath, Step, Target, follow, parse_steps};

/// What a redacted value becomes.
pub(crate) const REDACTED: &str = "[redacted]";

/// Puts the approved value back wherever `edit` still holds the placeholder that `shown`
/// (the arguments as people were shown them, secrets redacted) holds at the same place:
/// a person who edits the arguments they were shown never saw the secrets, and leaving
/// a placeholder in place keeps the secret rather than replacing it with the placeholder.
pub(crate) fn restore_redacted(edit: &mut Value, shown: &Value, approved: &Value) {
    match (edit, shown) {
        (edit @ Value::String(_), Value::String(s))
            if s == REDACTED && edit.as_str() == Some(REDACTED) =>
        {
            *edit = approved.clone();
        }
        (Value::Object(edit), Value::Object(shown)) => {
            for (key, value) in edit.iter_mut() {
                if let (Some(s), Some(a)) = (shown.get(key), approved.get(key)) {
                    restore_redacted(value, s, a);
                }
            }
        }
        (Value::Array(edit), Value::Array(shown)) => {
            for (i, value) in edit.iter_mut().enumerate() {
                if let (Some(s), Some(a)) = (shown.get(i), approved.get(i)) {
                    restore_redacted(value, s, a);
                }
            }
        }
        _ => {}
    }
}

/// `value` as compact JSON with every object's keys in sorted (byte) order, as
/// `serde_json` writes a `Value` by default: what a person sees must not depend on whether
/// some other crate in the build switched on `serde_json`'s `preserve_order` (which keeps
/// keys in the order they were inserted). Strings and numbers are written as
/// `serde_json` writes them.
pub(crate) struct Compact<'a>(pub(crate) &'a Value);

impl fmt::Display for Compact<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = serde_json::to_string(&Sorted(self.0)).map_err(|_| fmt::Error)?;
        f.write_str(&text)
    }
}

/// Serializes a `Value` with each object's members sorted by key.
struct Sorted<'a>(&'a Value);

impl Serialize for Sorted<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Array(items) => s.collect_seq(items.iter().map(Sorted)),
            Value::Object(map) => {
                let mut members: Vec<(&String, &Value)> = map.iter().collect();
                // Already sorted without `preserve_order`; a stable sort then only checks.
                members.sort_by(|a, b| a.0.cmp(b.0));
                s.collect_map(members.into_iter().map(|(k, v)| (k, Sorted(v))))
            }
            scalar => scalar.serialize(s),
        }
    }
}

/// What a placeholder whose path a call's args do not have renders as.
pub(crate) const MISSING: &str = "<missing>";

/// A rule's `preview`: text with `{path}` placeholders over the call's args, which the
/// approver sees instead of raw JSON.
///
/// - `{to}`, `{order.id}`, `{items[0]}`, `{items[0].sku}`: a value in the args, by the
///   same path syntax as `args.…` in conditions but without the `args.` prefix. A string
///   renders without quotes, any other value as compact JSON, and a path the call does not
///   have as `<missing>`.
/// - `{{` and `}}`: a literal `{` and `}`.
///
/// The template is parsed when the config loads; an unclosed `{`, a lone `}` or an empty
/// or malformed placeholder is a load error. Rendering (through
/// [`Policy::preview`](crate::policy::Policy::preview), which redacts secrets first) parses
/// nothing. Cheap to clone.
///
/// ```
/// use approval_gate::config::PreviewTemplate;
///
/// let t = PreviewTemplate::new("Send email to {to}: {subject}")?;
/// assert_eq!(t.as_str(), "Send email to {to}: {subject}");
/// assert!(PreviewTemplate::new("{{literal}} braces and {items[0].sku}").is_ok());
/// assert!(PreviewTemplate::new("Send to {to").is_err());
/// # Ok::<(), approval_gate::PolicyError>(())
/// ```
#[derive(Clone)]
pub struct PreviewTemplate(Arc<Parsed>);

struct Parsed {
    source: Box<str>,
    segments: Box<[Segment]>,
}

enum Segment {
    Text(Box<str>),
    Field(Box<[Step]>),
}

impl PreviewTemplate {
    /// Parses a template.
    pub fn new(template: &str) -> Result<PreviewTemplate, PolicyError> {
        Self::parse(template).map_err(|m| PolicyError::config("", m))
    }

    pub(crate) fn parse(template: &str) -> Result<PreviewTemplate, String> {
        let mut segments = Vec::new();
        let mut text = String::new();
        let mut chars = template.char_indices().peekable();
        while let Some((at, c)) = chars.next() {
            match c {
                '{' if chars.next_if(|&(_, n)| n == '{').is_some() => text.push('{'),
                '}' if chars.next_if(|&(_, n)| n == '}').is_some() => text.push('}'),
                '}' => {
                    return Err(format!(
                        "preview template has a `}}` without `{{` at character {}; write `}}}}` for a literal brace",
                        position(template, at)
                    ));
                }
                '{' => {
                    let start = at + 1;
                    let end = loop {
                        match chars.next() {
                            Some((end, '}')) => break end,
                            Some((inner, '{')) => {
                                return Err(format!(
                                    "preview template has a `{{` inside a placeholder at character {}",
                                    position(template, inner)
                                ));
                            }
                            Some(_) => {}
                            None => {
                                return Err(format!(
                                    "preview template has a `{{` without `}}` at character {}; write `{{{{` for a literal brace",
                                    position(template, at)
                                ));
                            }
                        }
                    };
                    let steps = placeholder(&template[start..end])?;
                    if !text.is_empty() {
                        segments.push(Segment::Text(std::mem::take(&mut text).into()));
                    }
                    segments.push(Segment::Field(steps));
                }
                c => text.push(c),
            }
        }
        if !text.is_empty() {
            segments.push(Segment::Text(text.into()));
        }
        Ok(PreviewTemplate(Arc::new(Parsed {
            source: template.into(),
            segments: segments.into(),
        })))
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.0.source
    }

    /// Renders the template over `args` as they are: the caller redacts first.
    pub(crate) fn render(&self, args: &Value) -> String {
        let mut out = String::new();
        for segment in &self.0.segments {
            match segment {
                Segment::Text(text) => out.push_str(text),
                Segment::Field(steps) => match follow(args, steps) {
                    None => out.push_str(MISSING),
                    Some(Value::String(s)) => out.push_str(s),
                    Some(other) => {
                        // Writing to a `String` cannot fail.
                        let _ = write!(out, "{}", Compact(other));
                    }
                },
            }
        }
        out
    }
}

/// The 1-based character position of byte offset `at`, for messages.
fn position(text: &str, at: usize) -> usize {
    text[..at].chars().count() + 1
}

/// Parses the inside of `{…}` into steps into the args.
fn placeholder(inside: &str) -> Result<Box<[Step]>, String> {
    let path = inside.trim();
    let hint = "write a path into the args such as `{to}`, `{order.id}` or `{items[0]}`, or `{{` for a literal brace";
    if path.is_empty() {
        return Err(format!(
            "preview template has an empty placeholder `{{}}`; {hint}"
        ));
    }
    let rest = if path.starts_with('[') {
        Cow::Borrowed(path)
    } else {
        Cow::Owned(format!(".{path}"))
    };
    match parse_steps(path, &rest) {
        Ok(steps) => Ok(steps.into()),
        Err(_) => Err(format!(
            "preview placeholder `{{{path}}}` is not a path into the args; {hint}"
        )),
    }
}

impl PartialEq for PreviewTemplate {
    fn eq(&self, other: &Self) -> bool {
        self.0.source == other.0.source
    }
}

impl Eq for PreviewTemplate {}

impl fmt::Debug for PreviewTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PreviewTemplate({:?})", self.0.source)
    }
}

impl fmt::Display for PreviewTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.source)
    }
}

impl Serialize for PreviewTemplate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.source)
    }
}

impl<'de> Deserialize<'de> for PreviewTemplate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        checked_str(d, "a preview template", PreviewTemplate::parse)
    }
}

/// An `approvals.redact` entry: a path into the args with at least one step.
pub(crate) fn check_redact_path(path: &FieldPath) -> Result<(), String> {
    match path.target() {
        Target::Args(steps) if !steps.is_empty() => Ok(()),
        Target::Args(_) => {
            Err("`args` would redact every argument; name a field such as `args.password`".into())
        }
        _ => Err(format!(
            "`redact` takes paths into the args such as `args.password`, found `{path}`"
        )),
    }
}

pub(crate) fn duplicate_redact_message(path: &str, first: usize) -> String {
    format!("duplicate redact path `{path}`, already listed at redact[{first}]")
}

/// `args` with every path in `redact` that it has replaced by [`REDACTED`]; borrowed
/// when there is nothing to redact.
pub(crate) fn redact<'a>(args: &'a Value, redact: &[FieldPath]) -> Cow<'a, Value> {
    let mut out: Option<Value> = None;
    for path in redact {
        let Target::Args(steps) = path.target() else {
            continue;
        };
        if follow(args, steps).is_none() {
            continue;
        }
        let value = out.get_or_insert_with(|| args.clone());
        if let Some(slot) = follow_mut(value, steps) {
            *slot = Value::String(REDACTED.to_owned());
        }
    }
    match out {
        Some(value) => Cow::Owned(value),
        None => Cow::Borrowed(args),
    }
}

fn follow_mut<'a>(args: &'a mut Value, steps: &[Step]) -> Option<&'a mut Value> {
    let mut at = args;
    for step in steps {
        at = match step {
            Step::Key(key) => at.as_object_mut()?.get_mut(&**key)?,
            Step::Index(i) => at.as_array_mut()?.get_mut(*i)?,
        };
    }
    Some(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(template: &str, args: Value) -> String {
        PreviewTemplate::parse(template).unwrap().render(&args)
    }

    #[test]
    fn placeholders_render_strings_bare_and_the_rest_as_compact_json() {
        let args = json!({
            "to": "bob@example.com",
            "subject": "Q3 numbers",
            "n": 3,
            "ok": true,
            "gone": null,
            "items": [{"sku": "X1", "qty": 2}],
            "order": {"id": 42},
        });
        assert_eq!(
            render("Send email to {to}: {subject}", args.clone()),
            "Send email to bob@example.com: Q3 numbers"
        );
        assert_eq!(
            render("{n} {ok} {gone} {order.id} {items[0].sku}", args.clone()),
            "3 true null 42 X1"
        );
        assert_eq!(render("{items}", args.clone()), r#"[{"qty":2,"sku":"X1"}]"#);
        assert_eq!(render("{ to }", args.clone()), "bob@example.com");
        assert_eq!(
            render("{nope} {items[9]} {to.x}", args.clone()),
            "<missing> <missing> <missing>"
        );
        assert_eq!(render("{[1]}", json!(["a", "b"])), "b");
        assert_eq!(
            render("{{to}} is {to}, }}{{", args),
            "{to} is bob@example.com, }{"
        );
        assert_eq!(render("", json!({})), "");
    }

    #[test]
    fn objects_render_with_sorted_keys_whatever_order_they_were_built_in() {
        // Built in reverse order: with serde_json's `preserve_order` the map keeps it.
        let mut inner = serde_json::Map::new();
        inner.insert("z".into(), json!([{"y": 1, "b": 2.5}]));
        inner.insert("a".into(), json!("x\n\"é"));
        let mut outer = serde_json::Map::new();
        outer.insert("o".into(), Value::Object(inner));
        let args = Value::Object(outer);
        let want = r#"{"a":"x\n\"é","z":[{"b":2.5,"y":1}]}"#;
        assert_eq!(render("{o}", args.clone()), want);
        assert_eq!(Compact(&args).to_string(), format!(r#"{{"o":{want}}}"#));
        // Scalars and arrays are written as serde_json writes them.
        for v in [
            json!(null),
            json!(1.0),
            json!(-0.0),
            json!(1e300),
            json!([1, "é\u{1}"]),
        ] {
            assert_eq!(Compact(&v).to_string(), v.to_string());
        }
    }

    #[test]
    fn template_syntax_errors_say_where_and_how_to_escape() {
        let err = |t: &str| PreviewTemplate::parse(t).unwrap_err();
        let e = err("Send to {to");
        assert!(e.contains("a `{` without `}` at character 9"), "{e}");
        assert!(e.contains("write `{{` for a literal brace"), "{e}");
        let e = err("a } b");
        assert!(e.contains("a `}` without `{` at character 3"), "{e}");
        let e = err("x {}");
        assert!(e.contains("empty placeholder `{}`"), "{e}");
        let e = err("{a{b}}");
        assert!(e.contains("`{` inside a placeholder at character 3"), "{e}");
        for bad in ["{a..b}", "{items[x]}", "{a[}", "{.a}", "{a]}"] {
            let e = err(bad);
            assert!(e.contains("is not a path into the args"), "{bad}: {e}");
        }
        // Positions count characters, not bytes.
        assert!(err("é}").contains("character 2"));
    }

    #[test]
    fn templates_compare_and_serialize_as_written() {
        let t = PreviewTemplate::new("Hi {name}").unwrap();
        assert_eq!(t, PreviewTemplate::new("Hi {name}").unwrap());
        assert_eq!(serde_json::to_string(&t).unwrap(), r#""Hi {name}""#);
        let back: PreviewTemplate = serde_json::from_str(r#""Hi {name}""#).unwrap();
        assert_eq!(back, t);
        assert!(serde_json::from_str::<PreviewTemplate>(r#""Hi {name""#).is_err());
        assert_eq!(format!("{t:?}"), r#"PreviewTemplate("Hi {name}")"#);
    }

    #[test]
    fn redaction_replaces_present_paths_and_skips_absent_ones() {
        let paths: Vec<FieldPath> = [
            "args.password",
            "args.card.number",
            "args.keys[1]",
            "args.nope.x",
        ]
        .iter()
        .map(|p| FieldPath::parse(p).unwrap())
        .collect();
        let args = json!({
            "user": "bob",
            "password": "hunter2",
            "card": {"number": "4111", "exp": "12/30"},
            "keys": ["a", "b"],
        });
        let out = redact(&args, &paths);
        assert_eq!(
            *out,
            json!({
                "user": "bob",
                "password": "[redacted]",
                "card": {"number": "[redacted]", "exp": "12/30"},
                "keys": ["a", "[redacted]"],
            })
        );
        // Nothing to redact: the args are borrowed, not copied.
        let plain = json!({"user": "bob"});
        assert!(matches!(redact(&plain, &paths), Cow::Borrowed(_)));
        assert!(matches!(redact(&json!("text"), &paths), Cow::Borrowed(_)));
    }

    #[test]
    fn only_paths_into_the_args_may_be_redacted() {
        let check = |p: &str| check_redact_path(&FieldPath::parse(p).unwrap());
        assert!(check("args.password").is_ok());
        assert!(check("args.items[0].card").is_ok());
        assert!(check("args").unwrap_err().contains("every argument"));
        assert!(
            check("context.tenant")
                .unwrap_err()
                .contains("paths into the args such as `args.password`, found `context.tenant`")
        );
    }

    #[test]
    fn placeholders_left_in_place_keep_the_approved_secret() {
        let approved = json!({"to": "bob", "api_key": "sk-1", "list": ["a", "s3cret"]});
        let shown = json!({"to": "bob", "api_key": REDACTED, "list": ["a", REDACTED]});
        let mut edit = json!({"to": "eve", "api_key": REDACTED, "list": ["b", REDACTED]});
        restore_redacted(&mut edit, &shown, &approved);
        assert_eq!(
            edit,
            json!({"to": "eve", "api_key": "sk-1", "list": ["b", "s3cret"]})
        );

        // A new value typed in is kept; a placeholder where nothing was redacted stays
        // what was typed.
        let mut edit = json!({"to": REDACTED, "api_key": "sk-2"});
        restore_redacted(&mut edit, &shown, &approved);
        assert_eq!(edit, json!({"to": REDACTED, "api_key": "sk-2"}));
    }
}
