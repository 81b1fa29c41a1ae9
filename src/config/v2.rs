//! One APIRule v2alpha1 / v2 resource (identical schemas) -> its Istio-semantics rules, validated
//! as the CRD and the Kyma controller validate it (reference §3.1-3.3).

use std::collections::BTreeMap;
use std::rc::Rc;

use super::apirule::{Compiled, PathCache};
use super::json::Node;
use super::jwt::is_request_uri;
use super::v2_order::PathTrie;
use super::{ConfigError, Options};
use crate::jwt::envoy::{default_locations, Location, Provider};
use crate::policy::istio::{Access, Authorization, HeaderValue, PolicyHost, PolicyPath, Rule, Rules};
use crate::policy::template::Template;
use crate::policy::{HostPolicy, Mode, RuleId, Semantics};

pub(crate) const V2ALPHA1: &str = "gateway.kyma-project.io/v2alpha1";
pub(crate) const V2: &str = "gateway.kyma-project.io/v2";

/// Methods the v2 CRD accepts.
const METHODS: [&str; 9] = ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"];

const SPEC_KEYS: [&str; 7] = ["hosts", "gateway", "externalGateway", "service", "corsPolicy", "timeout", "rules"];
const RULE_KEYS: [&str; 8] = ["path", "methods", "noAuth", "jwt", "extAuth", "service", "timeout", "request"];

/// One label of a host name: lower-case letters, digits and inner `-`, at most 63 long.
fn is_label(l: &str) -> bool {
    let b = l.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b.first() != Some(&b'-')
        && b.last() != Some(&b'-')
}

/// The CRD's host rule: a short host (one label), an FQDN whose last label is 2-63 letters or
/// digits, or `*.` and such an FQDN.
fn host_kind(host: &str) -> Option<HostKind> {
    let (wildcard, name) = match host.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, host),
    };
    let labels: Vec<&str> = name.split('.').collect();
    if host.len() > 255 || !labels.iter().all(|l| is_label(l)) {
        return None;
    }
    let tld_ok = labels.last().is_some_and(|t| t.len() >= 2 && !t.contains('-'));
    match (wildcard, labels.len()) {
        (false, 1) => Some(HostKind::Short),
        (_, n) if n >= 2 && tld_ok => Some(if wildcard { HostKind::Wildcard } else { HostKind::Fqdn }),
        _ => None,
    }
}

enum HostKind {
    Short,
    Fqdn,
    Wildcard,
}

/// `namespace/name` of a service node, or an error.
fn service_key(node: &Node<'_>, default_namespace: &str) -> Result<String, ConfigError> {
    node.only_keys(&["name", "namespace", "port", "external"])?;
    let name = node.req("name")?.non_empty_str()?;
    node.req("port")?.uint(1, 65_535)?;
    let namespace = match node.get("namespace") {
        Some(n) => n.non_empty_str()?,
        None => default_namespace,
    };
    if let Some(e) = node.get("external") {
        e.bool()?;
    }
    Ok(format!("{namespace}/{name}"))
}

fn check_gateway(node: &Node<'_>) -> Result<(), ConfigError> {
    let value = node.non_empty_str()?;
    let ok = value.len() <= 127 && value.split_once('/').is_some_and(|(ns, name)| is_label(ns) && is_label(name));
    if !ok {
        return Err(node.error("must be in the namespace/name format"));
    }
    Ok(())
}

/// A list that, when present, must not be empty, of non-empty strings.
fn non_empty_list(node: &Node<'_>) -> Result<Vec<String>, ConfigError> {
    let items = node.str_list()?;
    if items.is_empty() {
        return Err(node.error("must not be empty when present"));
    }
    Ok(items)
}

