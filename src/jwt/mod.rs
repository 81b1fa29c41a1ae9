//! JWT authentication with Oathkeeper's `jwt` authenticator semantics (reference §2.2-2.6):
//! extract -> parse -> alg -> kid -> key -> signature -> times -> audience -> issuer -> scopes.

pub mod algorithm;
pub mod cache;
pub mod claims;
pub mod ecdsa;
pub mod envoy;
pub mod extract;
pub mod jwks;
pub mod p256;
pub mod rsa;
pub mod scope;
pub mod signature;
pub mod token;

use std::rc::Rc;

use crate::keys::KeyStore;
use crate::request::Request;
use algorithm::Algorithm;
use cache::{Verified, VerifiedTokens};
use extract::TokenSource;
use jwks::KeySet;
use scope::ScopeStrategy;

/// A compiled `jwt` access strategy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtRule {
    pub jwks_urls: Vec<String>,
    pub trusted_issuers: Vec<String>,
    pub target_audience: Vec<String>,
    pub required_scope: Vec<String>,
    pub scope_strategy: ScopeStrategy,
    pub allowed_algorithms: Vec<Algorithm>,
    pub token_from: TokenSource,
}

/// What one authenticator said (Oathkeeper's pipeline states, §2.8).
#[derive(Debug, Clone, PartialEq)]
pub enum AuthOutcome {
    /// No token here: the next authenticator is tried.
    NotResponsible,
    /// Authenticated: the session's subject, and the verified token for a `jwt` authenticator
    /// (its claims are the session's `Extra`).
    Authenticated { subject: String, token: Option<Rc<Verified>> },
    /// A token was presented and failed; the text is the reason for logs.
    Rejected(String),
    /// Authenticated by token introspection: the endpoint's subject and `Extra`.
    Introspected { subject: String, extra: Rc<serde_json::Map<String, serde_json::Value>> },
    /// Refused with this status (introspection's 403/401/500/429).
    Denied { status: u16, reason: String },
    /// Keys for these URLs are missing and a fetch can help: pause and ask again.
    NeedKeys(Vec<String>),
}

/// Runs the `jwt` authenticator on `req` at `now_ms` with `skew_secs` of clock tolerance. Tokens
/// whose signature verified before are taken from `tokens` (see `cache`).
pub fn authenticate(
    rule: &JwtRule,
    req: &Request,
    now_ms: u64,
    skew_secs: i64,
    keys: &dyn KeyStore,
    tokens: &mut VerifiedTokens,
) -> AuthOutcome {
    let compact = match extract::extract(&rule.token_from, req) {
        Ok(Some(compact)) => compact,
        Ok(None) => return AuthOutcome::NotResponsible,
        Err(repeated) => return AuthOutcome::Rejected(repeated.to_string()),
    };
    match verify(rule, &compact, now_ms, skew_secs, keys, tokens) {
        Ok(verified) => {
            let subject = verified.claims.get("sub").and_then(|s| s.as_str()).unwrap_or_default().to_owned();
            AuthOutcome::Authenticated { subject, token: Some(verified) }
        }
        Err(Failure::Reject(reason)) => AuthOutcome::Rejected(reason),
        Err(Failure::NeedKeys(urls)) => AuthOutcome::NeedKeys(urls),
    }
}

enum Failure {
    Reject(String),
    NeedKeys(Vec<String>),
}

fn reject<T>(text: impl Into<String>) -> Result<T, Failure> {
    Err(Failure::Reject(text.into()))
}

fn verify(
    rule: &JwtRule,
    compact: &str,
    now_ms: u64,
    skew_secs: i64,
    keys: &dyn KeyStore,
    tokens: &mut VerifiedTokens,
) -> Result<Rc<Verified>, Failure> {
    let now_secs = i64::try_from(now_ms / 1000).unwrap_or(i64::MAX);
    let verified = match tokens.get(compact, now_secs) {
        // The cached verdict holds only if this rule would pick a key of that same key set, the
        // way Oathkeeper picks it.
        Some((verified, set)) if verified.by_oathkeeper_key => {
            let found = find_key(rule, allowed(rule, verified.alg.name())?, &verified.kid, now_ms, keys)?;
            if Rc::ptr_eq(&found.set, &set) {
                verified
            } else {
                verify_uncached(rule, compact, now_ms, keys, tokens)?
            }
        }
        _ => verify_uncached(rule, compact, now_ms, keys, tokens)?,
    };
    let claims = &verified.claims;
    claims::check_times(claims, now_secs, skew_secs).map_err(|e| Failure::Reject(e.0))?;
    claims::check_audience(claims, &rule.target_audience).map_err(|e| Failure::Reject(e.0))?;
    claims::check_issuer(claims, &rule.trusted_issuers).map_err(|e| Failure::Reject(e.0))?;
    if !rule.required_scope.is_empty() {
        let granted = scope::token_scopes(claims);
        if let Some(missing) = rule.required_scope.iter().find(|r| !rule.scope_strategy.grants(&granted, r)) {
            return reject(format!("token lacks scope {missing:?}"));
        }
    }
    Ok(verified)
}

