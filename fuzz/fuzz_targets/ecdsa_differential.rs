//! `jwt::ecdsa` against the `p384` and `p521` crates on fuzzed input: both must give the same
//! verdict.
//!
//! Input: a mode byte (bit 1 picks P-384 or P-521), then either raw key || signature || message
//! (mode even), or a secret key || xor mask for the signature || message (mode odd): the message
//! is signed with the crate and the signature masked, so valid and near-valid signatures get
//! explored.
#![no_main]

use apirule_wasm::jwt::ecdsa::{EcPublicKey, P384, P521};
use libfuzzer_sys::fuzz_target;

macro_rules! compare {
    ($krate:ident, $curve:expr, $size:expr, $mode:expr, $rest:expr) => {{
        use $krate::ecdsa::signature::{Signer, Verifier};
        use $krate::ecdsa::{Signature, SigningKey, VerifyingKey};
        let size: usize = $size;
        let (key, sig, msg) = if $mode % 2 == 0 {
            if $rest.len() < 1 + 4 * size {
                return;
            }
            let (key, rest) = $rest.split_at(1 + 2 * size);
            let (sig, msg) = rest.split_at(2 * size);
            (key.to_vec(), sig.to_vec(), msg)
        } else {
            if $rest.len() < 3 * size {
                return;
            }
            let (secret, rest) = $rest.split_at(size);
            let (mask, msg) = rest.split_at(2 * size);
            let Ok(sk) = SigningKey::from_slice(secret) else { return };
            let key = VerifyingKey::from(&sk).to_encoded_point(false).as_bytes().to_vec();
            let sig: Signature = sk.sign(msg);
            let sig: Vec<u8> = sig.to_bytes().iter().zip(mask).map(|(s, m)| s ^ m).collect();
            (key, sig, msg)
        };
        let theirs = VerifyingKey::from_sec1_bytes(&key)
            .ok()
            .zip(Signature::from_slice(&sig).ok())
            .is_some_and(|(vk, s)| vk.verify(msg, &s).is_ok());
        let mine = EcPublicKey::from_sec1(&$curve, &key).is_ok_and(|k| k.verify(msg, &sig).is_ok());
        assert_eq!(mine, theirs);
    }};
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    if mode & 2 == 0 {
        compare!(p384, P384, 48, mode, rest)
    } else {
        compare!(p521, P521, 66, mode, rest)
    }
});
