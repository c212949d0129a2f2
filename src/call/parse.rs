//! Reading tool arguments from JSON text, strictly and within [`ArgsLimits`].
//!
//! Agent runtimes get a call's arguments from the model as text (OpenAI's `arguments`
//! string). Reading that text with `serde_json::from_str` accepts a duplicate key (keeping
//! the last), recurses up to 128 levels whatever the host's limits, and reads any length.
//! [`ArgsLimits::parse`] reads it with a [`DeserializeSeed`] over `serde_json`'s own
//! reader that counts the depth itself, refuses duplicate keys where they are written, and
//! refuses text longer than the limit before reading a byte of it.

use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use super::canonical::{ArgsError, ArgsLimits};

/// The deepest nesting [`ArgsLimits::parse`] can allow: `serde_json`'s reader refuses a
/// 128th level before the parser sees it, and the parser's own check must come first so
/// that every depth error is [`ArgsError::TooDeep`].
pub(crate) const MAX_TEXT_DEPTH: usize = 126;

/// 2^63 as a double.
const TWO_TO_THE_63: f64 = 9_223_372_036_854_775_808.0;

/// Reads tool arguments from JSON text under the default [`ArgsLimits`] (64 levels,
/// 4 MiB); see [`ArgsLimits::parse`].
///
/// ```
/// use approval_gate::{ArgsError, parse_args};
/// use serde_json::json;
///
/// let args = parse_args(r#"{"to": "bob@example.com", "amount": 12.5}"#).unwrap();
/// assert_eq!(args, json!({"to": "bob@example.com", "amount": 12.5}));
///
/// // Two readers of this text could see `1` or `2`: refused, naming the key and place.
/// let err = parse_args("{\"amount\": 1,\n \"amount\": 2}").unwrap_err();
/// assert!(matches!(err, ArgsError::DuplicateKey { ref key, line: 2, .. } if key == "amount"));
/// assert_eq!(err.to_string(), "duplicate key `amount` at line 2 column 9");
///
/// // Deep nesting is refused while reading, long before it could exhaust the stack.
/// let deep = "[".repeat(100_000);
/// assert_eq!(parse_args(&deep), Err(ArgsError::TooDeep { limit: 64 }));
/// ```
pub fn parse_args(json: &str) -> Result<Value, ArgsError> {
    ArgsLimits::default().parse(json)
}

