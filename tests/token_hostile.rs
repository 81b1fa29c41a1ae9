//! Hostile tokens and key sets, each class with the one answer the filter gives, through the
//! whole decision (`Policy::decide`) for a v1 APIRule (Oathkeeper's answers) and a v2 APIRule
//! (Istio's: Envoy jwt_authn). docs/security.md, "Tokens and keys", says whose behaviour each
//! answer follows and names these tests.

mod common;

use std::time::{Duration, Instant};

use apirule_wasm::jwt::jwks::{parse_jwks, JwksError};
use apirule_wasm::policy::Decision;
use common::*;
use serde_json::{json, Value};

/// A v1beta1 APIRule: `GET /.*` with the jwt handler (our JWKS URL and issuer, plus `extra`).
fn v1_rules(extra: Value) -> Value {
    apirule("v1", HOST, json!([rule("/.*", &["GET"], "jwt", Some(jwt_config(extra)))]))
}

/// A v2 APIRule: `GET /{**}` with one jwt authentication (our issuer and JWKS URL).
fn v2_rules() -> Value {
    let jwt = json!({"authentications": [{"issuer": ISSUER, "jwksUri": JWKS_URL}]});
    v2_apirule("v2", HOST, json!([{"path": "/{**}", "methods": ["GET"], "jwt": jwt}]))
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

/// A payload of our issuer and subject plus `members` (JSON text, starting with a comma).
fn payload(members: &str) -> String {
    format!(r#"{{"iss":"{ISSUER}","sub":"user-1"{members}}}"#)
}

/// RS256 with the default key (kid `k1`) over exactly this header and payload text.
fn rs256_text(header: &str, claims: &str) -> String {
    mint_text(header, claims, Signer::Rsa)
}

const RS256_K1: &str = r#"{"alg":"RS256","kid":"k1","typ":"JWT"}"#;

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

// ---- Time claims (issue 11, finding 2) ----

/// `(members, v1, v2, why)`: NOW is 1_800_000_000; v1 has no leeway, v2 Envoy's 60 s.
const TIME_CLAIMS: &[(&str, u16, u16, &str)] = &[
    (r#","exp":1e30"#, 401, 401, "beyond both int64 (Oathkeeper) and uint64 (Envoy)"),
    (r#","exp":1e400"#, 401, 401, "not a finite number: the payload is not JSON"),
    (r#","exp":-1e30"#, 401, 401, "negative"),
    (r#","exp":-5"#, 401, 401, "negative"),
    (r#","iat":-5"#, 401, 401, "negative (Oathkeeper accepted it, Envoy refuses)"),
    (r#","nbf":-5"#, 401, 401, "negative (Oathkeeper accepted it, Envoy refuses)"),
    (r#","iat":1e30"#, 401, 401, "out of range, even where iat is not compared (v2)"),
    (r#","nbf":-1e30"#, 401, 401, "negative"),
    (r#","exp":-0.5"#, 401, 401, "negative"),
    (r#","exp":9223372036854775807"#, 200, 200, "i64::MAX, the largest second both hold"),
    (r#","exp":9223372036854775808"#, 401, 401, "2^63: beyond Oathkeeper's int64"),
    (r#","exp":18446744073709551616"#, 401, 401, "2^64: beyond Envoy's uint64 too"),
    (r#","exp":0"#, 200, 200, "0 is not set, in golang-jwt v4 and jwt_verify_lib"),
    (r#","iat":0"#, 200, 200, "0 is not set"),
    (r#","nbf":0"#, 200, 200, "0 is not set (Envoy: now >= 0)"),
    (r#","exp":0.5"#, 200, 200, "truncated to 0: not set, in both"),
    (r#","exp":1800003600.5"#, 200, 200, "a fraction is truncated, in both"),
    (r#","exp":1799999999.9"#, 401, 200, "truncated to now - 1: expired without leeway, inside Envoy's skew"),
    (r#","exp":1.8000036e9"#, 200, 200, "exponent notation is a number"),
    (r#","exp":1800000000"#, 200, 200, "exp is inclusive"),
    (r#","exp":1799999999"#, 401, 200, "one second late: v1 has no leeway, v2 60 s"),
    (r#","exp":1799999939"#, 401, 401, "61 s late"),
    (r#","nbf":1800000005"#, 401, 200, "5 s early: v1 has no leeway, v2 60 s"),
    (r#","iat":1800099999"#, 401, 200, "issued in the future: Oathkeeper checks iat, Envoy does not"),
    (r#","exp":"1800003600""#, 401, 401, "a string is not a number"),
    (r#","iat":"1799999990""#, 401, 401, "a string is not a number"),
    (r#","nbf":"1799999990""#, 401, 401, "a string is not a number"),
    (r#","exp":null"#, 401, 401, "null is not a number (golang-jwt v4.0.0 and Envoy both refuse it)"),
    (r#","iat":null"#, 401, 401, "null is not a number"),
    (r#","nbf":true"#, 401, 401, "a boolean is not a number"),
    (r#","exp":[1800003600]"#, 401, 401, "an array is not a number"),
    (r#","exp":{}"#, 401, 401, "an object is not a number"),
];

#[test]
fn time_claims_in_range_or_deny() {
    let jwks = default_jwks();
    for &(members, want_v1, want_v2, why) in TIME_CLAIMS {
        let token = rs256_text(RS256_K1, &payload(members));
        assert_eq!(v1(&token, &jwks, json!({})), want_v1, "v1 {members}: {why}");
        assert_eq!(v2(&token, &jwks), want_v2, "v2 {members}: {why}");
    }
}

// ---- Claim and header types (issue 11, item 3) ----

#[test]
fn typ_must_be_jwt_or_end_in_plus_jwt() {
    let jwks = default_jwks();
    let with_typ =
        |typ: &str| rs256_text(&format!(r#"{{"alg":"RS256","kid":"k1"{typ}}}"#), &payload(",\"exp\":1800003600"));
    for typ in [
        "",
        r#","typ":"JWT""#,
        r#","typ":"jwt""#,
        r#","typ":"at+jwt""#,
        r#","typ":"AT+JWT""#,
        r#","typ":"application/at+jwt""#,
    ] {
        assert_eq!(both(&with_typ(typ), &jwks), (200, 200), "{typ}");
    }
    for typ in [
        r#","typ":"JOSE""#,
        r#","typ":"JWS""#,
        r#","typ":"""#,
        r#","typ":"JWT ""#,
        r#","typ":1"#,
        r#","typ":["JWT"]"#,
        r#","typ":null"#,
    ] {
        assert_eq!(both(&with_typ(typ), &jwks), (401, 401), "{typ}");
    }
}

#[test]
fn any_crit_header_denies() {
    let jwks = default_jwks();
    for crit in [
        r#""crit":["exp"],"exp":1800003600"#,
        r#""crit":["b64"],"b64":false"#,
        r#""crit":[]"#,
        r#""crit":"exp""#,
        r#""crit":null"#,
        r#""crit":{}"#,
    ] {
        let token = rs256_text(&format!(r#"{{"alg":"RS256","kid":"k1",{crit}}}"#), &payload(""));
        assert_eq!(both(&token, &jwks), (401, 401), "{crit}");
    }
}

#[test]
fn registered_claims_of_the_wrong_type_deny() {
    let jwks = default_jwks();
    // Each is correctly signed. The checks do not depend on the rule: v1 here trusts no issuer
    // and wants no audience.
    let open = json!({"trusted_issuers": []});
    for claims in [
        format!(r#"{{"iss":["{ISSUER}"],"sub":"user-1"}}"#),
        format!(r#"{{"iss":{{"0":"{ISSUER}"}},"sub":"user-1"}}"#),
        r#"{"iss":5,"sub":"user-1"}"#.to_owned(),
        r#"{"iss":null,"sub":"user-1"}"#.to_owned(),
        payload(r#","aud":5"#),
        payload(r#","aud":["api",5]"#),
        payload(r#","aud":{"api":true}"#),
        payload(r#","aud":null"#),
        format!(r#"{{"iss":"{ISSUER}","sub":5}}"#),
        format!(r#"{{"iss":"{ISSUER}","sub":["user-1"]}}"#),
        payload(r#","jti":5"#),
    ] {
        let token = rs256_text(RS256_K1, &claims);
        assert_eq!((v1(&token, &jwks, open.clone()), v2(&token, &jwks)), (401, 401), "{claims}");
    }
    // The right types pass, an empty audience list too.
    let token = rs256_text(RS256_K1, &payload(r#","aud":[],"jti":"j""#));
    assert_eq!((v1(&token, &jwks, open), v2(&token, &jwks)), (200, 200));
}

#[test]
fn audience_and_issuer_confusion_deny() {
    let jwks = default_jwks();
    let aud_rule = json!({"target_audience": ["api"]});
    // A list holding the trusted issuer is not the issuer.
    let iss_list = rs256_text(RS256_K1, &format!(r#"{{"iss":["{ISSUER}"],"sub":"user-1"}}"#));
    assert_eq!(both(&iss_list, &jwks), (401, 401));
    // An audience hidden in an object or next to a number.
    for aud in [r#","aud":{"api":"api"}"#, r#","aud":["api",1]"#, r#","aud":"api ""#] {
        assert_eq!(v1(&rs256_text(RS256_K1, &payload(aud)), &jwks, aud_rule.clone()), 401, "{aud}");
    }
    assert_eq!(v1(&rs256_text(RS256_K1, &payload(r#","aud":["api"]"#)), &jwks, aud_rule), 200);
}

#[test]
fn duplicate_member_names_deny() {
    let jwks = default_jwks();
    // Oathkeeper (Go's encoding/json) kept the last value, Envoy (protobuf's JSON parser) refuses
    // the token; the filter refuses it, at any depth, because the backend reads the forwarded
    // token with a parser of its own.
    let admin_rule = json!({"required_scope": ["admin"]});
    for (header, claims) in [
        (r#"{"alg":"RS256","kid":"k1","kid":"k1"}"#.to_owned(), payload(r#","scp":["admin"]"#)),
        (r#"{"alg":"HS256","alg":"RS256","kid":"k1"}"#.to_owned(), payload(r#","scp":["admin"]"#)),
        (r#"{"alg":"RS256","kid":"k1","x-ext":1,"x-ext":2}"#.to_owned(), payload(r#","scp":["admin"]"#)),
        (RS256_K1.to_owned(), payload(r#","scp":["read"],"scp":["admin"]"#)),
        (RS256_K1.to_owned(), payload(r#","scp":["admin"],"sc\u0070":["read"]"#)),
        (RS256_K1.to_owned(), payload(r#","sub":"admin","scp":["admin"]"#)),
        (RS256_K1.to_owned(), payload(r#","scp":["admin"],"ext":{"role":"user","role":"admin"}"#)),
        (RS256_K1.to_owned(), payload(r#","scp":["admin"],"ext":[{"a":1,"a":1}]"#)),
    ] {
        let token = rs256_text(&header, &claims);
        assert_eq!((v1(&token, &jwks, admin_rule.clone()), v2(&token, &jwks)), (401, 401), "{header} {claims}");
    }
    let unique = rs256_text(RS256_K1, &payload(r#","scp":["admin"],"ext":{"role":"admin","x":{"role":1}}"#));
    assert_eq!((v1(&unique, &jwks, admin_rule), v2(&unique, &jwks)), (200, 200));
}

#[test]
fn unicode_lookalike_issuer_denies() {
    let jwks = default_jwks();
    // "https://idp.exаmple.com" with a Cyrillic а (U+0430).
    let lookalike = "https://idp.ex\u{0430}mple.com";
    assert_ne!(lookalike, ISSUER);
    let token = rs256(json!({"iss": lookalike, "sub": "user-1", "exp": NOW_SECS + 3600}));
    assert_eq!(both(&token, &jwks), (401, 401));
    assert_eq!(v1(&token, &jwks, json!({"trusted_issuers": [ISSUER, "https://other.example.com"]})), 401);
}

#[test]
fn nesting_is_bounded_by_serde_jsons_recursion_limit() {
    let jwks = default_jwks();
    let nested = |depth: usize| format!(r#","x":{}1{}"#, "[".repeat(depth), "]".repeat(depth));
    // 100 levels: a legal, signed claim.
    assert_eq!(both(&rs256_text(RS256_K1, &payload(&nested(100))), &jwks), (200, 200));
    // Beyond serde_json's limit of 128 levels: refused, no stack overflow. 5000 levels come close
    // to the 16 KiB token limit.
    for depth in [200, 1000, 5000] {
        let token = rs256_text(RS256_K1, &payload(&nested(depth)));
        assert_eq!(both(&token, &jwks), (401, 401), "payload {depth}");
        let header = format!(r#"{{"alg":"RS256","kid":"k1"{}}}"#, nested(depth));
        assert_eq!(both(&rs256_text(&header, &payload("")), &jwks), (401, 401), "header {depth}");
    }
    let objects = format!(r#","x":{}1{}"#, r#"{"a":"#.repeat(1500), "}".repeat(1500));
    assert_eq!(both(&rs256_text(RS256_K1, &payload(&objects)), &jwks), (401, 401));
}

#[test]
fn embedded_keys_and_key_urls_in_the_header_are_never_used() {
    let jwks = default_jwks();
    // Key URLs and a certificate chain in the header (the attacker's): never fetched or read.
    let header = |kid: Option<&str>| {
        let mut h = json!({"alg": "RS256", "jku": "https://attacker.example.com/keys",
                           "x5u": "https://attacker.example.com/cert.pem", "x5c": [keys::RSA_1024_CERT_DER_B64]});
        if let Some(kid) = kid {
            h["kid"] = json!(kid);
        }
        h
    };
    let by_attacker = |kid| mint(header(kid), good_claims(), Signer::RsaWith(attacker_rsa_key(), Sha::S256));
    // A kid only the attacker's set has: the rule's JWKS URL is refetched, never jku or x5u.
    let cfg = load(vec![v1_rules(json!({}))]);
    let d = cfg.policy.decide(&bearer(get("/x"), &by_attacker(Some("attacker"))), NOW_MS, &default_cache());
    assert!(matches!(&d, Decision::NeedKeys { urls } if urls == &vec![JWKS_URL.to_owned()]), "{d:?}");
    assert_eq!(both(&by_attacker(Some("attacker")), &jwks), (401, 401));
    assert_eq!(both(&by_attacker(Some("k1")), &jwks), (401, 401));
    assert_eq!(v2(&by_attacker(None), &jwks), 401);
    // On a token the IdP's key signed, these members are ignored, not refused.
    assert_eq!(both(&mint(header(Some("k1")), good_claims(), Signer::Rsa), &jwks), (200, 200));
    // A token carrying its own key (`jwk`) is refused, whoever signed it: no IdP issues access
    // tokens like that, and RFC 8725 3.10 warns against trusting it.
    let attacker_jwk = rsa_jwk_of(attacker_rsa_key(), "attacker");
    for signer in [Signer::RsaWith(attacker_rsa_key(), Sha::S256), Signer::Rsa] {
        let token = mint(json!({"alg": "RS256", "kid": "k1", "jwk": attacker_jwk}), good_claims(), signer);
        assert_eq!(both(&token, &jwks), (401, 401));
    }
}

#[test]
fn kid_of_the_wrong_type_denies() {
    let jwks = default_jwks();
    for kid in ["5", r#"["k1"]"#, r#"{"kid":"k1"}"#, "true", "null"] {
        let token = rs256_text(&format!(r#"{{"alg":"RS256","kid":{kid}}}"#), &payload(",\"exp\":1800003600"));
        assert_eq!(both(&token, &jwks), (401, 401), "kid {kid}");
    }
}

#[test]
fn empty_kid_is_no_kid() {
    let jwks = default_jwks();
    // Oathkeeper wants a non-empty kid; jwt_verify_lib reads "" as no kid and tries every key.
    let token = rs256_text(r#"{"alg":"RS256","kid":""}"#, &payload(",\"exp\":1800003600"));
    assert_eq!(both(&token, &jwks), (401, 200));
    // A JWK with kid "" fits any token kid in v2 (jwt_verify_lib), none in v1.
    let mut jwk = rsa_public_jwk("");
    jwk["kid"] = json!("");
    let jwks = json!({"keys": [jwk]});
    assert_eq!(both(&rs256(good_claims()), &jwks), (401, 200));
}

#[test]
fn alg_none_in_any_spelling_denies() {
    let jwks = default_jwks();
    for alg in ["none", "None", "NONE", "nOnE", ""] {
        let unsigned = mint(json!({"alg": alg, "kid": "k1"}), good_claims(), Signer::Nothing);
        assert_eq!(both(&unsigned, &jwks), (401, 401), "{alg:?} unsigned");
        let signed = mint(json!({"alg": alg, "kid": "k1"}), good_claims(), Signer::Rsa);
        assert_eq!(both(&signed, &jwks), (401, 401), "{alg:?} with an RS256 signature");
    }
    for header in [r#"{"kid":"k1"}"#, r#"{"alg":null,"kid":"k1"}"#, r#"{"alg":["RS256"],"kid":"k1"}"#] {
        assert_eq!(both(&rs256_text(header, &payload("")), &jwks), (401, 401), "{header}");
    }
}

#[test]
fn hs256_keyed_with_the_rsa_public_key_denies() {
    use rsa::pkcs1::EncodeRsaPublicKey;
    use rsa::pkcs8::EncodePublicKey;
    use rsa::traits::PublicKeyParts;
    // The JWK has no alg: the token's alg must still not pick how the RSA key is used.
    let jwks = json!({"keys": [rsa_jwk_of(rsa_key(), "k1")]});
    let public = rsa_key().to_public_key();
    let pem = rsa_public_pem();
    let secrets: Vec<Vec<u8>> = vec![
        pem.clone().into_bytes(),
        pem.trim_end().as_bytes().to_vec(),
        format!("\n{pem}").into_bytes(),
        format!("  {pem}").into_bytes(),
        pem.replace('\n', "\r\n").into_bytes(),
        public.to_pkcs1_pem(rsa::pkcs8::LineEnding::LF).unwrap().into_bytes(),
        public.to_public_key_der().unwrap().as_bytes().to_vec(),
        public.n().to_bytes_be(),
        b64(&public.n().to_bytes_be()).into_bytes(),
        rsa_jwk_of(rsa_key(), "k1").to_string().into_bytes(),
    ];
    let hs_rule = json!({"allowed_algorithms": ["RS256", "HS256"]});
    for secret in &secrets {
        for kid in [Some("k1"), None] {
            let mut header = json!({"alg": "HS256", "typ": "JWT"});
            if let Some(kid) = kid {
                header["kid"] = json!(kid);
            }
            let token = mint(header, good_claims(), Signer::Hmac(secret));
            let label = String::from_utf8_lossy(&secret[..secret.len().min(30)]).into_owned();
            assert_eq!((v1(&token, &jwks, hs_rule.clone()), v2(&token, &jwks)), (401, 401), "{label:?} kid {kid:?}");
        }
    }
}

#[test]
fn private_members_of_a_served_jwk_are_never_a_key() {
    use rsa::traits::PrivateKeyParts;
    let k = rsa_key();
    let (p, q) = (&k.primes()[0], &k.primes()[1]);
    let one = rsa::BigUint::from(1u32);
    let mut jwk = rsa_public_jwk("k1");
    jwk["d"] = json!(b64(&k.d().to_bytes_be()));
    jwk["p"] = json!(b64(&p.to_bytes_be()));
    jwk["q"] = json!(b64(&q.to_bytes_be()));
    jwk["dp"] = json!(b64(&(k.d() % (p - &one)).to_bytes_be()));
    jwk["dq"] = json!(b64(&(k.d() % (q - &one)).to_bytes_be()));
    // And a symmetric key's member on the RSA key: not a secret either.
    jwk["k"] = json!(b64(&k.d().to_bytes_be()));
    let jwks = json!({"keys": [jwk.clone()]});
    // Only n and e are read: RS256 tokens of the key verify.
    assert_eq!(both(&rs256(good_claims()), &jwks), (200, 200));
    // No private member stands in for an HMAC secret.
    let hs_rule = json!({"allowed_algorithms": ["RS256", "HS256"]});
    for secret in [k.d().to_bytes_be(), p.to_bytes_be(), jwk.to_string().into_bytes()] {
        let token = mint(json!({"alg": "HS256", "kid": "k1"}), good_claims(), Signer::Hmac(&secret));
        assert_eq!((v1(&token, &jwks, hs_rule.clone()), v2(&token, &jwks)), (401, 401));
    }
}

#[test]
fn duplicate_kids_in_a_key_set() {
    // Two keys named k1: the attacker's 2048-bit key (here the IdP's first) and the default key.
    let jwks = json!({"keys": [rsa_jwk_of(attacker_rsa_key(), "k1"), rsa_public_jwk("k1")]});
    let by_first =
        mint(json!({"alg": "RS256", "kid": "k1"}), good_claims(), Signer::RsaWith(attacker_rsa_key(), Sha::S256));
    let by_second = rs256(good_claims());
    // Oathkeeper takes the first key with the kid and use sig; jwt_verify_lib tries every key
    // with the kid, in order.
    assert_eq!(both(&by_first, &jwks), (200, 200));
    assert_eq!(both(&by_second, &jwks), (401, 200));
}

#[test]
fn jwk_alg_binds_the_key_in_v2() {
    // rsa_public_jwk says alg RS256; the same key's RS384 signature.
    let jwks = default_jwks();
    let rs384 = mint(json!({"alg": "RS384", "kid": "k1"}), good_claims(), Signer::RsaWith(rsa_key(), Sha::S384));
    // Oathkeeper ignored the JWK's alg; jwt_verify_lib skips a key whose alg is another.
    assert_eq!((v1(&rs384, &jwks, json!({"allowed_algorithms": ["RS384"]})), v2(&rs384, &jwks)), (200, 401));
    let no_alg = json!({"keys": [rsa_jwk_of(rsa_key(), "k1")]});
    assert_eq!(v2(&rs384, &no_alg), 200);
}

#[test]
fn hs384_and_hs512() {
    let secret: &[u8] = &[7u8; 64];
    let wrong: &[u8] = &[8u8; 64];
    let jwks = json!({"keys": [{"kty": "oct", "kid": "h1", "use": "sig", "k": b64(secret)}]});
    for (alg, sha, other) in [("HS384", Sha::S384, Sha::S512), ("HS512", Sha::S512, Sha::S384)] {
        let rule = json!({"allowed_algorithms": [alg]});
        let token = |key: &[u8], sha| mint(json!({"alg": alg, "kid": "h1"}), good_claims(), Signer::HmacWith(key, sha));
        let answer = |t: &str| (v1(t, &jwks, rule.clone()), v2(t, &jwks));
        assert_eq!(answer(&token(secret, sha)), (200, 200), "{alg}");
        assert_eq!(answer(&token(wrong, sha)), (401, 401), "{alg} with another secret");
        assert_eq!(answer(&token(secret, other)), (401, 401), "{alg} header over the other hash's tag");
        assert_eq!(answer(&token(secret, Sha::S256)), (401, 401), "{alg} header over an HS256 tag");
    }
    // A rule that allows only HS512 refuses an HS384 token (v1); v2 takes every algorithm.
    let hs384 = mint(json!({"alg": "HS384", "kid": "h1"}), good_claims(), Signer::HmacWith(secret, Sha::S384));
    assert_eq!(v1(&hs384, &jwks, json!({"allowed_algorithms": ["HS512"]})), 401);
}

/// RFC 7518 section 3.2: an HMAC key has at least the hash's size. Shorter ones (which Oathkeeper
/// and Envoy both take, and jwt-simple from 12 bytes) verify nothing, for v1 and v2.
#[test]
fn hmac_keys_shorter_than_the_hash_verify_nothing() {
    for (alg, sha, min) in [("HS256", Sha::S256, 32), ("HS384", Sha::S384, 48), ("HS512", Sha::S512, 64)] {
        let rule = json!({"allowed_algorithms": [alg]});
        for (len, want) in [(12, 401), (16, 401), (min - 1, 401), (min, 200)] {
            let secret = vec![0x5a_u8; len];
            let jwks = json!({"keys": [{"kty": "oct", "kid": "h1", "use": "sig", "k": b64(&secret)}]});
            let token = mint(json!({"alg": alg, "kid": "h1"}), good_claims(), Signer::HmacWith(&secret, sha));
            assert_eq!((v1(&token, &jwks, rule.clone()), v2(&token, &jwks)), (want, want), "{alg}, {len}-byte key");
        }
    }
}
