//! One JWKS URL's fetch state as every worker VM of the proxy sees it (the host keeps it in
//! proxy-wasm shared data, see `codec`), and its transitions. Pure: time and jitter are
//! parameters.

use serde::{Deserialize, Serialize};

use super::CacheSettings;

/// Why a fetch would be started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchReason {
    /// No usable set: the first fetch, or after the last good set grew too old.
    Missing,
    /// A token names a `kid` the usable set does not have (the IdP may have rotated).
    UnknownKid,
    /// The set is close to its TTL: refresh in the background.
    Refresh,
}

/// A fetch in flight, held by one VM until it lands or `expires_ms` passes (a lost callback or
/// a VM that went away: another VM may then fetch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub owner: u32,
    pub started_ms: u64,
    pub expires_ms: u64,
}

/// The shared state of one URL. The key set's body is kept beside it (`codec::Body`), tagged with
/// the generation it belongs to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Successful fetches so far; 0: no set yet. A VM parses the body again when it changes.
    pub generation: u64,
    /// When the current set was fetched, and how long it is fresh (the plugin's TTL, or the
    /// response's `Cache-Control: max-age` within the plugin's bounds).
    pub fetched_at_ms: u64,
    pub ttl_ms: u64,
    pub lease: Option<Lease>,
    /// Fetches finished so far (success or failure): a waiting request never causes a second.
    pub attempts: u64,
    /// Failures since the last success, and when the next attempt may start (backoff).
    pub failures: u32,
    pub retry_at_ms: u64,
    /// When the last fetch for an unknown `kid` started (rate limit of those fetches).
    pub unknown_kid_fetch_ms: Option<u64>,
    pub last_error: String,
}

/// First wait after a failure; it doubles per failure up to `MAX_BACKOFF_MS`.
pub const FIRST_BACKOFF_MS: u64 = 1_000;
pub const MAX_BACKOFF_MS: u64 = 30_000;
/// Jitter: each wait is scaled by a factor in [0.8, 1.2).
pub const JITTER_PERCENT: u64 = 20;
/// A lease outlives its fetch's timeout by this much before another VM may take over.
pub const LEASE_GRACE_MS: u64 = 1_000;
/// Sets are refreshed once this share of their TTL has passed, so requests never wait for a
/// refresh in the steady state.
pub const REFRESH_AT_PERCENT: u64 = 90;

/// The wait after the `failures`-th consecutive failure (`failures >= 1`): 1 s, 2 s, 4 s, 8 s,
/// 16 s, then 30 s, each scaled by `0.8 + 0.4 * jitter / 2^32`.
pub fn backoff_ms(failures: u32, jitter: u32) -> u64 {
    let shift = failures.saturating_sub(1).min(16);
    let base = FIRST_BACKOFF_MS.saturating_mul(1 << shift).min(MAX_BACKOFF_MS);
    // base <= MAX_BACKOFF_MS, so none of these saturates: they only make that evident.
    let spread = base.saturating_mul(2 * JITTER_PERCENT) / 100; // width of the jitter window
    let low = base.saturating_sub(base.saturating_mul(JITTER_PERCENT) / 100);
    low.saturating_add(spread.saturating_mul(u64::from(jitter)) >> 32)
}

impl Entry {
    /// Whether a usable set exists at `now`: fresh, or stale within `max_stale`.
    pub fn usable(&self, now_ms: u64, s: &CacheSettings) -> bool {
        self.generation > 0 && now_ms <= self.expires_at(s)
    }

    /// The end of the stale window of the current set.
    pub fn expires_at(&self, s: &CacheSettings) -> u64 {
        self.fetched_at_ms.saturating_add(self.ttl_ms).saturating_add(s.max_stale_ms)
    }

    /// When the set is due for a background refresh.
    pub fn refresh_at(&self) -> u64 {
        self.fetched_at_ms.saturating_add(self.ttl_ms.saturating_mul(REFRESH_AT_PERCENT) / 100)
    }

    pub fn in_flight(&self, now_ms: u64) -> bool {
        self.lease.is_some_and(|l| now_ms < l.expires_ms)
    }

