//! Hostile input never panics: random and mutated bytes through every parser the filter runs on
//! untrusted data (tokens, JWKS, paths, headers) and on configuration. A deterministic generator
//! keeps failures reproducible; `cargo fuzz` targets can take over the same entry points.

mod common;

use apirule_wasm::jwt::jwks::parse_jwks;
use apirule_wasm::jwt::token;
use apirule_wasm::policy::Decision;
use apirule_wasm::request::path::{self, EscapedSlashes};
use apirule_wasm::request::Request;
use common::*;
use serde_json::json;

/// xorshift64*: small, deterministic, good enough to spray bytes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn bytes(&mut self, max: usize, alphabet: &[u8]) -> Vec<u8> {
        let len = self.below(max + 1);
        (0..len).map(|_| alphabet[self.below(alphabet.len())]).collect()
    }
    /// `seed` with a few bytes flipped, inserted or removed.
    fn mutate(&mut self, seed: &[u8]) -> Vec<u8> {
        let mut v = seed.to_vec();
        for _ in 0..=self.below(4) {
            match self.below(3) {
                0 if !v.is_empty() => {
                    let i = self.below(v.len());
                    v[i] = self.next() as u8;
                }
                1 => {
                    let i = self.below(v.len() + 1);
                    v.insert(i, self.next() as u8);
                }
                _ if !v.is_empty() => {
                    let i = self.below(v.len());
                    v.remove(i);
                }
                _ => {}
            }
        }
        v
    }
}

const ANY: &[u8] =
    &[0, 1, b'.', b'/', b'%', b'?', b'#', b'a', b'Z', b'0', b'9', b'-', b'_', b'=', b'{', b'"', 0x80, 0xff];

#[test]
fn tokens() {
    let mut rng = Rng(1);
    let valid = rs256(good_claims());
    let cfg = load(vec![apirule("a", HOST, json!([rule("/.*", &["GET"], "jwt", Some(jwt_config(json!({}))))]))]);
    let cache = default_cache();
    for _ in 0..10_000 {
        let raw = if rng.below(2) == 0 { rng.mutate(valid.as_bytes()) } else { rng.bytes(300, ANY) };
        let text = String::from_utf8_lossy(&raw);
        let _ = token::parse(&text);
        let req =
            Request { headers: vec![("authorization".into(), [b"Bearer ".as_slice(), &raw].concat())], ..get("/x") };
        let d = cfg.policy.decide(&req, NOW_MS, &cache);
        // A mutated token must never be accepted unless the mutation left it intact.
        if status(&d) == 200 {
            assert_eq!(raw, valid.as_bytes(), "a modified token was accepted: {text}");
        }
    }
}

#[test]
fn jwks_documents() {
    let mut rng = Rng(2);
    let valid = json!({"keys": [rsa_public_jwk("k1"), ec_public_jwk("e1")]}).to_string();
    for _ in 0..20_000 {
        let raw = if rng.below(2) == 0 { rng.mutate(valid.as_bytes()) } else { rng.bytes(200, ANY) };
        let _ = parse_jwks(&raw);
    }
}

#[test]
fn paths_and_hosts() {
    let mut rng = Rng(3);
    let cfg = load(vec![apirule(
        "a",
        HOST,
        json!([rule("/public/.*", &["GET"], "no_auth", None), rule("/.*", &["GET", "POST"], "unauthorized", None)]),
    )]);
    let cache = default_cache();
    for _ in 0..20_000 {
        let p = String::from_utf8_lossy(&rng.bytes(60, ANY)).into_owned();
        if let Ok(r) = path::rule_path(&p, EscapedSlashes::Reject) {
            // Normalising is idempotent and never leaves a dot segment or `//` behind.
            let again = path::rule_path(&r.normalized, EscapedSlashes::Reject).map(|a| a.normalized);
            assert_eq!(again.as_deref(), Ok(r.normalized.as_str()), "{p:?}");
            assert!(!r.normalized.split('/').any(|s| s == ".." || s == "."), "{p:?} -> {r:?}");
            assert!(!r.normalized.contains("//"), "{p:?} -> {r:?}");
            // Decoding it once more changes nothing a backend routes on.
            assert!(!r.decoded.split(['/', '\\']).any(|s| s == ".." || s == "."), "{p:?} -> {r:?}");
        }
        let host = String::from_utf8_lossy(&rng.bytes(20, ANY)).into_owned();
        let _ = cfg.policy.decide(&Request::new("GET", &host, &p), NOW_MS, &cache);
        let full = format!("/public/{p}");
        let d = cfg.policy.decide(&Request::new("GET", HOST, &full), NOW_MS, &cache);
        // Whatever follows /public/, a request is only forwarded when its normalised path stays
        // under /public/, and what reaches the backend holds no escaped or raw separator.
        if let Decision::Allow { set_headers, .. } = &d {
            let forwarded = set_headers.iter().find(|(k, _)| k == ":path").map_or(full.as_str(), |(_, v)| v.as_str());
            let (forwarded_path, _) = path::split_query(forwarded);
            assert!(forwarded_path.starts_with("/public/"), "{p:?} -> {forwarded:?} was forwarded");
            let upper = forwarded_path.to_ascii_uppercase();
            assert!(
                !upper.contains("%2F") && !upper.contains("%5C") && !upper.contains('\\'),
                "{p:?} -> {forwarded:?}"
            );
        }
    }
}

#[test]
fn configurations() {
    let mut rng = Rng(4);
    let valid = json!({"apiRules": [apirule("a", HOST, json!([
        rule("/.*", &["GET"], "jwt", Some(jwt_config(json!({"required_scope": ["a.*"], "token_from": {"cookie": "c"}})))),
        rule("/x", &["POST"], "noop", None)]))], "jwks": {"clusters": {JWKS_URL: "c"}}})
    .to_string();
    for _ in 0..20_000 {
        let raw = if rng.below(3) > 0 { rng.mutate(valid.as_bytes()) } else { rng.bytes(120, ANY) };
        let _ = apirule_wasm::config::parse(&raw);
    }
}
