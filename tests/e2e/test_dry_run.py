"""Dry-run mode (issue 10): an APIRule annotated `apirule-wasm.kyma-project.io/mode: dry-run` is
decided as usual, its decision is logged and counted, and the request reaches the backend exactly
as the client sent it. An APIRule without the annotation on another host of the same plugin is
still enforced.

Contract: docs/behaviour.md "Dry-run mode". One Envoy for the module (two workers); counters from
its admin `/stats`, log lines from its log.
"""
import time

import pytest

from harness import apirules as A
from harness import tokens as T
from harness.checks import assert_401, assert_forwarded

KEYS = "/dryrun/keys"
SLOW_KEYS = "/dryrun/slow"
ISSUER = "https://idp.dryrun.test"
MODE = "apirule-wasm.kyma-project.io/mode"
V1 = "dry-v1.dryrun.test"
V2 = "dry-v2.dryrun.test"
ENFORCED = "enforced.dryrun.test"
SLOW = "slow.dryrun.test"


def dry_run(apirule):
    apirule["metadata"]["annotations"] = {MODE: "dry-run"}
    return apirule


V1_RULE = dry_run(A.apirule(
    "dry-v1", V1,
    A.rule("/.*", ["GET"], A.jwt([KEYS], trusted_issuers=[ISSUER]),
           mutators=[{"handler": "header", "config": {"headers": {"X-User": "{{ print .Subject }}"}}}])))

V2_RULE = dry_run({
    "apiVersion": "gateway.kyma-project.io/v2", "kind": "APIRule",
    "metadata": {"name": "dry-v2", "namespace": "default"},
    "spec": {"hosts": [V2], "gateway": "kyma-system/kyma-gateway",
             "service": {"name": "httpbin", "namespace": "default", "port": 8000},
             "rules": [{"path": "/*", "methods": ["GET"],
                        "jwt": {"authentications": [{"issuer": ISSUER, "jwksUri": A.jwks_url(KEYS)}]},
                        "request": {"headers": {"X-Env": "prod"}}}]},
})

ENFORCED_RULE = A.apirule("enforced", ENFORCED, A.rule("/.*", ["GET"], A.jwt([KEYS], trusted_issuers=[ISSUER])))

SLOW_RULE = dry_run(A.apirule("dry-slow", SLOW, A.rule("/.*", ["GET"], A.jwt([SLOW_KEYS], trusted_issuers=[ISSUER]))))


@pytest.fixture(scope="module")
def gw(launcher, jwks_server, keys):
    jwks_server.serve(KEYS, T.jwks(keys.rsa.jwk()))
    jwks_server.serve(SLOW_KEYS, T.jwks(keys.rsa.jwk()), delay=2.5)
    cfg = A.plugin_config([V1_RULE, V2_RULE, ENFORCED_RULE, SLOW_RULE], jwks_paths=[KEYS, SLOW_KEYS],
                          fetch_timeout_ms=5000)
    g = launcher(cfg, name="dry-run")
    yield g
    g.stop()


@pytest.fixture(scope="module")
def token(keys):
    return T.mint(keys.rsa, T.std_claims(iss=ISSUER, sub="alice"))


COUNTERS = ("apirule_dry_run_would_allow", "apirule_dry_run_would_deny", "apirule_requests_allowed",
            "apirule_requests_denied")


def counters(gw):
    return {name: gw.counter(name) for name in COUNTERS}


def changes(gw, before):
    return {name: value - before[name] for name, value in counters(gw).items() if value != before[name]}


def wait_for_log(gw, line, timeout=5.0):
    """Envoy writes its log asynchronously: wait for the line a little."""
    deadline = time.monotonic() + timeout
    while line not in gw.log_text():
        assert time.monotonic() < deadline, f"not in Envoy's log: {line}"
        time.sleep(0.05)


def assert_untouched(resp, sent_path, sent_headers):
    """The backend got the request as the client sent it: nothing the filter would set or rewrite."""
    seen = assert_forwarded(resp, path=sent_path)
    assert not seen.has_header("x-forwarded-host"), seen["headers"]
    for name, value in sent_headers.items():
        assert seen.header_values(name) == [value], (name, seen["headers"])
    return seen


