//! One v1alpha1/v1beta1 APIRule rewritten as v2, rule by rule, as Kyma's migration guide says:
//! `spec.host` becomes `spec.hosts`, regex paths become v2 path templates, `no_auth`/`allow`
//! become `noAuth`, `jwt` becomes `jwt.authentications`/`authorizations`,
//! `oauth2_introspection` becomes `extAuth`, static header/cookie mutators become
//! `request.headers`/`cookies`, and Kyma's v1beta1 CORS defaults are gone.

use serde_json::{json, Map, Value};

use super::paths;

/// The name under which a migrated `oauth2_introspection` rule asks its `extAuth` authorizer;
/// the user maps it in the plugin option `extAuth.providers` (v2 has no introspection handler).
/// Every method the CRDs accept (also every method the proof asks about).
pub const ALL_METHODS: [&str; 9] = ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"];

/// Annotations of Kyma's own v1beta1 -> v2 conversion: kept on a v2 object, `original-version:
/// v1beta1` would make the controller treat it as the unmigrated v1beta1 APIRule.
const CONVERSION_ANNOTATIONS: [&str; 5] = [
    "gateway.kyma-project.io/original-version",
    "gateway.kyma-project.io/v1beta1-spec",
    "gateway.kyma-project.io/v2alpha1-rules",
    "gateway.kyma-project.io/migration-step",
    "kubectl.kubernetes.io/last-applied-configuration",
];

pub const INTROSPECTION_AUTHORIZER: &str = "oauth2-introspection";

/// Something the v2 APIRule does not say as the original did.
#[derive(Debug, Clone)]
pub struct Note {
    /// `spec.rules[i]...` of the original.
    pub at: String,
    pub message: String,
    /// Whether who gets through, or what reaches the backend, may change (else: only how, e.g.
    /// another deny status, or a setting v2 has no field for that does not decide access).
    pub changes_access: bool,
}

pub struct Converted {
    pub apirule: Value,
    pub notes: Vec<Note>,
}

struct Notes(Vec<Note>);

impl Notes {
    fn lossy(&mut self, at: &str, message: impl Into<String>) {
        self.0.push(Note { at: at.to_owned(), message: message.into(), changes_access: true });
    }
    fn note(&mut self, at: &str, message: impl Into<String>) {
        self.0.push(Note { at: at.to_owned(), message: message.into(), changes_access: false });
    }
}

