//! Plugin configuration (JSON) -> validated, compiled `Config`.
//!
//! The contract: `{"apiRules": [APIRule...], "jwks": {...}, "clockSkewSeconds": n,
//! "defaultDomain": "..."}`. Every error names the APIRule and the JSON path of the field, and the
//! whole configuration is refused: the filter never runs half-configured.

mod apirule;
mod introspection;
mod json;
mod jwt;
mod v2;
mod v2_order;

use std::collections::BTreeMap;
use std::fmt;

use serde_json::value::RawValue;
use serde_json::{Map, Value};

use std::rc::Rc;

use crate::calls::ext_authz;
use crate::jwt::cache::DEFAULT_MAX_ENTRIES;
use crate::keys::CacheSettings;
use crate::policy::Policy;
use crate::request::path::EscapedSlashes;
use json::Node;

/// A refused configuration: which resource, which field, what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub resource: String,
    pub path: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(resource: &str, path: &str, message: impl Into<String>) -> Self {
        ConfigError { resource: resource.to_owned(), path: path.to_owned(), message: message.into() }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}: {}", self.resource, self.message)
        } else {
            write!(f, "{}: {}: {}", self.resource, self.path, self.message)
        }
    }
}

/// Where and how to fetch one JWKS URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksEndpoint {
    pub url: String,
    /// Envoy cluster the call is dispatched to.
    pub cluster: String,
    /// `:authority` of the call (the URL's host[:port]).
    pub authority: String,
    /// `:path` of the call (path and query).
    pub path: String,
}

/// The whole, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub policy: Policy,
    pub cache: CacheSettings,
    /// Every JWKS URL any rule uses, by URL.
    pub jwks: BTreeMap<String, JwksEndpoint>,
    /// How many verified tokens each worker remembers (0: none).
    pub token_cache_entries: usize,
    /// Every introspection URL any rule uses, by URL, with the call timeout.
    pub introspection: BTreeMap<String, (JwksEndpoint, u64)>,
    /// The `extAuth` providers, by name.
    pub ext_authz: BTreeMap<String, Rc<ext_authz::Provider>>,
}

/// Plugin-level options beside the APIRules.
#[derive(Debug, Clone, Default)]
pub(crate) struct Options {
    pub default_domain: Option<String>,
    /// `extAuth.providers`: the authorizers v2 `extAuth` rules may name.
    pub ext_authz: BTreeMap<String, Rc<ext_authz::Provider>>,
}

const PLUGIN: &str = "plugin configuration";

