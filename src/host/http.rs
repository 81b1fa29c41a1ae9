//! The HTTP context: snapshot the request, ask the policy, carry out its answer.

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use std::rc::Rc;

use proxy_wasm::types::{Action, BufferType, LogLevel, MapType};

use super::metrics::{self, Counter};
use super::root::register_waiter;
use super::{decide_current, flush_counters, log, log_debug, now_ms, Shared, SharedRef, Waiter, NOW_TICK};
use crate::calls::{Answer, Call, Target};
use crate::config::Config;
use crate::keys::FetchedOnce;
use crate::policy::{Decision, Mode};
use crate::request::path as request_path;
use crate::request::Request;

pub struct HttpFilter {
    context_id: u32,
    shared: SharedRef,
    /// A request paused for its introspection call.
    pending: Option<Pending>,
    /// The APIRule governing this request when it is in dry-run mode: its decision is logged
    /// and counted, never carried out.
    dry_run: Option<Rc<str>>,
}

/// What a request paused for an introspection call needs when the answer comes.
struct Pending {
    request: Request,
    token_id: u32,
    key: (String, String),
    /// The call went to an extAuth authorizer (else to an introspection endpoint).
    ext_authz: bool,
    /// Answers of its earlier calls (a pipeline may introspect at several URLs).
    answers: Vec<((String, String), Answer)>,
    calls: usize,
}

/// Most introspection calls one request may cause (a pipeline of several introspection
/// authenticators); beyond that it is denied.
const MAX_CALLS_PER_REQUEST: usize = 4;

/// Largest introspection answer read.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

impl HttpFilter {
    pub fn new(context_id: u32, shared: SharedRef) -> Self {
        HttpFilter { context_id, shared, pending: None, dry_run: None }
    }

