//! The whole decision (config -> policy -> JWT -> keys) natively, with real signed tokens, on the
//! reference's v1 conformance cases (numbers in the test names).

mod common;

use apirule_wasm::keys::{FetchReason, FetchedOnce, KeyCache};
use apirule_wasm::policy::Decision;
use apirule_wasm::request::Request;
use common::*;
use serde_json::{json, Value};

fn jwt_rule(path: &str, methods: &[&str], extra: Value) -> Value {
    rule(path, methods, "jwt", Some(jwt_config(extra)))
}

fn decide(rules: Value, req: &Request) -> Decision {
    let cfg = load(vec![apirule("httpbin", HOST, rules)]);
    cfg.policy.decide(req, NOW_MS, &default_cache())
}

fn headers_rule() -> Value {
    json!([jwt_rule("/headers", &["GET"], json!({}))])
}

fn body(d: &Decision) -> Value {
    match d {
        Decision::Deny { response, .. } => serde_json::from_slice(&response.body).unwrap_or(Value::Null),
        _ => Value::Null,
    }
}

#[test]
fn case_01_valid_token_is_allowed_with_forwarded_host() {
    let d = decide(headers_rule(), &bearer(get("/headers"), &rs256(good_claims())));
    let Decision::Allow { set_headers, .. } = d else { panic!("{d:?}") };
    assert!(set_headers.contains(&("x-forwarded-host".into(), HOST.into())));
}

#[test]
fn cases_02_03_paths_are_anchored() {
    let token = rs256(good_claims());
    assert_eq!(status(&decide(headers_rule(), &bearer(get("/headers/x"), &token))), 404);
    assert_eq!(status(&decide(headers_rule(), &bearer(get("/api/headers"), &token))), 404);
}

#[test]
fn case_04_query_is_ignored() {
    assert_eq!(status(&decide(headers_rule(), &bearer(get("/headers?x=1"), &rs256(good_claims())))), 200);
}

#[test]
fn case_05_question_mark_is_a_quantifier() {
    let rules = json!([rule("/items?id=1", &["GET"], "noop", None)]);
    assert_eq!(status(&decide(rules.clone(), &get("/items?id=1"))), 404);
    assert_eq!(status(&decide(rules, &get("/itemid=1"))), 200);
}

#[test]
fn case_06_dot_is_any_char() {
    let rules = json!([rule("/file.json", &["GET"], "noop", None)]);
    assert_eq!(status(&decide(rules, &get("/fileXjson"))), 200);
}

#[test]
fn case_07_catch_all() {
    let rules = json!([rule("/.*", &["GET"], "noop", None)]);
    assert_eq!(status(&decide(rules.clone(), &get("/"))), 200);
    assert_eq!(status(&decide(rules, &get("/a/b/c"))), 200);
}

#[test]
fn cases_08_09_method_mismatch_is_404_json() {
    let token = rs256(good_claims());
    for method in ["POST", "HEAD"] {
        let req = bearer(Request::new(method, HOST, "/headers"), &token);
        let d = decide(headers_rule(), &req);
        assert_eq!(status(&d), 404);
        assert_eq!(body(&d)["error"]["message"], "The requested resource could not be found");
    }
}

#[test]
fn case_10_host_with_port_matches_no_access_rule() {
    let req = bearer(Request::new("GET", "api.example.com:443", "/headers"), &rs256(good_claims()));
    let d = decide(headers_rule(), &req);
    assert_eq!(status(&d), 404);
    assert_eq!(body(&d)["error"]["code"], 404);
}

#[test]
fn host_selection_ignores_case_and_port_for_direct_routes() {
    let rules = json!([rule("/.*", &["GET"], "allow", None)]);
    assert_eq!(status(&decide(rules.clone(), &Request::new("GET", "API.Example.com:8080", "/x"))), 200);
    let cfg = load(vec![apirule("httpbin", HOST, rules)]);
    let d = cfg.policy.decide(&Request::new("GET", "other.example.com", "/x"), NOW_MS, &default_cache());
    assert_eq!(d, Decision::PassThrough);
}

