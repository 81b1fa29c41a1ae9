//! `path_policy` without the exception for encoded `/`: expected to fail (on `/public/..%2Fadmin`
//! and the like) until the escaped-slash fix of `src/request/path.rs` lands; then it joins
//! `make fuzz-smoke`. See fuzz/src/paths.rs and docs/security.md "Fuzzing".
#![no_main]

use apirule_wasm_fuzz::paths::{check, Strictness};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    check(data, Strictness::Strict);
});
