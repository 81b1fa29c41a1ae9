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

// ---- "Unknown fields anywhere are refused" (README, "Configuration reference") ----

/// A plugin configuration that uses every object the filter reads: a v1alpha1, a v1beta1 (ory
/// mode: jwt with mutators, introspection), a v1beta1 in Istio JWT mode and a v2 APIRule (jwt,
/// extAuth with restrictions, request setters, CORS), and every plugin option.
fn everything() -> Value {
    let v1alpha1 = json!({"apiVersion": "gateway.kyma-project.io/v1alpha1", "kind": "APIRule",
        "metadata": {"name": "alpha", "namespace": "default"},
        "spec": {"gateway": "kyma-gateway.kyma-system.svc.cluster.local",
                 "service": {"name": "httpbin", "port": 8000, "host": "alpha.example.com"},
                 "rules": [{"path": "/.*", "methods": ["GET"], "accessStrategies": [{"handler": "noop"}],
                            "mutators": [{"handler": "header", "config": {"headers": {"X-A": "a"}}}]}]}});
    let mut v1beta1 = apirule(
        "beta",
        "beta.example.com",
        json!([
            {"path": "/jwt", "methods": ["GET"], "service": {"name": "other", "port": 80, "namespace": "default"},
             "timeout": 10,
             "accessStrategies": [{"handler": "jwt", "config": jwt_config(json!({"token_from": {"header": "X-T"}}))}],
             "mutators": [{"handler": "header", "config": {"headers": {"X-Sub": "{{ print .Subject }}"}}},
                          {"handler": "cookie", "config": {"cookies": {"c": "x"}}}, {"handler": "noop"}]},
            {"path": "/in", "methods": ["GET"], "accessStrategies": [{"handler": "oauth2_introspection", "config": {
                "introspection_url": "http://idp/i", "retry": {"give_up_after": "1s"},
                "cache": {"enabled": true, "ttl": "1m"}, "token_from": {"cookie": "c"},
                "introspection_request_headers": {"X-Key": "k"}, "pre_authorization": {"enabled": false}}}]}
        ]),
    );
    v1beta1["spec"]["timeout"] = json!(20);
    v1beta1["spec"]["corsPolicy"] = json!({"allowOrigins": [{"regex": ".*"}], "allowMethods": ["GET"]});
    let istio = apirule(
        "istio",
        "istio.example.com",
        json!([
            {"path": "/a", "methods": ["GET"], "accessStrategies": [{"handler": "jwt", "config": {
                "authentications": [{"issuer": ISSUER, "jwksUri": JWKS_URL, "fromHeaders": [{"name": "X-T", "prefix": "B "}]}],
                "authorizations": [{"requiredScopes": ["read"], "audiences": ["api"]}]}}],
             "mutators": [{"handler": "header", "config": {"headers": {"X-A": "a"}}}]}
        ]),
    );
    let v2 = json!({"apiVersion": "gateway.kyma-project.io/v2", "kind": "APIRule",
        "metadata": {"name": "two", "namespace": "default"},
        "spec": {"hosts": ["two.example.com"], "gateway": "kyma-system/kyma-gateway", "timeout": 30,
                 "service": {"name": "httpbin", "namespace": "default", "port": 8000},
                 "corsPolicy": {"allowOrigins": [{"exact": "https://a.example.com"}], "allowMethods": ["GET"]},
                 "rules": [
                    {"path": "/jwt", "methods": ["GET"], "timeout": 5, "service": {"name": "other", "port": 80},
                     "jwt": {"authentications": [{"issuer": ISSUER, "jwksUri": JWKS_URL, "fromParams": ["t"]}],
                             "authorizations": [{"requiredScopes": ["read"], "audiences": ["api"]}]},
                     "request": {"headers": {"X-A": "a"}, "cookies": {"c": "d"}}},
                    {"path": "/ext", "methods": ["GET"], "extAuth": {"authorizers": ["ea"], "restrictions": {
                        "authentications": [{"issuer": "https://other.example.com", "jwksUri": JWKS_URL}],
                        "authorizations": [{"audiences": ["api"]}]}}},
                    {"path": "/open", "methods": ["GET"], "noAuth": true}]}});
    json!({"apiRules": [v1alpha1, v1beta1, istio, v2],
           "jwks": {"clusters": {JWKS_URL: "idp"}, "cacheTtlSeconds": 60, "minCacheTtlSeconds": 10,
                    "maxCacheTtlSeconds": 600, "maxStaleSeconds": 60, "minRefetchSeconds": 5, "maxWaitMs": 500,
                    "fetchTimeoutMs": 1000},
           "tokenCache": {"maxEntries": 10}, "introspection": {"clusters": {"http://idp/i": "idp"}},
           "extAuth": {"providers": {"ea": {"cluster": "authz", "authority": "a", "pathPrefix": "/check",
               "timeoutMs": 500, "includeRequestHeadersInCheck": ["x"], "headersToUpstreamOnAllow": ["y"],
               "headersToDownstreamOnDeny": ["z"]}}},
           "paths": {"escapedSlashes": "reject"}, "clockSkewSeconds": 5, "defaultDomain": "example.com"})
}

