//! `apirule explain`: which rule a request meets, what the filter answers, and why. The answer
//! is the filter's own decision code run natively, so it cannot drift from what Envoy does.

use std::rc::Rc;

use serde_json::{json, Value};

use apirule_wasm::config::Config;
use apirule_wasm::jwt::jwks::parse_jwks;
use apirule_wasm::policy::{Decision, Semantics};
use apirule_wasm::request::Request;

use crate::input::{Document, Kind};
use crate::offline::{self, OfflineKeys};

/// The request to explain, as the command line gives it.
pub struct Query {
    pub method: String,
    pub path: String,
    pub host: Option<String>,
    pub token: Option<String>,
    pub headers: Vec<(String, String)>,
    /// A JWKS document standing for every JWKS URL of the rules.
    pub jwks: Option<Vec<u8>>,
}

/// The explanation; `allowed` is `None` when the filter would need a call explain cannot make.
pub struct Explanation {
    pub allowed: Option<bool>,
    pub report: Value,
}

pub fn explain(config: &Config, docs: &[Document], q: &Query) -> Result<Explanation, String> {
    let host = match &q.host {
        Some(h) => h.clone(),
        None => only_host(config)?,
    };
    let mut req = Request::new(&q.method, &host, &q.path);
    if let Some(token) = &q.token {
        req = req.with_header("authorization", &format!("Bearer {token}"));
    }
    for (name, value) in &q.headers {
        req = req.with_header(&name.to_ascii_lowercase(), value);
    }
    let set = match &q.jwks {
        Some(body) => Some(Rc::new(parse_jwks(body).map_err(|e| format!("--jwks: not a usable key set: {e:?}"))?)),
        None => None,
    };
    let keys = OfflineKeys { set };
    let mut report = json!({
        "request": {"method": q.method, "host": host, "path": q.path, "token": q.token.is_some()},
    });
    if let Some(h) = config.policy.host_policy(&host) {
        let semantics = match h.semantics {
            Semantics::OathkeeperV1(_) => "Oathkeeper (Kyma v1 APIRule)",
            Semantics::Istio(_) => "Istio RequestAuthentication + AuthorizationPolicy",
        };
        crate::set(&mut report, "apirule", json!({"name": &*h.apirule, "host": h.host, "semantics": semantics}));
    }
    let decision = offline::decide(&config.policy, &req, offline::now_ms(), &keys);
    let allowed = match &decision {
        Decision::PassThrough => {
            crate::set(
                &mut report,
                "answer",
                json!({"status": "passed through",
                "why": "no APIRule governs this host: the filter leaves the request to the rest of the gateway"}),
            );
            Some(true)
        }
        Decision::Allow { rule, set_headers } => {
            crate::set(&mut report, "rule", rule_report(docs, &rule.apirule, rule.index));
            let set: Vec<Value> = set_headers.iter().map(|(n, v)| json!({"name": n, "value": v})).collect();
            crate::set(
                &mut report,
                "answer",
                json!({"status": "allowed", "why": "the rule's access strategy accepts the request",
                "headersSetForTheBackend": set}),
            );
            Some(true)
        }
        Decision::Deny { rule, reason, response } => {
            if let Some(rule) = rule {
                crate::set(&mut report, "rule", rule_report(docs, &rule.apirule, rule.index));
            }
            crate::set(
                &mut report,
                "answer",
                json!({
                    "status": response.status,
                    "why": reason,
                    "body": String::from_utf8_lossy(&response.body),
                    "headers": response.headers.iter().map(|(n, v)| format!("{n}: {v}")).collect::<Vec<_>>(),
                }),
            );
            Some(false)
        }
        Decision::NeedKeys { urls } => {
            crate::set(
                &mut report,
                "answer",
                json!({"status": "undecided",
                "why": format!("the token must be verified with the keys of {}: pass --jwks FILE with the key set \
                                that URL serves (e.g. `curl -s URL > jwks.json`)", urls.join(", "))}),
            );
            None
        }
        Decision::NeedCall { call } => {
            crate::set(
                &mut report,
                "answer",
                json!({"status": "undecided",
                "why": format!("the filter would ask {} ({:?}) and decide by its answer; explain makes no calls",
                               call.url, call.target)}),
            );
            None
        }
    };
    Ok(Explanation { allowed, report })
}

