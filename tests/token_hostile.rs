//! Hostile tokens and key sets, each class with the one answer the filter gives, through the
//! whole decision (`Policy::decide`) for a v1 APIRule (Oathkeeper's answers) and a v2 APIRule
//! (Istio's: Envoy jwt_authn). docs/security.md, "Tokens and keys", says whose behaviour each
//! answer follows and names these tests.

mod common;

use std::time::{Duration, Instant};

use apirule_wasm::jwt::jwks::{parse_jwks, JwksError};
use common::*;
use serde_json::{json, Value};

/// A v1beta1 APIRule: `GET /.*` with the jwt handler (our JWKS URL and issuer, plus `extra`).
fn v1_rules(extra: Value) -> Value {
    apirule("v1", HOST, json!([rule("/.*", &["GET"], "jwt", Some(jwt_config(extra)))]))
}

/// A v2 APIRule: `GET /{**}` with one jwt authentication (our issuer and JWKS URL).
fn v2_rules() -> Value {
    json!({
        "apiVersion": "gateway.kyma-project.io/v2",
        "kind": "APIRule",
        "metadata": {"name": "v2", "namespace": "default"},
        "spec": {"hosts": [HOST], "service": {"name": "httpbin", "port": 8000},
                 "gateway": "kyma-system/kyma-gateway",
                 "rules": [{"path": "/{**}", "methods": ["GET"],
                            "jwt": {"authentications": [{"issuer": ISSUER, "jwksUri": JWKS_URL}]}}]}
    })
}

/// The status a v1 rule with `extra` gives `GET /x` with `token`, the IdP serving `jwks`.
fn v1(token: &str, jwks: &Value, extra: Value) -> u16 {
    let cfg = load(vec![v1_rules(extra)]);
    status(&decide_refetching(&cfg.policy, &bearer(get("/x"), token), NOW_MS, &mut cache_with(jwks.clone()), jwks))
}

/// The same for the v2 rule.
fn v2(token: &str, jwks: &Value) -> u16 {
    let cfg = load(vec![v2_rules()]);
    status(&decide_refetching(&cfg.policy, &bearer(get("/x"), token), NOW_MS, &mut cache_with(jwks.clone()), jwks))
}

/// (v1 with the default rule, v2): most classes have one answer for both.
fn both(token: &str, jwks: &Value) -> (u16, u16) {
    (v1(token, jwks, json!({})), v2(token, jwks))
}

// ---- RSA keys: under 2048 bits never verify; huge ones cost nothing (issue 11, finding 1) ----

fn weak_signed(header: Value) -> String {
    mint(header, good_claims(), Signer::RsaWith(weak_rsa_key(), Sha::S256))
}

#[test]
fn rsa_1024_bit_key_never_verifies() {
    let jwks = json!({"keys": [rsa_jwk_of(weak_rsa_key(), "weak")]});
    let with_kid = weak_signed(json!({"alg": "RS256", "kid": "weak"}));
    assert_eq!(both(&with_kid, &jwks), (401, 401));
    assert_eq!(v2(&weak_signed(json!({"alg": "RS256"})), &jwks), 401, "v2 without kid tries every key");
    // Beside a good key, still never (v2 without kid tries both).
    let jwks = json!({"keys": [rsa_public_jwk("k1"), rsa_jwk_of(weak_rsa_key(), "weak")]});
    assert_eq!(both(&with_kid, &jwks), (401, 401));
    assert_eq!(v2(&weak_signed(json!({"alg": "RS256"})), &jwks), 401);
    assert_eq!(both(&rs256(good_claims()), &jwks), (200, 200), "the good key of that set still verifies");
}

