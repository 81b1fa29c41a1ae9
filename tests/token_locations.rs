//! A token location with more than one value (a custom token header sent twice, the token query
//! parameter or cookie named twice) is refused as an invalid token, through the whole decision:
//! 401 for v1 (Oathkeeper's JSON) and for v2 (Envoy's `text/plain`), whatever the values, so the
//! backend can never read a value the filter did not verify (docs/security.md, "Tokens and keys").

mod common;

use apirule_wasm::jwt::envoy::REPEATED_REASON;
use apirule_wasm::policy::Decision;
use apirule_wasm::request::Request;
use common::*;
use serde_json::{json, Value};

fn valid() -> String {
    rs256(good_claims())
}

/// A token of the same shape whose signature is garbage.
fn forged() -> String {
    let t = rs256(json!({"iss": ISSUER, "sub": "admin", "exp": NOW_SECS + 3600}));
    let (signed, _) = t.rsplit_once('.').unwrap();
    format!("{signed}.AAAA")
}

/// The value pairs a location is given twice: two valid tokens, a valid and a forged one in both
/// orders, an empty value beside a valid token in both orders, two empty values.
fn pairs() -> Vec<(String, String)> {
    let (v, f) = (valid(), forged());
    vec![
        (v.clone(), v.clone()),
        (v.clone(), f.clone()),
        (f, v.clone()),
        (String::new(), v.clone()),
        (v, String::new()),
        (String::new(), String::new()),
    ]
}

fn v1(token_from: Value) -> Value {
    apirule(
        "httpbin",
        HOST,
        json!([rule("/api", &["GET"], "jwt", Some(jwt_config(json!({"token_from": token_from}))))]),
    )
}

fn v2(authentication: Value) -> Value {
    let mut a = json!({"issuer": ISSUER, "jwksUri": JWKS_URL});
    for (k, v) in authentication.as_object().unwrap() {
        a[k] = v.clone();
    }
    v2_apirule("httpbin", HOST, json!([{"path": "/api", "methods": ["GET"], "jwt": {"authentications": [a]}}]))
}

fn decide(apirule: Value, req: &Request) -> Decision {
    let cfg = load(vec![apirule]);
    decide_refetching(&cfg.policy, req, NOW_MS, &mut default_cache(), &default_jwks())
}

