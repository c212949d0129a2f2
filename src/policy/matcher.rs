//! [`ToolIndex`]: which rules may apply to a tool name, found without scanning every rule.
//!
//! Finding the candidates for a tool costs one hash probe for exact names plus one walk
//! down each of two byte tries (one over prefixes, one over reversed suffixes), so it grows
//! with the length of the tool name, not with the number of rules. Only a glob whose literal
//! prefix and suffix are both empty (`*a*`) cannot be placed in a trie and is scanned.

use std::collections::HashMap;

use super::pattern::glob_matches;

/// The tool patterns of all rules, sorted by kind so a lookup never scans the rules.
///
/// - an exact name (`db.write`) is a key of `exact`;
/// - `*` (or only stars) matches every tool and is in `every`;
/// - a prefix glob `x*` is a rule at the node for `x` in `forward`, which the walk along
///   the tool's bytes passes exactly when the tool starts with `x`;
/// - a suffix glob `*x` is a rule at the node for `x` reversed in `backward`;
/// - any other glob is kept, with its pattern, at the node for its literal prefix (the text
///   before the first `*`) in `forward`, or, when that is empty, at the node for its literal
///   suffix (after the last `*`) in `backward`, and is confirmed with [`glob_matches`] when
///   the walk passes it;
/// - a glob with neither a literal prefix nor a literal suffix (`*a*`, `*a*b*`) is in
///   `scanned`, tested against every tool. Such patterns are rare (they say "the name
///   contains"), so the list stays short; it is the one part whose cost grows with the
///   number of patterns.
///
/// The tries work on bytes: a pattern's literal part is a whole `str`, so a byte-wise
/// match ends on a character boundary of the tool by construction.
#[derive(Debug, Clone, Default)]
pub(crate) struct ToolIndex {
    /// Exact names.
    exact: HashMap<Box<str>, Vec<u32>>,
    /// `*` (or only stars): every tool.
    every: Vec<u32>,
    /// `x*` by `x`, and other globs by their literal prefix.
    forward: Trie,
    /// `*x` by `x` reversed, and other globs without a literal prefix by their literal
    /// suffix reversed.
    backward: Trie,
    /// Globs with neither a literal prefix nor a literal suffix.
    scanned: Vec<(Box<str>, u32)>,
}

impl ToolIndex {
    /// Adds `pattern` for the rule at `rule`.
    pub(crate) fn insert(&mut self, pattern: &str, rule: u32) {
        let stars = pattern.matches('*').count();
        if stars == 0 {
            self.exact.entry(pattern.into()).or_default().push(rule);
            return;
        }
        if stars == pattern.len() {
            self.every.push(rule);
            return;
        }
        // Both found, since the pattern has a `*`.
        let first = pattern.find('*').unwrap_or(0);
        let last = pattern.rfind('*').unwrap_or(0);
        let (prefix, suffix) = (&pattern[..first], &pattern[last + 1..]);
        if stars == 1 && suffix.is_empty() {
            self.forward.node(prefix.bytes()).rules.push(rule);
        } else if stars == 1 && prefix.is_empty() {
            self.backward.node(suffix.bytes().rev()).rules.push(rule);
        } else if !prefix.is_empty() {
            let node = self.forward.node(prefix.bytes());
            node.globs.push((pattern.into(), rule));
        } else if !suffix.is_empty() {
            let node = self.backward.node(suffix.bytes().rev());
            node.globs.push((pattern.into(), rule));
        } else {
            self.scanned.push((pattern.into(), rule));
        }
    }

