//! [`Condition`] and [`Op`]: when a rule applies, as written in the config.
//!
//! Conditions deserialize through their own visitors so every mistake is raised at the
//! value it is about: an unknown operator at its key, `in: []` at the list, a bad regex at
//! the pattern, two contradicting bounds at the `all` that holds them.

use std::cmp::Ordering;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Number, Value};

use super::PolicyError;
use super::eval::cmp_numbers;
use super::path::{FieldPath, Shape};
use super::preview::Compact;
use super::regex_pattern::RegexPattern;

/// When a rule applies: a test on one field of the call, or `all`, `any` or `not` of other
/// conditions.
///
/// In YAML a condition is a map with exactly one form, and a list stands for `all`:
///
/// ```yaml
/// when:
///   all:
///     - { field: args.amount, gt: 100 }
///     - any:
///         - { field: args.table, in: [users, payments] }
///         - { field: context.roles, contains: admin }
///     - not: { field: args.to, matches: '@example\.com$' }
/// ```
///
/// A field that is missing (or `null`) makes every operator false except `ne` (true) and
/// `exists: false` (true).
///
/// ```
/// use approval_gate::{config::{Condition, Op}};
/// use serde_json::json;
///
/// let c = Condition::all([
///     Condition::field("args.amount", Op::Gt(100.into()))?,
///     Condition::field("args.table", Op::In(vec![json!("users"), json!("payments")]))?,
/// ]);
/// let same: Condition = serde_yaml::from_str(
///     "[{field: args.amount, gt: 100}, {field: args.table, in: [users, payments]}]",
/// ).unwrap();
/// assert_eq!(c, same);
/// # Ok::<(), approval_gate::PolicyError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// `all: [..]` (or a bare list): every condition holds. An empty list always holds.
    All(Vec<Condition>),
    /// `any: [..]`: at least one condition holds. Must not be empty.
    Any(Vec<Condition>),
    /// `not: ..`: the condition does not hold.
    Not(Box<Condition>),
    /// `{ field: PATH, OP: VALUE }`: a test on one field.
    Field {
        /// What the test looks at.
        field: FieldPath,
        /// The test.
        op: Op,
    },
}

/// The test of a field condition. Values in a config are JSON values (YAML scalars, lists
/// and maps); numbers compare by value, so `1` equals `1.0`.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// `eq`: the field equals the value.
    Eq(Value),
    /// `ne`: the field does not equal the value (true when the field is missing).
    Ne(Value),
    /// `in`: the field equals one of the values; for a list field (such as
    /// `context.roles`), some element does. Must not be empty.
    In(Vec<Value>),
    /// `gt`: the field is a number greater than this.
    Gt(Number),
    /// `gte`: the field is a number greater than or equal to this.
    Gte(Number),
    /// `lt`: the field is a number less than this.
    Lt(Number),
    /// `lte`: the field is a number less than or equal to this.
    Lte(Number),
    /// `matches`: the field is a string the regex matches (anywhere, unless anchored).
    Matches(RegexPattern),
    /// `exists`: the field is present and not `null` (`true`), or absent or `null` (`false`).
    Exists(bool),
    /// `contains`: the field is a list holding the value, or a string holding the value
    /// as a substring.
    Contains(Value),
}

