//! Counters in Envoy's stats (`wasmcustom.apirule_*`), defined once per VM.

use std::cell::Cell;

use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;

/// The counters the filter keeps.
#[derive(Clone, Copy)]
pub enum Counter {
    Allowed,
    Denied,
    PassedThrough,
    JwksFetchOk,
    JwksFetchFailed,
    AuthorizationCalls,
}

const NAMES: [&str; 6] = [
    "apirule_requests_allowed",
    "apirule_requests_denied",
    "apirule_requests_passed_through",
    "apirule_jwks_fetch_ok",
    "apirule_jwks_fetch_failed",
    "apirule_authorization_calls",
];

thread_local! {
    static IDS: Cell<Option<[u32; 6]>> = const { Cell::new(None) };
}

/// Defines the counters; called from `on_configure`.
pub fn define() {
    let mut ids = [0u32; 6];
    for (slot, name) in ids.iter_mut().zip(NAMES) {
        match hostcalls::define_metric(MetricType::Counter, name) {
            Ok(id) => *slot = id,
            Err(_) => return,
        }
    }
    IDS.with(|c| c.set(Some(ids)));
}

pub fn inc(counter: Counter) {
    if let Some(id) = IDS.with(Cell::get).and_then(|ids| ids.get(counter as usize).copied()) {
        let _ = hostcalls::increment_metric(id, 1);
    }
}
