//! APIRule semantics as Kyma deploys them with Istio (reference §3.4-3.5): the VirtualService
//! route stage, then the workload's RequestAuthentication (Envoy `jwt_authn`), then its ALLOW
//! AuthorizationPolicies (Envoy `rbac`). Used by v2alpha1/v2, and by v1beta1 APIRules written
//! for Kyma's Istio JWT handler (§1.5), whose non-JWT handlers still go through Oathkeeper's
//! access-rule stage on their way to the workload.
//!
//! What the gateway cannot see is left out and documented (docs/compatibility.md): policies that
//! other APIRules or users attach to the same workload, and calls that bypass the gateway. The
//! workload of a request is the service of the route it matched; the RequestAuthentication and
//! the AuthorizationPolicies in force are those of every rule of the APIRule with that service.

use std::rc::Rc;

use serde_json::{Map, Value};

use super::response::Response;
use super::response::{self, ErrorStyle};
use super::template::Template;
use super::{oathkeeper, Decision, Memory, PathPattern, Policy, RuleId};
use crate::calls::ext_authz;
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
    /// The AuthorizationPolicy `hosts` entry (v1beta1's policies have none).
    pub policy_host: Option<PolicyHost>,
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
        // Compared in place: this runs on every request of the host, and needs no lower-case copy.
        match self {
            PolicyHost::Exact(h) => authority.eq_ignore_ascii_case(h),
            PolicyHost::Suffix(s) => {
                let start = authority.len().saturating_sub(s.len());
                start > 0 && authority.get(start..).is_some_and(|tail| tail.eq_ignore_ascii_case(s))
            }
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
    /// Whether the VirtualService has a route for this rule (v1beta1 keeps the first rule per path).
    pub routed: bool,
    /// Whether the route matches every method (v1beta1 `allow`).
    pub route_any_method: bool,
    /// The VirtualService match: `None` for `/*` (prefix `/`), else Kyma's regex.
    pub route: Option<Rc<PathPattern>>,
    /// The AuthorizationPolicy `paths` entry.
    pub path: PolicyPath,
    /// The AuthorizationPolicy `notPaths`: earlier rules' paths that share a method.
    pub not_paths: Vec<PolicyPath>,
    pub access: Access,
    /// `request.headers`, and `request.cookies` as one `cookie` header, set on the forwarded request.
    pub set_headers: Vec<(String, HeaderValue)>,
    /// `extAuth.authorizers`: asked in order (the workload's CUSTOM policies) when the request
    /// matches this rule's host, method and path.
    pub ext_authz: Vec<Rc<ext_authz::Provider>>,
}

/// A header value the VirtualService sets, which Envoy formats per request: literal text and
/// `%REQ(name)%` / `%REQ(a?b)%` (the first present request header; `:authority`, `:path` and
/// `:method` too). Other command operators are refused at load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderValue(Vec<ValuePart>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum ValuePart {
    Text(String),
    Req(Vec<String>),
}

impl HeaderValue {
    pub fn parse(source: &str) -> Result<HeaderValue, String> {
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut rest = source;
        while let Some((before, after)) = rest.split_once('%') {
            text.push_str(before);
            if let Some(r) = after.strip_prefix('%') {
                text.push('%');
                rest = r;
                continue;
            }
            let unsupported = || {
                format!("command operator in {source:?} is not supported (supported: %REQ(header)%, %REQ(a?b)%, %%)")
            };
            let inner = after.strip_prefix("REQ(").ok_or_else(unsupported)?;
            let (inside, after_close) = inner.split_once(")%").ok_or_else(unsupported)?;
            let names: Vec<String> = inside.split('?').map(|n| n.trim().to_ascii_lowercase()).collect();
            if names.iter().any(String::is_empty) || names.len() > 2 {
                return Err(unsupported());
            }
            if !text.is_empty() {
                parts.push(ValuePart::Text(std::mem::take(&mut text)));
            }
            parts.push(ValuePart::Req(names));
            rest = after_close;
        }
        text.push_str(rest);
        if !text.is_empty() {
            parts.push(ValuePart::Text(text));
        }
        Ok(HeaderValue(parts))
    }

