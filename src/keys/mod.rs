//! The JWKS cache: per JWKS URL, the fetch state every worker VM shares (`entry::Entry`, kept
//! in proxy-wasm shared data by the host with `codec`) and this VM's parsed copy of the set.
//! Pure: time comes in as a parameter, fetches are requested and reported by the host.
//!
//! States of a URL: never fetched; fetching (one VM holds the lease, maybe with an older set);
//! fresh (younger than its TTL; refreshed in the background at 90% of it); stale (older, still
//! served while refreshes fail, up to `max_stale`); failed (no usable set, retry after a backoff).
//!
//! A VM's copy can fall behind the shared record: another VM refreshed the set. So a copy that
//! is past its refresh point (or older than the record it last saw) is noted when a decision
//! uses it (`take_possibly_behind`), and the host compares it with the shared record before the
//! decision stands; a fetch another VM has in flight is looked at on every tick
//! (`fetching_elsewhere`). A refreshed set thus reaches every VM at its next decision.

pub mod codec;
pub mod entry;

use std::cell::Cell;
use std::collections::HashMap;
use std::fmt;
use std::rc::Rc;

use crate::jwt::jwks::KeySet;
pub use entry::{Entry, FetchReason};

/// Cache timing, in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheSettings {
    /// A fetched set is fresh this long when its response says nothing (`Cache-Control`).
    pub ttl_ms: u64,
    /// Bounds on the TTL a response's `Cache-Control: max-age` may set.
    pub min_ttl_ms: u64,
    pub max_ttl_ms: u64,
    /// How long past its TTL an old set may still be used while refreshes fail.
    pub max_stale_ms: u64,
    /// Least time between two fetches caused by tokens naming an unknown `kid`.
    pub min_refetch_ms: u64,
    /// How long one fetch may take (the dispatch timeout). A fetch that outlives the requests
    /// waiting for it still fills the cache.
    pub fetch_timeout_ms: u64,
    /// How long a request may wait for keys before it is denied (401).
    pub max_wait_ms: u64,
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings {
            ttl_ms: 300_000,
            min_ttl_ms: 30_000,
            max_ttl_ms: 3_600_000,
            max_stale_ms: 3_600_000,
            min_refetch_ms: 10_000,
            fetch_timeout_ms: 10_000,
            max_wait_ms: 1_000,
        }
    }
}

/// This VM's view of one URL: the shared entry as last seen, and the set parsed from it.
#[derive(Debug, Clone, Default)]
struct Local {
    entry: Entry,
    keys: Option<Rc<KeySet>>,
    /// The generation `keys` was parsed from.
    keys_generation: u64,
}

/// What the policy may read from the key cache.
pub trait KeyStore {
    /// The set for `url` if one is usable now (fresh, or stale within limits).
    fn usable(&self, url: &str, now_ms: u64) -> Option<Rc<KeySet>>;
    /// Whether waiting for a first (or renewed) set of `url` can help: a fetch is in flight or
    /// may start now.
    fn may_fetch(&self, url: &str, now_ms: u64) -> bool;
    /// Whether waiting for `url` can help a token whose `kid` its usable set lacks: a fetch is
    /// in flight, or an unknown-kid fetch may start now (rate-limited).
    fn may_refetch(&self, url: &str, now_ms: u64) -> bool;
}

/// Per-URL JWKS state for one VM.
#[derive(Debug, Default)]
pub struct KeyCache {
    settings: CacheSettings,
    entries: HashMap<String, Local>,
    /// Sets handed out past their TTL (for the stale-serve counter; read by the host).
    stale_serves: Cell<u64>,
    /// URLs whose set was handed out while it may be behind the shared record.
    possibly_behind: Noted,
}

/// URLs noted while deciding (through `&self`), taken by the host afterwards. A `Cell` that is
/// emptied and refilled, so noting can never fail.
#[derive(Default)]
struct Noted(Cell<Vec<String>>);

