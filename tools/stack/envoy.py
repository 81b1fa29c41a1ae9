"""Renders a static Envoy bootstrap that runs apirule_wasm.wasm in front of one upstream cluster.

One function, used by `make run` and by every end-to-end test, so that what we test is what we run.
"""
import json

WASM_FILTER = "envoy.filters.http.wasm"


def _cluster(name, host, port):
    return {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {
                "socket_address": {"address": host, "port_value": port}}}}]}],
        },
    }


def render_bootstrap(*, listen_port, admin_port, wasm_path, plugin_config, upstream,
                     clusters=None, routes=None, vm_id="apirule"):
    """Return the bootstrap as a dict (dump it with json.dumps; Envoy reads JSON as YAML).

    upstream:  (host, port) of the default backend, cluster name "backend".
    clusters:  {name: (host, port)} for JWKS servers etc.; the plugin config's jwks.clusters refers
               to these names.
    routes:    optional [(prefix, cluster_name)] tried before the catch-all route to "backend"; lets
               several workloads sit behind one listener, as Istio's VirtualServices would.
    """
    all_clusters = [_cluster("backend", upstream[0], upstream[1])]
    for name, (host, port) in (clusters or {}).items():
        all_clusters.append(_cluster(name, host, port))
    route_list = []
    for prefix, cluster in routes or []:
        route_list.append({"match": {"prefix": prefix}, "route": {"cluster": cluster, "timeout": "30s"}})
    route_list.append({"match": {"prefix": "/"}, "route": {"cluster": "backend", "timeout": "30s"}})
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "ingress",
        # Istio's gateway default (pathNormalization BASE): RFC 3986 dot-segment removal.
        "normalize_path": True,
        "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": route_list}]},
        "http_filters": [
            {
                "name": WASM_FILTER,
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
                    "config": {
                        "name": "apirule",
                        "root_id": "apirule",
                        "fail_open": False,
                        "configuration": {
                            "@type": "type.googleapis.com/google.protobuf.StringValue",
                            "value": json.dumps(plugin_config),
                        },
                        "vm_config": {
                            "vm_id": vm_id,
                            "runtime": "envoy.wasm.runtime.v8",
                            "code": {"local": {"filename": str(wasm_path)}},
                        },
                    },
                },
            },
            {"name": "envoy.filters.http.router",
             "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}},
        ],
    }
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}},
        "static_resources": {
            "listeners": [{
                "name": "ingress",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": listen_port}},
                "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                                "typed_config": hcm}]}],
            }],
            "clusters": all_clusters,
        },
    }


def start_envoy(*, envoy_bin, bootstrap, workdir, name="envoy", concurrency=2, log_level="info",
                component_log_level="wasm:debug", timeout=60.0):
    """Write the bootstrap into workdir, start Envoy, wait until its admin /ready says LIVE.

    Raises procs.StartupError with Envoy's log tail when it exits or never becomes ready (for
    example when the filter refuses its configuration)."""
    import os
    from .procs import Proc
    path = os.path.join(str(workdir), f"{name}.json")
    with open(path, "w") as f:
        json.dump(bootstrap, f, indent=1)
    admin_port = bootstrap["admin"]["address"]["socket_address"]["port_value"]
    proc = Proc(name, [str(envoy_bin), "-c", path, "--concurrency", str(concurrency),
                       "--disable-hot-restart", "-l", log_level,
                       "--component-log-level", component_log_level],
                os.path.join(str(workdir), f"{name}.log"))
    try:
        proc.wait_http(f"http://127.0.0.1:{admin_port}/ready", timeout=timeout, ok=lambda s: s == 200)
    except Exception:
        proc.stop()
        raise
    return proc
