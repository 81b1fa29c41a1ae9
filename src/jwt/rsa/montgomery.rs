//! Montgomery arithmetic modulo an RSA public modulus, written by hand for wasm32.
//!
//! Why not a crate: `rsa` 0.9 (num-bigint-dig) uses 64-bit digits whose 64x64->128 products
//! wasm32 has to emulate, and it recomputes the Montgomery constants on every verification; in
//! V8 that is 10-20x slower than this file. Here every product is one native 32x32->64 multiply
//! of two values below 2^28, and the per-key constants (`n0_inv`, `R^2 mod n`) are computed once,
//! when the key is built.
//!
//! Limbs are 28 bits wide, held in `u32` (operands) and `u64` (accumulators). A product is below
//! 2^56, so a `u64` takes 2^8 of them before it can overflow: inner loops only multiply and add,
//! with no carry chain between limbs. Two shapes of the same multiplication:
//!
//! - `mont_mul_rows`, scalar, operand scanning: row i adds a * b[i] + m * n to a double-width
//!   accumulator, carries propagated every `CARRY_EVERY` rows. Natively and in wasm without
//!   simd128. (In V8, ~10% faster than a fused 32-bit CIOS loop.)
//! - `mont_mul_cols`, product scanning, for wasm with simd128 (the filter's build): each result
//!   limb is two dot products of contiguous limbs, four products per `i64x2.extmul` low/high
//!   pair, summed in registers; squarings (16 of the 17 products for e = 65537) compute each
//!   cross product once. In V8 (node 20) an RSA-2048 verification takes ~0.8-0.85x the time of
//!   `mont_mul_rows`, RSA-4096 ~0.65-0.7x: per product the extmul lanes cost about what scalar
//!   multiplies do (V8 spends two shuffles per extmul), so the gain is mostly the squaring's
//!   quarter fewer products. Native tests run the same algorithm on plain-integer lanes
//!   (`portable`).
//!
//! Only public data passes through here (modulus, exponent, signature), so nothing is
//! constant-time. Numbers are little-endian limb vectors; `R = 2^(28*k)` for a `k`-limb modulus.

/// Bits per limb.
const W: u32 = 28;
const MASK: u64 = (1 << W) - 1;
/// Rows (two products per accumulator limb each) between carry propagations: after one, a limb
/// is below 2^28, and 2 * 120 products below 2^56 plus one carry below 2^36 stay below 2^64.
const CARRY_EVERY: usize = 120;
/// Largest modulus `Modulus::new` takes, in limbs (RSA keys stop at 4096 bits, 147 limbs). In
/// `mont_mul_cols` a lane of a column's sum takes ceil(k / 2) products below 2^56 of a * b and as
/// many of n * m (a square: ceil(k / 4) below 2^57 instead of the a * b ones): below 2^64 for
/// k <= 256.
const MAX_LIMBS: usize = 256;

/// The modulus and the constants Montgomery multiplication needs, fixed per key.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Modulus {
    /// n in 28-bit limbs; the top limb is non-zero.
    n: Vec<u32>,
    /// -n^-1 mod 2^28.
    n0_inv: u32,
    /// R^2 mod n: multiplying by it moves a number into Montgomery form.
    rr: Vec<u32>,
    /// n followed by `PAD` zero limbs, for `mont_mul_cols`.
    n_padded: Vec<u32>,
}

/// 28-bit limbs of a big-endian byte string, zero-extended to `limbs` limbs; `None` when the
/// value does not fit.
// No overflow: `acc` holds fewer than W + 8 = 36 bits, `acc_bits` counts them.
#[allow(clippy::arithmetic_side_effects)]
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
// No overflow: `acc` holds fewer than W + 8 = 36 bits, `acc_bits` counts them.
#[allow(clippy::arithmetic_side_effects)]
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
// No overflow: callers propagate before a limb reaches 2^63 (`CARRY_EVERY`, `MAX_LIMBS`); a
// carry is below 2^36, and the top limb receives only what the full value leaves there.
#[allow(clippy::arithmetic_side_effects)]
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

