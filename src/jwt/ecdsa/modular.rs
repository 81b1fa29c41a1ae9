//! Arithmetic modulo an odd L-limb modulus in Montgomery form: one implementation for the field
//! and the group order of every curve here.
//!
//! Numbers are L little-endian 32-bit limbs (32x32->64 multiplies are native in wasm; 64x64->128
//! is emulated there). Residues are always fully reduced, so equal limbs mean equal residues.
//! Nothing is constant time: verification only ever sees public data.

/// An L-limb number.
pub(super) type Limbs<const L: usize> = [u32; L];

/// An odd modulus with its Montgomery constants (R = 2^(32 L)).
#[derive(Debug)]
pub(super) struct Modulus<const L: usize> {
    m: Limbs<L>,
    /// -m^-1 mod 2^32.
    m0inv: u32,
    /// R^2 mod m: `mul(a, r2)` puts a into Montgomery form.
    r2: Limbs<L>,
    /// R mod m: one in Montgomery form.
    one: Limbs<L>,
}

impl<const L: usize> Modulus<L> {
    /// The constants for an odd `m` with its top limb nonzero. Only ever evaluated in a `const`
    /// or `static` initialiser, so an index out of range or an overflow is a compile error, never a
    /// panic at run time (const fns cannot use iterators, hence the indexing).
    #[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
    pub(super) const fn new(m: Limbs<L>) -> Self {
        // Newton's iteration doubles the correct low bits of m^-1 mod 2^32 each step (1 -> 32).
        let mut inv: u32 = 1;
        let mut k = 0;
        while k < 5 {
            inv = inv.wrapping_mul(2u32.wrapping_sub(m[0].wrapping_mul(inv)));
            k += 1;
        }
        // 2^(32 L) mod m and 2^(64 L) mod m by doubling 1 modulo m.
        let mut x = [0u32; L];
        x[0] = 1;
        let mut one = x;
        let mut i = 0;
        while i < 64 * L {
            x = const_double_mod(&x, &m);
            i += 1;
            if i == 32 * L {
                one = x;
            }
        }
        Modulus { m, m0inv: inv.wrapping_neg(), r2: x, one }
    }

    /// The modulus.
    pub(super) fn value(&self) -> &Limbs<L> {
        &self.m
    }

    /// The bit length of the modulus.
    // No overflow: zeros + top <= 32 L.
    #[allow(clippy::arithmetic_side_effects)]
    pub(super) fn bits(&self) -> usize {
        let zeros: u32 = self.m.iter().rev().take_while(|&&w| w == 0).count() as u32 * 32;
        let top = self.m.iter().rev().find(|&&w| w != 0).map_or(32, |w| w.leading_zeros());
        32 * L - (zeros + top) as usize
    }

    /// One, in Montgomery form.
    pub(super) fn one(&self) -> Limbs<L> {
        self.one
    }

    /// `a` (any integer below m) in Montgomery form; `None` if a >= m.
    pub(super) fn to_mont(&self, a: &Limbs<L>) -> Option<Limbs<L>> {
        lt(a, &self.m).then(|| self.mul(a, &self.r2))
    }

    /// `a R mod m` back to a plain integer (verification never needs it: its results are plain).
    #[cfg(test)]
    pub(super) fn to_plain(&self, a: &Limbs<L>) -> Limbs<L> {
        let mut one = [0u32; L];
        if let Some(w) = one.first_mut() {
            *w = 1;
        }
        self.mul(a, &one)
    }

