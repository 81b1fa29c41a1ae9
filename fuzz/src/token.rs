//! Token verification through `Policy::decide`: a fixed policy (v1alpha1, v1beta1 with the
//! Authorization header and with token_from, v1beta1 in Istio JWT mode, v2alpha1 with
//! fromHeaders, v2 with the default locations and with fromParams; every rule a jwt rule) and a
//! fixed key set (RSA `k1`, P-256 `e1`, HMAC `h1`), with fuzzed tokens in fuzzed places.
//!
//! The invariant: a request is only allowed if it carries a token that is really signed by the
//! key set. The harness's private keys sign nothing but the signing inputs of the tokens it
//! minted (`World::minted`), and the fuzzer cannot compute a signature, so the check is: some
//! minted signing input occurs in the request (in a header value, or the path, raw or
//! percent-decoded), followed by `.` and a signature that the reference crates (`rsa`, `p256`,
//! `hmac`) verify over it with one of the keys. An Allow without that is a forged token accepted.
//! And the one minted token that has expired (valid signature, `exp` an hour ago) is no such
//! token: an Allow on it alone is an expired token accepted.
//!
//! Also: a governed host is never passed through; nothing waits for keys or calls when the key
//! store says waiting cannot help; and the verified-token cache never changes an answer
//! (each request is decided with and without a cache warmed by a valid token first).

use std::rc::Rc;

use apirule_wasm::config;
use apirule_wasm::jwt::cache::VerifiedTokens;
use apirule_wasm::jwt::jwks::{parse_jwks, KeySet};
use apirule_wasm::keys::KeyStore;
use apirule_wasm::policy::{Decision, Policy};
use apirule_wasm::request::Request;
use arbitrary::{Result, Unstructured};
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::engine::DecodePaddingMode;
use base64::{alphabet, Engine};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};

use crate::common::{self, Signer, ISSUER, JWKS_URL, NOW_MS, NOW_SECS};
use crate::json_mutate::{self, Dictionary};

pub const HOSTS: [&str; 7] = [
    "v1.example.com",
    "v1a.example.com",
    "v1c.example.com",
    "v1i.example.com",
    "v2.example.com",
    "v2h.example.com",
    "v2p.example.com",
];

/// The HMAC key of `h1`: in the key set, never in any input.
const HMAC_SECRET: &[u8] = b"apirule-fuzz: h1's secret, known to the harness only";
/// A P-256 key that is not in the key set (the attacker's own).
const ATTACKER_EC_SECRET: [u8; 32] = [7; 32];

/// A key store that always has the fixed set, and for which waiting never helps.
pub struct FixedKeys(pub Rc<KeySet>);

impl KeyStore for FixedKeys {
    fn usable(&self, _url: &str, _now_ms: u64) -> Option<Rc<KeySet>> {
        Some(self.0.clone())
    }
    fn may_fetch(&self, _url: &str, _now_ms: u64) -> bool {
        false
    }
    fn may_refetch(&self, _url: &str, _now_ms: u64) -> bool {
        false
    }
}

pub struct World {
    pub policy: Policy,
    pub jwks: Value,
    /// Every token the harness signed with a key of the set: (token, its signing input).
    pub minted: Vec<(String, String)>,
    /// One of the minted tokens whose signature is valid and whose claims have expired.
    pub expired: String,
    rsa: rsa::RsaPublicKey,
    ec: p256::ecdsa::VerifyingKey,
    attacker: p256::ecdsa::SigningKey,
    /// The set parsed once (parsing builds RSA and EC tables: too slow per input).
    keys: Rc<KeySet>,
    token_dict: Dictionary,
}

fn jwt_v1(extra: Value) -> Value {
    let mut c = common::jwt_config(extra);
    c["jwks_urls"] = json!([JWKS_URL]);
    json!([{"handler": "jwt", "config": c}])
}

fn v1beta1(host: &str, strategies: Value) -> Value {
    common::apirule(
        host.split('.').next().unwrap_or("x"),
        host,
        json!([{"path": "/.*", "methods": ["GET"], "accessStrategies": strategies}]),
    )
}

