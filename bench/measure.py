"""How `make bench` measures: wrk runs, Envoy's CPU time, the core's other work, memory.

Envoy's CPU comes from /proc/PID/stat (utime + stime of the whole process, clock ticks): the
per-thread schedstat counters the first version of the bench summed read about half the true
figure on this VM. With Envoy's single worker saturated, CPU per request must also be close to
1e6 / requests-per-second; `cross_check` says when the two disagree (the core was not saturated,
or something else ran on it).
"""
import http.client
import json
import os
import resource
import subprocess
import urllib.request

CLK_TCK = os.sysconf("SC_CLK_TCK")

# done() runs in wrk's main Lua state and prints one JSON line the bench parses.
REPORT_LUA = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%.0f,"duration_us":%.0f,"connect":%.0f,"read":%.0f,"write":%.0f,' ..
    '"status_errors":%.0f,"timeout":%.0f,"p50":%.0f,"p90":%.0f,"p99":%.0f,"mean":%.1f,"max":%.0f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean, latency.max))
end
"""

# A different token on every request: init() (per wrk thread) reads the token file and
# pre-formats one request per token; request() walks them in order from the offset the bench
# passes, so successive runs continue where the last one stopped instead of repeating tokens.
CYCLE_LUA = REPORT_LUA + r"""
local reqs, n, i = {}, 0, 0
init = function(args)
  local base = {}
  for k, v in pairs(wrk.headers) do base[k] = v end
  for line in io.lines(args[1]) do
    if #line > 0 then
      local h = {}
      for k, v in pairs(base) do h[k] = v end
      h["Authorization"] = "Bearer " .. line
      n = n + 1
      reqs[n] = wrk.format(nil, nil, h)
    end
  end
  i = tonumber(args[2]) % n
end
request = function()
  i = i % n + 1
  return reqs[i]
end
"""


def write_scripts(workdir):
    paths = {}
    for name, text in (("report", REPORT_LUA), ("cycle", CYCLE_LUA)):
        paths[name] = os.path.join(str(workdir), f"{name}.lua")
        with open(paths[name], "w") as f:
            f.write(text)
    return paths


def request_once(port, path, host, headers, timeout=10):
    """One GET; returns (status, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Host": host, **headers})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def process_cpu_seconds(pid):
    """utime + stime of the whole process (all threads), /proc/PID/stat fields 14 and 15."""
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()  # fields from 3 on; comm may contain spaces
    return (int(rest[11]) + int(rest[12])) / CLK_TCK


def core_busy_seconds(cpu):
    """Non-idle time of one CPU (all processes, interrupts included), from /proc/stat."""
    if cpu is None:
        return 0.0
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith(f"cpu{cpu} "):
                v = [int(x) for x in line.split()[1:]]
                return (sum(v[:8]) - v[3] - v[4]) / CLK_TCK
    return 0.0


def mem_status(pid):
    """VmRSS and VmHWM in KiB."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0])
    return out


def admin_json(admin_port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}{path}", timeout=5) as r:
        return json.loads(r.read())


def wrk(*, prefix, script, port, path, host, headers, connections, seconds, expect, script_args=()):
    """One wrk run (one thread); returns its figures plus wrk's own CPU share."""
    argv = list(prefix) + ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s",
                           "-s", script, "-H", f"Host: {host}"]
    for k, v in headers.items():
        argv += ["-H", f"{k}: {v}"]
    argv.append(f"http://127.0.0.1:{port}{path}")
    if script_args:
        argv += ["--", *map(str, script_args)]
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    res = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next((ln for ln in res.stdout.splitlines() if ln.startswith("WRKJSON ")), None)
    if res.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({res.returncode}): {res.stdout}\n{res.stderr}")
    r = json.loads(line[len("WRKJSON "):])
    r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
    wrk_cpu = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
    r["wrk_pct"] = 100.0 * wrk_cpu / (r["duration_us"] / 1e6)
    r["socket_errors"] = r["connect"] + r["read"] + r["write"] + r["timeout"]
    # wrk counts responses with status > 399 as errors: they must be all the requests, or none
    expected_errors = r["requests"] if expect > 399 else 0
    r["wrong_status"] = abs(r["status_errors"] - expected_errors)
    return r


def saturate(*, envoy_pid, envoy_cpu, **wrk_kwargs):
    """A wrk run with Envoy's CPU time and the core's other work measured around it."""
    cpu0, core0 = process_cpu_seconds(envoy_pid), core_busy_seconds(envoy_cpu)
    r = wrk(**wrk_kwargs)
    cpu1, core1 = process_cpu_seconds(envoy_pid), core_busy_seconds(envoy_cpu)
    wall = r["duration_us"] / 1e6
    envoy_cpu_s = cpu1 - cpu0
    r["cpu_pct"] = 100.0 * envoy_cpu_s / wall
    # The share of Envoy's core used by anything but Envoy (other processes, interrupts).
    r["other_pct"] = max(0.0, 100.0 * ((core1 - core0) - envoy_cpu_s) / wall) if envoy_cpu is not None else 0.0
    r["cpu_us_per_req"] = 1e6 * envoy_cpu_s / max(r["requests"], 1)
    r["wall_us_per_req"] = 1e6 / max(r["rps"], 1e-9)
    return r


def cross_check(r, tolerance=0.20):
    """None, or why CPU us/req (from /proc) and 1e6/req_s (from wrk) disagree by > tolerance."""
    a, b = r["cpu_us_per_req"], r["wall_us_per_req"]
    if b and abs(a - b) / b > tolerance:
        return (f"CPU {a:.1f} µs/req from /proc vs 1e6/req_s {b:.1f} µs "
                f"(Envoy CPU {r['cpu_pct']:.0f}%, other {r['other_pct']:.0f}%, wrk CPU {r['wrk_pct']:.0f}%)")
    return None
