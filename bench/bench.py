#!/usr/bin/env python3
"""`make bench`: what apirule_wasm.wasm costs per request inside Envoy, beside Envoy's own JWT
filters and an empty wasm filter. Prints figures, asserts no timings.

One Envoy (`--concurrency 1`, pinned to the first CPU with taskset), one listener per filter
chain, every route answered by Envoy's direct_response (see bench/README.md for why):

  plain         no auth filter: the limit
  native        jwt_authn + rbac as Istio generates them for an APIRule v2 (bench/native.py)
  native_cache  the same with jwt_authn's cache of verified tokens (jwt_cache_size 100)
  empty         the empty proxy-wasm filter (bench/empty-filter): the wasm floor
  wasm          apirule-wasm with one v1beta1 APIRule (jwt RS256 / ES256, no_auth)

`wrk` (pinned to the second CPU) runs one scenario at a time over loopback; several rounds each
run every scenario once (interleaved, so drift hits all of them alike) and the report gives the
median per scenario with the min-max spread. Cold-path scenarios send a different token on every
request (bench/tokens.py, measure.CYCLE_LUA). Then the scale section (bench/scale.py) loads
1, 1,000 and 10,000 APIRules into fresh Envoys. Nothing is built here: `make bench` builds both
.wasm files and installs Envoy first. Each scenario's status code is checked once before it is
measured (a benchmark of the wrong answer is worthless); timings are only printed.
"""
import argparse
import datetime
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import envoys  # noqa: E402
import measure  # noqa: E402
import native  # noqa: E402
import scale  # noqa: E402
import tokens  # noqa: E402
from report import fmt_delta, fmt_us, median, print_table  # noqa: E402
from tools.stack.procs import StartupError, free_port  # noqa: E402

WASM = REPO / "target" / "wasm32-wasip1" / "release" / "apirule_wasm.wasm"
EMPTY_WASM = REPO / "target" / "empty-filter" / "wasm32-wasip1" / "release" / "empty_filter.wasm"
ENVOY = REPO / ".venv" / "bin" / "envoy"

HOST = "bench.example.com"           # governed by the benchmark's APIRule
OTHER_HOST = "other.example.org"     # governed by no APIRule: the filter passes it through
JWKS_URL = "http://jwks.bench.local/.well-known/jwks.json"
ISSUER = tokens.ISSUER


def plugin_config():
    """The APIRule of the main table: /public no_auth, /rs and /es jwt (trusted_issuers, one
    algorithm each). Long JWKS cache TTL: the key set is fetched once and never refreshed."""
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
    return {"apiRules": [api_rule],
            "jwks": {"clusters": {JWKS_URL: "jwks"}, "cacheTtlSeconds": 3600, "fetchTimeoutMs": 2000}}


def bootstrap(ports, jwks_port):
    def native_chain(cache):
        return [native.jwt_authn_filter(issuer=ISSUER, jwks_url=JWKS_URL, jwks_cluster="jwks", jwt_cache_size=cache),
                native.rbac_filter(issuer=ISSUER, jwt_paths=["/rs", "/es"], public_paths=["/public"])]

    # reference row only: a real proxy hop to the upstream listener
    proxied = [{"match": {"prefix": "/proxied"}, "route": {"cluster": "upstream", "timeout": "30s"}}]
    listeners = [
        envoys.listener("plain", ports["plain"], [], envoys.direct_routes(proxied)),
        envoys.listener("native", ports["native"], native_chain(None)),
        envoys.listener("native_cache", ports["native_cache"], native_chain(100)),
        envoys.listener("empty", ports["empty"], [envoys.wasm_filter(
            wasm_path=EMPTY_WASM, plugin_config={}, vm_id="empty")]),
        envoys.listener("wasm", ports["wasm"], [envoys.wasm_filter(
            wasm_path=WASM, plugin_config=plugin_config(), vm_id="apirule")]),
        envoys.listener("upstream", ports["upstream"], []),
    ]
    return envoys.bootstrap(admin_port=ports["admin"], listeners=listeners,
                            clusters={"jwks": jwks_port, "upstream": ports["upstream"]})


class Scenario:
    """token: None (no Authorization header), a token string (the same on every request) or the
    name of a token file (a different token on every request)."""

    def __init__(self, key, num, title, listener, path, token, expect, host=HOST):
        self.key, self.num, self.title, self.listener = key, num, title, listener
        self.path, self.token, self.expect, self.host = path, token, expect, host

    @property
    def cold(self):
        return self.token in TOKEN_FILES


