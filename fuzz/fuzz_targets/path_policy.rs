//! Arbitrary `:path`s through `request::path` (against the path rules of docs/security.md and
//! RFC 3986, written in the harness) and `Policy::decide` on an open `/public/...` and a protected
//! `/admin...` rule: a path that resolves to `/admin...` is never allowed without a token. See
//! fuzz/src/paths.rs.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    apirule_wasm_fuzz::paths::check(data);
});
