//! Compact JWS parsing: three base64url parts, a JSON header, a JSON object payload. Bounded sizes;
//! nothing here trusts the token. The registered members are type-checked here, by our own code,
//! so that no dependency decides what a token may look like: a header or payload with a member
//! name twice (at any depth) is refused, as Envoy's JSON parser refuses it; `kid`, `typ`, `iss`,
//! `sub`, `jti` must be strings, `aud` a string or a list of strings, `exp`/`nbf`/`iat` numbers
//! in range (`claims::numeric_date`); any `crit` member is refused (we understand no extension),
//! and so is a `jwk` member (keys come from the rule's JWKS only).

use std::fmt;

use base64::Engine;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::claims;
use super::jwks::B64URL;

/// Longest token accepted (Envoy's default header limit is 60 KiB; real tokens are ~1-2 KiB).
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// A parsed, not yet verified, token.
#[derive(Debug, Clone)]
pub struct Token<'a> {
    /// The whole compact serialisation (the signature step needs it).
    pub compact: &'a str,
    pub alg: String,
    pub kid: Option<String>,
    pub claims: Map<String, Value>,
}

/// Why a token could not even be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    TooLong,
    NotThreeParts,
    BadBase64,
    /// Not JSON, not an object, a member name twice, or nested deeper than serde_json's
    /// recursion limit (128).
    HeaderNotJson,
    NoAlg,
    BadKid,
    /// `typ` not a string, or not `JWT` / `*+JWT` (any case).
    BadTyp,
    CriticalHeader,
    /// The header carries a key of its own (`jwk`).
    EmbeddedKey,
    /// Like `HeaderNotJson`, for the payload.
    PayloadNotJsonObject,
    /// A registered claim (`iss`, `sub`, `jti`, `aud`) of the wrong JSON type.
    BadClaimType(&'static str),
    /// `exp`, `nbf` or `iat` not a number, or a number outside 0..2^63.
    BadTimeClaim(&'static str),
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenError::TooLong => f.write_str("token too long"),
            TokenError::NotThreeParts => f.write_str("token is not a compact JWS (three dot-separated parts)"),
            TokenError::BadBase64 => f.write_str("token part is not base64url"),
            TokenError::HeaderNotJson => f.write_str("token header is not a JSON object with unique member names"),
            TokenError::NoAlg => f.write_str("token header has no alg"),
            TokenError::BadKid => f.write_str("token header kid is not a string"),
            TokenError::BadTyp => f.write_str("token header typ is not JWT"),
            TokenError::CriticalHeader => f.write_str("token header has critical extensions"),
            TokenError::EmbeddedKey => f.write_str("token header carries a key (jwk)"),
            TokenError::PayloadNotJsonObject => {
                f.write_str("token payload is not a JSON object with unique member names")
            }
            TokenError::BadClaimType(name) => write!(f, "token claim {name} has the wrong type"),
            TokenError::BadTimeClaim(name) => write!(f, "token claim {name} is not a number of seconds in 0..2^63"),
        }
    }
}

impl TokenError {
    /// The text Envoy's jwt_authn answers for this problem (jwt_verify_lib `Status`), for v2.
    pub fn envoy_reason(&self) -> &'static str {
        match self {
            TokenError::NotThreeParts => {
                "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections"
            }
            // Refused where Envoy would not refuse: its catch-all text.
            TokenError::TooLong | TokenError::BadTyp | TokenError::CriticalHeader | TokenError::EmbeddedKey => {
                "Jwt verification fails"
            }
            TokenError::BadBase64 => "Jwt header is an invalid Base64url encoded",
            TokenError::HeaderNotJson => "Jwt header is an invalid JSON",
            TokenError::NoAlg => "Jwt header [alg] field is required and must be a string",
            TokenError::BadKid => "Jwt header [kid] field is not a string",
            TokenError::PayloadNotJsonObject => "Jwt payload is an invalid JSON",
            TokenError::BadClaimType("iss") => "Jwt payload [iss] field is not a string",
            TokenError::BadClaimType("sub") => "Jwt payload [sub] field is not a string",
            TokenError::BadClaimType("jti") => "Jwt payload [jti] field is not a string",
            TokenError::BadClaimType(_) => "Jwt payload [aud] field is not a string or string list",
            TokenError::BadTimeClaim("exp") => "Jwt payload [exp] field is not a positive 64 bit integer",
            TokenError::BadTimeClaim("nbf") => "Jwt payload [nbf] field is not a positive 64 bit integer",
            TokenError::BadTimeClaim(_) => "Jwt payload [iat] field is not a positive 64 bit integer",
        }
    }
}

