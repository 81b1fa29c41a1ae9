"""Key management across the workers of one proxy (issue: one JWKS fetch per proxy, rotation
without a 401, bounded fetches, two timeouts, freshness, backoff, metrics).

Every Envoy here runs `--concurrency 4`; every request is a new connection, so requests spread
over the four worker VMs. Fetch counts are read from the JWKS server, counters from Envoy's admin
`/stats` (`wasmcustom.apirule_*`). Contract: docs/behaviour.md "JWKS".
"""
import random
import time

import pytest

from harness import apirules as A
from harness import tokens as T
from harness.checks import assert_401, assert_forwarded


def host(name):
    return f"{name}.keys.test"


def jwt_rule(name, paths):
    return A.apirule(f"keys-{name}", host(name), A.rule("/.*", ["GET"], A.jwt([A.jwks_url(p) for p in paths])))


def valid(keys, key=None):
    return T.mint(key or keys.rsa, T.std_claims())


# --- one fetch per proxy, rotation, floods, two timeouts --------------------------------------------

MAIN = {"count": "/km/count", "rotate": "/km/rotate", "flood": "/km/flood", "slow": "/km/slow"}


@pytest.fixture(scope="module")
def gw4(launcher, jwks_server, keys):
    for path in MAIN.values():
        jwks_server.serve(path, T.jwks(keys.rsa.jwk()))
    jwks_server.serve(MAIN["slow"], T.jwks(keys.rsa.jwk()), delay=2.5)
    rules = [jwt_rule(name, [path]) for name, path in MAIN.items()]
    cfg = A.plugin_config(rules, jwks_paths=list(MAIN.values()), cache_ttl=300, min_refetch=10,
                          fetch_timeout_ms=5000)
    cfg["jwks"]["maxWaitMs"] = 1000
    g = launcher(cfg, name="keys-4", concurrency=4)
    yield g
    g.stop()


def test_one_fetch_per_proxy_not_per_worker(gw4, jwks_server, keys):
    before = gw4.counter("apirule_jwks_fetch_ok")
    for _ in range(200):
        assert_forwarded(gw4.get("/x", host=host("count"), token=valid(keys)))
    assert jwks_server.hits(MAIN["count"]) == 1, "every worker must use the one shared fetch"
    assert gw4.counter("apirule_jwks_fetch_ok") - before == 1
    assert gw4.counter("apirule_requests_allowed") >= 200


def test_rotation_right_after_a_fetch_gets_no_401(gw4, jwks_server, keys):
    h = host("rotate")
    assert_forwarded(gw4.get("/x", host=h, token=valid(keys)))
    assert jwks_server.hits(MAIN["rotate"]) == 1
    jwks_server.serve(MAIN["rotate"], T.jwks(keys.rsa.jwk(), keys.rsa2.jwk()))
    # At once (well within minRefetchSeconds of the first fetch): the first unknown kid refetches.
    assert_forwarded(gw4.get("/x", host=h, token=valid(keys, keys.rsa2)))
    assert jwks_server.hits(MAIN["rotate"]) == 2
    for _ in range(20):  # every worker now has the new key without fetching again
        assert_forwarded(gw4.get("/x", host=h, token=valid(keys, keys.rsa2)))
    assert jwks_server.hits(MAIN["rotate"]) == 2


def test_a_flood_of_random_kids_is_rate_limited(gw4, jwks_server, keys):
    h = host("flood")
    assert_forwarded(gw4.get("/x", host=h, token=valid(keys)))
    base = jwks_server.hits(MAIN["flood"])
    for _ in range(60):
        forged = T.mint(keys.rsa, T.std_claims(), kid=f"random-{random.getrandbits(64):x}")
        assert_401(gw4.get("/x", host=h, token=forged, timeout=5), token_presented=True)
    # minRefetchSeconds 10: the first unknown kid may refetch, the rest are denied without one.
    assert jwks_server.hits(MAIN["flood"]) - base == 1
    assert_forwarded(gw4.get("/x", host=h, token=valid(keys)))