fn only_host(config: &Config) -> Result<String, String> {
    let hosts: Vec<&str> = config.policy.hosts().iter().map(|h| h.host.as_str()).collect();
    match hosts.as_slice() {
        [one] if !one.starts_with("*.") => Ok((*one).to_owned()),
        _ => Err(format!("the rules govern the hosts {}: name one with --host", hosts.join(", "))),
    }
}

/// The rule as the user wrote it, found by the APIRule and index the decision names.
fn rule_report(docs: &[Document], apirule: &str, index: usize) -> Value {
    let written = docs.iter().find_map(|d| match (&d.kind, d.apirule_name()) {
        (Kind::ApiRule(doc), Some(name)) if name == apirule => {
            doc.pointer(&format!("/spec/rules/{index}")).map(|r| (d.place(), r.clone()))
        }
        _ => None,
    });
    let mut out = json!({"apirule": apirule, "rule": format!("spec.rules[{index}]")});
    if let Some((place, rule)) = written {
        crate::set(&mut out, "in", json!(place));
        crate::set(&mut out, "written", rule);
    }
    out
}

/// The report as text, one labelled line per fact.
pub fn text(report: &Value) -> String {
    let mut out = String::new();
    let r = &report["request"];
    let token = if r["token"].as_bool() == Some(true) { "with a token" } else { "without a token" };
    out.push_str(&format!(
        "request  {} {}{} ({token})\n",
        str_of(&r["method"]),
        str_of(&r["host"]),
        str_of(&r["path"])
    ));
    if let Some(a) = report.get("apirule") {
        out.push_str(&format!(
            "apirule  {} for host {}, {}\n",
            str_of(&a["name"]),
            str_of(&a["host"]),
            str_of(&a["semantics"])
        ));
    }
    if let Some(rule) = report.get("rule") {
        let written = rule.get("written").map(summarize_rule).unwrap_or_default();
        out.push_str(&format!("rule     {} {written}\n", str_of(&rule["rule"])));
    } else if report.get("apirule").is_some() {
        out.push_str("rule     none matched\n");
    }
    let a = &report["answer"];
    out.push_str(&format!(
        "answer   {}\n",
        a["status"].as_u64().map_or_else(|| str_of(&a["status"]), |s| s.to_string())
    ));
    out.push_str(&format!("why      {}\n", str_of(&a["why"])));
    if let Some(Value::Array(headers)) = a.get("headers") {
        for h in headers {
            out.push_str(&format!("header   {}\n", str_of(h)));
        }
    }
    if let Some(body) = a.get("body").and_then(Value::as_str).filter(|b| !b.is_empty()) {
        out.push_str(&format!("body     {body}\n"));
    }
    if let Some(Value::Array(set)) = a.get("headersSetForTheBackend") {
        for h in set {
            out.push_str(&format!("sets     {}: {}\n", str_of(&h["name"]), str_of(&h["value"])));
        }
    }
    out
}

fn summarize_rule(rule: &Value) -> String {
    let path = str_of(&rule["path"]);
    let methods: Vec<String> = rule["methods"].as_array().map_or_else(Vec::new, |m| m.iter().map(str_of).collect());
    let handlers: Vec<String> = if let Some(list) = rule["accessStrategies"].as_array() {
        list.iter().map(|s| str_of(&s["handler"])).collect()
    } else if let Some(obj) = rule.as_object() {
        ["noAuth", "jwt", "extAuth"].iter().filter(|k| obj.contains_key(**k)).map(|k| (*k).to_owned()).collect()
    } else {
        Vec::new()
    };
    format!(
        "(path {path}, methods {}, {})",
        if methods.is_empty() { "any".into() } else { methods.join(",") },
        handlers.join("+")
    )
}

fn str_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}