/// Objects whose members are names the user chooses (headers, cookies, URLs, providers) or that
/// belong to Kubernetes (`metadata`): any member is allowed there.
fn is_name_map(path: &str) -> bool {
    ["headers", "cookies", "introspection_request_headers", "clusters", "providers", "metadata"]
        .iter()
        .any(|m| path == *m || path.ends_with(&format!(".{m}")))
        || path.contains("metadata")
}

/// Every object of `value` with the JSON path the filter's errors use for it: (pointer, resource,
/// path). Members of `apiRules[i]` are reported relative to their APIRule.
fn objects(value: &Value, pointer: String, resource: &str, path: String, out: &mut Vec<(String, String, String)>) {
    match value {
        Value::Object(map) => {
            out.push((pointer.clone(), resource.to_owned(), path.clone()));
            for (k, v) in map {
                let child = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                objects(v, format!("{pointer}/{k}"), resource, child, out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                if pointer.is_empty() || pointer == "/apiRules" {
                    let name = v["metadata"]["name"].as_str().unwrap();
                    objects(v, format!("/apiRules/{i}"), &format!("APIRule default/{name}"), String::new(), out);
                } else {
                    objects(v, format!("{pointer}/{i}"), resource, format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

/// The error each object gives with a member `zzUnknown` added, or None when it loads.
fn with_unknown_member(skip: impl Fn(&str, &str) -> bool) -> Vec<(String, Option<String>)> {
    let base = everything();
    try_load(base.clone()).unwrap();
    let mut found = Vec::new();
    objects(&base, String::new(), "plugin configuration", String::new(), &mut found);
    let mut out = Vec::new();
    for (pointer, resource, path) in found {
        if pointer.is_empty() && resource != "plugin configuration" || is_name_map(&path) || skip(&resource, &path) {
            continue;
        }
        let mut doc = base.clone();
        doc.pointer_mut(&pointer).unwrap().as_object_mut().unwrap().insert("zzUnknown".into(), json!(1));
        let field = if path.is_empty() { "zzUnknown".to_owned() } else { format!("{path}.zzUnknown") };
        let want = format!("{resource}: {field}: unknown field");
        let got = match try_load(doc) {
            Ok(_) => Some("loaded".to_owned()),
            Err(e) => Some(e.to_string()).filter(|e| !e.starts_with(&want)),
        };
        out.push((want, got));
    }
    out
}

#[test]
fn unknown_fields_are_refused_at_every_level() {
    let results = with_unknown_member(|_, _| false);
    assert!(results.len() >= 55, "only {} objects tried", results.len());
    let wrong: Vec<_> = results.iter().filter(|(_, got)| got.is_some()).collect();
    assert!(wrong.is_empty(), "{wrong:#?}");
    // A resource exported from a cluster carries `status`: Kubernetes' business, not refused.
    let mut exported = everything();
    for i in 0..4 {
        exported["apiRules"][i]["status"] = json!({"state": "Ready", "lastProcessedTime": "2026-01-01T00:00:00Z"});
    }
    assert!(try_load(exported).is_ok());
    // Results list every object the walk found: the APIRules' spec levels of v2 among them.
    for want in [
        "plugin configuration: zzUnknown: unknown field",
        "plugin configuration: jwks.zzUnknown: unknown field",
        "plugin configuration: extAuth.providers.ea.zzUnknown: unknown field",
        "APIRule default/alpha: spec.rules[0].mutators[0].zzUnknown: unknown field",
        "APIRule default/beta: spec.rules[0].accessStrategies[0].config.token_from.zzUnknown: unknown field",
        "APIRule default/beta: spec.rules[1].accessStrategies[0].config.retry.zzUnknown: unknown field",
        "APIRule default/istio: spec.rules[0].accessStrategies[0].config.authentications[0].fromHeaders[0].zzUnknown: unknown field",
        "APIRule default/two: spec.zzUnknown: unknown field",
        "APIRule default/two: spec.service.zzUnknown: unknown field",
        "APIRule default/two: spec.rules[1].extAuth.restrictions.authorizations[0].zzUnknown: unknown field",
    ] {
        assert!(results.iter().any(|(w, _)| w == want), "{want} not tried");
    }
}

/// The levels once found unchecked (an APIRule's top level, v1 `spec`, `spec.service`,
/// `spec.corsPolicy` and its origins, a rule's `service`, `pre_authorization`, v2 origins) are in
/// the walk above; here what differs between versions.
#[test]
fn unknown_fields_are_refused_per_version() {
    let results = with_unknown_member(|_, _| false);
    for want in [
        "APIRule default/alpha: zzUnknown: unknown field",
        "APIRule default/alpha: spec.zzUnknown: unknown field",
        "APIRule default/alpha: spec.service.zzUnknown: unknown field",
        "APIRule default/beta: spec.corsPolicy.zzUnknown: unknown field",
        "APIRule default/beta: spec.corsPolicy.allowOrigins[0].zzUnknown: unknown field",
        "APIRule default/two: spec.corsPolicy.allowOrigins[0].zzUnknown: unknown field",
    ] {
        assert!(results.iter().any(|(w, got)| w == want && got.is_none()), "{want}: {results:#?}");
    }
    // An origin is one StringMatch: not two, not none, a string.
    for origin in [json!({}), json!({"exact": "https://a", "prefix": "https://b"}), json!({"regex": 5})] {
        let mut doc = everything();
        doc["apiRules"][3]["spec"]["corsPolicy"]["allowOrigins"] = json!([origin]);
        assert!(try_load(doc).is_err(), "{origin} loaded");
    }
    // v1alpha1 rules have no `service` or `timeout` (those came with v1beta1).
    for key in ["service", "timeout"] {
        let mut doc = everything();
        doc["apiRules"][0]["spec"]["rules"][0][key] =
            if key == "service" { json!({"name": "x", "port": 80}) } else { json!(5) };
        let e = try_load(doc).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.starts_with(&format!("APIRule default/alpha: spec.rules[0].{key}: unknown field")), "{key}: {e:?}");
    }
}

/// README, "Configuration reference": every numeric plugin option's documented range (both ends
/// load, one beyond is refused with the range) and default (what a configuration without it gets).
#[test]
fn plugin_options_have_the_documented_ranges_and_defaults() {
    use apirule_wasm::config::Config;
    use apirule_wasm::request::path::EscapedSlashes;
    type Read = fn(&Config) -> u64;
    let rules = json!([rule("/.*", &["GET"], "jwt", Some(jwt_config(json!({}))))]);
    let plugin = |option: &str, value: Value| {
        let mut p = json!({"apiRules": [apirule("a", HOST, rules.clone())]});
        let mut at = &mut p;
        let keys: Vec<&str> = option.split('.').collect();
        for k in &keys[..keys.len() - 1] {
            at = at.as_object_mut().unwrap().entry(*k).or_insert(json!({}));
        }
        at[keys[keys.len() - 1]] = value;
        p
    };
    let table: [(&str, u64, u64, u64, Read); 9] = [
        ("clockSkewSeconds", 0, 300, 0, |c| c.policy.clock_skew_secs as u64),
        ("jwks.cacheTtlSeconds", 1, 86_400, 300, |c| c.cache.ttl_ms / 1000),
        ("jwks.minCacheTtlSeconds", 1, 3600, 30, |c| c.cache.min_ttl_ms / 1000),
        ("jwks.maxCacheTtlSeconds", 30, 86_400, 3600, |c| c.cache.max_ttl_ms / 1000),
        ("jwks.maxStaleSeconds", 0, 604_800, 3600, |c| c.cache.max_stale_ms / 1000),
        ("jwks.minRefetchSeconds", 0, 3600, 10, |c| c.cache.min_refetch_ms / 1000),
        ("tokenCache.maxEntries", 0, 100_000, 1024, |c| c.token_cache_entries as u64),
        ("jwks.maxWaitMs", 0, 60_000, 1000, |c| c.cache.max_wait_ms),
        ("jwks.fetchTimeoutMs", 10, 60_000, 10_000, |c| c.cache.fetch_timeout_ms),
    ];
    let defaults = try_load(json!({"apiRules": [apirule("a", HOST, rules.clone())]})).unwrap();
    for (option, min, max, default, read) in table {
        assert_eq!(read(&defaults), default, "{option} default");
        for n in [min, max] {
            assert_eq!(read(&try_load(plugin(option, json!(n))).unwrap()), n, "{option} = {n}");
        }
        // minCacheTtlSeconds and maxCacheTtlSeconds are each 1-86400, alone further bounded by the
        // other's default (a minimum above the maximum is refused: plugin_options).
        let (low, high) = match option {
            "jwks.minCacheTtlSeconds" | "jwks.maxCacheTtlSeconds" => (1, 86_400),
            _ => (min, max),
        };
        let mut beyond = vec![json!(high + 1), json!(-1), json!(1.5), json!("10")];
        if low > 0 {
            beyond.push(json!(low - 1));
        }
        for v in beyond {
            let e = error_of(plugin(option, v.clone()));
            assert!(e.contains(&format!("{option}: must be an integer from {low} to {high}")), "{option} = {v}: {e}");
        }
    }
    assert_eq!(defaults.policy.escaped_slashes, EscapedSlashes::Reject, "paths.escapedSlashes default");
    assert!(defaults.jwks.values().all(|e| e.cluster == "outbound|443||idp.example.com"), "jwks.clusters default {{}}");
    assert!(defaults.introspection.is_empty() && defaults.ext_authz.is_empty());
    // extAuth.providers.<name>.timeoutMs: 1000 by default.
    let with_provider = json!({"apiRules": [apirule("a", HOST, rules.clone())],
        "extAuth": {"providers": {"p": {"cluster": "authz"}}}});
    assert_eq!(try_load(with_provider).unwrap().ext_authz["p"].timeout_ms, 1000);
}