impl Noted {
    fn note(&self, url: &str) {
        let mut urls = self.0.take();
        if !urls.iter().any(|u| u == url) {
            urls.push(url.to_owned());
        }
        self.0.set(urls);
    }

    fn take(&self) -> Vec<String> {
        self.0.take()
    }
}

impl fmt::Debug for Noted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let urls = self.0.take();
        let result = f.debug_list().entries(&urls).finish();
        self.0.set(urls);
        result
    }
}

impl KeyCache {
    pub fn new(settings: CacheSettings) -> Self {
        KeyCache { settings, ..KeyCache::default() }
    }

    pub fn settings(&self) -> &CacheSettings {
        &self.settings
    }

    /// The shared state of `url` as this VM last saw it.
    pub fn entry(&self, url: &str) -> Option<&Entry> {
        self.entries.get(url).map(|l| &l.entry)
    }

    /// Whether this VM's parsed set is older than `entry` says the shared one is.
    pub fn needs_body(&self, url: &str, entry: &Entry) -> bool {
        entry.generation > 0 && self.entries.get(url).is_none_or(|l| l.keys_generation != entry.generation)
    }

    /// Adopts the shared state of `url`, with the set parsed from its body when the generation
    /// changed (`keys`); without it the old set stays until the body is read.
    pub fn observe(&mut self, url: &str, entry: Entry, keys: Option<KeySet>) {
        let local = self.entries.entry(url.to_owned()).or_default();
        if let Some(keys) = keys {
            local.keys = Some(Rc::new(keys));
            local.keys_generation = entry.generation;
        }
        local.entry = entry;
    }

    /// Fetches finished for `url` so far.
    pub fn attempts(&self, url: &str) -> u64 {
        self.entries.get(url).map_or(0, |l| l.entry.attempts)
    }

    /// Why a fetch of `url` would be made for a waiting request: an unknown kid if a set is
    /// usable, else a missing set.
    pub fn reason_for_waiter(&self, url: &str, now_ms: u64) -> FetchReason {
        if self.usable_entry(url, now_ms).is_some() {
            FetchReason::UnknownKid
        } else {
            FetchReason::Missing
        }
    }

    pub fn may_start(&self, url: &str, reason: FetchReason, now_ms: u64) -> bool {
        self.entries.get(url).is_none_or(|l| l.entry.may_start(reason, now_ms, &self.settings))
    }

    pub fn in_flight(&self, url: &str, now_ms: u64) -> bool {
        self.entries.get(url).is_some_and(|l| l.entry.in_flight(now_ms))
    }

    /// Records a fetch of `url` started by VM `owner` (in one VM, or for tests: the shared entry
    /// is this VM's own).
    pub fn start_fetch(&mut self, url: &str, owner: u32, reason: FetchReason, now_ms: u64) {
        let settings = self.settings.clone();
        self.entries.entry(url.to_owned()).or_default().entry.start(owner, reason, now_ms, &settings);
    }

    /// `start_fetch` of a first fetch by VM 0.
    pub fn fetch_started(&mut self, url: &str, now_ms: u64) {
        self.start_fetch(url, 0, FetchReason::Missing, now_ms);
    }

    /// A fetch brought `keys`, fresh for the plugin's TTL.
    pub fn fetch_succeeded(&mut self, url: &str, keys: KeySet, now_ms: u64) {
        let ttl = self.settings.ttl_ms;
        self.fetch_succeeded_with_ttl(url, keys, now_ms, ttl);
    }

    pub fn fetch_succeeded_with_ttl(&mut self, url: &str, keys: KeySet, now_ms: u64, ttl_ms: u64) {
        let local = self.entries.entry(url.to_owned()).or_default();
        local.entry.succeed(now_ms, ttl_ms);
        local.keys = Some(Rc::new(keys));
        local.keys_generation = local.entry.generation;
    }

