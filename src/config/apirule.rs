//! One APIRule resource (v1alpha1 or v1beta1) -> its routes and access rules, validated as the
//! Kyma controller validated it (reference §1.2-1.5). v2alpha1/v2 go to `v2`.

use std::collections::HashMap;
use std::rc::Rc;

use serde_json::Value;

use super::json::Node;
use super::{introspection, jwt, v2, ConfigError, Options};
use crate::jwt::envoy::Location;
use crate::jwt::envoy::Provider;
use crate::policy::istio::{self, Access, HeaderValue, PolicyPath};
use crate::policy::mutator::Template as MutatorTemplate;
use crate::policy::{
    AccessRule, Authenticator, HostPolicy, Mode, Mutator, PathPattern, Route, RouteAction, RuleId, Semantics,
    SharedPath,
};
use std::collections::BTreeMap;

const GROUP: &str = "gateway.kyma-project.io/";
const V1ALPHA1: &str = "gateway.kyma-project.io/v1alpha1";
const V1BETA1: &str = "gateway.kyma-project.io/v1beta1";

/// Methods the v1beta1 CRD accepts.
const V1BETA1_METHODS: [&str; 9] = ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"];

/// Handlers that go straight to the service (no Oathkeeper).
const DIRECT: [&str; 2] = ["allow", "no_auth"];
/// Handlers Kyma calls secure / insecure; they may not be mixed in one rule.
const SECURE: [&str; 4] = ["jwt", "oauth2_introspection", "oauth2_client_credentials", "cookie_session"];
const INSECURE: [&str; 5] = ["allow", "no_auth", "noop", "unauthorized", "anonymous"];
/// Handlers that must be alone in their rule (ory mode).
const EXCLUSIVE: [&str; 3] = ["allow", "no_auth", "noop"];

/// The compiled parts of one APIRule.
pub(crate) struct Compiled {
    pub host: HostPolicy,
    /// JSON path of the host field (for "host already used" errors).
    pub host_path: &'static str,
    pub access_rules: Vec<AccessRule>,
    pub jwks_urls: Vec<String>,
    /// Introspection URLs with the call timeout each rule asks for.
    pub introspection_urls: Vec<(String, u64)>,
}

/// Compiled paths by source text: the same path in many rules and APIRules is compiled once.
#[derive(Default)]
pub(crate) struct PathCache(HashMap<String, SharedPath>);

impl PathCache {
    pub(crate) fn get(&mut self, source: &str) -> Result<SharedPath, regex_lite::Error> {
        if let Some(path) = self.0.get(source) {
            return Ok(Rc::clone(path));
        }
        let path = Rc::new(PathPattern::new(source)?);
        self.0.insert(source.to_owned(), Rc::clone(&path));
        Ok(path)
    }
}

/// Whether `s` is dot-separated labels of `[A-Za-z0-9_-]` (the CRD host pattern).
pub(crate) fn is_dns_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 256
        && s.split('.').all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
}

fn label(item: &Value, fallback: &str) -> String {
    let meta = item.get("metadata");
    let name = meta.and_then(|m| m.get("name")).and_then(Value::as_str);
    let ns = meta.and_then(|m| m.get("namespace")).and_then(Value::as_str).unwrap_or("default");
    match name {
        Some(n) => format!("APIRule {ns}/{n}"),
        None => format!("APIRule at {fallback}"),
    }
}

/// Annotations with which Kyma (api-gateway >= 3.4) stores a v1beta1 APIRule as v2: the
/// resource a user exports then reads `apiVersion: v2` and `spec: {}`, and carries its v1beta1
/// spec in an annotation.
const ORIGINAL_VERSION: &str = "gateway.kyma-project.io/original-version";
const V1BETA1_SPEC: &str = "gateway.kyma-project.io/v1beta1-spec";

