//! JWKS documents -> public keys. Every byte is hostile: sizes are bounded, a malformed key is
//! skipped (and counted) rather than failing the whole set, private members are ignored.

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::{alphabet, Engine};
use serde_json::Value;
use std::sync::Arc;

use super::algorithm::KeyFamily;
use super::ecdsa::{EcPublicKey, P384PublicKey, P521PublicKey, P384, P521};
use super::p256::P256PublicKey;
use super::rsa::RsaPublicKey;

/// Largest JWKS body accepted.
pub const MAX_JWKS_BYTES: usize = 256 * 1024;
/// Most keys kept from one set.
pub const MAX_KEYS: usize = 64;
/// Longest RSA `n` text looked at: a 4096-bit modulus is 683 base64url characters, and the slack
/// takes a leading zero byte or padding. A longer one is skipped before it is even decoded.
const MAX_RSA_N_CHARS: usize = 1024;

/// base64url as JWKs use it; padding tolerated because some IdPs emit it.
pub(crate) const B64URL: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Public key material, reduced to what verification needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// Built when the set is parsed, so its Montgomery constants are computed once per key
    /// (shared, so that cloning a key set stays cheap).
    Rsa(Arc<RsaPublicKey>),
    /// Validated (on the curve) and with its lookup table built when the set is parsed: the
    /// table costs about eight verifications to build, so it is built once per key.
    EcP256(Arc<P256PublicKey>),
    /// Validated (on the curve) with its window table, like P-256.
    EcP384(Arc<P384PublicKey>),
    EcP521(Arc<P521PublicKey>),
    Symmetric(Vec<u8>),
    /// The 32-byte Ed25519 public key (`OKP`, `crv: Ed25519`).
    Ed25519(Vec<u8>),
}

impl PublicKey {
    pub fn family(&self) -> KeyFamily {
        match self {
            PublicKey::Rsa(_) => KeyFamily::Rsa,
            PublicKey::EcP256(_) => KeyFamily::EcP256,
            PublicKey::EcP384(_) => KeyFamily::EcP384,
            PublicKey::EcP521(_) => KeyFamily::EcP521,
            PublicKey::Symmetric(_) => KeyFamily::Symmetric,
            PublicKey::Ed25519(_) => KeyFamily::Ed25519,
        }
    }
}

/// One usable JWK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jwk {
    pub kid: Option<String>,
    /// The JWK `use` member; Oathkeeper only selects keys whose `use` is exactly `sig`.
    pub usage: Option<String>,
    /// The JWK `alg` member; for v2, a key that names one verifies only that algorithm
    /// (jwt_verify_lib). Oathkeeper ignored it.
    pub alg: Option<String>,
    pub key: PublicKey,
}

/// The keys of one JWKS URL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeySet {
    pub keys: Vec<Jwk>,
    /// How many JWKs were skipped as malformed or unsupported (logged by the host).
    pub skipped: usize,
}

impl KeySet {
    /// The first key with this `kid` whose `use` is `sig` (reference §2.4 step 3).
    pub fn signing_key(&self, kid: &str) -> Option<&Jwk> {
        self.signing_key_index(kid).and_then(|i| self.keys.get(i))
    }

    /// Where `signing_key` is in `keys`.
    pub fn signing_key_index(&self, kid: &str) -> Option<usize> {
        self.keys.iter().position(|k| k.kid.as_deref() == Some(kid) && k.usage.as_deref() == Some("sig"))
    }
}

/// Why a JWKS document was rejected as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksError {
    TooLarge(usize),
    NotJson,
    NoKeysArray,
    /// A fetched document whose every JWK was skipped (or none listed): see `parse_fetched_jwks`.
    NoUsableKey {
        skipped: usize,
    },
}

impl std::fmt::Display for JwksError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JwksError::TooLarge(n) => write!(f, "JWKS body of {n} bytes exceeds {MAX_JWKS_BYTES}"),
            JwksError::NotJson => write!(f, "JWKS body is not JSON"),
            JwksError::NoKeysArray => write!(f, "JWKS has no \"keys\" array"),
            JwksError::NoUsableKey { skipped } => write!(f, "JWKS has no usable key ({skipped} skipped)"),
        }
    }
}

