//! Montgomery arithmetic modulo an RSA public modulus, written by hand for wasm32.
//!
//! Why not a crate: `rsa` 0.9 (num-bigint-dig) uses 64-bit digits whose 64x64->128 products
//! wasm32 has to emulate, and it recomputes the Montgomery constants on every verification; in
//! V8 that is 10-20x slower than this file. Here every product is one native wasm `i64.mul` of
//! two values below 2^28, and the per-key constants (`n0_inv`, `R^2 mod n`) are computed once,
//! when the key is built.
//!
//! Limbs are 28 bits wide, held in `u32` (operands) and `u64` (the accumulator). A product is
//! below 2^56, so a `u64` accumulator limb takes 2^8 of them before it can overflow: the inner
//! loop only multiplies and adds, with no carry chain between limbs, and carries are propagated
//! once every `CARRY_EVERY` rows. That is fewer wasm instructions per product than 32-bit limbs
//! with a carry per product, which makes up for the (32/28)^2 = 1.3x more products: measured in
//! wasmtime and V8 (release profile, opt-level "z"), this is ~10% faster than a fused 32-bit CIOS
//! loop, and it is the shape a later `simd128` version (two `i64x2.extmul` lanes) would take.
//!
//! Only public data passes through here (modulus, exponent, signature), so nothing is
//! constant-time. Numbers are little-endian limb vectors; `R = 2^(28*k)` for a `k`-limb modulus.

/// Bits per limb.
const W: u32 = 28;
const MASK: u64 = (1 << W) - 1;
/// Rows (two products per accumulator limb each) between carry propagations: after one, a limb
/// is below 2^28, and 2 * 120 products below 2^56 plus one carry below 2^36 stay below 2^64.
const CARRY_EVERY: usize = 120;

/// The modulus and the constants Montgomery multiplication needs, fixed per key.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Modulus {
    /// n in 28-bit limbs; the top limb is non-zero.
    n: Vec<u32>,
    /// -n^-1 mod 2^28.
    n0_inv: u32,
    /// R^2 mod n: multiplying by it moves a number into Montgomery form.
    rr: Vec<u32>,
}

/// 28-bit limbs of a big-endian byte string, zero-extended to `limbs` limbs; `None` when the
/// value does not fit.
pub(crate) fn limbs_from_be(bytes: &[u8], limbs: usize) -> Option<Vec<u32>> {
    let mut out = vec![0u32; limbs];
    let mut slots = out.iter_mut();
    let (mut acc, mut acc_bits) = (0u64, 0u32);
    for &b in bytes.iter().rev() {
        acc |= u64::from(b) << acc_bits;
        acc_bits += 8;
        if acc_bits >= W {
            let limb = (acc & MASK) as u32;
            match slots.next() {
                Some(slot) => *slot = limb,
                None if limb == 0 => {}
                None => return None,
            }
            acc >>= W;
            acc_bits -= W;
        }
    }
    match slots.next() {
        Some(slot) => *slot = acc as u32,
        None if acc == 0 => {}
        None => return None,
    }
    Some(out)
}

/// Big-endian bytes of `limbs`, exactly `len` bytes long; `None` when the value does not fit.
pub(crate) fn limbs_to_be(limbs: &[u32], len: usize) -> Option<Vec<u8>> {
    let mut out = vec![0u8; len];
    let mut slots = out.iter_mut().rev();
    let (mut acc, mut acc_bits) = (0u64, 0u32);
    for &limb in limbs {
        acc |= u64::from(limb) << acc_bits;
        acc_bits += W;
        while acc_bits >= 8 {
            let byte = acc as u8;
            match slots.next() {
                Some(slot) => *slot = byte,
                None if byte == 0 => {}
                None => return None,
            }
            acc >>= 8;
            acc_bits -= 8;
        }
    }
    match slots.next() {
        Some(slot) => *slot = acc as u8,
        None if acc == 0 => {}
        None => return None,
    }
    Some(out)
}

/// a >= b for equal-length limb vectors.
fn geq(a: &[u32], b: &[u32]) -> bool {
    for (x, y) in a.iter().rev().zip(b.iter().rev()) {
        if x != y {
            return x > y;
        }
    }
    true
}

/// a -= b modulo 2^(28 * len), for equal lengths. Callers subtract only when the true difference
/// is non-negative; a limb above `a` that it may involve is cancelled by the final borrow.
fn sub_in_place(a: &mut [u32], b: &[u32]) {
    let mut borrow = 0u32;
    for (x, &y) in a.iter_mut().zip(b) {
        let d = x.wrapping_sub(y).wrapping_sub(borrow);
        borrow = d >> 31;
        *x = d & MASK as u32;
    }
}

/// a = 2a mod n, for a < n.
fn double_mod(a: &mut [u32], n: &[u32]) {
    let mut carry = 0u32;
    for x in a.iter_mut() {
        let v = (*x << 1) | carry;
        carry = v >> W;
        *x = v & MASK as u32;
    }
    if carry != 0 || geq(a, n) {
        sub_in_place(a, n);
    }
}

/// Propagates carries through `t`, leaving every limb below 2^28 but the last.
fn propagate(t: &mut [u64]) {
    let mut carry = 0u64;
    for x in t.iter_mut() {
        let v = *x + carry;
        *x = v & MASK;
        carry = v >> W;
    }
    if let Some(last) = t.last_mut() {
        *last += carry << W;
    }
}

