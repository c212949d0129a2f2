//! Evaluating a [`Condition`] against a call, without allocating.
//!
//! A value the condition cannot compare (`gt` on a string, `matches` on a number) is a
//! [`Mismatch`], which the policy turns into a deny.

use std::cmp::Ordering;
use std::fmt;

use serde_json::{Number, Value};

use super::condition::{Condition, Op};
use super::path::{FieldPath, Target, follow};
use crate::call::ToolCall;

/// The value a field path finds in a call.
#[derive(Debug, Clone, Copy)]
enum Found<'a> {
    /// Not there, or `null`.
    Missing,
    Json(&'a Value),
    Text(&'a str),
    Texts(&'a [String]),
}

impl Found<'_> {
    fn kind(self) -> &'static str {
        match self {
            Found::Missing => "nothing",
            Found::Json(Value::Null) => "null",
            Found::Json(Value::Bool(_)) => "a boolean",
            Found::Json(Value::Number(_)) => "a number",
            Found::Json(Value::String(_)) | Found::Text(_) => "a string",
            Found::Json(Value::Array(_)) => "a list",
            Found::Json(Value::Object(_)) => "an object",
            Found::Texts(_) => "a list of strings",
        }
    }
}

/// A condition met a value of a type it cannot test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Mismatch<'a> {
    op: &'static str,
    field: &'a FieldPath,
    expected: &'static str,
    found: &'static str,
}

