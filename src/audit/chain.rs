//! The hash chain that makes a trail tamper-evident: [`ChainLink`] on every record,
//! [`ChainHead`] to append the next one, and [`verify_chain`] / [`ChainVerifier`] to
//! find the first record that was changed, removed, added or moved.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use thiserror::Error;

use super::AuditRecord;
use crate::call::ArgsHash;

/// A SHA-256 digest in a chain, written as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct AuditHash([u8; 32]);

impl AuditHash {
    /// The `prev_hash` of a trail's first record: 64 zeros.
    pub const GENESIS: AuditHash = AuditHash([0; 32]);

    /// Wraps a raw digest.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        AuditHash(bytes)
    }

    /// The raw digest.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for AuditHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The same hex form as the args hash.
        fmt::Display::fmt(&ArgsHash::from_bytes(self.0), f)
    }
}

impl fmt::Debug for AuditHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AuditHash({self})")
    }
}

impl FromStr for AuditHash {
    type Err = crate::call::ParseArgsHashError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(AuditHash(*s.parse::<ArgsHash>()?.as_bytes()))
    }
}

impl Serialize for AuditHash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for AuditHash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Where a record sits in its trail: its number, the hash of the record before it, and
/// its own hash. In the JSON these are the top-level fields `seq`, `prev_hash` and
/// `hash`.
///
/// `hash` is SHA-256 over the record's JSON object without its `hash` field, in the
/// canonical form of [`canonical_json`](crate::call::canonical_json) (RFC 8785 with exact
/// integers), which any language can recompute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainLink {
    /// The record's number in its trail: 1, 2, 3, … with no gaps.
    pub seq: u64,
    /// The `hash` of the record before it ([`AuditHash::GENESIS`] for the first).
    pub prev_hash: AuditHash,
    /// This record's hash.
    pub hash: AuditHash,
}

/// The end of a chain: the last record's number and hash. A trail keeps it to link the
/// next record; a reader keeps it to detect later truncation or rewriting (see
/// [`verify_chain`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainHead {
    /// The last record's `seq` (0 for an empty trail).
    pub seq: u64,
    /// The last record's `hash` ([`AuditHash::GENESIS`] for an empty trail).
    pub hash: AuditHash,
}

impl Default for ChainHead {
    fn default() -> Self {
        ChainHead::GENESIS
    }
}

impl ChainHead {
    /// The head of an empty trail.
    pub const GENESIS: ChainHead = ChainHead {
        seq: 0,
        hash: AuditHash::GENESIS,
    };

    /// `record` linked after this head, and the new head.
    ///
    /// ```
    /// use approval_gate::{ToolCall, trail::{AuditEvent, AuditRecord, ChainHead, verify_chain}};
    /// # use approval_gate::time::OffsetDateTime;
    ///
    /// let call = ToolCall::new("run-1", "call-1", "crm.read", serde_json::json!({}));
    /// let allow = AuditEvent::Allow { rule_ids: vec![] };
    /// let record = AuditRecord::new(OffsetDateTime::UNIX_EPOCH, &call, None, "v1", allow);
    /// let (first, head) = ChainHead::GENESIS.link(&record);
    /// let (second, head) = head.link(&record);
    /// assert_eq!(verify_chain([&first, &second], Some(&head)).unwrap(), head);
    /// ```
    pub fn link(&self, record: &AuditRecord) -> (AuditRecord, ChainHead) {
        let mut linked = record.clone();
        let seq = self.seq + 1;
        linked.chain = Some(ChainLink {
            seq,
            prev_hash: self.hash,
            hash: AuditHash::GENESIS,
        });
        let hash = content_hash(&record_value(&linked));
        if let Some(link) = &mut linked.chain {
            link.hash = hash;
        }
        (linked, ChainHead { seq, hash })
    }
}

/// The JSON object of `record`. Records are plain data, so this cannot fail; a failure
/// would give `null`, whose hash matches no record.
fn record_value(record: &AuditRecord) -> Value {
    serde_json::to_value(record).unwrap_or(Value::Null)
}

