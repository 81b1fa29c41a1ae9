//! Claims of README.md and docs/behaviour.md that no other test proved (docs/claims.md lists every
//! claim with its test). Each test names the section it proves and asserts the one documented
//! answer.

mod common;

use std::rc::Rc;

use apirule_wasm::calls::{Answer, Answers};
use apirule_wasm::jwt::cache::VerifiedTokens;
use apirule_wasm::policy::Decision;
use apirule_wasm::request::Request;
use common::*;
use serde_json::{json, Value};

fn error_of(plugin: Value) -> String {
    match try_load(plugin) {
        Ok(_) => panic!("configuration was accepted"),
        Err(e) => e.to_string(),
    }
}

fn set_headers(d: &Decision) -> Vec<(String, String)> {
    match d {
        Decision::Allow { set_headers, .. } => set_headers.clone(),
        other => panic!("not allowed: {other:?}"),
    }
}

fn v2_on(host: &str, rules: Value) -> Value {
    v2_apirule("two", host, rules)
}

fn v2_status(rules: Value, req: &Request) -> u16 {
    let cfg = load(vec![v2_on(HOST, rules)]);
    status(&decide_refetching(&cfg.policy, req, NOW_MS, &mut default_cache(), &default_jwks()))
}

// ---- behaviour.md, "Handlers": rule validation (§1.5) ----

#[test]
fn a_v1_apirule_needs_a_rule_and_each_rule_an_access_strategy() {
    let e = error_of(json!({"apiRules": [apirule("a", HOST, json!([]))]}));
    assert_eq!(e, "APIRule default/a: spec.rules: must have at least one rule");
    let e = error_of(
        json!({"apiRules": [apirule("a", HOST, json!([{"path": "/.*", "methods": ["GET"], "accessStrategies": []}]))]}),
    );
    assert_eq!(e, "APIRule default/a: spec.rules[0].accessStrategies: must have at least one access strategy");
}

// ---- behaviour.md, "Two stages": the access-rule stage compares methods case-insensitively ----

#[test]
fn access_rules_compare_methods_case_insensitively() {
    let cfg = load(vec![apirule("a", HOST, json!([rule("/.*", &["GET"], "noop", None)]))]);
    for method in ["GET", "get", "Get"] {
        assert_eq!(status(&cfg.policy.decide(&Request::new(method, HOST, "/x"), NOW_MS, &default_cache())), 200);
    }
    assert_eq!(status(&cfg.policy.decide(&Request::new("POST", HOST, "/x"), NOW_MS, &default_cache())), 404);
}

// ---- behaviour.md, "Introspection": defaults and the cache's bounds ----

const INTROSPECT: &str = "http://idp.example.com/introspect";

fn introspection_rule(config: Value) -> apirule_wasm::config::Config {
    let mut c = json!({"introspection_url": INTROSPECT});
    for (k, v) in config.as_object().unwrap() {
        c[k] = v.clone();
    }
    load(vec![apirule("intro", HOST, json!([rule("/.*", &["GET"], "oauth2_introspection", Some(c))]))])
}

fn introspect(cfg: &apirule_wasm::config::Config, answer: Option<Value>, kept: &mut Answers, now_ms: u64) -> u16 {
    if let Some(a) = answer {
        kept.fresh =
            vec![((INTROSPECT.to_owned(), "opaque".to_owned()), Answer::Ok(Rc::new(a.as_object().cloned().unwrap())))];
    }
    let req = bearer(get("/x"), "opaque");
    let d = cfg.policy.decide_with(&req, now_ms, &default_cache(), &mut VerifiedTokens::disabled(), kept);
    kept.fresh.clear();
    status(&d)
}

#[test]
fn introspection_defaults_exact_scopes_one_second_and_istios_cluster_name() {
    // scope_strategy defaults to exact: `a` does not grant `a.b` (hierarchic would), `a.*` not `a.b`
    // (wildcard would).
    let cfg = introspection_rule(json!({"required_scope": ["a.b"]}));
    for scope in ["a", "a.*"] {
        let answer = json!({"active": true, "sub": "s", "scope": scope});
        assert_eq!(introspect(&cfg, Some(answer), &mut Answers::default(), NOW_MS), 403, "{scope}");
    }
    let answer = json!({"active": true, "sub": "s", "scope": "x a.b"});
    assert_eq!(introspect(&cfg, Some(answer), &mut Answers::default(), NOW_MS), 200);
    // The call's timeout: 1 s, or retry.give_up_after; the cluster: Istio's name for the URL.
    let (endpoint, timeout_ms) = &cfg.introspection[INTROSPECT];
    assert_eq!((endpoint.cluster.as_str(), *timeout_ms), ("outbound|80||idp.example.com", 1000));
    let cfg = introspection_rule(json!({"retry": {"give_up_after": "250ms"}}));
    assert_eq!(cfg.introspection[INTROSPECT].1, 250);
}