def test_a_slow_idps_late_answer_is_cached(gw4, jwks_server, keys):
    """The IdP answers in 2.5 s: the request gives up at maxWaitMs (1 s) with a 401, the fetch
    runs on (fetchTimeoutMs 5 s) and fills the cache, so the next request passes without a fetch."""
    h = host("slow")
    start = time.monotonic()
    r = gw4.get("/x", host=h, token=valid(keys), timeout=10)
    waited = time.monotonic() - start
    assert_401(r, token_presented=True)
    assert 0.9 <= waited < 2.0, f"denied after {waited:.2f}s, maxWaitMs is 1 s"
    time.sleep(2.5)
    assert jwks_server.hits(MAIN["slow"]) == 1
    for _ in range(8):
        assert_forwarded(gw4.get("/x", host=h, token=valid(keys)))
    assert jwks_server.hits(MAIN["slow"]) == 1, "the late answer must be used, not fetched again"


def test_counters_after_known_traffic(gw4, keys):
    """The counters the README names, as Envoy shows them."""
    h = host("count")
    allowed, denied, unauth = (gw4.counter(n) for n in (
        "apirule_requests_allowed", "apirule_requests_denied", "apirule_requests_denied_unauthorized"))
    hits = gw4.counter("apirule_token_cache_hits")
    token = valid(keys)
    for _ in range(10):
        assert_forwarded(gw4.get("/x", host=h, token=token))
    for _ in range(5):
        assert_401(gw4.get("/x", host=h), token_presented=False)
    assert gw4.counter("apirule_requests_allowed") - allowed == 10
    assert gw4.counter("apirule_requests_denied") - denied == 5
    assert gw4.counter("apirule_requests_denied_unauthorized") - unauth == 5
    # The same token on 4 workers: at most one verification per worker, the rest are cache hits.
    assert gw4.counter("apirule_token_cache_hits") - hits >= 6
    assert gw4.counter("apirule_requests_paused") >= 1  # the first fetches of this module


# --- storms: minRefetchSeconds 0 ------------------------------------------------------------------

@pytest.fixture(scope="module")
def storm_gw(launcher, jwks_server, keys):
    for p in ("/km/storm1", "/km/storm2"):
        jwks_server.serve(p, T.jwks(keys.rsa.jwk()))
    rules = [A.apirule("keys-storm", host("storm"),
                       A.rule("/.*", ["GET"], A.jwt([A.jwks_url("/km/storm1"), A.jwks_url("/km/storm2")])))]
    g = launcher(A.plugin_config(rules, jwks_paths=["/km/storm1", "/km/storm2"], min_refetch=0),
                 name="keys-storm", concurrency=4)
    yield g
    g.stop()


def test_one_request_with_an_unknown_kid_causes_at_most_one_fetch_per_url(storm_gw, jwks_server, keys):
    assert_forwarded(storm_gw.get("/x", host=host("storm"), token=valid(keys)))
    base = [jwks_server.hits(p) for p in ("/km/storm1", "/km/storm2")]
    forged = T.mint(keys.rsa, T.std_claims(), kid="unknown")
    r = storm_gw.get("/x", host=host("storm"), token=forged, timeout=5)
    assert_401(r, token_presented=True)
    after = [jwks_server.hits(p) for p in ("/km/storm1", "/km/storm2")]
    assert [a - b for a, b in zip(after, base)] == [1, 1], f"fetches per URL: {after} from {base}"
    assert r.elapsed < 1.5


# --- freshness, revocation, backoff --------------------------------------------------------------

FRESH = {"cc": "/km/cc", "capped": "/km/capped", "revoke": "/km/revoke", "backoff": "/km/backoff"}


