//! The JWKS cache as a pure state machine: time comes in as a parameter, fetches are requested
//! and reported by the host. One entry per JWKS URL.
//!
//! States of an entry: never fetched; fetching (maybe with an older set); fresh (set younger
//! than `ttl`); stale (older, still served while a refresh runs or the IdP fails, up to
//! `max_stale`); failed (no usable set, retry after a backoff).

use std::collections::HashMap;
use std::rc::Rc;

use crate::jwt::jwks::KeySet;

/// Cache timing, in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheSettings {
    /// A fetched set is fresh this long; then it is refreshed in the background.
    pub ttl_ms: u64,
    /// How long past `ttl` an old set may still be used while refreshes fail.
    pub max_stale_ms: u64,
    /// Earliest refetch after a successful fetch when a token names an unknown `kid`.
    pub min_refetch_ms: u64,
    /// How long one fetch may take (also the dispatch timeout).
    pub fetch_timeout_ms: u64,
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings { ttl_ms: 300_000, max_stale_ms: 3_600_000, min_refetch_ms: 10_000, fetch_timeout_ms: 1_000 }
    }
}

/// Longest wait between retries of a failing JWKS URL.
const MAX_BACKOFF_MS: u64 = 30_000;
/// First wait after a failure.
const FIRST_BACKOFF_MS: u64 = 1_000;

#[derive(Debug, Clone, Default)]
struct Entry {
    keys: Option<Rc<KeySet>>,
    fetched_at_ms: u64,
    in_flight_since_ms: Option<u64>,
    last_attempt_ms: Option<u64>,
    consecutive_failures: u32,
    last_error: Option<String>,
}

/// What the policy may read from the key cache.
pub trait KeyStore {
    /// The set for `url` if one is usable now (fresh, or stale within limits).
    fn usable(&self, url: &str, now_ms: u64) -> Option<Rc<KeySet>>;
    /// Whether waiting for `url` can still help: a fetch is in flight or may start now.
    fn may_fetch(&self, url: &str, now_ms: u64) -> bool;
}

/// Per-URL JWKS state for one VM.
#[derive(Debug, Default)]
pub struct KeyCache {
    settings: CacheSettings,
    entries: HashMap<String, Entry>,
}

impl KeyCache {
    pub fn new(settings: CacheSettings) -> Self {
        KeyCache { settings, entries: HashMap::new() }
    }

    pub fn settings(&self) -> &CacheSettings {
        &self.settings
    }

    /// Whether the host should dispatch a fetch for `url` now: none in flight and the last attempt
    /// is far enough back (a backoff after failures, `min_refetch` after success).
    pub fn should_start_fetch(&self, url: &str, now_ms: u64) -> bool {
        let Some(e) = self.entries.get(url) else {
            return true;
        };
        if e.in_flight_since_ms.is_some() {
            return false;
        }
        let Some(last) = e.last_attempt_ms else {
            return true;
        };
        let wait = if e.consecutive_failures > 0 {
            let shift = e.consecutive_failures.saturating_sub(1).min(16);
            FIRST_BACKOFF_MS.saturating_mul(1 << shift).min(MAX_BACKOFF_MS)
        } else {
            self.settings.min_refetch_ms
        };
        now_ms >= last.saturating_add(wait)
    }

    pub fn in_flight(&self, url: &str) -> bool {
        self.entries.get(url).is_some_and(|e| e.in_flight_since_ms.is_some())
    }

    pub fn fetch_started(&mut self, url: &str, now_ms: u64) {
        let e = self.entries.entry(url.to_owned()).or_default();
        e.in_flight_since_ms = Some(now_ms);
        e.last_attempt_ms = Some(now_ms);
    }

    pub fn fetch_succeeded(&mut self, url: &str, keys: KeySet, now_ms: u64) {
        let e = self.entries.entry(url.to_owned()).or_default();
        e.keys = Some(Rc::new(keys));
        e.fetched_at_ms = now_ms;
        e.in_flight_since_ms = None;
        e.consecutive_failures = 0;
        e.last_error = None;
    }

    pub fn fetch_failed(&mut self, url: &str, error: String, now_ms: u64) {
        let limit = self.limit_ms();
        let e = self.entries.entry(url.to_owned()).or_default();
        e.in_flight_since_ms = None;
        e.consecutive_failures = e.consecutive_failures.saturating_add(1);
        e.last_error = Some(error);
        if e.keys.is_some() && now_ms > e.fetched_at_ms.saturating_add(limit) {
            e.keys = None;
        }
    }

    /// The last fetch error for `url`, for logs and deny reasons.
    pub fn last_error(&self, url: &str) -> Option<&str> {
        self.entries.get(url).and_then(|e| e.last_error.as_deref())
    }

