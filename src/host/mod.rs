//! The only module that touches proxy-wasm: translates host callbacks into calls of the pure core
//! (`config::parse`, `Policy::decide`, `KeyCache`) and the core's answers back into host calls.
//!
//! JWKS fetches are always dispatched by a root context (so a client that goes away cannot
//! cancel a fetch others wait for), and one worker VM fetches a URL for the whole proxy
//! (`shared`): an HTTP context that needs keys first adopts what another worker fetched; if it
//! still needs them it registers as a waiter and sets the root's tick to fire at once. The root
//! takes the URL's lease and dispatches (or finds another worker holding it), and when the answer
//! (or a failure) comes, or on its next tick when another worker fetched, decides every waiter
//! again and resumes or answers it. Introspection calls are dispatched by the
//! HTTP context whose request needs them (the answer is for that request, and kept for others only
//! when its rule has a cache TTL).

mod http;
mod metrics;
mod root;
mod shared;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

use proxy_wasm::hostcalls;
use proxy_wasm::types::LogLevel;

use crate::calls::{Answer, Answers};
use crate::config::Config;
use crate::jwt::cache::VerifiedTokens;
use crate::keys::KeyCache;
use crate::policy::Decision;
use crate::request::Request;

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|context_id| Box::new(root::Root::new(context_id)));
}}

/// A request paused until JWKS arrive.
struct Waiter {
    context_id: u32,
    request: Request,
    since_ms: u64,
    /// JWKS URLs it waits for.
    urls: Vec<String>,
    /// Per URL, the fetch count after which waiting cannot help (`keys::FetchedOnce`).
    seen: Vec<(String, u64)>,
    /// Answers of the introspection calls this request already made (decided with again).
    answers: Vec<((String, String), Answer)>,
    /// Its APIRule, when that is in dry-run mode (see `http::apply`).
    dry_run: Option<Rc<str>>,
}

/// Most requests one VM keeps paused for keys; beyond that new ones are denied (fail closed).
const MAX_WAITERS: usize = 10_000;

/// State shared by the root context and the HTTP contexts of one VM (one worker thread).
#[derive(Default)]
struct Shared {
    config: Option<Rc<Config>>,
    cache: KeyCache,
    tokens: VerifiedTokens,
    /// Introspection answers kept for rules with a cache TTL.
    answers: Answers,
    waiters: Vec<Waiter>,
    root_context_id: u32,
    /// This VM's handle on the JWKS state all workers share.
    shared_keys: shared::SharedKeys,
}

/// Moves what the pure core counted (verified-token cache hits, stale key sets served) into
/// Envoy's counters.
fn flush_counters(s: &mut Shared) {
    metrics::add(metrics::Counter::TokenCacheHits, std::mem::take(&mut s.tokens.hits));
    metrics::add(metrics::Counter::StaleKeySetServes, s.cache.take_stale_serves());
}

type SharedRef = Rc<RefCell<Shared>>;

/// Decides with `decide`, and when that used a key set that may be behind the proxy's (past its
/// refresh point: another worker may have refreshed it already), adopts the newer sets from
/// shared data and decides again. So a removed key stops verifying on every worker at its first
/// decision after any worker refreshed, not when this worker's own tick gets to it. Also says
/// whether such a set is due for a refresh nobody has started (the caller wakes the root).
fn decide_current(s: &mut Shared, now: u64, mut decide: impl FnMut(&mut Shared) -> Decision) -> (Decision, bool) {
    // Notes left by decisions that did not go through here (already compared, or waiting).
    drop(s.cache.take_possibly_behind());
    let decision = decide(s);
    let synced = s.shared_keys.sync_behind(&mut s.cache, now);
    if !synced.changed {
        return (decision, synced.refresh_due);
    }
    let decision = decide(s);
    drop(s.cache.take_possibly_behind());
    (decision, synced.refresh_due)
}

/// Tick period while requests wait for keys: their deadline is checked, and keys another worker
/// fetched are picked up, at this granularity.
const BUSY_TICK: Duration = Duration::from_millis(20);
/// Tick period otherwise (background refreshes at 90% of a set's TTL, and their retries, start
/// at this granularity).
const IDLE_TICK: Duration = Duration::from_millis(250);
/// Fire the root's tick as soon as possible (a waiter needs a fetch dispatched).
const NOW_TICK: Duration = Duration::from_millis(1);

fn now_ms() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn log(level: LogLevel, message: &str) {
    let _ = hostcalls::log(level, message);
}

thread_local! {
    static DEBUG_ENABLED: Cell<bool> = const { Cell::new(true) };
}

/// Reads Envoy's log level for this plugin (at configure time and on every tick: an operator can
/// change it at run time), so debug lines are only formatted when they will be written.
fn refresh_log_level() {
    let debug = hostcalls::get_log_level().map_or(true, |level| matches!(level, LogLevel::Trace | LogLevel::Debug));
    DEBUG_ENABLED.with(|d| d.set(debug));
}

/// Logs at debug level; `message` is only built when debug logging is on (it is off in
/// production, and formatting every allow and deny would cost more than deciding them).
fn log_debug(message: impl FnOnce() -> String) {
    if DEBUG_ENABLED.with(Cell::get) {
        log(LogLevel::Debug, &message());
    }
}
