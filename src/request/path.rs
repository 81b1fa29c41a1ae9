//! Request paths as the rules see them: query split off, dot segments removed, escapes checked.
//!
//! Decisions are only ever made on the normalised path, so `/public/../admin` can never match a
//! rule for `/public/.*` (reference case 60). The route stage (Envoy's VirtualService) sees the
//! normalised, still-encoded path; the access-rule stage (Oathkeeper) sees it percent-decoded, as
//! Go's `URL.Path` is, and normalised once more so an encoded `%2F..%2F` cannot climb either.

/// Why a path cannot be decided on; the request is refused with 400.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathError {
    BadEscape,
    NotUtf8,
    NotAbsolute,
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
pub(crate) fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Decodes `%XX` escapes; `only_unreserved` keeps other escapes (upper-cased) encoded, as RFC 3986
/// normalisation does.
fn percent_decode(path: &str, only_unreserved: bool) -> Result<Vec<u8>, PathError> {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hi = bytes.get(i + 1).copied().and_then(hex).ok_or(PathError::BadEscape)?;
            let lo = bytes.get(i + 2).copied().and_then(hex).ok_or(PathError::BadEscape)?;
            let decoded = hi * 16 + lo;
            if !only_unreserved || is_unreserved(decoded) {
                out.push(decoded);
            } else {
                out.push(b'%');
                out.extend_from_slice(format!("{decoded:02X}").as_bytes());
            }
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    Ok(out)
}

/// RFC 3986 section 5.2.4 on an absolute path; a `..` above the root stays at the root.
pub fn remove_dot_segments(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    let mut parts = path.split('/').skip(1).peekable();
    let mut trailing_slash = false;
    while let Some(seg) = parts.next() {
        let last = parts.peek().is_none();
        match seg {
            "." => trailing_slash = last,
            ".." => {
                segments.pop();
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
    out
}

/// The path the route stage decides on: unreserved escapes decoded, other escapes kept (upper-case
/// hex), dot segments removed.
pub fn normalize(path: &str) -> Result<String, PathError> {
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    let decoded = percent_decode(path, true)?;
    let text = String::from_utf8(decoded).map_err(|_| PathError::NotUtf8)?;
    Ok(remove_dot_segments(&text))
}

/// The path the access-rule stage decides on: fully percent-decoded (as Go's `URL.Path`), then
/// dot segments removed again.
pub fn decode_for_access_rules(normalized: &str) -> Result<String, PathError> {
    let decoded = percent_decode(normalized, false)?;
    let text = String::from_utf8(decoded).map_err(|_| PathError::NotUtf8)?;
    Ok(remove_dot_segments(&text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_and_fragment_are_split_off() {
        assert_eq!(split_query("/headers?x=1"), ("/headers", Some("x=1")));
        assert_eq!(split_query("/a#frag?x"), ("/a", None));
        assert_eq!(split_query("/a"), ("/a", None));
    }

    #[test]
    fn dot_segments_are_removed() {
        assert_eq!(normalize("/public/../admin").unwrap(), "/admin");
        assert_eq!(normalize("/a/./b/").unwrap(), "/a/b/");
        assert_eq!(normalize("/a/b/..").unwrap(), "/a/");
        assert_eq!(normalize("/../../etc").unwrap(), "/etc");
        assert_eq!(normalize("/").unwrap(), "/");
        assert_eq!(normalize("/a//b").unwrap(), "/a//b");
    }

    #[test]
    fn encoded_dots_are_decoded_before_dot_removal() {
        assert_eq!(normalize("/public/%2e%2E/admin").unwrap(), "/admin");
        assert_eq!(normalize("/%7Euser").unwrap(), "/~user");
    }

    #[test]
    fn reserved_escapes_stay_encoded_in_upper_case() {
        assert_eq!(normalize("/a%2fb").unwrap(), "/a%2Fb");
    }

    #[test]
    fn access_rule_path_is_decoded_and_normalised_again() {
        assert_eq!(decode_for_access_rules("/a%2Fb").unwrap(), "/a/b");
        assert_eq!(decode_for_access_rules("/public%2F..%2Fadmin").unwrap(), "/admin");
    }

    #[test]
    fn bad_paths_are_errors() {
        assert_eq!(normalize("/a%zz"), Err(PathError::BadEscape));
        assert_eq!(normalize("/a%2"), Err(PathError::BadEscape));
        assert_eq!(normalize("*"), Err(PathError::NotAbsolute));
        assert_eq!(decode_for_access_rules("/%FF"), Err(PathError::NotUtf8));
    }
}
