//! The proof of a migration: the original and the v2 APIRule compiled by the filter's own code,
//! and every request of a set generated from their rules decided by both. Paths come from the
//! rules' regexes and templates and their near misses, with every method, and tokens without,
//! with and beside what the rules ask (issuer, scopes, audiences, expiry, a forged one).

use std::collections::BTreeMap;
use std::fmt;
use std::rc::Rc;

use serde_json::{json, Map, Value};

use apirule_wasm::config::Config;
use apirule_wasm::jwt::jwks::parse_jwks;
use apirule_wasm::policy::Decision;
use apirule_wasm::request::Request;

use super::convert::{ALL_METHODS as METHODS, INTROSPECTION_AUTHORIZER};
use super::paths;
use crate::check;
use crate::offline::{self, OfflineKeys};
use crate::tokens::{Alg, Signer};

pub struct Proof {
    pub requests: usize,
    pub paths: usize,
    pub methods: usize,
    pub tokens: usize,
    /// Requests one lets through and the other does not, or that reach the backend differently.
    pub differences: Vec<Group>,
    /// Requests both deny, with another status (e.g. Oathkeeper's 401 and Istio's 403 for a
    /// request without a token).
    pub status_only: Vec<Group>,
}

/// Requests that differ in the same way, but for their method (and path).
pub struct Group {
    pub methods: Vec<String>,
    pub paths: Vec<String>,
    pub token: String,
    pub old: String,
    pub new: String,
}

impl fmt::Display for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} ({}): v1 {} -> v2 {}",
            self.methods.join(","),
            self.paths.join(" "),
            self.token,
            self.old,
            self.new
        )
    }
}

pub fn prove(options: &Map<String, Value>, old: &Value, new: &Value) -> Result<Proof, String> {
    let old_config = check::load(&check::with_rules(options, vec![old.clone()]))
        .map_err(|e| format!("the original APIRule does not load: {e}"))?;
    let mut new_options = options.clone();
    provide_authorizer(&mut new_options);
    let new_config = check::load(&check::with_rules(&new_options, vec![new.clone()]))
        .map_err(|e| format!("the migrated APIRule is refused by the filter: {e}\n{new}"))?;
    let host = old_config.policy.hosts().first().map(|h| h.host.clone()).ok_or("the original APIRule has no host")?;

    let signer = Signer::new()?;
    let mut jwks = signer.jwks();
    let es256 = allows_es256(old);
    if !es256 {
        // The IdP of a v1 APIRule signs with what Oathkeeper accepted: serve RS256 keys only.
        if let Some(keys) = jwks.get_mut("keys").and_then(Value::as_array_mut) {
            keys.retain(|k| k["alg"] == "RS256");
        }
    }
    let set = parse_jwks(jwks.to_string().as_bytes()).map_err(|e| format!("the proof's key set: {e:?}"))?;
    let keys = OfflineKeys { set: Some(Rc::new(set)) };
    let tokens = token_variants(&signer, old, es256);
    let sample_paths = sample_paths(old, new);
    let now = offline::now_ms();

    let mut differences: BTreeMap<(String, String, String, String, bool), Vec<String>> = BTreeMap::new();
    let mut requests = 0;
    for path in &sample_paths {
        for method in METHODS {
            for (label, token) in &tokens {
                let mut req = Request::new(method, &host, path);
                if let Some(t) = token {
                    req = req.with_header("authorization", &format!("Bearer {t}"));
                }
                requests += 1;
                let a = outcome(&old_config, &req, now, &keys);
                let b = outcome(&new_config, &req, now, &keys);
                if a != b {
                    let status_only = matches!((&a, &b), (Outcome::Denied(_), Outcome::Denied(_)));
                    let key = (path.clone(), label.clone(), a.to_string(), b.to_string(), status_only);
                    differences.entry(key).or_default().push(method.to_owned());
                }
            }
        }
    }
    // One line per kind of change, naming every path it happens on.
    let mut by_change: BTreeMap<ChangeKey, Vec<String>> = BTreeMap::new();
    for ((path, token, old, new, only_status), methods) in differences {
        by_change.entry((only_status, methods, token, old, new)).or_default().push(path);
    }
    let (mut access, mut status_only) = (Vec::new(), Vec::new());
    for ((only_status, methods, token, old, new), paths) in by_change {
        let group = Group { methods, paths, token, old, new };
        if only_status {
            status_only.push(group);
        } else {
            access.push(group);
        }
    }
    Ok(Proof {
        requests,
        paths: sample_paths.len(),
        methods: METHODS.len(),
        tokens: tokens.len(),
        differences: access,
        status_only,
    })
}

/// (denied by both, methods, token, v1 answer, v2 answer) of a group of differing requests.
type ChangeKey = (bool, Vec<String>, String, String, String);

/// A migrated introspection rule names an authorizer the user has yet to map; the proof maps
/// it to a placeholder so the rule compiles (its requests then "ask the authorizer" on both
/// sides, which is all that can be decided offline).
fn provide_authorizer(options: &mut Map<String, Value>) {
    let ext = options.entry("extAuth").or_insert_with(|| json!({}));
    if let Some(ext) = ext.as_object_mut() {
        let providers = ext.entry("providers").or_insert_with(|| json!({}));
        if let Some(p) = providers.as_object_mut() {
            p.entry(INTROSPECTION_AUTHORIZER).or_insert_with(|| json!({"cluster": "apirule-migrate-proof"}));
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// Forwarded, with the headers set for the backend (sorted).
    Allowed(Vec<(String, String)>),
    Denied(u16),
    /// An introspection or ext_authz call decides.
    AsksAuthorizer,
    /// Needs keys the offline store has (cannot happen with a key set; kept visible if it does).
    Undecided,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Allowed(h) if h.is_empty() => f.write_str("200"),
            Outcome::Allowed(h) => {
                let set: Vec<String> = h.iter().map(|(n, v)| format!("{n}: {v}")).collect();
                write!(f, "200 (backend gets {})", set.join(", "))
            }
            Outcome::Denied(s) => write!(f, "{s}"),
            Outcome::AsksAuthorizer => f.write_str("asks the authorizer"),
            Outcome::Undecided => f.write_str("undecided"),
        }
    }
}