fn v2(version: &str, host: &str, authentication: Value) -> Value {
    json!({"apiVersion": format!("gateway.kyma-project.io/{version}"), "kind": "APIRule",
           "metadata": {"name": host.split('.').next().unwrap_or("x"), "namespace": "default"},
           "spec": {"hosts": [host], "service": {"name": "httpbin", "port": 8000}, "gateway": "kyma-system/kyma-gateway",
                    "rules": [{"path": "/*", "methods": ["GET"], "jwt": {"authentications": [authentication]}}]}})
}

pub fn plugin_config() -> Value {
    let auth = json!({"issuer": ISSUER, "jwksUri": JWKS_URL});
    let mut header_auth = auth.clone();
    header_auth["fromHeaders"] = json!([{"name": "X-JWT", "prefix": "Token "}]);
    let mut param_auth = auth.clone();
    param_auth["fromParams"] = json!(["jwt"]);
    let v1alpha1 = json!({"apiVersion": "gateway.kyma-project.io/v1alpha1", "kind": "APIRule",
        "metadata": {"name": "v1a", "namespace": "default"},
        "spec": {"gateway": "kyma-system/kyma-gateway",
                 "service": {"name": "httpbin", "port": 8000, "host": HOSTS[1]},
                 "rules": [{"path": "/.*", "methods": ["GET"], "accessStrategies": jwt_v1(json!({}))}]}});
    json!({"apiRules": [
        v1beta1(HOSTS[0], jwt_v1(json!({}))),
        v1alpha1,
        v1beta1(HOSTS[2], jwt_v1(json!({"token_from": {"cookie": "jwt"}}))),
        v1beta1(HOSTS[3], json!([{"handler": "jwt", "config": {"authentications": [auth.clone()]}}])),
        v2("v2", HOSTS[4], auth),
        v2("v2alpha1", HOSTS[5], header_auth),
        v2("v2", HOSTS[6], param_auth),
    ]})
}

impl World {
    pub fn get() -> &'static World {
        // The policy holds `Rc`s (it is per worker in the filter): one per thread, built once.
        thread_local!(static WORLD: &'static World = Box::leak(Box::new(World::build())));
        WORLD.with(|w| *w)
    }

    fn build() -> World {
        use rsa::pkcs8::DecodePrivateKey;
        let policy = config::parse(plugin_config().to_string().as_bytes()).expect("the token policy loads").policy;
        let mut jwks = common::default_jwks();
        jwks["keys"]
            .as_array_mut()
            .expect("keys")
            .push(json!({"kty": "oct", "kid": "h1", "use": "sig", "alg": "HS256", "k": common::b64(HMAC_SECRET)}));
        let rsa = rsa::RsaPrivateKey::from_pkcs8_pem(common::keys::RSA_PRIVATE_PEM).expect("rsa key").to_public_key();
        let ec = {
            use p256::pkcs8::DecodePrivateKey;
            *p256::ecdsa::SigningKey::from_pkcs8_pem(common::keys::EC_PRIVATE_PEM).expect("ec key").verifying_key()
        };
        let good = common::good_claims();
        let mut scoped = good.clone();
        scoped["scope"] = json!("read write");
        scoped["aud"] = json!(["api", "web"]);
        let mut expired = good.clone();
        expired["exp"] = json!(NOW_SECS - 3600);
        let specs: Vec<(Value, Value, Signer<'_>)> = vec![
            (json!({"alg": "RS256", "kid": "k1", "typ": "JWT"}), good.clone(), Signer::Rsa),
            (json!({"alg": "ES256", "kid": "e1", "typ": "JWT"}), good.clone(), Signer::Ec),
            (json!({"alg": "HS256", "kid": "h1", "typ": "JWT"}), good.clone(), Signer::Hmac(HMAC_SECRET)),
            (json!({"alg": "RS256"}), good.clone(), Signer::Rsa),
            (json!({"alg": "ES256", "typ": "at+jwt"}), scoped.clone(), Signer::Ec),
            (json!({"alg": "RS256", "kid": "k1"}), scoped, Signer::Rsa),
            (json!({"alg": "RS256", "kid": "k1"}), expired, Signer::Rsa),
        ];
        let minted: Vec<(String, String)> = specs
            .into_iter()
            .map(|(h, c, s)| {
                let t = common::mint(h, c, s);
                let input = t.rsplit_once('.').map(|(i, _)| i.to_owned()).unwrap_or_default();
                (t, input)
            })
            .collect();
        let expired = minted.last().map(|(t, _)| t.clone()).unwrap_or_default();
        let mut values = json_mutate::generic_values();
        for s in [
            "none",
            "None",
            "HS256",
            "HS384",
            "HS512",
            "RS256",
            "RS384",
            "RS512",
            "PS256",
            "ES256",
            "ES384",
            "ES512",
            "EdDSA",
            "k1",
            "e1",
            "h1",
            "JWT",
            "at+jwt",
            ISSUER,
            "https://idp.example.com/",
            "api",
            "read",
        ] {
            values.push(Value::String(s.into()));
        }
        for n in [NOW_SECS as i64 - 1, NOW_SECS as i64, NOW_SECS as i64 + 1, NOW_SECS as i64 + 3600] {
            values.push(json!(n));
        }
        values.push(json!(["exp"]));
        values.push(json!({"kty": "oct", "k": "AAAA"}));
        let token_dict = Dictionary {
            values,
            keys: vec![
                "alg",
                "kid",
                "typ",
                "crit",
                "jwk",
                "jku",
                "x5u",
                "b64",
                "iss",
                "sub",
                "aud",
                "exp",
                "nbf",
                "iat",
                "scope",
                "scp",
                "client_id",
            ],
            fragments: vec!["=", ".", "+", "/", "\u{0}", " "],
        };
        let keys = Rc::new(parse_jwks(jwks.to_string().as_bytes()).expect("the key set parses"));
        let world = World {
            keys,
            policy,
            jwks,
            minted,
            expired,
            rsa,
            ec,
            attacker: p256::ecdsa::SigningKey::from_slice(&ATTACKER_EC_SECRET).expect("attacker key"),
            token_dict,
        };
        world.self_check();
        world
    }

