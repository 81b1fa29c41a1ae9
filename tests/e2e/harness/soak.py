"""Faults under load (issue 11): a constant request rate through a real Envoy running the filter
while the JWKS server is killed, restarted, slowed past the fetch timeout, made to answer garbage
(invalid JSON, wrong content, HTTP 500, a body over the 256 KiB limit), and while the filter's
configuration is replaced at run time (filesystem ECDS, as istiod pushes a changed WasmPlugin;
also a configuration the filter refuses, and a new APIRule whose JWKS URL is down: a cold start).

Every request is classified by its kind (what token it carries, for which APIRule) and its outcome,
and judged afterwards against the rules the docs state, with the times at which the JWKS server
really served a good key set (its own log):

- security, strict: no request without a valid token is ever answered 2xx or reaches the
  upstream (the upstream records the tag of every request it gets); no denied request reaches
  it; keys are never used after the stale bound;
- availability, as documented (docs/behaviour.md "JWKS", README "Configuration reference"):
  "The old set is kept (stale) through IdP failures until `TTL + maxStaleSeconds` after the last
  successful fetch", whatever the failure ("no answer (connect error, timeout), a status other
  than 2xx, a body over 256 KiB, a body that is no JWKS or has no usable key ... none replaces the
  last good set"). So a valid token is allowed whenever the last good answer of its JWKS URL,
  served before the request was sent, is younger than TTL + maxStale when it is answered, and
  never allowed once the last good answer is older than that (plus a margin for the answer's
  way into the filter). Between the two (the answer in flight) either outcome is right.
  `jwks.maxWaitMs`: "how long a request waits for keys; then 401", so no request is held much
  longer, and a cold URL whose IdP is down answers 401 (README "What clients get": "JWKS
  unreachable" -> 401), never 2xx;
- "Failed fetches are retried with a backoff of 1 s, 2 s, 4 s, 8 s, 16 s, then 30 s, each scaled
  by a random factor in [0.8, 1.2)": once the IdP is back, a good fetch comes within 36 s (plus
  a 250 ms tick and the fetch);
- each fault is seen by the filter as the failure the README's counter table names for it;
- no 5xx, no broken connection, Envoy alive, no wasm VM failure (Envoy's wasm stats and log).

`run_soak(seconds=...)` runs the short form (one cycle of every fault, about 40 s of load) when
seconds is small, and repeats randomised cycles with longer phases for the long form
(`make soak`). Used by tests/e2e/test_soak.py and tests/e2e/soak.py.
"""
import asyncio
import bisect
import json
import os
import random
import re
import threading
import time
from collections import Counter, defaultdict

import requests

from . import apirules as A
from . import gateway as gw
from . import tokens as T
from .servers import JwksServer, UpstreamRecorder

ISSUER = "https://idp.soak.test"
HOST_V1 = "soak-v1.example.com"
HOST_V2 = "soak-v2.example.com"
MARKER_HOST = "marker.soak.example.com"
MAIN_PATH = "/soak/keys"
KID = "soak-1"


def cold_host(n):
    return f"cold-{n}.soak.example.com"


def cold_path(n):
    return f"/soak/cold-{n}"


# Cache timing per form. Short: everything happens within seconds. Long: outages within and
# beyond the stale bound long enough for the backoff to reach its 30 s cap.
PROFILES = {
    "short": {"ttl": 1, "max_stale": 4, "fetch_timeout_ms": 1200, "max_wait_ms": 1000, "min_refetch": 2},
    "long": {"ttl": 3, "max_stale": 12, "fetch_timeout_ms": 1200, "max_wait_ms": 1000, "min_refetch": 2},
}

# Margins, in seconds, and why.
LAND_MARGIN = 1.0    # a good answer, logged by the JWKS server, reaches the filter's record within this
WAIT_SLACK = 2.0     # client, event loop and Envoy scheduling on a loaded 2-core machine
TICK = 0.25          # the filter's idle tick: background refreshes and retries start on it
MAX_BACKOFF = 30.0 * 1.2  # the documented cap of the retry backoff, with its jitter

# What each JWKS fault must be counted as (README, counters: `..._status` (not 2xx; "Envoy itself
# answers a refused connection or a timeout with a 503/504, which counts as ..._status"),
# `..._invalid` (not a JWKS, or no usable key), `..._too_large` (over 256 KiB)).
FAULT_CAUSE = {
    "killed": "status", "slow": "status", "hang": "status", "invalid-json": "invalid",
    "wrong-content": "invalid", "http-500": "status", "huge-body": "too_large",
}
# 200 answers that are no key set: the IdP's discovery document, a login page, and two key sets
# without a usable key (behaviour.md: "a body that is no JWKS or has no usable key ... none
# replaces the last good set").
WRONG_CONTENT = ("discovery", "html", "empty", "small-key")
CAUSES = ("unreachable", "status", "invalid", "too_large", "dispatch", "lost")