/// Parses a JWKS body.
pub fn parse_jwks(body: &[u8]) -> Result<KeySet, JwksError> {
    if body.len() > MAX_JWKS_BYTES {
        return Err(JwksError::TooLarge(body.len()));
    }
    let doc: Value = serde_json::from_slice(body).map_err(|_| JwksError::NotJson)?;
    let keys = doc.get("keys").and_then(Value::as_array).ok_or(JwksError::NoKeysArray)?;
    let mut set = KeySet::default();
    for jwk in keys {
        if set.keys.len() >= MAX_KEYS {
            set.skipped = set.skipped.saturating_add(1);
            continue;
        }
        match parse_jwk(jwk) {
            Some(k) => set.keys.push(k),
            None => set.skipped = set.skipped.saturating_add(1),
        }
    }
    Ok(set)
}

/// A JWKS fetched from an IdP: as `parse_jwks`, and a set without one usable key is a failed
/// fetch, not a new key set, so the keys fetched before keep serving within the staleness bound
/// (as in Envoy, where jwt_verify_lib's `JwksNoValidKeys` fails the fetch). An IdP serving
/// `{"keys": []}` or only keys the filter cannot use, by a fault, must not lock everyone out.
pub fn parse_fetched_jwks(body: &[u8]) -> Result<KeySet, JwksError> {
    let set = parse_jwks(body)?;
    if set.keys.is_empty() {
        return Err(JwksError::NoUsableKey { skipped: set.skipped });
    }
    Ok(set)
}

fn b64_member(jwk: &Value, name: &str) -> Option<Vec<u8>> {
    B64URL.decode(jwk.get(name)?.as_str()?).ok()
}

fn opt_string(jwk: &Value, name: &str) -> Result<Option<String>, ()> {
    match jwk.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(()),
    }
}

