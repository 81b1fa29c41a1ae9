//! APIRule v2 paths (reference §3.2): exact segments, `{*}` (one segment), `{**}` (any rest), and
//! `/*` (everything).
//!
//! One path has two meanings, because Kyma writes it into two Istio resources:
//! - the VirtualService route matches `^<path>$` with the operators replaced by Kyma's character
//!   classes and the literal text left unescaped (so a `.` there is "any character");
//!   `route_regex` builds that text, and the route stage compiles it like any rule regex;
//! - the AuthorizationPolicy matches the path as an Envoy URI template, literally; `matches` is
//!   that matcher.

/// One segment of a v2 path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    /// `{*}`
    One,
    /// `{**}`
    Many,
}

/// A parsed v2 path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub source: String,
    /// `/*`: every path.
    all: bool,
    segments: Vec<Segment>,
}

/// Characters the CRD allows in a path segment besides `%HH`.
fn is_segment_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()+,;=:@".contains(&b)
}

/// Characters Envoy's URI template operators match (`%` stands for an escape's first byte; `*`
/// too, as Envoy 1.40's matcher does, checked against it by the peer test).
fn is_template_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;:@=".contains(&b)
}

/// Kyma's VirtualService translation of the operators (api-gateway `envoyTemplatesTranslation`).
const ROUTE_ONE: &str = "([A-Za-z0-9-._~!$&'()*+,;=:@]|%[0-9a-fA-F]{2})+";
const ROUTE_MANY: &str = "([A-Za-z0-9-._~!$&'()*+,;=:@/]|%[0-9a-fA-F]{2})*";

impl Template {
    /// Parses and validates a v2 path as the CRD pattern and the controller do: operators fill a
    /// whole segment, at most one `{**}`, and no operator after it.
    pub fn parse(source: &str) -> Result<Template, String> {
        if source == "/*" {
            return Ok(Template { source: source.to_owned(), all: true, segments: Vec::new() });
        }
        let Some(rest) = source.strip_prefix('/') else {
            return Err("must start with /".into());
        };
        let mut segments = Vec::new();
        for seg in rest.split('/') {
            segments.push(match seg {
                "{*}" => Segment::One,
                "{**}" => Segment::Many,
                literal => {
                    check_literal(literal)?;
                    Segment::Literal(literal.to_owned())
                }
            });
        }
        let many = segments.iter().filter(|s| **s == Segment::Many).count();
        if many > 1 {
            return Err("Only one {**} operator is allowed in the path.".into());
        }
        let mut after_many = segments.iter().skip_while(|s| **s != Segment::Many).skip(1);
        if after_many.any(|s| !matches!(s, Segment::Literal(_))) {
            return Err("The {**} operator must be the last operator in the path.".into());
        }
        Ok(Template { source: source.to_owned(), all: false, segments })
    }

    /// Whether the path is `/*` (routed by prefix `/`, authorised as `/{**}`).
    pub fn is_all(&self) -> bool {
        self.all
    }

    /// Whether the path has no operator.
    pub fn is_exact(&self) -> bool {
        !self.all && self.segments.iter().all(|s| matches!(s, Segment::Literal(_)))
    }

    /// The text Kyma anchors as the VirtualService regex (without `^`/`$`); `None` for `/*`.
    pub fn route_regex(&self) -> Option<String> {
        if self.all {
            return None;
        }
        let mut out = String::new();
        for seg in &self.segments {
            out.push('/');
            match seg {
                Segment::Literal(l) => out.push_str(l),
                Segment::One => out.push_str(ROUTE_ONE),
                Segment::Many => out.push_str(ROUTE_MANY),
            }
        }
        Some(out)
    }