impl Modulus {
    /// `n` as big-endian bytes without leading zeros; `None` unless n is odd and > 1 (even
    /// moduli have no Montgomery form, and are not RSA moduli anyway).
    pub(crate) fn new(n_be: &[u8]) -> Option<Modulus> {
        let bits = match n_be.first() {
            Some(&top) if top != 0 => 8 * n_be.len() - top.leading_zeros() as usize,
            _ => return None,
        };
        let k = bits.div_ceil(W as usize);
        let n = limbs_from_be(n_be, k)?;
        let n0 = *n.first()?;
        if n0 & 1 == 0 || bits < 2 {
            return None;
        }
        // Newton iteration for n0^-1 mod 2^32: x = n0 is correct mod 2^3 for odd n0, and each
        // step doubles the number of correct low bits (3, 6, 12, 24, 48).
        let mut inv = n0;
        for _ in 0..4 {
            inv = inv.wrapping_mul(2u32.wrapping_sub(n0.wrapping_mul(inv)));
        }
        let n0_inv = inv.wrapping_neg() & MASK as u32;

        // R mod n by doubling 2^(bits-1) (< n, the top bit of n being set) up to 2^(28k): at
        // most 28 doublings. One more gives 2R, the Montgomery form of 2; raising that to the
        // power 28k in Montgomery form gives the Montgomery form of 2^(28k) = R, which is
        // R * R mod n. About a dozen multiplications, once per key.
        let mut two_r = vec![0u32; k];
        if let Some(limb) = two_r.get_mut((bits - 1) / W as usize) {
            *limb = 1 << ((bits - 1) % W as usize);
        }
        for _ in (bits - 1)..=(W as usize * k) {
            double_mod(&mut two_r, &n);
        }
        let mut m = Modulus { n, n0_inv, rr: Vec::new() };
        m.rr = m.pow_mont(&two_r, (W as usize * k) as u64);
        Some(m)
    }

    /// Number of limbs a number below n has.
    pub(crate) fn limbs(&self) -> usize {
        self.n.len()
    }

    /// Whether `x` (`limbs()` limbs) is below n.
    pub(crate) fn is_reduced(&self, x: &[u32]) -> bool {
        x.len() == self.n.len() && !geq(x, &self.n)
    }

    /// out = a * b * R^-1 mod n, for a, b < n. Operand-scanning Montgomery multiplication into a
    /// double-width accumulator `t`: row i adds a * b[i] and m * n at limb i, with m chosen to
    /// clear limb i, whose carry then moves up one limb. The result is the upper half.
    fn mont_mul(&self, out: &mut [u32], a: &[u32], b: &[u32]) {
        let n = self.n.as_slice();
        let k = n.len();
        let mut t = vec![0u64; 2 * k + 1];
        let Some(&a0) = a.first() else {
            return;
        };
        for (i, &bi) in b.iter().enumerate() {
            let Some(row) = t.get_mut(i..) else {
                return;
            };
            let bi = u64::from(bi);
            let t0 = row.first().copied().unwrap_or(0);
            let m = (((t0 + u64::from(a0) * bi) & MASK) * u64::from(self.n0_inv)) & MASK;
            // Four limbs per step: at opt-level "z" LLVM does not unroll, and the loop overhead
            // (counter, three pointers, branch) would otherwise cost as much as the arithmetic.
            let (a4, a_tail) = a.as_chunks::<4>();
            let (n4, n_tail) = n.as_chunks::<4>();
            let (t4, _) = row.as_chunks_mut::<4>();
            for ((t, a), n) in t4.iter_mut().zip(a4).zip(n4) {
                let [t0, t1, t2, t3] = t;
                let [a0, a1, a2, a3] = *a;
                let [n0, n1, n2, n3] = *n;
                *t0 += u64::from(a0) * bi + u64::from(n0) * m;
                *t1 += u64::from(a1) * bi + u64::from(n1) * m;
                *t2 += u64::from(a2) * bi + u64::from(n2) * m;
                *t3 += u64::from(a3) * bi + u64::from(n3) * m;
            }
            let tail = row.iter_mut().skip(4 * a4.len());
            for ((tj, &aj), &nj) in tail.zip(a_tail).zip(n_tail) {
                *tj += u64::from(aj) * bi + u64::from(nj) * m;
            }
            // Limb i is now a multiple of 2^28: move its carry up.
            if let [ti, next, ..] = row {
                *next += *ti >> W;
                *ti = 0;
            }
            if (i + 1) % CARRY_EVERY == 0 {
                if let Some(rest) = t.get_mut(i + 1..) {
                    propagate(rest);
                }
            }
        }
        let Some(high) = t.get_mut(k..) else {
            return;
        };
        propagate(high);
        // high < 2n, so one conditional subtraction reduces it; its top limb (index k, 0 or 1)
        // counts in the comparison.
        for (o, &h) in out.iter_mut().zip(high.iter()) {
            *o = h as u32;
        }
        let top = high.last().copied().unwrap_or(0);
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

    /// base^e mod n for base < n and odd e >= 3, left-to-right binary. For e = 65537 that is
    /// exactly 16 squarings and one multiplication (plus one multiplication to enter Montgomery
    /// form); the last multiplication uses `base` itself rather than its Montgomery form, which
    /// leaves the result in normal form without a conversion step.
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
        assert_eq!(limbs, vec![0x607_0809, 0x30_4050, 0x102]);
        assert_eq!(limbs_to_be(&limbs, 9).unwrap(), bytes.to_vec());
        assert_eq!(limbs_to_be(&limbs, 12).unwrap(), [&[0u8, 0, 0][..], &bytes].concat());
        assert!(limbs_to_be(&limbs, 8).is_none());
        assert!(limbs_from_be(&bytes, 2).is_none());
        assert_eq!(limbs_from_be(&[0, 0, 0, 0, 0, 7], 1).unwrap(), vec![7]);
        assert!(limbs_from_be(&[0x10, 0, 0, 0], 1).is_none());
        assert_eq!(limbs_from_be(&[0x0f, 0xff, 0xff, 0xff], 1).unwrap(), vec![0x0fff_ffff]);
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
