//! `config::parse` on arbitrary bytes and on valid plugin configurations mutated structurally.
//!
//! The bases cover every APIRule version and most features (v1alpha1; v1beta1 with every
//! handler, mutators and token_from; v1beta1 in Istio JWT mode; v2alpha1 with fromHeaders and
//! request headers; v2 with authorizations, extAuth, wildcard and short hosts, CORS, timeouts)
//! and every plugin option.

use apirule_wasm::config::{self, Config, ConfigError};
use apirule_wasm::keys::KeyCache;
use apirule_wasm::policy::Decision;
use apirule_wasm::request::Request;
use arbitrary::{Result, Unstructured};
use serde_json::{json, Value};

use crate::json_mutate::{self, Dictionary};

const JWKS: &str = "https://idp.example.com/keys";
const ISSUER: &str = "https://idp.example.com";

fn jwt_v1(extra: Value) -> Value {
    let mut c = json!({"jwks_urls": [JWKS], "trusted_issuers": [ISSUER]});
    for (k, v) in extra.as_object().into_iter().flatten() {
        c[k] = v.clone();
    }
    json!({"handler": "jwt", "config": c})
}

fn rule(path: &str, methods: &[&str], strategies: Value) -> Value {
    json!({"path": path, "methods": methods, "accessStrategies": strategies})
}

/// One APIRule of each version and shape.
pub fn apirules() -> Vec<Value> {
    let v1alpha1 = json!({
        "apiVersion": "gateway.kyma-project.io/v1alpha1", "kind": "APIRule",
        "metadata": {"name": "alpha", "namespace": "default"},
        "spec": {"gateway": "kyma-system/kyma-gateway",
                 "service": {"name": "httpbin", "port": 8000, "host": "alpha.example.com"},
                 "rules": [rule("/.*", &["GET"], json!([jwt_v1(json!({}))]))]}});
    let v1beta1 = json!({
        "apiVersion": "gateway.kyma-project.io/v1beta1", "kind": "APIRule",
        "metadata": {"name": "beta", "namespace": "default"},
        "spec": {"host": "beta.example.com", "service": {"name": "httpbin", "port": 8000},
                 "gateway": "kyma-system/kyma-gateway",
                 "rules": [
                     rule("/headers", &["GET", "POST"], json!([jwt_v1(json!({
                         "required_scope": ["read"], "target_audience": ["api"],
                         "token_from": {"header": "X-Token"}}))])),
                     rule("/public/.*", &["GET"], json!([{"handler": "no_auth"}])),
                     rule("/allow", &["GET"], json!([{"handler": "allow"}])),
                     {"path": "/mutate/[a-z]+", "methods": ["GET"],
                      "accessStrategies": [{"handler": "anonymous"}],
                      "mutators": [{"handler": "header", "config": {"headers": {"X-User": "{{ print .Subject }}"}}},
                                   {"handler": "cookie", "config": {"cookies": {"user": "{{ .Extra.email }}"}}}]},
                     rule("/intro", &["GET"], json!([{"handler": "oauth2_introspection", "config": {
                         "introspection_url": "https://idp.example.com/introspect",
                         "required_scope": ["read"], "target_audience": ["api"],
                         "introspection_request_headers": {"X-Api-Key": "k"}}}])),
                     rule("/deny", &["DELETE"], json!([{"handler": "unauthorized"}])),
                     rule("/noop", &["GET"], json!([{"handler": "noop"}])),
                     rule("/cookie", &["GET"], json!([jwt_v1(json!({"token_from": {"cookie": "jwt"}}))])),
                     rule("/query", &["GET"], json!([jwt_v1(json!({"token_from": {"query_parameter": "t"}}))])),
                 ],
                 "corsPolicy": {"allowOrigins": [{"exact": "https://a.example.com"}], "maxAge": "10m"}}});
    let v1beta1_istio = json!({
    "apiVersion": "gateway.kyma-project.io/v1beta1", "kind": "APIRule",
    "metadata": {"name": "istio", "namespace": "default"},
    "spec": {"host": "istio.example.com", "service": {"name": "httpbin", "port": 8000},
             "gateway": "kyma-system/kyma-gateway",
             "rules": [
                 rule("/api/.*", &["GET"], json!([{"handler": "jwt", "config": {
                     "authentications": [{"issuer": ISSUER, "jwksUri": JWKS}],
                     "authorizations": [{"requiredScopes": ["read"], "audiences": ["api"]}]}}])),
                 rule("/.*", &["GET"], json!([{"handler": "no_auth"}])),
             ]}});
    let v2alpha1 = json!({
    "apiVersion": "gateway.kyma-project.io/v2alpha1", "kind": "APIRule",
    "metadata": {"name": "v2alpha1", "namespace": "default"},
    "spec": {"hosts": ["v2alpha1.example.com"], "service": {"name": "httpbin", "port": 8000},
             "gateway": "kyma-system/kyma-gateway",
             "rules": [
                 {"path": "/a/{*}/b", "methods": ["GET"], "jwt": {"authentications": [
                     {"issuer": ISSUER, "jwksUri": JWKS, "fromHeaders": [{"name": "X-JWT", "prefix": "Token "}]}]},
                  "request": {"headers": {"X-Env": "prod"}, "cookies": {"a": "1"}}},
                 {"path": "/open/{**}", "methods": ["GET", "POST"], "noAuth": true, "timeout": 30},
             ]}});
    let v2 = json!({
    "apiVersion": "gateway.kyma-project.io/v2", "kind": "APIRule",
    "metadata": {"name": "v2", "namespace": "other"},
    "spec": {"hosts": ["v2.example.com"],
             "service": {"name": "httpbin", "port": 8000, "namespace": "other"},
             "gateway": "kyma-system/kyma-gateway", "timeout": 60,
             "corsPolicy": {"allowOrigins": [{"prefix": "https://"}], "allowMethods": ["GET"],
                            "allowHeaders": ["x-a"], "maxAge": 600},
             "rules": [
                 {"path": "/scoped", "methods": ["GET"], "jwt": {
                     "authentications": [{"issuer": ISSUER, "jwksUri": JWKS, "fromParams": ["jwt"]}],
                     "authorizations": [{"requiredScopes": ["read"], "audiences": ["api"]}]}},
                 {"path": "/ext/{**}", "methods": ["GET"], "extAuth": {"authorizers": ["authz"],
                     "restrictions": {"authentications": [{"issuer": ISSUER, "jwksUri": JWKS, "fromParams": ["jwt"]}]}}},
                 {"path": "/*", "methods": ["GET", "HEAD"], "noAuth": true},
             ]}});
    let host_only = |host: &str| {
        json!({
        "apiVersion": "gateway.kyma-project.io/v2", "kind": "APIRule",
        "metadata": {"name": host.replace(['*', '.'], ""), "namespace": "default"},
        "spec": {"hosts": [host], "service": {"name": "httpbin", "port": 8000}, "gateway": "kyma-system/kyma-gateway",
                 "rules": [{"path": "/{**}", "methods": ["GET"], "jwt": {"authentications": [{"issuer": ISSUER, "jwksUri": JWKS}]}}]}})
    };
    vec![v1alpha1, v1beta1, v1beta1_istio, v2alpha1, v2, host_only("*.wild.example.com"), host_only("short")]
}

