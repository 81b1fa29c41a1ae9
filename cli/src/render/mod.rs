//! `apirule render`: the manifests that run the filter in Istio for a set of APIRules, in place
//! of what Kyma's controller wrote (a VirtualService per APIRule, plus Oathkeeper rules or
//! RequestAuthentication/AuthorizationPolicy): one `WasmPlugin` carrying the APIRules, Kyma's
//! VirtualServices with the Oathkeeper hop removed, and the egress that lets the filter's
//! dispatched calls reach each IdP.

mod egress;
mod virtualservice;

use serde_json::{json, Map, Value};

use apirule_wasm::config::Config;

use crate::input::{self, Document};

/// The annotation that makes the filter only log and count its decisions for an APIRule.
pub const MODE_ANNOTATION: &str = "apirule-wasm.kyma-project.io/mode";

/// Labels on everything rendered, so `kubectl get -l` finds (and `kubectl delete -l` removes) it.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "apirule-wasm");

pub struct Options {
    pub wasm_url: String,
    pub sha256: Option<String>,
    pub namespace: String,
    pub selector: (String, String),
    pub dry_run: bool,
    pub fail_strategy: FailStrategy,
}

/// What the gateway does with requests once the filter's VM has failed. Both answer 503 rather
/// than let a request through unchecked; FAIL_OPEN, which skips the filter, is not offered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
#[clap(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FailStrategy {
    /// Every request 503 until the gateway gets a new configuration or restarts; valid on every
    /// Istio version.
    FailClose,
    /// A new VM for the next request after a failure (Envoy's reload backoff, 1 s base); needs
    /// Istio 1.25 or later (earlier versions refuse the value or fail closed).
    FailReload,
}

impl FailStrategy {
    fn name(self) -> &'static str {
        match self {
            FailStrategy::FailClose => "FAIL_CLOSE",
            FailStrategy::FailReload => "FAIL_RELOAD",
        }
    }
}

pub fn render(docs: &[Document], config: &Config, options: &Options) -> Result<Vec<Value>, String> {
    if !(options.wasm_url.starts_with("oci://") || options.wasm_url.starts_with("https://")) {
        return Err(format!("--wasm-url {}: must be oci://... or https://...", options.wasm_url));
    }
    if let Some(sha) = &options.sha256 {
        let hex = sha.strip_prefix("sha256:").unwrap_or(sha);
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(format!("--sha256 {sha}: expected 64 lower-case hex digits"));
        }
    }
    let mut plugin_config = input::combine(docs).map_err(|e| e.0)?;
    // In the order the filter compiled them, so they pair with `config.policy.hosts()`.
    let rules: Vec<Value> = match plugin_config.get("apiRules") {
        Some(Value::Array(all)) => all.iter().map(|r| for_plugin(r, options.dry_run)).collect(),
        _ => Vec::new(),
    };
    plugin_config.insert("apiRules".into(), Value::Array(rules.clone()));

    let mut out = vec![wasm_plugin(plugin_config, options)];
    for rule in &rules {
        let name = format!(
            "{}/{}",
            rule.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("default"),
            rule.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("")
        );
        // The hosts as the filter compiled them: lower-case, the default domain applied.
        let hosts: Vec<String> =
            config.policy.hosts().iter().filter(|h| *h.apirule == *name).map(|h| h.host.clone()).collect();
        out.push(virtualservice::virtual_service(rule, &hosts)?);
    }
    let gateways = virtualservice::gateways(&rules);
    out.extend(egress::egress(config, &options.namespace, &gateways));
    Ok(out)
}

/// An APIRule as the pluginConfig carries it: what the filter reads, without the cluster's
/// bookkeeping (`status`, `uid`, `managedFields`, ...), with the dry-run mark if asked for.
fn for_plugin(rule: &Value, dry_run: bool) -> Value {
    let mut metadata = Map::new();
    for key in ["name", "namespace", "annotations"] {
        if let Some(v) = rule.pointer(&format!("/metadata/{key}")) {
            metadata.insert(key.into(), v.clone());
        }
    }
    if let Some(Value::Object(a)) = metadata.get_mut("annotations") {
        a.retain(|k, _| k.starts_with("apirule-wasm.kyma-project.io/"));
    }
    if dry_run {
        let annotations = metadata.entry("annotations").or_insert_with(|| json!({}));
        if let Some(a) = annotations.as_object_mut() {
            a.insert(MODE_ANNOTATION.into(), json!("dry-run"));
        }
    }
    if metadata.get("annotations").and_then(Value::as_object).is_some_and(Map::is_empty) {
        metadata.remove("annotations");
    }
    json!({
        "apiVersion": rule.get("apiVersion").cloned().unwrap_or(Value::Null),
        "kind": "APIRule",
        "metadata": metadata,
        "spec": rule.get("spec").cloned().unwrap_or_else(|| json!({})),
    })
}

fn wasm_plugin(plugin_config: Map<String, Value>, options: &Options) -> Value {
    let mut spec = json!({
        "selector": {"matchLabels": {options.selector.0.clone(): options.selector.1.clone()}},
        "url": options.wasm_url,
        "imagePullPolicy": "IfNotPresent",
        // Before Istio's own authorization filters, where Oathkeeper sat in front of the workload.
        "phase": "AUTHN",
        // A filter that cannot load or has failed must not let traffic through.
        "failStrategy": options.fail_strategy.name(),
        "pluginConfig": plugin_config,
    });
    if let Some(sha) = &options.sha256 {
        crate::set(&mut spec, "sha256", json!(sha.strip_prefix("sha256:").unwrap_or(sha)));
    }
    json!({
        "apiVersion": "extensions.istio.io/v1alpha1",
        "kind": "WasmPlugin",
        "metadata": {"name": "apirule-wasm", "namespace": options.namespace, "labels": {MANAGED_BY.0: MANAGED_BY.1}},
        "spec": spec,
    })
}