TOKEN_FILES = ("rs_valid", "rs_forged", "es_valid")


def scenarios(rs, es):
    """The rows; num is the row's number in the comparison (1 is the limit, 2 the native cost every
    `x (2)` figure is relative to). The filter-less and native rows carry the same RS256 token as
    the same-token wasm row, so header size is not a difference between them."""
    S = Scenario
    return [
        S("baseline", "1", "Envoy, no auth filter (the limit)", "plain", "/rs", rs, 200),
        S("native_rs", "2", "native jwt_authn+rbac, RS256, no cache", "native", "/rs", rs, 200),
        S("native_rs_cache", "3", "native jwt_authn+rbac, RS256, jwt_cache_size 100", "native_cache", "/rs", rs, 200),
        S("empty", "4", "empty proxy-wasm filter (wasm floor)", "empty", "/rs", rs, 200),
        S("wasm_rs", "5", "apirule-wasm, RS256, same token", "wasm", "/rs", rs, 200),
        S("wasm_rs_cold", "6", "apirule-wasm, RS256, new token each request", "wasm", "/rs", "rs_valid", 200),
        S("wasm_rs_forged", "7", "apirule-wasm, RS256, new forged token each (401)", "wasm", "/rs", "rs_forged", 401),
        S("wasm_es_cold", "8", "apirule-wasm, ES256, new token each request", "wasm", "/es", "es_valid", 200),
        S("native_es_cold", "8n", "native jwt_authn+rbac, ES256, new token each, no cache", "native", "/es",
          "es_valid", 200),
        S("native_rs_cold", "", "native, RS256, new token each, no cache", "native", "/rs", "rs_valid", 200),
        S("native_rs_forged", "", "native, RS256, new forged token each (401)", "native", "/rs", "rs_forged", 401),
        S("passthrough", "", "apirule-wasm, host no APIRule governs", "wasm", "/rs", None, 200, OTHER_HOST),
        S("no_auth", "", "apirule-wasm, no_auth route", "wasm", "/public", None, 200),
        S("no_token", "", "apirule-wasm, jwt route, no token (401)", "wasm", "/rs", None, 401),
        S("proxied", "", "(ref) no filter, proxied to an upstream listener", "plain", "/proxied", None, 200),
    ]


# ---------------------------------------------------------------------------------------------
# Running


class Runner:
    """Runs scenarios against the one Envoy; remembers where each token file's walk stopped."""

    def __init__(self, args, envoy_pid, ports, token_paths, token_lists):
        self.args, self.envoy_pid, self.ports = args, envoy_pid, ports
        self.token_paths, self.token_lists = token_paths, token_lists
        # Each cold scenario walks its token file from its own offset (token 0 is the status check's),
        # continuing across warm-up, rounds and runs; `sent` is how far it got.
        self.offsets, self.sent = {}, {}

    def check(self, sc):
        token = self.token_lists[sc.token][0] if sc.cold else sc.token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        status, body = measure.request_once(self.ports[sc.listener], sc.path, sc.host, headers)
        if status != sc.expect:
            raise RuntimeError(f"scenario '{sc.title}': expected {sc.expect}, got {status} {body[:200]!r}")

    def _kw(self, sc, connections, seconds):
        a = self.args
        kw = dict(prefix=a.wrk_prefix, port=self.ports[sc.listener], path=sc.path, host=sc.host,
                  connections=connections, seconds=seconds, expect=sc.expect)
        if sc.cold:
            kw.update(script=a.scripts["cycle"], headers={},
                      script_args=(self.token_paths[sc.token], self.offsets.setdefault(sc.key, 1)))
        else:
            kw.update(script=a.scripts["report"],
                      headers={"Authorization": f"Bearer {sc.token}"} if sc.token else {})
        return kw

    def _advance(self, sc, r, connections):
        if sc.cold:  # requests answered, plus those still in flight when wrk stopped
            self.offsets[sc.key] += r["requests"] + connections
            self.sent[sc.key] = self.offsets[sc.key]

    def run(self, sc):
        a = self.args
        warm = measure.wrk(**self._kw(sc, a.connections, a.warmup))
        self._advance(sc, warm, a.connections)
        load = measure.saturate(envoy_pid=self.envoy_pid, envoy_cpu=a.envoy_cpu,
                                **self._kw(sc, a.connections, a.seconds))
        self._advance(sc, load, a.connections)
        single = None
        if a.single_seconds:
            single = measure.wrk(**self._kw(sc, 1, a.single_seconds))
            self._advance(sc, single, 1)
        return load, single