# Request kinds: (APIRule, token). Expected answer: valid tokens 200 while keys are usable;
# v1 denies everything else with 401 (Oathkeeper); v2 answers no token 403, a bad one 401 (Istio).
KINDS = {
    "v1 valid": ("v1", "valid"), "v1 no token": ("v1", "none"), "v1 forged": ("v1", "forged"),
    "v1 expired": ("v1", "expired"), "v1 other issuer": ("v1", "issuer"), "v1 unknown kid": ("v1", "kid"),
    "v2 valid": ("v2", "valid"), "v2 no token": ("v2", "none"), "v2 forged": ("v2", "forged"),
    "v2 expired": ("v2", "expired"), "v2 other issuer": ("v2", "issuer"), "v2 unknown kid": ("v2", "kid"),
    "cold valid": ("cold", "valid"), "cold forged": ("cold", "forged"),
}
WEIGHTS = {  # per 100 requests
    "v1 valid": 24, "v1 no token": 8, "v1 forged": 8, "v1 expired": 6, "v1 other issuer": 6, "v1 unknown kid": 4,
    "v2 valid": 14, "v2 no token": 6, "v2 forged": 6, "v2 expired": 4, "v2 other issuer": 4, "v2 unknown kid": 2,
    "cold valid": 6, "cold forged": 2,
}


def expected_deny(kind):
    rule, token = KINDS[kind]
    return 403 if (rule == "v2" and token == "none") else 401


# --- the servers ---------------------------------------------------------------------------------

class TagRecorder(UpstreamRecorder):
    """The upstream: answers 200 and remembers only the tag of each request (the soak's requests
    are too many to keep whole)."""

    def __init__(self, port=None):
        super().__init__(port)
        self.tags = set()
        self.untagged = 0

    def _record(self, rec):
        tag = next((v for k, v in rec["headers"] if k.lower() == self.TAG), None)
        with self._lock:
            if tag is None:
                self.untagged += 1
            else:
                self.tags.add(tag)

    def seen(self, tag):
        with self._lock:
            return tag in self.tags


class FaultyJwks(JwksServer):
    """The JWKS server with a label per path for what it is doing (`good` for the real key set),
    and a log of every answer's start: (time, path, label)."""

    def __init__(self, port=None):
        super().__init__(port)
        self.labels = {}
        self.answers = []

    def set(self, path, label, setter, *args, **kw):
        with self._lock:
            self.labels[path] = label
        setter(path, *args, **kw)

    def _hit(self, path, handler):
        with self._lock:
            self.answers.append((time.time(), path, self.labels.get(path, "missing")))
        return super()._hit(path, handler)

    def good_times(self, path):
        with self._lock:
            return [t for t, p, label in self.answers if p == path and label == "good"]


# --- configuration ---------------------------------------------------------------------------------

def apirules(cold=(), marker=False):
    v1 = A.apirule("soak-v1", HOST_V1, A.rule("/.*", ["GET"], A.jwt([MAIN_PATH], trusted_issuers=[ISSUER])))
    v2 = {"apiVersion": "gateway.kyma-project.io/v2", "kind": "APIRule",
          "metadata": {"name": "soak-v2", "namespace": "default"},
          "spec": {"hosts": [HOST_V2], "gateway": "kyma-system/kyma-gateway",
                   "service": {"name": "httpbin", "namespace": "default", "port": 8000},
                   "rules": [{"path": "/{**}", "methods": ["GET"],
                              "jwt": {"authentications": [{"issuer": ISSUER, "jwksUri": A.jwks_url(MAIN_PATH)}]}}]}}
    rules = [v1, v2]
    for n in cold:
        rules.append(A.apirule(f"soak-cold-{n}", cold_host(n),
                               A.rule("/.*", ["GET"], A.jwt([cold_path(n)], trusted_issuers=[ISSUER]))))
    if marker:
        rules.append(A.apirule("soak-marker", MARKER_HOST, A.rule("/.*", ["GET"], A.strategy("no_auth"))))
    return rules


def plugin_config(profile, cold=(), marker=False, refused=False):
    rules = apirules(cold, marker)
    if refused:  # an APIRule the filter refuses at load (README: unsupported handlers)
        rules.append(A.apirule("soak-refused", "refused.soak.example.com",
                               A.rule("/.*", ["GET"], A.strategy("cookie_session"))))
    cfg = A.plugin_config(rules, jwks_paths=[MAIN_PATH] + [cold_path(n) for n in cold],
                          cache_ttl=profile["ttl"], max_stale=profile["max_stale"],
                          fetch_timeout_ms=profile["fetch_timeout_ms"], min_refetch=profile["min_refetch"])
    cfg["jwks"]["maxWaitMs"] = profile["max_wait_ms"]
    cfg["tokenCache"] = {"maxEntries": 512 if marker else 1024}
    return cfg


# --- tokens ----------------------------------------------------------------------------------------

class Tokens:
    """Pools of pre-minted tokens per kind (signing in the load loop would cost the client more
    than the filter its verification)."""

    def __init__(self, seconds, rng):
        self.rng = rng
        self.key = T.SigningKey.rsa(KID)
        self.attacker = T.SigningKey.rsa(KID)  # same kid, other key: forged signatures
        self.small = T.SigningKey.rsa(KID, bits=1024)  # for a key set with no usable key
        now = T.now()
        life = int(seconds) + 900

        def claims(**extra):
            c = {"sub": "soak", "iss": ISSUER, "iat": now - 5, "exp": now + life}
            c.update(extra)
            return c

        self.pools = {
            "valid": [T.mint(self.key, claims(jti=f"v{i}")) for i in range(96)],
            "forged": ([T.mint(self.attacker, claims(jti=f"f{i}")) for i in range(32)]
                       + [T.tamper(T.mint(self.key, claims(jti=f"t{i}"))) for i in range(32)]),
            "expired": [T.mint(self.key, claims(jti=f"e{i}", iat=now - 1200, exp=now - 600)) for i in range(32)],
            "issuer": [T.mint(self.key, claims(jti=f"i{i}", iss="https://idp.elsewhere.test")) for i in range(32)],
            "kid": [T.mint(self.attacker, claims(jti=f"k{i}"), kid=f"ghost-{i}") for i in range(64)],
        }

    def pick(self, token_kind):
        if token_kind == "none":
            return None
        return self.rng.choice(self.pools[token_kind])

    def jwks(self):
        return T.jwks(self.key.jwk())