/// The v1beta1 APIRule a stored-as-v2 resource stands for, if it is one.
fn stored_v1beta1(item: &Value) -> Option<Result<Value, String>> {
    let annotations = item.get("metadata")?.get("annotations")?;
    if annotations.get(ORIGINAL_VERSION)?.as_str()? != "v1beta1" {
        return None;
    }
    let spec_is_empty = item.get("spec").is_none_or(|s| s.as_object().is_some_and(|o| o.is_empty()));
    if !spec_is_empty {
        return None;
    }
    let Some(text) = annotations.get(V1BETA1_SPEC).and_then(Value::as_str) else {
        return Some(Err(format!(
            "has {ORIGINAL_VERSION}: v1beta1 and an empty spec, but no {V1BETA1_SPEC} annotation"
        )));
    };
    let spec: Value = match serde_json::from_str(text) {
        Ok(spec) => spec,
        Err(e) => return Some(Err(format!("{V1BETA1_SPEC} is not JSON: {e}"))),
    };
    let mut v1 = item.clone();
    if let Some(obj) = v1.as_object_mut() {
        obj.insert("apiVersion".into(), Value::from(V1BETA1));
        obj.insert("spec".into(), spec);
    }
    Some(Ok(v1))
}

/// The annotation that puts an APIRule in dry-run mode (issue 10); every APIRule version has it.
const MODE_ANNOTATION: &str = "apirule-wasm.kyma-project.io/mode";

/// The APIRule's mode from its `metadata.annotations`. Absent: enforce. Any value other than
/// `dry-run` and `enforce` is refused, so a typo neither enforces nor stops enforcing silently.
/// Other annotations belong to Kubernetes and its controllers and are not looked at.
fn parse_mode(metadata: &Node<'_>) -> Result<Mode, ConfigError> {
    let Some(annotations) = metadata.get("annotations") else {
        return Ok(Mode::Enforce);
    };
    let Some(value) = annotations.object()?.get(MODE_ANNOTATION).filter(|v| !v.is_null()) else {
        return Ok(Mode::Enforce);
    };
    let node = Node::at(value, format!("{}[{MODE_ANNOTATION:?}]", annotations.path), metadata.resource());
    let valid = "must be \"dry-run\" or \"enforce\" (absent: enforce)";
    match value.as_str() {
        Some("dry-run") => Ok(Mode::DryRun),
        Some("enforce") => Ok(Mode::Enforce),
        Some(other) => Err(node.error(format!("{other:?} is not a mode: {valid}"))),
        None => Err(node.error(format!("is not a string: {valid}"))),
    }
}

pub(crate) fn compile(item: &Node<'_>, options: &Options, paths: &mut PathCache) -> Result<Compiled, ConfigError> {
    if let Some(v1) = stored_v1beta1(item.value) {
        let resource = label(item.value, &item.path);
        let v1 = v1.map_err(|m| ConfigError::new(&resource, "metadata.annotations", m))?;
        // Errors then point into the annotation's spec (`spec.rules[0]...` of the v1beta1 form).
        return compile_resource(&Node::at(&v1, item.path.clone(), item.resource()), options, paths);
    }
    compile_resource(item, options, paths)
}

