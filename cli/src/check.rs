//! `apirule check`: every document loaded with the filter's own parser, alone and then all
//! together, so a problem is named by file, document, JSON path and message.

use serde_json::{Map, Value};

use apirule_wasm::config::{self, Config, ConfigError};
use apirule_wasm::policy::Mode;

use crate::input::{self, Document, Kind};

/// What `check` found: the loaded configuration when every document passed, else each problem.
pub struct Outcome {
    pub config: Option<Config>,
    pub problems: Vec<String>,
}

/// Loads each document with the plugin options of the inputs (a document alone cannot name an
/// `extAuth` provider the options define), then the whole set (duplicate hosts across files,
/// `jwks.clusters` naming a URL of some rule). The filter stops at a configuration's first
/// error, so each document reports its first one.
pub fn check(docs: &[Document]) -> Outcome {
    let combined = match input::combine(docs) {
        Ok(c) => c,
        Err(e) => return Outcome { config: None, problems: vec![e.0] },
    };
    let mut options = combined.clone();
    options.remove("apiRules");
    // Cluster maps name URLs of any document's rules: checked with the whole set only.
    for key in ["jwks", "introspection"] {
        if let Some(Value::Object(o)) = options.get_mut(key) {
            o.remove("clusters");
        }
    }
    let mut problems = Vec::new();
    for doc in docs {
        let plugin = match &doc.kind {
            Kind::ApiRule(rule) => with_rules(&options, vec![rule.clone()]),
            // Options only: their APIRules are the other documents'.
            Kind::Plugin(map) if !map.contains_key("apiRules") => continue,
            Kind::Plugin(map) => Value::Object(map.clone()),
            Kind::Other(what) => {
                eprintln!("{}: {what} skipped: not an APIRule, plugin configuration or WasmPlugin", doc.place());
                continue;
            }
        };
        if let Err(e) = load(&plugin) {
            problems.push(describe(doc, &e, &plugin));
        }
    }
    if !problems.is_empty() {
        return Outcome { config: None, problems };
    }
    let whole = Value::Object(combined);
    match load(&whole) {
        Ok(config) => Outcome { config: Some(config), problems },
        Err(e) => {
            let place = docs
                .iter()
                .find(|d| match &d.kind {
                    Kind::Plugin(_) => e.resource == "plugin configuration",
                    _ => d.apirule_name().is_some_and(|n| e.resource == format!("APIRule {n}")),
                })
                .map_or_else(|| "the inputs together".to_owned(), Document::place);
            problems.push(format!("{place}: {e}"));
            Outcome { config: None, problems }
        }
    }
}

/// The plugin configuration of `options` with `rules` as its APIRules.
pub fn with_rules(options: &Map<String, Value>, rules: Vec<Value>) -> Value {
    let mut plugin = options.clone();
    plugin.insert("apiRules".into(), Value::Array(rules));
    Value::Object(plugin)
}

/// Loads a plugin configuration exactly as the filter's `on_configure` does.
pub fn load(plugin: &Value) -> Result<Config, ConfigError> {
    config::parse(plugin.to_string().as_bytes())
}

fn describe(doc: &Document, e: &ConfigError, plugin: &Value) -> String {
    let mut line = format!("{}: {e}", doc.place());
    if let Some(var) = input::placeholder_in(plugin) {
        line.push_str(&format!(
            " (the file still holds the placeholder {var}: set the variables and pass --env, \
             or substitute them first, e.g. `envsubst < FILE | apirule check -`)"
        ));
    }
    line
}

/// The summary printed for a configuration that loads: what the filter will enforce.
pub fn summary(config: &Config) -> Vec<String> {
    let mut lines = Vec::new();
    for h in config.policy.hosts() {
        let mode = match h.mode {
            Mode::DryRun => ", dry-run: logged and counted, not enforced",
            Mode::Enforce => "",
        };
        lines.push(format!("{}: host {} ({} route(s){mode})", h.apirule, h.host, h.route_count()));
    }
    for url in config.jwks.values() {
        lines.push(format!("JWKS {} via cluster {}", url.url, url.cluster));
    }
    for (url, _) in config.introspection.values() {
        lines.push(format!("introspection {} via cluster {}", url.url, url.cluster));
    }
    lines
}