pub fn convert(old: &Value) -> Converted {
    let mut notes = Notes(Vec::new());
    let spec = old.get("spec").cloned().unwrap_or_else(|| json!({}));
    let version = old.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let mut service = spec.get("service").cloned().unwrap_or_else(|| json!({}));
    let host = if version.ends_with("/v1alpha1") {
        service.as_object_mut().and_then(|s| s.remove("host"))
    } else {
        spec.get("host").cloned()
    };
    let mut new_spec = Map::new();
    if let Some(host) = host {
        new_spec.insert("hosts".into(), json!([host]));
    }
    if service.as_object().is_some_and(|s| !s.is_empty()) {
        new_spec.insert("service".into(), service);
    }
    for key in ["gateway", "timeout", "corsPolicy"] {
        if let Some(v) = spec.get(key) {
            new_spec.insert(key.into(), v.clone());
        }
    }
    if spec.get("corsPolicy").is_none() {
        notes.note(
            "spec",
            "v1beta1 answered browsers with Kyma's default CORS policy; v2 sets no CORS headers without \
             spec.corsPolicy (add one if browsers call this API)",
        );
    }
    let mut rules = Vec::new();
    for (i, rule) in spec.get("rules").and_then(Value::as_array).into_iter().flatten().enumerate() {
        rules.extend(convert_rule(rule, &format!("spec.rules[{i}]"), &mut notes));
    }
    // v2 requires a path that covers another to come after it (Kyma's rule-order validation);
    // v1 rules could not overlap (Oathkeeper answered 500 when two matched), so moving the
    // catch-alls last changes no answer.
    rules.sort_by_key(|r| paths::breadth(r.get("path").and_then(Value::as_str).unwrap_or("")));
    new_spec.insert("rules".into(), Value::Array(rules));

    let mut metadata = Map::new();
    if let Some(Value::Object(m)) = old.get("metadata") {
        for key in ["name", "namespace", "labels"] {
            if let Some(v) = m.get(key) {
                metadata.insert(key.into(), v.clone());
            }
        }
        if let Some(Value::Object(annotations)) = m.get("annotations") {
            let kept: Map<String, Value> = annotations
                .iter()
                .filter(|(k, _)| !CONVERSION_ANNOTATIONS.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            if !kept.is_empty() {
                metadata.insert("annotations".into(), Value::Object(kept));
            }
        }
    }
    let apirule = json!({
        "apiVersion": "gateway.kyma-project.io/v2",
        "kind": "APIRule",
        "metadata": metadata,
        "spec": new_spec,
    });
    Converted { apirule, notes: notes.0 }
}

/// One v1 rule -> its v2 rules (two when a path becomes `/foo` and `/foo/{**}`, none when the
/// rule cannot be expressed).
fn convert_rule(rule: &Value, at: &str, notes: &mut Notes) -> Vec<Value> {
    let path = rule.get("path").and_then(Value::as_str).unwrap_or("");
    let converted_paths = match paths::to_templates(path) {
        Ok(p) => p,
        Err(why) => {
            notes.lossy(
                &format!("{at}.path"),
                format!("{path:?} has no v2 path template ({why}); the rule is left out"),
            );
            return Vec::new();
        }
    };
    if let Some(lost) = &converted_paths.lost {
        notes.lossy(
            &format!("{at}.path"),
            format!("{path:?} becomes {}: {lost}", converted_paths.templates.join(" and ")),
        );
    }
    let strategies: Vec<&Value> =
        rule.get("accessStrategies").and_then(Value::as_array).into_iter().flatten().collect();
    let Some(access) = access(&strategies, at, notes) else { return Vec::new() };
    let mut base = Map::new();
    if let Some(m) = rule.get("methods") {
        base.insert("methods".into(), m.clone());
    }
    // `access` may replace the methods (allow exposed them all).
    for (key, value) in access {
        base.insert(key, value);
    }
    for key in ["service", "timeout"] {
        if let Some(v) = rule.get(key) {
            base.insert(key.into(), v.clone());
        }
    }
    if let Some(request) = mutators(rule.get("mutators"), at, notes) {
        base.insert("request".into(), request);
    }
    converted_paths
        .templates
        .into_iter()
        .map(|p| {
            let mut r = Map::new();
            r.insert("path".into(), json!(p));
            r.extend(base.clone());
            Value::Object(r)
        })
        .collect()
}

/// The v2 access fields for a rule's access strategies (Oathkeeper's first-that-succeeds list).
fn access(strategies: &[&Value], at: &str, notes: &mut Notes) -> Option<Vec<(String, Value)>> {
    let handler = |s: &Value| s.get("handler").and_then(Value::as_str).unwrap_or("").to_owned();
    let handlers: Vec<String> = strategies.iter().map(|s| handler(s)).collect();
    let at_strategies = format!("{at}.accessStrategies");
    if handlers.iter().all(|h| h == "jwt") && !handlers.is_empty() {
        return jwt(strategies, &at_strategies, notes).map(|j| vec![("jwt".to_owned(), j)]);
    }
    match handlers.as_slice() {
        [h] if h == "no_auth" => Some(vec![("noAuth".into(), json!(true))]),
        [h] if h == "allow" => {
            notes.note(
                &at_strategies,
                "allow let every method through (its route has no method match); the v2 rule lists all nine \
                 methods to keep that: narrow them to what the service serves",
            );
            Some(vec![("noAuth".into(), json!(true)), ("methods".into(), json!(ALL_METHODS))])
        }
        [h] if h == "noop" || h == "anonymous" => {
            notes.note(&at_strategies, format!("{h} let every request through (via Oathkeeper); v2 says noAuth: true"));
            Some(vec![("noAuth".into(), json!(true))])
        }
        [h] if h == "oauth2_introspection" => {
            let url = strategies
                .first()
                .and_then(|s| s.pointer("/config/introspection_url"))
                .and_then(Value::as_str)
                .unwrap_or("its introspection_url");
            notes.lossy(
                &at_strategies,
                format!(
                    "v2 has no token introspection: the rule becomes extAuth with the authorizer \
                     {INTROSPECTION_AUTHORIZER:?}; map it in the plugin option extAuth.providers to an \
                     authorizer that introspects at {url} (e.g. oauth2-proxy), and check its answers"
                ),
            );
            Some(vec![("extAuth".into(), json!({"authorizers": [INTROSPECTION_AUTHORIZER]}))])
        }
        [h] if h == "unauthorized" => {
            notes.lossy(
                &at_strategies,
                "unauthorized denied every request with 401; v2 has no deny rule, so the rule is left out \
                 and its requests get 404 (no route)",
            );
            None
        }
        _ => {
            notes.lossy(
                &at_strategies,
                format!(
                    "the handlers {} (any one that succeeds) have no v2 equivalent; the rule is left out",
                    handlers.join(", ")
                ),
            );
            None
        }
    }
}

/// `jwt` strategies -> one v2 `jwt`: every trusted issuer with every JWKS URL an
/// authentication, the scopes and audiences an authorization.
fn jwt(strategies: &[&Value], at: &str, notes: &mut Notes) -> Option<Value> {
    let mut authentications: Vec<Value> = Vec::new();
    let mut authorizations: Vec<Value> = Vec::new();
    for (i, s) in strategies.iter().enumerate() {
        let at = format!("{at}[{i}].config");
        let config = s.get("config").cloned().unwrap_or_else(|| json!({}));
        if config.get("authentications").is_some() {
            // Kyma's Istio JWT handler: already the v2 shape.
            authentications
                .extend(config.get("authentications").and_then(Value::as_array).into_iter().flatten().cloned());
            authorizations
                .extend(config.get("authorizations").and_then(Value::as_array).into_iter().flatten().cloned());
            continue;
        }
        let strings = |key: &str| -> Vec<String> {
            config
                .get(key)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        };
        let issuers = strings("trusted_issuers");
        let urls = strings("jwks_urls");
        if issuers.is_empty() {
            notes.lossy(
                &format!("{at}.trusted_issuers"),
                "Oathkeeper accepted any issuer; a v2 authentication names one, so the rule is left out \
                 (add trusted_issuers and migrate again)",
            );
            return None;
        }
        let mut from: Map<String, Value> = Map::new();
        match config.get("token_from") {
            Some(Value::Object(t)) if t.contains_key("header") => {
                from.insert("fromHeaders".into(), json!([{"name": t["header"]}]));
            }
            Some(Value::Object(t)) if t.contains_key("query_parameter") => {
                from.insert("fromParams".into(), json!([t["query_parameter"]]));
            }
            Some(Value::Object(_)) => {
                notes.lossy(
                    &format!("{at}.token_from"),
                    "a token from a cookie has no v2 equivalent; the rule is left out",
                );
                return None;
            }
            _ => {}
        }
        for issuer in &issuers {
            for url in &urls {
                let mut a = Map::new();
                a.insert("issuer".into(), json!(issuer));
                a.insert("jwksUri".into(), json!(url));
                a.extend(from.clone());
                authentications.push(Value::Object(a));
            }
        }
        let scopes = strings("required_scope");
        let audiences = strings("target_audience");
        if !scopes.is_empty() || !audiences.is_empty() {
            let mut a = Map::new();
            if !scopes.is_empty() {
                a.insert("requiredScopes".into(), json!(scopes));
            }
            if !audiences.is_empty() {
                a.insert("audiences".into(), json!(audiences));
            }
            authorizations.push(Value::Object(a));
        }
        if strategies.len() > 1 && (!scopes.is_empty() || !audiences.is_empty()) {
            notes.lossy(
                &at,
                "several jwt strategies each with their own scopes or audiences: v2 applies every \
                 authorization to every issuer (any one authorization suffices)",
            );
        }
        let algorithms = strings("allowed_algorithms");
        if algorithms != ["RS256"] {
            let was = if algorithms.is_empty() {
                "RS256 only (Oathkeeper's default)".to_owned()
            } else {
                algorithms.join(", ")
            };
            notes.note(
                &format!("{at}.allowed_algorithms"),
                format!(
                    "v1 accepted {was}; v2 accepts every algorithm of the key set, which widens access only \
                     if the IdP serves keys for other algorithms"
                ),
            );
        }
        let strategy = config.get("scope_strategy").and_then(Value::as_str).unwrap_or("wildcard");
        if !scopes.is_empty() && strategy != "exact" {
            notes.note(
                &format!("{at}.required_scope"),
                format!(
                    "v1 matched scopes with the {strategy} strategy (Kyma's default: wildcard, so a token \
                     scope `foo.*` granted `foo.bar`); v2 requires each scope exactly"
                ),
            );
        }
        for key in ["jwks_max_wait", "jwks_ttl"] {
            if config.get(key).is_some() {
                notes.note(&format!("{at}.{key}"), "v2 has no such field; the plugin's jwks options apply");
            }
        }
    }
    let mut jwt = Map::new();
    jwt.insert("authentications".into(), Value::Array(authentications));
    if !authorizations.is_empty() {
        jwt.insert("authorizations".into(), Value::Array(authorizations));
    }
    Some(Value::Object(jwt))
}

/// v1 mutators -> v2 `request`: static header and cookie values only (v2 has no templates).
fn mutators(list: Option<&Value>, at: &str, notes: &mut Notes) -> Option<Value> {
    let mut headers = Map::new();
    let mut cookies = Map::new();
    for (i, m) in list.and_then(Value::as_array).into_iter().flatten().enumerate() {
        let at = format!("{at}.mutators[{i}]");
        let handler = m.get("handler").and_then(Value::as_str).unwrap_or("");
        let (target, key) = match handler {
            "noop" => continue,
            "header" => (&mut headers, "headers"),
            "cookie" => (&mut cookies, "cookies"),
            other => {
                notes.lossy(&at, format!("the {other} mutator has no v2 equivalent; it is left out"));
                continue;
            }
        };
        for (name, value) in m.pointer(&format!("/config/{key}")).and_then(Value::as_object).into_iter().flatten() {
            match value.as_str() {
                Some(v) if !v.contains("{{") => {
                    target.insert(name.clone(), json!(v));
                }
                _ => notes.lossy(
                    &format!("{at}.config.{key}.{name}"),
                    format!(
                        "{value} is a template of the token's claims; v2 sets only fixed values, so it is left out"
                    ),
                ),
            }
        }
    }
    let mut request = Map::new();
    if !headers.is_empty() {
        request.insert("headers".into(), Value::Object(headers));
    }
    if !cookies.is_empty() {
        request.insert("cookies".into(), Value::Object(cookies));
    }
    (!request.is_empty()).then_some(Value::Object(request))
}
