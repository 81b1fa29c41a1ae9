//! Oathkeeper's `oauth2_introspection` authenticator (RFC 7662; reference §2.7, §2.9, §4) as a
//! pure part: the request the host dispatches, the checks on the answer, and a bounded cache of
//! answers keyed by (introspection URL, token), never by the token alone (GHSA-4mq7-pvjg-xp2r).
//! `Call`, `Answer` and `Answers` serve `ext_authz` too.

use std::collections::HashMap;
use std::rc::Rc;

use serde_json::{Map, Value};

use crate::jwt::extract::TokenSource;
use crate::jwt::scope::ScopeStrategy;

/// A compiled `oauth2_introspection` access strategy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntrospectionRule {
    pub url: String,
    pub required_scope: Vec<String>,
    pub target_audience: Vec<String>,
    pub trusted_issuers: Vec<String>,
    /// `None` is Oathkeeper's strategy `none`: the scopes go to the endpoint instead.
    pub scope_strategy: Option<ScopeStrategy>,
    pub token_from: TokenSource,
    /// Only tokens starting with this are this authenticator's (`prefix`).
    pub prefix: String,
    /// `introspection_request_headers`, sent with every call.
    pub headers: Vec<(String, String)>,
    /// How long an answer that passed the checks is reused (`cache.enabled` + `cache.ttl`).
    pub cache_ttl_ms: Option<u64>,
    /// `preserve_host`: the call carries the request's host as `x-forwarded-host`.
    pub preserve_host: bool,
}

/// One dispatched call: where it goes, what the host sends, and the key its answer is found
/// under (`url`, `token`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub url: String,
    pub token: String,
    pub target: Target,
    pub headers: Vec<(String, String)>,
    /// Introspection: `application/x-www-form-urlencoded` `token=...` (and `scope=...` for
    /// strategy `none`); ext_authz: empty.
    pub body: Vec<u8>,
}

/// Whom a call is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// POST to the introspection endpoint of `url`.
    Introspection,
    /// The request's method and this path at the named `extAuth` provider.
    ExtAuthz { provider: String, method: String, path: String },
}

/// What came back from the endpoint.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// HTTP 200 with a JSON object.
    Ok(Rc<Map<String, Value>>),
    /// The endpoint said 429.
    TooManyRequests,
    /// Any other status, a body that is not a JSON object, a timeout or no connection.
    Failed(String),
    /// An ext_authz answer: the status (0: no answer), the headers and body as they came.
    Http { status: u16, headers: Vec<(String, String)>, body: Vec<u8> },
}

/// The verdict of the checks, as Oathkeeper's statuses (§2.7).
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// The session: subject and `Extra`.
    Allowed {
        subject: String,
        extra: Rc<Map<String, Value>>,
    },
    Denied {
        status: u16,
        reason: String,
    },
}

impl IntrospectionRule {
    /// The call for `token`.
    pub fn call(&self, token: &str) -> Call {
        let mut body = format!("token={}", form_encode(token));
        if self.scope_strategy.is_none() && !self.required_scope.is_empty() {
            body.push_str(&format!("&scope={}", form_encode(&self.required_scope.join(" "))));
        }
        let mut headers: Vec<(String, String)> =
            self.headers.iter().filter(|(k, _)| !k.eq_ignore_ascii_case("content-type")).cloned().collect();
        headers.push(("content-type".into(), "application/x-www-form-urlencoded".into()));
        Call {
            url: self.url.clone(),
            token: token.to_owned(),
            target: Target::Introspection,
            headers,
            body: body.into_bytes(),
        }
    }

    /// Oathkeeper's checks, in its order: token_use, active, exp, audience, issuer, scopes.
    pub fn check(&self, answer: &Answer, now_secs: i64) -> Verdict {
        let deny = |status: u16, reason: &str| Verdict::Denied { status, reason: reason.to_owned() };
        let claims = match answer {
            Answer::Ok(c) => c,
            Answer::TooManyRequests => return deny(429, "introspection endpoint answered 429"),
            Answer::Failed(why) => return deny(500, &format!("introspection failed: {why}")),
            Answer::Http { .. } => return deny(500, "introspection got an answer of another kind"),
        };
        let str_of = |k: &str| claims.get(k).and_then(Value::as_str).unwrap_or_default();
        let token_use = str_of("token_use");
        if !token_use.is_empty() && token_use != "access_token" {
            return deny(403, "introspected token is not an access token");
        }
        if claims.get("active").and_then(Value::as_bool) != Some(true) {
            return deny(401, "access token is not active");
        }
        let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
        if exp > 0 && exp < now_secs {
            return deny(401, "access token expired");
        }
        let audience: Vec<&str> = match claims.get("aud") {
            Some(Value::String(s)) => vec![s.as_str()],
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if self.target_audience.iter().any(|a| !audience.contains(&a.as_str())) {
            return deny(403, "token audience is not intended for the target audience");
        }
        if !self.trusted_issuers.is_empty() && !self.trusted_issuers.iter().any(|i| i == str_of("iss")) {
            return deny(403, "token issuer does not match any trusted issuer");
        }
        if let Some(strategy) = self.scope_strategy {
            let granted: Vec<String> = str_of("scope").split(' ').map(str::to_owned).collect();
            if let Some(missing) = self.required_scope.iter().find(|s| !strategy.grants(&granted, s)) {
                return deny(403, &format!("scope {missing} was not granted"));
            }
        }
        let mut extra = claims.get("ext").and_then(Value::as_object).cloned().unwrap_or_default();
        for key in ["username", "client_id", "scope"] {
            extra.insert(key.into(), Value::String(str_of(key).to_owned()));
        }
        if !audience.is_empty() {
            extra.insert("aud".into(), Value::from(audience));
        }
        Verdict::Allowed { subject: str_of("sub").to_owned(), extra: Rc::new(extra) }
    }
}

/// `application/x-www-form-urlencoded` as Go's `url.Values.Encode`.
fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(char::from(b)),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Answers by (introspection URL, token): those that passed a rule's checks, kept for that rule's
/// TTL (reused only under the same URL, and checked again under every rule), and, for one
/// request, the answer its own call brought (`fresh`), whatever it was.
#[derive(Debug, Default)]
pub struct Answers {
    kept: HashMap<(String, String), (Answer, u64)>,
    /// The answers the current request's own calls brought (set by the host while it decides).
    pub fresh: Vec<((String, String), Answer)>,
}

/// Most answers a worker keeps (each a token plus the endpoint's JSON).
pub const MAX_KEPT: usize = 4096;

impl Answers {
    /// The answer for (url, token): the request's own, else a kept one still valid at `now_ms`.
    pub fn lookup(&self, url: &str, token: &str, now_ms: u64) -> Option<Answer> {
        let own = self.fresh.iter().find(|((u, t), _)| u == url && t == token).map(|(_, a)| a.clone());
        own.or_else(|| self.get(url, token, now_ms).cloned())
    }

