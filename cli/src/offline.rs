//! Deciding requests offline with the filter's policy: one key set stands for every JWKS URL, and
//! nothing is fetched or called.

use std::rc::Rc;

use apirule_wasm::jwt::jwks::KeySet;
use apirule_wasm::keys::KeyStore;
use apirule_wasm::policy::{Decision, Policy};
use apirule_wasm::request::Request;

/// The keys an offline decision may use.
pub struct OfflineKeys {
    /// Served for every JWKS URL; `None`: no key set was given, so a token cannot be decided.
    pub set: Option<Rc<KeySet>>,
}

impl KeyStore for OfflineKeys {
    fn usable(&self, _url: &str, _now_ms: u64) -> Option<Rc<KeySet>> {
        self.set.clone()
    }

    /// Without a set the policy asks for keys, which `decide` reports as undecidable; with one,
    /// that set is final (as after the filter's one refetch per request).
    fn may_fetch(&self, _url: &str, _now_ms: u64) -> bool {
        self.set.is_none()
    }

    fn may_refetch(&self, _url: &str, _now_ms: u64) -> bool {
        false
    }
}

/// The filter's decision at `now_ms`: `NeedKeys` only when no set was given, `NeedCall` when an
/// introspection or ext_authz answer is needed.
pub fn decide(policy: &Policy, req: &Request, now_ms: u64, keys: &OfflineKeys) -> Decision {
    policy.decide(req, now_ms, keys)
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