/// The token's algorithm, if the rule allows it.
fn allowed(rule: &JwtRule, alg: &str) -> Result<Algorithm, Failure> {
    match Algorithm::from_name(alg).filter(|a| rule.allowed_algorithms.contains(a)) {
        Some(alg) => Ok(alg),
        None => reject(format!("algorithm {alg:?} is not allowed")),
    }
}

/// Parses the token and checks its signature with the key the rule selects; remembers a success.
fn verify_uncached(
    rule: &JwtRule,
    compact: &str,
    now_ms: u64,
    keys: &dyn KeyStore,
    tokens: &mut VerifiedTokens,
) -> Result<Rc<Verified>, Failure> {
    let token = token::parse(compact).map_err(|e| Failure::Reject(e.to_string()))?;
    let alg = allowed(rule, &token.alg)?;
    let Some(kid) = token.kid.filter(|k| !k.is_empty()) else {
        return reject("token has no kid");
    };
    let found = find_key(rule, alg, &kid, now_ms, keys)?;
    let Some(jwk) = found.set.keys.get(found.index) else {
        return reject(format!("no signing key with kid {kid:?}"));
    };
    signature::verify_signature(alg, &jwk.key, compact)
        .map_err(|e| Failure::Reject(format!("bad signature: {}", e.0)))?;
    let expires_at = claims::expiry(&token.claims);
    let verified = Rc::new(Verified { alg, kid, claims: token.claims, by_oathkeeper_key: true });
    if let Ok(expires_at) = expires_at {
        tokens.insert(compact, Rc::clone(&verified), &found.set, expires_at);
    }
    Ok(verified)
}

/// A signing key: the set it belongs to (its identity keys the token cache) and its position.
struct FoundKey {
    set: Rc<KeySet>,
    index: usize,
}

/// The first signing key with `kid` over `jwks_urls` in order, whose family fits `alg`. A later
/// URL's key only counts once every earlier URL is settled, so the answer never depends on which
/// fetch lands first. When no usable set has the kid, waits for fetches that can still help
/// (missing sets, or a refetch for an unknown kid).
fn find_key(rule: &JwtRule, alg: Algorithm, kid: &str, now_ms: u64, keys: &dyn KeyStore) -> Result<FoundKey, Failure> {
    let mut earlier_pending: Vec<String> = Vec::new();
    for url in &rule.jwks_urls {
        match keys.usable(url, now_ms) {
            Some(set) => {
                if let Some(index) = set.signing_key_index(kid) {
                    if !earlier_pending.is_empty() {
                        return Err(Failure::NeedKeys(earlier_pending));
                    }
                    if set.keys.get(index).map(|k| k.key.family()) != Some(alg.key_family()) {
                        return reject(format!("key {kid:?} does not fit algorithm {}", alg.name()));
                    }
                    return Ok(FoundKey { set, index });
                }
            }
            None if keys.may_fetch(url, now_ms) => earlier_pending.push(url.clone()),
            None => {}
        }
    }
    // A usable set without the kid: wait only if an unknown-kid refetch can still happen.
    let wait: Vec<String> = rule
        .jwks_urls
        .iter()
        .filter(|u| match keys.usable(u, now_ms) {
            Some(_) => keys.may_refetch(u, now_ms),
            None => keys.may_fetch(u, now_ms),
        })
        .cloned()
        .collect();
    if !wait.is_empty() {
        return Err(Failure::NeedKeys(wait));
    }
    if rule.jwks_urls.iter().any(|u| keys.usable(u, now_ms).is_some()) {
        reject(format!("no signing key with kid {kid:?}"))
    } else {
        reject("no JWKS could be fetched")
    }
}
