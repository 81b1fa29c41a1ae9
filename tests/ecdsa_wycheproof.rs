//! Wycheproof ECDSA vectors against `jwt::p256` (secp256r1 / SHA-256) and `jwt::ecdsa`
//! (secp384r1 / SHA-384, secp521r1 / SHA-512): the curve and hash pairs JWS uses.
//!
//! The P1363 sets (raw r || s, the JWS form) run as they are. The DER sets run too: signatures in
//! strict DER whose integers fit the scalar size are converted to r || s and verified; the rest
//! (BER, wrong lengths, oversized integers...) cannot be expressed as a JWS signature and count
//! as refused, which is right only for vectors Wycheproof marks invalid.
//!
//! "Acceptable" vectors (none in these sets today) may go either way: they are counted but their
//! outcome is not asserted.

use apirule_wasm::jwt::ecdsa::{EcPublicKey, P384, P521};
use apirule_wasm::jwt::p256::P256PublicKey;
use wycheproof::ecdsa::{TestName, TestSet};
use wycheproof::TestResult;

#[derive(Default, Debug)]
struct Counts {
    valid: usize,
    invalid: usize,
    acceptable: usize,
    refused_encoding: usize,
}

/// Verifies a raw signature of a message under a SEC1 key (`Err` if the key is refused).
type Verify = fn(&[u8], &[u8], &[u8]) -> Result<bool, String>;

/// A curve under test: its scalar size in bytes, and its verifier.
struct Curve {
    size: usize,
    verify: Verify,
}

const P256: Curve = Curve {
    size: 32,
    verify: |key, msg, sig| {
        let key = P256PublicKey::from_sec1(key).map_err(|e| e.to_string())?;
        Ok(key.verify_sha256(msg, sig).is_ok())
    },
};

const P384_CURVE: Curve = Curve {
    size: 48,
    verify: |key, msg, sig| {
        let key = EcPublicKey::from_sec1(&P384, key).map_err(|e| e.to_string())?;
        Ok(key.verify(msg, sig).is_ok())
    },
};

const P521_CURVE: Curve = Curve {
    size: 66,
    verify: |key, msg, sig| {
        let key = EcPublicKey::from_sec1(&P521, key).map_err(|e| e.to_string())?;
        Ok(key.verify(msg, sig).is_ok())
    },
};

#[derive(Clone, Copy)]
enum Encoding {
    P1363,
    Der,
}

fn check(set: TestName, curve: &Curve, encoding: Encoding) -> Counts {
    let set = TestSet::load(set).unwrap();
    let mut counts = Counts::default();
    for group in set.test_groups {
        for test in group.tests {
            let raw = match encoding {
                Encoding::P1363 => Some(test.sig.to_vec()),
                Encoding::Der => der(&test.sig, curve.size),
            };
            let verdict = raw.as_ref().map(|raw| (curve.verify)(&group.key.key, &test.msg, raw));
            if raw.is_none() {
                counts.refused_encoding += 1;
            }
            let accepted = matches!(verdict, Some(Ok(true)));
            match test.result {
                TestResult::Valid => {
                    if let Some(Err(e)) = &verdict {
                        panic!("tc {}: key refused: {e}", test.tc_id);
                    }
                    assert!(accepted, "tc {} ({}): valid signature refused", test.tc_id, test.comment);
                    counts.valid += 1;
                }
                TestResult::Invalid => {
                    assert!(!accepted, "tc {} ({}): invalid signature accepted", test.tc_id, test.comment);
                    counts.invalid += 1;
                }
                TestResult::Acceptable => counts.acceptable += 1,
            }
        }
    }
    counts
}

/// One strict DER INTEGER (positive, minimal) as `size` big-endian bytes.
fn der_int(input: &[u8], size: usize) -> Option<(Vec<u8>, &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&len, rest) = rest.split_first()?;
    let len = usize::from(len);
    if tag != 0x02 || len == 0 || len > 0x7f || rest.len() < len {
        return None;
    }
    let (mut int, rest) = rest.split_at(len);
    if int[0] & 0x80 != 0 {
        return None; // negative
    }
    if int[0] == 0 {
        if int.len() > 1 && int[1] & 0x80 == 0 {
            return None; // not minimal
        }
        int = &int[1..];
    }
    if int.len() > size {
        return None;
    }
    let mut out = vec![0u8; size];
    out[size - int.len()..].copy_from_slice(int);
    Some((out, rest))
}

