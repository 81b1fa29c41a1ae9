//! Points of P-256 (y^2 = x^3 - 3x + b over GF(p)) and the fixed-base comb used by verification.
//!
//! Verification computes u1 G + u2 Q. Both G and the key Q get a comb table (Lim-Lee, 8 teeth 32
//! bits apart, 255 affine points): entry i is the sum over the set bits j of i of 2^(32 j) P.
//! Then u1 G + u2 Q is 31 doublings and at most 64 mixed additions with the bits of both scalars
//! read column by column. G's table is built once per VM, Q's once per key.

use super::field::{Fe, Limbs};

pub(super) const B: Fe = Fe::from_limbs_unchecked([
    0x27d2_604b,
    0x3bce_3c3e,
    0xcc53_b0f6,
    0x651d_06b0,
    0x7698_86bc,
    0xb3eb_bd55,
    0xaa3a_93e7,
    0x5ac6_35d8,
]);

pub(super) const GENERATOR: Affine = Affine {
    x: Fe::from_limbs_unchecked([
        0xd898_c296,
        0xf4a1_3945,
        0x2deb_33a0,
        0x7703_7d81,
        0x63a4_40f2,
        0xf8bc_e6e5,
        0xe12c_4247,
        0x6b17_d1f2,
    ]),
    y: Fe::from_limbs_unchecked([
        0x37bf_51f5,
        0xcbb6_4068,
        0x6b31_5ece,
        0x2bce_3357,
        0x7c0f_9e16,
        0x8ee7_eb4a,
        0xfe1a_7f9b,
        0x4fe3_42e2,
    ]),
};

/// A finite point in affine coordinates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Affine {
    pub(super) x: Fe,
    pub(super) y: Fe,
}

impl Affine {
    /// Whether y^2 = x^3 - 3x + b.
    pub(super) fn is_on_curve(&self) -> bool {
        let x3 = self.x.square().mul(&self.x);
        let three_x = self.x.double().add(&self.x);
        self.y.square() == x3.sub(&three_x).add(&B)
    }
}

/// Jacobian coordinates (X, Y, Z) for the affine point (X/Z^2, Y/Z^3); Z = 0 is the point at
/// infinity.
#[derive(Clone, Copy, Debug)]
pub(super) struct Jacobian {
    pub(super) x: Fe,
    pub(super) y: Fe,
    pub(super) z: Fe,
}

impl Jacobian {
    pub(super) const INFINITY: Jacobian = Jacobian { x: Fe::ONE, y: Fe::ONE, z: Fe::ZERO };

    pub(super) fn from_affine(p: &Affine) -> Jacobian {
        Jacobian { x: p.x, y: p.y, z: Fe::ONE }
    }

    pub(super) fn is_infinity(&self) -> bool {
        self.z.is_zero()
    }

    /// 2P ("dbl-2001-b", a = -3: 3M + 5S). Infinity stays infinity (Z3 = 0); P-256 has no point
    /// of order 2, so a finite point never doubles to infinity.
    pub(super) fn double(&self) -> Jacobian {
        let delta = self.z.square();
        let gamma = self.y.square();
        let beta = self.x.mul(&gamma);
        let t = self.x.sub(&delta).mul(&self.x.add(&delta));
        let alpha = t.double().add(&t);
        let beta4 = beta.double().double();
        let x3 = alpha.square().sub(&beta4.double());
        let z3 = self.y.add(&self.z).square().sub(&gamma).sub(&delta);
        let gamma2_8 = gamma.square().double().double().double();
        let y3 = alpha.mul(&beta4.sub(&x3)).sub(&gamma2_8);
        Jacobian { x: x3, y: y3, z: z3 }
    }

    /// P + Q for an affine Q (mixed addition, 8M + 3S), with the exceptional cases handled:
    /// P = infinity, P = Q (doubling) and P = -Q (infinity).
    pub(super) fn add_affine(&self, q: &Affine) -> Jacobian {
        if self.is_infinity() {
            return Jacobian::from_affine(q);
        }
        let z1z1 = self.z.square();
        let u2 = q.x.mul(&z1z1);
        let s2 = q.y.mul(&self.z).mul(&z1z1);
        let h = u2.sub(&self.x);
        let r = s2.sub(&self.y);
        if h.is_zero() {
            return if r.is_zero() { self.double() } else { Jacobian::INFINITY };
        }
        let hh = h.square();
        let hhh = h.mul(&hh);
        let v = self.x.mul(&hh);
        let x3 = r.square().sub(&hhh).sub(&v.double());
        let y3 = r.mul(&v.sub(&x3)).sub(&self.y.mul(&hhh));
        let z3 = self.z.mul(&h);
        Jacobian { x: x3, y: y3, z: z3 }
    }
}