    pub fn key_set(&self) -> Rc<KeySet> {
        self.keys.clone()
    }

    /// The invariant is not vacuous: every host allows some minted token, and the oracle
    /// recognises each minted token.
    fn self_check(&self) {
        let keys = FixedKeys(self.key_set());
        for host in HOSTS {
            let allowed = self
                .minted
                .iter()
                .filter(|(t, _)| {
                    let req = place_plainly(host, t);
                    matches!(self.policy.decide(&req, NOW_MS, &keys), Decision::Allow { .. })
                })
                .count();
            assert!(allowed > 0, "{host} allows none of the minted tokens");
        }
        for (t, _) in &self.minted {
            assert!(self.genuinely_signed(&[t.as_bytes().to_vec()]), "the oracle does not recognise {t}");
        }
    }

    /// Whether the reference crates verify `sig` over `msg` with a key of the set (any
    /// algorithm of the key's family: the oracle only asks "signed by us?").
    fn reference_verifies(&self, msg: &[u8], sig: &[u8]) -> bool {
        use rsa::signature::Verifier;
        if let Ok(s) = rsa::pkcs1v15::Signature::try_from(sig) {
            let k = &self.rsa;
            if rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(k.clone()).verify(msg, &s).is_ok()
                || rsa::pkcs1v15::VerifyingKey::<sha2::Sha384>::new(k.clone()).verify(msg, &s).is_ok()
                || rsa::pkcs1v15::VerifyingKey::<sha2::Sha512>::new(k.clone()).verify(msg, &s).is_ok()
            {
                return true;
            }
        }
        if let Ok(s) = rsa::pss::Signature::try_from(sig) {
            let k = &self.rsa;
            if rsa::pss::VerifyingKey::<sha2::Sha256>::new(k.clone()).verify(msg, &s).is_ok()
                || rsa::pss::VerifyingKey::<sha2::Sha384>::new(k.clone()).verify(msg, &s).is_ok()
                || rsa::pss::VerifyingKey::<sha2::Sha512>::new(k.clone()).verify(msg, &s).is_ok()
            {
                return true;
            }
        }
        if let Ok(s) = p256::ecdsa::Signature::from_slice(sig) {
            use p256::ecdsa::signature::Verifier as _;
            // (r, s) and (r, n - s) are both valid signatures of the same key: accept either.
            if self.ec.verify(msg, &s).is_ok() || s.normalize_s().is_some_and(|n| self.ec.verify(msg, &n).is_ok()) {
                return true;
            }
        }
        macro_rules! hmac_ok {
            ($h:ty) => {{
                let mut m = <Hmac<$h> as Mac>::new_from_slice(HMAC_SECRET).expect("hmac key");
                m.update(msg);
                m.verify_slice(sig).is_ok()
            }};
        }
        hmac_ok!(sha2::Sha256) || hmac_ok!(sha2::Sha384) || hmac_ok!(sha2::Sha512)
    }

