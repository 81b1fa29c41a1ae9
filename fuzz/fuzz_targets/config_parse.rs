//! `config::parse` on arbitrary bytes, and on valid plugin configurations (APIRules of every
//! version, every option) mutated structurally: no panic, errors that name what they refuse, a
//! loaded configuration that is usable, answers independent of whitespace and repetition.
//! See fuzz/src/config.rs.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(init: apirule_wasm_fuzz::config::self_check(), |data: &[u8]| {
    apirule_wasm_fuzz::config::check(data);
});