pub(crate) fn compile(
    root: &Node<'_>,
    apirule: String,
    namespace: &str,
    mode: Mode,
    options: &Options,
    paths: &mut PathCache,
) -> Result<Compiled, ConfigError> {
    let spec = root.req("spec")?;
    spec.only_keys(&SPEC_KEYS)?;
    match (spec.get("gateway"), spec.get("externalGateway")) {
        (Some(g), None) | (None, Some(g)) => check_gateway(&g)?,
        (Some(_), Some(_)) => return Err(spec.error("gateway and externalGateway are mutually exclusive")),
        (None, None) => return Err(spec.error("one of gateway and externalGateway is required")),
    }
    let spec_service = spec.get("service").map(|s| service_key(&s, namespace)).transpose()?;
    if let Some(t) = spec.get("timeout") {
        t.uint(1, 3900)?;
    }
    if let Some(c) = spec.get("corsPolicy") {
        check_cors_policy(&c)?;
    }

    let hosts_node = spec.req("hosts")?;
    let hosts = hosts_node.items()?;
    let [host_node] = hosts.as_slice() else {
        return Err(hosts_node.error("must list exactly one host"));
    };
    let written = host_node.non_empty_str()?;
    let kind = host_kind(written).ok_or_else(|| {
        host_node.error("must be a lowercase RFC 1123 label, a fully qualified domain name, or a wildcard domain name (e.g. *.local.kyma.dev)")
    })?;
    let (host, forwarded_host, policy_host) = match kind {
        HostKind::Fqdn => (written.to_owned(), Some(written.to_owned()), PolicyHost::Exact(written.to_owned())),
        HostKind::Wildcard => {
            let suffix = written.trim_start_matches('*').to_owned();
            (written.to_owned(), None, PolicyHost::Suffix(suffix))
        }
        HostKind::Short => {
            let Some(domain) = &options.default_domain else {
                return Err(host_node
                    .error("is a short host name; set the plugin option defaultDomain (the Kyma gateway's domain)"));
            };
            let fqdn = format!("{written}.{domain}");
            (fqdn.clone(), Some(fqdn.clone()), PolicyHost::Exact(fqdn))
        }
    };

    let rules_node = spec.req("rules")?;
    let rule_nodes = rules_node.items()?;
    if rule_nodes.is_empty() {
        return Err(rules_node.error("No rules defined"));
    }
    let apirule_name: Rc<str> = Rc::from(apirule.as_str());
    let mut rules: Vec<Rule> = Vec::new();
    let mut providers: Vec<(Rc<str>, Provider)> = Vec::new();
    let mut jwks_urls = Vec::new();
    // (issuer, jwksUri) -> the first rule's token locations: they must be the same everywhere.
    let mut locations_of: BTreeMap<(String, String), (Vec<Location>, usize)> = BTreeMap::new();
    let mut tries: BTreeMap<String, PathTrie> = BTreeMap::new();
    let mut templates: Vec<Rc<Template>> = Vec::new();

    for (index, node) in rule_nodes.iter().enumerate() {
        node.only_keys(&RULE_KEYS)?;
        let path_node = node.req("path")?;
        let path_src = path_node.non_empty_str()?;
        let template = Rc::new(Template::parse(path_src).map_err(|m| path_node.error(m))?);
        let route = match template.route_regex() {
            Some(regex) => Some(paths.get(&regex).map_err(|e| {
                path_node.error(format!("is not a valid regex once written into the VirtualService: {e}"))
            })?),
            None => None,
        };

        let methods_node = node.req("methods")?;
        let mut methods: Vec<String> = Vec::new();
        for m in methods_node.items()? {
            let name = m.non_empty_str()?;
            if !METHODS.contains(&name) {
                return Err(m.error(format!("{name} is not one of {}", METHODS.join(", "))));
            }
            if !methods.iter().any(|x| x == name) {
                methods.push(name.to_owned());
            }
        }
        if methods.is_empty() {
            return Err(methods_node.error("must list at least one method"));
        }
        let trie_path = if path_src == "/*" { "/{**}" } else { path_src };
        for m in &methods {
            if !tries.entry(m.clone()).or_default().insert(trie_path) {
                let message =
                    format!("Path {trie_path} with method {m} conflicts with at least one of the previous rule paths");
                return Err(rules_node.error(message));
            }
        }

        let service: Rc<str> = match node.get("service") {
            Some(s) => Rc::from(service_key(&s, namespace)?.as_str()),
            None => match &spec_service {
                Some(s) => Rc::from(s.as_str()),
                None => {
                    return Err(node
                        .error("service: The rule must define a service, because no service is defined on spec level"))
                }
            },
        };
        if let Some(t) = node.get("timeout") {
            t.uint(1, 3900)?;
        }

        let mut ext_authz = Vec::new();
        let access = match (node.get("noAuth"), node.get("jwt"), node.get("extAuth")) {
            (Some(n), None, None) => {
                if !n.bool()? {
                    return Err(n.error("must be true when set (use jwt or extAuth to protect the rule)"));
                }
                Access::NoAuth
            }
            (None, Some(jwt), None) => {
                jwt.only_keys(&["authentications", "authorizations"])?;
                let issuers = authentications(&jwt, index, &service, &mut providers, &mut locations_of)?;
                jwks_urls.extend(providers.iter().map(|(_, p)| p.jwks_uri.clone()));
                Access::Jwt { issuers, authorizations: authorizations(&jwt)? }
            }
            (None, None, Some(ext)) => {
                ext.only_keys(&["authorizers", "restrictions"])?;
                let names = ext.req("authorizers")?;
                let list = names.str_list()?;
                if list.is_empty() {
                    return Err(names.error("must name at least one authorizer"));
                }
                for (i, name) in list.iter().enumerate() {
                    let provider = options.ext_authz.get(name).ok_or_else(|| {
                        ConfigError::new(names.resource(), &format!("{}[{i}]", names.path), format!(
                            "authorizer {name} is not configured: map it in the plugin option extAuth.providers.{name} (cluster, pathPrefix, includeRequestHeadersInCheck, headersToUpstreamOnAllow, headersToDownstreamOnDeny), as the Istio mesh config's extensionProviders[].envoyExtAuthzHttp describes it"
                        ))
                    })?;
                    ext_authz.push(Rc::clone(provider));
                }
                match ext.get("restrictions") {
                    Some(r) => {
                        r.only_keys(&["authentications", "authorizations"])?;
                        let issuers = authentications(&r, index, &service, &mut providers, &mut locations_of)?;
                        jwks_urls.extend(providers.iter().map(|(_, p)| p.jwks_uri.clone()));
                        Access::Jwt { issuers, authorizations: authorizations(&r)? }
                    }
                    None => Access::NoAuth,
                }
            }
            _ => return Err(node.error("exactly one of noAuth, jwt and extAuth must be set")),
        };

        // Earlier rules' paths that share a method, except the catch-alls (reference §3.4).
        let not_paths = rules
            .iter()
            .zip(&templates)
            .filter(|(r, _)| r.methods.iter().any(|m| methods.contains(m)))
            .map(|(_, t)| t)
            .filter(|t| !t.is_all() && !matches!(t.source.as_str(), "/{**}" | "/"))
            .map(|t| PolicyPath::Template(Rc::clone(t)))
            .collect();
        let set_headers = request_modifiers(node.get("request"))?;
        templates.push(Rc::clone(&template));
        rules.push(Rule {
            id: RuleId { apirule: Rc::clone(&apirule_name), index },
            service,
            methods,
            routed: true,
            route_any_method: false,
            route,
            path: PolicyPath::Template(template),
            not_paths,
            access,
            set_headers,
            ext_authz,
        });
    }
    jwks_urls.sort();
    jwks_urls.dedup();
    let compiled = Rules { forwarded_host, policy_host: Some(policy_host), rules, providers };
    Ok(Compiled {
        host: HostPolicy { apirule: apirule_name, host, mode, semantics: Semantics::Istio(Rc::new(compiled)) },
        host_path: "spec.hosts[0]",
        access_rules: Vec::new(),
        jwks_urls,
        introspection_urls: Vec::new(),
    })
}

