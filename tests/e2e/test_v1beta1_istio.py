"""v1beta1 APIRules written for Kyma's Istio JWT handler, in a real Envoy: jwt rules answer as
Istio (403 without a token, 401 for a bad one, authorizations), the other handlers as Oathkeeper,
and the workload's RequestAuthentication sees every request of the workload.

Reference: apirule-semantics.md §1.5 (istio mode), §3.5; contract: docs/compatibility.md
"v1beta1, Istio mode".
"""
import pytest

from harness import apirules as A
from harness import tokens as T
from harness.checks import assert_forwarded

KEYS = "/istio-mode/keys"
ISSUER = "https://idp.istio-mode.test"
HOST = "istio-mode.test"


def istio_jwt(authorizations=None):
    config = {"authentications": [{"issuer": ISSUER, "jwksUri": A.jwks_url(KEYS)}]}
    if authorizations is not None:
        config["authorizations"] = authorizations
    return A.strategy("jwt", config)


RULES = [
    A.apirule("istio-mode", HOST,
              A.rule("/api", ["GET"], istio_jwt(), mutators=[
                  {"handler": "header", "config": {"headers": {"X-Env": "prod"}}}]),
              A.rule("/scoped", ["GET"], istio_jwt([{"requiredScopes": ["read"]}])),
              A.rule("/noop", ["GET"], A.strategy("noop")),
              A.rule("/open", ["GET"], A.strategy("no_auth"))),
]


@pytest.fixture(scope="module")
def gw(launcher, jwks_server, keys):
    jwks_server.serve(KEYS, T.jwks(keys.rsa.jwk()))
    g = launcher(A.plugin_config(RULES, jwks_paths=[KEYS]), name="istio-mode")
    yield g
    g.stop()


def token(keys, **claims):
    return T.mint(keys.rsa, T.std_claims(iss=ISSUER, **claims))


def assert_rbac_403(r):
    assert r.status == 403 and r.body == b"RBAC: access denied", r
    assert not r.reached_upstream, r


def test_jwt_rules_answer_as_istio(gw, keys):
    assert_rbac_403(gw.get("/api", host=HOST))
    r = gw.get("/api", host=HOST, token=token(keys, exp=T.now() - 3600))
    assert r.status == 401 and r.body == b"Jwt is expired" and not r.reached_upstream, r
    seen = assert_forwarded(gw.get("/api", host=HOST, token=token(keys)), forwarded_host=HOST)
    assert seen.header_values("x-env") == ["prod"], "the header mutator as the VirtualService set it"


def test_authorizations(gw, keys):
    assert_forwarded(gw.get("/scoped", host=HOST, token=token(keys, scope="read write")))
    assert_rbac_403(gw.get("/scoped", host=HOST, token=token(keys, scp="read write")))


def test_other_handlers_keep_oathkeepers_answers(gw, keys):
    assert_forwarded(gw.get("/noop", host=HOST))
    assert_forwarded(gw.get("/open", host=HOST))
    # An invalid token is refused by the workload's RequestAuthentication even there.
    expired = token(keys, exp=T.now() - 3600)
    assert gw.get("/noop", host=HOST, token=expired).status == 401
    assert gw.get("/open", host=HOST, token=expired).status == 401
