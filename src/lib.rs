//! apirule-wasm: Kyma APIRule enforcement (Oathkeeper's semantics for v1, Istio's for v2) as a
//! proxy-wasm filter.
//!
//! Everything that decides lives in plain Rust modules (`config`, `policy`, `jwt`, `keys`,
//! `calls`, and
//! `request`, the request view and path normalisation they share) that are tested natively;
//! `host` is the only module that talks to the proxy-wasm ABI.
#![cfg_attr(
    not(test),
    deny(
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
