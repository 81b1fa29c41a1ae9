"""The scale section of `make bench`: 1, 1,000 and 10,000 APIRules in one plugin configuration.

Each size gets its own Envoy (`--concurrency 1`, pinned like the main run), started cold, and
reports: how long it takes until admin /ready says LIVE and until the first request to the LAST
APIRule's host is answered; Envoy's VmRSS; the RSS delta against the 1-APIRule Envoy divided by
the APIRule count; and the extra CPU per `no_auth` request to the last host against the 1-APIRule
Envoy (wrk saturating, same method as the main table). Where the filter looks a host up with a
linear scan, the last host is the worst case; whatever lookup the built .wasm has is what this
measures. An Envoy without the filter, and one with the empty wasm filter, give the memory floor.

Envoy carries the configuration as a google.protobuf.StringValue inside the bootstrap; the
largest size is ~9 MiB of JSON. If Envoy or the filter refuses a size, the section says why and
halves the count until one loads, so the report names the largest that works.
"""
import json
import time

import envoys
import measure
from report import median, print_table
from tools.stack.procs import StartupError

HOSTS = "svc-{i}.bench.example.com"


def apirule(i, *, jwks_url, issuer):
    """One v1beta1 APIRule (~0.9 KiB of JSON): five rules, two jwt (RS256) and three no_auth. The
    last rule is no_auth on /public/.* and is what the CPU measurement requests."""
    def jwt(path, methods, scope=None):
        config = {"jwks_urls": [jwks_url], "trusted_issuers": [issuer]}
        if scope:
            config["required_scope"] = [scope]
        return {"path": path, "methods": methods, "accessStrategies": [{"handler": "jwt", "config": config}]}

    def no_auth(path, methods):
        return {"path": path, "methods": methods, "accessStrategies": [{"handler": "no_auth"}]}

    return {
        "apiVersion": "gateway.kyma-project.io/v1beta1", "kind": "APIRule",
        "metadata": {"name": f"svc-{i}", "namespace": f"team-{i % 50}"},
        "spec": {
            "host": HOSTS.format(i=i),
            "service": {"name": f"svc-{i}", "port": 8080},
            "gateway": "kyma-system/kyma-gateway",
            "rules": [
                jwt("/api/v1/orders/.*", ["GET", "POST"], scope="orders:write"),
                jwt("/api/v1/items", ["GET"]),
                no_auth("/healthz", ["GET"]),
                no_auth("/metrics", ["GET"]),
                no_auth("/public/.*", ["GET", "HEAD"]),
            ],
        },
    }


def plugin_config(n, *, jwks_url, issuer, jwks_cluster):
    return {"apiRules": [apirule(i, jwks_url=jwks_url, issuer=issuer) for i in range(n)],
            "jwks": {"clusters": {jwks_url: jwks_cluster}, "cacheTtlSeconds": 3600, "fetchTimeoutMs": 2000}}


class Ctx:
    """What the section needs from the main run: paths, pinning, JWKS port, wrk options."""

    def __init__(self, *, args, envoy, wasm, empty_wasm, workdir, jwks_url, issuer, jwks_port, free_port):
        self.args, self.envoy, self.wasm, self.empty_wasm = args, envoy, wasm, empty_wasm
        self.workdir, self.jwks_url, self.issuer, self.jwks_port = workdir, jwks_url, issuer, jwks_port
        self.free_port = free_port


def _start(ctx, name, http_filters, *, concurrency=1):
    port, admin = ctx.free_port(), ctx.free_port()
    boot = envoys.bootstrap(admin_port=admin, listeners=[envoys.listener("scale", port, http_filters)],
                            clusters={"jwks": ctx.jwks_port})
    proc, ready_s = envoys.start_pinned(envoy=ctx.envoy, boot=boot, workdir=ctx.workdir, name=name,
                                        cpu=ctx.args.envoy_cpu, concurrency=concurrency, timeout=300)
    return proc, port, ready_s