/// The plugin options beside the APIRules.
fn options() -> Value {
    json!({
        "jwks": {"clusters": {JWKS: "idp"}},
        "clockSkewSeconds": 30,
        "defaultDomain": "example.com",
        "tokenCache": {"maxEntries": 100},
        "extAuth": {"providers": {"authz": {"cluster": "authz", "pathPrefix": "/check",
            "includeRequestHeadersInCheck": ["x-user"], "headersToUpstreamOnAllow": ["x-authz-user"],
            "headersToDownstreamOnDeny": ["x-reason"]}}},
    })
}

/// The whole valid plugin configuration: every base APIRule and every option.
pub fn full_config() -> Value {
    let mut c = options();
    c["apiRules"] = Value::Array(apirules());
    c
}

fn dictionary() -> Dictionary {
    let mut values = json_mutate::generic_values();
    for s in [
        "gateway.kyma-project.io/v1alpha1",
        "gateway.kyma-project.io/v1beta1",
        "gateway.kyma-project.io/v2alpha1",
        "gateway.kyma-project.io/v2",
        "gateway.kyma-project.io/v3",
        "APIRule",
        "jwt",
        "noop",
        "allow",
        "no_auth",
        "anonymous",
        "unauthorized",
        "oauth2_introspection",
        "id_token",
        "header",
        "cookie",
        "/.*",
        "/*",
        "/{**}",
        "/{*}",
        "/a/{**}/b",
        "/{**}/x/{*}",
        "/(a|b)+",
        "/[",
        "(?i)/x",
        "a{1000}{1000}",
        "((((((((((a))))))))))*",
        "GET",
        "get",
        "POST",
        "PATCH",
        "CONNECT",
        "https://idp.example.com/keys",
        "http://idp.example.com:8080/keys?x=1",
        "https://",
        "file:///etc/passwd",
        "https://idp.example.com",
        "*.example.com",
        "*",
        "example.com.",
        "UPPER.example.com",
        "a..b",
        "kyma-system/kyma-gateway",
        "{{ print .Subject }}",
        "{{ .Extra.a.b }}",
        "{{",
        "%REQ(:AUTHORITY)%",
        "%DOWNSTREAM_REMOTE_ADDRESS%",
        "100%",
        "10m",
        "1h2m3s",
        "-1s",
    ] {
        values.push(Value::String(s.into()));
    }
    values.push(json!([{"handler": "jwt", "config": {"jwks_urls": [JWKS]}}]));
    values.push(json!([{"issuer": ISSUER, "jwksUri": JWKS}]));
    values.push(json!([{"name": "X-A", "prefix": "Bearer "}]));
    values.push(json!({"clusters": {"https://idp.example.com/introspect": "idp"}}));
    values.push(json!({"exact": "x"}));
    values.push(json!({"regex": ".*"}));
    Dictionary {
        values,
        keys: vec![
            "apiVersion",
            "kind",
            "metadata",
            "name",
            "namespace",
            "annotations",
            "spec",
            "host",
            "hosts",
            "service",
            "port",
            "gateway",
            "rules",
            "path",
            "methods",
            "accessStrategies",
            "handler",
            "config",
            "mutators",
            "jwks_urls",
            "trusted_issuers",
            "required_scope",
            "target_audience",
            "token_from",
            "header",
            "query_parameter",
            "cookie",
            "noAuth",
            "jwt",
            "extAuth",
            "authorizers",
            "restrictions",
            "authentications",
            "authorizations",
            "issuer",
            "jwksUri",
            "fromHeaders",
            "fromParams",
            "prefix",
            "requiredScopes",
            "audiences",
            "request",
            "headers",
            "cookies",
            "timeout",
            "corsPolicy",
            "allowOrigins",
            "maxAge",
            "jwks",
            "clusters",
            "clockSkewSeconds",
            "defaultDomain",
            "tokenCache",
            "maxEntries",
            "introspection",
            "providers",
            "cluster",
            "pathPrefix",
            "introspection_url",
            "externalGateway",
            "apiRules",
            "gateway.kyma-project.io/original-version",
            "gateway.kyma-project.io/v1beta1-spec",
        ],
        fragments: vec!["{**}", "{*}", ".*", "..", "%2F", "\\", "(", ")", "|", "$", "^", "https://", ":443"],
    }
}

