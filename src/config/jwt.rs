//! The `jwt` access strategy's `config` (Oathkeeper keys, reference §2.2) -> `JwtRule`, and JWKS
//! URLs -> dispatch endpoints.

use super::json::Node;
use super::ConfigError;
use crate::jwt::algorithm::Algorithm;
use crate::jwt::extract::TokenSource;
use crate::jwt::scope::ScopeStrategy;
use crate::jwt::JwtRule;

const KEYS: [&str; 9] = [
    "jwks_urls",
    "trusted_issuers",
    "target_audience",
    "required_scope",
    "scope_strategy",
    "allowed_algorithms",
    "token_from",
    "jwks_max_wait",
    "jwks_ttl",
];

/// Kyma's global Oathkeeper setting for the jwt authenticator.
const DEFAULT_SCOPE_STRATEGY: ScopeStrategy = ScopeStrategy::Wildcard;

pub(crate) fn compile(config: Option<Node<'_>>, strategy: &Node<'_>) -> Result<JwtRule, ConfigError> {
    let Some(config) = config else {
        return Err(strategy.error("config is required for the jwt handler (at least jwks_urls)"));
    };
    let object = config.object()?;
    if object.is_empty() {
        return Err(config.error("must not be empty for the jwt handler (at least jwks_urls)"));
    }
    if object.contains_key("authentications") {
        return Err(config.error(
            "authentications belongs to Kyma's Istio JWT handler, which only v1beta1 APIRules had; use jwks_urls/trusted_issuers in v1alpha1",
        ));
    }
    config.only_keys(&KEYS)?;

    let urls_node = config.req("jwks_urls")?;
    let jwks_urls = urls_node.str_list()?;
    if jwks_urls.is_empty() {
        return Err(urls_node.error("must list at least one JWKS URL"));
    }
    for (i, url) in jwks_urls.iter().enumerate() {
        parse_url(url).map_err(|m| ConfigError::new(config.resource(), &format!("{}[{i}]", urls_node.path), m))?;
    }
    let trusted_issuers = list(&config, "trusted_issuers")?;
    if let Some(n) = config.get("trusted_issuers") {
        for (i, iss) in trusted_issuers.iter().enumerate() {
            if !is_request_uri(iss) {
                return Err(ConfigError::new(
                    config.resource(),
                    &format!("{}[{i}]", n.path),
                    "must be an absolute URI or an absolute path",
                ));
            }
        }
    }
    let scope_strategy = match config.get("scope_strategy") {
        None => DEFAULT_SCOPE_STRATEGY,
        Some(n) => ScopeStrategy::from_name(n.str()?)
            .ok_or_else(|| n.error("must be one of hierarchic, exact, wildcard, none"))?,
    };
    let allowed_algorithms = match config.get("allowed_algorithms") {
        None => vec![Algorithm::RS256],
        Some(n) => {
            let mut algs = Vec::new();
            for item in n.items()? {
                let name = item.non_empty_str()?;
                let alg = Algorithm::from_name(name).ok_or_else(|| {
                    let names: Vec<&str> = Algorithm::ALL.iter().map(|a| a.name()).collect();
                    item.error(format!("{name} is not supported (supported: {})", names.join(", ")))
                })?;
                algs.push(alg);
            }
            if algs.is_empty() {
                vec![Algorithm::RS256]
            } else {
                algs
            }
        }
    };
    let token_from = match config.get("token_from") {
        None => TokenSource::AuthorizationBearer,
        Some(n) => token_source(&n)?,
    };
    for ignored in ["jwks_max_wait", "jwks_ttl"] {
        if let Some(n) = config.get(ignored) {
            n.str()?;
        }
    }
    Ok(JwtRule {
        jwks_urls,
        trusted_issuers,
        target_audience: list(&config, "target_audience")?,
        required_scope: list(&config, "required_scope")?,
        scope_strategy,
        allowed_algorithms,
        token_from,
    })
}

fn list(config: &Node<'_>, key: &str) -> Result<Vec<String>, ConfigError> {
    match config.get(key) {
        Some(n) => n.str_list(),
        None => Ok(Vec::new()),
    }
}

pub(crate) fn token_source(node: &Node<'_>) -> Result<TokenSource, ConfigError> {
    node.only_keys(&["header", "query_parameter", "cookie"])?;
    let set: Vec<(&str, Node<'_>)> =
        ["header", "query_parameter", "cookie"].into_iter().filter_map(|k| node.get(k).map(|n| (k, n))).collect();
    let [(kind, value)] = set.as_slice() else {
        return Err(node.error("must have exactly one of header, query_parameter, cookie"));
    };
    let name = value.non_empty_str()?.to_owned();
    Ok(match *kind {
        // Oathkeeper strips the Bearer prefix only for the literal name "Authorization".
        "header" if name == "Authorization" => TokenSource::AuthorizationBearer,
        "header" => TokenSource::Header(name.to_ascii_lowercase()),
        "query_parameter" => TokenSource::Query(name),
        _ => TokenSource::Cookie(name),
    })
}

/// Go's `url.ParseRequestURI` in spirit: an absolute URI (`scheme:...`) or an absolute path.
pub(crate) fn is_request_uri(s: &str) -> bool {
    if s.starts_with('/') {
        return true;
    }
    match s.split_once(':') {
        Some((scheme, rest)) => {
            !rest.is_empty()
                && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        }
        None => false,
    }
}

pub(crate) struct ParsedUrl<'a> {
    https: bool,
    authority: &'a str,
    host: &'a str,
    port: Option<u16>,
    path: &'a str,
}

pub(crate) fn parse_url(url: &str) -> Result<ParsedUrl<'_>, String> {
    let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        return Err("must be an http:// or https:// URL (the filter fetches JWKS with Envoy)".into());
    };
    if url.contains('#') {
        return Err("must not have a fragment".into());
    }
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => (rest.get(..i).unwrap_or(""), rest.get(i..).unwrap_or("/")),
        None => (rest, "/"),
    };
    if authority.contains('@') {
        return Err("must not carry user info".into());
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !p.contains(']') => {
            let port = p.parse::<u16>().ok().filter(|p| *p > 0).ok_or("has an invalid port")?;
            (h, Some(port))
        }
        _ => (authority, None),
    };
    if host.is_empty() || !host.chars().all(|c| c.is_ascii_alphanumeric() || "-._[]:".contains(c)) {
        return Err("has an invalid host".into());
    }
    Ok(ParsedUrl { https, authority, host, port, path })
}

/// The dispatch target for a JWKS URL: the cluster from `jwks.clusters`, else Istio's name for a
/// ServiceEntry host, `outbound|<port>||<host>`.
pub(crate) fn endpoint(url: &str, cluster: Option<&str>) -> Result<super::JwksEndpoint, String> {
    let u = parse_url(url)?;
    let port = u.port.unwrap_or(if u.https { 443 } else { 80 });
    let path = if u.path.starts_with('?') { format!("/{}", u.path) } else { u.path.to_owned() };
    Ok(super::JwksEndpoint {
        url: url.to_owned(),
        cluster: cluster.map(str::to_owned).unwrap_or_else(|| format!("outbound|{port}||{}", u.host)),
        authority: u.authority.to_owned(),
        path,
    })
}
