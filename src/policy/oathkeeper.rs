//! APIRule v1 semantics as Kyma deployed them with Ory Oathkeeper: the VirtualService route stage,
//! then the access-rule stage where exactly one rule must match and its authenticator pipeline
//! runs (reference §1.6-1.8, §2.8).

use super::mutator::Session;
use super::response::{self, ErrorStyle};
use super::{AccessRule, Authenticator, Decision, HostPolicy, Memory, Mutator, Policy, Route, RouteAction, RuleId};
use crate::calls::Verdict;
use crate::jwt::{self, AuthOutcome};
use crate::keys::KeyStore;
use crate::request::path::{self, RulePath};
use crate::request::Request;

/// Decides a request for a host whose APIRule has Oathkeeper-era semantics.
pub(super) fn decide(
    policy: &Policy,
    host_policy: &HostPolicy,
    routes: &[Route],
    req: &Request,
    now_ms: u64,
    keys: &dyn KeyStore,
    memory: &mut Memory<'_>,
) -> Decision {
    let deny = |status: u16, style: ErrorStyle, rule: Option<&RuleId>, reason: String, token: bool| {
        let request_id = req.request_id();
        Decision::Deny {
            rule: rule.cloned(),
            reason,
            response: response::render(status, style, request_id.as_deref(), token),
        }
    };

    let rule_path = match path::rule_path(&req.path, policy.escaped_slashes) {
        Ok(p) => p,
        Err(e) => return deny(400, ErrorStyle::BadRequest, None, format!("path {}", e.reason()), false),
    };
    if let Some(reason) = req.ambiguous_header() {
        return deny(400, ErrorStyle::BadRequest, None, reason.to_owned(), false);
    }
    let mut set_headers = vec![("x-forwarded-host".to_owned(), host_policy.host.clone())];
    if let Some(forwarded) = path::forwarded_path(&req.path, &rule_path) {
        set_headers.push((":path".to_owned(), forwarded));
    }

    // Route stage: the first route whose path (and, for no_auth, method) matches.
    let normalized = rule_path.normalized.as_str();
    let method = req.method.to_ascii_uppercase();
    let route =
        routes.iter().find(|r| r.path.matches(normalized) && r.methods.as_ref().is_none_or(|m| m.contains(&method)));
    let Some(route) = route else {
        return deny(404, ErrorStyle::EnvoyNoRoute, None, "no route matches path and method".into(), false);
    };
    if route.action == RouteAction::Forward {
        return Decision::Allow { rule: route.rule.clone(), set_headers };
    }

    match access_stage(policy, &route.rule, req, &rule_path, now_ms, keys, memory) {
        Ok((rule, mutated)) => {
            set_headers.extend(mutated);
            Decision::Allow { rule, set_headers }
        }
        Err(decision) => decision,
    }
}

/// The access-rule stage (Oathkeeper, §1.8, §2.8): exactly one access rule of the whole pool must
/// match the request; its authenticator pipeline runs, then its mutators. `Ok` carries the access
/// rule that allowed and the headers its mutators set; `Err` the deny (or the wait for keys).
pub(super) fn access_stage(
    policy: &Policy,
    route_rule: &RuleId,
    req: &Request,
    rule_path: &RulePath,
    now_ms: u64,
    keys: &dyn KeyStore,
    memory: &mut Memory<'_>,
) -> Result<(RuleId, Vec<(String, String)>), Decision> {
    let deny = |status: u16, rule: &RuleId, reason: String, token: bool| {
        let style = if status == 400 { ErrorStyle::BadRequest } else { ErrorStyle::OathkeeperJson };
        let token = token && status == 401;
        let response = response::render(status, style, req.request_id().as_deref(), token);
        Decision::Deny { rule: Some(rule.clone()), reason, response }
    };
    let method = req.method.to_ascii_uppercase();
    // Oathkeeper matches Go's percent-decoded `URL.Path` (case 11).
    let decoded = rule_path.decoded.as_str();
    let matching: Vec<&AccessRule> = policy
        .access_candidates(&req.authority)
        .filter(|r| r.methods.contains(&method) && r.path.matches(decoded))
        .collect();
    let rule = match matching.as_slice() {
        [rule] => *rule,
        [] => return Err(deny(404, route_rule, "no access rule matches".into(), false)),
        _ => return Err(deny(500, route_rule, format!("{} access rules match", matching.len()), false)),
    };

    for authenticator in &rule.authenticators {
        let outcome = match authenticator {
            Authenticator::Noop => AuthOutcome::Authenticated { subject: String::new(), token: None },
            Authenticator::Anonymous => {
                if req.header("authorization").is_some_and(|v| !v.is_empty()) {
                    AuthOutcome::NotResponsible
                } else {
                    AuthOutcome::Authenticated { subject: "anonymous".into(), token: None }
                }
            }
            Authenticator::Unauthorized => AuthOutcome::Rejected("unauthorized handler".into()),
            Authenticator::Jwt(jwt_rule) => {
                jwt::authenticate(jwt_rule.as_ref(), req, now_ms, policy.clock_skew_secs, keys, memory.tokens)
            }
            Authenticator::Introspection(rule) => introspect(rule, req, now_ms, memory)?,
        };
        match outcome {
            AuthOutcome::NotResponsible => continue,
            AuthOutcome::Authenticated { subject, token } => {
                let session = Session { subject: &subject, extra: token.as_ref().map(|t| &t.claims) };
                return Ok((rule.rule.clone(), mutate(&rule.mutators, &session, req)));
            }
            AuthOutcome::Introspected { subject, extra } => {
                let session = Session { subject: &subject, extra: Some(&extra) };
                return Ok((rule.rule.clone(), mutate(&rule.mutators, &session, req)));
            }
            AuthOutcome::Denied { status, reason } => return Err(deny(status, &rule.rule, reason, false)),
            AuthOutcome::NeedKeys(urls) => return Err(Decision::NeedKeys { urls }),
            AuthOutcome::Rejected(reason) => {
                let token = matches!(authenticator, Authenticator::Jwt(_));
                return Err(deny(401, &rule.rule, reason, token));
            }
        }
    }
    Err(deny(401, &rule.rule, "no authenticator is responsible (no token)".into(), false))
}

