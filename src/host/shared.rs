//! JWKS state shared by every worker VM of this plugin in the proxy (proxy-wasm shared data):
//! one VM fetches a URL at a time (a lease taken by compare-and-swap), every VM adopts what it
//! fetched. The records and their transitions are pure (`keys::entry`, `keys::codec`); this
//! module only moves them in and out of the host.

use proxy_wasm::hostcalls;
use proxy_wasm::types::Status;

use crate::jwt::jwks::{parse_jwks, KeySet};
use crate::keys::codec;
use crate::keys::{Entry, FetchReason, KeyCache};

/// Attempts of a compare-and-swap before giving up (another VM won every race: it holds or just
/// released the lease, so this VM's view is refreshed and the caller waits for that VM).
const CAS_ATTEMPTS: usize = 8;

/// This VM's identity in the shared records.
#[derive(Debug, Clone, Default)]
pub struct SharedKeys {
    /// The plugin's name (Envoy's `plugin_name`; Istio: the WasmPlugin's namespace.name).
    plugin: String,
    /// This VM's id, the owner of the leases it takes.
    pub vm_id: u32,
}

impl SharedKeys {
    /// Takes a VM id from the plugin's shared counter and makes sure every URL has a record, so
    /// that every later write is a compare-and-swap.
    pub fn join<'a>(urls: impl Iterator<Item = &'a String>) -> SharedKeys {
        let plugin = hostcalls::get_property(vec!["plugin_name"])
            .ok()
            .flatten()
            .and_then(|b| String::from_utf8(b).ok())
            .unwrap_or_default();
        let counter = codec::vm_counter_key(&plugin);
        let mut vm_id = 0;
        for _ in 0..CAS_ATTEMPTS {
            let (current, cas) = hostcalls::get_shared_data(&counter).unwrap_or((None, None));
            let (id, next) = codec::next_vm_id(current.as_deref());
            if hostcalls::set_shared_data(&counter, Some(&next), cas).is_ok() {
                vm_id = id;
                break;
            }
        }
        let me = SharedKeys { plugin, vm_id };
        for url in urls {
            let key = codec::entry_key(&me.plugin, url);
            if let Ok((None, _)) = hostcalls::get_shared_data(&key) {
                // Two VMs starting together may both write the empty record; the worst case is
                // one extra fetch if one of them has already taken a lease in between.
                let _ = hostcalls::set_shared_data(&key, Some(&codec::encode_entry(&Entry::default())), None);
            }
        }
        me
    }

    fn read(&self, url: &str) -> (Entry, Option<u32>) {
        match hostcalls::get_shared_data(&codec::entry_key(&self.plugin, url)) {
            Ok((Some(bytes), cas)) => (codec::decode_entry(&bytes).unwrap_or_default(), cas),
            Ok((None, cas)) => (Entry::default(), cas),
            Err(_) => (Entry::default(), None),
        }
    }

    /// Brings this VM's copy of `url` up to the shared record: its state, and the set parsed
    /// from the shared body when another VM fetched a newer one.
    pub fn sync(&self, cache: &mut KeyCache, url: &str) {
        let (entry, _) = self.read(url);
        self.adopt(cache, url, entry);
    }

    /// Compares every set the last decision used while it may have been behind (see
    /// `KeyCache::take_possibly_behind`) with its shared record, adopting newer ones.
    pub fn sync_behind(&self, cache: &mut KeyCache, now_ms: u64) -> Synced {
        let mut synced = Synced::default();
        for url in cache.take_possibly_behind() {
            let before = cache.set_generation(&url);
            self.sync(cache, &url);
            synced.changed |= cache.set_generation(&url) != before;
            synced.refresh_due |= cache.may_start(&url, FetchReason::Refresh, now_ms);
        }
        synced
    }

    fn adopt(&self, cache: &mut KeyCache, url: &str, entry: Entry) {
        let keys = if cache.needs_body(url, &entry) {
            hostcalls::get_shared_data(&codec::body_key(&self.plugin, url)).ok().and_then(|(body, _)| body).and_then(
                |body| match codec::decode_body(&body) {
                    // A body of another generation is being replaced: read it next time.
                    Some((generation, jwks)) if generation == entry.generation => parse_jwks(jwks).ok(),
                    _ => None,
                },
            )
        } else {
            None
        };
        cache.observe(url, entry, keys);
    }

    /// Applies `change` to the shared record of `url` by compare-and-swap. `change` returns
    /// false to leave the record as it is. `Ok` with the record written, `Err` with the record as
    /// it stands when nothing was written.
    fn update(&self, url: &str, mut change: impl FnMut(&mut Entry) -> bool) -> Result<Entry, Entry> {
        let key = codec::entry_key(&self.plugin, url);
        for _ in 0..CAS_ATTEMPTS {
            let (mut entry, cas) = self.read(url);
            if !change(&mut entry) {
                return Err(entry);
            }
            match hostcalls::set_shared_data(&key, Some(&codec::encode_entry(&entry)), cas) {
                Ok(()) => return Ok(entry),
                Err(Status::CasMismatch) => continue,
                Err(_) => break,
            }
        }
        Err(self.read(url).0)
    }

    /// Takes the lease of `url` for a fetch for `reason` if the shared state allows one now.
    pub fn try_start(&self, cache: &mut KeyCache, url: &str, reason: FetchReason, now_ms: u64) -> bool {
        let settings = cache.settings().clone();
        let me = self.vm_id;
        let result = self.update(url, |e| {
            let ok = e.may_start(reason, now_ms, &settings);
            if ok {
                e.start(me, reason, now_ms, &settings);
            }
            ok
        });
        let started = result.is_ok();
        self.adopt(cache, url, result.unwrap_or_else(|e| e));
        started
    }

    /// Records a fetched set (`jwks` as fetched, `keys` parsed from it): the body first, tagged
    /// with the generation the record gets, then the record. A late answer counts too; it
    /// releases the lease only if the lease is ours.
    pub fn succeeded(&self, cache: &mut KeyCache, url: &str, jwks: &[u8], keys: KeySet, ttl_ms: u64, now_ms: u64) {
        let me = self.vm_id;
        let body_key = codec::body_key(&self.plugin, url);
        let result = self.update(url, |e| {
            let lease = e.lease.filter(|l| l.owner != me);
            e.succeed(now_ms, ttl_ms);
            e.lease = lease;
            let _ = hostcalls::set_shared_data(&body_key, Some(&codec::encode_body(e.generation, jwks)), None);
            true
        });
        match result {
            Ok(entry) => cache.observe(url, entry, Some(keys)),
            // The store refused every write: keep the set here at least.
            Err(_) => cache.fetch_succeeded_with_ttl(url, keys, now_ms, ttl_ms),
        }
    }

    /// Records a failed fetch (the last good set stays).
    pub fn failed(&self, cache: &mut KeyCache, url: &str, error: &str, now_ms: u64, jitter: u32) {
        let me = self.vm_id;
        let result = self.update(url, |e| {
            let lease = e.lease.filter(|l| l.owner != me);
            e.fail(now_ms, error, jitter);
            e.lease = lease;
            true
        });
        match result {
            Ok(entry) => self.adopt(cache, url, entry),
            Err(_) => cache.fetch_failed(url, error, now_ms, jitter),
        }
    }
}

/// What `sync_behind` found.
#[derive(Debug, Default, Clone, Copy)]
pub struct Synced {
    /// Some set was replaced by a newer one: the decision must be taken again.
    pub changed: bool,
    /// Some set is due for a refresh that nobody has started: the root should start it now.
    pub refresh_due: bool,
}

/// A jitter value for this VM's next backoff (spread, not secret).
pub fn jitter(vm_id: u32, now_ms: u64) -> u32 {
    let x = (now_ms ^ (u64::from(vm_id) << 32)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (x >> 32) as u32
}
