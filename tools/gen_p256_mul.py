#!/usr/bin/env python3
"""Prints the unrolled 8x32-bit multiply, square, add, subtract and carry propagation of
src/jwt/p256/field.rs.

The filter is built at opt-level "z", which does not unroll loops; these straight-line versions
keep every limb in a local and use only constant array indexes (clippy's indexing_slicing accepts
those). Run: python3 tools/gen_p256_mul.py > /tmp/mul.rs and paste over the generated section.
Each function states why its plain arithmetic cannot overflow and allows clippy's
arithmetic_side_effects for it (the crate denies it elsewhere).
"""

ALLOW = "#[allow(clippy::arithmetic_side_effects)]"


def mul():
    out = ["/// The 512-bit product `a * b` as 16 little-endian 32-bit words (generated).",
           "#[inline(always)]",
           "// No overflow: each t = c + a b + k <= (2^32 - 1) + (2^32 - 1)^2 + (2^32 - 1) = 2^64 - 1.",
           ALLOW,
           "fn mul_wide(a: &[u32; 8], b: &[u32; 8]) -> [u32; 16] {"]
    out += [f"    let a{i} = u64::from(a[{i}]);" for i in range(8)]
    out += [f"    let b{i} = u64::from(b[{i}]);" for i in range(8)]
    out.append("    let mut c = [0u32; 16];")
    out.append("    let mut t: u64;")
    out.append("    let mut k: u64;")
    for i in range(8):
        for j in range(8):
            prev = f"u64::from(c[{i + j}]) + " if i > 0 else ""
            carry = " + k" if j > 0 else ""
            out.append(f"    t = {prev}a{i} * b{j}{carry};")
            out.append(f"    c[{i + j}] = t as u32;")
            out.append("    k = t >> 32;")
        out.append(f"    c[{i + 8}] = k as u32;")
    out.append("    c")
    out.append("}")
    return out


def sqr():
    out = ["/// The 512-bit square `a * a` as 16 little-endian 32-bit words (generated).",
           "#[inline(always)]",
           "// No overflow: as in `mul_wide` for the cross products; the doubling shifts, and the diagonal",
           "// sums add two words and a carry below 2^32 to a word.",
           ALLOW,
           "fn sqr_wide(a: &[u32; 8]) -> [u32; 16] {"]
    out += [f"    let a{i} = u64::from(a[{i}]);" for i in range(8)]
    out.append("    let mut c = [0u32; 16];")
    out.append("    let mut t: u64;")
    out.append("    let mut k: u64;")
    # off-diagonal products a_i * a_j, i < j
    for i in range(7):
        for j in range(i + 1, 8):
            prev = f"u64::from(c[{i + j}]) + " if i > 0 else ""
            carry = " + k" if j > i + 1 else ""
            out.append(f"    t = {prev}a{i} * a{j}{carry};")
            out.append(f"    c[{i + j}] = t as u32;")
            out.append("    k = t >> 32;")
        out.append(f"    c[{i + 8}] = k as u32;")
    # double
    out.append("    k = 0;")
    for w in range(1, 16):
        out.append(f"    t = (u64::from(c[{w}]) << 1) | k;")
        out.append(f"    c[{w}] = t as u32;")
        if w < 15:
            out.append("    k = t >> 32;")
    # add diagonal squares
    out.append("    k = 0;")
    for i in range(8):
        out.append(f"    t = u64::from(c[{2 * i}]) + ((a{i} * a{i}) & 0xffff_ffff) + k;")
        out.append(f"    c[{2 * i}] = t as u32;")
        out.append(f"    t = u64::from(c[{2 * i + 1}]) + ((a{i} * a{i}) >> 32) + (t >> 32);")
        out.append(f"    c[{2 * i + 1}] = t as u32;")
        if i < 7:
            out.append("    k = t >> 32;")
    out.append("    c")
    out.append("}")
    return out


def addsub():
    out = ["/// `a + b` and the carry out (0 or 1) (generated).",
           "#[inline(always)]",
           "// No overflow: t <= 2 (2^32 - 1) + 1.",
           ALLOW,
           "pub(super) fn add8(a: &Limbs, b: &Limbs) -> (Limbs, u32) {",
           "    let mut r = [0u32; 8];",
           "    let mut t: u64;"]
    for i in range(8):
        carry = " + (t >> 32)" if i else ""
        out.append(f"    t = u64::from(a[{i}]) + u64::from(b[{i}]){carry};")
        out.append(f"    r[{i}] = t as u32;")
    out += ["    (r, (t >> 32) as u32)", "}", ""]
    out += ["/// `a - b` modulo 2^256 and the borrow out (0 or 1) (generated).",
            "#[inline(always)]",
            "pub(super) fn sub8(a: &Limbs, b: &Limbs) -> (Limbs, u32) {",
            "    let mut r = [0u32; 8];",
            "    let mut t: u64;"]
    for i in range(8):
        borrow = ".wrapping_sub(t >> 63)" if i else ""
        out.append(f"    t = u64::from(a[{i}]).wrapping_sub(u64::from(b[{i}])){borrow};")
        out.append(f"    r[{i}] = t as u32;")
    out += ["    (r, (t >> 63) as u32)", "}", ""]
    out += ["/// Adds signed 64-bit column sums into `r` (little-endian) and returns the signed carry out",
            "/// of 2^256 (generated).",
            "#[inline(always)]",
            "// No overflow: the column sums of `reduce` are below 2^36 in magnitude and the carries below",
            "// 2^5, so every acc stays far inside an i64.",
            ALLOW,
            "fn add_columns(r: &mut Limbs, t: &[i64; 8]) -> i64 {",
            "    let mut acc: i64 = 0;"]
    for i in range(8):
        out.append(f"    acc += i64::from(r[{i}]) + t[{i}];")
        out.append(f"    r[{i}] = acc as u32;")
        if i < 7:
            out.append("    acc >>= 32;")
    out += ["    acc >> 32", "}"]
    return out


if __name__ == "__main__":
    print("// ---- generated by tools/gen_p256_mul.py: do not edit by hand ----")
    print("\n".join(mul()))
    print()
    print("\n".join(sqr()))
    print()
    print("\n".join(addsub()))
    print("// ---- end of generated code ----")
