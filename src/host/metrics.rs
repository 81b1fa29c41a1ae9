//! Counters in Envoy's stats, defined once per VM. Envoy shows them with its prefix for wasm
//! metrics: `wasmcustom.apirule_*` (the README lists them).

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
    DeniedBadRequest,
    DeniedUnauthorized,
    DeniedForbidden,
    DeniedNotFound,
    DeniedOther,
    FetchFailedUnreachable,
    FetchFailedStatus,
    FetchFailedInvalid,
    FetchFailedTooLarge,
    FetchFailedDispatch,
    FetchFailedLost,
    RequestsPaused,
    TokenCacheHits,
    StaleKeySetServes,
    /// Decisions of dry-run APIRules (counted instead of `Allowed` / `Denied`).
    DryRunWouldAllow,
    DryRunWouldDeny,
}

const NAMES: [&str; 22] = [
    "apirule_requests_allowed",
    "apirule_requests_denied",
    "apirule_requests_passed_through",
    "apirule_jwks_fetch_ok",
    "apirule_jwks_fetch_failed",
    "apirule_authorization_calls",
    "apirule_requests_denied_bad_request",
    "apirule_requests_denied_unauthorized",
    "apirule_requests_denied_forbidden",
    "apirule_requests_denied_not_found",
    "apirule_requests_denied_other",
    "apirule_jwks_fetch_failed_unreachable",
    "apirule_jwks_fetch_failed_status",
    "apirule_jwks_fetch_failed_invalid",
    "apirule_jwks_fetch_failed_too_large",
    "apirule_jwks_fetch_failed_dispatch",
    "apirule_jwks_fetch_failed_lost",
    "apirule_requests_paused",
    "apirule_token_cache_hits",
    "apirule_jwks_stale_serves",
    "apirule_dry_run_would_allow",
    "apirule_dry_run_would_deny",
];

const COUNT: usize = NAMES.len();

thread_local! {
    static IDS: Cell<Option<[u32; COUNT]>> = const { Cell::new(None) };
}

/// Defines the counters; called from `on_configure`.
pub fn define() {
    let mut ids = [0u32; COUNT];
    for (slot, name) in ids.iter_mut().zip(NAMES) {
        match hostcalls::define_metric(MetricType::Counter, name) {
            Ok(id) => *slot = id,
            Err(_) => return,
        }
    }
    IDS.with(|c| c.set(Some(ids)));
}

pub fn inc(counter: Counter) {
    add(counter, 1);
}

pub fn add(counter: Counter, n: u64) {
    if n == 0 {
        return;
    }
    if let Some(id) = IDS.with(Cell::get).and_then(|ids| ids.get(counter as usize).copied()) {
        let _ = hostcalls::increment_metric(id, i64::try_from(n).unwrap_or(i64::MAX));
    }
}

/// The per-reason counter of a deny with `status`.
pub fn denied(status: u16) -> Counter {
    match status {
        400 => Counter::DeniedBadRequest,
        401 => Counter::DeniedUnauthorized,
        403 => Counter::DeniedForbidden,
        404 => Counter::DeniedNotFound,
        _ => Counter::DeniedOther,
    }
}