    /// Dispatches `call` for `request` and pauses it; a call that cannot be dispatched is a 500,
    /// as Oathkeeper answered an unreachable introspection endpoint.
    fn start_call(
        &mut self,
        config: &Rc<Config>,
        request: Request,
        call: Call,
        answers: Vec<((String, String), Answer)>,
        calls: usize,
        resume: bool,
    ) -> Action {
        if calls >= MAX_CALLS_PER_REQUEST {
            let deny = Decision::deny_outside_rules(&request, 500, "too many authorization calls", false);
            return apply(&deny, &request, resume, self.dry_run.as_deref());
        }
        // Where the call goes: (cluster, method, :path, :authority, timeout).
        let target = match &call.target {
            Target::Introspection => config
                .introspection
                .get(&call.url)
                .map(|(e, t)| (e.cluster.clone(), "POST".to_owned(), e.path.clone(), e.authority.clone(), *t)),
            Target::ExtAuthz { provider, method, path } => config
                .ext_authz
                .get(provider)
                .map(|p| (p.cluster.clone(), method.clone(), path.clone(), p.authority.clone(), p.timeout_ms)),
        };
        let Some((cluster, method, path, authority, timeout_ms)) = target else {
            let deny = Decision::deny_outside_rules(&request, 500, "authorization call without an endpoint", false);
            return apply(&deny, &request, resume, self.dry_run.as_deref());
        };
        let mut headers: Vec<(&str, &str)> = vec![
            (":method", method.as_str()),
            (":path", path.as_str()),
            (":authority", authority.as_str()),
            ("user-agent", "apirule-wasm"),
        ];
        if call.target == Target::Introspection {
            headers.push(("accept", "application/json"));
        }
        headers.extend(call.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let body = (!call.body.is_empty()).then_some(call.body.as_slice());
        let timeout = std::time::Duration::from_millis(timeout_ms);
        match hostcalls::dispatch_http_call(&cluster, headers, body, vec![], timeout) {
            Ok(token_id) => {
                metrics::inc(Counter::AuthorizationCalls);
                let ext_authz = matches!(call.target, Target::ExtAuthz { .. });
                let key = (call.url, call.token);
                self.pending =
                    Some(Pending { request, token_id, key, ext_authz, answers, calls: calls.saturating_add(1) });
                Action::Pause
            }
            Err(status) => {
                log(LogLevel::Warn, &format!("apirule: authorization call via cluster {cluster} failed: {status:?}"));
                // Answered as the call's own failure would be (500 introspection, 403 ext_authz).
                let mut answers = answers;
                let failed = match call.target {
                    Target::Introspection => Answer::Failed("dispatch failed".into()),
                    Target::ExtAuthz { .. } => Answer::Http { status: 0, headers: Vec::new(), body: Vec::new() },
                };
                answers.push(((call.url, call.token), failed));
                self.decide_and_apply(config, request, answers, calls.saturating_add(1), resume)
            }
        }
    }

    /// Makes the root's tick fire at once (it dispatches JWKS fetches), then comes back.
    fn wake_root(&self, root_id: u32) {
        if hostcalls::set_effective_context(root_id).is_ok() {
            let _ = hostcalls::set_tick_period(NOW_TICK);
            let _ = hostcalls::set_effective_context(self.context_id);
        }
    }

    /// Decides `request` with what is known, and carries the decision out (`resume`: it was paused).
    fn decide_and_apply(
        &mut self,
        config: &Rc<Config>,
        request: Request,
        answers: Vec<((String, String), Answer)>,
        calls: usize,
        resume: bool,
    ) -> Action {
        let now = now_ms();
        let (decision, root_id, answers, seen, refresh_due) = {
            let Ok(mut s) = self.shared.try_borrow_mut() else {
                return apply(&internal_error(&request), &request, resume, self.dry_run.as_deref());
            };
            let s = &mut *s;
            s.answers.fresh = answers;
            let mut decide =
                |s: &mut Shared| config.policy.decide_with(&request, now, &s.cache, &mut s.tokens, &mut s.answers);
            let (mut d, refresh_due) = decide_current(s, now, &mut decide);
            let mut seen = Vec::new();
            if let Decision::NeedKeys { urls } = &d {
                // Another worker may have fetched these already: adopt its copy and decide again.
                for url in urls {
                    s.shared_keys.sync(&mut s.cache, url);
                }
                d = decide(s);
                if let Decision::NeedKeys { urls } = &d {
                    seen = urls.iter().map(|u| FetchedOnce::mark(&s.cache, u, now)).collect();
                }
            }
            flush_counters(s);
            (d, s.root_context_id, std::mem::take(&mut s.answers.fresh), seen, refresh_due)
        };
        if refresh_due {
            // A set this request used is past its refresh point and nobody refreshes it yet.
            self.wake_root(root_id);
        }
        match decision {
            Decision::NeedKeys { urls } => {
                let dry_run = self.dry_run.clone();
                let waiter =
                    Waiter { context_id: self.context_id, request, since_ms: now, urls, seen, answers, dry_run };
                metrics::inc(Counter::RequestsPaused);
                if let Err(waiter) = register_waiter(&self.shared, waiter) {
                    let req = waiter.request;
                    let deny = Decision::deny_outside_rules(&req, 401, "too many requests waiting for JWKS", true);
                    return apply(&deny, &req, resume, self.dry_run.as_deref());
                }
                // Wake the root at once so it dispatches the fetch.
                self.wake_root(root_id);
                Action::Pause
            }
            Decision::NeedCall { call } => self.start_call(config, request, *call, answers, calls, resume),
            d => apply(&d, &request, resume, self.dry_run.as_deref()),
        }
    }
}

/// An extAuth authorizer's answer as it came: status (0: none), headers, body (bounded).
fn read_http_answer(body_size: usize) -> Answer {
    let headers = hostcalls::get_map(MapType::HttpCallResponseHeaders).unwrap_or_default();
    let status = headers.iter().find(|(k, _)| k == ":status").and_then(|(_, v)| v.parse::<u16>().ok()).unwrap_or(0);
    let headers = headers.into_iter().filter(|(k, _)| !k.starts_with(':')).collect();
    let body = hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size.min(MAX_ANSWER_BYTES))
        .ok()
        .flatten()
        .unwrap_or_default();
    Answer::Http { status, headers, body }
}