impl fmt::Display for Mismatch<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` on `{}` expects {}, found {}",
            self.op, self.field, self.expected, self.found
        )
    }
}

impl Condition {
    /// Whether the condition holds for `call`; short-circuits left to right, so only the
    /// tests it reaches can mismatch.
    pub(crate) fn eval<'a>(&'a self, call: &ToolCall) -> Result<bool, Mismatch<'a>> {
        match self {
            Condition::All(list) => {
                for c in list {
                    if !c.eval(call)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            Condition::Any(list) => {
                for c in list {
                    if c.eval(call)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Condition::Not(c) => Ok(!c.eval(call)?),
            Condition::Field { field, op } => test(op, field, find(field, call)),
        }
    }
}

fn find<'a>(field: &FieldPath, call: &'a ToolCall) -> Found<'a> {
    let text = |s: Option<&'a str>| s.map_or(Found::Missing, Found::Text);
    match field.target() {
        Target::Args(steps) => match follow(call.args(), steps) {
            None | Some(Value::Null) => Found::Missing,
            Some(v) => Found::Json(v),
        },
        Target::Roles => Found::Texts(call.roles()),
        Target::Tenant => text(call.tenant()),
        Target::Mode => text(call.mode()),
        Target::RequestedBy => text(call.requester()),
        Target::RunId => Found::Text(call.run_id()),
        Target::Tool => Found::Text(call.tool()),
        Target::ToolInfo(steps) => match call.tool_info().and_then(|info| follow(info, steps)) {
            None | Some(Value::Null) => Found::Missing,
            Some(v) => Found::Json(v),
        },
    }
}

fn test<'a>(op: &'a Op, field: &'a FieldPath, found: Found<'_>) -> Result<bool, Mismatch<'a>> {
    let mismatch = |expected: &'static str| Mismatch {
        op: op.name(),
        field,
        expected,
        found: found.kind(),
    };
    match op {
        Op::Exists(want) => return Ok(!matches!(found, Found::Missing) == *want),
        Op::Ne(v) => return Ok(!equals(found, v)),
        _ if matches!(found, Found::Missing) => return Ok(false),
        _ => {}
    }
    match op {
        Op::Eq(v) => Ok(equals(found, v)),
        Op::In(list) => Ok(list.iter().any(|v| equals(found, v))
            || match found {
                Found::Json(Value::Array(items)) => items
                    .iter()
                    .any(|item| list.iter().any(|v| values_equal(item, v))),
                Found::Texts(items) => items
                    .iter()
                    .any(|item| list.iter().any(|v| v.as_str() == Some(item))),
                _ => false,
            }),
        Op::Gt(n) | Op::Gte(n) | Op::Lt(n) | Op::Lte(n) => {
            let Found::Json(Value::Number(x)) = found else {
                return Err(mismatch("a number"));
            };
            let Some(ord) = cmp_numbers(x, n) else {
                return Err(mismatch("a number"));
            };
            Ok(match op {
                Op::Gt(_) => ord == Ordering::Greater,
                Op::Gte(_) => ord != Ordering::Less,
                Op::Lt(_) => ord == Ordering::Less,
                _ => ord != Ordering::Greater,
            })
        }
        Op::Matches(pattern) => match found {
            Found::Json(Value::String(s)) => Ok(pattern.is_match(s)),
            Found::Text(s) => Ok(pattern.is_match(s)),
            _ => Err(mismatch("a string")),
        },
        Op::Contains(v) => match found {
            Found::Json(Value::Array(items)) => Ok(items.iter().any(|item| values_equal(item, v))),
            Found::Texts(items) => Ok(v.as_str().is_some_and(|v| items.iter().any(|i| i == v))),
            Found::Json(Value::String(s)) => contains_text(s, v, mismatch),
            Found::Text(s) => contains_text(s, v, mismatch),
            _ => Err(mismatch("a list or a string")),
        },
        // Handled above.
        Op::Exists(_) | Op::Ne(_) => Ok(false),
    }
}

/// `contains` on a string: a substring test, for a string to find.
fn contains_text<'a>(
    text: &str,
    needle: &Value,
    mismatch: impl FnOnce(&'static str) -> Mismatch<'a>,
) -> Result<bool, Mismatch<'a>> {
    match needle.as_str() {
        Some(needle) => Ok(text.contains(needle)),
        None => Err(mismatch("a list, since the value to find is not a string")),
    }
}

/// Equality of a found value with a config value; numbers by value.
fn equals(found: Found<'_>, v: &Value) -> bool {
    match found {
        Found::Missing => false,
        Found::Json(x) => values_equal(x, v),
        Found::Text(s) => v.as_str() == Some(s),
        Found::Texts(items) => v.as_array().is_some_and(|list| {
            list.len() == items.len() && list.iter().zip(items).all(|(a, b)| a.as_str() == Some(b))
        }),
    }
}

/// JSON equality in which numbers compare by value (`1 == 1.0`).
pub(crate) fn values_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => cmp_numbers(x, y) == Some(Ordering::Equal),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| values_equal(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, a)| y.get(k).is_some_and(|b| values_equal(a, b)))
        }
        _ => a == b,
    }
}

/// Compares two JSON numbers by value: integers exactly, anything with a fraction as `f64`.
pub(crate) fn cmp_numbers(a: &Number, b: &Number) -> Option<Ordering> {
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        return Some(x.cmp(&y));
    }
    if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
        return Some(x.cmp(&y));
    }
    if a.is_f64() || b.is_f64() {
        return a.as_f64()?.partial_cmp(&b.as_f64()?);
    }
    // One is a negative i64, the other a u64 above i64::MAX.
    Some(if a.as_i64().is_some() {
        Ordering::Less
    } else {
        Ordering::Greater
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn call(args: Value) -> ToolCall {
        ToolCall::new("run-1", "call-1", "payments.refund", args)
            .with_requester("alice")
            .with_tenant("acme")
            .with_role("support")
            .with_role("finance")
            .with_mode("auto")
    }

    fn holds(yaml: &str, call: &ToolCall) -> Result<bool, String> {
        let c: Condition = serde_yaml::from_str(yaml).unwrap();
        c.eval(call).map_err(|m| m.to_string())
    }

    #[test]
    fn every_operator_on_present_fields() {
        let c = call(json!({
            "amount": 150, "price": 9.5, "table": "users", "to": "bob@example.com",
            "tags": ["a", "b"], "order": {"items": [{"sku": "X1", "qty": 2}]}, "flag": true
        }));
        let cases = [
            ("{field: args.amount, eq: 150}", true),
            ("{field: args.amount, eq: 150.0}", true),
            ("{field: args.amount, ne: 150}", false),
            ("{field: args.table, in: [users, payments]}", true),
            ("{field: args.table, in: [orders]}", false),
            ("{field: args.tags, in: [b, z]}", true),
            ("{field: args.amount, gt: 100}", true),
            ("{field: args.amount, gt: 150}", false),
            ("{field: args.amount, gte: 150}", true),
            ("{field: args.price, lt: 10}", true),
            ("{field: args.price, lte: 9.5}", true),
            ("{field: args.price, lte: 9}", false),
            ("{field: args.to, matches: '@example\\.com$'}", true),
            ("{field: args.to, matches: '^admin@'}", false),
            ("{field: args.to, exists: true}", true),
            ("{field: args.to, exists: false}", false),
            ("{field: args.tags, contains: a}", true),
            ("{field: args.tags, contains: z}", false),
            ("{field: args.to, contains: example}", true),
            ("{field: args.flag, eq: true}", true),
            ("{field: 'args.order.items[0].sku', eq: X1}", true),
            ("{field: 'args.order.items[0].qty', gte: 2}", true),
            (
                "{field: args.order, eq: {items: [{sku: X1, qty: 2.0}]}}",
                true,
            ),
        ];
        for (yaml, want) in cases {
            assert_eq!(holds(yaml, &c), Ok(want), "{yaml}");
        }
    }

    #[test]
    fn context_fields_are_tested_like_args() {
        let c = call(json!({}));
        let cases = [
            ("{field: context.roles, contains: finance}", true),
            ("{field: context.roles, contains: admin}", false),
            ("{field: context.roles, in: [admin, finance]}", true),
            ("{field: context.roles, eq: [support, finance]}", true),
            ("{field: context.tenant, eq: acme}", true),
            ("{field: context.tenant, matches: '^ac'}", true),
            ("{field: context.mode, in: [auto, plan]}", true),
            ("{field: context.requested_by, ne: alice}", false),
            ("{field: context.run_id, eq: run-1}", true),
            ("{field: tool, matches: '^payments\\.'}", true),
        ];
        for (yaml, want) in cases {
            assert_eq!(holds(yaml, &c), Ok(want), "{yaml}");
        }
        let bare = ToolCall::new("r", "c", "t", json!({}));
        assert_eq!(
            holds("{field: context.tenant, exists: false}", &bare),
            Ok(true)
        );
        assert_eq!(holds("{field: context.tenant, eq: acme}", &bare), Ok(false));
        assert_eq!(
            holds("{field: context.roles, contains: admin}", &bare),
            Ok(false)
        );
    }

    #[test]
    fn tool_info_is_tested_like_args_and_is_missing_when_not_given() {
        let info = json!({"server": "files", "annotations": {"destructiveHint": true}});
        let c = call(json!({})).with_tool_info(info);
        let cases = [
            ("{field: tool_info.server, eq: files}", true),
            (
                "{field: tool_info.annotations.destructiveHint, eq: true}",
                true,
            ),
            (
                "{field: tool_info.annotations.readOnlyHint, eq: true}",
                false,
            ),
            (
                "{field: tool_info.annotations.readOnlyHint, exists: false}",
                true,
            ),
            ("{field: tool_info, exists: true}", true),
        ];
        for (yaml, want) in cases {
            assert_eq!(holds(yaml, &c), Ok(want), "{yaml}");
        }
        // A server that says nothing: the condition does not hold, and `ne` does.
        let bare = call(json!({}));
        for (yaml, want) in [
            (
                "{field: tool_info.annotations.destructiveHint, eq: true}",
                false,
            ),
            (
                "{field: tool_info.annotations.destructiveHint, ne: true}",
                true,
            ),
            ("{field: tool_info, exists: false}", true),
        ] {
            assert_eq!(holds(yaml, &bare), Ok(want), "{yaml}");
        }
    }

    #[test]
    fn missing_and_null_fields_fail_every_test_but_ne_and_not_exists() {
        let c = call(json!({"gone": null}));
        for field in ["args.nope", "args.gone", "'args.a.b[3]'"] {
            let cases = [
                ("eq: 1", false),
                ("ne: 1", true),
                ("in: [1]", false),
                ("gt: 1", false),
                ("gte: 1", false),
                ("lt: 1", false),
                ("lte: 1", false),
                ("matches: x", false),
                ("contains: x", false),
                ("exists: true", false),
                ("exists: false", true),
            ];
            for (op, want) in cases {
                let yaml = format!("{{field: {field}, {op}}}");
                assert_eq!(holds(&yaml, &c), Ok(want), "{yaml}");
            }
        }
    }

    #[test]
    fn type_mismatches_are_reported_not_guessed() {
        let c = call(json!({"amount": "150", "n": 5}));
        assert_eq!(
            holds("{field: args.amount, gt: 100}", &c),
            Err("`gt` on `args.amount` expects a number, found a string".into())
        );
        assert!(holds("{field: args.n, matches: '5'}", &c).is_err());
        assert!(holds("{field: args.n, contains: 5}", &c).is_err());
        assert!(holds("{field: args.amount, contains: 5}", &c).is_err());
        // eq across types is simply false.
        assert_eq!(holds("{field: args.amount, eq: 150}", &c), Ok(false));
    }

    #[test]
    fn all_any_not_combine_and_short_circuit() {
        let c = call(json!({"amount": 150, "s": "x"}));
        assert_eq!(
            holds(
                "[{field: args.amount, gt: 100}, {field: args.s, eq: x}]",
                &c
            ),
            Ok(true)
        );
        assert_eq!(
            holds(
                "{any: [{field: args.amount, lt: 100}, {field: args.s, eq: x}]}",
                &c
            ),
            Ok(true)
        );
        assert_eq!(holds("{not: {field: args.amount, gt: 100}}", &c), Ok(false));
        // The mismatch after a deciding branch is never reached.
        assert_eq!(
            holds(
                "{any: [{field: args.s, eq: x}, {field: args.s, gt: 1}]}",
                &c
            ),
            Ok(true)
        );
        assert!(
            holds(
                "{any: [{field: args.s, eq: y}, {field: args.s, gt: 1}]}",
                &c
            )
            .is_err()
        );
    }

    #[test]
    fn numbers_compare_exactly_across_representations() {
        let n = |v: Value| match v {
            Value::Number(n) => n,
            _ => unreachable!(),
        };
        assert_eq!(
            cmp_numbers(&n(json!(-1)), &n(json!(u64::MAX))),
            Some(Ordering::Less)
        );
        assert_eq!(
            cmp_numbers(&n(json!(u64::MAX)), &n(json!(-1))),
            Some(Ordering::Greater)
        );
        assert_eq!(
            cmp_numbers(&n(json!(2)), &n(json!(1.5))),
            Some(Ordering::Greater)
        );
        assert_eq!(
            cmp_numbers(
                &n(json!(9007199254740993u64)),
                &n(json!(9007199254740992u64))
            ),
            Some(Ordering::Greater)
        );
    }
}
