//! RSA signature verification (RSASSA-PKCS1-v1_5 and RSASSA-PSS, RFC 8017) for RS256/384/512 and
//! PS256/384/512, written for the filter's wasm32 build.
//!
//! Why by hand: jwt-simple verifies through `rsa` 0.9, whose num-bigint-dig arithmetic costs about
//! 1.2 ms per RS256 verification in V8 (emulated 128-bit products, Montgomery constants recomputed
//! per call). [`RsaPublicKey`] does the per-key work once, when the JWKS is parsed, and
//! `montgomery` multiplies with native 32x32->64 products.
//!
//! Verification handles public data only, so it is not constant-time. Padding is checked strictly:
//! PKCS#1 v1.5 rebuilds the whole expected encoded message and compares it byte for byte (no ASN.1
//! parsing, so no lenient-parser forgeries); PSS follows EMSA-PSS-VERIFY step by step with the
//! parameters RFC 7518 fixes for JWS (MGF1 with the message hash, salt as long as the hash).

mod montgomery;

use std::fmt;

use sha2::{Digest, Sha256, Sha384, Sha512};

use montgomery::{limbs_from_be, limbs_to_be, Modulus};

/// Smallest modulus accepted: RFC 7518 §3.3 requires 2048 bits, and smaller keys are forgeable.
pub const MIN_MODULUS_BITS: usize = 2048;
/// Largest modulus accepted: verification cost grows with the square of the size, and an IdP key
/// larger than this is more likely an attack on the filter's CPU than a real key.
pub const MAX_MODULUS_BITS: usize = 4096;
/// Largest public exponent accepted (the bound `rsa` 0.9 applies, so no key jwt-simple took is
/// lost). Any odd exponent in `3..=MAX_EXPONENT` goes through the same Montgomery
/// square-and-multiply; 65537 is its fast case (16 squarings, 1 multiplication) and larger ones
/// cost at most about 4x that. No fallback crate is needed.
pub const MAX_EXPONENT: u64 = (1 << 33) - 1;

/// The hash a JWS RSA algorithm names (the number in RS256/PS384/...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashAlg {
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlg {
    fn len(self) -> usize {
        match self {
            HashAlg::Sha256 => 32,
            HashAlg::Sha384 => 48,
            HashAlg::Sha512 => 64,
        }
    }

    /// The hash of the concatenation of `parts`.
    fn digest(self, parts: &[&[u8]]) -> Vec<u8> {
        fn run<D: Digest>(parts: &[&[u8]]) -> Vec<u8> {
            let mut d = D::new();
            for p in parts {
                d.update(p);
            }
            d.finalize().to_vec()
        }
        match self {
            HashAlg::Sha256 => run::<Sha256>(parts),
            HashAlg::Sha384 => run::<Sha384>(parts),
            HashAlg::Sha512 => run::<Sha512>(parts),
        }
    }

    /// DER of DigestInfo { AlgorithmIdentifier { oid, NULL }, OCTET STRING <hash> } up to the hash
    /// itself (RFC 8017 §9.2 note 1).
    fn digest_info_prefix(self) -> &'static [u8] {
        match self {
            HashAlg::Sha256 => &[
                0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00,
                0x04, 0x20,
            ],
            HashAlg::Sha384 => &[
                0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00,
                0x04, 0x30,
            ],
            HashAlg::Sha512 => &[
                0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00,
                0x04, 0x40,
            ],
        }
    }
}

/// Why a JWK's RSA members cannot make a verification key. The JWKS parser drops such keys, so a
/// token naming one is refused as having no usable key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RsaKeyError {
    /// Modulus shorter than [`MIN_MODULUS_BITS`] (bits given).
    ModulusTooSmall(usize),
    /// Modulus longer than [`MAX_MODULUS_BITS`] (bits given).
    ModulusTooLarge(usize),
    /// An even modulus is not an RSA modulus (and has no Montgomery form).
    ModulusEven,
    /// Exponent even, below 3 or above [`MAX_EXPONENT`]; e = 1 would accept anything.
    UnsupportedExponent,
}

impl fmt::Display for RsaKeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RsaKeyError::ModulusTooSmall(bits) => {
                write!(f, "RSA modulus of {bits} bits is below the {MIN_MODULUS_BITS}-bit minimum")
            }
            RsaKeyError::ModulusTooLarge(bits) => {
                write!(f, "RSA modulus of {bits} bits is above the {MAX_MODULUS_BITS}-bit maximum")
            }
            RsaKeyError::ModulusEven => f.write_str("RSA modulus is even"),
            RsaKeyError::UnsupportedExponent => {
                write!(f, "RSA exponent must be odd and between 3 and {MAX_EXPONENT}")
            }
        }
    }
}

