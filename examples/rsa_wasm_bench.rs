//! Where a cold RS256 request's time goes inside wasm. Not a test and not a native benchmark:
//! build for wasm32-wasip1 with the filter's release profile and run it under a wasm engine, e.g.
//!
//! ```text
//! cargo build --release --target wasm32-wasip1 --example rsa_wasm_bench
//! node tools/wasi_run_node.mjs target/wasm32-wasip1/release/examples/rsa_wasm_bench.wasm   # V8
//! .venv/bin/python tools/wasi_run.py target/wasm32-wasip1/release/examples/rsa_wasm_bench.wasm  # wasmtime
//! ```
//!
//! Per key size: the RSA verification alone, `verify_signature` (token checks + verification),
//! and with the 2048-bit key the whole decision for a fresh token (parse, signature, claims, cache
//! insert) against the same token decided from the cache. Tokens are signed with jwt-simple (the
//! `rsa` dev-dependency is native-only), before any timing.

use std::hint::black_box;
use std::time::{SystemTime, UNIX_EPOCH};

use apirule_wasm::jwt::algorithm::Algorithm;
use apirule_wasm::jwt::cache::VerifiedTokens;
use apirule_wasm::jwt::jwks::{parse_jwks, PublicKey};
use apirule_wasm::jwt::rsa::{HashAlg, RsaPublicKey};
use apirule_wasm::jwt::signature::verify_signature;
use apirule_wasm::jwt::token;
use apirule_wasm::keys::KeyCache;
use apirule_wasm::policy::Decision;
use apirule_wasm::request::Request;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jwt_simple::prelude::*;

const ISSUER: &str = "https://issuer.bench.local";
const JWKS_URL: &str = "https://issuer.bench.local/keys";
const HOST: &str = "bench.example.com";

/// Batches per figure: the machine this runs on is shared, and the best batch is the least
/// disturbed figure; many short batches make an undisturbed one likely.
const BATCHES: usize = 15;

/// Best of `BATCHES` batches of `iters` calls of `f(i)`, after a warm-up batch (V8 tiers up hot
/// code). `i` counts every call, warm-up included, so a caller can give each call its own input.
fn per_call_us(iters: usize, mut f: impl FnMut(usize)) -> f64 {
    let mut i = 0;
    for _ in 0..iters / 2 + 1 {
        f(i);
        i += 1;
    }
    (0..BATCHES)
        .map(|_| {
            let start = cpu_ns();
            for _ in 0..iters {
                f(i);
                i += 1;
            }
            (cpu_ns() - start) as f64 / 1e3 / iters as f64
        })
        .fold(f64::INFINITY, f64::min)
}

/// CPU time of this thread in ns (WASI's thread CPU clock), so that time the engine thread spends
/// preempted by other processes does not count; wall-clock time natively.
#[cfg(target_os = "wasi")]
fn cpu_ns() -> u64 {
    #[link(wasm_import_module = "wasi_snapshot_preview1")]
    extern "C" {
        fn clock_time_get(id: u32, precision: u64, time: *mut u64) -> u16;
    }
    const THREAD_CPUTIME_ID: u32 = 3;
    let mut time = 0u64;
    // SAFETY: clock_time_get writes one u64 through the pointer, which points at a live u64.
    let errno = unsafe { clock_time_get(THREAD_CPUTIME_ID, 1, &mut time) };
    assert_eq!(errno, 0, "no thread CPU clock");
    time
}

#[cfg(not(target_os = "wasi"))]
fn cpu_ns() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START.get_or_init(std::time::Instant::now).elapsed().as_nanos() as u64
}

/// Tokens as `bench/tokens.py` mints them: each with its own jti, so its own signature.
fn mint(key: &RS256KeyPair, count: usize) -> Vec<String> {
    (0..count)
        .map(|i| {
            let claims = Claims::create(Duration::from_hours(1))
                .with_issuer(ISSUER)
                .with_subject("bench-user")
                .with_jwt_id(format!("bench-{i:08}"));
            key.sign(claims).unwrap()
        })
        .collect()
}

fn signature_of(token: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(token.rsplit_once('.').unwrap().1).unwrap()
}

fn signing_input(token: &str) -> &[u8] {
    token.rsplit_once('.').unwrap().0.as_bytes()
}

/// `rsa_wasm_bench [--verify] [BITS...]`: only these key sizes (2048, 3072, 4096; default all);
/// `--verify` skips the decision (and minting its tokens). `rsa_wasm_bench ec`: the ECDSA
/// verifiers instead (ES256, ES384, ES512).
fn main() {
    let mut only: Vec<String> = std::env::args().skip(1).collect();
    if only.iter().any(|a| a == "ec") {
        return ecdsa();
    }
    let verify_only = only.iter().any(|a| a == "--verify");
    only.retain(|a| a != "--verify");
    let keys = [
        ("2048", include_str!("../tests/data/rsa_pool/rsa_2048_e65537.pem")),
        ("3072", include_str!("../tests/data/rsa_pool/rsa_3072_e65537.pem")),
        ("4096", include_str!("../tests/data/rsa_pool/rsa_4096_e65537.pem")),
    ];
    for (bits, pem) in keys.into_iter().filter(|(bits, _)| only.is_empty() || only.iter().any(|o| o == bits)) {
        let pair = RS256KeyPair::from_pem(pem).unwrap().with_key_id("k");
        let parts = pair.public_key().to_components();
        let (n, e) = (parts.n, parts.e);
        let tokens = mint(&pair, 1);
        let token = &tokens[0];
        let sig = signature_of(token);

        let key_us = per_call_us(20, |_| {
            black_box(RsaPublicKey::new(&n, &e).unwrap());
        });
        let ours = RsaPublicKey::new(&n, &e).unwrap();
        let raw_us = per_call_us(20, |_| {
            ours.verify_pkcs1v15(HashAlg::Sha256, black_box(signing_input(token)), &sig).unwrap();
        });
        let key = PublicKey::Rsa(std::sync::Arc::new(ours.clone()));
        let token_us = per_call_us(20, |_| {
            verify_signature(Algorithm::RS256, &key, black_box(token)).unwrap();
        });
        let parse_us = per_call_us(100, |_| {
            black_box(token::parse(black_box(token)).unwrap());
        });
        println!(
            "RS256-{bits}: verify {raw_us:.1} us; verify_signature {token_us:.1} us (token checks {:.1}); \
             token::parse {parse_us:.1} us; key setup {key_us:.1} us",
            token_us - raw_us
        );
        if bits == "2048" && !verify_only {
            decide_path(&pair, &n, &e);
        }
    }
}