fn compile_resource(item: &Node<'_>, options: &Options, paths: &mut PathCache) -> Result<Compiled, ConfigError> {
    let resource = label(item.value, &item.path);
    let root = Node::root(item.value, &resource);
    root.object()?;
    let api_version = root.req("apiVersion")?.str()?;
    let v1alpha1 = match api_version {
        V1ALPHA1 => true,
        V1BETA1 | v2::V2 | v2::V2ALPHA1 => false,
        v if v.starts_with(GROUP) => {
            return Err(root.req("apiVersion")?.error(format!(
                "{v} is not supported (supported: {V1ALPHA1}, {V1BETA1}, {}, {})",
                v2::V2ALPHA1,
                v2::V2
            )))
        }
        v => return Err(root.req("apiVersion")?.error(format!("{v} is not an APIRule apiVersion"))),
    };
    // `status` is Kubernetes' (an exported resource carries it); `metadata` is not ours to judge.
    root.only_keys(&["apiVersion", "kind", "metadata", "spec", "status"])?;
    let kind = root.req("kind")?;
    if kind.str()? != "APIRule" {
        return Err(kind.error("must be APIRule"));
    }
    let metadata = root.req("metadata")?;
    let name = metadata.req("name")?.non_empty_str()?;
    let namespace = match metadata.get("namespace") {
        Some(n) => n.non_empty_str()?,
        None => "default",
    };
    let apirule = format!("{namespace}/{name}");
    let mode = parse_mode(&metadata)?;
    if matches!(api_version, v2::V2 | v2::V2ALPHA1) {
        return v2::compile(&root, apirule, namespace, mode, options, paths);
    }

    let spec = root.req("spec")?;
    spec.object()?;
    if v1alpha1 {
        spec.only_keys(&["service", "gateway", "rules"])?;
    } else {
        spec.only_keys(&["host", "service", "gateway", "rules", "corsPolicy", "timeout"])?;
    }
    spec.req("gateway")?.non_empty_str()?;
    let spec_service = spec.get("service");
    if let Some(s) = &spec_service {
        check_service(s, v1alpha1)?;
    } else if v1alpha1 {
        spec.req("service")?;
    }
    if let Some(t) = spec.get("timeout") {
        t.uint(1, 3900)?;
    }
    if let Some(c) = spec.get("corsPolicy") {
        v2::check_cors_policy(&c)?;
    }
    let (host_node, host_path) = if v1alpha1 {
        (spec.req("service")?.req("host")?, "spec.service.host")
    } else {
        (spec.req("host")?, "spec.host")
    };
    let written_host = host_node.non_empty_str()?;
    if !is_dns_name(written_host) || written_host.len() < 3 {
        return Err(host_node.error("must be a host name: dot-separated labels of letters, digits, '-' and '_'"));
    }
    let full_host = if written_host.contains('.') {
        written_host.to_owned()
    } else {
        match &options.default_domain {
            Some(domain) => format!("{written_host}.{domain}"),
            None => {
                return Err(host_node
                    .error("is a short host name; set the plugin option defaultDomain (the Kyma gateway's domain)"))
            }
        }
    };

    let rules_node = spec.req("rules")?;
    let rules = rules_node.items()?;
    if rules.is_empty() {
        return Err(rules_node.error("must have at least one rule"));
    }
    let apirule_name: Rc<str> = Rc::from(apirule.as_str());
    // Written for Kyma's Istio JWT handler (§1.5): a jwt config with `authentications`.
    let istio_mode = !v1alpha1 && rules.iter().any(|r| istio_jwt_config(r).is_some());
    let mut istio = IstioParts::default();
    let mut routes: Vec<Route> = Vec::new();
    let mut access_rules = Vec::new();
    let mut jwks_urls = Vec::new();
    let mut introspection_urls = Vec::new();
    let mut seen: Vec<(String, String, usize)> = Vec::new();
    for (index, rule) in rules.iter().enumerate() {
        if v1alpha1 {
            rule.only_keys(&["path", "methods", "accessStrategies", "mutators"])?;
        } else {
            rule.only_keys(&["path", "methods", "accessStrategies", "mutators", "service", "timeout"])?;
        }
        let id = RuleId { apirule: Rc::clone(&apirule_name), index };
        let path_node = rule.req("path")?;
        let path_src = path_node.non_empty_str()?;
        if !path_src.starts_with(|c: char| c.is_ascii_alphanumeric() || "./*()?!\\_-".contains(c)) {
            return Err(path_node.error("must start with a letter, digit or one of . / * ( ) ? ! \\ _ -"));
        }
        let path = paths.get(path_src).map_err(|e| path_node.error(format!("is not a valid regex: {e}")))?;
        let methods = parse_methods(&rule.req("methods")?, v1alpha1)?;
        for m in &methods {
            if let Some((_, _, first)) = seen.iter().find(|(p, pm, _)| p == path_src && pm == m) {
                return Err(rule.error(format!(
                    "multiple rules defined for the same path and method: {path_src} {m} (also spec.rules[{first}])"
                )));
            }
            seen.push((path_src.to_owned(), m.clone(), index));
        }
        let rule_service = rule.get("service");
        if let Some(s) = &rule_service {
            check_service(s, false)?;
        }
        // spec.service was checked above.
        let service = match rule_service.or_else(|| spec_service.clone()) {
            Some(s) => service_key(&s, namespace),
            None => return Err(rule.error("has no service and spec.service is not set")),
        };
        let is_jwt_rule = rule
            .get("accessStrategies")
            .and_then(|a| a.value.as_array().cloned())
            .is_some_and(|a| a.iter().any(|s| s.get("handler").and_then(Value::as_str) == Some("jwt")));
        let mutators = if istio_mode && is_jwt_rule { Vec::new() } else { compile_mutators(rule.get("mutators"))? };

        let strategies_node = rule.req("accessStrategies")?;
        let strategies = strategies_node.items()?;
        if strategies.is_empty() {
            return Err(strategies_node.error("must have at least one access strategy"));
        }
        let handlers = strategies
            .iter()
            .map(|s| {
                s.only_keys(&["handler", "config"])?;
                s.req("handler")?.non_empty_str()
            })
            .collect::<Result<Vec<&str>, ConfigError>>()?;
        check_combination(&strategies_node, &handlers)?;

        let direct = handlers.iter().all(|h| DIRECT.contains(h));
        let routed = !routes.iter().any(|r| r.path.source == path_src);
        if istio_mode {
            let access = istio.rule_access(&strategies_node, &strategies, &handlers, &Rc::from(service.as_str()))?;
            let set_headers = if is_jwt_rule { istio_mutators(rule.get("mutators"))? } else { Vec::new() };
            istio.rules.push(istio::Rule {
                id: id.clone(),
                service: Rc::from(service.as_str()),
                methods: methods.clone(),
                routed,
                route_any_method: handlers.contains(&"allow"),
                route: (path_src != "/*").then(|| path.clone()),
                path: PolicyPath::Istio(Rc::from(if path_src == "/.*" { "/*" } else { path_src })),
                not_paths: Vec::new(),
                access,
                set_headers,
                ext_authz: Vec::new(),
            });
        }
        // The VirtualService keeps the first rule per path string (§1.6).
        if routed {
            routes.push(Route {
                rule: id.clone(),
                path: path.clone(),
                methods: (handlers.first() == Some(&"no_auth")).then(|| methods.clone()),
                action: if direct { RouteAction::Forward } else { RouteAction::AccessRules },
            });
        }
        if direct {
            for s in &strategies {
                check_no_config(s)?;
            }
            continue;
        }
        if istio_mode && is_jwt_rule {
            // Routed straight to the workload, whose RequestAuthentication decides (no access rule).
            continue;
        }
        let mut authenticators = Vec::new();
        for (s, handler) in strategies.iter().zip(&handlers) {
            let a = match *handler {
                "noop" => Authenticator::Noop,
                "anonymous" => Authenticator::Anonymous,
                "unauthorized" => Authenticator::Unauthorized,
                "jwt" => {
                    let rule = jwt::compile(s.get("config"), s)?;
                    jwks_urls.extend(rule.jwks_urls.iter().cloned());
                    Authenticator::Jwt(Box::new(rule))
                }
                "oauth2_introspection" => {
                    let (rule, timeout_ms) = introspection::compile(s.get("config"), s)?;
                    introspection_urls.push((rule.url.clone(), timeout_ms));
                    Authenticator::Introspection(Box::new(rule))
                }
                _ => return Err(s.error("unreachable handler")),
            };
            if !matches!(*handler, "jwt" | "oauth2_introspection") {
                check_no_config(s)?;
            }
            authenticators.push(a);
        }
        access_rules.push(AccessRule { rule: id, host: full_host.clone(), path, methods, authenticators, mutators });
    }

    let semantics = if istio_mode {
        jwks_urls.extend(istio.providers.iter().map(|(_, p)| p.jwks_uri.clone()));
        let rules = istio::Rules {
            forwarded_host: Some(full_host.to_ascii_lowercase()),
            policy_host: None,
            rules: istio.rules,
            providers: istio.providers,
        };
        Semantics::Istio(Rc::new(rules))
    } else {
        Semantics::OathkeeperV1(routes)
    };
    Ok(Compiled {
        host: HostPolicy { apirule: apirule_name, host: full_host.to_ascii_lowercase(), mode, semantics },
        host_path,
        access_rules,
        jwks_urls,
        introspection_urls,
    })
}

