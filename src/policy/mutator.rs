//! Oathkeeper's `header` and `cookie` mutators (reference §2.10): values are Go text/templates over
//! the session, of which the filter implements the part APIRules use, `{{ print .Subject }}` and
//! `{{ print .Extra.<claim>[.<key>...] }}` (also without `print`), between literal text. Anything
//! else in `{{ }}` is refused at load, never rendered wrongly.
//!
//! Written by hand: no crate renders Go templates, and the subset is a few dozen lines.

use serde_json::{Map, Value};

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Subject,
    /// `.Extra.a.b`: the claim `a`, then key `b` inside it.
    Extra(Vec<String>),
}

/// A compiled template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(Vec<Part>);

/// What a template is rendered against: the authenticator's subject and the token's claims.
pub struct Session<'a> {
    pub subject: &'a str,
    pub extra: Option<&'a Map<String, Value>>,
}

impl Template {
    pub fn parse(source: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = source;
        // Go's trim markers: `{{- ` drops the white space before the action, ` -}}` after it.
        let mut trim_next = false;
        while let Some((text, after)) = rest.split_once("{{") {
            let (inner, after_close) = after.split_once("}}").ok_or_else(|| format!("unclosed {{{{ in {source:?}"))?;
            let trim_before = inner.strip_prefix('-').is_some_and(|r| r.starts_with(GO_SPACE));
            let trim_after = inner.strip_suffix('-').is_some_and(|r| r.ends_with(GO_SPACE));
            push_text(&mut parts, text, trim_next, trim_before);
            trim_next = trim_after;
            // (`trim_after` means `inner` ends with `-`, so the subtraction never saturates.)
            let end = inner.len().saturating_sub(usize::from(trim_after));
            let action = inner.get(usize::from(trim_before)..end).unwrap_or_default();
            let action = action.trim();
            let field = action.strip_prefix("print ").map_or(action, str::trim);
            parts.push(match field {
                ".Subject" => Part::Subject,
                f => match f.strip_prefix(".Extra.") {
                    Some(path) if path.split('.').all(is_identifier) => {
                        Part::Extra(path.split('.').map(str::to_owned).collect())
                    }
                    _ => {
                        return Err(format!(
                            "template action {{{{ {action} }}}} is not supported (supported: {{{{ print .Subject }}}}, {{{{ print .Extra.<claim> }}}})"
                        ))
                    }
                },
            });
            rest = after_close;
        }
        push_text(&mut parts, rest, trim_next, false);
        Ok(Template(parts))
    }

    /// The value, rendered as Go's `print` renders it.
    pub fn render(&self, session: &Session<'_>) -> String {
        let mut out = String::new();
        for part in &self.0 {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Subject => out.push_str(session.subject),
                Part::Extra(path) => {
                    let mut value = None;
                    let mut map = session.extra;
                    for key in path {
                        value = map.and_then(|m| m.get(key));
                        map = value.and_then(Value::as_object);
                    }
                    out.push_str(&go_print(value));
                }
            }
        }
        out
    }
}

/// The white space Go's template lexer trims at a trim marker (and requires after `{{-`).
const GO_SPACE: [char; 4] = [' ', '\t', '\r', '\n'];

/// Literal text between actions, trimmed where a neighbouring action has a trim marker.
fn push_text(parts: &mut Vec<Part>, text: &str, trim_start: bool, trim_end: bool) {
    let text = if trim_start { text.trim_start_matches(GO_SPACE) } else { text };
    let text = if trim_end { text.trim_end_matches(GO_SPACE) } else { text };
    if !text.is_empty() {
        parts.push(Part::Text(text.to_owned()));
    }
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Go's `fmt.Print` of a decoded JSON value (`encoding/json` into `interface{}`): a missing or
/// null value is `<nil>`, numbers are float64 (`%v`, so 1800000000 is `1.8e+09`), arrays
/// `[a b]`, objects `map[k:v]` with sorted keys.
fn go_print(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "<nil>".into(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => go_float(n.as_f64().unwrap_or(0.0)),
        Some(Value::Array(items)) => {
            let inner: Vec<String> = items.iter().map(|v| go_print(Some(v))).collect();
            format!("[{}]", inner.join(" "))
        }
        Some(Value::Object(map)) => {
            // serde_json's map is sorted by key, as Go prints maps.
            let inner: Vec<String> = map.iter().map(|(k, v)| format!("{k}:{}", go_print(Some(v)))).collect();
            format!("map[{}]", inner.join(" "))
        }
    }
}

/// `%v` of a float64 (`strconv.FormatFloat(f, 'g', -1, 64)`): shortest digits, exponent form when
/// the decimal exponent is below -4 or at least 6 (Go's precision for that choice when digits are
/// shortest), so `print` of a JSON 1000000 is `1e+06`.
fn go_float(f: f64) -> String {
    if f == 0.0 {
        return "0".into();
    }
    if !f.is_finite() {
        return if f.is_nan() {
            "NaN".into()
        } else if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    // Rust's `{:e}` gives the shortest round-tripping digits, as Go's -1 precision does.
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..6).contains(&exp) {
        let s = format!("{f}");
        return s.strip_suffix(".0").map(str::to_owned).unwrap_or(s);
    }
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exp.abs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(t: &str, subject: &str, extra: Value) -> String {
        let extra = extra.as_object().cloned();
        Template::parse(t).unwrap().render(&Session { subject, extra: extra.as_ref() })
    }

    #[test]
    fn subject_and_claims() {
        assert_eq!(render("{{ print .Subject }}", "u1", json!({})), "u1"); // case 58
        assert_eq!(render("user={{.Subject}};", "u1", json!({})), "user=u1;");
        assert_eq!(render("{{ print .Extra.email }}", "", json!({"email": "a@b"})), "a@b");
        assert_eq!(render("{{ .Extra.org.id }}", "", json!({"org": {"id": "o1"}})), "o1");
        assert_eq!(render("{{ print .Extra.missing }}", "", json!({})), "<nil>");
        assert_eq!(render("{{ print .Extra.scp }}", "", json!({"scp": ["a", "b"]})), "[a b]");
        assert_eq!(render("{{ print .Extra.n }}", "", json!({"n": {"b": 1, "a": true}})), "map[a:true b:1]");
        assert_eq!(render("plain", "", json!({})), "plain");
    }

    #[test]
    fn numbers_print_as_go_float64() {
        assert_eq!(go_float(1.0), "1");
        assert_eq!(go_float(123456.0), "123456");
        assert_eq!(go_float(1.5), "1.5");
        assert_eq!(go_float(0.0001), "0.0001");
        assert_eq!(go_float(0.00001), "1e-05");
        assert_eq!(go_float(1e21), "1e+21");
        assert_eq!(go_float(1e6), "1e+06");
        assert_eq!(go_float(1_800_000_000.0), "1.8e+09");
        assert_eq!(go_float(999_999.0), "999999");
        assert_eq!(go_float(-2.5), "-2.5");
    }

    #[test]
    fn unsupported_actions_are_refused() {
        assert!(Template::parse("{{ .Header.X }}").is_err());
        assert!(Template::parse("{{ printIndex .Extra.a 0 }}").is_err());
        assert!(Template::parse("{{ print .Subject ").is_err());
        assert!(Template::parse("{{ .Extra. }}").is_err());
    }
}