    /// Whether a fetch for `reason` may start now: none in flight, past any backoff, and for an
    /// unknown kid, at most one per `min_refetch` (the first at once, even right after another
    /// fetch).
    pub fn may_start(&self, reason: FetchReason, now_ms: u64, s: &CacheSettings) -> bool {
        if self.in_flight(now_ms) || (self.failures > 0 && now_ms < self.retry_at_ms) {
            return false;
        }
        match reason {
            FetchReason::Missing => true,
            FetchReason::Refresh => self.generation > 0 && now_ms >= self.refresh_at(),
            FetchReason::UnknownKid => {
                self.unknown_kid_fetch_ms.is_none_or(|t| now_ms >= t.saturating_add(s.min_refetch_ms))
            }
        }
    }

    /// Takes the lease for a fetch by `owner`.
    pub fn start(&mut self, owner: u32, reason: FetchReason, now_ms: u64, s: &CacheSettings) {
        let expires_ms = now_ms.saturating_add(s.fetch_timeout_ms).saturating_add(LEASE_GRACE_MS);
        self.lease = Some(Lease { owner, started_ms: now_ms, expires_ms });
        if reason == FetchReason::UnknownKid {
            self.unknown_kid_fetch_ms = Some(now_ms);
        }
    }

    /// A fetch brought a usable set, fresh for `ttl_ms`.
    pub fn succeed(&mut self, now_ms: u64, ttl_ms: u64) {
        self.generation = self.generation.saturating_add(1);
        self.fetched_at_ms = now_ms;
        self.ttl_ms = ttl_ms;
        self.lease = None;
        self.attempts = self.attempts.saturating_add(1);
        self.failures = 0;
        self.retry_at_ms = 0;
        self.last_error.clear();
    }

    /// A fetch failed: the last good set stays (it is served while `usable`), the next attempt
    /// waits for the backoff.
    pub fn fail(&mut self, now_ms: u64, error: &str, jitter: u32) {
        self.lease = None;
        self.attempts = self.attempts.saturating_add(1);
        self.failures = self.failures.saturating_add(1);
        self.retry_at_ms = now_ms.saturating_add(backoff_ms(self.failures, jitter));
        error.clone_into(&mut self.last_error);
    }
}

