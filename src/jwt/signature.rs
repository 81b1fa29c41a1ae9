//! The signature step, one function for every algorithm: RSA (RS*/PS*), ES256 and ES384/ES512 go
//! to the hand-written verifiers in `super::rsa`, `super::p256` and `super::ecdsa` (jwt-simple's
//! pure-Rust RSA and P-256 cost ~1.2 ms and ~2.1 ms per token in V8; the P-384/P-521 crates cost
//! too much of the `.wasm`); HS* and EdDSA to the primitives jwt-simple uses (hmac-sha256/512,
//! ed25519-compact). Every algorithm first passes the token checks
//! jwt-simple's `verify_token` makes (`jws_parts`). Claims are not judged here; `claims` does that
//! with the semantics of the rule.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jwt_simple::prelude::*;
use jwt_simple::reexports::ct_codecs::{Base64UrlSafeNoPadding, Decoder};

use super::algorithm::Algorithm;
use super::jwks::PublicKey;
use super::rsa::{HashAlg, RsaPublicKey};

/// Signature verification failed; the reason is for logs only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureError(pub String);

/// Verifies the signature of the compact token `compact` made with `alg` under `key`. The caller
/// has already checked that the key family fits the algorithm; a mismatch here is an error too.
pub fn verify_signature(alg: Algorithm, key: &PublicKey, compact: &str) -> Result<(), SignatureError> {
    let bad = |what: &str| SignatureError(what.to_owned());
    match (alg, key) {
        (Algorithm::RS256, PublicKey::Rsa(k)) => verify_rsa(k, RsaScheme::Pkcs1v15, HashAlg::Sha256, compact),
        (Algorithm::RS384, PublicKey::Rsa(k)) => verify_rsa(k, RsaScheme::Pkcs1v15, HashAlg::Sha384, compact),
        (Algorithm::RS512, PublicKey::Rsa(k)) => verify_rsa(k, RsaScheme::Pkcs1v15, HashAlg::Sha512, compact),
        (Algorithm::PS256, PublicKey::Rsa(k)) => verify_rsa(k, RsaScheme::Pss, HashAlg::Sha256, compact),
        (Algorithm::PS384, PublicKey::Rsa(k)) => verify_rsa(k, RsaScheme::Pss, HashAlg::Sha384, compact),
        (Algorithm::PS512, PublicKey::Rsa(k)) => verify_rsa(k, RsaScheme::Pss, HashAlg::Sha512, compact),
        (Algorithm::ES256, PublicKey::EcP256(key)) => {
            let (signing_input, sig) = jws_parts(compact)?;
            key.verify_sha256(signing_input, &sig).map_err(|e| SignatureError(format!("ES256: {e}")))
        }
        (Algorithm::ES384, PublicKey::EcP384(key)) => {
            let (signing_input, sig) = jws_parts(compact)?;
            key.verify(signing_input, &sig).map_err(|e| SignatureError(format!("ES384: {e}")))
        }
        (Algorithm::ES512, PublicKey::EcP521(key)) => {
            let (signing_input, sig) = jws_parts(compact)?;
            key.verify(signing_input, &sig).map_err(|e| SignatureError(format!("ES512: {e}")))
        }
        (Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512, PublicKey::Symmetric(k)) => {
            // RFC 7518 section 3.2: a key of at least the hash's size (32, 48, 64 bytes). Neither
            // Oathkeeper nor Envoy checks (jwt-simple only refuses keys under 12 bytes); a shorter
            // secret is guessable offline from any one token, so it verifies nothing here.
            let min_len = match alg {
                Algorithm::HS256 => 32,
                Algorithm::HS384 => 48,
                _ => 64,
            };
            if k.len() < min_len {
                return Err(SignatureError(format!(
                    "{} key is shorter than {min_len} bytes (RFC 7518 3.2)",
                    alg.name()
                )));
            }
            let (signing_input, tag) = jws_parts(compact)?;
            let expected: Vec<u8> = match alg {
                Algorithm::HS256 => hmac_sha256::HMAC::mac(signing_input, k).to_vec(),
                Algorithm::HS384 => hmac_sha512::sha384::HMAC::mac(signing_input, k).to_vec(),
                _ => hmac_sha512::HMAC::mac(signing_input, k).to_vec(),
            };
            if constant_time_eq(&expected, &tag) {
                Ok(())
            } else {
                Err(bad("HMAC tag does not match"))
            }
        }
        (Algorithm::EdDSA, PublicKey::Ed25519(k)) => {
            let (signing_input, sig) = jws_parts(compact)?;
            let key = ed25519_compact::PublicKey::from_slice(k).map_err(|_| bad("unusable Ed25519 key"))?;
            let sig =
                ed25519_compact::Signature::from_slice(&sig).map_err(|_| bad("EdDSA signature is not 64 bytes"))?;
            key.verify(signing_input, &sig).map_err(|_| bad("EdDSA signature does not verify"))
        }
        _ => Err(SignatureError(format!("{} cannot be verified with a {:?} key", alg.name(), key.family()))),
    }
}