/// Configurations that load but do not do what they seem to: each a line for the user.
///
/// Today one case, Kyma's own behaviour that the filter keeps (docs/security.md, "Fuzzing",
/// finding 2): in a v1beta1 APIRule in Istio JWT mode every rule is an ALLOW
/// AuthorizationPolicy, and those are ORed, so an open rule whose policy path covers a `jwt`
/// rule's path (`/.*` becomes `/*`) admits that path without a token.
pub fn warnings(docs: &[Document]) -> Vec<String> {
    let mut lines = Vec::new();
    for doc in docs {
        let rules: Vec<&Value> = match &doc.kind {
            Kind::ApiRule(rule) => vec![rule],
            Kind::Plugin(map) => {
                map.get("apiRules").and_then(Value::as_array).map(|a| a.iter().collect()).unwrap_or_default()
            }
            Kind::Other(_) => continue,
        };
        for apirule in rules {
            for w in istio_mode_open_rules(apirule) {
                lines.push(format!("{}: {w}", doc.place()));
            }
        }
    }
    lines
}

fn istio_mode_open_rules(apirule: &Value) -> Vec<String> {
    if apirule.get("apiVersion").and_then(Value::as_str) != Some("gateway.kyma-project.io/v1beta1") {
        return Vec::new();
    }
    let Some(rules) = apirule.pointer("/spec/rules").and_then(Value::as_array) else { return Vec::new() };
    let handlers = |rule: &Value| -> Vec<(String, bool)> {
        let strategies = rule.get("accessStrategies").and_then(Value::as_array);
        strategies
            .into_iter()
            .flatten()
            .map(|s| {
                let handler = s.get("handler").and_then(Value::as_str).unwrap_or_default().to_owned();
                let istio = s.pointer("/config/authentications").is_some();
                (handler, istio)
            })
            .collect()
    };
    let is_istio_jwt = |rule: &Value| handlers(rule).iter().any(|(h, istio)| h == "jwt" && *istio);
    if !rules.iter().any(is_istio_jwt) {
        return Vec::new();
    }
    let path = |rule: &Value| rule.get("path").and_then(Value::as_str).unwrap_or_default().to_owned();
    let methods = |rule: &Value| -> Vec<String> {
        let list = rule.get("methods").and_then(Value::as_array);
        list.into_iter().flatten().filter_map(Value::as_str).map(str::to_owned).collect()
    };
    let name = apirule.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("?");
    let namespace = apirule.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("default");
    let mut lines = Vec::new();
    for (o, open) in rules.iter().enumerate() {
        let open_handlers = handlers(open);
        if open_handlers.is_empty() || open_handlers.iter().any(|(h, _)| h == "jwt") {
            continue;
        }
        let open_path = path(open);
        let policy_path = if open_path == "/.*" { "/*".to_owned() } else { open_path.clone() };
        for (j, protected) in rules.iter().enumerate() {
            let shares_method = methods(open).iter().any(|m| methods(protected).contains(m));
            if j == o
                || !is_istio_jwt(protected)
                || !shares_method
                || !istio_path_covers(&policy_path, &path(protected))
            {
                continue;
            }
            lines.push(format!(
                "APIRule {namespace}/{name}: warning: spec.rules[{o}] (path {open_path}, {}) also admits spec.rules[{j}] \
                 (path {}, jwt) without a token: in Istio JWT mode Kyma's ALLOW AuthorizationPolicies are ORed, and this \
                 rule's policy path {policy_path} covers that path (as Kyma did; docs/security.md, Fuzzing, finding 2). \
                 Name the open paths instead, or move to v2, which cuts earlier rules' paths from later ones",
                open_handlers.iter().map(|(h, _)| h.as_str()).collect::<Vec<_>>().join("+"),
                path(protected),
            ));
        }
    }
    lines
}

/// Whether an AuthorizationPolicy path (exact, `prefix*`, `*suffix` or `*`) admits every path a
/// rule written as `rule_path` can match: only the certain cases (a prefix the rule's path starts
/// with, the same string), so a warning is never a guess.
fn istio_path_covers(policy_path: &str, rule_path: &str) -> bool {
    if policy_path == "*" || policy_path == rule_path {
        return true;
    }
    policy_path
        .strip_suffix('*')
        .is_some_and(|prefix| rule_path.starts_with(prefix) && !prefix.contains(['.', '(', '[', '?', '|', '\\']))
}
