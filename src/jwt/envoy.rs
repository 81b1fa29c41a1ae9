//! JWT authentication as Envoy's `jwt_authn` does it for an Istio RequestAuthentication, which
//! is what APIRule v2 users get (reference §3.5, §3.5.1): providers by issuer, tokens from the
//! providers' locations, `kid` optional, 60 s of clock skew on `exp` and `nbf`, a missing token
//! left to the authorization step, and Envoy's reason texts for a 401.

use std::rc::Rc;

use serde_json::{Map, Value};

use super::algorithm::Algorithm;
use super::cache::{Verified, VerifiedTokens};
use super::extract::{at_most_one, form_decode, query_values, Repeated};
use super::jwks::KeySet;
use super::{claims, signature, token};
use crate::keys::KeyStore;
use crate::request::Request;

/// Envoy's default clock skew (`clock_skew_seconds`), which Istio does not change.
pub const CLOCK_SKEW_SECS: i64 = 60;

/// Where a provider looks for its token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A header (lower-case name); the value must start with `prefix`, which is cut off.
    Header { name: String, prefix: String },
    /// A query parameter.
    Param(String),
}

/// Istio's locations when a jwtRule names none: `Authorization: Bearer <t>` and `?access_token=`.
pub fn default_locations() -> Vec<Location> {
    vec![
        Location::Header { name: "authorization".into(), prefix: "Bearer ".into() },
        Location::Param("access_token".into()),
    ]
}

/// One jwtRule of a RequestAuthentication (one `authentications[]` entry of an APIRule v2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provider {
    pub issuer: String,
    pub jwks_uri: String,
    /// Never empty (`default_locations` when the APIRule names none).
    pub locations: Vec<Location>,
}