/// A v1 `service` (v1alpha1's carries the host, v1beta1's may name a namespace).
fn check_service(service: &Node<'_>, v1alpha1: bool) -> Result<(), ConfigError> {
    service.object()?;
    if v1alpha1 {
        service.only_keys(&["name", "port", "host", "external"])?;
    } else {
        service.only_keys(&["name", "namespace", "port", "external"])?;
    }
    service.req("name")?.non_empty_str()?;
    service.req("port")?.uint(1, 65_535)?;
    if let Some(ns) = service.get("namespace") {
        ns.non_empty_str()?;
    }
    if let Some(ext) = service.get("external") {
        ext.bool()?;
    }
    if v1alpha1 {
        service.req("host")?;
    }
    Ok(())
}

fn parse_methods(node: &Node<'_>, v1alpha1: bool) -> Result<Vec<String>, ConfigError> {
    let items = node.items()?;
    if items.is_empty() {
        return Err(node.error("must list at least one method"));
    }
    let mut methods = Vec::new();
    for item in items {
        let m = item.non_empty_str()?;
        if !v1alpha1 && !V1BETA1_METHODS.contains(&m) {
            return Err(item.error(format!("{m} is not one of {}", V1BETA1_METHODS.join(", "))));
        }
        let upper = m.to_ascii_uppercase();
        if !methods.contains(&upper) {
            methods.push(upper);
        }
    }
    Ok(methods)
}