#[test]
fn leading_zero_bytes_do_not_lengthen_a_1024_bit_modulus() {
    use rsa::traits::PublicKeyParts;
    // 128 zero bytes + 128 modulus bytes: as many bytes as a 2048-bit modulus has.
    let mut n = vec![0u8; 128];
    n.extend(weak_rsa_key().n().to_bytes_be());
    assert_eq!(n.len(), 256);
    let jwk = json!({"kty": "RSA", "kid": "weak", "use": "sig", "n": b64(&n), "e": "AQAB"});
    let jwks = json!({"keys": [jwk]});
    assert_eq!(both(&weak_signed(json!({"alg": "RS256", "kid": "weak"})), &jwks), (401, 401));
}

#[test]
fn x5c_is_never_read() {
    // A JWK with only a certificate chain (of the 1024-bit key): no n and e, so no key.
    let jwks = json!({"keys": [{"kty": "RSA", "kid": "weak", "use": "sig", "x5c": [keys::RSA_1024_CERT_DER_B64]}]});
    assert_eq!(both(&weak_signed(json!({"alg": "RS256", "kid": "weak"})), &jwks), (401, 401));
    // n and e of the good key with the weak key's certificate: n and e are the key.
    let mut jwk = rsa_public_jwk("k1");
    jwk["x5c"] = json!([keys::RSA_1024_CERT_DER_B64]);
    let jwks = json!({"keys": [jwk]});
    assert_eq!(both(&weak_signed(json!({"alg": "RS256", "kid": "k1"})), &jwks), (401, 401));
    assert_eq!(both(&rs256(good_claims()), &jwks), (200, 200));
}

#[test]
fn envoys_x509_key_set_format_is_not_a_key_set() {
    // jwt_verify_lib also reads `{"<kid>": "<PEM certificate>"}`; the filter reads only JWKS.
    let cert: Vec<String> =
        keys::RSA_1024_CERT_DER_B64.as_bytes().chunks(64).map(|c| String::from_utf8_lossy(c).into_owned()).collect();
    let pem = format!("-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n", cert.join("\n"));
    assert_eq!(parse_jwks(json!({"weak": pem}).to_string().as_bytes()), Err(JwksError::NoKeysArray));
}

#[test]
fn huge_moduli_are_skipped_without_arithmetic() {
    // 64 keys with 16384-bit moduli (2048 bytes of 0xff, odd), the most one set keeps.
    let huge = |kid: usize| json!({"kty": "RSA", "kid": format!("h{kid}"), "use": "sig", "n": b64(&[0xff; 2048]), "e": "AQAB"});
    let many = json!({"keys": (0..64).map(huge).collect::<Vec<_>>()}).to_string();
    // One key with a 250 KB `n`, just inside the body limit.
    let long =
        json!({"keys": [{"kty": "RSA", "kid": "l", "use": "sig", "n": "_".repeat(250_000), "e": "AQAB"}]}).to_string();
    let started = Instant::now();
    let many_set = parse_jwks(many.as_bytes()).unwrap();
    let long_set = parse_jwks(long.as_bytes()).unwrap();
    // A 16384-bit Montgomery setup alone costs milliseconds; skipping costs microseconds.
    assert!(started.elapsed() < Duration::from_secs(1), "took {:?}", started.elapsed());
    assert_eq!((many_set.keys.len(), many_set.skipped), (0, 64));
    assert_eq!((long_set.keys.len(), long_set.skipped), (0, 1));
    // A 1 MB `n`: the whole body is over the 256 KiB limit.
    let mb = json!({"keys": [{"kty": "RSA", "kid": "m", "use": "sig", "n": "_".repeat(1 << 20), "e": "AQAB"}]});
    assert!(matches!(parse_jwks(mb.to_string().as_bytes()), Err(JwksError::TooLarge(_))));
    // A token naming a skipped key finds none.
    let jwks = json!({"keys": [huge(0), rsa_public_jwk("k1")]});
    assert_eq!(v1(&mint(json!({"alg": "RS256", "kid": "h0"}), good_claims(), Signer::Rsa), &jwks, json!({})), 401);
}