#[test]
fn introspection_cache_keeps_answers_60_s_by_default_at_most_an_hour_never_past_exp() {
    let good = |exp: u64| json!({"active": true, "sub": "s", "exp": exp});
    // Default TTL 60 s (the token lives longer).
    let cfg = introspection_rule(json!({"cache": {"enabled": true}}));
    let mut kept = Answers::default();
    assert_eq!(introspect(&cfg, Some(good(NOW_SECS + 7200)), &mut kept, NOW_MS), 200);
    assert!(kept.get(INTROSPECT, "opaque", NOW_MS + 59_999).is_some());
    assert!(kept.get(INTROSPECT, "opaque", NOW_MS + 60_000).is_none());
    // A TTL over an hour is an hour.
    let cfg = introspection_rule(json!({"cache": {"enabled": true, "ttl": "2h"}}));
    let mut kept = Answers::default();
    assert_eq!(introspect(&cfg, Some(good(NOW_SECS + 86_400)), &mut kept, NOW_MS), 200);
    assert!(kept.get(INTROSPECT, "opaque", NOW_MS + 3_599_999).is_some());
    assert!(kept.get(INTROSPECT, "opaque", NOW_MS + 3_600_000).is_none());
    // Never past the token's exp.
    let cfg = introspection_rule(json!({"cache": {"enabled": true, "ttl": "10m"}}));
    let mut kept = Answers::default();
    assert_eq!(introspect(&cfg, Some(good(NOW_SECS + 10)), &mut kept, NOW_MS), 200);
    assert!(kept.get(INTROSPECT, "opaque", NOW_MS + 9_999).is_some());
    assert!(kept.get(INTROSPECT, "opaque", NOW_MS + 10_000).is_none());
}

#[test]
fn at_most_4096_introspection_answers_per_worker() {
    let mut kept = Answers::default();
    let answer = Answer::Ok(Rc::new(serde_json::Map::new()));
    for i in 0..5000 {
        kept.keep(INTROSPECT, &format!("t{i}"), answer.clone(), NOW_MS + 60_000, NOW_MS);
        assert!(kept.len() <= 4096, "{} answers kept", kept.len());
    }
    assert_eq!(apirule_wasm::calls::MAX_KEPT, 4096);
}

// ---- behaviour.md, "Mutators" ----

#[test]
fn mutators_do_nothing_on_allow_and_no_auth_rules() {
    for handler in ["allow", "no_auth"] {
        let mut r = rule("/.*", &["GET"], handler, None);
        r["mutators"] = json!([{"handler": "header", "config": {"headers": {"X-A": "set"}}},
                               {"handler": "cookie", "config": {"cookies": {"c": "set"}}}]);
        let cfg = load(vec![apirule("a", HOST, json!([r]))]);
        let set = set_headers(&cfg.policy.decide(&get("/x"), NOW_MS, &default_cache()));
        assert!(!set.iter().any(|(k, _)| k == "x-a" || k == "cookie"), "{handler}: {set:?}");
    }
}

fn mutated(mutators: Value, claims: Value) -> Vec<(String, String)> {
    let mut r = rule("/.*", &["GET"], "jwt", Some(jwt_config(json!({}))));
    r["mutators"] = mutators;
    let cfg = load(vec![apirule("a", HOST, json!([r]))]);
    set_headers(&cfg.policy.decide(&bearer(get("/x"), &rs256(claims)), NOW_MS, &default_cache()))
}

#[test]
fn cookie_values_are_sanitised_as_go_does() {
    let mut claims = good_claims();
    // Bytes Go's net/http drops from a cookie value (`"`, `;`, `\`, controls), and a comma that
    // makes it quoted.
    claims["v"] = json!("a\"b;c\\d\u{1}e,f");
    let set = mutated(json!([{"handler": "cookie", "config": {"cookies": {"v": "{{ print .Extra.v }}"}}}]), claims);
    assert!(set.contains(&("cookie".into(), "v=\"abcde,f\"".into())), "{set:?}");
    let set =
        mutated(json!([{"handler": "header", "config": {"headers": {"X-Bare": "{{ .Subject }}"}}}]), good_claims());
    assert!(set.contains(&("x-bare".into(), "user-1".into())), "without print: {set:?}");
}

/// Go's text/template: `{{-` trims the white space before the action, `-}}` the white space after
/// it, so Oathkeeper rendered `a {{- print .Subject -}} b` as `auser-1b`.
#[test]
fn trim_markers_trim_as_go_does() {
    let set = mutated(
        json!([{"handler": "header", "config": {"headers": {"X-Trim": "a {{- print .Subject -}} b", "X-Left": "a  {{- .Subject }} b", "X-Right": "a {{ .Subject -}}\n b"}}}]),
        good_claims(),
    );
    assert!(set.contains(&("x-trim".into(), "auser-1b".into())), "{set:?}");
    assert!(set.contains(&("x-left".into(), "auser-1 b".into())), "{set:?}");
    assert!(set.contains(&("x-right".into(), "a user-1b".into())), "{set:?}");
}

