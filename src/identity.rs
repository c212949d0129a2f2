//! People's ids: who asked for a call, who decides it, and the tenant both belong to.
//!
//! One person, one id. An id is compared in its canonical form: Unicode NFKC, then
//! lowercase, then NFKC again (the shape of PRECIS `UsernameCaseMapped`, RFC 8265, with
//! compatibility normalization in place of its width mapping), so `Ann`, `ＡＮＮ` (full
//! width) and `ann` are one id. An id that is empty, starts or ends with a space, has
//! two spaces in a row, has a control, format (zero-width, bidirectional), invisible,
//! private-use or unassigned character, or mixes scripts the way look-alikes do (a
//! Cyrillic `а` among Latin letters) is no id: [`id_problem`] says why.
//!
//! Two valid ids that differ may still look alike (Cyrillic `асе` and Latin `ace`, `rn`
//! and `m`). Where telling them apart would let one person act twice (approving their
//! own call, casting two votes) they count as one person: [`same_person`] compares the
//! UTS #39 confusable skeletons of the canonical forms. Where an id grants something
//! (a tenant, a grant's user), only the same canonical id matches: [`same_id`].
//!
//! Pure: no I/O, and nothing from the gate, desk or store.

use thiserror::Error;
use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
use unicode_script::Script;
use unicode_security::general_security_profile::IdentifierType;
use unicode_security::mixed_script::AugmentedScriptSet;
use unicode_security::{GeneralSecurityProfile, skeleton};

/// Why a string cannot be the id of a person (an approver, a requester) or of a tenant.
///
/// ```
/// use approval_gate::{IdError, canonical_id};
///
/// assert_eq!(canonical_id("Ann").unwrap(), "ann");
/// assert_eq!(canonical_id(" "), Err(IdError::Empty));
/// assert!(matches!(canonical_id("ann\u{200b}"), Err(IdError::Character { .. })));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum IdError {
    /// The id is empty, or only spaces.
    #[error("the id is empty")]
    Empty,
    /// The id starts or ends with a space, or has two in a row: it would look like
    /// another id.
    #[error("the id `{id}` starts or ends with a space, or has two spaces in a row")]
    Spaces {
        /// The id as given, escaped and cut to 64 characters.
        id: String,
    },
    /// The id has a control, format (zero-width, bidirectional), other invisible,
    /// separator, private-use or unassigned character.
    #[error(
        "the id `{id}` has the character `{}`, which no id may have \
         (a control, format, invisible, private-use or unassigned character)",
        character.escape_unicode()
    )]
    Character {
        /// The id as given, escaped and cut to 64 characters.
        id: String,
        /// The first such character, after normalization.
        character: char,
    },
    /// The id mixes letters of scripts that are not written together (Latin with
    /// Cyrillic or Greek, say), the way an id made to pass for another does. Latin with
    /// Han, Japanese or Korean is allowed (UTS #39, highly restrictive).
    #[error("the id `{id}` mixes the letters of different scripts, such as Latin and Cyrillic")]
    MixedScripts {
        /// The id as given, escaped and cut to 64 characters.
        id: String,
    },
}

/// The canonical form of `id`, if `id` is a valid id: what the gate records and compares
/// for approvers, requesters and tenants.
///
/// `Approver::new`, `Approver::tenant`, `ToolCall::requested_by` and `ToolCall::tenant`
/// keep this form already; a host calls it to look up by id, for example to fill
/// `RequestQuery::tenant`.
///
/// ```
/// use approval_gate::canonical_id;
///
/// assert_eq!(canonical_id("ACME").unwrap(), "acme");
/// assert_eq!(canonical_id("ＡＮＮ").unwrap(), "ann");
/// assert!(canonical_id("").is_err());
/// assert!(canonical_id("\u{430}nn").is_err()); // a Cyrillic `а` before Latin `nn`
/// ```
pub fn canonical_id(id: &str) -> Result<String, IdError> {
    match id_problem(id) {
        Some(problem) => Err(problem),
        None => Ok(canonical(id)),
    }
}