/// SHA-256 over the canonical form of `record` without its `hash` field.
fn content_hash(record: &Value) -> AuditHash {
    let hash = match record {
        Value::Object(fields) if fields.contains_key("hash") => {
            let mut fields = fields.clone();
            fields.remove("hash");
            ArgsHash::compute(&Value::Object(fields))
        }
        other => ArgsHash::compute(other),
    };
    // Records are far below the canonical form's depth and size limits; past them the
    // hash is all ones, which matches no record.
    AuditHash(hash.map_or([0xff; 32], |h| *h.as_bytes()))
}

/// Why a trail does not verify, naming the first record where it breaks.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ChainError {
    /// A record has no `seq`, `prev_hash` or `hash`, or is not a JSON object.
    #[error("record {position} of the trail is not chained: {reason}")]
    Unchained {
        /// Its position in what was read, from 1.
        position: u64,
        /// What is missing.
        reason: String,
    },
    /// A record's content does not match its hash: it was modified.
    #[error("record {seq} was modified: its content does not match its hash")]
    Modified {
        /// The record.
        seq: u64,
    },
    /// A record comes where a record with a lower number should: the records between
    /// were deleted, or moved further on.
    #[error("record {expected} is missing where record {seq} is found: deleted or moved")]
    Missing {
        /// The record found.
        seq: u64,
        /// The number that should have come next.
        expected: u64,
    },
    /// A record's number repeats or goes back: a record was inserted, copied or moved.
    #[error(
        "record {seq} is out of order where record {expected} should come: inserted, copied or moved"
    )]
    Reordered {
        /// The record found.
        seq: u64,
        /// The number that should have come next.
        expected: u64,
    },
    /// A record does not link to the one before it: the one before was replaced, or
    /// this one was inserted with a forged hash.
    #[error("record {seq} does not link to the record before it")]
    Relinked {
        /// The record.
        seq: u64,
    },
    /// The trail ends before the head known from an earlier read: its tail was cut off.
    #[error("the trail ends at record {last_seq}, before the known head at record {known_seq}")]
    Truncated {
        /// The last record found (0 for none).
        last_seq: u64,
        /// The known head's record.
        known_seq: u64,
    },
    /// The record at the known head has another hash: the trail was rewritten up to it.
    #[error("record {seq} is not the one known as the head: the trail was rewritten")]
    HeadMismatch {
        /// The record.
        seq: u64,
    },
}

impl ChainError {
    /// The number of the record where the trail breaks, when it has one.
    pub fn seq(&self) -> Option<u64> {
        match self {
            ChainError::Unchained { .. } => None,
            ChainError::Modified { seq }
            | ChainError::Missing { seq, .. }
            | ChainError::Reordered { seq, .. }
            | ChainError::Relinked { seq }
            | ChainError::HeadMismatch { seq } => Some(*seq),
            ChainError::Truncated { last_seq, .. } => Some(*last_seq),
        }
    }
}

/// Checks a trail record by record, as it is read: for a trail too long to hold, or
/// split across files. [`verify_chain`] does the same for records in hand.
///
/// Each record must carry its own hash, the next number, and the previous record's
/// hash; the first error names the first record where that fails.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    head: ChainHead,
    read: u64,
    known: Option<ChainHead>,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        Self::new()
    }
}

impl ChainVerifier {
    /// A verifier for a whole trail, starting at record 1.
    pub fn new() -> Self {
        Self::after(ChainHead::GENESIS)
    }

    /// A verifier for a trail's continuation after `head` (say, the files of a rotated
    /// trail after those already checked).
    pub fn after(head: ChainHead) -> Self {
        ChainVerifier {
            head,
            read: 0,
            known: None,
        }
    }

    /// Also checks, at [`finish`](Self::finish), that the trail reaches `known` (a head
    /// noted earlier) and that its record there is the same: a cut-off or rewritten
    /// tail is then detected.
    pub fn expect_head(mut self, known: ChainHead) -> Self {
        self.known = Some(known);
        self
    }

    /// Checks the next record, given as the JSON object read from the trail (so that no
    /// field, even one this crate does not know, escapes the hash).
    pub fn push_value(&mut self, record: &Value) -> Result<(), ChainError> {
        self.read += 1;
        let position = self.read;
        let unchained = |reason: &str| ChainError::Unchained {
            position,
            reason: reason.to_owned(),
        };
        let Value::Object(fields) = record else {
            return Err(unchained("not a JSON object"));
        };
        let seq = fields
            .get("seq")
            .and_then(Value::as_u64)
            .ok_or_else(|| unchained("no `seq`"))?;
        let field_hash = |name: &str| -> Result<AuditHash, ChainError> {
            fields
                .get(name)
                .and_then(Value::as_str)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| unchained(&format!("no `{name}`")))
        };
        let prev_hash = field_hash("prev_hash")?;
        let hash = field_hash("hash")?;

