//! APIRule v2 semantics as Kyma deploys them with Istio (reference §3.4-3.5): the VirtualService
//! route stage, then the workload's RequestAuthentication (Envoy `jwt_authn`), then its ALLOW
//! AuthorizationPolicies (Envoy `rbac`).
//!
//! What the gateway cannot see is left out and documented (docs/compatibility.md): policies that
//! other APIRules or users attach to the same workload, and calls that bypass the gateway. The
//! workload of a request is the service of the route it matched; the RequestAuthentication and
//! the AuthorizationPolicies in force are those of every rule of the APIRule with that service.

use std::rc::Rc;

use serde_json::{Map, Value};

use super::response::{self, ErrorStyle};
use super::template::Template;
use super::{Decision, PathPattern, RuleId};
use crate::jwt::cache::VerifiedTokens;
use crate::jwt::envoy::{self, Authn, Provider};
use crate::keys::KeyStore;
use crate::request::path;
use crate::request::Request;

/// The compiled v2 rules of one APIRule.
#[derive(Debug)]
pub struct Rules {
    /// `x-forwarded-host` for the backend: the APIRule's host, or `None` for a wildcard host, whose
    /// backend gets the request's own host (Kyma 3.7).
    pub forwarded_host: Option<String>,
    /// The AuthorizationPolicy `hosts` entry.
    pub policy_host: PolicyHost,
    /// In order: the first rule whose route matches wins.
    pub rules: Vec<Rule>,
    /// Every jwtRule of the APIRule, with the service (workload) its rule targets.
    pub providers: Vec<(Rc<str>, Provider)>,
}

/// How the AuthorizationPolicy matches `:authority`: case-insensitively, port included (so
/// `host:443` is refused, api-gateway#2562).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyHost {
    /// The lower-case host.
    Exact(String),
    /// A wildcard host `*.example.com`, as the lower-case suffix `.example.com`.
    Suffix(String),
}

impl PolicyHost {
    fn matches(&self, authority: &str) -> bool {
        let authority = authority.to_ascii_lowercase();
        match self {
            PolicyHost::Exact(h) => authority == *h,
            PolicyHost::Suffix(s) => authority.len() > s.len() && authority.ends_with(s.as_str()),
        }
    }
}

/// Where a rule's route sends a matching request, and what the AuthorizationPolicy requires.
#[derive(Debug)]
pub struct Rule {
    pub id: RuleId,
    /// `namespace/name` of the rule's service: requests routed to the same service share its
    /// RequestAuthentication and AuthorizationPolicies.
    pub service: Rc<str>,
    /// Exact, case-sensitive (the VirtualService matches `^(GET|POST)$`).
    pub methods: Vec<String>,
    /// The VirtualService match: `None` for `/*` (prefix `/`), else Kyma's regex.
    pub route: Option<Rc<PathPattern>>,
    /// The AuthorizationPolicy `paths` entry.
    pub path: Rc<Template>,
    /// The AuthorizationPolicy `notPaths`: earlier rules' paths that share a method.
    pub not_paths: Vec<Rc<Template>>,
    pub access: Access,
    /// `request.headers`, and `request.cookies` as one `cookie` header, set on the forwarded request.
    pub set_headers: Vec<(String, String)>,
}

/// What the rule's AuthorizationPolicy asks of the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    NoAuth,
    /// A principal of one of `issuers`, and, when there are authorizations, one of them satisfied.
    Jwt {
        issuers: Vec<String>,
        authorizations: Vec<Authorization>,
    },
}

/// One `jwt.authorizations[]` entry: every audience, and every required scope in one claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub required_scopes: Vec<String>,
    pub audiences: Vec<String>,
}

/// The claims Kyma's generated conditions look for scopes in (one policy rule per claim).
const SCOPE_CLAIMS: [&str; 3] = ["scp", "scope", "scopes"];