impl ArgsLimits {
    /// Reads tool arguments from JSON text, strictly, within these limits.
    ///
    /// Refuses, each with its own [`ArgsError`]:
    ///
    /// - text longer than [`max_bytes`](Self::max_bytes) ([`ArgsError::TextTooLong`]),
    ///   checked before reading a byte. (The canonical form of what is read may still be
    ///   longer, as `1e20` is written `100000000000000000000`; the gate checks it again
    ///   when it hashes the arguments.)
    /// - arrays and objects nested deeper than [`max_depth`](Self::max_depth)
    ///   ([`ArgsError::TooDeep`]), counted while reading, so no amount of `[` recurses
    ///   deeper than the limit. Reading text allows at most 126 levels, whatever
    ///   `max_depth` says (`serde_json`'s reader stops at 128);
    /// - an object with the same key twice ([`ArgsError::DuplicateKey`]): readers differ on
    ///   which of the two values counts, so what a person approves could differ from what
    ///   a tool reads;
    /// - a number too large for a double, such as `1e400`, and an integer written without
    ///   fraction or exponent that fits neither `i64` nor `u64`, such as
    ///   `18446744073709551616` ([`ArgsError::NumberOutOfRange`]): read as a double, it
    ///   would hash the same as its neighbours (2^64 and 2^64 + 1 are one double), and
    ///   unlike the exact integer another language hashes;
    /// - `NaN` or `Infinity`, which JSON does not have ([`ArgsError::NonFiniteNumber`]);
    /// - anything else that is not one JSON value ([`ArgsError::Invalid`], with the
    ///   reader's error as its source).
    ///
    /// ```
    /// use approval_gate::{ArgsError, ArgsLimits};
    ///
    /// let limits = ArgsLimits { max_depth: 2, max_bytes: 32 };
    /// assert!(limits.parse(r#"{"a": [1, 2]}"#).is_ok());
    /// assert_eq!(limits.parse(r#"{"a": [[1]]}"#), Err(ArgsError::TooDeep { limit: 2 }));
    /// assert!(matches!(
    ///     limits.parse(&format!("\"{}\"", "x".repeat(40))),
    ///     Err(ArgsError::TextTooLong { len: 42, limit: 32 })
    /// ));
    /// assert!(matches!(
    ///     limits.parse("[1e400]"),
    ///     Err(ArgsError::NumberOutOfRange { line: 1, .. })
    /// ));
    /// ```
    pub fn parse(&self, json: &str) -> Result<Value, ArgsError> {
        if json.len() > self.max_bytes {
            return Err(ArgsError::TextTooLong {
                len: json.len(),
                limit: self.max_bytes,
            });
        }
        let max_depth = self.max_depth.min(MAX_TEXT_DEPTH);
        let shared = Shared {
            fault: RefCell::new(None),
            numbers: RefCell::new(Numbers::new(json)),
            values: RefCell::new(Vec::new()),
        };
        let mut reader = serde_json::Deserializer::from_str(json);
        let seed = Seed {
            depth: 0,
            max_depth,
            shared: &shared,
        };
        let read = seed.deserialize(&mut reader).and_then(|()| reader.end());
        // What was read is the one value the seeds left behind.
        read.map(|()| shared.values.borrow_mut().pop().unwrap_or(Value::Null))
            .map_err(|e| match shared.fault.borrow_mut().take() {
                Some(fault) => fault.into_error(max_depth, &e),
                None => reader_error(json, e, max_depth),
            })
    }
}

/// What the seed refused, kept beside the reader's error (which carries only text and a
/// position) so the caller gets a typed error.
enum Fault {
    TooDeep,
    DuplicateKey(String),
    NonFinite,
    /// An integer literal beyond `i64` and `u64`, at this line and column.
    IntegerOutOfRange(usize, usize),
}

impl Fault {
    fn into_error(self, max_depth: usize, at: &serde_json::Error) -> ArgsError {
        let (line, column) = (at.line(), at.column());
        match self {
            Fault::TooDeep => ArgsError::TooDeep { limit: max_depth },
            Fault::DuplicateKey(key) => ArgsError::DuplicateKey { key, line, column },
            Fault::NonFinite => ArgsError::NonFiniteNumber { line, column },
            Fault::IntegerOutOfRange(line, column) => ArgsError::NumberOutOfRange { line, column },
        }
    }
}

/// Sorts an error that the reader found on its own.
fn reader_error(json: &str, e: serde_json::Error, max_depth: usize) -> ArgsError {
    let (line, column) = (e.line(), e.column());
    let text = e.to_string();
    if text.starts_with("recursion limit exceeded") {
        return ArgsError::TooDeep { limit: max_depth };
    }
    if text.starts_with("number out of range") {
        return ArgsError::NumberOutOfRange { line, column };
    }
    if e.is_syntax() && non_finite_at(json, line, column) {
        return ArgsError::NonFiniteNumber { line, column };
    }
    ArgsError::Invalid {
        line,
        column,
        source: Arc::new(e),
    }
}

/// Whether the token at (or just before) `line`:`column` is `NaN` or `Infinity`, which
/// some JSON writers produce for non-finite doubles.
fn non_finite_at(json: &str, line: usize, column: usize) -> bool {
    let Some(text) = json.split('\n').nth(line.saturating_sub(1)) else {
        return false;
    };
    // The reader places the error on the byte it could not take, counting from 1.
    let at = column.saturating_sub(1).min(text.len());
    let start = text.as_bytes()[..at]
        .iter()
        .rposition(|b| !b.is_ascii_alphanumeric() && !matches!(b, b'+' | b'-' | b'.'))
        .map_or(0, |p| p + 1);
    // After a byte of a multi-byte character, `start` may fall inside that character,
    // where no token can start.
    let token = text
        .get(start..)
        .and_then(|rest| {
            rest.split(|c: char| !c.is_ascii_alphanumeric() && !matches!(c, '+' | '-' | '.'))
                .next()
        })
        .unwrap_or("");
    matches!(
        token.trim_start_matches(['+', '-']),
        "NaN" | "nan" | "Infinity" | "inf" | "infinity" | "Inf"
    )
}

