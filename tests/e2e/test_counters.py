"""README, "What clients get": every counter the table names moves by exactly the requests that
should move it, as Envoy shows them (summed over the workers). The ones not here are proven where
their cause is made: apirule_requests_paused and apirule_token_cache_hits
(test_key_management.py), apirule_jwks_fetch_ok (test_key_management.py), the fetch failures by
cause and apirule_jwks_stale_serves (test_jwks.py), the dry-run ones (test_dry_run.py)."""
import time

import pytest

from harness import apirules as A
from harness import tokens as T
from harness.servers import IntrospectionServer

KEYS = "/counters/keys"
ISSUER = "https://idp.counters.test"
NOWHERE = "http://jwks-nowhere.local/keys"
INTROSPECT = "http://introspect-counters.local/i"

RULES = [
    A.apirule("count", "count.test",
              A.rule("/open", ["GET"], A.strategy("no_auth")),
              A.rule("/jwt", ["GET"], A.jwt([KEYS])),
              A.rule("/dup.*", ["GET"], A.strategy("noop")),
              A.rule("/du.*", ["GET"], A.strategy("noop")),
              A.rule("/nowhere", ["GET"], A.jwt([NOWHERE])),
              A.rule("/intro", ["GET"], A.strategy("oauth2_introspection", {"introspection_url": INTROSPECT}))),
    {"apiVersion": "gateway.kyma-project.io/v2", "kind": "APIRule",
     "metadata": {"name": "count2", "namespace": "default"},
     "spec": {"hosts": ["count2.test"], "gateway": "kyma-system/kyma-gateway",
              "service": {"name": "httpbin", "namespace": "default", "port": 8000},
              "rules": [{"path": "/{**}", "methods": ["GET"],
                         "jwt": {"authentications": [{"issuer": ISSUER, "jwksUri": A.jwks_url(KEYS)}]}}]}},
]

DENIED = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 500: "other"}


@pytest.fixture(scope="module")
def idp():
    srv = IntrospectionServer().start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def gw(launcher, jwks_server, keys, idp):
    jwks_server.serve(KEYS, T.jwks(keys.rsa.jwk()))
    # The JWKS URL /nowhere uses is mapped to a cluster Envoy does not have: every fetch fails to
    # dispatch.
    cfg = A.plugin_config(RULES, jwks_paths=[KEYS], jwks_clusters={NOWHERE: "no_such_cluster"},
                          introspection={"clusters": {INTROSPECT: "idp"}})
    g = launcher(cfg, name="counters", clusters={"idp": idp.address})
    yield g
    g.stop()


NAMES = ["requests_allowed", "requests_passed_through", "requests_denied", "authorization_calls",
         "jwks_fetch_failed", "jwks_fetch_failed_dispatch"] + [f"requests_denied_{n}" for n in DENIED.values()]


def counters(gw):
    return {n: gw.counter(f"apirule_{n}") for n in NAMES}


def test_each_answer_moves_its_counters(gw, keys, idp):
    token = T.mint(keys.rsa, T.std_claims())
    idp.answer("opaque-1", {"active": True, "sub": "alice"})
    # Warm up: the first JWKS fetch of the module, outside the counts below.
    assert gw.get("/jwt", host="count.test", token=token).status == 200
    before = counters(gw)
    sent = [
        (gw.get("/open", host="count.test"), 200),
        (gw.get("/jwt", host="count.test", token=token), 200),
        (gw.get("/intro", host="count.test", token="opaque-1"), 200),
        (gw.get("/x", host="ungoverned.counters.test"), 200),
        (gw.raw_request("GET", "/open%zz", host="count.test"), 400),
        (gw.get("/jwt", host="count.test"), 401),
        (gw.get("/nowhere", host="count.test", token=token), 401),
        (gw.get("/x", host="count2.test"), 403),
        (gw.request("POST", "/jwt", host="count.test", token=token), 404),
        (gw.get("/dup", host="count.test"), 500),
    ]
    for r, want in sent:
        assert r.status == want, r
    after = counters(gw)
    delta = {n: after[n] - before[n] for n in NAMES}
    # The failed dispatch is retried in the background (1 s, then backing off): at least once here.
    failed = delta.pop("jwks_fetch_failed")
    assert failed == delta.pop("jwks_fetch_failed_dispatch") >= 1, failed
    assert delta == {
        "requests_allowed": 3, "requests_passed_through": 1, "requests_denied": 6,
        "requests_denied_bad_request": 1, "requests_denied_unauthorized": 2, "requests_denied_forbidden": 1,
        "requests_denied_not_found": 1, "requests_denied_other": 1,
        "authorization_calls": 1,
    }, delta


def wait_for_log(gw, line, timeout=5.0):
    """Envoy writes its log asynchronously: wait for the line a little."""
    deadline = time.monotonic() + timeout
    while line not in gw.log_text():
        assert time.monotonic() < deadline, f"not in Envoy's log: {line}"
        time.sleep(0.05)


def test_every_deny_is_logged_at_debug_with_its_rule_and_reason(gw):
    """README, "What clients get": each deny at debug level (the tests run Envoy with
    --component-log-level wasm:debug) names the rule and the reason; one no rule made has none."""
    assert gw.get("/jwt", host="count.test").status == 401
    wait_for_log(gw, 'apirule: deny GET count.test "/jwt" with 401 (rule default/count spec.rules[1]): ')
    assert gw.raw_request("GET", "/open%zz", host="count.test").status == 400
    wait_for_log(gw, 'apirule: deny GET count.test "/open%zz" with 400: ')
    # The query is never logged: it may carry a token.
    assert gw.get("/jwt?access_token=secret-token-value", host="count.test").status == 401
    wait_for_log(gw, 'apirule: deny GET count.test "/jwt" with 401 (rule default/count spec.rules[1]): ')
    assert "secret-token-value" not in gw.log_text()


def test_fetch_failures_are_logged_at_warn_and_kid_changes_at_info(gw, keys):
    """README, "What clients get": a failed fetch at warn; a fetch that changes a set's kids at info."""
    assert gw.get("/nowhere", host="count.test", token=T.mint(keys.rsa, T.std_claims())).status == 401
    wait_for_log(gw, "[warning][wasm]")
    log = gw.log_text()
    assert any("[warning][wasm]" in line and f"apirule: JWKS {NOWHERE} fetch failed: " in line
               for line in log.splitlines()), log[-3000:]
    # The module's first fetch of KEYS brought kid rsa-1 where there was none.
    assert any("[info][wasm]" in line and f"apirule: JWKS {A.jwks_url(KEYS)}: kids added [\"rsa-1\"], removed []" in line
               for line in log.splitlines()), log[-3000:]