/// What jwt_authn concluded for a request.
#[derive(Debug, Clone)]
pub enum Authn {
    /// No token at any location: passes on without a principal.
    Missing,
    /// Every token found verified; the first one's facts.
    Verified(Rc<Verified>),
    /// A token failed: 401 with Envoy's reason text.
    Rejected(&'static str),
    /// Keys for these URLs are missing and a fetch can help.
    NeedKeys(Vec<String>),
}

/// Characters of a compact JWS (Envoy's `ConstantBase64UrlEncodingCharsPlusDot`).
fn is_jws_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

/// The 401 reason for a token location with more than one value (the filter's own text: Envoy
/// has no such refusal, see `extract`).
pub const REPEATED_REASON: &str = "Jwt location has more than one value";

/// The token at `location`, as Envoy's extractor finds it: for a header with a prefix, the prefix
/// may stand anywhere in the value and the token starts at the first JWS character after it and
/// runs to the end (so `Bearer  <t>` gives `<t>`, and `<t> trailing` a token that fails);
/// without a prefix, the whole value. A query parameter counts when present, even empty (an
/// empty token then fails).
///
/// A location with more than one value (the header twice, the parameter twice) is `Repeated`,
/// whatever the values: Envoy takes each header value as a token of its own, every one of which
/// must verify, but only the first value of a query parameter, leaving any other unchecked for
/// the backend to read. Refusing both is simpler and never lets an unverified value through.
fn extract(location: &Location, req: &Request) -> Result<Option<String>, Repeated> {
    let token = match location {
        Location::Header { name, prefix } => {
            let Some(value) = at_most_one(req.header_values(name))? else {
                return Ok(None);
            };
            let value = String::from_utf8_lossy(value).into_owned();
            if prefix.is_empty() {
                return Ok((!value.is_empty()).then_some(value));
            }
            let Some(at) = value.find(prefix.as_str()) else {
                return Ok(None);
            };
            let rest = value.get(at.saturating_add(prefix.len())..).unwrap_or_default();
            match rest.find(is_jws_char) {
                // Whatever follows the token stays part of it (Envoy 1.40, checked by the peer test).
                Some(start) => rest.get(start..).unwrap_or_default().to_owned(),
                // Envoy then hands over the whole header value, which cannot verify.
                None => value,
            }
        }
        Location::Param(name) => {
            let Some(value) = at_most_one(query_values(&req.path, name))? else {
                return Ok(None);
            };
            form_decode(value).unwrap_or_default()
        }
    };
    Ok(Some(token))
}

/// Runs jwt_authn with `providers` (all of the workload's jwtRules) on `req`.
pub fn authenticate(
    providers: &[&Provider],
    req: &Request,
    now_ms: u64,
    keys: &dyn KeyStore,
    tokens: &mut VerifiedTokens,
) -> Authn {
    // Each distinct location once, with the issuers allowed to send a token there.
    let mut locations: Vec<(&Location, Vec<&Provider>)> = Vec::new();
    for p in providers {
        for l in &p.locations {
            match locations.iter_mut().find(|(seen, _)| *seen == l) {
                Some((_, allowed)) => allowed.push(p),
                None => locations.push((l, vec![p])),
            }
        }
    }
    let mut first: Option<Rc<Verified>> = None;
    for (location, allowed) in &locations {
        let compact = match extract(location, req) {
            Ok(Some(compact)) => compact,
            Ok(None) => continue,
            Err(Repeated) => return Authn::Rejected(REPEATED_REASON),
        };
        match verify(&compact, allowed, now_ms, keys, tokens) {
            Ok(v) => {
                first.get_or_insert(v);
            }
            Err(outcome) => return outcome,
        }
    }
    match first {
        Some(v) => Authn::Verified(v),
        None => Authn::Missing,
    }
}

fn verify(
    compact: &str,
    allowed: &[&Provider],
    now_ms: u64,
    keys: &dyn KeyStore,
    tokens: &mut VerifiedTokens,
) -> Result<Rc<Verified>, Authn> {
    let parsed = token::parse(compact).map_err(|e| Authn::Rejected(e.envoy_reason()))?;
    let issuer = parsed.claims.get("iss").and_then(Value::as_str).unwrap_or_default();
    let Some(provider) = allowed.iter().find(|p| p.issuer == issuer) else {
        return Err(Authn::Rejected("Jwt issuer is not configured"));
    };
    let Some(set) = keys.usable(&provider.jwks_uri, now_ms) else {
        if keys.may_fetch(&provider.jwks_uri, now_ms) {
            return Err(Authn::NeedKeys(vec![provider.jwks_uri.clone()]));
        }
        return Err(Authn::Rejected("Jwks remote fetch is failed"));
    };
    let now_secs = i64::try_from(now_ms / 1000).unwrap_or(i64::MAX);
    let verified = match tokens.get(compact, now_secs) {
        // Only a verdict reached Envoy's way: one from a v1 rule may rest on a key Envoy would
        // not try (a JWK whose `alg` names another algorithm).
        Some((v, cached_set)) if !v.by_oathkeeper_key && Rc::ptr_eq(&set, &cached_set) => v,
        _ => {
            let alg = Algorithm::from_name(&parsed.alg).ok_or(Authn::Rejected("Jwt header [alg] is not supported"))?;
            // jwt_verify_lib reads an empty kid as no kid, in the token and in the JWKS.
            let kid = parsed.kid.as_deref().filter(|k| !k.is_empty());
            if let Err(e) = verify_signature(alg, kid, &set, compact) {
                // A kid the set lacks may be a rotation: wait for one refetch where Envoy would
                // answer 401 until its next scheduled fetch (rate-limited, see `keys`).
                let kid_unknown = kid.is_some_and(|k| set.keys.iter().all(|j| j.kid.as_deref() != Some(k)));
                if kid_unknown && keys.may_refetch(&provider.jwks_uri, now_ms) {
                    return Err(Authn::NeedKeys(vec![provider.jwks_uri.clone()]));
                }
                return Err(e);
            }
            let expires_at = claims::expiry(&parsed.claims);
            let kid = parsed.kid.clone().unwrap_or_default();
            let v = Rc::new(Verified { alg, kid, claims: parsed.claims, by_oathkeeper_key: false });
            if let Ok(exp) = expires_at {
                tokens.insert(compact, Rc::clone(&v), &set, exp);
            }
            v
        }
    };
    check_times(&verified.claims, now_secs)?;
    Ok(verified)
}

/// Tries every key that fits, in the set's order, as jwt_verify_lib does: with a `kid`, only
/// keys with that kid or none (so a set with one kid twice has both tried); a key that names its
/// `alg` only for that algorithm; the key type must fit the algorithm.
fn verify_signature(alg: Algorithm, kid: Option<&str>, set: &KeySet, compact: &str) -> Result<(), Authn> {
    let mut candidates = set.keys.iter().filter(|k| {
        let kid_fits = match (kid, k.kid.as_deref().filter(|have| !have.is_empty())) {
            (Some(want), Some(have)) => want == have,
            _ => true,
        };
        let alg_fits = k.alg.as_deref().filter(|a| !a.is_empty()).is_none_or(|a| a == alg.name());
        kid_fits && alg_fits && k.key.family() == alg.key_family()
    });
    let Some(first) = candidates.next() else {
        return Err(Authn::Rejected("Jwks doesn't have key to match kid or alg from Jwt"));
    };
    let ok =
        std::iter::once(first).chain(candidates).any(|k| signature::verify_signature(alg, &k.key, compact).is_ok());
    if ok {
        Ok(())
    } else {
        Err(Authn::Rejected("Jwt verification fails"))
    }
}

/// `exp` and `nbf` with Envoy's skew; Envoy only checks that `iat` is a valid number (done when
/// the token is parsed). Values as `claims::numeric_date` reads them (truncated; 0 is not set).
fn check_times(claims: &Map<String, Value>, now_secs: i64) -> Result<(), Authn> {
    let exp = claims::numeric_date(claims, "exp")
        .map_err(|_| Authn::Rejected("Jwt payload [exp] field is not a positive 64 bit integer"))?;
    if exp.is_some_and(|exp| now_secs > exp.saturating_add(CLOCK_SKEW_SECS)) {
        return Err(Authn::Rejected("Jwt is expired"));
    }
    let nbf = claims::numeric_date(claims, "nbf")
        .map_err(|_| Authn::Rejected("Jwt payload [nbf] field is not a positive 64 bit integer"))?;
    if nbf.is_some_and(|nbf| now_secs.saturating_add(CLOCK_SKEW_SECS) < nbf) {
        return Err(Authn::Rejected("Jwt not yet valid"));
    }
    Ok(())
}

/// The claim as Istio's `request.auth.claims[name]` condition sees it: `scope` and `permission`
/// strings are split on spaces (Istio >= 1.21 `space_delimited_claims`), other strings stay whole.
fn claim_values<'a>(claims: &'a Map<String, Value>, name: &str) -> Vec<&'a str> {
    match claims.get(name) {
        Some(Value::String(s)) if name == "scope" || name == "permission" => {
            s.split(' ').filter(|p| !p.is_empty()).collect()
        }
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// Whether `request.auth.claims[name]` matches `value` (equal string or a list holding it).
pub fn claim_has(claims: &Map<String, Value>, name: &str, value: &str) -> bool {
    claim_values(claims, name).contains(&value)
}

/// Istio's `requestPrincipals: ["<issuer>/*"]`: the issuer exactly, and any non-empty subject.
pub fn principal_matches(claims: &Map<String, Value>, issuer: &str) -> bool {
    let iss = claims.get("iss").and_then(Value::as_str);
    let sub = claims.get("sub").and_then(Value::as_str);
    iss == Some(issuer) && sub.is_some_and(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn scope_claims_as_istio_reads_them() {
        // Reference case 68.
        let c = claims(json!({"scp": ["a", "b"], "scope": "a b", "scopes": "a b"}));
        assert!(claim_has(&c, "scp", "a") && claim_has(&c, "scp", "b"));
        assert!(claim_has(&c, "scope", "a") && claim_has(&c, "scope", "b"));
        assert!(!claim_has(&c, "scopes", "a"), "only scope and permission are split");
        assert!(claim_has(&c, "scopes", "a b"));
        assert!(claim_has(&claims(json!({"aud": "x"})), "aud", "x"));
        assert!(!claim_has(&claims(json!({"aud": 1})), "aud", "1"));
    }

    #[test]
    fn principal_needs_issuer_and_subject() {
        assert!(principal_matches(&claims(json!({"iss": "i", "sub": "s"})), "i"));
        assert!(!principal_matches(&claims(json!({"iss": "i"})), "i")); // case 72
        assert!(!principal_matches(&claims(json!({"iss": "i", "sub": ""})), "i"));
        assert!(!principal_matches(&claims(json!({"iss": "j", "sub": "s"})), "i"));
    }

    #[test]
    fn times_have_sixty_seconds_of_skew() {
        let at = |v: Value| check_times(&claims(v), 1000).is_ok();
        assert!(at(json!({"exp": 970})), "expired 30 s ago is accepted (case 70)");
        assert!(at(json!({"exp": 940})));
        assert!(!at(json!({"exp": 939})));
        assert!(at(json!({"nbf": 1060})));
        assert!(!at(json!({"nbf": 1061})));
        assert!(at(json!({"iat": 99_999})), "iat is not checked");
        assert!(!at(json!({"exp": "970"})));
    }

    #[test]
    fn header_locations_need_the_prefix() {
        let loc = Location::Header { name: "x-jwt".into(), prefix: "Token ".into() };
        let req = Request::new("GET", "h", "/").with_header("X-JWT", "Token abc");
        assert_eq!(extract(&loc, &req).unwrap().as_deref(), Some("abc"));
        let req = Request::new("GET", "h", "/").with_header("x-jwt", "token abc");
        assert_eq!(extract(&loc, &req), Ok(None), "the prefix is case-sensitive");
        let req = Request::new("GET", "h", "/").with_header("x-jwt", "xToken  a.b-c_d e");
        assert_eq!(extract(&loc, &req).unwrap().as_deref(), Some("a.b-c_d e"), "Envoy: prefix anywhere, then the rest");
        let req = Request::new("GET", "h", "/").with_header("x-jwt", "Token !!");
        assert_eq!(extract(&loc, &req).unwrap().as_deref(), Some("Token !!"), "no JWS characters: the whole value");
        let default = &default_locations()[0];
        let req = Request::new("GET", "h", "/").with_header("authorization", "bearer abc");
        assert_eq!(extract(default, &req), Ok(None));
        let param = &default_locations()[1];
        let req = Request::new("GET", "h", "/p?access_token=abc");
        assert_eq!(extract(param, &req).unwrap().as_deref(), Some("abc"));
        let req = Request::new("GET", "h", "/p?access_token=");
        assert_eq!(extract(param, &req).unwrap().as_deref(), Some(""), "an empty value is a (bad) token");
        let req = Request::new("GET", "h", "/p?access_token=&access_token=abc");
        assert_eq!(extract(param, &req), Err(Repeated), "Envoy would read the first value only");
        let req = Request::new("GET", "h", "/").with_header("x-jwt", "Token a").with_header("X-JWT", "Token b");
        assert_eq!(extract(&loc, &req), Err(Repeated));
        let req = Request::new("GET", "h", "/").with_header("x-jwt", "Token a").with_header("X-JWT", "other");
        assert_eq!(extract(&loc, &req), Err(Repeated), "also when one value lacks the prefix");
    }
}
