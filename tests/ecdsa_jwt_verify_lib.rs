//! ECDSA (ES256, ES384, ES512): google/jwt_verify_lib's vectors (verify_jwk_ec_test.cc) through an
//! APIRule v2, as Envoy's jwt_authn (which uses that library) answers them.

mod common;

use common::*;
use serde_json::{json, Value};

/// jwt_verify_lib's key set: P-256 under kids `abc` and `xyz`, P-384 `es384`, P-521 `es512`.
fn ec_jwks() -> Value {
    json!({"keys": [{"kty": "EC", "crv": "P-256", "alg": "ES256", "kid": "abc", "x": "EB54wykhS7YJFD6RYJNnwbWEz3cI7CF5bCDTXlrwI5k", "y": "92bCBTvMFQ8lKbS2MbgjT3YfmYo6HnPEE2tsAqWUJw8"}, {"kty": "EC", "crv": "P-256", "alg": "ES256", "kid": "xyz", "x": "EB54wykhS7YJFD6RYJNnwbWEz3cI7CF5bCDTXlrwI5k", "y": "92bCBTvMFQ8lKbS2MbgjT3YfmYo6HnPEE2tsAqWUJw8"}, {"kty": "EC", "crv": "P-384", "alg": "ES384", "kid": "es384", "x": "yY8DWcyWlrr93FTrscI5Ydz2NC7emfoKYHJLX2dr3cSgfw0GuxAkuQ5nBMJmVV5g", "y": "An5wVxEfksDOa_zvSHHGkeYJUfl8y11wYkOlFjBt9pOCw5-RlfZgPOa3pbmUquxZ"}, {"kty": "EC", "crv": "P-521", "alg": "ES512", "kid": "es512", "x": "Abijiex7rz7t-_Zj_E6Oo0OXe9C_-MCSD-OWio15ATQGjH9WpbWjN62ZqrrU_nwJiqqwx6ZsYKhUc_J3PRaMbdVC", "y": "FxaljCIuoVEA7PJIaDPJ5ePXtZ0hkinT1B_bQ91mShCiR_43Whsn1P7Gz30WEnLuJs1SGVz1oT4lIRUYni2OfIk"}]})
}

