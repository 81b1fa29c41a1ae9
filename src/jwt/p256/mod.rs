//! ECDSA P-256 / SHA-256 (JWS `ES256`) signature verification, written for wasm32.
//!
//! Only verification, only public inputs, so nothing is constant time. Field elements are 8x32-bit
//! limbs with 32x32->64 multiplies (native in wasm; 64x64->128 is emulated there) and the special
//! form of p for reduction (`field`); scalars mod n use Montgomery multiplication and a binary
//! inversion (`scalar`); u1 G + u2 Q runs on two 8-tooth comb tables (`point`): G's is built at
//! the first verification in a VM, Q's by [`P256PublicKey::from_sec1`], so keep the prepared key
//! (building it costs a few verifications).

mod field;
mod point;
mod scalar;

use std::fmt;
use std::sync::OnceLock;

use field::{from_be_bytes, is_zero, lt, Fe, Limbs, P};
use point::{mul2, Affine, CombTable, GENERATOR};
use scalar::N;

/// Why a public key was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EcKeyError {
    /// Not 65 bytes.
    Length,
    /// The first byte is not 0x04 (only uncompressed SEC1 points are accepted).
    NotUncompressed,
    /// A coordinate is not below p.
    CoordinateOutOfRange,
    /// (x, y) does not satisfy the curve equation.
    NotOnCurve,
}

impl fmt::Display for EcKeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EcKeyError::Length => "P-256 public key is not 65 bytes",
            EcKeyError::NotUncompressed => "P-256 public key is not an uncompressed point",
            EcKeyError::CoordinateOutOfRange => "P-256 public key coordinate is not below p",
            EcKeyError::NotOnCurve => "P-256 public key is not on the curve",
        })
    }
}

impl std::error::Error for EcKeyError {}

/// Why a signature did not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EcVerifyError {
    /// Not 64 bytes (JWS ES256 signatures are raw r || s, 32 bytes each).
    SignatureLength,
    /// r is 0 or not below n.
    ROutOfRange,
    /// s is 0 or not below n.
    SOutOfRange,
    /// u1 G + u2 Q is the point at infinity.
    Infinity,
    /// x(u1 G + u2 Q) mod n differs from r: the signature is not for this message and key.
    Mismatch,
    /// The generator's precomputed table is unavailable (cannot happen; refused rather than
    /// panicking).
    Internal,
}

impl fmt::Display for EcVerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EcVerifyError::SignatureLength => "ES256 signature is not 64 bytes",
            EcVerifyError::ROutOfRange => "ES256 signature r is out of range",
            EcVerifyError::SOutOfRange => "ES256 signature s is out of range",
            EcVerifyError::Infinity => "ES256 verification reached the point at infinity",
            EcVerifyError::Mismatch => "ES256 signature does not match",
            EcVerifyError::Internal => "ES256 verification tables unavailable",
        })
    }
}

impl std::error::Error for EcVerifyError {}

/// A validated P-256 public key with its precomputed comb table (about 16 KiB).
#[derive(Clone)]
pub struct P256PublicKey {
    point: Affine,
    table: Box<CombTable>,
}

impl fmt::Debug for P256PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("P256PublicKey").field("point", &self.point).finish_non_exhaustive()
    }
}

impl PartialEq for P256PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.point == other.point
    }
}

impl Eq for P256PublicKey {}

fn split32(bytes: &[u8]) -> Option<(&[u8; 32], &[u8; 32])> {
    let (a, b) = bytes.split_first_chunk::<32>()?;
    Some((a, b.try_into().ok()?))
}

