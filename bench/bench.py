#!/usr/bin/env python3
"""`make bench`: what apirule_wasm.wasm costs per request inside Envoy. Prints figures, asserts no timings.

One Envoy (`--concurrency 1`, pinned to the first CPU with taskset) with three listeners:

  filter    HCM + apirule wasm filter + router; every route answers with Envoy's direct_response
  plain     the same listener without the wasm filter (the baseline)
  upstream  a direct_response listener, used only by the reference row that forwards a request

`wrk` (pinned to the second CPU) drives one scenario at a time over loopback: a warm-up, a
saturating run (several connections: requests/s, latency percentiles, Envoy CPU per request) and a
one-connection run (latency of a single request with nothing queued in front of it). The JWKS
server is a small thread in this process; the filter fetches the key set once (first request) and
then serves it from its cache. Nothing is built here: `make bench` builds the .wasm and installs
Envoy first. Each scenario's status code is checked once before it is measured (a benchmark of the
wrong answer is worthless); timings are only printed.
"""
import argparse
import base64
import copy
import datetime
import http.client
import json
import os
import platform
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import jwt  # noqa: E402  (PyJWT)
from cryptography.hazmat.primitives.asymmetric import ec, rsa  # noqa: E402

from tools.stack.envoy import WASM_FILTER, render_bootstrap, start_envoy  # noqa: E402
from tools.stack.procs import StartupError, free_port  # noqa: E402

WASM = REPO / "target" / "wasm32-wasip1" / "release" / "apirule_wasm.wasm"
ENVOY = REPO / ".venv" / "bin" / "envoy"

HOST = "bench.example.com"           # governed by the benchmark's APIRule
OTHER_HOST = "other.example.org"     # governed by no APIRule: the filter passes it through
JWKS_URL = "http://jwks.bench.local/.well-known/jwks.json"
ISSUER = "https://issuer.bench.local"
RS_KID, ES_KID = "bench-rsa", "bench-ec"


# ---------------------------------------------------------------------------------------------
# Keys, tokens, JWKS server


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def make_keys():
    rs = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    es = ec.generate_private_key(ec.SECP256R1())
    rs_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rs.public_key()))
    es_jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(es.public_key()))
    for jwk, kid in ((rs_jwk, RS_KID), (es_jwk, ES_KID)):
        jwk.pop("key_ops", None)
        jwk.update({"kid": kid, "use": "sig"})
    return rs, es, {"keys": [rs_jwk, es_jwk]}


def mint(key, alg, kid):
    now = int(time.time())
    claims = {"iss": ISSUER, "sub": "bench-user", "iat": now - 10, "exp": now + 3600}
    return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid, "typ": "JWT"})