fn check_combination(node: &Node<'_>, handlers: &[&str]) -> Result<(), ConfigError> {
    for (i, h) in handlers.iter().enumerate() {
        if !SECURE.contains(h) && !INSECURE.contains(h) {
            return Err(ConfigError::new(
                node.resource(),
                &format!("{}[{i}].handler", node.path),
                format!("Unsupported accessStrategy: {h}"),
            ));
        }
        if matches!(*h, "oauth2_client_credentials" | "cookie_session") {
            return Err(ConfigError::new(
                node.resource(),
                &format!("{}[{i}].handler", node.path),
                format!("handler {h} is not supported by apirule-wasm (supported: allow, no_auth, noop, anonymous, unauthorized, jwt, oauth2_introspection)"),
            ));
        }
    }
    if handlers.len() > 1 {
        if let Some(h) = handlers.iter().find(|h| EXCLUSIVE.contains(h)) {
            return Err(node.error(format!("handler {h} cannot be combined with other access strategies")));
        }
        let secure = handlers.iter().any(|h| SECURE.contains(h));
        let insecure = handlers.iter().any(|h| INSECURE.contains(h));
        if secure && insecure {
            return Err(node.error("secure (jwt) and insecure access strategies cannot be mixed in one rule"));
        }
    }
    Ok(())
}

fn check_no_config(strategy: &Node<'_>) -> Result<(), ConfigError> {
    match strategy.get("config") {
        None => Ok(()),
        Some(c) if c.value.as_object().is_some_and(|o| o.is_empty()) => Ok(()),
        Some(c) => Err(c.error("must be empty for this handler")),
    }
}

/// The rule's `mutators` (Oathkeeper, reference §2.10): `noop`, `header`, `cookie`.
fn compile_mutators(node: Option<Node<'_>>) -> Result<Vec<Mutator>, ConfigError> {
    let Some(node) = node else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for m in node.items()? {
        m.only_keys(&["handler", "config"])?;
        let handler = m.req("handler")?;
        let templates = |key: &str| -> Result<Vec<(String, MutatorTemplate)>, ConfigError> {
            let config = m.req("config")?;
            config.only_keys(&[key])?;
            let map = config.req(key)?;
            let mut list = Vec::new();
            for (name, value) in map.object()? {
                let item = Node::at(value, format!("{}.{name}", map.path), map.resource());
                let template = MutatorTemplate::parse(item.str()?).map_err(|e| item.error(e))?;
                list.push((name.to_ascii_lowercase(), template));
            }
            Ok(list)
        };
        match handler.str()? {
            "noop" => check_no_config(&m)?,
            "header" => out.push(Mutator::Header(templates("headers")?)),
            "cookie" => out.push(Mutator::Cookie(templates("cookies")?)),
            "id_token" => {
                return Err(handler.error(
                    "mutator id_token is not supported: the filter holds no signing key to mint tokens with; forward the verified token (noop) or set claims as headers (header)",
                ))
            }
            other => {
                return Err(handler.error(format!(
                    "mutator {other} is not supported by apirule-wasm (supported: noop, header, cookie)"
                )))
            }
        }
    }
    Ok(out)
}

