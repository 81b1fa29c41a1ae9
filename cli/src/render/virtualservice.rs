//! The VirtualService of one APIRule, as Kyma's api-gateway controller wrote it (its
//! `internal/processing/processors/{ory,istio,v2alpha1}` VirtualService processors), with one
//! change: routes that went to Oathkeeper (`ory-oathkeeper-proxy.kyma-system:4455`) go to the
//! service, because the filter in the gateway now does Oathkeeper's work.

use serde_json::{json, Map, Value};

use super::MANAGED_BY;

/// Kyma's default route timeout.
const DEFAULT_TIMEOUT_SECONDS: u64 = 180;

/// The response headers Kyma removes from v2 routes (and from v1 routes with a user CORS
/// policy), so only the gateway's CORS answer reaches browsers.
const CORS_RESPONSE_HEADERS: [&str; 6] = [
    "Access-Control-Allow-Origin",
    "Access-Control-Expose-Headers",
    "Access-Control-Allow-Headers",
    "Access-Control-Allow-Credentials",
    "Access-Control-Allow-Methods",
    "Access-Control-Max-Age",
];

/// Kyma's `{**}` and `{*}` in a v2 path's route regex (v2alpha1 VirtualService processor).
const ANY_SEGMENTS: &str = "([A-Za-z0-9-._~!$&'()*+,;=:@/]|%[0-9a-fA-F]{2})*";
const ONE_SEGMENT: &str = "([A-Za-z0-9-._~!$&'()*+,;=:@]|%[0-9a-fA-F]{2})+";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Flavour {
    /// v1alpha1/v1beta1 with Oathkeeper's handlers (Kyma's default `jwtHandler: ory`).
    Ory,
    /// v1beta1 written for Kyma's Istio JWT handler (a jwt config with `authentications`).
    IstioJwt,
    /// v2alpha1/v2.
    V2,
}

fn flavour(rule: &Value) -> Flavour {
    let version = rule.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    if version.ends_with("/v2") || version.ends_with("/v2alpha1") {
        return Flavour::V2;
    }
    let istio = version.ends_with("/v1beta1")
        && rules(rule)
            .any(|r| strategies(r).any(|s| handler(s) == "jwt" && s.pointer("/config/authentications").is_some()));
    if istio {
        Flavour::IstioJwt
    } else {
        Flavour::Ory
    }
}

fn rules(rule: &Value) -> impl Iterator<Item = &Value> {
    rule.pointer("/spec/rules").and_then(Value::as_array).into_iter().flatten()
}

fn strategies(r: &Value) -> impl Iterator<Item = &Value> {
    r.get("accessStrategies").and_then(Value::as_array).into_iter().flatten()
}

fn handler(s: &Value) -> &str {
    s.get("handler").and_then(Value::as_str).unwrap_or("")
}

/// The gateways the APIRules are bound to (`spec.gateway`, verbatim as Kyma used it), sorted.
pub fn gateways(apirules: &[Value]) -> Vec<String> {
    let mut out: Vec<String> =
        apirules.iter().filter_map(|r| r.pointer("/spec/gateway").and_then(Value::as_str).map(str::to_owned)).collect();
    out.sort();
    out.dedup();
    out
}

pub fn virtual_service(apirule: &Value, hosts: &[String]) -> Result<Value, String> {
    let name = apirule.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
    let namespace = apirule.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("default");
    let spec = apirule.get("spec").cloned().unwrap_or_else(|| json!({}));
    let flavour = flavour(apirule);
    let gateway = spec.get("gateway").and_then(Value::as_str).ok_or_else(|| {
        format!("APIRule {namespace}/{name}: spec.gateway is needed to bind its VirtualService (spec.externalGateway is not rendered)")
    })?;
    let forwarded_host = match hosts {
        [one] if one.starts_with("*.") => "%REQ(:AUTHORITY)%".to_owned(),
        [one, ..] => one.clone(),
        [] => return Err(format!("APIRule {namespace}/{name}: no host")),
    };
    let mut http = Vec::new();
    let mut seen_paths: Vec<&str> = Vec::new();
    for r in rules(apirule) {
        let path = r.get("path").and_then(Value::as_str).unwrap_or("");
        if flavour != Flavour::V2 {
            // Kyma's FilterDuplicatePaths: only the first rule of a path gets a route (the
            // filter still decides every rule's methods and handlers).
            if seen_paths.contains(&path) {
                continue;
            }
            seen_paths.push(path);
        }
        http.push(
            route(r, &spec, namespace, flavour, &forwarded_host)
                .map_err(|e| format!("APIRule {namespace}/{name}: {e}"))?,
        );
    }
    Ok(json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {MANAGED_BY.0: MANAGED_BY.1, "apirule-wasm.kyma-project.io/apirule": name},
        },
        "spec": {"hosts": hosts, "gateways": [gateway], "http": http},
    }))
}