/// Where a test puts a value: one header, one query parameter, one cookie.
#[derive(Clone, Copy)]
enum At {
    Header(&'static str, &'static str),
    Query(&'static str),
    Cookie(&'static str),
}

fn request(at: At, values: &[&str]) -> Request {
    match at {
        At::Header(name, prefix) => {
            values.iter().fold(get("/api"), |r, v| r.with_header(name, &format!("{prefix}{v}")))
        }
        At::Query(name) => {
            let query: Vec<String> = values.iter().map(|v| format!("{name}={v}")).collect();
            get(&format!("/api?{}", query.join("&")))
        }
        At::Cookie(name) => {
            let cookies: Vec<String> = values.iter().map(|v| format!("{name}={v}")).collect();
            get("/api").with_header("cookie", &cookies.join("; "))
        }
    }
}

/// One valid value is allowed (so the location is the one the rule reads), two values of any
/// kind are 401.
fn check(name: &str, apirule: Value, at: At, v2_reason: bool) {
    let one = decide(apirule.clone(), &request(at, &[&valid()]));
    assert_eq!(status(&one), 200, "{name}: one valid token");
    for (a, b) in pairs() {
        let d = decide(apirule.clone(), &request(at, &[&a, &b]));
        assert_eq!(status(&d), 401, "{name}: {a:?} and {b:?}");
        let Decision::Deny { reason, response, .. } = &d else { unreachable!() };
        if v2_reason {
            assert_eq!(reason, REPEATED_REASON, "{name}");
            assert_eq!(String::from_utf8_lossy(&response.body), REPEATED_REASON, "{name}: Envoy-style body");
        } else {
            assert_eq!(reason, "more than one value at the token location", "{name}");
            assert!(response.headers.iter().any(|(k, v)| k == "www-authenticate" && v.contains("invalid_token")));
        }
    }
}

#[test]
fn v1_custom_header_twice_is_401() {
    check("v1 header", v1(json!({"header": "X-Token"})), At::Header("x-token", ""), false);
    // However the name is spelled on the wire.
    let req = get("/api").with_header("X-Token", &valid()).with_header("x-token", &valid());
    assert_eq!(status(&decide(v1(json!({"header": "X-Token"})), &req)), 401);
}

#[test]
fn v1_query_parameter_twice_is_401() {
    check("v1 query", v1(json!({"query_parameter": "t"})), At::Query("t"), false);
    // Also when one of the names is percent-encoded, or a value does not decode (Go's ParseQuery
    // skipped such a pair, and the other one would have been read).
    let t = valid();
    let rule = v1(json!({"query_parameter": "t"}));
    for path in [format!("/api?t={t}&%74={t}"), format!("/api?t=%zz&t={t}"), format!("/api?t&t={t}")] {
        assert_eq!(status(&decide(rule.clone(), &get(&path))), 401, "{path}");
    }
    // Other parameters do not count.
    assert_eq!(status(&decide(rule, &get(&format!("/api?a=1&t={t}&b=2&tt=3")))), 200);
}

#[test]
fn v1_cookie_twice_is_401() {
    check("v1 cookie", v1(json!({"cookie": "c"})), At::Cookie("c"), false);
    // In two Cookie headers as well.
    let req = get("/api").with_header("cookie", &format!("c={}", valid())).with_header("cookie", "c=x");
    assert_eq!(status(&decide(v1(json!({"cookie": "c"})), &req)), 401);
}

#[test]
fn v1_a_second_value_no_longer_falls_through_to_the_next_authenticator() {
    // Before, `?t=&t=<forged>` read the empty first value: no token, so the first jwt
    // authenticator was not responsible, the second one verified the Authorization token, and
    // the forged token went on to the backend in `t`.
    let strategies = json!([
        {"handler": "jwt", "config": jwt_config(json!({"token_from": {"query_parameter": "t"}}))},
        {"handler": "jwt", "config": jwt_config(json!({}))}
    ]);
    let rule = apirule("httpbin", HOST, json!([{"path": "/api", "methods": ["GET"], "accessStrategies": strategies}]));
    assert_eq!(status(&decide(rule.clone(), &bearer(get("/api"), &valid()))), 200, "no t: the second one");
    let twice = bearer(get(&format!("/api?t=&t={}", forged())), &valid());
    assert_eq!(status(&decide(rule.clone(), &twice)), 401);
    let twice = bearer(get(&format!("/api?t={}&t=", valid())), &valid());
    assert_eq!(status(&decide(rule, &twice)), 401);
}

#[test]
fn v1_introspection_token_location_twice_is_401() {
    let config =
        json!({"introspection_url": "https://idp.example.com/introspect", "token_from": {"header": "X-Token"}});
    let rule = apirule("httpbin", HOST, json!([rule("/api", &["GET"], "oauth2_introspection", Some(config))]));
    let cfg = load(vec![rule]);
    let once = cfg.policy.decide(&get("/api").with_header("x-token", "opaque"), NOW_MS, &default_cache());
    assert!(matches!(once, Decision::NeedCall { .. }), "one value: asks the endpoint");
    let twice = get("/api").with_header("x-token", "opaque").with_header("x-token", "other");
    assert_eq!(status(&cfg.policy.decide(&twice, NOW_MS, &default_cache())), 401, "two: never asks");
}

#[test]
fn v2_from_headers_twice_is_401() {
    let rule = v2(json!({"fromHeaders": [{"name": "X-JWT", "prefix": "Token "}]}));
    check("v2 fromHeaders", rule.clone(), At::Header("x-jwt", "Token "), true);
    // A second value without the prefix counts too (Envoy would skip it; the backend may not).
    let req = get("/api").with_header("x-jwt", &format!("Token {}", valid())).with_header("x-jwt", "other");
    assert_eq!(status(&decide(rule, &req)), 401);
    let no_prefix = v2(json!({"fromHeaders": [{"name": "X-JWT"}]}));
    check("v2 fromHeaders without prefix", no_prefix, At::Header("x-jwt", ""), true);
}

#[test]
fn v2_from_params_twice_is_401() {
    check("v2 fromParams", v2(json!({"fromParams": ["jwt"]})), At::Query("jwt"), true);
}

#[test]
fn v2_default_access_token_twice_is_401() {
    // Envoy reads only the first `access_token`: `?access_token=<valid>&access_token=<forged>`
    // would pass it, and a backend reading the last value would get the forged one.
    check("v2 access_token", v2(json!({})), At::Query("access_token"), true);
}