# --- the load client -------------------------------------------------------------------------------

class Record:
    __slots__ = ("seq", "kind", "host_path", "t_send", "latency", "status", "upstream_header", "error",
                 "late")

    def __init__(self, seq, kind, host_path, t_send, late):
        self.seq, self.kind, self.host_path, self.t_send, self.late = seq, kind, host_path, t_send, late
        self.latency = None
        self.status = None
        self.upstream_header = False
        self.error = None

    @property
    def t_done(self):
        return self.t_send + (self.latency or 0.0)


class _Conn:
    def __init__(self, reader, writer):
        self.reader, self.writer, self.used = reader, writer, 0

    def close(self):
        try:
            self.writer.close()
        except Exception:  # noqa: BLE001 - closing a broken connection
            pass


async def _read_response(reader):
    line = await reader.readline()
    if not line:
        raise ConnectionError("connection closed before a status line")
    parts = line.split(None, 2)
    status = int(parts[1])
    headers = {}
    while True:
        h = await reader.readline()
        if h in (b"\r\n", b"\n"):
            break
        if not h:
            raise ConnectionError("connection closed in the headers")
        k, _, v = h.decode("latin-1").partition(":")
        headers[k.strip().lower()] = v.strip()
    if "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))
    elif "chunked" in headers.get("transfer-encoding", "").lower():
        while True:
            size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
            if size:
                await reader.readexactly(size + 2)
            else:
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass
                break
    else:
        await reader.read()
        headers["connection"] = "close"
    return status, headers


class Load:
    """Open-loop constant rate: request i is sent at start + i / rate whatever the earlier ones
    are doing, on a keep-alive connection from a pool (a new one when none is idle; each is
    closed after 40 requests, so connections keep spreading over Envoy's workers)."""

    PER_CONN = 40
    TIMEOUT = 15.0

    def __init__(self, port, rate, tokens, rng, run_id, cold_hosts):
        self.port, self.rate, self.tokens, self.rng, self.run_id = port, rate, tokens, rng, run_id
        self.cold_hosts = cold_hosts  # [(n, host)] the controller appends to once a cold APIRule is live
        self.records = []
        self.idle = []
        self.open_conns = 0
        self.max_conns = 0
        self._block = []
        self._block_cold = False

    def _next_kind(self):
        # A new block of 100 when one is used up, or at once when the first added APIRule is live.
        if not self._block or self._block_cold != bool(self.cold_hosts):
            self._block_cold = bool(self.cold_hosts)
            usable = {k: w for k, w in WEIGHTS.items() if KINDS[k][0] != "cold" or self._block_cold}
            block = [k for k, w in usable.items() for _ in range(w)]
            self.rng.shuffle(block)
            self._block = block
        return self._block.pop()

    async def _conn(self):
        if self.idle:
            return self.idle.pop()
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.open_conns += 1
        self.max_conns = max(self.max_conns, self.open_conns)
        return _Conn(reader, writer)

    def _drop(self, conn):
        conn.close()
        self.open_conns -= 1

    async def _one(self, rec, host, token):
        conn = None
        t0 = time.monotonic()
        try:
            conn = await asyncio.wait_for(self._conn(), self.TIMEOUT)
            head = (f"GET {rec.host_path[1]} HTTP/1.1\r\nHost: {host}\r\n"
                    f"{UpstreamRecorder.TAG}: {self.run_id}-{rec.seq}\r\nx-request-id: soak-{self.run_id}-{rec.seq}\r\n")
            if token is not None:
                head += f"Authorization: Bearer {token}\r\n"
            conn.writer.write((head + "\r\n").encode())
            status, headers = await asyncio.wait_for(_read_response(conn.reader), self.TIMEOUT)
            rec.latency = time.monotonic() - t0
            rec.status = status
            rec.upstream_header = headers.get("x-upstream") == "recorder"
            conn.used += 1
            if headers.get("connection", "").lower() == "close" or conn.used >= self.PER_CONN:
                self._drop(conn)
            else:
                self.idle.append(conn)
        except (asyncio.TimeoutError, OSError, ConnectionError, ValueError, IndexError,
                asyncio.IncompleteReadError) as e:
            rec.latency = time.monotonic() - t0
            rec.error = type(e).__name__
            if conn is not None:
                self._drop(conn)

    async def run(self, stop):
        loop = asyncio.get_running_loop()
        start = loop.time()
        pending = set()
        i = 0
        while not stop.is_set():
            due = start + i / self.rate
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            kind = self._next_kind()
            rule, token_kind = KINDS[kind]
            if rule == "cold":
                n, host = self.rng.choice(self.cold_hosts)
            else:
                n, host = None, HOST_V1 if rule == "v1" else HOST_V2
            rec = Record(i, kind, (n, f"/soak/{kind.replace(' ', '-')}/{i}"), time.time(),
                         max(0.0, loop.time() - due))
            self.records.append(rec)
            task = asyncio.create_task(self._one(rec, host, self.tokens.pick(token_kind)))
            pending.add(task)
            task.add_done_callback(pending.discard)
            i += 1
        if pending:
            await asyncio.wait(pending, timeout=self.TIMEOUT + 5)
        for c in self.idle:
            c.close()