/// Parses `header.payload.signature`.
pub fn parse(compact: &str) -> Result<Token<'_>, TokenError> {
    if compact.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::TooLong);
    }
    let mut parts = compact.split('.');
    let (Some(header_b64), Some(payload_b64), Some(_sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::NotThreeParts);
    };
    let header_bytes = B64URL.decode(header_b64).map_err(|_| TokenError::BadBase64)?;
    let header = strict_object(&header_bytes).ok_or(TokenError::HeaderNotJson)?;
    let alg = header.get("alg").and_then(Value::as_str).ok_or(TokenError::NoAlg)?.to_owned();
    // A null kid is a kid of the wrong type (Envoy: "not a string"; Oathkeeper: no kid).
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(TokenError::BadKid),
    };
    match header.get("typ") {
        None => {}
        Some(Value::String(typ)) if is_jwt_typ(typ) => {}
        Some(_) => return Err(TokenError::BadTyp),
    }
    // RFC 7515 4.1.11: an extension listed in crit must be understood; we understand none, and
    // producers must not send an empty list, so any crit member (even [] or null) is refused.
    if header.contains_key("crit") {
        return Err(TokenError::CriticalHeader);
    }
    // Keys are only ever taken from the rule's JWKS; `jku`, `x5u` and `x5c` are never read. A
    // token that brings its own key is no access token an IdP issues (RFC 8725 3.10): refused.
    if header.contains_key("jwk") {
        return Err(TokenError::EmbeddedKey);
    }
    let payload_bytes = B64URL.decode(payload_b64).map_err(|_| TokenError::BadBase64)?;
    let claims = strict_object(&payload_bytes).ok_or(TokenError::PayloadNotJsonObject)?;
    check_registered_claims(&claims)?;
    Ok(Token { compact, alg, kid, claims })
}

/// `JWT`, or a media type ending in `+JWT` (RFC 9068's `at+jwt`), in any case.
fn is_jwt_typ(typ: &str) -> bool {
    let typ = typ.to_ascii_uppercase();
    typ == "JWT" || typ.ends_with("+JWT")
}

/// The types jwt_verify_lib (Envoy) checks when it parses a payload; a null is a wrong type there
/// too. Oathkeeper checked fewer; no honest IdP sends other types.
fn check_registered_claims(claims: &Map<String, Value>) -> Result<(), TokenError> {
    for name in ["iss", "sub", "jti"] {
        if claims.get(name).is_some_and(|v| !v.is_string()) {
            return Err(TokenError::BadClaimType(name));
        }
    }
    match claims.get("aud") {
        None | Some(Value::String(_)) => {}
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => {}
        Some(_) => return Err(TokenError::BadClaimType("aud")),
    }
    for name in ["exp", "nbf", "iat"] {
        claims::numeric_date(claims, name).map_err(|_| TokenError::BadTimeClaim(name))?;
    }
    Ok(())
}