/// Comb teeth: bits of a scalar that share one table lookup are 256 / TEETH apart.
const TEETH: usize = 8;
const SPACING: u32 = 32;
const ENTRIES: usize = (1 << TEETH) - 1;

/// The comb table of a point P: `points[i - 1] = sum over set bits j of i of 2^(32 j) P`.
#[derive(Clone)]
pub(super) struct CombTable {
    points: [Affine; ENTRIES],
}

impl CombTable {
    /// The table of a finite point of the group; `None` only if some entry is the point at
    /// infinity, which cannot happen for a point of order n (no nonzero 0/1 combination of the
    /// 2^(32 j) is a multiple of n).
    pub(super) fn new(p: &Affine) -> Option<Box<CombTable>> {
        let mut bases_jac = [Jacobian::from_affine(p); TEETH];
        let mut cur = Jacobian::from_affine(p);
        for base in bases_jac.iter_mut().skip(1) {
            for _ in 0..SPACING {
                cur = cur.double();
            }
            *base = cur;
        }
        let mut bases = [*p; TEETH];
        batch_to_affine(&bases_jac, &mut bases)?;
        // All 2^TEETH subset sums in Jacobian coordinates, index 0 = infinity (unused).
        let mut jac = [Jacobian::INFINITY; ENTRIES + 1];
        for idx in 1..=ENTRIES {
            let top = idx.checked_ilog2()?;
            let rest = idx ^ (1 << top);
            let base = bases.get(top as usize)?;
            let sum = jac.get(rest)?.add_affine(base);
            *jac.get_mut(idx)? = sum;
        }
        let mut points = [*p; ENTRIES];
        batch_to_affine(jac.get(1..)?, &mut points)?;
        Some(Box::new(CombTable { points }))
    }

    fn entry(&self, idx: usize) -> Option<&Affine> {
        self.points.get(idx.wrapping_sub(1))
    }
}

/// Converts `jac` to affine into `out` (same length) with one inversion (Montgomery's trick);
/// `None` if any point is at infinity.
fn batch_to_affine(jac: &[Jacobian], out: &mut [Affine]) -> Option<()> {
    if jac.len() != out.len() || jac.len() > ENTRIES {
        return None;
    }
    let mut before = [Fe::ONE; ENTRIES]; // product of the Z of all earlier points
    let mut acc = Fe::ONE;
    for (b, j) in before.iter_mut().zip(jac) {
        *b = acc;
        acc = acc.mul(&j.z);
    }
    let mut inv = acc.invert()?; // None if any Z is zero
    for ((o, j), b) in out.iter_mut().zip(jac).zip(before.iter().take(jac.len())).rev() {
        let zinv = inv.mul(b);
        inv = inv.mul(&j.z);
        let zinv2 = zinv.square();
        *o = Affine { x: j.x.mul(&zinv2), y: j.y.mul(&zinv2).mul(&zinv) };
    }
    Some(())
}

/// The table index of comb column `col` of scalar `k`: bit `32 j + col` of k is bit j of it.
#[inline(always)]
fn column(k: &Limbs, col: u32) -> usize {
    k.iter().rev().fold(0, |acc, &w| (acc << 1) | ((w >> col) & 1) as usize)
}

/// `k1 P1 + k2 P2` for the tables of P1 and P2 (scalars are plain 256-bit integers). `None` only
/// on a malformed table index, which the 8-bit columns cannot produce.
pub(super) fn mul2(t1: &CombTable, k1: &Limbs, t2: &CombTable, k2: &Limbs) -> Option<Jacobian> {
    let mut acc = Jacobian::INFINITY;
    for col in (0..SPACING).rev() {
        if !acc.is_infinity() {
            acc = acc.double();
        }
        let i1 = column(k1, col);
        if i1 != 0 {
            acc = acc.add_affine(t1.entry(i1)?);
        }
        let i2 = column(k2, col);
        if i2 != 0 {
            acc = acc.add_affine(t2.entry(i2)?);
        }
    }
    Some(acc)
}
