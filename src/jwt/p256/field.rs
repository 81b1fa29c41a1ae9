//! Arithmetic modulo the P-256 prime p = 2^256 - 2^224 + 2^192 + 2^96 - 1.
//!
//! Elements are eight little-endian 32-bit limbs, always fully reduced (`< p`), so equality of
//! limbs is equality of field elements. Products use 32x32->64 multiplies (native in wasm) and the
//! special form of p (NIST's fast reduction, FIPS 186-4 D.2.3) instead of Montgomery.
//! Nothing here is constant time: it only ever sees public data (keys, signatures, messages).

/// The 256-bit helpers below are shared with `scalar`.
pub(super) type Limbs = [u32; 8];

pub(super) const P: Limbs = [0xffff_ffff, 0xffff_ffff, 0xffff_ffff, 0, 0, 0, 1, 0xffff_ffff];

/// An element of GF(p), fully reduced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Fe(Limbs);

impl Fe {
    pub(super) const ZERO: Fe = Fe([0; 8]);
    pub(super) const ONE: Fe = Fe([1, 0, 0, 0, 0, 0, 0, 0]);

    /// The element with these limbs, if they are below p.
    pub(super) fn from_limbs(l: Limbs) -> Option<Fe> {
        lt(&l, &P).then_some(Fe(l))
    }

    /// For constants known to be below p.
    pub(super) const fn from_limbs_unchecked(l: Limbs) -> Fe {
        Fe(l)
    }

    pub(super) fn limbs(&self) -> &Limbs {
        &self.0
    }

    pub(super) fn is_zero(&self) -> bool {
        self.0 == [0; 8]
    }

    #[inline]
    pub(super) fn add(&self, b: &Fe) -> Fe {
        let (s, carry) = add8(&self.0, &b.0);
        let (d, borrow) = sub8(&s, &P);
        if carry != 0 || borrow == 0 {
            Fe(d)
        } else {
            Fe(s)
        }
    }

    #[inline]
    pub(super) fn sub(&self, b: &Fe) -> Fe {
        let (d, borrow) = sub8(&self.0, &b.0);
        if borrow != 0 {
            Fe(add8(&d, &P).0)
        } else {
            Fe(d)
        }
    }

    #[inline]
    pub(super) fn double(&self) -> Fe {
        self.add(self)
    }

    pub(super) fn mul(&self, b: &Fe) -> Fe {
        reduce(&mul_wide(&self.0, &b.0))
    }

    pub(super) fn square(&self) -> Fe {
        reduce(&sqr_wide(&self.0))
    }

    /// The inverse, or `None` for zero.
    pub(super) fn invert(&self) -> Option<Fe> {
        inv_mod(&self.0, &P, PINV).map(Fe)
    }
}

/// Reduces a 512-bit value (16 little-endian words) modulo p. With c_i its words:
/// T = s1 + 2 s2 + 2 s3 + s4 + s5 - d1 - d2 - d3 - d4 (FIPS 186-4 D.2.3), summed word by word in
/// i64, carries propagated, the small signed carry out of 2^256 folded back with
/// 2^256 = 2^224 - 2^192 - 2^96 + 1 (mod p), and one final conditional subtraction.
#[inline(always)]
// No overflow: each column sums at most 10 words below 2^32 with coefficients up to 3, so
// |t| < 2^36, and the folded `top` is tiny.
#[allow(clippy::arithmetic_side_effects)]
fn reduce(c: &[u32; 16]) -> Fe {
    let [c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14, c15] = c.map(i64::from);
    let t = [
        c0 + c8 + c9 - c11 - c12 - c13 - c14,
        c1 + c9 + c10 - c12 - c13 - c14 - c15,
        c2 + c10 + c11 - c13 - c14 - c15,
        c3 + 2 * (c11 + c12) + c13 - c15 - c8 - c9,
        c4 + 2 * (c12 + c13) + c14 - c9 - c10,
        c5 + 2 * (c13 + c14) + c15 - c10 - c11,
        c6 + 3 * c14 + 2 * c15 + c13 - c8 - c9,
        c7 + 3 * c15 + c8 - c10 - c11 - c12 - c13,
    ];
    let mut r = [0u32; 8];
    let mut top = add_columns(&mut r, &t);
    // The value is r + top * 2^256 with a small signed top; each fold keeps it congruent and the
    // loop ends after at most two rounds (the module tests include the extreme inputs).
    while top != 0 {
        top = add_columns(&mut r, &[top, 0, 0, -top, 0, 0, -top, top]);
    }
    let (d, borrow) = sub8(&r, &P);
    if borrow != 0 {
        Fe(r)
    } else {
        Fe(d)
    }
}

