//! Request paths as the rules see them: query split off, escapes checked, dot segments removed,
//! slashes merged; and every path that two backends could read as two different paths refused.
//!
//! Decisions are only ever made on the normalised path, and the backend gets exactly that path,
//! so `/public/../admin` can never match a rule for `/public/.*` (reference case 60). The route
//! stage (Envoy's VirtualService) and v2's policies see the normalised, still-encoded path; v1's
//! access-rule stage (Oathkeeper) sees it percent-decoded once, as Go's `URL.Path` is.
//!
//! What is refused (400), and why, is in docs/security.md, "Paths": an escaped `/` or `\` (unless
//! the plugin option `paths.escapedSlashes` is `keep`), a raw `\`, a control character (raw or
//! escaped), an escape still left after one decoding (double encoding), a dot segment with `;`
//! parameters, an empty segment a `..` would remove, bytes that are not UTF-8 once decoded, and
//! paths over `MAX_PATH_BYTES`.

/// Longest path (without the query) the filter decides on. Envoy's own limit is the whole header
/// block (60 KiB by default); rule regexes cost time in proportion to the path, and no real
/// route is this long (nginx refuses request lines over 8 KiB by default).
pub const MAX_PATH_BYTES: usize = 8 * 1024;

/// The plugin option `paths.escapedSlashes`: what a path with `%2F` or `%5C` (any case) gets.
/// Named after Envoy's `path_with_escaped_slashes_action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EscapedSlashes {
    /// 400, before any rule is tried (Envoy's `REJECT_REQUEST`).
    #[default]
    Reject,
    /// Decided on and forwarded as sent (Envoy's `KEEP_UNCHANGED`), for backends that take `%2F`
    /// as data; still refused when decoding them would make a dot segment.
    Keep,
}

/// Why a path cannot be decided on; the request is refused with 400.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathError {
    BadEscape,
    NotUtf8,
    NotAbsolute,
    TooLong,
    /// A raw `\`, which some backends read as `/`.
    Backslash,
    /// `%2F` or `%5C`, which some backends decode into a separator.
    EscapedSlash,
    /// `%00`-`%1F` or `%7F` (or such a byte raw), which some backends cut the path at or drop.
    ControlCharacter,
    /// An escape left after decoding once (`%252e`): a backend that decodes twice sees more.
    DoubleEncoded,
    /// `..;x` or `.;x` (a backend that strips `;` parameters climbs), an empty segment before
    /// `..` (`//..`: Envoy removes the empty segment, nginx the one before it), or, with
    /// `escapedSlashes: keep`, a dot segment once `%2F`/`%5C` are decoded.
    AmbiguousDotSegment,
}

impl PathError {
    /// For the deny's log line.
    pub fn reason(&self) -> &'static str {
        match self {
            PathError::BadEscape => "a % not followed by two hex digits",
            PathError::NotUtf8 => "not UTF-8 once percent-decoded",
            PathError::NotAbsolute => "does not start with /",
            PathError::TooLong => "longer than 8 KiB",
            PathError::Backslash => "holds a backslash",
            PathError::EscapedSlash => "holds an escaped / or \\ (%2F, %5C; paths.escapedSlashes: reject)",
            PathError::ControlCharacter => "holds a control character (%00-%1F, %7F)",
            PathError::DoubleEncoded => "still holds an escape once decoded (double encoding)",
            PathError::AmbiguousDotSegment => "has a dot segment backends resolve differently",
        }
    }
}

/// A path the rules can decide on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RulePath {
    /// Unreserved escapes decoded, other escapes kept (upper-case hex), dot segments removed,
    /// slashes merged: what the route stage and v2's policies match, and what is forwarded.
    pub normalized: String,
    /// `normalized` percent-decoded once (Go's `URL.Path`): what v1's access rules match.
    pub decoded: String,
}

/// Splits `:path` into the path and the query (a fragment, if a client sent one, is dropped).
pub fn split_query(raw: &str) -> (&str, Option<&str>) {
    let without_fragment = raw.split('#').next().unwrap_or("");
    match without_fragment.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (without_fragment, None),
    }
}

/// The value of one hex digit (shared with query-string decoding).
fn hex(b: u8) -> Option<u8> {
    char::from(b).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

/// The byte `%<hi><lo>` stands for, if both are hex digits.
pub(crate) fn hex_byte(hi: Option<u8>, lo: Option<u8>) -> Option<u8> {
    hex(hi?)?.checked_mul(16)?.checked_add(hex(lo?)?)
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Decodes `%XX` escapes; `only_unreserved` keeps other escapes (upper-cased) encoded, as RFC 3986
/// normalisation does.
fn percent_decode(path: &str, only_unreserved: bool) -> Result<Vec<u8>, PathError> {
    let mut out = Vec::with_capacity(path.len());
    let mut bytes = path.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let (hi, lo) = (bytes.next(), bytes.next());
            let decoded = hex_byte(hi, lo).ok_or(PathError::BadEscape)?;
            if !only_unreserved || is_unreserved(decoded) {
                out.push(decoded);
            } else {
                out.push(b'%');
                out.extend_from_slice(format!("{decoded:02X}").as_bytes());
            }
        } else {
            out.push(b);
        }
    }
    Ok(out)
}