    /// `a b R^-1 mod m` for `a, b < m` (CIOS Montgomery multiplication).
    // No overflow: each s = t + a b + carry <= (2^32 - 1) + (2^32 - 1)^2 + (2^32 - 1) = 2^64 - 1, and
    // hi + top stays 0 or 1 as the running value is below 2m.
    #[allow(clippy::arithmetic_side_effects)]
    pub(super) fn mul(&self, a: &Limbs<L>, b: &Limbs<L>) -> Limbs<L> {
        // The running value is t + hi 2^(32 L), always below 2m.
        let mut t = [0u32; L];
        let mut hi = 0u32;
        for &bi in b {
            let mut carry = 0u64;
            for (tj, &aj) in t.iter_mut().zip(a) {
                let s = u64::from(*tj) + u64::from(aj) * u64::from(bi) + carry;
                *tj = s as u32;
                carry = s >> 32;
            }
            let s = u64::from(hi) + carry;
            hi = s as u32;
            let top = (s >> 32) as u32;

            // Add q m with q chosen so that the low word becomes zero, then drop that word.
            let q = t.first().map_or(0, |&t0| t0.wrapping_mul(self.m0inv));
            let mut carry = 0u64;
            for (tj, &mj) in t.iter_mut().zip(&self.m) {
                let s = u64::from(*tj) + u64::from(q) * u64::from(mj) + carry;
                *tj = s as u32;
                carry = s >> 32;
            }
            let s = u64::from(hi) + carry;
            t.copy_within(1.., 0);
            if let Some(last) = t.last_mut() {
                *last = s as u32;
            }
            hi = top + (s >> 32) as u32;
        }
        if hi != 0 || !lt(&t, &self.m) {
            sub(&t, &self.m).0
        } else {
            t
        }
    }

    pub(super) fn square(&self, a: &Limbs<L>) -> Limbs<L> {
        self.mul(a, a)
    }

    /// `a + b mod m` for `a, b < m`.
    pub(super) fn add(&self, a: &Limbs<L>, b: &Limbs<L>) -> Limbs<L> {
        let (s, carry) = add(a, b);
        if carry != 0 || !lt(&s, &self.m) {
            sub(&s, &self.m).0
        } else {
            s
        }
    }

    /// `a - b mod m` for `a, b < m`.
    pub(super) fn sub(&self, a: &Limbs<L>, b: &Limbs<L>) -> Limbs<L> {
        let (d, borrow) = sub(a, b);
        if borrow != 0 {
            add(&d, &self.m).0
        } else {
            d
        }
    }

    /// `a^-1` in Montgomery form for `a` in Montgomery form; `None` for zero.
    pub(super) fn invert(&self, a: &Limbs<L>) -> Option<Limbs<L>> {
        // The plain inverse of a R is a^-1 R^-1; two multiplications by R^2 make it a^-1 R.
        let plain = self.invert_plain(a)?;
        Some(self.mul(&self.mul(&plain, &self.r2), &self.r2))
    }

    /// `a^-1 mod m` for an odd prime m and `0 < a < m` by the binary extended Euclidean
    /// algorithm (Guide to Elliptic Curve Cryptography, Alg. 2.22, shifting up to 31 bits at a
    /// time; variable time, about as costly as 30 multiplications where Fermat's a^(m-2) takes
    /// bits(m) of them).
    fn invert_plain(&self, a: &Limbs<L>) -> Option<Limbs<L>> {
        if is_zero(a) || !lt(a, &self.m) {
            return None;
        }
        let mut one = [0u32; L];
        if let Some(w) = one.first_mut() {
            *w = 1;
        }
        let (mut u, mut v) = (*a, self.m);
        let (mut x1, mut x2) = (one, [0u32; L]);
        // Invariants: x1 a = u and x2 a = v (mod m); gcd(u, v) = 1; u, v > 0.
        loop {
            if u == one {
                return Some(x1);
            }
            if v == one {
                return Some(x2);
            }
            if is_zero(&u) || is_zero(&v) {
                return None; // only when gcd(a, m) != 1, impossible for a prime m
            }
            while let Some(k) = u.first().map(|w| w.trailing_zeros().min(31)).filter(|&k| k > 0) {
                u = shr(&u, k);
                x1 = self.halve(&x1, k);
            }
            while let Some(k) = v.first().map(|w| w.trailing_zeros().min(31)).filter(|&k| k > 0) {
                v = shr(&v, k);
                x2 = self.halve(&x2, k);
            }
            if lt(&u, &v) {
                v = sub(&v, &u).0;
                x2 = self.sub(&x2, &x1);
            } else {
                u = sub(&u, &v).0;
                x1 = self.sub(&x1, &x2);
            }
        }
    }

