//! Where the token comes from (Oathkeeper `token_from`, reference §2.3).

use crate::request::path::{hex_byte, split_query};
use crate::request::Request;

/// A configured token location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// `Authorization: Bearer <token>` (the default, and `token_from.header: Authorization`).
    AuthorizationBearer,
    /// The raw value of this header, no prefix stripped.
    Header(String),
    /// This URL query parameter (URL only; Oathkeeper v0.38 also read form bodies).
    Query(String),
    /// This cookie.
    Cookie(String),
}

/// The token, if the request carries a non-empty one at `source`. Non-UTF-8 bytes are kept as a
/// lossy string: such a token cannot parse, so it is denied rather than treated as absent.
pub fn extract(source: &TokenSource, req: &Request) -> Option<String> {
    let token = match source {
        TokenSource::AuthorizationBearer => bearer(req.header("authorization")?)?,
        TokenSource::Header(name) => String::from_utf8_lossy(req.header(name)?).into_owned(),
        TokenSource::Query(name) => query_param(&req.path, name)?,
        TokenSource::Cookie(name) => req.header_values("cookie").find_map(|v| cookie(v, name))?,
    };
    (!token.is_empty()).then_some(token)
}

/// Split at the first space; the scheme must be `bearer` in any case; the rest is the token
/// verbatim (Oathkeeper `helper.DefaultBearerTokenFromRequest`).
fn bearer(value: &[u8]) -> Option<String> {
    let value = String::from_utf8_lossy(value);
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.to_owned())
}

/// `application/x-www-form-urlencoded` decoding as Go's `url.QueryUnescape`: `+` is a space; a
/// bad escape makes the value unusable.
fn form_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let (hi, lo) = (bytes.next(), bytes.next());
                out.push(hex_byte(hi, lo)?);
            }
            _ => out.push(b),
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// The first value of query parameter `name` even when empty (Envoy's query-parameter location).
pub(crate) fn query_param_present(raw_path: &str, name: &str) -> Option<String> {
    let (_, query) = split_query(raw_path);
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (form_decode(k).as_deref() == Some(name)).then(|| form_decode(v).unwrap_or_default())
    })
}

/// The first value of query parameter `name` (Go's `Query().Get`).
fn query_param(raw_path: &str, name: &str) -> Option<String> {
    let (_, query) = split_query(raw_path);
    for pair in query?.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        // Like Go's ParseQuery, a pair that fails to decode is skipped.
        if form_decode(k).as_deref() == Some(name) {
            if let Some(value) = form_decode(v) {
                return Some(value);
            }
        }
    }
    None
}

/// The value of cookie `name` in one `Cookie` header; surrounding double quotes are removed.
fn cookie(header: &[u8], name: &str) -> Option<String> {
    let header = String::from_utf8_lossy(header);
    header.split(';').find_map(|part| {
        let (k, v) = part.trim().split_once('=')?;
        if k != name {
            return None;
        }
        let v = v.strip_prefix('"').and_then(|x| x.strip_suffix('"')).unwrap_or(v);
        Some(v.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> Request {
        Request::new("GET", "h", "/p")
    }

    #[test]
    fn bearer_scheme_is_case_insensitive_and_split_at_first_space() {
        let r = req().with_header("Authorization", "bearer abc");
        assert_eq!(extract(&TokenSource::AuthorizationBearer, &r).as_deref(), Some("abc")); // case 18
        let r = req().with_header("Authorization", "Bearer  abc");
        assert_eq!(extract(&TokenSource::AuthorizationBearer, &r).as_deref(), Some(" abc"));
        let r = req().with_header("Authorization", "Basic xyz");
        assert_eq!(extract(&TokenSource::AuthorizationBearer, &r), None); // case 17
        let r = req().with_header("Authorization", "Bearer");
        assert_eq!(extract(&TokenSource::AuthorizationBearer, &r), None);
        let r = req().with_header("Authorization", "Bearer ");
        assert_eq!(extract(&TokenSource::AuthorizationBearer, &r), None);
    }

    #[test]
    fn custom_header_is_raw() {
        let src = TokenSource::Header("x-token".into());
        let r = req().with_header("X-Token", "Bearer abc");
        assert_eq!(extract(&src, &r).as_deref(), Some("Bearer abc")); // case 50 (fails later)
        assert_eq!(extract(&src, &req()), None);
    }

    #[test]
    fn query_parameter_from_url() {
        let src = TokenSource::Query("t".into());
        let r = Request::new("GET", "h", "/p?a=1&t=x.y%2Bz+w&t=second");
        assert_eq!(extract(&src, &r).as_deref(), Some("x.y+z w"));
        let r = Request::new("GET", "h", "/p?t=");
        assert_eq!(extract(&src, &r), None);
        let r = Request::new("GET", "h", "/p?t=%zz");
        assert_eq!(extract(&src, &r), None);
    }

    #[test]
    fn cookie_by_name() {
        let src = TokenSource::Cookie("c".into());
        let r = req().with_header("Cookie", "a=1; c=tok; d=2");
        assert_eq!(extract(&src, &r).as_deref(), Some("tok"));
        let r = req().with_header("Cookie", "a=1").with_header("Cookie", "c=\"q\"");
        assert_eq!(extract(&src, &r).as_deref(), Some("q"));
        let r = req().with_header("Cookie", "cc=1");
        assert_eq!(extract(&src, &r), None);
    }
}