#[test]
fn no_spelling_of_a_governed_host_escapes_its_apirule() {
    for authority in ["api.example.com.", "API.EXAMPLE.COM", "api.example.com.:443", "Api.Example.Com:8443"] {
        let d = decide(headers_rule(), &bearer(Request::new("GET", authority, "/headers"), &rs256(good_claims())));
        assert_eq!(status(&d), 404, "{authority}");
        let d = decide(headers_rule(), &Request::new("GET", authority, "/other"));
        assert_eq!(status(&d), 404, "{authority}");
    }
}

#[test]
fn case_11_access_rules_see_the_decoded_path() {
    let rules = json!([rule("/.*", &["GET"], "noop", None), rule("/a/b", &["POST"], "noop", None)]);
    let req = Request::new("POST", HOST, "/a%2Fb");
    // By default an escaped slash is refused before any rule (docs/security.md, "Paths").
    assert_eq!(status(&decide(rules.clone(), &req)), 400);
    // With `paths.escapedSlashes: keep`, the route stage (`/.*` wins, it is first and matches
    // everything) sends it to the access rules, where `/a%2Fb` decodes to `/a/b`.
    let kept = try_load(json!({"apiRules": [apirule("a", HOST, rules)], "paths": {"escapedSlashes": "keep"}}));
    assert_eq!(status(&kept.unwrap().policy.decide(&req, NOW_MS, &default_cache())), 200);
}

#[test]
fn case_12_two_matching_access_rules_is_500() {
    let rules = json!([jwt_rule("/.*", &["GET"], json!({})), rule("/headers", &["GET"], "noop", None)]);
    let d = decide(rules, &get("/headers"));
    assert_eq!(status(&d), 500);
    assert_eq!(body(&d)["error"]["status"], "Internal Server Error");
}

#[test]
fn case_13_same_path_disjoint_methods() {
    let rules = json!([jwt_rule("/.*", &["GET"], json!({})), rule("/.*", &["POST"], "noop", None)]);
    assert_eq!(status(&decide(rules.clone(), &Request::new("POST", HOST, "/x"))), 200);
    assert_eq!(status(&decide(rules, &get("/x"))), 401);
}

#[test]
fn route_dedup_keeps_first_rule_per_path() {
    // §1.6: first = no_auth GET, second = jwt POST on the same path: POST has no route.
    let rules = json!([rule("/x", &["GET"], "no_auth", None), jwt_rule("/x", &["POST"], json!({}))]);
    let d = decide(rules, &bearer(Request::new("POST", HOST, "/x"), &rs256(good_claims())));
    assert_eq!(status(&d), 404);
    assert!(body(&d).is_null(), "Envoy's no-route 404 has an empty body");
}

#[test]
fn case_16_no_token_is_401_json() {
    let d = decide(headers_rule(), &get("/headers").with_header("x-request-id", "req-1"));
    let Decision::Deny { response, .. } = &d else { panic!("{d:?}") };
    assert_eq!(response.status, 401);
    assert_eq!(
        body(&d),
        json!({"error": {"code": 401, "status": "Unauthorized", "request": "req-1",
                         "message": "The request could not be authorized"}})
    );
    assert!(response.headers.contains(&("www-authenticate".into(), "Bearer".into())));
}

#[test]
fn case_17_basic_auth_is_no_token() {
    let d = decide(headers_rule(), &get("/headers").with_header("authorization", "Basic eHl6"));
    let Decision::Deny { response, .. } = &d else { panic!("{d:?}") };
    assert_eq!(response.status, 401);
    assert!(response.headers.contains(&("www-authenticate".into(), "Bearer".into())));
}

#[test]
fn case_18_lowercase_bearer() {
    let req = get("/headers").with_header("authorization", &format!("bearer {}", rs256(good_claims())));
    assert_eq!(status(&decide(headers_rule(), &req)), 200);
}

fn with_claims(claims: Value) -> u16 {
    status(&decide(headers_rule(), &bearer(get("/headers"), &rs256(claims))))
}