/// A JSON object whose objects, at every depth, have no member name twice (after unescaping:
/// `"sub"` and `"s\u0075b"` are the same name). RFC 7515 4 / RFC 7519 4 let a parser refuse
/// duplicates; the filter must, because the backend reads the same token with its own parser,
/// which may keep the other value. serde_json's recursion limit bounds the depth.
fn strict_object(bytes: &[u8]) -> Option<Map<String, Value>> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = StrictValue.deserialize(&mut de).ok()?;
    de.end().ok()?;
    match value {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

/// Builds a `serde_json::Value` like its own `Deserialize`, except that a repeated member name
/// is an error instead of replacing the earlier value.
#[derive(Clone, Copy)]
struct StrictValue;

impl<'de> DeserializeSeed<'de> for StrictValue {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JSON without duplicate member names")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        // serde_json only hands over finite numbers; anything else would not be JSON.
        serde_json::Number::from_f64(v).map(Value::Number).ok_or_else(|| E::custom("number is not finite"))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(StrictValue)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(name) = access.next_key::<String>()? {
            if map.contains_key(&name) {
                return Err(de::Error::custom(format!("duplicate member {name:?}")));
            }
            let value = access.next_value_seed(StrictValue)?;
            map.insert(name, value);
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    }

    #[test]
    fn parses_header_and_claims() {
        let t = format!("{}.{}.sig", b64(r#"{"alg":"RS256","kid":"k1","typ":"JWT"}"#), b64(r#"{"sub":"me"}"#));
        let tok = parse(&t).unwrap();
        assert_eq!(tok.alg, "RS256");
        assert_eq!(tok.kid.as_deref(), Some("k1"));
        assert_eq!(tok.claims["sub"], "me");
    }

    #[test]
    fn member_names_must_be_unique_at_every_depth() {
        let h = b64(r#"{"alg":"RS256"}"#);
        let p = b64("{}");
        assert_eq!(
            parse(&format!("{}.{p}.s", b64(r#"{"alg":"RS256","x":1,"x":1}"#))).unwrap_err(),
            TokenError::HeaderNotJson
        );
        for payload in [r#"{"a":1,"a":2}"#, r#"{"a":{"b":1,"b":2}}"#, r#"{"a":[{"b":1,"\u0062":2}]}"#] {
            assert_eq!(
                parse(&format!("{h}.{}.s", b64(payload))).unwrap_err(),
                TokenError::PayloadNotJsonObject,
                "{payload}"
            );
        }
        let same_names_apart = format!("{h}.{}.s", b64(r#"{"a":{"b":1},"c":{"b":[1,{"b":2}]}}"#));
        let tok = parse(&same_names_apart).unwrap();
        assert_eq!(tok.claims["c"]["b"][1]["b"], 2);
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(1000), "]".repeat(1000));
        assert_eq!(parse(&format!("{h}.{}.s", b64(&deep))).unwrap_err(), TokenError::PayloadNotJsonObject);
    }

    #[test]
    fn rejects_malformed_tokens() {
        let h = b64(r#"{"alg":"RS256"}"#);
        let p = b64("{}");
        assert_eq!(parse("abc").unwrap_err(), TokenError::NotThreeParts);
        assert_eq!(parse("a.b.c.d").unwrap_err(), TokenError::NotThreeParts);
        assert_eq!(parse(&format!("!!.{p}.s")).unwrap_err(), TokenError::BadBase64);
        assert_eq!(parse(&format!("{}.{p}.s", b64("[]"))).unwrap_err(), TokenError::HeaderNotJson);
        assert_eq!(parse(&format!("{}.{p}.s", b64("{}"))).unwrap_err(), TokenError::NoAlg);
        assert_eq!(parse(&format!("{}.{p}.s", b64(r#"{"alg":"RS256","kid":1}"#))).unwrap_err(), TokenError::BadKid);
        assert_eq!(
            parse(&format!("{}.{p}.s", b64(r#"{"alg":"RS256","crit":["exp"]}"#))).unwrap_err(),
            TokenError::CriticalHeader
        );
        assert_eq!(parse(&format!("{h}.{}.s", b64("[1]"))).unwrap_err(), TokenError::PayloadNotJsonObject);
        for header in [r#"{"alg":"RS256","crit":[]}"#, r#"{"alg":"RS256","crit":null}"#] {
            assert_eq!(parse(&format!("{}.{p}.s", b64(header))).unwrap_err(), TokenError::CriticalHeader);
        }
        assert_eq!(parse(&format!("{}.{p}.s", b64(r#"{"alg":"RS256","kid":null}"#))).unwrap_err(), TokenError::BadKid);
        assert_eq!(
            parse(&format!("{}.{p}.s", b64(r#"{"alg":"RS256","typ":"JOSE"}"#))).unwrap_err(),
            TokenError::BadTyp
        );
        assert_eq!(parse(&format!("{h}.{}.s", b64(r#"{"iss":["a"]}"#))).unwrap_err(), TokenError::BadClaimType("iss"));
        assert_eq!(
            parse(&format!("{h}.{}.s", b64(r#"{"aud":["a",1]}"#))).unwrap_err(),
            TokenError::BadClaimType("aud")
        );
        assert_eq!(parse(&format!("{h}.{}.s", b64(r#"{"nbf":-5}"#))).unwrap_err(), TokenError::BadTimeClaim("nbf"));
        let long = "a".repeat(MAX_TOKEN_BYTES + 1);
        assert_eq!(parse(&long).unwrap_err(), TokenError::TooLong);
    }
}
