//! The verified-token cache seen through whole decisions: a repeated token is answered from the
//! cache, and no cached verdict ever lets through a token the uncached path would deny.

mod common;

use std::rc::Rc;

use apirule_wasm::jwt::algorithm::Algorithm;
use apirule_wasm::jwt::cache::{Verified, VerifiedTokens};
use apirule_wasm::jwt::jwks::parse_jwks;
use apirule_wasm::keys::{KeyCache, KeyStore};
use apirule_wasm::policy::Decision;
use common::*;
use serde_json::{json, Value};

fn jwt_rule(path: &str, extra: Value) -> Value {
    rule(path, &["GET"], "jwt", Some(jwt_config(extra)))
}

fn policy() -> apirule_wasm::config::Config {
    let other_jwks = "https://other.example.com/keys";
    load(vec![apirule(
        "httpbin",
        HOST,
        json!([
            jwt_rule("/a", json!({})),
            jwt_rule("/strict", json!({"trusted_issuers": ["https://another-idp.example.com"]})),
            jwt_rule("/aud", json!({"target_audience": ["orders"]})),
            jwt_rule("/other-keys", json!({"jwks_urls": [other_jwks]})),
        ]),
    )])
}

/// The status `cfg` gives a GET of `path` with `token` at `now_ms`, with the token cache.
fn answer(
    cfg: &apirule_wasm::config::Config,
    keys: &KeyCache,
    tokens: &mut VerifiedTokens,
    path: &str,
    token: &str,
    now_ms: u64,
) -> u16 {
    status(&cfg.policy.decide_cached(&bearer(get(path), token), now_ms, keys, tokens))
}

/// A v2 APIRule on `v2.example.com` whose `/a` takes tokens of ISSUER, keys from JWKS_URL.
fn v2_jwt_apirule() -> Value {
    let jwt = json!({"authentications": [{"issuer": ISSUER, "jwksUri": JWKS_URL}]});
    v2_apirule("v2", "v2.example.com", json!([{"path": "/a", "methods": ["GET"], "jwt": jwt}]))
}

fn refetch(cache: &mut KeyCache, url: &str, jwks: Value, at_ms: u64) {
    cache.fetch_started(url, at_ms);
    cache.fetch_succeeded(url, parse_jwks(jwks.to_string().as_bytes()).unwrap(), at_ms);
}

#[test]
fn a_repeated_token_is_answered_from_the_cache() {
    let cfg = policy();
    let keys = default_cache();
    let mut tokens = VerifiedTokens::new(16);
    let token = rs256(good_claims());
    let req = bearer(get("/a"), &token);
    assert_eq!(status(&cfg.policy.decide_cached(&req, NOW_MS, &keys, &mut tokens)), 200);
    assert_eq!(tokens.len(), 1);
    assert_eq!(status(&cfg.policy.decide_cached(&req, NOW_MS, &keys, &mut tokens)), 200);
    assert_eq!(tokens.len(), 1, "the same token is not stored twice");
}

#[test]
fn a_cached_verdict_stands_in_for_the_signature() {
    // Proof that a hit skips the signature: a token whose signature is garbage, planted in the
    // cache as verified by the live key set, is accepted. (Only the filter itself can plant.)
    let cfg = policy();
    let keys = default_cache();
    let set = keys.usable(JWKS_URL, NOW_MS).unwrap();
    let forged = format!("{}.AAAA", rs256(good_claims()).rsplit_once('.').unwrap().0);
    let claims = good_claims().as_object().unwrap().clone();
    let mut tokens = VerifiedTokens::new(16);
    let verified = Rc::new(Verified { alg: Algorithm::RS256, kid: "k1".into(), claims, by_oathkeeper_key: true });
    tokens.insert(&forged, verified, &set, None);
    let req = bearer(get("/a"), &forged);
    assert_eq!(status(&cfg.policy.decide_cached(&req, NOW_MS, &keys, &mut tokens)), 200);
    assert_eq!(status(&cfg.policy.decide(&req, NOW_MS, &keys)), 401, "uncached, it is denied");
}

#[test]
fn claims_are_checked_per_rule_on_every_hit() {
    let cfg = policy();
    let keys = default_cache();
    let mut tokens = VerifiedTokens::new(16);
    let token = rs256(good_claims());
    assert_eq!(answer(&cfg, &keys, &mut tokens, "/a", &token, NOW_MS), 200);
    for path in ["/strict", "/aud"] {
        let d = cfg.policy.decide_cached(&bearer(get(path), &token), NOW_MS, &keys, &mut tokens);
        assert_eq!(status(&d), 401, "{path}: {d:?}");
    }
}

