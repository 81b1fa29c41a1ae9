//! Deny responses exactly as the replaced system gave them (reference §2.7): Oathkeeper's
//! non-verbose JSON error body, or Envoy's empty "no route" 404.

/// A local reply the host sends instead of forwarding the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Which system's error shape a deny uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorStyle {
    /// Oathkeeper's JSON error handler (herodot, non-verbose).
    OathkeeperJson,
    /// Envoy's own reply when no route matches: status only, empty body.
    EnvoyNoRoute,
    /// A request the filter cannot parse (bad percent-encoding): plain 400.
    BadRequest,
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        500 => "Internal Server Error",
        _ => "Error",
    }
}

fn generic_message(status: u16) -> &'static str {
    match status {
        400 => "The request was malformed or contained invalid parameters",
        401 => "The request could not be authorized",
        403 => "The requested action was forbidden",
        404 => "The requested resource could not be found",
        _ => "An internal server error occurred, please contact the system administrator",
    }
}

/// Renders a deny. `request_id` is the request's `x-request-id`, echoed as Oathkeeper did;
/// `token_presented` adds `error="invalid_token"` to a 401's challenge (RFC 6750).
pub fn render(status: u16, style: ErrorStyle, request_id: Option<&str>, token_presented: bool) -> Response {
    let mut headers = Vec::new();
    if status == 401 {
        let challenge = if token_presented { "Bearer error=\"invalid_token\"" } else { "Bearer" };
        headers.push(("www-authenticate".to_owned(), challenge.to_owned()));
    }
    let body = match style {
        ErrorStyle::EnvoyNoRoute => Vec::new(),
        ErrorStyle::OathkeeperJson | ErrorStyle::BadRequest => {
            // Field order as herodot writes it: code, status, request, message.
            let quote = |s: &str| serde_json::Value::from(s).to_string();
            let request = match request_id.filter(|id| !id.is_empty()) {
                Some(id) => format!(",\"request\":{}", quote(id)),
                None => String::new(),
            };
            headers.push(("content-type".to_owned(), "application/json".to_owned()));
            format!(
                "{{\"error\":{{\"code\":{status},\"status\":{}{request},\"message\":{}}}}}",
                quote(reason_phrase(status)),
                quote(generic_message(status))
            )
            .into_bytes()
        }
    };
    Response { status, headers, body }
}

/// Envoy `jwt_authn`'s 401 for a token that failed (APIRule v2): its reason as plain text and an
/// RFC 6750 challenge naming the request URL as realm.
pub fn render_envoy_jwt(reason: &str, realm: &str) -> Response {
    let challenge = format!("Bearer realm=\"{realm}\", error=\"invalid_token\"");
    Response {
        status: 401,
        headers: vec![("www-authenticate".to_owned(), challenge), ("content-type".to_owned(), "text/plain".to_owned())],
        body: reason.as_bytes().to_vec(),
    }
}

/// Envoy `rbac`'s 403 when no ALLOW policy admits the request (APIRule v2).
pub fn render_rbac_denied() -> Response {
    Response {
        status: 403,
        headers: vec![("content-type".to_owned(), "text/plain".to_owned())],
        body: b"RBAC: access denied".to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unauthorized_body_is_oathkeepers() {
        let r = render(401, ErrorStyle::OathkeeperJson, Some("abc"), false);
        assert_eq!(r.status, 401);
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(
            body,
            json!({"error": {"code": 401, "status": "Unauthorized", "request": "abc",
                              "message": "The request could not be authorized"}})
        );
        assert!(r.headers.contains(&("www-authenticate".into(), "Bearer".into())));
        assert!(r.headers.contains(&("content-type".into(), "application/json".into())));
        assert_eq!(
            String::from_utf8(r.body).unwrap(),
            r#"{"error":{"code":401,"status":"Unauthorized","request":"abc","message":"The request could not be authorized"}}"#
        );
    }

    #[test]
    fn invalid_token_challenge_and_no_request_id() {
        let r = render(401, ErrorStyle::OathkeeperJson, None, true);
        assert!(r.headers.contains(&("www-authenticate".into(), "Bearer error=\"invalid_token\"".into())));
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert!(body["error"].get("request").is_none());
    }

    #[test]
    fn envoy_no_route_is_empty() {
        let r = render(404, ErrorStyle::EnvoyNoRoute, Some("x"), false);
        assert!(r.body.is_empty());
        assert!(r.headers.is_empty());
    }

    #[test]
    fn multiple_rules_is_500_with_generic_text() {
        let r = render(500, ErrorStyle::OathkeeperJson, None, false);
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["error"]["status"], "Internal Server Error");
        assert_eq!(
            body["error"]["message"],
            "An internal server error occurred, please contact the system administrator"
        );
    }
}