/// The canonical form of `id`: NFKC, lowercase, NFKC. Idempotent; gives a form even for
/// an invalid id (which [`id_problem`] then refuses).
pub(crate) fn canonical(id: &str) -> String {
    if id.is_ascii() {
        // ASCII is its own NFKC form.
        return id.to_ascii_lowercase();
    }
    let lowered = id.nfkc().collect::<String>().to_lowercase();
    lowered.nfkc().collect()
}

/// [`canonical`], keeping `id` itself when it is canonical already (lowercase ASCII).
pub(crate) fn into_canonical(id: String) -> String {
    if id.bytes().all(|b| b.is_ascii() && !b.is_ascii_uppercase()) {
        id
    } else {
        canonical(&id)
    }
}

/// Why `id` cannot be an id, if it cannot (see [`IdError`]). Allocates only for ids
/// outside printable ASCII.
pub(crate) fn id_problem(id: &str) -> Option<IdError> {
    if !id.is_empty() && id.bytes().all(|b| b.is_ascii_graphic()) {
        return None;
    }
    let canon = canonical(id);
    if canon.chars().all(|c| c == ' ') {
        return Some(IdError::Empty);
    }
    if let Some(character) = canon.chars().find(|&c| refused(c)) {
        return Some(IdError::Character {
            id: shown(id),
            character,
        });
    }
    if canon.starts_with(' ') || canon.ends_with(' ') || canon.contains("  ") {
        return Some(IdError::Spaces { id: shown(id) });
    }
    if !scripts_allowed(&canon) {
        return Some(IdError::MixedScripts { id: shown(id) });
    }
    None
}

/// Whether `a` and `b` may be the same person: the same canonical id, or canonical ids
/// that look alike (the same UTS #39 confusable skeleton). Used where counting two
/// look-alikes as two people would let one person act twice.
pub(crate) fn same_person(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    let (a, b) = (canonical(a), canonical(b));
    a == b || skeleton(&a).eq(skeleton(&b))
}

/// Whether `a` and `b` are the same id: equal canonical forms. Look-alikes are different
/// ids here: used where an id grants something (tenant matching, a grant's user scope).
pub(crate) fn same_id(a: &str, b: &str) -> bool {
    a == b || canonical(a) == canonical(b)
}

/// Whether two optional tenants are the same: both absent, or the same id.
pub(crate) fn same_tenant(a: Option<&str>, b: Option<&str>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => same_id(a, b),
        _ => false,
    }
}

/// Characters no id may have: controls, format characters (zero-width, bidirectional),
/// separators other than the space, private use, surrogates, unassigned code points and
/// noncharacters (general category `C*`, `Z*`), and the rest of the default-ignorable
/// characters, invisible wherever they stand (variation selectors, Hangul fillers).
fn refused(c: char) -> bool {
    if c == ' ' {
        return false;
    }
    matches!(
        c.general_category(),
        GeneralCategory::Control
            | GeneralCategory::Format
            | GeneralCategory::Surrogate
            | GeneralCategory::PrivateUse
            | GeneralCategory::Unassigned
            | GeneralCategory::SpaceSeparator
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator
    ) || c.identifier_type() == Some(IdentifierType::Default_Ignorable)
}

/// Whether `id` keeps to one script, or to Latin with Han, Japanese or Korean: UTS #39's
/// "highly restrictive" level, without its limits on punctuation (ids are often mail
/// addresses). Digits, punctuation and combining marks go with any script.
fn scripts_allowed(id: &str) -> bool {
    let mut all = AugmentedScriptSet::default();
    let mut besides_latin = AugmentedScriptSet::default();
    for c in id.chars() {
        let set = AugmentedScriptSet::for_char(c);
        all.intersect_with(set);
        if !set.base.contains_script(Script::Latin) {
            besides_latin.intersect_with(set);
        }
    }
    !all.is_empty() || besides_latin.hanb || besides_latin.jpan || besides_latin.kore
}