/// The `oauth2_introspection` authenticator: not responsible without a token (or one without the
/// configured prefix); otherwise the endpoint's answer, from this request's own call or a kept
/// one, judged by the rule; no answer yet means the call must be made (`Err(NeedCall)`).
fn introspect(
    rule: &crate::calls::IntrospectionRule,
    req: &Request,
    now_ms: u64,
    memory: &mut Memory<'_>,
) -> Result<AuthOutcome, Decision> {
    let token = match jwt::extract::extract(&rule.token_from, req) {
        Ok(token) => token.filter(|t| t.starts_with(&rule.prefix)),
        Err(repeated) => return Ok(AuthOutcome::Rejected(repeated.to_string())),
    };
    let Some(token) = token else {
        return Ok(AuthOutcome::NotResponsible);
    };
    let Some(answer) = memory.answers.lookup(&rule.url, &token, now_ms) else {
        let mut call = rule.call(&token);
        if rule.preserve_host {
            call.headers.push(("x-forwarded-host".into(), req.authority.clone()));
        }
        return Err(Decision::NeedCall { call: Box::new(call) });
    };
    let now_secs = i64::try_from(now_ms / 1000).unwrap_or(i64::MAX);
    match rule.check(&answer, now_secs) {
        Verdict::Allowed { subject, extra } => {
            if let (Some(ttl), crate::calls::Answer::Ok(claims)) = (rule.cache_ttl_ms, &answer) {
                // Kept no longer than the token lives.
                let exp_ms = claims
                    .get("exp")
                    .and_then(serde_json::Value::as_u64)
                    .filter(|e| *e > 0)
                    .map(|e| e.saturating_mul(1000));
                let until = exp_ms.map_or(now_ms.saturating_add(ttl), |e| e.min(now_ms.saturating_add(ttl)));
                memory.answers.keep(&rule.url, &token, answer.clone(), until, now_ms);
            }
            Ok(AuthOutcome::Introspected { subject, extra })
        }
        Verdict::Denied { status, reason } => Ok(AuthOutcome::Denied { status, reason }),
    }
}

/// The headers the rule's mutators set, in order (a later mutator's header replaces an earlier
/// one's, as each replaced the request's header at Oathkeeper).
fn mutate(mutators: &[Mutator], session: &Session<'_>, req: &Request) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut set = |name: String, value: String| {
        out.retain(|(n, _)| *n != name);
        out.push((name, value));
    };
    for m in mutators {
        match m {
            Mutator::Header(headers) => {
                for (name, template) in headers {
                    set(name.clone(), header_safe(&template.render(session)));
                }
            }
            Mutator::Cookie(cookies) => {
                let mut jar: Vec<(String, String)> = req
                    .header_values("cookie")
                    .flat_map(|v| {
                        String::from_utf8_lossy(v)
                            .split(';')
                            .filter_map(|c| c.trim().split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
                            .collect::<Vec<_>>()
                    })
                    .filter(|(k, _)| !cookies.iter().any(|(name, _)| name == k))
                    .collect();
                for (name, template) in cookies {
                    jar.push((name.clone(), cookie_value(&template.render(session))));
                }
                let header: Vec<String> = jar.iter().map(|(k, v)| format!("{k}={v}")).collect();
                set("cookie".to_owned(), header.join("; "));
            }
        }
    }
    out
}

/// A rendered claim never splits a header: control characters are dropped.
fn header_safe(value: &str) -> String {
    value.chars().filter(|c| !c.is_control() || *c == '\t').collect()
}

/// Go's `sanitizeCookieValue`: bytes a cookie value cannot hold are dropped, and a value with a
/// space or comma is quoted.
fn cookie_value(value: &str) -> String {
    let kept: String = value.chars().filter(|c| matches!(*c, ' '..='~') && !matches!(*c, '"' | ';' | '\\')).collect();
    if kept.contains([' ', ',']) {
        format!("\"{kept}\"")
    } else {
        kept
    }
}
