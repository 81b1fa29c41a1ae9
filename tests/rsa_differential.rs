//! The short form of the differential fuzz target: seeded inputs through the same check
//! (`rsa_diff::check`), every key x scheme x hash x corruption combination covered. `make fuzz`
//! runs the open-ended form.

mod rsa_diff;

use rsa_diff::{check, pool, Corruption, CORRUPTIONS};

#[test]
fn agrees_with_the_rsa_crate() {
    let mut seed = 0x5eed_u64;
    let mut next = || {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (seed >> 33) as u8
    };
    let keys = pool().len();
    let rounds = 2;
    let mut verified = 0;
    let mut cases = 0;
    let mut padding_rejections = 0;
    for round in 0..rounds {
        for key in 0..keys {
            for choice in 0..6u8 {
                for (c, corruption) in CORRUPTIONS.iter().enumerate() {
                    let mut data = vec![key as u8, choice, c as u8];
                    let len = 16 + usize::from(next()) + round * 64;
                    data.extend((0..len).map(|_| next()));
                    let outcome = check(&data);
                    cases += 1;
                    verified += usize::from(outcome.verified);
                    if !outcome.verified
                        && matches!(corruption, Corruption::SetEncodedByte | Corruption::FillEncodedRun)
                    {
                        padding_rejections += 1;
                    }
                }
            }
        }
    }
    println!("RSA differential: {cases} cases, {verified} verified, {padding_rejections} padding-level rejections");
    assert_eq!(cases, rounds * keys * 6 * CORRUPTIONS.len());
    assert!(verified >= rounds * keys * 6, "every uncorrupted signature verifies");
    assert!(padding_rejections >= cases / CORRUPTIONS.len(), "encoded-message corruptions reached the padding checks");
}

/// The one input class where the verifiers are meant to differ (found by `make fuzz`): a PSS
/// encoded message that does not fit emLen = k - 1 octets, for a 2049-bit modulus.
#[test]
fn pss_rejects_a_nonzero_byte_above_em_len_which_the_rsa_crate_accepts() {
    use apirule_wasm::jwt::rsa::{HashAlg, RsaVerifyError};
    use rsa_diff::{both, edited_signature, Scheme};
    let key = pool().iter().find(|k| k.ours.bits() == 2049).unwrap();
    // Setting the leading byte keeps the PSS structure below it intact; it needs s^e mod n < n,
    // which holds for a fair share of messages.
    let (msg, sig) = (0..64)
        .map(|i| format!("header.payload{i}").into_bytes())
        .find_map(|msg| edited_signature(key, Scheme::Pss, HashAlg::Sha256, &msg, |em| em[0] = 1).map(|s| (msg, s)))
        .unwrap();
    let msg = &msg[..];
    assert_eq!(both(key, Scheme::Pss, HashAlg::Sha256, msg, &sig), (false, true));
    assert_eq!(key.ours.verify_pss(HashAlg::Sha256, msg, &sig), Err(RsaVerifyError::PssTopBits));
    // The untouched signature verifies with both.
    let sig = edited_signature(key, Scheme::Pss, HashAlg::Sha256, msg, |_| {}).unwrap();
    assert_eq!(both(key, Scheme::Pss, HashAlg::Sha256, msg, &sig), (true, true));
}