fn merged(extra: Value) -> Value {
    let mut c = good_claims();
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

#[test]
fn cases_20_to_24_time_claims() {
    assert_eq!(with_claims(merged(json!({"exp": NOW_SECS - 1}))), 401);
    assert_eq!(with_claims(merged(json!({"exp": NOW_SECS}))), 200);
    assert_eq!(with_claims(merged(json!({"nbf": NOW_SECS + 5}))), 401);
    assert_eq!(with_claims(merged(json!({"iat": NOW_SECS + 5}))), 401);
    assert_eq!(with_claims(merged(json!({"exp": null}))), 200);
    assert_eq!(with_claims(merged(json!({"exp": "9999999999"}))), 401);
}

#[test]
fn clock_skew_option_widens_windows() {
    let mut cfg = load(vec![apirule("httpbin", HOST, headers_rule())]);
    cfg.policy.clock_skew_secs = 30;
    let req = bearer(get("/headers"), &rs256(merged(json!({"exp": NOW_SECS - 20}))));
    assert_eq!(status(&cfg.policy.decide(&req, NOW_MS, &default_cache())), 200);
}

#[test]
fn cases_25_to_27_issuers() {
    let rules = |issuers: Value| json!([jwt_rule("/headers", &["GET"], json!({"trusted_issuers": issuers}))]);
    let req = |iss: Value| bearer(get("/headers"), &rs256(merged(json!({"iss": iss}))));
    assert_eq!(status(&decide(rules(json!(["https://idp/"])), &req(json!("https://idp")))), 401);
    assert_eq!(status(&decide(rules(json!([])), &req(Value::Null))), 200);
    assert_eq!(status(&decide(rules(json!(["https://a", "https://b"])), &req(json!("https://b")))), 200);
}

#[test]
fn cases_28_29_audience() {
    let rules = |aud: Value| json!([jwt_rule("/headers", &["GET"], json!({"target_audience": aud}))]);
    let req = |aud: Value| bearer(get("/headers"), &rs256(merged(json!({"aud": aud}))));
    assert_eq!(status(&decide(rules(json!(["a", "b"])), &req(json!(["a"])))), 401);
    assert_eq!(status(&decide(rules(json!(["a"])), &req(json!("a")))), 200);
}

#[test]
fn cases_30_to_38_scopes() {
    let rules = |required: Value, strategy: Option<&str>| {
        let mut extra = json!({"required_scope": required});
        if let Some(s) = strategy {
            extra["scope_strategy"] = json!(s);
        }
        json!([jwt_rule("/headers", &["GET"], extra)])
    };
    let req = |claims: Value| bearer(get("/headers"), &rs256(merged(claims)));
    let d = |required: Value, strategy: Option<&str>, claims: Value| {
        status(&decide(rules(required, strategy), &req(claims)))
    };
    assert_eq!(d(json!(["read"]), None, json!({"scp": ["read", "write"]})), 200); // 30
    assert_eq!(d(json!(["read"]), None, json!({"scope": "write read"})), 200); // 31
    assert_eq!(d(json!(["read"]), None, json!({"scp": [], "scope": "read"})), 401); // 32
    assert_eq!(d(json!(["read", "write"]), None, json!({"scp": ["read"]})), 401); // 33
    assert_eq!(d(json!(["orders.read"]), None, json!({"scp": ["orders.*"]})), 200); // 34 (wildcard default)
    assert_eq!(d(json!(["orders"]), None, json!({"scp": ["orders.*"]})), 401);
    assert_eq!(d(json!(["anything"]), None, json!({"scp": ["*"]})), 200); // 35
    assert_eq!(d(json!(["orders.read"]), Some("hierarchic"), json!({"scp": ["orders"]})), 200); // 36
    assert_eq!(d(json!(["orders"]), Some("hierarchic"), json!({"scp": ["orders.read"]})), 401);
    assert_eq!(d(json!(["orders.read"]), Some("exact"), json!({"scp": ["orders"]})), 401); // 37
    assert_eq!(d(json!(["x"]), Some("none"), json!({"scp": ["x"]})), 401); // 38
    assert_eq!(d(json!([]), Some("none"), json!({})), 200);
}

#[test]
fn case_39_key_in_second_jwks() {
    let second = "https://other.example.com/keys";
    let rules = json!([jwt_rule("/headers", &["GET"], json!({"jwks_urls": [JWKS_URL, second]}))]);
    let cfg = load(vec![apirule("httpbin", HOST, rules)]);
    let mut cache = KeyCache::default();
    let set = |v: Value| apirule_wasm::jwt::jwks::parse_jwks(v.to_string().as_bytes()).unwrap();
    cache.fetch_started(JWKS_URL, NOW_MS);
    cache.fetch_succeeded(JWKS_URL, set(json!({"keys": [ec_public_jwk("e1")]})), NOW_MS);
    cache.fetch_started(second, NOW_MS);
    cache.fetch_succeeded(second, set(json!({"keys": [rsa_public_jwk("k1")]})), NOW_MS);
    let req = bearer(get("/headers"), &rs256(good_claims()));
    assert_eq!(status(&cfg.policy.decide(&req, NOW_MS, &cache)), 200);
}

#[test]
fn first_url_wins_even_when_a_later_set_arrived_first() {
    let second = "https://other.example.com/keys";
    let rules = json!([jwt_rule("/headers", &["GET"], json!({"jwks_urls": [JWKS_URL, second]}))]);
    let cfg = load(vec![apirule("httpbin", HOST, rules)]);
    let set = |v: Value| apirule_wasm::jwt::jwks::parse_jwks(v.to_string().as_bytes()).unwrap();
    let mut cache = KeyCache::default();
    cache.fetch_started(second, NOW_MS);
    cache.fetch_succeeded(second, set(json!({"keys": [rsa_public_jwk("k1")]})), NOW_MS);
    let req = bearer(get("/headers"), &rs256(good_claims()));
    // The first URL could still publish another `k1`: wait for it rather than race.
    assert_eq!(cfg.policy.decide(&req, NOW_MS, &cache), Decision::NeedKeys { urls: vec![JWKS_URL.into()] });
    // It publishes a different key under `k1`: that one is the first and the token fails.
    cache.fetch_started(JWKS_URL, NOW_MS);
    let mut other = ec_public_jwk("k1");
    other["kty"] = json!("EC");
    cache.fetch_succeeded(JWKS_URL, set(json!({"keys": [other]})), NOW_MS + 5);
    assert_eq!(status(&cfg.policy.decide(&req, NOW_MS + 5, &cache)), 401);
    // Had it failed instead, the second URL's key would serve.
    let mut cache2 = KeyCache::default();
    cache2.fetch_started(second, NOW_MS);
    cache2.fetch_succeeded(second, set(json!({"keys": [rsa_public_jwk("k1")]})), NOW_MS);
    cache2.fetch_started(JWKS_URL, NOW_MS);
    cache2.fetch_failed(JWKS_URL, "down", NOW_MS + 5, 0);
    assert_eq!(status(&cfg.policy.decide(&req, NOW_MS + 5, &cache2)), 200);
}

#[test]
fn case_40_no_kid() {
    let token = mint(json!({"alg": "RS256"}), good_claims(), Signer::Rsa);
    assert_eq!(status(&decide(headers_rule(), &bearer(get("/headers"), &token))), 401);
}

#[test]
fn case_41_unknown_kid_refetches_once_then_denies() {
    let cfg = load(vec![apirule("httpbin", HOST, headers_rule())]);
    let mut cache = default_cache();
    let token = mint(json!({"alg": "RS256", "kid": "rotated"}), good_claims(), Signer::Rsa);
    let req = bearer(get("/headers"), &token);
    // Right after the scheduled fetch, the first unknown kid refetches at once ...
    let first = NOW_MS + 1;
    assert_eq!(cfg.policy.decide(&req, first, &cache), Decision::NeedKeys { urls: vec![JWKS_URL.into()] });
    let seen = [FetchedOnce::mark(&cache, JWKS_URL, first)];
    cache.start_fetch(JWKS_URL, 0, FetchReason::UnknownKid, first);
    cache.fetch_succeeded(JWKS_URL, Default::default(), first + 5);
    // ... and after it (still without the kid) denies: one fetch per request.
    let d = cfg.policy.decide(&req, first + 5, &FetchedOnce { cache: &cache, seen: &seen });
    let Decision::Deny { response, .. } = &d else { panic!("{d:?}") };
    assert!(response.headers.contains(&("www-authenticate".into(), "Bearer error=\"invalid_token\"".into())));
    // Further unknown kids within min_refetch (10 s) are denied without a fetch ...
    assert_eq!(status(&cfg.policy.decide(&req, first + 9_999, &cache)), 401);
    // ... and may refetch again after it.
    let later = first + 10_000;
    assert_eq!(cfg.policy.decide(&req, later, &cache), Decision::NeedKeys { urls: vec![JWKS_URL.into()] });
}

#[test]
fn case_42_jwk_without_use_sig_is_never_selected() {
    let cfg = load(vec![apirule("httpbin", HOST, headers_rule())]);
    let mut jwk = rsa_public_jwk("k1");
    jwk.as_object_mut().unwrap().remove("use");
    let jwks = json!({"keys": [jwk]});
    let req = bearer(get("/headers"), &rs256(good_claims()));
    assert_eq!(status(&decide_refetching(&cfg.policy, &req, NOW_MS, &mut cache_with(jwks.clone()), &jwks)), 401);
    let mut jwk = rsa_public_jwk("k1");
    jwk["use"] = json!("enc");
    let jwks = json!({"keys": [jwk]});
    assert_eq!(status(&decide_refetching(&cfg.policy, &req, NOW_MS, &mut cache_with(jwks.clone()), &jwks)), 401);
}

#[test]
fn case_43_alg_none_never_verifies() {
    let rules = json!([jwt_rule("/headers", &["GET"], json!({}))]);
    let token = mint(json!({"alg": "none", "kid": "k1"}), good_claims(), Signer::Nothing);
    assert_eq!(status(&decide(rules, &bearer(get("/headers"), &token))), 401);
    // Listing it is refused at load: it can never work.
    let bad = json!([jwt_rule("/headers", &["GET"], json!({"allowed_algorithms": ["none"]}))]);
    assert!(try_load(json!({"apiRules": [apirule("a", HOST, bad)]})).is_err());
}

#[test]
fn case_44_es256_needs_allowed_algorithms() {
    let token = mint(json!({"alg": "ES256", "kid": "e1"}), good_claims(), Signer::Ec);
    assert_eq!(status(&decide(headers_rule(), &bearer(get("/headers"), &token))), 401);
    let rules = json!([jwt_rule("/headers", &["GET"], json!({"allowed_algorithms": ["ES256"]}))]);
    assert_eq!(status(&decide(rules, &bearer(get("/headers"), &token))), 200);
}

#[test]
fn case_45_alg_and_key_type_must_agree() {
    let rules = json!([jwt_rule("/headers", &["GET"], json!({"allowed_algorithms": ["RS256", "ES256"]}))]);
    // RS256 header but the kid names the EC key.
    let token = mint(json!({"alg": "RS256", "kid": "e1"}), good_claims(), Signer::Rsa);
    assert_eq!(status(&decide(rules, &bearer(get("/headers"), &token))), 401);
}

#[test]
fn case_46_hs256_with_rsa_public_key_bytes_is_rejected() {
    let rules = json!([jwt_rule("/headers", &["GET"], json!({"allowed_algorithms": ["RS256", "HS256"]}))]);
    let public_pem = rsa_public_pem();
    let token = mint(json!({"alg": "HS256", "kid": "k1"}), good_claims(), Signer::Hmac(public_pem.as_bytes()));
    assert_eq!(status(&decide(rules, &bearer(get("/headers"), &token))), 401);
}

#[test]
fn tampered_signature_and_payload_are_rejected() {
    let token = rs256(good_claims());
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    parts[1] = b64(merged(json!({"sub": "admin"})).to_string().as_bytes());
    let swapped = parts.join(".");
    assert_eq!(status(&decide(headers_rule(), &bearer(get("/headers"), &swapped))), 401);
    let cut = &token[..token.len() - 3];
    assert_eq!(status(&decide(headers_rule(), &bearer(get("/headers"), cut))), 401);
}

#[test]
fn case_47_no_keys_yet_needs_keys_then_denies_after_failure() {
    let cfg = load(vec![apirule("httpbin", HOST, headers_rule())]);
    let mut cache = KeyCache::default();
    let req = bearer(get("/headers"), &rs256(good_claims()));
    assert_eq!(cfg.policy.decide(&req, NOW_MS, &cache), Decision::NeedKeys { urls: vec![JWKS_URL.into()] });
    cache.fetch_started(JWKS_URL, NOW_MS);
    // While in flight, later requests wait too (one fetch per URL).
    assert_eq!(status(&cfg.policy.decide(&req, NOW_MS + 10, &cache)), 0);
    cache.fetch_failed(JWKS_URL, "connection refused", NOW_MS + 20, 0);
    assert_eq!(status(&cfg.policy.decide(&req, NOW_MS + 20, &cache)), 401);
}

#[test]
fn case_48_stale_keys_serve_during_outage() {
    let cfg = load(vec![apirule("httpbin", HOST, headers_rule())]);
    let mut cache = default_cache();
    let later = NOW_MS + 400_000; // past the 300 s TTL
    cache.fetch_started(JWKS_URL, later);
    cache.fetch_failed(JWKS_URL, "timeout", later + 1000, 0);
    let req = bearer(get("/headers"), &rs256(merged(json!({"exp": NOW_SECS + 7200}))));
    assert_eq!(status(&cfg.policy.decide(&req, later + 1000, &cache)), 200);
}

#[test]
fn cases_49_to_53_token_locations() {
    let token = rs256(good_claims());
    let from = |source: Value| json!([jwt_rule("/headers", &["GET"], json!({"token_from": source}))]);
    let header = from(json!({"header": "X-Token"}));
    assert_eq!(status(&decide(header.clone(), &get("/headers").with_header("x-token", &token))), 200); // 49
    let prefixed = get("/headers").with_header("x-token", &format!("Bearer {token}"));
    assert_eq!(status(&decide(header, &prefixed)), 401); // 50
    let lower = from(json!({"header": "authorization"}));
    assert_eq!(status(&decide(lower, &bearer(get("/headers"), &token))), 401); // 51
    let exact = from(json!({"header": "Authorization"}));
    assert_eq!(status(&decide(exact, &bearer(get("/headers"), &token))), 200);
    let query = from(json!({"query_parameter": "t"}));
    assert_eq!(status(&decide(query, &get(&format!("/headers?t={token}")))), 200); // 52
    let cookie = from(json!({"cookie": "c"}));
    assert_eq!(status(&decide(cookie, &get("/headers").with_header("cookie", &format!("a=b; c={token}")))), 200);
    // 53
}

#[test]
fn case_54_noop_forwards_without_token() {
    let rules = json!([rule("/x", &["GET"], "noop", None)]);
    assert_eq!(status(&decide(rules, &get("/x").with_header("authorization", "Basic abc"))), 200);
}

#[test]
fn case_55_anonymous_with_authorization_is_401() {
    let rules = json!([rule("/x", &["GET"], "anonymous", None)]);
    assert_eq!(status(&decide(rules.clone(), &get("/x"))), 200);
    assert_eq!(status(&decide(rules, &get("/x").with_header("authorization", "Bearer x"))), 401);
}

#[test]
fn unauthorized_handler_is_401() {
    let rules = json!([rule("/x", &["GET"], "unauthorized", None)]);
    assert_eq!(status(&decide(rules, &get("/x"))), 401);
}

#[test]
fn anonymous_then_unauthorized_pipeline() {
    // anonymous is not responsible with a header; unauthorized then fails: 401.
    let rules = json!([{"path": "/x", "methods": ["GET"],
                        "accessStrategies": [{"handler": "anonymous"}, {"handler": "unauthorized"}]}]);
    assert_eq!(status(&decide(rules.clone(), &get("/x"))), 200);
    assert_eq!(status(&decide(rules, &get("/x").with_header("authorization", "x"))), 401);
}

#[test]
fn two_jwt_strategies_first_failure_stops() {
    let second = "https://other.example.com/keys";
    let rules = json!([{"path": "/x", "methods": ["GET"], "accessStrategies": [
        {"handler": "jwt", "config": {"jwks_urls": [JWKS_URL], "trusted_issuers": ["https://nobody"]}},
        {"handler": "jwt", "config": {"jwks_urls": [second]}}]}]);
    let cfg = load(vec![apirule("httpbin", HOST, rules)]);
    // The first strategy is responsible (a token is present) and fails: 401 without trying the
    // second (Oathkeeper §2.8), so no fetch of the second URL is asked for either.
    let d = cfg.policy.decide(&bearer(get("/x"), &rs256(good_claims())), NOW_MS, &default_cache());
    assert_eq!(status(&d), 401);
}

#[test]
fn cases_56_57_allow_and_no_auth_methods() {
    let allow = json!([rule("/x", &["GET"], "allow", None)]);
    assert_eq!(status(&decide(allow, &Request::new("DELETE", HOST, "/x"))), 200);
    let no_auth = json!([rule("/x", &["GET"], "no_auth", None)]);
    assert_eq!(status(&decide(no_auth.clone(), &Request::new("GET", HOST, "/x"))), 200);
    let d = decide(no_auth, &Request::new("DELETE", HOST, "/x"));
    assert_eq!(status(&d), 404);
    assert!(body(&d).is_null());
}

#[test]
fn case_60_dot_segments_cannot_escape_a_public_prefix() {
    let rules = json!([rule("/public/.*", &["GET"], "no_auth", None), jwt_rule("/admin", &["GET"], json!({}))]);
    for path in ["/public/../admin", "/public/%2e%2e/admin", "/public/./../admin"] {
        assert_eq!(status(&decide(rules.clone(), &get(path))), 401, "{path}");
    }
    // And an encoded slash cannot climb at the access-rule stage either: refused before any rule.
    let rules = json!([rule("/.*", &["GET"], "noop", None), rule("/admin", &["POST"], "unauthorized", None)]);
    assert_eq!(status(&decide(rules, &Request::new("POST", HOST, "/x%2F..%2Fadmin"))), 400);
}

#[test]
fn normalised_path_is_forwarded() {
    let rules = json!([rule("/public/.*", &["GET"], "no_auth", None)]);
    let d = decide(rules, &get("/public/a/../b?q=1"));
    let Decision::Allow { set_headers, .. } = d else { panic!("{d:?}") };
    assert!(set_headers.contains(&(":path".into(), "/public/b?q=1".into())));
}

#[test]
fn malformed_percent_encoding_is_400() {
    let rules = json!([rule("/.*", &["GET"], "no_auth", None)]);
    assert_eq!(status(&decide(rules, &get("/a%zz"))), 400);
}

#[test]
fn several_hosts_in_one_plugin() {
    let cfg = load(vec![
        apirule("one", "one.example.com", json!([rule("/.*", &["GET"], "noop", None)])),
        apirule("two", "two.example.com", json!([rule("/.*", &["GET"], "unauthorized", None)])),
    ]);
    let d = |host: &str| status(&cfg.policy.decide(&Request::new("GET", host, "/x"), NOW_MS, &default_cache()));
    assert_eq!(d("one.example.com"), 200);
    assert_eq!(d("two.example.com"), 401);
    assert_eq!(d("three.example.com"), 200);
}

#[test]
fn hostile_tokens_never_panic_and_deny() {
    let junk = [
        "a.b.c",
        "..",
        "....",
        "e30.e30.",
        "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.bm90anNvbg.sig",
        "\u{0}\u{1}",
        &"A".repeat(20_000),
        "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.e30.%%%",
    ];
    for t in junk {
        assert_eq!(status(&decide(headers_rule(), &bearer(get("/headers"), t))), 401, "{t:.40}");
    }
    let non_utf8 = Request { headers: vec![("authorization".into(), b"Bearer \xff\xfe".to_vec())], ..get("/headers") };
    assert_eq!(status(&decide(headers_rule(), &non_utf8)), 401);
}

// --- mutators (reference §2.10, case 58) -----------------------------------------------------------

fn set_headers_of(d: &Decision) -> Vec<(String, String)> {
    match d {
        Decision::Allow { set_headers, .. } => set_headers.clone(),
        other => panic!("expected an allow, got {other:?}"),
    }
}

fn with_mutators(handler_rule: Value, mutators: Value) -> Value {
    let mut r = handler_rule;
    r["mutators"] = mutators;
    json!([r])
}

#[test]
fn header_mutator_renders_subject_and_claims_case_58() {
    let rules = with_mutators(
        jwt_rule("/.*", &["GET"], json!({})),
        json!([{"handler": "header", "config": {"headers": {
            "X-User": "{{ print .Subject }}", "X-Mail": "mail={{ .Extra.email }}", "X-Missing": "{{ print .Extra.nope }}"}}}]),
    );
    let mut claims = good_claims();
    claims["email"] = json!("a@example.com\r\nX-Evil: 1");
    let req = bearer(get("/x"), &rs256(claims)).with_header("x-user", "mallory");
    let set = set_headers_of(&decide(rules, &req));
    assert!(set.contains(&("x-user".into(), "user-1".into())), "{set:?}");
    assert!(set.contains(&("x-mail".into(), "mail=a@example.comX-Evil: 1".into())), "no header splitting: {set:?}");
    assert!(set.contains(&("x-missing".into(), "<nil>".into())), "Go prints a missing value as <nil>");
}

#[test]
fn header_mutator_on_noop_and_anonymous_sessions() {
    let noop = with_mutators(
        rule("/.*", &["GET"], "noop", None),
        json!([{"handler": "header", "config": {"headers": {"X-Sub": "[{{ print .Subject }}]"}}}]),
    );
    assert!(set_headers_of(&decide(noop, &get("/x"))).contains(&("x-sub".into(), "[]".into())));
    let anon = with_mutators(
        rule("/.*", &["GET"], "anonymous", None),
        json!([{"handler": "header", "config": {"headers": {"X-Sub": "{{ print .Subject }}"}}}]),
    );
    assert!(set_headers_of(&decide(anon, &get("/x"))).contains(&("x-sub".into(), "anonymous".into())));
}

#[test]
fn cookie_mutator_keeps_other_cookies_and_replaces_its_own() {
    let rules = with_mutators(
        jwt_rule("/.*", &["GET"], json!({})),
        json!([{"handler": "cookie", "config": {"cookies": {"user": "{{ print .Subject }}", "greeting": "hello world"}}}]),
    );
    let req = bearer(get("/x"), &rs256(good_claims())).with_header("cookie", "a=1; user=mallory");
    let set = set_headers_of(&decide(rules, &req));
    assert!(set.contains(&("cookie".into(), "a=1; greeting=\"hello world\"; user=user-1".into())), "{set:?}");
}

#[test]
fn mutators_apply_in_order_and_noop_changes_nothing() {
    let rules = with_mutators(
        rule("/.*", &["GET"], "noop", None),
        json!([{"handler": "noop"}, {"handler": "header", "config": {"headers": {"X-A": "1"}}},
               {"handler": "header", "config": {"headers": {"X-A": "2"}}}]),
    );
    let set = set_headers_of(&decide(rules, &get("/x")));
    assert_eq!(set.iter().filter(|(k, _)| k == "x-a").collect::<Vec<_>>(), vec![&("x-a".to_owned(), "2".to_owned())]);
}

// --- v1beta1 stored as v2 (api-gateway >= 3.4) ----------------------------------------------------

#[test]
fn a_v1beta1_apirule_exported_from_a_current_cluster_is_decided_as_v1beta1() {
    // What `kubectl get apirule -o yaml` returns for a v1beta1 APIRule on Kyma >= 3.4.
    let v1 = apirule(
        "stored",
        HOST,
        json!([rule("/public/.*", &["GET"], "no_auth", None), jwt_rule("/api/.*", &["GET"], json!({}))]),
    );
    let stored = json!({
        "apiVersion": "gateway.kyma-project.io/v2", "kind": "APIRule",
        "metadata": {"name": "stored", "namespace": "default", "annotations": {
            "gateway.kyma-project.io/original-version": "v1beta1",
            "gateway.kyma-project.io/v1beta1-spec": v1["spec"].to_string()}},
        "spec": {}
    });
    let cfg = load(vec![stored.clone()]);
    assert_eq!(status(&cfg.policy.decide(&get("/public/x"), NOW_MS, &default_cache())), 200);
    let Decision::Deny { response, .. } = cfg.policy.decide(&get("/api/x"), NOW_MS, &default_cache()) else {
        panic!("denied")
    };
    assert_eq!(response.status, 401, "Oathkeeper's answer to a missing token, not Istio's 403");
    let ok = bearer(get("/api/x"), &rs256(good_claims()));
    assert_eq!(status(&cfg.policy.decide(&ok, NOW_MS, &default_cache())), 200);

    let mut broken = stored;
    broken["metadata"]["annotations"]["gateway.kyma-project.io/v1beta1-spec"] = json!("{not json");
    let e = try_load(json!({"apiRules": [broken]})).unwrap_err().to_string();
    assert!(e.contains("metadata.annotations: gateway.kyma-project.io/v1beta1-spec is not JSON"), "{e}");
}