impl std::error::Error for RsaKeyError {}

/// Why a signature did not verify, one variant per check that failed (for logs and tests; every
/// variant means "reject").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RsaVerifyError {
    /// The signature is not exactly as long as the modulus (RFC 8017 §8.1.2 step 1).
    SignatureLength { expected: usize, actual: usize },
    /// The signature, as a number, is not below the modulus (RSAVP1 step 1).
    SignatureOutOfRange,
    /// PKCS#1 v1.5: s^e mod n is not the expected encoded message.
    Pkcs1EncodingMismatch,
    /// PSS: the last byte of the encoded message is not 0xbc.
    PssTrailer,
    /// PSS: bits above emBits are set (in the top byte, or a whole leading zero byte).
    PssTopBits,
    /// PSS: the unmasked data block is not zeros || 0x01 || salt.
    PssPadding,
    /// PSS: the hash in the encoded message does not match the message and salt.
    PssHashMismatch,
}

impl fmt::Display for RsaVerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RsaVerifyError::SignatureLength { expected, actual } => {
                write!(f, "RSA signature is {actual} bytes, the modulus {expected}")
            }
            RsaVerifyError::SignatureOutOfRange => f.write_str("RSA signature is not below the modulus"),
            RsaVerifyError::Pkcs1EncodingMismatch => f.write_str("PKCS#1 v1.5 encoded message mismatch"),
            RsaVerifyError::PssTrailer => f.write_str("PSS trailer byte is not 0xbc"),
            RsaVerifyError::PssTopBits => f.write_str("PSS encoded message has bits set above emBits"),
            RsaVerifyError::PssPadding => f.write_str("PSS data block padding is malformed"),
            RsaVerifyError::PssHashMismatch => f.write_str("PSS hash mismatch"),
        }
    }
}

impl std::error::Error for RsaVerifyError {}

/// An RSA public key ready to verify: built once per JWK so that every token verified against it
/// reuses the Montgomery constants.
#[derive(Clone)]
pub struct RsaPublicKey {
    /// Big-endian modulus without leading zeros (kept for equality and logs).
    n: Vec<u8>,
    e: u64,
    bits: usize,
    modulus: Modulus,
}

impl PartialEq for RsaPublicKey {
    /// Two keys are the same key when n and e are; the constants follow from them.
    fn eq(&self, other: &Self) -> bool {
        self.n == other.n && self.e == other.e
    }
}

impl Eq for RsaPublicKey {}

impl fmt::Debug for RsaPublicKey {
    /// Size, exponent and the first modulus bytes identify a key in logs without 512 hex digits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let head: String = self.n.iter().take(8).map(|b| format!("{b:02x}")).collect();
        write!(f, "RsaPublicKey {{ bits: {}, e: {}, n: {head}.. }}", self.bits, self.e)
    }
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    bytes.get(first..).unwrap_or_default()
}

impl RsaPublicKey {
    /// From the JWK members `n` and `e` (big-endian, leading zeros allowed). Refuses what this
    /// verifier does not support rather than verifying it slowly or wrongly: see the limits
    /// above.
    pub fn new(n: &[u8], e: &[u8]) -> Result<RsaPublicKey, RsaKeyError> {
        let n = strip_leading_zeros(n);
        // (Saturated, an absurd length reads as too large.)
        let bits = n.first().map_or(0, |&top| n.len().saturating_mul(8).saturating_sub(top.leading_zeros() as usize));
        if bits < MIN_MODULUS_BITS {
            return Err(RsaKeyError::ModulusTooSmall(bits));
        }
        if bits > MAX_MODULUS_BITS {
            return Err(RsaKeyError::ModulusTooLarge(bits));
        }
        let e = strip_leading_zeros(e);
        if e.len() > 8 {
            return Err(RsaKeyError::UnsupportedExponent);
        }
        let e = e.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
        if e < 3 || e % 2 == 0 || e > MAX_EXPONENT {
            return Err(RsaKeyError::UnsupportedExponent);
        }
        let modulus = Modulus::new(n).ok_or(RsaKeyError::ModulusEven)?;
        Ok(RsaPublicKey { n: n.to_vec(), e, bits, modulus })
    }

    /// Modulus size in bits.
    pub fn bits(&self) -> usize {
        self.bits
    }

    /// The modulus, big-endian, without leading zeros.
    pub fn n(&self) -> &[u8] {
        &self.n
    }

    /// The public exponent.
    pub fn e(&self) -> u64 {
        self.e
    }

    /// Modulus length in bytes: the only signature length accepted.
    fn len(&self) -> usize {
        self.n.len()
    }