        let expected = self.head.seq + 1;
        if seq > expected {
            return Err(ChainError::Missing { seq, expected });
        }
        if seq < expected {
            return Err(ChainError::Reordered { seq, expected });
        }
        if content_hash(record) != hash {
            return Err(ChainError::Modified { seq });
        }
        if prev_hash != self.head.hash {
            return Err(ChainError::Relinked { seq });
        }
        if let Some(known) = self.known
            && known.seq == seq
            && known.hash != hash
        {
            return Err(ChainError::HeadMismatch { seq });
        }
        self.head = ChainHead { seq, hash };
        Ok(())
    }

    /// Checks the next record.
    pub fn push(&mut self, record: &AuditRecord) -> Result<(), ChainError> {
        self.push_value(&record_value(record))
    }

    /// The head so far: the last record checked.
    pub fn head(&self) -> ChainHead {
        self.head
    }

    /// Ends the check: the trail's head, or [`ChainError::Truncated`] when it stops
    /// before the known head.
    pub fn finish(self) -> Result<ChainHead, ChainError> {
        if let Some(known) = self.known
            && self.head.seq < known.seq
        {
            return Err(ChainError::Truncated {
                last_seq: self.head.seq,
                known_seq: known.seq,
            });
        }
        Ok(self.head)
    }
}

