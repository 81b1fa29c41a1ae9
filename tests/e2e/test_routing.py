"""Host selection, route stage (VirtualService) and access-rule stage (Oathkeeper matching).

Reference: apirule-semantics.md §1.6-1.8 and §5 cases 1-13, 56, 57, 60; contract:
docs/behaviour.md "Two stages". One Envoy for the module; each scenario lives on its own Host.
"""
import pytest

from harness import apirules as A
from harness import tokens as T
from harness.checks import (assert_401, assert_404_json, assert_500_json, assert_forwarded,
                            assert_passed_through_untouched, assert_route_404)

KEYS_PATH = "/routing/keys"
ISS_A = "https://issuer-a.example"
ISS_B = "https://issuer-b.example"
NOOP = A.strategy("noop")
ALLOW = A.strategy("allow")
NO_AUTH = A.strategy("no_auth")


def JWT(**kw):
    return A.jwt([KEYS_PATH], **kw)


API = "api.example.com"
RULES = [
    A.apirule("routing", API,
              A.rule("/headers", ["GET"], JWT(trusted_issuers=[ISS_A])),
              A.rule("/items?id=1", ["GET"], NOOP),
              A.rule("/file.json", ["GET"], NOOP),
              A.rule("/public/.*", ["GET"], ALLOW),
              A.rule("/admin", ["GET"], JWT())),
    # second APIRule, second host, different issuer (several hosts in one plugin)
    A.apirule("other", "other.example.com", A.rule("/headers", ["GET"], JWT(trusted_issuers=[ISS_B]))),
    A.apirule("all", "all.example.com", A.rule("/.*", ["GET"], NOOP)),
    A.apirule("decode", "decode.example.com",
              A.rule("/a.*", ["POST"], NOOP),
              A.rule("/a/b", ["GET"], JWT())),
    A.apirule("multi", "multi.example.com",
              A.rule("/.*", ["GET"], JWT()),
              A.rule("/headers", ["GET"], NOOP)),
    A.apirule("disjoint", "disjoint.example.com",
              A.rule("/.*", ["GET"], JWT()),
              A.rule("/.*", ["POST"], NOOP)),
    A.apirule("dedup", "dedup.example.com",
              A.rule("/x", ["GET"], NO_AUTH),
              A.rule("/x", ["POST"], JWT())),
    A.apirule("allow", "allow.example.com", A.rule("/.*", ["GET"], ALLOW)),
    A.apirule("noauth", "noauth.example.com", A.rule("/.*", ["GET"], NO_AUTH)),
    A.apirule("short", "short", A.rule("/.*", ["GET"], NOOP)),
    A.apirule("legacy", "legacy.example.com",
              A.rule("/headers", ["GET"], JWT()),
              A.rule("/open", ["GET"], ALLOW),
              api_version="v1alpha1"),
]


@pytest.fixture(scope="module")
def gw(launcher, jwks_server, keys):
    jwks_server.serve(KEYS_PATH, T.jwks(keys.rsa.jwk()))
    g = launcher(A.plugin_config(RULES, jwks_paths=A.jwks_paths_of(RULES)), name="routing")
    yield g
    g.stop()


@pytest.fixture(scope="module")
def tok(keys):
    return T.mint(keys.rsa, T.std_claims(iss=ISS_A))


@pytest.fixture(scope="module")
def tok_plain(keys):
    return T.mint(keys.rsa, T.std_claims())


# --- basic allow / deny ---------------------------------------------------------------------------

def test_case_01_valid_token_forwarded_authorization_intact(gw, tok):
    r = gw.get("/headers", token=tok, headers={"X-Custom": "kept", "Cookie": "a=1"})
    seen = assert_forwarded(r, forwarded_host=API, path="/headers", method="GET")
    assert seen.header_values("authorization") == [f"Bearer {tok}"]
    assert seen.header("x-custom") == "kept" and seen.header("cookie") == "a=1"
    assert seen.header("host") == API


def test_forwarded_host_replaces_client_value(gw, tok):
    """behaviour.md: forwarded requests get x-forwarded-host: <APIRule host> (the VS *set* it)."""
    r = gw.get("/headers", token=tok, headers={"X-Forwarded-Host": "evil.example.org"})
    assert_forwarded(r, forwarded_host=API)


def test_case_16_no_token_401_exact_body(gw):
    r = gw.get("/headers")
    assert_401(r, token_presented=False)
    assert r.json() == {"error": {"code": 401, "status": "Unauthorized", "request": r.request_id,
                                  "message": "The request could not be authorized"}}


