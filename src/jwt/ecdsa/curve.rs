//! The curves (y^2 = x^3 - 3x + b over GF(p), prime order n, cofactor 1) and their points.
//!
//! Parameters are written as in SEC 2 v2 / FIPS 186-4 D.1.2, in hex, so they can be checked by
//! eye; the Montgomery constants are derived from them at compile time.
//!
//! Verification computes u1 G + u2 Q on two comb tables, as `super::super::p256` does (Lim-Lee,
//! 8 teeth `spacing` = ceil(bits(n) / 8) bits apart, 255 affine points): `spacing - 1` doublings
//! and at most `2 spacing` mixed additions (P-384: 47 and 96; P-521: 65 and 132). G's table is
//! built once per VM, Q's once per key (about as much work as one verification).

use std::sync::OnceLock;

use super::modular::{Limbs, Modulus};

/// The hash JWS ties to the curve (RFC 7518 3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Hash {
    Sha384,
    Sha512,
}

/// A short Weierstrass curve with a = -3 and cofactor 1.
#[derive(Debug)]
pub struct Curve<const L: usize> {
    pub(super) name: &'static str,
    pub(super) p: Modulus<L>,
    pub(super) n: Modulus<L>,
    /// b, gx, gy as plain integers below p.
    b: Limbs<L>,
    gx: Limbs<L>,
    gy: Limbs<L>,
    /// Bytes in a coordinate, and in each of r and s.
    pub(super) bytes: usize,
    pub(super) hash: Hash,
    /// G's comb table, built at the first verification in a VM.
    g_table: OnceLock<Option<Box<CombTable<L>>>>,
}

/// NIST P-384 (secp384r1), for ES384.
pub static P384: Curve<12> = Curve {
    name: "P-384",
    p: Modulus::new(hex(concat!(
        "fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffe",
        "ffffffff0000000000000000ffffffff"
    ))),
    n: Modulus::new(hex(concat!(
        "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf",
        "581a0db248b0a77aecec196accc52973"
    ))),
    b: hex(concat!(
        "b3312fa7e23ee7e4988e056be3f82d19181d9c6efe8141120314088f5013875a",
        "c656398d8a2ed19d2a85c8edd3ec2aef"
    )),
    gx: hex(concat!(
        "aa87ca22be8b05378eb1c71ef320ad746e1d3b628ba79b9859f741e082542a38",
        "5502f25dbf55296c3a545e3872760ab7"
    )),
    gy: hex(concat!(
        "3617de4a96262c6f5d9e98bf9292dc29f8f41dbd289a147ce9da3113b5f0b8c0",
        "0a60b1ce1d7e819d7a431d7c90ea0e5f"
    )),
    bytes: 48,
    hash: Hash::Sha384,
    g_table: OnceLock::new(),
};

/// NIST P-521 (secp521r1), for ES512.
pub static P521: Curve<17> = Curve {
    name: "P-521",
    p: Modulus::new(hex(concat!(
        "01ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
    ))),
    n: Modulus::new(hex(concat!(
        "01ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        "fa51868783bf2f966b7fcc0148f709a5d03bb5c9b8899c47aebb6fb71e91386409"
    ))),
    b: hex(concat!(
        "0051953eb9618e1c9a1f929a21a0b68540eea2da725b99b315f3b8b489918ef1",
        "09e156193951ec7e937b1652c0bd3bb1bf073573df883d2c34f1ef451fd46b503f00"
    )),
    gx: hex(concat!(
        "00c6858e06b70404e9cd9e3ecb662395b4429c648139053fb521f828af606b4d",
        "3dbaa14b5e77efe75928fe1dc127a2ffa8de3348b3c1856a429bf97e7e31c2e5bd66"
    )),
    gy: hex(concat!(
        "011839296a789a3bc0045c8a5fb42c7d1bd998f54449579b446817afbd17273e",
        "662c97ee72995ef42640c550b9013fad0761353c7086a272c24088be94769fd16650"
    )),
    bytes: 66,
    hash: Hash::Sha512,
    g_table: OnceLock::new(),
};

