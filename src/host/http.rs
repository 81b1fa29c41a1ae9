//! The HTTP context: snapshot the request, ask the policy, carry out its answer.

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, LogLevel, MapType};

use super::metrics::{self, Counter};
use super::root::register_waiter;
use super::{log, log_debug, now_ms, SharedRef, Waiter, NOW_TICK};
use crate::policy::Decision;
use crate::request::Request;

pub struct HttpFilter {
    context_id: u32,
    shared: SharedRef,
}

impl HttpFilter {
    pub fn new(context_id: u32, shared: SharedRef) -> Self {
        HttpFilter { context_id, shared }
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
/// set when the request was paused (decided later by the root).
pub(super) fn apply(decision: &Decision, req: &Request, resume: bool) -> Action {
    match decision {
        Decision::PassThrough => {
            metrics::inc(Counter::PassedThrough);
            if resume {
                let _ = hostcalls::resume_http_request();
            }
            Action::Continue
        }
        Decision::Allow { rule, set_headers } => {
            metrics::inc(Counter::Allowed);
            log_debug(|| format!("apirule: allow {} {} by {rule}", req.method, req.path));
            for (name, value) in set_headers {
                let _ = hostcalls::set_map_value(MapType::HttpRequestHeaders, name, Some(value));
            }
            if resume {
                let _ = hostcalls::resume_http_request();
            }
            Action::Continue
        }
        Decision::Deny { rule, reason, response } => {
            metrics::inc(Counter::Denied);
            log_debug(|| {
                let rule = rule.as_ref().map(|r| format!(" (rule {r})")).unwrap_or_default();
                format!(
                    "apirule: deny {} {} {} with {}{rule}: {reason}",
                    req.method, req.authority, req.path, response.status
                )
            });
            let headers: Vec<(&str, &str)> = response.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let body = (!response.body.is_empty()).then_some(response.body.as_slice());
            if hostcalls::send_http_response(u32::from(response.status), headers, body).is_err() {
                log(LogLevel::Error, "apirule: could not send the deny response");
            }
            Action::Pause
        }
        // Never final: callers handle it before calling apply. Fail closed if it ever gets here.
        Decision::NeedKeys { .. } => {
            let deny = Decision::deny_outside_rules(req, 401, "keys still missing", true);
            apply(&deny, req, resume)
        }
    }
}

impl Context for HttpFilter {
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
        let Some(config) = self.shared.try_borrow().ok().and_then(|s| s.config.clone()) else {
            return apply(&internal_error(&Request::default()), &Request::default(), false);
        };
        let snapshot = read_authority().and_then(|authority| {
            if config.policy.governs(&authority) {
                snapshot(authority).map(Some)
            } else {
                Ok(None)
            }
        });
        let req = match snapshot {
            Ok(Some(req)) => req,
            Ok(None) => return apply(&Decision::PassThrough, &Request::default(), false),
            Err(SnapshotError::Unreadable) => {
                return apply(&internal_error(&Request::default()), &Request::default(), false)
            }
            // The host's name is unreadable (so it may be a governed one) or the request line of a
            // governed host is: nothing can be decided on it.
            Err(SnapshotError::NotUtf8(partial)) => {
                let deny = Decision::deny_outside_rules(&partial, 400, "request line is not UTF-8", false);
                return apply(&deny, &partial, false);
            }
        };
        let now = now_ms();
        let (decision, root_id) = {
            let Ok(mut s) = self.shared.try_borrow_mut() else {
                return apply(&internal_error(&req), &req, false);
            };
            let s = &mut *s;
            (config.policy.decide_cached(&req, now, &s.cache, &mut s.tokens), s.root_context_id)
        };
        match decision {
            Decision::NeedKeys { urls } => {
                let waiter = Waiter { context_id: self.context_id, request: req, since_ms: now, urls };
                if let Err(waiter) = register_waiter(&self.shared, waiter) {
                    let req = waiter.request;
                    let deny = Decision::deny_outside_rules(&req, 401, "too many requests waiting for JWKS", true);
                    return apply(&deny, &req, false);
                }
                // Wake the root at once so it dispatches the fetch.
                if hostcalls::set_effective_context(root_id).is_ok() {
                    let _ = hostcalls::set_tick_period(NOW_TICK);
                    let _ = hostcalls::set_effective_context(self.context_id);
                }
                Action::Pause
            }
            d => apply(&d, &req, false),
        }
    }
}

fn internal_error(req: &Request) -> Decision {
    Decision::deny_outside_rules(req, 500, "filter has no configuration or cannot read the request", false)
}
