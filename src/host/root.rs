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
use super::{log, log_debug, now_ms, refresh_log_level, Shared, SharedRef, Waiter, BUSY_TICK, IDLE_TICK};
use crate::config;
use crate::jwt::cache::VerifiedTokens;
use crate::jwt::jwks::{parse_jwks, MAX_JWKS_BYTES};
use crate::keys::KeyCache;
use crate::policy::Decision;

/// Extra time a waiter may wait beyond the fetch timeout before it is denied regardless.
const WAITER_GRACE_MS: u64 = 2_000;

pub struct Root {
    shared: SharedRef,
    /// Dispatched JWKS calls: token -> URL.
    calls: HashMap<u32, String>,
}

impl Root {
    pub fn new(context_id: u32) -> Self {
        let shared = Shared { root_context_id: context_id, ..Shared::default() };
        Root { shared: Rc::new(RefCell::new(shared)), calls: HashMap::new() }
    }

    /// Records a failed fetch: the cache's backoff, a warning and the counter.
    fn fetch_failed(&self, url: &str, error: String, now: u64) {
        log(LogLevel::Warn, &format!("apirule: JWKS {url} fetch failed: {error}"));
        metrics::inc(Counter::JwksFetchFailed);
        self.shared.borrow_mut().cache.fetch_failed(url, error, now);
    }

    /// Starts fetches for every URL waiters need or whose set is due for refresh.
    fn start_fetches(&mut self, now: u64) {
        let (config, wanted, timeout) = {
            let s = self.shared.borrow();
            let Some(config) = s.config.clone() else {
                return;
            };
            let mut wanted: Vec<String> = s.waiters.iter().flat_map(|w| w.urls.iter().cloned()).collect();
            wanted.extend(s.cache.refresh_due(now));
            wanted.sort();
            wanted.dedup();
            wanted.retain(|u| s.cache.should_start_fetch(u, now));
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
            let dispatched = hostcalls::dispatch_http_call(&endpoint.cluster, headers, None, vec![], timeout);
            self.shared.borrow_mut().cache.fetch_started(&url, now);
            match dispatched {
                Ok(token) => {
                    self.calls.insert(token, url.clone());
                    log_debug(|| format!("apirule: fetching JWKS {url} via cluster {}", endpoint.cluster));
                }
                Err(status) => {
                    self.fetch_failed(&url, format!("dispatch to cluster {} failed: {status:?}", endpoint.cluster), now)
                }
            }
        }
    }

    /// Decides every waiter again; resumes or answers those that no longer need to wait.
    fn wake_waiters(&mut self, now: u64) {
        let (config, waiters, root_id, deadline_ms) = {
            let mut s = self.shared.borrow_mut();
            let Some(config) = s.config.clone() else {
                return;
            };
            let deadline = s.cache.settings().fetch_timeout_ms.saturating_add(WAITER_GRACE_MS);
            (config, std::mem::take(&mut s.waiters), s.root_context_id, deadline)
        };
        let mut still_waiting = Vec::new();
        for mut waiter in waiters {
            let decision = {
                let mut s = self.shared.borrow_mut();
                let s = &mut *s;
                s.answers.fresh = std::mem::take(&mut waiter.answers);
                let d = config.policy.decide_with(&waiter.request, now, &s.cache, &mut s.tokens, &mut s.answers);
                waiter.answers = std::mem::take(&mut s.answers.fresh);
                d
            };
            let decision = match decision {
                Decision::NeedKeys { urls } if now < waiter.since_ms.saturating_add(deadline_ms) => {
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
                apply(&decision, &waiter.request, true);
            }
        }
        let _ = hostcalls::set_effective_context(root_id);
        self.shared.borrow_mut().waiters.extend(still_waiting);
    }

    fn adjust_tick(&self) {
        let busy = !self.shared.borrow().waiters.is_empty();
        let _ = hostcalls::set_tick_period(if busy { BUSY_TICK } else { IDLE_TICK });
    }
}

impl Context for Root {
    fn on_http_call_response(&mut self, token_id: u32, _num_headers: usize, body_size: usize, _num_trailers: usize) {
        let Some(url) = self.calls.remove(&token_id) else {
            return;
        };
        let now = now_ms();
        let status = hostcalls::get_map_value_bytes(MapType::HttpCallResponseHeaders, ":status")
            .ok()
            .flatten()
            .and_then(|s| String::from_utf8(s).ok())
            .and_then(|s| s.parse::<u16>().ok());
        let result = match status {
            None => Err("no response (connection failed or timed out)".to_owned()),
            Some(code) if !(200..300).contains(&code) => Err(format!("HTTP status {code}")),
            Some(_) if body_size > MAX_JWKS_BYTES => Err(format!("body of {body_size} bytes is too large")),
            Some(_) => {
                let body = hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size).ok().flatten();
                parse_jwks(&body.unwrap_or_default()).map_err(|e| e.to_string())
            }
        };
        match result {
            Ok(keys) => {
                log_debug(|| format!("apirule: JWKS {url}: {} keys ({} skipped)", keys.keys.len(), keys.skipped));
                metrics::inc(Counter::JwksFetchOk);
                self.shared.borrow_mut().cache.fetch_succeeded(&url, keys, now);
            }
            Err(error) => self.fetch_failed(&url, error, now),
        }
        self.wake_waiters(now);
        self.start_fetches(now);
        self.adjust_tick();
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
        let lost = self.shared.borrow_mut().cache.expire_lost_fetches(now);
        for url in &lost {
            // The cache already recorded the failure; count and log it like any other.
            log(LogLevel::Warn, &format!("apirule: JWKS {url} fetch failed: no answer within the fetch timeout"));
            metrics::inc(Counter::JwksFetchFailed);
        }
        self.calls.retain(|_, url| !lost.contains(url));
        self.start_fetches(now);
        self.wake_waiters(now);
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