/// `a < b` as unsigned 256-bit integers.
#[inline(always)]
pub(super) fn lt(a: &Limbs, b: &Limbs) -> bool {
    sub8(a, b).1 != 0
}

pub(super) fn is_zero(a: &Limbs) -> bool {
    *a == [0; 8]
}

/// Big-endian 32 bytes to limbs.
pub(super) fn from_be_bytes(b: &[u8; 32]) -> Limbs {
    let mut r = [0u32; 8];
    for (ri, ch) in r.iter_mut().zip(b.rchunks_exact(4)) {
        *ri = u32::from_be_bytes(ch.try_into().unwrap_or([0; 4]));
    }
    r
}

/// Limbs to big-endian 32 bytes.
pub(super) fn to_be_bytes(a: &Limbs) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (ch, ai) in out.rchunks_exact_mut(4).zip(a) {
        ch.copy_from_slice(&ai.to_be_bytes());
    }
    out
}

/// `a >> k` for `1 <= k <= 31`, with the word `top` above a shifted in.
// No overflow: 1 <= k <= 31, so 32 - k is a valid shift.
#[allow(clippy::arithmetic_side_effects)]
fn shr(a: &Limbs, top: u32, k: u32) -> Limbs {
    let l = 32 - k;
    [
        (a[0] >> k) | (a[1] << l),
        (a[1] >> k) | (a[2] << l),
        (a[2] >> k) | (a[3] << l),
        (a[3] >> k) | (a[4] << l),
        (a[4] >> k) | (a[5] << l),
        (a[5] >> k) | (a[6] << l),
        (a[6] >> k) | (a[7] << l),
        (a[7] >> k) | (top << l),
    ]
}

/// `x / 2^k mod m` for `x < m`, m odd, `1 <= k <= 31`, where `minv = -m^-1 mod 2^32`: adds the
/// multiple of m that clears the low k bits, then shifts.
// No overflow: 1 <= k <= 31, so t < 2^31 and s = x + t m + carry < 2^32 + 2^63 + 2^32.
#[allow(clippy::arithmetic_side_effects)]
fn halve_mod(x: &Limbs, k: u32, m: &Limbs, minv: u32) -> Limbs {
    let t = u64::from(x[0].wrapping_mul(minv) & ((1u32 << k) - 1));
    let mut y = [0u32; 8];
    let mut carry = 0u64;
    for ((yi, &xi), &mi) in y.iter_mut().zip(x).zip(m) {
        let s = u64::from(xi) + t * u64::from(mi) + carry;
        *yi = s as u32;
        carry = s >> 32;
    }
    // (x + t m) / 2^k < 2m
    let r = shr(&y, carry as u32, k);
    let (d, borrow) = sub8(&r, m);
    if borrow != 0 {
        r
    } else {
        d
    }
}

/// `a - b mod m` for `a, b < m`.
fn sub_mod(a: &Limbs, b: &Limbs, m: &Limbs) -> Limbs {
    let (d, borrow) = sub8(a, b);
    if borrow != 0 {
        add8(&d, m).0
    } else {
        d
    }
}

/// `a^-1 mod m` for an odd prime m and `0 < a < m` by the binary extended Euclidean algorithm
/// (Guide to Elliptic Curve Cryptography, Alg. 2.22, shifting up to 31 bits at a time; variable
/// time). `minv` is `-m^-1 mod 2^32`. `None` when a is zero or not below m.
pub(super) fn inv_mod(a: &Limbs, m: &Limbs, minv: u32) -> Option<Limbs> {
    if is_zero(a) || !lt(a, m) {
        return None;
    }
    const ONE: Limbs = [1, 0, 0, 0, 0, 0, 0, 0];
    let (mut u, mut v) = (*a, *m);
    let (mut x1, mut x2) = (ONE, [0u32; 8]);
    // Invariants: x1 * a = u and x2 * a = v (mod m); gcd(u, v) = 1; u, v > 0.
    loop {
        if u == ONE {
            return Some(x1);
        }
        if v == ONE {
            return Some(x2);
        }
        if is_zero(&u) || is_zero(&v) {
            return None; // only when gcd(a, m) != 1, impossible for a prime m
        }
        while u[0] & 1 == 0 {
            let k = u[0].trailing_zeros().min(31);
            u = shr(&u, 0, k);
            x1 = halve_mod(&x1, k, m, minv);
        }
        while v[0] & 1 == 0 {
            let k = v[0].trailing_zeros().min(31);
            v = shr(&v, 0, k);
            x2 = halve_mod(&x2, k, m, minv);
        }
        if lt(&u, &v) {
            v = sub8(&v, &u).0;
            x2 = sub_mod(&x2, &x1, m);
        } else {
            u = sub8(&u, &v).0;
            x1 = sub_mod(&x1, &x2, m);
        }
    }
}