/// The operator names, in the order messages list them.
const OP_NAMES: [&str; 10] = [
    "eq", "ne", "in", "gt", "gte", "lt", "lte", "matches", "exists", "contains",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpKind {
    Eq,
    Ne,
    In,
    Gt,
    Gte,
    Lt,
    Lte,
    Matches,
    Exists,
    Contains,
}

impl OpKind {
    fn from_name(name: &str) -> Option<OpKind> {
        Some(match name {
            "eq" => OpKind::Eq,
            "ne" => OpKind::Ne,
            "in" => OpKind::In,
            "gt" => OpKind::Gt,
            "gte" => OpKind::Gte,
            "lt" => OpKind::Lt,
            "lte" => OpKind::Lte,
            "matches" => OpKind::Matches,
            "exists" => OpKind::Exists,
            "contains" => OpKind::Contains,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        OP_NAMES[self as usize]
    }
}

impl Op {
    /// The operator's name in the config: `eq`, `gt`, `matches`, …
    pub fn name(&self) -> &'static str {
        self.kind().name()
    }

    fn kind(&self) -> OpKind {
        match self {
            Op::Eq(_) => OpKind::Eq,
            Op::Ne(_) => OpKind::Ne,
            Op::In(_) => OpKind::In,
            Op::Gt(_) => OpKind::Gt,
            Op::Gte(_) => OpKind::Gte,
            Op::Lt(_) => OpKind::Lt,
            Op::Lte(_) => OpKind::Lte,
            Op::Matches(_) => OpKind::Matches,
            Op::Exists(_) => OpKind::Exists,
            Op::Contains(_) => OpKind::Contains,
        }
    }

    /// A `matches` test; fails when `pattern` is not a valid regex.
    pub fn matches(pattern: &str) -> Result<Op, PolicyError> {
        RegexPattern::new(pattern).map(Op::Matches)
    }

    /// The value the operator is given, as the config writes it.
    fn value(&self) -> Value {
        match self {
            Op::Eq(v) | Op::Ne(v) | Op::Contains(v) => v.clone(),
            Op::In(list) => Value::Array(list.clone()),
            Op::Gt(n) | Op::Gte(n) | Op::Lt(n) | Op::Lte(n) => Value::Number(n.clone()),
            Op::Matches(p) => Value::String(p.as_str().to_owned()),
            Op::Exists(b) => Value::Bool(*b),
        }
    }
}

impl Condition {
    /// A test on `path` (see [`FieldPath`]), checked as the config loader checks it.
    pub fn field(path: &str, op: Op) -> Result<Condition, PolicyError> {
        let field = FieldPath::new(path)?;
        check_op_value(&op).map_err(|m| PolicyError::config(op.name(), m))?;
        check_op_for_field(&field, &op).map_err(|m| PolicyError::config("", m))?;
        Ok(Condition::Field { field, op })
    }

    /// Every condition holds.
    pub fn all(conditions: impl IntoIterator<Item = Condition>) -> Condition {
        Condition::All(conditions.into_iter().collect())
    }

    /// At least one condition holds.
    pub fn any(conditions: impl IntoIterator<Item = Condition>) -> Condition {
        Condition::Any(conditions.into_iter().collect())
    }

    /// The condition does not hold.
    #[allow(clippy::should_implement_trait)]
    pub fn not(condition: Condition) -> Condition {
        Condition::Not(Box::new(condition))
    }

    /// Checks a condition built in code the way the loader checks YAML; the error names
    /// the path below `at` (such as `rules[0].when.all[1].in`).
    pub(crate) fn validate(&self, at: &str) -> Result<(), PolicyError> {
        match self {
            Condition::All(list) => {
                check_all(list).map_err(|m| PolicyError::config(format!("{at}.all"), m))?;
                for (i, c) in list.iter().enumerate() {
                    c.validate(&format!("{at}.all[{i}]"))?;
                }
            }
            Condition::Any(list) => {
                check_any(list).map_err(|m| PolicyError::config(format!("{at}.any"), m))?;
                for (i, c) in list.iter().enumerate() {
                    c.validate(&format!("{at}.any[{i}]"))?;
                }
            }
            Condition::Not(c) => c.validate(&format!("{at}.not"))?,
            Condition::Field { field, op } => {
                check_op_value(op)
                    .map_err(|m| PolicyError::config(format!("{at}.{}", op.name()), m))?;
                check_op_for_field(field, op).map_err(|m| PolicyError::config(at, m))?;
            }
        }
        Ok(())
    }
}

/// Checks the value an operator is given, apart from the field.
fn check_op_value(op: &Op) -> Result<(), String> {
    match op {
        Op::Eq(v) | Op::Ne(v) | Op::Contains(v) if v.is_null() => Err(null_message()),
        Op::In(list) if list.is_empty() => Err(empty_in_message()),
        Op::In(list) if list.iter().any(Value::is_null) => Err(null_message()),
        _ => Ok(()),
    }
}

fn null_message() -> String {
    "`null` never matches, since a null field counts as missing; test for that with `exists: false`"
        .into()
}

fn empty_in_message() -> String {
    "`in: []` lists no values, so the condition can never hold".into()
}

/// Checks that an operator can apply to the kind of value a context field holds.
fn check_op_for_field(field: &FieldPath, op: &Op) -> Result<(), String> {
    let shape = field.shape();
    let what = match shape {
        Shape::Json => return Ok(()),
        Shape::Text => "a string",
        Shape::Texts => "a list of strings",
    };
    let refuse = |why: &str| Err(format!("`{}` on `{field}`: {why}", op.name()));
    match op {
        Op::Gt(_) | Op::Gte(_) | Op::Lt(_) | Op::Lte(_) => {
            refuse(&format!("it compares numbers, but `{field}` is {what}"))
        }
        Op::Matches(_) if shape == Shape::Texts => refuse(&format!(
            "it tests a string, but `{field}` is {what}; use `contains` or `in`"
        )),
        Op::Contains(v) if !v.is_string() => refuse(&format!(
            "`{field}` is {what}, so it can only contain a string, not `{}`",
            Compact(v)
        )),
        Op::Eq(v) | Op::Ne(v) if shape == Shape::Texts && !v.is_array() => refuse(&format!(
            "`{field}` is a list, so it never equals `{}`; use `contains` to test for one role",
            Compact(v)
        )),
        Op::Eq(v) | Op::Ne(v) if shape == Shape::Text && !v.is_string() => refuse(&format!(
            "`{field}` is a string, so it never equals `{}`; quote the value to compare text",
            Compact(v)
        )),
        Op::In(list) if !list.iter().any(Value::is_string) => refuse(&format!(
            "`{field}` is {what}, so it is never one of these values; quote them to compare text"
        )),
        _ => Ok(()),
    }
}

/// An `any` must offer something.
fn check_any(list: &[Condition]) -> Result<(), String> {
    if list.is_empty() {
        Err("`any: []` offers no condition, so it can never hold".into())
    } else {
        Ok(())
    }
}

/// Numeric bounds on one field within an `all` must leave some number possible.
fn check_all(list: &[Condition]) -> Result<(), String> {
    let bounds = list.iter().filter_map(|c| match c {
        Condition::Field { field, op } => match op {
            Op::Gt(n) => Some((field, true, true, n, op)),
            Op::Gte(n) => Some((field, true, false, n, op)),
            Op::Lt(n) => Some((field, false, true, n, op)),
            Op::Lte(n) => Some((field, false, false, n, op)),
            _ => None,
        },
        _ => None,
    });
    for (field, is_lower, strict, n, op) in bounds.clone() {
        if !is_lower {
            continue;
        }
        for (other_field, other_lower, other_strict, m, other_op) in bounds.clone() {
            if other_lower || other_field != field {
                continue;
            }
            let empty = match cmp_numbers(n, m) {
                Some(Ordering::Greater) => true,
                Some(Ordering::Equal) => strict || other_strict,
                _ => false,
            };
            if empty {
                return Err(format!(
                    "`{field}` cannot be both `{}: {n}` and `{}: {m}`, so this never holds",
                    op.name(),
                    other_op.name()
                ));
            }
        }
    }
    Ok(())
}

impl Serialize for Condition {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(match self {
            Condition::Field { .. } => 2,
            _ => 1,
        }))?;
        match self {
            Condition::All(list) => map.serialize_entry("all", list)?,
            Condition::Any(list) => map.serialize_entry("any", list)?,
            Condition::Not(c) => map.serialize_entry("not", c)?,
            Condition::Field { field, op } => {
                map.serialize_entry("field", field)?;
                map.serialize_entry(op.name(), &op.value())?;
            }
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Condition {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ConditionVisitor)
    }
}

struct ConditionVisitor;

impl<'de> Visitor<'de> for ConditionVisitor {
    type Value = Condition;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a condition: a map such as `{ field: args.amount, gt: 100 }`, or a list")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Condition, A::Error> {
        ListVisitor { any: false }
            .visit_seq(seq)
            .map(Condition::All)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Condition, A::Error> {
        let mut seen = Seen::default();
        let mut shape: Option<Condition> = None;
        let mut field: Option<FieldPath> = None;
        let mut op: Option<Op> = None;
        while let Some(key) = map.next_key_seed(KeySeed(&seen))? {
            match key {
                Key::All => {
                    shape = Some(Condition::All(
                        map.next_value_seed(ListSeed { any: false })?,
                    ))
                }
                Key::Any => {
                    shape = Some(Condition::Any(map.next_value_seed(ListSeed { any: true })?))
                }
                Key::Not => shape = Some(Condition::Not(Box::new(map.next_value()?))),
                Key::Field => field = Some(map.next_value()?),
                Key::Op(kind) => op = Some(map.next_value_seed(OpSeed(kind))?),
            }
            seen.add(key);
        }
        if let Some(shape) = shape {
            return Ok(shape);
        }
        match (field, op) {
            (Some(field), Some(op)) => {
                check_op_for_field(&field, &op).map_err(de::Error::custom)?;
                Ok(Condition::Field { field, op })
            }
            (Some(field), None) => Err(de::Error::custom(format!(
                "the condition on `{field}` has no operator; add one of {}",
                quoted(&OP_NAMES)
            ))),
            (None, Some(op)) => Err(de::Error::custom(format!(
                "missing field `field`: say what `{}` tests, as in `field: args.amount`",
                op.name()
            ))),
            (None, None) => Err(de::Error::custom(
                "empty condition; write `all`, `any`, `not`, or `field` with an operator such as `eq`",
            )),
        }
    }
}

fn quoted(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A key of a condition map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    All,
    Any,
    Not,
    Field,
    Op(OpKind),
}

impl Key {
    fn name(self) -> &'static str {
        match self {
            Key::All => "all",
            Key::Any => "any",
            Key::Not => "not",
            Key::Field => "field",
            Key::Op(kind) => kind.name(),
        }
    }
}

