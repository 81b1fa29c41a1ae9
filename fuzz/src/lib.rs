//! What the fuzz targets share: the test support of `tests/common` (keys, minted tokens,
//! APIRule builders), a structure-aware JSON mutator, and each target's inputs and invariants
//! (so that `fuzz_targets/*.rs` stay one line each).

#[path = "../../tests/common/mod.rs"]
pub mod common;
pub mod config;
pub mod json_mutate;
pub mod jwks;
pub mod paths;
pub mod token;