    /// `x / 2^k mod m` for `x < m` and `1 <= k <= 31`: adds the multiple of m that clears the
    /// low k bits, then shifts.
    // No overflow: 1 <= k <= 31, so t < 2^31 and s = x + t m + carry < 2^32 + 2^63 + 2^32.
    #[allow(clippy::arithmetic_side_effects)]
    fn halve(&self, x: &Limbs<L>, k: u32) -> Limbs<L> {
        let t = u64::from(x.first().map_or(0, |&x0| x0.wrapping_mul(self.m0inv)) & ((1u32 << k) - 1));
        let mut y = [0u32; L];
        let mut carry = 0u64;
        for ((yi, &xi), &mi) in y.iter_mut().zip(x).zip(&self.m) {
            let s = u64::from(xi) + t * u64::from(mi) + carry;
            *yi = s as u32;
            carry = s >> 32;
        }
        // (x + t m) / 2^k < 2m
        let mut r = shr(&y, k);
        if let Some(last) = r.last_mut() {
            *last |= (carry as u32) << (32 - k);
        }
        if lt(&r, &self.m) {
            r
        } else {
            sub(&r, &self.m).0
        }
    }
}

/// `a >> k` for `1 <= k <= 31`.
// No overflow: 1 <= k <= 31, so 32 - k is a valid shift.
#[allow(clippy::arithmetic_side_effects)]
fn shr<const L: usize>(a: &Limbs<L>, k: u32) -> Limbs<L> {
    let mut r = [0u32; L];
    let next = a.iter().skip(1).copied().chain(std::iter::once(0));
    for ((ri, &ai), hi) in r.iter_mut().zip(a).zip(next) {
        *ri = (ai >> k) | (hi << (32 - k));
    }
    r
}

/// `2x mod m` for `x < m`, at compile time (only from `Modulus::new`: an index out of range or an
/// overflow is a compile error).
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
const fn const_double_mod<const L: usize>(x: &Limbs<L>, m: &Limbs<L>) -> Limbs<L> {
    let mut d = [0u32; L];
    let mut carry = 0u32;
    let mut i = 0;
    while i < L {
        d[i] = (x[i] << 1) | carry;
        carry = x[i] >> 31;
        i += 1;
    }
    // Subtract m if 2x >= m (carry out, or d >= m).
    let mut ge = carry != 0;
    if !ge {
        ge = true; // equal counts as >=
        let mut j = L;
        while j > 0 {
            j -= 1;
            if d[j] != m[j] {
                ge = d[j] > m[j];
                break;
            }
        }
    }
    if ge {
        let mut borrow = 0u64;
        let mut k = 0;
        while k < L {
            let s = (d[k] as u64).wrapping_sub(m[k] as u64).wrapping_sub(borrow);
            d[k] = s as u32;
            borrow = (s >> 63) & 1;
            k += 1;
        }
    }
    d
}

/// `a + b` and the carry out.
// No overflow: s <= 2 (2^32 - 1) + 1.
#[allow(clippy::arithmetic_side_effects)]
pub(super) fn add<const L: usize>(a: &Limbs<L>, b: &Limbs<L>) -> (Limbs<L>, u32) {
    let mut r = [0u32; L];
    let mut carry = 0u64;
    for ((ri, &ai), &bi) in r.iter_mut().zip(a).zip(b) {
        let s = u64::from(ai) + u64::from(bi) + carry;
        *ri = s as u32;
        carry = s >> 32;
    }
    (r, carry as u32)
}

/// `a - b` and the borrow out.
pub(super) fn sub<const L: usize>(a: &Limbs<L>, b: &Limbs<L>) -> (Limbs<L>, u32) {
    let mut r = [0u32; L];
    let mut borrow = 0u64;
    for ((ri, &ai), &bi) in r.iter_mut().zip(a).zip(b) {
        let s = u64::from(ai).wrapping_sub(u64::from(bi)).wrapping_sub(borrow);
        *ri = s as u32;
        borrow = (s >> 63) & 1;
    }
    (r, borrow as u32)
}

pub(super) fn lt<const L: usize>(a: &Limbs<L>, b: &Limbs<L>) -> bool {
    sub(a, b).1 != 0
}

pub(super) fn is_zero<const L: usize>(a: &Limbs<L>) -> bool {
    a.iter().all(|&w| w == 0)
}

