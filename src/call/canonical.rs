//! The canonical JSON form that [`ArgsHash`](super::ArgsHash) hashes.
//!
//! The form is that of JSON Canonicalization Scheme (RFC 8785), so a verifier in another
//! language can reproduce it with an off-the-shelf JCS library, with one deliberate
//! difference for integers that JavaScript cannot hold exactly:
//!
//! - **Whitespace**: none outside strings.
//! - **Objects**: members sorted by key, comparing keys as sequences of UTF-16 code units
//!   (for keys without characters above U+FFFF this is the same as sorting by bytes).
//! - **Strings**: UTF-8; `"` and `\` are escaped as `\"` and `\\`; U+0008, U+0009, U+000A,
//!   U+000C and U+000D as `\b`, `\t`, `\n`, `\f`, `\r`; other characters below U+0020 as
//!   `\u00xx` with lowercase hex; every other character as itself (no `\u` escapes for
//!   non-ASCII, `/` not escaped).
//! - **Numbers**: an integer that serde_json holds as `i64` or `u64` is written in plain
//!   decimal, exactly (JCS would round integers beyond 2^53 through a double; writing them
//!   exactly keeps `9007199254740993` and `9007199254740992` apart). Any other number is a
//!   double and is written as ECMAScript's `Number.prototype.toString` writes it: the
//!   shortest digits that round-trip, fixed notation for magnitudes in `[1e-7, 1e21)` and
//!   `d.ddde±x` otherwise, `-0` as `0`. So `1.0` and `1` have the same form, `1`.
//! - **Literals**: `true`, `false`, `null`.

use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value};
use thiserror::Error;

/// Why arguments were refused: they are larger or deeper than the limits allow, or, read
/// from text by [`ArgsLimits::parse`], the text is not one strict JSON value.
///
/// Errors that come from text give the line and column of the problem, counting from 1.
#[derive(Debug, Clone, Error)]
#[non_exhaustive]
pub enum ArgsError {
    /// The arguments nest deeper than [`ArgsLimits::max_depth`].
    #[error("arguments nest deeper than the limit of {limit} levels")]
    TooDeep {
        /// The limit that was exceeded.
        limit: usize,
    },
    /// The canonical form of the arguments is longer than [`ArgsLimits::max_bytes`].
    #[error("arguments are larger than the limit of {limit} bytes in canonical form")]
    TooLarge {
        /// The limit that was exceeded.
        limit: usize,
    },
    /// The argument text is longer than [`ArgsLimits::max_bytes`]; it was not read.
    #[error("argument text is {len} bytes, more than the limit of {limit} bytes")]
    TextTooLong {
        /// The length of the text, in bytes.
        len: usize,
        /// The limit that was exceeded.
        limit: usize,
    },
    /// An object in the argument text has the same key twice.
    #[error("duplicate key `{}` at line {line} column {column}", Shortened(.key))]
    DuplicateKey {
        /// The key, as read (escapes resolved).
        key: String,
        /// The line of the second occurrence.
        line: usize,
        /// The column just after the second occurrence.
        column: usize,
    },
    /// A number in the argument text is too large for a double (such as `1e400`), or is
    /// an integer, written without fraction or exponent, that fits neither `i64` nor
    /// `u64` (such as `18446744073709551616`, 2^64): held as a double it would hash the
    /// same as its neighbours, and unlike the exact integer another language hashes.
    #[error("number out of range at line {line} column {column}")]
    NumberOutOfRange {
        /// The line of the number.
        line: usize,
        /// The column at the end of the number.
        column: usize,
    },
    /// The argument text has `NaN` or `Infinity`, which JSON has no way to write.
    #[error("`NaN` or `Infinity` at line {line} column {column}: JSON numbers are finite")]
    NonFiniteNumber {
        /// The line of the token.
        line: usize,
        /// The column where the reader stopped.
        column: usize,
    },
    /// The argument text is not one JSON value.
    #[error("arguments are not valid JSON at line {line} column {column}")]
    Invalid {
        /// The line of the problem; 0 when the reader gave none.
        line: usize,
        /// The column of the problem; 0 when the reader gave none.
        column: usize,
        /// The reader's error (shared, so the error stays cheap to clone).
        #[source]
        source: Arc<serde_json::Error>,
    },
}

