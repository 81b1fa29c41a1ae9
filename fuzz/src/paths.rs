//! Path normalisation and matching: arbitrary `:path`s through `request::path` and through
//! `Policy::decide` on APIRules with an open `/public/...` rule and a protected `/admin...` rule,
//! for every way a rule can be open (v1beta1 `no_auth`, `allow` and `noop`, v2alpha1 and v2
//! `noAuth`; v1beta1 in Istio JWT mode with `/admin.*` protected before an open `/.*`).
//!
//! The invariants, checked against the path rules of docs/security.md ("Paths") and RFC 3986,
//! written here independently of `src/request`:
//! - `rule_path` refuses exactly the paths the docs list (no leading `/`, a bad escape, a raw `\`,
//!   over 8 KiB, an escaped `/` or `\`, a control character, an escape left after one decoding, a
//!   dot segment with `;` parameters or once `\` is a separator, a `..` that would remove an empty
//!   segment); otherwise its normalised path is: unreserved escapes decoded, other escapes
//!   upper-cased, RFC 3986 5.2.4 dot-segment removal, slashes merged; and `decoded` is that path
//!   percent-decoded once. Both are stable: the normalised path normalises to itself.
//! - A path with a bad escape is never allowed.
//! - **No request is allowed without a token whose forwarded path (the `:path` the filter rewrites
//!   to, else the one sent), fully percent-decoded and dot-segment-resolved, starts with
//!   `/admin`.** This found the escaped-slash bypass (`/public/..%2Fadmin`) before it was fixed
//!   (docs/security.md, "Fuzzing", finding 1).

use apirule_wasm::config;
use apirule_wasm::keys::KeyCache;
use apirule_wasm::policy::{Decision, Policy};
use apirule_wasm::request::path::{self, EscapedSlashes};
use apirule_wasm::request::Request;
use serde_json::{json, Value};

/// The hosts, each with what its APIRule protects: `/admin.*` (a regex: every path starting with
/// `/admin`) or, for the v2 catch-all, `/admin` and `/admin/{**}`.
pub const HOSTS: [(&str, Protects); 8] = [
    ("noauth.example.com", Protects::Prefix),
    ("allow.example.com", Protects::Prefix),
    ("noop.example.com", Protects::Prefix),
    ("catchall.example.com", Protects::Prefix),
    ("istio.example.com", Protects::Prefix),
    ("v2alpha1.example.com", Protects::Prefix),
    ("v2.example.com", Protects::Prefix),
    ("v2all.example.com", Protects::Segment),
];

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Protects {
    /// Every path starting with `/admin`.
    Prefix,
    /// `/admin` and every path under `/admin/`.
    Segment,
}

impl Protects {
    fn covers(self, resolved: &str) -> bool {
        match self {
            Protects::Prefix => resolved.starts_with("/admin"),
            Protects::Segment => resolved == "/admin" || resolved.starts_with("/admin/"),
        }
    }
}

const JWKS: &str = "https://idp.example.com/keys";
const ISSUER: &str = "https://idp.example.com";

fn named(host: &str) -> Value {
    json!({"name": host.split('.').next().unwrap_or("x"), "namespace": "default"})
}

fn v1beta1(host: &str, rules: Value) -> Value {
    json!({"apiVersion": "gateway.kyma-project.io/v1beta1", "kind": "APIRule", "metadata": named(host),
           "spec": {"host": host, "service": {"name": "httpbin", "port": 8000}, "gateway": "kyma-system/kyma-gateway",
                    "rules": rules}})
}

fn v1_rule(path: &str, strategy: &Value) -> Value {
    json!({"path": path, "methods": ["GET", "POST"], "accessStrategies": [strategy]})
}

fn v2(version: &str, host: &str, rules: Value) -> Value {
    json!({"apiVersion": format!("gateway.kyma-project.io/{version}"), "kind": "APIRule", "metadata": named(host),
           "spec": {"hosts": [host], "service": {"name": "httpbin", "port": 8000}, "gateway": "kyma-system/kyma-gateway",
                    "rules": rules}})
}