// ---- behaviour.md, "JWT": the 16 KiB limit ----

#[test]
fn tokens_over_16_kib_deny() {
    let cfg = load(vec![apirule("a", HOST, json!([rule("/.*", &["GET"], "jwt", Some(jwt_config(json!({}))))]))]);
    let with_pad = |n: usize| {
        let mut c = good_claims();
        c["pad"] = json!("x".repeat(n));
        rs256(c)
    };
    // Find the pad that makes the token exactly 16384 bytes long (base64 grows in steps of 4/3).
    let base = with_pad(0).len();
    let mut n = (16_384 - base) * 3 / 4;
    while with_pad(n).len() < 16_384 {
        n += 1;
    }
    while with_pad(n).len() > 16_384 {
        n -= 1;
    }
    let at_limit = with_pad(n);
    assert!(at_limit.len() <= 16_384 && at_limit.len() > 16_370, "{}", at_limit.len());
    let over = with_pad(n + 3);
    assert!(over.len() > 16_384);
    let decide = |t: &str| status(&cfg.policy.decide(&bearer(get("/x"), t), NOW_MS, &default_cache()));
    assert_eq!(decide(&at_limit), 200);
    assert_eq!(decide(&over), 401);
}

// ---- behaviour.md, "Verified-token cache": tokens over 4 KiB are not cached ----

#[test]
fn tokens_over_4_kib_are_verified_every_time() {
    let cfg = load(vec![apirule("a", HOST, json!([rule("/.*", &["GET"], "jwt", Some(jwt_config(json!({}))))]))]);
    let keys = default_cache();
    let token_of = |pad: usize| {
        let mut c = good_claims();
        c["pad"] = json!("x".repeat(pad));
        rs256(c)
    };
    let mut tokens = VerifiedTokens::new(16);
    let small = token_of(100);
    assert_eq!(status(&cfg.policy.decide_cached(&bearer(get("/x"), &small), NOW_MS, &keys, &mut tokens)), 200);
    assert_eq!(tokens.len(), 1);
    let big = token_of(3500);
    assert!(big.len() > 4096);
    assert_eq!(status(&cfg.policy.decide_cached(&bearer(get("/x"), &big), NOW_MS, &keys, &mut tokens)), 200);
    assert_eq!(tokens.len(), 1, "a token over 4 KiB is not remembered");
}

// ---- behaviour.md, "APIRule v2", step 2 (Envoy jwt_authn) ----

#[test]
fn a_workload_without_jwt_rules_ignores_tokens() {
    let rules = json!([{"path": "/{**}", "methods": ["GET"], "noAuth": true}]);
    for token in ["garbage", "a.b.c", &rs256(json!({"iss": "https://nobody.example.com", "exp": 1}))] {
        assert_eq!(v2_status(rules.clone(), &bearer(get("/x"), token)), 200, "{token}");
    }
}

#[test]
fn envoys_extractor_spacing_and_empty_parameters() {
    let rules = json!([{"path": "/{**}", "methods": ["GET"],
                        "jwt": {"authentications": [{"issuer": ISSUER, "jwksUri": JWKS_URL}]}}]);
    let token = rs256(good_claims());
    let with = |value: String| get("/x").with_header("authorization", &value);
    assert_eq!(v2_status(rules.clone(), &with(format!("Bearer {token}"))), 200);
    assert_eq!(v2_status(rules.clone(), &with(format!("Bearer  {token}"))), 200, "two spaces");
    assert_eq!(v2_status(rules.clone(), &with(format!("Bearer {token} x"))), 401, "trailing text");
    assert_eq!(v2_status(rules.clone(), &with(format!("bearer {token}"))), 403, "no token: no principal");
    assert_eq!(v2_status(rules.clone(), &get("/x?access_token=")), 401, "an empty parameter is a bad token");
    assert_eq!(v2_status(rules, &get("/x?other=1")), 403);
}

