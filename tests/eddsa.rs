//! EdDSA (Ed25519): google/jwt_verify_lib's vectors (verify_jwk_okp_test.cc) through an APIRule
//! v2, and tokens minted here through a v1beta1 `jwt` rule that allows EdDSA.

mod common;

use apirule_wasm::keys::KeyCache;
use common::*;
use jwt_simple::prelude::*;
use serde_json::{json, Value};

/// jwt_verify_lib's key set: one Ed25519 key under kids `abc` and `xyz`.
fn okp_jwks(alg: bool, kid: bool) -> Value {
    let key = |k: &str| {
        let mut j = json!({"kty": "OKP", "crv": "Ed25519", "x": "6hH43mEbo-h7iigPm9zLKHH5oEc-bjIXD_t4PLPqHLQ"});
        if alg {
            j["alg"] = json!("EdDSA");
        }
        if kid {
            j["kid"] = json!(k);
        }
        j
    };
    json!({"keys": [key("abc"), key("xyz")]})
}

const CLAIMS: &str = "eyJpc3MiOiJodHRwczovL2V4YW1wbGUuY29tIiwic3ViIjoidGVzdEBleGFtcGxlLmNvbSJ9";
const KID_OK: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJFZERTQSIsImtpZCI6ImFiYyJ9";
const NO_KID: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJFZERTQSJ9";
const OTHER_KID: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJFZERTQSIsImtpZCI6ImFiY2RlZiJ9";

fn jwt_verify_lib_token(header: &str) -> String {
    let sig = match header {
        KID_OK => "n7Jd_zwXE03FFDrjdxDP3CYJqAlFXCa3jbv8qER_Z5cmisGJ3_gEb2j1IALPtLA8TsYxQJ4Xxfucen9nFqxUBg",
        NO_KID => "rn-h5xTejtilHiAG6aKJEQ3e5_aIKC7nwKUPOjBqN8df69JLiFtKxFCDINHtCNhoeLkgcDHHo2SJFincVH_OCg",
        _ => "dqLWFow63rL9VFsjtea60hZn5wMZJxNM6pGcVcOEOE38HrkY1miLj2ZIavd8P7NkkqEsuZMkZ4QHcZxm8qRiCA",
    };
    format!("{header}.{CLAIMS}.{sig}")
}

/// Signed by another key (jwt_verify_lib's `JwtJWKEd25519WrongSignature`).
const WRONG_SIGNATURE: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJFZERTQSIsImtpZCI6ImFiYyJ9.eyJpc3MiOiJodHRwczovL2V4YW1wbGUuY29tIiwic3ViIjoidGVzdEBleGFtcGxlLmNvbSJ9.Y-Podsv8NFAQX07NbXAm6O8jD7KdzMpulh-kgDbuT-AspA_tT7aebOM2GHb2q6qex1O6BFkp5n8-2wrwKKE1BQ";

fn v2_status(jwks: Value, token: &str) -> u16 {
    let rule = json!({"path": "/*", "methods": ["GET"],
                      "jwt": {"authentications": [{"issuer": "https://example.com", "jwksUri": JWKS_URL}]}});
    let apirule = json!({
        "apiVersion": "gateway.kyma-project.io/v2", "kind": "APIRule",
        "metadata": {"name": "okp", "namespace": "default"},
        "spec": {"hosts": [HOST], "service": {"name": "httpbin", "port": 8000},
                 "gateway": "kyma-system/kyma-gateway", "rules": [rule]}
    });
    let cfg = load(vec![apirule]);
    status(&decide_refetching(&cfg.policy, &bearer(get("/x"), token), NOW_MS, &mut cache_with(jwks.clone()), &jwks))
}