# --- the fault controller --------------------------------------------------------------------------

class Phase:
    def __init__(self, name, mode, min_s, until=None, max_s=None, action=None, variant=None):
        self.name, self.mode, self.min_s, self.until, self.max_s = name, mode, min_s, until, max_s
        self.action, self.variant = action, variant
        self.start = self.end = None
        self.met = None


class Soak:
    def __init__(self, *, workdir, seconds, rate, seed, log=print, wrong_content=None):
        self.workdir = str(workdir)
        self.seconds = seconds
        self.form = "short" if seconds <= 60 else "long"
        self.profile = PROFILES[self.form]
        self.rate = rate
        self.seed = seed
        self.rng = random.Random(seed)
        # What "wrong content" a fault phase serves: one of these at random per cycle.
        self.wrong_content = list(wrong_content or WRONG_CONTENT)
        self.log = log
        self.bound = self.profile["ttl"] + self.profile["max_stale"]  # TTL + maxStale, seconds
        self.phases = []
        self.cold = []           # cold APIRule numbers in the live configuration
        self.cold_hosts = []     # what the load may target, appended once live
        self.marker = False
        self.reloads = 0
        self.refused_reloads = 0
        self.reload_windows = []
        self.violations = []
        self.failed_causes = defaultdict(Counter)  # (phase name, mode) -> cause -> count

    # -- JWKS modes --
    def _paths(self):
        return [MAIN_PATH] + [cold_path(n) for n in self.cold]

    def _set_mode(self, mode, variant=None):
        j = self.jwks
        if mode == "killed":
            j.stop()
            return
        if not j.running:
            j.start()
        ft = self.profile["fetch_timeout_ms"] / 1000
        for p in self._paths():
            if mode == "good":
                j.set(p, "good", j.serve, self.good_doc)
            elif mode == "slow":  # answers the real key set, but only after the fetch timeout
                j.set(p, "slow", j.serve, self.good_doc, delay=ft + 0.8)
            elif mode == "hang":  # accepts and never answers
                j.set(p, "hang", j.hang, ft * 2)
            elif mode == "invalid-json":
                j.set(p, "invalid-json", j.raw, '{"keys": [{"kty": "RSA", "kid": "soak-1", "n": ')
            elif mode == "wrong-content":
                if variant == "discovery":  # the IdP's discovery document at the JWKS URL
                    j.set(p, "wrong-content", j.serve, {"issuer": ISSUER, "jwks_uri": A.jwks_url(MAIN_PATH)})
                elif variant == "html":  # a login page, 200
                    j.set(p, "wrong-content", j.raw, "<html><body>Sign in</body></html>", "text/html")
                elif variant == "empty":  # a key set without keys
                    j.set(p, "wrong-content", j.serve, {"keys": []})
                elif variant == "small-key":  # our kid, but an RSA key under 2048 bits: no usable key
                    j.set(p, "wrong-content", j.serve, T.jwks(self.tokens.small.jwk()))
                else:
                    raise ValueError(variant)
            elif mode == "http-500":
                j.set(p, "http-500", j.fail, 500, "internal error")
            elif mode == "huge-body":  # valid JSON with the real key, over 256 KiB
                j.set(p, "huge-body", j.raw, json.dumps({"keys": [self.tokens.key.jwk()], "pad": "x" * 300_000}))
            else:
                raise ValueError(mode)

    # -- conditions --
    def _failed(self):
        return {c: self.g.counter(f"apirule_jwks_fetch_failed_{c}") for c in CAUSES}

    def _good_since(self, t):
        return all(any(x >= t for x in self.jwks.good_times(p)) for p in self._paths())

    def _reconfigure(self, refused=False):
        cfg = plugin_config(self.profile, self.cold, self.marker, refused=refused)
        t0 = time.time()
        took = self.g.reconfigure(cfg, refused=refused)
        if refused:
            self.refused_reloads += 1
        else:
            self.reloads += 1
            self.reload_windows.append((t0, time.time()))  # written .. applied on every worker
        return took

    def _toggle(self):
        self.marker = not self.marker
        self._reconfigure()

    # -- plan --
    def _fault_phases(self):
        p = self.profile
        ft = p["fetch_timeout_ms"] / 1000
        long = self.form == "long"
        within = 0.5 * p["max_stale"]  # fault phases end well within the stale window

        def dur():
            return self.rng.uniform(1.0, within) if long else 1.0

        out = [("killed", None), ("slow" if not long or self.rng.random() < 0.5 else "hang", None),
               ("invalid-json", None), ("wrong-content", self.rng.choice(self.wrong_content)),
               ("http-500", None), ("huge-body", None)]
        if long:
            self.rng.shuffle(out)
        phases = []
        for mode, variant in out:
            phases.append(Phase(f"{mode} ({variant})" if variant else mode, mode, dur(), until="failure",
                                max_s=p["ttl"] + ft + TICK + 4.0 + within, variant=variant))
            phases.append(Phase("healthy", "good", self.rng.uniform(1.0, 5.0) if long else 1.0, until="good"))
        return phases

    def _cycle(self, first):
        p = self.profile
        long = self.form == "long"
        phases = []
        if first:
            phases.append(Phase("warm-up", "good", 1.5, until="good"))
        phases += self._fault_phases()

        def reload_healthy(soak):
            soak._toggle()
            time.sleep(0.7)
            soak._reconfigure(refused=True)
            time.sleep(0.7)
            soak._toggle()

        def reload_outage(soak):
            soak._toggle()
            time.sleep(1.0)
            soak._toggle()

        def add_cold(soak):
            n = len(soak.cold) + 1
            soak.cold.append(n)
            soak._set_mode("slow")  # the new URL too
            soak._reconfigure()
            soak.cold_hosts.append((n, cold_host(n)))
            # Once requests for the new URL are paused waiting for its keys, replace the
            # configuration again: they belong to the old configuration's root, which goes away.
            time.sleep(0.6)
            soak._toggle()

        phases.append(Phase("reload", "good", 2.5, action=reload_healthy))
        phases.append(Phase("reload in outage", "killed", 2.0, action=reload_outage))
        phases.append(Phase("healthy", "good", 1.0, until="good"))
        phases.append(Phase("cold start in outage", "slow", 2.5, action=add_cold))
        phases.append(Phase("healthy", "good", 1.0, until="good"))
        extra = self.rng.uniform(2.0, 25.0) if long else 1.0
        phases.append(Phase("long outage", "killed", self.bound + extra))
        phases.append(Phase("recovery", "good", 0.5, until="good"))
        if long:
            phases.append(Phase("healthy", "good", self.rng.uniform(2.0, 8.0)))
        return phases

    def _run_phase(self, ph, t_load0):
        ph.start = time.time()
        self.phases.append(ph)
        self._set_mode(ph.mode, ph.variant)
        failed0 = self._failed() if ph.until == "failure" else None
        if ph.action:
            ph.action(self)
        cap = ph.max_s if ph.max_s is not None else (MAX_BACKOFF + TICK + self.profile["fetch_timeout_ms"] / 1000 + 3.0
                                                      if ph.until == "good" else ph.min_s)
        while True:
            el = time.time() - ph.start
            met = True
            if ph.until == "good":
                met = self._good_since(ph.start)
            elif ph.until == "failure":
                now = self._failed()
                delta = {c: now[c] - failed0[c] for c in CAUSES if now[c] > failed0[c]}
                met = bool(delta)
            if (el >= ph.min_s and met) or el >= cap or self.stop.is_set():
                break
            time.sleep(0.05)
        if ph.until == "failure":
            now = self._failed()
            for c in CAUSES:
                if now[c] > failed0[c]:
                    self.failed_causes[(ph.name, ph.mode)][c] += now[c] - failed0[c]
        ph.met = met
        ph.end = time.time()
        self.log(f"soak: {ph.name:22s} {ph.mode:14s} {ph.end - ph.start:5.1f}s "
                 f"(load at {ph.end - t_load0:5.1f}s){'' if met else '  condition NOT met'}")

    def _controller(self, t_load0):
        try:
            first = True
            deadline = t_load0 + self.seconds
            while True:
                for ph in self._cycle(first):
                    if self.stop.is_set():
                        return
                    self._run_phase(ph, t_load0)
                first = False
                if self.form == "short" or time.time() >= deadline:
                    break
            self._run_phase(Phase("final", "good", 1.5, until="good"), t_load0)
        except BaseException as e:  # noqa: BLE001 - reported as a violation, the load stops
            self.controller_error = e
        finally:
            self.stop.set()

    # -- run --
    def run(self):
        self.controller_error = None
        self.tokens = Tokens(self.seconds, random.Random(self.seed + 1))
        self.good_doc = self.tokens.jwks()
        self.recorder = TagRecorder().start()
        self.jwks = FaultyJwks().start()
        self.jwks.set(MAIN_PATH, "good", self.jwks.serve, self.good_doc)
        os.makedirs(self.workdir, exist_ok=True)
        self.g = gw.start_gateway(plugin_config(self.profile), recorder=self.recorder, workdir=self.workdir,
                                  clusters={"jwks": self.jwks.address}, name="soak", concurrency=2,
                                  live_config=True, component_log_level="wasm:info")
        try:
            self.wasm_before = self._wasm_stats()
            self.stop = threading.Event()
            self.load = Load(self.g.port, self.rate, self.tokens, random.Random(self.seed + 2),
                             f"{self.seed:x}{os.getpid():x}",
                             self.cold_hosts)
            t0 = time.time()
            ctl = threading.Thread(target=self._controller, args=(t0,), name="soak-controller", daemon=True)
            ctl.start()
            asyncio.run(self.load.run(self.stop))
            ctl.join(timeout=60)
            self.t0, self.t1 = t0, time.time()
            time.sleep(0.3)  # let the last upstream records land
            self.final_stats = {line.split(":")[0]: line.split(":", 1)[1].strip() for line in self.g.stats("")}
            self.alive = self.g.proc.alive()
            self.ready = self._ready()
            self.log_text = self.g.log_text()
        finally:
            self.g.stop()
            self.jwks.close()
            self.recorder.stop()
        return self.judge()

    def _ready(self):
        try:
            return requests.get(f"http://127.0.0.1:{self.g.admin_port}/ready", timeout=5).status_code == 200
        except requests.RequestException:
            return False

    def _wasm_stats(self):
        return {k: int(v) for k, v in (line.split(": ", 1) for line in self.g.stats(r"^wasm\."))
                if v.strip().lstrip("-").isdigit()}

    # -- judging --
    def _phase_at(self, t):
        starts = [p.start for p in self.phases]
        i = bisect.bisect_right(starts, t) - 1
        return self.phases[i].name if i >= 0 else "start"

    def judge(self):
        v = self.violations
        if self.controller_error is not None:
            v.append(f"the fault controller failed: {self.controller_error!r}")
        prof = self.profile
        max_wait = prof["max_wait_ms"] / 1000
        good = {p: self.jwks.good_times(p) for p in [MAIN_PATH] + [cold_path(n) for n in self.cold]}
        by_kind = defaultdict(Counter)
        by_phase = defaultdict(Counter)
        lat = defaultdict(list)
        examples = defaultdict(list)
        cold_waited = []
        across_reload = []
        oldest = {}
        recs = self.load.records

        counts = Counter()

        self.broken = []  # every request that broke a rule: (rule, seq, kind, phase, t, status, latency, age)

        def bad(key, text, r=None, age=None):
            counts[key] += 1
            if len(examples[key]) < 5:
                examples[key].append(text)
            if r is not None:
                self.broken.append((key, r.seq, r.kind, self._phase_at(r.t_send), round(r.t_send - self.t0, 3),
                                    r.status, r.error, None if r.latency is None else round(r.latency, 3),
                                    None if age is None else round(age, 3)))

        for r in recs:
            rule, token = KINDS[r.kind]
            phase = self._phase_at(r.t_send)
            path = MAIN_PATH if rule != "cold" else cold_path(r.host_path[0])
            tag = f"{self.load.run_id}-{r.seq}"
            reached = self.recorder.seen(tag)
            valid = token == "valid"
            if r.error:
                outcome = f"error {r.error}"
            elif r.status == 200:
                outcome = "200"
            elif 500 <= r.status:
                outcome = "5xx"
            else:
                outcome = str(r.status)
            by_kind[r.kind][outcome] += 1
            by_kind[r.kind]["sent"] += 1
            pk = by_phase[phase]
            pk["sent"] += 1
            pk["valid sent" if valid else "invalid sent"] += 1
            if r.latency is not None and not r.error:
                lat[phase].append(r.latency)
            where = f"#{r.seq} {r.kind} at {r.t_send - self.t0:.2f}s ({phase})"
            # Security: only valid tokens are allowed, and only allowed requests reach the upstream.
            if not valid and (reached or (r.status is not None and 200 <= r.status < 300)):
                pk["invalid allowed"] += 1
                bad("invalid allowed", r=r, text=f"{where}: status {r.status}, reached upstream: {reached}")
            if reached and r.status != 200:
                bad("denied but reached upstream", r=r, text=f"{where}: status {r.status}")
            if r.status == 200 and not (reached and r.upstream_header):
                bad("200 not from the upstream", r=r, text=f"{where}: recorder saw it: {reached}")
            if r.error:
                pk["errors"] += 1
                bad("connection errors or timeouts", r=r, text=f"{where}: {r.error} after {r.latency:.2f}s")
                continue
            if r.status >= 500:
                pk["5xx"] += 1
                bad("5xx", r=r, text=f"{where}: {r.status}")
            if r.latency > max_wait + WAIT_SLACK:
                bad("held past maxWaitMs", r=r, text=f"{where}: answered after {r.latency:.2f}s")
            if not valid:
                if r.status != expected_deny(r.kind):
                    bad("wrong deny status", r=r, text=f"{where}: {r.status}, expected {expected_deny(r.kind)}")
                continue
            # Availability by the staleness rule, from the JWKS server's own log.
            times = good[path]
            i_send = bisect.bisect_right(times, r.t_send)
            g_send = times[i_send - 1] if i_send else None
            i_done = bisect.bisect_right(times, r.t_done)
            g_done = times[i_done - 1] if i_done else None
            must_allow = g_send is not None and r.t_done <= g_send + self.bound
            must_deny = g_done is None or r.t_send > g_done + self.bound + LAND_MARGIN
            if r.status == 200:
                pk["valid 200"] += 1
                if g_done is not None:  # how old the newest good answer was, at least, when keys allowed this
                    oldest[phase] = max(oldest.get(phase, 0.0), r.t_send - g_done)
            elif r.status == 401:
                pk["valid 401"] += 1
            if must_allow:
                pk["valid, keys usable"] += 1
                if r.status != 200:
                    pk["valid refused within bound"] += 1
                    age = r.t_done - g_send
                    bad("valid token refused while keys are usable", r=r, age=age,
                        text=f"{where}: {r.status} after {r.latency:.2f}s; last good JWKS answer {age:.2f}s "
                             f"before (bound {self.bound}s)")
            elif must_deny:
                pk["valid, no usable keys"] += 1
                if r.status == 200:
                    pk["valid allowed past bound"] += 1
                    age = "never" if g_done is None else f"{r.t_send - g_done:.2f}s before"
                    bad("valid token allowed without usable keys (past TTL + maxStale)", r=r,
                        text=f"{where}: last good JWKS answer {age} (bound {self.bound}s)")
            else:
                pk["valid, in between"] += 1
            if rule == "cold" and g_done is None:
                cold_waited.append(r.latency)
                # Sent before a reload was written, answered after it was applied: paused for keys
                # in the configuration the reload replaced.
                if any(r.t_send < w0 and r.t_done > w1 for w0, w1 in self.reload_windows):
                    across_reload.append(r.latency)
        for key, items in examples.items():
            more = f" (and {counts[key] - len(items)} more)" if counts[key] > len(items) else ""
            v.append(f"{key}: {counts[key]} requests: {' | '.join(items)}{more}")

        # Each fault seen by the filter as its documented cause.
        for ph in self.phases:
            if ph.until == "failure" and not ph.met:
                v.append(f"fault {ph.name} at {ph.start - self.t0:.1f}s: the filter counted no "
                         f"failed fetch within {ph.end - ph.start:.1f}s")
            if ph.until == "good" and not ph.met:
                v.append(f"{ph.name} at {ph.start - self.t0:.1f}s: no good JWKS fetch within "
                         f"{ph.end - ph.start:.1f}s of the IdP being back (backoff cap {MAX_BACKOFF:.0f}s)")
        for (name, mode), causes in self.failed_causes.items():
            want = FAULT_CAUSE[mode]
            if causes and want not in causes:
                v.append(f"fault {name}: failures counted as {dict(causes)}, the README names `..._{want}`")
        # Cold start in an outage: 401 (checked above: must_deny), after waiting about maxWaitMs.
        if self.cold and not any(max_wait - 0.1 <= x <= max_wait + WAIT_SLACK for x in cold_waited):
            v.append(f"cold start in outage: no valid request waited about maxWaitMs ({max_wait}s) before "
                     f"its 401: {sorted(cold_waited)[:10]}")
        if self.cold and not across_reload:
            v.append("cold start in outage: no request was waiting for keys across a reload (not exercised)")
        st = self.final_stats
        # Envoy and the VM.
        if not self.alive:
            v.append("Envoy exited")
        if not self.ready:
            v.append("Envoy's /ready is not 200 at the end")
        wasm_after = {k: int(x) for k, x in st.items() if k.startswith("wasm.") and x.lstrip("-").isdigit()}
        for k in ("wasm.apirule.vm_reload", "wasm.apirule.vm_reload_failure", "wasm.apirule.vm_reload_backoff"):
            if wasm_after.get(k, 0):
                v.append(f"{k} = {wasm_after[k]}: a wasm VM failed")
        active = wasm_after.get("wasm.envoy.wasm.runtime.v8.active", 0)
        if active != self.wasm_before.get("wasm.envoy.wasm.runtime.v8.active", -1):
            v.append(f"wasm.envoy.wasm.runtime.v8.active {self.wasm_before.get('wasm.envoy.wasm.runtime.v8.active')} "
                     f"-> {active}")
        unexpected = unexpected_log_lines(self.log_text)
        if unexpected:
            v.append(f"{len(unexpected)} unexpected error lines in Envoy's log: {unexpected[:5]}")
        refused_logged = len(re.findall(r"apirule: configuration refused", self.log_text))
        if self.refused_reloads and not refused_logged:
            v.append("the refused configuration was not logged")
        self.summary = self._summary(by_kind, by_phase, lat, recs, wasm_after, cold_waited)
        self.summary["oldest_allowing_keys_s"] = {k: round(x, 2) for k, x in oldest.items()}
        self.summary["broken"] = self.broken
        self.summary["waiting_across_reload_ms"] = sorted(round(x * 1000) for x in across_reload)
        return self

    def _summary(self, by_kind, by_phase, lat, recs, wasm_after, cold_waited):
        st = self.final_stats
        dur = self.t1 - self.t0
        lates = sorted(r.late for r in recs)

        def pct(xs, q):
            return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")

        counters = {k.split(".", 1)[1]: int(x) for k, x in st.items() if k.startswith("wasmcustom.")}
        ecds = {k.rsplit(".", 1)[1]: x for k, x in st.items()
                if k.startswith("extension_config_discovery.http_filter.apirule.")}
        phases = Counter(p.name for p in self.phases)
        return {
            "form": self.form, "profile": self.profile, "seed": self.seed, "rate": self.rate,
            "seconds_of_load": round(dur, 1), "requests": len(recs),
            "achieved_rate": round(len(recs) / dur, 1) if dur else 0,
            "send_lateness_p50_ms": round(pct(lates, 0.5) * 1000, 1),
            "send_lateness_p99_ms": round(pct(lates, 0.99) * 1000, 1),
            "max_connections": self.load.max_conns,
            "by_kind": {k: dict(c) for k, c in by_kind.items()},
            "by_phase": {k: dict(c) for k, c in by_phase.items()},
            "phase_counts": dict(phases),
            "latency_ms": {k: {"p50": round(pct(sorted(x), 0.5) * 1000, 1), "p99": round(pct(sorted(x), 0.99) * 1000, 1),
                               "max": round(max(x) * 1000, 1)} for k, x in lat.items() if x},
            "cold_401_latency_ms": sorted(round(x * 1000) for x in cold_waited)[-5:],
            "failed_causes": {name: dict(c) for (name, _), c in self.failed_causes.items()},
            "reloads": self.reloads, "refused_reloads": self.refused_reloads, "ecds": ecds,
            "counters": counters, "wasm": wasm_after, "jwks_answers": Counter(l for _, _, l in self.jwks.answers),
            "upstream_requests": len(self.recorder.tags), "violations": list(self.violations),
        }

    def report(self):
        return render_report(self.summary)