impl Authorization {
    fn satisfied(&self, claims: &Map<String, Value>) -> bool {
        let audiences = self.audiences.iter().all(|a| envoy::claim_has(claims, "aud", a));
        let scopes = self.required_scopes.is_empty()
            || SCOPE_CLAIMS.iter().any(|claim| self.required_scopes.iter().all(|s| envoy::claim_has(claims, claim, s)));
        audiences && scopes
    }
}

impl Rule {
    fn routes(&self, method: &str, path: &str) -> bool {
        self.methods.iter().any(|m| m == method) && self.route.as_ref().is_none_or(|r| r.matches(path))
    }

    /// Whether this rule's ALLOW policy admits the request.
    fn permits(&self, method: &str, path: &str, claims: Option<&Map<String, Value>>) -> bool {
        if !self.methods.iter().any(|m| m == method) || !self.path.matches(path) {
            return false;
        }
        if self.not_paths.iter().any(|p| p.matches(path)) {
            return false;
        }
        match &self.access {
            Access::NoAuth => true,
            Access::Jwt { issuers, authorizations } => claims.is_some_and(|c| {
                issuers.iter().any(|i| envoy::principal_matches(c, i))
                    && (authorizations.is_empty() || authorizations.iter().any(|a| a.satisfied(c)))
            }),
        }
    }
}

/// Decides a request for a host whose APIRule is v2.
pub(super) fn decide(
    rules: &Rules,
    req: &Request,
    now_ms: u64,
    keys: &dyn KeyStore,
    tokens: &mut VerifiedTokens,
) -> Decision {
    let (raw_path, query) = path::split_query(&req.path);
    let normalized = match path::normalize(raw_path) {
        Ok(p) => p,
        Err(e) => {
            let response = response::render(400, ErrorStyle::BadRequest, req.request_id().as_deref(), false);
            return Decision::Deny { rule: None, reason: format!("unusable path: {e:?}"), response };
        }
    };

    // The VirtualService: the first rule whose method and path match.
    let Some(route) = rules.rules.iter().find(|r| r.routes(&req.method, &normalized)) else {
        let response = response::render(404, ErrorStyle::EnvoyNoRoute, None, false);
        return Decision::Deny { rule: None, reason: "no route matches path and method".into(), response };
    };
    let workload = &route.service;

    // The workload's RequestAuthentication.
    let providers: Vec<&Provider> = rules.providers.iter().filter(|(s, _)| s == workload).map(|(_, p)| p).collect();
    let authn =
        if providers.is_empty() { Authn::Missing } else { envoy::authenticate(&providers, req, now_ms, keys, tokens) };
    let verified = match authn {
        Authn::Missing => None,
        Authn::Verified(v) => Some(v),
        Authn::NeedKeys(urls) => return Decision::NeedKeys { urls },
        Authn::Rejected(reason) => {
            let scheme = req.header(":scheme").map_or("http".into(), String::from_utf8_lossy);
            let realm = format!("{scheme}://{}{raw_path}", req.authority);
            let response = response::render_envoy_jwt(reason, &realm);
            return Decision::Deny { rule: Some(route.id.clone()), reason: reason.to_owned(), response };
        }
    };

    // The workload's ALLOW AuthorizationPolicies: any one admitting the request is enough.
    let claims = verified.as_ref().map(|v| &v.claims);
    let allowed = rules.policy_host.matches(&req.authority)
        && rules.rules.iter().filter(|r| r.service == *workload).any(|r| r.permits(&req.method, &normalized, claims));
    if !allowed {
        let reason = "no AuthorizationPolicy allows the request".to_owned();
        return Decision::Deny { rule: Some(route.id.clone()), reason, response: response::render_rbac_denied() };
    }

    let forwarded_host = rules.forwarded_host.clone().unwrap_or_else(|| req.authority.clone());
    let mut set_headers = vec![("x-forwarded-host".to_owned(), forwarded_host)];
    if normalized != raw_path {
        let rewritten = match query {
            Some(q) => format!("{normalized}?{q}"),
            None => normalized.clone(),
        };
        set_headers.push((":path".to_owned(), rewritten));
    }
    set_headers.extend(route.set_headers.iter().cloned());
    Decision::Allow { rule: route.id.clone(), set_headers }
}
