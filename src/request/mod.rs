//! The request as the policy and the authenticators see it: an owned snapshot, so a request
//! paused for JWKS can be decided again later without the host; and its path, normalised once
//! for every semantics.

pub mod path;

/// What the filter read from the request headers.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// `:authority` (the Host header) verbatim.
    pub authority: String,
    /// `:method`.
    pub method: String,
    /// `:path` verbatim, with query string.
    pub path: String,
    /// All other headers, names lower-case (as Envoy gives them), values as raw bytes because
    /// HTTP allows non-UTF-8 octets there.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Request {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_slice())
    }

    /// The `x-request-id` Envoy assigned (or the client sent), echoed in deny bodies as
    /// Oathkeeper did.
    pub fn request_id(&self) -> Option<String> {
        self.header("x-request-id").map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// Every value of header `name`, in order.
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.headers.iter().filter(move |(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_slice())
    }

    /// Why the headers are ambiguous, if they are: more than one `Authorization` header. Envoy
    /// joins repeated ones into one value before any filter runs (`a,b`, never a valid token);
    /// seen apart, the backend could use another one than the filter verified.
    pub fn ambiguous_header(&self) -> Option<&'static str> {
        let mut authorization = self.header_values("authorization");
        authorization.next();
        authorization.next().map(|_| "more than one Authorization header")
    }

    /// Builder used by tests and the CLI.
    pub fn new(method: &str, authority: &str, path: &str) -> Self {
        Request { authority: authority.into(), method: method.into(), path: path.into(), headers: Vec::new() }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_ascii_lowercase(), value.as_bytes().to_vec()));
        self
    }
}