/// RFC 3986 section 5.2.4 on an absolute path; a `..` above the root stays at the root. A `..`
/// that would remove an empty segment is refused: backends disagree on which segment it removes.
fn remove_dot_segments(path: &str) -> Result<String, PathError> {
    let mut segments: Vec<&str> = Vec::new();
    let mut parts = path.split('/').skip(1).peekable();
    let mut trailing_slash = false;
    while let Some(seg) = parts.next() {
        let last = parts.peek().is_none();
        match seg {
            "." => trailing_slash = last,
            ".." => {
                if segments.pop() == Some("") {
                    return Err(PathError::AmbiguousDotSegment);
                }
                trailing_slash = last;
            }
            s => {
                segments.push(s);
                trailing_slash = false;
            }
        }
    }
    let mut out = String::with_capacity(path.len());
    for seg in &segments {
        out.push('/');
        out.push_str(seg);
    }
    if trailing_slash || out.is_empty() {
        out.push('/');
    }
    Ok(out)
}

/// `//` as `/` (Envoy's `merge_slashes`), so a backend that merges slashes sees the path decided on.
fn merge_slashes(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if !(c == '/' && out.ends_with('/')) {
            out.push(c);
        }
    }
    out
}

/// The path of `:path` (query and fragment split off) the rules decide on, or why there is none:
/// see the module comment.
pub fn rule_path(raw: &str, escaped_slashes: EscapedSlashes) -> Result<RulePath, PathError> {
    let (path, _) = split_query(raw);
    if path.len() > MAX_PATH_BYTES {
        return Err(PathError::TooLong);
    }
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    if path.contains('\\') {
        return Err(PathError::Backslash);
    }
    let unreserved = String::from_utf8(percent_decode(path, true)?).map_err(|_| PathError::NotUtf8)?;
    let normalized = merge_slashes(&remove_dot_segments(&unreserved)?);
    let decoded = String::from_utf8(percent_decode(&normalized, false)?).map_err(|_| PathError::NotUtf8)?;
    check_decoded(&normalized, &decoded, escaped_slashes)?;
    Ok(RulePath { normalized, decoded })
}

/// The `:path` to forward when it is not `raw` already: the normalised path and the query, so the
/// backend gets exactly what was decided on (and never a fragment).
pub fn forwarded_path(raw: &str, path: &RulePath) -> Option<String> {
    let forwarded = match split_query(raw) {
        (_, Some(query)) => format!("{}?{query}", path.normalized),
        (_, None) => path.normalized.clone(),
    };
    (forwarded != raw).then_some(forwarded)
}