    /// The rules with a pattern matching `tool`, in no particular order; a rule appears once
    /// per matching pattern. Allocates nothing.
    pub(crate) fn candidates<'a>(&'a self, tool: &'a str) -> impl Iterator<Item = u32> + 'a {
        let exact = self.exact.get(tool).map(Vec::as_slice).unwrap_or_default();
        let passed = self
            .forward
            .path(tool.bytes())
            .chain(self.backward.path(tool.bytes().rev()));
        exact
            .iter()
            .copied()
            .chain(self.every.iter().copied())
            .chain(passed.flat_map(move |node| {
                node.rules.iter().copied().chain(
                    node.globs
                        .iter()
                        .filter(move |(g, _)| glob_matches(g, tool))
                        .map(|(_, r)| *r),
                )
            }))
            .chain(
                self.scanned
                    .iter()
                    .filter(move |(g, _)| glob_matches(g, tool))
                    .map(|(_, r)| *r),
            )
    }
}

/// A byte trie whose nodes hold rules; `nodes[0]` is the root (the empty key) once anything
/// was inserted.
#[derive(Debug, Clone, Default)]
struct Trie {
    nodes: Vec<Node>,
}

/// One node of a [`Trie`]: the key spelled by the path from the root to it.
#[derive(Debug, Clone, Default)]
struct Node {
    /// The next byte and the index of the child, sorted by byte.
    children: Vec<(u8, u32)>,
    /// Rules that match every tool whose key starts with this node's key.
    rules: Vec<u32>,
    /// Globs to confirm with [`glob_matches`] for such a tool.
    globs: Vec<(Box<str>, u32)>,
}

impl Trie {
    /// The node for `key`, made with its path if it is new.
    fn node(&mut self, key: impl Iterator<Item = u8>) -> &mut Node {
        if self.nodes.is_empty() {
            self.nodes.push(Node::default());
        }
        let mut at = 0;
        for byte in key {
            at = match self.nodes[at].children.binary_search_by_key(&byte, |c| c.0) {
                Ok(i) => self.nodes[at].children[i].1 as usize,
                Err(i) => {
                    let child = self.nodes.len();
                    let index = u32::try_from(child).expect("fewer than 2^32 trie nodes");
                    self.nodes[at].children.insert(i, (byte, index));
                    self.nodes.push(Node::default());
                    child
                }
            };
        }
        &mut self.nodes[at]
    }

    /// The nodes that hold rules or globs and whose keys begin `key`, from the root down:
    /// one step per byte, stopping at the first byte no key shares.
    fn path<I: Iterator<Item = u8>>(&self, key: I) -> Walk<'_, I> {
        Walk {
            nodes: &self.nodes,
            key,
            at: self.nodes.first(),
        }
    }
}

/// The walk of [`Trie::path`]: a tight loop over the bytes that stops only at nodes with
/// something to give, so passing through the empty nodes of a long key stays cheap.
struct Walk<'a, I> {
    nodes: &'a [Node],
    key: I,
    at: Option<&'a Node>,
}

impl<'a, I: Iterator<Item = u8>> Iterator for Walk<'a, I> {
    type Item = &'a Node;