/// A big-endian hex string as limbs, at compile time (a bad digit, a too-long string or an
/// overflow is a compile error: this only runs in the initialisers above, so it cannot panic at
/// run time).
#[allow(clippy::indexing_slicing, clippy::panic, clippy::arithmetic_side_effects)]
const fn hex<const L: usize>(s: &str) -> Limbs<L> {
    let digits = s.as_bytes();
    assert!(digits.len() <= 8 * L, "hex constant longer than the limbs");
    let mut out = [0u32; L];
    let mut i = 0;
    while i < digits.len() {
        let c = digits[digits.len() - 1 - i];
        let v = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => panic!("not a lowercase hex digit"),
        };
        out[i / 8] |= (v as u32) << (4 * (i % 8));
        i += 1;
    }
    out
}

/// A finite point in affine coordinates, in Montgomery form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Affine<const L: usize> {
    pub(super) x: Limbs<L>,
    pub(super) y: Limbs<L>,
}

/// Jacobian coordinates (X, Y, Z), in Montgomery form, for the affine point (X/Z^2, Y/Z^3);
/// Z = 0 is the point at infinity.
#[derive(Clone, Copy, Debug)]
pub(super) struct Jacobian<const L: usize> {
    pub(super) x: Limbs<L>,
    pub(super) y: Limbs<L>,
    pub(super) z: Limbs<L>,
}

impl<const L: usize> Jacobian<L> {
    pub(super) fn is_infinity(&self) -> bool {
        is_zero(&self.z)
    }
}

fn is_zero<const L: usize>(a: &Limbs<L>) -> bool {
    a.iter().all(|&w| w == 0)
}

/// Comb teeth: bits of a scalar that share one table lookup are `spacing` apart.
const TEETH: usize = 8;
const ENTRIES: usize = (1 << TEETH) - 1;

/// The comb table of a point P: `points[i - 1] = sum over set bits j of i of 2^(spacing j) P`.
#[derive(Clone, Debug)]
pub(super) struct CombTable<const L: usize> {
    points: [Affine<L>; ENTRIES],
}

impl<const L: usize> CombTable<L> {
    fn entry(&self, idx: usize) -> Option<&Affine<L>> {
        self.points.get(idx.wrapping_sub(1))
    }
}

impl<const L: usize> Curve<L> {
    fn infinity(&self) -> Jacobian<L> {
        Jacobian { x: self.p.one(), y: self.p.one(), z: [0; L] }
    }

    fn jacobian(&self, p: &Affine<L>) -> Jacobian<L> {
        Jacobian { x: p.x, y: p.y, z: self.p.one() }
    }

    /// Bits of n covered by one comb column step.
    fn spacing(&self) -> usize {
        self.n.bits().div_ceil(TEETH)
    }

    /// The affine point (x, y) of plain coordinates, in Montgomery form; `None` if a coordinate
    /// is not below p or the point is not on the curve. With cofactor 1, every such point has
    /// order n.
    pub(super) fn point(&self, x: &Limbs<L>, y: &Limbs<L>) -> Option<Affine<L>> {
        let f = &self.p;
        let (x, y) = (f.to_mont(x)?, f.to_mont(y)?);
        let b = f.to_mont(&self.b)?;
        let x3 = f.mul(&f.square(&x), &x);
        let three_x = f.add(&f.add(&x, &x), &x);
        let rhs = f.add(&f.sub(&x3, &three_x), &b);
        (f.square(&y) == rhs).then_some(Affine { x, y })
    }

    /// G's comb table, built at first use, once per VM.
    pub(super) fn generator_table(&self) -> Option<&CombTable<L>> {
        self.g_table.get_or_init(|| self.comb_table(&self.point(&self.gx, &self.gy)?)).as_deref()
    }