@pytest.fixture(scope="module")
def fresh_gw(launcher, jwks_server, keys):
    doc = T.jwks(keys.rsa.jwk(), keys.rsa2.jwk())
    jwks_server.serve(FRESH["cc"], doc, headers=[("Cache-Control", "public, max-age=1")])
    jwks_server.serve(FRESH["capped"], doc, headers=[("Cache-Control", "max-age=86400")])
    jwks_server.serve(FRESH["revoke"], doc)
    jwks_server.serve(FRESH["backoff"], doc)
    rules = [jwt_rule(name, [path]) for name, path in FRESH.items()]
    cfg = A.plugin_config(rules, jwks_paths=list(FRESH.values()), cache_ttl=2, max_stale=60, min_refetch=10)
    cfg["jwks"].update({"minCacheTtlSeconds": 1, "maxCacheTtlSeconds": 3})
    g = launcher(cfg, name="keys-fresh", concurrency=4)
    yield g
    g.stop()


def test_cache_control_within_bounds_and_background_refresh(fresh_gw, jwks_server, keys):
    """max-age=1 makes the TTL 1 s (refreshed at 0.9 s); max-age=86400 is capped at 3 s (2.7 s).
    The refreshes happen on the tick: no request waits for them."""
    for name in ("cc", "capped"):
        assert_forwarded(fresh_gw.get("/x", host=host(name), token=valid(keys)))
    paused = fresh_gw.counter("apirule_requests_paused")
    base = {n: jwks_server.hits(FRESH[n]) for n in ("cc", "capped")}
    end = time.monotonic() + 6.5
    while time.monotonic() < end:
        for name in ("cc", "capped"):
            r = fresh_gw.get("/x", host=host(name), token=valid(keys))
            assert_forwarded(r)
            assert r.elapsed < 0.5
        time.sleep(0.1)
    cc = jwks_server.hits(FRESH["cc"]) - base["cc"]
    capped = jwks_server.hits(FRESH["capped"]) - base["capped"]
    assert 4 <= cc <= 9, f"max-age=1: {cc} refreshes in 6.5 s"
    assert 1 <= capped <= 3, f"max-age=86400 capped at 3 s: {capped} refreshes in 6.5 s"
    assert fresh_gw.counter("apirule_requests_paused") == paused, "a request waited for a refresh"


def test_revocation_after_the_ttl(fresh_gw, jwks_server, keys):
    h = host("revoke")
    assert_forwarded(fresh_gw.get("/x", host=h, token=valid(keys, keys.rsa2)))
    jwks_server.serve(FRESH["revoke"], T.jwks(keys.rsa.jwk()))  # the IdP drops rsa-2
    removed = time.monotonic()
    while fresh_gw.get("/x", host=h, token=valid(keys, keys.rsa2)).status == 200:
        assert time.monotonic() - removed < 3.0, "a removed key still verifies past cacheTtlSeconds (2 s)"
        time.sleep(0.1)
    assert_401(fresh_gw.get("/x", host=h, token=valid(keys, keys.rsa2)), token_presented=True)
    assert_forwarded(fresh_gw.get("/x", host=h, token=valid(keys)))


def test_backoff_schedule_while_the_idp_fails(fresh_gw, jwks_server, keys):
    """Stale keys keep serving while the background retries back off: 1 s, 2 s, 4 s after the
    first failure's retry, each scaled by [0.8, 1.2); retries run on the 250 ms idle tick, so each
    gap may be up to a tick longer."""
    h = host("backoff")
    assert_forwarded(fresh_gw.get("/x", host=h, token=valid(keys)))
    log_start = len(jwks_server.log)
    jwks_server.fail(FRESH["backoff"], 500)
    time.sleep(12.0)  # the refresh at 1.8 s (90% of the TTL) fails first, then three retries
    times = [t for t, p, _ in jwks_server.log[log_start:] if p == FRESH["backoff"]]
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert len(gaps) >= 3, f"retries: {gaps}"
    for i, gap in enumerate(gaps[:3]):
        base = 2 ** i
        assert 0.8 * base - 0.05 <= gap <= 1.2 * base + 0.4, f"gap {i + 1} is {gap:.2f}s, schedule {base} s: {gaps}"
    assert_forwarded(fresh_gw.get("/x", host=h, token=valid(keys)))  # the stale set serves
    jwks_server.serve(FRESH["backoff"], T.jwks(keys.rsa.jwk()))