#[test]
fn jwt_verify_lib_vectors() {
    let jwks = okp_jwks(true, true);
    assert_eq!(v2_status(jwks.clone(), &jwt_verify_lib_token(KID_OK)), 200, "KidOK");
    assert_eq!(v2_status(jwks.clone(), &jwt_verify_lib_token(NO_KID)), 200, "NoKidOK");
    assert_eq!(v2_status(jwks.clone(), &jwt_verify_lib_token(OTHER_KID)), 401, "NonExistKidFail");
    assert_eq!(v2_status(jwks, WRONG_SIGNATURE), 401, "WrongSignatureFail");
    assert_eq!(v2_status(okp_jwks(false, true), &jwt_verify_lib_token(KID_OK)), 200, "PubkeyNoAlgOK");
    assert_eq!(v2_status(okp_jwks(true, false), &jwt_verify_lib_token(KID_OK)), 200, "PubkeyNoKidOK");
}

#[test]
fn every_flipped_signature_bit_fails() {
    // jwt_verify_lib's fuzzJwtSignatureBits: no single-bit change of the signature verifies.
    let token = jwt_verify_lib_token(KID_OK);
    let (input, sig) = token.rsplit_once('.').unwrap();
    let sig = base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, sig).unwrap();
    for bit in 0..sig.len() * 8 {
        let mut flipped = sig.clone();
        flipped[bit / 8] ^= 1 << (bit % 8);
        assert_eq!(v2_status(okp_jwks(true, true), &format!("{input}.{}", b64(&flipped))), 401, "bit {bit}");
    }
    // And a signature of the wrong length.
    assert_eq!(v2_status(okp_jwks(true, true), &format!("{input}.{}", b64(&sig[..63]))), 401);
}

#[test]
fn v1beta1_rules_allow_eddsa_when_listed() {
    let pair = Ed25519KeyPair::generate().with_key_id("ed1");
    let jwk =
        json!({"kty": "OKP", "crv": "Ed25519", "kid": "ed1", "use": "sig", "x": b64(&pair.public_key().to_bytes())});
    let claims = Claims::create(jwt_simple::prelude::Duration::from_hours(1)).with_issuer(ISSUER).with_subject("u");
    // A fixed clock, as the rest of the tests: exp = NOW + 1 h.
    let claims = JWTClaims { issued_at: None, expires_at: Some(UnixTimeStamp::from_secs(NOW_SECS + 3600)), ..claims };
    let token = pair.sign(claims).unwrap();
    let cfg = |algs: Value| {
        load(vec![apirule(
            "okp",
            HOST,
            json!([rule("/x", &["GET"], "jwt", Some(jwt_config(json!({"allowed_algorithms": algs}))))]),
        )])
    };
    let keys: KeyCache = cache_with(json!({"keys": [jwk]}));
    let req = bearer(get("/x"), &token);
    assert_eq!(status(&cfg(json!(["EdDSA"])).policy.decide(&req, NOW_MS, &keys)), 200);
    assert_eq!(status(&cfg(json!(["RS256"])).policy.decide(&req, NOW_MS, &keys)), 401, "not listed");
    let (input, sig) = token.rsplit_once('.').unwrap();
    let first = if sig.starts_with('A') { "B" } else { "A" };
    let tampered = format!("{input}.{first}{}", &sig[1..]);
    assert_eq!(status(&cfg(json!(["EdDSA"])).policy.decide(&bearer(get("/x"), &tampered), NOW_MS, &keys)), 401);
}

#[test]
fn okp_keys_on_other_curves_are_skipped() {
    let doc = json!({"keys": [{"kty": "OKP", "crv": "X25519", "kid": "x", "x": "6hH43mEbo-h7iigPm9zLKHH5oEc-bjIXD_t4PLPqHLQ"},
                               {"kty": "OKP", "crv": "Ed25519", "kid": "short", "x": "6hH43mEbo"}]});
    let set = apirule_wasm::jwt::jwks::parse_jwks(doc.to_string().as_bytes()).unwrap();
    assert_eq!((set.keys.len(), set.skipped), (0, 2));
}