/// `jwt.authentications` -> the rule's issuers; each new (issuer, jwksUri) becomes a provider of
/// the rule's workload.
pub(crate) fn authentications(
    jwt: &Node<'_>,
    rule_index: usize,
    service: &Rc<str>,
    providers: &mut Vec<(Rc<str>, Provider)>,
    locations_of: &mut BTreeMap<(String, String), (Vec<Location>, usize)>,
) -> Result<Vec<String>, ConfigError> {
    let list = jwt.req("authentications")?;
    let items = list.items()?;
    if items.is_empty() {
        return Err(list.error("must have at least one authentication"));
    }
    let (mut headers_used, mut params_used) = (false, false);
    let mut issuers = Vec::new();
    for a in &items {
        a.only_keys(&["issuer", "jwksUri", "fromHeaders", "fromParams"])?;
        let issuer_node = a.req("issuer")?;
        let issuer = issuer_node.non_empty_str()?;
        if issuer.contains(':') && !is_request_uri(issuer) {
            return Err(issuer_node.error("must be a valid URI"));
        }
        let jwks_node = a.req("jwksUri")?;
        let jwks_uri = jwks_node.non_empty_str()?;
        if !is_request_uri(jwks_uri) {
            return Err(jwks_node.error("must be a valid URI"));
        }
        let mut locations = Vec::new();
        if let Some(h) = a.get("fromHeaders") {
            let headers = h.items()?;
            if headers.len() > 1 {
                return Err(h.error("multiple fromHeaders are not supported"));
            }
            for item in headers {
                item.only_keys(&["name", "prefix"])?;
                let name = item.req("name")?.non_empty_str()?.to_ascii_lowercase();
                let prefix = item.get("prefix").map(|p| p.str().map(str::to_owned)).transpose()?.unwrap_or_default();
                locations.push(Location::Header { name, prefix });
                headers_used = true;
            }
        }
        if let Some(p) = a.get("fromParams") {
            let params = p.str_list()?;
            if params.len() > 1 {
                return Err(p.error("multiple fromParams are not supported"));
            }
            params_used |= !params.is_empty();
            locations.extend(params.into_iter().map(Location::Param));
        }
        if headers_used && params_used {
            return Err(list.error("mixture of multiple fromHeaders and fromParams is not supported"));
        }
        if locations.is_empty() {
            locations = default_locations();
        }
        let key = (issuer.to_owned(), jwks_uri.to_owned());
        match locations_of.get(&key) {
            Some((first, first_rule)) if *first != locations => {
                return Err(a.error(format!(
                "multiple jwt configurations that differ for the same issuer {issuer} (see spec.rules[{first_rule}])"
            )))
            }
            Some(_) => {}
            None => {
                locations_of.insert(key, (locations.clone(), rule_index));
            }
        }
        let provider = Provider { issuer: issuer.to_owned(), jwks_uri: jwks_uri.to_owned(), locations };
        if !providers.iter().any(|(s, p)| s == service && *p == provider) {
            providers.push((Rc::clone(service), provider));
        }
        issuers.push(issuer.to_owned());
    }
    Ok(issuers)
}

