//! APIRule v2 / v2alpha1 decisions with Istio's answers (reference §3, cases 61-73), natively.

mod common;

use apirule_wasm::policy::Decision;
use apirule_wasm::request::Request;
use common::*;
use serde_json::{json, Value};

/// A v2 APIRule on HOST for service httpbin with these rules.
fn v2(rules: Value) -> Value {
    v2_on(HOST, rules)
}

fn v2_on(host: &str, rules: Value) -> Value {
    v2_apirule("httpbin", host, rules)
}

fn no_auth(path: &str, methods: &[&str]) -> Value {
    json!({"path": path, "methods": methods, "noAuth": true})
}

fn jwt_rule(path: &str, methods: &[&str], authorizations: Option<Value>) -> Value {
    let mut jwt = json!({"authentications": [{"issuer": ISSUER, "jwksUri": JWKS_URL}]});
    if let Some(a) = authorizations {
        jwt["authorizations"] = a;
    }
    json!({"path": path, "methods": methods, "jwt": jwt})
}

fn claims_with(extra: Value) -> Value {
    let mut c = good_claims();
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

/// The status `rules` give `req`, with the default key set.
fn answer(rules: Value, req: Request) -> u16 {
    let cfg = load(vec![v2(rules)]);
    status(&decide_refetching(&cfg.policy, &req, NOW_MS, &mut default_cache(), &default_jwks()))
}

fn with_token(req: Request, claims: Value) -> Request {
    bearer(req, &rs256(claims))
}

#[test]
fn path_operators_61_62() {
    let rules = json!([no_auth("/foo/{*}", &["GET"]), no_auth("/bar/{**}", &["GET"])]);
    assert_eq!(answer(rules.clone(), get("/foo/x")), 200);
    assert_eq!(answer(rules.clone(), get("/foo/")), 404);
    assert_eq!(answer(rules.clone(), get("/foo/x/y")), 404);
    assert_eq!(answer(rules.clone(), get("/bar/")), 200);
    assert_eq!(answer(rules.clone(), get("/bar/a/b")), 200);
    assert_eq!(answer(rules, get("/bar")), 404);
}

#[test]
fn general_path_before_specific_is_refused_63() {
    let e = try_load(json!({"apiRules": [v2(json!([no_auth("/a/{**}", &["GET"]), no_auth("/a/b", &["GET"])]))]}))
        .unwrap_err()
        .to_string();
    assert!(e.contains("Path /a/b with method GET conflicts with at least one of the previous rule paths"), "{e}");
    assert!(
        try_load(json!({"apiRules": [v2(json!([no_auth("/a/b", &["GET"]), no_auth("/a/{**}", &["GET"])]))]})).is_ok()
    );
}

#[test]
fn earlier_rules_cut_their_paths_from_later_ones_64_71() {
    let rules = json!([jwt_rule("/a/b", &["POST"], None), no_auth("/a/{**}", &["GET", "POST"])]);
    let post = |p: &str| Request::new("POST", HOST, p);
    assert_eq!(answer(rules.clone(), post("/a/b")), 403, "case 64: jwt rule applies, no token");
    assert_eq!(answer(rules.clone(), with_token(post("/a/b"), good_claims())), 200);
    assert_eq!(answer(rules.clone(), get("/a/b")), 403, "case 71: notPaths ignore methods");
    assert_eq!(answer(rules.clone(), with_token(get("/a/b"), good_claims())), 403, "case 71 with a token");
    assert_eq!(answer(rules, get("/a/c")), 200);
}

#[test]
fn missing_invalid_and_unknown_issuer_tokens_65_66_67() {
    let rules = json!([jwt_rule("/api", &["GET"], None)]);
    assert_eq!(answer(rules.clone(), get("/api")), 403, "case 65: no token");
    let expired = claims_with(json!({"exp": NOW_SECS - 3600}));
    assert_eq!(answer(rules.clone(), with_token(get("/api"), expired)), 401, "case 66");
    let other = claims_with(json!({"iss": "https://other.example.com"}));
    assert_eq!(answer(rules.clone(), with_token(get("/api"), other)), 401, "case 67");
    assert_eq!(answer(rules.clone(), with_token(get("/api"), good_claims())), 200);
    let forged = format!("{}.AAAA", rs256(good_claims()).rsplit_once('.').unwrap().0);
    assert_eq!(answer(rules, bearer(get("/api"), &forged)), 401);
}

#[test]
fn scopes_as_istio_reads_them_68() {
    let rules = json!([jwt_rule("/api", &["GET"], Some(json!([{"requiredScopes": ["a", "b"]}])))]);
    let with = |extra: Value| answer(rules.clone(), with_token(get("/api"), claims_with(extra)));
    assert_eq!(with(json!({"scp": ["a", "b"]})), 200);
    assert_eq!(with(json!({"scope": "a b"})), 200);
    assert_eq!(with(json!({"scp": "a b"})), 403, "scp strings are not split");
    assert_eq!(with(json!({"scp": ["a"], "scope": "b"})), 403, "all scopes in one claim");
    assert_eq!(with(json!({"scopes": ["b", "a", "c"]})), 200);
    assert_eq!(with(json!({})), 403);
}

#[test]
fn authorizations_are_ored_and_audiences_anded_69() {
    let rules =
        json!([jwt_rule("/api", &["GET"], Some(json!([{"requiredScopes": ["a"]}, {"audiences": ["x", "y"]}])))]);
    let with = |extra: Value| answer(rules.clone(), with_token(get("/api"), claims_with(extra)));
    assert_eq!(with(json!({"aud": ["x", "y"]})), 200, "case 69");
    assert_eq!(with(json!({"aud": "x"})), 403, "every audience of one authorization");
    assert_eq!(with(json!({"scp": ["a"]})), 200);
    assert_eq!(with(json!({"aud": ["z"]})), 403);
}

#[test]
fn sixty_seconds_of_skew_70() {
    let rules = json!([jwt_rule("/api", &["GET"], None)]);
    let at = |exp: u64| answer(rules.clone(), with_token(get("/api"), claims_with(json!({"exp": exp}))));
    assert_eq!(at(NOW_SECS - 30), 200, "case 70");
    assert_eq!(at(NOW_SECS - 61), 401);
    let nbf = claims_with(json!({"nbf": NOW_SECS + 30}));
    assert_eq!(answer(rules, with_token(get("/api"), nbf)), 200);
}

#[test]
fn a_token_without_subject_is_forbidden_72() {
    let rules = json!([jwt_rule("/api", &["GET"], None)]);
    let no_sub = json!({"iss": ISSUER, "exp": NOW_SECS + 60});
    assert_eq!(answer(rules, with_token(get("/api"), no_sub)), 403);
}

#[test]
fn the_workloads_request_authentication_covers_no_auth_routes_73() {
    let rules = json!([jwt_rule("/api", &["GET"], None), no_auth("/public", &["GET"])]);
    let expired = claims_with(json!({"exp": NOW_SECS - 3600}));
    assert_eq!(answer(rules.clone(), with_token(get("/public"), expired)), 401);
    assert_eq!(answer(rules.clone(), get("/public")), 200);
    // Without any jwt rule on the workload there is no RequestAuthentication: tokens are ignored.
    let expired = claims_with(json!({"exp": NOW_SECS - 3600}));
    assert_eq!(answer(json!([no_auth("/public", &["GET"])]), with_token(get("/public"), expired)), 200);
}

#[test]
fn no_route_and_methods() {
    let rules = json!([no_auth("/a", &["GET"])]);
    assert_eq!(answer(rules.clone(), Request::new("POST", HOST, "/a")), 404);
    assert_eq!(answer(rules.clone(), Request::new("get", HOST, "/a")), 404, "methods are case-sensitive");
    assert_eq!(answer(rules.clone(), get("/a?x=1")), 200, "the query never participates");
    assert_eq!(answer(rules.clone(), get("/b/../a")), 200, "decided on the normalised path");
    assert_eq!(answer(rules, Request::new("GET", "other.example.com", "/a")), 200, "not governed: passes through");
}

#[test]
fn host_with_port_is_routed_but_not_authorised() {
    let rules = json!([no_auth("/a", &["GET"])]);
    assert_eq!(answer(rules.clone(), Request::new("GET", "api.example.com:443", "/a")), 403);
    assert_eq!(answer(rules, Request::new("GET", "API.example.com", "/a")), 200);
}

#[test]
fn token_locations() {
    let from = |auth: Value| {
        let mut a = json!({"issuer": ISSUER, "jwksUri": JWKS_URL});
        for (k, v) in auth.as_object().unwrap() {
            a[k] = v.clone();
        }
        json!([{"path": "/api", "methods": ["GET"], "jwt": {"authentications": [a]}}])
    };
    let token = rs256(good_claims());
    // Default: Authorization Bearer (case-sensitive scheme) and ?access_token.
    assert_eq!(answer(from(json!({})), get(&format!("/api?access_token={token}"))), 200);
    let lower = get("/api").with_header("authorization", &format!("bearer {token}"));
    assert_eq!(answer(from(json!({})), lower), 403, "bearer in lower case is no token");
    // fromHeaders with a prefix.
    let headers = from(json!({"fromHeaders": [{"name": "X-JWT", "prefix": "Token "}]}));
    assert_eq!(answer(headers.clone(), get("/api").with_header("x-jwt", &format!("Token {token}"))), 200);
    assert_eq!(answer(headers.clone(), bearer(get("/api"), &token)), 403, "only the configured location");
    // fromParams.
    let params = from(json!({"fromParams": ["jwt"]}));
    assert_eq!(answer(params.clone(), get(&format!("/api?jwt={token}"))), 200);
    assert_eq!(answer(params, get(&format!("/api?access_token={token}"))), 403);
}

#[test]
fn kid_is_optional() {
    let rules = json!([jwt_rule("/api", &["GET"], None)]);
    let no_kid = mint(json!({"alg": "RS256"}), good_claims(), Signer::Rsa);
    assert_eq!(answer(rules.clone(), bearer(get("/api"), &no_kid)), 200);
    let wrong_kid = mint(json!({"alg": "RS256", "kid": "nope"}), good_claims(), Signer::Rsa);
    assert_eq!(answer(rules.clone(), bearer(get("/api"), &wrong_kid)), 401);
    let es = mint(json!({"alg": "ES256"}), good_claims(), Signer::Ec);
    assert_eq!(answer(rules, bearer(get("/api"), &es)), 200, "every algorithm Envoy supports");
}

#[test]
fn allowed_requests_get_the_routes_headers() {
    let rule = json!({"path": "/a", "methods": ["GET"], "noAuth": true,
                      "request": {"headers": {"X-Env": "prod"}, "cookies": {"b": "2", "a": "1"}}});
    let cfg = load(vec![v2(json!([rule]))]);
    let Decision::Allow { set_headers, .. } = cfg.policy.decide(&get("/a"), NOW_MS, &default_cache()) else {
        panic!("allowed")
    };
    assert!(set_headers.contains(&("x-forwarded-host".into(), HOST.into())));
    assert!(set_headers.contains(&("x-env".into(), "prod".into())));
    assert!(set_headers.contains(&("cookie".into(), "a=1; b=2".into())));
}

#[test]
fn wildcard_hosts_forward_the_real_host() {
    let cfg = load(vec![v2_on("*.example.com", json!([no_auth("/a", &["GET"])]))]);
    let req = Request::new("GET", "shop.eu.example.com", "/a");
    let Decision::Allow { set_headers, .. } = cfg.policy.decide(&req, NOW_MS, &default_cache()) else {
        panic!("allowed")
    };
    assert!(set_headers.contains(&("x-forwarded-host".into(), "shop.eu.example.com".into())));
    let other = Request::new("GET", "example.org", "/a");
    assert_eq!(status(&cfg.policy.decide(&other, NOW_MS, &default_cache())), 200, "passes through");
    assert!(matches!(cfg.policy.decide(&other, NOW_MS, &default_cache()), Decision::PassThrough));
}

#[test]
fn deny_bodies_are_envoys() {
    let cfg = load(vec![v2(json!([jwt_rule("/api", &["GET"], None)]))]);
    let Decision::Deny { response, .. } = cfg.policy.decide(&get("/api"), NOW_MS, &default_cache()) else {
        panic!("denied")
    };
    assert_eq!((response.status, response.body.as_slice()), (403, &b"RBAC: access denied"[..]));
    let expired = with_token(get("/api"), claims_with(json!({"exp": NOW_SECS - 3600})));
    let Decision::Deny { response, .. } = cfg.policy.decide(&expired, NOW_MS, &default_cache()) else {
        panic!("denied")
    };
    assert_eq!((response.status, response.body.as_slice()), (401, &b"Jwt is expired"[..]));
    let challenge = response.headers.iter().find(|(k, _)| k == "www-authenticate").map(|(_, v)| v.as_str());
    assert_eq!(challenge, Some("Bearer realm=\"http://api.example.com/api\", error=\"invalid_token\""));
}

/// The controller's validation (reference §3.3), one error each.
#[test]
fn validation_errors() {
    let err = |apirule: Value| try_load(json!({"apiRules": [apirule]})).unwrap_err().to_string();
    let auth = json!({"issuer": ISSUER, "jwksUri": JWKS_URL});
    let cases: Vec<(Value, &str)> = vec![
        (v2(json!([{"path": "/a/{**}/{**}", "methods": ["GET"], "noAuth": true}])), "Only one {**} operator"),
        (v2(json!([{"path": "/a/{**}/{*}", "methods": ["GET"], "noAuth": true}])), "must be the last operator"),
        (v2(json!([{"path": "/a", "methods": ["GET"]}])), "exactly one of noAuth, jwt and extAuth"),
        (
            v2(json!([{"path": "/a", "methods": ["GET"], "noAuth": true, "jwt": {"authentications": [auth]}}])),
            "exactly one of",
        ),
        (v2(json!([{"path": "/a", "methods": [], "noAuth": true}])), "at least one method"),
        (v2(json!([{"path": "/a", "methods": ["FETCH"], "noAuth": true}])), "FETCH is not one of"),
        (
            v2(json!([{"path": "/a", "methods": ["GET"], "jwt": {"authentications": []}}])),
            "at least one authentication",
        ),
        (
            v2(json!([{"path": "/a", "methods": ["GET"], "jwt": {"authentications": [auth], "authorizations": []}}])),
            "must not be empty",
        ),
        (
            v2(
                json!([{"path": "/a", "methods": ["GET"], "jwt": {"authentications": [auth], "authorizations": [{"requiredScopes": []}]}}]),
            ),
            "must not be empty",
        ),
        (
            v2(json!([{"path": "/a", "methods": ["GET"], "jwt": {"authentications": [
                {"issuer": ISSUER, "jwksUri": JWKS_URL, "fromHeaders": [{"name": "x-a"}]},
                {"issuer": "https://other.example.com", "jwksUri": JWKS_URL, "fromParams": ["t"]}]}}])),
            "mixture of multiple fromHeaders and fromParams",
        ),
        (
            v2(json!([
                {"path": "/a", "methods": ["GET"], "jwt": {"authentications": [auth]}},
                {"path": "/b", "methods": ["GET"], "jwt": {"authentications": [{"issuer": ISSUER, "jwksUri": JWKS_URL, "fromParams": ["t"]}]}}])),
            "differ for the same issuer",
        ),
        (
            v2(json!([{"path": "/a", "methods": ["GET"], "extAuth": {"authorizers": ["x"]}}])),
            "extAuth.authorizers[0]: authorizer x is not configured: map it in the plugin option extAuth.providers.x",
        ),
        (
            v2(
                json!([{"path": "/a", "methods": ["GET"], "noAuth": true, "request": {"headers": {"x": "%DOWNSTREAM_REMOTE_ADDRESS%"}}}]),
            ),
            "command operator in \"%DOWNSTREAM_REMOTE_ADDRESS%\" is not supported",
        ),
        (v2_on("API.example.com", json!([no_auth("/a", &["GET"])])), "lowercase RFC 1123"),
        (v2_on("short", json!([no_auth("/a", &["GET"])])), "defaultDomain"),
        (v2(json!([{"path": "/a(", "methods": ["GET"], "noAuth": true}])), "not a valid regex"),
        (v2(json!([])), "No rules defined"),
    ];
    for (apirule, want) in cases {
        let e = err(apirule.clone());
        assert!(e.contains(want), "{want:?} not in {e:?} for {apirule}");
    }
    let mut two_hosts = v2(json!([no_auth("/a", &["GET"])]));
    two_hosts["spec"]["hosts"] = json!(["a.example.com", "b.example.com"]);
    assert!(err(two_hosts).contains("exactly one host"));
    let mut no_service = v2(json!([no_auth("/a", &["GET"])]));
    no_service["spec"].as_object_mut().unwrap().remove("service");
    assert!(err(no_service).contains("must define a service"));
    let mut v2alpha1 = v2(json!([no_auth("/a", &["GET"])]));
    v2alpha1["apiVersion"] = json!("gateway.kyma-project.io/v2alpha1");
    assert!(try_load(json!({"apiRules": [v2alpha1]})).is_ok());
}

#[test]
fn cors_preflights_skip_token_checks_but_not_the_policies() {
    let rules = json!([jwt_rule("/api", &["GET", "OPTIONS"], None)]);
    let preflight = |token: Option<String>| {
        let mut r = Request::new("OPTIONS", HOST, "/api")
            .with_header("origin", "https://app.example.com")
            .with_header("access-control-request-method", "GET");
        if let Some(t) = token {
            r = bearer(r, &t);
        }
        answer(rules.clone(), r)
    };
    assert_eq!(preflight(None), 403);
    assert_eq!(preflight(Some(rs256(good_claims()))), 403, "the token is not even looked at");
    assert_eq!(preflight(Some(rs256(claims_with(json!({"exp": NOW_SECS - 3600}))))), 403);
    let plain_options = bearer(Request::new("OPTIONS", HOST, "/api"), &rs256(good_claims()));
    assert_eq!(answer(rules, plain_options), 200, "an OPTIONS that is no preflight is checked as usual");
}

#[test]
fn header_values_may_use_req_operators() {
    let rule = json!({"path": "/a", "methods": ["GET"], "noAuth": true,
                      "request": {"headers": {"X-Host": "%REQ(:AUTHORITY)%", "X-Ua": "ua=%REQ(user-agent?x-agent)% 100%%",
                                              "X-None": "%REQ(x-absent)%"}}});
    let cfg = load(vec![v2(json!([rule]))]);
    let req = get("/a").with_header("x-agent", "curl");
    let Decision::Allow { set_headers, .. } = cfg.policy.decide(&req, NOW_MS, &default_cache()) else {
        panic!("allowed")
    };
    assert!(set_headers.contains(&("x-host".into(), HOST.into())), "{set_headers:?}");
    assert!(set_headers.contains(&("x-ua".into(), "ua=curl 100%".into())), "{set_headers:?}");
    assert!(!set_headers.iter().any(|(k, _)| k == "x-none"), "an empty value is not set, as Envoy does");
}

// --- extAuth (reference §3.1, §3.4: a CUSTOM policy per authorizer before the ALLOW ones) ---------

fn with_ext_authz(rules: Value) -> apirule_wasm::config::Config {
    try_load(json!({"apiRules": [v2(rules)], "extAuth": {"providers": {"authz": {
        "cluster": "authz", "pathPrefix": "/check", "includeRequestHeadersInCheck": ["x-user"],
        "headersToUpstreamOnAllow": ["x-authz-user"], "headersToDownstreamOnDeny": ["x-reason"]}}}}))
    .unwrap()
}

fn decide_ext(
    cfg: &apirule_wasm::config::Config,
    req: &Request,
    answer: Option<apirule_wasm::calls::Answer>,
) -> Decision {
    let mut answers = apirule_wasm::calls::Answers::default();
    if let Some(a) = answer {
        answers.fresh.push((("ext_authz:authz".into(), String::new()), a));
    }
    let mut tokens = apirule_wasm::jwt::cache::VerifiedTokens::disabled();
    cfg.policy.decide_with(req, NOW_MS, &default_cache(), &mut tokens, &mut answers)
}

fn http(status: u16) -> apirule_wasm::calls::Answer {
    apirule_wasm::calls::Answer::Http {
        status,
        headers: vec![("x-authz-user".into(), "alice".into()), ("x-reason".into(), "no".into())],
        body: b"denied by authz".to_vec(),
    }
}

#[test]
fn ext_authz_asks_the_authorizer_then_the_allow_policies() {
    let cfg = with_ext_authz(json!([{"path": "/a/{**}", "methods": ["GET"], "extAuth": {"authorizers": ["authz"]}}]));
    let req = get("/a/b?x=1").with_header("x-user", "u").with_header("cookie", "c=1");
    let Decision::NeedCall { call } = decide_ext(&cfg, &req, None) else { panic!("a call is needed") };
    assert_eq!(
        call.target,
        apirule_wasm::calls::Target::ExtAuthz {
            provider: "authz".into(),
            method: "GET".into(),
            path: "/check/a/b?x=1".into()
        }
    );
    assert!(call.headers.contains(&("x-user".into(), "u".into())));
    assert!(!call.headers.iter().any(|(k, _)| k == "cookie"));
    let Decision::Allow { set_headers, .. } = decide_ext(&cfg, &req, Some(http(200))) else { panic!("allowed") };
    assert!(set_headers.contains(&("x-authz-user".into(), "alice".into())));
    let Decision::Deny { response, .. } = decide_ext(&cfg, &req, Some(http(401))) else { panic!("denied") };
    assert_eq!((response.status, response.body.as_slice()), (401, &b"denied by authz"[..]));
    assert_eq!(response.headers, vec![("x-reason".to_owned(), "no".to_owned())]);
    assert_eq!(status(&decide_ext(&cfg, &req, Some(http(0)))), 403, "no answer: Envoy's status_on_error");
    assert_eq!(status(&decide_ext(&cfg, &get("/other"), None)), 404, "no route: nobody is asked");
}

#[test]
fn ext_authz_restrictions_are_jwt_allow_policies() {
    let rules = json!([{"path": "/a", "methods": ["GET"], "extAuth": {"authorizers": ["authz"], "restrictions": {
        "authentications": [{"issuer": ISSUER, "jwksUri": JWKS_URL}], "authorizations": [{"audiences": ["x"]}]}}}]);
    let cfg = with_ext_authz(rules);
    assert_eq!(status(&decide_ext(&cfg, &get("/a"), Some(http(200)))), 403, "authorizer said yes, no token");
    let token = rs256(claims_with(json!({"aud": "x"})));
    assert_eq!(status(&decide_ext(&cfg, &bearer(get("/a"), &token), Some(http(200)))), 200);
    let wrong = rs256(claims_with(json!({"aud": "y"})));
    assert_eq!(status(&decide_ext(&cfg, &bearer(get("/a"), &wrong), Some(http(200)))), 403);
    let expired = rs256(claims_with(json!({"exp": NOW_SECS - 3600})));
    assert_eq!(status(&decide_ext(&cfg, &bearer(get("/a"), &expired), None)), 401, "jwt_authn before the authorizer");
}