# ---------------------------------------------------------------------------------------------
# Output


def summarise(scs, results):
    """Per scenario: medians over rounds; added = the same round's CPU minus that round's baseline."""
    base = [r[0]["cpu_us_per_req"] for r in results["baseline"]]
    base_p50 = [r[1]["p50"] for r in results["baseline"] if r[1]]
    out = {}
    for sc in scs:
        loads = [r[0] for r in results[sc.key]]
        singles = [r[1] for r in results[sc.key] if r[1]]
        cpu = [x["cpu_us_per_req"] for x in loads]
        added = [c - b for c, b in zip(cpu, base)]
        out[sc.key] = {
            "rps": median([x["rps"] for x in loads]), "p50": median([x["p50"] for x in loads]),
            "p99": median([x["p99"] for x in loads]), "cpu": median(cpu), "cpu_min": min(cpu), "cpu_max": max(cpu),
            "wall": median([x["wall_us_per_req"] for x in loads]), "added": median(added),
            "other": max(x["other_pct"] for x in loads), "envoy_cpu": median([x["cpu_pct"] for x in loads]),
            "wrk_cpu": median([x["wrk_pct"] for x in loads]),
            "single_p50": median([x["p50"] for x in singles]) if singles else None,
            "single_p99": median([x["p99"] for x in singles]) if singles else None,
            "single_added": (median([x["p50"] for x in singles]) - median(base_p50)) if singles and base_p50 else None,
        }
    return out


def report(args, scs, results, runner):
    s = summarise(scs, results)
    ref = s.get("native_rs", {}).get("added")
    print(f"\nSaturating load: {args.connections} connections, {args.seconds} s per scenario, median of "
          f"{args.rounds} round(s) [min-max of CPU µs/req]. CPU µs/req = Envoy's utime+stime (/proc/PID/stat) "
          f"/ requests; 1e6/req_s is the same figure when the core is saturated; added = minus row 1 "
          f"(same round); x (2) = added / row 2's added.")
    rows = []
    for sc in scs:
        m = s[sc.key]
        ratio = "-" if sc.key == "baseline" or not ref or ref <= 0 else f"{m['added'] / ref:.2f}"
        rows.append([sc.num, sc.title, sc.expect, f"{m['rps']:,.0f}", fmt_us(m["p50"]), fmt_us(m["p99"]),
                     f"{m['cpu']:.1f} [{m['cpu_min']:.0f}-{m['cpu_max']:.0f}]", f"{m['wall']:.1f}",
                     "-" if sc.key == "baseline" else f"{m['added']:+.1f}", ratio,
                     f"{m['envoy_cpu']:.0f}%", f"{m['other']:.0f}%", f"{m['wrk_cpu']:.0f}%"])
    print_table(["#", "scenario", "status", "req/s", "p50", "p99", "CPU µs/req", "1e6/req_s", "added µs/req",
                 "x (2)", "envoy", "other", "wrk"], rows)
    print("  envoy = Envoy's CPU share of its core; other = the largest share any round saw used on that "
          "core by anything else; wrk = the load generator's CPU share of its core.")

    if args.single_seconds:
        print(f"\nOne connection, one request at a time, {args.single_seconds} s per scenario (median p50 over "
              f"rounds; added = minus row 1's)")
        rows = [[sc.num, sc.title, fmt_us(s[sc.key]["single_p50"]), fmt_us(s[sc.key]["single_p99"]),
                 "-" if sc.key == "baseline" else fmt_delta(s[sc.key]["single_added"])] for sc in scs]
        print_table(["#", "scenario", "p50", "p99", "added p50"], rows)

    disagree = []
    for sc in scs:
        for i, (load, single) in enumerate(results[sc.key]):
            for r in (load, single):
                if r and (r["wrong_status"] or r["socket_errors"]):
                    print(f"WARNING: {sc.title} (round {i + 1}): {r['wrong_status']} responses of an unexpected "
                          f"status class, {r['socket_errors']} socket errors/timeouts: its figures are suspect")
            why = measure.cross_check(load)
            if why:
                disagree.append((sc, i, why, load))
    if disagree:
        runs = sum(len(results[sc.key]) for sc in scs)
        if len(disagree) > len(scs):  # most runs: one line, not one per run
            envoy_share = median([x[3]["cpu_pct"] for x in disagree])
            other_share = median([x[3]["other_pct"] for x in disagree])
            print(f"WARNING: in {len(disagree)} of {runs} runs CPU µs/req (/proc) and 1e6/req_s disagree by >20%: "
                  f"Envoy had a median {envoy_share:.0f}% of its core, other work {other_share:.0f}%. Envoy was "
                  f"not saturated on its own: req/s and latency reflect the shared core; CPU µs/req is the figure to compare.")
        else:
            for sc, i, why, _ in disagree:
                print(f"WARNING: {sc.title} (round {i + 1}): {why}")
    noisy = [sc.title for sc in scs if s[sc.key]["other"] > 10]
    if noisy:
        print(f"WARNING: other work used >10% of Envoy's core during: {'; '.join(noisy)} "
              f"(a busy machine; figures are noisier)")
    for sc in scs:
        if sc.cold:
            n, used = len(runner.token_lists[sc.token]), runner.sent.get(sc.key, 0)
            note = ("no token repeated" if used <= n else
                    f"tokens repeated ({used / n:.1f} passes over the file; matters only where a cache of "
                    f"verified tokens could answer: " + ("none here)" if sc.listener == "native" else "rerun with "
                                                         "more --tokens if the filter has one)"))
            print(f"tokens: {sc.title}: ~{used:,} sent over all runs, {n:,} in {sc.token}: {note}")