pub(crate) fn authorizations(jwt: &Node<'_>) -> Result<Vec<Authorization>, ConfigError> {
    let Some(list) = jwt.get("authorizations") else {
        return Ok(Vec::new());
    };
    let items = list.items()?;
    if items.is_empty() {
        return Err(list.error("must not be empty when present"));
    }
    items
        .iter()
        .map(|a| {
            a.only_keys(&["requiredScopes", "audiences"])?;
            let required_scopes = a.get("requiredScopes").map(|s| non_empty_list(&s)).transpose()?.unwrap_or_default();
            let audiences = a.get("audiences").map(|s| non_empty_list(&s)).transpose()?.unwrap_or_default();
            Ok(Authorization { required_scopes, audiences })
        })
        .collect()
}

/// `request.headers` (set, replacing the client's) and `request.cookies` (one `cookie` header
/// replacing the client's, names in sorted order); values may use `%REQ(...)%`.
fn request_modifiers(node: Option<Node<'_>>) -> Result<Vec<(String, HeaderValue)>, ConfigError> {
    let Some(node) = node else {
        return Ok(Vec::new());
    };
    node.only_keys(&["headers", "cookies"])?;
    let mut out = Vec::new();
    if let Some(h) = node.get("headers") {
        out.extend(setters(&h, false)?);
    }
    if let Some(c) = node.get("cookies") {
        out.extend(setters(&c, true)?);
    }
    Ok(out)
}

/// A map of header (or, with `cookies`, cookie) names to values -> the headers to set.
pub(crate) fn setters(map: &Node<'_>, cookies: bool) -> Result<Vec<(String, HeaderValue)>, ConfigError> {
    let mut headers = Vec::new();
    let mut jar = Vec::new();
    for (name, value) in map.object()? {
        let item = Node::at(value, format!("{}.{name}", map.path), map.resource());
        let text = item.str()?;
        let valid = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
        if !valid {
            return Err(
                map.error(format!("{name:?} is not a valid {} name", if cookies { "cookie" } else { "header" }))
            );
        }
        if cookies {
            jar.push(format!("{name}={text}"));
        } else {
            headers.push((name.to_ascii_lowercase(), HeaderValue::parse(text).map_err(|e| item.error(e))?));
        }
    }
    if !jar.is_empty() {
        headers.push(("cookie".to_owned(), HeaderValue::parse(&jar.join("; ")).map_err(|e| map.error(e))?));
    }
    Ok(headers)
}

/// `corsPolicy` (v1beta1 and v2): the VirtualService enforces it, so only its shape is checked
/// here. An `allowOrigins` entry is one Istio StringMatch; Kyma read an unknown key as `prefix`,
/// which hides a typo (`exakt`), so one is refused.
pub(crate) fn check_cors_policy(cors: &Node<'_>) -> Result<(), ConfigError> {
    cors.only_keys(&["allowHeaders", "allowMethods", "allowOrigins", "allowCredentials", "exposeHeaders", "maxAge"])?;
    if let Some(origins) = cors.get("allowOrigins") {
        for origin in origins.items()? {
            origin.only_keys(&["exact", "prefix", "regex"])?;
            let keys: Vec<&String> = origin.object()?.keys().collect();
            let [key] = keys.as_slice() else {
                return Err(origin.error("must have exactly one of exact, prefix, regex"));
            };
            origin.req(key)?.str()?;
        }
    }
    Ok(())
}