/// -p^-1 mod 2^32 (p = -1 mod 2^96).
const PINV: u32 = 1;

// ---- generated by tools/gen_p256_mul.py: do not edit by hand ----
/// The 512-bit product `a * b` as 16 little-endian 32-bit words (generated).
#[inline(always)]
// No overflow: each t = c + a b + k <= (2^32 - 1) + (2^32 - 1)^2 + (2^32 - 1) = 2^64 - 1.
#[allow(clippy::arithmetic_side_effects)]
fn mul_wide(a: &[u32; 8], b: &[u32; 8]) -> [u32; 16] {
    let a0 = u64::from(a[0]);
    let a1 = u64::from(a[1]);
    let a2 = u64::from(a[2]);
    let a3 = u64::from(a[3]);
    let a4 = u64::from(a[4]);
    let a5 = u64::from(a[5]);
    let a6 = u64::from(a[6]);
    let a7 = u64::from(a[7]);
    let b0 = u64::from(b[0]);
    let b1 = u64::from(b[1]);
    let b2 = u64::from(b[2]);
    let b3 = u64::from(b[3]);
    let b4 = u64::from(b[4]);
    let b5 = u64::from(b[5]);
    let b6 = u64::from(b[6]);
    let b7 = u64::from(b[7]);
    let mut c = [0u32; 16];
    let mut t: u64;
    let mut k: u64;
    t = a0 * b0;
    c[0] = t as u32;
    k = t >> 32;
    t = a0 * b1 + k;
    c[1] = t as u32;
    k = t >> 32;
    t = a0 * b2 + k;
    c[2] = t as u32;
    k = t >> 32;
    t = a0 * b3 + k;
    c[3] = t as u32;
    k = t >> 32;
    t = a0 * b4 + k;
    c[4] = t as u32;
    k = t >> 32;
    t = a0 * b5 + k;
    c[5] = t as u32;
    k = t >> 32;
    t = a0 * b6 + k;
    c[6] = t as u32;
    k = t >> 32;
    t = a0 * b7 + k;
    c[7] = t as u32;
    k = t >> 32;
    c[8] = k as u32;
    t = u64::from(c[1]) + a1 * b0;
    c[1] = t as u32;
    k = t >> 32;
    t = u64::from(c[2]) + a1 * b1 + k;
    c[2] = t as u32;
    k = t >> 32;
    t = u64::from(c[3]) + a1 * b2 + k;
    c[3] = t as u32;
    k = t >> 32;
    t = u64::from(c[4]) + a1 * b3 + k;
    c[4] = t as u32;
    k = t >> 32;
    t = u64::from(c[5]) + a1 * b4 + k;
    c[5] = t as u32;
    k = t >> 32;
    t = u64::from(c[6]) + a1 * b5 + k;
    c[6] = t as u32;
    k = t >> 32;
    t = u64::from(c[7]) + a1 * b6 + k;
    c[7] = t as u32;
    k = t >> 32;
    t = u64::from(c[8]) + a1 * b7 + k;
    c[8] = t as u32;
    k = t >> 32;
    c[9] = k as u32;
    t = u64::from(c[2]) + a2 * b0;
    c[2] = t as u32;
    k = t >> 32;
    t = u64::from(c[3]) + a2 * b1 + k;
    c[3] = t as u32;
    k = t >> 32;
    t = u64::from(c[4]) + a2 * b2 + k;
    c[4] = t as u32;
    k = t >> 32;
    t = u64::from(c[5]) + a2 * b3 + k;
    c[5] = t as u32;
    k = t >> 32;
    t = u64::from(c[6]) + a2 * b4 + k;
    c[6] = t as u32;
    k = t >> 32;
    t = u64::from(c[7]) + a2 * b5 + k;
    c[7] = t as u32;
    k = t >> 32;
    t = u64::from(c[8]) + a2 * b6 + k;
    c[8] = t as u32;
    k = t >> 32;
    t = u64::from(c[9]) + a2 * b7 + k;
    c[9] = t as u32;
    k = t >> 32;
    c[10] = k as u32;
    t = u64::from(c[3]) + a3 * b0;
    c[3] = t as u32;
    k = t >> 32;
    t = u64::from(c[4]) + a3 * b1 + k;
    c[4] = t as u32;
    k = t >> 32;
    t = u64::from(c[5]) + a3 * b2 + k;
    c[5] = t as u32;
    k = t >> 32;
    t = u64::from(c[6]) + a3 * b3 + k;
    c[6] = t as u32;
    k = t >> 32;
    t = u64::from(c[7]) + a3 * b4 + k;
    c[7] = t as u32;
    k = t >> 32;
    t = u64::from(c[8]) + a3 * b5 + k;
    c[8] = t as u32;
    k = t >> 32;
    t = u64::from(c[9]) + a3 * b6 + k;
    c[9] = t as u32;
    k = t >> 32;
    t = u64::from(c[10]) + a3 * b7 + k;
    c[10] = t as u32;
    k = t >> 32;
    c[11] = k as u32;
    t = u64::from(c[4]) + a4 * b0;
    c[4] = t as u32;
    k = t >> 32;
    t = u64::from(c[5]) + a4 * b1 + k;
    c[5] = t as u32;
    k = t >> 32;
    t = u64::from(c[6]) + a4 * b2 + k;
    c[6] = t as u32;
    k = t >> 32;
    t = u64::from(c[7]) + a4 * b3 + k;
    c[7] = t as u32;
    k = t >> 32;
    t = u64::from(c[8]) + a4 * b4 + k;
    c[8] = t as u32;
    k = t >> 32;
    t = u64::from(c[9]) + a4 * b5 + k;
    c[9] = t as u32;
    k = t >> 32;
    t = u64::from(c[10]) + a4 * b6 + k;
    c[10] = t as u32;
    k = t >> 32;
    t = u64::from(c[11]) + a4 * b7 + k;
    c[11] = t as u32;
    k = t >> 32;
    c[12] = k as u32;
    t = u64::from(c[5]) + a5 * b0;
    c[5] = t as u32;
    k = t >> 32;
    t = u64::from(c[6]) + a5 * b1 + k;
    c[6] = t as u32;
    k = t >> 32;
    t = u64::from(c[7]) + a5 * b2 + k;
    c[7] = t as u32;
    k = t >> 32;
    t = u64::from(c[8]) + a5 * b3 + k;
    c[8] = t as u32;
    k = t >> 32;
    t = u64::from(c[9]) + a5 * b4 + k;
    c[9] = t as u32;
    k = t >> 32;
    t = u64::from(c[10]) + a5 * b5 + k;
    c[10] = t as u32;
    k = t >> 32;
    t = u64::from(c[11]) + a5 * b6 + k;
    c[11] = t as u32;
    k = t >> 32;
    t = u64::from(c[12]) + a5 * b7 + k;
    c[12] = t as u32;
    k = t >> 32;
    c[13] = k as u32;
    t = u64::from(c[6]) + a6 * b0;
    c[6] = t as u32;
    k = t >> 32;
    t = u64::from(c[7]) + a6 * b1 + k;
    c[7] = t as u32;
    k = t >> 32;
    t = u64::from(c[8]) + a6 * b2 + k;
    c[8] = t as u32;
    k = t >> 32;
    t = u64::from(c[9]) + a6 * b3 + k;
    c[9] = t as u32;
    k = t >> 32;
    t = u64::from(c[10]) + a6 * b4 + k;
    c[10] = t as u32;
    k = t >> 32;
    t = u64::from(c[11]) + a6 * b5 + k;
    c[11] = t as u32;
    k = t >> 32;
    t = u64::from(c[12]) + a6 * b6 + k;
    c[12] = t as u32;
    k = t >> 32;
    t = u64::from(c[13]) + a6 * b7 + k;
    c[13] = t as u32;
    k = t >> 32;
    c[14] = k as u32;
    t = u64::from(c[7]) + a7 * b0;
    c[7] = t as u32;
    k = t >> 32;
    t = u64::from(c[8]) + a7 * b1 + k;
    c[8] = t as u32;
    k = t >> 32;
    t = u64::from(c[9]) + a7 * b2 + k;
    c[9] = t as u32;
    k = t >> 32;
    t = u64::from(c[10]) + a7 * b3 + k;
    c[10] = t as u32;
    k = t >> 32;
    t = u64::from(c[11]) + a7 * b4 + k;
    c[11] = t as u32;
    k = t >> 32;
    t = u64::from(c[12]) + a7 * b5 + k;
    c[12] = t as u32;
    k = t >> 32;
    t = u64::from(c[13]) + a7 * b6 + k;
    c[13] = t as u32;
    k = t >> 32;
    t = u64::from(c[14]) + a7 * b7 + k;
    c[14] = t as u32;
    k = t >> 32;
    c[15] = k as u32;
    c
}

