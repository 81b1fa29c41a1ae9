//! The root context: loads the configuration, owns JWKS fetches, and wakes waiting requests.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType, LogLevel, MapType};

use super::http::{apply, HttpFilter};
use super::metrics::{self, Counter};
use super::shared::{self, SharedKeys};
use super::{
    decide_current, flush_counters, log, log_debug, now_ms, refresh_log_level, Shared, SharedRef, Waiter, BUSY_TICK,
    IDLE_TICK,
};
use crate::config;
use crate::jwt::cache::VerifiedTokens;
use crate::jwt::jwks::{parse_fetched_jwks, KeySet, MAX_JWKS_BYTES};
use crate::keys::entry::ttl_from_cache_control;
use crate::keys::{FetchReason, FetchedOnce, KeyCache};
use crate::policy::Decision;

pub struct Root {
    shared: SharedRef,
    /// Dispatched JWKS calls: token -> URL.
    calls: HashMap<u32, String>,
}

/// Why a fetch failed, for its counter.
enum FetchFailure {
    Unreachable,
    Status,
    Invalid,
    TooLarge,
    Dispatch,
    Lost,
}

impl FetchFailure {
    fn counter(&self) -> Counter {
        match self {
            FetchFailure::Unreachable => Counter::FetchFailedUnreachable,
            FetchFailure::Status => Counter::FetchFailedStatus,
            FetchFailure::Invalid => Counter::FetchFailedInvalid,
            FetchFailure::TooLarge => Counter::FetchFailedTooLarge,
            FetchFailure::Dispatch => Counter::FetchFailedDispatch,
            FetchFailure::Lost => Counter::FetchFailedLost,
        }
    }
}

impl Root {
    pub fn new(context_id: u32) -> Self {
        let shared = Shared { root_context_id: context_id, ..Shared::default() };
        Root { shared: Rc::new(RefCell::new(shared)), calls: HashMap::new() }
    }

    /// Records a failed fetch: in the shared record (backoff), a warning and the counters.
    fn fetch_failed(&self, url: &str, kind: FetchFailure, error: &str, now: u64) {
        log(LogLevel::Warn, &format!("apirule: JWKS {url} fetch failed: {error}"));
        metrics::inc(Counter::JwksFetchFailed);
        metrics::inc(kind.counter());
        let mut s = self.shared.borrow_mut();
        let s = &mut *s;
        let jitter = shared::jitter(s.shared_keys.vm_id, now);
        s.shared_keys.failed(&mut s.cache, url, error, now, jitter);
    }

    /// Starts fetches for every URL waiters need or whose set is due for a background refresh,
    /// where the shared state allows one and no other worker holds it.
    fn start_fetches(&mut self, now: u64) {
        let (config, wanted, timeout) = {
            let mut s = self.shared.borrow_mut();
            let s = &mut *s;
            let Some(config) = s.config.clone() else {
                return;
            };
            let urls = waited_urls(&s.waiters);
            let mut wanted = Vec::new();
            for url in urls {
                let reason = s.cache.reason_for_waiter(&url, now);
                if s.shared_keys.try_start(&mut s.cache, &url, reason, now) {
                    wanted.push(url);
                }
            }
            for url in s.cache.refresh_due(now) {
                if !wanted.contains(&url) && s.shared_keys.try_start(&mut s.cache, &url, FetchReason::Refresh, now) {
                    wanted.push(url);
                }
            }
            (config, wanted, Duration::from_millis(s.cache.settings().fetch_timeout_ms))
        };
        for url in wanted {
            let Some(endpoint) = config.jwks.get(&url) else {
                continue;
            };
            let headers = vec![
                (":method", "GET"),
                (":path", endpoint.path.as_str()),
                (":authority", endpoint.authority.as_str()),
                ("accept", "application/json"),
                ("user-agent", "apirule-wasm"),
            ];
            match hostcalls::dispatch_http_call(&endpoint.cluster, headers, None, vec![], timeout) {
                Ok(token) => {
                    self.calls.insert(token, url.clone());
                    log_debug(|| format!("apirule: fetching JWKS {url} via cluster {}", endpoint.cluster));
                }
                Err(status) => self.fetch_failed(
                    &url,
                    FetchFailure::Dispatch,
                    &format!("dispatch to cluster {} failed: {status:?}", endpoint.cluster),
                    now,
                ),
            }
        }
    }