/// Big-endian bytes to limbs; `None` if they do not fit L limbs.
pub(super) fn from_be_bytes<const L: usize>(bytes: &[u8]) -> Option<Limbs<L>> {
    if bytes.len() > L.saturating_mul(4) {
        return None;
    }
    let mut r = [0u32; L];
    for (ri, chunk) in r.iter_mut().zip(bytes.rchunks(4)) {
        *ri = chunk.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b));
    }
    Some(r)
}

/// Limbs to `len` big-endian bytes (the low `len` bytes of the number).
pub(super) fn to_be_bytes<const L: usize>(a: &Limbs<L>, len: usize) -> Vec<u8> {
    let mut le: Vec<u8> = a.iter().flat_map(|w| w.to_le_bytes()).collect();
    le.resize(len, 0);
    le.reverse();
    le
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2^127 - 1, prime.
    const M127: Modulus<4> = Modulus::new([0xffff_ffff, 0xffff_ffff, 0xffff_ffff, 0x7fff_ffff]);
    /// 2^64 - 59, prime.
    const M64: Modulus<2> = Modulus::new([0xffff_ffc5, 0xffff_ffff]);

    fn n64(x: u64) -> Limbs<2> {
        [x as u32, (x >> 32) as u32]
    }

    fn u64_of(l: Limbs<2>) -> u64 {
        u64::from(l[0]) | (u64::from(l[1]) << 32)
    }

    const P64: u128 = 0xffff_ffff_ffff_ffc5;

    #[test]
    fn constants() {
        assert_eq!(M64.m[0].wrapping_mul(M64.m0inv), u32::MAX);
        assert_eq!(M127.m[0].wrapping_mul(M127.m0inv), u32::MAX);
        // R mod p and R^2 mod p for R = 2^64.
        assert_eq!(u128::from(u64_of(M64.one)), (1u128 << 64) % P64);
        let r = (1u128 << 64) % P64;
        assert_eq!(u128::from(u64_of(M64.r2)), r * r % P64);
        // For 2^127 - 1, R = 2^128 = 2 mod m.
        assert_eq!(M127.one, [2, 0, 0, 0]);
        assert_eq!(M127.r2, [4, 0, 0, 0]);
    }

    #[test]
    fn arithmetic_matches_u128() {
        let samples = [0u64, 1, 2, 3, 59, 0x1234_5678_9abc_def0, 0xffff_ffff_ffff_ffc4, 0x8000_0000_0000_0000];
        for &a in &samples {
            for &b in &samples {
                let (a, b) = (u128::from(a) % P64, u128::from(b) % P64);
                let (am, bm) = (M64.to_mont(&n64(a as u64)).unwrap(), M64.to_mont(&n64(b as u64)).unwrap());
                let back = |x: Limbs<2>| u128::from(u64_of(M64.to_plain(&x)));
                assert_eq!(back(M64.mul(&am, &bm)), a * b % P64, "{a} * {b}");
                assert_eq!(back(M64.add(&am, &bm)), (a + b) % P64, "{a} + {b}");
                assert_eq!(back(M64.sub(&am, &bm)), (a + P64 - b) % P64, "{a} - {b}");
                if a != 0 {
                    let inv = M64.invert(&am).unwrap();
                    assert_eq!(back(M64.mul(&inv, &am)), 1, "{a}^-1");
                }
            }
        }
        assert!(M64.invert(&[0, 0]).is_none());
        assert!(M64.to_mont(&n64(P64 as u64)).is_none());
    }

    #[test]
    fn bytes_round_trip() {
        let l: Limbs<4> = from_be_bytes(&[1, 2, 3, 4, 5, 6, 7, 8, 9]).unwrap();
        assert_eq!(l, [0x0607_0809, 0x0203_0405, 1, 0]);
        assert_eq!(to_be_bytes(&l, 9), vec![1, 2, 3, 4, 5, 6, 7, 8, 9]);
        assert_eq!(to_be_bytes(&l, 11), vec![0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
        assert!(from_be_bytes::<2>(&[0; 9]).is_none());
        let inv = M127.invert(&M127.one).unwrap();
        assert_eq!(inv, M127.one);
        assert_eq!((M127.bits(), M64.bits()), (127, 64));
    }
}