/// The 512-bit square `a * a` as 16 little-endian 32-bit words (generated).
#[inline(always)]
// No overflow: as in `mul_wide` for the cross products; the doubling shifts, and the diagonal
// sums add two words and a carry below 2^32 to a word.
#[allow(clippy::arithmetic_side_effects)]
fn sqr_wide(a: &[u32; 8]) -> [u32; 16] {
    let a0 = u64::from(a[0]);
    let a1 = u64::from(a[1]);
    let a2 = u64::from(a[2]);
    let a3 = u64::from(a[3]);
    let a4 = u64::from(a[4]);
    let a5 = u64::from(a[5]);
    let a6 = u64::from(a[6]);
    let a7 = u64::from(a[7]);
    let mut c = [0u32; 16];
    let mut t: u64;
    let mut k: u64;
    t = a0 * a1;
    c[1] = t as u32;
    k = t >> 32;
    t = a0 * a2 + k;
    c[2] = t as u32;
    k = t >> 32;
    t = a0 * a3 + k;
    c[3] = t as u32;
    k = t >> 32;
    t = a0 * a4 + k;
    c[4] = t as u32;
    k = t >> 32;
    t = a0 * a5 + k;
    c[5] = t as u32;
    k = t >> 32;
    t = a0 * a6 + k;
    c[6] = t as u32;
    k = t >> 32;
    t = a0 * a7 + k;
    c[7] = t as u32;
    k = t >> 32;
    c[8] = k as u32;
    t = u64::from(c[3]) + a1 * a2;
    c[3] = t as u32;
    k = t >> 32;
    t = u64::from(c[4]) + a1 * a3 + k;
    c[4] = t as u32;
    k = t >> 32;
    t = u64::from(c[5]) + a1 * a4 + k;
    c[5] = t as u32;
    k = t >> 32;
    t = u64::from(c[6]) + a1 * a5 + k;
    c[6] = t as u32;
    k = t >> 32;
    t = u64::from(c[7]) + a1 * a6 + k;
    c[7] = t as u32;
    k = t >> 32;
    t = u64::from(c[8]) + a1 * a7 + k;
    c[8] = t as u32;
    k = t >> 32;
    c[9] = k as u32;
    t = u64::from(c[5]) + a2 * a3;
    c[5] = t as u32;
    k = t >> 32;
    t = u64::from(c[6]) + a2 * a4 + k;
    c[6] = t as u32;
    k = t >> 32;
    t = u64::from(c[7]) + a2 * a5 + k;
    c[7] = t as u32;
    k = t >> 32;
    t = u64::from(c[8]) + a2 * a6 + k;
    c[8] = t as u32;
    k = t >> 32;
    t = u64::from(c[9]) + a2 * a7 + k;
    c[9] = t as u32;
    k = t >> 32;
    c[10] = k as u32;
    t = u64::from(c[7]) + a3 * a4;
    c[7] = t as u32;
    k = t >> 32;
    t = u64::from(c[8]) + a3 * a5 + k;
    c[8] = t as u32;
    k = t >> 32;
    t = u64::from(c[9]) + a3 * a6 + k;
    c[9] = t as u32;
    k = t >> 32;
    t = u64::from(c[10]) + a3 * a7 + k;
    c[10] = t as u32;
    k = t >> 32;
    c[11] = k as u32;
    t = u64::from(c[9]) + a4 * a5;
    c[9] = t as u32;
    k = t >> 32;
    t = u64::from(c[10]) + a4 * a6 + k;
    c[10] = t as u32;
    k = t >> 32;
    t = u64::from(c[11]) + a4 * a7 + k;
    c[11] = t as u32;
    k = t >> 32;
    c[12] = k as u32;
    t = u64::from(c[11]) + a5 * a6;
    c[11] = t as u32;
    k = t >> 32;
    t = u64::from(c[12]) + a5 * a7 + k;
    c[12] = t as u32;
    k = t >> 32;
    c[13] = k as u32;
    t = u64::from(c[13]) + a6 * a7;
    c[13] = t as u32;
    k = t >> 32;
    c[14] = k as u32;
    k = 0;
    t = (u64::from(c[1]) << 1) | k;
    c[1] = t as u32;
    k = t >> 32;
    t = (u64::from(c[2]) << 1) | k;
    c[2] = t as u32;
    k = t >> 32;
    t = (u64::from(c[3]) << 1) | k;
    c[3] = t as u32;
    k = t >> 32;
    t = (u64::from(c[4]) << 1) | k;
    c[4] = t as u32;
    k = t >> 32;
    t = (u64::from(c[5]) << 1) | k;
    c[5] = t as u32;
    k = t >> 32;
    t = (u64::from(c[6]) << 1) | k;
    c[6] = t as u32;
    k = t >> 32;
    t = (u64::from(c[7]) << 1) | k;
    c[7] = t as u32;
    k = t >> 32;
    t = (u64::from(c[8]) << 1) | k;
    c[8] = t as u32;
    k = t >> 32;
    t = (u64::from(c[9]) << 1) | k;
    c[9] = t as u32;
    k = t >> 32;
    t = (u64::from(c[10]) << 1) | k;
    c[10] = t as u32;
    k = t >> 32;
    t = (u64::from(c[11]) << 1) | k;
    c[11] = t as u32;
    k = t >> 32;
    t = (u64::from(c[12]) << 1) | k;
    c[12] = t as u32;
    k = t >> 32;
    t = (u64::from(c[13]) << 1) | k;
    c[13] = t as u32;
    k = t >> 32;
    t = (u64::from(c[14]) << 1) | k;
    c[14] = t as u32;
    k = t >> 32;
    t = (u64::from(c[15]) << 1) | k;
    c[15] = t as u32;
    k = 0;
    t = u64::from(c[0]) + ((a0 * a0) & 0xffff_ffff) + k;
    c[0] = t as u32;
    t = u64::from(c[1]) + ((a0 * a0) >> 32) + (t >> 32);
    c[1] = t as u32;
    k = t >> 32;
    t = u64::from(c[2]) + ((a1 * a1) & 0xffff_ffff) + k;
    c[2] = t as u32;
    t = u64::from(c[3]) + ((a1 * a1) >> 32) + (t >> 32);
    c[3] = t as u32;
    k = t >> 32;
    t = u64::from(c[4]) + ((a2 * a2) & 0xffff_ffff) + k;
    c[4] = t as u32;
    t = u64::from(c[5]) + ((a2 * a2) >> 32) + (t >> 32);
    c[5] = t as u32;
    k = t >> 32;
    t = u64::from(c[6]) + ((a3 * a3) & 0xffff_ffff) + k;
    c[6] = t as u32;
    t = u64::from(c[7]) + ((a3 * a3) >> 32) + (t >> 32);
    c[7] = t as u32;
    k = t >> 32;
    t = u64::from(c[8]) + ((a4 * a4) & 0xffff_ffff) + k;
    c[8] = t as u32;
    t = u64::from(c[9]) + ((a4 * a4) >> 32) + (t >> 32);
    c[9] = t as u32;
    k = t >> 32;
    t = u64::from(c[10]) + ((a5 * a5) & 0xffff_ffff) + k;
    c[10] = t as u32;
    t = u64::from(c[11]) + ((a5 * a5) >> 32) + (t >> 32);
    c[11] = t as u32;
    k = t >> 32;
    t = u64::from(c[12]) + ((a6 * a6) & 0xffff_ffff) + k;
    c[12] = t as u32;
    t = u64::from(c[13]) + ((a6 * a6) >> 32) + (t >> 32);
    c[13] = t as u32;
    k = t >> 32;
    t = u64::from(c[14]) + ((a7 * a7) & 0xffff_ffff) + k;
    c[14] = t as u32;
    t = u64::from(c[15]) + ((a7 * a7) >> 32) + (t >> 32);
    c[15] = t as u32;
    c
}