/// `id` as an error shows it: escaped, cut to 64 characters.
fn shown(id: &str) -> String {
    let cut: String = id.chars().take(64).collect();
    let more = if cut.len() < id.len() { "…" } else { "" };
    format!("{}{more}", cut.escape_debug())
}

#[cfg(test)]
mod tests {
    use super::*;

    use proptest::prelude::*;

    #[test]
    fn the_canonical_form_folds_case_and_width() {
        assert_eq!(canonical("Ann"), "ann");
        assert_eq!(canonical("ＡＮＮ"), "ann");
        assert_eq!(canonical("ǅ"), "dž");
        assert_eq!(canonical("ΟΔΟΣ"), "οδος");
        assert_eq!(canonical("ﬃ"), "ffi");
        assert_eq!(canonical("ann\u{a0}lee"), "ann lee");
        assert_eq!(canonical("e\u{301}"), "é");
    }

    #[test]
    fn ids_of_the_wrong_form_are_refused() {
        for ok in [
            "ann",
            "Ann Lee",
            "ann@example.com",
            "田中@example.com",
            "асе",
            "ανν",
            "bob-1",
        ] {
            assert_eq!(id_problem(ok), None, "{ok:?}");
        }
        for empty in ["", " ", "   ", "\u{3000}", "\u{a0}"] {
            assert_eq!(id_problem(empty), Some(IdError::Empty), "{empty:?}");
        }
        for spaces in [" ann", "ann ", "ann  lee", "ann\u{2003}"] {
            assert!(
                matches!(id_problem(spaces), Some(IdError::Spaces { .. })),
                "{spaces:?}"
            );
        }
        for bad in [
            "ann\u{200b}",
            "\u{202e}nna",
            "an\u{200d}n",
            "ann\u{feff}",
            "ann\u{ad}",
            "ann\u{fe0f}",
            "ann\u{3164}",
            "ann\t",
            "an\nn",
            "ann\u{2028}",
            "ann\u{e000}",
            "ann\u{378}",
            "ann\u{fffe}",
            "ann\u{1680}",
        ] {
            assert!(
                matches!(id_problem(bad), Some(IdError::Character { .. })),
                "{bad:?}: {:?}",
                id_problem(bad)
            );
        }
        for mixed in ["\u{430}nn", "pay\u{440}al", "ann\u{3b1}"] {
            assert!(
                matches!(id_problem(mixed), Some(IdError::MixedScripts { .. })),
                "{mixed:?}"
            );
        }
    }

    #[test]
    fn errors_show_the_id_escaped_and_cut() {
        let long = format!("{}\u{200b}", "x".repeat(10_000));
        let message = id_problem(&long).unwrap().to_string();
        assert!(message.len() < 300, "{message}");
        assert!(message.contains("…"), "{message}");
        assert_eq!(
            id_problem("ann\u{200b}").unwrap().to_string(),
            "the id `ann\\u{200b}` has the character `\\u{200b}`, which no id may have \
             (a control, format, invisible, private-use or unassigned character)"
        );
    }

    #[test]
    fn look_alikes_are_one_person_but_not_one_id() {
        assert!(same_person("ann", "ANN"));
        assert!(same_person("ace", "асе"));
        assert!(same_person("ann", "ann\u{200b}"));
        assert!(!same_person("ann", "bob"));
        assert!(!same_person("ann", " ann"));
        assert!(same_id("Acme", "acme"));
        assert!(!same_id("ace", "асе"));
        assert!(same_tenant(None, None));
        assert!(same_tenant(Some("ACME"), Some("acme")));
        assert!(!same_tenant(Some("acme"), None));
    }

    proptest! {
        #[test]
        fn the_canonical_form_is_a_fixed_point(id in any::<String>()) {
            let once = canonical(&id);
            prop_assert_eq!(canonical(&once), once.clone());
            prop_assert_eq!(id_problem(&once).is_none(), id_problem(&id).is_none());
        }
    }
}
