//! The compiled policy and the decision for one request.
//!
//! Two stages, as Kyma deployed APIRule v1: the route stage (Istio VirtualService: first matching
//! route wins) and the access-rule stage (Oathkeeper: exactly one rule must match, then its
//! authenticator pipeline runs). See docs/behaviour.md.

mod oathkeeper;
pub mod path;
pub mod request;
pub mod response;

use std::fmt;

use regex_lite::Regex;

use crate::jwt::JwtRule;
use crate::keys::KeyStore;
use request::Request;
use response::{ErrorStyle, Response};

/// Names one rule of one APIRule, for logs and deny reasons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleId {
    /// `namespace/name` of the APIRule.
    pub apirule: String,
    pub index: usize,
}

impl fmt::Display for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} spec.rules[{}]", self.apirule, self.index)
    }
}

/// A rule path: the user's regex, anchored at both ends.
#[derive(Debug, Clone)]
pub struct PathPattern {
    pub source: String,
    pub regex: Regex,
}

impl PathPattern {
    /// Compiles `^(?:path)$` (Envoy `safe_regex` and Oathkeeper's template are whole-string).
    pub fn new(source: &str) -> Result<Self, regex_lite::Error> {
        Ok(PathPattern { source: source.to_owned(), regex: Regex::new(&format!("^(?:{source})$"))? })
    }

    pub fn matches(&self, path: &str) -> bool {
        self.regex.is_match(path)
    }
}

/// What a VirtualService route does with a request it matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteAction {
    /// `allow` / `no_auth`: straight to the service.
    Forward,
    /// Any other handler: to the access-rule stage (where Oathkeeper was).
    AccessRules,
}

/// One VirtualService route.
#[derive(Debug, Clone)]
pub struct Route {
    pub rule: RuleId,
    pub path: PathPattern,
    /// `Some` only for `no_auth`, whose route also matches the method.
    pub methods: Option<Vec<String>>,
    pub action: RouteAction,
}

/// The APIRule semantics a host is enforced with. Only Oathkeeper-era v1 today; the v2 (Istio)
/// semantics will be another variant, chosen per compiled APIRule, not by scattered ifs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Semantics {
    OathkeeperV1,
}

/// The route stage of one APIRule.
#[derive(Debug, Clone)]
pub struct HostPolicy {
    pub apirule: String,
    /// Lower-case FQDN (default domain applied).
    pub host: String,
    pub semantics: Semantics,
    pub routes: Vec<Route>,
}

/// One step of an access rule's authenticator pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authenticator {
    Noop,
    Anonymous,
    Unauthorized,
    Jwt(Box<JwtRule>),
}

/// One Oathkeeper access rule.
#[derive(Debug, Clone)]
pub struct AccessRule {
    pub rule: RuleId,
    /// The host as written in the APIRule (with domain); matched verbatim against `Host`.
    pub host: String,
    pub path: PathPattern,
    /// Upper-case method names.
    pub methods: Vec<String>,
    pub authenticators: Vec<Authenticator>,
}

/// Everything the filter enforces, compiled from the plugin configuration.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub hosts: Vec<HostPolicy>,
    pub access_rules: Vec<AccessRule>,
    /// Clock tolerance for `exp`/`nbf`/`iat` (0 = Oathkeeper).
    pub clock_skew_secs: i64,
}

/// The verdict for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// No APIRule governs this host: leave the request alone.
    PassThrough,
    /// Forward, after setting these request headers.
    Allow { rule: RuleId, set_headers: Vec<(String, String)> },
    /// Answer locally.
    Deny { rule: Option<RuleId>, reason: String, response: Response },
    /// Keys for these JWKS URLs are needed; decide again when they arrive (or failed).
    NeedKeys { urls: Vec<String> },
}

impl Decision {
    /// A deny with Oathkeeper's JSON body that no rule decided (JWKS wait exceeded, an unreadable
    /// request, too many waiting requests): the host's own fail-closed answers.
    pub fn deny_outside_rules(req: &Request, status: u16, reason: &str, token_presented: bool) -> Decision {
        Decision::Deny {
            rule: None,
            reason: reason.to_owned(),
            response: response::render(
                status,
                ErrorStyle::OathkeeperJson,
                req.request_id().as_deref(),
                token_presented,
            ),
        }
    }
}

/// Host without `:port` or a trailing dot, lower-case: how Envoy matches virtual hosts, widened so
/// that no spelling of a governed host (`API.example.com.:443`) escapes its APIRule. Such spellings
/// then fail the access rules' exact host match (404), as they did at Oathkeeper.
pub fn host_key(authority: &str) -> String {
    let host = match authority.rsplit_once(':') {
        // Keep IPv6 literals like `[::1]` whole.
        Some((h, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => authority,
    };
    host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase()
}

impl Policy {
    /// Whether an APIRule governs this `Host`/`:authority` (else requests pass through).
    pub fn governs(&self, authority: &str) -> bool {
        let host = host_key(authority);
        self.hosts.iter().any(|h| h.host == host)
    }

    /// Decides `req` at `now_ms` with the keys in `keys`, with the semantics of the APIRule that
    /// governs its host.
    pub fn decide(&self, req: &Request, now_ms: u64, keys: &dyn KeyStore) -> Decision {
        let host = host_key(&req.authority);
        let Some(host_policy) = self.hosts.iter().find(|h| h.host == host) else {
            return Decision::PassThrough;
        };
        match host_policy.semantics {
            Semantics::OathkeeperV1 => oathkeeper::decide(self, host_policy, req, now_ms, keys),
        }
    }
}
