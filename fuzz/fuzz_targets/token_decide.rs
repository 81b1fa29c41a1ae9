//! Fuzzed tokens (raw, mutated from validly signed ones, signed with what an attacker has) in
//! fuzzed places through `Policy::decide` on v1 and v2 jwt rules: never allowed unless the
//! request carries a token the reference crates verify under the key set; the verified-token
//! cache never changes an answer. See fuzz/src/token.rs.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(init: { apirule_wasm_fuzz::token::World::get(); }, |data: &[u8]| {
    apirule_wasm_fuzz::token::check(data);
});