def test_deny_body_carries_envoy_generated_request_id(gw):
    """No x-request-id from the client: Envoy generates one before the filter runs, so the body
    still carries a `request` (a UUID)."""
    r = gw.get("/headers", request_id=None)
    assert r.status == 401 and not r.reached_upstream, r
    err = r.json()["error"]
    assert isinstance(err.get("request"), str) and len(err["request"]) >= 32, err
    assert err["message"] == "The request could not be authorized"


def test_bad_signature_401_not_forwarded(gw, tok):
    assert_401(gw.get("/headers", token=T.tamper(tok)), token_presented=True)


# --- path anchoring, query, regex --------------------------------------------------------------

def test_case_02_end_anchored(gw, tok):
    assert_route_404(gw.get("/headers/x", token=tok))


def test_case_03_start_anchored(gw, tok):
    assert_route_404(gw.get("/api/headers", token=tok))


def test_case_04_query_ignored_and_forwarded(gw, tok):
    r = gw.get("/headers?x=1&y=/other", token=tok)
    assert_forwarded(r, forwarded_host=API, path="/headers?x=1&y=/other")
    assert_401(gw.get("/headers?x=1"), token_presented=False)


def test_case_05_question_mark_is_a_quantifier(gw):
    assert_route_404(gw.get("/items?id=1"))
    # `/items?id=1` as a regex: "/item", optional "s", "id=1"
    assert_forwarded(gw.get("/itemsid=1"), forwarded_host=API, path="/itemsid=1")
    assert_forwarded(gw.get("/itemid=1"), forwarded_host=API)


def test_case_06_unescaped_dot_matches_any_char(gw):
    assert_forwarded(gw.get("/fileXjson"), forwarded_host=API, path="/fileXjson")
    assert_forwarded(gw.get("/file.json"), forwarded_host=API)


def test_case_07_dot_star_matches_root_and_deep_paths(gw):
    for path in ("/", "/a/b/c"):
        assert_forwarded(gw.get(path, host="all.example.com"), forwarded_host="all.example.com",
                         path=path)


# --- methods --------------------------------------------------------------------------------------

def test_case_08_method_mismatch_404_no_405(gw, tok):
    assert_404_json(gw.request("POST", "/headers", token=tok))


def test_case_09_head_not_implied_by_get(gw, tok):
    r = gw.request("HEAD", "/headers", token=tok)
    assert r.status == 404 and not r.reached_upstream, r


def test_case_56_allow_accepts_every_method(gw):
    for method in ("DELETE", "POST", "PUT"):
        r = gw.request(method, "/anything", host="allow.example.com")
        assert_forwarded(r, forwarded_host="allow.example.com", method=method)


def test_case_57_no_auth_restricts_methods(gw):
    assert_forwarded(gw.get("/x", host="noauth.example.com"), forwarded_host="noauth.example.com")
    assert_route_404(gw.request("DELETE", "/x", host="noauth.example.com"))
    assert_route_404(gw.request("HEAD", "/x", host="noauth.example.com"))


def test_route_dedup_keeps_first_rule_per_path(gw, tok_plain):
    """§1.6 consequence: `/x` GET no_auth then `/x` POST jwt -> the route for `/x` is the no_auth
    one (GET only), so POST has no route: 404 with an empty body even with a valid token."""
    assert_forwarded(gw.get("/x", host="dedup.example.com"), forwarded_host="dedup.example.com")
    assert_route_404(gw.request("POST", "/x", host="dedup.example.com", token=tok_plain))


# --- host matching --------------------------------------------------------------------------------

def test_case_10_host_with_port_matches_no_access_rule(gw, tok):
    assert_404_json(gw.get("/headers", host=f"{API}:443", token=tok))


def test_host_case_differs_matches_no_access_rule(gw, tok):
    """Access rules compare the Host verbatim (case 10's reasoning); the route stage matched."""
    assert_404_json(gw.get("/headers", host="API.Example.com", token=tok))


def test_route_stage_host_is_case_insensitive_and_ignores_port(gw):
    """An `allow` route never reaches the access-rule stage: Host case and :port do not matter."""
    r = gw.request("GET", "/x", host="Allow.Example.COM:8080")
    assert_forwarded(r, forwarded_host="allow.example.com")


