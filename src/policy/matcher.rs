//! [`ToolIndex`]: which rules may apply to a tool name, found without scanning every rule.

use std::collections::HashMap;

use super::pattern::glob_matches;

/// The tool patterns of all rules, sorted by kind so a lookup is one hash probe plus short
/// scans of the glob lists.
#[derive(Debug, Clone, Default)]
pub(crate) struct ToolIndex {
    /// Exact names.
    exact: HashMap<Box<str>, Vec<u32>>,
    /// `x*`: the prefix.
    prefix: Vec<(Box<str>, u32)>,
    /// `*x`: the suffix.
    suffix: Vec<(Box<str>, u32)>,
    /// `*` (or only stars): every tool.
    every: Vec<u32>,
    /// Anything else with a `*`.
    general: Vec<(Box<str>, u32)>,
}

impl ToolIndex {
    /// Adds `pattern` for the rule at `rule`.
    pub(crate) fn insert(&mut self, pattern: &str, rule: u32) {
        let stars = pattern.matches('*').count();
        if stars == 0 {
            self.exact.entry(pattern.into()).or_default().push(rule);
        } else if stars == pattern.len() {
            self.every.push(rule);
        } else if stars == 1 && pattern.ends_with('*') {
            self.prefix
                .push((pattern[..pattern.len() - 1].into(), rule));
        } else if stars == 1 && pattern.starts_with('*') {
            self.suffix.push((pattern[1..].into(), rule));
        } else {
            self.general.push((pattern.into(), rule));
        }
    }

    /// The rules with a pattern matching `tool`, in no particular order; a rule appears once
    /// per matching pattern. Allocates nothing.
    pub(crate) fn candidates<'a>(&'a self, tool: &'a str) -> impl Iterator<Item = u32> + 'a {
        let exact = self.exact.get(tool).map(Vec::as_slice).unwrap_or_default();
        exact
            .iter()
            .copied()
            .chain(self.every.iter().copied())
            .chain(
                self.prefix
                    .iter()
                    .filter(move |(p, _)| tool.starts_with(&**p))
                    .map(|(_, r)| *r),
            )
            .chain(
                self.suffix
                    .iter()
                    .filter(move |(s, _)| tool.ends_with(&**s))
                    .map(|(_, r)| *r),
            )
            .chain(
                self.general
                    .iter()
                    .filter(move |(g, _)| glob_matches(g, tool))
                    .map(|(_, r)| *r),
            )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_come_from_every_kind_of_pattern() {
        let mut index = ToolIndex::default();
        index.insert("db.write", 0);
        index.insert("db.*", 1);
        index.insert("*.write", 2);
        index.insert("*", 3);
        index.insert("d*.w*", 4);
        index.insert("email.send", 5);
        let mut got: Vec<u32> = index.candidates("db.write").collect();
        got.sort();
        assert_eq!(got, [0, 1, 2, 3, 4]);
        let mut got: Vec<u32> = index.candidates("email.send").collect();
        got.sort();
        assert_eq!(got, [3, 5]);
        assert_eq!(index.candidates("x").collect::<Vec<_>>(), [3]);
    }
}