/// `a + b` and the carry out (0 or 1) (generated).
#[inline(always)]
// No overflow: t <= 2 (2^32 - 1) + 1.
#[allow(clippy::arithmetic_side_effects)]
pub(super) fn add8(a: &Limbs, b: &Limbs) -> (Limbs, u32) {
    let mut r = [0u32; 8];
    let mut t: u64;
    t = u64::from(a[0]) + u64::from(b[0]);
    r[0] = t as u32;
    t = u64::from(a[1]) + u64::from(b[1]) + (t >> 32);
    r[1] = t as u32;
    t = u64::from(a[2]) + u64::from(b[2]) + (t >> 32);
    r[2] = t as u32;
    t = u64::from(a[3]) + u64::from(b[3]) + (t >> 32);
    r[3] = t as u32;
    t = u64::from(a[4]) + u64::from(b[4]) + (t >> 32);
    r[4] = t as u32;
    t = u64::from(a[5]) + u64::from(b[5]) + (t >> 32);
    r[5] = t as u32;
    t = u64::from(a[6]) + u64::from(b[6]) + (t >> 32);
    r[6] = t as u32;
    t = u64::from(a[7]) + u64::from(b[7]) + (t >> 32);
    r[7] = t as u32;
    (r, (t >> 32) as u32)
}

