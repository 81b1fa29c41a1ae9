//! Wycheproof ECDSA secp256r1 / SHA-256 vectors against `jwt::p256`.
//!
//! The P1363 set (raw r || s, the JWS form) runs as is. The DER set runs too: signatures in strict
//! DER whose integers fit 32 bytes are converted to r || s and verified; the rest (BER, wrong
//! lengths, oversized integers...) cannot be expressed as a 64-byte JWS signature and count as
//! refused, which is right only for vectors Wycheproof marks invalid.
//!
//! "Acceptable" vectors (none in these sets today) may go either way: they are counted but their
//! outcome is not asserted.

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

fn check(set: TestName, to_raw: fn(&[u8]) -> Option<Vec<u8>>) -> Counts {
    let set = TestSet::load(set).unwrap();
    let mut counts = Counts::default();
    for group in set.test_groups {
        let key = P256PublicKey::from_sec1(&group.key.key);
        for test in group.tests {
            let raw = to_raw(&test.sig);
            let outcome = match (&key, &raw) {
                (Ok(key), Some(raw)) => key.verify_sha256(&test.msg, raw).is_ok(),
                _ => false,
            };
            if raw.is_none() {
                counts.refused_encoding += 1;
            }
            match test.result {
                TestResult::Valid => {
                    assert!(key.is_ok(), "tc {}: key refused: {:?}", test.tc_id, key.as_ref().err());
                    assert!(outcome, "tc {} ({}): valid signature refused", test.tc_id, test.comment);
                    counts.valid += 1;
                }
                TestResult::Invalid => {
                    assert!(!outcome, "tc {} ({}): invalid signature accepted", test.tc_id, test.comment);
                    counts.invalid += 1;
                }
                TestResult::Acceptable => counts.acceptable += 1,
            }
        }
    }
    counts
}

fn p1363(sig: &[u8]) -> Option<Vec<u8>> {
    Some(sig.to_vec())
}

/// One strict DER INTEGER (positive, minimal) as 32 big-endian bytes.
fn der_int(input: &[u8]) -> Option<([u8; 32], &[u8])> {
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
    if int.len() > 32 {
        return None;
    }
    let mut out = [0u8; 32];
    out[32 - int.len()..].copy_from_slice(int);
    Some((out, rest))
}

fn der(sig: &[u8]) -> Option<Vec<u8>> {
    let (&tag, rest) = sig.split_first()?;
    let (&len, body) = rest.split_first()?;
    if tag != 0x30 || len > 0x7f || usize::from(len) != body.len() {
        return None;
    }
    let (r, rest) = der_int(body)?;
    let (s, rest) = der_int(rest)?;
    if !rest.is_empty() {
        return None;
    }
    Some([r, s].concat())
}

#[test]
fn wycheproof_p1363() {
    let c = check(TestName::EcdsaSecp256r1Sha256P1363, p1363);
    println!("P1363: {c:?}");
    assert!(c.valid >= 150 && c.invalid >= 80, "too few vectors ran: {c:?}");
}

#[test]
fn wycheproof_der() {
    let c = check(TestName::EcdsaSecp256r1Sha256, der);
    println!("DER: {c:?}");
    assert!(c.valid >= 150 && c.invalid >= 250, "too few vectors ran: {c:?}");
}

/// Public points from the ECDH secp256r1 ecpoint set (edge cases for doubling, addition chains,
/// invalid-curve points). Each test has a private key d and the shared secret x(d Q); with digest
/// e = 0, r = x(d Q) mod n and s = r / d, ECDSA verification computes x((r / s) Q) = x(d Q), so
/// (r, s) must verify: that checks the key's table and the multiplication on every such point.
/// Native only: it uses the p256 crate to build the signatures.
#[cfg(not(target_arch = "wasm32"))]
#[test]
fn wycheproof_ecdh_points() {
    use p256::elliptic_curve::ops::Reduce;
    use p256::elliptic_curve::PrimeField;
    use p256::{FieldBytes, Scalar, U256};
    use wycheproof::ecdh::{TestName, TestSet};

    fn bytes32(b: &[u8]) -> FieldBytes {
        let b = &b[b.iter().take_while(|&&x| x == 0).count()..];
        let mut out = [0u8; 32];
        out[32 - b.len()..].copy_from_slice(b);
        out.into()
    }

    let set = TestSet::load(TestName::EcdhSecp256r1Ecpoint).unwrap();
    let (mut valid, mut skipped, mut invalid, mut acceptable) = (0, 0, 0, 0);
    for group in set.test_groups {
        for test in group.tests {
            let key = P256PublicKey::from_sec1(&test.public_key);
            match test.result {
                TestResult::Valid => {
                    let key = key.unwrap_or_else(|e| panic!("tc {}: valid point refused: {e}", test.tc_id));
                    assert_eq!(key.to_sec1().to_vec(), test.public_key.to_vec());
                    let d = <Scalar as Reduce<U256>>::reduce_bytes(&bytes32(&test.private_key));
                    let r = <Scalar as Reduce<U256>>::reduce_bytes(&bytes32(&test.shared_secret));
                    valid += 1;
                    if r == Scalar::ZERO {
                        skipped += 1; // x(d Q) = 0 is no signature's r
                        continue;
                    }
                    let s = r * Option::<Scalar>::from(d.invert()).unwrap();
                    let sig = [r.to_repr(), s.to_repr()].concat();
                    assert_eq!(key.verify_prehashed(&[0; 32], &sig), Ok(()), "tc {} ({})", test.tc_id, test.comment);
                }
                // Only uncompressed points are taken, so the compressed ones are refused too.
                TestResult::Invalid => {
                    assert!(key.is_err(), "tc {} ({}): invalid point accepted", test.tc_id, test.comment);
                    invalid += 1;
                }
                TestResult::Acceptable => {
                    assert!(key.is_err(), "tc {}: compressed point accepted", test.tc_id);
                    acceptable += 1;
                }
            }
        }
    }
    println!("ECDH points: valid {valid} (multiplication not checked: {skipped}), invalid {invalid}, acceptable {acceptable}");
    assert!(valid - skipped >= 300 && invalid >= 20, "too few vectors ran: {valid} {skipped} {invalid}");
}
