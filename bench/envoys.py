"""Envoy bootstraps for `make bench`: listeners whose routes answer with direct_response.

The apirule filter's own configuration (the wasm HTTP filter entry) comes from
tools/stack/envoy.py `render_bootstrap`, the function `make run` and the e2e tests use, so the
bench measures the filter as it is deployed. Everything else here is bench-only: listeners with
other filter chains in front of the same direct_response routes, and a pinned Envoy.
"""
import copy
import shlex
import time
from pathlib import Path

from tools.stack.envoy import WASM_FILTER, render_bootstrap, start_envoy

ROUTER = {"name": "envoy.filters.http.router",
          "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}
HCM_TYPE = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"


def direct(status=200, body="ok\n"):
    return {"status": status, "body": {"inline_string": body}}


def direct_routes(extra=()):
    """Every path answers 200 `ok` from the router itself (no upstream); `extra` routes first."""
    return {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [
        *extra, {"match": {"prefix": "/"}, "direct_response": direct()}]}]}


def wasm_filter(*, wasm_path, plugin_config, vm_id, root_id="apirule"):
    """The wasm HTTP filter entry exactly as render_bootstrap writes it."""
    boot = render_bootstrap(listen_port=1, admin_port=2, wasm_path=wasm_path, plugin_config=plugin_config,
                            upstream=None, vm_id=vm_id)
    hcm = boot["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    entry = copy.deepcopy(next(f for f in hcm["http_filters"] if f["name"] == WASM_FILTER))
    entry["typed_config"]["config"]["root_id"] = root_id
    entry["typed_config"]["config"]["name"] = vm_id
    return entry


def listener(name, port, http_filters, route_config=None):
    """A loopback listener: HTTP connection manager (normalize_path, as Istio's gateway) with
    http_filters then the router."""
    hcm = {"@type": HCM_TYPE, "stat_prefix": name, "normalize_path": True,
           "route_config": route_config or direct_routes(), "http_filters": [*http_filters, ROUTER]}
    return {"name": name,
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
            "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                            "typed_config": hcm}]}]}


def cluster(name, port):
    return {"name": name, "type": "STATIC", "connect_timeout": "1s",
            "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}]}}


def bootstrap(*, admin_port, listeners, clusters):
    return {"admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}},
            "static_resources": {"listeners": listeners,
                                 "clusters": [cluster(n, p) for n, p in clusters.items()]}}


def start_pinned(*, envoy, boot, workdir, name, cpu, concurrency=1, timeout=60.0):
    """start_envoy (waits for admin /ready), under `taskset -c cpu` when cpu is not None: a
    two-line wrapper execs Envoy, so the pid is Envoy's. Returns (proc, seconds until ready)."""
    envoy_bin = Path(envoy)
    if cpu is not None:
        envoy_bin = Path(workdir) / "envoy-pinned"
        if not envoy_bin.exists():
            envoy_bin.write_text(f"#!/bin/sh\nexec taskset -c {cpu} {shlex.quote(str(envoy))} \"$@\"\n")
            envoy_bin.chmod(0o755)
    t0 = time.monotonic()
    proc = start_envoy(envoy_bin=envoy_bin, bootstrap=boot, workdir=workdir, name=name,
                       concurrency=concurrency, log_level="warning", component_log_level="wasm:warning",
                       timeout=timeout)
    return proc, time.monotonic() - t0