/// Checks a whole trail, in order, from record 1; with `known_head` (a head noted
/// earlier), also that the trail still reaches it unchanged. Returns the trail's head.
///
/// The first error names the first record where the trail breaks: modified, deleted,
/// inserted or moved records, and a tail cut off or rewritten since `known_head`.
///
/// ```
/// use approval_gate::{ToolCall, trail::{AuditEvent, AuditRecord, ChainError, ChainHead, verify_chain}};
/// # use approval_gate::time::OffsetDateTime;
///
/// let call = ToolCall::new("run-1", "call-1", "email.send", serde_json::json!({}));
/// let event = AuditEvent::ApprovalDenied { approver: "ann".into(), feedback: None };
/// let record = AuditRecord::new(OffsetDateTime::UNIX_EPOCH, &call, None, "v1", event);
/// let (first, head) = ChainHead::GENESIS.link(&record);
/// let (second, _) = head.link(&record);
///
/// let mut tampered = second.clone();
/// tampered.tool = "email.send_all".into();
/// assert_eq!(verify_chain([&first, &tampered], None), Err(ChainError::Modified { seq: 2 }));
/// ```
pub fn verify_chain<'a>(
    records: impl IntoIterator<Item = &'a AuditRecord>,
    known_head: Option<&ChainHead>,
) -> Result<ChainHead, ChainError> {
    let mut verifier = ChainVerifier::new();
    if let Some(known) = known_head {
        verifier = verifier.expect_head(*known);
    }
    for record in records {
        verifier.push(record)?;
    }
    verifier.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::AuditEvent;
    use crate::call::ToolCall;
    use serde_json::json;
    use time::macros::datetime;

    fn trail(n: usize) -> (Vec<AuditRecord>, ChainHead) {
        let call = ToolCall::new("run-1", "c1", "email.send", json!({}));
        let mut head = ChainHead::GENESIS;
        let mut out = Vec::new();
        for i in 0..n {
            let event = AuditEvent::Stopped {
                reason: "test".into(),
                detail: Some(format!("{i}")),
            };
            let record = AuditRecord::new(datetime!(2026-01-01 00:00 UTC), &call, None, "v", event);
            let (linked, next) = head.link(&record);
            out.push(linked);
            head = next;
        }
        (out, head)
    }

    fn values(records: &[AuditRecord]) -> Vec<Value> {
        records
            .iter()
            .map(|r| serde_json::to_value(r).unwrap())
            .collect()
    }

    fn verify_values(values: &[Value], known: Option<ChainHead>) -> Result<ChainHead, ChainError> {
        let mut v = ChainVerifier::new();
        if let Some(k) = known {
            v = v.expect_head(k);
        }
        for value in values {
            v.push_value(value)?;
        }
        v.finish()
    }

    #[test]
    fn a_linked_trail_verifies_and_round_trips_through_json() {
        let (records, head) = trail(5);
        assert_eq!(head.seq, 5);
        assert_eq!(records[0].chain.unwrap().prev_hash, AuditHash::GENESIS);
        assert_eq!(verify_chain(&records, Some(&head)), Ok(head));
        let lines: Vec<String> = records
            .iter()
            .map(|r| serde_json::to_string(r).unwrap())
            .collect();
        let back: Vec<AuditRecord> = lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(back, records);
        assert!(lines[0].starts_with(r#"{"schema":1,"seq":1,"prev_hash":"0000"#));
    }

    #[test]
    fn a_modified_record_is_named() {
        let (records, _) = trail(4);
        let mut v = values(&records);
        v[2]["tool"] = json!("db.drop");
        assert_eq!(
            verify_values(&v, None),
            Err(ChainError::Modified { seq: 3 })
        );
        // An added field is a modification too.
        let mut v = values(&records);
        v[1]["approver"] = json!("mallory");
        assert_eq!(
            verify_values(&v, None),
            Err(ChainError::Modified { seq: 2 })
        );
    }

    #[test]
    fn a_deleted_record_is_named_at_the_gap() {
        let (mut records, _) = trail(4);
        records.remove(1);
        assert_eq!(
            verify_chain(&records, None),
            Err(ChainError::Missing {
                seq: 3,
                expected: 2
            })
        );
    }

    #[test]
    fn inserted_and_reordered_records_are_named() {
        let (mut records, _) = trail(4);
        records.swap(1, 2);
        assert_eq!(
            verify_chain(&records, None),
            Err(ChainError::Missing {
                seq: 3,
                expected: 2
            })
        );
        let (mut records, _) = trail(4);
        let copy = records[1].clone();
        records.insert(2, copy);
        assert_eq!(
            verify_chain(&records, None),
            Err(ChainError::Reordered {
                seq: 2,
                expected: 3
            })
        );
    }

    #[test]
    fn a_forged_record_with_a_valid_hash_does_not_link() {
        let (mut records, _) = trail(3);
        // Rewrite record 2 and rehash it on its own: record 2 now checks out, but
        // record 3 no longer links to it.
        let mut forged = records[1].clone();
        forged.run_id = "run-other".into();
        let before = ChainHead {
            seq: 1,
            hash: records[0].chain.unwrap().hash,
        };
        records[1] = before.link(&forged).0;
        assert_eq!(
            verify_chain(&records, None),
            Err(ChainError::Relinked { seq: 3 })
        );
    }

    #[test]
    fn a_cut_or_rewritten_tail_is_found_with_the_known_head() {
        let (records, head) = trail(5);
        assert_eq!(
            verify_chain(&records[..3], Some(&head)),
            Err(ChainError::Truncated {
                last_seq: 3,
                known_seq: 5
            })
        );
        assert!(
            verify_chain(&records[..3], None).is_ok(),
            "undetectable without it"
        );
        // Rewritten from record 4 on, chain and all.
        let mut rewritten = records[..3].to_vec();
        let mut at = ChainHead {
            seq: 3,
            hash: records[2].chain.unwrap().hash,
        };
        for r in &records[3..] {
            let mut r = r.clone();
            r.tool = "other".into();
            let (linked, next) = at.link(&r);
            rewritten.push(linked);
            at = next;
        }
        assert_eq!(
            verify_chain(&rewritten, Some(&head)),
            Err(ChainError::HeadMismatch { seq: 5 })
        );
    }

    #[test]
    fn unchained_records_are_refused() {
        let (records, _) = trail(1);
        let mut v = values(&records);
        v[0].as_object_mut().unwrap().remove("prev_hash");
        assert!(matches!(
            verify_values(&v, None),
            Err(ChainError::Unchained { position: 1, .. })
        ));
        assert!(matches!(
            verify_values(&[json!([1])], None),
            Err(ChainError::Unchained { .. })
        ));
    }

    #[test]
    fn hashes_parse_and_print_as_hex() {
        let h: AuditHash = "ab".repeat(32).parse().unwrap();
        assert_eq!(h.to_string(), "ab".repeat(32));
        assert!("xyz".parse::<AuditHash>().is_err());
    }
}