    /// RSAVP1: s^e mod n as `len()` big-endian bytes, after the length and range checks.
    fn public_op(&self, sig: &[u8]) -> Result<Vec<u8>, RsaVerifyError> {
        if sig.len() != self.len() {
            return Err(RsaVerifyError::SignatureLength { expected: self.len(), actual: sig.len() });
        }
        let s = limbs_from_be(sig, self.modulus.limbs()).ok_or(RsaVerifyError::SignatureOutOfRange)?;
        if !self.modulus.is_reduced(&s) {
            return Err(RsaVerifyError::SignatureOutOfRange);
        }
        let m = self.modulus.pow_odd(&s, self.e);
        // m < n, so it always fits; a failure here would be a bug, and still rejects.
        limbs_to_be(&m, self.len()).ok_or(RsaVerifyError::SignatureOutOfRange)
    }

    /// RSASSA-PKCS1-v1_5-VERIFY (RFC 8017 §8.2.2) of `msg` hashed with `hash`: the algorithms
    /// RS256/384/512.
    pub fn verify_pkcs1v15(&self, hash: HashAlg, msg: &[u8], sig: &[u8]) -> Result<(), RsaVerifyError> {
        let em = self.public_op(sig)?;
        // EM = 0x00 || 0x01 || PS (0xff..., at least 8) || 0x00 || DigestInfo || H. With
        // moduli of 2048 bits and more, PS is always longer than 8 bytes.
        let prefix = hash.digest_info_prefix();
        // (Sizes of a few hundred bytes: nothing saturates, and a wrong length cannot compare equal.)
        let t_len = prefix.len().saturating_add(hash.len());
        let ps_len = self.len().saturating_sub(t_len.saturating_add(3));
        let mut expected = Vec::with_capacity(self.len());
        expected.extend_from_slice(&[0x00, 0x01]);
        expected.resize(ps_len.saturating_add(2), 0xff);
        expected.push(0x00);
        expected.extend_from_slice(prefix);
        expected.extend_from_slice(&hash.digest(&[msg]));
        if ps_len < 8 || em != expected {
            return Err(RsaVerifyError::Pkcs1EncodingMismatch);
        }
        Ok(())
    }

    /// RSASSA-PSS-VERIFY (RFC 8017 §8.1.2, EMSA-PSS-VERIFY §9.1.2) of `msg` with `hash`, MGF1 over
    /// the same hash and a salt as long as the hash: the algorithms PS256/384/512 (RFC 7518
    /// §3.5). Signatures made with other salt lengths are rejected.
    pub fn verify_pss(&self, hash: HashAlg, msg: &[u8], sig: &[u8]) -> Result<(), RsaVerifyError> {
        let em_full = self.public_op(sig)?;
        let h_len = hash.len();
        let s_len = h_len;
        // emBits = modBits - 1; when that is a multiple of 8 the encoded message is one byte
        // shorter than the modulus and the leading byte of the RSAVP1 output must be zero.
        let em_bits = self.bits.saturating_sub(1);
        let em_len = em_bits.div_ceil(8);
        let Some((lead, em)) = em_full.split_at_checked(em_full.len().saturating_sub(em_len)) else {
            return Err(RsaVerifyError::PssTopBits);
        };
        if lead.iter().any(|&b| b != 0) {
            return Err(RsaVerifyError::PssTopBits);
        }
        // Step 3, emLen >= hLen + sLen + 2 (cannot fail with 2048-bit moduli, checked anyway); what
        // is left is the length of DB's zero padding (step 10).
        let Some(zeros) = em_len.checked_sub(h_len).and_then(|l| l.checked_sub(s_len)).and_then(|l| l.checked_sub(2))
        else {
            return Err(RsaVerifyError::PssPadding);
        };
        // Step 4.
        let Some((&trailer, em)) = em.split_last() else {
            return Err(RsaVerifyError::PssTrailer);
        };
        if trailer != 0xbc {
            return Err(RsaVerifyError::PssTrailer);
        }
        // Step 5: maskedDB (emLen - hLen - 1 bytes) || H (hLen bytes).
        let Some((masked_db, h)) = em.len().checked_sub(h_len).and_then(|at| em.split_at_checked(at)) else {
            return Err(RsaVerifyError::PssPadding);
        };
        // Step 6: the leftmost 8*emLen - emBits bits must be zero.
        // 8 emLen - emBits is 0..=7, emLen being emBits / 8 rounded up.
        let unused_bits = em_len.saturating_mul(8).saturating_sub(em_bits);
        let Some(top_mask) = u32::try_from(unused_bits).ok().and_then(|b| 0xffu8.checked_shr(b)) else {
            return Err(RsaVerifyError::PssTopBits);
        };
        if masked_db.first().is_some_and(|&b| b & !top_mask != 0) {
            return Err(RsaVerifyError::PssTopBits);
        }
        // Steps 7-9: DB = maskedDB xor MGF1(H), top bits cleared.
        let mut db = mgf1(hash, h, masked_db.len());
        for (d, &m) in db.iter_mut().zip(masked_db) {
            *d ^= m;
        }
        if let Some(first) = db.first_mut() {
            *first &= top_mask;
        }
        // Step 10: DB = 0x00 * (emLen - hLen - sLen - 2) || 0x01 || salt.
        let Some((padding, rest)) = db.split_at_checked(zeros) else {
            return Err(RsaVerifyError::PssPadding);
        };
        let Some((&one, salt)) = rest.split_first() else {
            return Err(RsaVerifyError::PssPadding);
        };
        if padding.iter().any(|&b| b != 0) || one != 0x01 || salt.len() != s_len {
            return Err(RsaVerifyError::PssPadding);
        }
        // Steps 12-14: H' = Hash(0x00 * 8 || mHash || salt) must equal H.
        let m_hash = hash.digest(&[msg]);
        if hash.digest(&[&[0u8; 8], &m_hash, salt]) != h {
            return Err(RsaVerifyError::PssHashMismatch);
        }
        Ok(())
    }
}

