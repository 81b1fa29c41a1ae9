//! Issue 11 and its class (CVE-2021-31920): no spelling of a path makes a protected path match an
//! open rule, and nothing ambiguous reaches the backend; the backend gets exactly the path that
//! was decided on. One table for both semantics: a v1beta1 APIRule (Oathkeeper's answers) and a
//! v2 one (Istio's), each with an open and a protected rule. Each row is one request and the
//! single status each semantics answers when the filter gets the request as written; what Envoy
//! answers before the filter (some of these never reach it) is in
//! tests/e2e/test_path_hardening.py. docs/security.md, "Paths", says why for each class.

mod common;

use apirule_wasm::config::Config;
use apirule_wasm::policy::Decision;
use apirule_wasm::request::Request;
use common::*;
use serde_json::{json, Value};

const V1: &str = "v1.example.com";
const V2: &str = "v2.example.com";

/// v1beta1: `/public/.*` GET no_auth, `/admin.*` GET/POST jwt; v2: `/public/{**}` GET noAuth,
/// `/admin/{**}` GET/POST jwt. `extra`: plugin options.
fn config(extra: Value) -> Config {
    let v1 = apirule(
        "v1",
        V1,
        json!([
            rule("/public/.*", &["GET"], "no_auth", None),
            rule("/admin.*", &["GET", "POST"], "jwt", Some(jwt_config(json!({}))))
        ]),
    );
    let v2 = v2_apirule(
        "v2",
        V2,
        json!([{"path": "/public/{**}", "methods": ["GET"], "noAuth": true},
               {"path": "/admin/{**}", "methods": ["GET", "POST"],
                "jwt": {"authentications": [{"issuer": ISSUER, "jwksUri": JWKS_URL}]}}]),
    );
    let mut plugin = json!({"apiRules": [v1, v2]});
    for (k, v) in extra.as_object().into_iter().flatten() {
        plugin[k] = v.clone();
    }
    try_load(plugin).unwrap()
}

/// What the client gets, and the `:path` the backend gets when it is forwarded.
fn answer(cfg: &Config, req: &Request) -> (u16, Option<String>) {
    let d = decide_refetching(&cfg.policy, req, NOW_MS, &mut default_cache(), &default_jwks());
    let forwarded = match &d {
        Decision::Allow { set_headers, .. } => {
            Some(set_headers.iter().find(|(k, _)| k == ":path").map_or(req.path.clone(), |(_, v)| v.clone()))
        }
        _ => None,
    };
    (status(&d), forwarded)
}

