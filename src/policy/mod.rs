//! The compiled policy and the decision for one request.
//!
//! Each host is decided with the semantics of the APIRule version that governs it:
//! - v1alpha1/v1beta1 (`oathkeeper`): the route stage (Istio VirtualService: first matching route
//!   wins), then the access-rule stage (Oathkeeper: exactly one rule must match, then its
//!   authenticator pipeline runs);
//! - v2alpha1/v2 (`istio`): the route stage, then the workload's RequestAuthentication and
//!   AuthorizationPolicies as Envoy enforces them.
//!
//! See docs/behaviour.md and docs/compatibility.md.

pub mod istio;
pub mod mutator;
mod oathkeeper;
pub mod response;
pub mod template;

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::rc::Rc;

use regex_lite::Regex;

use crate::calls::{Answers, Call, IntrospectionRule};
use crate::jwt::cache::VerifiedTokens;
use crate::jwt::JwtRule;
use crate::keys::KeyStore;
use crate::request::Request;
use response::{ErrorStyle, Response};

/// Names one rule of one APIRule, for logs and deny reasons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleId {
    /// `namespace/name` of the APIRule, shared by all its rules (a decision carries a copy).
    pub apirule: Rc<str>,
    pub index: usize,
}

impl fmt::Display for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} spec.rules[{}]", self.apirule, self.index)
    }
}

/// A rule path: the user's regex, anchored at both ends. Paths that are plain text, or plain text
/// followed by `.*`, are matched without the regex engine: most APIRules use such paths, and a
/// compiled regex costs about 2 KiB per instance (program plus match cache) and far more time.
#[derive(Debug)]
pub struct PathPattern {
    pub source: String,
    matcher: PathMatcher,
}

#[derive(Debug)]
enum PathMatcher {
    /// The whole path equals this text.
    Exact,
    /// `<prefix>.*`: starts with the prefix, and the rest has no `\n` (`.` does not match it).
    Prefix(String),
    Regex(Regex),
}

/// Regex syntax characters: a path without any of them is plain text.
const REGEX_SYNTAX: &[char] = &['\\', '.', '+', '*', '?', '(', ')', '|', '[', ']', '{', '}', '^', '$'];

impl PathPattern {
    /// Compiles `^(?:path)$` (Envoy `safe_regex` and Oathkeeper's template are whole-string).
    pub fn new(source: &str) -> Result<Self, regex_lite::Error> {
        // Compiled even when not used, so a pattern is refused exactly when the regex would be.
        let regex = Regex::new(&format!("^(?:{source})$"))?;
        let matcher = match source.strip_suffix(".*") {
            _ if !source.contains(REGEX_SYNTAX) => PathMatcher::Exact,
            Some(prefix) if !prefix.contains(REGEX_SYNTAX) => PathMatcher::Prefix(prefix.to_owned()),
            _ => PathMatcher::Regex(regex),
        };
        Ok(PathPattern { source: source.to_owned(), matcher })
    }

    pub fn matches(&self, path: &str) -> bool {
        match &self.matcher {
            PathMatcher::Exact => path == self.source,
            PathMatcher::Prefix(prefix) => path.strip_prefix(prefix.as_str()).is_some_and(|rest| !rest.contains('\n')),
            PathMatcher::Regex(regex) => regex.is_match(path),
        }
    }
}

/// One compiled path shared by every rule that writes the same path (many APIRules do).
pub type SharedPath = Rc<PathPattern>;

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
    pub path: SharedPath,
    /// `Some` only for `no_auth`, whose route also matches the method.
    pub methods: Option<Vec<String>>,
    pub action: RouteAction,
}

/// The APIRule semantics a host is enforced with, with the compiled rules of that semantics:
/// chosen once per APIRule by its version, never by scattered ifs.
#[derive(Debug, Clone)]
pub enum Semantics {
    /// v1alpha1/v1beta1 as Oathkeeper enforced them: the VirtualService routes here, the access
    /// rules in `Policy`.
    OathkeeperV1(Vec<Route>),
    /// v2alpha1/v2, and v1beta1 written for Kyma's Istio JWT handler, as Istio enforces them.
    Istio(Rc<istio::Rules>),
}

