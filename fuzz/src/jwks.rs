//! `parse_jwks` on arbitrary bytes and on a valid key set (RSA, P-256, P-384, P-521, oct,
//! Ed25519) mutated structurally.
//!
//! The invariants, beyond not crashing: the answer agrees with what the body is as JSON (not
//! JSON, no `keys` array); every JWK is either kept or counted as skipped, at most `MAX_KEYS`
//! kept, in order; a kept key has the kid, use and family of its JWK and exactly its key
//! material (RSA n and e, the EC point, the oct bytes, the Ed25519 point); and the reference
//! crates (`rsa`, `p256`, `p384`, `p521`) accept every kept RSA and EC key as a valid public key.

use std::sync::OnceLock;

use apirule_wasm::jwt::jwks::{parse_jwks, Jwk, JwksError, KeySet, PublicKey, MAX_JWKS_BYTES, MAX_KEYS};
use arbitrary::{Result, Unstructured};
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::{alphabet, Engine};
use serde_json::{json, Value};

use crate::common;
use crate::json_mutate::{self, Dictionary};

/// base64url as the filter reads JWK members (padding optional).
const B64URL: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// RFC 8032 test 1's public key.
const ED25519_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";

pub fn base_jwks() -> Value {
    static BASE: OnceLock<Value> = OnceLock::new();
    BASE.get_or_init(|| {
        let ec = |crv: &str, point: &[u8], size: usize| {
            let (x, y) = point[1..].split_at(size);
            json!({"kty": "EC", "kid": crv, "use": "sig", "crv": crv, "x": common::b64(x), "y": common::b64(y)})
        };
        let p384 = p384::SecretKey::from_slice(&[3u8; 48]).expect("p384 key").public_key();
        let p521 =
            p521::SecretKey::from_slice(&[[1u8].as_slice(), &[5u8; 65]].concat()).expect("p521 key").public_key();
        use p384::elliptic_curve::sec1::ToEncodedPoint;
        json!({"keys": [
            common::rsa_public_jwk("k1"),
            common::ec_public_jwk("e1"),
            ec("P-384", p384.to_encoded_point(false).as_bytes(), 48),
            ec("P-521", p521.to_encoded_point(false).as_bytes(), 66),
            {"kty": "oct", "kid": "h1", "use": "sig", "k": common::b64(b"secret")},
            {"kty": "OKP", "kid": "ed", "use": "sig", "crv": "Ed25519", "x": ED25519_X},
        ]})
    })
    .clone()
}

fn dictionary() -> Dictionary {
    let mut values = json_mutate::generic_values();
    for s in [
        "RSA",
        "EC",
        "oct",
        "OKP",
        "P-256",
        "P-384",
        "P-521",
        "Ed25519",
        "X25519",
        "secp256k1",
        "sig",
        "enc",
        "RS256",
        "ES256",
        "AQAB",
        "Aw",
        "AQ",
        "Ag",
        "AAEAAQ",
        "AA",
        "AA==",
        "_w",
        "-_-_",
        "!!",
        "AQAB=",
    ] {
        values.push(Value::String(s.into()));
    }
    // Moduli and coordinates at and around the size limits, all ones (odd, so "valid" moduli).
    for n in [1usize, 31, 32, 33, 47, 48, 49, 65, 66, 67, 255, 256, 257, 511, 512, 513] {
        values.push(Value::String(common::b64(&vec![0xff; n])));
        values.push(Value::String(common::b64(&[vec![0u8; 3], vec![0xff; n]].concat())));
    }
    Dictionary {
        values,
        keys: vec!["keys", "kty", "kid", "use", "alg", "crv", "n", "e", "x", "y", "d", "k", "key_ops", "x5c"],
        fragments: vec!["A", "_", "-", "=", "+", "/", "AAAA"],
    }
}

fn strip_zeros(b: &[u8]) -> &[u8] {
    &b[b.iter().position(|&x| x != 0).unwrap_or(b.len())..]
}

fn member(jwk: &Value, name: &str) -> Option<Vec<u8>> {
    B64URL.decode(jwk.get(name)?.as_str()?).ok()
}

fn opt_str(jwk: &Value, name: &str) -> Option<Option<String>> {
    match jwk.get(name) {
        None | Some(Value::Null) => Some(None),
        Some(Value::String(s)) => Some(Some(s.clone())),
        Some(_) => None,
    }
}

