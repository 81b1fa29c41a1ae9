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

/// Valid tokens of the rule below, each a different signed token: every run proves that what the
/// generators spray around is refused because it is broken, not because nothing passes.
fn valid_tokens() -> Vec<String> {
    let mut out: Vec<String> = (0..8)
        .map(|i| {
            rs256(json!({"iss": ISSUER, "sub": format!("user-{i}"), "exp": NOW_SECS + 60 + i, "iat": NOW_SECS - i}))
        })
        .collect();
    out.push(rs256(json!({"iss": ISSUER, "sub": "user-1", "aud": ["a", "b"], "scp": ["read"], "exp": NOW_SECS + 1})));
    out.push(mint(json!({"alg": "RS256", "kid": "k1", "typ": "at+jwt"}), good_claims(), Signer::Rsa));
    out.push(mint(json!({"alg": "ES256", "kid": "e1"}), good_claims(), Signer::Ec));
    out
}

#[test]
fn tokens() {
    let mut rng = Rng(1);
    let valid = rs256(good_claims());
    let cfg = load(vec![apirule(
        "a",
        HOST,
        json!([rule("/.*", &["GET"], "jwt", Some(jwt_config(json!({"allowed_algorithms": ["RS256", "ES256"]}))))]),
    )]);
    let cache = default_cache();
    let decide = |raw: &[u8]| {
        let req =
            Request { headers: vec![("authorization".into(), [b"Bearer ".as_slice(), raw].concat())], ..get("/x") };
        status(&cfg.policy.decide(&req, NOW_MS, &cache))
    };
    let known = valid_tokens();
    for token in &known {
        assert_eq!(decide(token.as_bytes()), 200, "a valid token was refused: {token}");
    }
    let (mut allowed, mut intact) = (0, 0);
    for i in 0..10_000 {
        // One case in 16 is a valid token as it is: it must pass, between the broken ones.
        let raw = if i % 16 == 0 {
            intact += 1;
            known[rng.below(known.len())].as_bytes().to_vec()
        } else if rng.below(2) == 0 {
            rng.mutate(valid.as_bytes())
        } else {
            rng.bytes(300, ANY)
        };
        let text = String::from_utf8_lossy(&raw);
        let _ = token::parse(&text);
        // A mutated token must never be accepted unless the mutation left it intact.
        if decide(&raw) == 200 {
            allowed += 1;
            assert!(
                known.iter().any(|k| k.as_bytes() == raw) || raw == valid.as_bytes(),
                "a modified token was accepted: {text}"
            );
        } else {
            assert!(!known.iter().any(|k| k.as_bytes() == raw), "a valid token was refused: {text}");
        }
    }
    assert!(allowed >= intact && intact >= 600, "{allowed} allowed, {intact} valid tokens sent");
}

#[test]
fn jwks_documents() {
    let mut rng = Rng(2);
    let valid = json!({"keys": [rsa_public_jwk("k1"), ec_public_jwk("e1")]}).to_string();
    let mut usable = 0;
    for i in 0..20_000 {
        // One case in 16 is the valid document: both its keys must be read, between the broken ones.
        let raw = if i % 16 == 0 {
            valid.as_bytes().to_vec()
        } else if rng.below(2) == 0 {
            rng.mutate(valid.as_bytes())
        } else {
            rng.bytes(200, ANY)
        };
        let parsed = parse_jwks(&raw);
        if i % 16 == 0 {
            assert_eq!(parsed.map(|s| s.keys.len()).ok(), Some(2), "the valid key set was not read");
            usable += 1;
        }
    }
    assert_eq!(usable, 1250);
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
    // Known answers first: the open rule forwards (normalised), the rest is 401; the generated
    // paths below must let a share through too, so the checks on what is forwarded do run.
    for (path, want, forwarded) in [
        ("/public/x", 200, "/public/x"),
        ("/public/a/b/", 200, "/public/a/b/"),
        ("/public/a/./b/../c", 200, "/public/a/c"),
        ("/public//x", 200, "/public/x"),
        ("/public/%41", 200, "/public/A"),
        ("/public/x?q=/admin", 200, "/public/x?q=/admin"),
        ("/public/../admin", 401, ""),
        ("/admin", 401, ""),
        ("/public/..%2Fadmin", 400, ""),
    ] {
        let d = cfg.policy.decide(&Request::new("GET", HOST, path), NOW_MS, &cache);
        assert_eq!(status(&d), want, "{path}");
        if let Decision::Allow { set_headers, .. } = &d {
            let sent = set_headers.iter().find(|(k, _)| k == ":path").map_or(path, |(_, v)| v.as_str());
            assert_eq!(sent, forwarded, "{path}");
        }
    }
    let mut allowed = 0;
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
            allowed += 1;
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
    assert!(allowed >= 2_000, "only {allowed} of 20000 generated paths under /public/ were forwarded");
}

#[test]
fn configurations() {
    let mut rng = Rng(4);
    let valid = json!({"apiRules": [apirule("a", HOST, json!([
        rule("/.*", &["GET"], "jwt", Some(jwt_config(json!({"required_scope": ["a.*"], "token_from": {"cookie": "c"}})))),
        rule("/x", &["POST"], "noop", None)]))], "jwks": {"clusters": {JWKS_URL: "c"}}})
    .to_string();
    let mut loaded = 0;
    for i in 0..20_000 {
        // One case in 16 is the valid configuration: it must load, between the broken ones.
        let raw = if i % 16 == 0 {
            valid.as_bytes().to_vec()
        } else if rng.below(3) > 0 {
            rng.mutate(valid.as_bytes())
        } else {
            rng.bytes(120, ANY)
        };
        let parsed = apirule_wasm::config::parse(&raw);
        if i % 16 == 0 {
            assert!(parsed.is_ok(), "the valid configuration was refused: {parsed:?}");
            loaded += 1;
        }
    }
    assert_eq!(loaded, 1250);
}
