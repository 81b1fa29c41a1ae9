//! Cost of one RSA verification inside wasm, ours against jwt-simple's. Not a test and not a
//! native benchmark: build for wasm32-wasip1 with the filter's release profile and run it under
//! a wasm engine, e.g.
//!
//! ```text
//! cargo build --release --target wasm32-wasip1 --example rsa_wasm_bench
//! node tools/wasi_run_node.mjs target/wasm32-wasip1/release/examples/rsa_wasm_bench.wasm   # V8
//! .venv/bin/python tools/wasi_run.py target/wasm32-wasip1/release/examples/rsa_wasm_bench.wasm  # wasmtime
//! ```

use std::hint::black_box;
use std::time::Instant;

use apirule_wasm::jwt::algorithm::Algorithm;
use apirule_wasm::jwt::jwks::PublicKey;
use apirule_wasm::jwt::rsa::{HashAlg, RsaPublicKey};
use apirule_wasm::jwt::signature::verify_signature;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jwt_simple::prelude::{NoCustomClaims, RS256PublicKey, RSAPublicKeyLike, VerificationOptions};
use rsa::pkcs8::DecodePrivateKey;
use rsa::signature::{SignatureEncoding, Signer};
use rsa::traits::PublicKeyParts;

/// Best of five batches of `iters` calls, after a warm-up batch (V8 tiers up hot code): the
/// machine this runs on is shared, and the minimum is the least disturbed figure.
fn per_call_us(iters: u32, mut f: impl FnMut()) -> f64 {
    for _ in 0..iters / 2 + 1 {
        f();
    }
    (0..5)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..iters {
                f();
            }
            start.elapsed().as_secs_f64() * 1e6 / f64::from(iters)
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    // `rsa_wasm_bench ITERS`: only ITERS verifications with the 2048-bit key and no output, for
    // timing the process's CPU time from outside (wall-clock figures on a busy machine are noisy).
    let only: Option<u32> = std::env::args().nth(1).map(|a| a.parse().unwrap());
    let keys = [
        ("2048", include_str!("../tests/data/rsa_pool/rsa_2048_e65537.pem")),
        ("3072", include_str!("../tests/data/rsa_pool/rsa_3072_e65537.pem")),
        ("4096", include_str!("../tests/data/rsa_pool/rsa_4096_e65537.pem")),
    ];
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","kid":"k","typ":"JWT"}"#);
    let claims = URL_SAFE_NO_PAD
        .encode(r#"{"sub":"bench","iss":"https://idp.example.com","aud":"api","exp":1800000000,"scope":"read"}"#);
    let input = format!("{header}.{claims}");
    for (bits, pem) in keys {
        let private = rsa::RsaPrivateKey::from_pkcs8_pem(pem).unwrap();
        let (n, e) = (private.n().to_bytes_be(), private.e().to_bytes_be());
        let sig = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(private).sign(input.as_bytes()).to_vec();
        let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(&sig));

        let key_us = per_call_us(20, || {
            black_box(RsaPublicKey::new(&n, &e).unwrap());
        });
        let ours = RsaPublicKey::new(&n, &e).unwrap();
        if let Some(iters) = only {
            for _ in 0..iters {
                ours.verify_pkcs1v15(HashAlg::Sha256, black_box(input.as_bytes()), &sig).unwrap();
            }
            return;
        }
        let raw_us = per_call_us(100, || {
            ours.verify_pkcs1v15(HashAlg::Sha256, black_box(input.as_bytes()), &sig).unwrap();
        });
        let key = PublicKey::Rsa(std::sync::Arc::new(ours.clone()));
        let token_us = per_call_us(100, || {
            verify_signature(Algorithm::RS256, &key, black_box(&token)).unwrap();
        });
        let jwt_simple = RS256PublicKey::from_components(&n, &e).unwrap();
        let opts = VerificationOptions { accept_future: true, ..Default::default() };
        let jwt_simple_us = per_call_us(5, || {
            // jwt-simple checks claims too; exp is in 2027, so they pass.
            jwt_simple.verify_token::<NoCustomClaims>(black_box(&token), Some(opts.clone())).unwrap();
        });
        println!(
            "RS256-{bits}: ours {raw_us:.1} us/verify, {token_us:.1} us/token (verify_signature); \
             jwt-simple {jwt_simple_us:.1} us/token; key setup {key_us:.1} us"
        );
    }
}