/// What the filter does with the decisions for one APIRule's host: the annotation
/// `apirule-wasm.kyma-project.io/mode` (absent: `Enforce`). The decision is the same either way;
/// only the host's carrying out of it differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Allow and deny as decided.
    #[default]
    Enforce,
    /// Log and count the decision, and let the request go on as the client sent it: so the
    /// filter can run beside the old enforcement (Oathkeeper, Istio) and be compared with it.
    DryRun,
}

/// One APIRule's host and how it is decided.
#[derive(Debug, Clone)]
pub struct HostPolicy {
    /// `namespace/name`, shared with its rules' `RuleId`s.
    pub apirule: Rc<str>,
    /// Lower-case FQDN (default domain applied), or `*.domain` for a v2 wildcard host.
    pub host: String,
    pub mode: Mode,
    pub semantics: Semantics,
}

impl HostPolicy {
    /// How many routes (rules in the VirtualService) the APIRule has.
    pub fn route_count(&self) -> usize {
        match &self.semantics {
            Semantics::OathkeeperV1(routes) => routes.len(),
            Semantics::Istio(rules) => rules.rules.iter().filter(|r| r.routed).count(),
        }
    }
}

/// One step of an access rule's authenticator pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authenticator {
    Noop,
    Anonymous,
    Unauthorized,
    Jwt(Box<JwtRule>),
    Introspection(Box<IntrospectionRule>),
}

/// One Oathkeeper access rule.
#[derive(Debug, Clone)]
pub struct AccessRule {
    pub rule: RuleId,
    /// The host as written in the APIRule (with domain); matched verbatim against `Host`.
    pub host: String,
    pub path: SharedPath,
    /// Upper-case method names.
    pub methods: Vec<String>,
    pub authenticators: Vec<Authenticator>,
    /// Applied in order to an allowed request (`noop` compiles to nothing).
    pub mutators: Vec<Mutator>,
}

/// An Oathkeeper mutator: what it sets on the request that reaches the backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mutator {
    /// `header`: each header set (replacing the client's) to its rendered template.
    Header(Vec<(String, mutator::Template)>),
    /// `cookie`: the client's cookies, with these set (replacing same-named ones).
    Cookie(Vec<(String, mutator::Template)>),
}

