//! The `oauth2_introspection` access strategy's `config` (Oathkeeper v0.38 keys, reference §2.9)
//! -> `IntrospectionRule`. Kyma's global settings fill what a rule leaves out: `scope_strategy`
//! `exact`. Its global `introspection_url` (Hydra's admin endpoint) no longer exists on current
//! clusters, so a rule must name one.

use super::json::Node;
use super::jwt::{parse_url, token_source};
use super::ConfigError;
use crate::calls::IntrospectionRule;
use crate::jwt::extract::TokenSource;
use crate::jwt::scope::ScopeStrategy;

const KEYS: [&str; 12] = [
    "introspection_url",
    "scope_strategy",
    "required_scope",
    "target_audience",
    "trusted_issuers",
    "pre_authorization",
    "token_from",
    "prefix",
    "introspection_request_headers",
    "retry",
    "cache",
    "preserve_host",
];

/// Oathkeeper's `retry.give_up_after` default: how long one introspection may take.
pub const DEFAULT_TIMEOUT_MS: u64 = 1000;

/// A Go duration such as `500ms`, `1s`, `1m30s`, in milliseconds.
fn duration_ms(node: &Node<'_>) -> Result<u64, ConfigError> {
    let text = node.non_empty_str()?;
    let bad = || node.error(format!("{text:?} is not a duration such as 500ms, 10s or 1m"));
    let mut total: f64 = 0.0;
    let mut rest = text;
    while !rest.is_empty() {
        let split = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(bad)?;
        let (number, tail) = rest.split_at(split);
        let number: f64 = number.parse().map_err(|_| bad())?;
        let unit_len = tail.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let factor = match unit {
            "ms" => 1.0,
            "s" => 1000.0,
            "m" => 60_000.0,
            "h" => 3_600_000.0,
            _ => return Err(bad()),
        };
        total += number * factor;
        rest = tail;
    }
    if !(0.0..=86_400_000.0).contains(&total) {
        return Err(bad());
    }
    Ok(total as u64)
}

/// The compiled rule and the call timeout (`retry.give_up_after`).
pub(crate) fn compile(config: Option<Node<'_>>, strategy: &Node<'_>) -> Result<(IntrospectionRule, u64), ConfigError> {
    let Some(config) = config else {
        return Err(strategy.error("config is required for oauth2_introspection (at least introspection_url)"));
    };
    config.only_keys(&KEYS)?;
    let url_node = config.req("introspection_url")?;
    let url = url_node.non_empty_str()?;
    parse_url(url).map_err(|m| url_node.error(m))?;
    let list = |key: &str| config.get(key).map(|n| n.str_list()).transpose().map(Option::unwrap_or_default);
    let scope_strategy = match config.get("scope_strategy") {
        None => Some(ScopeStrategy::Exact),
        Some(n) => match n.str()? {
            "none" => None,
            name => Some(
                ScopeStrategy::from_name(name)
                    .ok_or_else(|| n.error(format!("{name} is not one of hierarchic, exact, wildcard, none")))?,
            ),
        },
    };
    if let Some(pre) = config.get("pre_authorization") {
        pre.only_keys(&["enabled", "client_id", "client_secret", "token_url", "scope", "audience"])?;
        if pre.get("enabled").is_some_and(|e| e.value.as_bool() == Some(true)) {
            return Err(pre.error(
                "pre_authorization (client credentials for the introspection endpoint) is not supported by apirule-wasm; use introspection_request_headers with a static credential",
            ));
        }
    }
    let token_from = match config.get("token_from") {
        Some(n) => token_source(&n)?,
        None => TokenSource::AuthorizationBearer,
    };
    let prefix = config.get("prefix").map(|p| p.str().map(str::to_owned)).transpose()?.unwrap_or_default();
    let mut headers = Vec::new();
    if let Some(h) = config.get("introspection_request_headers") {
        for (name, value) in h.object()? {
            let value = value.as_str().ok_or_else(|| h.error(format!("{name}: must be a string")))?;
            headers.push((name.to_ascii_lowercase(), value.to_owned()));
        }
    }
    let mut timeout_ms = DEFAULT_TIMEOUT_MS;
    if let Some(retry) = config.get("retry") {
        retry.only_keys(&["max_delay", "give_up_after"])?;
        if let Some(g) = retry.get("give_up_after") {
            timeout_ms = duration_ms(&g)?.clamp(10, 60_000);
        }
        if let Some(d) = retry.get("max_delay") {
            duration_ms(&d)?;
        }
    }
    let mut cache_ttl_ms = None;
    if let Some(cache) = config.get("cache") {
        cache.only_keys(&["enabled", "ttl", "max_cost"])?;
        if cache.get("enabled").map(|e| e.bool()).transpose()? == Some(true) {
            // Oathkeeper without a ttl keeps answers until evicted; here a minute at most.
            let ttl = cache.get("ttl").map(|t| duration_ms(&t)).transpose()?.unwrap_or(60_000);
            cache_ttl_ms = Some(ttl.min(3_600_000));
        }
        if let Some(c) = cache.get("max_cost") {
            c.uint(0, u64::MAX)?;
        }
    }
    let preserve_host = config.get("preserve_host").map(|p| p.bool()).transpose()?.unwrap_or(false);
    let rule = IntrospectionRule {
        url: url.to_owned(),
        required_scope: list("required_scope")?,
        target_audience: list("target_audience")?,
        trusted_issuers: list("trusted_issuers")?,
        scope_strategy,
        token_from,
        prefix,
        headers,
        cache_ttl_ms,
        preserve_host,
    };
    Ok((rule, timeout_ms))
}