/// One request: method, path, headers (`TOKEN` stands for a valid token), and the status v1 and v2
/// answer. A 200 must reach the backend with `forwarded` as its path.
struct Row {
    method: &'static str,
    path: String,
    headers: Vec<(&'static str, String)>,
    v1: u16,
    v2: u16,
    forwarded: String,
}

fn row(method: &'static str, path: &str, v1: u16, v2: u16) -> Row {
    Row { method, path: path.to_owned(), headers: Vec::new(), v1, v2, forwarded: String::new() }
}

impl Row {
    fn header(mut self, name: &'static str, value: &str) -> Row {
        self.headers.push((name, value.to_owned()));
        self
    }
    fn token(self) -> Row {
        let value = format!("Bearer {}", rs256(good_claims()));
        self.header("authorization", &value)
    }
    fn forwarded(mut self, path: impl Into<String>) -> Row {
        self.forwarded = path.into();
        self
    }
}

fn check(cfg: &Config, rows: &[Row]) {
    let mut wrong = Vec::new();
    for r in rows {
        for (host, want) in [(V1, r.v1), (V2, r.v2)] {
            let mut req = Request::new(r.method, host, &r.path);
            for (k, v) in &r.headers {
                req = req.with_header(k, v);
            }
            let (got, forwarded) = answer(cfg, &req);
            let shown = if r.path.len() > 60 {
                format!("{}... ({} bytes)", &r.path[..30], r.path.len())
            } else {
                r.path.clone()
            };
            if got != want {
                wrong.push(format!("{host}: {} {shown}: {got}, expected {want}", r.method));
            }
            if let Some(f) = forwarded.filter(|f| *f != r.forwarded) {
                wrong.push(format!("{host}: {} {shown}: forwarded as {f:?}, expected {:?}", r.method, r.forwarded));
            }
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

#[test]
fn the_issues_paths_and_their_class() {
    let long = format!("/public/{}", "a".repeat(64 * 1024));
    let rows = [
        row("GET", "/public/x", 200, 200).forwarded("/public/x"),
        // Dot segments, also encoded: decided (and forwarded) as /admin (case 60).
        row("GET", "/public/../admin", 401, 404),
        row("GET", "/public/%2e%2e/admin", 401, 404),
        row("GET", "/public/.%2E/admin/x", 401, 403),
        row("GET", "/public/%2E./admin/x", 401, 403),
        row("GET", "/public/../admin/x", 200, 200).token().forwarded("/admin/x"),
        // Issue 11: encoded separators, in any case, with encoded dots or not: 400 before any rule.
        row("GET", "/public/..%2Fadmin", 400, 400),
        row("GET", "/public/..%2fadmin", 400, 400),
        row("GET", "/public/%5c../admin", 400, 400),
        row("GET", "/public/%5C..%5Cadmin", 400, 400),
        row("GET", "/public/%2E%2E%2Fadmin/x", 400, 400),
        row("GET", "/public/a%2Fb", 400, 400),
        // A raw backslash, double encoding, overlong UTF-8, dot segments with parameters, `//..`.
        row("GET", "/public/\\../admin", 400, 400),
        row("GET", "/public/%252e%252e/admin", 400, 400),
        row("GET", "/public/%252F", 400, 400),
        row("GET", "/public/%c0%ae%c0%ae/admin", 400, 400),
        row("GET", "/public/..;/admin", 400, 400),
        row("GET", "/public//../admin", 400, 400),
        // Slashes are merged, so a backend that merges them sees what was decided on.
        row("GET", "//admin", 401, 404),
        row("GET", "//admin/x", 401, 403),
        row("GET", "//admin/x", 200, 200).token().forwarded("/admin/x"),
        row("GET", "/public//x", 200, 200).forwarded("/public/x"),
        // Spellings that are other paths: case, trailing slash, parameters are not normalised.
        row("GET", "/admin/", 401, 403),
        row("GET", "/ADMIN", 404, 404),
        row("GET", "/%61dmin", 401, 404),
        row("GET", "/%61dmin/x", 200, 200).token().forwarded("/admin/x"),
        row("GET", "/admin;x", 401, 404),
        row("GET", "/public/x;y", 200, 200).forwarded("/public/x;y"),
        // A control character: some backends cut the path there.
        row("GET", "/admin%00", 400, 400),
        row("GET", "/public/x%00", 400, 400),
        // The query and a fragment are never part of the path; a fragment is not forwarded.
        row("GET", "/admin?x=/public", 401, 404),
        row("GET", "/public/x?y=/../admin", 200, 200).forwarded("/public/x?y=/../admin"),
        row("GET", "/admin#/public", 401, 404),
        row("GET", "/public/x#/.././../admin", 200, 200).forwarded("/public/x"),
        // Longer than 8 KiB (Envoy refuses 64 KiB itself: 431).
        Row { path: long, ..row("GET", "", 400, 400) },
        // Methods: v1 compares them case-insensitively (Oathkeeper), v2 exactly (Istio); Envoy
        // refuses a lowercase method before the filter runs.
        row("get", "/public/x", 200, 404).forwarded("/public/x"),
        row("get", "/admin/x", 401, 404),
        // An override header never changes the method the rules see.
        row("POST", "/public/x", 404, 404).header("x-http-method-override", "GET"),
        row("POST", "/public/x", 404, 404).header("x-http-method", "GET").header("x-method-override", "GET"),
    ];
    check(&config(json!({})), &rows);
}

#[test]
fn repeated_long_and_duplicated_token_headers() {
    let valid = rs256(good_claims());
    let forged = rs256(json!({"iss": ISSUER, "sub": "admin", "exp": NOW_SECS + 3600, "admin": true}))
        .rsplit_once('.')
        .map(|(signed, _)| format!("{signed}.AAAA"))
        .unwrap();
    let bearer = |t: &str| format!("Bearer {t}");
    let rows = [
        // Seen apart (Envoy joins them first; see below), two Authorization headers are refused.
        row("GET", "/admin/x", 400, 400)
            .header("authorization", &bearer(&valid))
            .header("authorization", &bearer(&forged)),
        row("GET", "/public/x", 400, 400).header("authorization", &bearer(&valid)).header("authorization", "Basic x"),
        // What Envoy makes of them: one value, which is no token.
        row("GET", "/admin/x", 401, 401).header("authorization", &format!("{},{}", bearer(&valid), bearer(&forged))),
        // Header and query: v1 reads only its token_from location (the header; Oathkeeper), v2
        // every location and all must verify (Envoy jwt_authn).
        row("GET", &format!("/admin/x?access_token={forged}"), 200, 401)
            .header("authorization", &bearer(&valid))
            .forwarded(format!("/admin/x?access_token={forged}")),
        row("GET", &format!("/admin/x?access_token={valid}"), 401, 401).header("authorization", &bearer(&forged)),
        row("GET", &format!("/admin/x?access_token={valid}"), 401, 200)
            .forwarded(format!("/admin/x?access_token={valid}")),
        // Long values: a token over 16 KiB is refused; other headers are Envoy's to bound (60 KiB).
        row("GET", "/admin/x", 401, 401).header("authorization", &bearer(&"A".repeat(60 * 1024))),
        row("GET", "/public/x", 200, 200).header("x-big", &"a".repeat(60 * 1024)).forwarded("/public/x"),
    ];
    check(&config(json!({})), &rows);
}

#[test]
fn escaped_slashes_keep_forwards_them_as_data_but_never_a_dot_segment() {
    let rows = [
        row("GET", "/public/a%2Fb", 200, 200).forwarded("/public/a%2Fb"),
        row("GET", "/public/a%5cb", 200, 200).forwarded("/public/a%5Cb"),
        row("GET", "/public/..%2Fadmin", 400, 400),
        row("GET", "/public/%2E%2E%2Fadmin/x", 400, 400),
        row("GET", "/public/%5c../admin", 400, 400),
        // Everything else stays as without the option.
        row("GET", "/public/\\x", 400, 400),
        row("GET", "/public/%252F", 400, 400),
        row("GET", "//admin/x", 401, 403),
    ];
    check(&config(json!({"paths": {"escapedSlashes": "keep"}})), &rows);
    // v1's access rules match the path decoded once (case 11): `/admin%2Fx` is `/admin/x` there.
    let cfg = config(json!({"paths": {"escapedSlashes": "keep"}}));
    assert_eq!(answer(&cfg, &Request::new("GET", V1, "/admin%2Fx")).0, 401);
}

#[test]
fn deny_bodies_are_the_filters_400() {
    let cfg = config(json!({}));
    for host in [V1, V2] {
        let req = Request::new("GET", host, "/public/..%2Fadmin").with_header("x-request-id", "r-1");
        let d = cfg.policy.decide(&req, NOW_MS, &default_cache());
        let Decision::Deny { response, .. } = d else { panic!("{d:?}") };
        assert_eq!(response.status, 400);
        assert!(response.headers.contains(&("content-type".into(), "application/json".into())));
        let body: Value = serde_json::from_slice(&response.body).unwrap();
        assert_eq!(
            body,
            json!({"error": {"code": 400, "status": "Bad Request", "request": "r-1",
                             "message": "The request was malformed or contained invalid parameters"}})
        );
    }
}

/// README, "What clients get", and docs/behaviour.md, "What reaches the backend": malformed
/// percent-encoding and a path that decodes to invalid UTF-8 get the same 400 JSON body, before
/// any rule (also on an open rule); without an `x-request-id` the body has no `request`.
#[test]
fn bad_percent_encoding_and_invalid_utf8_get_the_400_json_body() {
    let cfg = config(json!({}));
    let message = "The request was malformed or contained invalid parameters";
    for host in [V1, V2] {
        for path in ["/public/%", "/public/a%zz", "/public/%G1", "/public/%C3%28", "/public/%FF", "/admin%zz"] {
            for id in [Some("r-2"), None] {
                let mut req = Request::new("GET", host, path);
                if let Some(id) = id {
                    req = req.with_header("x-request-id", id);
                }
                let d = cfg.policy.decide(&req, NOW_MS, &default_cache());
                let Decision::Deny { response, .. } = d else { panic!("{host} {path}: {d:?}") };
                assert_eq!(response.status, 400, "{host} {path}");
                assert_eq!(response.headers, vec![("content-type".to_owned(), "application/json".to_owned())]);
                let body: Value = serde_json::from_slice(&response.body).unwrap();
                let want = match id {
                    Some(id) => {
                        json!({"error": {"code": 400, "status": "Bad Request", "request": id, "message": message}})
                    }
                    None => json!({"error": {"code": 400, "status": "Bad Request", "message": message}}),
                };
                assert_eq!(body, want, "{host} {path}");
            }
        }
    }
}

#[test]
fn the_option_is_refused_at_load_unless_reject_or_keep() {
    let base = |paths: Value| json!({"apiRules": [apirule("a", HOST, json!([rule("/.*", &["GET"], "noop", None)]))], "paths": paths});
    assert!(try_load(base(json!({"escapedSlashes": "reject"}))).is_ok());
    assert!(try_load(base(json!({}))).is_ok());
    for (paths, message) in [
        (
            json!({"escapedSlashes": "unescape"}),
            "plugin configuration: paths.escapedSlashes: must be \"reject\" or \"keep\"",
        ),
        (
            json!({"escapedSlashes": "KEEP"}),
            "plugin configuration: paths.escapedSlashes: must be \"reject\" or \"keep\"",
        ),
        (json!({"escapedSlashes": true}), "plugin configuration: paths.escapedSlashes: must be a string"),
        (json!({"mergeSlashes": true}), "plugin configuration: paths.mergeSlashes: unknown field"),
        (json!("reject"), "plugin configuration: paths: must be an object"),
    ] {
        let e = try_load(base(paths.clone())).unwrap_err().to_string();
        assert!(e.starts_with(message), "{paths}: {e}");
    }
}
