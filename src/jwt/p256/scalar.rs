//! Arithmetic modulo the P-256 group order n (only what verification needs: a handful of
//! multiplications and one inversion per signature, so clarity over speed).

use super::field::{add8, inv_mod, lt, sub8, Limbs};

/// n = FFFFFFFF 00000000 FFFFFFFF FFFFFFFF BCE6FAAD A7179E84 F3B9CAC2 FC632551.
pub(super) const N: Limbs =
    [0xfc63_2551, 0xf3b9_cac2, 0xa717_9e84, 0xbce6_faad, 0xffff_ffff, 0xffff_ffff, 0x0000_0000, 0xffff_ffff];

/// -n^-1 mod 2^32, for Montgomery reduction.
const N0INV: u32 = 0xee00_bc4f;

const ONE: Limbs = [1, 0, 0, 0, 0, 0, 0, 0];

/// `x mod n` for any 256-bit x (one subtraction suffices: 2n > 2^256).
pub(super) fn reduce_once(x: &Limbs) -> Limbs {
    if lt(x, &N) {
        *x
    } else {
        sub8(x, &N).0
    }
}

/// `a * b * 2^-256 mod n` for `a, b < n` (CIOS Montgomery multiplication).
// No overflow: each s = t + a b + carry <= (2^32 - 1) + (2^32 - 1)^2 + (2^32 - 1) = 2^64 - 1, and
// t[9] stays 0 or 1 as the running value is below 2n.
#[allow(clippy::arithmetic_side_effects)]
fn mont_mul(a: &Limbs, b: &Limbs) -> Limbs {
    // t[0..=8] holds the running value (< 2n), t[9] its overflow word.
    let mut t = [0u32; 10];
    for &bi in b {
        let mut carry = 0u64;
        for (tj, &aj) in t.iter_mut().zip(a) {
            let s = u64::from(*tj) + u64::from(aj) * u64::from(bi) + carry;
            *tj = s as u32;
            carry = s >> 32;
        }
        let s = u64::from(t[8]) + carry;
        t[8] = s as u32;
        t[9] = (s >> 32) as u32;

        let m = t[0].wrapping_mul(N0INV);
        let mut carry = 0u64;
        for (tj, &nj) in t.iter_mut().zip(&N) {
            let s = u64::from(*tj) + u64::from(m) * u64::from(nj) + carry;
            *tj = s as u32;
            carry = s >> 32;
        }
        let s = u64::from(t[8]) + carry;
        t[8] = s as u32;
        t[9] += (s >> 32) as u32;
        // t[0] is now zero: divide by 2^32.
        t.copy_within(1..10, 0);
        t[9] = 0;
    }
    let mut r = [0u32; 8];
    r.copy_from_slice(&t[..8]);
    if t[8] != 0 || !lt(&r, &N) {
        sub8(&r, &N).0
    } else {
        r
    }
}

/// The ECDSA verification scalars `(e / s mod n, r / s mod n)` for `0 < s < n`, `r < n`,
/// `e < n`; `None` if s has no inverse (s = 0).
pub(super) fn verification_scalars(e: &Limbs, r: &Limbs, s: &Limbs) -> Option<(Limbs, Limbs)> {
    // w = (s 2^-256)^-1 = s^-1 2^256, so mont_mul(e, w) = e s^-1: no conversion constants needed.
    let w = inv_mod(&mont_mul(s, &ONE), &N, N0INV)?;
    Some((mont_mul(e, &w), mont_mul(r, &w)))
}

/// `r + n`, if that is below `bound` (used for the x(R) = r + n case of the final check).
pub(super) fn plus_n_below(r: &Limbs, bound: &Limbs) -> Option<Limbs> {
    let (s, carry) = add8(r, &N);
    (carry == 0 && lt(&s, bound)).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn n0inv_is_minus_inverse() {
        assert_eq!(N[0].wrapping_mul(N0INV), u32::MAX);
    }

    #[test]
    fn scalars_divide_by_s() {
        // e / s with e = s must be 1; r / s with r = 2s mod n must be 2.
        let s = [0x1234_5678, 0x9abc_def0, 7, 0, 0, 0xffff_ffff, 3, 0x7fff_fffe];
        let (two_s, _) = add8(&s, &s);
        let two_s = reduce_once(&two_s);
        let (a, b) = verification_scalars(&s, &two_s, &s).unwrap();
        assert_eq!(a, ONE);
        assert_eq!(b, [2, 0, 0, 0, 0, 0, 0, 0]);
        let n1 = sub8(&N, &ONE).0; // -1
        let (a, _) = verification_scalars(&ONE, &ONE, &n1).unwrap();
        assert_eq!(a, n1);
        assert!(verification_scalars(&ONE, &ONE, &[0; 8]).is_none());
    }
}