/// The `config` of a rule's `jwt` strategy when it is written for Kyma's Istio JWT handler.
fn istio_jwt_config<'a>(rule: &Node<'a>) -> Option<Node<'a>> {
    rule.get("accessStrategies")?.items().ok()?.into_iter().find_map(|s| {
        let config = s.get("config")?;
        (s.get("handler")?.value.as_str() == Some("jwt") && config.get("authentications").is_some()).then_some(config)
    })
}

/// `namespace/name` of a service node (the APIRule's namespace when it names none).
fn service_key(service: &Node<'_>, apirule_namespace: &str) -> String {
    let name = service.get("name").and_then(|n| n.value.as_str().map(str::to_owned)).unwrap_or_default();
    let ns = service.get("namespace").and_then(|n| n.value.as_str().map(str::to_owned));
    format!("{}/{name}", ns.as_deref().unwrap_or(apirule_namespace))
}

/// What a v1beta1 APIRule in Istio mode compiles to besides its access rules.
#[derive(Default)]
struct IstioParts {
    rules: Vec<istio::Rule>,
    providers: Vec<(Rc<str>, Provider)>,
    locations_of: BTreeMap<(String, String), (Vec<Location>, usize)>,
}

impl IstioParts {
    /// The AuthorizationPolicy of one rule (§1.5 istio mode, api-gateway `processors/istio`).
    fn rule_access(
        &mut self,
        node: &Node<'_>,
        strategies: &[Node<'_>],
        handlers: &[&str],
        service: &Rc<str>,
    ) -> Result<Access, ConfigError> {
        let Some(position) = handlers.iter().position(|h| *h == "jwt") else {
            return Ok(if handlers.iter().all(|h| DIRECT.contains(h)) { Access::NoAuth } else { Access::Oathkeeper });
        };
        if handlers.len() > 1 {
            return Err(
                node.error("handler jwt cannot be combined with other access strategies (Kyma's Istio JWT handler)")
            );
        }
        let strategy = strategies.get(position).ok_or_else(|| node.error("missing jwt strategy"))?;
        let config = strategy.req("config")?;
        for ory in ["jwks_urls", "trusted_issuers", "required_scope"] {
            if let Some(n) = config.get(ory) {
                return Err(n.error(format!(
                    "Configuration for {ory} is not supported with Istio handler (use authentications and authorizations)"
                )));
            }
        }
        config.only_keys(&["authentications", "authorizations"])?;
        let rule_index = self.rules.len();
        let issuers = v2::authentications(&config, rule_index, service, &mut self.providers, &mut self.locations_of)?;
        Ok(Access::Jwt { issuers, authorizations: v2::authorizations(&config)? })
    }
}

/// The `header` and `cookie` mutators of a jwt rule in Istio mode: Kyma wrote them into the
/// VirtualService as header and cookie setters (no templates; Envoy's `%REQ(...)%` works).
fn istio_mutators(node: Option<Node<'_>>) -> Result<Vec<(String, HeaderValue)>, ConfigError> {
    let Some(node) = node else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    let mut seen = Vec::new();
    for m in node.items()? {
        m.only_keys(&["handler", "config"])?;
        let handler = m.req("handler")?;
        let name = handler.non_empty_str()?;
        if seen.contains(&name) {
            return Err(handler.error(format!("mutator {name} is listed twice")));
        }
        seen.push(name);
        let key = match name {
            "header" => "headers",
            "cookie" => "cookies",
            other => {
                return Err(
                    handler.error(format!("unsupported mutator: {other} (Istio mode supports header and cookie)"))
                )
            }
        };
        let config = m.req("config")?;
        config.only_keys(&[key])?;
        let map = config.req(key)?;
        if map.object()?.is_empty() {
            return Err(map.error(format!("{key} cannot be empty")));
        }
        out.extend(v2::setters(&map, key == "cookies")?);
    }
    Ok(out)
}