/// The number tokens of the text, walked in step with the reader: the reader hands the
/// seed numbers as values, and an integer too large for `i64` and `u64` comes as a double,
/// like `1e19`. Telling the two apart needs the token's text, which this finds by
/// counting number tokens outside strings, only when a double could be such an integer.
struct Numbers<'t> {
    text: &'t [u8],
    /// Numbers the seed has been handed so far.
    seen: usize,
    /// Number tokens the scan has passed, and the byte where it stopped.
    scanned: usize,
    at: usize,
    /// The line at `at`, counting from 1, and the byte where that line starts.
    line: usize,
    line_start: usize,
}

impl<'t> Numbers<'t> {
    fn new(text: &'t str) -> Self {
        Numbers {
            text: text.as_bytes(),
            seen: 0,
            scanned: 0,
            at: 0,
            line: 1,
            line_start: 0,
        }
    }

    /// Where the integer literal just handed to the seed is, when it is one: the line and
    /// the column after its last byte (where the reader places its own number errors).
    /// `None` when the token has a fraction or an exponent.
    fn last_integer_literal(&mut self) -> Option<(usize, usize)> {
        let text = self.text;
        while self.at < text.len() {
            let b = text[self.at];
            if b == b'"' {
                // Skip the string, escapes included; the reader has checked it.
                self.at += 1;
                while self.at < text.len() && text[self.at] != b'"' {
                    if text[self.at] == b'\\' {
                        self.at += 1;
                    }
                    self.at += 1;
                }
                self.at += 1;
            } else if b == b'\n' {
                self.at += 1;
                self.line += 1;
                self.line_start = self.at;
            } else if b == b'-' || b.is_ascii_digit() {
                let start = self.at;
                while self.at < text.len()
                    && matches!(
                        text[self.at],
                        b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'
                    )
                {
                    self.at += 1;
                }
                self.scanned += 1;
                if self.scanned == self.seen {
                    let token = &text[start..self.at];
                    let integer = !token.iter().any(|b| matches!(b, b'.' | b'e' | b'E'));
                    return integer.then_some((self.line, self.at - self.line_start));
                }
            } else {
                self.at += 1;
            }
        }
        None
    }
}

/// Reads one value at `depth` (the number of arrays and objects around it).
#[derive(Clone, Copy)]
struct Seed<'f> {
    depth: usize,
    max_depth: usize,
    shared: &'f Shared<'f>,
}

/// What the seeds of one read share (behind one reference, so each level of recursion
/// stays small).
struct Shared<'t> {
    fault: RefCell<Option<Fault>>,
    numbers: RefCell<Numbers<'t>>,
    /// The values read and not yet placed in their array or object, innermost last.
    /// The seeds hand each value they read up through here instead of returning it, so
    /// that no level of the reader's recursion holds a `Value` (or a `Result` of one):
    /// a `Value` is 32 bytes, but 80 with `serde_json`'s `preserve_order` (which any crate
    /// in a host's build can switch on), and in an unoptimized build each level holds
    /// many, which made each level of nesting take about 40% more stack with it.
    values: RefCell<Vec<Value>>,
}

