//! Test support: mint real signed tokens, build APIRules and plugin configurations.
#![allow(dead_code)]

pub mod keys;

use std::sync::OnceLock;

use apirule_wasm::config::{self, Config};
use apirule_wasm::jwt::jwks::parse_jwks;
use apirule_wasm::keys::{FetchedOnce, KeyCache};
use apirule_wasm::policy::{Decision, Policy};
use apirule_wasm::request::Request;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::Mac;
use serde_json::{json, Value};

pub const JWKS_URL: &str = "https://idp.example.com/keys";
pub const ISSUER: &str = "https://idp.example.com";
pub const HOST: &str = "api.example.com";
/// A fixed "now" for deterministic time checks (2027-01-15).
pub const NOW_SECS: u64 = 1_800_000_000;
pub const NOW_MS: u64 = NOW_SECS * 1000;

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn rsa_key() -> &'static rsa::RsaPrivateKey {
    static KEY: OnceLock<rsa::RsaPrivateKey> = OnceLock::new();
    KEY.get_or_init(|| rsa_from_pem(keys::RSA_PRIVATE_PEM))
}

/// The 1024-bit key (`keys::RSA_1024_PRIVATE_PEM`).
pub fn weak_rsa_key() -> &'static rsa::RsaPrivateKey {
    static KEY: OnceLock<rsa::RsaPrivateKey> = OnceLock::new();
    KEY.get_or_init(|| rsa_from_pem(keys::RSA_1024_PRIVATE_PEM))
}

/// A 2048-bit key no test key set holds (`keys::ATTACKER_RSA_PRIVATE_PEM`).
pub fn attacker_rsa_key() -> &'static rsa::RsaPrivateKey {
    static KEY: OnceLock<rsa::RsaPrivateKey> = OnceLock::new();
    KEY.get_or_init(|| rsa_from_pem(keys::ATTACKER_RSA_PRIVATE_PEM))
}

fn rsa_from_pem(pem: &str) -> rsa::RsaPrivateKey {
    use rsa::pkcs8::DecodePrivateKey;
    rsa::RsaPrivateKey::from_pkcs8_pem(pem).unwrap()
}

fn ec_key() -> p256::ecdsa::SigningKey {
    use p256::pkcs8::DecodePrivateKey;
    p256::ecdsa::SigningKey::from_pkcs8_pem(keys::EC_PRIVATE_PEM).unwrap()
}

/// The SHA-2 hash of an RS*/HS* algorithm.
#[derive(Clone, Copy)]
pub enum Sha {
    S256,
    S384,
    S512,
}