    /// Decides every waiter again (after adopting what any worker fetched for its URLs); resumes
    /// or answers those that no longer need to wait, and denies those past `maxWaitMs`.
    fn wake_waiters(&mut self, now: u64) {
        let (config, waiters, root_id, max_wait_ms) = {
            let mut s = self.shared.borrow_mut();
            let s = &mut *s;
            let Some(config) = s.config.clone() else {
                return;
            };
            let urls = waited_urls(&s.waiters);
            for url in &urls {
                s.shared_keys.sync(&mut s.cache, url);
            }
            let max_wait = s.cache.settings().max_wait_ms;
            (config, std::mem::take(&mut s.waiters), s.root_context_id, max_wait)
        };
        let mut still_waiting = Vec::new();
        for mut waiter in waiters {
            let decision = {
                let mut s = self.shared.borrow_mut();
                let s = &mut *s;
                s.answers.fresh = std::mem::take(&mut waiter.answers);
                // A refresh this decision finds due is started by `start_fetches`, right after.
                let (d, _) = decide_current(s, now, |s: &mut Shared| {
                    let view = FetchedOnce { cache: &s.cache, seen: &waiter.seen };
                    config.policy.decide_with(&waiter.request, now, &view, &mut s.tokens, &mut s.answers)
                });
                waiter.answers = std::mem::take(&mut s.answers.fresh);
                flush_counters(s);
                if let Decision::NeedKeys { urls } = &d {
                    for url in urls {
                        if !waiter.seen.iter().any(|(u, _)| u == url) {
                            waiter.seen.push(FetchedOnce::mark(&s.cache, url, now));
                        }
                    }
                }
                d
            };
            let decision = match decision {
                Decision::NeedKeys { urls } if now < waiter.since_ms.saturating_add(max_wait_ms) => {
                    waiter.urls = urls;
                    still_waiting.push(waiter);
                    continue;
                }
                Decision::NeedKeys { .. } => {
                    Decision::deny_outside_rules(&waiter.request, 401, "JWKS did not arrive in time", true)
                }
                // Its introspection answers travel with the waiter, so no new call is due here.
                Decision::NeedCall { .. } => {
                    Decision::deny_outside_rules(&waiter.request, 500, "introspection needed after keys", false)
                }
                d => d,
            };
            if hostcalls::set_effective_context(waiter.context_id).is_ok() {
                apply(&decision, &waiter.request, true, waiter.dry_run.as_deref());
            }
        }
        let _ = hostcalls::set_effective_context(root_id);
        self.shared.borrow_mut().waiters.extend(still_waiting);
    }

    fn adjust_tick(&self) {
        // Also busy while some worker's fetch is in flight: its set is adopted within a tick.
        let s = self.shared.borrow();
        let busy = !s.waiters.is_empty() || s.cache.any_in_flight(now_ms());
        let _ = hostcalls::set_tick_period(if busy { BUSY_TICK } else { IDLE_TICK });
    }
}

impl Context for Root {
    fn on_http_call_response(&mut self, token_id: u32, _num_headers: usize, body_size: usize, _num_trailers: usize) {
        let Some(url) = self.calls.remove(&token_id) else {
            return;
        };
        let now = now_ms();
        let header = |name: &str| {
            hostcalls::get_map_value_bytes(MapType::HttpCallResponseHeaders, name)
                .ok()
                .flatten()
                .and_then(|s| String::from_utf8(s).ok())
        };
        let status = header(":status").and_then(|s| s.parse::<u16>().ok());
        let fetched = match status {
            None => Err((FetchFailure::Unreachable, "no response (connection failed or timed out)".to_owned())),
            Some(code) if !(200..300).contains(&code) => Err((FetchFailure::Status, format!("HTTP status {code}"))),
            Some(_) if body_size > MAX_JWKS_BYTES => {
                Err((FetchFailure::TooLarge, format!("body of {body_size} bytes is over {MAX_JWKS_BYTES}")))
            }
            Some(_) => {
                let body = hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size)
                    .ok()
                    .flatten()
                    .unwrap_or_default();
                match parse_fetched_jwks(&body) {
                    Ok(keys) => Ok((body, keys)),
                    Err(e) => Err((FetchFailure::Invalid, e.to_string())),
                }
            }
        };
        match fetched {
            Ok((body, keys)) => {
                metrics::inc(Counter::JwksFetchOk);
                let mut s = self.shared.borrow_mut();
                let s = &mut *s;
                let ttl = ttl_from_cache_control(header("cache-control").as_deref(), s.cache.settings());
                log_key_changes(&url, s.cache.current_set(&url).as_deref(), &keys);
                s.shared_keys.succeeded(&mut s.cache, &url, &body, keys, ttl, now);
            }
            Err((kind, error)) => self.fetch_failed(&url, kind, &error, now),
        }
        self.wake_waiters(now);
        self.start_fetches(now);
        self.adjust_tick();
    }
}