/// `a - b` modulo 2^256 and the borrow out (0 or 1) (generated).
#[inline(always)]
pub(super) fn sub8(a: &Limbs, b: &Limbs) -> (Limbs, u32) {
    let mut r = [0u32; 8];
    let mut t: u64;
    t = u64::from(a[0]).wrapping_sub(u64::from(b[0]));
    r[0] = t as u32;
    t = u64::from(a[1]).wrapping_sub(u64::from(b[1])).wrapping_sub(t >> 63);
    r[1] = t as u32;
    t = u64::from(a[2]).wrapping_sub(u64::from(b[2])).wrapping_sub(t >> 63);
    r[2] = t as u32;
    t = u64::from(a[3]).wrapping_sub(u64::from(b[3])).wrapping_sub(t >> 63);
    r[3] = t as u32;
    t = u64::from(a[4]).wrapping_sub(u64::from(b[4])).wrapping_sub(t >> 63);
    r[4] = t as u32;
    t = u64::from(a[5]).wrapping_sub(u64::from(b[5])).wrapping_sub(t >> 63);
    r[5] = t as u32;
    t = u64::from(a[6]).wrapping_sub(u64::from(b[6])).wrapping_sub(t >> 63);
    r[6] = t as u32;
    t = u64::from(a[7]).wrapping_sub(u64::from(b[7])).wrapping_sub(t >> 63);
    r[7] = t as u32;
    (r, (t >> 63) as u32)
}