    /// A fetch failed; `jitter` (any u32) spreads the backoff.
    pub fn fetch_failed(&mut self, url: &str, error: &str, now_ms: u64, jitter: u32) {
        self.entries.entry(url.to_owned()).or_default().entry.fail(now_ms, error, jitter);
    }

    /// The last fetch error for `url`, for logs and deny reasons.
    pub fn last_error(&self, url: &str) -> Option<&str> {
        self.entries.get(url).map(|l| l.entry.last_error.as_str()).filter(|e| !e.is_empty())
    }

    /// URLs whose set is due for a background refresh as this VM sees it (the host checks the
    /// shared state before it fetches).
    pub fn refresh_due(&self, now_ms: u64) -> Vec<String> {
        self.entries
            .iter()
            .filter(|(_, l)| l.entry.may_start(FetchReason::Refresh, now_ms, &self.settings))
            .map(|(url, _)| url.clone())
            .collect()
    }

    /// Fetches by `owner` whose lease has run out: their answer was lost. They are marked failed
    /// and returned so the host can log them and forget the calls.
    pub fn expire_lost_fetches(&mut self, owner: u32, now_ms: u64, jitter: u32) -> Vec<String> {
        let mut lost = Vec::new();
        for (url, l) in &mut self.entries {
            if l.entry.lease.is_some_and(|lease| lease.owner == owner && now_ms >= lease.expires_ms) {
                l.entry.fail(now_ms, "no answer within the fetch timeout", jitter);
                lost.push(url.clone());
            }
        }
        lost
    }

    /// Whether any URL's fetch is in flight (here or on another worker, as last seen).
    pub fn any_in_flight(&self, now_ms: u64) -> bool {
        self.entries.values().any(|l| l.entry.in_flight(now_ms))
    }

    /// The set this VM holds for `url`, usable or not (for logs: counts nothing).
    pub fn current_set(&self, url: &str) -> Option<Rc<KeySet>> {
        self.entries.get(url).and_then(|l| l.keys.clone())
    }

    /// How many times a set past its TTL was handed out, since the last call.
    pub fn take_stale_serves(&self) -> u64 {
        self.stale_serves.replace(0)
    }

    /// URLs whose set was handed out, since the last call, while it may be behind the shared
    /// record: past its refresh point (another VM may have refreshed it) or older than the
    /// record this VM last saw (its body was not read yet). The host compares each with the
    /// shared record and decides again when one was newer.
    pub fn take_possibly_behind(&self) -> Vec<String> {
        self.possibly_behind.take()
    }

    /// The generation of the set this VM holds for `url` (0: none).
    pub fn set_generation(&self, url: &str) -> u64 {
        self.entries.get(url).filter(|l| l.keys.is_some()).map_or(0, |l| l.keys_generation)
    }

    /// URLs with a fetch in flight on a VM other than `owner`, as this VM last saw them. Their
    /// answer lands in the shared record, not here: the host reads those records on every tick
    /// (a local view of that lease would otherwise hide the answer until the lease ran out).
    pub fn fetching_elsewhere(&self, owner: u32, now_ms: u64) -> Vec<String> {
        self.entries
            .iter()
            .filter(|(_, l)| l.entry.in_flight(now_ms) && l.entry.lease.is_some_and(|lease| lease.owner != owner))
            .map(|(url, _)| url.clone())
            .collect()
    }

    fn usable_entry(&self, url: &str, now_ms: u64) -> Option<&Local> {
        self.entries.get(url).filter(|l| l.keys.is_some() && l.entry.usable(now_ms, &self.settings))
    }
}

impl KeyStore for KeyCache {
    fn usable(&self, url: &str, now_ms: u64) -> Option<Rc<KeySet>> {
        let local = self.usable_entry(url, now_ms)?;
        if now_ms > local.entry.fetched_at_ms.saturating_add(local.entry.ttl_ms) {
            self.stale_serves.set(self.stale_serves.get().saturating_add(1));
        }
        if now_ms >= local.entry.refresh_at() || local.keys_generation != local.entry.generation {
            self.possibly_behind.note(url);
        }
        local.keys.clone()
    }

