//! [`Policy::check_yaml`](super::Policy::check_yaml): every error of a YAML config, not
//! only the first one that stops its loading.
//!
//! The loader stops at the first error. To find the next ones, the check sets aside the
//! part of the text that holds the error (the whole rule, for an error in a rule; the one
//! `key: value` line, for an error elsewhere) by blanking its lines, so that every line
//! keeps its number, and loads again. Rules set aside are counted so that the next errors
//! still name each rule by its index in the file. It stops where it cannot set the error
//! aside (the text is not YAML, or the error spans more than one line outside the rules),
//! so that no error it reports is an echo of one it reported.

use super::{Policy, PolicyError};

/// The most errors one check reports.
pub(crate) const MAX_ERRORS: usize = 100;

/// Every error of `yaml`, in the order found; empty when it loads.
pub(crate) fn check_yaml(yaml: &str) -> Vec<PolicyError> {
    let mut lines: Vec<String> = yaml.lines().map(str::to_owned).collect();
    // The file's indices of the rules set aside, in order.
    let mut set_aside: Vec<usize> = Vec::new();
    let mut errors: Vec<PolicyError> = Vec::new();
    let mut blanked_field: Option<String> = None;
    while errors.len() < MAX_ERRORS {
        let text = lines.join("\n");
        let Err(error) = Policy::from_yaml_str(&text) else {
            break;
        };
        let Some(field) = error.field().map(str::to_owned).filter(|f| !f.is_empty()) else {
            errors.push(error);
            break;
        };
        // A key set aside may leave its map missing it: the cause was reported already.
        if blanked_field.as_deref() == Some(field.as_str()) {
            break;
        }
        let aside = set_aside.clone();
        let in_file = move |text: &str| renumber(text, &aside);
        if let Some(k) = rule_index(&field) {
            let items = rule_items(&lines);
            let Some(&(start, end)) = items.get(k) else {
                errors.push(placed(error, &in_file, None));
                break;
            };
            let line = find_in_item(&lines, start, end, &field).unwrap_or(start);
            errors.push(placed(error, &in_file, Some(line)));
            for blank in &mut lines[start..end] {
                blank.clear();
            }
            if items.len() == 1 {
                // No rule left: an empty list, not a missing one.
                if let Some(at) = top_key(&lines, "rules") {
                    lines[at] = "rules: []".to_owned();
                }
            }
            let original = original_index(k, &set_aside);
            let at = set_aside.partition_point(|&r| r < original);
            set_aside.insert(at, original);
            blanked_field = None;
            continue;
        }
        let line = match error.line() {
            Some(line) => Some(line.saturating_sub(1)),
            None => find_field(&lines, &field),
        };
        errors.push(placed(error, &in_file, line));
        match line {
            Some(line) if line < lines.len() && is_leaf(&lines, line) => {
                lines[line].clear();
                blanked_field = Some(field);
            }
            _ => break,
        }
    }
    errors
}

/// `error`, from the whole-config checks that come after the YAML is read, with the line
/// of its field where `yaml` spells it in block style (for a list's item, the list's
/// line); as it was otherwise.
pub(crate) fn with_line(yaml: &str, error: PolicyError) -> PolicyError {
    let PolicyError::InvalidConfig { field, .. } = &error else {
        return error;
    };
    let lines: Vec<String> = yaml.lines().map(str::to_owned).collect();
    let list = match field.rsplit_once('.') {
        Some((_, last)) if last.contains('[') => field.split_once('[').map(|(list, _)| list),
        _ => None,
    };
    let line = find_field(&lines, field).or_else(|| find_field(&lines, list?));
    placed(error, &|text| text.to_owned(), line)
}

/// `error` with its field and message as in the file (`in_file` renumbers), and a line
/// (0-based) where it had none.
fn placed(
    error: PolicyError,
    in_file: &dyn Fn(&str) -> String,
    line: Option<usize>,
) -> PolicyError {
    match error {
        PolicyError::Invalid {
            line,
            column,
            message,
            field,
        } => PolicyError::Invalid {
            field: in_file(&field),
            line,
            column,
            message: in_file(&message),
        },
        PolicyError::InvalidConfig { field, message } => match line {
            Some(line) => PolicyError::Invalid {
                field: in_file(&field),
                line: line + 1,
                column: 1,
                message: in_file(&message),
            },
            None => PolicyError::InvalidConfig {
                field: in_file(&field),
                message: in_file(&message),
            },
        },
        other => other,
    }
}

