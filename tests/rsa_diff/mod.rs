//! One differential check of `apirule_wasm::jwt::rsa` against the `rsa` crate, shared by the
//! seeded short run (`tests/rsa_differential.rs`, part of `cargo test`) and the cargo-fuzz target
//! (`fuzz/fuzz_targets/rsa_differential.rs`), which includes this file by path.
//!
//! Input bytes choose a key from a fixed pool (2048-4096 bits, odd sizes, e = 3 / 65537 / 2^32+15),
//! a scheme and hash, a message and a corruption. Corruptions act on the signature (bit flips,
//! truncation, extension, s = n, s > n, zero, one, random) and on the encoded message before
//! re-signing it with the raw private key, which is the only way to reach the padding checks:
//! a corrupted signature decrypts to noise that fails at the first byte. The two verifiers must
//! agree on every input, and an uncorrupted signature must verify.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use apirule_wasm::jwt::rsa::{HashAlg, RsaPublicKey};
use rsa::pkcs8::DecodePrivateKey;
use rsa::signature::{RandomizedSigner, SignatureEncoding, Signer, Verifier};
use rsa::traits::PublicKeyParts;
use rsa::{hazmat, pkcs1v15, pss, BigUint, RsaPrivateKey};
use sha2::{Sha256, Sha384, Sha512};

pub struct PoolKey {
    pub name: &'static str,
    pub private: RsaPrivateKey,
    pub ours: RsaPublicKey,
}

macro_rules! pool_keys {
    ($($name:literal),* $(,)?) => {
        [$(($name, include_str!(concat!("../data/rsa_pool/", $name, ".pem")))),*]
    };
}

pub fn pool() -> &'static [PoolKey] {
    static POOL: OnceLock<Vec<PoolKey>> = OnceLock::new();
    POOL.get_or_init(|| {
        pool_keys!(
            "rsa_2048_e65537",
            "rsa_2048_e3",
            "rsa_2049_e65537",
            "rsa_3072_e65537",
            "rsa_4095_e65537",
            "rsa_4096_e65537",
            "rsa_4096_e4294967311",
        )
        .into_iter()
        .map(|(name, pem)| {
            let private = RsaPrivateKey::from_pkcs8_pem(pem).unwrap();
            let ours = RsaPublicKey::new(&private.n().to_bytes_be(), &private.e().to_bytes_be()).unwrap();
            PoolKey { name, private, ours }
        })
        .collect()
    })
}

/// Deterministic randomness for PSS salts (a test stand-in, not a CSPRNG).
pub struct TestRng(pub u64);