    fn may_fetch(&self, url: &str, now_ms: u64) -> bool {
        self.in_flight(url, now_ms) || self.may_start(url, FetchReason::Missing, now_ms)
    }

    fn may_refetch(&self, url: &str, now_ms: u64) -> bool {
        self.in_flight(url, now_ms) || self.may_start(url, FetchReason::UnknownKid, now_ms)
    }
}

/// The cache as one waiting request sees it: once a fetch of a URL has finished since the
/// request first waited for it, waiting for that URL can no longer help, whatever the options
/// say. So one request causes at most one fetch per URL (a fetch already in flight when it
/// began does not count: its answer may predate a rotation).
pub struct FetchedOnce<'a> {
    pub cache: &'a KeyCache,
    /// Per URL, the attempts count after which a finished fetch ends the wait.
    pub seen: &'a [(String, u64)],
}

impl FetchedOnce<'_> {
    /// The `seen` mark for a request that starts waiting for `url` now.
    pub fn mark(cache: &KeyCache, url: &str, now_ms: u64) -> (String, u64) {
        let in_flight = u64::from(cache.in_flight(url, now_ms));
        (url.to_owned(), cache.attempts(url).saturating_add(in_flight))
    }

    fn exhausted(&self, url: &str) -> bool {
        self.seen.iter().any(|(u, mark)| u == url && self.cache.attempts(url) > *mark)
    }
}

