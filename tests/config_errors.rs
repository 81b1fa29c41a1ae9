//! Invalid configurations are refused with the APIRule and the JSON path of the field.

mod common;

use common::*;
use serde_json::{json, Value};

fn error_of(plugin: Value) -> String {
    match try_load(plugin) {
        Ok(_) => panic!("configuration was accepted"),
        Err(e) => e.to_string(),
    }
}

fn error_for(rules: Value) -> String {
    error_of(json!({"apiRules": [apirule("httpbin", HOST, rules)]}))
}

fn jwt(config: Value) -> Value {
    json!([rule("/.*", &["GET"], "jwt", Some(config))])
}

#[test]
fn unknown_api_version() {
    let mut r = apirule("httpbin", HOST, json!([rule("/.*", &["GET"], "noop", None)]));
    r["apiVersion"] = json!("gateway.kyma-project.io/v3");
    let e = error_of(json!({"apiRules": [r]}));
    assert!(
        e.starts_with("APIRule default/httpbin: apiVersion: gateway.kyma-project.io/v3 is not supported (supported: "),
        "{e}"
    );
    let mut r = apirule("httpbin", HOST, json!([]));
    r["apiVersion"] = json!("networking.istio.io/v1");
    assert!(error_of(json!({"apiRules": [r]})).contains("is not an APIRule apiVersion"));
}

#[test]
fn unsupported_handlers() {
    let e = error_for(json!([rule("/.*", &["GET"], "magic", None)]));
    assert_eq!(
        e,
        "APIRule default/httpbin: spec.rules[0].accessStrategies[0].handler: Unsupported accessStrategy: magic"
    );
    let e = error_for(json!([rule("/.*", &["GET"], "oauth2_client_credentials", None)]));
    assert!(
        e.contains("spec.rules[0].accessStrategies[0].handler: handler oauth2_client_credentials is not supported"),
        "{e}"
    );
}

#[test]
fn introspection_config() {
    let with = |config: Option<Value>| error_for(json!([rule("/.*", &["GET"], "oauth2_introspection", config)]));
    assert!(with(None).contains("config is required for oauth2_introspection"));
    assert!(with(Some(json!({}))).contains("config.introspection_url: is required"));
    assert!(with(Some(json!({"introspection_url": "ftp://x"}))).contains("must be an http:// or https:// URL"));
    let e = with(Some(json!({"introspection_url": "http://idp/i", "pre_authorization": {"enabled": true}})));
    assert!(e.contains("config.pre_authorization: pre_authorization (client credentials"), "{e}");
    let e = with(Some(json!({"introspection_url": "http://idp/i", "cache": {"enabled": true, "ttl": "ten"}})));
    assert!(e.contains("config.cache.ttl: \"ten\" is not a duration"), "{e}");
    let e = with(Some(json!({"introspection_url": "http://idp/i", "scope_strategy": "magic"})));
    assert!(e.contains("magic is not one of"), "{e}");
    let e = with(Some(json!({"introspection_url": "http://idp/i", "introspection_urls": []})));
    assert!(e.contains("config.introspection_urls: unknown field"), "{e}");
    let ok = try_load(
        json!({"apiRules": [apirule("httpbin", HOST, json!([rule("/.*", &["GET"], "oauth2_introspection",
        Some(json!({"introspection_url": "http://idp/i", "cache": {"enabled": true, "ttl": "1m30s"}, "retry": {"give_up_after": "2s"}})))]))],
        "introspection": {"clusters": {"http://idp/i": "idp"}}}),
    );
    let cfg = ok.unwrap();
    let (endpoint, timeout) = &cfg.introspection["http://idp/i"];
    assert_eq!((endpoint.cluster.as_str(), *timeout), ("idp", 2000));
    let stray = try_load(json!({"apiRules": [apirule("httpbin", HOST, json!([rule("/.*", &["GET"], "noop", None)]))],
        "introspection": {"clusters": {"http://idp/i": "idp"}}}));
    assert!(stray.unwrap_err().to_string().contains("is not the introspection_url of any rule"));
}

