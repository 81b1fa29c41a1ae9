//! Claim checks with Oathkeeper v0.38.25's semantics (golang-jwt v4.0.0, reference §2.4):
//! integer seconds, `exp` inclusive, a missing or zero time claim is not checked, a non-numeric one
//! is invalid. `skew_secs` widens the windows (0 = Oathkeeper).

use serde_json::{Map, Value};

/// A failed claim check; the text is for logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimError(pub String);

fn fail<T>(text: impl Into<String>) -> Result<T, ClaimError> {
    Err(ClaimError(text.into()))
}

/// Reads a time claim: `None` when absent, null or zero (not checked), error when not a number.
fn time_claim(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>, ClaimError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => {
            // golang-jwt truncates float64 seconds to int64.
            let secs = n.as_i64().or_else(|| n.as_f64().map(|f| f as i64));
            match secs {
                Some(0) => Ok(None),
                Some(s) => Ok(Some(s)),
                None => fail(format!("{name} is not a number")),
            }
        }
        Some(_) => fail(format!("{name} is not a number")),
    }
}

/// The token's `exp` in Unix seconds (`None`: not checked), or an error when it is not a number.
pub fn expiry(claims: &Map<String, Value>) -> Result<Option<i64>, ClaimError> {
    time_claim(claims, "exp")
}

/// `exp`, `iat`, `nbf` against `now_secs`.
pub fn check_times(claims: &Map<String, Value>, now_secs: i64, skew_secs: i64) -> Result<(), ClaimError> {
    if let Some(exp) = time_claim(claims, "exp")? {
        if now_secs.saturating_sub(skew_secs) > exp {
            return fail("token is expired");
        }
    }
    if let Some(iat) = time_claim(claims, "iat")? {
        if now_secs.saturating_add(skew_secs) < iat {
            return fail("token used before issued");
        }
    }
    if let Some(nbf) = time_claim(claims, "nbf")? {
        if now_secs.saturating_add(skew_secs) < nbf {
            return fail("token is not valid yet");
        }
    }
    Ok(())
}

/// Every entry of `required` must be in the token's `aud` (string or array of strings).
pub fn check_audience(claims: &Map<String, Value>, required: &[String]) -> Result<(), ClaimError> {
    if required.is_empty() {
        return Ok(());
    }
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    match required.iter().find(|r| !audiences.contains(&r.as_str())) {
        Some(missing) => fail(format!("token audience does not contain {missing:?}")),
        None => Ok(()),
    }
}

/// When `trusted` is non-empty, `iss` must equal one entry exactly.
pub fn check_issuer(claims: &Map<String, Value>, trusted: &[String]) -> Result<(), ClaimError> {
    if trusted.is_empty() {
        return Ok(());
    }
    match claims.get("iss").and_then(Value::as_str) {
        Some(iss) if trusted.iter().any(|t| t == iss) => Ok(()),
        Some(iss) => fail(format!("token issuer {iss:?} is not trusted")),
        None => fail("token has no issuer"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn c(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn exp_is_inclusive_and_has_no_leeway() {
        assert!(check_times(&c(json!({"exp": NOW})), NOW, 0).is_ok()); // case 21
        assert!(check_times(&c(json!({"exp": NOW - 1})), NOW, 0).is_err()); // case 20
        assert!(check_times(&c(json!({"exp": NOW - 1})), NOW, 5).is_ok());
        assert!(check_times(&c(json!({})), NOW, 0).is_ok()); // case 23
        assert!(check_times(&c(json!({"exp": 0})), NOW, 0).is_ok());
        assert!(check_times(&c(json!({"exp": (NOW - 1) as f64 + 0.9})), NOW, 0).is_err());
    }

    #[test]
    fn nbf_and_iat_in_the_future_fail() {
        assert!(check_times(&c(json!({"nbf": NOW + 5})), NOW, 0).is_err()); // case 22
        assert!(check_times(&c(json!({"iat": NOW + 5})), NOW, 0).is_err());
        assert!(check_times(&c(json!({"iat": NOW, "nbf": NOW})), NOW, 0).is_ok());
        assert!(check_times(&c(json!({"nbf": NOW + 5})), NOW, 10).is_ok());
    }

    #[test]
    fn non_numeric_time_claims_fail() {
        assert!(check_times(&c(json!({"exp": "9999999999"})), NOW, 0).is_err()); // case 24
        assert!(check_times(&c(json!({"nbf": true})), NOW, 0).is_err());
        assert!(check_times(&c(json!({"iat": null})), NOW, 0).is_err());
    }

    #[test]
    fn audience_is_and() {
        let req = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(check_audience(&c(json!({"aud": ["a"]})), &req(&["a", "b"])).is_err()); // case 28
        assert!(check_audience(&c(json!({"aud": "a"})), &req(&["a"])).is_ok()); // case 29
        assert!(check_audience(&c(json!({"aud": ["a", "b", "c"]})), &req(&["a", "b"])).is_ok());
        assert!(check_audience(&c(json!({})), &req(&["a"])).is_err());
        assert!(check_audience(&c(json!({})), &req(&[])).is_ok());
    }

    #[test]
    fn issuer_is_exact_or_and_optional() {
        let t = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(check_issuer(&c(json!({"iss": "https://idp"})), &t(&["https://idp/"])).is_err()); // case 25
        assert!(check_issuer(&c(json!({})), &t(&[])).is_ok()); // case 26
        assert!(check_issuer(&c(json!({"iss": "B"})), &t(&["A", "B"])).is_ok()); // case 27
        assert!(check_issuer(&c(json!({})), &t(&["A"])).is_err());
        assert!(check_issuer(&c(json!({"iss": 1})), &t(&["A"])).is_err());
    }
}
