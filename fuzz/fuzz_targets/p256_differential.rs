//! `jwt::p256` against the `p256` crate on fuzzed input: both must give the same verdict.
//!
//! Input: a mode byte, then either raw key (65) || signature (64) || message (mode even), or a
//! secret key (32) || xor mask for the signature (64) || message (mode odd): the message is signed
//! with the p256 crate and the signature masked, so valid and near-valid signatures get explored.
#![no_main]

use apirule_wasm::jwt::p256::P256PublicKey;
use libfuzzer_sys::fuzz_target;
use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};

fn theirs(key: &[u8], msg: &[u8], sig: &[u8]) -> bool {
    let Ok(vk) = VerifyingKey::from_sec1_bytes(key) else { return false };
    let Ok(sig) = Signature::from_slice(sig) else { return false };
    vk.verify(msg, &sig).is_ok()
}

fn mine(key: &[u8], msg: &[u8], sig: &[u8]) -> bool {
    P256PublicKey::from_sec1(key).is_ok_and(|k| k.verify_sha256(msg, sig).is_ok())
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let (key, sig, msg) = if mode % 2 == 0 {
        if rest.len() < 129 {
            return;
        }
        let (key, rest) = rest.split_at(65);
        let (sig, msg) = rest.split_at(64);
        (key.to_vec(), sig.to_vec(), msg)
    } else {
        if rest.len() < 96 {
            return;
        }
        let (secret, rest) = rest.split_at(32);
        let (mask, msg) = rest.split_at(64);
        let Ok(sk) = SigningKey::from_slice(secret) else { return };
        let key = VerifyingKey::from(&sk).to_encoded_point(false).as_bytes().to_vec();
        let sig: Signature = sk.sign(msg);
        let sig: Vec<u8> = sig.to_bytes().iter().zip(mask).map(|(s, m)| s ^ m).collect();
        (key, sig, msg)
    };
    assert_eq!(mine(&key, msg, &sig), theirs(&key, msg, &sig));
});
