//! Synthetic keys and tokens for `migrate`'s proof: one RSA and one P-256 key, made fresh for each
//! run and kept in memory, published as one JWKS that stands for every JWKS URL of the rules.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use p256::ecdsa::signature::Signer as _;
use rand_core::OsRng;
use rsa::pkcs1v15::SigningKey as RsaSigningKey;
use rsa::signature::SignatureEncoding;
use rsa::traits::PublicKeyParts;
use serde_json::{json, Value};
use sha2::Sha256;

pub const RSA_KID: &str = "apirule-migrate-rsa";
pub const EC_KID: &str = "apirule-migrate-ec";

pub struct Signer {
    rsa: RsaSigningKey<Sha256>,
    rsa_public: rsa::RsaPublicKey,
    ec: p256::ecdsa::SigningKey,
}

/// Which key signs a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    Rs256,
    Es256,
}

impl Signer {
    pub fn new() -> Result<Self, String> {
        let private = rsa::RsaPrivateKey::new(&mut OsRng, 2048).map_err(|e| format!("cannot make an RSA key: {e}"))?;
        let rsa_public = private.to_public_key();
        Ok(Signer { rsa: RsaSigningKey::new(private), rsa_public, ec: p256::ecdsa::SigningKey::random(&mut OsRng) })
    }

    /// The public keys, as an IdP would serve them.
    pub fn jwks(&self) -> Value {
        let point = self.ec.verifying_key().to_encoded_point(false);
        let coordinate = |c: Option<&p256::FieldBytes>| c.map_or_else(String::new, |b| B64.encode(b));
        json!({"keys": [
            {"kty": "RSA", "kid": RSA_KID, "alg": "RS256", "use": "sig",
             "n": B64.encode(self.rsa_public.n().to_bytes_be()), "e": B64.encode(self.rsa_public.e().to_bytes_be())},
            {"kty": "EC", "kid": EC_KID, "alg": "ES256", "use": "sig", "crv": "P-256",
             "x": coordinate(point.x()), "y": coordinate(point.y())},
        ]})
    }

    pub fn mint(&self, alg: Alg, claims: &Value) -> String {
        let (name, kid) = match alg {
            Alg::Rs256 => ("RS256", RSA_KID),
            Alg::Es256 => ("ES256", EC_KID),
        };
        let header = json!({"alg": name, "kid": kid, "typ": "JWT"});
        let input = format!("{}.{}", B64.encode(header.to_string()), B64.encode(claims.to_string()));
        let signature = match alg {
            Alg::Rs256 => self.rsa.sign(input.as_bytes()).to_vec(),
            Alg::Es256 => {
                let sig: p256::ecdsa::Signature = self.ec.sign(input.as_bytes());
                sig.to_bytes().to_vec()
            }
        };
        format!("{input}.{}", B64.encode(signature))
    }
}