/// The keys a condition map has shown so far.
#[derive(Default)]
struct Seen {
    first: Option<Key>,
    field: bool,
    op: Option<OpKind>,
    shape: Option<Key>,
}

impl Seen {
    fn add(&mut self, key: Key) {
        self.first.get_or_insert(key);
        match key {
            Key::Field => self.field = true,
            Key::Op(kind) => self.op = Some(kind),
            shape => self.shape = Some(shape),
        }
    }

    /// Why `key` cannot join the keys seen so far, if it cannot.
    fn conflict(&self, key: Key) -> Option<String> {
        let repeated = match key {
            Key::Field => self.field,
            Key::Op(kind) => self.op == Some(kind),
            shape => self.shape == Some(shape),
        };
        if repeated {
            return Some(format!("duplicate field `{}`", key.name()));
        }
        let clash = |other: Key| {
            format!(
                "a condition has one form, but this one has both `{}` and `{}`; list them under `all` instead",
                other.name(),
                key.name()
            )
        };
        match key {
            Key::Field => self.shape.map(clash),
            Key::Op(kind) => self.shape.map(clash).or_else(|| {
                self.op.map(|other| {
                    format!(
                        "two operators `{}` and `{}` in one condition; write two conditions under `all`",
                        other.name(),
                        kind.name()
                    )
                })
            }),
            _ => self.first.map(clash),
        }
    }
}

