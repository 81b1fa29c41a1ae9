"""Non-JWT handlers, the authenticator pipeline, and the header / cookie mutators.

Reference: apirule-semantics.md §1.4, §2.8, §2.9, §2.10, §5 cases 54, 55, 58; contract:
docs/behaviour.md "Handlers", "Mutators" and "Two stages" step 3 (pipeline: not responsible ->
next, error -> stop, nobody -> 401).
"""
import pytest

from harness import apirules as A
from harness import tokens as T
from harness.checks import assert_401, assert_forwarded

KEYS = "/handlers/keys"
S = A.strategy

RULES = [
    A.apirule("noop", "noop.handlers.test", A.rule("/.*", ["GET", "POST"], S("noop"))),
    A.apirule("noop-cfg", "noopcfg.handlers.test",
              A.rule("/empty-config", ["GET"], S("noop", {})),
              A.rule("/null-config", ["GET"], {"handler": "noop", "config": None}),
              A.rule("/noop-mutator", ["GET"], S("noop"), mutators=[{"handler": "noop"}])),
    A.apirule("anon", "anon.handlers.test", A.rule("/.*", ["GET"], S("anonymous"))),
    A.apirule("unauth", "unauth.handlers.test", A.rule("/.*", ["GET"], S("unauthorized"))),
    A.apirule("anon-unauth", "anonunauth.handlers.test",
              A.rule("/.*", ["GET"], S("anonymous"), S("unauthorized"))),
    A.apirule("unauth-anon", "unauthanon.handlers.test",
              A.rule("/.*", ["GET"], S("unauthorized"), S("anonymous"))),
    A.apirule("mutate", "mutate.handlers.test",
              A.rule("/.*", ["GET"], A.jwt([KEYS]), mutators=[
                  {"handler": "header", "config": {"headers": {
                      "X-User": "{{ print .Subject }}", "X-Mail": "{{ print .Extra.email }}"}}},
                  {"handler": "cookie", "config": {"cookies": {"user": "{{ print .Subject }}"}}}])),
    A.apirule("pipe", "pipe.handlers.test",
              A.rule("/.*", ["GET"], A.jwt([KEYS], token_from={"header": "X-Token"}),
                     A.jwt([KEYS], trusted_issuers=["https://second"]))),
]


@pytest.fixture(scope="module")
def gw(launcher, jwks_server, keys):
    jwks_server.serve(KEYS, T.jwks(keys.rsa.jwk()))
    g = launcher(A.plugin_config(RULES, jwks_paths=[KEYS]), name="handlers")
    yield g
    g.stop()


def test_case_54_noop_forwards_without_token(gw):
    h = "noop.handlers.test"
    assert_forwarded(gw.get("/x", host=h), forwarded_host=h)
    assert_forwarded(gw.request("POST", "/x", host=h, data=b"body"), forwarded_host=h, method="POST")


def test_case_54_noop_passes_authorization_unchanged(gw):
    h = "noop.handlers.test"
    for value in ("Basic dXNlcjpwYXNz", "Bearer not-a-jwt", "Bearer  spaced"):
        r = gw.get("/x", host=h, headers={"Authorization": value})
        seen = assert_forwarded(r, forwarded_host=h)
        assert seen.header_values("authorization") == [value]


def test_noop_empty_or_null_config_and_noop_mutator_accepted(gw):
    h = "noopcfg.handlers.test"
    for path in ("/empty-config", "/null-config", "/noop-mutator"):
        assert_forwarded(gw.get(path, host=h), forwarded_host=h)


def test_case_55_anonymous_with_authorization_401(gw):
    h = "anon.handlers.test"
    assert_401(gw.get("/x", host=h, headers={"Authorization": "Bearer whatever"}))
    assert_401(gw.get("/x", host=h, headers={"Authorization": "Basic eDp5"}))


def test_anonymous_without_authorization_forwarded(gw):
    h = "anon.handlers.test"
    assert_forwarded(gw.get("/x", host=h), forwarded_host=h)


def test_unauthorized_always_401(gw, keys):
    h = "unauth.handlers.test"
    assert_401(gw.get("/x", host=h))
    assert_401(gw.get("/x", host=h, token=T.mint(keys.rsa, T.std_claims())))


def test_pipeline_not_responsible_tries_next(gw):
    """[anonymous, unauthorized]: no Authorization -> anonymous accepts; with one -> anonymous is
    not responsible, unauthorized denies."""
    h = "anonunauth.handlers.test"
    assert_forwarded(gw.get("/x", host=h), forwarded_host=h)
    assert_401(gw.get("/x", host=h, headers={"Authorization": "Bearer x"}))


def test_pipeline_error_stops(gw):
    """[unauthorized, anonymous]: unauthorized is responsible and fails -> anonymous never runs."""
    assert_401(gw.get("/x", host="unauthanon.handlers.test"))


def test_pipeline_two_jwt_strategies(gw, keys):
    """[jwt(token_from X-Token), jwt(Authorization, trusted_issuers https://second)]."""
    h = "pipe.handlers.test"
    first_ok = T.mint(keys.rsa, T.std_claims(iss="https://first"))
    second_ok = T.mint(keys.rsa, T.std_claims(iss="https://second"))
    # no X-Token: first not responsible, second verifies Authorization
    r = gw.get("/x", host=h, token=second_ok)
    seen = assert_forwarded(r, forwarded_host=h)
    assert seen.header("authorization") == f"Bearer {second_ok}"
    # X-Token valid: first succeeds, Authorization not looked at
    assert_forwarded(gw.get("/x", host=h, headers={"X-Token": first_ok, "Authorization": "Basic eDp5"}),
                     forwarded_host=h)
    # X-Token invalid: first errors, stop (the valid Authorization token is not tried)
    r = gw.get("/x", host=h, token=second_ok, headers={"X-Token": T.tamper(first_ok)})
    assert_401(r, token_presented=True)
    # nobody responsible
    assert_401(gw.get("/x", host=h), token_presented=False)
    # second responsible and fails (issuer)
    assert_401(gw.get("/x", host=h, token=first_ok), token_presented=True)


def test_case_58_header_and_cookie_mutators_reach_the_backend(gw, keys):
    """The backend sees the templated headers and cookie, never the client's own values for them."""
    h = "mutate.handlers.test"
    token = T.mint(keys.rsa, T.std_claims(sub="alice", email="alice@example.com"))
    r = gw.get("/x", host=h, token=token, headers={"X-User": "mallory", "Cookie": "user=mallory; theme=dark"})
    seen = assert_forwarded(r, forwarded_host=h)
    assert seen.header_values("x-user") == ["alice"]
    assert seen.header_values("x-mail") == ["alice@example.com"]
    assert seen.header_values("cookie") == ["theme=dark; user=alice"]
    assert seen.header_values("authorization") == [f"Bearer {token}"], "the token is forwarded too"
    assert_401(gw.get("/x", host=h, headers={"X-User": "mallory"}), token_presented=False)
