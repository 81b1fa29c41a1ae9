//! The signature step, behind one function so the backend can change (today: jwt-simple, pure
//! Rust). Claims are not judged here; `claims` does that with the semantics of the rule.

use jwt_simple::prelude::*;

use super::algorithm::Algorithm;
use super::jwks::PublicKey;

/// Signature verification failed; the reason is for logs only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureError(pub String);

fn permissive_options() -> VerificationOptions {
    // jwt-simple also validates claims; pin its clock to the epoch with no tolerance and accept
    // future tokens so that its checks always pass and ours (in `claims`) decide.
    VerificationOptions {
        accept_future: true,
        time_tolerance: Some(Duration::from_secs(0)),
        artificial_time: Some(UnixTimeStamp::from_secs(0)),
        max_token_length: None,
        max_header_length: None,
        ..Default::default()
    }
}

fn check<T>(result: Result<T, jwt_simple::Error>) -> Result<(), SignatureError> {
    result.map(|_| ()).map_err(|e| SignatureError(e.to_string()))
}

/// Verifies the signature of the compact token `compact` made with `alg` under `key`. The caller
/// has already checked that the key family fits the algorithm; a mismatch here is an error too.
pub fn verify_signature(alg: Algorithm, key: &PublicKey, compact: &str) -> Result<(), SignatureError> {
    let opts = Some(permissive_options());
    let bad_key = |e: jwt_simple::Error| SignatureError(format!("unusable key: {e}"));
    // One arm per (alg, key type): jwt-simple has a distinct type per algorithm.
    macro_rules! verify_with {
        ($key:expr) => {
            check($key.map_err(bad_key)?.verify_token::<NoCustomClaims>(compact, opts))
        };
    }
    let mac = |k: &[u8]| -> Result<Vec<u8>, jwt_simple::Error> { Ok(k.to_vec()) };
    match (alg, key) {
        (Algorithm::RS256, PublicKey::Rsa { n, e }) => {
            verify_with!(RS256PublicKey::from_components(n, e))
        }
        (Algorithm::RS384, PublicKey::Rsa { n, e }) => {
            verify_with!(RS384PublicKey::from_components(n, e))
        }
        (Algorithm::RS512, PublicKey::Rsa { n, e }) => {
            verify_with!(RS512PublicKey::from_components(n, e))
        }
        (Algorithm::PS256, PublicKey::Rsa { n, e }) => {
            verify_with!(PS256PublicKey::from_components(n, e))
        }
        (Algorithm::PS384, PublicKey::Rsa { n, e }) => {
            verify_with!(PS384PublicKey::from_components(n, e))
        }
        (Algorithm::PS512, PublicKey::Rsa { n, e }) => {
            verify_with!(PS512PublicKey::from_components(n, e))
        }
        (Algorithm::ES256, PublicKey::EcP256(point)) => {
            verify_with!(ES256PublicKey::from_bytes(point))
        }
        (Algorithm::ES384, PublicKey::EcP384(point)) => {
            verify_with!(ES384PublicKey::from_bytes(point))
        }
        (Algorithm::HS256, PublicKey::Symmetric(k)) => {
            verify_with!(mac(k).map(|k| HS256Key::from_bytes(&k)))
        }
        (Algorithm::HS384, PublicKey::Symmetric(k)) => {
            verify_with!(mac(k).map(|k| HS384Key::from_bytes(&k)))
        }
        (Algorithm::HS512, PublicKey::Symmetric(k)) => {
            verify_with!(mac(k).map(|k| HS512Key::from_bytes(&k)))
        }
        _ => Err(SignatureError(format!("{} cannot be verified with a {:?} key", alg.name(), key.family()))),
    }
}