struct KeySeed<'a>(&'a Seen);

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Key;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Key, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for KeySeed<'_> {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a condition key")
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Key, E> {
        let key = match s {
            "all" => Key::All,
            "any" => Key::Any,
            "not" => Key::Not,
            "field" => Key::Field,
            _ => match OpKind::from_name(s) {
                Some(kind) => Key::Op(kind),
                None => {
                    return Err(E::custom(format!(
                        "unknown condition operator `{s}`, expected one of {} (or `field`, `all`, `any`, `not`)",
                        quoted(&OP_NAMES)
                    )));
                }
            },
        };
        match self.0.conflict(key) {
            Some(message) => Err(E::custom(message)),
            None => Ok(key),
        }
    }
}

/// The list of an `all` or `any`, checked as a whole once read.
struct ListSeed {
    any: bool,
}

impl<'de> DeserializeSeed<'de> for ListSeed {
    type Value = Vec<Condition>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<Condition>, D::Error> {
        d.deserialize_seq(ListVisitor { any: self.any })
    }
}

struct ListVisitor {
    any: bool,
}

impl<'de> Visitor<'de> for ListVisitor {
    type Value = Vec<Condition>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of conditions")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Condition>, A::Error> {
        let mut list = Vec::new();
        while let Some(c) = seq.next_element::<Condition>()? {
            list.push(c);
        }
        let checked = if self.any {
            check_any(&list)
        } else {
            check_all(&list)
        };
        checked.map_err(de::Error::custom)?;
        Ok(list)
    }
}

