//! The APIRule v2 controller's rule-order check (reference §3.3): per method, rule paths go into
//! a segment trie in rule order, and a path that an earlier path already covers is refused with
//! "Path X with method M conflicts with at least one of the previous rule paths". So specific
//! paths come before general ones (`/a/b` then `/a/{**}` is fine, the reverse is not).
//!
//! Ported from api-gateway `internal/path/segment_trie` and `internal/path/token` (main of
//! 2026-11), quirks included, and tested with its table: which APIRules a Kyma cluster accepts is
//! what this check must reproduce, not a cleaner notion of "covered".

use std::collections::BTreeMap;

fn tokenize(path: &str) -> Vec<&str> {
    path.trim_start_matches('/').split('/').collect()
}

/// Kyma's `token.List.String`: every token behind a `/`.
fn joined(tokens: &[&str]) -> String {
    tokens.iter().map(|t| format!("/{t}")).collect()
}

#[derive(Debug, Default)]
struct Node {
    end: bool,
    children: BTreeMap<String, Node>,
    /// For a `{**}` node: the text after `{**}` of every path through it.
    suffixes: Vec<String>,
}

/// Paths seen so far for one method.
#[derive(Debug, Default)]
pub(crate) struct PathTrie {
    root: Node,
}

impl PathTrie {
    /// Adds `path` (the caller reads `/*` as `/{**}`); `false` when an earlier path covers it.
    pub(crate) fn insert(&mut self, path: &str) -> bool {
        let tokens = tokenize(path);
        if !self.root.children.is_empty() && find_existing(&self.root, &tokens, 0) {
            return false;
        }
        let last = tokens.len().saturating_sub(1);
        let mut node = &mut self.root;
        for (i, tok) in tokens.iter().enumerate() {
            let child =
                node.children.entry((*tok).to_owned()).or_insert_with(|| Node { end: i == last, ..Node::default() });
            if *tok == "{**}" {
                child.suffixes.push(joined(tokens.get(i.saturating_add(1)..).unwrap_or_default()));
            }
            node = child;
        }
        true
    }
}

/// Whether a path already in the trie matches `tokens` from `cur` on (the new path's operators
/// are taken literally, as Kyma does).
fn find_existing(node: &Node, tokens: &[&str], cur: usize) -> bool {
    let Some(tok) = tokens.get(cur) else {
        return node.end;
    };
    // `cur` indexes a token, so `cur + 1` is at most the length.
    let next = cur.saturating_add(1);
    if node.children.get(*tok).is_some_and(|n| find_existing(n, tokens, next)) {
        return true;
    }
    if node.children.get("{*}").is_some_and(|n| find_existing(n, tokens, next)) {
        return true;
    }
    if let Some(many) = node.children.get("{**}") {
        for i in cur..=tokens.len() {
            let suffix = joined(tokens.get(i..).unwrap_or_default());
            if many.suffixes.iter().any(|s| s.is_empty() || *s == suffix) {
                return true;
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// api-gateway's segment_trie_test.go table: (conflicts expected, paths in order).
    const KYMA_TABLE: &[(usize, &[&str])] = &[
        // No conflict: only one double asterisk
        (0, &["/{**}"]),
        // No conflict: prefix and double asterisk
        (0, &["/abc/{**}"]),
        // No conflict: path without / at end and same path with double asterisk
        (0, &["/abc", "/abc/{**}"]),
        // No conflict: path without / at end and same path with single asterisk
        (0, &["/abc", "/abc/{*}"]),
        // No conflict: path with / at end and same path with single asterisk
        (0, &["/abc/", "/abc/{*}"]),
        // No conflict: path with / at end and same path with double asterisk
        (0, &["/abc/", "/abc/{**}"]),
        // No conflict: exact with single asterisk
        (0, &["/abc/def/ghi", "/abc/{*}/ghi"]),
        // Conflict: exact with exact
        (2, &["/abc/def", "/abc/def/ghi", "/abc/def/ghi", "/abc/def"]),
        // Conflict: exact with double asterisk
        (1, &["/abc/def", "/abc/def/ghi", "/abc/{**}/ghi", "/abc/{**}", "/{**}/ghi", "/{**}", "/{**}/def/ghi"]),
        // Conflict: exact with double asterisk
        (1, &["/{**}", "/{**}/def/ghi"]),
        // No conflict: double asterisk with single asterisk
        (0, &["/abc/{**}/ghi", "/{*}/{*}/ghi"]),
        // Conflict: double asterisk with single asterisk
        (1, &["/abc/{**}/ghi", "/abc/{*}/ghi"]),
        // No conflict: double asterisk with double asterisk
        (0, &["/abc/{**}/def/ghi", "/abc/{**}/ghi", "/abc/{**}"]),
        // Multiple conflicts: double asterisk covering another double asterisk
        (2, &["/abc/{**}", "/abc/{**}/ghi", "/abc/{**}/def/ghi"]),
        // No conflict: exact paths
        (0, &["/abc/def", "/abc/def/ghi", "/abc/def/foo", "/def/ghi"]),
        // No conflict: paths with single asterisk, but different suffix
        (0, &["/abc/{*}/def", "/abc/{*}/ghi", "/abc/{*}/foo/bar", "/abc/{*}"]),
        // No conflict: paths with double asterisk, but different suffix
        (0, &["/abc/{**}/def", "/abc/{**}/ghi", "/abc/{**}/foo/bar"]),
        // Conflict: exact path with single asterisk path
        (1, &["/abc/{*}", "/abc/def"]),
        // Conflict: exact path with double asterisk path
        (1, &["/abc/{**}", "/abc/def"]),
        // No conflict: single asterisk path with exact path
        (0, &["/abc/def", "/abc/{*}"]),
        // No conflict: single asterisk path with exact path
        (0, &["/abc/def", "/abc/{*}"]),
        // No conflict: double asterisk path different prefixes
        (0, &["/abc/{**}", "/bca/{**}/abc"]),
        // Conflict: double asterisk with a different containing the first one
        (1, &["/abc/{**}/def", "/abc/def/{**}/def"]),
        // No conflict: single double asterisk with single path
        (0, &["/a/{**}/abc", "/a/b/{**}/abc/abcd"]),
        // No conflict: exact with single and double asterisk and with / at end of path
        (
            0,
            &[
                "/anything/one",
                "/anything/one/two",
                "/anything/{*}/one",
                "/anything/{*}/one/{**}/two",
                "/anything/{*}/{*}/two",
                "/anything/{**}/two",
                "/anything/",
                "/anything/{**}",
                "/one/{**}/two",
                "/{**}/one",
                "/*",
            ],
        ),
    ];

    #[test]
    fn kymas_conflict_table() {
        for (want, paths) in KYMA_TABLE {
            let mut trie = PathTrie::default();
            let conflicts = paths.iter().filter(|p| !trie.insert(p)).count();
            assert_eq!(conflicts, *want, "{paths:?}");
        }
    }

    #[test]
    fn reference_case_63_and_64() {
        let mut trie = PathTrie::default();
        assert!(trie.insert("/a/{**}"));
        assert!(!trie.insert("/a/b"));
        let mut trie = PathTrie::default();
        assert!(trie.insert("/a/b"));
        assert!(trie.insert("/a/{**}"));
    }
}