/// Everything the filter enforces, compiled from the plugin configuration. Lookups by host are
/// O(1), so the cost of a request does not grow with the number of APIRules.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    hosts: Vec<HostPolicy>,
    /// `host_key` of each host -> index in `hosts`.
    host_index: HashMap<String, usize>,
    /// Wildcard hosts `*.example.com` by their domain `example.com` -> index in `hosts`.
    wildcard_index: HashMap<String, usize>,
    access_rules: Vec<AccessRule>,
    /// Access-rule host (verbatim) -> indexes in `access_rules`, in configuration order.
    access_index: HashMap<String, Vec<usize>>,
    /// Clock tolerance for `exp`/`nbf`/`iat` (0 = Oathkeeper).
    pub clock_skew_secs: i64,
    /// Plugin option `paths.escapedSlashes` (docs/security.md, "Paths").
    pub escaped_slashes: crate::request::path::EscapedSlashes,
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
    /// This introspection call must be made; decide again with its answer.
    NeedCall { call: Box<Call> },
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
/// then fail the access rules' exact host match (404), as they did at Oathkeeper. Borrows when the
/// authority is already in that form (the usual case: no allocation per request).
pub fn host_key(authority: &str) -> Cow<'_, str> {
    let host = match authority.rsplit_once(':') {
        // Keep IPv6 literals like `[::1]` whole.
        Some((h, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => authority,
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    }
}

impl Policy {
    pub fn new(clock_skew_secs: i64) -> Self {
        Policy { clock_skew_secs, ..Policy::default() }
    }

    /// Adds one APIRule's host and access rules. Refused (with the APIRule that has it) when
    /// another APIRule already governs the host.
    pub fn add(&mut self, host: HostPolicy, access_rules: Vec<AccessRule>) -> Result<(), &str> {
        let key = host_key(&host.host).into_owned();
        let (index, key) = match key.strip_prefix("*.") {
            Some(domain) => (&mut self.wildcard_index, domain.to_owned()),
            None => (&mut self.host_index, key),
        };
        if let Some(&other) = index.get(&key) {
            return Err(self.hosts.get(other).map_or("", |h| &*h.apirule));
        }
        index.insert(key, self.hosts.len());
        self.hosts.push(host);
        for rule in access_rules {
            self.access_index.entry(rule.host.clone()).or_default().push(self.access_rules.len());
            self.access_rules.push(rule);
        }
        Ok(())
    }

    pub fn hosts(&self) -> &[HostPolicy] {
        &self.hosts
    }

    pub fn access_rules(&self) -> &[AccessRule] {
        &self.access_rules
    }

    /// The APIRule governing this `Host`/`:authority`, if any: its own host, else the wildcard
    /// host with the longest matching domain (as Envoy picks virtual hosts).
    pub fn host_policy(&self, authority: &str) -> Option<&HostPolicy> {
        let key = host_key(authority);
        let index = self.host_index.get(key.as_ref()).or_else(|| {
            if self.wildcard_index.is_empty() {
                return None;
            }
            key.match_indices('.').find_map(|(dot, _)| {
                key.get(dot..).and_then(|d| d.strip_prefix('.')).and_then(|d| self.wildcard_index.get(d))
            })
        });
        index.and_then(|&i| self.hosts.get(i))
    }

    /// Whether an APIRule governs this `Host`/`:authority` (else requests pass through).
    pub fn governs(&self, authority: &str) -> bool {
        self.host_policy(authority).is_some()
    }

    /// The access rules whose host is exactly `authority` (Oathkeeper compares the `Host` header
    /// verbatim), in configuration order: the only ones that can match such a request.
    pub fn access_candidates<'a>(&'a self, authority: &str) -> impl Iterator<Item = &'a AccessRule> + 'a {
        let indexes = self.access_index.get(authority).map_or(&[][..], Vec::as_slice);
        indexes.iter().filter_map(|&i| self.access_rules.get(i))
    }

    /// Decides `req` at `now_ms` with the keys in `keys`, with the semantics of the APIRule that
    /// governs its host. Every token is verified (see `decide_cached`).
    pub fn decide(&self, req: &Request, now_ms: u64, keys: &dyn KeyStore) -> Decision {
        self.decide_cached(req, now_ms, keys, &mut VerifiedTokens::disabled())
    }

    /// `decide`, taking verified tokens from `tokens` and remembering new ones there.
    pub fn decide_cached(
        &self,
        req: &Request,
        now_ms: u64,
        keys: &dyn KeyStore,
        tokens: &mut VerifiedTokens,
    ) -> Decision {
        self.decide_with(req, now_ms, keys, tokens, &mut Answers::default())
    }

    /// `decide_cached`, with the introspection answers known so far (`answers.fresh`: those of
    /// this request's own calls); answers that pass a rule with a cache TTL are kept there.
    pub fn decide_with(
        &self,
        req: &Request,
        now_ms: u64,
        keys: &dyn KeyStore,
        tokens: &mut VerifiedTokens,
        answers: &mut Answers,
    ) -> Decision {
        let Some(host_policy) = self.host_policy(&req.authority) else {
            return Decision::PassThrough;
        };
        let mut memory = Memory { tokens, answers };
        match &host_policy.semantics {
            Semantics::OathkeeperV1(routes) => {
                oathkeeper::decide(self, host_policy, routes, req, now_ms, keys, &mut memory)
            }
            Semantics::Istio(rules) => istio::decide(self, rules, req, now_ms, keys, &mut memory),
        }
    }
}