@pytest.mark.parametrize("host,status,reason", [
    (V1, 401, "no authenticator is responsible (no token)"),
    (V2, 403, "no AuthorizationPolicy allows the request"),
], ids=["v1beta1", "v2"])
def test_a_would_be_deny_is_logged_counted_and_forwarded(gw, host, status, reason):
    before = counters(gw)
    r = gw.raw_request("GET", "/headers?page=2", host=host, headers={"X-User": "mallory"})
    seen = assert_untouched(r, "/headers?page=2", {"x-user": "mallory"})
    assert not seen.has_header("authorization")
    assert changes(gw, before) == {"apirule_dry_run_would_deny": 1}, "enforced counters must not move"
    name = "dry-v1" if host == V1 else "dry-v2"
    rule = f"default/{name} spec.rules[0]"
    wait_for_log(gw, f'apirule: dry-run: APIRule default/{name} would deny GET {host} "/headers" '
                     f'with {status} (rule {rule}): {reason}')


def test_a_would_be_allow_reaches_the_backend_without_the_mutators_headers(gw, token):
    before = counters(gw)
    r = gw.get("/headers", host=V1, token=token, headers={"X-User": "mallory"})
    assert_untouched(r, "/headers", {"x-user": "mallory", "authorization": f"Bearer {token}"})
    assert changes(gw, before) == {"apirule_dry_run_would_allow": 1}
    # v2: neither x-forwarded-host nor the rule's request.headers
    before = counters(gw)
    seen = assert_untouched(gw.get("/x", host=V2, token=token), "/x", {"authorization": f"Bearer {token}"})
    assert not seen.has_header("x-env"), seen["headers"]
    assert changes(gw, before) == {"apirule_dry_run_would_allow": 1}


def test_a_bad_token_is_a_would_be_deny_too_and_a_query_is_never_logged(gw, token):
    before = counters(gw)
    bad = T.tamper(token)
    assert_untouched(gw.get("/x", host=V1, token=bad), "/x", {"authorization": f"Bearer {bad}"})
    # v2 also takes a token from ?access_token=: the query is left out of the log line.
    assert_untouched(gw.raw_request("GET", f"/x?access_token={bad}", host=V2), f"/x?access_token={bad}", {})
    assert changes(gw, before) == {"apirule_dry_run_would_deny": 2}
    wait_for_log(gw, f'apirule: dry-run: APIRule default/dry-v2 would deny GET {V2} "/x" with 401 '
                     f'(rule default/dry-v2 spec.rules[0]): Jwt verification fails')
    assert bad not in gw.log_text()


def test_an_apirule_without_the_annotation_is_still_enforced(gw, token):
    before = counters(gw)
    assert_401(gw.get("/x", host=ENFORCED), token_presented=False)
    r = gw.get("/headers", host=ENFORCED, token=token)
    assert_forwarded(r, forwarded_host=ENFORCED, path="/headers")
    assert changes(gw, before) == {"apirule_requests_denied": 1, "apirule_requests_allowed": 1}


def test_a_dry_run_waits_for_keys_as_enforcing_would(gw, token):
    """The logged decision is the real one, so a request waits for keys as in enforce mode: here
    the IdP answers in 2.5 s, the request goes on after jwks.maxWaitMs (1 s) as a would-be 401."""
    before = counters(gw)
    r = gw.get("/x", host=SLOW, token=token, timeout=10)
    assert_untouched(r, "/x", {"authorization": f"Bearer {token}"})
    assert 0.9 <= r.elapsed < 2.0, f"went on after {r.elapsed:.2f}s, maxWaitMs is 1 s"
    assert changes(gw, before) == {"apirule_dry_run_would_deny": 1}
    wait_for_log(gw, f'apirule: dry-run: APIRule default/dry-slow would deny GET {SLOW} "/x" with 401: '
                     f'JWKS did not arrive in time')
