//! `oauth2_introspection` decisions (reference §2.7, §2.9, case 19): the call the filter asks the
//! host to make, Oathkeeper's statuses for each answer, and answers kept per (URL, token).

mod common;

use std::rc::Rc;

use apirule_wasm::calls::{Answer, Answers};
use apirule_wasm::jwt::cache::VerifiedTokens;
use apirule_wasm::policy::Decision;
use common::*;
use serde_json::{json, Value};

const URL: &str = "http://idp.example.com/introspect";
const OTHER_URL: &str = "http://other.example.com/introspect";

fn introspection(extra: Value) -> Value {
    let mut c = json!({"introspection_url": URL, "required_scope": ["read"], "target_audience": ["api"]});
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

fn config(rules: Value) -> apirule_wasm::config::Config {
    load(vec![apirule("intro", HOST, rules)])
}

fn answer_of(v: Value) -> Answer {
    Answer::Ok(Rc::new(v.as_object().cloned().unwrap()))
}

fn good() -> Value {
    json!({"active": true, "sub": "alice", "aud": "api", "scope": "read write", "exp": NOW_SECS + 60, "client_id": "app"})
}

/// Decides `req` with `fresh` as the request's own answers and `kept` as the worker's.
fn decide(
    cfg: &apirule_wasm::config::Config,
    req: &apirule_wasm::request::Request,
    fresh: Vec<Answer>,
    kept: &mut Answers,
) -> Decision {
    kept.fresh = fresh.into_iter().map(|a| ((URL.to_owned(), "opaque-1".to_owned()), a)).collect();
    let d = cfg.policy.decide_with(req, NOW_MS, &default_cache(), &mut VerifiedTokens::disabled(), kept);
    kept.fresh.clear();
    d
}

fn rules(extra: Value) -> Value {
    json!([rule("/.*", &["GET"], "oauth2_introspection", Some(introspection(extra)))])
}

#[test]
fn a_token_without_an_answer_asks_for_the_call() {
    let cfg = config(rules(json!({"introspection_request_headers": {"X-Api-Key": "k"}})));
    let Decision::NeedCall { call } = decide(&cfg, &bearer(get("/x"), "opaque-1"), vec![], &mut Answers::default())
    else {
        panic!("a call is needed")
    };
    assert_eq!(call.url, URL);
    assert_eq!(call.body, b"token=opaque-1");
    assert!(call.headers.contains(&("x-api-key".into(), "k".into())));
    assert_eq!(status(&decide(&cfg, &get("/x"), vec![], &mut Answers::default())), 401, "no token: not responsible");
}

#[test]
fn oathkeepers_statuses_for_each_answer() {
    let cfg = config(rules(json!({})));
    let req = bearer(get("/x"), "opaque-1");
    let with = |patch: Value| {
        let mut v = good();
        for (k, x) in patch.as_object().unwrap() {
            v[k] = x.clone();
        }
        status(&decide(&cfg, &req, vec![answer_of(v)], &mut Answers::default()))
    };
    assert_eq!(with(json!({})), 200);
    assert_eq!(with(json!({"active": false})), 401, "inactive");
    assert_eq!(with(json!({"exp": NOW_SECS - 1})), 401, "expired");
    assert_eq!(with(json!({"scope": "write"})), 403, "wrong scope");
    assert_eq!(with(json!({"aud": ["web"]})), 403, "wrong audience");
    assert_eq!(with(json!({"token_use": "refresh_token"})), 403);
    assert_eq!(
        status(&decide(&cfg, &req, vec![Answer::Failed("down".into())], &mut Answers::default())),
        500,
        "server down"
    );
    assert_eq!(status(&decide(&cfg, &req, vec![Answer::TooManyRequests], &mut Answers::default())), 429);
}

#[test]
fn answers_are_kept_only_with_a_cache_ttl_and_only_for_their_url() {
    let req = bearer(get("/x"), "opaque-1");
    let uncached = config(rules(json!({})));
    let mut kept = Answers::default();
    assert_eq!(status(&decide(&uncached, &req, vec![answer_of(good())], &mut kept)), 200);
    assert!(kept.is_empty(), "Oathkeeper's default: no cache");

    let cached = config(rules(json!({"cache": {"enabled": true, "ttl": "30s"}})));
    assert_eq!(status(&decide(&cached, &req, vec![answer_of(good())], &mut kept)), 200);
    assert_eq!(kept.len(), 1);
    assert_eq!(status(&decide(&cached, &req, vec![], &mut kept)), 200, "answered from the cache");
    // The same token under another introspection URL is never answered from it.
    let elsewhere = config(json!([rule(
        "/.*",
        &["GET"],
        "oauth2_introspection",
        Some(json!({"introspection_url": OTHER_URL, "cache": {"enabled": true}}))
    )]));
    assert!(matches!(decide(&elsewhere, &req, vec![], &mut kept), Decision::NeedCall { .. }));
    // A kept answer is judged again under each rule's own checks.
    let strict = config(rules(json!({"required_scope": ["admin"], "cache": {"enabled": true}})));
    assert_eq!(status(&decide(&strict, &req, vec![], &mut kept)), 403);
    // Failed checks are never kept.
    let mut fresh_cache = Answers::default();
    let inactive = answer_of(json!({"active": false}));
    assert_eq!(status(&decide(&cached, &req, vec![inactive], &mut fresh_cache)), 401);
    assert!(fresh_cache.is_empty());
}

#[test]
fn case_19_an_opaque_token_is_refused_by_jwt_before_introspection() {
    let strategies = json!([{"handler": "jwt", "config": jwt_config(json!({}))},
                            {"handler": "oauth2_introspection", "config": introspection(json!({}))}]);
    let cfg = config(json!([{"path": "/.*", "methods": ["GET"], "accessStrategies": strategies}]));
    let req = bearer(get("/x"), "opaque-1");
    assert_eq!(status(&decide(&cfg, &req, vec![answer_of(good())], &mut Answers::default())), 401);
}

#[test]
fn the_session_reaches_the_mutators() {
    let mut r = rule("/.*", &["GET"], "oauth2_introspection", Some(introspection(json!({}))));
    r["mutators"] = json!([{"handler": "header", "config": {"headers": {
        "X-User": "{{ print .Subject }}", "X-Client": "{{ print .Extra.client_id }}"}}}]);
    let cfg = config(json!([r]));
    let Decision::Allow { set_headers, .. } =
        decide(&cfg, &bearer(get("/x"), "opaque-1"), vec![answer_of(good())], &mut Answers::default())
    else {
        panic!("allowed")
    };
    assert!(set_headers.contains(&("x-user".into(), "alice".into())), "{set_headers:?}");
    assert!(set_headers.contains(&("x-client".into(), "app".into())), "{set_headers:?}");
}

#[test]
fn strategy_none_sends_the_scopes_to_the_endpoint() {
    let cfg = config(rules(json!({"scope_strategy": "none"})));
    let Decision::NeedCall { call } = decide(&cfg, &bearer(get("/x"), "opaque-1"), vec![], &mut Answers::default())
    else {
        panic!("a call is needed")
    };
    assert_eq!(call.body, b"token=opaque-1&scope=read");
    let mut v = good();
    v["scope"] = json!("");
    assert_eq!(status(&decide(&cfg, &bearer(get("/x"), "opaque-1"), vec![answer_of(v)], &mut Answers::default())), 200);
}
