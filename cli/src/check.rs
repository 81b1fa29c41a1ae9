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