fn outcome(config: &Config, req: &Request, now: u64, keys: &OfflineKeys) -> Outcome {
    match offline::decide(&config.policy, req, now, keys) {
        Decision::PassThrough => Outcome::Allowed(Vec::new()),
        Decision::Allow { mut set_headers, .. } => {
            set_headers.sort();
            Outcome::Allowed(set_headers)
        }
        Decision::Deny { response, .. } => Outcome::Denied(response.status),
        Decision::NeedCall { .. } => Outcome::AsksAuthorizer,
        Decision::NeedKeys { .. } => Outcome::Undecided,
    }
}

/// Every jwt strategy config of the original (Oathkeeper and Istio shape).
fn jwt_configs(old: &Value) -> Vec<&Value> {
    old.pointer("/spec/rules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .flat_map(|r| r.get("accessStrategies").and_then(Value::as_array).into_iter().flatten())
        .filter(|s| s.get("handler").and_then(Value::as_str) == Some("jwt"))
        .filter_map(|s| s.get("config"))
        .collect()
}

fn allows_es256(old: &Value) -> bool {
    jwt_configs(old).iter().any(|c| {
        c.get("authentications").is_some()
            || c.get("allowed_algorithms").and_then(Value::as_array).is_some_and(|a| a.iter().any(|x| x == "ES256"))
    })
}

fn strings_at(configs: &[&Value], pointers: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for c in configs {
        for p in pointers {
            for v in c.pointer(p).and_then(Value::as_array).into_iter().flatten() {
                if let Some(s) = v.as_str().map(str::to_owned).filter(|s| !out.contains(s)) {
                    out.push(s);
                }
            }
        }
    }
    out
}

/// No token, a forged one, and for each trusted issuer: one with everything the rules ask,
/// one with the issuer only, an expired one; and one from an issuer no rule trusts.
fn token_variants(signer: &Signer, old: &Value, es256: bool) -> Vec<(String, Option<String>)> {
    let configs = jwt_configs(old);
    let mut issuers = strings_at(&configs, &["/trusted_issuers"]);
    for c in &configs {
        for a in c.get("authentications").and_then(Value::as_array).into_iter().flatten() {
            if let Some(i) = a.get("issuer").and_then(Value::as_str).filter(|i| !issuers.iter().any(|x| x == i)) {
                issuers.push(i.to_owned());
            }
        }
    }
    let mut scopes = strings_at(&configs, &["/required_scope"]);
    let mut audiences = strings_at(&configs, &["/target_audience"]);
    for c in &configs {
        let list = |key: &str| {
            strings_at(
                &c.get("authorizations").and_then(Value::as_array).into_iter().flatten().collect::<Vec<_>>(),
                &[key],
            )
        };
        scopes.extend(list("/requiredScopes"));
        audiences.extend(list("/audiences"));
    }
    let now = i64::try_from(offline::now_ms() / 1000).unwrap_or(i64::MAX);
    let claims = |iss: &str, full: bool, exp: i64| {
        let mut c = json!({"iss": iss, "sub": "apirule-migrate", "iat": now - 60, "exp": exp});
        if full {
            crate::set(&mut c, "scope", json!(scopes.join(" ")));
            crate::set(&mut c, "aud", json!(audiences));
        }
        c
    };
    let mut out: Vec<(String, Option<String>)> =
        vec![("no token".into(), None), ("not a JWT".into(), Some("not-a-jwt".into()))];
    if configs.is_empty() {
        return out;
    }
    for iss in &issuers {
        out.push((
            format!("valid, iss {iss}, the rules' scopes and audiences"),
            Some(signer.mint(Alg::Rs256, &claims(iss, true, now + 3600))),
        ));
        out.push((
            format!("valid, iss {iss}, no scope or audience"),
            Some(signer.mint(Alg::Rs256, &claims(iss, false, now + 3600))),
        ));
        out.push((format!("expired, iss {iss}"), Some(signer.mint(Alg::Rs256, &claims(iss, true, now - 3600)))));
        if es256 {
            out.push((format!("ES256, iss {iss}"), Some(signer.mint(Alg::Es256, &claims(iss, true, now + 3600)))));
        }
    }
    out.push((
        "signed, iss untrusted".into(),
        Some(signer.mint(Alg::Rs256, &claims("https://untrusted.invalid", true, now + 3600))),
    ));
    out
}

fn sample_paths(old: &Value, new: &Value) -> Vec<String> {
    let mut out: Vec<String> = vec!["/".into(), "/apirule-migrate-unmatched".into()];
    let rule_paths = |doc: &Value| -> Vec<String> {
        doc.pointer("/spec/rules")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|r| r.get("path").and_then(Value::as_str).map(str::to_owned))
            .collect()
    };
    let mut candidates = Vec::new();
    for p in rule_paths(old) {
        candidates.extend(paths::regex_samples(&p));
    }
    for p in rule_paths(new) {
        candidates.extend(paths::template_samples(&p));
    }
    for c in candidates {
        if !out.contains(&c) {
            out.push(c);
        }
    }
    out
}