# Errors Envoy logs for the refused configuration the soak pushes on purpose; anything else at
# error or critical level is unexpected.
EXPECTED_ERRORS = (
    "apirule: configuration refused",
    "Wasm VM failed Failed to configure base Wasm plugin",
    "Plugin apirule failed to load",
    "Plugin configured to fail closed failed to load",
)


def unexpected_log_lines(text):
    out = []
    for line in text.splitlines():
        if "[critical]" in line or "[error]" in line:
            if not any(e in line for e in EXPECTED_ERRORS):
                out.append(line[:300])
        elif "panicked" in line or "Uncaught" in line:
            out.append(line[:300])
    return out


KIND_ORDER = list(KINDS)
PHASE_ORDER = ["warm-up", "killed", "slow", "hang", "invalid-json", "wrong-content", "http-500", "huge-body",
               "healthy", "reload", "reload in outage", "cold start in outage", "long outage", "recovery", "final"]


def render_report(s):
    out = []
    p = s["profile"]
    out.append(f"Faults under load ({s['form']} form, seed {s['seed']}): {s['requests']} requests in "
               f"{s['seconds_of_load']} s ({s['achieved_rate']}/s, target {s['rate']}/s; send lateness p50 "
               f"{s['send_lateness_p50_ms']} ms, p99 {s['send_lateness_p99_ms']} ms; up to {s['max_connections']} "
               f"connections); cacheTtlSeconds {p['ttl']}, maxStaleSeconds {p['max_stale']}, fetchTimeoutMs "
               f"{p['fetch_timeout_ms']}, maxWaitMs {p['max_wait_ms']}, minRefetchSeconds {p['min_refetch']}.")
    out.append("")
    cols = ["sent", "200", "401", "403", "5xx"]
    out.append("| kind | " + " | ".join(cols) + " | other |")
    out.append("|---" * (len(cols) + 2) + "|")
    tot = Counter()
    for k in KIND_ORDER:
        c = s["by_kind"].get(k)
        if not c:
            continue
        other = {o: n for o, n in c.items() if o not in cols}
        tot.update(c)
        out.append(f"| {k} | " + " | ".join(str(c.get(x, 0)) for x in cols) + " | "
                   + (", ".join(f"{o}: {n}" for o, n in sorted(other.items())) or "") + " |")
    other = {o: n for o, n in tot.items() if o not in cols}
    out.append("| **all** | " + " | ".join(str(tot.get(x, 0)) for x in cols) + " | "
               + (", ".join(f"{o}: {n}" for o, n in sorted(other.items())) or "") + " |")
    out.append("")
    pcols = ["sent", "valid sent", "valid 200", "valid 401", "valid, keys usable", "valid refused within bound",
             "valid, no usable keys", "valid allowed past bound", "valid, in between", "invalid sent",
             "invalid allowed", "5xx", "errors"]
    out.append("| phase (times) | " + " | ".join(pcols) + " | p50 / p99 / max ms |")
    out.append("|---" * (len(pcols) + 2) + "|")
    def order(n):
        base = n.split(" (")[0]
        return (PHASE_ORDER.index(base) if base in PHASE_ORDER else len(PHASE_ORDER), n)

    names = sorted(s["by_phase"], key=order)
    for n in names:
        c = s["by_phase"][n]
        l = s["latency_ms"].get(n, {})
        out.append(f"| {n} ({s['phase_counts'].get(n, 0)}) | " + " | ".join(str(c.get(x, 0)) for x in pcols)
                   + f" | {l.get('p50', '-')} / {l.get('p99', '-')} / {l.get('max', '-')} |")
    out.append("")
    old = s.get("oldest_allowing_keys_s", {})
    if old:
        worst = max(old, key=old.get)
        out.append(f"Oldest key set that allowed a valid request: {old[worst]} s after its URL's last good JWKS "
                   f"answer ({worst}; TTL + maxStale = {p['ttl'] + p['max_stale']} s).")
    out.append(f"Fetch failures counted per fault: {s['failed_causes']}")
    out.append(f"JWKS server answers: {dict(s['jwks_answers'])}")
    out.append(f"Reloads applied: {s['reloads']}, refused: {s['refused_reloads']} (ECDS: "
               + ", ".join(f"{k} {s['ecds'].get(k)}" for k in ("config_reload", "update_rejected", "update_success")) + ")")
    c = s["counters"]
    out.append("Filter counters: " + ", ".join(f"{k} {v}" for k, v in sorted(c.items()) if v))
    w = s["wasm"]
    out.append("Wasm: " + ", ".join(f"{k} {v}" for k, v in sorted(w.items())))
    out.append(f"Cold start 401 latencies (largest, ms): {s['cold_401_latency_ms']}")
    across = s.get("waiting_across_reload_ms", [])
    out.append(f"Valid requests waiting for keys across a reload, all 401 (their latencies, ms): {len(across)}"
               + (f" ({across[0]}-{across[-1]})" if across else ""))
    out.append(f"Upstream received {s['upstream_requests']} requests.")
    out.append("Violations: " + ("none" if not s["violations"] else ""))
    for x in s["violations"]:
        out.append(f"  - {x}")
    return "\n".join(out)


def run_soak(*, workdir, seconds=40, rate=150, seed=None, log=print, wrong_content=None):
    """Runs the soak; returns the Soak (its .violations, .summary and .report())."""
    if seed is None:
        seed = random.SystemRandom().randrange(1 << 32)
    soak = Soak(workdir=workdir, seconds=seconds, rate=rate, seed=seed, log=log, wrong_content=wrong_content)
    soak.run()
    with open(os.path.join(str(workdir), "soak-summary.json"), "w") as f:
        json.dump(soak.summary, f, indent=1, default=str)
    return soak