def tamper(token):
    """Same header and claims, one signature byte flipped."""
    head, payload, sig = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)))
    raw[len(raw) // 2] ^= 0x01
    return f"{head}.{payload}.{b64url(bytes(raw))}"


class JwksServer:
    """Serves one JWKS document on 127.0.0.1 from a daemon thread; counts the fetches."""

    def __init__(self, document):
        body = json.dumps(document).encode()
        owner = self
        self.hits = 0

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                owner.hits += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                       name="jwks", daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


# ---------------------------------------------------------------------------------------------
# Plugin configuration and Envoy bootstrap


def plugin_config():
    def jwt_rule(path, alg):
        return {"path": path, "methods": ["GET"], "accessStrategies": [{"handler": "jwt", "config": {
            "jwks_urls": [JWKS_URL], "trusted_issuers": [ISSUER], "allowed_algorithms": [alg]}}]}

    api_rule = {
        "apiVersion": "gateway.kyma-project.io/v1beta1", "kind": "APIRule",
        "metadata": {"name": "bench", "namespace": "default"},
        "spec": {
            "host": HOST,
            "service": {"name": "httpbin", "namespace": "default", "port": 8000},
            "gateway": "kyma-system/kyma-gateway",
            "rules": [
                {"path": "/public", "methods": ["GET"], "accessStrategies": [{"handler": "no_auth"}]},
                jwt_rule("/rs", "RS256"),
                jwt_rule("/es", "ES256"),
            ],
        },
    }
    # Long cache TTL: the key set is fetched once and never refreshed during the run.
    return {"apiRules": [api_rule],
            "jwks": {"clusters": {JWKS_URL: "jwks"}, "cacheTtlSeconds": 3600, "fetchTimeoutMs": 2000}}


def _direct(status=200, body="ok\n"):
    return {"status": status, "body": {"inline_string": body}}


ROUTER = {"name": "envoy.filters.http.router",
          "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}


def bootstrap(*, filter_port, plain_port, upstream_port, admin_port, jwks_port):
    """render_bootstrap's listener (with the filter), with its routes replaced by direct_response,
    plus a copy without the filter and a direct_response upstream listener."""
    boot = render_bootstrap(listen_port=filter_port, admin_port=admin_port, wasm_path=WASM,
                            plugin_config=plugin_config(), upstream=None,
                            clusters={"jwks": ("127.0.0.1", jwks_port),
                                      "upstream": ("127.0.0.1", upstream_port)})
    listeners = boot["static_resources"]["listeners"]
    ingress = listeners[0]
    hcm = ingress["filter_chains"][0]["filters"][0]["typed_config"]
    hcm["route_config"] = {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [
        # reference row only: a real proxy hop to the upstream listener
        {"match": {"prefix": "/proxied"}, "route": {"cluster": "upstream", "timeout": "30s"}},
        {"match": {"prefix": "/"}, "direct_response": _direct()},
    ]}]}

    plain = copy.deepcopy(ingress)
    plain["name"] = "plain"
    plain["address"]["socket_address"]["port_value"] = plain_port
    plain_hcm = plain["filter_chains"][0]["filters"][0]["typed_config"]
    plain_hcm["stat_prefix"] = "plain"
    plain_hcm["http_filters"] = [f for f in plain_hcm["http_filters"] if f["name"] != WASM_FILTER]

    upstream = copy.deepcopy(plain)
    upstream["name"] = "upstream"
    upstream["address"]["socket_address"]["port_value"] = upstream_port
    up_hcm = upstream["filter_chains"][0]["filters"][0]["typed_config"]
    up_hcm["stat_prefix"] = "upstream"
    up_hcm["http_filters"] = [ROUTER]
    up_hcm["route_config"] = {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [
        {"match": {"prefix": "/"}, "direct_response": _direct()}]}]}

    listeners.extend([plain, upstream])
    return boot


# ---------------------------------------------------------------------------------------------
# Measuring


WRK_LUA = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%.0f,"duration_us":%.0f,"connect":%.0f,"read":%.0f,"write":%.0f,' ..
    '"status_errors":%.0f,"timeout":%.0f,"p50":%.0f,"p90":%.0f,"p99":%.0f,"mean":%.1f,"max":%.0f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean, latency.max))
end
"""


class Scenario:
    def __init__(self, key, title, port_name, path, host, headers, expect):
        self.key, self.title, self.port_name = key, title, port_name
        self.path, self.host, self.headers, self.expect = path, host, headers, expect


def check(port, sc):
    """One request before measuring: the scenario must get the status it is named after."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", sc.path, headers={"Host": sc.host, **sc.headers})
        resp = conn.getresponse()
        body = resp.read()
    finally:
        conn.close()
    if resp.status != sc.expect:
        raise RuntimeError(f"scenario '{sc.title}': expected {sc.expect}, got {resp.status} {body[:200]!r}")