/// The low 28 bits of the sum of `xs` and the rest of it (sum >> 28), exactly: the sum itself
/// may not fit in a u64.
// No overflow: N <= 4 here, so the low parts sum below 2^30 and the high parts below 2^38.
#[allow(clippy::arithmetic_side_effects)]
fn split_sum<const N: usize>(xs: [u64; N]) -> (u64, u64) {
    let low: u64 = xs.iter().map(|x| x & MASK).sum();
    let high: u64 = xs.iter().map(|x| x >> W).sum();
    (low & MASK, high + (low >> W))
}

/// Zero limbs after each operand of `mont_mul_cols`, so that the last quad of a column can run
/// past the column's range: there it multiplies zeros.
const PAD: usize = 3;

/// `x` followed by `PAD` zero limbs.
fn padded(x: &[u32]) -> Vec<u32> {
    let mut out = x.to_vec();
    out.resize(x.len().saturating_add(PAD), 0);
    out
}

#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
use portable::{mac, Pair, Quad};
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
use simd::{mac, Pair, Quad};

/// The lanes of `mont_mul_cols` as wasm simd128 vectors.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd {
    use core::arch::wasm32::{
        u32x4, u64x2, u64x2_add, u64x2_extmul_high_u32x4, u64x2_extmul_low_u32x4, u64x2_extract_lane, v128, v128_and,
        v128_load,
    };

    /// Four u32 lanes.
    #[derive(Clone, Copy)]
    pub(super) struct Quad(v128);

    /// Two u64 lanes.
    #[derive(Clone, Copy)]
    pub(super) struct Pair(v128);

    impl Quad {
        #[inline(always)]
        pub(super) fn load(x: &[u32; 4]) -> Quad {
            // SAFETY: `x` is a live reference to 16 bytes; v128.load has no alignment requirement.
            // (Building the vector from four scalars instead gets compiled to lane inserts.)
            Quad(unsafe { v128_load(x.as_ptr().cast()) })
        }

        /// Lanes from `lanes` on zeroed.
        #[inline(always)]
        pub(super) fn keep(self, lanes: usize) -> Quad {
            let mask = match lanes {
                0 => u32x4(0, 0, 0, 0),
                1 => u32x4(!0, 0, 0, 0),
                2 => u32x4(!0, !0, 0, 0),
                3 => u32x4(!0, !0, !0, 0),
                _ => return self,
            };
            Quad(v128_and(self.0, mask))
        }
    }

    impl Pair {
        pub(super) const ZERO: Pair = Pair(u64x2(0, 0));

        #[inline(always)]
        pub(super) fn lanes(self) -> [u64; 2] {
            [u64x2_extract_lane::<0>(self.0), u64x2_extract_lane::<1>(self.0)]
        }
    }

    /// acc + (x0 * y0 + x2 * y2, x1 * y1 + x3 * y3), u32 x u32 -> u64 products.
    #[inline(always)]
    pub(super) fn mac(acc: Pair, x: Quad, y: Quad) -> Pair {
        let products = u64x2_add(u64x2_extmul_low_u32x4(x.0, y.0), u64x2_extmul_high_u32x4(x.0, y.0));
        Pair(u64x2_add(acc.0, products))
    }
}

/// The lanes of `mont_mul_cols` in plain integers: the same arithmetic, so that native tests run
/// the algorithm the wasm build runs with simd128 (and their overflow checks guard its bounds).
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
mod portable {
    #[derive(Clone, Copy)]
    pub(super) struct Quad([u32; 4]);

    #[derive(Clone, Copy)]
    pub(super) struct Pair([u64; 2]);

    impl Quad {
        pub(super) fn load(x: &[u32; 4]) -> Quad {
            Quad(*x)
        }

        pub(super) fn keep(self, lanes: usize) -> Quad {
            let mut x = self.0;
            x.iter_mut().skip(lanes).for_each(|l| *l = 0);
            Quad(x)
        }
    }

    impl Pair {
        pub(super) const ZERO: Pair = Pair([0, 0]);

        pub(super) fn lanes(self) -> [u64; 2] {
            self.0
        }
    }

    // No overflow: a lane sums at most ceil(k / 2) products below 2^56 of each operand pair, below
    // 2^64 for k <= MAX_LIMBS (see there; the native tests' overflow checks guard it).
    #[allow(clippy::arithmetic_side_effects)]
    pub(super) fn mac(acc: Pair, x: Quad, y: Quad) -> Pair {
        let mul = |p: u32, q: u32| u64::from(p) * u64::from(q);
        let ([x0, x1, x2, x3], [y0, y1, y2, y3], [a0, a1]) = (x.0, y.0, acc.0);
        Pair([a0 + mul(x0, y0) + mul(x2, y2), a1 + mul(x1, y1) + mul(x3, y3)])
    }
}