#[test]
fn a_verdict_is_not_used_for_a_rule_with_other_key_sets() {
    // A verdict planted for set A (JWKS_URL) is not taken by a rule that reads set B, even when B
    // publishes the very same key under the same kid: B's rule verifies, and the forgery fails.
    let cfg = policy();
    let mut keys = default_cache();
    refetch(&mut keys, "https://other.example.com/keys", json!({"keys": [rsa_public_jwk("k1")]}), NOW_MS);
    let set_a = keys.usable(JWKS_URL, NOW_MS).unwrap();
    let forged = format!("{}.AAAA", rs256(good_claims()).rsplit_once('.').unwrap().0);
    let claims = good_claims().as_object().unwrap().clone();
    let mut tokens = VerifiedTokens::new(16);
    tokens.insert(
        &forged,
        Rc::new(Verified { alg: Algorithm::RS256, kid: "k1".into(), claims, by_oathkeeper_key: true }),
        &set_a,
        None,
    );
    assert_eq!(answer(&cfg, &keys, &mut tokens, "/a", &forged, NOW_MS), 200);
    let d = cfg.policy.decide_cached(&bearer(get("/other-keys"), &forged), NOW_MS, &keys, &mut tokens);
    assert_eq!(status(&d), 401, "{d:?}");
    // A real token passes under both rules.
    let token = rs256(good_claims());
    for path in ["/a", "/other-keys"] {
        assert_eq!(answer(&cfg, &keys, &mut tokens, path, &token, NOW_MS), 200);
    }
}

#[test]
fn a_refetched_key_set_invalidates_its_tokens() {
    let cfg = policy();
    let mut keys = default_cache();
    let mut tokens = VerifiedTokens::new(16);
    let token = rs256(good_claims());
    let req = bearer(get("/a"), &token);
    assert_eq!(status(&cfg.policy.decide_cached(&req, NOW_MS, &keys, &mut tokens)), 200);
    // The IdP rotated: `k1` is now another key. The cached verdict must not survive that.
    refetch(&mut keys, JWKS_URL, json!({"keys": [ec_public_jwk("k1")]}), NOW_MS + 1000);
    let d = cfg.policy.decide_cached(&req, NOW_MS + 1000, &keys, &mut tokens);
    assert_eq!(status(&d), 401, "{d:?}");
    // The same keys fetched again: a new set, so the token is verified again (and passes).
    refetch(&mut keys, JWKS_URL, json!({"keys": [rsa_public_jwk("k1")]}), NOW_MS + 2000);
    assert_eq!(status(&cfg.policy.decide_cached(&req, NOW_MS + 2000, &keys, &mut tokens)), 200);
}

#[test]
fn a_cached_token_expires_with_its_exp() {
    let cfg = policy();
    let keys = default_cache();
    let mut tokens = VerifiedTokens::new(16);
    let token = rs256(json!({"iss": ISSUER, "sub": "u", "exp": NOW_SECS + 1}));
    let req = bearer(get("/a"), &token);
    assert_eq!(status(&cfg.policy.decide_cached(&req, NOW_MS, &keys, &mut tokens)), 200);
    assert_eq!(status(&cfg.policy.decide_cached(&req, NOW_MS + 1000, &keys, &mut tokens)), 200);
    assert_eq!(status(&cfg.policy.decide_cached(&req, NOW_MS + 2000, &keys, &mut tokens)), 401);
}

#[test]
fn failures_are_not_cached_and_lookalikes_do_not_hit() {
    let cfg = policy();
    let keys = default_cache();
    let mut tokens = VerifiedTokens::new(16);
    let token = rs256(good_claims());
    assert_eq!(answer(&cfg, &keys, &mut tokens, "/a", &token, NOW_MS), 200);
    let (input, sig) = token.rsplit_once('.').unwrap();
    let mut flipped = sig.as_bytes().to_vec();
    flipped[5] = if flipped[5] == b'A' { b'B' } else { b'A' };
    let lookalikes = [
        format!("{input}.{}", String::from_utf8(flipped).unwrap()),
        format!("{token}A"),
        token[..token.len() - 1].to_owned(),
        format!("{input}."),
    ];
    for bad in &lookalikes {
        for _ in 0..2 {
            let d = cfg.policy.decide_cached(&bearer(get("/a"), bad), NOW_MS, &keys, &mut tokens);
            assert_eq!(status(&d), 401, "{bad}: {d:?}");
        }
    }
    assert_eq!(tokens.len(), 1, "only the valid token is cached");
}

#[test]
fn cached_and_uncached_decisions_agree() {
    let cfg = policy();
    let keys = default_cache();
    let mut tokens = VerifiedTokens::new(64);
    let tokens_to_try = [
        rs256(good_claims()),
        rs256(json!({"iss": "https://evil.example.com", "exp": NOW_SECS + 60})),
        rs256(json!({"iss": ISSUER, "aud": ["orders"], "exp": NOW_SECS + 60})),
        rs256(json!({"iss": ISSUER, "exp": NOW_SECS - 1})),
        mint(json!({"alg": "ES256", "kid": "e1"}), good_claims(), Signer::Ec),
        mint(json!({"alg": "RS256", "kid": "e1"}), good_claims(), Signer::Rsa),
    ];
    for round in 0..3 {
        for token in &tokens_to_try {
            for path in ["/a", "/strict", "/aud", "/other-keys"] {
                let req = bearer(get(path), token);
                let cached = cfg.policy.decide_cached(&req, NOW_MS, &keys, &mut tokens);
                let plain = cfg.policy.decide(&req, NOW_MS, &keys);
                assert_eq!(status(&cached), status(&plain), "round {round} {path} {token}");
                assert!(!matches!(cached, Decision::NeedKeys { .. }) || matches!(plain, Decision::NeedKeys { .. }));
            }
        }
    }
}