pub fn plugin_config() -> Value {
    let jwt = json!({"handler": "jwt", "config": {"jwks_urls": [JWKS], "trusted_issuers": [ISSUER]}});
    let istio_jwt = json!({"handler": "jwt", "config": {"authentications": [{"issuer": ISSUER, "jwksUri": JWKS}]}});
    let open = |handler: &str| json!({"handler": handler});
    let v1 = |host: &str, handler: &str| {
        v1beta1(host, json!([v1_rule("/public/.*", &open(handler)), v1_rule("/admin.*", &jwt)]))
    };
    let v2_jwt = |path: &str| json!({"path": path, "methods": ["GET", "POST"], "jwt": {"authentications": [{"issuer": ISSUER, "jwksUri": JWKS}]}});
    let v2_open = |path: &str| json!({"path": path, "methods": ["GET", "POST"], "noAuth": true});
    let v2_rules = json!([v2_open("/public/{**}"), v2_jwt("/admin"), v2_jwt("/admin/{**}")]);
    json!({"apiRules": [
        v1(HOSTS[0].0, "no_auth"),
        v1(HOSTS[1].0, "allow"),
        v1(HOSTS[2].0, "noop"),
        v1beta1(HOSTS[3].0, json!([v1_rule("/admin.*", &jwt), v1_rule("/.*", &open("no_auth"))])),
        // Istio mode reads a rule's path as an AuthorizationPolicy path as well: `/public/.*` admits
        // paths starting with `/public/.` there. (A catch-all `/.*` no_auth after the jwt rule
        // would admit `/admin` itself: docs/security.md, "Fuzzing", finding 2.)
        v1beta1(HOSTS[4].0, json!([v1_rule("/admin.*", &istio_jwt), v1_rule("/public/.*", &open("no_auth"))])),
        v2("v2alpha1", HOSTS[5].0, v2_rules.clone()),
        v2("v2", HOSTS[6].0, v2_rules),
        // Earlier rules' paths are cut from the catch-all's AuthorizationPolicy (notPaths).
        v2("v2", HOSTS[7].0, json!([v2_jwt("/admin"), v2_jwt("/admin/{**}"), v2_open("/*")])),
    ]})
}

/// A path each host's open rule admits.
fn open_path(host: &str) -> &'static str {
    if host.starts_with("istio.") {
        "/public/.x"
    } else {
        "/public/x"
    }
}

fn policy() -> &'static Policy {
    // The policy holds `Rc`s (it is per worker in the filter): one per thread, built once.
    thread_local!(static POLICY: &'static Policy = {
        let p = config::parse(plugin_config().to_string().as_bytes()).expect("the path policy loads").policy;
        self_check(&p);
        Box::leak(Box::new(p))
    });
    POLICY.with(|p| *p)
}

/// The invariant is not vacuous: each host allows its open path and refuses `/admin` without a
/// token.
fn self_check(p: &Policy) {
    let keys = KeyCache::default();
    for (host, _) in HOSTS {
        let open = p.decide(&Request::new("GET", host, open_path(host)), 0, &keys);
        assert!(matches!(open, Decision::Allow { .. }), "{host}: {} is not allowed: {open:?}", open_path(host));
        for admin in ["/admin", "/admin/x", "/public/../admin"] {
            let d = p.decide(&Request::new("GET", host, admin), 0, &keys);
            assert!(!matches!(d, Decision::Allow { .. }), "{host}: {admin} is allowed without a token");
        }
    }
}

// --- RFC 3986, written here ------------------------------------------------------------------