/// Errors are equal when they say the same thing; two [`ArgsError::Invalid`] compare by
/// place and the reader's message.
impl PartialEq for ArgsError {
    fn eq(&self, other: &Self) -> bool {
        use ArgsError::*;
        match (self, other) {
            (TooDeep { limit: a }, TooDeep { limit: b })
            | (TooLarge { limit: a }, TooLarge { limit: b }) => a == b,
            (TextTooLong { len: a, limit: x }, TextTooLong { len: b, limit: y }) => {
                a == b && x == y
            }
            (
                DuplicateKey {
                    key: a,
                    line: l1,
                    column: c1,
                },
                DuplicateKey {
                    key: b,
                    line: l2,
                    column: c2,
                },
            ) => a == b && l1 == l2 && c1 == c2,
            (
                NumberOutOfRange {
                    line: l1,
                    column: c1,
                },
                NumberOutOfRange {
                    line: l2,
                    column: c2,
                },
            )
            | (
                NonFiniteNumber {
                    line: l1,
                    column: c1,
                },
                NonFiniteNumber {
                    line: l2,
                    column: c2,
                },
            ) => l1 == l2 && c1 == c2,
            (
                Invalid {
                    line: l1,
                    column: c1,
                    source: s1,
                },
                Invalid {
                    line: l2,
                    column: c2,
                    source: s2,
                },
            ) => l1 == l2 && c1 == c2 && s1.to_string() == s2.to_string(),
            _ => false,
        }
    }
}

impl Eq for ArgsError {}

/// Shows at most 64 characters of user text, marking a cut with `…`.
struct Shortened<'a>(&'a str);

impl fmt::Display for Shortened<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const MAX: usize = 64;
        match self.0.char_indices().nth(MAX) {
            Some((cut, _)) => write!(f, "{}…", &self.0[..cut]),
            None => f.write_str(self.0),
        }
    }
}

/// Drops `value` without recursing once per level of nesting, as dropping a
/// `serde_json::Value` does: a value nested a hundred thousand levels deep (which the
/// limits refuse, but which a host may still hand in) would otherwise overflow the stack
/// where it is dropped. Values no deeper than 32 levels drop as usual.
pub(crate) fn dispose(value: &mut Value) {
    if shallow(value, 32) {
        return;
    }
    let mut stack = vec![std::mem::take(value)];
    while let Some(mut v) = stack.pop() {
        match &mut v {
            Value::Array(items) => stack.append(items),
            Value::Object(map) => stack.extend(std::mem::take(map).into_iter().map(|(_, v)| v)),
            _ => {}
        }
    }
}

/// Whether `value` nests no deeper than `levels`.
fn shallow(value: &Value, levels: usize) -> bool {
    match value {
        Value::Array(items) => levels > 0 && items.iter().all(|v| shallow(v, levels - 1)),
        Value::Object(map) => levels > 0 && map.values().all(|v| shallow(v, levels - 1)),
        _ => true,
    }
}

/// Bounds on the size of tool-call arguments, checked while they are hashed (by the gate,
/// on every `call`, `resume` and edited approval) and while they are read from text
/// ([`ArgsLimits::parse`]).
///
/// The defaults (64 levels, 4 MiB) are far above what a model produces and far below what
/// could exhaust a stack or memory. Set the gate's with
/// [`GateBuilder::args_limits`](crate::gate::GateBuilder::args_limits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArgsLimits {
    /// The deepest nesting of arrays and objects allowed; a scalar at the top is depth 0.
    pub max_depth: usize,
    /// The longest canonical form allowed, in bytes; also the longest text
    /// [`ArgsLimits::parse`] reads.
    pub max_bytes: usize,
}

impl Default for ArgsLimits {
    fn default() -> Self {
        ArgsLimits {
            max_depth: 64,
            max_bytes: 4 * 1024 * 1024,
        }
    }
}