/// acc + x . y + z . w over quads (x, y equally many, z, w equally many), in two lanes.
#[inline(always)]
fn dot2(mut acc: Pair, x: &[[u32; 4]], y: &[[u32; 4]], z: &[[u32; 4]], w: &[[u32; 4]]) -> Pair {
    for (x, y) in x.iter().zip(y) {
        acc = mac(acc, Quad::load(x), Quad::load(y));
    }
    for (z, w) in z.iter().zip(w) {
        acc = mac(acc, Quad::load(z), Quad::load(w));
    }
    acc
}

/// The first `quads` quads of `x` from limb `at` (`None` past the end).
#[inline(always)]
fn quads(x: &[u32], at: usize, quads: usize) -> Option<&[[u32; 4]]> {
    Some(x.get(at..at.checked_add(quads.checked_mul(4)?)?)?.as_chunks::<4>().0)
}

impl Modulus {
    /// `n` as big-endian bytes without leading zeros; `None` unless n is odd and > 1 (even
    /// moduli have no Montgomery form, and are not RSA moduli anyway).
    // No overflow: past the MAX_LIMBS check every size here is at most 28 * 256 + 1, and bits >= 1.
    #[allow(clippy::arithmetic_side_effects)]
    pub(crate) fn new(n_be: &[u8]) -> Option<Modulus> {
        let bits = match n_be.first() {
            Some(&top) if top != 0 => n_be.len().checked_mul(8)?.checked_sub(top.leading_zeros() as usize)?,
            _ => return None,
        };
        let k = bits.div_ceil(W as usize);
        if k > MAX_LIMBS {
            return None;
        }
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
        let n_padded = padded(&n);
        let mut m = Modulus { n, n0_inv, rr: Vec::new(), n_padded };
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

    /// out = a * b * R^-1 mod n, for a, b < n (all `limbs()` long). `scratch` is working space,
    /// kept by the caller so that an exponentiation allocates it once.
    fn mont_mul(&self, out: &mut [u32], a: &[u32], b: &[u32], scratch: &mut Vec<u32>) {
        if cfg!(all(target_arch = "wasm32", target_feature = "simd128")) {
            self.mont_mul_cols(out, a, Some(b), scratch);
        } else {
            self.mont_mul_rows(out, a, b);
        }
    }

    /// out = a * a * R^-1 mod n, for a < n.
    fn mont_sqr(&self, out: &mut [u32], a: &[u32], scratch: &mut Vec<u32>) {
        if cfg!(all(target_arch = "wasm32", target_feature = "simd128")) {
            self.mont_mul_cols(out, a, None, scratch);
        } else {
            self.mont_mul_rows(out, a, a);
        }
    }

    /// `mont_mul` one row at a time in scalar `u64`s. Operand-scanning Montgomery multiplication
    /// into a double-width accumulator `t`: row i adds a * b[i] and m * n at limb i, with m chosen
    /// to clear limb i, whose carry then moves up one limb. The result is the upper half.
    // No overflow: limbs below 2^28, products below 2^56; a limb takes 2 products per row for
    // CARRY_EVERY rows plus a carry below 2^36 before `propagate` (see CARRY_EVERY); i < k.
    #[allow(clippy::arithmetic_side_effects)]
    fn mont_mul_rows(&self, out: &mut [u32], a: &[u32], b: &[u32]) {
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

    /// `mont_mul` (`b` given) or `mont_sqr` (`b` None) one result limb at a time, in the shape of
    /// wasm simd128: product-scanning Montgomery multiplication (Koc et al.'s FIPS). Column x
    /// sums a[j] * b[x-j] and n[j] * m[x-j] over j; for x < k, m[x] is then chosen to clear it,
    /// and for x >= k it is result limb x - k; its carry moves to column x + 1. With b and m
    /// stored reversed, both sums are dot products of contiguous limbs, four per `i64x2.extmul`
    /// pair, summed in one register. For a square, the products a[j] * 2a[x-j] with j < x - j,
    /// plus a[x/2]^2: a quarter fewer products in all. Most of the time left at 2048 bits is not
    /// the products but the ~100 scalar instructions each column costs around its loops (in V8,
    /// with the loops emptied a verification still takes ~40% of its time); pairing columns to
    /// share a loop saved only ~2%.
    // No overflow: lane sums as bounded at MAX_LIMBS; indexes and lengths below 3 (k + PAD) with
    // k <= MAX_LIMBS; x <= 2k - 2 and lo <= x, so k - 1 + lo - x and hi + 1 - lo are >= 0.
    #[allow(clippy::arithmetic_side_effects)]
    fn mont_mul_cols(&self, out: &mut [u32], a: &[u32], b: Option<&[u32]>, scratch: &mut Vec<u32>) {
        let n = self.n.as_slice();
        let k = n.len();
        // a padded, b reversed and padded, m reversed (m[i] at k - 1 - i) and padded. m is still
        // zero where it is not yet known, so the sum over n[j] * m[x-j] can include j = 0 (m[x])
        // for the column that computes m[x].
        scratch.clear();
        scratch.resize(3 * (k + PAD), 0);
        let Some((a_fwd, rest)) = scratch.split_at_mut_checked(k + PAD) else {
            return;
        };
        let Some((b_rev, m_rev)) = rest.split_at_mut_checked(k + PAD) else {
            return;
        };
        a_fwd.iter_mut().zip(a).for_each(|(d, &s)| *d = s);
        // For a square, 2a reversed: each cross product is then taken once, already doubled.
        let double = u32::from(b.is_none());
        b_rev.iter_mut().zip(b.unwrap_or(a).iter().rev()).for_each(|(d, &s)| *d = s << double);
        let (n0, n0_inv) = (u64::from(n.first().copied().unwrap_or(0)), u64::from(self.n0_inv));
        let mut carry = 0u64;
        for x in 0..2 * k - 1 {
            // j runs over lo..=hi; b[x-j] and m[x-j] are at rev + (j - lo) reversed.
            let (lo, hi) = (x.saturating_sub(k - 1), x.min(k - 1));
            let rev = k - 1 + lo - x;
            let q = (hi + 1 - lo).div_ceil(4);
            let (Some(n_q), Some(m_q)) = (quads(&self.n_padded, lo, q), quads(m_rev, rev, q)) else {
                return;
            };
            let (acc, diag) = match b {
                Some(_) => {
                    let (Some(a_q), Some(b_q)) = (quads(a_fwd, lo, q), quads(b_rev, rev, q)) else {
                        return;
                    };
                    (dot2(Pair::ZERO, a_q, b_q, n_q, m_q), 0)
                }
                None => {
                    // The products a[j] * 2a[x-j] with j < x - j, no more: past them the quads
                    // do not multiply zeros. They fill `cross` lanes; the last quad is masked.
                    let cross = x.div_ceil(2).saturating_sub(lo);
                    let c = cross / 4;
                    let (Some(a_q), Some(b_q)) = (quads(a_fwd, lo, c), quads(b_rev, rev, c)) else {
                        return;
                    };
                    let mut acc = dot2(Pair::ZERO, a_q, b_q, n_q, m_q);
                    let (Some(a_part), Some(b_part)) = (quads(a_fwd, lo + 4 * c, 1), quads(b_rev, rev + 4 * c, 1))
                    else {
                        return;
                    };
                    if let ([a_part], [b_part], 1..) = (a_part, b_part, cross % 4) {
                        acc = mac(acc, Quad::load(a_part).keep(cross % 4), Quad::load(b_part));
                    }
                    let diag = match x % 2 {
                        0 => a.get(x / 2).map_or(0, |&d| u64::from(d) * u64::from(d)),
                        _ => 0,
                    };
                    (acc, diag)
                }
            };
            let [l0, l1] = acc.lanes();
            let (low, high) = split_sum([l0, l1, diag, carry]);
            if x < k {
                let m = (low * n0_inv) & MASK;
                if let Some(slot) = m_rev.get_mut(k - 1 - x) {
                    *slot = m as u32;
                }
                // low + n0 * m is a multiple of 2^28.
                carry = high + ((low + n0 * m) >> W);
            } else {
                if let Some(o) = out.get_mut(x - k) {
                    *o = low as u32;
                }
                carry = high;
            }
        }
        // Column 2k - 1 is the carry alone; the result is below 2n, so what is above it is 0 or 1.
        if let Some(o) = out.get_mut(k - 1) {
            *o = (carry & MASK) as u32;
        }
        if carry >> W != 0 || geq(out, n) {
            sub_in_place(out, n);
        }
    }

    /// The Montgomery form of x^e for `base_m` the Montgomery form of x, e >= 1.
    fn pow_mont(&self, base_m: &[u32], e: u64) -> Vec<u32> {
        let mut acc = base_m.to_vec();
        let mut tmp = vec![0u32; self.n.len()];
        let mut scratch = Vec::new();
        // The bits below the top one (none for e <= 1).
        for bit in (0..e.checked_ilog2().unwrap_or(0)).rev() {
            self.mont_sqr(&mut tmp, &acc, &mut scratch);
            if (e >> bit) & 1 == 1 {
                self.mont_mul(&mut acc, &tmp, base_m, &mut scratch);
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
        let mut scratch = Vec::new();
        self.mont_mul(&mut base_m, base, &self.rr, &mut scratch);
        let mut acc = base_m.clone();
        let mut tmp = vec![0u32; k];
        let top_bit = e.checked_ilog2().unwrap_or(0);
        for bit in (1..top_bit).rev() {
            self.mont_sqr(&mut tmp, &acc, &mut scratch);
            if (e >> bit) & 1 == 1 {
                self.mont_mul(&mut acc, &tmp, &base_m, &mut scratch);
            } else {
                std::mem::swap(&mut acc, &mut tmp);
            }
        }
        // Bit 0 is set (e is odd).
        self.mont_sqr(&mut tmp, &acc, &mut scratch);
        self.mont_mul(&mut acc, &tmp, base, &mut scratch);
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
    fn columns_and_rows_agree() {
        // The column (simd-shaped) multiplication and squaring against the row one, over sizes of both
        // parities up to the largest RSA modulus, with random operands and the largest ones
        // (n - 1, and all-ones limbs, which give the largest lane sums).
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for bytes in [1usize, 4, 7, 8, 15, 64, 128, 255, 256, 257, 384, 511, 512, 896] {
            for _ in 0..4 {
                let mut n_be: Vec<u8> = (0..bytes).map(|_| next() as u8).collect();
                n_be[0] |= 0x80;
                n_be[bytes - 1] |= 1;
                let all_ones = next() % 2 == 0 && bytes > 1;
                if all_ones {
                    n_be.iter_mut().for_each(|b| *b = 0xff);
                }
                let Some(m) = Modulus::new(&n_be) else { continue };
                let k = m.limbs();
                let mut below_n = || {
                    let mut v: Vec<u32> = (0..k).map(|_| (next() & MASK) as u32).collect();
                    v[k - 1] %= m.n[k - 1];
                    v
                };
                let (r1, r2) = (below_n(), below_n());
                let mut n_minus_1 = m.n.clone();
                n_minus_1[0] -= 1;
                let operands = [r1, r2, n_minus_1, m.rr.clone()];
                for a in &operands {
                    for b in &operands {
                        let (mut rows, mut cols) = (vec![0u32; k], vec![0u32; k]);
                        m.mont_mul_rows(&mut rows, a, b);
                        m.mont_mul_cols(&mut cols, a, Some(b), &mut Vec::new());
                        assert_eq!(rows, cols, "{bytes} bytes");
                        assert!(m.is_reduced(&cols));
                    }
                    let (mut rows, mut square) = (vec![0u32; k], vec![0u32; k]);
                    m.mont_mul_rows(&mut rows, a, a);
                    m.mont_mul_cols(&mut square, a, None, &mut Vec::new());
                    assert_eq!(rows, square, "{bytes} bytes, square");
                }
            }
        }
    }

    #[test]
    fn even_and_trivial_moduli_are_refused() {
        assert!(Modulus::new(&[4]).is_none());
        assert!(Modulus::new(&[1]).is_none());
        assert!(Modulus::new(&[]).is_none());
        // Above MAX_LIMBS (256 limbs of 28 bits): refused rather than risking lane overflow.
        assert!(Modulus::new(&[0xff; 896]).is_some());
        assert!(Modulus::new(&[0xff; 897]).is_none());
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