/// The path part of a `:path`: up to the first `?` or `#`.
pub fn path_part(raw: &str) -> &str {
    raw.split(['?', '#']).next().unwrap_or("")
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Decodes `%XX`; escapes for which `keep` holds stay encoded (upper-case hex). `None` on a bad
/// escape.
fn percent_decode(p: &str, keep: impl Fn(u8) -> bool) -> Option<Vec<u8>> {
    let b = p.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = (*b.get(i + 1)? as char).to_digit(16)?;
            let l = (*b.get(i + 2)? as char).to_digit(16)?;
            let v = (h * 16 + l) as u8;
            if keep(v) {
                out.extend_from_slice(format!("%{v:02X}").as_bytes());
            } else {
                out.push(v);
            }
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

/// RFC 3986 section 5.2.4, step by step as written there.
pub fn rfc_remove_dot_segments(path: &str) -> String {
    let mut input = path.to_owned();
    let mut output = String::new();
    while !input.is_empty() {
        if let Some(rest) = input.strip_prefix("../") {
            input = rest.to_owned();
        } else if let Some(rest) = input.strip_prefix("./") {
            input = rest.to_owned();
        } else if input.starts_with("/./") {
            input = input[2..].to_owned();
        } else if input == "/." {
            input = "/".to_owned();
        } else if input.starts_with("/../") || input == "/.." {
            input = if input == "/.." { "/".to_owned() } else { input[3..].to_owned() };
            match output.rfind('/') {
                Some(i) => output.truncate(i),
                None => output.clear(),
            }
        } else if input == "." || input == ".." {
            input.clear();
        } else {
            let start = usize::from(input.starts_with('/'));
            let end = input[start..].find('/').map_or(input.len(), |i| i + start);
            output.push_str(&input[..end]);
            input = input[end..].to_owned();
        }
    }
    output
}

/// `rule_path`'s normalised path as specified: `None` where the filter must refuse the path (400).
pub fn reference_rule_path(p: &str) -> Option<String> {
    if p.len() > 8 * 1024 || !p.starts_with('/') || p.contains('\\') {
        return None;
    }
    let text = String::from_utf8(percent_decode(p, |b| !unreserved(b))?).ok()?;
    // Empty segments marked with a character `text` does not hold, so that a `..` removing one
    // shows as a missing mark. (Whatever dot segments remove is never forwarded: only what is
    // left must pass the checks below.)
    let mark = ('\u{1}'..).find(|c| !text.contains(*c))?;
    let marked: Vec<String> = text
        .split('/')
        .enumerate()
        .map(|(i, s)| if i > 0 && s.is_empty() { mark.to_string() } else { s.to_owned() })
        .collect();
    let marked = marked.join("/");
    let resolved = rfc_remove_dot_segments(&marked);
    if resolved.matches(mark).count() != marked.matches(mark).count() {
        return None;
    }
    let mut normalized = String::new();
    for c in resolved.replace(mark, "").chars() {
        if !(c == '/' && normalized.ends_with('/')) {
            normalized.push(c);
        }
    }
    let decoded = String::from_utf8(percent_decode(&normalized, |_| false)?).ok()?;
    let escape_left = decoded.as_bytes().windows(2).any(|w| w[0] == b'%' && (w[1] == b'%' || w[1].is_ascii_hexdigit()));
    let dot_segment = decoded.split(['/', '\\']).any(|s| matches!(s.split(';').next(), Some("." | "..")));
    let refused = normalized.contains("%2F")
        || normalized.contains("%5C")
        || decoded.bytes().any(|b| b.is_ascii_control())
        || escape_left
        || dot_segment;
    (!refused).then_some(normalized)
}

/// The path as a backend that decodes every escape once and resolves dot segments sees it
/// (bytes that are not UTF-8 replaced). `keep_slash`: `%2F` stays encoded. `None`: a bad escape.
pub fn resolved(p: &str, keep_slash: bool) -> Option<String> {
    let decoded = percent_decode(p, |b| keep_slash && b == b'/')?;
    Some(rfc_remove_dot_segments(&String::from_utf8_lossy(&decoded)))
}

fn has_dot_segment(p: &str) -> bool {
    p.split('/').skip(1).any(|s| s == "." || s == "..")
}

/// The `request::path` functions against the reference.
fn check_path_functions(raw: &str) {
    let (p, query) = path::split_query(raw);
    assert_eq!(p, path_part(raw), "split_query path of {raw:?}");
    if let Some(q) = query {
        assert!(!q.contains('#'), "a fragment left in the query of {raw:?}");
    }
    let got = path::rule_path(raw, EscapedSlashes::Reject);
    let expected = reference_rule_path(p);
    assert_eq!(got.as_ref().ok().map(|r| &r.normalized), expected.as_ref(), "rule_path({raw:?}): {got:?}");
    let Ok(r) = got else { return };
    assert!(r.normalized.starts_with('/') && !has_dot_segment(&r.normalized) && !r.normalized.contains("//"));
    let decoded = percent_decode(&r.normalized, |_| false).and_then(|d| String::from_utf8(d).ok());
    assert_eq!(decoded.as_ref(), Some(&r.decoded), "decoded of {raw:?}");
    assert_eq!(path::rule_path(&r.normalized, EscapedSlashes::Reject).as_ref(), Ok(&r), "not stable on {raw:?}");
    // `keep` only admits more paths: what `reject` admits it reads the same way.
    assert_eq!(path::rule_path(raw, EscapedSlashes::Keep).as_ref(), Ok(&r), "escapedSlashes keep on {raw:?}");
    let forwarded = path::forwarded_path(raw, &r).unwrap_or_else(|| raw.to_owned());
    assert_eq!(path::split_query(&forwarded).0, r.normalized, "forwarded {forwarded:?} for {raw:?}");
}

/// A path that reaches what the host protects once fully decoded and resolved.
fn must_be_refused(raw: &str, protects: Protects) -> bool {
    resolved(path_part(raw), false).is_some_and(|full| protects.covers(&full))
}

/// Input: one byte choosing host and method, then the `:path` (lossy UTF-8).
pub fn check(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else { return };
    let (host, protects) = HOSTS[usize::from(sel & 0x7f) % HOSTS.len()];
    let method = if sel & 0x80 == 0 { "GET" } else { "POST" };
    let raw = String::from_utf8_lossy(rest);
    check_path_functions(&raw);
    let req = Request::new(method, host, &raw);
    let d = policy().decide(&req, 0, &KeyCache::default());
    let Decision::Allow { set_headers, .. } = &d else { return };
    let forwarded = set_headers.iter().find(|(k, _)| k == ":path").map_or(raw.as_ref(), |(_, v)| v.as_str());
    assert!(reference_rule_path(path_part(&raw)).is_some(), "{host}: {raw:?} is refused by the path rules and allowed");
    // What the backend gets is the forwarded path (the normalised one, or `raw` when that is
    // normalised already), so that is what must not reach /admin. `raw` itself may, once fully
    // decoded, name a protected path that its normalisation does not (`/admin%2Fm/..` is `/`:
    // the `..` removes the segment `admin%2Fm`): the backend never sees it.
    assert!(
        !must_be_refused(forwarded, protects),
        "{host} {method}: {raw:?} is forwarded as {forwarded:?}, which reaches /admin, without a token"
    );
}