def _first_ok(port, host, path, deadline_s=60):
    """Seconds until host/path answers 200 (polled every 10 ms)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < deadline_s:
        try:
            status, _ = measure.request_once(port, path, host, {}, timeout=5)
            if status == 200:
                return time.monotonic() - t0
        except OSError:
            pass
        time.sleep(0.01)
    raise RuntimeError(f"{host}{path} never answered 200")


def _cpu(ctx, proc, port, host, path):
    a = ctx.args
    kw = dict(prefix=a.wrk_prefix, script=a.scripts["report"], port=port, path=path, host=host, headers={},
              connections=a.connections, expect=200)
    measure.wrk(seconds=a.warmup, **kw)
    return measure.saturate(envoy_pid=proc.pid, envoy_cpu=a.envoy_cpu, seconds=a.scale_seconds, **kw)


TARGET_PATH = "/public/index.html"


def load(ctx, n, *, concurrency=1):
    """Start an Envoy with n APIRules and wait for the last host's first 200. Returns
    (figures, proc, port); proc is None and figures has "error" when it does not load."""
    config = plugin_config(n, jwks_url=ctx.jwks_url, issuer=ctx.issuer, jwks_cluster="jwks")
    out = {"n": n, "config_bytes": len(json.dumps(config).encode()), "concurrency": concurrency}
    filt = envoys.wasm_filter(wasm_path=ctx.wasm, plugin_config=config, vm_id="apirule")
    t0 = time.monotonic()
    try:
        proc, port, out["ready_s"] = _start(ctx, f"scale-{n}-c{concurrency}", [filt], concurrency=concurrency)
    except StartupError as e:
        lines = [ln for ln in str(e).splitlines() if ln.strip()]
        out["error"] = next((ln.strip() for ln in lines if "critical" in ln or "error" in ln.lower()),
                            lines[-1] if lines else repr(e))[:400]
        return out, None, None
    try:
        _first_ok(port, HOSTS.format(i=n - 1), TARGET_PATH)
    except Exception:
        proc.stop()
        raise
    out["load_s"] = time.monotonic() - t0
    out["mem"] = measure.mem_status(proc.pid)
    return out, proc, port


def run_reference(ctx, name, http_filters):
    """An Envoy with only the given filters (none, or the empty wasm filter): RSS and load time."""
    t0 = time.monotonic()
    proc, port, ready_s = _start(ctx, name, http_filters)
    try:
        _first_ok(port, "ref.example.com", "/")
        return {"ready_s": ready_s, "load_s": time.monotonic() - t0, "mem": measure.mem_status(proc.pid)}
    finally:
        proc.stop()


def run(ctx, sizes):
    """The whole section: the two references; then each size, started one after the other and
    kept running (a refused size is halved until one loads, the largest that works, and larger
    sizes are not tried); then --rounds interleaved CPU runs over the running Envoys (median);
    then the per-worker memory: the smallest and largest sizes again with --concurrency 2."""
    res = {"none": run_reference(ctx, "scale-none", []),
           "empty": run_reference(ctx, "scale-empty", [envoys.wasm_filter(
               wasm_path=ctx.empty_wasm, plugin_config={}, vm_id="empty")]),
           "sizes": [], "refused": []}
    running = []
    try:
        for n in sizes:
            print(f"  scale: loading {n:,} APIRules ...", flush=True)
            out, proc, port = load(ctx, n)
            floor = res["sizes"][-1]["n"] if res["sizes"] else 0
            m = n
            while proc is None:
                res["refused"].append(out)
                print(f"  scale: {m:,} APIRules refused: {out['error']}", flush=True)
                m //= 2
                if m <= floor:
                    break
                out, proc, port = load(ctx, m)
            if proc is None:
                break
            res["sizes"].append(out)
            running.append((out, proc, port))
            if m != n:
                break  # a larger size would be refused too
        for rnd in range(ctx.args.rounds):
            for out, proc, port in running:
                r = _cpu(ctx, proc, port, HOSTS.format(i=out["n"] - 1), TARGET_PATH)
                out.setdefault("cpu_runs", []).append(r)
                print(f"  scale round {rnd + 1}/{ctx.args.rounds}: {out['n']:,} APIRules: {r['rps']:,.0f} req/s, "
                      f"{r['cpu_us_per_req']:.1f} µs/req, other {r['other_pct']:.0f}%", flush=True)
    finally:
        for _, proc, _ in running:
            proc.stop()
    if ctx.args.scale_workers and len(res["sizes"]) >= 2:
        lo, hi = res["sizes"][0]["n"], res["sizes"][-1]["n"]
        print(f"  scale: {lo:,} and {hi:,} APIRules with --concurrency 2 (memory only) ...", flush=True)
        res["c2"] = []
        for n in (lo, hi):
            out, proc, _ = load(ctx, n, concurrency=2)
            if proc is not None:
                proc.stop()
            res["c2"].append(out)
    return res


def report(res):
    kib = lambda k: f"{k / 1024:,.1f} MiB"  # noqa: E731
    none, empty = res["none"], res["empty"]
    print("\nScale: one Envoy per size, --concurrency 1, cold start; CPU on `no_auth` GET /public/index.html "
          "of the LAST APIRule's host")
    print(f"  Envoy without a filter: VmRSS {kib(none['mem']['VmRSS'])}, ready in {none['ready_s']:.2f} s; "
          f"with the empty wasm filter: VmRSS {kib(empty['mem']['VmRSS'])} "
          f"(+{kib(empty['mem']['VmRSS'] - none['mem']['VmRSS'])}), ready in {empty['ready_s']:.2f} s")
    sizes = res["sizes"]
    if not sizes:
        print("  no size loaded")
        return
    one = sizes[0]
    rows = []
    for r in sizes:
        rss = r["mem"]["VmRSS"]
        per = (rss - one["mem"]["VmRSS"]) / (r["n"] - one["n"]) if r["n"] > one["n"] else None
        runs = r.get("cpu_runs", [])
        cpu = [x["cpu_us_per_req"] for x in runs]
        one_cpu = [x["cpu_us_per_req"] for x in one.get("cpu_runs", [])]
        extra = median([a - b for a, b in zip(cpu, one_cpu)])
        rows.append([f"{r['n']:,}", f"{r['config_bytes'] / 1024:,.0f} KiB", f"{r['ready_s']:.2f} s",
                     f"{r['load_s']:.2f} s", kib(rss), f"+{kib(rss - none['mem']['VmRSS'])}",
                     "-" if per is None else f"{per:.2f}", f"{median([x['rps'] for x in runs]):,.0f}",
                     f"{median(cpu):.1f} [{min(cpu, default=0):.0f}-{max(cpu, default=0):.0f}]",
                     "-" if r is one else f"{extra:+.1f}", f"{max((x['other_pct'] for x in runs), default=0):.0f}%"])
    print_table(["APIRules", "config", "ready", "first 200", "VmRSS", "vs no filter", "KiB/APIRule",
                 "req/s", "CPU µs/req", "vs 1 APIRule", "other"], rows)
    print("  ready = Envoy start until admin /ready is LIVE (polled every 0.1 s); first 200 = until the last "
          "host's no_auth route answered (polled every 10 ms). KiB/APIRule = (VmRSS - VmRSS with 1 APIRule) / "
          "(count - 1). CPU: median [min-max] of the rounds; vs 1 APIRule = median of the same-round differences.")
    for r in res["refused"]:
        print(f"  REFUSED: {r['n']:,} APIRules ({r['config_bytes'] / 1048576:.1f} MiB of JSON): {r['error']}")
    if "c2" in res:
        lo, hi = res["c2"]
        if "error" in lo or "error" in hi:
            print(f"  --concurrency 2: did not load: {lo.get('error') or hi.get('error')}")
        else:
            w_lo = lo["mem"]["VmRSS"] - sizes[0]["mem"]["VmRSS"]
            w_hi = hi["mem"]["VmRSS"] - sizes[-1]["mem"]["VmRSS"]
            print(f"  A second worker (--concurrency 2) adds {kib(w_lo)} with {lo['n']:,} APIRule(s) and "
                  f"{kib(w_hi)} with {hi['n']:,}: {(w_hi - w_lo) / (hi['n'] - lo['n']):.2f} KiB per APIRule "
                  f"per worker")
