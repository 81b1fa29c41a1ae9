//! Wycheproof RSA signature vectors against `jwt::rsa`. Runs natively (`cargo test`) and compiled
//! to wasm32-wasip1 (`make test-wasm-crypto`), where the filter really runs.
//!
//! Supported, and checked vector by vector: PKCS#1 v1.5 and PSS with SHA-256/384/512 on
//! 2048/3072/4096-bit keys, PSS only with MGF1 over the message hash and salt length = hash
//! length (RFC 7518). Everything else is accounted for, never silently passed:
//! - groups whose key is outside 2048..=4096 bits: key construction must refuse;
//! - PSS groups with a supported hash but other MGF/salt parameters: their valid vectors must
//!   not verify (a valid signature with salt length 0 is no PS256 signature); their invalid ones
//!   are skipped, counted, as some are valid JWS signatures (e.g. "s_len changed to 32");
//! - groups with other hashes (SHA-1, SHA-224, SHA-512/t, SHA-3, SHAKE): skipped, counted.
//!
//! "Acceptable" vectors (only PKCS#1 "missing NULL in DigestInfo") must be rejected: the
//! verifier compares the whole encoded message with the canonical DigestInfo, which has the NULL.

use apirule_wasm::jwt::rsa::{HashAlg, RsaKeyError, RsaPublicKey, MAX_MODULUS_BITS, MIN_MODULUS_BITS};
use wycheproof::{HashFunction, Mgf, TestResult};

#[derive(Default, Debug)]
struct Counts {
    valid_verified: usize,
    invalid_rejected: usize,
    acceptable_rejected: usize,
    /// Valid vectors of groups with other PSS parameters, all rejected.
    other_params_rejected: usize,
    /// Invalid vectors of groups with other PSS parameters: not judged.
    other_params_skipped: usize,
    /// Vectors of groups whose key size is refused.
    key_refused: usize,
    /// Vectors of groups with an unsupported hash.
    hash_skipped: usize,
}

impl Counts {
    fn exercised(&self) -> usize {
        self.valid_verified + self.invalid_rejected + self.acceptable_rejected
    }
}

fn hash_alg(h: HashFunction) -> Option<HashAlg> {
    match h {
        HashFunction::Sha2_256 => Some(HashAlg::Sha256),
        HashFunction::Sha2_384 => Some(HashAlg::Sha384),
        HashFunction::Sha2_512 => Some(HashAlg::Sha512),
        _ => None,
    }
}

fn hash_len(h: HashAlg) -> usize {
    match h {
        HashAlg::Sha256 => 32,
        HashAlg::Sha384 => 48,
        HashAlg::Sha512 => 64,
    }
}

/// The key of a group, or `None` (after asserting the refusal) when its size is unsupported.
fn group_key(n: &[u8], e: &[u8], key_size: usize, what: &str) -> Option<RsaPublicKey> {
    let key = RsaPublicKey::new(n, e);
    if (MIN_MODULUS_BITS..=MAX_MODULUS_BITS).contains(&key_size) {
        Some(key.unwrap_or_else(|err| panic!("{what}: supported key refused: {err}")))
    } else {
        let err = key.expect_err(what);
        assert!(matches!(err, RsaKeyError::ModulusTooSmall(_) | RsaKeyError::ModulusTooLarge(_)), "{what}: {err}");
        None
    }
}

fn check(counts: &mut Counts, what: &str, result: TestResult, verified: bool) {
    match (result, verified) {
        (TestResult::Valid, true) => counts.valid_verified += 1,
        (TestResult::Invalid, false) => counts.invalid_rejected += 1,
        (TestResult::Acceptable, false) => counts.acceptable_rejected += 1,
        _ => panic!("{what}: expected {result:?}, verified = {verified}"),
    }
}

#[test]
fn pkcs1v15_vectors() {
    use wycheproof::rsa_pkcs1_verify::{TestName, TestSet};
    let mut counts = Counts::default();
    for name in TestName::all() {
        let set = TestSet::load(name).unwrap();
        for group in set.test_groups {
            let Some(hash) = hash_alg(group.hash) else {
                counts.hash_skipped += group.tests.len();
                continue;
            };
            let what = format!("{name:?} {}-bit e={:02x?}", group.key_size, &group.key.e[..]);
            let Some(key) = group_key(&group.key.n, &group.key.e, group.key_size, &what) else {
                counts.key_refused += group.tests.len();
                continue;
            };
            for t in group.tests {
                let verified = key.verify_pkcs1v15(hash, &t.msg, &t.sig).is_ok();
                check(&mut counts, &format!("{what} tc {} ({})", t.tc_id, t.comment), t.result, verified);
            }
        }
    }
    println!("PKCS#1 v1.5 Wycheproof: {counts:?}, exercised {}", counts.exercised());
    // 9 supported files of ~259 vectors: the test cannot pass by exercising nothing.
    assert!(counts.exercised() >= 2300, "{counts:?}");
    assert!(counts.valid_verified >= 60 && counts.acceptable_rejected >= 9, "{counts:?}");
    assert!(counts.key_refused >= 700 && counts.hash_skipped >= 3000, "{counts:?}");
}

#[test]
fn pss_vectors() {
    use wycheproof::rsa_pss_verify::{TestName, TestSet};
    let mut counts = Counts::default();
    for name in TestName::all() {
        let set = TestSet::load(name).unwrap();
        for group in set.test_groups {
            let Some(hash) = hash_alg(group.hash) else {
                counts.hash_skipped += group.tests.len();
                continue;
            };
            let what = format!(
                "{name:?} {}-bit {:?} mgf {:?}/{:?} sLen {}",
                group.key_size, group.hash, group.mgf, group.mgf_hash, group.salt_size
            );
            let Some(key) = group_key(&group.key.n, &group.key.e, group.key_size, &what) else {
                counts.key_refused += group.tests.len();
                continue;
            };
            let jws_params =
                group.mgf == Mgf::Mgf1 && group.mgf_hash == Some(group.hash) && group.salt_size == hash_len(hash);
            for t in group.tests {
                let verified = key.verify_pss(hash, &t.msg, &t.sig).is_ok();
                let what = format!("{what} tc {} ({})", t.tc_id, t.comment);
                if jws_params {
                    check(&mut counts, &what, t.result, verified);
                } else if t.result == TestResult::Valid {
                    assert!(!verified, "{what}: verified under JWS parameters it was not made with");
                    counts.other_params_rejected += 1;
                } else {
                    counts.other_params_skipped += 1;
                }
            }
        }
    }
    println!("PSS Wycheproof: {counts:?}, exercised {}", counts.exercised());
    assert!(counts.exercised() >= 1150, "{counts:?}");
    assert!(counts.valid_verified >= 500 && counts.invalid_rejected >= 400, "{counts:?}");
    assert!(counts.other_params_rejected >= 700 && counts.hash_skipped >= 1200, "{counts:?}");
}
