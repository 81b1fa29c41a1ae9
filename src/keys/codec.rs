//! The shared-data encoding of an `Entry` and of its key set's body, and the key names, so that
//! every worker VM of one plugin reads and writes the same records.
//!
//! Istio gives every WasmPlugin the same (empty) VM id, and Envoy scopes shared data by VM id,
//! so keys carry the plugin's identity: two plugins in one proxy never see each other's records.

use super::entry::Entry;

/// Format version: a record of another version is ignored (treated as absent), so a rolling
/// upgrade with two filter builds in one proxy re-fetches rather than misreads.
const VERSION: &str = "v1";

/// The shared-data key of `url`'s entry for the plugin `plugin`.
pub fn entry_key(plugin: &str, url: &str) -> String {
    format!("apirule-wasm/{VERSION}/{plugin}/jwks-entry/{url}")
}

/// The shared-data key of `url`'s key set body.
pub fn body_key(plugin: &str, url: &str) -> String {
    format!("apirule-wasm/{VERSION}/{plugin}/jwks-body/{url}")
}

/// The key of the counter that hands out VM ids (lease owners).
pub fn vm_counter_key(plugin: &str) -> String {
    format!("apirule-wasm/{VERSION}/{plugin}/vm-counter")
}

pub fn encode_entry(e: &Entry) -> Vec<u8> {
    serde_json::to_vec(e).unwrap_or_default()
}

/// `None` for anything that is not an entry of this format (absent, foreign or corrupt: the
/// caller starts from an empty entry and fetches).
pub fn decode_entry(bytes: &[u8]) -> Option<Entry> {
    serde_json::from_slice(bytes).ok()
}

/// A body is its generation (8 bytes, little endian) and the JWKS document as fetched.
pub fn encode_body(generation: u64, jwks: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(jwks.len().saturating_add(8));
    out.extend_from_slice(&generation.to_le_bytes());
    out.extend_from_slice(jwks);
    out
}

pub fn decode_body(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let (generation, jwks) = bytes.split_first_chunk::<8>()?;
    Some((u64::from_le_bytes(*generation), jwks))
}

/// A VM id from the counter's current value (absent: 0).
pub fn next_vm_id(current: Option<&[u8]>) -> (u32, Vec<u8>) {
    let n = current.and_then(|b| b.first_chunk::<4>()).map_or(0, |b| u32::from_le_bytes(*b));
    let next = n.wrapping_add(1);
    (next, next.to_le_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::super::entry::{FetchReason, Lease};
    use super::super::CacheSettings;
    use super::*;

    #[test]
    fn entries_round_trip() {
        let s = CacheSettings::default();
        let mut e = Entry::default();
        assert_eq!(decode_entry(&encode_entry(&e)), Some(e.clone()));
        e.start(3, FetchReason::UnknownKid, 1_000, &s);
        assert_eq!(
            decode_entry(&encode_entry(&e)).unwrap().lease,
            Some(Lease { owner: 3, started_ms: 1_000, expires_ms: 1_000 + s.fetch_timeout_ms + 1_000 })
        );
        e.fail(1_200, "HTTP status 503 \"quoted\"\n", 5);
        assert_eq!(decode_entry(&encode_entry(&e)), Some(e.clone()));
        e.succeed(2_000, 60_000);
        assert_eq!(decode_entry(&encode_entry(&e)), Some(e));
    }

    #[test]
    fn foreign_or_corrupt_records_read_as_absent() {
        assert_eq!(decode_entry(b""), None);
        assert_eq!(decode_entry(b"garbage"), None);
        assert_eq!(decode_entry(b"{\"generation\": \"x\"}"), None);
        assert_eq!(decode_entry(b"[1,2]"), None);
    }

    #[test]
    fn bodies_carry_their_generation() {
        let b = encode_body(42, b"{\"keys\":[]}");
        assert_eq!(decode_body(&b), Some((42, &b"{\"keys\":[]}"[..])));
        assert_eq!(decode_body(&[1, 2, 3]), None);
        assert_eq!(decode_body(&encode_body(0, b"")), Some((0, &b""[..])));
    }

    #[test]
    fn keys_are_scoped_by_plugin_and_vm_ids_count_up() {
        assert_ne!(entry_key("a", "https://idp/keys"), entry_key("b", "https://idp/keys"));
        assert_ne!(entry_key("a", "https://idp/keys"), body_key("a", "https://idp/keys"));
        assert_eq!(next_vm_id(None), (1, 1u32.to_le_bytes().to_vec()));
        assert_eq!(next_vm_id(Some(&7u32.to_le_bytes())).0, 8);
        assert_eq!(next_vm_id(Some(b"x")).0, 1, "a corrupt counter restarts");
    }
}