/// The value of an operator, read as that operator needs it.
struct OpSeed(OpKind);

impl<'de> DeserializeSeed<'de> for OpSeed {
    type Value = Op;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Op, D::Error> {
        let number = |d: D| d.deserialize_any(NumberVisitor);
        Ok(match self.0 {
            OpKind::Eq => Op::Eq(d.deserialize_any(NonNullVisitor)?),
            OpKind::Ne => Op::Ne(d.deserialize_any(NonNullVisitor)?),
            OpKind::Contains => Op::Contains(d.deserialize_any(NonNullVisitor)?),
            OpKind::In => Op::In(d.deserialize_seq(InListVisitor)?),
            OpKind::Gt => Op::Gt(number(d)?),
            OpKind::Gte => Op::Gte(number(d)?),
            OpKind::Lt => Op::Lt(number(d)?),
            OpKind::Lte => Op::Lte(number(d)?),
            OpKind::Matches => Op::Matches(RegexPattern::deserialize(d)?),
            OpKind::Exists => Op::Exists(bool::deserialize(d)?),
        })
    }
}

/// A JSON value that is not `null` at the top.
struct NonNullVisitor;

impl<'de> Visitor<'de> for NonNullVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a value to compare with")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        NumberVisitor.visit_f64(v).map(Value::Number)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Err(E::custom(null_message()))
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        self.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut list = Vec::new();
        while let Some(v) = seq.next_element::<Value>()? {
            list.push(v);
        }
        Ok(Value::Array(list))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some((k, v)) = map.next_entry::<String, Value>()? {
            out.insert(k, v);
        }
        Ok(Value::Object(out))
    }
}

/// The list of an `in`: not empty, no `null`.
struct InListVisitor;

impl<'de> Visitor<'de> for InListVisitor {
    type Value = Vec<Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of values")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Value>, A::Error> {
        struct NonNull;
        impl<'de> DeserializeSeed<'de> for NonNull {
            type Value = Value;
            fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
                d.deserialize_any(NonNullVisitor)
            }
        }
        let mut list = Vec::new();
        while let Some(v) = seq.next_element_seed(NonNull)? {
            list.push(v);
        }
        if list.is_empty() {
            return Err(de::Error::custom(empty_in_message()));
        }
        Ok(list)
    }
}

/// A finite number.
struct NumberVisitor;

