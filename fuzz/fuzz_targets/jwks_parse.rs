//! `parse_jwks` on arbitrary bytes and on a valid key set mutated structurally: every JWK kept
//! exactly or counted as skipped, and every kept key valid for the reference crates.
//! See fuzz/src/jwks.rs.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(init: apirule_wasm_fuzz::jwks::self_check(), |data: &[u8]| {
    apirule_wasm_fuzz::jwks::check(data);
});