/// Parses and validates the plugin configuration.
///
/// APIRules are parsed and compiled one at a time from the raw bytes, so the parsed JSON of only
/// one is alive at once: wasm memory never shrinks, so the peak of loading is what every worker
/// keeps for as long as it runs.
pub fn parse(bytes: &[u8]) -> Result<Config, ConfigError> {
    let not_json = |e: serde_json::Error| ConfigError::new(PLUGIN, "", format!("is not valid JSON: {e}"));
    let mut top: BTreeMap<String, &RawValue> =
        serde_json::from_slice(bytes).map_err(|e| match serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
            Ok(_) => ConfigError::new(PLUGIN, "", "must be an object"),
            Err(_) => not_json(e),
        })?;
    let raw_rules = top.remove("apiRules").filter(|r| r.get() != "null");
    let mut options_doc = Map::new();
    for (key, raw) in top {
        options_doc.insert(key, serde_json::from_str(raw.get()).map_err(not_json)?);
    }
    let options_doc = Value::Object(options_doc);
    let root = Node::root(&options_doc, PLUGIN);
    root.only_keys(&[
        "apiRules",
        "jwks",
        "clockSkewSeconds",
        "defaultDomain",
        "tokenCache",
        "introspection",
        "extAuth",
        "paths",
    ])?;
    let ext_authz = parse_ext_authz(root.get("extAuth"))?;
    let mut introspection_clusters = BTreeMap::new();
    if let Some(n) = root.get("introspection") {
        n.only_keys(&["clusters"])?;
        if let Some(c) = n.get("clusters") {
            for (url, cluster) in c.object()? {
                let name = cluster.as_str().filter(|s| !s.is_empty()).ok_or_else(|| {
                    ConfigError::new(PLUGIN, &format!("introspection.clusters[{url:?}]"), "must be a cluster name")
                })?;
                introspection_clusters.insert(url.clone(), name.to_owned());
            }
        }
    }

    let default_domain = match root.get("defaultDomain") {
        Some(n) => {
            let d = n.non_empty_str()?.trim_start_matches('.').to_ascii_lowercase();
            if !apirule::is_dns_name(&d) {
                return Err(n.error("must be a DNS domain such as example.com"));
            }
            Some(d)
        }
        None => None,
    };
    let clock_skew_secs = match root.get("clockSkewSeconds") {
        Some(n) => n.uint(0, 300)?,
        None => 0,
    };
    let escaped_slashes = parse_paths_options(root.get("paths"))?;
    let (cache, clusters) = parse_jwks_options(root.get("jwks"))?;
    let token_cache_entries = match root.get("tokenCache") {
        Some(n) => {
            n.only_keys(&["maxEntries"])?;
            match n.get("maxEntries") {
                Some(m) => usize::try_from(m.uint(0, 100_000)?).unwrap_or(0),
                None => DEFAULT_MAX_ENTRIES,
            }
        }
        None => DEFAULT_MAX_ENTRIES,
    };
    let options = Options { default_domain, ext_authz: ext_authz.clone() };

    let rules_error = |message: &str| ConfigError::new(PLUGIN, "apiRules", message);
    let raw_rules = raw_rules.ok_or_else(|| rules_error("is required"))?;
    let items: Vec<&RawValue> = serde_json::from_str(raw_rules.get()).map_err(|_| rules_error("must be an array"))?;
    if items.is_empty() {
        return Err(rules_error("must list at least one APIRule"));
    }
    let mut policy = Policy::new(i64::try_from(clock_skew_secs).unwrap_or(0));
    policy.escaped_slashes = escaped_slashes;
    let mut jwks_urls = Vec::new();
    let mut introspection_urls: Vec<(String, u64)> = Vec::new();
    let mut paths = apirule::PathCache::default();
    for (i, raw) in items.into_iter().enumerate() {
        let value: Value = serde_json::from_str(raw.get()).map_err(not_json)?;
        let compiled = apirule::compile(&Node::at(&value, format!("apiRules[{i}]"), PLUGIN), &options, &mut paths)?;
        let (apirule, host) = (format!("APIRule {}", compiled.host.apirule), compiled.host.host.clone());
        jwks_urls.extend(compiled.jwks_urls);
        introspection_urls.extend(compiled.introspection_urls);
        if let Err(other) = policy.add(compiled.host, compiled.access_rules) {
            let message = format!("host {host} is already used by APIRule {other}");
            return Err(ConfigError::new(&apirule, compiled.host_path, message));
        }
    }

    let mut jwks = BTreeMap::new();
    for url in jwks_urls {
        if jwks.contains_key(&url) {
            continue;
        }
        let endpoint = jwt::endpoint(&url, clusters.get(&url).map(String::as_str))
            .map_err(|m| ConfigError::new(PLUGIN, "jwks", format!("{url}: {m}")))?;
        jwks.insert(url, endpoint);
    }
    if let Some(url) = clusters.keys().find(|u| !jwks.contains_key(*u)) {
        return Err(ConfigError::new(PLUGIN, "jwks.clusters", format!("{url} is not a jwks_urls entry of any rule")));
    }
    let mut introspection = BTreeMap::new();
    for (url, timeout_ms) in introspection_urls {
        let endpoint = jwt::endpoint(&url, introspection_clusters.get(&url).map(String::as_str))
            .map_err(|m| ConfigError::new(PLUGIN, "introspection", format!("{url}: {m}")))?;
        // Several rules on one URL: the longest wait any of them allows.
        let entry = introspection.entry(url).or_insert((endpoint, timeout_ms));
        entry.1 = entry.1.max(timeout_ms);
    }
    if let Some(url) = introspection_clusters.keys().find(|u| !introspection.contains_key(*u)) {
        let message = format!("{url} is not the introspection_url of any rule");
        return Err(ConfigError::new(PLUGIN, "introspection.clusters", message));
    }
    Ok(Config { policy, cache, jwks, token_cache_entries, introspection, ext_authz })
}

/// `extAuth.providers.<name>`: where an `extAuth` authorizer is asked, in the terms of Istio's
/// `envoyExtAuthzHttp` extension provider (`cluster` instead of service and port).
/// `paths.escapedSlashes`: `reject` (the default) or `keep`, named after Envoy's
/// `path_with_escaped_slashes_action` (docs/security.md, "Paths").
fn parse_paths_options(node: Option<Node<'_>>) -> Result<EscapedSlashes, ConfigError> {
    let Some(n) = node else {
        return Ok(EscapedSlashes::default());
    };
    n.only_keys(&["escapedSlashes"])?;
    let Some(value) = n.get("escapedSlashes") else {
        return Ok(EscapedSlashes::default());
    };
    match value.str()? {
        "reject" => Ok(EscapedSlashes::Reject),
        "keep" => Ok(EscapedSlashes::Keep),
        _ => Err(value.error("must be \"reject\" or \"keep\"")),
    }
}