#[test]
fn a_token_must_come_from_an_issuer_configured_for_its_location() {
    // Issuer A reads X-A, issuer B X-B (same key set): B's token in A's header is refused.
    let other = "https://other-idp.example.com";
    let rules = json!([{"path": "/{**}", "methods": ["GET"], "jwt": {"authentications": [
        {"issuer": ISSUER, "jwksUri": JWKS_URL, "fromHeaders": [{"name": "X-A"}]},
        {"issuer": other, "jwksUri": JWKS_URL, "fromHeaders": [{"name": "X-B"}]}]}}]);
    let mut b_claims = good_claims();
    b_claims["iss"] = json!(other);
    let (a, b) = (rs256(good_claims()), rs256(b_claims));
    assert_eq!(v2_status(rules.clone(), &get("/x").with_header("x-a", &a)), 200);
    assert_eq!(v2_status(rules.clone(), &get("/x").with_header("x-b", &b)), 200);
    assert_eq!(v2_status(rules.clone(), &get("/x").with_header("x-a", &b)), 401);
    assert_eq!(v2_status(rules, &get("/x").with_header("x-b", &a)), 401);
}

#[test]
fn the_authorization_step_compares_the_host_case_insensitively() {
    let rules = json!([{"path": "/{**}", "methods": ["GET"], "noAuth": true}]);
    let upper = HOST.to_ascii_uppercase();
    assert_eq!(v2_status(rules.clone(), &Request::new("GET", &upper, "/x")), 200);
    assert_eq!(v2_status(rules, &Request::new("GET", &format!("{HOST}:443"), "/x")), 403);
}

// ---- README, "Configuration reference": corsPolicy and timeouts are accepted, not enforced ----

#[test]
fn cors_policy_and_timeouts_are_accepted_but_not_enforced() {
    let mut v1 = apirule(
        "one",
        "one.example.com",
        json!([{"path": "/.*", "methods": ["GET"], "timeout": 5,
        "accessStrategies": [{"handler": "noop"}]}]),
    );
    v1["spec"]["corsPolicy"] = json!({"allowOrigins": [{"exact": "https://a.example.com"}], "allowMethods": ["GET"]});
    v1["spec"]["timeout"] = json!(30);
    let mut v2 = v2_on("two.example.com", json!([{"path": "/{**}", "methods": ["GET"], "noAuth": true, "timeout": 5}]));
    v2["spec"]["corsPolicy"] = json!({"allowOrigins": [{"exact": "https://a.example.com"}], "allowMethods": ["GET"]});
    v2["spec"]["timeout"] = json!(30);
    let cfg = load(vec![v1, v2]);
    for host in ["one.example.com", "two.example.com"] {
        let req = Request::new("GET", host, "/x").with_header("origin", "https://evil.example.com");
        let set = set_headers(&cfg.policy.decide(&req, NOW_MS, &default_cache()));
        assert_eq!(set, vec![("x-forwarded-host".to_owned(), host.to_owned())], "{host}");
        // A preflight is no method of the rules: not answered with CORS headers by the filter.
        let preflight = Request::new("OPTIONS", host, "/x")
            .with_header("origin", "https://a.example.com")
            .with_header("access-control-request-method", "GET");
        assert_eq!(status(&cfg.policy.decide(&preflight, NOW_MS, &default_cache())), 404, "{host}");
    }
}

// ---- behaviour.md, "JWKS": v2 rules refetch on an unknown kid too (Envoy would not) ----

#[test]
fn an_unknown_kid_makes_a_v2_rule_wait_for_a_refetch() {
    let cfg = load(vec![v2_on(
        HOST,
        json!([{"path": "/{**}", "methods": ["GET"],
        "jwt": {"authentications": [{"issuer": ISSUER, "jwksUri": JWKS_URL}]}}]),
    )]);
    let rotated = mint(json!({"alg": "RS256", "kid": "k9"}), good_claims(), Signer::Rsa);
    let d = cfg.policy.decide(&bearer(get("/x"), &rotated), NOW_MS, &default_cache());
    assert!(matches!(&d, Decision::NeedKeys { urls } if urls == &vec![JWKS_URL.to_owned()]), "{d:?}");
    // The IdP now serves the key under k9: allowed once the refetch landed.
    let jwks = json!({"keys": [rsa_public_jwk("k9")]});
    let d = decide_refetching(&cfg.policy, &bearer(get("/x"), &rotated), NOW_MS, &mut default_cache(), &jwks);
    assert_eq!(status(&d), 200);
}

// ---- behaviour.md, "APIRule v2", steps 1 and 3: a `.` is any character in the route only ----

#[test]
fn a_dot_is_any_character_for_the_route_and_itself_for_the_policy() {
    let rules = json!([{"path": "/a.b", "methods": ["GET"], "noAuth": true}]);
    assert_eq!(v2_status(rules.clone(), &get("/a.b")), 200);
    // The VirtualService routes /aXb (the regex's `.`), the AuthorizationPolicy's path is literal.
    assert_eq!(v2_status(rules.clone(), &get("/aXb")), 403);
    assert_eq!(v2_status(rules.clone(), &get("/a/b")), 403, "the regex's `.` is any character, `/` too");
    assert_eq!(v2_status(rules, &get("/ab")), 404);
}
