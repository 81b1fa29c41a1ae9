//! Montgomery arithmetic modulo an RSA public modulus, written by hand for wasm32.
//!
//! Why not a crate: `rsa` 0.9 (num-bigint-dig) uses 64-bit digits whose 64x64->128 products
//! wasm32 has to emulate, and it recomputes the Montgomery constants on every verification; in
//! V8 that is 10-20x slower than this file. Here limbs are `u32`, so every product is one native
//! wasm `i64.mul` of two zero-extended 32-bit values, and the per-key constants (`n0_inv`,
//! `R^2 mod n`) are computed once, when the key is built.
//!
//! Only public data passes through here (modulus, exponent, signature), so nothing is
//! constant-time. Representation: little-endian `u32` limbs, `R = 2^(32*k)` for a `k`-limb
//! modulus.

/// The modulus and the constants Montgomery multiplication needs, fixed per key.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Modulus {
    /// n, little-endian limbs; the top limb is non-zero.
    n: Vec<u32>,
    /// -n^-1 mod 2^32.
    n0_inv: u32,
    /// R^2 mod n: multiplying by it moves a number into Montgomery form.
    rr: Vec<u32>,
}

/// Little-endian limbs of a big-endian byte string, zero-extended to `limbs` limbs; `None` when
/// the value does not fit.
pub(crate) fn limbs_from_be(bytes: &[u8], limbs: usize) -> Option<Vec<u32>> {
    let mut out = vec![0u32; limbs];
    let mut slots = out.iter_mut();
    for chunk in bytes.rchunks(4) {
        let word = chunk.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b));
        match slots.next() {
            Some(slot) => *slot = word,
            None if word == 0 => {}
            None => return None,
        }
    }
    Some(out)
}

/// Big-endian bytes of `limbs`, exactly `len` bytes long; `None` when the value does not fit.
pub(crate) fn limbs_to_be(limbs: &[u32], len: usize) -> Option<Vec<u8>> {
    let mut out = vec![0u8; len];
    let mut bytes = limbs.iter().flat_map(|w| w.to_le_bytes());
    for slot in out.iter_mut().rev() {
        *slot = bytes.next().unwrap_or(0);
    }
    // Whatever did not fit must be zero.
    bytes.all(|b| b == 0).then_some(out)
}

/// a >= b for equal-length little-endian numbers.
fn geq(a: &[u32], b: &[u32]) -> bool {
    for (x, y) in a.iter().rev().zip(b.iter().rev()) {
        if x != y {
            return x > y;
        }
    }
    true
}

/// a -= b (equal lengths), returning the borrow out.
fn sub_in_place(a: &mut [u32], b: &[u32]) -> bool {
    let mut borrow = false;
    for (x, &y) in a.iter_mut().zip(b) {
        let (d1, b1) = x.overflowing_sub(y);
        let (d2, b2) = d1.overflowing_sub(u32::from(borrow));
        *x = d2;
        borrow = b1 || b2;
    }
    borrow
}

/// a = 2a mod n, for a < n.
fn double_mod(a: &mut [u32], n: &[u32]) {
    let mut carry = 0u32;
    for x in a.iter_mut() {
        let next = *x >> 31;
        *x = (*x << 1) | carry;
        carry = next;
    }
    if carry != 0 || geq(a, n) {
        sub_in_place(a, n);
    }
}