impl P256PublicKey {
    /// Parses a SEC1 uncompressed point `0x04 || x || y` (65 bytes), checks `x, y < p` and that
    /// the point is on the curve (P-256 has cofactor 1, so it is then a point of order n; the
    /// point at infinity has no such encoding), and builds its table.
    pub fn from_sec1(bytes: &[u8]) -> Result<Self, EcKeyError> {
        if bytes.len() != 65 {
            return Err(EcKeyError::Length);
        }
        let Some((&0x04, xy)) = bytes.split_first() else {
            return Err(EcKeyError::NotUncompressed);
        };
        let (x, y) = split32(xy).ok_or(EcKeyError::Length)?;
        let x = Fe::from_limbs(from_be_bytes(x)).ok_or(EcKeyError::CoordinateOutOfRange)?;
        let y = Fe::from_limbs(from_be_bytes(y)).ok_or(EcKeyError::CoordinateOutOfRange)?;
        let point = Affine { x, y };
        if !point.is_on_curve() {
            return Err(EcKeyError::NotOnCurve);
        }
        let table = CombTable::new(&point).ok_or(EcKeyError::NotOnCurve)?;
        Ok(P256PublicKey { point, table })
    }

    /// The key as a SEC1 uncompressed point.
    pub fn to_sec1(&self) -> [u8; 65] {
        let mut out = [0u8; 65];
        out[0] = 0x04;
        for (dst, src) in out
            .iter_mut()
            .skip(1)
            .zip(field::to_be_bytes(self.point.x.limbs()).iter().chain(field::to_be_bytes(self.point.y.limbs()).iter()))
        {
            *dst = *src;
        }
        out
    }

    /// Verifies an ES256 signature (raw `r || s`, 64 bytes) of `msg` (hashed here with SHA-256).
    pub fn verify_sha256(&self, msg: &[u8], sig: &[u8]) -> Result<(), EcVerifyError> {
        self.verify_prehashed(&hmac_sha256::Hash::hash(msg), sig)
    }

    /// Verifies a raw `r || s` signature of a 32-byte SHA-256 digest.
    pub fn verify_prehashed(&self, digest: &[u8; 32], sig: &[u8]) -> Result<(), EcVerifyError> {
        if sig.len() != 64 {
            return Err(EcVerifyError::SignatureLength);
        }
        let (r, s) = split32(sig).ok_or(EcVerifyError::SignatureLength)?;
        let (r, s) = (from_be_bytes(r), from_be_bytes(s));
        if is_zero(&r) || !lt(&r, &N) {
            return Err(EcVerifyError::ROutOfRange);
        }
        if is_zero(&s) || !lt(&s, &N) {
            return Err(EcVerifyError::SOutOfRange);
        }
        // The digest is exactly as long as n, so e is the whole digest, reduced mod n.
        let e = scalar::reduce_once(&from_be_bytes(digest));
        let (u1, u2) = scalar::verification_scalars(&e, &r, &s).ok_or(EcVerifyError::SOutOfRange)?;
        let g = generator_table().ok_or(EcVerifyError::Internal)?;
        let sum = mul2(g, &u1, &self.table, &u2).ok_or(EcVerifyError::Internal)?;
        if sum.is_infinity() {
            return Err(EcVerifyError::Infinity);
        }
        // x(R) = X / Z^2 is in [0, p); x(R) mod n == r iff X == r Z^2, or X == (r + n) Z^2 when
        // r + n < p. Comparing projectively saves the inversion.
        let z2 = sum.z.square();
        if x_matches(&sum.x, &r, &z2) {
            return Ok(());
        }
        match scalar::plus_n_below(&r, &P) {
            Some(rn) if x_matches(&sum.x, &rn, &z2) => Ok(()),
            _ => Err(EcVerifyError::Mismatch),
        }
    }
}

/// Whether `x == c * z2` in GF(p), for an integer `c < p`.
fn x_matches(x: &Fe, c: &Limbs, z2: &Fe) -> bool {
    Fe::from_limbs(*c).is_some_and(|c| c.mul(z2) == *x)
}

/// G's comb table, built at first use (about 1 ms), once per VM.
fn generator_table() -> Option<&'static CombTable> {
    static TABLE: OnceLock<Option<Box<CombTable>>> = OnceLock::new();
    TABLE.get_or_init(|| CombTable::new(&GENERATOR)).as_deref()
}