#[test]
fn the_cache_size_is_a_plugin_option() {
    let rules = json!([jwt_rule("/a", json!({}))]);
    let cfg =
        try_load(json!({"apiRules": [apirule("a", HOST, rules.clone())], "tokenCache": {"maxEntries": 0}})).unwrap();
    assert_eq!(cfg.token_cache_entries, 0);
    assert_eq!(load(vec![apirule("a", HOST, rules.clone())]).token_cache_entries, 1024);
    let e = try_load(json!({"apiRules": [apirule("a", HOST, rules.clone())], "tokenCache": {"maxEntries": -1}}));
    assert!(e.unwrap_err().to_string().contains("tokenCache.maxEntries: must be an integer from 0 to 100000"));
    let e = try_load(json!({"apiRules": [apirule("a", HOST, rules)], "tokenCache": {"size": 1}}));
    assert!(e.unwrap_err().to_string().contains("tokenCache.size: unknown field"));
}

#[test]
fn a_token_verified_the_v2_way_never_stands_in_for_a_v1_rule() {
    // One JWKS URL and issuer under a v1beta1 and a v2 APIRule, one cache. The set holds our key
    // without a kid and another key under kid k1. A token with kid k1 signed by our key verifies
    // under v2 (Envoy tries every key whose kid fits, a kid-less one included) and is cached;
    // under v1 Oathkeeper takes the key named k1, which did not sign it: still 401.
    use rsa::pkcs8::DecodePrivateKey;
    use rsa::traits::PublicKeyParts;
    let other = rsa::RsaPrivateKey::from_pkcs8_pem(include_str!("data/rsa_pool/rsa_2048_e65537.pem")).unwrap();
    let mut ours = rsa_public_jwk("unused");
    ours.as_object_mut().unwrap().remove("kid");
    let theirs = json!({"kty": "RSA", "kid": "k1", "use": "sig", "alg": "RS256",
                        "n": b64(&other.n().to_bytes_be()), "e": b64(&other.e().to_bytes_be())});
    let keys = cache_with(json!({"keys": [ours, theirs]}));
    let v2 = v2_jwt_apirule();
    let cfg = load(vec![apirule("httpbin", HOST, json!([jwt_rule("/a", json!({}))])), v2]);
    let mut tokens = VerifiedTokens::new(16);
    let token = rs256(good_claims());
    let on_v2 = bearer(apirule_wasm::request::Request::new("GET", "v2.example.com", "/a"), &token);
    assert_eq!(status(&cfg.policy.decide_cached(&on_v2, NOW_MS, &keys, &mut tokens)), 200);
    assert_eq!(tokens.len(), 1, "cached by the v2 rule");
    assert_eq!(answer(&cfg, &keys, &mut tokens, "/a", &token, NOW_MS), 401, "k1 did not sign it");
}

#[test]
fn a_token_verified_the_v1_way_never_stands_in_for_a_v2_rule() {
    // The set's one key says `alg: RS256`. Oathkeeper does not read a JWK's `alg`: a v1 rule that
    // allows RS384 verifies an RS384 token with it (and caches that). Envoy binds the key to its
    // `alg`: the v2 rule on the same URL must still answer 401 for that token, cache or not.
    let mut jwk = rsa_public_jwk("k1");
    jwk["alg"] = json!("RS256");
    let keys = cache_with(json!({"keys": [jwk]}));
    let v2 = v2_jwt_apirule();
    let v1 = apirule("httpbin", HOST, json!([jwt_rule("/a", json!({"allowed_algorithms": ["RS384"]}))]));
    let cfg = load(vec![v1, v2]);
    let token =
        mint(json!({"alg": "RS384", "kid": "k1", "typ": "JWT"}), good_claims(), Signer::RsaWith(rsa_key(), Sha::S384));
    let on_v2 = bearer(apirule_wasm::request::Request::new("GET", "v2.example.com", "/a"), &token);
    let mut alone = VerifiedTokens::new(16);
    assert_eq!(status(&cfg.policy.decide_cached(&on_v2, NOW_MS, &keys, &mut alone)), 401, "v2 alone");
    let mut tokens = VerifiedTokens::new(16);
    assert_eq!(answer(&cfg, &keys, &mut tokens, "/a", &token, NOW_MS), 200, "v1 ignores the JWK's alg");
    assert_eq!(tokens.len(), 1, "cached by the v1 rule");
    assert_eq!(status(&cfg.policy.decide_cached(&on_v2, NOW_MS, &keys, &mut tokens)), 401, "v2 after v1");
}
