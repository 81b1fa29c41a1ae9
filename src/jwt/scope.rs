//! Scope claims and Ory fosite's scope strategies (reference §2.5), as Oathkeeper v0.38 applies
//! them: every required scope must be granted (AND), each checked on its own.

use serde_json::{Map, Value};

/// How a token scope grants a required scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeStrategy {
    /// `a` grants `a`, `a.b`, `a.b.c`; never the reverse.
    Hierarchic,
    /// Equal strings only.
    Exact,
    /// `*` in the token's scope matches one non-empty segment; a trailing `*` also covers deeper.
    Wildcard,
    /// No strategy: any required scope fails.
    None,
}

impl ScopeStrategy {
    pub fn from_name(name: &str) -> Option<ScopeStrategy> {
        match name {
            "hierarchic" => Some(ScopeStrategy::Hierarchic),
            "exact" => Some(ScopeStrategy::Exact),
            "wildcard" => Some(ScopeStrategy::Wildcard),
            "none" => Some(ScopeStrategy::None),
            _ => None,
        }
    }

    /// Whether `token_scopes` satisfy one `required` scope.
    pub fn grants(self, token_scopes: &[String], required: &str) -> bool {
        match self {
            ScopeStrategy::Exact => token_scopes.iter().any(|s| s == required),
            ScopeStrategy::Hierarchic => token_scopes.iter().any(|s| hierarchic(s, required)),
            ScopeStrategy::Wildcard => token_scopes.iter().any(|s| wildcard(s, required)),
            ScopeStrategy::None => false,
        }
    }
}

fn hierarchic(granted: &str, required: &str) -> bool {
    if granted == required {
        return true;
    }
    let granted: Vec<&str> = granted.split('.').collect();
    let required: Vec<&str> = required.split('.').collect();
    granted.len() < required.len() && granted.iter().zip(&required).all(|(g, r)| g == r)
}

fn wildcard(granted: &str, required: &str) -> bool {
    let granted: Vec<&str> = granted.split('.').collect();
    let required: Vec<&str> = required.split('.').collect();
    if granted.len() > required.len() {
        return false;
    }
    for (i, r) in required.iter().enumerate() {
        match granted.get(i) {
            // The token scope is shorter: it covers deeper scopes only if it ended in `*`.
            None => return granted.last() == Some(&"*"),
            Some(&"*") => {
                if r.is_empty() {
                    return false;
                }
            }
            Some(g) => {
                if g != r {
                    return false;
                }
            }
        }
    }
    true
}

/// The token's scopes: the first present of `scp`, `scope`, `scopes` (presence, not content);
/// an array of strings (non-strings become "") or a space-separated string.
pub fn token_scopes(claims: &Map<String, Value>) -> Vec<String> {
    let Some(value) = ["scp", "scope", "scopes"].iter().find_map(|k| claims.get(*k)) else {
        return Vec::new();
    };
    match value {
        Value::Array(items) => items.iter().map(|v| v.as_str().unwrap_or("").to_owned()).collect(),
        Value::String(s) => s.split(' ').filter(|p| !p.is_empty()).map(str::to_owned).collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::ScopeStrategy::*;
    use super::*;
    use serde_json::json;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn exact() {
        assert!(Exact.grants(&s(&["read", "write"]), "read"));
        assert!(!Exact.grants(&s(&["orders"]), "orders.read")); // case 37
    }

    #[test]
    fn hierarchic_grants_downwards_by_segment() {
        assert!(Hierarchic.grants(&s(&["orders"]), "orders.read")); // case 36
        assert!(!Hierarchic.grants(&s(&["orders.read"]), "orders"));
        assert!(Hierarchic.grants(&s(&["a"]), "a.b.c"));
        assert!(!Hierarchic.grants(&s(&["fo"]), "foo"));
        assert!(Hierarchic.grants(&s(&["a.b"]), "a.b"));
    }

    #[test]
    fn wildcard_follows_fosite_tests() {
        assert!(Wildcard.grants(&s(&["foo.*"]), "foo.bar"));
        assert!(Wildcard.grants(&s(&["foo.*"]), "foo.bar.baz"));
        assert!(!Wildcard.grants(&s(&["foo.*"]), "foo"));
        assert!(Wildcard.grants(&s(&["*"]), "anything")); // case 35
        assert!(!Wildcard.grants(&s(&["*"]), ""));
        assert!(!Wildcard.grants(&s(&["foo"]), "foo.*"));
        assert!(Wildcard.grants(&s(&["foo"]), "foo"));
        assert!(Wildcard.grants(&s(&["foo*"]), "foo*"));
        assert!(!Wildcard.grants(&s(&["foo*"]), "foobar"));
        assert!(Wildcard.grants(&s(&["foo.*.bar"]), "foo.x.bar"));
        assert!(!Wildcard.grants(&s(&["foo.*.bar"]), "foo..bar"));
        assert!(!Wildcard.grants(&s(&["foo.*.bar"]), "foo.x.bar.y"));
        assert!(Wildcard.grants(&s(&["orders.*"]), "orders.read")); // case 34
        assert!(!Wildcard.grants(&s(&["orders.*"]), "orders"));
    }

    #[test]
    fn none_never_grants() {
        assert!(!None.grants(&s(&["x"]), "x")); // case 38
    }

    #[test]
    fn scope_claim_selection() {
        let c = |v: Value| v.as_object().unwrap().clone();
        assert_eq!(token_scopes(&c(json!({"scp": ["read", "write"]}))), s(&["read", "write"]));
        assert_eq!(token_scopes(&c(json!({"scope": "write read"}))), s(&["write", "read"])); // case 31
        assert_eq!(token_scopes(&c(json!({"scp": [], "scope": "read"}))), s(&[])); // case 32
        assert_eq!(token_scopes(&c(json!({"scopes": ["a", 1]}))), s(&["a", ""]));
        assert_eq!(token_scopes(&c(json!({"scp": 5, "scope": "read"}))), s(&[]));
        assert_eq!(token_scopes(&c(json!({}))), s(&[]));
    }
}