def test_several_hosts_in_one_plugin(gw, keys):
    tok_a = T.mint(keys.rsa, T.std_claims(iss=ISS_A))
    tok_b = T.mint(keys.rsa, T.std_claims(iss=ISS_B))
    assert_forwarded(gw.get("/headers", token=tok_a), forwarded_host=API)
    assert_401(gw.get("/headers", token=tok_b), token_presented=True)
    assert_forwarded(gw.get("/headers", host="other.example.com", token=tok_b),
                     forwarded_host="other.example.com")
    assert_401(gw.get("/headers", host="other.example.com", token=tok_a), token_presented=True)
    # other.example.com has no /admin, api.example.com's /admin does not leak onto it
    assert_route_404(gw.get("/admin", host="other.example.com", token=tok_b))


def test_ungoverned_host_passes_through_untouched(gw):
    sent = {"Authorization": "Bearer not-a-jwt", "X-Custom": "v"}
    r = gw.get("/admin/../anything?q=1", host="ungoverned.test", headers=sent)
    assert_passed_through_untouched(r, sent, path="/anything?q=1")


def test_short_host_gets_default_domain(gw):
    assert_forwarded(gw.get("/x", host="short.example.com"), forwarded_host="short.example.com")
    # the bare short name is not the configured host: not governed, passes untouched
    sent = {"X-Custom": "v"}
    assert_passed_through_untouched(gw.get("/x", host="short", headers=sent), sent, path="/x")


def test_v1alpha1_apirule_host_in_spec_service(gw, tok_plain):
    h = "legacy.example.com"
    r = gw.get("/headers", host=h, token=tok_plain)
    seen = assert_forwarded(r, forwarded_host=h)
    assert seen.header("authorization") == f"Bearer {tok_plain}"
    assert_401(gw.get("/headers", host=h), token_presented=False)
    assert_forwarded(gw.request("DELETE", "/open", host=h), forwarded_host=h)
    assert_route_404(gw.get("/nothing", host=h))


# --- rule pool ------------------------------------------------------------------------------------

def test_case_12_two_matching_access_rules_500(gw, tok_plain):
    assert_500_json(gw.get("/headers", host="multi.example.com", token=tok_plain))
    assert_500_json(gw.get("/headers", host="multi.example.com"))
    # only `/.*` matches here
    assert_401(gw.get("/other", host="multi.example.com"), token_presented=False)


def test_case_13_same_path_disjoint_methods(gw, tok_plain):
    h = "disjoint.example.com"
    assert_forwarded(gw.request("POST", "/anything", host=h), forwarded_host=h, method="POST")
    assert_401(gw.get("/anything", host=h), token_presented=False)
    assert_forwarded(gw.get("/anything", host=h, token=tok_plain), forwarded_host=h)


def test_case_11_an_escaped_slash_is_refused_before_the_rules(gw, tok_plain):
    """Case 11 (`/a%2Fb` matching the access rule `/a/b`) is Oathkeeper's; by default the filter
    refuses an escaped slash with its 400 before any rule, token or not (docs/security.md, "Paths").
    With `paths.escapedSlashes: keep` it is decided as case 11 says: tests/e2e/test_path_hardening.py."""
    h = "decode.example.com"
    for token in (None, tok_plain):
        r = gw.raw_request("GET", "/a%2Fb", host=h, token=token)
        assert r.status == 400 and not r.reached_upstream, r
        assert r.json()["error"]["status"] == "Bad Request", r
    assert_401(gw.raw_request("GET", "/a/b", host=h), token_presented=False)


# --- normalisation ------------------------------------------------------------------------------

def test_case_60_dot_segments_decided_on_normalised_path(gw, tok):
    """`/public/../admin` must not ride on the `/public/.*` allow rule."""
    for raw in ("/public/../admin", "/public/%2e%2e/admin", "/public/./../admin"):
        r = gw.raw_request("GET", raw)
        assert_401(r, token_presented=False)
    r = gw.raw_request("GET", "/public/../admin", token=tok)
    assert_forwarded(r, forwarded_host=API, path="/admin")
    r = gw.raw_request("GET", "/public/a/./b/../c")
    assert_forwarded(r, forwarded_host=API, path="/public/a/c")


def test_percent_encoded_unreserved_decoded_before_deciding(gw, tok):
    assert_401(gw.raw_request("GET", "/%61dmin"), token_presented=False)
    assert_forwarded(gw.raw_request("GET", "/%61dmin", token=tok), forwarded_host=API, path="/admin")


def test_invalid_percent_encoding_400(gw):
    for path in ("/a%zz", "/public/%G1", "/public/%"):
        r = gw.raw_request("GET", path, host="all.example.com")
        assert r.status == 400, (path, r)
        assert not r.reached_upstream, r