/// A strict DER ECDSA-Sig-Value (short or one-byte long form length) as raw `r || s`.
fn der(sig: &[u8], size: usize) -> Option<Vec<u8>> {
    let (&tag, rest) = sig.split_first()?;
    let (&len, rest) = rest.split_first()?;
    let body = match len {
        0..=0x7f => rest,
        // P-521 signatures exceed 127 bytes: the length then takes one more byte (>= 0x80).
        0x81 => match rest.split_first()? {
            (&l, body) if l >= 0x80 && usize::from(l) == body.len() => return der_body(tag, body, size),
            _ => return None,
        },
        _ => return None,
    };
    if usize::from(len) != body.len() {
        return None;
    }
    der_body(tag, body, size)
}

fn der_body(tag: u8, body: &[u8], size: usize) -> Option<Vec<u8>> {
    if tag != 0x30 {
        return None;
    }
    let (r, rest) = der_int(body, size)?;
    let (s, rest) = der_int(rest, size)?;
    if !rest.is_empty() {
        return None;
    }
    Some([r, s].concat())
}

#[test]
fn wycheproof_p256_p1363() {
    let c = check(TestName::EcdsaSecp256r1Sha256P1363, &P256, Encoding::P1363);
    println!("P-256 P1363: {c:?}");
    assert!(c.valid >= 150 && c.invalid >= 80, "too few vectors ran: {c:?}");
}

#[test]
fn wycheproof_p256_der() {
    let c = check(TestName::EcdsaSecp256r1Sha256, &P256, Encoding::Der);
    println!("P-256 DER: {c:?}");
    assert!(c.valid >= 150 && c.invalid >= 250, "too few vectors ran: {c:?}");
}

#[test]
fn wycheproof_p384_p1363() {
    let c = check(TestName::EcdsaSecp384r1Sha384P1363, &P384_CURVE, Encoding::P1363);
    println!("P-384 P1363: {c:?}");
    assert!(c.valid >= 150 && c.invalid >= 80, "too few vectors ran: {c:?}");
}

#[test]
fn wycheproof_p384_der() {
    let c = check(TestName::EcdsaSecp384r1Sha384, &P384_CURVE, Encoding::Der);
    println!("P-384 DER: {c:?}");
    assert!(c.valid >= 150 && c.invalid >= 250, "too few vectors ran: {c:?}");
}

#[test]
fn wycheproof_p521_p1363() {
    let c = check(TestName::EcdsaSecp521r1Sha512P1363, &P521_CURVE, Encoding::P1363);
    println!("P-521 P1363: {c:?}");
    assert!(c.valid >= 150 && c.invalid >= 80, "too few vectors ran: {c:?}");
}

#[test]
fn wycheproof_p521_der() {
    let c = check(TestName::EcdsaSecp521r1Sha512, &P521_CURVE, Encoding::Der);
    println!("P-521 DER: {c:?}");
    assert!(c.valid >= 150 && c.invalid >= 250, "too few vectors ran: {c:?}");
}

/// Public points from the ECDH ecpoint sets (edge cases for doubling, addition chains,
/// invalid-curve points). Each test has a private key d and the shared secret x(d Q); with digest
/// e = 0, r = x(d Q) mod n and s = r / d, ECDSA verification computes x((r / s) Q) = x(d Q), so
/// (r, s) must verify: that checks the key's table and the multiplication on every such point.
/// Native only: it uses the RustCrypto curve crates to build the signatures.
#[cfg(not(target_arch = "wasm32"))]
mod ecdh_points {
    use super::*;
    use elliptic_curve::ff::{Field, PrimeField};
    use elliptic_curve::{CurveArithmetic, FieldBytes};
    use wycheproof::ecdh::{TestName, TestSet};

    /// `b` as the curve's field-size big-endian bytes (Wycheproof strips or adds a leading zero).
    fn bytes<C: CurveArithmetic>(b: &[u8]) -> FieldBytes<C> {
        let b = &b[b.iter().take_while(|&&x| x == 0).count()..];
        let mut out = FieldBytes::<C>::default();
        let len = out.len();
        out[len - b.len()..].copy_from_slice(b);
        out
    }