/// The rule a field is in: `k` of `rules[k]…`.
fn rule_index(field: &str) -> Option<usize> {
    let rest = field.strip_prefix("rules[")?;
    rest[..rest.find(']')?].parse().ok()
}

/// The file's index of the rule at index `k` once the rules `set_aside` (file indices, in
/// order) are gone.
fn original_index(k: usize, set_aside: &[usize]) -> usize {
    let mut original = k;
    for &gone in set_aside {
        if gone <= original {
            original += 1;
        }
    }
    original
}

/// `text` (a field, or a message naming rules) with every `rules[k]` in it numbered as
/// in the file.
fn renumber(text: &str, set_aside: &[usize]) -> String {
    if set_aside.is_empty() {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("rules[") {
        let (before, after) = rest.split_at(at + "rules[".len());
        out.push_str(before);
        let digits = after.len() - after.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        match after[..digits].parse::<usize>() {
            Ok(k) if after[digits..].starts_with(']') => {
                out.push_str(&original_index(k, set_aside).to_string());
            }
            _ => out.push_str(&after[..digits]),
        }
        rest = &after[digits..];
    }
    out.push_str(rest);
    out
}

/// The indentation of a line, in spaces.
fn indent(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

/// Whether a line says nothing: blank, or a comment.
fn is_blank(line: &str) -> bool {
    let t = line.trim();
    t.is_empty() || t.starts_with('#')
}

/// Whether a (trimmed) line starts a list item.
fn is_item(trimmed: &str) -> bool {
    trimmed == "-" || trimmed.starts_with("- ")
}

/// Whether a (trimmed) line is, or starts with, the key `key`.
fn has_key(trimmed: &str, key: &str) -> bool {
    let t = trimmed.strip_prefix("- ").unwrap_or(trimmed).trim_start();
    t.strip_prefix(key).is_some_and(|rest| {
        rest.starts_with(':') && (rest.len() == 1 || rest[1..].starts_with(' '))
    })
}

/// The lines (from, to) of the block under the key on line `at`: what follows it, more
/// indented, or at the same indentation as list items.
fn block(lines: &[String], at: usize) -> (usize, usize) {
    let base = indent(&lines[at]);
    let mut end = at + 1;
    for (i, line) in lines.iter().enumerate().skip(at + 1) {
        if is_blank(line) {
            continue;
        }
        let i_ = indent(line);
        if i_ > base || (i_ == base && is_item(line.trim_start())) {
            end = i + 1;
        } else {
            break;
        }
    }
    (at + 1, end)
}

/// The items (first line, end) of the block list between lines `from` and `to`.
fn items(lines: &[String], from: usize, to: usize) -> Vec<(usize, usize)> {
    let Some(item_indent) = lines[from..to]
        .iter()
        .find(|l| !is_blank(l))
        .filter(|l| is_item(l.trim_start()))
        .map(|l| indent(l))
    else {
        return Vec::new();
    };
    let starts: Vec<usize> = (from..to)
        .filter(|&i| indent(&lines[i]) == item_indent && is_item(lines[i].trim_start()))
        .collect();
    starts
        .iter()
        .enumerate()
        .map(|(n, &s)| (s, starts.get(n + 1).copied().unwrap_or(to)))
        .collect()
}

/// The line of the top-level key `key`.
fn top_key(lines: &[String], key: &str) -> Option<usize> {
    lines
        .iter()
        .position(|l| indent(l) == 0 && has_key(l.trim_start(), key))
}

/// The items of the `rules` list, as written in block style.
fn rule_items(lines: &[String]) -> Vec<(usize, usize)> {
    match top_key(lines, "rules") {
        Some(at) => {
            let (from, to) = block(lines, at);
            items(lines, from, to)
        }
        None => Vec::new(),
    }
}

/// The line, in the rule between `start` and `end`, of the key that `field`
/// (`rules[k].key…`) names; `None` when it names the rule itself.
fn find_in_item(lines: &[String], start: usize, end: usize, field: &str) -> Option<usize> {
    let key = field.split_once("].")?.1;
    let key = key.split(['.', '[']).next()?;
    let key_indent = indent(&lines[start]) + 2;
    (start..end).find(|&i| {
        let line = &lines[i];
        (i == start || indent(line) == key_indent) && has_key(line.trim_start(), key)
    })
}

/// The line of `field` (`approvals.ttl_seconds`, `tiers.critical.quorum`), found by its
/// keys; `None` where the text does not spell it in block style.
fn find_field(lines: &[String], field: &str) -> Option<usize> {
    let mut keys = field.split('.');
    let mut at = top_key(lines, keys.next()?)?;
    for key in keys {
        if key.contains('[') {
            return None;
        }
        let (from, to) = block(lines, at);
        let inner = lines[from..to]
            .iter()
            .find(|l| !is_blank(l))
            .map(|l| indent(l))?;
        at = (from..to)
            .find(|&i| indent(&lines[i]) == inner && has_key(lines[i].trim_start(), key))?;
    }
    Some(at)
}

/// Whether line `at` is one `key: value`, with nothing under it.
fn is_leaf(lines: &[String], at: usize) -> bool {
    let line = lines[at].trim_start();
    if is_item(line) {
        return false;
    }
    let Some((_, value)) = line.split_once(':') else {
        return false;
    };
    let value = value.trim();
    if value.is_empty() || value.starts_with('|') || value.starts_with('>') {
        return false;
    }
    let (from, to) = block(lines, at);
    lines[from..to].iter().all(|l| is_blank(l))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(yaml: &str) -> Vec<(String, Option<usize>)> {
        check_yaml(yaml)
            .iter()
            .map(|e| (e.field().unwrap_or("").to_owned(), e.line()))
            .collect()
    }

    #[test]
    fn a_config_that_loads_has_no_errors() {
        assert!(check_yaml("approvals:\n  required_for: [email.send]\n").is_empty());
    }

    #[test]
    fn every_broken_rule_is_reported_under_its_own_index() {
        let yaml = "\
rules:
  - id: a
    tool: db.write
    effect: approval_required
    tier: critcal
  - id: b
    tool: db.read
    effect: allow
  - id: c
    tool: db.drop
    effect: explode
  - id: d
    tool: db.write
    effect: approval_required
    tier: nope
";
        assert_eq!(
            fields(yaml),
            [
                ("rules[0].tier".to_owned(), Some(5)),
                ("rules[2].effect".to_owned(), Some(11)),
                ("rules[3].tier".to_owned(), Some(15)),
            ]
        );
    }

    #[test]
    fn errors_outside_the_rules_are_reported_with_the_rules_after_them() {
        let yaml = "\
approvals:
  ttl_seconds: soon
  required_for: [email.send]
rules:
  - id: a
    tool: db.write
    effect: maybe
";
        assert_eq!(
            fields(yaml),
            [
                ("approvals.ttl_seconds".to_owned(), Some(2)),
                ("rules[0].effect".to_owned(), Some(7)),
            ]
        );
    }

    #[test]
    fn errors_of_the_whole_config_checks_get_a_line_and_the_file_s_indices() {
        let yaml = "\
rules:
  - id: a
    tool: db.write
    effect: maybe
  - id: b
    tool: db.read
    effect: allow
  - id: b
    tool: db.drop
    effect: deny
";
        let errors = check_yaml(yaml);
        let found: Vec<_> = errors
            .iter()
            .map(|e| (e.field().unwrap_or(""), e.line(), e.message().unwrap_or("")))
            .collect();
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!((found[1].0, found[1].1), ("rules[2].id", Some(8)));
        assert!(found[1].2.contains("rules[1]"), "{}", found[1].2);
    }

    #[test]
    fn text_that_is_not_yaml_is_one_error() {
        let errors = check_yaml("rules: [\n  - a\n");
        assert_eq!(errors.len(), 1);
        assert!(matches!(errors[0], PolicyError::Syntax { .. }));
    }

    #[test]
    fn the_first_error_is_the_one_loading_gives() {
        let yaml = "rules:\n  - id: r\n    tool: db.write\n    effect: approval_required\n    tier: critcal\n";
        let loading = Policy::from_yaml_str(yaml).unwrap_err();
        let checked = check_yaml(yaml);
        assert_eq!(checked.len(), 1);
        assert_eq!(checked[0].to_string(), loading.to_string());
    }

    #[test]
    fn indices_count_the_rules_set_aside() {
        assert_eq!(original_index(0, &[0]), 1);
        assert_eq!(original_index(0, &[0, 1]), 2);
        assert_eq!(original_index(1, &[0, 2]), 3);
        assert_eq!(original_index(2, &[5]), 2);
        assert_eq!(renumber("rules[1].tier", &[0]), "rules[2].tier");
        assert_eq!(
            renumber("approvals.ttl_seconds", &[0]),
            "approvals.ttl_seconds"
        );
    }
}
