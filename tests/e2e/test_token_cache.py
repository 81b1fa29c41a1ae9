"""The verified-token cache in a real Envoy: a repeated token is still judged as an uncached one
would be when the IdP rotates the key behind its kid, when the token expires, and with the cache
turned off.

Contract: docs/behaviour.md "Verified-token cache". `gw`: cacheTtlSeconds 1 and minRefetchSeconds
1, so a rotated key set replaces the cached one within about a second on each worker.
"""
import time

import pytest

from harness import apirules as A
from harness import tokens as T
from harness.checks import assert_401, assert_forwarded

HOST = "cache.tokens.test"
NOCACHE_HOST = "nocache.tokens.test"
PATH = "/tc/keys"


def rules(host):
    return [A.apirule("tc", host, A.rule("/.*", ["GET"], A.jwt([PATH])))]


@pytest.fixture(scope="module")
def gw(launcher, jwks_server, keys):
    jwks_server.serve(PATH, T.jwks(keys.rsa.jwk()))
    g = launcher(A.plugin_config(rules(HOST), jwks_paths=[PATH], cache_ttl=1, min_refetch=1), name="tokens")
    yield g
    g.stop()
    jwks_server.serve(PATH, T.jwks(keys.rsa.jwk()))


def test_a_repeated_token_keeps_passing(gw, keys):
    token = T.mint(keys.rsa, T.std_claims())
    for _ in range(20):  # new connections: both workers verify once, then answer from their cache
        assert_forwarded(gw.get("/x", host=HOST, token=token), forwarded_host=HOST)


def test_a_cached_token_is_denied_once_expired(gw, keys):
    exp = T.now() + 4
    token = T.mint(keys.rsa, T.std_claims(exp=exp))
    passed = 0
    while time.time() < exp - 1:
        r = gw.get("/x", host=HOST, token=token)
        if time.time() < exp:  # answered while still valid
            assert_forwarded(r, forwarded_host=HOST)
            passed += 1
    assert passed, "the token could not be sent while valid"
    time.sleep(max(0.0, exp + 1.2 - time.time()))
    for _ in range(8):
        assert_401(gw.get("/x", host=HOST, token=token), token_presented=True)


def test_a_rotated_key_behind_the_same_kid_ends_cached_verdicts(gw, jwks_server, keys):
    """The IdP replaces the key published as `rsa-1`. Once each worker has the new set (a token
    of the new key passes everywhere), the old token, cached on both workers, is denied."""
    old = T.mint(keys.rsa, T.std_claims(sub="cached"))
    for _ in range(10):
        assert_forwarded(gw.get("/x", host=HOST, token=old), forwarded_host=HOST)
    jwks_server.serve(PATH, T.jwks(keys.rsa_other.jwk()))  # same kid, another key
    new = T.mint(keys.rsa_other, T.std_claims(sub="new"))
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if all(gw.get("/x", host=HOST, token=new).status == 200 for _ in range(8)):
            break
        time.sleep(0.3)
    else:
        pytest.fail("the rotated key set never replaced the old one on both workers")
    for _ in range(8):
        assert_401(gw.get("/x", host=HOST, token=old), token_presented=True)


def test_cache_off_gives_the_same_answers(launcher, jwks_server, keys):
    jwks_server.serve(PATH, T.jwks(keys.rsa.jwk()))
    cfg = A.plugin_config(rules(NOCACHE_HOST), jwks_paths=[PATH], tokenCache={"maxEntries": 0})
    g = launcher(cfg, name="tokens-off")
    try:
        token = T.mint(keys.rsa, T.std_claims())
        for _ in range(4):
            assert_forwarded(g.get("/x", host=NOCACHE_HOST, token=token), forwarded_host=NOCACHE_HOST)
            assert_401(g.get("/x", host=NOCACHE_HOST, token=T.tamper(token)), token_presented=True)
    finally:
        g.stop()