/// Equal length and content, in time that depends only on the length (an HMAC tag is secret
/// until it matches).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[derive(Clone, Copy)]
enum RsaScheme {
    Pkcs1v15,
    Pss,
}

fn verify_rsa(key: &RsaPublicKey, scheme: RsaScheme, hash: HashAlg, compact: &str) -> Result<(), SignatureError> {
    let (signing_input, sig) = jws_parts(compact)?;
    let result = match scheme {
        RsaScheme::Pkcs1v15 => key.verify_pkcs1v15(hash, signing_input, &sig),
        RsaScheme::Pss => key.verify_pss(hash, signing_input, &sig),
    };
    result.map_err(|e| SignatureError(e.to_string()))
}

/// Splits `header.payload.signature` into the signing input and the decoded signature, after the
/// token-level checks jwt-simple's `verify_token` makes besides the signature. RSA and ES256 no
/// longer go through it, and what a token may look like must not depend on its algorithm:
/// exactly three parts, strict unpadded base64url, a header of at most 8 KiB whose registered
/// members have their JWT types, no non-empty `crit`, `typ` absent or `JWT`/`*+JWT`, a `salt`
/// that decodes, and claims whose registered members have their types.
fn jws_parts(compact: &str) -> Result<(&[u8], Vec<u8>), SignatureError> {
    let fail = |text: &str| Err(SignatureError(text.to_owned()));
    let mut parts = compact.split('.');
    let (Some(header_b64), Some(claims_b64), Some(sig_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return fail("token is not three dot-separated parts");
    };
    let meta = Token::decode_metadata(compact).map_err(|e| SignatureError(e.to_string()))?;
    if meta.critical().is_some_and(|c| !c.is_empty()) {
        return fail("token has critical header extensions");
    }
    if let Some(typ) = meta.signature_type() {
        let typ = typ.to_uppercase();
        if typ != "JWT" && !typ.ends_with("+JWT") {
            return fail("token typ is not JWT");
        }
    }
    if meta.salt().is_none() && header_has_string_salt(header_b64) {
        return fail("token header salt is not base64url");
    }
    let claims = Base64UrlSafeNoPadding::decode_to_vec(claims_b64, None)
        .map_err(|_| SignatureError("token payload is not unpadded base64url".to_owned()))?;
    if serde_json::from_slice::<JWTClaims<NoCustomClaims>>(&claims).is_err() {
        return fail("token claims have the wrong types");
    }
    let sig = URL_SAFE_NO_PAD
        .decode(sig_b64)
        .map_err(|_| SignatureError("token signature is not unpadded base64url".to_owned()))?;
    // `<header>.<claims>`: no longer than `compact`, of which both are parts (empty otherwise,
    // which no signature verifies).
    let signing_len = header_b64.len().checked_add(1).and_then(|n| n.checked_add(claims_b64.len()));
    let signing_input = signing_len.and_then(|n| compact.as_bytes().get(..n)).unwrap_or_default();
    Ok((signing_input, sig))
}

/// Whether the (already validated) header has a string `salt` member.
fn header_has_string_salt(header_b64: &str) -> bool {
    Base64UrlSafeNoPadding::decode_to_vec(header_b64, None)
        .ok()
        .and_then(|h| serde_json::from_slice::<serde_json::Value>(&h).ok())
        .is_some_and(|h| h.get("salt").is_some_and(serde_json::Value::is_string))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use rsa::pkcs8::DecodePrivateKey;
    use rsa::signature::{RandomizedSigner, SignatureEncoding, Signer};
    use rsa::traits::PublicKeyParts;
    use std::sync::Arc;

    /// Deterministic salts for PSS signing in tests (not a real CSPRNG).
    struct TestRng(u64);

    impl rsa::rand_core::RngCore for TestRng {
        fn next_u32(&mut self) -> u32 {
            self.next_u64() as u32
        }
        fn next_u64(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let z = (self.0 ^ (self.0 >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z ^ (z >> 31)
        }
        fn fill_bytes(&mut self, dest: &mut [u8]) {
            dest.iter_mut().for_each(|b| *b = self.next_u64() as u8);
        }
        fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rsa::rand_core::Error> {
            self.fill_bytes(dest);
            Ok(())
        }
    }

    impl rsa::rand_core::CryptoRng for TestRng {}

    fn private_key() -> rsa::RsaPrivateKey {
        rsa::RsaPrivateKey::from_pkcs8_pem(include_str!("../../tests/data/rsa_pool/rsa_2048_e65537.pem")).unwrap()
    }

    fn public_key(k: &rsa::RsaPrivateKey) -> PublicKey {
        PublicKey::Rsa(Arc::new(RsaPublicKey::new(&k.n().to_bytes_be(), &k.e().to_bytes_be()).unwrap()))
    }

    fn sign(k: &rsa::RsaPrivateKey, alg: Algorithm, input: &str) -> Vec<u8> {
        use rsa::{pkcs1v15, pss};
        use sha2::{Sha256, Sha384, Sha512};
        let k = k.clone();
        let mut rng = TestRng(0x9e37_79b9_7f4a_7c15);
        let m = input.as_bytes();
        match alg {
            Algorithm::RS256 => pkcs1v15::SigningKey::<Sha256>::new(k).sign(m).to_vec(),
            Algorithm::RS384 => pkcs1v15::SigningKey::<Sha384>::new(k).sign(m).to_vec(),
            Algorithm::RS512 => pkcs1v15::SigningKey::<Sha512>::new(k).sign(m).to_vec(),
            Algorithm::PS256 => pss::SigningKey::<Sha256>::new(k).sign_with_rng(&mut rng, m).to_vec(),
            Algorithm::PS384 => pss::SigningKey::<Sha384>::new(k).sign_with_rng(&mut rng, m).to_vec(),
            Algorithm::PS512 => pss::SigningKey::<Sha512>::new(k).sign_with_rng(&mut rng, m).to_vec(),
            _ => unreachable!(),
        }
    }

    fn token(k: &rsa::RsaPrivateKey, alg: Algorithm, header: &str, claims: &str) -> String {
        let input = format!("{}.{}", B64.encode(header), B64.encode(claims));
        let sig = B64.encode(sign(k, alg, &input));
        format!("{input}.{sig}")
    }

    const RSA_ALGS: [Algorithm; 6] =
        [Algorithm::RS256, Algorithm::RS384, Algorithm::RS512, Algorithm::PS256, Algorithm::PS384, Algorithm::PS512];

    #[test]
    fn every_rsa_algorithm_verifies_and_detects_tampering() {
        let k = private_key();
        let key = public_key(&k);
        for alg in RSA_ALGS {
            let header = format!(r#"{{"alg":"{}","kid":"k","typ":"JWT"}}"#, alg.name());
            let t = token(&k, alg, &header, r#"{"sub":"me","exp":1}"#);
            assert_eq!(verify_signature(alg, &key, &t), Ok(()), "{}", alg.name());
            // Same key and token, other algorithm of the family: never verifies.
            for other in RSA_ALGS.into_iter().filter(|&o| o != alg) {
                assert!(verify_signature(other, &key, &t).is_err(), "{} as {}", alg.name(), other.name());
            }
            let (input, _) = t.rsplit_once('.').unwrap();
            let tampered = format!("{}x.{}", &input[..input.len() - 1], t.rsplit_once('.').unwrap().1);
            assert!(verify_signature(alg, &key, &tampered).is_err());
        }
    }

    #[test]
    fn rsa_tokens_keep_jwt_simple_structure_checks() {
        let k = private_key();
        let key = public_key(&k);
        let alg = Algorithm::RS256;
        let ok_header = r#"{"alg":"RS256","kid":"k"}"#;
        let ok = token(&k, alg, ok_header, "{}");
        assert_eq!(verify_signature(alg, &key, &ok), Ok(()));
        assert_eq!(verify_signature(alg, &key, &token(&k, alg, r#"{"alg":"RS256","typ":"at+jwt"}"#, "{}")), Ok(()));
        // Each of these is correctly signed, and refused for its shape, as jwt-simple refuses it
        // for the other algorithms.
        for (header, claims) in [
            (r#"{"alg":"RS256","typ":"JOSE"}"#, "{}"),
            (r#"{"alg":"RS256","crit":["exp"],"exp":1}"#, "{}"),
            (r#"{"alg":"RS256","kid":7}"#, "{}"),
            (r#"{"alg":"RS256","salt":"!!"}"#, "{}"),
            (ok_header, r#"{"exp":"soon"}"#),
            (ok_header, r#"{"iss":5}"#),
            (ok_header, r#"{"aud":[1]}"#),
            (ok_header, "[]"),
        ] {
            let t = token(&k, alg, header, claims);
            assert!(verify_signature(alg, &key, &t).is_err(), "{header} {claims}");
        }
        // Padded or non-canonical signature encodings, extra parts.
        let (input, sig) = ok.rsplit_once('.').unwrap();
        let raw = B64.decode(sig).unwrap();
        let padded = base64::engine::general_purpose::URL_SAFE.encode(&raw);
        assert!(padded.ends_with('='));
        assert!(verify_signature(alg, &key, &format!("{input}.{padded}")).is_err());
        assert!(verify_signature(alg, &key, &format!("{input}.{sig}.")).is_err());
        assert!(verify_signature(alg, &key, &format!("{input}.{}", &sig[..sig.len() - 1])).is_err());
        let mut last = sig.chars().last().unwrap();
        last = if last == 'A' { 'B' } else { 'A' };
        assert!(verify_signature(alg, &key, &format!("{input}.{}{last}", &sig[..sig.len() - 1])).is_err());
    }
}