/// Writes the canonical form of `value` as a string.
///
/// This is what [`ArgsHash`](super::ArgsHash) hashes (the hash itself streams the same
/// bytes without building the string). Use it to compare with another implementation.
///
/// ```
/// use approval_gate::canonical_json;
/// use serde_json::json;
///
/// let v = json!({"b": 1.0, "a": [true, null, "x\n"]});
/// assert_eq!(canonical_json(&v).unwrap(), r#"{"a":[true,null,"x\n"],"b":1}"#);
/// ```
pub fn canonical_json(value: &Value) -> Result<String, ArgsError> {
    let mut out = Vec::new();
    write_canonical(value, &ArgsLimits::default(), &mut out)?;
    // Only UTF-8 strings and ASCII are ever written.
    Ok(String::from_utf8(out).unwrap_or_default())
}

/// A destination for canonical bytes.
pub(crate) trait Out {
    fn put(&mut self, bytes: &[u8]);
}

impl Out for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// Writes the canonical form of `value` into `out`, enforcing `limits`.
pub(crate) fn write_canonical<O: Out>(
    value: &Value,
    limits: &ArgsLimits,
    out: &mut O,
) -> Result<(), ArgsError> {
    let mut w = Writer {
        out,
        written: 0,
        limits,
    };
    w.value(value, 0)
}

struct Writer<'a, O> {
    out: &'a mut O,
    written: usize,
    limits: &'a ArgsLimits,
}

impl<O: Out> Writer<'_, O> {
    fn put(&mut self, bytes: &[u8]) -> Result<(), ArgsError> {
        self.written += bytes.len();
        if self.written > self.limits.max_bytes {
            return Err(ArgsError::TooLarge {
                limit: self.limits.max_bytes,
            });
        }
        self.out.put(bytes);
        Ok(())
    }

    fn value(&mut self, value: &Value, depth: usize) -> Result<(), ArgsError> {
        match value {
            Value::Null => self.put(b"null"),
            Value::Bool(true) => self.put(b"true"),
            Value::Bool(false) => self.put(b"false"),
            Value::Number(n) => self.number(n),
            Value::String(s) => self.string(s),
            Value::Array(items) => {
                self.enter(depth)?;
                self.put(b"[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        self.put(b",")?;
                    }
                    self.value(item, depth + 1)?;
                }
                self.put(b"]")
            }
            Value::Object(map) => {
                self.enter(depth)?;
                self.object(map, depth)
            }
        }
    }

    fn enter(&self, depth: usize) -> Result<(), ArgsError> {
        if depth >= self.limits.max_depth {
            return Err(ArgsError::TooDeep {
                limit: self.limits.max_depth,
            });
        }
        Ok(())
    }

    fn object(&mut self, map: &Map<String, Value>, depth: usize) -> Result<(), ArgsError> {
        self.put(b"{")?;
        // serde_json's default map iterates in byte order, which equals UTF-16 order unless
        // a key holds a character above U+FFFF next to one in U+E000..=U+FFFF. Sort only
        // when the order is off (or with serde_json's `preserve_order`).
        let in_order = map
            .keys()
            .zip(map.keys().skip(1))
            .all(|(a, b)| utf16_cmp(a, b).is_lt());
        if in_order {
            for (i, (k, v)) in map.iter().enumerate() {
                self.member(i, k, v, depth)?;
            }
        } else {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_by(|a, b| utf16_cmp(a.0, b.0));
            for (i, (k, v)) in members.into_iter().enumerate() {
                self.member(i, k, v, depth)?;
            }
        }
        self.put(b"}")
    }

    fn member(
        &mut self,
        i: usize,
        key: &str,
        value: &Value,
        depth: usize,
    ) -> Result<(), ArgsError> {
        if i > 0 {
            self.put(b",")?;
        }
        self.string(key)?;
        self.put(b":")?;
        self.value(value, depth + 1)
    }

    fn string(&mut self, s: &str) -> Result<(), ArgsError> {
        self.put(b"\"")?;
        let bytes = s.as_bytes();
        let mut start = 0;
        // Sixteen bytes at a time: a fixed-size loop with no early exit, which the
        // compiler turns into a few vector compares; most strings need no escape at all.
        let mut chunks = bytes.chunks_exact(16);
        let mut at = 0;
        for chunk in &mut chunks {
            if chunk.iter().fold(false, |any, &b| any | needs_escape(b)) {
                for (i, &b) in chunk.iter().enumerate() {
                    if needs_escape(b) {
                        start = self.escape(bytes, at + i, start)?;
                    }
                }
            }
            at += 16;
        }
        for (i, &b) in chunks.remainder().iter().enumerate() {
            if needs_escape(b) {
                start = self.escape(bytes, at + i, start)?;
            }
        }
        self.put(&bytes[start..])?;
        self.put(b"\"")
    }

    /// Escapes `bytes[i]`, which [`needs_escape`]: writes the clean run
    /// `bytes[start..i]` and the escape, and returns where the next clean run starts.
    fn escape(&mut self, bytes: &[u8], i: usize, start: usize) -> Result<usize, ArgsError> {
        let b = bytes[i];
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x08 => b"\\b",
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            0x0c => b"\\f",
            b'\r' => b"\\r",
            _ => &[],
        };
        self.put(&bytes[start..i])?;
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            self.put(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 0xf) as usize],
            ])?;
        } else {
            self.put(escape)?;
        }
        Ok(i + 1)
    }

    fn number(&mut self, n: &serde_json::Number) -> Result<(), ArgsError> {
        if let Some(u) = n.as_u64() {
            let mut buf = itoa_buf();
            let s = write_u64(u, &mut buf);
            return self.put(s);
        }
        if let Some(i) = n.as_i64() {
            // Negative, as non-negative values fit u64.
            let mut buf = itoa_buf();
            let s = write_u64(i.unsigned_abs(), &mut buf);
            self.put(b"-")?;
            return self.put(s);
        }
        let f = n.as_f64().unwrap_or(0.0);
        let mut buf = [0u8; 40];
        let len = es_number(f, &mut buf);
        self.put(&buf[..len])
    }
}