/// What a decision may read and remember beyond the policy: verified tokens, introspection
/// answers.
pub(crate) struct Memory<'a> {
    pub tokens: &'a mut VerifiedTokens,
    pub answers: &'a mut Answers,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plain-text and prefix matchers answer exactly as the anchored regex does.
    #[test]
    fn fast_matchers_agree_with_the_regex() {
        let sources =
            ["/headers", "/.*", ".*", "/public/.*", "/api/v1/.*", "/img/x.png", "/a.*", "/a\\.*", "/(a|b)/.*"];
        let paths = [
            "",
            "/",
            "/headers",
            "/headers/",
            "/Headers",
            "/public/",
            "/public/x",
            "/public",
            "/publicx",
            "/public/a\nb",
            "/public/\r",
            "/api/v1/",
            "/api/v1/x/y",
            "/img/x.png",
            "/img/xapng",
            "/a",
            "/abc",
            "/a.",
            "/a..",
            "\n",
            "/\u{e9}",
            "/public/\u{e9}",
        ];
        for source in sources {
            let pattern = PathPattern::new(source).unwrap();
            let regex = Regex::new(&format!("^(?:{source})$")).unwrap();
            for path in paths {
                assert_eq!(pattern.matches(path), regex.is_match(path), "{source:?} on {path:?}");
            }
        }
        assert!(matches!(PathPattern::new("/headers").unwrap().matcher, PathMatcher::Exact));
        assert!(matches!(PathPattern::new("/public/.*").unwrap().matcher, PathMatcher::Prefix(_)));
        assert!(matches!(PathPattern::new("/img/x.png").unwrap().matcher, PathMatcher::Regex(_)));
        assert!(PathPattern::new("/(unclosed").is_err());
    }

    #[test]
    fn host_key_borrows_when_it_can() {
        assert!(matches!(host_key("api.example.com"), Cow::Borrowed("api.example.com")));
        assert_eq!(host_key("API.example.com.:443"), "api.example.com");
        assert_eq!(host_key("[::1]:80"), "[::1]");
    }

    fn host(name: &str, apirule: &str) -> HostPolicy {
        HostPolicy {
            apirule: apirule.into(),
            host: name.into(),
            mode: Mode::Enforce,
            semantics: Semantics::OathkeeperV1(vec![]),
        }
    }

    fn access(host: &str, index: usize) -> AccessRule {
        AccessRule {
            rule: RuleId { apirule: "ns/a".into(), index },
            host: host.into(),
            path: Rc::new(PathPattern::new("/.*").unwrap()),
            methods: vec!["GET".into()],
            authenticators: vec![Authenticator::Noop],
            mutators: vec![],
        }
    }

    #[test]
    fn hosts_and_access_rules_are_found_by_host() {
        let mut policy = Policy::new(0);
        policy
            .add(host("a.example.com", "ns/a"), vec![access("a.example.com", 0), access("a.example.com", 1)])
            .unwrap();
        policy.add(host("b.example.com", "ns/b"), vec![access("b.example.com", 0)]).unwrap();
        assert_eq!(policy.add(host("A.example.com", "ns/c"), vec![]), Err("ns/a"));
        assert!(policy.governs("A.EXAMPLE.com:8080"));
        assert!(!policy.governs("c.example.com"));
        let found: Vec<usize> = policy.access_candidates("a.example.com").map(|r| r.rule.index).collect();
        assert_eq!(found, vec![0, 1]);
        // Oathkeeper compares the Host header verbatim: other spellings find no access rule.
        assert_eq!(policy.access_candidates("a.example.com:443").count(), 0);
        assert_eq!(policy.access_candidates("c.example.com").count(), 0);
        assert_eq!((policy.hosts().len(), policy.access_rules().len()), (2, 3));
    }
}