    /// The oracle: some minted signing input occurs in one of `texts`, followed by `.` and a
    /// signature the reference crates verify over it.
    pub fn genuinely_signed(&self, texts: &[Vec<u8>]) -> bool {
        !self.genuine_tokens(texts).is_empty()
    }

    /// Which minted tokens (indexes into `minted`) occur in `texts` with a signature the
    /// reference crates verify.
    pub fn genuine_tokens(&self, texts: &[Vec<u8>]) -> Vec<usize> {
        const LENIENT: GeneralPurpose = GeneralPurpose::new(
            &alphabet::URL_SAFE,
            GeneralPurposeConfig::new()
                .with_decode_padding_mode(DecodePaddingMode::Indifferent)
                .with_decode_allow_trailing_bits(true),
        );
        let is_b64 = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'=';
        let mut found = Vec::new();
        for text in texts {
            for (index, (_, input)) in self.minted.iter().enumerate() {
                if found.contains(&index) {
                    continue;
                }
                let needle = format!("{input}.");
                let mut from = 0;
                while let Some(at) = find(text.get(from..).unwrap_or_default(), needle.as_bytes()) {
                    let start = from + at + needle.len();
                    let rest = text.get(start..).unwrap_or_default();
                    let run = rest.iter().position(|&b| !is_b64(b)).unwrap_or(rest.len());
                    let run = rest.get(..run).unwrap_or_default();
                    let unpadded = run.split(|&b| b == b'=').next().unwrap_or_default();
                    for candidate in [run, unpadded] {
                        if let Ok(sig) = LENIENT.decode(candidate) {
                            if !found.contains(&index) && self.reference_verifies(input.as_bytes(), &sig) {
                                found.push(index);
                            }
                        }
                    }
                    from += at + 1;
                }
            }
        }
        found
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Percent-decoding of everything decodable, `+` as a space or not: how any extractor could
/// read a query.
fn decoded(text: &str, plus_is_space: bool) -> Vec<u8> {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        let hex = |j: usize| b.get(j).and_then(|&h| (h as char).to_digit(16));
        match (c, hex(i + 1), hex(i + 2)) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b'+', _, _) if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// Everything in the request a token could have been read from.
pub fn request_texts(req: &Request) -> Vec<Vec<u8>> {
    let mut texts: Vec<Vec<u8>> = req.headers.iter().map(|(_, v)| v.clone()).collect();
    texts.push(req.path.as_bytes().to_vec());
    texts.push(decoded(&req.path, true));
    texts.push(decoded(&req.path, false));
    texts
}

/// Where each host reads its token, for the self check.
fn place_plainly(host: &str, token: &str) -> Request {
    let req = Request::new("GET", host, "/headers");
    match host {
        "v1c.example.com" => req.with_header("cookie", &format!("jwt={token}")),
        "v2h.example.com" => req.with_header("x-jwt", &format!("Token {token}")),
        "v2p.example.com" => Request::new("GET", host, &format!("/headers?jwt={token}")),
        _ => req.with_header("authorization", &format!("Bearer {token}")),
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A token: raw bytes, a mutated minted token, or one signed by what an attacker has.
fn fuzzed_token(u: &mut Unstructured, w: &World) -> Result<String> {
    let (base, _) = u.choose(&w.minted)?;
    Ok(match u.int_in_range(0..=3u8)? {
        0 => {
            let n = u.arbitrary_len::<u8>()?;
            String::from_utf8_lossy(u.bytes(n)?).into_owned()
        }
        1 => mutated(u, w, base)?,
        2 => attacker_signed(u, w)?,
        _ => {
            // Segments of different minted tokens spliced together.
            let part = |u: &mut Unstructured, i: usize| -> Result<String> {
                let (t, _) = u.choose(&w.minted)?;
                Ok(t.split('.').nth(i).unwrap_or_default().to_owned())
            };
            format!("{}.{}.{}", part(u, 0)?, part(u, 1)?, part(u, 2)?)
        }
    })
}

fn mutated(u: &mut Unstructured, w: &World, base: &str) -> Result<String> {
    let mut parts: Vec<String> = base.split('.').map(str::to_owned).collect();
    for _ in 0..u.int_in_range(1..=3u8)? {
        let i = u.choose_index(parts.len())?;
        let Some(seg) = parts.get_mut(i) else { continue };
        match u.int_in_range(0..=10u8)? {
            0 => {
                // Flip bits of one character.
                if !seg.is_empty() {
                    let mut b = seg.clone().into_bytes();
                    let at = u.choose_index(b.len())?;
                    if let Some(c) = b.get_mut(at) {
                        *c ^= u.int_in_range(1..=255u8)?;
                    }
                    *seg = String::from_utf8_lossy(&b).into_owned();
                }
            }
            1 => {
                let at = u.int_in_range(0..=seg.len())?;
                let c = *u.choose(&['A', 'a', '0', '-', '_', '=', '+', '/', '.', '%', ' ', '\t', '\u{0}', '\u{e9}'])?;
                if seg.is_char_boundary(at) {
                    seg.insert(at, c);
                }
            }
            2 => {
                if !seg.is_empty() {
                    let at = u.choose_index(seg.len())?;
                    if seg.is_char_boundary(at) {
                        seg.remove(at);
                    }
                }
            }
            3 => {
                let at = u.int_in_range(0..=seg.len())?;
                if seg.is_char_boundary(at) {
                    seg.truncate(at);
                }
            }
            4 => {
                let n = u.arbitrary_len::<u8>()?;
                *seg = b64(u.bytes(n)?);
            }
            5 => {
                // The header or payload decoded, edited as JSON, re-encoded; the signature kept.
                let bytes = URL_SAFE_NO_PAD.decode(seg.as_bytes()).unwrap_or_default();
                if let Ok(mut v) = serde_json::from_slice::<Value>(&bytes) {
                    json_mutate::mutate(u, &mut v, &w.token_dict, 3)?;
                    *seg = b64(v.to_string().as_bytes());
                }
            }
            6 => {
                // The same bytes in other base64 spellings.
                let bytes = URL_SAFE_NO_PAD.decode(seg.as_bytes()).unwrap_or_default();
                *seg = match u.int_in_range(0..=2u8)? {
                    0 => URL_SAFE.encode(&bytes),
                    1 => STANDARD.encode(&bytes),
                    _ => {
                        // Trailing bits set in the last character (a non-canonical encoding).
                        let mut s = b64(&bytes);
                        if let Some(last) = s.pop() {
                            let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
                            let pos = alphabet.iter().position(|&a| a as char == last).unwrap_or(0);
                            let bump = u.int_in_range(1..=3usize)?;
                            s.push(alphabet.get((pos + bump) % 64).copied().unwrap_or(b'A') as char);
                        }
                        s
                    }
                };
            }
            7 => {
                // Signature bytes edited: bits, zeros, length, or ECDSA's s replaced by n - s.
                let mut sig = URL_SAFE_NO_PAD.decode(seg.as_bytes()).unwrap_or_default();
                match u.int_in_range(0..=5u8)? {
                    0 if !sig.is_empty() => {
                        let at = u.choose_index(sig.len())?;
                        if let Some(b) = sig.get_mut(at) {
                            *b ^= 1 << u.int_in_range(0..=7u8)?;
                        }
                    }
                    1 => sig.iter_mut().for_each(|b| *b = 0),
                    2 => sig.insert(0, 0),
                    3 => sig.push(0),
                    4 if sig.len() > 1 => {
                        sig.pop();
                    }
                    _ => {
                        if let Ok(s) = p256::ecdsa::Signature::from_slice(&sig) {
                            let (r, s) = s.split_scalars();
                            let neg = -*s;
                            if let Ok(m) = p256::ecdsa::Signature::from_scalars(r, neg) {
                                sig = m.to_bytes().to_vec();
                            }
                        }
                    }
                }
                *seg = b64(&sig);
            }
            8 => {
                let (other, _) = u.choose(&w.minted)?;
                *seg = other.split('.').nth(i).unwrap_or_default().to_owned();
            }
            9 => {
                let n = u.arbitrary_len::<u8>()?;
                *seg = String::from_utf8_lossy(u.bytes(n)?).into_owned();
            }
            _ => {
                if u.arbitrary()? {
                    parts.push(String::new());
                } else if parts.len() > 1 {
                    parts.pop();
                }
                break;
            }
        }
    }
    Ok(parts.join("."))
}

fn attacker_signed(u: &mut Unstructured, w: &World) -> Result<String> {
    let alg = *u.choose(&[
        "none", "None", "NONE", "", "HS256", "HS384", "HS512", "RS256", "RS384", "PS256", "ES256", "ES384", "EdDSA",
    ])?;
    let mut header = json!({"alg": alg, "typ": "JWT"});
    if let Some(kid) = *u.choose(&[Some("k1"), Some("e1"), Some("h1"), Some(""), None])? {
        header["kid"] = json!(kid);
    }
    json_mutate::mutate(u, &mut header, &w.token_dict, 2)?;
    let mut claims = common::good_claims();
    json_mutate::mutate(u, &mut claims, &w.token_dict, 2)?;
    let input = format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
    // What an attacker can sign with: the public key material, the kid, nothing.
    let public_pem = common::rsa_public_pem();
    let rsa_jwk = common::rsa_public_jwk("k1").to_string();
    let ec_jwk = common::ec_public_jwk("e1").to_string();
    let jwks = w.jwks.to_string();
    let n = {
        use rsa::traits::PublicKeyParts;
        w.rsa.n().to_bytes_be()
    };
    let key: &[u8] = match u.int_in_range(0..=6u8)? {
        0 => public_pem.as_bytes(),
        1 => &n,
        2 => rsa_jwk.as_bytes(),
        3 => ec_jwk.as_bytes(),
        4 => jwks.as_bytes(),
        5 => b"h1",
        _ => b"",
    };
    macro_rules! hmac_sig {
        ($h:ty) => {{
            let mut m = <Hmac<$h> as Mac>::new_from_slice(key).expect("any key length");
            m.update(input.as_bytes());
            m.finalize().into_bytes().to_vec()
        }};
    }
    let sig: Vec<u8> = match u.int_in_range(0..=6u8)? {
        0 => Vec::new(),
        1 => hmac_sig!(sha2::Sha256),
        2 => hmac_sig!(sha2::Sha384),
        3 => hmac_sig!(sha2::Sha512),
        4 => {
            use p256::ecdsa::signature::Signer as _;
            let s: p256::ecdsa::Signature = w.attacker.sign(input.as_bytes());
            s.to_bytes().to_vec()
        }
        5 => {
            let (t, _) = u.choose(&w.minted)?;
            URL_SAFE_NO_PAD.decode(t.rsplit('.').next().unwrap_or_default()).unwrap_or_default()
        }
        _ => {
            let n = u.arbitrary_len::<u8>()?;
            u.bytes(n)?.to_vec()
        }
    };
    Ok(format!("{input}.{}", b64(&sig)))
}

/// The request carrying `token` somewhere a host may read it (or somewhere none does).
fn place(u: &mut Unstructured, w: &World, host: &str, token: &str) -> Result<Request> {
    let mut req = Request::new("GET", host, "/headers");
    match u.int_in_range(0..=8u8)? {
        0 => req = req.with_header("authorization", &format!("Bearer {token}")),
        1 => {
            let scheme = *u.choose(&["bearer", "BEARER", "Bearer", "Basic", "Token", "", "Bearer,"])?;
            let sep = *u.choose(&[" ", "  ", "\t", "", " \t"])?;
            req = req.with_header("authorization", &format!("{scheme}{sep}{token}"));
        }
        2 => req = req.with_header("authorization", token),
        3 => {
            // Two Authorization headers: the fuzzed token and a validly signed, expired one.
            let (first, second) = (format!("Bearer {token}"), format!("Bearer {}", w.expired));
            let (a, b) = if u.arbitrary()? { (first, second) } else { (second, first) };
            req = req.with_header("authorization", &a).with_header("authorization", &b);
        }
        4 | 5 => {
            let name = if u.arbitrary()? { "access_token" } else { "jwt" };
            let value = if u.arbitrary()? { token.to_owned() } else { token.replace('.', "%2E").replace('=', "%3D") };
            let extra = *u.choose(&["", "&x=1", "&jwt=a.b.c", "&access_token=", "#frag"])?;
            let prefix = *u.choose(&["", "a=1&", "jwt&", "access_token=x&"])?;
            req = Request::new("GET", host, &format!("/headers?{prefix}{name}={value}{extra}"));
        }
        6 => {
            let prefix = *u.choose(&["Token ", "token ", "Token", "", "Bearer "])?;
            req = req.with_header("x-jwt", &format!("{prefix}{token}"));
        }
        7 => {
            let value = *u.choose(&["jwt={t}", "a=1; jwt={t}", "jwt=\"{t}\"", "jwt={t}; jwt=x", "JWT={t}"])?;
            req = req.with_header("cookie", &value.replace("{t}", token));
        }
        _ => {
            // Raw bytes as the header value (not UTF-8 is possible).
            let n = u.arbitrary_len::<u8>()?;
            let mut value = b"Bearer ".to_vec();
            value.extend_from_slice(u.bytes(n)?);
            value.extend_from_slice(token.as_bytes());
            req.headers.push(("authorization".into(), value));
        }
    }
    Ok(req)
}

/// What must hold of any decision of a request to a governed, jwt-only host.
fn check_decision(w: &World, req: &Request, d: &Decision, how: &str) {
    match d {
        Decision::Allow { .. } => {
            let genuine = w.genuine_tokens(&request_texts(req));
            assert!(!genuine.is_empty(), "{how}: allowed without a token signed by the key set: {req:?}");
            // The one expired minted token, however well signed, allows nothing.
            let expired = w.minted.len() - 1;
            assert!(genuine.iter().any(|&i| i != expired), "{how}: allowed on an expired token: {req:?}");
        }
        Decision::Deny { .. } => {}
        other => panic!("{how}: {other:?} for a governed host with every key at hand: {req:?}"),
    }
}

fn outcome(d: &Decision) -> (u8, u16) {
    match d {
        Decision::Allow { .. } => (0, 200),
        Decision::Deny { response, .. } => (1, response.status),
        Decision::PassThrough => (2, 0),
        Decision::NeedKeys { .. } => (3, 0),
        Decision::NeedCall { .. } => (4, 0),
    }
}

pub fn check(data: &[u8]) {
    let _ = run(data);
}

fn run(data: &[u8]) -> Result<()> {
    let w = World::get();
    let mut u = Unstructured::new(data);
    let host = *u.choose(&HOSTS)?;
    let token = fuzzed_token(&mut u, w)?;
    let req = place(&mut u, w, host, &token)?;
    let keys = FixedKeys(w.key_set());
    let plain = w.policy.decide(&req, NOW_MS, &keys);
    check_decision(w, &req, &plain, "uncached");
    // The same request after a valid token (maybe this very one) was verified and cached.
    let mut cache = VerifiedTokens::new(8);
    if u.arbitrary().unwrap_or(true) {
        let (warm, _) = u.choose(&w.minted).unwrap_or(&w.minted[0]);
        let _ = w.policy.decide_cached(&place_plainly(host, warm), NOW_MS, &keys, &mut cache);
    }
    let cached = w.policy.decide_cached(&req, NOW_MS, &keys, &mut cache);
    check_decision(w, &req, &cached, "cached");
    assert_eq!(outcome(&plain), outcome(&cached), "the token cache changed the answer for {req:?}");
    Ok(())
}