# ---------------------------------------------------------------------------------------------
# Main


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3, help="rounds; each runs every scenario once (default 3)")
    p.add_argument("--seconds", type=int, default=3, help="saturating run per scenario and round (default 3)")
    p.add_argument("--single-seconds", type=int, default=1,
                   help="one-connection run per scenario and round, 0 to skip (default 1)")
    p.add_argument("--warmup", type=int, default=1, help="warm-up per scenario and round, discarded (default 1)")
    p.add_argument("--connections", type=int, default=16, help="connections of the saturating run (default 16)")
    p.add_argument("--tokens", type=int, default=20000, help="tokens per token file (default 20000)")
    p.add_argument("--only", help="comma-separated scenario keys (the baseline always runs): "
                   + ", ".join(sc.key for sc in scenarios("", "")[1:]) + "; 'none' runs only the baseline")
    p.add_argument("--no-scale", action="store_true", help="skip the scale section")
    p.add_argument("--scale-only", action="store_true", help="run only the scale section")
    p.add_argument("--scale-sizes", default="1,1000,10000", help="APIRule counts of the scale section "
                   "(default 1,1000,10000; the first is the reference)")
    p.add_argument("--scale-seconds", type=int, default=3, help="saturating run per scale size (default 3)")
    p.add_argument("--no-scale-workers", dest="scale_workers", action="store_false",
                   help="skip the --concurrency 2 memory runs of the scale section")
    p.add_argument("--keep", action="store_true", help="keep the work directory (bootstraps, logs, token files)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    missing = [str(p) for p in (WASM, EMPTY_WASM, ENVOY) if not p.exists()]
    if missing:
        sys.exit(f"bench: missing {', '.join(missing)} (run `make bench`, which builds them)")
    if shutil.which("wrk") is None:
        sys.exit("bench: wrk not found (Debian: apt-get install -y wrk)")

    cpus = sorted(os.sched_getaffinity(0))
    started = time.monotonic()
    rs_key, es_key, jwks_doc = tokens.make_keys()
    rs, es = tokens.mint(rs_key, "RS256", tokens.RS_KID), tokens.mint(es_key, "ES256", tokens.ES_KID)
    scs = scenarios(rs, es)
    if args.only:
        keep = {"baseline", *args.only.split(",")}
        unknown = keep - {sc.key for sc in scs} - {"none"}
        if unknown:
            sys.exit(f"bench: unknown scenario(s) {', '.join(sorted(unknown))}")
        scs = [sc for sc in scs if sc.key in keep]
    if args.scale_only:
        scs = []
    workdir = tempfile.mkdtemp(prefix="apirule-bench-")

    # Mint the cold-path tokens before pinning (and before Envoy runs): all CPUs help.
    token_lists, token_paths = {}, {}
    needed = {sc.token for sc in scs if sc.cold}
    if needed:
        t0 = time.monotonic()
        if "rs_valid" in needed:
            token_lists["rs_valid"] = tokens.mint_many(rs_key, "RS256", tokens.RS_KID, args.tokens, "rs", len(cpus))
        if "rs_forged" in needed:
            token_lists["rs_forged"] = tokens.forge_many("RS256", tokens.RS_KID, args.tokens, "forged",
                                                            rs_key.public_key().public_numbers().n)
        if "es_valid" in needed:
            token_lists["es_valid"] = tokens.mint_many(es_key, "ES256", tokens.ES_KID, args.tokens, "es", len(cpus))
        for name, lst in token_lists.items():
            token_paths[name] = os.path.join(workdir, f"{name}.txt")
            tokens.write_tokens(token_paths[name], lst)
        print(f"minted {', '.join(f'{len(v):,} {k}' for k, v in token_lists.items())} tokens "
              f"in {time.monotonic() - t0:.1f} s", flush=True)

    if len(cpus) >= 2 and shutil.which("taskset"):
        args.envoy_cpu, load_cpu = cpus[0], cpus[1]
        args.wrk_prefix = ["taskset", "-c", str(load_cpu)]
        os.sched_setaffinity(0, {load_cpu})  # this script and its JWKS thread stay off Envoy's core
        pin_note = f"Envoy on CPU {args.envoy_cpu}, wrk and this script on CPU {load_cpu}"
    else:
        args.envoy_cpu, args.wrk_prefix = None, []
        pin_note = "NOT PINNED (fewer than 2 CPUs or no taskset): Envoy and wrk share CPUs; figures are rough"
    args.scripts = measure.write_scripts(workdir)

    jwks = envoy = None
    try:
        jwks = tokens.JwksServer(jwks_doc)
        print(f"apirule-wasm bench, {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}, "
              f"{platform.machine()}, {os.cpu_count()} CPUs; {pin_note}; "
              f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print(f"wasm: apirule-wasm {WASM.stat().st_size:,} bytes ({WASM.stat().st_size / 1024:.0f} KiB), "
              f"empty filter {EMPTY_WASM.stat().st_size:,} bytes ({EMPTY_WASM.stat().st_size / 1024:.0f} KiB)",
              flush=True)
        if scs:
            names = ("plain", "native", "native_cache", "empty", "wasm", "upstream", "admin")
            ports = {n: free_port() for n in names}
            envoy, _ = envoys.start_pinned(envoy=ENVOY, boot=bootstrap(ports, jwks.port), workdir=workdir,
                                           name="envoy-bench", cpu=args.envoy_cpu)
            runner = Runner(args, envoy.pid, ports, token_paths, token_lists)
            for sc in scs:  # also triggers the JWKS fetches (filter and jwt_authn)
                runner.check(sc)
            mem_loaded = measure.mem_status(envoy.pid)
            results = {sc.key: [] for sc in scs}
            for rnd in range(args.rounds):
                for sc in scs:
                    load, _ = r = runner.run(sc)
                    results[sc.key].append(r)
                    print(f"  round {rnd + 1}/{args.rounds}: {sc.title}: {load['rps']:,.0f} req/s, "
                          f"{load['cpu_us_per_req']:.1f} µs/req (1e6/req_s {load['wall_us_per_req']:.1f}), "
                          f"other {load['other_pct']:.0f}%", flush=True)
            mem_after = measure.mem_status(envoy.pid)
            stats = measure.admin_json(ports["admin"], "/stats?format=json&filter=apirule|jwt_authn|rbac")
            envoy.stop()
            envoy = None
            report(args, scs, results, runner)
            print(f"\nEnvoy memory (all five listeners, filters loaded): VmRSS {mem_loaded['VmRSS'] / 1024:.1f} MiB "
                  f"before load, {mem_after['VmRSS'] / 1024:.1f} MiB after (peak {mem_after['VmHWM'] / 1024:.1f} "
                  f"MiB); per filter, see the scale section")
            counters = {st["name"]: st.get("value") for st in stats.get("stats", [])
                        if "value" in st and st.get("value") and ("apirule_" in st["name"] or "denied" in st["name"]
                                                                  or "jwt_authn" in st["name"])}
            print(f"JWKS fetches served: {jwks.hits}; counters: "
                  + ", ".join(f"{k}={v}" for k, v in sorted(counters.items())))

        if not args.no_scale:
            sizes = [int(x) for x in args.scale_sizes.split(",")]
            ctx = scale.Ctx(args=args, envoy=ENVOY, wasm=WASM, empty_wasm=EMPTY_WASM, workdir=workdir,
                            jwks_url=JWKS_URL, issuer=ISSUER, jwks_port=jwks.port, free_port=free_port)
            scale.report(scale.run(ctx, sizes))
        print(f"\nload average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
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