/// Whether kept key `k` is exactly JWK `jwk` (metadata and material).
fn is_from(k: &Jwk, jwk: &Value) -> bool {
    if opt_str(jwk, "kid") != Some(k.kid.clone()) || opt_str(jwk, "use") != Some(k.usage.clone()) {
        return false;
    }
    let kty = jwk.get("kty").and_then(Value::as_str);
    let crv = jwk.get("crv").and_then(Value::as_str);
    let ec_point = |size: usize| -> Option<Vec<u8>> {
        let (x, y) = (member(jwk, "x")?, member(jwk, "y")?);
        let mut p = vec![4u8];
        for c in [x, y] {
            p.resize(p.len() + size.checked_sub(c.len())?, 0);
            p.extend_from_slice(&c);
        }
        Some(p)
    };
    match (&k.key, kty, crv) {
        (PublicKey::Rsa(r), Some("RSA"), _) => {
            let (Some(n), Some(e)) = (member(jwk, "n"), member(jwk, "e")) else { return false };
            let e = strip_zeros(&e);
            e.len() <= 8 && r.n() == strip_zeros(&n) && r.e() == e.iter().fold(0u64, |a, &b| (a << 8) | u64::from(b))
        }
        (PublicKey::EcP256(p), Some("EC"), Some("P-256")) => ec_point(32).is_some_and(|q| p.to_sec1()[..] == q[..]),
        (PublicKey::EcP384(p), Some("EC"), Some("P-384")) => ec_point(48).is_some_and(|q| p.to_sec1() == q),
        (PublicKey::EcP521(p), Some("EC"), Some("P-521")) => ec_point(66).is_some_and(|q| p.to_sec1() == q),
        (PublicKey::Symmetric(s), Some("oct"), _) => member(jwk, "k").as_deref() == Some(&s[..]),
        (PublicKey::Ed25519(x), Some("OKP"), Some("Ed25519")) => member(jwk, "x").as_deref() == Some(&x[..]),
        _ => false,
    }
}

/// The reference crates take the key as a valid public key.
fn reference_accepts(k: &PublicKey) -> bool {
    match k {
        PublicKey::Rsa(r) => {
            let n = rsa::BigUint::from_bytes_be(r.n());
            let e = rsa::BigUint::from(r.e());
            rsa::RsaPublicKey::new_with_max_size(n, e, 4096).is_ok()
        }
        PublicKey::EcP256(p) => p256::PublicKey::from_sec1_bytes(&p.to_sec1()).is_ok(),
        PublicKey::EcP384(p) => p384::PublicKey::from_sec1_bytes(&p.to_sec1()).is_ok(),
        PublicKey::EcP521(p) => p521::PublicKey::from_sec1_bytes(&p.to_sec1()).is_ok(),
        PublicKey::Symmetric(s) => !s.is_empty(),
        PublicKey::Ed25519(x) => x.len() == 32,
    }
}

fn check_answer(body: &[u8], answer: &std::result::Result<KeySet, JwksError>) {
    if body.len() > MAX_JWKS_BYTES {
        assert!(matches!(answer, Err(JwksError::TooLarge(_))));
        return;
    }
    let doc = serde_json::from_slice::<Value>(body);
    let entries = doc.as_ref().ok().and_then(|d| d.get("keys")).and_then(Value::as_array);
    let set = match (answer, &doc, entries) {
        (Err(JwksError::NotJson), Err(_), _) => return,
        (Err(JwksError::NoKeysArray), Ok(_), None) => return,
        (Ok(set), Ok(_), Some(_)) => set,
        (a, d, e) => panic!("answer {a:?} for a body that is JSON: {}, with keys array: {}", d.is_ok(), e.is_some()),
    };
    let entries = entries.map(Vec::as_slice).unwrap_or_default();
    assert!(set.keys.len() <= MAX_KEYS);
    assert_eq!(set.keys.len() + set.skipped, entries.len(), "a JWK neither kept nor skipped");
    // Kept keys are a subsequence of the JWKs, each exactly its JWK.
    let mut kept = set.keys.iter().peekable();
    for jwk in entries {
        if kept.peek().is_some_and(|k| is_from(k, jwk)) {
            kept.next();
        }
    }
    assert!(kept.peek().is_none(), "a kept key is not its JWK: {:?}", kept.peek());
    for k in &set.keys {
        assert!(reference_accepts(&k.key), "kept a key the reference crates refuse: {k:?}");
    }
}

pub fn check(data: &[u8]) {
    check_answer(data, &parse_jwks(data));
    let _ = structured(data);
}

fn structured(data: &[u8]) -> Result<()> {
    let mut u = Unstructured::new(data);
    // One or two of the base keys (P-384 and P-521 keys cost milliseconds each to parse).
    let base = base_jwks();
    let all = base["keys"].as_array().cloned().unwrap_or_default();
    let mut keys = vec![u.choose(&all)?.clone()];
    if u.arbitrary()? {
        keys.push(u.choose(&all)?.clone());
    }
    let mut doc = json!({"keys": keys});
    json_mutate::mutate(&mut u, &mut doc, &dictionary(), 6)?;
    let body = doc.to_string();
    check_answer(body.as_bytes(), &parse_jwks(body.as_bytes()));
    Ok(())
}

/// The unmutated set keeps every key.
pub fn self_check() {
    let body = base_jwks().to_string();
    let set = parse_jwks(body.as_bytes()).expect("the base key set parses");
    assert_eq!((set.keys.len(), set.skipped), (6, 0), "{set:?}");
    check_answer(body.as_bytes(), &Ok(set));
}
