//! v1beta1 APIRules written for Kyma's Istio JWT handler (reference §1.5): jwt rules get Istio's
//! answers (RequestAuthentication + AuthorizationPolicies), the other handlers keep Oathkeeper's.

mod common;

use apirule_wasm::policy::Decision;
use apirule_wasm::request::Request;
use common::*;
use serde_json::{json, Value};

fn istio_jwt(authorizations: Option<Value>) -> Value {
    let mut config = json!({"authentications": [{"issuer": ISSUER, "jwksUri": JWKS_URL}]});
    if let Some(a) = authorizations {
        config["authorizations"] = a;
    }
    json!({"handler": "jwt", "config": config})
}

fn rule_with(path: &str, methods: &[&str], strategies: Value) -> Value {
    json!({"path": path, "methods": methods, "accessStrategies": strategies})
}

fn decide(rules: Value, req: &Request) -> Decision {
    load(vec![apirule("istio-mode", HOST, rules)]).policy.decide(req, NOW_MS, &default_cache())
}

fn answer(rules: Value, req: Request) -> u16 {
    status(&decide(rules, &req))
}

fn with_claims(extra: Value) -> String {
    let mut c = good_claims();
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    rs256(c)
}

#[test]
fn jwt_rules_answer_as_istio() {
    let rules = json!([rule_with("/api", &["GET"], json!([istio_jwt(None)]))]);
    assert_eq!(answer(rules.clone(), get("/api")), 403, "no token: RBAC");
    assert_eq!(answer(rules.clone(), bearer(get("/api"), &with_claims(json!({"exp": NOW_SECS - 3600})))), 401);
    assert_eq!(
        answer(rules.clone(), bearer(get("/api"), &with_claims(json!({"exp": NOW_SECS - 30})))),
        200,
        "60 s skew"
    );
    assert_eq!(answer(rules.clone(), bearer(get("/api"), &rs256(good_claims()))), 200);
    assert_eq!(answer(rules, Request::new("POST", HOST, "/api")), 404);
}

#[test]
fn authorizations_as_in_v2() {
    let rules = json!([rule_with("/api", &["GET"], json!([istio_jwt(Some(json!([{"requiredScopes": ["read"]}])))]))]);
    assert_eq!(answer(rules.clone(), bearer(get("/api"), &with_claims(json!({"scope": "read write"})))), 200);
    assert_eq!(answer(rules, bearer(get("/api"), &with_claims(json!({"scp": "read write"})))), 403);
}

#[test]
fn other_handlers_keep_oathkeepers_answers_and_the_workload_checks_tokens() {
    let rules = json!([
        rule_with("/api", &["GET"], json!([istio_jwt(None)])),
        rule_with("/noop", &["GET"], json!([{"handler": "noop"}])),
        rule_with("/open", &["GET"], json!([{"handler": "no_auth"}])),
        rule_with("/unauth", &["GET"], json!([{"handler": "unauthorized"}])),
    ]);
    assert_eq!(answer(rules.clone(), get("/noop")), 200);
    assert_eq!(answer(rules.clone(), get("/open")), 200);
    let Decision::Deny { response, .. } = decide(rules.clone(), &get("/unauth")) else { panic!("denied") };
    assert_eq!(response.status, 401);
    assert!(String::from_utf8_lossy(&response.body).contains("\"code\":401"), "Oathkeeper's JSON body");
    // The workload's RequestAuthentication sees every request Oathkeeper forwards, too.
    let expired = with_claims(json!({"exp": NOW_SECS - 3600}));
    assert_eq!(answer(rules.clone(), bearer(get("/noop"), &expired)), 401);
    assert_eq!(answer(rules, bearer(get("/open"), &expired)), 401);
}

#[test]
fn policy_paths_are_the_rule_paths_verbatim() {
    // Kyma writes `/.*` as `/*`, every other regex verbatim: Istio reads it literally (a trailing
    // `*` as a prefix), so `/api/.*` admits only paths that start with `/api/.`.
    let rules = json!([
        rule_with("/api/.*", &["GET"], json!([istio_jwt(None)])),
        rule_with("/.*", &["POST"], json!([istio_jwt(None)])),
    ]);
    let token = rs256(good_claims());
    assert_eq!(answer(rules.clone(), bearer(get("/api/.well"), &token)), 200);
    assert_eq!(answer(rules.clone(), bearer(get("/api/x"), &token)), 403);
    assert_eq!(answer(rules, bearer(Request::new("POST", HOST, "/any/thing"), &token)), 200);
}

#[test]
fn jwt_rule_mutators_are_literal_setters() {
    let mut r = rule_with("/api", &["GET"], json!([istio_jwt(None)]));
    r["mutators"] = json!([{"handler": "header", "config": {"headers": {"X-Env": "prod"}}},
                           {"handler": "cookie", "config": {"cookies": {"a": "1"}}}]);
    let Decision::Allow { set_headers, .. } = decide(json!([r]), &bearer(get("/api"), &rs256(good_claims()))) else {
        panic!("allowed")
    };
    assert!(set_headers.contains(&("x-env".into(), "prod".into())));
    assert!(set_headers.contains(&("cookie".into(), "a=1".into())));
}

#[test]
fn istio_mode_validation() {
    let err =
        |rules: Value| try_load(json!({"apiRules": [apirule("istio-mode", HOST, rules)]})).unwrap_err().to_string();
    let mut mixed = istio_jwt(None);
    mixed["config"]["jwks_urls"] = json!([JWKS_URL]);
    assert!(err(json!([rule_with("/a", &["GET"], json!([mixed]))]))
        .contains("jwks_urls is not supported with Istio handler"));
    let two = json!([istio_jwt(None), {"handler": "noop"}]);
    assert!(err(json!([rule_with("/a", &["GET"], two)])).contains("cannot be combined"));
    let mut m = rule_with("/a", &["GET"], json!([istio_jwt(None)]));
    m["mutators"] = json!([{"handler": "id_token", "config": {}}]);
    assert!(err(json!([m])).contains("unsupported mutator: id_token"));
    let empty = json!({"handler": "jwt", "config": {"authentications": []}});
    assert!(err(json!([rule_with("/a", &["GET"], json!([empty]))])).contains("at least one authentication"));
}
