"""Renders a static Envoy bootstrap that runs apirule_wasm.wasm in front of one upstream cluster.

One function, used by `make run` and by every end-to-end test, so that what we test is what we run.
"""
import ipaddress
import json

WASM_FILTER = "envoy.filters.http.wasm"
ROUTER = {"name": "envoy.filters.http.router",
          "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}


def _cluster(name, host, port):
    try:
        ipaddress.ip_address(host)
        kind = {"type": "STATIC"}
    except ValueError:  # a DNS name (docker-compose service names): resolve it, IPv4 only
        kind = {"type": "STRICT_DNS", "dns_lookup_family": "V4_ONLY"}
    return {
        "name": name,
        **kind,
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {
                "socket_address": {"address": host, "port_value": port}}}}]}],
        },
    }


def render_bootstrap(*, listen_port, admin_port, wasm_path, plugin_config, upstream,
                     clusters=None, routes=None, vm_id="apirule", virtual_hosts=None,
                     listen_address="127.0.0.1", strip_host_port=False, http_filters=None,
                     route_config=None, live_config_path=None):
    """Return the bootstrap as a dict (dump it with json.dumps; Envoy reads JSON as YAML).

    upstream:  (host, port) of the default backend, cluster name "backend"; None for no default
               backend (a request for a host no virtual host names then gets Envoy's 404, as at an
               Istio gateway without a VirtualService for that host).
    clusters:  {name: (host, port)} for JWKS servers etc.; the plugin config's jwks.clusters refers
               to these names. host is an IP (STATIC) or a DNS name (STRICT_DNS, e.g. a
               docker-compose service).
    routes:    optional [(prefix, cluster_name)] tried before the catch-all route to "backend"; lets
               several workloads sit behind one listener, as Istio's VirtualServices would.
    virtual_hosts: optional [(domains, cluster_name)]: host-based routing, one Envoy virtual host
               per entry sending every path to cluster_name (Istio's VirtualService per APIRule
               host); tried before the "*" virtual host that holds routes and the default backend.
    listen_address: address of the listener and the admin interface ("0.0.0.0" in a container).
    strip_host_port: remove any ":port" from Host/:authority before routing and before the filter
               sees it (HCM strip_any_host_port), so a client of a gateway on a non-default port
               presents the same Host as a client of the real gateway on 443.
    http_filters: HTTP filters to run before the router instead of the wasm filter (then
               wasm_path and plugin_config must be None): the same listener, connection manager
               settings and clusters with another filter chain, for comparing against Envoy's
               own filters.
    route_config: an Envoy RouteConfiguration used as it is, instead of the one built from
               routes, virtual_hosts and upstream ("backend" is still defined when upstream is
               given, for its routes to name).
    live_config_path: the wasm filter's configuration is not in the bootstrap but in this file,
               read by Envoy's filesystem extension config discovery (ECDS, the way istiod
               delivers a WasmPlugin) and applied again whenever the file is replaced, without
               draining a connection. Write it with write_live_config before Envoy starts and
               for every change (wasm_path and plugin_config are then unused here).
    """
    if http_filters is not None and (wasm_path is not None or plugin_config is not None):
        raise ValueError("http_filters replaces the wasm filter: pass wasm_path=None, plugin_config=None")
    all_clusters = []
    if upstream is not None:
        all_clusters.append(_cluster("backend", upstream[0], upstream[1]))
    for name, (host, port) in (clusters or {}).items():
        all_clusters.append(_cluster(name, host, port))
    route_list = []
    for prefix, cluster in routes or []:
        route_list.append({"match": {"prefix": prefix}, "route": {"cluster": cluster, "timeout": "30s"}})
    if upstream is not None:
        route_list.append({"match": {"prefix": "/"}, "route": {"cluster": "backend", "timeout": "30s"}})
    vhosts = []
    for domains, cluster in virtual_hosts or []:
        vhosts.append({"name": domains[0], "domains": list(domains),
                       "routes": [{"match": {"prefix": "/"}, "route": {"cluster": cluster, "timeout": "30s"}}]})
    if route_list:
        vhosts.append({"name": "all", "domains": ["*"], "routes": route_list})
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "ingress",
        # Istio's gateway default (pathNormalization BASE): RFC 3986 dot-segment removal.
        "normalize_path": True,
        "route_config": route_config if route_config is not None else {"virtual_hosts": vhosts},
        "http_filters": list(http_filters) + [ROUTER] if http_filters is not None else [
            _live_wasm_filter(live_config_path) if live_config_path is not None else
            {"name": WASM_FILTER, "typed_config": wasm_filter_config(wasm_path, plugin_config, vm_id)},
            ROUTER,
        ],
    }
    if strip_host_port:
        hcm["strip_any_host_port"] = True
    node = {"node": {"id": "apirule", "cluster": "apirule"}} if live_config_path is not None else {}
    return {
        **node,
        "admin": {"address": {"socket_address": {"address": listen_address, "port_value": admin_port}}},
        "static_resources": {
            "listeners": [{
                "name": "ingress",
                "address": {"socket_address": {"address": listen_address, "port_value": listen_port}},
                "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                                "typed_config": hcm}]}],
            }],
            "clusters": all_clusters,
        },
    }


def wasm_filter_config(wasm_path, plugin_config, vm_id="apirule"):
    """The wasm HTTP filter's typed_config: the filter from wasm_path, fail closed, plugin_config
    as its JSON configuration."""
    return {
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
    }


LIVE_FILTER_NAME = "apirule"  # the ECDS resource, and the stat prefix extension_config_discovery.http_filter.<it>.


def _live_wasm_filter(path):
    import os
    return {"name": LIVE_FILTER_NAME, "config_discovery": {
        "config_source": {"path_config_source": {"path": str(path),
                                                 "watched_directory": {"path": os.path.dirname(str(path))}},
                          "resource_api_version": "V3"},
        "type_urls": ["type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"]}}


def write_live_config(path, *, wasm_path, plugin_config, version, vm_id="apirule"):
    """Writes the ECDS file of render_bootstrap(live_config_path=path): one DiscoveryResponse with
    the wasm filter's configuration. Written beside it and renamed over it, so Envoy, which
    watches the directory for moves, reads one whole version, never a half-written file."""
    import os
    doc = {"version_info": str(version), "resources": [{
        "@type": "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig",
        "name": LIVE_FILTER_NAME,
        "typed_config": wasm_filter_config(wasm_path, plugin_config, vm_id)}]}
    tmp = os.path.join(os.path.dirname(str(path)), f".{os.path.basename(str(path))}.{version}.tmp")
    with open(tmp, "w") as f:
        json.dump(doc, f)
    os.replace(tmp, str(path))


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