impl Seed<'_> {
    /// Hands a value read up to whoever reads its array or object (or to the end).
    fn put<E>(&self, value: Value) -> Result<(), E> {
        self.shared.values.borrow_mut().push(value);
        Ok(())
    }

    // The three below are kept out of the visitors (which each level of nesting
    // recurses through) so that their temporaries take no room in those frames.

    /// Puts the values put since there were `start` of them in their place as an array.
    #[inline(never)]
    fn put_array(&self, start: usize) {
        let mut values = self.shared.values.borrow_mut();
        let items = values.split_off(start);
        values.push(Value::Array(items));
    }

    /// Moves the value a seed just put into `members` under `key`.
    #[inline(never)]
    fn insert_taken(&self, members: &mut Map<String, Value>, key: String) {
        let value = self.shared.values.borrow_mut().pop().unwrap_or(Value::Null);
        members.insert(key, value);
    }

    /// Puts the object `members` holds, leaving it empty.
    #[inline(never)]
    fn put_object(&self, members: &mut Map<String, Value>) {
        let members = std::mem::take(members);
        self.shared.values.borrow_mut().push(Value::Object(members));
    }

    fn fail<E: de::Error>(&self, fault: Fault) -> E {
        *self.shared.fault.borrow_mut() = Some(fault);
        // The reader adds the position to this error; the fault says what it was.
        E::custom("arguments refused")
    }

    /// The seed for the values inside an array or object at this depth.
    fn enter<E: de::Error>(&self) -> Result<Self, E> {
        if self.depth >= self.max_depth {
            return Err(self.fail(Fault::TooDeep));
        }
        Ok(Seed {
            depth: self.depth + 1,
            ..*self
        })
    }
}

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    /// The value read is put on [`Shared::values`], not returned.
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.put(Value::Null)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.put(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.shared.numbers.borrow_mut().seen += 1;
        self.put(Value::Number(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.shared.numbers.borrow_mut().seen += 1;
        self.put(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        let mut numbers = self.shared.numbers.borrow_mut();
        numbers.seen += 1;
        // An integer literal beyond `i64` and `u64` is below -2^63 or at least 2^64, and
        // reads as a double at least 2^63 in size; only such a double needs its token.
        if v.abs() >= TWO_TO_THE_63
            && let Some((line, column)) = numbers.last_integer_literal()
        {
            return Err(self.fail(Fault::IntegerOutOfRange(line, column)));
        }
        drop(numbers);
        // The reader refuses overflow itself; this keeps a non-finite double out whatever
        // reader feeds the seed.
        match Number::from_f64(v) {
            Some(n) => self.put(Value::Number(n)),
            None => Err(self.fail(Fault::NonFinite)),
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.put(Value::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<(), E> {
        self.put(Value::String(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let inner = self.enter()?;
        let start = self.shared.values.borrow().len();
        while seq.next_element_seed(inner)?.is_some() {}
        self.put_array(start);
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let inner = self.enter()?;
        // Boxed, like the values, to keep the map off this level's frame.
        let mut members = Box::new(Map::new());
        while let Some(key) = map.next_key::<String>()? {
            if members.contains_key(&key) {
                return Err(self.fail(Fault::DuplicateKey(key)));
            }
            map.next_value_seed(inner)?;
            self.insert_taken(&mut members, key);
        }
        self.put_object(&mut members);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn limits(max_depth: usize, max_bytes: usize) -> ArgsLimits {
        ArgsLimits {
            max_depth,
            max_bytes,
        }
    }

    #[test]
    fn well_formed_text_reads_as_serde_json_reads_it() {
        for text in [
            r#"{"to": "bob@example.com", "cc": ["a", "b"], "n": 1, "x": -2.5e-3}"#,
            "[]",
            "{}",
            "null",
            "  true ",
            r#""é\u00e9\n""#,
            "18446744073709551615",
            "-9223372036854775808",
            "1e308",
            r#"{"a": {"b": {"c": [null, false, {"d": 0}]}}}"#,
        ] {
            let want: Value = serde_json::from_str(text).unwrap();
            assert_eq!(parse_args(text).unwrap(), want, "{text}");
        }
    }

    #[test]
    fn depth_is_counted_as_the_canonical_form_counts_it() {
        let l = limits(2, 1024);
        assert_eq!(l.parse("[[1]]").unwrap(), json!([[1]]));
        assert_eq!(
            l.parse(r#"{"a": {"b": 1}}"#).unwrap(),
            json!({"a": {"b": 1}})
        );
        assert_eq!(l.parse("[[[1]]]"), Err(ArgsError::TooDeep { limit: 2 }));
        assert_eq!(
            l.parse(r#"{"a": {"b": {}}}"#),
            Err(ArgsError::TooDeep { limit: 2 })
        );
        assert_eq!(limits(0, 1024).parse("1").unwrap(), json!(1));
        assert_eq!(
            limits(0, 1024).parse("[]"),
            Err(ArgsError::TooDeep { limit: 0 })
        );
        // What parses within a limit also hashes within it.
        let v = limits(64, 1 << 20).parse(&"[".repeat(64)).err();
        assert!(matches!(v, Some(ArgsError::Invalid { .. })), "{v:?}");
        let text = format!("{}{}", "[".repeat(64), "]".repeat(64));
        let v = parse_args(&text).unwrap();
        assert!(crate::call::ArgsHash::compute(&v).is_ok());
        let deeper = format!("[{text}]");
        assert_eq!(parse_args(&deeper), Err(ArgsError::TooDeep { limit: 64 }));
    }

    #[test]
    fn very_deep_text_is_refused_without_deep_recursion() {
        // Run on a small stack: a reader that recursed per level would overflow it.
        let handle = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(|| {
                let opens = "[".repeat(100_000);
                let objects = "{\"a\":".repeat(100_000);
                let closed = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
                let l = limits(usize::MAX, usize::MAX);
                // The deepest text that reads, of arrays and of objects, and still
                // without `serde_json`'s `preserve_order` making each level larger.
                let arrays_at_bound = format!(
                    "{}{}",
                    "[".repeat(MAX_TEXT_DEPTH),
                    "]".repeat(MAX_TEXT_DEPTH)
                );
                let objects_at_bound = format!(
                    "{}1{}",
                    "{\"a\":".repeat(MAX_TEXT_DEPTH),
                    "}".repeat(MAX_TEXT_DEPTH)
                );
                let read = [&arrays_at_bound, &objects_at_bound].map(|t| l.parse(t).is_ok());
                let refused = [
                    parse_args(&opens),
                    parse_args(&objects),
                    parse_args(&closed),
                    l.parse(&closed),
                    l.parse(&objects),
                ];
                (refused, read)
            })
            .unwrap();
        let ([a, b, c, d, e], read) = handle.join().unwrap();
        assert_eq!(read, [true, true], "the deepest readable text reads");
        assert_eq!(a, Err(ArgsError::TooDeep { limit: 64 }));
        assert_eq!(b, Err(ArgsError::TooDeep { limit: 64 }));
        assert_eq!(c, Err(ArgsError::TooDeep { limit: 64 }));
        // A limit above what the reader allows is held at the reader's bound.
        for refused in [d, e] {
            assert_eq!(
                refused,
                Err(ArgsError::TooDeep {
                    limit: MAX_TEXT_DEPTH
                })
            );
        }
        let at_bound = format!(
            "{}{}",
            "[".repeat(MAX_TEXT_DEPTH),
            "]".repeat(MAX_TEXT_DEPTH)
        );
        assert!(limits(1000, 1 << 20).parse(&at_bound).is_ok());
    }

    #[test]
    fn text_longer_than_the_limit_is_refused_before_reading() {
        let l = limits(64, 8);
        assert_eq!(l.parse("[1,2,3]").unwrap(), json!([1, 2, 3]));
        // Not even read: this is not JSON, and the error is about its length.
        assert_eq!(
            l.parse("not json at all"),
            Err(ArgsError::TextTooLong { len: 15, limit: 8 })
        );
        assert_eq!(
            l.parse("[1, 2, 3]"),
            Err(ArgsError::TextTooLong { len: 9, limit: 8 })
        );
    }

    #[test]
    fn duplicate_keys_are_refused_with_their_place() {
        let err = parse_args("{\n  \"to\": \"alice\",\n  \"to\": \"mallory\"\n}").unwrap_err();
        assert_eq!(
            err,
            ArgsError::DuplicateKey {
                key: "to".into(),
                line: 3,
                column: 6
            }
        );
        // Nested, and spelled differently but equal once read.
        let err = parse_args(r#"{"a": [{"k": 1, "\u006b": 2}]}"#).unwrap_err();
        assert!(
            matches!(err, ArgsError::DuplicateKey { ref key, line: 1, .. } if key == "k"),
            "{err:?}"
        );
        // The same key in sibling objects is fine.
        assert!(parse_args(r#"[{"k": 1}, {"k": 2}]"#).is_ok());
        // A long key is shortened in the message, kept whole in the error.
        let long = "k".repeat(1000);
        let err = parse_args(&format!(r#"{{"{long}": 1, "{long}": 2}}"#)).unwrap_err();
        assert!(matches!(err, ArgsError::DuplicateKey { ref key, .. } if *key == long));
        assert!(err.to_string().len() < 200, "{err}");
    }

    #[test]
    fn numbers_out_of_range_and_non_finite_are_refused() {
        for (text, column) in [("[1e400]", 6), ("{\"n\": -1e400}", 12)] {
            assert_eq!(
                parse_args(text),
                Err(ArgsError::NumberOutOfRange { line: 1, column }),
                "{text}"
            );
        }
        let huge = format!("[1{}]", "0".repeat(400));
        assert!(
            matches!(parse_args(&huge), Err(ArgsError::NumberOutOfRange { .. })),
            "{:?}",
            parse_args(&huge)
        );
        for text in [
            "NaN",
            "[NaN]",
            "{\"n\": Infinity}",
            "[1, -Infinity]",
            "{\"n\":\n  +Infinity}",
            "[nan]",
            "[inf]",
        ] {
            let err = parse_args(text).unwrap_err();
            assert!(
                matches!(err, ArgsError::NonFiniteNumber { .. }),
                "{text}: {err:?}"
            );
        }
        assert!(matches!(
            parse_args("{\"n\":\n  Infinity}"),
            Err(ArgsError::NonFiniteNumber { line: 2, .. })
        ));
        // Text before the token may be any UTF-8.
        assert!(matches!(
            parse_args("{\"é€😀\": NaN}"),
            Err(ArgsError::NonFiniteNumber { line: 1, .. })
        ));
        assert!(matches!(
            parse_args("[\"é\", é]"),
            Err(ArgsError::Invalid { .. })
        ));
        // Integers beyond i64 and u64 would be doubles, 2^64 + 1 the same as 2^64.
        for (text, line, column) in [
            ("18446744073709551616", 1, 20),
            ("[1, -9223372036854775809]", 1, 24),
            (
                "{\"a\": \"1e5\\\"\", \"b\": [1.5, 2e19,\n  18446744073709551617]}",
                2,
                22,
            ),
            (&format!("[1{}]", "0".repeat(300)), 1, 302),
        ] {
            assert_eq!(
                parse_args(text),
                Err(ArgsError::NumberOutOfRange { line, column }),
                "{text}"
            );
        }
        // Written with a fraction or an exponent, a number is a double on purpose.
        assert_eq!(
            parse_args("[18446744073709551616.0, 1e19, -9.3e18]").unwrap(),
            json!([18446744073709551616.0, 1e19, -9.3e18])
        );
        // Tiny numbers round to zero, as everywhere.
        assert_eq!(parse_args("1e-400").unwrap(), json!(0.0));
    }

    #[test]
    fn invalid_text_keeps_the_readers_error_and_place() {
        for (text, line) in [
            ("", 1),
            ("{\"a\": 1,}", 1),
            ("{\"a\" 1}", 1),
            ("[1]\n[2]", 2),
            ("{\"a\": \"\\ud800\"}", 1),
            ("'single'", 1),
            ("{\"a\": 1}\n\nx", 3),
        ] {
            let err = parse_args(text).unwrap_err();
            let ArgsError::Invalid { line: l, .. } = err else {
                panic!("{text}: {err:?}");
            };
            assert_eq!(l, line, "{text}");
            assert!(std::error::Error::source(&err).is_some());
            assert!(
                err.to_string()
                    .starts_with(&format!("arguments are not valid JSON at line {line}")),
                "{err}"
            );
        }
    }
}