/// Whether `b` must be escaped inside a JSON string.
#[inline]
fn needs_escape(b: u8) -> bool {
    (b < 0x20) | (b == b'"') | (b == b'\\')
}

/// Compares two strings by their UTF-16 code units, as JCS sorts keys.
fn utf16_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    // Byte order and UTF-16 order agree on ASCII, the common case.
    if a.is_ascii() && b.is_ascii() {
        return a.cmp(b);
    }
    a.encode_utf16().cmp(b.encode_utf16())
}

fn itoa_buf() -> [u8; 20] {
    [0u8; 20]
}

fn write_u64(mut v: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    &buf[i..]
}

/// Writes a finite double as ECMAScript's `Number.prototype.toString` does; returns the
/// length written.
fn es_number(f: f64, out: &mut [u8; 40]) -> usize {
    if f == 0.0 || !f.is_finite() {
        out[0] = b'0';
        return 1;
    }
    // ryu gives the shortest round-trip digits; take them apart into digits and exponent.
    let mut ryu_buf = ryu::Buffer::new();
    let text = ryu_buf.format_finite(f.abs()).as_bytes();
    let (mantissa, exp) = match text.iter().position(|&c| c == b'e') {
        Some(p) => (&text[..p], parse_exp(&text[p + 1..])),
        None => (text, 0),
    };
    let mut digits = [0u8; 20];
    let mut k = 0usize;
    let mut int_len = 0i32;
    let mut seen_point = false;
    for &c in mantissa {
        if c == b'.' {
            seen_point = true;
            continue;
        }
        if !seen_point {
            int_len += 1;
        }
        if k < digits.len() {
            digits[k] = c;
            k += 1;
        }
    }
    // Value = 0.d1 d2 ... dk × 10^n, with leading and trailing zeros removed.
    let mut n = int_len + exp;
    let mut first = 0;
    while first < k && digits[first] == b'0' {
        first += 1;
        n -= 1;
    }
    let mut last = k;
    while last > first && digits[last - 1] == b'0' {
        last -= 1;
    }
    let d = &digits[first..last];
    let k = d.len() as i32;

    let mut len = 0;
    let mut push = |bytes: &[u8]| {
        out[len..len + bytes.len()].copy_from_slice(bytes);
        len += bytes.len();
    };
    if f < 0.0 {
        push(b"-");
    }
    if k <= n && n <= 21 {
        push(d);
        for _ in 0..(n - k) {
            push(b"0");
        }
    } else if 0 < n && n <= 21 {
        push(&d[..n as usize]);
        push(b".");
        push(&d[n as usize..]);
    } else if -6 < n && n <= 0 {
        push(b"0.");
        for _ in 0..(-n) {
            push(b"0");
        }
        push(d);
    } else {
        push(&d[..1]);
        if k > 1 {
            push(b".");
            push(&d[1..]);
        }
        push(b"e");
        let e = n - 1;
        push(if e < 0 { b"-" } else { b"+" });
        let mut buf = itoa_buf();
        push(write_u64(u64::from(e.unsigned_abs()), &mut buf));
    }
    len
}