/// ECDSA verification with a prepared key, and the key's setup (curve check and table), on the
/// first valid vector of each Wycheproof P1363 set (no EC signing crate is built for wasm here).
fn ecdsa() {
    use apirule_wasm::jwt::ecdsa::{EcPublicKey, P384, P521};
    use apirule_wasm::jwt::p256::P256PublicKey;
    use wycheproof::ecdsa::{TestName, TestSet};

    for (alg, set) in [
        ("ES256", TestName::EcdsaSecp256r1Sha256P1363),
        ("ES384", TestName::EcdsaSecp384r1Sha384P1363),
        ("ES512", TestName::EcdsaSecp521r1Sha512P1363),
    ] {
        let set = TestSet::load(set).unwrap();
        let group = &set.test_groups[0];
        let test = group.tests.iter().find(|t| t.result == wycheproof::TestResult::Valid).unwrap();
        let (key, msg, sig) = (&group.key.key[..], &test.msg[..], &test.sig[..]);
        let (setup_us, verify_us) = match alg {
            "ES256" => {
                let k = P256PublicKey::from_sec1(key).unwrap();
                let setup = per_call_us(5, |_| drop(black_box(P256PublicKey::from_sec1(key).unwrap())));
                (setup, per_call_us(20, |_| k.verify_sha256(black_box(msg), sig).unwrap()))
            }
            "ES384" => {
                let k = EcPublicKey::from_sec1(&P384, key).unwrap();
                let setup = per_call_us(5, |_| drop(black_box(EcPublicKey::from_sec1(&P384, key).unwrap())));
                (setup, per_call_us(10, |_| k.verify(black_box(msg), sig).unwrap()))
            }
            _ => {
                let k = EcPublicKey::from_sec1(&P521, key).unwrap();
                let setup = per_call_us(5, |_| drop(black_box(EcPublicKey::from_sec1(&P521, key).unwrap())));
                (setup, per_call_us(5, |_| k.verify(black_box(msg), sig).unwrap()))
            }
        };
        println!("{alg}: verify {verify_us:.1} us; key setup {setup_us:.1} us");
    }
}

/// The whole decision for a new token each time, as the filter makes it on a cold request.
fn decide_path(pair: &RS256KeyPair, n: &[u8], e: &[u8]) {
    let iters = 20;
    let fresh = mint(pair, iters / 2 + 1 + BATCHES * iters);
    let jwk = serde_json::json!({"kty": "RSA", "kid": "k", "use": "sig", "alg": "RS256",
        "n": URL_SAFE_NO_PAD.encode(n), "e": URL_SAFE_NO_PAD.encode(e)});
    let jwks = serde_json::json!({"keys": [jwk]}).to_string();
    let mut keys = KeyCache::default();
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    keys.fetch_started(JWKS_URL, now_ms);
    keys.fetch_succeeded(JWKS_URL, parse_jwks(jwks.as_bytes()).unwrap(), now_ms);
    let plugin = serde_json::json!({"apiRules": [{
        "apiVersion": "gateway.kyma-project.io/v1beta1", "kind": "APIRule",
        "metadata": {"name": "bench", "namespace": "default"},
        "spec": {"host": HOST, "service": {"name": "httpbin", "port": 8000},
                 "gateway": "kyma-system/kyma-gateway",
                 "rules": [{"path": "/rs", "methods": ["GET"], "accessStrategies": [{"handler": "jwt",
                     "config": {"jwks_urls": [JWKS_URL], "trusted_issuers": [ISSUER],
                                "allowed_algorithms": ["RS256"]}}]}]}
    }]});
    let cfg = apirule_wasm::config::parse(plugin.to_string().as_bytes()).unwrap();
    let mut cache = VerifiedTokens::new(cfg.token_cache_entries);
    let requests: Vec<Request> = fresh
        .iter()
        .map(|t| Request::new("GET", HOST, "/rs").with_header("authorization", &format!("Bearer {t}")))
        .collect();
    let mut decide = |req: &Request| {
        let d = cfg.policy.decide_cached(req, now_ms, &keys, &mut cache);
        assert!(matches!(d, Decision::Allow { .. }), "{d:?}");
    };
    let cold_us = per_call_us(iters, |i| decide(&requests[i]));
    let warm_us = per_call_us(100, |_| decide(&requests[0]));
    println!("decide, RS256-2048: new token {cold_us:.1} us; same token (cache hit) {warm_us:.1} us");
}