fn parse_jwk(jwk: &Value) -> Option<Jwk> {
    let kid = opt_string(jwk, "kid").ok()?;
    let usage = opt_string(jwk, "use").ok()?;
    let alg = opt_string(jwk, "alg").ok()?;
    let key = match jwk.get("kty")?.as_str()? {
        "RSA" => {
            // Moduli outside 2048..=4096 bits (counted without leading zero bytes) and unusable
            // exponents are refused here (see `rsa::RsaPublicKey::new`), so such a key is
            // skipped like any malformed one. Only `n` and `e` are read: never `x5c` or private
            // members.
            if jwk.get("n")?.as_str()?.len() > MAX_RSA_N_CHARS {
                return None;
            }
            let key = RsaPublicKey::new(&b64_member(jwk, "n")?, &b64_member(jwk, "e")?).ok()?;
            PublicKey::Rsa(Arc::new(key))
        }
        "EC" => {
            let size = match jwk.get("crv")?.as_str()? {
                "P-256" => 32,
                "P-384" => 48,
                "P-521" => 66,
                _ => return None,
            };
            let x = b64_member(jwk, "x")?;
            let y = b64_member(jwk, "y")?;
            // RFC 7518 wants full-size coordinates, but tools that drop leading zero bytes publish
            // shorter ones (half of all P-521 keys have a zero top byte). Envoy's jwt_authn takes
            // them; so does the filter, as the same integers. Longer ones are refused.
            if x.is_empty() || y.is_empty() || x.len() > size || y.len() > size {
                return None;
            }
            // Uncompressed SEC1: 0x04, then each coordinate left-padded with zeros to `size` bytes.
            let mut point = vec![0x04];
            for coordinate in [&x, &y] {
                let padded_len = point.len().checked_add(size.checked_sub(coordinate.len())?)?;
                point.resize(padded_len, 0);
                point.extend_from_slice(coordinate);
            }
            // A point off the curve (or otherwise invalid) is skipped like any malformed key.
            match size {
                32 => PublicKey::EcP256(Arc::new(P256PublicKey::from_sec1(&point).ok()?)),
                48 => PublicKey::EcP384(Arc::new(EcPublicKey::from_sec1(&P384, &point).ok()?)),
                _ => PublicKey::EcP521(Arc::new(EcPublicKey::from_sec1(&P521, &point).ok()?)),
            }
        }
        "OKP" => {
            if jwk.get("crv")?.as_str()? != "Ed25519" {
                return None;
            }
            let x = b64_member(jwk, "x")?;
            ed25519_compact::PublicKey::from_slice(&x).ok()?;
            PublicKey::Ed25519(x)
        }
        "oct" => {
            let k = b64_member(jwk, "k")?;
            if k.is_empty() {
                return None;
            }
            PublicKey::Symmetric(k)
        }
        _ => return None,
    };
    Some(Jwk { kid, usage, alg, key })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RSA_N: &str = "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw";

    #[test]
    fn parses_rsa_ec_and_oct_keys() {
        let body = format!(
            r#"{{"keys":[
              {{"kty":"RSA","kid":"r1","use":"sig","alg":"RS256","n":"{RSA_N}","e":"AQAB"}},
              {{"kty":"EC","kid":"e1","use":"sig","crv":"P-256",
                "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}},
              {{"kty":"oct","kid":"h1","k":"c2VjcmV0"}}
            ]}}"#
        );
        let set = parse_jwks(body.as_bytes()).unwrap();
        assert_eq!(set.keys.len(), 3);
        assert_eq!(set.skipped, 0);
        assert!(matches!(&set.keys[0].key, PublicKey::Rsa(k) if k.bits() == 2048 && k.e() == 65537));
        assert!(matches!(&set.keys[1].key, PublicKey::EcP256(p) if p.to_sec1().len() == 65));
        assert_eq!(set.keys[2].key, PublicKey::Symmetric(b"secret".to_vec()));
    }

    #[test]
    fn signing_key_needs_kid_and_use_sig() {
        let body = format!(
            r#"{{"keys":[
              {{"kty":"RSA","kid":"nouse","n":"{RSA_N}","e":"AQAB"}},
              {{"kty":"RSA","kid":"enc","use":"enc","n":"{RSA_N}","e":"AQAB"}},
              {{"kty":"RSA","kid":"ok","use":"sig","n":"{RSA_N}","e":"AQAB"}}
            ]}}"#
        );
        let set = parse_jwks(body.as_bytes()).unwrap();
        assert!(set.signing_key("nouse").is_none());
        assert!(set.signing_key("enc").is_none());
        assert!(set.signing_key("ok").is_some());
        assert!(set.signing_key("other").is_none());
    }

    #[test]
    fn malformed_keys_are_skipped_not_fatal() {
        let body = r#"{"keys":[{"kty":"RSA","n":"!!","e":"AQAB"},{"kty":"EC","crv":"P-521","x":"AA","y":"AA"},
                      {"kty":"OKP","crv":"Ed25519","x":"AA"},{"kty":"RSA","n":"AQAB","e":"AQAB"},"str",7,
                      {"kty":"RSA","kid":5,"n":"AQAB","e":"AQAB"}]}"#;
        let set = parse_jwks(body.as_bytes()).unwrap();
        assert!(set.keys.is_empty());
        assert_eq!(set.skipped, 7);
    }

    #[test]
    fn rsa_keys_outside_2048_to_4096_bits_or_with_bad_exponents_are_skipped() {
        let n = |bytes: usize| B64URL.encode(vec![0xffu8; bytes]);
        let jwk = |n: String, e: &str| format!(r#"{{"kty":"RSA","kid":"k","use":"sig","n":"{n}","e":"{e}"}}"#);
        let body = format!(
            r#"{{"keys":[{},{},{},{},{},{}]}}"#,
            jwk(n(128), "AQAB"),
            jwk(n(255), "AQAB"),
            jwk(n(513), "AQAB"),
            jwk(n(256), "AQ"),
            jwk(n(256), "Ag"),
            jwk(n(512), "Aw"),
        );
        let set = parse_jwks(body.as_bytes()).unwrap();
        assert_eq!(set.skipped, 5);
        assert!(matches!(&set.keys[..], [Jwk { key: PublicKey::Rsa(k), .. }] if k.bits() == 4096 && k.e() == 3));
    }

    #[test]
    fn whole_document_errors() {
        assert_eq!(parse_jwks(b"not json"), Err(JwksError::NotJson));
        assert_eq!(parse_jwks(b"{\"nokeys\":[]}"), Err(JwksError::NoKeysArray));
        assert_eq!(parse_jwks(b"[]"), Err(JwksError::NoKeysArray));
        assert_eq!(parse_fetched_jwks(b"{\"keys\":[]}"), Err(JwksError::NoUsableKey { skipped: 0 }));
        let junk = br#"{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"},{"kty":"oct"}]}"#;
        assert_eq!(parse_fetched_jwks(junk), Err(JwksError::NoUsableKey { skipped: 2 }));
        assert_eq!(parse_jwks(junk).map(|s| s.keys.len()), Ok(0));
        let big = vec![b' '; MAX_JWKS_BYTES + 1];
        assert!(matches!(parse_jwks(&big), Err(JwksError::TooLarge(_))));
    }

    #[test]
    fn key_count_is_bounded() {
        let one = r#"{"kty":"oct","kid":"k","use":"sig","k":"c2VjcmV0"}"#;
        let body = format!("{{\"keys\":[{}]}}", vec![one; MAX_KEYS + 5].join(","));
        let set = parse_jwks(body.as_bytes()).unwrap();
        assert_eq!(set.keys.len(), MAX_KEYS);
        assert_eq!(set.skipped, 5);
    }
}
