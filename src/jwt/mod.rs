//! JWT authentication with Oathkeeper's `jwt` authenticator semantics (reference §2.2-2.6):
//! extract -> parse -> alg -> kid -> key -> signature -> times -> audience -> issuer -> scopes.

pub mod algorithm;
pub mod claims;
pub mod extract;
pub mod jwks;
pub mod rsa;
pub mod scope;
pub mod signature;
pub mod token;

use crate::keys::KeyStore;
use crate::policy::request::Request;
use algorithm::Algorithm;
use extract::TokenSource;
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthOutcome {
    /// No token here: the next authenticator is tried.
    NotResponsible,
    /// The token is valid.
    Authenticated { subject: Option<String> },
    /// A token was presented and failed; the text is the reason for logs.
    Rejected(String),
    /// Keys for these URLs are missing and a fetch can help: pause and ask again.
    NeedKeys(Vec<String>),
}

/// Runs the `jwt` authenticator on `req` at `now_ms` with `skew_secs` of clock tolerance.
pub fn authenticate(rule: &JwtRule, req: &Request, now_ms: u64, skew_secs: i64, keys: &dyn KeyStore) -> AuthOutcome {
    let Some(compact) = extract::extract(&rule.token_from, req) else {
        return AuthOutcome::NotResponsible;
    };
    match verify(rule, &compact, now_ms, skew_secs, keys) {
        Ok(subject) => AuthOutcome::Authenticated { subject },
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
) -> Result<Option<String>, Failure> {
    let token = token::parse(compact).map_err(|e| Failure::Reject(e.to_string()))?;
    let Some(alg) = Algorithm::from_name(&token.alg).filter(|a| rule.allowed_algorithms.contains(a)) else {
        return reject(format!("algorithm {:?} is not allowed", token.alg));
    };
    let Some(kid) = token.kid.as_deref().filter(|k| !k.is_empty()) else {
        return reject("token has no kid");
    };
    let key = find_key(rule, kid, now_ms, keys)?;
    if key.family() != alg.key_family() {
        return reject(format!("key {kid:?} does not fit algorithm {}", alg.name()));
    }
    signature::verify_signature(alg, &key, compact).map_err(|e| Failure::Reject(format!("bad signature: {}", e.0)))?;
    let now_secs = i64::try_from(now_ms / 1000).unwrap_or(i64::MAX);
    let claims = &token.claims;
    claims::check_times(claims, now_secs, skew_secs).map_err(|e| Failure::Reject(e.0))?;
    claims::check_audience(claims, &rule.target_audience).map_err(|e| Failure::Reject(e.0))?;
    claims::check_issuer(claims, &rule.trusted_issuers).map_err(|e| Failure::Reject(e.0))?;
    let granted = scope::token_scopes(claims);
    if let Some(missing) = rule.required_scope.iter().find(|r| !rule.scope_strategy.grants(&granted, r)) {
        return reject(format!("token lacks scope {missing:?}"));
    }
    Ok(claims.get("sub").and_then(|s| s.as_str()).map(str::to_owned))
}

/// The first signing key with `kid` over `jwks_urls` in order. A later URL's key only counts once
/// every earlier URL is settled, so the answer never depends on which fetch lands first. When no
/// usable set has the kid, waits for fetches that can still help (missing sets, or a refetch for
/// an unknown kid).
fn find_key(rule: &JwtRule, kid: &str, now_ms: u64, keys: &dyn KeyStore) -> Result<jwks::PublicKey, Failure> {
    let mut earlier_pending: Vec<String> = Vec::new();
    for url in &rule.jwks_urls {
        match keys.usable(url, now_ms) {
            Some(set) => {
                if let Some(jwk) = set.signing_key(kid) {
                    if earlier_pending.is_empty() {
                        return Ok(jwk.key.clone());
                    }
                    return Err(Failure::NeedKeys(earlier_pending));
                }
            }
            None if keys.may_fetch(url, now_ms) => earlier_pending.push(url.clone()),
            None => {}
        }
    }
    let wait: Vec<String> = rule.jwks_urls.iter().filter(|u| keys.may_fetch(u, now_ms)).cloned().collect();
    if !wait.is_empty() {
        return Err(Failure::NeedKeys(wait));
    }
    if rule.jwks_urls.iter().any(|u| keys.usable(u, now_ms).is_some()) {
        reject(format!("no signing key with kid {kid:?}"))
    } else {
        reject("no JWKS could be fetched")
    }
}