fn parse_ext_authz(node: Option<Node<'_>>) -> Result<BTreeMap<String, Rc<ext_authz::Provider>>, ConfigError> {
    let mut out = BTreeMap::new();
    let Some(node) = node else {
        return Ok(out);
    };
    node.only_keys(&["providers"])?;
    let Some(providers) = node.get("providers") else {
        return Ok(out);
    };
    for (name, value) in providers.object()? {
        let p = Node::at(value, format!("{}.{name}", providers.path), PLUGIN);
        p.only_keys(&[
            "cluster",
            "authority",
            "pathPrefix",
            "timeoutMs",
            "includeRequestHeadersInCheck",
            "headersToUpstreamOnAllow",
            "headersToDownstreamOnDeny",
        ])?;
        let lower = |key: &str| -> Result<Vec<String>, ConfigError> {
            Ok(p.get(key)
                .map(|n| n.str_list())
                .transpose()?
                .unwrap_or_default()
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect())
        };
        let cluster = p.req("cluster")?.non_empty_str()?.to_owned();
        let path_prefix = match p.get("pathPrefix") {
            Some(n) => {
                let prefix = n.str()?;
                if !prefix.is_empty() && !prefix.starts_with('/') {
                    return Err(n.error("must start with /"));
                }
                prefix.to_owned()
            }
            None => String::new(),
        };
        let provider = ext_authz::Provider {
            name: name.clone(),
            authority: p
                .get("authority")
                .map(|a| a.non_empty_str().map(str::to_owned))
                .transpose()?
                .unwrap_or_else(|| cluster.clone()),
            cluster,
            path_prefix,
            timeout_ms: p.get("timeoutMs").map(|t| t.uint(10, 60_000)).transpose()?.unwrap_or(1000),
            include_request_headers: lower("includeRequestHeadersInCheck")?,
            headers_to_upstream_on_allow: lower("headersToUpstreamOnAllow")?,
            headers_to_downstream_on_deny: lower("headersToDownstreamOnDeny")?,
        };
        out.insert(name.clone(), Rc::new(provider));
    }
    Ok(out)
}

fn parse_jwks_options(node: Option<Node<'_>>) -> Result<(CacheSettings, BTreeMap<String, String>), ConfigError> {
    let mut cache = CacheSettings::default();
    let mut clusters = BTreeMap::new();
    let Some(node) = node else {
        return Ok((cache, clusters));
    };
    node.only_keys(&[
        "clusters",
        "cacheTtlSeconds",
        "minCacheTtlSeconds",
        "maxCacheTtlSeconds",
        "fetchTimeoutMs",
        "maxWaitMs",
        "maxStaleSeconds",
        "minRefetchSeconds",
    ])?;
    if let Some(n) = node.get("clusters") {
        for (url, cluster) in n.object()? {
            let name = cluster.as_str().filter(|s| !s.is_empty());
            let name = name.ok_or_else(|| {
                ConfigError::new(PLUGIN, &format!("jwks.clusters[{url:?}]"), "must be a cluster name")
            })?;
            clusters.insert(url.clone(), name.to_owned());
        }
    }
    if let Some(n) = node.get("cacheTtlSeconds") {
        cache.ttl_ms = n.uint(1, 86_400)?.saturating_mul(1000);
    }
    if let Some(n) = node.get("minCacheTtlSeconds") {
        cache.min_ttl_ms = n.uint(1, 86_400)?.saturating_mul(1000);
    }
    if let Some(n) = node.get("maxCacheTtlSeconds") {
        cache.max_ttl_ms = n.uint(1, 86_400)?.saturating_mul(1000);
    }
    if cache.min_ttl_ms > cache.max_ttl_ms {
        return Err(ConfigError::new(
            PLUGIN,
            "jwks.minCacheTtlSeconds",
            "must not be above maxCacheTtlSeconds (defaults 30 and 3600)",
        ));
    }
    if let Some(n) = node.get("fetchTimeoutMs") {
        cache.fetch_timeout_ms = n.uint(10, 60_000)?;
    }
    if let Some(n) = node.get("maxWaitMs") {
        cache.max_wait_ms = n.uint(0, 60_000)?;
    }
    if let Some(n) = node.get("maxStaleSeconds") {
        cache.max_stale_ms = n.uint(0, 7 * 86_400)?.saturating_mul(1000);
    }
    if let Some(n) = node.get("minRefetchSeconds") {
        cache.min_refetch_ms = n.uint(0, 3_600)?.saturating_mul(1000);
    }
    Ok((cache, clusters))
}