/// Every URL some waiter waits for, once.
fn waited_urls(waiters: &[Waiter]) -> Vec<String> {
    let mut urls: Vec<String> = waiters.iter().flat_map(|w| w.urls.iter().cloned()).collect();
    urls.sort();
    urls.dedup();
    urls
}

/// An info line when a fetch changed the kids of a URL's set (rotation), a debug line otherwise.
fn log_key_changes(url: &str, old: Option<&KeySet>, new: &KeySet) {
    let kids = |set: &KeySet| -> Vec<String> {
        let mut k: Vec<String> = set.keys.iter().map(|j| j.kid.clone().unwrap_or_else(|| "(no kid)".into())).collect();
        k.sort();
        k
    };
    let after = kids(new);
    let before = old.map(kids).unwrap_or_default();
    let added: Vec<&String> = after.iter().filter(|k| !before.contains(k)).collect();
    let removed: Vec<&String> = before.iter().filter(|k| !after.contains(k)).collect();
    if added.is_empty() && removed.is_empty() {
        log_debug(|| format!("apirule: JWKS {url}: {} keys ({} skipped), unchanged", new.keys.len(), new.skipped));
    } else {
        log(
            LogLevel::Info,
            &format!("apirule: JWKS {url}: kids added {added:?}, removed {removed:?} ({} skipped)", new.skipped),
        );
    }
}

impl RootContext for Root {
    fn on_vm_start(&mut self, _vm_configuration_size: usize) -> bool {
        true
    }

    fn on_configure(&mut self, plugin_configuration_size: usize) -> bool {
        let bytes = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, plugin_configuration_size)
            .ok()
            .flatten()
            .unwrap_or_default();
        refresh_log_level();
        match config::parse(&bytes) {
            Ok(cfg) => {
                log(
                    LogLevel::Info,
                    &format!(
                        "apirule: configured {} APIRule host(s), {} access rule(s), {} JWKS URL(s)",
                        cfg.policy.hosts().len(),
                        cfg.policy.access_rules().len(),
                        cfg.jwks.len()
                    ),
                );
                let mut s = self.shared.borrow_mut();
                if s.cache.settings() != &cfg.cache {
                    s.cache = KeyCache::new(cfg.cache.clone());
                }
                s.shared_keys = SharedKeys::join(cfg.jwks.keys());
                // Verdicts do not depend on the rules, but a new configuration starts clean.
                s.tokens = VerifiedTokens::new(cfg.token_cache_entries);
                s.config = Some(Rc::new(cfg));
                drop(s);
                metrics::define();
                let _ = hostcalls::set_tick_period(IDLE_TICK);
                true
            }
            Err(e) => {
                log(LogLevel::Critical, &format!("apirule: configuration refused: {e}"));
                false
            }
        }
    }

    fn on_tick(&mut self) {
        refresh_log_level();
        let now = now_ms();
        let lost = {
            let mut s = self.shared.borrow_mut();
            let s = &mut *s;
            let owner = s.shared_keys.vm_id;
            s.cache.expire_lost_fetches(owner, now, shared::jitter(owner, now))
        };
        for url in &lost {
            // Lost answers are failures like any other, in the shared record too.
            self.fetch_failed(url, FetchFailure::Lost, "no answer within the fetch timeout", now);
        }
        self.calls.retain(|_, url| !lost.contains(url));
        {
            // Another worker's fetch lands in the shared record only: look at it on every tick,
            // so its set is adopted within a tick, not when the lease would have run out.
            let mut s = self.shared.borrow_mut();
            let s = &mut *s;
            for url in s.cache.fetching_elsewhere(s.shared_keys.vm_id, now) {
                s.shared_keys.sync(&mut s.cache, &url);
            }
        }
        // Waiters first: one whose fetch finished on another worker is answered before its URL
        // could start a second fetch for it.
        self.wake_waiters(now);
        self.start_fetches(now);
        self.adjust_tick();
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(HttpFilter::new(context_id, Rc::clone(&self.shared))))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// Registers a paused request; the root's next tick (set to fire now) dispatches what it needs.
/// Gives the waiter back when no more may wait (fail closed: the caller denies it).
pub(super) fn register_waiter(shared: &SharedRef, waiter: Waiter) -> Result<(), Waiter> {
    let Ok(mut s) = shared.try_borrow_mut() else {
        return Err(waiter);
    };
    if s.waiters.len() >= super::MAX_WAITERS {
        return Err(waiter);
    }
    s.waiters.push(waiter);
    Ok(())
}
