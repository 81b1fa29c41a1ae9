"""Faults under load, short form (issue 11): about 40 s of constant load through Envoy while the
JWKS server is killed, restarted, slowed past the fetch timeout, answers invalid JSON, wrong content,
HTTP 500 and a body over the limit, and while the filter's configuration is replaced at run time
(also by one it refuses, and by a new APIRule whose IdP is down). The rules every request is judged
by, and their sources in the docs, are in harness/soak.py; `make soak` runs the long form.

SOAK_SEED repeats a run's random choices (kinds, tokens, variants; the timing is the machine's);
the seed is printed with the report.
"""
import os
import time

from harness import apirules as A
from harness import tokens as T
from harness.checks import assert_forwarded
from harness.soak import run_soak

RATE = 120


def test_faults_under_load(artifacts, tmp_path):
    seed = int(os.environ["SOAK_SEED"]) if os.environ.get("SOAK_SEED") else None
    soak = run_soak(workdir=tmp_path, seconds=40, rate=RATE, seed=seed)
    report = soak.report()
    print("\n" + report)
    s = soak.summary
    # The run proved something: the client kept its rate, every phase had valid and invalid
    # traffic, and the long outage went past the stale bound.
    assert s["requests"] >= 0.8 * RATE * s["seconds_of_load"], f"the client fell behind its rate\n{report}"
    seen = {name.split(" (")[0]: c for name, c in s["by_phase"].items()}
    for name in ("warm-up", "killed", "slow", "invalid-json", "wrong-content", "http-500", "huge-body",
                 "reload", "reload in outage", "cold start in outage", "long outage", "recovery"):
        phase = seen.get(name, {})
        assert phase.get("valid sent", 0) >= 20 and phase.get("invalid sent", 0) >= 20, (name, phase, report)
    past = seen["long outage"].get("valid, no usable keys", 0) + seen["recovery"].get("valid, no usable keys", 0)
    assert past >= 10, f"the long outage never went past TTL + maxStale\n{report}"
    assert not soak.violations, report


def test_a_key_set_without_a_usable_key_keeps_the_last_good_set(launcher, jwks_server, keys):
    """The soak's finding (fixed): a JWKS answer whose keys are all unusable counted as a good fetch
    and replaced the last good set. cacheTtlSeconds 1, maxStaleSeconds 30: the refresh after 0.9 s
    gets `{"keys": []}` or a set whose only key is under 2048 bits; for the next 3 s (far within
    TTL + maxStale) the last good set keeps verifying, and the answer is counted as `..._invalid`
    (behaviour.md, "JWKS": a body "that is no JWKS or has no usable key ... none replaces the last
    good set")."""
    small = T.SigningKey.rsa(keys.rsa.kid, bits=1024)
    bodies = {"empty": {"keys": []}, "small": T.jwks(small.jwk())}
    paths = {name: f"/soak-nousable/{name}" for name in bodies}
    for p in paths.values():
        jwks_server.serve(p, T.jwks(keys.rsa.jwk()))
    hosts = {name: f"{name}.nousable.test" for name in bodies}
    rules = [A.apirule(f"nousable-{n}", hosts[n], A.rule("/.*", ["GET"], A.jwt([paths[n]]))) for n in bodies]
    g = launcher(A.plugin_config(rules, jwks_paths=list(paths.values()), cache_ttl=1, max_stale=30),
                 name="nousable")
    try:
        token = T.mint(keys.rsa, T.std_claims())
        for n in bodies:
            assert_forwarded(g.get("/x", host=hosts[n], token=token))
        invalid = g.counter("apirule_jwks_fetch_failed_invalid")
        for n, body in bodies.items():
            jwks_server.serve(paths[n], body)
        end = time.monotonic() + 3.0
        statuses = {n: [] for n in bodies}
        while time.monotonic() < end:
            for n in bodies:
                statuses[n].append(g.get("/x", host=hosts[n], token=token).status)
            time.sleep(0.05)
        assert all(set(s) == {200} for s in statuses.values()), {n: sorted(set(s)) for n, s in statuses.items()}
        assert g.counter("apirule_jwks_fetch_failed_invalid") >= invalid + 2
    finally:
        g.stop()
