//! ECDSA verification over P-384 (JWS `ES384`) and P-521 (`ES512`): one generic implementation
//! over L-limb Montgomery arithmetic (`modular`) and a = -3 curves (`curve`).
//!
//! Written by hand because the crates cost too much of the `.wasm`: `p384` alone added 118 KiB,
//! and `p521` would have taken the filter past its 1 MB budget. Both curves here together cost a
//! fraction of that. P-256, the common case, keeps its own tuned module (`super::p256`); the
//! errors below are shared with it. Checked against Wycheproof (native and in wasm) and against
//! the `p384` / `p521` crates (`tests/ecdsa_*.rs`).
//!
//! Only verification, only public inputs, so nothing is constant time.

mod curve;
mod modular;

use std::fmt;

use sha2::{Digest, Sha384, Sha512};

use curve::{CombTable, Hash, Jacobian};
pub use curve::{Curve, P384, P521};
use modular::{from_be_bytes, is_zero, lt, to_be_bytes, Limbs};

/// A P-384 public key (12 limbs).
pub type P384PublicKey = EcPublicKey<12>;
/// A P-521 public key (17 limbs).
pub type P521PublicKey = EcPublicKey<17>;

/// Why a public key was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EcKeyError {
    /// Not `1 + 2 * coordinate size` bytes.
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
            EcKeyError::Length => "EC public key has the wrong length",
            EcKeyError::NotUncompressed => "EC public key is not an uncompressed point",
            EcKeyError::CoordinateOutOfRange => "EC public key coordinate is not below p",
            EcKeyError::NotOnCurve => "EC public key is not on the curve",
        })
    }
}

impl std::error::Error for EcKeyError {}

/// Why a signature did not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EcVerifyError {
    /// Not twice the curve's scalar size (JWS ECDSA signatures are raw `r || s`).
    SignatureLength,
    /// r is 0 or not below n.
    ROutOfRange,
    /// s is 0 or not below n.
    SOutOfRange,
    /// u1 G + u2 Q is the point at infinity.
    Infinity,
    /// x(u1 G + u2 Q) mod n differs from r: the signature is not for this message and key.
    Mismatch,
    /// A precomputed table or digest size is unusable (cannot happen; refused rather than
    /// panicking).
    Internal,
}

impl fmt::Display for EcVerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EcVerifyError::SignatureLength => "ECDSA signature has the wrong length",
            EcVerifyError::ROutOfRange => "ECDSA signature r is out of range",
            EcVerifyError::SOutOfRange => "ECDSA signature s is out of range",
            EcVerifyError::Infinity => "ECDSA verification reached the point at infinity",
            EcVerifyError::Mismatch => "ECDSA signature does not match",
            EcVerifyError::Internal => "ECDSA verification input unusable",
        })
    }
}

impl std::error::Error for EcVerifyError {}

/// A validated public key with its comb table (255 points: 24 KiB for P-384, 34 KiB for
/// P-521).
#[derive(Clone)]
pub struct EcPublicKey<const L: usize> {
    curve: &'static Curve<L>,
    /// The plain affine coordinates, for equality and encoding.
    x: Limbs<L>,
    y: Limbs<L>,
    table: Box<CombTable<L>>,
}

impl<const L: usize> fmt::Debug for EcPublicKey<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EcPublicKey").field("curve", &self.curve.name).finish_non_exhaustive()
    }
}

impl<const L: usize> PartialEq for EcPublicKey<L> {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.curve, other.curve) && self.x == other.x && self.y == other.y
    }
}

impl<const L: usize> Eq for EcPublicKey<L> {}

impl<const L: usize> EcPublicKey<L> {
    /// Parses a SEC1 uncompressed point `0x04 || x || y`, checks `x, y < p` and that the point
    /// is on the curve (cofactor 1, so it is then a point of order n; the point at infinity has
    /// no such encoding), and builds its table.
    pub fn from_sec1(curve: &'static Curve<L>, bytes: &[u8]) -> Result<Self, EcKeyError> {
        // (Curve sizes are constants below 67: nothing saturates.)
        if bytes.len() != curve.bytes.saturating_mul(2).saturating_add(1) {
            return Err(EcKeyError::Length);
        }
        let Some((&0x04, xy)) = bytes.split_first() else {
            return Err(EcKeyError::NotUncompressed);
        };
        let Some((x, y)) = xy.split_at_checked(curve.bytes) else {
            return Err(EcKeyError::Length);
        };
        let x = from_be_bytes(x).ok_or(EcKeyError::Length)?;
        let y = from_be_bytes(y).ok_or(EcKeyError::Length)?;
        if !lt(&x, curve.p.value()) || !lt(&y, curve.p.value()) {
            return Err(EcKeyError::CoordinateOutOfRange);
        }
        let point = curve.point(&x, &y).ok_or(EcKeyError::NotOnCurve)?;
        let table = curve.comb_table(&point).ok_or(EcKeyError::NotOnCurve)?;
        Ok(EcPublicKey { curve, x, y, table })
    }

