//! What the filter's dispatched calls (JWKS fetches, introspection) need at the gateway: for
//! each IdP host outside the mesh a `ServiceEntry` (so Istio builds `outbound|<port>||<host>`, the
//! cluster the filter calls by default) and, for https, a `DestinationRule` originating TLS (the
//! filter sends plain HTTP to that cluster); and one inert VirtualService that keeps those
//! clusters when istiod runs with `PILOT_FILTER_GATEWAY_CLUSTER_CONFIG=true`.
//!
//! Why the last one: with that flag a gateway gets only the clusters of services that the
//! VirtualServices bound to it route to (istio#48236 adds RequestAuthentication JWKS hosts,
//! and only when istiod does not fetch JWKS itself; a WasmPlugin's calls count for nothing).
//! Cluster filtering reads only `spec.gateways` and the route destinations, while route
//! building also needs a match the gateway can satisfy. So the anchor names each IdP as a
//! destination behind a match on port 1 (no gateway server listens there, so no route is
//! built), under a `.invalid` host no client sends, with a 100% fault abort as a last guard:
//! no client can reach an IdP through the gateway.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use apirule_wasm::config::Config;

use super::MANAGED_BY;

/// One IdP host the filter calls through Istio's default cluster name.
struct Target {
    /// Ports, each with whether the URL was https.
    ports: BTreeMap<u16, bool>,
}

pub fn egress(config: &Config, namespace: &str, gateways: &[String]) -> Vec<Value> {
    let endpoints = config
        .jwks
        .values()
        .map(|e| (e.url.as_str(), e.cluster.as_str()))
        .chain(config.introspection.values().map(|(e, _)| (e.url.as_str(), e.cluster.as_str())));
    let mut targets: BTreeMap<String, Target> = BTreeMap::new();
    for (url, cluster) in endpoints {
        // Only Istio's own names: a cluster the user named in jwks.clusters is theirs to provide.
        let Some((port, host)) = istio_cluster(cluster) else { continue };
        let t = targets.entry(host.to_owned()).or_insert_with(|| Target { ports: BTreeMap::new() });
        t.ports.insert(port, url.starts_with("https://"));
    }
    let mut out = Vec::new();
    for (host, t) in &targets {
        if in_mesh(host) {
            continue;
        }
        let name = format!("apirule-wasm-{}", host.replace('.', "-"));
        let ports: Vec<Value> =
            t.ports.keys().map(|p| json!({"number": p, "name": format!("http-{p}"), "protocol": "HTTP"})).collect();
        out.push(json!({
            "apiVersion": "networking.istio.io/v1",
            "kind": "ServiceEntry",
            "metadata": {"name": name, "namespace": namespace, "labels": {MANAGED_BY.0: MANAGED_BY.1}},
            // Visible to the gateway's namespace only: no sidecar elsewhere gets the IdP.
            "spec": {"hosts": [host], "location": "MESH_EXTERNAL", "resolution": "DNS", "ports": ports,
                     "exportTo": ["."]},
        }));
        let tls_ports: Vec<Value> = t
            .ports
            .iter()
            .filter(|(_, https)| **https)
            .map(|(p, _)| json!({"port": {"number": p}, "tls": {"mode": "SIMPLE", "sni": host}}))
            .collect();
        if !tls_ports.is_empty() {
            out.push(json!({
                "apiVersion": "networking.istio.io/v1",
                "kind": "DestinationRule",
                "metadata": {"name": name, "namespace": namespace, "labels": {MANAGED_BY.0: MANAGED_BY.1}},
                "spec": {"host": host, "trafficPolicy": {"portLevelSettings": tls_ports}, "exportTo": ["."]},
            }));
        }
    }
    if !targets.is_empty() && !gateways.is_empty() {
        let http: Vec<Value> = targets
            .iter()
            .flat_map(|(host, t)| t.ports.keys().map(move |p| (host, p)))
            .map(|(host, port)| {
                json!({
                    "name": format!("keep-{}-{port}", host.replace('.', "-")),
                    "match": [{"port": 1}],
                    "fault": {"abort": {"httpStatus": 404, "percentage": {"value": 100}}},
                    "route": [{"destination": {"host": host, "port": {"number": port}}}],
                })
            })
            .collect();
        out.push(json!({
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": {"name": "apirule-wasm-keep-idp-clusters", "namespace": namespace,
                         "labels": {MANAGED_BY.0: MANAGED_BY.1}},
            "spec": {"hosts": ["idp-clusters.apirule-wasm.invalid"], "gateways": gateways, "http": http},
        }));
    }
    out
}

/// `outbound|<port>||<host>` -> (port, host).
fn istio_cluster(cluster: &str) -> Option<(u16, &str)> {
    let rest = cluster.strip_prefix("outbound|")?;
    let (port, host) = rest.split_once("||")?;
    Some((port.parse().ok()?, host))
}

/// A Kubernetes service name: Istio has its cluster without a ServiceEntry.
fn in_mesh(host: &str) -> bool {
    host.ends_with(".svc.cluster.local") || host.ends_with(".svc")
}