impl Modulus {
    /// `n` as big-endian bytes without leading zeros; `None` unless n is odd and > 1 (even
    /// moduli have no Montgomery form, and are not RSA moduli anyway).
    pub(crate) fn new(n_be: &[u8]) -> Option<Modulus> {
        let k = n_be.len().div_ceil(4);
        let n = limbs_from_be(n_be, k)?;
        let n0 = *n.first()?;
        if n0 & 1 == 0 || n.last().copied().unwrap_or(0) == 0 || (k == 1 && n0 == 1) {
            return None;
        }
        // Newton iteration for n0^-1 mod 2^32: x = n0 is correct mod 2^3 for odd n0, and each
        // step doubles the number of correct low bits (3, 6, 12, 24, 48).
        let mut inv = n0;
        for _ in 0..4 {
            inv = inv.wrapping_mul(2u32.wrapping_sub(n0.wrapping_mul(inv)));
        }
        let n0_inv = inv.wrapping_neg();

        // R mod n by doubling 2^(bits-1) (< n, the top bit of n being set) up to 2^(32k): at
        // most 32 doublings. One more gives 2R, the Montgomery form of 2; raising that to the
        // power 32k in Montgomery form gives the Montgomery form of 2^(32k) = R, which is
        // R * R mod n. About a dozen multiplications, once per key.
        let bits = 32 * k - n.last().map_or(0, |top| top.leading_zeros() as usize);
        let mut two_r = vec![0u32; k];
        if let Some(limb) = two_r.get_mut((bits - 1) / 32) {
            *limb = 1 << ((bits - 1) % 32);
        }
        for _ in (bits - 1)..=(32 * k) {
            double_mod(&mut two_r, &n);
        }
        let mut m = Modulus { n, n0_inv, rr: Vec::new() };
        m.rr = m.pow_mont(&two_r, 32 * k as u64);
        Some(m)
    }

    /// Number of 32-bit limbs.
    pub(crate) fn limbs(&self) -> usize {
        self.n.len()
    }

    /// Whether `x` (k limbs) is below n.
    pub(crate) fn is_reduced(&self, x: &[u32]) -> bool {
        x.len() == self.n.len() && !geq(x, &self.n)
    }

    /// out = a * b * R^-1 mod n, for a, b < n (k limbs each). CIOS Montgomery multiplication with
    /// the multiply and reduce passes fused into one loop over the limbs of `a` and `n`.
    fn mont_mul(&self, out: &mut [u32], a: &[u32], b: &[u32]) {
        let n = self.n.as_slice();
        // t = out[..] plus one top limb; invariant t < a + n < 2n, so `top` is 0 or 1.
        out.fill(0);
        let mut top = 0u32;
        let (Some((&a0, a_rest)), Some((&n0, n_rest))) = (a.split_first(), n.split_first()) else {
            return;
        };
        for &bi in b {
            let bi = u64::from(bi);
            let Some((t0, t_rest)) = out.split_first_mut() else {
                return;
            };
            // Limb 0: choose m so that t + a*bi + m*n is divisible by 2^32.
            let x = u64::from(*t0) + u64::from(a0) * bi;
            let m = (x as u32).wrapping_mul(self.n0_inv);
            let y = u64::from(x as u32) + u64::from(m) * u64::from(n0);
            let mut c1 = x >> 32;
            let mut c2 = y >> 32;
            let m = u64::from(m);
            // Limbs 1..k: add both products and shift down one limb as we go.
            let mut prev: &mut u32 = t0;
            for ((tj, &aj), &nj) in t_rest.iter_mut().zip(a_rest).zip(n_rest) {
                let x = u64::from(*tj) + u64::from(aj) * bi + c1;
                c1 = x >> 32;
                let y = u64::from(x as u32) + m * u64::from(nj) + c2;
                c2 = y >> 32;
                *prev = y as u32;
                prev = tj;
            }
            let x = u64::from(top) + c1 + c2;
            *prev = x as u32;
            top = (x >> 32) as u32;
        }
        if top != 0 || geq(out, n) {
            sub_in_place(out, n);
        }
    }

    /// The Montgomery form of x^e for `base_m` the Montgomery form of x, e >= 1.
    fn pow_mont(&self, base_m: &[u32], e: u64) -> Vec<u32> {
        let mut acc = base_m.to_vec();
        let mut tmp = vec![0u32; self.n.len()];
        for bit in (0..63 - e.leading_zeros()).rev() {
            self.mont_mul(&mut tmp, &acc, &acc);
            if (e >> bit) & 1 == 1 {
                self.mont_mul(&mut acc, &tmp, base_m);
            } else {
                std::mem::swap(&mut acc, &mut tmp);
            }
        }
        acc
    }

