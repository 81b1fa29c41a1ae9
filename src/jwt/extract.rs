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

/// The token location holds more than one value: a header sent twice, a query parameter or a
/// cookie named twice. Oathkeeper (Go's `Header.Get`, `Query().Get`, `Cookie`) read the first
/// one; a backend may read another, so the request is refused as an invalid token instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repeated;

impl std::fmt::Display for Repeated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("more than one value at the token location")
    }
}

/// The one item of `items`, `None` without any, `Repeated` with two or more.
pub(crate) fn at_most_one<T>(mut items: impl Iterator<Item = T>) -> Result<Option<T>, Repeated> {
    let first = items.next();
    match items.next() {
        Some(_) => Err(Repeated),
        None => Ok(first),
    }
}

/// The token, if the request carries a non-empty one at `source`. Non-UTF-8 bytes are kept as a
/// lossy string: such a token cannot parse, so it is denied rather than treated as absent. A
/// query value that does not decode is no token (Go's `ParseQuery` skipped such a pair). More
/// than one value at the location, however spelled and whatever they hold, is `Repeated`.
pub fn extract(source: &TokenSource, req: &Request) -> Result<Option<String>, Repeated> {
    let token = match source {
        TokenSource::AuthorizationBearer => at_most_one(req.header_values("authorization"))?.and_then(bearer),
        TokenSource::Header(name) => {
            at_most_one(req.header_values(name))?.map(|v| String::from_utf8_lossy(v).into_owned())
        }
        TokenSource::Query(name) => at_most_one(query_values(&req.path, name))?.and_then(form_decode),
        TokenSource::Cookie(name) => at_most_one(req.header_values("cookie").flat_map(|v| cookies(v, name)))?,
    };
    Ok(token.filter(|t| !t.is_empty()))
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
pub(crate) fn form_decode(s: &str) -> Option<String> {
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

/// The raw (still encoded) values of every pair of the query whose name decodes to `name`,
/// with or without `=` (a pair without one has an empty value), whether or not the value decodes.
pub(crate) fn query_values<'a>(raw_path: &'a str, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    let (_, query) = split_query(raw_path);
    query.into_iter().flat_map(|q| q.split('&')).filter_map(move |pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (form_decode(k).as_deref() == Some(name)).then_some(v)
    })
}

/// Every value of cookie `name` in one `Cookie` header, in order; surrounding double quotes are
/// removed.
fn cookies(header: &[u8], name: &str) -> Vec<String> {
    let header = String::from_utf8_lossy(header);
    header
        .split(';')
        .filter_map(|part| {
            let (k, v) = part.trim().split_once('=')?;
            (k == name).then(|| v.strip_prefix('"').and_then(|x| x.strip_suffix('"')).unwrap_or(v).to_owned())
        })
        .collect()
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
        assert_eq!(extract(&TokenSource::AuthorizationBearer, &r).unwrap().as_deref(), Some("abc")); // case 18
        let r = req().with_header("Authorization", "Bearer  abc");
        assert_eq!(extract(&TokenSource::AuthorizationBearer, &r).unwrap().as_deref(), Some(" abc"));
        let r = req().with_header("Authorization", "Basic xyz");
        assert_eq!(extract(&TokenSource::AuthorizationBearer, &r), Ok(None)); // case 17
        let r = req().with_header("Authorization", "Bearer");
        assert_eq!(extract(&TokenSource::AuthorizationBearer, &r), Ok(None));
        let r = req().with_header("Authorization", "Bearer ");
        assert_eq!(extract(&TokenSource::AuthorizationBearer, &r), Ok(None));
    }

    #[test]
    fn custom_header_is_raw() {
        let src = TokenSource::Header("x-token".into());
        let r = req().with_header("X-Token", "Bearer abc");
        assert_eq!(extract(&src, &r).unwrap().as_deref(), Some("Bearer abc")); // case 50 (fails later)
        assert_eq!(extract(&src, &req()), Ok(None));
        let twice = req().with_header("X-Token", "abc").with_header("x-token", "abc");
        assert_eq!(extract(&src, &twice), Err(Repeated), "two values, even equal ones");
        let one_empty = req().with_header("X-Token", "").with_header("X-Token", "abc");
        assert_eq!(extract(&src, &one_empty), Err(Repeated));
    }

    #[test]
    fn query_parameter_from_url() {
        let src = TokenSource::Query("t".into());
        let r = Request::new("GET", "h", "/p?a=1&t=x.y%2Bz+w&b=2");
        assert_eq!(extract(&src, &r).unwrap().as_deref(), Some("x.y+z w"));
        // Named twice, however spelled and whatever the values (Go's Query().Get read the first).
        for twice in ["/p?t=a&t=b", "/p?t=&t=b", "/p?t=a&%74=b", "/p?t=%zz&t=b", "/p?t&t=b", "/p?t=a&t"] {
            assert_eq!(extract(&src, &Request::new("GET", "h", twice)), Err(Repeated), "{twice}");
        }
        let r = Request::new("GET", "h", "/p?t=");
        assert_eq!(extract(&src, &r), Ok(None));
        let r = Request::new("GET", "h", "/p?t=%zz");
        assert_eq!(extract(&src, &r), Ok(None));
    }

    #[test]
    fn cookie_by_name() {
        let src = TokenSource::Cookie("c".into());
        let r = req().with_header("Cookie", "a=1; c=tok; d=2");
        assert_eq!(extract(&src, &r).unwrap().as_deref(), Some("tok"));
        let r = req().with_header("Cookie", "a=1").with_header("Cookie", "c=\"q\"");
        assert_eq!(extract(&src, &r).unwrap().as_deref(), Some("q"));
        let r = req().with_header("Cookie", "cc=1");
        assert_eq!(extract(&src, &r), Ok(None));
        let r = req().with_header("Cookie", "c=a; d=1; c=b");
        assert_eq!(extract(&src, &r), Err(Repeated));
        let r = req().with_header("Cookie", "c=a").with_header("Cookie", "c=b");
        assert_eq!(extract(&src, &r), Err(Repeated));
    }
}