/// The TTL of a fetched set: `Cache-Control: max-age` within `[min_ttl, max_ttl]`, `no-cache`
/// or `no-store` as the minimum, and the plugin's TTL when the header says nothing usable.
pub fn ttl_from_cache_control(header: Option<&str>, s: &CacheSettings) -> u64 {
    let Some(header) = header else {
        return s.ttl_ms;
    };
    let mut ttl = None;
    for directive in header.split(',').map(|d| d.trim().to_ascii_lowercase()) {
        if directive == "no-cache" || directive == "no-store" {
            return s.min_ttl_ms;
        }
        if let Some(value) = directive.strip_prefix("max-age=") {
            match value.trim_matches('"').parse::<u64>() {
                Ok(secs) => ttl = Some(secs.saturating_mul(1000)),
                Err(_) => return s.ttl_ms, // malformed: ignore the header
            }
        }
    }
    ttl.map_or(s.ttl_ms, |t| t.clamp(s.min_ttl_ms, s.max_ttl_ms.max(s.min_ttl_ms)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> CacheSettings {
        CacheSettings {
            ttl_ms: 10_000,
            min_ttl_ms: 2_000,
            max_ttl_ms: 60_000,
            max_stale_ms: 5_000,
            min_refetch_ms: 3_000,
            fetch_timeout_ms: 500,
            max_wait_ms: 200,
        }
    }

    #[test]
    fn every_backoff_step_with_its_jitter_window() {
        let steps =
            [(1, 1_000), (2, 2_000), (3, 4_000), (4, 8_000), (5, 16_000), (6, 30_000), (7, 30_000), (40, 30_000)];
        for (failures, base) in steps {
            assert_eq!(backoff_ms(failures, 0), base * 8 / 10, "lowest, failure {failures}");
            assert_eq!(backoff_ms(failures, 1 << 31), base, "middle, failure {failures}");
            assert!(backoff_ms(failures, u32::MAX) < base * 12 / 10, "highest, failure {failures}");
            assert!(backoff_ms(failures, u32::MAX) >= base * 12 / 10 - 1, "highest, failure {failures}");
        }
        assert_eq!(backoff_ms(0, 1 << 31), 1_000, "treated as the first failure");
    }

    #[test]
    fn one_fetch_at_a_time_and_leases_expire() {
        let s = settings();
        let mut e = Entry::default();
        assert!(!e.usable(0, &s));
        assert!(e.may_start(FetchReason::Missing, 0, &s));
        assert!(!e.may_start(FetchReason::Refresh, 0, &s), "nothing to refresh yet");
        e.start(7, FetchReason::Missing, 0, &s);
        assert_eq!(e.lease, Some(Lease { owner: 7, started_ms: 0, expires_ms: 1_500 }));
        assert!(e.in_flight(1_499));
        for reason in [FetchReason::Missing, FetchReason::UnknownKid, FetchReason::Refresh] {
            assert!(!e.may_start(reason, 1_000, &s), "{reason:?} while in flight");
        }
        // The owner never answered: after the lease another VM may fetch.
        assert!(!e.in_flight(1_500));
        assert!(e.may_start(FetchReason::Missing, 1_500, &s));
    }

    #[test]
    fn success_then_refresh_before_the_ttl_then_stale_window() {
        let s = settings();
        let mut e = Entry::default();
        e.start(1, FetchReason::Missing, 0, &s);
        e.succeed(100, 10_000);
        assert_eq!((e.generation, e.attempts, e.lease), (1, 1, None));
        assert!(e.usable(100, &s));
        assert!(!e.may_start(FetchReason::Refresh, 9_099, &s));
        assert!(e.may_start(FetchReason::Refresh, 9_100, &s), "refresh at 90% of the TTL");
        assert!(e.usable(15_100, &s), "stale window: ttl + max_stale");
        assert!(!e.usable(15_101, &s));
    }

    #[test]
    fn failures_keep_the_set_and_back_off() {
        let s = settings();
        let mut e = Entry::default();
        e.start(1, FetchReason::Missing, 0, &s);
        e.succeed(0, 10_000);
        e.start(1, FetchReason::Refresh, 9_000, &s);
        e.fail(9_100, "HTTP status 500", 1 << 31);
        assert_eq!((e.generation, e.failures, e.attempts, e.retry_at_ms), (1, 1, 2, 10_100));
        assert!(e.usable(9_100, &s), "the last good set is served");
        assert_eq!(e.last_error, "HTTP status 500");
        for reason in [FetchReason::Missing, FetchReason::UnknownKid, FetchReason::Refresh] {
            assert!(!e.may_start(reason, 10_099, &s), "{reason:?} during the backoff");
            assert!(e.may_start(reason, 10_100, &s), "{reason:?} after the backoff");
        }
        e.start(1, FetchReason::Refresh, 10_100, &s);
        e.fail(10_200, "timeout", 1 << 31);
        assert_eq!(e.retry_at_ms, 12_200, "2 s after the second failure");
        e.start(1, FetchReason::Refresh, 12_200, &s);
        e.succeed(12_300, 10_000);
        assert_eq!((e.failures, e.generation, e.last_error.as_str()), (0, 2, ""));
    }

    #[test]
    fn unknown_kid_fetches_are_rate_limited_but_the_first_is_immediate() {
        let s = settings();
        let mut e = Entry::default();
        e.start(1, FetchReason::Missing, 0, &s);
        e.succeed(10, 10_000);
        assert!(e.may_start(FetchReason::UnknownKid, 11, &s), "right after a fetch");
        e.start(1, FetchReason::UnknownKid, 11, &s);
        e.succeed(20, 10_000);
        assert!(!e.may_start(FetchReason::UnknownKid, 3_010, &s));
        assert!(e.may_start(FetchReason::UnknownKid, 3_011, &s), "min_refetch after the last one");
        let zero = CacheSettings { min_refetch_ms: 0, ..s };
        assert!(e.may_start(FetchReason::UnknownKid, 21, &zero));
    }

    #[test]
    fn cache_control_within_bounds() {
        let s = settings();
        let ttl = |h| ttl_from_cache_control(h, &s);
        assert_eq!(ttl(None), 10_000);
        assert_eq!(ttl(Some("public, max-age=30")), 30_000);
        assert_eq!(ttl(Some("max-age=1")), 2_000, "raised to the minimum");
        assert_eq!(ttl(Some("max-age=86400, must-revalidate")), 60_000, "lowered to the maximum");
        assert_eq!(ttl(Some("Max-Age=\"20\"")), 20_000);
        assert_eq!(ttl(Some("no-store")), 2_000);
        assert_eq!(ttl(Some("max-age=30, no-cache")), 2_000);
        assert_eq!(ttl(Some("max-age=soon")), 10_000, "malformed: the plugin's TTL");
        assert_eq!(ttl(Some("private")), 10_000);
        assert_eq!(ttl(Some("max-age=99999999999999999999")), 10_000, "overflow is malformed");
    }
}
