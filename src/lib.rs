//! apirule-wasm: Kyma APIRule enforcement (Oathkeeper's semantics for v1, Istio's for v2) as a
//! proxy-wasm filter.
//!
//! Everything that decides lives in plain Rust modules (`config`, `policy`, `jwt`, `keys`,
//! `calls`, and
//! `request`, the request view and path normalisation they share) that are tested natively;
//! `host` is the only module that talks to the proxy-wasm ABI.
//!
//! No panic, by construction: outside tests, clippy denies what can panic (`unwrap`, `expect`,
//! indexing, `panic!`) and arithmetic that can overflow or divide by zero
//! (`arithmetic_side_effects`): sizes and offsets from input use `checked_*` and refuse, counters
//! and times `saturating_*`. The hand-written crypto (`jwt::rsa`, `jwt::ecdsa`, `jwt::p256`) keeps
//! its plain limb arithmetic under a per-function `allow` that states why it cannot overflow
//! (so the tests' overflow checks still guard those bounds).
#![cfg_attr(
    not(test),
    deny(
        clippy::arithmetic_side_effects,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::unreachable,
        clippy::todo,
        clippy::unimplemented
    )
)]

pub mod calls;
pub mod config;
pub mod jwt;
pub mod keys;
pub mod policy;
pub mod request;

#[cfg(target_arch = "wasm32")]
mod host;