    /// `(key, digest, raw signature)` verifies with our code (`Err` if the key is refused; `Ok`
    /// with the key's SEC1 encoding otherwise).
    type VerifyPrehashed = fn(&[u8], &[u8], &[u8]) -> Result<(Vec<u8>, bool), String>;

    fn run<C>(name: TestName, verify: VerifyPrehashed) -> (usize, usize, usize)
    where
        C: CurveArithmetic,
        C::Scalar: PrimeField<Repr = FieldBytes<C>>,
    {
        let set = TestSet::load(name).unwrap();
        let (mut checked, mut invalid, mut acceptable) = (0, 0, 0);
        for group in set.test_groups {
            for test in group.tests {
                let d = C::Scalar::from_repr(bytes::<C>(&test.private_key));
                let r = C::Scalar::from_repr(bytes::<C>(&test.shared_secret));
                let digest = vec![0u8; FieldBytes::<C>::default().len().min(64)];
                let sig = match (Option::<C::Scalar>::from(d), Option::<C::Scalar>::from(r)) {
                    (Some(d), Some(r)) if !bool::from(r.is_zero()) => {
                        let s = r * Option::<C::Scalar>::from(d.invert()).unwrap();
                        Some([r.to_repr().to_vec(), s.to_repr().to_vec()].concat())
                    }
                    _ => None, // x(d Q) = 0 or >= n: no signature's r
                };
                let outcome = verify(&test.public_key, &digest, sig.as_deref().unwrap_or(&[]));
                match test.result {
                    TestResult::Valid => {
                        let (sec1, ok) =
                            outcome.unwrap_or_else(|e| panic!("tc {}: valid point refused: {e}", test.tc_id));
                        assert_eq!(sec1, test.public_key.to_vec());
                        if sig.is_some() {
                            assert!(ok, "tc {} ({})", test.tc_id, test.comment);
                            checked += 1;
                        }
                    }
                    // Only uncompressed points are taken, so the compressed ones are refused too.
                    TestResult::Invalid => {
                        assert!(outcome.is_err(), "tc {} ({}): invalid point accepted", test.tc_id, test.comment);
                        invalid += 1;
                    }
                    TestResult::Acceptable => {
                        assert!(outcome.is_err(), "tc {}: compressed point accepted", test.tc_id);
                        acceptable += 1;
                    }
                }
            }
        }
        (checked, invalid, acceptable)
    }

    #[test]
    fn p256() {
        let counts = run::<p256::NistP256>(TestName::EcdhSecp256r1Ecpoint, |key, digest, sig| {
            let key = P256PublicKey::from_sec1(key).map_err(|e| e.to_string())?;
            Ok((key.to_sec1().to_vec(), key.verify_prehashed(digest.try_into().unwrap(), sig).is_ok()))
        });
        println!("P-256 ECDH points: {counts:?}");
        assert!(counts.0 >= 300 && counts.1 >= 20, "too few vectors ran: {counts:?}");
    }

    #[test]
    fn p384() {
        let counts = run::<p384::NistP384>(TestName::EcdhSecp384r1Ecpoint, |key, digest, sig| {
            let key = EcPublicKey::from_sec1(&P384, key).map_err(|e| e.to_string())?;
            Ok((key.to_sec1(), key.verify_prehashed(digest, sig).is_ok()))
        });
        println!("P-384 ECDH points: {counts:?}");
        assert!(counts.0 >= 150 && counts.1 >= 15, "too few vectors ran: {counts:?}");
    }

    #[test]
    fn p521() {
        let counts = run::<p521::NistP521>(TestName::EcdhSecp521r1Ecpoint, |key, digest, sig| {
            let key = EcPublicKey::from_sec1(&P521, key).map_err(|e| e.to_string())?;
            Ok((key.to_sec1(), key.verify_prehashed(digest, sig).is_ok()))
        });
        println!("P-521 ECDH points: {counts:?}");
        assert!(counts.0 >= 150 && counts.1 >= 20, "too few vectors ran: {counts:?}");
    }
}