    fn next(&mut self) -> Option<&'a Node> {
        loop {
            let node = self.at?;
            self.at = self.key.next().and_then(|byte| {
                let i = node.children.binary_search_by_key(&byte, |c| c.0).ok()?;
                self.nodes.get(node.children[i].1 as usize)
            });
            if !node.rules.is_empty() || !node.globs.is_empty() {
                return Some(node);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(index: &ToolIndex, tool: &str) -> Vec<u32> {
        let mut got: Vec<u32> = index.candidates(tool).collect();
        got.sort_unstable();
        got
    }

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

    #[test]
    fn an_empty_index_has_no_candidates() {
        let index = ToolIndex::default();
        assert_eq!(index.candidates("db.write").count(), 0);
        assert_eq!(index.candidates("").count(), 0);
    }

    #[test]
    fn many_patterns_of_each_kind_give_only_their_matches() {
        let mut index = ToolIndex::default();
        let mut rule = 0u32;
        let mut next = || {
            rule += 1;
            rule - 1
        };
        let mut want_exact = 0;
        let mut want_prefix = 0;
        let mut want_suffix = 0;
        let mut want_general = 0;
        for i in 0..500 {
            let r = next();
            index.insert(&format!("svc{i}.op"), r);
            if i == 42 {
                want_exact = r;
            }
            let r = next();
            index.insert(&format!("svc{i}.*"), r);
            if i == 42 {
                want_prefix = r;
            }
            let r = next();
            index.insert(&format!("*.op{i}"), r);
            if i == 7 {
                want_suffix = r;
            }
            let r = next();
            index.insert(&format!("svc{i}*.o*"), r);
            if i == 4 {
                want_general = r;
            }
        }
        // `svc42.op` is matched by `svc42.op`, `svc42.*`, `svc42*.o*` and `svc4*.o*` (the
        // prefix `svc4` also begins `svc42`), but by no suffix glob and no other exact name.
        let got = sorted(&index, "svc42.op");
        let also_general_42 = 4 * 42 + 3;
        let mut want = vec![want_exact, want_prefix, want_general, also_general_42];
        want.sort_unstable();
        assert_eq!(got, want);
        assert_eq!(sorted(&index, "other.op7"), [want_suffix]);
        assert!(sorted(&index, "unknown").is_empty());
    }

    /// A small deterministic generator, so the test needs no crate and fails the same way
    /// every time.
    fn lcg(state: &mut u64) -> u64 {
        *state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        *state >> 33
    }

    #[test]
    fn candidates_equal_a_scan_of_every_pattern() {
        let mut patterns: Vec<String> = [
            "*",
            "**",
            "db.*",
            "db.write",
            "*.write",
            "d*.w*",
            "*a*",
            "*é*",
            "*.ré*d",
            "*é",
            "é*",
            "ü.*",
            "*ü",
            "a*b*c",
            "ab*ba",
            "*x*.purge",
            "*.*",
            "db.*.admin",
            "日本*",
            "*語",
            "日*語",
            "a?c",
            "**x",
            "x**",
            "*d*b*",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let alphabet = ['a', 'b', 'd', '.', 'é', 'ü', '日', '*', 'x'];
        let mut state = 7;
        for _ in 0..400 {
            let len = 1 + lcg(&mut state) % 6;
            let p: String = (0..len)
                .map(|_| alphabet[(lcg(&mut state) % alphabet.len() as u64) as usize])
                .collect();
            patterns.push(p);
        }
        let mut index = ToolIndex::default();
        for (i, p) in patterns.iter().enumerate() {
            index.insert(p, i as u32);
        }
        let mut tools: Vec<String> = [
            "",
            "db.write",
            "db.",
            "db",
            "d.w",
            "ab",
            "aba",
            "abba",
            "abc",
            "a?c",
            "é",
            "ée",
            "éé",
            "ü.x",
            "xü",
            "日本語",
            "日語",
            "日",
            "本",
            "x.ré.d",
            ".réd",
            "a.b.c.d",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let tool_alphabet = ['a', 'b', 'd', '.', 'é', 'ü', '日', 'x', 'c'];
        for _ in 0..400 {
            let len = lcg(&mut state) % 7;
            let t: String = (0..len)
                .map(|_| tool_alphabet[(lcg(&mut state) % tool_alphabet.len() as u64) as usize])
                .collect();
            tools.push(t);
        }
        for tool in &tools {
            let want: Vec<u32> = patterns
                .iter()
                .enumerate()
                .filter(|(_, p)| glob_matches(p, tool))
                .map(|(i, _)| i as u32)
                .collect();
            assert_eq!(sorted(&index, tool), want, "tool `{tool}`");
        }
        // `é` and `ü` share their first byte, so walks stop inside a character; the
        // scan above agrees, and so does a direct check.
        assert_eq!(
            sorted(&index, "ü"),
            (0..patterns.len() as u32)
                .filter(|&i| glob_matches(&patterns[i as usize], "ü"))
                .collect::<Vec<_>>()
        );
        assert!(sorted(&index, "日本語").len() >= 5);
    }
}
