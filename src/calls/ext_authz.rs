//! An APIRule v2 `extAuth` authorizer, asked as Envoy's HTTP `ext_authz` filter asks the Istio
//! extension provider (`envoyExtAuthzHttp`) it is named after: the request's method and path
//! (under `pathPrefix`) with the headers the provider lets through; 200 allows, adding the
//! provider's `headersToUpstreamOnAllow` to the request; any other status denies with that status
//! and body (and `headersToDownstreamOnDeny`); no answer denies with 403 (Envoy's
//! `status_on_error`, `failure_mode_allow: false`).

use super::{Answer, Call, Target};
use crate::request::Request;

/// One provider, as the plugin option `extAuth.providers.<name>` configures it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provider {
    pub name: String,
    /// Envoy cluster of the authorizer service.
    pub cluster: String,
    /// `:authority` of the check call.
    pub authority: String,
    pub path_prefix: String,
    pub timeout_ms: u64,
    /// Request headers sent besides Envoy's defaults (lower-case).
    pub include_request_headers: Vec<String>,
    pub headers_to_upstream_on_allow: Vec<String>,
    pub headers_to_downstream_on_deny: Vec<String>,
}

/// Headers Envoy's HTTP ext_authz always sends besides method, path and host (the check carries
/// no body, so not the request's `content-length`).
const ALWAYS_SENT: [&str; 1] = ["authorization"];

/// Bodies of the replies Envoy makes up itself when a call finds no authorizer (no connection, no
/// healthy host, timeout): these are "no answer", never the authorizer's own verdict.
const ENVOY_LOCAL_REPLIES: [&[u8]; 3] =
    [b"upstream connect error", b"no healthy upstream", b"upstream request timeout"];

/// The verdict of an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Allowed; set these headers on the request.
    Allowed(Vec<(String, String)>),
    /// Denied with this response.
    Denied { status: u16, headers: Vec<(String, String)>, body: Vec<u8> },
}

impl Provider {
    /// The key a request's answer from this provider is found under.
    pub fn key(&self) -> (String, String) {
        (format!("ext_authz:{}", self.name), String::new())
    }

    /// The check call for `req` (its path as received, query included, after the prefix).
    pub fn call(&self, req: &Request) -> Call {
        let mut headers = Vec::new();
        for (name, value) in &req.headers {
            let name = name.to_ascii_lowercase();
            let wanted = ALWAYS_SENT.contains(&name.as_str()) || self.include_request_headers.contains(&name);
            if wanted && !name.starts_with(':') {
                headers.push((name, String::from_utf8_lossy(value).into_owned()));
            }
        }
        headers.push(("x-forwarded-host".into(), req.authority.clone()));
        let (url, token) = self.key();
        let target = Target::ExtAuthz {
            provider: self.name.clone(),
            method: req.method.clone(),
            path: format!("{}{}", self.path_prefix, req.path),
        };
        Call { url, token, target, headers, body: Vec::new() }
    }

    pub fn judge(&self, answer: &Answer) -> Verdict {
        let forbidden = || Verdict::Denied { status: 403, headers: Vec::new(), body: Vec::new() };
        let Answer::Http { status, headers, body } = answer else {
            return forbidden();
        };
        let pick = |names: &[String]| -> Vec<(String, String)> {
            headers.iter().filter(|(k, _)| names.iter().any(|n| n.eq_ignore_ascii_case(k))).cloned().collect()
        };
        let envoys_own = matches!(*status, 503 | 504) && ENVOY_LOCAL_REPLIES.iter().any(|r| body.starts_with(r));
        match *status {
            200 => Verdict::Allowed(pick(&self.headers_to_upstream_on_allow)),
            0 => forbidden(),
            _ if envoys_own => forbidden(),
            s => Verdict::Denied { status: s, headers: pick(&self.headers_to_downstream_on_deny), body: body.clone() },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider() -> Provider {
        Provider {
            name: "authz".into(),
            cluster: "authz".into(),
            authority: "authz.local".into(),
            path_prefix: "/check".into(),
            timeout_ms: 1000,
            include_request_headers: vec!["x-user".into()],
            headers_to_upstream_on_allow: vec!["x-authz-user".into()],
            headers_to_downstream_on_deny: vec!["x-reason".into()],
        }
    }

    #[test]
    fn the_call_carries_method_path_and_chosen_headers() {
        let req = Request::new("POST", "api.example.com", "/orders?x=1")
            .with_header("authorization", "Bearer t")
            .with_header("x-user", "u")
            .with_header("cookie", "secret");
        let call = provider().call(&req);
        assert_eq!(
            call.target,
            Target::ExtAuthz { provider: "authz".into(), method: "POST".into(), path: "/check/orders?x=1".into() }
        );
        assert!(call.headers.contains(&("authorization".into(), "Bearer t".into())));
        assert!(call.headers.contains(&("x-user".into(), "u".into())));
        assert!(!call.headers.iter().any(|(k, _)| k == "cookie"), "only the headers the provider names");
    }

    #[test]
    fn statuses_and_headers_of_the_answer() {
        let p = provider();
        let http = |status: u16| Answer::Http {
            status,
            headers: vec![("x-authz-user".into(), "alice".into()), ("x-reason".into(), "no".into())],
            body: b"nope".to_vec(),
        };
        assert_eq!(p.judge(&http(200)), Verdict::Allowed(vec![("x-authz-user".into(), "alice".into())]));
        assert_eq!(
            p.judge(&http(401)),
            Verdict::Denied { status: 401, headers: vec![("x-reason".into(), "no".into())], body: b"nope".to_vec() }
        );
        assert!(matches!(p.judge(&http(0)), Verdict::Denied { status: 403, .. }), "no answer");
        let envoy =
            Answer::Http { status: 503, headers: vec![], body: b"upstream connect error or disconnect".to_vec() };
        assert!(matches!(p.judge(&envoy), Verdict::Denied { status: 403, .. }), "Envoy's own 503 is no answer");
        let own = Answer::Http { status: 503, headers: vec![], body: b"maintenance".to_vec() };
        assert!(matches!(p.judge(&own), Verdict::Denied { status: 503, .. }), "the authorizer's 503 is its verdict");
    }
}