/// The endpoint's answer, read from the host: 200 with a JSON object, 429, or a failure.
fn read_answer(body_size: usize) -> Answer {
    let status = hostcalls::get_map_value_bytes(MapType::HttpCallResponseHeaders, ":status")
        .ok()
        .flatten()
        .and_then(|s| String::from_utf8(s).ok())
        .and_then(|s| s.parse::<u16>().ok());
    match status {
        None => Answer::Failed("no response (connection failed or timed out)".into()),
        Some(429) => Answer::TooManyRequests,
        Some(200) if body_size <= MAX_ANSWER_BYTES => {
            let body = hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size).ok().flatten();
            match serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&body.unwrap_or_default()) {
                Ok(map) => Answer::Ok(Rc::new(map)),
                Err(_) => Answer::Failed("answer is not a JSON object".into()),
            }
        }
        Some(200) => Answer::Failed(format!("answer of {body_size} bytes is too large")),
        Some(code) => Answer::Failed(format!("HTTP status {code}")),
    }
}

/// Why the request could not be read; answered without asking the policy.
enum SnapshotError {
    /// The host refused to hand out the headers.
    Unreadable,
    /// `:authority`, `:method` or `:path` is not UTF-8: nothing can be decided on it.
    NotUtf8(Request),
}

/// `:authority` alone: a request for a host no APIRule governs needs nothing else (one host call
/// instead of copying every header out of Envoy).
fn read_authority() -> Result<String, SnapshotError> {
    let value = hostcalls::get_map_value_bytes(MapType::HttpRequestHeaders, ":authority")
        .map_err(|_| SnapshotError::Unreadable)?
        .unwrap_or_default();
    String::from_utf8(value).map_err(|_| SnapshotError::NotUtf8(Request::default()))
}

/// Reads the request headers as raw bytes (header values may hold non-UTF-8 octets; reading
/// them as strings would trap the VM).
fn snapshot(authority: String) -> Result<Request, SnapshotError> {
    let pairs = hostcalls::get_map_bytes(MapType::HttpRequestHeaders).map_err(|_| SnapshotError::Unreadable)?;
    let mut req = Request { authority, ..Request::default() };
    let mut not_utf8 = false;
    for (name, value) in pairs {
        let field = match name.as_str() {
            ":authority" => continue,
            ":method" => &mut req.method,
            ":path" => &mut req.path,
            _ => {
                req.headers.push((name, value));
                continue;
            }
        };
        match String::from_utf8(value) {
            Ok(v) => *field = v,
            Err(_) => not_utf8 = true,
        }
    }
    if not_utf8 {
        return Err(SnapshotError::NotUtf8(req));
    }
    Ok(req)
}

/// Carries out a final decision for the request of the current effective context. `resume` is
/// set when the request was paused (decided later by the root). `dry_run` names the request's
/// APIRule when it is in dry-run mode: then the decision is only logged and counted, and the
/// request goes on as the client sent it (no header set, no path rewritten, no local answer).
pub(super) fn apply(decision: &Decision, req: &Request, resume: bool, dry_run: Option<&str>) -> Action {
    match (decision, dry_run) {
        (Decision::PassThrough, _) => {
            metrics::inc(Counter::PassedThrough);
            continue_request(resume)
        }
        (Decision::Allow { rule, .. }, Some(apirule)) => {
            metrics::inc(Counter::DryRunWouldAllow);
            log_debug(|| {
                format!(
                    "apirule: dry-run: APIRule {apirule} would allow {} {} {:?} (rule {rule})",
                    req.method,
                    req.authority,
                    without_query(&req.path)
                )
            });
            continue_request(resume)
        }
        (Decision::Allow { rule, set_headers }, None) => {
            metrics::inc(Counter::Allowed);
            log_debug(|| format!("apirule: allow {} {} by {rule}", req.method, req.path));
            for (name, value) in set_headers {
                let _ = hostcalls::set_map_value(MapType::HttpRequestHeaders, name, Some(value));
            }
            continue_request(resume)
        }
        (Decision::Deny { rule, reason, response }, Some(apirule)) => {
            metrics::inc(Counter::DryRunWouldDeny);
            // Info, not debug: these lines are what a dry run is for. The query is left out, as
            // it may carry a token (`?access_token=`).
            let rule = rule.as_ref().map(|r| format!(" (rule {r})")).unwrap_or_default();
            log(
                LogLevel::Info,
                &format!(
                    "apirule: dry-run: APIRule {apirule} would deny {} {} {:?} with {}{rule}: {reason}",
                    req.method,
                    req.authority,
                    without_query(&req.path),
                    response.status
                ),
            );
            continue_request(resume)
        }
        (Decision::Deny { rule, reason, response }, None) => {
            metrics::inc(Counter::Denied);
            metrics::inc(metrics::denied(response.status));
            log_debug(|| {
                let rule = rule.as_ref().map(|r| format!(" (rule {r})")).unwrap_or_default();
                // Never the query: it may carry a token (`?access_token=`).
                format!(
                    "apirule: deny {} {} {:?} with {}{rule}: {reason}",
                    req.method,
                    req.authority,
                    without_query(&req.path),
                    response.status
                )
            });
            let headers: Vec<(&str, &str)> = response.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let body = (!response.body.is_empty()).then_some(response.body.as_slice());
            if hostcalls::send_http_response(u32::from(response.status), headers, body).is_err() {
                log(LogLevel::Error, "apirule: could not send the deny response");
            }
            Action::Pause
        }
        // Never final: callers handle them before calling apply. Fail closed if one gets here.
        (Decision::NeedKeys { .. }, _) => {
            let deny = Decision::deny_outside_rules(req, 401, "keys still missing", true);
            apply(&deny, req, resume, dry_run)
        }
        (Decision::NeedCall { .. }, _) => {
            let deny = Decision::deny_outside_rules(req, 500, "introspection still missing", false);
            apply(&deny, req, resume, dry_run)
        }
    }
}