    /// The AuthorizationPolicy match: literal text exactly; `{*}` one or more template characters
    /// up to the next `/`; `{**}` zero or more template characters or `/`.
    pub fn matches(&self, path: &str) -> bool {
        if self.all {
            return path.starts_with('/') && path.bytes().skip(1).all(|b| b == b'/' || is_template_char(b));
        }
        let mut rest = path;
        let mut segments = self.segments.iter();
        for seg in segments.by_ref() {
            let Some(after_slash) = rest.strip_prefix('/') else {
                return false;
            };
            rest = after_slash;
            match seg {
                Segment::Literal(l) => match rest.strip_prefix(l.as_str()) {
                    Some(r) => rest = r,
                    None => return false,
                },
                Segment::One => {
                    let len = rest.bytes().take_while(|&b| is_template_char(b)).count();
                    if len == 0 {
                        return false;
                    }
                    rest = rest.get(len..).unwrap_or_default();
                }
                Segment::Many => {
                    // Only literal segments follow: they must be the path's end.
                    let suffix: String = segments.map(|s| format!("/{}", literal_text(s))).collect();
                    return match rest.strip_suffix(suffix.as_str()) {
                        Some(middle) => middle.bytes().all(|b| b == b'/' || is_template_char(b)),
                        None => false,
                    };
                }
            }
        }
        rest.is_empty()
    }
}

fn literal_text(seg: &Segment) -> &str {
    match seg {
        Segment::Literal(l) => l,
        Segment::One => "{*}",
        Segment::Many => "{**}",
    }
}

fn check_literal(literal: &str) -> Result<(), String> {
    let mut bytes = literal.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let (hi, lo) = (bytes.next(), bytes.next());
            if !(hi.is_some_and(|h| h.is_ascii_hexdigit()) && lo.is_some_and(|l| l.is_ascii_hexdigit())) {
                return Err(format!("segment {literal:?} has a % not followed by two hex digits"));
            }
        } else if !is_segment_char(b) {
            return Err(format!(
                "segment {literal:?} may only hold letters, digits, -._~!$&'()+,;=:@ and %HH, or be {{*}} or {{**}} as a whole"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Template {
        Template::parse(s).unwrap()
    }

    #[test]
    fn reference_cases_61_and_62() {
        let one = t("/foo/{*}");
        assert!(one.matches("/foo/x"));
        assert!(!one.matches("/foo/"));
        assert!(!one.matches("/foo/x/y"));
        let many = t("/foo/{**}");
        assert!(many.matches("/foo/"));
        assert!(many.matches("/foo/a/b"));
        assert!(!many.matches("/foo"));
    }

    #[test]
    fn exact_paths_are_literal() {
        let p = t("/a.b");
        assert!(p.matches("/a.b"));
        assert!(!p.matches("/axb"));
        assert!(!p.matches("/a.b/"));
        assert!(t("/").matches("/"));
        assert!(!t("/").matches("/x"));
        assert!(t("/a/").matches("/a/"));
        assert!(!t("/a/").matches("/a"));
    }

    #[test]
    fn many_in_the_middle_and_all() {
        let p = t("/a/{**}/b");
        assert!(p.matches("/a/x/b"));
        assert!(p.matches("/a/x/y/b"));
        assert!(!p.matches("/a/x/c"));
        let all = t("/*");
        assert!(all.is_all());
        assert!(all.matches("/"));
        assert!(all.matches("/anything/at/all"));
        assert!(t("/{*}/x/{**}").matches("/a/x/y/z"));
    }

    #[test]
    fn route_regex_is_kymas() {
        assert_eq!(t("/a/{*}").route_regex().unwrap(), format!("/a/{ROUTE_ONE}"));
        assert_eq!(t("/a.b").route_regex().unwrap(), "/a.b");
        assert_eq!(t("/*").route_regex(), None);
    }

    #[test]
    fn validation_follows_the_controller() {
        assert!(Template::parse("/a/{**}/{**}").unwrap_err().contains("Only one"));
        assert!(Template::parse("/a/{**}/{*}").unwrap_err().contains("last operator"));
        assert!(Template::parse("/a/{**}/b").is_ok());
        assert!(Template::parse("a").is_err());
        assert!(Template::parse("/a{*}").is_err());
        assert!(Template::parse("/a b").is_err());
        assert!(Template::parse("/a%2").is_err());
        assert!(Template::parse("/a%2F").is_ok());
        assert!(Template::parse("/a/*").is_err());
    }
}