const ISSUER: &str = "628645741881-noabiu23f5a8m8ovd8ucv698lj78vv0l@developer.gserviceaccount.com";
const ES256: &str = concat!(
    "eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6ImFiYyJ9.eyJpc3MiOiI2Mjg2NDU3NDE4ODEtbm9hYml1M",
    "jNmNWE4bThvdmQ4dWN2Njk4bGo3OHZ2MGxAZGV2ZWxvcGVyLmdzZXJ2aWNlYWNjb3VudC5jb20iLCJzdWIiOiI2Mjg",
    "2NDU3NDE4ODEtbm9hYml1MjNmNWE4bThvdmQ4dWN2Njk4bGo3OHZ2MGxAZGV2ZWxvcGVyLmdzZXJ2aWNlYWNjb3Vud",
    "C5jb20iLCJhdWQiOiJodHRwOi8vbXlzZXJ2aWNlLmNvbS9teWFwaSJ9.T2KAwChqgo2ZSXyLh3IcMBQNSeRZRe5Z-M",
    "UDl-s-F99XGoyutqA6lq8bKZ6vmjZAlpVG8AGRZW9JGp9lq3cbEw"
);
const ES384: &str = concat!(
    "eyJhbGciOiJFUzM4NCIsInR5cCI6IkpXVCIsImtpZCI6ImVzMzg0In0.eyJpc3MiOiI2Mjg2NDU3NDE4ODEtbm9hYm",
    "l1MjNmNWE4bThvdmQ4dWN2Njk4bGo3OHZ2MGxAZGV2ZWxvcGVyLmdzZXJ2aWNlYWNjb3VudC5jb20iLCJzdWIiOiI2",
    "Mjg2NDU3NDE4ODEtbm9hYml1MjNmNWE4bThvdmQ4dWN2Njk4bGo3OHZ2MGxAZGV2ZWxvcGVyLmdzZXJ2aWNlYWNjb3",
    "VudC5jb20iLCJhdWQiOiJodHRwOi8vbXlzZXJ2aWNlLmNvbS9teWFwaSJ9.aKFxrqV4_rg1Zf2DamTU0D76hOq9-FY",
    "u-LNmpGPthjJKv31mOZ4tJ40x2FVVJx5d8lntg3bsy1IN0z9C7MD_k10Y7Gea1YB7Jyi-DR68U5krJzzwKmD9ap1J7",
    "tb2UrzT"
);
const ES512: &str = concat!(
    "eyJhbGciOiJFUzUxMiIsInR5cCI6IkpXVCIsImtpZCI6ImVzNTEyIn0.eyJpc3MiOiI2Mjg2NDU3NDE4ODEtbm9hYm",
    "l1MjNmNWE4bThvdmQ4dWN2Njk4bGo3OHZ2MGxAZGV2ZWxvcGVyLmdzZXJ2aWNlYWNjb3VudC5jb20iLCJzdWIiOiI2",
    "Mjg2NDU3NDE4ODEtbm9hYml1MjNmNWE4bThvdmQ4dWN2Njk4bGo3OHZ2MGxAZGV2ZWxvcGVyLmdzZXJ2aWNlYWNjb3",
    "VudC5jb20iLCJhdWQiOiJodHRwOi8vbXlzZXJ2aWNlLmNvbS9teWFwaSJ9.ATSReP9zpba6PRJZmlIEA78Ft-FZS1m",
    "_SpFLqfiNQNexaDaTmmVrIqD9X-krPxk0c8KSBeMlU-QLOsbh37coamruAPKoAODYWA-QKUN2a_xem8WrudKVXWsmQ",
    "lZDOJA0lQWI-YGMEPrDr17mljMhZwSGbVVST9l-nZiMXyMK0z8hR9Mn"
);
const ES256_OTHER_KID: &str = concat!(
    "eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6ImFiY2RlZiJ9.eyJpc3MiOiI2Mjg2NDU3NDE4ODEtbm9hY",
    "ml1MjNmNWE4bThvdmQ4dWN2Njk4bGo3OHZ2MGxAZGV2ZWxvcGVyLmdzZXJ2aWNlYWNjb3VudC5jb20iLCJzdWIiOiI",
    "2Mjg2NDU3NDE4ODEtbm9hYml1MjNmNWE4bThvdmQ4dWN2Njk4bGo3OHZ2MGxAZGV2ZWxvcGVyLmdzZXJ2aWNlYWNjb",
    "3VudC5jb20iLCJhdWQiOiJodHRwOi8vbXlzZXJ2aWNlLmNvbS9teWFwaSJ9.rWSoOV5j7HxHc4yVgZEZYUSgY7AUar",
    "G3HxdfPON1mw6II_pNUsc8_sVf7Yv2-jeVhmf8BtR99wnOwEDhVYrVpQ"
);
const ES256_NO_KID: &str = concat!(
    "eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiI2Mjg2NDU3NDE4ODEtbm9hYml1MjNmNWE4bThvdmQ4d",
    "WN2Njk4bGo3OHZ2MGxAZGV2ZWxvcGVyLmdzZXJ2aWNlYWNjb3VudC5jb20iLCJzdWIiOiI2Mjg2NDU3NDE4ODEtbm9",
    "hYml1MjNmNWE4bThvdmQ4dWN2Njk4bGo3OHZ2MGxAZGV2ZWxvcGVyLmdzZXJ2aWNlYWNjb3VudC5jb20iLCJhdWQiO",
    "iJodHRwOi8vbXlzZXJ2aWNlLmNvbS9teWFwaSJ9.zlFcET8FiOYcKe30A7qOD4TIBvtb9zIVhDcM8pievKs1Te-UOB",
    "cklQxhwXMnRSSEBY4P0pfZqWJT_V5IVrKrdQ"
);

/// An APIRule v2 over one issuer, with the key set already fetched.
struct Gateway {
    cfg: apirule_wasm::config::Config,
    jwks: Value,
}

impl Gateway {
    fn new(jwks: Value) -> Gateway {
        let rule = json!({"path": "/*", "methods": ["GET"],
                          "jwt": {"authentications": [{"issuer": ISSUER, "jwksUri": JWKS_URL}]}});
        let apirule = json!({
            "apiVersion": "gateway.kyma-project.io/v2", "kind": "APIRule",
            "metadata": {"name": "ec", "namespace": "default"},
            "spec": {"hosts": [HOST], "service": {"name": "httpbin", "port": 8000},
                     "gateway": "kyma-system/kyma-gateway", "rules": [rule]}
        });
        Gateway { cfg: load(vec![apirule]), jwks }
    }

