//! `jwt::ecdsa` against the `p384` and `p521` crates: seeded random keys and messages; valid
//! signatures (and their high-s twins) must verify, and every mutated signature, message or key
//! must get the same verdict from both.

mod common;

use common::SeededRng;

use apirule_wasm::jwt::ecdsa::{EcPublicKey, P384, P521};

/// `n - x` for big-endian numbers of the same length.
fn sub_be(n: &[u8], x: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; n.len()];
    let mut borrow = 0i16;
    for i in (0..n.len()).rev() {
        let d = i16::from(n[i]) - i16::from(x[i]) - borrow;
        borrow = i16::from(d < 0);
        out[i] = (d + if d < 0 { 256 } else { 0 }) as u8;
    }
    out
}

macro_rules! differential {
    ($test:ident, $krate:ident, $curve:expr, $size:expr, $order:expr) => {
        #[test]
        fn $test() {
            use $krate::ecdsa::signature::{Signer, Verifier};
            use $krate::ecdsa::{Signature, SigningKey, VerifyingKey};

            let theirs = |key: &[u8], msg: &[u8], sig: &[u8]| -> bool {
                let Ok(vk) = VerifyingKey::from_sec1_bytes(key) else { return false };
                let Ok(sig) = Signature::from_slice(sig) else { return false };
                vk.verify(msg, &sig).is_ok()
            };
            let mine = |key: &[u8], msg: &[u8], sig: &[u8]| -> bool {
                EcPublicKey::from_sec1(&$curve, key).is_ok_and(|k| k.verify(msg, sig).is_ok())
            };
            let order: Vec<u8> =
                (0..$order.len()).step_by(2).map(|i| u8::from_str_radix(&$order[i..i + 2], 16).unwrap()).collect();
            let size: usize = $size;
            let mut rng = SeededRng(0x5eed_0384 ^ size as u64);
            let (mut accepted, mut refused) = (0usize, 0usize);
            for round in 0..12 {
                let mut secret = rng.bytes(size);
                if size == 66 {
                    secret[0] &= 0x01; // P-521 scalars have 521 bits; a value >= n is skipped below
                }
                let Ok(sk) = SigningKey::from_slice(&secret) else { continue };
                let key = VerifyingKey::from(&sk).to_encoded_point(false).as_bytes().to_vec();
                let prepared = EcPublicKey::from_sec1(&$curve, &key).unwrap();
                assert_eq!(prepared.to_sec1(), key);
                let other = SigningKey::from_slice(&[&[0u8][..], &[round as u8 + 1; 65][..size - 1]].concat()).unwrap();
                let other = VerifyingKey::from(&other).to_encoded_point(false).as_bytes().to_vec();
                for _ in 0..3 {
                    let len = rng.below(300);
                    let msg = rng.bytes(len);
                    let sig: Signature = sk.sign(&msg);
                    let sig = sig.to_bytes().to_vec();
                    assert!(prepared.verify(&msg, &sig).is_ok(), "valid signature refused");
                    let high = [&sig[..size], &sub_be(&order, &sig[size..])[..]].concat();
                    for (what, s) in [("valid", &sig), ("high s", &high)] {
                        assert!(theirs(&key, &msg, s), "{what}: the crate refuses");
                        assert!(mine(&key, &msg, s), "{what}: refused");
                        accepted += 1;
                    }
                    let mut cases: Vec<(String, Vec<u8>, Vec<u8>, Vec<u8>)> = Vec::new();
                    for _ in 0..3 {
                        let mut s = sig.clone();
                        let bit = rng.below(16 * size);
                        s[bit / 8] ^= 1 << (bit % 8);
                        cases.push((format!("sig bit {bit}"), key.clone(), msg.clone(), s));
                    }
                    let mut m = msg.clone();
                    match m.len() {
                        0 => m.push(0),
                        n => {
                            let bit = rng.below(n * 8);
                            m[bit / 8] ^= 1 << (bit % 8);
                        }
                    }
                    cases.push(("msg bit".into(), key.clone(), m, sig.clone()));
                    let mut k = key.clone();
                    let bit = 8 + rng.below(16 * size);
                    k[bit / 8] ^= 1 << (bit % 8);
                    cases.push((format!("key bit {bit}"), k, msg.clone(), sig.clone()));
                    cases.push(("other key".into(), other.clone(), msg.clone(), sig.clone()));
                    cases.push(("swapped r s".into(), key.clone(), msg.clone(), [&sig[size..], &sig[..size]].concat()));
                    cases.push(("random sig".into(), key.clone(), msg.clone(), rng.bytes(2 * size)));
                    cases.push(("r = n".into(), key.clone(), msg.clone(), [&order[..], &sig[size..]].concat()));
                    cases.push(("s = n".into(), key.clone(), msg.clone(), [&sig[..size], &order[..]].concat()));
                    cases.push((
                        "r = 0".into(),
                        key.clone(),
                        msg.clone(),
                        [&vec![0u8; size][..], &sig[size..]].concat(),
                    ));
                    cases.push(("short sig".into(), key.clone(), msg.clone(), sig[1..].to_vec()));
                    for (what, k, m, s) in &cases {
                        let (mine, theirs) = (mine(k, m, s), theirs(k, m, s));
                        assert_eq!(mine, theirs, "{what}: mine {mine}, crate {theirs}");
                        assert!(!mine, "{what}: accepted");
                        refused += 1;
                    }
                }
            }
            println!("accepted {accepted}, refused {refused}");
            assert!(accepted >= 60 && refused >= 300, "too few cases: {accepted} {refused}");
        }
    };
}

differential!(
    differential_against_p384_crate,
    p384,
    P384,
    48,
    "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973"
);
differential!(
    differential_against_p521_crate,
    p521,
    P521,
    66,
    "01fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffa51868783bf2f966b7fcc0148f709a5d03bb5c9b8899c47aebb6fb71e91386409"
);
