//! Claim checks with Oathkeeper v0.38.25's semantics (golang-jwt v4.0.0, reference §2.4):
//! whole seconds, `exp` inclusive, a missing or zero time claim is not checked, any other value
//! that is not a number in range is invalid (see `numeric_date`). `skew_secs` widens the windows
//! (0 = Oathkeeper).

use serde_json::{Map, Value};

/// A failed claim check; the text is for logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimError(pub String);

fn fail<T>(text: impl Into<String>) -> Result<T, ClaimError> {
    Err(ClaimError(text.into()))
}

/// 2^63 seconds: time claims must stay below it. Oathkeeper holds them in an int64 (golang-jwt
/// v4.0.0 converts the float64 with `int64(x)`, whose result for larger values depends on the
/// CPU), Envoy in a uint64 (jwt_verify_lib refuses negative values and values from 2^64).
/// Below 2^63 both read the same number.
const TIME_CLAIM_LIMIT: f64 = 9_223_372_036_854_775_808.0;

/// Reads the NumericDate claim `name` as both replaced systems do: any JSON number form
/// (fraction, exponent) truncated to whole seconds, and 0 meaning "not set" (golang-jwt v4.0.0
/// skips a zero `exp`/`iat`/`nbf`; jwt_verify_lib skips a zero `exp`, and a zero `nbf`/`iat`
/// never fails). `Ok(None)` when absent or zero. An error for anything else: null, strings,
/// negative numbers (Envoy refuses them; Oathkeeper took a negative `iat`/`nbf` as valid) and
/// numbers from 2^63 (beyond Oathkeeper's int64).
pub fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>, ClaimError> {
    let Some(value) = claims.get(name) else {
        return Ok(None);
    };
    let Value::Number(n) = value else {
        return fail(format!("{name} is not a number"));
    };
    let secs = if let Some(i) = n.as_i64() {
        Some(i)
    } else if n.is_u64() {
        // An integer above i64::MAX.
        None
    } else {
        // The float is finite (serde_json refuses anything else); `as` truncates toward zero,
        // and the range check keeps it exact.
        n.as_f64().filter(|f| (0.0..TIME_CLAIM_LIMIT).contains(f)).map(|f| f as i64)
    };
    match secs {
        Some(0) => Ok(None),
        Some(s) if s > 0 => Ok(Some(s)),
        _ => fail(format!("{name} is not a number of seconds in 0..2^63")),
    }
}

/// The token's `exp` in Unix seconds (`None`: not checked), or an error when it is not a number.
pub fn expiry(claims: &Map<String, Value>) -> Result<Option<i64>, ClaimError> {
    numeric_date(claims, "exp")
}

/// `exp`, `iat`, `nbf` against `now_secs`.
pub fn check_times(claims: &Map<String, Value>, now_secs: i64, skew_secs: i64) -> Result<(), ClaimError> {
    if let Some(exp) = numeric_date(claims, "exp")? {
        if now_secs.saturating_sub(skew_secs) > exp {
            return fail("token is expired");
        }
    }
    if let Some(iat) = numeric_date(claims, "iat")? {
        if now_secs.saturating_add(skew_secs) < iat {
            return fail("token used before issued");
        }
    }
    if let Some(nbf) = numeric_date(claims, "nbf")? {
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
    fn numeric_dates_are_whole_seconds_in_0_to_2_pow_63() {
        let read = |text: &str| numeric_date(&serde_json::from_str(&format!("{{\"t\":{text}}}")).unwrap(), "t");
        assert_eq!(read("1800000000"), Ok(Some(1_800_000_000)));
        assert_eq!(read("1800000000.9"), Ok(Some(1_800_000_000)));
        assert_eq!(read("1.8e9"), Ok(Some(1_800_000_000)));
        assert_eq!(read("0"), Ok(None));
        assert_eq!(read("0.5"), Ok(None));
        assert_eq!(read("-0.0"), Ok(None));
        assert_eq!(read("9223372036854775807"), Ok(Some(i64::MAX)));
        for bad in ["9223372036854775808", "9.3e18", "1e30", "-1", "-0.5", "-1e30", "null", "\"1\"", "[]", "{}"] {
            assert!(read(bad).is_err(), "{bad}");
        }
        assert_eq!(numeric_date(&Map::new(), "t"), Ok(None));
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