/// Adds signed 64-bit column sums into `r` (little-endian) and returns the signed carry out
/// of 2^256 (generated).
#[inline(always)]
// No overflow: the column sums of `reduce` are below 2^36 in magnitude and the carries below
// 2^5, so every acc stays far inside an i64.
#[allow(clippy::arithmetic_side_effects)]
fn add_columns(r: &mut Limbs, t: &[i64; 8]) -> i64 {
    let mut acc: i64 = 0;
    acc += i64::from(r[0]) + t[0];
    r[0] = acc as u32;
    acc >>= 32;
    acc += i64::from(r[1]) + t[1];
    r[1] = acc as u32;
    acc >>= 32;
    acc += i64::from(r[2]) + t[2];
    r[2] = acc as u32;
    acc >>= 32;
    acc += i64::from(r[3]) + t[3];
    r[3] = acc as u32;
    acc >>= 32;
    acc += i64::from(r[4]) + t[4];
    r[4] = acc as u32;
    acc >>= 32;
    acc += i64::from(r[5]) + t[5];
    r[5] = acc as u32;
    acc >>= 32;
    acc += i64::from(r[6]) + t[6];
    r[6] = acc as u32;
    acc >>= 32;
    acc += i64::from(r[7]) + t[7];
    r[7] = acc as u32;
    acc >> 32
}
// ---- end of generated code ----

