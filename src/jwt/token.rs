//! Compact JWS parsing: three base64url parts, a JSON header, a JSON object payload. Bounded sizes;
//! nothing here trusts the token.

use base64::Engine;
use serde_json::{Map, Value};

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
    HeaderNotJson,
    NoAlg,
    BadKid,
    CriticalHeader,
    PayloadNotJsonObject,
}

impl std::fmt::Display for TokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = match self {
            TokenError::TooLong => "token too long",
            TokenError::NotThreeParts => "token is not a compact JWS (three dot-separated parts)",
            TokenError::BadBase64 => "token part is not base64url",
            TokenError::HeaderNotJson => "token header is not a JSON object",
            TokenError::NoAlg => "token header has no alg",
            TokenError::BadKid => "token header kid is not a string",
            TokenError::CriticalHeader => "token header has critical extensions",
            TokenError::PayloadNotJsonObject => "token payload is not a JSON object",
        };
        f.write_str(text)
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
    let header: Map<String, Value> = serde_json::from_slice(&header_bytes).map_err(|_| TokenError::HeaderNotJson)?;
    let alg = header.get("alg").and_then(Value::as_str).ok_or(TokenError::NoAlg)?.to_owned();
    let kid = match header.get("kid") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(TokenError::BadKid),
    };
    if header.get("crit").is_some_and(|c| !matches!(c, Value::Array(a) if a.is_empty())) {
        return Err(TokenError::CriticalHeader);
    }
    let payload_bytes = B64URL.decode(payload_b64).map_err(|_| TokenError::BadBase64)?;
    let claims: Map<String, Value> =
        serde_json::from_slice(&payload_bytes).map_err(|_| TokenError::PayloadNotJsonObject)?;
    Ok(Token { compact, alg, kid, claims })
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
        let long = "a".repeat(MAX_TOKEN_BYTES + 1);
        assert_eq!(parse(&long).unwrap_err(), TokenError::TooLong);
    }
}
