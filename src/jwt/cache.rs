//! Tokens whose signature verified: a token seen again costs a lookup plus the claim checks of the
//! rule at hand (times, issuer, audience, scopes), never a signature or a parse.
//!
//! What is cached is the one verdict that does not depend on the rule: "this exact token was
//! signed by this key of this key set". A hit needs the whole token to be equal (the hash only
//! picks the slot), and the key the current rule selects for the token's `kid` to come from the
//! very key set instance that verified it: a rule with other `jwks_urls`, or a refetched set,
//! never reuses the verdict. Entries expire with the token's `exp`.
//!
//! Only successes are cached. Caching failures would not slow an attacker (each forged token can
//! differ at no cost to them) and would let forged tokens evict the valid ones; a repeated bad
//! token is denied at the cost of one verification, the bound every forged token has anyway.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::rc::{Rc, Weak};

use serde_json::{Map, Value};

use super::algorithm::Algorithm;
use super::jwks::KeySet;

/// Tokens longer than this are verified every time: real access tokens are 1-2 KiB, and the
/// bound keeps the cache's memory at about `max_entries` x (token + claims).
pub const MAX_CACHED_TOKEN_BYTES: usize = 4096;

/// How much of a token's end picks its slot.
const HASHED_TAIL_BYTES: usize = 32;

/// Default number of cached tokens per worker.
pub const DEFAULT_MAX_ENTRIES: usize = 1024;

/// A verified token's facts that every rule may read.
#[derive(Debug, PartialEq)]
pub struct Verified {
    pub alg: Algorithm,
    pub kid: String,
    pub claims: Map<String, Value>,
    /// Verified with the key Oathkeeper selects (a `kid`, the first key with it and `use: sig`).
    /// APIRule v2 tokens are verified Envoy's way (any key of the set whose kid and type fit), so
    /// their verdict never stands in for a v1 rule's.
    pub by_oathkeeper_key: bool,
}

#[derive(Debug)]
struct Entry {
    token: Box<str>,
    verified: Rc<Verified>,
    /// The key set whose key verified the signature (compared by identity, never upgraded).
    set: Weak<KeySet>,
    /// Unix seconds after which the entry is not used (the token's `exp`), if any.
    expires_at_secs: Option<i64>,
    /// Lookup clock of the last hit or insert, to pick the entry to replace.
    last_used: u64,
}

/// A bounded, two-way set-associative cache of verified tokens (one per worker VM).
#[derive(Debug, Default)]
pub struct VerifiedTokens {
    /// Pairs of slots; a token may live in either slot of the pair its hash picks.
    slots: Vec<Option<Entry>>,
    clock: u64,
    /// Lookups that found a live verdict (for the host's counter).
    pub hits: u64,
}

impl VerifiedTokens {
    /// A cache of about `max_entries` tokens; 0 disables it.
    pub fn new(max_entries: usize) -> Self {
        let pairs = max_entries.div_ceil(2);
        VerifiedTokens { slots: (0..pairs.saturating_mul(2)).map(|_| None).collect(), clock: 0, hits: 0 }
    }

    /// A cache that holds nothing (every token is verified).
    pub fn disabled() -> Self {
        VerifiedTokens::default()
    }

    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Indexes of the two slots `token` may occupy. A fast hash picks them; it never decides a hit.
    fn pair(&self, token: &str) -> Option<[usize; 2]> {
        let pairs = self.slots.len() / 2;
        if pairs == 0 || token.len() > MAX_CACHED_TOKEN_BYTES {
            return None;
        }
        // The signature's last bytes differ between any two tokens and are cheaper to hash than
        // the whole token; the hit is still decided by comparing whole tokens.
        let tail = token.as_bytes().get(token.len().saturating_sub(HASHED_TAIL_BYTES)..).unwrap_or_default();
        let mut hasher = DefaultHasher::new();
        tail.hash(&mut hasher);
        let pair = hasher.finish().checked_rem(u64::try_from(pairs).ok()?)?;
        let first = usize::try_from(pair).ok()?.checked_mul(2)?;
        Some([first, first.checked_add(1)?])
    }