/// What one decoding may not produce: a separator (unless kept), a control character, another
/// escape (`%` before a hex digit or `%`), or a dot segment (also one with `;` parameters).
fn check_decoded(normalized: &str, decoded: &str, escaped_slashes: EscapedSlashes) -> Result<(), PathError> {
    // `normalized` holds kept escapes in upper case.
    if escaped_slashes == EscapedSlashes::Reject && (normalized.contains("%2F") || normalized.contains("%5C")) {
        return Err(PathError::EscapedSlash);
    }
    if decoded.bytes().any(|b| b.is_ascii_control()) {
        return Err(PathError::ControlCharacter);
    }
    let escape_left = |w: &[u8]| matches!(w, [b'%', next] if *next == b'%' || next.is_ascii_hexdigit());
    if decoded.as_bytes().windows(2).any(escape_left) {
        return Err(PathError::DoubleEncoded);
    }
    // A backend that reads `\` as `/` (kept `%5C`) or strips `;` parameters must find no dot segment.
    for segment in decoded.split(['/', '\\']) {
        let name = segment.split(';').next().unwrap_or_default();
        if name == "." || name == ".." {
            return Err(PathError::AmbiguousDotSegment);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normalize(p: &str) -> Result<String, PathError> {
        rule_path(p, EscapedSlashes::Reject).map(|r| r.normalized)
    }

    fn kept(p: &str) -> Result<RulePath, PathError> {
        rule_path(p, EscapedSlashes::Keep)
    }

    #[test]
    fn query_and_fragment_are_split_off() {
        assert_eq!(split_query("/headers?x=1"), ("/headers", Some("x=1")));
        assert_eq!(split_query("/a#frag?x"), ("/a", None));
        assert_eq!(split_query("/a"), ("/a", None));
    }

    #[test]
    fn dot_segments_are_removed_and_slashes_merged() {
        assert_eq!(normalize("/public/../admin").unwrap(), "/admin");
        assert_eq!(normalize("/a/./b/").unwrap(), "/a/b/");
        assert_eq!(normalize("/a/b/..").unwrap(), "/a/");
        assert_eq!(normalize("/../../etc").unwrap(), "/etc");
        assert_eq!(normalize("/").unwrap(), "/");
        assert_eq!(normalize("/a//b").unwrap(), "/a/b");
        assert_eq!(normalize("//admin").unwrap(), "/admin");
        assert_eq!(normalize("/admin//").unwrap(), "/admin/");
    }

    #[test]
    fn encoded_dots_are_decoded_before_dot_removal() {
        assert_eq!(normalize("/public/%2e%2E/admin").unwrap(), "/admin");
        assert_eq!(normalize("/public/.%2E/admin").unwrap(), "/admin");
        assert_eq!(normalize("/public/%2E./admin").unwrap(), "/admin");
        assert_eq!(normalize("/%7Euser").unwrap(), "/~user");
        assert_eq!(normalize("/%61dmin").unwrap(), "/admin");
    }

    #[test]
    fn other_escapes_stay_encoded_in_upper_case_and_decode_once_for_access_rules() {
        let p = rule_path("/a%3bb/%c3%a9", EscapedSlashes::Reject).unwrap();
        assert_eq!(p.normalized, "/a%3Bb/%C3%A9");
        assert_eq!(p.decoded, "/a;b/\u{e9}");
    }

    #[test]
    fn escaped_slashes_are_refused_unless_kept() {
        for p in ["/a%2fb", "/a%2Fb", "/public/..%2Fadmin", "/public/%5c../admin", "/public/%2E%2E%2Fadmin/x", "/x%5C"]
        {
            assert_eq!(normalize(p), Err(PathError::EscapedSlash), "{p}");
        }
        let p = kept("/repos/a%2fb").unwrap();
        assert_eq!((p.normalized.as_str(), p.decoded.as_str()), ("/repos/a%2Fb", "/repos/a/b"));
        assert_eq!(kept("/a%5Cb").unwrap().decoded, "/a\\b");
        // Kept as data, but never when decoding them makes a dot segment.
        for p in ["/public/..%2Fadmin", "/public/%2E%2E%2Fadmin/x", "/public/%5c../admin", "/a%2F.%2Fb"] {
            assert_eq!(kept(p), Err(PathError::AmbiguousDotSegment), "{p}");
        }
    }

    #[test]
    fn what_backends_read_differently_is_refused() {
        let cases = [
            ("/public/\\../admin", PathError::Backslash),
            ("/a\\b", PathError::Backslash),
            ("/admin%00", PathError::ControlCharacter),
            ("/public/..%00/admin", PathError::ControlCharacter),
            ("/a%0Ab", PathError::ControlCharacter),
            ("/a%7f", PathError::ControlCharacter),
            ("/public/%252e%252e/admin", PathError::DoubleEncoded),
            ("/public/%252F", PathError::DoubleEncoded),
            ("/%2561dmin", PathError::DoubleEncoded),
            ("/public/%25%32%65", PathError::DoubleEncoded),
            ("/public/%252%65", PathError::DoubleEncoded),
            ("/public/%25%25", PathError::DoubleEncoded),
            ("/public/..;/admin", PathError::AmbiguousDotSegment),
            ("/public/.;x/admin", PathError::AmbiguousDotSegment),
            ("/public/..%3B/admin", PathError::AmbiguousDotSegment),
            ("/public//../admin", PathError::AmbiguousDotSegment),
            ("/public/%c0%ae%c0%ae/admin", PathError::NotUtf8),
            ("/public/%FF", PathError::NotUtf8),
        ];
        for (p, e) in cases {
            assert_eq!(normalize(p), Err(e.clone()), "{p}");
            assert_eq!(kept(p), Err(e), "{p} (keep)");
        }
    }

    #[test]
    fn ordinary_paths_pass() {
        for p in ["/100%25", "/50%25off", "/admin;x", "/a;b=c/d", "/.../x", "/..a/x", "/a%20b", "/a/.b", "/%E2%82%AC"] {
            assert!(normalize(p).is_ok(), "{p}");
        }
        assert_eq!(rule_path("/100%25", EscapedSlashes::Reject).unwrap().decoded, "/100%");
    }

    #[test]
    fn bad_paths_are_errors() {
        assert_eq!(normalize("/a%zz"), Err(PathError::BadEscape));
        assert_eq!(normalize("/a%2"), Err(PathError::BadEscape));
        assert_eq!(normalize("*"), Err(PathError::NotAbsolute));
        assert_eq!(normalize(""), Err(PathError::NotAbsolute));
        assert!(normalize(&format!("/{}", "a".repeat(MAX_PATH_BYTES - 1))).is_ok());
        assert_eq!(normalize(&format!("/{}", "a".repeat(MAX_PATH_BYTES))), Err(PathError::TooLong));
    }
}