/// How to sign a test token.
pub enum Signer<'a> {
    /// RS256 with the default key (`rsa_public_jwk`).
    Rsa,
    /// RSASSA-PKCS1-v1_5 with this key and hash (RS256/384/512).
    RsaWith(&'a rsa::RsaPrivateKey, Sha),
    Ec,
    /// HS256 with this key.
    Hmac(&'a [u8]),
    /// HMAC with this key and hash (HS256/384/512).
    HmacWith(&'a [u8], Sha),
    /// An empty signature (for `alg: none`).
    Nothing,
}

/// A compact JWS with exactly this header and these claims.
pub fn mint(header: Value, claims: Value, signer: Signer<'_>) -> String {
    mint_text(&header.to_string(), &claims.to_string(), signer)
}

/// A compact JWS whose header and payload are exactly these bytes (for JSON that `Value` cannot
/// hold: duplicate members, numbers out of range, deep nesting).
pub fn mint_text(header: &str, claims: &str, signer: Signer<'_>) -> String {
    let input = format!("{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()));
    let sig: Vec<u8> = match signer {
        Signer::Rsa => rsa_sign(rsa_key(), Sha::S256, input.as_bytes()),
        Signer::RsaWith(key, sha) => rsa_sign(key, sha, input.as_bytes()),
        Signer::Ec => {
            use p256::ecdsa::signature::Signer as _;
            let sig: p256::ecdsa::Signature = ec_key().sign(input.as_bytes());
            sig.to_bytes().to_vec()
        }
        Signer::Hmac(k) => hmac_sign(k, Sha::S256, input.as_bytes()),
        Signer::HmacWith(k, sha) => hmac_sign(k, sha, input.as_bytes()),
        Signer::Nothing => Vec::new(),
    };
    format!("{input}.{}", b64(&sig))
}

fn rsa_sign(key: &rsa::RsaPrivateKey, sha: Sha, input: &[u8]) -> Vec<u8> {
    use rsa::pkcs1v15::SigningKey;
    use rsa::signature::{SignatureEncoding, Signer as _};
    let key = key.clone();
    match sha {
        Sha::S256 => SigningKey::<sha2::Sha256>::new(key).sign(input).to_vec(),
        Sha::S384 => SigningKey::<sha2::Sha384>::new(key).sign(input).to_vec(),
        Sha::S512 => SigningKey::<sha2::Sha512>::new(key).sign(input).to_vec(),
    }
}

fn hmac_sign(k: &[u8], sha: Sha, input: &[u8]) -> Vec<u8> {
    fn run<M: Mac + hmac::digest::KeyInit>(k: &[u8], input: &[u8]) -> Vec<u8> {
        let mut mac = <M as Mac>::new_from_slice(k).unwrap();
        mac.update(input);
        mac.finalize().into_bytes().to_vec()
    }
    match sha {
        Sha::S256 => run::<hmac::Hmac<sha2::Sha256>>(k, input),
        Sha::S384 => run::<hmac::Hmac<sha2::Sha384>>(k, input),
        Sha::S512 => run::<hmac::Hmac<sha2::Sha512>>(k, input),
    }
}

/// A valid RS256 token (kid `k1`) with these claims.
pub fn rs256(claims: Value) -> String {
    mint(json!({"alg": "RS256", "kid": "k1", "typ": "JWT"}), claims, Signer::Rsa)
}

/// Claims that pass a rule trusting ISSUER, valid for an hour from NOW.
pub fn good_claims() -> Value {
    json!({"iss": ISSUER, "sub": "user-1", "exp": NOW_SECS + 3600, "iat": NOW_SECS - 10})
}

pub fn rsa_public_jwk(kid: &str) -> Value {
    let mut jwk = rsa_jwk_of(rsa_key(), kid);
    jwk["alg"] = json!("RS256");
    jwk
}

/// The public JWK of `key` (`use: sig`, no `alg`).
pub fn rsa_jwk_of(key: &rsa::RsaPrivateKey, kid: &str) -> Value {
    use rsa::traits::PublicKeyParts;
    json!({"kty": "RSA", "kid": kid, "use": "sig", "n": b64(&key.n().to_bytes_be()), "e": b64(&key.e().to_bytes_be())})
}

/// The RSA public key as PEM (the bytes an alg-confusion attacker would use as an HMAC key).
pub fn rsa_public_pem() -> String {
    use rsa::pkcs8::EncodePublicKey;
    rsa_key().to_public_key().to_public_key_pem(rsa::pkcs8::LineEnding::LF).unwrap()
}

pub fn ec_public_jwk(kid: &str) -> Value {
    let point = ec_key().verifying_key().to_encoded_point(false);
    json!({"kty": "EC", "kid": kid, "use": "sig", "crv": "P-256",
           "x": b64(point.x().unwrap()), "y": b64(point.y().unwrap())})
}

/// A v1beta1 APIRule for HOST with these rules.
pub fn apirule(name: &str, host: &str, rules: Value) -> Value {
    json!({
        "apiVersion": "gateway.kyma-project.io/v1beta1",
        "kind": "APIRule",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"host": host, "service": {"name": "httpbin", "port": 8000},
                 "gateway": "kyma-system/kyma-gateway", "rules": rules}
    })
}

/// A v2 APIRule for `host` with these rules (the same service and gateway as `apirule`).
pub fn v2_apirule(name: &str, host: &str, rules: Value) -> Value {
    json!({
        "apiVersion": "gateway.kyma-project.io/v2",
        "kind": "APIRule",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"hosts": [host], "service": {"name": "httpbin", "port": 8000},
                 "gateway": "kyma-system/kyma-gateway", "rules": rules}
    })
}

/// A rule with one access strategy.
pub fn rule(path: &str, methods: &[&str], handler: &str, config: Option<Value>) -> Value {
    let mut strategy = json!({"handler": handler});
    if let Some(c) = config {
        strategy["config"] = c;
    }
    json!({"path": path, "methods": methods, "accessStrategies": [strategy]})
}

/// The usual jwt config: our JWKS URL and issuer, plus `extra` keys.
pub fn jwt_config(extra: Value) -> Value {
    let mut c = json!({"jwks_urls": [JWKS_URL], "trusted_issuers": [ISSUER]});
    if let (Some(c), Some(extra)) = (c.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            c.insert(k.clone(), v.clone());
        }
    }
    c
}