    /// The verified facts of `token` if it verified under a key of `set` and has not expired at
    /// `now_secs`. The caller still checks that `set` is the one its rule selects for the kid.
    pub fn get(&mut self, token: &str, now_secs: i64) -> Option<(Rc<Verified>, Rc<KeySet>)> {
        let pair = self.pair(token)?;
        // A use counter for LRU: 2^64 lookups never happen, and saturating it is harmless.
        self.clock = self.clock.saturating_add(1);
        let clock = self.clock;
        for index in pair {
            let Some(slot) = self.slots.get_mut(index) else { continue };
            let Some(entry) = slot.as_mut().filter(|e| &*e.token == token) else { continue };
            let live = entry.expires_at_secs.is_none_or(|exp| now_secs <= exp);
            match entry.set.upgrade() {
                Some(set) if live => {
                    entry.last_used = clock;
                    self.hits = self.hits.saturating_add(1);
                    return Some((Rc::clone(&entry.verified), set));
                }
                // Expired, or its key set is gone (refetched): drop it.
                _ => *slot = None,
            }
        }
        None
    }

    /// Records that `token` verified under a key of `set`.
    pub fn insert(&mut self, token: &str, verified: Rc<Verified>, set: &Rc<KeySet>, expires_at_secs: Option<i64>) {
        let Some(pair) = self.pair(token) else { return };
        self.clock = self.clock.saturating_add(1);
        let entry =
            Entry { token: token.into(), verified, set: Rc::downgrade(set), expires_at_secs, last_used: self.clock };
        // The same token, an empty slot or one whose key set is gone, else the least recently used.
        let rank = |slot: &Option<Entry>| match slot {
            Some(e) if &*e.token == token => 0,
            None => 1,
            Some(e) if e.set.strong_count() == 0 => 2,
            Some(e) => e.last_used.saturating_add(3),
        };
        let [a, b] = pair;
        let target = match (self.slots.get(a), self.slots.get(b)) {
            (Some(x), Some(y)) if rank(y) < rank(x) => b,
            _ => a,
        };
        if let Some(slot) = self.slots.get_mut(target) {
            *slot = Some(entry);
        }
    }

    /// How many tokens are cached (for tests and metrics).
    pub fn len(&self) -> usize {
        self.slots.iter().filter(|s| s.is_some()).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verified() -> Rc<Verified> {
        Rc::new(Verified { alg: Algorithm::RS256, kid: "k".into(), claims: Map::new(), by_oathkeeper_key: true })
    }

    #[test]
    fn hit_needs_the_same_token_and_a_live_set() {
        let mut cache = VerifiedTokens::new(8);
        let set = Rc::new(KeySet::default());
        cache.insert("a.b.c", verified(), &set, Some(100));
        let (_, found) = cache.get("a.b.c", 100).expect("cached");
        assert!(Rc::ptr_eq(&found, &set));
        assert!(cache.get("a.b.d", 100).is_none());
        assert!(cache.get("a.b.", 100).is_none());
        assert!(cache.get("a.b.c", 101).is_none(), "used after exp");
        assert!(cache.is_empty(), "an expired entry is dropped");
    }

    #[test]
    fn a_replaced_key_set_drops_its_tokens() {
        let mut cache = VerifiedTokens::new(8);
        let set = Rc::new(KeySet::default());
        cache.insert("t", verified(), &set, None);
        assert!(cache.get("t", 0).is_some());
        drop(set);
        assert!(cache.get("t", 0).is_none());
        assert!(cache.is_empty());
    }

    #[test]
    fn bounded_and_disabled() {
        let mut cache = VerifiedTokens::new(4);
        let set = Rc::new(KeySet::default());
        for i in 0..100 {
            cache.insert(&format!("token-{i}"), verified(), &set, None);
        }
        assert!(cache.len() <= 4 && cache.capacity() == 4);
        assert!(cache.get("token-99", 0).is_some(), "the newest stays");
        let mut off = VerifiedTokens::disabled();
        off.insert("t", verified(), &set, None);
        assert!(off.get("t", 0).is_none());
        let long = "x".repeat(MAX_CACHED_TOKEN_BYTES + 1);
        cache.insert(&long, verified(), &set, None);
        assert!(cache.get(&long, 0).is_none());
    }

    #[test]
    fn recently_used_entries_survive_a_collision() {
        // Two slots only: the third token replaces the one not used since.
        let mut cache = VerifiedTokens::new(2);
        let set = Rc::new(KeySet::default());
        cache.insert("one", verified(), &set, None);
        cache.insert("two", verified(), &set, None);
        assert!(cache.get("one", 0).is_some());
        cache.insert("three", verified(), &set, None);
        assert!(cache.get("one", 0).is_some());
        assert!(cache.get("two", 0).is_none());
        assert!(cache.get("three", 0).is_some());
    }
}