def cpu_seconds(pid):
    """CPU time of the whole process (sum over its threads' schedstat, nanosecond resolution)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total / 1e9


def core_busy_seconds(cpu):
    """Non-idle time of one CPU (all processes, interrupts included), from /proc/stat."""
    if cpu is None:
        return 0.0
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith(f"cpu{cpu} "):
                v = [int(x) for x in line.split()[1:]]
                return (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")
    return 0.0


def mem_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0])  # kB
    return out


def admin_json(admin_port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}{path}", timeout=5) as r:
        return json.loads(r.read())


def wrk(args, *, lua, port, sc, connections, seconds):
    argv = list(args.wrk_prefix) + [
        "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s", "-s", lua,
        "-H", f"Host: {sc.host}"]
    for k, v in sc.headers.items():
        argv += ["-H", f"{k}: {v}"]
    argv.append(f"http://127.0.0.1:{port}{sc.path}")
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    res = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30)
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next((ln for ln in res.stdout.splitlines() if ln.startswith("WRKJSON ")), None)
    if res.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({res.returncode}): {res.stdout}\n{res.stderr}")
    r = json.loads(line[len("WRKJSON "):])
    r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
    wrk_cpu = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
    r["wrk_pct"] = 100.0 * wrk_cpu / (r["duration_us"] / 1e6)
    r["socket_errors"] = r["connect"] + r["read"] + r["write"] + r["timeout"]
    # wrk counts responses with status > 399; they must all be denials, or none
    expected_errors = r["requests"] if sc.expect > 399 else 0
    r["wrong_status"] = abs(r["status_errors"] - expected_errors)
    return r


def measure(args, envoy_pid, lua, port, sc):
    wrk(args, lua=lua, port=port, sc=sc, connections=args.connections, seconds=args.warmup)
    cpu0, core0 = cpu_seconds(envoy_pid), core_busy_seconds(args.envoy_cpu)
    load = wrk(args, lua=lua, port=port, sc=sc, connections=args.connections, seconds=args.seconds)
    cpu1, core1 = cpu_seconds(envoy_pid), core_busy_seconds(args.envoy_cpu)
    wall = load["duration_us"] / 1e6
    load["cpu_pct"] = 100.0 * (cpu1 - cpu0) / wall
    # Time Envoy's CPU spent on anything but Envoy (other processes, interrupts): noise indicator.
    load["other_pct"] = max(0.0, 100.0 * ((core1 - core0) - (cpu1 - cpu0)) / wall)
    load["cpu_us_per_req"] = 1e6 * (cpu1 - cpu0) / max(load["requests"], 1)
    single = wrk(args, lua=lua, port=port, sc=sc, connections=1, seconds=args.single_seconds)
    return load, single


# ---------------------------------------------------------------------------------------------
# Output


def fmt_us(us):
    return f"{us / 1000:.2f} ms" if us >= 10000 else f"{us:.0f} µs"


def fmt_delta(us):
    return f"{'+' if us >= 0 else '-'}{fmt_us(abs(us))}"


def print_table(headers, rows):
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(headers, widths)))
    print(line)
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(r, widths))))


BASELINES = ("baseline", "baseline_end")


def report(args, scenarios, results):
    bases = [results[k] for k in BASELINES if k in results]
    base_cpu = sum(b[0]["cpu_us_per_req"] for b in bases) / len(bases)
    base_p50 = sum(b[1]["p50"] for b in bases) / len(bases)
    print(f"\nSaturating load: {args.connections} connections, {args.seconds} s per scenario. "
          f"CPU µs/req = Envoy's CPU time / requests; added = minus the mean of the baseline runs "
          f"(first and last; their difference is the drift).")
    rows = []
    for sc in scenarios:
        load = results[sc.key][0]
        added = load["cpu_us_per_req"] - base_cpu
        rows.append([sc.title, sc.expect, f"{load['rps']:,.0f}", fmt_us(load["p50"]), fmt_us(load["p99"]),
                     f"{load['cpu_pct']:.0f}%", f"{load['other_pct']:.0f}%", f"{load['wrk_pct']:.0f}%",
                     f"{load['cpu_us_per_req']:.1f}",
                     "-" if sc.key in BASELINES else f"{added:+.1f}"])
    print_table(["scenario", "status", "req/s", "p50", "p99", "envoy CPU", "other", "wrk CPU", "CPU µs/req",
                 "added µs/req"], rows)

    print(f"\nOne connection, one request at a time, {args.single_seconds} s per scenario "
          f"(latency of a lone request; added = p50 minus the baselines' mean p50)")
    rows = []
    for sc in scenarios:
        single = results[sc.key][1]
        rows.append([sc.title, f"{single['rps']:,.0f}", fmt_us(single["p50"]), fmt_us(single["p90"]),
                     fmt_us(single["p99"]),
                     "-" if sc.key in BASELINES else fmt_delta(single["p50"] - base_p50)])
    print_table(["scenario", "req/s", "p50", "p90", "p99", "added p50"], rows)

    for sc in scenarios:
        for r in results[sc.key]:
            if r["wrong_status"] or r["socket_errors"]:
                print(f"WARNING: {sc.title}: {r['wrong_status']} responses of an unexpected status class, "
                      f"{r['socket_errors']} socket errors/timeouts: its figures are suspect")
    noisy = [sc.title for sc in scenarios if results[sc.key][0]["other_pct"] > 10]
    if noisy:
        print(f"WARNING: other work used >10% of Envoy's CPU during: {'; '.join(noisy)} "
              f"(a busy machine; rerun when it is idle)")


# ---------------------------------------------------------------------------------------------
# Main


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=int, default=4, help="saturating run per scenario (default 4)")
    p.add_argument("--single-seconds", type=int, default=2, help="one-connection run per scenario (default 2)")
    p.add_argument("--warmup", type=int, default=1, help="warm-up per scenario, discarded (default 1)")
    p.add_argument("--connections", type=int, default=16, help="connections of the saturating run (default 16)")
    p.add_argument("--only", help="comma-separated scenario keys: passthrough, no_auth, rs256, no_token, bad_sig, es256, "
                   "proxied (the baselines always run)")
    p.add_argument("--keep", action="store_true", help="keep the work directory (bootstrap, Envoy log)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)

    missing = [str(p) for p in (WASM, ENVOY) if not p.exists()]
    if missing:
        sys.exit(f"bench: missing {', '.join(missing)} (run `make bench`, which builds them)")
    if shutil.which("wrk") is None:
        sys.exit("bench: wrk not found (Debian: apt-get install -y wrk)")

    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) >= 2 and shutil.which("taskset"):
        envoy_cpu, load_cpu = cpus[0], cpus[1]
        args.wrk_prefix = ["taskset", "-c", str(load_cpu)]
        os.sched_setaffinity(0, {load_cpu})  # this script and its JWKS thread stay off Envoy's core
        pin_note = f"Envoy on CPU {envoy_cpu}, wrk and this script on CPU {load_cpu}"
    else:
        envoy_cpu = None
        args.wrk_prefix = []
        pin_note = "NOT PINNED (fewer than 2 CPUs or no taskset): Envoy and wrk share CPUs; figures are rough"

    started = time.monotonic()
    rs_key, es_key, jwks_doc = make_keys()
    rs_token, es_token = mint(rs_key, "RS256", RS_KID), mint(es_key, "ES256", ES_KID)
    bearer = lambda t: {"Authorization": f"Bearer {t}"}  # noqa: E731
    scenarios = [
        Scenario("baseline", "baseline: Envoy, no filter", "plain", "/rs", HOST, {}, 200),
        Scenario("passthrough", "filter, host no APIRule governs", "filter", "/rs", OTHER_HOST, {}, 200),
        Scenario("no_auth", "filter, no_auth route", "filter", "/public", HOST, {}, 200),
        Scenario("rs256", "filter, jwt RS256 valid token", "filter", "/rs", HOST, bearer(rs_token), 200),
        Scenario("no_token", "filter, jwt no token (401)", "filter", "/rs", HOST, {}, 401),
        Scenario("bad_sig", "filter, jwt RS256 bad signature (401)", "filter", "/rs", HOST,
                 bearer(tamper(rs_token)), 401),
        Scenario("es256", "filter, jwt ES256 valid token", "filter", "/es", HOST, bearer(es_token), 200),
        Scenario("proxied", "(ref) no filter, proxied to an upstream listener", "plain", "/proxied", HOST, {}, 200),
        Scenario("baseline_end", "baseline again (drift check)", "plain", "/rs", HOST, {}, 200),
    ]
    if args.only:
        keep = {*BASELINES, *args.only.split(",")}
        scenarios = [s for s in scenarios if s.key in keep]
    args.envoy_cpu = envoy_cpu

    workdir = tempfile.mkdtemp(prefix="apirule-bench-")
    jwks = None
    envoy = None
    try:
        jwks = JwksServer(jwks_doc)
        ports = {"filter": free_port(), "plain": free_port(), "upstream": free_port(), "admin": free_port()}
        boot = bootstrap(filter_port=ports["filter"], plain_port=ports["plain"], upstream_port=ports["upstream"],
                         admin_port=ports["admin"], jwks_port=jwks.port)
        envoy_bin = ENVOY
        if envoy_cpu is not None:
            # start_envoy runs one binary; this wrapper execs Envoy under taskset (same pid).
            envoy_bin = Path(workdir) / "envoy-pinned"
            envoy_bin.write_text(f"#!/bin/sh\nexec taskset -c {envoy_cpu} {shlex.quote(str(ENVOY))} \"$@\"\n")
            envoy_bin.chmod(0o755)
        envoy = start_envoy(envoy_bin=envoy_bin, bootstrap=boot, workdir=workdir, name="envoy-bench",
                            concurrency=1, log_level="warning", component_log_level="wasm:warning")
        affinity = sorted(os.sched_getaffinity(envoy.pid))
        lua = Path(workdir) / "report.lua"
        lua.write_text(WRK_LUA)

        for sc in scenarios:  # also triggers the one JWKS fetch
            check(ports[sc.port_name], sc)
        mem_before, heap_before = mem_status(envoy.pid), admin_json(ports["admin"], "/memory")

        print(f"apirule-wasm bench, {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}, "
              f"{platform.machine()}, {os.cpu_count()} CPUs ({platform.processor() or platform.platform()})")
        print(f"{pin_note}; Envoy --concurrency 1, affinity {affinity}; "
              f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print(f"wasm: {WASM.relative_to(REPO)} {WASM.stat().st_size:,} bytes ({WASM.stat().st_size / 1024:.0f} KiB)")
        sys.stdout.flush()

        results = {}
        for sc in scenarios:
            print(f"  measuring: {sc.title} ...", flush=True)
            results[sc.key] = measure(args, envoy.pid, str(lua), ports[sc.port_name], sc)

        mem_after, heap_after = mem_status(envoy.pid), admin_json(ports["admin"], "/memory")
        stats = admin_json(ports["admin"], "/stats?format=json&filter=apirule")
        counters = {s["name"].split(".")[-1]: s.get("value") for s in stats.get("stats", [])
                    if "apirule_" in s.get("name", "")}

        report(args, scenarios, results)
        mib = lambda b: f"{int(b) / 1048576:.1f} MiB"  # noqa: E731
        print(f"\nEnvoy memory: RSS {mem_before['VmRSS'] / 1024:.1f} MiB before load, "
              f"{mem_after['VmRSS'] / 1024:.1f} MiB after (peak {mem_after['VmHWM'] / 1024:.1f} MiB); "
              f"heap allocated {mib(heap_before['allocated'])} -> {mib(heap_after['allocated'])}, "
              f"heap size {mib(heap_before['heap_size'])} -> {mib(heap_after['heap_size'])}")
        print(f"JWKS fetches: {jwks.hits} served by the JWKS server; filter counters: "
              + ", ".join(f"{k}={v}" for k, v in sorted(counters.items())))
        print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
              f"total time {time.monotonic() - started:.0f} s")
    except StartupError as e:
        sys.exit(f"bench: Envoy did not start: {e}")
    except (RuntimeError, subprocess.SubprocessError) as e:
        tail = envoy.log_tail() if envoy is not None else ""
        sys.exit(f"bench: {e}\nEnvoy log tail:\n{tail}")
    except KeyboardInterrupt:
        sys.exit("bench: interrupted")
    finally:
        if envoy is not None:
            envoy.stop()
        if jwks is not None:
            jwks.close()
        if args.keep:
            print(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