    /// 2P ("dbl-2001-b", a = -3). Infinity stays infinity (Z3 = 2 Y Z = 0); with prime order no
    /// finite point doubles to infinity.
    pub(super) fn double(&self, p: &Jacobian<L>) -> Jacobian<L> {
        let f = &self.p;
        let delta = f.square(&p.z);
        let gamma = f.square(&p.y);
        let beta = f.mul(&p.x, &gamma);
        let t = f.mul(&f.sub(&p.x, &delta), &f.add(&p.x, &delta));
        let alpha = f.add(&f.add(&t, &t), &t);
        let beta2 = f.add(&beta, &beta);
        let beta4 = f.add(&beta2, &beta2);
        let beta8 = f.add(&beta4, &beta4);
        let x3 = f.sub(&f.square(&alpha), &beta8);
        let yz = f.add(&p.y, &p.z);
        let z3 = f.sub(&f.sub(&f.square(&yz), &gamma), &delta);
        let gamma2 = f.square(&gamma);
        let gamma2_2 = f.add(&gamma2, &gamma2);
        let gamma2_4 = f.add(&gamma2_2, &gamma2_2);
        let gamma2_8 = f.add(&gamma2_4, &gamma2_4);
        let y3 = f.sub(&f.mul(&alpha, &f.sub(&beta4, &x3)), &gamma2_8);
        Jacobian { x: x3, y: y3, z: z3 }
    }

    /// P + Q for an affine Q (mixed addition, 8M + 3S), with the exceptional cases handled:
    /// P = infinity, P = Q (doubling) and P = -Q (infinity).
    pub(super) fn add_affine(&self, p: &Jacobian<L>, q: &Affine<L>) -> Jacobian<L> {
        if p.is_infinity() {
            return self.jacobian(q);
        }
        let f = &self.p;
        let z1z1 = f.square(&p.z);
        let u2 = f.mul(&q.x, &z1z1);
        let s2 = f.mul(&f.mul(&q.y, &p.z), &z1z1);
        let h = f.sub(&u2, &p.x);
        let r = f.sub(&s2, &p.y);
        if is_zero(&h) {
            return if is_zero(&r) { self.double(p) } else { self.infinity() };
        }
        let hh = f.square(&h);
        let hhh = f.mul(&h, &hh);
        let v = f.mul(&p.x, &hh);
        let x3 = f.sub(&f.sub(&f.square(&r), &hhh), &f.add(&v, &v));
        let y3 = f.sub(&f.mul(&r, &f.sub(&v, &x3)), &f.mul(&p.y, &hhh));
        let z3 = f.mul(&p.z, &h);
        Jacobian { x: x3, y: y3, z: z3 }
    }

    /// The comb table of a point of order n; `None` only if some entry is the point at
    /// infinity, which cannot happen for such a point (no nonzero 0/1 combination of the
    /// 2^(spacing j) is a multiple of n).
    pub(super) fn comb_table(&self, p: &Affine<L>) -> Option<Box<CombTable<L>>> {
        let mut bases_jac = [self.jacobian(p); TEETH];
        let mut cur = self.jacobian(p);
        for base in bases_jac.iter_mut().skip(1) {
            for _ in 0..self.spacing() {
                cur = self.double(&cur);
            }
            *base = cur;
        }
        let mut bases = [*p; TEETH];
        self.batch_to_affine(&bases_jac, &mut bases)?;
        // All 2^TEETH subset sums in Jacobian coordinates, index 0 = infinity (unused).
        // Entry idx is entry (idx without its top bit) plus that bit's base: built in order.
        let mut jac = Vec::with_capacity(ENTRIES + 1);
        jac.push(self.infinity());
        for idx in 1..=ENTRIES {
            let top = idx.checked_ilog2()?;
            let rest = idx ^ (1 << top);
            let base = bases.get(top as usize)?;
            let sum = self.add_affine(jac.get(rest)?, base);
            jac.push(sum);
        }
        let mut table = Box::new(CombTable { points: [*p; ENTRIES] });
        self.batch_to_affine(jac.get(1..)?, &mut table.points)?;
        Some(table)
    }

    /// Converts `jac` to affine into `out` (same length) with one inversion (Montgomery's
    /// trick); `None` if any point is at infinity.
    fn batch_to_affine(&self, jac: &[Jacobian<L>], out: &mut [Affine<L>]) -> Option<()> {
        if jac.len() != out.len() {
            return None;
        }
        let f = &self.p;
        let mut before = Vec::with_capacity(jac.len()); // product of the Z of all earlier points
        let mut acc = f.one();
        for j in jac {
            before.push(acc);
            acc = f.mul(&acc, &j.z);
        }
        let mut inv = f.invert(&acc)?; // None if any Z is zero
        for ((o, j), b) in out.iter_mut().zip(jac).zip(&before).rev() {
            let zinv = f.mul(&inv, b);
            inv = f.mul(&inv, &j.z);
            let zinv2 = f.square(&zinv);
            *o = Affine { x: f.mul(&j.x, &zinv2), y: f.mul(&f.mul(&j.y, &zinv2), &zinv) };
        }
        Some(())
    }