#[test]
fn bad_regex_names_the_path_field() {
    let e = error_for(json!([rule("/ok", &["GET"], "noop", None), rule("/(unclosed", &["GET"], "noop", None)]));
    assert!(e.starts_with("APIRule default/httpbin: spec.rules[1].path: is not a valid regex"), "{e}");
}

#[test]
fn duplicate_path_and_method() {
    let e = error_for(json!([rule("/a", &["GET", "POST"], "noop", None), rule("/a", &["POST"], "noop", None)]));
    assert!(e.contains("spec.rules[1]: multiple rules defined for the same path and method: /a POST"), "{e}");
    // Same path, different methods: fine (case 13).
    assert!(try_load(json!({"apiRules": [apirule("a", HOST, json!([
        rule("/a", &["GET"], "noop", None), rule("/a", &["POST"], "noop", None)]))]}))
    .is_ok());
}

#[test]
fn jwt_config_types() {
    let e = error_for(jwt(json!({"jwks_urls": "https://idp/keys"})));
    assert_eq!(e, "APIRule default/httpbin: spec.rules[0].accessStrategies[0].config.jwks_urls: must be an array");
    let e = error_for(jwt(json!({"jwks_urls": [JWKS_URL], "required_scope": [1]})));
    assert!(e.contains("config.required_scope[0]: must be a string"), "{e}");
    let e = error_for(jwt(json!({"jwks_urls": [JWKS_URL], "scope_strategy": "fuzzy"})));
    assert!(e.contains("config.scope_strategy: must be one of"), "{e}");
    for alg in ["ES256K", "none", "es256"] {
        let e = error_for(jwt(json!({"jwks_urls": [JWKS_URL], "allowed_algorithms": ["RS256", alg]})));
        assert!(e.contains(&format!("config.allowed_algorithms[1]: {alg} is not supported")), "{e}");
    }
    let e = error_for(jwt(json!({"jwks_urls": [JWKS_URL], "token_from": {"header": "a", "cookie": "b"}})));
    assert!(e.contains("config.token_from: must have exactly one of"), "{e}");
    let e = error_for(jwt(json!({"jwks_urls": [JWKS_URL], "trusted_issuer": ["x"]})));
    assert!(e.contains("config.trusted_issuer: unknown field"), "{e}");
    let e = error_for(jwt(json!({"jwks_urls": ["file:///keys.json"]})));
    assert!(e.contains("config.jwks_urls[0]: must be an http:// or https:// URL"), "{e}");
    let e = error_for(jwt(json!({"trusted_issuers": [ISSUER]})));
    assert!(e.contains("config.jwks_urls: is required"), "{e}");
    let e = error_for(jwt(json!({})));
    assert!(e.contains("config: must not be empty"), "{e}");
    // Kyma's Istio JWT handler config (see tests/policy_v1beta1_istio.rs), with its own checks.
    let e = error_for(jwt(json!({"authentications": [{"issuer": "x", "jwksUri": "y"}]})));
    assert!(e.contains("config.authentications[0].jwksUri: must be a valid URI"), "{e}");
}

#[test]
fn handler_combinations() {
    let two = |a: &str, b: &str| {
        json!([{"path": "/.*", "methods": ["GET"], "accessStrategies": [
        {"handler": a, "config": if a == "jwt" { jwt_config(json!({})) } else { json!({}) }},
        {"handler": b}]}])
    };
    let e = error_for(two("jwt", "noop"));
    assert!(e.contains("spec.rules[0].accessStrategies: handler noop cannot be combined"), "{e}");
    let e = error_for(two("jwt", "anonymous"));
    assert!(e.contains("cannot be mixed"), "{e}");
    assert!(try_load(json!({"apiRules": [apirule("a", HOST, two("anonymous", "unauthorized"))]})).is_ok());
    let e = error_for(json!([rule("/.*", &["GET"], "noop", Some(json!({"x": 1})))]));
    assert!(e.contains("accessStrategies[0].config: must be empty"), "{e}");
}

