//! `jwt::p256` against the `p256` crate: seeded random keys and messages; valid signatures (and
//! their high-s twins) must verify, and every mutated signature, message or key must get the
//! same verdict from both.

mod common;

use common::SeededRng;

use apirule_wasm::jwt::p256::P256PublicKey;
use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};

/// What is mutated, then key, message and signature.
type Case = (String, Vec<u8>, Vec<u8>, Vec<u8>);

const N: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xbc, 0xe6, 0xfa,
    0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

/// n - x for 0 < x < n, big-endian.
fn n_minus(x: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; 32];
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let d = i16::from(N[i]) - i16::from(x[i]) - borrow;
        borrow = i16::from(d < 0);
        out[i] = (d + if d < 0 { 256 } else { 0 }) as u8;
    }
    out
}

fn theirs(key: &[u8], msg: &[u8], sig: &[u8]) -> bool {
    let Ok(vk) = VerifyingKey::from_sec1_bytes(key) else { return false };
    let Ok(sig) = Signature::from_slice(sig) else { return false };
    vk.verify(msg, &sig).is_ok()
}

/// Keys already prepared (building a key's table is the expensive part in a debug build).
struct Keys(Vec<(Vec<u8>, P256PublicKey)>);

impl Keys {
    fn mine(&mut self, key: &[u8], msg: &[u8], sig: &[u8]) -> bool {
        if let Some((_, k)) = self.0.iter().find(|(bytes, _)| bytes == key) {
            return k.verify_sha256(msg, sig).is_ok();
        }
        match P256PublicKey::from_sec1(key) {
            Ok(k) => {
                let ok = k.verify_sha256(msg, sig).is_ok();
                self.0.push((key.to_vec(), k));
                ok
            }
            Err(_) => false,
        }
    }
}

fn agree(keys: &mut Keys, key: &[u8], msg: &[u8], sig: &[u8], what: &str) -> bool {
    let (m, t) = (keys.mine(key, msg, sig), theirs(key, msg, sig));
    assert_eq!(m, t, "{what}: mine {m}, p256 {t}; key {key:02x?} msg {msg:02x?} sig {sig:02x?}");
    m
}

#[test]
fn differential_against_p256_crate() {
    let mut rng = SeededRng(0x5eed_0001);
    let (mut accepted, mut refused) = (0usize, 0usize);
    for round in 0..60 {
        let Ok(sk) = SigningKey::from_slice(&rng.bytes(32)) else { continue };
        let key = VerifyingKey::from(&sk).to_encoded_point(false).as_bytes().to_vec();
        let prepared = P256PublicKey::from_sec1(&key).unwrap();
        let mut keys = Keys(vec![(key.clone(), prepared.clone())]);
        assert_eq!(prepared.to_sec1().to_vec(), key);
        let other = VerifyingKey::from(&SigningKey::from_slice(&[round as u8 + 1; 32]).unwrap());
        let other = other.to_encoded_point(false).as_bytes().to_vec();
        for _ in 0..4 {
            let len = rng.below(300);
            let msg = rng.bytes(len);
            let sig: Signature = sk.sign(&msg);
            let sig = sig.to_bytes().to_vec();
            assert!(prepared.verify_sha256(&msg, &sig).is_ok(), "valid signature refused");
            assert!(agree(&mut keys, &key, &msg, &sig, "valid"));
            // The high-s twin (r, n - s) is valid ECDSA too.
            let high = [&sig[..32], &n_minus(&sig[32..])[..]].concat();
            assert!(agree(&mut keys, &key, &msg, &high, "high s"));
            accepted += 2;

            let mut cases: Vec<Case> = Vec::new();
            for _ in 0..3 {
                let mut s = sig.clone();
                let bit = rng.below(512);
                s[bit / 8] ^= 1 << (bit % 8);
                cases.push((format!("sig bit {bit}"), key.clone(), msg.clone(), s));
            }
            let mut m = msg.clone();
            if m.is_empty() {
                m.push(0);
            } else {
                let bit = rng.below(m.len() * 8);
                m[bit / 8] ^= 1 << (bit % 8);
            }
            cases.push(("msg bit".into(), key.clone(), m, sig.clone()));
            let mut k = key.clone();
            let bit = 8 + rng.below(512);
            k[bit / 8] ^= 1 << (bit % 8);
            cases.push((format!("key bit {bit}"), k, msg.clone(), sig.clone()));
            cases.push(("other key".into(), other.clone(), msg.clone(), sig.clone()));
            cases.push(("swapped r s".into(), key.clone(), msg.clone(), [&sig[32..], &sig[..32]].concat()));
            cases.push(("random sig".into(), key.clone(), msg.clone(), rng.bytes(64)));
            cases.push(("r = n".into(), key.clone(), msg.clone(), [&N[..], &sig[32..]].concat()));
            cases.push(("s = n".into(), key.clone(), msg.clone(), [&sig[..32], &N[..]].concat()));
            cases.push(("r = 0".into(), key.clone(), msg.clone(), [&[0u8; 32][..], &sig[32..]].concat()));
            cases.push(("s = 0".into(), key.clone(), msg.clone(), [&sig[..32], &[0u8; 32][..]].concat()));
            for (what, k, m, s) in &cases {
                assert!(!agree(&mut keys, k, m, s, what), "{what}: accepted");
                refused += 1;
            }
        }
    }
    println!("accepted {accepted}, refused {refused}");
    assert!(accepted >= 400 && refused >= 2000, "too few cases: {accepted} {refused}");
}