/// Lets the request go on: resumes it if it was paused, and tells the host to continue.
fn continue_request(resume: bool) -> Action {
    if resume {
        let _ = hostcalls::resume_http_request();
    }
    Action::Continue
}

/// `:path` without its query, for log lines.
fn without_query(path: &str) -> &str {
    request_path::split_query(path).0
}

impl Context for HttpFilter {
    fn on_http_call_response(&mut self, token_id: u32, _num_headers: usize, body_size: usize, _num_trailers: usize) {
        let Some(pending) = self.pending.take().filter(|p| p.token_id == token_id) else {
            return;
        };
        let answer = if pending.ext_authz { read_http_answer(body_size) } else { read_answer(body_size) };
        if let Answer::Failed(why) = &answer {
            log(LogLevel::Warn, &format!("apirule: introspection at {}: {why}", pending.key.0));
        }
        let Some(config) = self.shared.try_borrow().ok().and_then(|s| s.config.clone()) else {
            let _ = apply(&internal_error(&pending.request), &pending.request, true, self.dry_run.as_deref());
            return;
        };
        let mut answers = pending.answers;
        answers.push((pending.key, answer));
        let _ = self.decide_and_apply(&config, pending.request, answers, pending.calls, true);
    }

    fn on_done(&mut self) -> bool {
        // A request that goes away while waiting must not be touched later.
        if let Ok(mut s) = self.shared.try_borrow_mut() {
            s.waiters.retain(|w| w.context_id != self.context_id);
        }
        true
    }
}

impl HttpContext for HttpFilter {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        // Without a configuration, or without a readable host, no APIRule's mode is known:
        // those answers are enforced.
        let Some(config) = self.shared.try_borrow().ok().and_then(|s| s.config.clone()) else {
            return apply(&internal_error(&Request::default()), &Request::default(), false, None);
        };
        let snapshot = read_authority().and_then(|authority| match config.policy.host_policy(&authority) {
            Some(host) => {
                self.dry_run = (host.mode == Mode::DryRun).then(|| Rc::clone(&host.apirule));
                snapshot(authority).map(Some)
            }
            None => Ok(None),
        });
        let req = match snapshot {
            Ok(Some(req)) => req,
            Ok(None) => return apply(&Decision::PassThrough, &Request::default(), false, None),
            Err(SnapshotError::Unreadable) => {
                return apply(&internal_error(&Request::default()), &Request::default(), false, None)
            }
            // The host's name is unreadable (so it may be a governed one) or the request line of a
            // governed host is: nothing can be decided on it.
            Err(SnapshotError::NotUtf8(partial)) => {
                let deny = Decision::deny_outside_rules(&partial, 400, "request line is not UTF-8", false);
                return apply(&deny, &partial, false, self.dry_run.as_deref());
            }
        };
        self.decide_and_apply(&config, req, Vec::new(), 0, false)
    }
}

fn internal_error(req: &Request) -> Decision {
    Decision::deny_outside_rules(req, 500, "filter has no configuration or cannot read the request", false)
}