pub fn load(apirules: Vec<Value>) -> Config {
    try_load(json!({"apiRules": apirules})).unwrap()
}

pub fn try_load(plugin: Value) -> Result<Config, config::ConfigError> {
    config::parse(plugin.to_string().as_bytes())
}

/// A key cache holding `jwks` for JWKS_URL, fetched at NOW.
pub fn cache_with(jwks: Value) -> KeyCache {
    let mut cache = KeyCache::default();
    cache.fetch_started(JWKS_URL, NOW_MS);
    cache.fetch_succeeded(JWKS_URL, parse_jwks(jwks.to_string().as_bytes()).unwrap(), NOW_MS);
    cache
}

/// Decides `req` as the filter's host does: when the decision waits for keys, every URL it names
/// is fetched once (answering `jwks` again, as an IdP that did not rotate would) and the request
/// is decided again, seeing each fetch at most once (`FetchedOnce`).
pub fn decide_refetching(policy: &Policy, req: &Request, now_ms: u64, cache: &mut KeyCache, jwks: &Value) -> Decision {
    let mut seen: Vec<(String, u64)> = Vec::new();
    for _ in 0..4 {
        let d = policy.decide(req, now_ms, &FetchedOnce { cache, seen: &seen });
        let Decision::NeedKeys { urls } = d else {
            return d;
        };
        for url in urls {
            if !seen.iter().any(|(u, _)| *u == url) {
                seen.push(FetchedOnce::mark(cache, &url, now_ms));
            }
            let reason = cache.reason_for_waiter(&url, now_ms);
            cache.start_fetch(&url, 0, reason, now_ms);
            cache.fetch_succeeded(&url, parse_jwks(jwks.to_string().as_bytes()).unwrap(), now_ms);
        }
    }
    panic!("still waiting for keys after every URL was fetched");
}

/// The default key set: the RSA key as `k1` and the EC key as `e1`.
pub fn default_cache() -> KeyCache {
    cache_with(default_jwks())
}

pub fn default_jwks() -> Value {
    json!({"keys": [rsa_public_jwk("k1"), ec_public_jwk("e1")]})
}

pub fn get(path: &str) -> Request {
    Request::new("GET", HOST, path)
}

pub fn bearer(req: Request, token: &str) -> Request {
    req.with_header("authorization", &format!("Bearer {token}"))
}

/// The status of a decision: 200 for allow / pass-through, the deny status otherwise, 0 for
/// "needs keys", 1 for "needs an introspection call".
pub fn status(d: &Decision) -> u16 {
    match d {
        Decision::Allow { .. } | Decision::PassThrough => 200,
        Decision::Deny { response, .. } => response.status,
        Decision::NeedKeys { .. } => 0,
        Decision::NeedCall { .. } => 1,
    }
}

/// splitmix64: seeded, deterministic bytes for the differential tests.
pub struct SeededRng(pub u64);

impl SeededRng {
    pub fn u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.u64() % n as u64) as usize
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.u64() as u8).collect()
    }
}