    /// `k1 P1 + k2 P2` for the comb tables of P1 and P2 and plain integer scalars below n.
    /// `None` only on a malformed table index, which the 8-bit columns cannot produce.
    pub(super) fn mul2(
        &self,
        t1: &CombTable<L>,
        k1: &Limbs<L>,
        t2: &CombTable<L>,
        k2: &Limbs<L>,
    ) -> Option<Jacobian<L>> {
        let spacing = self.spacing();
        let mut acc = self.infinity();
        for col in (0..spacing).rev() {
            if !acc.is_infinity() {
                acc = self.double(&acc);
            }
            for (table, k) in [(t1, k1), (t2, k2)] {
                let idx = column(k, col, spacing);
                if idx != 0 {
                    acc = self.add_affine(&acc, table.entry(idx)?);
                }
            }
        }
        Some(acc)
    }
}

/// The table index of comb column `col` of `k`: bit `spacing j + col` of k is bit j of it.
fn column<const L: usize>(k: &Limbs<L>, col: usize, spacing: usize) -> usize {
    (0..TEETH).rev().fold(0, |acc, j| {
        // Below 66 * TEETH: never saturates (a saturated index would read as a 0 bit).
        let bit = spacing.saturating_mul(j).saturating_add(col);
        let set = k.get(bit / 32).map_or(0, |w| (w >> (bit % 32)) & 1);
        (acc << 1) | set as usize
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small<const L: usize>(v: u32) -> Limbs<L> {
        let mut k = [0u32; L];
        k[0] = v;
        k
    }

    fn check_curve<const L: usize>(c: &Curve<L>) {
        let g = c.point(&c.gx, &c.gy).expect("G is on the curve");
        let t = c.generator_table().expect("G's table");
        let zero = [0u32; L];
        let mul = |k: &Limbs<L>| c.mul2(t, k, t, &zero).unwrap();
        // n G = infinity: (n - 1) G + G, with (n - 1) G = -G.
        let n1 = super::super::modular::sub(c.n.value(), &small(1)).0;
        let minus_g = mul(&n1);
        assert!(!minus_g.is_infinity(), "{}", c.name);
        assert!(c.add_affine(&minus_g, &g).is_infinity(), "{}: (n - 1) G + G is not infinity", c.name);
        let same = |a: &Jacobian<L>, b: &Jacobian<L>| {
            let f = &c.p;
            let (az2, bz2) = (f.square(&a.z), f.square(&b.z));
            f.mul(&a.x, &bz2) == f.mul(&b.x, &az2) && f.mul(&a.y, &f.mul(&bz2, &b.z)) == f.mul(&b.y, &f.mul(&az2, &a.z))
        };
        // 2G from the comb equals G + G by doubling; 3 G + 5 G = 8 G with two scalars at once.
        assert!(same(&c.add_affine(&c.jacobian(&g), &g), &mul(&small(2))), "{}", c.name);
        assert!(same(&c.mul2(t, &small(3), t, &small(5)).unwrap(), &mul(&small(8))), "{}", c.name);
        // The top comb tooth: 2^(spacing 7) G from the table equals 7 spacing doublings of G.
        let mut top = [0u32; L];
        let bit = 7 * c.spacing();
        top[bit / 32] = 1 << (bit % 32);
        let mut doubled = c.jacobian(&g);
        for _ in 0..bit {
            doubled = c.double(&doubled);
        }
        assert!(same(&doubled, &mul(&top)), "{}", c.name);
        // A point off the curve, and a coordinate equal to p, are refused.
        let mut y = c.gy;
        y[0] ^= 1;
        assert!(c.point(&c.gx, &y).is_none());
        assert!(c.point(c.p.value(), &c.gy).is_none(), "x = p is not a coordinate");
    }

    #[test]
    fn p384_parameters() {
        check_curve(&P384);
        assert_eq!(P384.spacing(), 48);
    }

    #[test]
    fn p521_parameters() {
        check_curve(&P521);
        assert_eq!(P521.spacing(), 66);
    }
}
