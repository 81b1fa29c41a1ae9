"""`oauth2_introspection` (RFC 7662) in a real Envoy, against a small introspection server:
active, inactive, wrong scope and audience, server down, the cache keyed by URL and token.

Reference: apirule-semantics.md §2.7, §2.9, §4 (GHSA-4mq7-pvjg-xp2r), case 19; contract:
docs/behaviour.md "Introspection".
"""
import pytest

from harness import apirules as A
from harness.checks import assert_forwarded, assert_json_error
from harness.servers import IntrospectionServer

S = A.strategy


@pytest.fixture(scope="module")
def idp():
    srv = IntrospectionServer().start()
    yield srv
    srv.stop()


def url(path):
    return f"http://introspect.local{path}"


RULES = [
    A.apirule("intro", "intro.test",
              A.rule("/.*", ["GET"], S("oauth2_introspection", {
                  "introspection_url": url("/a"), "required_scope": ["read"], "target_audience": ["api"],
                  "introspection_request_headers": {"X-Api-Key": "secret"}}),
                  mutators=[{"handler": "header", "config": {"headers": {"X-User": "{{ print .Subject }}"}}}])),
    A.apirule("cached", "cached.test",
              A.rule("/.*", ["GET"], S("oauth2_introspection", {
                  "introspection_url": url("/a"), "cache": {"enabled": True, "ttl": "60s"}}))),
    A.apirule("pipeline", "pipeline.test",
              A.rule("/.*", ["GET"], A.jwt(["/introspection/keys"]), S("oauth2_introspection", {
                  "introspection_url": url("/a")}))),
    A.apirule("elsewhere", "elsewhere.test",
              A.rule("/.*", ["GET"], S("oauth2_introspection", {
                  "introspection_url": url("/b"), "cache": {"enabled": True, "ttl": "60s"}}))),
]


@pytest.fixture(scope="module")
def gw(launcher, idp, jwks_server, keys):
    jwks_server.serve("/introspection/keys", {"keys": [keys.rsa.jwk()]})
    cfg = A.plugin_config(RULES, jwks_paths=["/introspection/keys"],
                          introspection={"clusters": {url("/a"): "idp", url("/b"): "idp"}})
    g = launcher(cfg, name="introspection", clusters={"idp": idp.address})
    yield g
    g.stop()


GOOD = {"active": True, "sub": "alice", "aud": ["api"], "scope": "read write", "client_id": "app"}


def test_active_token_is_forwarded_with_the_session(gw, idp):
    idp.answer("tok-good", GOOD)
    seen = assert_forwarded(gw.get("/x", host="intro.test", token="tok-good"), forwarded_host="intro.test")
    assert seen.header_values("x-user") == ["alice"]
    call = idp.calls_for("tok-good")[-1]
    assert call["path"] == "/a"
    assert call["headers"]["x-api-key"] == "secret"
    assert call["headers"]["content-type"] == "application/x-www-form-urlencoded"


def test_inactive_token_is_401(gw, idp):
    idp.answer("tok-inactive", {"active": False})
    assert_json_error(gw.get("/x", host="intro.test", token="tok-inactive"), 401)


def test_wrong_scope_or_audience_is_403(gw, idp):
    idp.answer("tok-scope", dict(GOOD, scope="write"))
    assert_json_error(gw.get("/x", host="intro.test", token="tok-scope"), 403)
    idp.answer("tok-aud", dict(GOOD, aud=["web"]))
    assert_json_error(gw.get("/x", host="intro.test", token="tok-aud"), 403)


def test_no_token_is_401_without_a_call(gw, idp):
    before = len(idp.calls)
    assert_json_error(gw.get("/x", host="intro.test"), 401)
    assert len(idp.calls) == before


def test_server_down_is_500(gw, idp):
    idp.answer("tok-down", GOOD)
    idp.stop()
    try:
        assert_json_error(gw.get("/x", host="intro.test", token="tok-down"), 500)
    finally:
        idp.start()
    idp.status = 503
    try:
        assert_json_error(gw.get("/x", host="intro.test", token="tok-down"), 500)
    finally:
        idp.status = None


def test_the_cache_is_keyed_by_url_and_token(gw, idp):
    idp.answer("tok-cache", GOOD)
    assert_forwarded(gw.get("/x", host="cached.test", token="tok-cache"))
    calls = len(idp.calls_for("tok-cache"))
    # Envoy runs two workers, each with its own cache: a few more requests may call once more.
    for _ in range(6):
        assert_forwarded(gw.get("/x", host="cached.test", token="tok-cache"))
    assert len(idp.calls_for("tok-cache")) <= calls + 1
    # The same token at another introspection URL is introspected there, never taken from /a's cache.
    idp.answer("tok-cache", {"active": False})
    assert_json_error(gw.get("/x", host="elsewhere.test", token="tok-cache"), 401)
    assert idp.calls_for("tok-cache")[-1]["path"] == "/b"


def test_case_19_opaque_token_with_jwt_then_introspection_is_401_from_jwt(gw, idp):
    """Oathkeeper v0.38's jwt authenticator does not fall through on a token it cannot parse, so
    the introspection behind it is never asked."""
    idp.answer("opaque-19", GOOD)
    assert_json_error(gw.get("/x", host="pipeline.test", token="opaque-19"), 401)
    assert idp.calls_for("opaque-19") == []