    /// base^e mod n for base < n (k limbs) and odd e >= 3, left-to-right binary. For
    /// e = 65537 that is exactly 16 squarings and one multiplication (plus one multiplication
    /// to enter Montgomery form); the last multiplication uses `base` itself rather than its
    /// Montgomery form, which leaves the result in normal form without a conversion step.
    pub(crate) fn pow_odd(&self, base: &[u32], e: u64) -> Vec<u32> {
        let k = self.n.len();
        let mut base_m = vec![0u32; k];
        self.mont_mul(&mut base_m, base, &self.rr);
        let mut acc = base_m.clone();
        let mut tmp = vec![0u32; k];
        let top_bit = 63 - e.leading_zeros();
        for bit in (1..top_bit).rev() {
            self.mont_mul(&mut tmp, &acc, &acc);
            if (e >> bit) & 1 == 1 {
                self.mont_mul(&mut acc, &tmp, &base_m);
            } else {
                std::mem::swap(&mut acc, &mut tmp);
            }
        }
        // Bit 0 is set (e is odd).
        self.mont_mul(&mut tmp, &acc, &acc);
        self.mont_mul(&mut acc, &tmp, base);
        acc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limb_conversions_round_trip_and_refuse_overflow() {
        let bytes = [1u8, 2, 3, 4, 5, 6, 7, 8, 9];
        let limbs = limbs_from_be(&bytes, 3).unwrap();
        assert_eq!(limbs, vec![0x06070809, 0x02030405, 0x01]);
        assert_eq!(limbs_to_be(&limbs, 9).unwrap(), bytes.to_vec());
        assert_eq!(limbs_to_be(&limbs, 12).unwrap(), [&[0u8, 0, 0][..], &bytes].concat());
        assert!(limbs_to_be(&limbs, 8).is_none());
        assert!(limbs_from_be(&bytes, 2).is_none());
        assert_eq!(limbs_from_be(&[0, 0, 0, 0, 0, 7], 1).unwrap(), vec![7]);
    }

    #[test]
    fn small_moduli_match_plain_arithmetic() {
        // Odd moduli of one and two limbs against u128 arithmetic.
        for n in [3u64, 5, 0xffff_fffb, 0x1_0000_0001, 0xffff_ffff_ffff_ffc5, 0x8000_0000_0000_001d] {
            let m = Modulus::new(&strip(&n.to_be_bytes())).unwrap();
            for base in [0u64, 1, 2, 7, n - 1, n / 2, 0x1234_5678_9abc_def1 % n] {
                for e in [3u64, 5, 17, 65537, 0x1_0000_0003] {
                    let want = powmod(base, e, n);
                    let b = limbs_from_be(&base.to_be_bytes(), m.limbs()).unwrap();
                    let got = m.pow_odd(&b, e);
                    let got = limbs_to_be(&got, 8).unwrap();
                    assert_eq!(u64::from_be_bytes(got.try_into().unwrap()), want, "{base}^{e} mod {n}");
                }
            }
        }
    }

    #[test]
    fn even_and_trivial_moduli_are_refused() {
        assert!(Modulus::new(&[4]).is_none());
        assert!(Modulus::new(&[1]).is_none());
        assert!(Modulus::new(&[]).is_none());
    }

    fn strip(b: &[u8]) -> Vec<u8> {
        b.iter().copied().skip_while(|&x| x == 0).collect()
    }

    fn powmod(b: u64, mut e: u64, n: u64) -> u64 {
        let (mut r, mut b, n) = (1u128, u128::from(b) % u128::from(n), u128::from(n));
        while e > 0 {
            if e & 1 == 1 {
                r = r * b % n;
            }
            b = b * b % n;
            e >>= 1;
        }
        (r % n) as u64
    }
}