/// MGF1 (RFC 8017 B.2.1): `len` bytes of Hash(seed || counter) for counter = 0, 1, ...
fn mgf1(hash: HashAlg, seed: &[u8], len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len.saturating_add(hash.len()));
    let mut counter = 0u32;
    while out.len() < len {
        out.extend_from_slice(&hash.digest(&[seed, &counter.to_be_bytes()]));
        counter = counter.wrapping_add(1);
    }
    out.truncate(len);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_limits() {
        let mut n = vec![0xffu8; 256];
        assert!(RsaPublicKey::new(&n, &[1, 0, 1]).is_ok());
        assert!(RsaPublicKey::new(&[&[0u8, 0][..], &n].concat(), &[0, 1, 0, 1]).is_ok());
        assert_eq!(RsaPublicKey::new(&n, &[1]), Err(RsaKeyError::UnsupportedExponent));
        assert_eq!(RsaPublicKey::new(&n, &[2]), Err(RsaKeyError::UnsupportedExponent));
        assert_eq!(RsaPublicKey::new(&n, &[]), Err(RsaKeyError::UnsupportedExponent));
        assert!(RsaPublicKey::new(&n, &[3]).is_ok());
        assert_eq!(RsaPublicKey::new(&n, &[2, 0, 0, 0, 0]), Err(RsaKeyError::UnsupportedExponent));
        assert!(RsaPublicKey::new(&n, &[1, 0xff, 0xff, 0xff, 0xff]).is_ok());
        assert_eq!(RsaPublicKey::new(&n[1..], &[3]), Err(RsaKeyError::ModulusTooSmall(2040)));
        n[0] = 0x7f;
        assert_eq!(RsaPublicKey::new(&n, &[3]), Err(RsaKeyError::ModulusTooSmall(2047)));
        assert_eq!(RsaPublicKey::new(&vec![0xff; 513], &[3]), Err(RsaKeyError::ModulusTooLarge(4104)));
        assert!(RsaPublicKey::new(&vec![0xff; 512], &[3]).is_ok());
        assert_eq!(RsaPublicKey::new(&vec![0xfe; 256], &[3]), Err(RsaKeyError::ModulusEven));
    }

    #[test]
    fn signature_length_and_range_are_checked_first() {
        let key = RsaPublicKey::new(&[0xffu8; 256], &[1, 0, 1]).unwrap();
        let err = key.verify_pkcs1v15(HashAlg::Sha256, b"m", &[1; 255]).unwrap_err();
        assert_eq!(err, RsaVerifyError::SignatureLength { expected: 256, actual: 255 });
        let err = key.verify_pss(HashAlg::Sha256, b"m", &[0xff; 256]).unwrap_err();
        assert_eq!(err, RsaVerifyError::SignatureOutOfRange);
        let err = key.verify_pss(HashAlg::Sha256, b"m", &[0; 256]).unwrap_err();
        assert_eq!(err, RsaVerifyError::PssTrailer);
        let err = key.verify_pkcs1v15(HashAlg::Sha512, b"m", &[0; 256]).unwrap_err();
        assert_eq!(err, RsaVerifyError::Pkcs1EncodingMismatch);
    }

    #[test]
    fn mgf1_matches_its_definition() {
        let out = mgf1(HashAlg::Sha256, b"seed", 40);
        let mut want = HashAlg::Sha256.digest(&[b"seed", &[0, 0, 0, 0]]);
        want.extend_from_slice(&HashAlg::Sha256.digest(&[b"seed", &[0, 0, 0, 1]])[..8]);
        assert_eq!(out, want);
    }
}
