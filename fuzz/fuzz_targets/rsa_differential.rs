//! Open-ended form of `tests/rsa_differential.rs`: libFuzzer chooses key, algorithm, message and
//! corruption; `rsa_diff::check` panics when the hand-written verifier and the `rsa` crate
//! disagree, or when an uncorrupted signature does not verify. Run with `make fuzz`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/rsa_diff/mod.rs"]
mod rsa_diff;

fuzz_target!(|data: &[u8]| {
    rsa_diff::check(data);
});