impl Visitor<'_> for NumberVisitor {
    type Value = Number;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Number, E> {
        Ok(v.into())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Number, E> {
        Ok(v.into())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Number, E> {
        Number::from_f64(v)
            .ok_or_else(|| E::custom(format!("expected a finite number, found `{v}`")))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Number, E> {
        let hint = if v.trim().parse::<f64>().is_ok() {
            "; write numbers without quotes"
        } else {
            ""
        };
        Err(E::custom(format!("expected a number, found `{v}`{hint}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(yaml: &str) -> Result<Condition, String> {
        serde_yaml::from_str(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn every_operator_parses_from_yaml() {
        let cases = [
            ("{field: args.a, eq: 1}", Op::Eq(json!(1))),
            ("{field: args.a, ne: x}", Op::Ne(json!("x"))),
            (
                "{field: args.a, in: [a, 2]}",
                Op::In(vec![json!("a"), json!(2)]),
            ),
            (
                "{field: args.a, gt: 1.5}",
                Op::Gt(Number::from_f64(1.5).unwrap()),
            ),
            ("{field: args.a, gte: -2}", Op::Gte((-2).into())),
            ("{field: args.a, lt: 3}", Op::Lt(3.into())),
            ("{field: args.a, lte: 4}", Op::Lte(4.into())),
            ("{field: args.a, matches: '^x'}", Op::matches("^x").unwrap()),
            ("{field: args.a, exists: false}", Op::Exists(false)),
            (
                "{field: args.a, contains: {k: v}}",
                Op::Contains(json!({"k": "v"})),
            ),
        ];
        for (yaml, op) in cases {
            let c = parse(yaml).unwrap();
            assert_eq!(c, Condition::field("args.a", op).unwrap(), "{yaml}");
        }
    }

    #[test]
    fn shapes_and_lists_parse_and_round_trip() {
        let yaml = "all:\n  - {field: args.a, gt: 1}\n  - any:\n      - {field: tool, eq: x}\n  - not: {field: args.b, exists: true}\n";
        let c = parse(yaml).unwrap();
        let json = serde_json::to_value(&c).unwrap();
        let back: Condition = serde_json::from_value(json).unwrap();
        assert_eq!(back, c);
        // A bare list means `all`.
        let list = parse("[{field: args.a, gt: 1}]").unwrap();
        assert_eq!(
            list,
            Condition::all([Condition::field("args.a", Op::Gt(1.into())).unwrap()])
        );
    }

    #[test]
    fn malformed_conditions_are_refused_with_their_reason() {
        let cases = [
            (
                "{field: args.a, equals: 1}",
                "unknown condition operator `equals`",
            ),
            (
                "{field: args.a, eq: 1, gt: 2}",
                "two operators `eq` and `gt`",
            ),
            ("{all: [], field: args.a}", "both `all` and `field`"),
            ("{field: args.a}", "has no operator"),
            ("{gt: 1}", "missing field `field`"),
            ("{}", "empty condition"),
            ("{field: args.a, in: []}", "`in: []`"),
            ("{any: []}", "`any: []`"),
            ("{field: args.a, eq: null}", "`exists: false`"),
            ("{field: args.a, gt: '10'}", "write numbers without quotes"),
            ("{field: args.a, matches: '('}", "invalid regex `(`"),
            ("{field: bogus, eq: 1}", "unknown field path `bogus`"),
            ("{field: context.roles, gt: 1}", "compares numbers"),
            ("{field: context.tenant, eq: 5}", "quote the value"),
            (
                "[{field: args.a, gt: 10}, {field: args.a, lt: 5}]",
                "cannot be both `gt: 10` and `lt: 5`",
            ),
            (
                "[{field: args.a, gte: 5}, {field: args.a, lt: 5}]",
                "cannot be both",
            ),
            ("5", "expected a condition"),
        ];
        for (yaml, want) in cases {
            let err = parse(yaml).unwrap_err();
            assert!(err.contains(want), "{yaml}: {err}");
        }
        // Touching bounds that leave one value are fine.
        assert!(parse("[{field: args.a, gte: 5}, {field: args.a, lte: 5}]").is_ok());
        // Bounds on different fields do not conflict.
        assert!(parse("[{field: args.a, gt: 10}, {field: args.b, lt: 5}]").is_ok());
    }

    #[test]
    fn code_built_conditions_are_checked_like_yaml() {
        assert!(Condition::field("args.a", Op::In(vec![])).is_err());
        assert!(Condition::field("context.roles", Op::Gt(1.into())).is_err());
        let bad = Condition::all([
            Condition::field("args.a", Op::Gt(10.into())).unwrap(),
            Condition::field("args.a", Op::Lt(5.into())).unwrap(),
        ]);
        let err = bad.validate("rules[0].when").unwrap_err();
        assert_eq!(err.field(), Some("rules[0].when.all"));
        let err = Condition::any([]).validate("rules[2].when").unwrap_err();
        assert_eq!(err.field(), Some("rules[2].when.any"));
    }
}