fn parse_exp(bytes: &[u8]) -> i32 {
    let (neg, digits) = match bytes.first() {
        Some(b'-') => (true, &bytes[1..]),
        Some(b'+') => (false, &bytes[1..]),
        _ => (false, bytes),
    };
    let v = digits
        .iter()
        .fold(0i32, |acc, &c| acc * 10 + i32::from(c - b'0'));
    if neg { -v } else { v }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn es(f: f64) -> String {
        let mut buf = [0u8; 40];
        let n = es_number(f, &mut buf);
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    #[allow(clippy::excessive_precision)] // the literal as RFC 8785 prints it
    fn doubles_are_written_as_ecmascript_writes_them() {
        // Expected strings are what `String(x)` prints in JavaScript.
        let cases = [
            (1.0, "1"),
            (-1.5, "-1.5"),
            (0.1, "0.1"),
            (123.456, "123.456"),
            (1e21, "1e+21"),
            (1e20, "100000000000000000000"),
            (1.5e300, "1.5e+300"),
            (1e-6, "0.000001"),
            (1e-7, "1e-7"),
            (1.25e-7, "1.25e-7"),
            (-0.0, "0"),
            (5e-324, "5e-324"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (0.000123, "0.000123"),
            (9007199254740994.0, "9007199254740994"),
            (4.35, "4.35"),
            (333333333.33333329, "333333333.3333333"),
        ];
        for (f, want) in cases {
            assert_eq!(es(f), want, "for {f:e}");
        }
    }

    #[test]
    #[allow(clippy::excessive_precision)] // the literal as RFC 8785 prints it
    fn rfc8785_example_canonicalizes_as_published() {
        // The example of RFC 8785 section 3.2.2. The numbers come from Rust literals:
        // serde_json's parser without its `float_roundtrip` feature may read
        // `333333333.33333329` one unit in the last place off.
        let mut input: Value = serde_json::from_str(
            r#"{
              "numbers": [],
              "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
              "literals": [null, true, false]
            }"#,
        )
        .unwrap();
        input["numbers"] = json!([
            333333333.33333329,
            1E30,
            4.50,
            2e-3,
            0.000000000000000000000000001
        ]);
        assert_eq!(
            canonical_json(&input).unwrap(),
            r#"{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}"#
        );
    }

    #[test]
    fn every_escape_is_written_wherever_it_falls_in_a_string() {
        // Each byte that needs escaping, at every offset around the 16-byte steps of the
        // scan, in strings of every length up to 40, must come out as serde_json writes
        // a string (which is what RFC 8785 asks for).
        for special in [
            '"', '\\', '\u{8}', '\t', '\n', '\u{c}', '\r', '\0', '\u{1f}',
        ] {
            for len in 1..40 {
                for at in 0..len {
                    let mut s = String::with_capacity(len);
                    s.extend((0..len).map(|i| if i == at { special } else { 'a' }));
                    let value = Value::String(s);
                    assert_eq!(
                        canonical_json(&value).unwrap(),
                        serde_json::to_string(&value).unwrap(),
                        "{value:?}"
                    );
                }
            }
        }
        let mixed = Value::String("\u{1}x\"y\\z\n".repeat(20) + "ünïcødé");
        assert_eq!(
            canonical_json(&mixed).unwrap(),
            serde_json::to_string(&mixed).unwrap()
        );
    }

    #[test]
    fn keys_sort_by_utf16_code_units() {
        // U+1F600 is D83D DE00 in UTF-16, which sorts before U+FB01 (FB01), though its
        // UTF-8 bytes sort after.
        let v = json!({"\u{fb01}": 1, "\u{1f600}": 2, "a": 3});
        assert_eq!(
            canonical_json(&v).unwrap(),
            "{\"a\":3,\"\u{1f600}\":2,\"\u{fb01}\":1}"
        );
    }

    #[test]
    fn limits_are_enforced() {
        let limits = ArgsLimits {
            max_depth: 2,
            max_bytes: 10,
        };
        let mut out = Vec::new();
        assert_eq!(
            write_canonical(&json!([[[]]]), &limits, &mut out),
            Err(ArgsError::TooDeep { limit: 2 })
        );
        let mut out = Vec::new();
        assert!(write_canonical(&json!([[]]), &limits, &mut out).is_ok());
        let mut out = Vec::new();
        assert_eq!(
            write_canonical(&json!("0123456789"), &limits, &mut out),
            Err(ArgsError::TooLarge { limit: 10 })
        );
    }

    #[test]
    fn integers_beyond_two_to_the_53_stay_exact() {
        assert_eq!(
            canonical_json(&json!([9007199254740993u64, -9223372036854775808i64])).unwrap(),
            "[9007199254740993,-9223372036854775808]"
        );
    }

    /// Every kind of number a host can build with `serde_json::Value`, as the README's
    /// args-hash section documents it.
    #[test]
    fn each_kind_of_number_has_the_documented_form() {
        let form = |v: Value| canonical_json(&v).unwrap();
        // i64 and u64: exact decimal, whatever the size.
        assert_eq!(form(Value::from(-42i64)), "-42");
        assert_eq!(form(Value::from(i64::MIN)), "-9223372036854775808");
        assert_eq!(form(Value::from(u64::MAX)), "18446744073709551615");
        assert_eq!(
            form(Value::from(9_007_199_254_740_993u64)),
            "9007199254740993"
        );
        // An f64 holding an integer: written as the integer, so `3.0` and `3` agree.
        assert_eq!(form(Value::from(3.0f64)), "3");
        assert_eq!(form(Value::from(-0.0f64)), "0");
        assert_eq!(form(Value::from(3.0f64)), form(Value::from(3u64)));
        assert_eq!(form(Value::from(1.5f64)), "1.5");
        // An f64 holding an integer beyond 2^53: the shortest digits that read back as the
        // same double, padded with zeros, which is not the integer the double holds, and
        // not what the same integer as u64 gives; from 1e21 on, with an exponent.
        let two_to_60 = (1u64 << 60) as f64;
        assert_eq!(form(Value::from(two_to_60)), "1152921504606847000");
        assert_eq!(form(Value::from(1u64 << 60)), "1152921504606846976");
        assert_eq!(
            form(Value::from(9_007_199_254_740_992.0f64)),
            "9007199254740992"
        );
        assert_eq!(
            form(Value::from(18_446_744_073_709_551_616.0f64)),
            "18446744073709552000"
        );
        assert_eq!(form(Value::from(1e21f64)), "1e+21");
        // A non-finite f64 cannot be a JSON number: `Value::from` and `json!` make it
        // null, and `Number::from_f64` refuses it.
        assert_eq!(form(Value::from(f64::NAN)), "null");
        assert_eq!(form(Value::from(f64::INFINITY)), "null");
        assert_eq!(form(json!(f64::NEG_INFINITY)), "null");
        assert!(serde_json::Number::from_f64(f64::NAN).is_none());
        // From `parse_args`: integer literals within i64 or u64 are exact integers;
        // anything with a fraction or exponent is a double; integer literals beyond
        // 64 bits are refused (see `parse`).
        let parsed = |t: &str| form(crate::call::parse_args(t).unwrap());
        assert_eq!(parsed("18446744073709551615"), "18446744073709551615");
        assert_eq!(parsed("3.0"), "3");
        assert_eq!(parsed("1e2"), "100");
        assert_eq!(parsed("1e19"), "10000000000000000000");
        assert_eq!(parsed("18446744073709551616.0"), "18446744073709552000");
        assert!(crate::call::parse_args("18446744073709551616").is_err());
    }
}