/// What every answer of `config::parse` must satisfy, whatever the input.
fn check_answer(result: &std::result::Result<Config, ConfigError>) {
    match result {
        Err(e) => {
            assert!(!e.resource.is_empty() && !e.message.is_empty(), "an error that names nothing: {e:?}");
        }
        Ok(cfg) => check_config(cfg),
    }
}

/// A loaded configuration is usable: every host it governs is found, every endpoint is complete,
/// and deciding requests on it does not panic (nor pass a governed host through).
fn check_config(cfg: &Config) {
    for (url, ep) in &cfg.jwks {
        assert_eq!(&ep.url, url);
        assert!(!ep.cluster.is_empty() && !ep.authority.is_empty() && ep.path.starts_with('/'), "{ep:?}");
    }
    for (url, (ep, _)) in &cfg.introspection {
        assert_eq!(&ep.url, url);
        assert!(!ep.cluster.is_empty() && ep.path.starts_with('/'), "{ep:?}");
    }
    let keys = KeyCache::default();
    for host in cfg.policy.hosts() {
        let authority = match host.host.strip_prefix("*.") {
            Some(domain) => format!("x.{domain}"),
            None => host.host.clone(),
        };
        assert!(cfg.policy.governs(&authority), "{} is not governed by its own APIRule", host.host);
        for (method, path) in [("GET", "/"), ("GET", "/headers?x=1"), ("POST", "/a/b/c"), ("DELETE", "/deny")] {
            let req = Request::new(method, &authority, path).with_header("authorization", "Bearer a.b.c");
            let d = cfg.policy.decide(&req, 1_800_000_000_000, &keys);
            assert!(!matches!(d, Decision::PassThrough), "{authority} {path}: governed host passed through");
        }
    }
}

/// The whole target: `data` as the configuration, then `data` as choices mutating a valid one.
pub fn check(data: &[u8]) {
    check_answer(&config::parse(data));
    let _ = structured(data);
}

fn structured(data: &[u8]) -> Result<()> {
    let mut u = Unstructured::new(data);
    let mut doc = options();
    // A subset of the base APIRules, in an order the input picks.
    let bases = apirules();
    let mut chosen = Vec::new();
    for _ in 0..u.int_in_range(1..=3u8)? {
        chosen.push(u.choose(&bases)?.clone());
    }
    doc["apiRules"] = Value::Array(chosen);
    json_mutate::mutate(&mut u, &mut doc, &dictionary(), 6)?;
    let compact = doc.to_string();
    let first = config::parse(compact.as_bytes());
    check_answer(&first);
    // The answer depends on the document only, not on how it is written or how often it is read.
    let again = config::parse(compact.as_bytes());
    let pretty = serde_json::to_string_pretty(&doc).unwrap_or_default();
    let spaced = config::parse(pretty.as_bytes());
    let describe = |r: &std::result::Result<Config, ConfigError>| r.as_ref().err().map(ToString::to_string);
    assert_eq!(describe(&first), describe(&again), "parsing the same bytes twice differs");
    assert_eq!(describe(&first), describe(&spaced), "whitespace changes the answer");
    Ok(())
}

/// The unmutated bases load (else the structured half would explore nothing but errors).
pub fn self_check() {
    for r in apirules() {
        let mut c = options();
        c["apiRules"] = json!([r]);
        if let Err(e) = config::parse(c.to_string().as_bytes()) {
            panic!("base APIRule refused: {e}");
        }
    }
    let all = config::parse(full_config().to_string().as_bytes());
    assert!(all.is_ok(), "the full base configuration is refused: {:?}", all.err());
}