    fn render(&self, req: &Request) -> String {
        let mut out = String::new();
        for part in &self.0 {
            match part {
                ValuePart::Text(t) => out.push_str(t),
                ValuePart::Req(names) => {
                    let value = names.iter().find_map(|n| match n.as_str() {
                        ":authority" => Some(req.authority.clone()),
                        ":path" => Some(req.path.clone()),
                        ":method" => Some(req.method.clone()),
                        other => req.header(other).map(|v| String::from_utf8_lossy(v).into_owned()),
                    });
                    // A claim-free but client-chosen value: never let it split the header.
                    out.extend(value.unwrap_or_default().chars().filter(|c| !c.is_control()));
                }
            }
        }
        out
    }
}

/// An AuthorizationPolicy path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyPath {
    /// v2: a URI template.
    Template(Rc<Template>),
    /// v1beta1: the rule's path written verbatim into the policy, which Istio reads as an exact
    /// string, `prefix*`, `*suffix` or `*` (so a regex there matches only itself, literally).
    Istio(Rc<str>),
}

impl PolicyPath {
    fn matches(&self, path: &str) -> bool {
        match self {
            PolicyPath::Template(t) => t.matches(path),
            PolicyPath::Istio(p) => {
                if &**p == "*" {
                    !path.is_empty()
                } else if let Some(prefix) = p.strip_suffix('*') {
                    path.starts_with(prefix)
                } else if let Some(suffix) = p.strip_prefix('*') {
                    path.ends_with(suffix)
                } else {
                    path == &**p
                }
            }
        }
    }
}

/// What the rule's AuthorizationPolicy asks of the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Any caller coming from the ingress gateway (not through Oathkeeper).
    NoAuth,
    /// v1beta1 handlers Oathkeeper decides (`noop`, `anonymous`, `unauthorized`): the route goes
    /// through the access-rule stage, and the policy admits what comes from Oathkeeper.
    Oathkeeper,
    /// A principal of one of `issuers`, and, when there are authorizations, one of them satisfied.
    Jwt { issuers: Vec<String>, authorizations: Vec<Authorization> },
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
        self.routed
            && (self.route_any_method || self.methods.iter().any(|m| m == method))
            && self.route.as_ref().is_none_or(|r| r.matches(path))
    }

    /// Whether the request matches this rule's policy target (methods, path; no `notPaths`, as
    /// the CUSTOM policies of `extAuth` have none).
    fn targets(&self, method: &str, path: &str) -> bool {
        self.methods.iter().any(|m| m == method) && self.path.matches(path)
    }

    /// Whether this rule's ALLOW policy admits the request (`via_oathkeeper`: it comes from
    /// Oathkeeper rather than straight from the ingress gateway).
    fn permits(&self, method: &str, path: &str, claims: Option<&Map<String, Value>>, via_oathkeeper: bool) -> bool {
        if !self.methods.iter().any(|m| m == method) || !self.path.matches(path) {
            return false;
        }
        if self.not_paths.iter().any(|p| p.matches(path)) {
            return false;
        }
        match &self.access {
            Access::NoAuth => !via_oathkeeper,
            Access::Oathkeeper => via_oathkeeper,
            Access::Jwt { issuers, authorizations } => claims.is_some_and(|c| {
                issuers.iter().any(|i| envoy::principal_matches(c, i))
                    && (authorizations.is_empty() || authorizations.iter().any(|a| a.satisfied(c)))
            }),
        }
    }
}