impl KeyStore for FetchedOnce<'_> {
    fn usable(&self, url: &str, now_ms: u64) -> Option<Rc<KeySet>> {
        self.cache.usable(url, now_ms)
    }

    fn may_fetch(&self, url: &str, now_ms: u64) -> bool {
        !self.exhausted(url) && self.cache.may_fetch(url, now_ms)
    }

    fn may_refetch(&self, url: &str, now_ms: u64) -> bool {
        !self.exhausted(url) && self.cache.may_refetch(url, now_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "https://idp/keys";

    fn cache() -> KeyCache {
        KeyCache::new(CacheSettings {
            ttl_ms: 1_000,
            min_ttl_ms: 100,
            max_ttl_ms: 10_000,
            max_stale_ms: 5_000,
            min_refetch_ms: 500,
            fetch_timeout_ms: 100,
            max_wait_ms: 50,
        })
    }

    #[test]
    fn first_use_fetches_once() {
        let mut c = cache();
        assert!(c.usable(URL, 0).is_none());
        assert!(c.may_start(URL, FetchReason::Missing, 0));
        c.fetch_started(URL, 0);
        assert!(!c.may_start(URL, FetchReason::Missing, 1), "one fetch in flight per URL");
        assert!(c.may_fetch(URL, 1), "waiting helps while in flight");
        c.fetch_succeeded(URL, KeySet::default(), 10);
        assert!(c.usable(URL, 10).is_some());
        assert_eq!(c.reason_for_waiter(URL, 10), FetchReason::UnknownKid);
        assert!(c.may_refetch(URL, 20), "the first unknown-kid fetch is immediate");
        c.start_fetch(URL, 0, FetchReason::UnknownKid, 20);
        c.fetch_succeeded(URL, KeySet::default(), 30);
        assert!(!c.may_refetch(URL, 519), "then one per min_refetch");
        assert!(c.may_refetch(URL, 520));
    }

    #[test]
    fn stale_keys_survive_failures_until_max_stale() {
        let mut c = cache();
        c.fetch_started(URL, 0);
        c.fetch_succeeded(URL, KeySet::default(), 0);
        assert!(c.refresh_due(899).is_empty());
        assert_eq!(c.refresh_due(900), vec![URL.to_string()], "refresh before the TTL");
        c.start_fetch(URL, 0, FetchReason::Refresh, 900);
        c.fetch_failed(URL, "HTTP status 500", 1_050, 1 << 31);
        assert!(c.usable(URL, 1_000).is_some());
        assert_eq!(c.take_stale_serves(), 0, "fresh");
        assert!(c.usable(URL, 1_050).is_some(), "stale set still served");
        assert_eq!(c.take_stale_serves(), 1);
        assert_eq!(c.last_error(URL), Some("HTTP status 500"));
        assert!(c.usable(URL, 6_000).is_some());
        assert!(c.usable(URL, 6_001).is_none(), "too old after ttl + max_stale");
        assert!(!c.may_fetch(URL, 2_049), "backoff");
        assert!(c.may_fetch(URL, 2_050));
    }

    #[test]
    fn a_newer_shared_generation_replaces_the_set() {
        let mut c = cache();
        let mut shared = Entry::default();
        shared.start(2, FetchReason::Missing, 0, c.settings());
        c.observe(URL, shared.clone(), None);
        assert!(c.in_flight(URL, 10), "another VM's fetch is in flight");
        assert!(c.may_fetch(URL, 10) && !c.may_start(URL, FetchReason::Missing, 10));
        shared.succeed(20, 1_000);
        assert!(c.needs_body(URL, &shared));
        c.observe(URL, shared.clone(), None);
        assert!(c.usable(URL, 30).is_none(), "no body read yet");
        c.observe(URL, shared.clone(), Some(KeySet::default()));
        assert!(!c.needs_body(URL, &shared));
        assert!(c.usable(URL, 30).is_some());
    }

    /// The shared record after VM 1 fetched a set (`marker`: tells the sets apart) at `at`.
    fn fetched(shared: &mut Entry, at: u64) {
        shared.start(1, FetchReason::Refresh, at, &cache().settings);
        shared.succeed(at, 1_000);
    }

    fn set(marker: usize) -> KeySet {
        KeySet { keys: Vec::new(), skipped: marker }
    }

    /// A removal at the IdP reaches every VM at its first decision once some VM refreshed: a
    /// copy past its refresh point is noted when used, and once it has observed the newer shared
    /// record it serves the new set; a fresh copy is never noted (nothing to compare).
    #[test]
    fn a_copy_past_its_refresh_point_is_compared_with_the_shared_record() {
        let mut other_vm = cache();
        let mut shared = Entry::default();
        fetched(&mut shared, 0);
        other_vm.observe(URL, shared.clone(), Some(set(1)));
        assert_eq!(other_vm.usable(URL, 899).map(|s| s.skipped), Some(1));
        assert!(other_vm.take_possibly_behind().is_empty(), "fresh: used as it is");

        // VM 1 refreshes at 90% of the TTL; this VM saw its lease on a tick.
        shared.start(1, FetchReason::Refresh, 900, &cache().settings);
        other_vm.observe(URL, shared.clone(), None);
        assert_eq!(other_vm.fetching_elsewhere(2, 901), vec![URL.to_string()], "read on every tick");
        assert!(other_vm.fetching_elsewhere(1, 901).is_empty(), "VM 1's own answer comes to VM 1");
        shared.succeed(950, 1_000);

        // Its next decision still finds the old set, and notes it (once per URL).
        assert_eq!(other_vm.usable(URL, 960).map(|s| s.skipped), Some(1));
        assert_eq!(other_vm.usable(URL, 961).map(|s| s.skipped), Some(1));
        assert_eq!(other_vm.take_possibly_behind(), vec![URL.to_string()]);
        assert!(other_vm.take_possibly_behind().is_empty(), "taken");

        // The record seen without its body: the old set is still noted, whatever its times say.
        other_vm.observe(URL, shared.clone(), None);
        assert_eq!(other_vm.set_generation(URL), 1);
        assert_eq!(other_vm.usable(URL, 962).map(|s| s.skipped), Some(1));
        assert_eq!(other_vm.take_possibly_behind(), vec![URL.to_string()]);

        // With the body: the new set, fresh, nothing to compare.
        other_vm.observe(URL, shared.clone(), Some(set(2)));
        assert_eq!(other_vm.set_generation(URL), 2);
        assert_eq!(other_vm.usable(URL, 963).map(|s| s.skipped), Some(2));
        assert!(other_vm.take_possibly_behind().is_empty());
        assert!(other_vm.fetching_elsewhere(2, 963).is_empty());
    }

    /// During an IdP outage the copy stays stale (maxStale), and every decision that uses it
    /// compares it again: the shared record may bring a set at any time.
    #[test]
    fn a_stale_copy_is_compared_at_every_use_until_max_stale() {
        let mut c = cache();
        let mut shared = Entry::default();
        fetched(&mut shared, 0);
        shared.start(1, FetchReason::Refresh, 900, &c.settings);
        shared.fail(950, "HTTP status 500", 0);
        c.observe(URL, shared, Some(set(1)));
        for now in [1_000, 3_000, 6_000] {
            assert!(c.usable(URL, now).is_some(), "stale within max_stale at {now}");
            assert_eq!(c.take_possibly_behind(), vec![URL.to_string()]);
        }
        assert!(c.usable(URL, 6_001).is_none(), "past ttl + max_stale");
        assert!(c.take_possibly_behind().is_empty());
    }

    #[test]
    fn lost_fetches_of_this_vm_expire() {
        let mut c = cache();
        c.start_fetch(URL, 4, FetchReason::Missing, 0);
        assert!(c.expire_lost_fetches(4, 1_099, 0).is_empty());
        assert!(c.expire_lost_fetches(5, 1_100, 0).is_empty(), "another VM's lease");
        assert_eq!(c.expire_lost_fetches(4, 1_100, 0), vec![URL.to_string()]);
        assert!(!c.in_flight(URL, 1_100));
        assert_eq!(c.attempts(URL), 1);
    }

    #[test]
    fn a_waiting_request_causes_at_most_one_fetch_even_with_min_refetch_zero() {
        let mut c = KeyCache::new(CacheSettings { min_refetch_ms: 0, ..cache().settings().clone() });
        c.fetch_started(URL, 0);
        c.fetch_succeeded(URL, KeySet::default(), 0);
        // A token with an unknown kid starts waiting.
        let seen = [FetchedOnce::mark(&c, URL, 10)];
        assert!(FetchedOnce { cache: &c, seen: &seen }.may_refetch(URL, 10));
        c.start_fetch(URL, 0, FetchReason::UnknownKid, 10);
        assert!(FetchedOnce { cache: &c, seen: &seen }.may_refetch(URL, 11), "its fetch is in flight");
        c.fetch_succeeded(URL, KeySet::default(), 20);
        let view = FetchedOnce { cache: &c, seen: &seen };
        assert!(c.may_refetch(URL, 20), "a new request could fetch again (min_refetch 0)");
        assert!(!view.may_refetch(URL, 20) && !view.may_fetch(URL, 20), "this one may not");
        // One that began while a fetch was in flight may still cause one of its own.
        c.start_fetch(URL, 0, FetchReason::UnknownKid, 30);
        let seen = [FetchedOnce::mark(&c, URL, 31)];
        c.fetch_succeeded(URL, KeySet::default(), 40);
        assert!(FetchedOnce { cache: &c, seen: &seen }.may_refetch(URL, 41));
        c.start_fetch(URL, 0, FetchReason::UnknownKid, 41);
        c.fetch_failed(URL, "down", 50, 0);
        assert!(!FetchedOnce { cache: &c, seen: &seen }.may_refetch(URL, 5_000), "a failure ends the wait too");
    }
}