#[cfg(test)]
mod tests {
    use super::*;

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u32 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 >> 16) as u32
        }
        fn limbs(&mut self) -> Limbs {
            let mut l = [0u32; 8];
            for x in l.iter_mut() {
                // Skewed towards all-zero and all-one words to hit carries.
                *x = match self.next() % 4 {
                    0 => 0,
                    1 => u32::MAX,
                    _ => self.next(),
                };
            }
            l
        }
        fn fe(&mut self) -> Fe {
            loop {
                if let Some(f) = Fe::from_limbs(self.limbs()) {
                    return f;
                }
            }
        }
    }

    /// Schoolbook product with u128, independent of the generated code.
    fn ref_wide(a: &Limbs, b: &Limbs) -> [u32; 16] {
        let mut c = [0u128; 17];
        for i in 0..8 {
            for j in 0..8 {
                c[i + j] += u128::from(a[i]) * u128::from(b[j]);
            }
        }
        let mut out = [0u32; 16];
        let mut carry = 0u128;
        for k in 0..16 {
            let v = c[k] + carry;
            out[k] = v as u32;
            carry = v >> 32;
        }
        out
    }

    /// `x mod p` bit by bit (Horner with modular doubling), independent of `reduce`.
    fn ref_reduce(c: &[u32; 16]) -> Fe {
        let mut r = Fe::ZERO;
        for k in (0..512).rev() {
            r = r.double();
            if (c[k / 32] >> (k % 32)) & 1 == 1 {
                r = r.add(&Fe::ONE);
            }
        }
        r
    }

    fn specials() -> Vec<Fe> {
        let pm1 = sub8(&P, &[1, 0, 0, 0, 0, 0, 0, 0]).0;
        let pm2 = sub8(&P, &[2, 0, 0, 0, 0, 0, 0, 0]).0;
        let mut v = vec![Fe::ZERO, Fe::ONE, Fe(pm1), Fe(pm2)];
        for l in [
            [0, 0, 0, 0, 0, 0, 0, 0x8000_0000],
            [0, 0, 0, 0, 0, 0, 0, 0xffff_fffe],
            [u32::MAX, u32::MAX, u32::MAX, u32::MAX, u32::MAX, u32::MAX, 0, u32::MAX],
            [u32::MAX, u32::MAX, u32::MAX, 0, 0, 0, 0, u32::MAX],
            [0, 0, 0, u32::MAX, u32::MAX, u32::MAX, 0, u32::MAX],
            [0, 0, 0, 1, 0, 0, 0xffff_ffff, 0],
            [u32::MAX; 7].iter().chain(&[0]).copied().collect::<Vec<_>>().try_into().unwrap(),
        ] {
            v.push(Fe::from_limbs(l).unwrap());
        }
        v
    }

    #[test]
    fn mul_and_square_match_reference() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut values = specials();
        for _ in 0..300 {
            values.push(rng.fe());
        }
        for (i, a) in values.iter().enumerate() {
            let b = values[(i * 7 + 3) % values.len()];
            assert_eq!(mul_wide(&a.0, &b.0), ref_wide(&a.0, &b.0));
            assert_eq!(sqr_wide(&a.0), ref_wide(&a.0, &a.0));
            assert_eq!(a.mul(&b), ref_reduce(&ref_wide(&a.0, &b.0)), "{a:?} * {b:?}");
            assert_eq!(a.square(), a.mul(a));
        }
        let sp = specials();
        for a in &sp {
            for b in &sp {
                assert_eq!(a.mul(b), ref_reduce(&ref_wide(&a.0, &b.0)), "{a:?} * {b:?}");
            }
        }
    }

    #[test]
    fn reduce_handles_extreme_wide_values() {
        // Any 512-bit value, not only products of reduced elements.
        let mut rng = Rng(42);
        let mut cases = vec![[u32::MAX; 16], [0; 16]];
        for _ in 0..200 {
            let mut c = [0u32; 16];
            c[..8].copy_from_slice(&rng.limbs());
            c[8..].copy_from_slice(&rng.limbs());
            cases.push(c);
        }
        for c in &cases {
            assert_eq!(reduce(c), ref_reduce(c), "{c:x?}");
        }
    }

    #[test]
    fn add_sub_invert() {
        let mut rng = Rng(7);
        let mut values = specials();
        for _ in 0..100 {
            values.push(rng.fe());
        }
        for (i, a) in values.iter().enumerate() {
            let b = values[(i * 5 + 1) % values.len()];
            assert_eq!(a.add(&b).sub(&b), *a);
            assert_eq!(a.sub(&b).add(&b), *a);
            assert!(lt(&a.add(&b).0, &P) && lt(&a.sub(&b).0, &P));
            match a.invert() {
                None => assert!(a.is_zero()),
                Some(inv) => assert_eq!(a.mul(&inv), Fe::ONE),
            }
        }
        assert_eq!(Fe::from_limbs(P), None);
        assert_eq!(from_be_bytes(&to_be_bytes(&P)), P);
        assert_eq!(inv_mod(&P, &P, PINV), None);
    }
}
