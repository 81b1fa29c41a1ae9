//! v1 rule paths (regexes) -> v2 path templates, and the sample paths the proof asks both
//! policies about.

use regex_syntax::hir::{Class, Hir, HirKind};

/// The v2 paths for one v1 regex, and what they no longer match, if anything.
pub struct Templates {
    pub templates: Vec<String>,
    pub lost: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(char),
    /// `.*`: any run of characters, `/` included.
    Any,
    /// `[^/]+`: one non-empty segment.
    Segment,
}

/// Kyma's migration of a path (its migration guide): `/.*` is `/{**}`, `/foo/.*` is `/foo/{**}`, `/foo.*` is `/foo` and
/// `/foo/{**}`, `[^/]+` a whole segment is `{*}`; other regex constructs have no template.
pub fn to_templates(regex: &str) -> Result<Templates, String> {
    let tokens = tokenize(regex)?;
    let wildcards = tokens.iter().filter(|t| !matches!(t, Token::Literal(_))).count();
    let literal = |ts: &[Token]| -> String {
        ts.iter().filter_map(|t| if let Token::Literal(c) = t { Some(*c) } else { None }).collect()
    };
    if let Some((Token::Any, prefix)) = tokens.split_last() {
        if wildcards == 1 {
            let prefix = literal(prefix);
            return Ok(match prefix.as_str() {
                "" => Templates { templates: vec!["/{**}".into()], lost: None },
                p if p.ends_with('/') => Templates { templates: vec![format!("{p}{{**}}")], lost: None },
                p => Templates {
                    templates: vec![p.to_owned(), format!("{p}/{{**}}")],
                    lost: Some(format!("paths that continue its last segment, like {p}x, no longer match")),
                },
            });
        }
    }
    let mut out = String::new();
    for (i, t) in tokens.iter().enumerate() {
        let whole_segment = out.ends_with('/') && matches!(tokens.get(i + 1), None | Some(Token::Literal('/')));
        match t {
            Token::Literal(c) => out.push(*c),
            Token::Any if whole_segment => out.push_str("{**}"),
            Token::Segment if whole_segment => out.push_str("{*}"),
            _ => return Err("a wildcard that is not a whole path segment".into()),
        }
    }
    if !out.starts_with('/') {
        return Err("it does not start with /".into());
    }
    Ok(Templates { templates: vec![out], lost: None })
}

fn tokenize(regex: &str) -> Result<Vec<Token>, String> {
    let body = regex.strip_prefix('^').unwrap_or(regex);
    let body = body.strip_suffix('$').unwrap_or(body);
    let mut tokens = Vec::new();
    let mut rest = body;
    while let Some(c) = rest.chars().next() {
        if let Some(r) = rest.strip_prefix(".*") {
            tokens.push(Token::Any);
            rest = r;
        } else if let Some(r) = rest.strip_prefix("[^/]+") {
            tokens.push(Token::Segment);
            rest = r;
        } else if let Some(r) = rest.strip_prefix('\\') {
            let escaped =
                r.chars().next().filter(|e| e.is_ascii_punctuation()).ok_or("an escape that is not punctuation")?;
            tokens.push(Token::Literal(escaped));
            rest = r.get(escaped.len_utf8()..).unwrap_or("");
        } else if c.is_ascii_alphanumeric() || "/-_~%".contains(c) {
            tokens.push(Token::Literal(c));
            rest = rest.get(c.len_utf8()..).unwrap_or("");
        } else {
            return Err(format!("the regex construct {c:?}"));
        }
    }
    Ok(tokens)
}

/// How much a v2 path covers, for ordering: exact paths, then `{*}`, then `{**}`, then `/*`.
pub fn breadth(template: &str) -> u8 {
    if template == "/*" {
        3
    } else if template.contains("{**}") {
        2
    } else if template.contains("{*}") {
        1
    } else {
        0
    }
}

/// Paths a regex matches (shortest and longer ones), and their near misses.
pub fn regex_samples(regex: &str) -> Vec<String> {
    let Ok(hir) = regex_syntax::Parser::new().parse(regex) else { return Vec::new() };
    with_edges(samples(&hir))
}

/// Paths a v2 template matches, and their near misses.
pub fn template_samples(template: &str) -> Vec<String> {
    if template == "/*" {
        return with_edges(vec!["/".into(), "/a".into(), "/a/b".into()]);
    }
    let mut out = vec![String::new()];
    for part in template.split_inclusive(['{', '}']) {
        let choices: Vec<&str> = if part.starts_with("**}") {
            vec!["", "a", "a/b"]
        } else if part.starts_with("*}") {
            vec!["a"]
        } else {
            vec![]
        };
        let literal = part.trim_start_matches("**}").trim_start_matches("*}").trim_end_matches('{');
        let choices = if choices.is_empty() { vec![""] } else { choices };
        out = out.iter().flat_map(|o| choices.iter().map(move |c| format!("{o}{c}{literal}"))).take(16).collect();
    }
    with_edges(out)
}

const LIMIT: usize = 12;

fn samples(hir: &Hir) -> Vec<String> {
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => vec![String::new()],
        HirKind::Literal(lit) => vec![String::from_utf8_lossy(&lit.0).into_owned()],
        HirKind::Class(class) => class_samples(class),
        HirKind::Capture(c) => samples(&c.sub),
        HirKind::Repetition(r) => {
            let sub = samples(&r.sub);
            let counts = [r.min, r.min + 1, r.min + 3];
            let mut out = Vec::new();
            for k in counts {
                if r.max.is_some_and(|m| k > m) || k > 8 {
                    continue;
                }
                let k = usize::try_from(k).unwrap_or(0);
                out.push((0..k).map(|i| sub.get(i % sub.len().max(1)).cloned().unwrap_or_default()).collect());
            }
            out
        }
        HirKind::Concat(parts) => {
            let mut out = vec![String::new()];
            for part in parts {
                let next = samples(part);
                out = out.iter().flat_map(|o| next.iter().map(move |n| format!("{o}{n}"))).take(LIMIT).collect();
            }
            out
        }
        HirKind::Alternation(alts) => alts.iter().flat_map(samples).take(LIMIT).collect(),
    }
}

/// `a` and `/` when the class has them (to make multi-segment paths), else its first character.
fn class_samples(class: &Class) -> Vec<String> {
    let has = |c: char| match class {
        Class::Unicode(u) => u.ranges().iter().any(|r| r.start() <= c && c <= r.end()),
        Class::Bytes(b) => u8::try_from(c).is_ok_and(|c| b.ranges().iter().any(|r| r.start() <= c && c <= r.end())),
    };
    let mut out: Vec<String> = ['a', '/'].iter().filter(|c| has(**c)).map(char::to_string).collect();
    if out.is_empty() {
        let first = match class {
            Class::Unicode(u) => u.ranges().first().map(|r| r.start()),
            Class::Bytes(b) => b.ranges().first().map(|r| char::from(r.start())),
        };
        out.extend(first.map(|c| c.to_string()));
    }
    out
}

/// A path and its near misses: a trailing slash, one more character, one more segment, one
/// character less.
fn with_edges(paths: Vec<String>) -> Vec<String> {
    let mut out = Vec::new();
    for p in paths.into_iter().filter(|p| p.starts_with('/')) {
        let mut shorter = p.clone();
        shorter.pop();
        for variant in [p.clone(), format!("{p}/"), format!("{p}x"), format!("{p}/x"), shorter] {
            if variant.starts_with('/') && !out.contains(&variant) {
                out.push(variant);
            }
        }
    }
    out
}