#[test]
fn mutators_the_filter_cannot_carry_out_are_refused() {
    let with = |mutators: Value| {
        let mut r = rule("/.*", &["GET"], "noop", None);
        r["mutators"] = mutators;
        error_for(json!([r]))
    };
    let e = with(json!([{"handler": "id_token", "config": {"ttl": "60s"}}]));
    assert!(e.contains("spec.rules[0].mutators[0].handler: mutator id_token is not supported"), "{e}");
    let e = with(json!([{"handler": "hydrator", "config": {}}]));
    assert!(e.contains("mutator hydrator is not supported"), "{e}");
    let e = with(json!([{"handler": "header", "config": {"headers": {"X-A": "{{ .Header.X }}"}}}]));
    assert!(e.contains("mutators[0].config.headers.X-A: template action {{ .Header.X }} is not supported"), "{e}");
    let e = with(json!([{"handler": "header", "config": {"headers": {"X-A": 1}}}]));
    assert!(e.contains("mutators[0].config.headers.X-A: must be a string"), "{e}");
    let e = with(json!([{"handler": "cookie", "config": {"headers": {}}}]));
    assert!(e.contains("mutators[0].config.headers: unknown field"), "{e}");
}

#[test]
fn hosts() {
    let rules = json!([rule("/.*", &["GET"], "noop", None)]);
    let e = error_of(json!({"apiRules": [apirule("a", "httpbin", rules.clone())]}));
    assert!(e.contains("spec.host: is a short host name; set the plugin option defaultDomain"), "{e}");
    let cfg =
        try_load(json!({"apiRules": [apirule("a", "httpbin", rules.clone())], "defaultDomain": "Local.Kyma.dev"}))
            .unwrap();
    assert_eq!(cfg.policy.hosts()[0].host, "httpbin.local.kyma.dev");
    let e = error_of(json!({"apiRules": [apirule("a", HOST, rules.clone()), apirule("b", HOST, rules.clone())]}));
    assert!(
        e.contains("APIRule default/b: spec.host: host api.example.com is already used by APIRule default/a"),
        "{e}"
    );
    let e = error_of(json!({"apiRules": [apirule("a", "bad host!", rules)]}));
    assert!(e.contains("spec.host: must be a host name"), "{e}");
}

#[test]
fn v1alpha1_takes_host_from_service() {
    let r = json!({"apiVersion": "gateway.kyma-project.io/v1alpha1", "kind": "APIRule",
        "metadata": {"name": "httpbin"},
        "spec": {"gateway": "kyma-gateway.kyma-system.svc.cluster.local",
                 "service": {"name": "httpbin", "port": 8000, "host": "httpbin.example.com"},
                 "rules": [rule("/.*", &["get", "post"], "noop", None)]}});
    let cfg = try_load(json!({"apiRules": [r.clone()]})).unwrap();
    assert_eq!(cfg.policy.hosts()[0].host, "httpbin.example.com");
    assert_eq!(cfg.policy.access_rules()[0].methods, vec!["GET", "POST"]);
    let mut no_host = r;
    no_host["spec"]["service"].as_object_mut().unwrap().remove("host");
    assert!(error_of(json!({"apiRules": [no_host]})).contains("spec.service.host: is required"));
}

#[test]
fn v1beta1_methods_are_the_crd_enum() {
    let e = error_for(json!([rule("/.*", &["FETCH"], "noop", None)]));
    assert!(e.contains("spec.rules[0].methods[0]: FETCH is not one of"), "{e}");
}