    /// A kept answer for (url, token) still valid at `now_ms`.
    pub fn get(&self, url: &str, token: &str, now_ms: u64) -> Option<&Answer> {
        let (answer, until) = self.kept.get(&(url.to_owned(), token.to_owned()))?;
        (now_ms < *until).then_some(answer)
    }

    /// Keeps `answer` until `until_ms`; when full, expired entries go first, then everything.
    pub fn keep(&mut self, url: &str, token: &str, answer: Answer, until_ms: u64, now_ms: u64) {
        if self.kept.len() >= MAX_KEPT {
            self.kept.retain(|_, (_, until)| *until > now_ms);
            if self.kept.len() >= MAX_KEPT {
                self.kept.clear();
            }
        }
        self.kept.insert((url.to_owned(), token.to_owned()), (answer, until_ms));
    }

    pub fn len(&self) -> usize {
        self.kept.len()
    }

    pub fn is_empty(&self) -> bool {
        self.kept.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule() -> IntrospectionRule {
        IntrospectionRule {
            url: "http://idp/introspect".into(),
            required_scope: vec!["read".into()],
            target_audience: vec!["api".into()],
            trusted_issuers: vec!["https://idp".into()],
            scope_strategy: Some(ScopeStrategy::Exact),
            token_from: TokenSource::AuthorizationBearer,
            prefix: String::new(),
            headers: vec![("X-Api-Key".into(), "k".into())],
            cache_ttl_ms: None,
            preserve_host: false,
        }
    }

    fn ok(v: Value) -> Answer {
        Answer::Ok(Rc::new(v.as_object().cloned().unwrap_or_default()))
    }

    fn good() -> Value {
        json!({"active": true, "sub": "alice", "aud": ["api"], "iss": "https://idp", "scope": "read write", "exp": 2000})
    }

    fn status(v: Verdict) -> u16 {
        match v {
            Verdict::Allowed { .. } => 200,
            Verdict::Denied { status, .. } => status,
        }
    }

    #[test]
    fn checks_in_oathkeepers_order_with_its_statuses() {
        let r = rule();
        let with = |patch: Value| {
            let mut v = good();
            for (k, x) in patch.as_object().unwrap() {
                v[k] = x.clone();
            }
            status(r.check(&ok(v), 1000))
        };
        assert_eq!(with(json!({})), 200);
        assert_eq!(with(json!({"active": false})), 401);
        assert_eq!(with(json!({"exp": 999})), 401);
        assert_eq!(with(json!({"token_use": "id_token"})), 403);
        assert_eq!(with(json!({"token_use": "id_token", "active": false})), 403, "token_use first");
        assert_eq!(with(json!({"aud": "other"})), 403);
        assert_eq!(with(json!({"iss": "https://evil"})), 403);
        assert_eq!(with(json!({"scope": "write"})), 403);
        assert_eq!(status(r.check(&Answer::Failed("down".into()), 1000)), 500);
        assert_eq!(status(r.check(&Answer::TooManyRequests, 1000)), 429);
    }

    #[test]
    fn the_session_carries_subject_and_extra() {
        let Verdict::Allowed { subject, extra } = rule().check(&ok(good()), 1000) else { panic!("allowed") };
        assert_eq!(subject, "alice");
        assert_eq!(extra["scope"], "read write");
        assert_eq!(extra["aud"], json!(["api"]));
    }

    #[test]
    fn the_call_is_a_form_post_with_the_token() {
        let call = rule().call("a b+c");
        assert_eq!(call.body, b"token=a+b%2Bc");
        assert!(call.headers.contains(&("content-type".into(), "application/x-www-form-urlencoded".into())));
        let none = IntrospectionRule { scope_strategy: None, ..rule() };
        assert_eq!(none.call("t").body, b"token=t&scope=read");
    }

    #[test]
    fn answers_are_kept_per_url_and_token() {
        let mut a = Answers::default();
        a.keep("http://one", "t", ok(good()), 5000, 0);
        assert!(a.get("http://one", "t", 4999).is_some());
        assert!(a.get("http://one", "t", 5000).is_none(), "expired");
        assert!(a.get("http://two", "t", 0).is_none(), "another URL never sees it");
        assert!(a.get("http://one", "u", 0).is_none());
    }
}