    /// The key as a SEC1 uncompressed point.
    pub fn to_sec1(&self) -> Vec<u8> {
        let mut out = vec![0x04];
        out.extend(to_be_bytes(&self.x, self.curve.bytes));
        out.extend(to_be_bytes(&self.y, self.curve.bytes));
        out
    }

    /// Verifies a JWS signature (raw `r || s`) of `msg`, hashed here with the curve's hash
    /// (SHA-384 for P-384, SHA-512 for P-521).
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> Result<(), EcVerifyError> {
        let digest = match self.curve.hash {
            Hash::Sha384 => Sha384::digest(msg).to_vec(),
            Hash::Sha512 => Sha512::digest(msg).to_vec(),
        };
        self.verify_prehashed(&digest, sig)
    }

    /// Verifies a raw `r || s` signature of a digest no longer than the group order.
    pub fn verify_prehashed(&self, digest: &[u8], sig: &[u8]) -> Result<(), EcVerifyError> {
        let c = self.curve;
        if sig.len() != c.bytes.saturating_mul(2) {
            return Err(EcVerifyError::SignatureLength);
        }
        let Some((r, s)) = sig.split_at_checked(c.bytes) else {
            return Err(EcVerifyError::SignatureLength);
        };
        let r: Limbs<L> = from_be_bytes(r).ok_or(EcVerifyError::SignatureLength)?;
        let s: Limbs<L> = from_be_bytes(s).ok_or(EcVerifyError::SignatureLength)?;
        if is_zero(&r) || !lt(&r, c.n.value()) {
            return Err(EcVerifyError::ROutOfRange);
        }
        if is_zero(&s) || !lt(&s, c.n.value()) {
            return Err(EcVerifyError::SOutOfRange);
        }
        // The hashes used here are never longer than n (384 <= 384, 512 <= 521 bits), so e is the
        // whole digest; it is below 2n, so one subtraction reduces it.
        if digest.len().saturating_mul(8) > c.n.bits() {
            return Err(EcVerifyError::Internal);
        }
        let e: Limbs<L> = from_be_bytes(digest).ok_or(EcVerifyError::Internal)?;
        let e = if lt(&e, c.n.value()) { e } else { modular::sub(&e, c.n.value()).0 };

        // w = (s R)^-1 in Montgomery form is s^-1 R, so mul(e, w) = e s^-1 as a plain integer.
        let s_m = c.n.to_mont(&s).ok_or(EcVerifyError::SOutOfRange)?;
        let w = c.n.invert(&s_m).ok_or(EcVerifyError::SOutOfRange)?;
        let (u1, u2) = (c.n.mul(&e, &w), c.n.mul(&r, &w));

        let g = c.generator_table().ok_or(EcVerifyError::Internal)?;
        let sum = c.mul2(g, &u1, &self.table, &u2).ok_or(EcVerifyError::Internal)?;
        if sum.is_infinity() {
            return Err(EcVerifyError::Infinity);
        }
        // x(R) = X / Z^2 is in [0, p); x(R) mod n == r iff X == r Z^2, or X == (r + n) Z^2 when
        // r + n < p. Comparing projectively saves an inversion.
        let z2 = c.p.square(&sum.z);
        if x_matches(c, &sum, &r, &z2) {
            return Ok(());
        }
        let (rn, carry) = modular::add(&r, c.n.value());
        if carry == 0 && x_matches(c, &sum, &rn, &z2) {
            return Ok(());
        }
        Err(EcVerifyError::Mismatch)
    }
}

/// Whether `X == v Z^2` in GF(p) for a plain integer `v` (false if v >= p).
fn x_matches<const L: usize>(c: &Curve<L>, sum: &Jacobian<L>, v: &Limbs<L>, z2: &Limbs<L>) -> bool {
    c.p.to_mont(v).is_some_and(|v| c.p.mul(&v, z2) == sum.x)
}