impl rsa::rand_core::RngCore for TestRng {
    fn next_u32(&mut self) -> u32 {
        self.next_u64() as u32
    }
    fn next_u64(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let z = (self.0 ^ (self.0 >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        let z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rsa::rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl rsa::rand_core::CryptoRng for TestRng {}

/// Reads fuzz input; past its end every read is zero, so any input is a valid case.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        let (&b, rest) = self.0.split_first().unwrap_or((&0, &[]));
        self.0 = rest;
        b
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }
    fn take(&mut self, n: usize) -> &[u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    Pkcs1v15,
    Pss,
}

/// Corruptions, chosen by one input byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Corruption {
    None,
    FlipSignatureBit,
    Truncate,
    PrependZero,
    AppendByte,
    ModulusItself,
    AboveModulus,
    Zero,
    One,
    Random,
    /// A valid signature of the same message under the other scheme or another hash.
    OtherAlgorithm,
    FlipEncodedBit,
    SetEncodedByte,
    /// Zero or 0xff-fill a run of encoded-message bytes (PS, separator, DigestInfo, salt...).
    FillEncodedRun,
}

pub const CORRUPTIONS: [Corruption; 14] = [
    Corruption::None,
    Corruption::FlipSignatureBit,
    Corruption::Truncate,
    Corruption::PrependZero,
    Corruption::AppendByte,
    Corruption::ModulusItself,
    Corruption::AboveModulus,
    Corruption::Zero,
    Corruption::One,
    Corruption::Random,
    Corruption::OtherAlgorithm,
    Corruption::FlipEncodedBit,
    Corruption::SetEncodedByte,
    Corruption::FillEncodedRun,
];

const HASHES: [HashAlg; 3] = [HashAlg::Sha256, HashAlg::Sha384, HashAlg::Sha512];

fn sign(key: &RsaPrivateKey, scheme: Scheme, hash: HashAlg, msg: &[u8], rng: &mut TestRng) -> Vec<u8> {
    let key = key.clone();
    match (scheme, hash) {
        (Scheme::Pkcs1v15, HashAlg::Sha256) => pkcs1v15::SigningKey::<Sha256>::new(key).sign(msg).to_vec(),
        (Scheme::Pkcs1v15, HashAlg::Sha384) => pkcs1v15::SigningKey::<Sha384>::new(key).sign(msg).to_vec(),
        (Scheme::Pkcs1v15, HashAlg::Sha512) => pkcs1v15::SigningKey::<Sha512>::new(key).sign(msg).to_vec(),
        (Scheme::Pss, HashAlg::Sha256) => pss::SigningKey::<Sha256>::new(key).sign_with_rng(rng, msg).to_vec(),
        (Scheme::Pss, HashAlg::Sha384) => pss::SigningKey::<Sha384>::new(key).sign_with_rng(rng, msg).to_vec(),
        (Scheme::Pss, HashAlg::Sha512) => pss::SigningKey::<Sha512>::new(key).sign_with_rng(rng, msg).to_vec(),
    }
}

/// The `rsa` crate's answer: PSS with salt length = hash length, as JWS requires.
fn reference(key: &RsaPrivateKey, scheme: Scheme, hash: HashAlg, msg: &[u8], sig: &[u8]) -> bool {
    let public = key.to_public_key();
    macro_rules! verify {
        ($module:ident, $digest:ty) => {
            match $module::Signature::try_from(sig) {
                Ok(s) => $module::VerifyingKey::<$digest>::new(public).verify(msg, &s).is_ok(),
                Err(_) => false,
            }
        };
    }
    match (scheme, hash) {
        (Scheme::Pkcs1v15, HashAlg::Sha256) => verify!(pkcs1v15, Sha256),
        (Scheme::Pkcs1v15, HashAlg::Sha384) => verify!(pkcs1v15, Sha384),
        (Scheme::Pkcs1v15, HashAlg::Sha512) => verify!(pkcs1v15, Sha512),
        (Scheme::Pss, HashAlg::Sha256) => verify!(pss, Sha256),
        (Scheme::Pss, HashAlg::Sha384) => verify!(pss, Sha384),
        (Scheme::Pss, HashAlg::Sha512) => verify!(pss, Sha512),
    }
}

fn ours(key: &RsaPublicKey, scheme: Scheme, hash: HashAlg, msg: &[u8], sig: &[u8]) -> bool {
    match scheme {
        Scheme::Pkcs1v15 => key.verify_pkcs1v15(hash, msg, sig).is_ok(),
        Scheme::Pss => key.verify_pss(hash, msg, sig).is_ok(),
    }
}

fn be_padded(x: &BigUint, len: usize) -> Vec<u8> {
    let bytes = x.to_bytes_be();
    let mut out = vec![0u8; len.saturating_sub(bytes.len())];
    out.extend_from_slice(&bytes);
    out
}

const FIXED_MESSAGES: [&[u8]; 4] =
    [b"", b"eyJhbGciOiJSUzI1NiIsImtpZCI6ImsifQ.eyJzdWIiOiJtZSJ9", b"\x00\x01\xff", &[0x5a; 1000]];

/// A valid signature of `msg` (PSS salts derived from the message, so the cache is
/// deterministic).
fn cached_signature(key: &PoolKey, scheme: Scheme, hash: HashAlg, msg: &[u8]) -> Vec<u8> {
    type Cache = Mutex<HashMap<(&'static str, Scheme, HashAlg, Vec<u8>), Vec<u8>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let id = (key.name, scheme, hash, msg.to_vec());
    if let Some(sig) = cache.lock().unwrap().get(&id) {
        return sig.clone();
    }
    let sig = sign(&key.private, scheme, hash, msg, &mut TestRng(u64::from(input_seed(msg))));
    let mut cache = cache.lock().unwrap();
    if cache.len() > 10_000 {
        cache.clear();
    }
    cache.insert(id, sig.clone());
    sig
}

/// Re-signs a (corrupted) encoded message with the raw private key; `None` when em >= n.
fn raw_sign(key: &RsaPrivateKey, em: &[u8]) -> Option<Vec<u8>> {
    let m = BigUint::from_bytes_be(em);
    let s = hazmat::rsa_decrypt::<TestRng>(None, key, &m).ok()?;
    Some(be_padded(&s, key.size()))
}

/// What one case did, for the short run's coverage counts.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    pub corruption: Corruption,
    pub verified: bool,
}

/// Runs one case from fuzz input; panics when the two verifiers disagree.
pub fn check(data: &[u8]) -> Outcome {
    let mut input = Input(data);
    let pool = pool();
    let key = &pool[usize::from(input.byte()) % pool.len()];
    let choice = input.byte();
    let scheme = if choice & 1 == 0 { Scheme::Pkcs1v15 } else { Scheme::Pss };
    let hash = HASHES[usize::from(choice >> 1) % HASHES.len()];
    let corruption = CORRUPTIONS[usize::from(input.byte()) % CORRUPTIONS.len()];
    let where_ = input.u32() as usize;
    let value = input.byte();
    // Most cases use one of a few fixed messages, whose signatures are cached: the `rsa` crate's
    // private-key operation dominates the cost of a case (more so under fuzzing instrumentation),
    // and the message only matters through its hash.
    let msg_choice = input.byte();
    let msg_len = usize::from(input.byte());
    let msg = match msg_choice % 8 {
        0 => input.take(msg_len).to_vec(),
        c => FIXED_MESSAGES[usize::from(c) % FIXED_MESSAGES.len()].to_vec(),
    };
    let rest = input.0;
    let mut rng = TestRng(u64::from(input_seed(data)));

    let k = key.private.size();
    let n = key.private.n();
    let valid = || cached_signature(key, scheme, hash, &msg);
    let encoded = |sig: &[u8]| be_padded(&hazmat::rsa_encrypt(&key.private, &BigUint::from_bytes_be(sig)).unwrap(), k);
    let sig: Option<Vec<u8>> = match corruption {
        Corruption::None => Some(valid()),
        Corruption::FlipSignatureBit => {
            let mut s = valid();
            s[where_ % k] ^= 1 << (value % 8);
            Some(s)
        }
        Corruption::Truncate => {
            let s = valid();
            Some(s[..k - 1 - where_ % 4].to_vec())
        }
        Corruption::PrependZero => Some([&[0u8][..], &valid()].concat()),
        Corruption::AppendByte => Some([&valid()[..], &[value]].concat()),
        Corruption::ModulusItself => Some(be_padded(n, k)),
        Corruption::AboveModulus => {
            let above = n + BigUint::from(1u32 + where_ as u32 % 1000);
            let bytes = be_padded(&above, k);
            (bytes.len() == k).then_some(bytes)
        }
        Corruption::Zero => Some(vec![0; k]),
        Corruption::One => Some(be_padded(&BigUint::from(1u32), k)),
        Corruption::Random => Some((0..k).map(|i| rest.get(i).copied().unwrap_or(value ^ i as u8)).collect()),
        Corruption::OtherAlgorithm => {
            let other_scheme = if value & 1 == 0 {
                scheme
            } else if scheme == Scheme::Pss {
                Scheme::Pkcs1v15
            } else {
                Scheme::Pss
            };
            let other_hash =
                HASHES[(HASHES.iter().position(|&h| h == hash).unwrap() + 1 + usize::from(value >> 1) % 2) % 3];
            Some(sign(&key.private, other_scheme, other_hash, &msg, &mut rng))
        }
        Corruption::FlipEncodedBit | Corruption::SetEncodedByte | Corruption::FillEncodedRun => {
            let mut em = encoded(&valid());
            let at = where_ % k;
            match corruption {
                Corruption::FlipEncodedBit => em[at] ^= 1 << (value % 8),
                Corruption::SetEncodedByte => em[at] = value,
                _ => {
                    let len = 1 + (where_ >> 16) % 32;
                    let fill = if value & 1 == 0 { 0 } else { 0xff };
                    em[at..(at + len).min(k)].fill(fill);
                }
            }
            raw_sign(&key.private, &em)
        }
    };
    let Some(sig) = sig else {
        return Outcome { corruption, verified: false };
    };
    let theirs = reference(&key.private, scheme, hash, &msg, &sig);
    let mine = ours(&key.ours, scheme, hash, &msg, &sig);
    if theirs && !mine && rsa_crate_ignores_leading_byte(key, scheme, &sig) {
        // Known leniency of `rsa` 0.9, not ours to copy (see the function).
        return Outcome { corruption, verified: false };
    }
    assert_eq!(
        mine,
        theirs,
        "{} {scheme:?} {hash:?} {corruption:?}: ours {mine}, rsa crate {theirs}; msg {} bytes, sig {:02x?}",
        key.name,
        msg.len(),
        sig
    );
    if corruption == Corruption::None {
        assert!(mine, "{} {scheme:?} {hash:?}: a valid signature did not verify", key.name);
    }
    Outcome { corruption, verified: mine }
}

/// `rsa` 0.9's PSS verification drops the first byte of s^e mod n when the modulus has
/// 8x + 1 bits (emLen = k - 1) without checking that it is zero, so it accepts a signature whose
/// encoded message does not fit emLen octets. RFC 8017 §8.1.2 step 2c (I2OSP fails) makes that
/// invalid, and Go's crypto/rsa rejects it too; so does ours (`PssTopBits`). Found by
/// `make fuzz`.
pub fn rsa_crate_ignores_leading_byte(key: &PoolKey, scheme: Scheme, sig: &[u8]) -> bool {
    let bits = key.ours.bits();
    if scheme != Scheme::Pss || !(bits - 1).is_multiple_of(8) || sig.len() != key.private.size() {
        return false;
    }
    let s = BigUint::from_bytes_be(sig);
    if &s >= key.private.n() {
        return false;
    }
    let em = be_padded(&hazmat::rsa_encrypt(&key.private, &s).unwrap(), key.private.size());
    em.first().is_some_and(|&b| b != 0)
}

/// The signature whose encoded message is that of the valid `scheme`/`hash` signature of `msg`
/// with `edit` applied, if it is below n.
pub fn edited_signature(
    key: &PoolKey,
    scheme: Scheme,
    hash: HashAlg,
    msg: &[u8],
    edit: impl FnOnce(&mut Vec<u8>),
) -> Option<Vec<u8>> {
    let sig = cached_signature(key, scheme, hash, msg);
    let k = key.private.size();
    let mut em = be_padded(&hazmat::rsa_encrypt(&key.private, &BigUint::from_bytes_be(&sig)).unwrap(), k);
    edit(&mut em);
    raw_sign(&key.private, &em)
}

/// Both verifiers' answers.
pub fn both(key: &PoolKey, scheme: Scheme, hash: HashAlg, msg: &[u8], sig: &[u8]) -> (bool, bool) {
    (ours(&key.ours, scheme, hash, msg, sig), reference(&key.private, scheme, hash, msg, sig))
}

fn input_seed(data: &[u8]) -> u32 {
    data.iter().fold(0x811c_9dc5u32, |h, &b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193))
}