fn route(r: &Value, spec: &Value, namespace: &str, flavour: Flavour, forwarded_host: &str) -> Result<Value, String> {
    let path = r.get("path").and_then(Value::as_str).unwrap_or("");
    let methods: Vec<&str> =
        r.get("methods").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
    let has = |h: &str| strategies(r).any(|s| handler(s) == h);
    let method_match = match flavour {
        Flavour::Ory => has("no_auth"),
        Flavour::IstioJwt => !has("allow"),
        Flavour::V2 => true,
    };
    let uri = match flavour {
        Flavour::Ory => json!({"regex": path}),
        Flavour::IstioJwt if path == "/*" => json!({"prefix": "/"}),
        Flavour::IstioJwt => json!({"regex": path}),
        Flavour::V2 if path == "/*" => json!({"prefix": "/"}),
        Flavour::V2 => {
            json!({"regex": format!("^{}$", path.replace("{**}", ANY_SEGMENTS).replace("{*}", ONE_SEGMENT))})
        }
    };
    let mut matcher = json!({"uri": uri});
    if method_match && !methods.is_empty() {
        crate::set(&mut matcher, "method", json!({"regex": format!("^({})$", methods.join("|"))}));
    }
    let service = r.get("service").filter(|s| s.get("name").is_some()).or_else(|| spec.get("service"));
    let service_name = service.and_then(|s| s.get("name")).and_then(Value::as_str).unwrap_or("");
    let service_namespace = service.and_then(|s| s.get("namespace")).and_then(Value::as_str).unwrap_or(namespace);
    let port = service.and_then(|s| s.get("port")).cloned().unwrap_or(Value::Null);
    let timeout =
        r.get("timeout").or_else(|| spec.get("timeout")).and_then(Value::as_u64).unwrap_or(DEFAULT_TIMEOUT_SECONDS);

    let mut set = Map::new();
    set.insert("x-forwarded-host".into(), json!(forwarded_host));
    if flavour == Flavour::V2 {
        for (k, v) in r.pointer("/request/headers").and_then(Value::as_object).into_iter().flatten() {
            set.insert(k.clone(), v.clone());
        }
        if let Some(Value::Object(cookies)) = r.pointer("/request/cookies") {
            let pairs: Vec<String> =
                cookies.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())).collect();
            set.insert("Cookie".into(), json!(pairs.join("; ")));
        }
    }
    let mut headers = json!({"request": {"set": set}});
    let cors = spec.get("corsPolicy");
    let mut out = json!({
        "match": [matcher],
        "route": [{"destination": {"host": format!("{service_name}.{service_namespace}.svc.cluster.local"),
                                   "port": {"number": port}}, "weight": 100}],
        "timeout": format!("{timeout}s"),
    });
    match (flavour, cors) {
        (Flavour::V2, c) => {
            crate::set(&mut headers, "response", json!({"remove": CORS_RESPONSE_HEADERS}));
            if let Some(policy) = c.map(cors_policy).transpose()?.flatten() {
                crate::set(&mut out, "corsPolicy", policy);
            }
        }
        (_, None) => {
            // v1beta1 without a CORS policy: Kyma's defaults.
            crate::set(
                &mut out,
                "corsPolicy",
                json!({
                    "allowOrigins": [{"regex": ".*"}],
                    "allowMethods": ["GET", "POST", "PUT", "DELETE", "PATCH"],
                    "allowHeaders": ["Authorization", "Content-Type", "*"],
                }),
            );
        }
        (_, Some(c)) => {
            crate::set(&mut headers, "response", json!({"remove": CORS_RESPONSE_HEADERS}));
            if let Some(policy) = cors_policy(c)? {
                crate::set(&mut out, "corsPolicy", policy);
            }
        }
    }
    crate::set(&mut out, "headers", headers);
    Ok(out)
}

/// An APIRule `corsPolicy` as the VirtualService's; none without `allowOrigins`, as Kyma's
/// builder does. v2's `maxAge` is seconds, v1beta1's a Go duration (`5m`), both written as
/// Istio's `<seconds>s`.
fn cors_policy(c: &Value) -> Result<Option<Value>, String> {
    let Some(origins) = c.get("allowOrigins").and_then(Value::as_array).filter(|o| !o.is_empty()) else {
        return Ok(None);
    };
    let mut out = json!({"allowOrigins": origins});
    for key in ["allowMethods", "allowHeaders", "exposeHeaders", "allowCredentials"] {
        if let Some(v) = c.get(key) {
            crate::set(&mut out, key, v.clone());
        }
    }
    let seconds = match c.get("maxAge") {
        None => None,
        Some(Value::Number(n)) => {
            Some(n.as_u64().ok_or_else(|| format!("spec.corsPolicy.maxAge: {n} is not whole seconds"))?)
        }
        Some(Value::String(d)) => {
            Some(go_duration_seconds(d).ok_or_else(|| format!("spec.corsPolicy.maxAge: {d:?} is not a duration"))?)
        }
        Some(other) => return Err(format!("spec.corsPolicy.maxAge: {other} is not a duration")),
    };
    if let Some(s) = seconds {
        crate::set(&mut out, "maxAge", json!(format!("{s}s")));
    }
    Ok(Some(out))
}

/// Whole seconds of a Go duration string (`300s`, `5m`, `1h30m`; sub-second parts are dropped, as
/// Kyma's conversion to seconds does).
fn go_duration_seconds(d: &str) -> Option<u64> {
    let mut total = 0f64;
    let mut rest = d;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).filter(|&i| i > 0)?;
        let (number, tail) = rest.split_at(digits);
        let number: f64 = number.parse().ok()?;
        let unit_len = tail.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale = match unit {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            "us" | "µs" => 0.000_001,
            "ns" => 0.000_000_001,
            _ => return None,
        };
        total += number * scale;
        rest = tail;
    }
    // Bounded: at most u64::MAX, and never negative (no sign is parsed).
    Some(total.min(u64::MAX as f64) as u64)
}