    /// URLs whose set has passed `ttl` and may be refreshed now (driven by the host's tick).
    pub fn refresh_due(&self, now_ms: u64) -> Vec<String> {
        self.entries
            .iter()
            .filter(|(_, e)| e.keys.is_some() && now_ms >= e.fetched_at_ms.saturating_add(self.settings.ttl_ms))
            .map(|(url, _)| url.clone())
            .filter(|url| self.should_start_fetch(url, now_ms))
            .collect()
    }

    /// Fetches in flight for longer than the timeout (plus grace): the host's callback was lost.
    /// They are marked failed and returned so the host can resume their waiters.
    pub fn expire_lost_fetches(&mut self, now_ms: u64) -> Vec<String> {
        let limit = self.settings.fetch_timeout_ms.saturating_add(1_000);
        let lost: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| e.in_flight_since_ms.is_some_and(|t| now_ms >= t.saturating_add(limit)))
            .map(|(url, _)| url.clone())
            .collect();
        for url in &lost {
            self.fetch_failed(url, "fetch timed out".into(), now_ms);
        }
        lost
    }

    fn limit_ms(&self) -> u64 {
        self.settings.ttl_ms.saturating_add(self.settings.max_stale_ms)
    }
}

impl KeyStore for KeyCache {
    fn usable(&self, url: &str, now_ms: u64) -> Option<Rc<KeySet>> {
        let e = self.entries.get(url)?;
        let keys = e.keys.as_ref()?;
        (now_ms <= e.fetched_at_ms.saturating_add(self.limit_ms())).then(|| Rc::clone(keys))
    }

    fn may_fetch(&self, url: &str, now_ms: u64) -> bool {
        self.in_flight(url) || self.should_start_fetch(url, now_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "https://idp/keys";

    fn cache() -> KeyCache {
        KeyCache::new(CacheSettings { ttl_ms: 1_000, max_stale_ms: 5_000, min_refetch_ms: 500, fetch_timeout_ms: 100 })
    }

    #[test]
    fn first_use_fetches_once() {
        let mut c = cache();
        assert!(c.usable(URL, 0).is_none());
        assert!(c.should_start_fetch(URL, 0));
        c.fetch_started(URL, 0);
        assert!(!c.should_start_fetch(URL, 1), "one fetch in flight per URL");
        assert!(c.may_fetch(URL, 1), "waiting helps while in flight");
        c.fetch_succeeded(URL, KeySet::default(), 10);
        assert!(c.usable(URL, 10).is_some());
        assert!(!c.may_fetch(URL, 20), "no refetch before min_refetch");
        assert!(c.may_fetch(URL, 510), "unknown kid may refetch after min_refetch");
    }

    #[test]
    fn stale_keys_survive_failures_until_max_stale() {
        let mut c = cache();
        c.fetch_started(URL, 0);
        c.fetch_succeeded(URL, KeySet::default(), 0);
        assert!(c.refresh_due(999).is_empty());
        assert_eq!(c.refresh_due(1_000), vec![URL.to_string()]);
        c.fetch_started(URL, 1_000);
        c.fetch_failed(URL, "500".into(), 1_050);
        assert!(c.usable(URL, 1_050).is_some(), "stale set still served");
        assert_eq!(c.last_error(URL), Some("500"));
        assert!(c.usable(URL, 6_000).is_some());
        assert!(c.usable(URL, 6_001).is_none(), "too old after ttl + max_stale");
    }

    #[test]
    fn failures_back_off_exponentially_with_a_cap() {
        let mut c = cache();
        c.fetch_started(URL, 0);
        c.fetch_failed(URL, "down".into(), 0);
        assert!(!c.may_fetch(URL, 999));
        assert!(c.should_start_fetch(URL, 1_000));
        c.fetch_started(URL, 1_000);
        c.fetch_failed(URL, "down".into(), 1_000);
        assert!(!c.should_start_fetch(URL, 2_999));
        assert!(c.should_start_fetch(URL, 3_000));
        for _ in 0..40 {
            c.fetch_started(URL, 3_000);
            c.fetch_failed(URL, "down".into(), 3_000);
        }
        assert!(c.should_start_fetch(URL, 3_000 + MAX_BACKOFF_MS));
    }

    #[test]
    fn lost_fetches_expire() {
        let mut c = cache();
        c.fetch_started(URL, 0);
        assert!(c.expire_lost_fetches(1_099).is_empty());
        assert_eq!(c.expire_lost_fetches(1_100), vec![URL.to_string()]);
        assert!(!c.in_flight(URL));
    }
}