/// Decides a request for a host whose APIRule has Istio semantics.
pub(super) fn decide(
    policy: &Policy,
    rules: &Rules,
    req: &Request,
    now_ms: u64,
    keys: &dyn KeyStore,
    memory: &mut Memory<'_>,
) -> Decision {
    let bad_request = |reason: String| {
        let response = response::render(400, ErrorStyle::BadRequest, req.request_id().as_deref(), false);
        Decision::Deny { rule: None, reason, response }
    };
    let rule_path = match path::rule_path(&req.path, policy.escaped_slashes) {
        Ok(p) => p,
        Err(e) => return bad_request(format!("path {}", e.reason())),
    };
    if let Some(reason) = req.ambiguous_header() {
        return bad_request(reason.to_owned());
    }
    let normalized = rule_path.normalized.as_str();

    // The VirtualService: the first rule whose method and path match.
    let Some(route) = rules.rules.iter().find(|r| r.routes(&req.method, normalized)) else {
        let response = response::render(404, ErrorStyle::EnvoyNoRoute, None, false);
        return Decision::Deny { rule: None, reason: "no route matches path and method".into(), response };
    };
    let workload = &route.service;

    // Oathkeeper first, for the v1beta1 handlers it decides; its mutators' headers go along.
    let mut mutated = Vec::new();
    let via_oathkeeper = route.access == Access::Oathkeeper;
    if via_oathkeeper {
        match oathkeeper::access_stage(policy, &route.id, req, &rule_path, now_ms, keys, memory) {
            Ok((_, headers)) => mutated = headers,
            Err(decision) => return decision,
        }
    }

    // The workload's RequestAuthentication.
    let providers: Vec<&Provider> = rules.providers.iter().filter(|(s, _)| s == workload).map(|(_, p)| p).collect();
    // Istio sets `bypass_cors_preflight`: a CORS preflight carries no token and is not checked
    // for one; the policies still decide it (a jwt rule then answers 403).
    let non_empty = |name: &str| req.header(name).is_some_and(|v| !v.is_empty());
    let preflight = req.method == "OPTIONS" && non_empty("origin") && non_empty("access-control-request-method");
    let authn = if providers.is_empty() || preflight {
        Authn::Missing
    } else {
        envoy::authenticate(&providers, req, now_ms, keys, memory.tokens)
    };
    let verified = match authn {
        Authn::Missing => None,
        Authn::Verified(v) => Some(v),
        Authn::NeedKeys(urls) => return Decision::NeedKeys { urls },
        Authn::Rejected(reason) => {
            let scheme = req.header(":scheme").map_or("http".into(), String::from_utf8_lossy);
            let (raw_path, _) = path::split_query(&req.path);
            let realm = format!("{scheme}://{}{raw_path}", req.authority);
            let response = response::render_envoy_jwt(reason, &realm);
            return Decision::Deny { rule: Some(route.id.clone()), reason: reason.to_owned(), response };
        }
    };

    // The workload's CUSTOM policies (extAuth), before the ALLOW ones, as Istio orders them.
    let host_ok = rules.policy_host.as_ref().is_none_or(|h| h.matches(&req.authority));
    let customs = rules.rules.iter().filter(|r| r.service == *workload && !r.ext_authz.is_empty());
    for r in customs.filter(|r| host_ok && r.targets(&req.method, normalized)) {
        for provider in &r.ext_authz {
            let (url, token) = provider.key();
            let Some(answer) = memory.answers.lookup(&url, &token, now_ms) else {
                return Decision::NeedCall { call: Box::new(provider.call(req)) };
            };
            match provider.judge(&answer) {
                ext_authz::Verdict::Allowed(headers) => mutated.extend(headers),
                ext_authz::Verdict::Denied { status, headers, body } => {
                    let reason = format!("extAuth authorizer {} answered {status}", provider.name);
                    let response = Response { status, headers, body };
                    return Decision::Deny { rule: Some(r.id.clone()), reason, response };
                }
            }
        }
    }

    // The workload's ALLOW AuthorizationPolicies: any one admitting the request is enough.
    let claims = verified.as_ref().map(|v| &v.claims);
    let allowed = host_ok
        && rules
            .rules
            .iter()
            .filter(|r| r.service == *workload)
            .any(|r| r.permits(&req.method, normalized, claims, via_oathkeeper));
    if !allowed {
        let reason = "no AuthorizationPolicy allows the request".to_owned();
        return Decision::Deny { rule: Some(route.id.clone()), reason, response: response::render_rbac_denied() };
    }

    let forwarded_host = rules.forwarded_host.clone().unwrap_or_else(|| req.authority.clone());
    let mut set_headers = vec![("x-forwarded-host".to_owned(), forwarded_host)];
    if let Some(forwarded) = path::forwarded_path(&req.path, &rule_path) {
        set_headers.push((":path".to_owned(), forwarded));
    }
    set_headers.extend(mutated);
    for (name, value) in &route.set_headers {
        // Envoy adds no header whose formatted value is empty.
        let value = value.render(req);
        if !value.is_empty() {
            set_headers.push((name.clone(), value));
        }
    }
    Decision::Allow { rule: route.id.clone(), set_headers }
}