#[test]
fn plugin_options() {
    let rules = json!([rule("/.*", &["GET"], "jwt", Some(jwt_config(json!({}))))]);
    let ok = json!({"apiRules": [apirule("a", HOST, rules.clone())],
        "jwks": {"clusters": {JWKS_URL: "idp"}, "cacheTtlSeconds": 60, "fetchTimeoutMs": 500,
                 "maxStaleSeconds": 120, "minRefetchSeconds": 5, "maxWaitMs": 250,
                 "minCacheTtlSeconds": 10, "maxCacheTtlSeconds": 600},
        "clockSkewSeconds": 10});
    let cfg = try_load(ok).unwrap();
    assert_eq!(cfg.jwks[JWKS_URL].cluster, "idp");
    assert_eq!(cfg.cache.ttl_ms, 60_000);
    assert_eq!(cfg.cache.fetch_timeout_ms, 500);
    assert_eq!((cfg.cache.max_wait_ms, cfg.cache.min_ttl_ms, cfg.cache.max_ttl_ms), (250, 10_000, 600_000));
    assert_eq!((cfg.cache.max_stale_ms, cfg.cache.min_refetch_ms), (120_000, 5_000));
    let defaults = try_load(json!({"apiRules": [apirule("a", HOST, rules.clone())]})).unwrap().cache;
    assert_eq!(defaults, apirule_wasm::keys::CacheSettings::default());
    assert_eq!((defaults.max_wait_ms, defaults.fetch_timeout_ms, defaults.min_refetch_ms), (1_000, 10_000, 10_000));
    let bounds = json!({"minCacheTtlSeconds": 700, "maxCacheTtlSeconds": 600});
    let e = error_of(json!({"apiRules": [apirule("a", HOST, rules.clone())], "jwks": bounds}));
    assert!(e.contains("jwks.minCacheTtlSeconds: must not be above maxCacheTtlSeconds"), "{e}");
    let e = error_of(json!({"apiRules": [apirule("a", HOST, rules.clone())], "jwks": {"maxWaitMs": 60_001}}));
    assert!(e.contains("jwks.maxWaitMs: must be an integer from 0 to 60000"), "{e}");
    assert_eq!(cfg.policy.clock_skew_secs, 10);
    let e = error_of(
        json!({"apiRules": [apirule("a", HOST, rules.clone())], "jwks": {"clusters": {"https://typo/keys": "idp"}}}),
    );
    assert!(e.contains("jwks.clusters: https://typo/keys is not a jwks_urls entry"), "{e}");
    let e = error_of(json!({"apiRules": [apirule("a", HOST, rules.clone())], "clockSkew": 3}));
    assert!(e.contains("plugin configuration: clockSkew: unknown field"), "{e}");
    let e = error_of(json!({"apiRules": [apirule("a", HOST, rules)], "jwks": {"fetchTimeoutMs": 0}}));
    assert!(e.contains("jwks.fetchTimeoutMs: must be an integer from 10 to 60000"), "{e}");
    assert!(error_of(json!({"apiRules": []})).contains("apiRules: must list at least one APIRule"));
    assert!(error_of(json!({})).contains("apiRules: is required"));
    assert!(error_of(json!([1])).contains("must be an object"));
    assert!(error_of(json!("x")).contains("must be an object"));
}

#[test]
fn default_cluster_is_istios_service_entry_name() {
    let urls = [
        ("https://idp.example.com/keys", "outbound|443||idp.example.com", "idp.example.com", "/keys"),
        ("http://idp.example.com/keys?x=1", "outbound|80||idp.example.com", "idp.example.com", "/keys?x=1"),
        ("http://idp.example.com:8080", "outbound|8080||idp.example.com", "idp.example.com:8080", "/"),
    ];
    for (url, cluster, authority, path) in urls {
        let rules = json!([rule("/.*", &["GET"], "jwt", Some(json!({"jwks_urls": [url]})))]);
        let cfg = load(vec![apirule("a", HOST, rules)]);
        let e = &cfg.jwks[url];
        assert_eq!((e.cluster.as_str(), e.authority.as_str(), e.path.as_str()), (cluster, authority, path));
    }
}

#[test]
fn not_json() {
    assert!(apirule_wasm::config::parse(b"{nope").unwrap_err().to_string().contains("is not valid JSON"));
    assert!(apirule_wasm::config::parse(b"").is_err());
}