    fn status(&self, token: &str) -> u16 {
        let mut keys = cache_with(self.jwks.clone());
        status(&decide_refetching(&self.cfg.policy, &bearer(get("/x"), token), NOW_MS, &mut keys, &self.jwks))
    }
}

fn v2_status(jwks: Value, token: &str) -> u16 {
    Gateway::new(jwks).status(token)
}

/// The key set without the members named (as the C++ tests erase them from the text).
fn without(member: &str) -> Value {
    let mut jwks = ec_jwks();
    for key in jwks["keys"].as_array_mut().unwrap() {
        if key["crv"] == "P-256" {
            key.as_object_mut().unwrap().remove(member);
        }
    }
    jwks
}

#[test]
fn jwt_verify_lib_vectors() {
    assert_eq!(v2_status(ec_jwks(), ES256), 200, "KidOK");
    assert_eq!(v2_status(ec_jwks(), ES384), 200, "KidES384OK");
    assert_eq!(v2_status(ec_jwks(), ES512), 200, "KidES512OK");
    assert_eq!(v2_status(ec_jwks(), ES256_NO_KID), 200, "NoKidOK");
    assert_eq!(v2_status(ec_jwks(), ES256_OTHER_KID), 401, "NonExistKidFail");
    assert_eq!(v2_status(without("alg"), ES256), 200, "PubkeyNoAlgOK");
    assert_eq!(v2_status(without("kid"), ES256), 200, "PubkeyNoKidOK");
}

/// jwt_verify_lib's fuzzJwtSignature: no single-bit change of the signature verifies, and
/// neither does a signature one byte short or long.
#[test]
fn every_flipped_signature_bit_fails() {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let gateway = Gateway::new(ec_jwks());
    for token in [ES256, ES384, ES512] {
        let (input, sig) = token.rsplit_once('.').unwrap();
        let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
        for bit in 0..sig.len() * 8 {
            let mut flipped = sig.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(gateway.status(&format!("{input}.{}", b64(&flipped))), 401, "bit {bit} of {token}");
        }
        let short = &sig[..sig.len() - 1];
        let long = [&sig[..], &[0]].concat();
        assert_eq!(gateway.status(&format!("{input}.{}", b64(short))), 401);
        assert_eq!(gateway.status(&format!("{input}.{}", b64(&long))), 401);
    }
}

/// The P-521 key with its coordinate `member` replaced by `f(its bytes)`.
fn p521_key_with(member: &str, f: impl Fn(Vec<u8>) -> Vec<u8>) -> Value {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let mut jwks = ec_jwks();
    let key = &mut jwks["keys"][3];
    let bytes = URL_SAFE_NO_PAD.decode(key[member].as_str().unwrap()).unwrap();
    key[member] = json!(b64(&f(bytes)));
    jwks
}

/// jwt_verify_lib's P-521 key has a 65-byte `y` (its zero top byte dropped), which RFC 7518
/// forbids and Envoy takes: the filter reads it as the same integer, and the full-size spelling
/// works too. A longer coordinate, an empty one, or a point off the curve makes the key unusable.
#[test]
fn p521_coordinate_lengths() {
    let len = |jwks: Value, m: &str| jwks["keys"][3][m].as_str().unwrap().len();
    assert_eq!((len(ec_jwks(), "x"), len(ec_jwks(), "y")), (88, 87), "66 and 65 bytes");
    let padded = |b: Vec<u8>| [vec![0u8; 66 - b.len()], b].concat();
    assert_eq!(v2_status(p521_key_with("y", padded), ES512), 200, "66-byte y");
    assert_eq!(v2_status(p521_key_with("x", |b| [vec![0u8], b].concat()), ES512), 401, "67-byte x");
    assert_eq!(v2_status(p521_key_with("y", |b| [vec![0u8; 2], b].concat()), ES512), 401, "67-byte y");
    let flipped = |mut b: Vec<u8>| {
        *b.last_mut().unwrap() ^= 1;
        b
    };
    assert_eq!(v2_status(p521_key_with("y", flipped), ES512), 401, "off the curve");
    assert_eq!(v2_status(p521_key_with("x", |_| Vec::new()), ES512), 401, "empty x");
}
