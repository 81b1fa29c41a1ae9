"""APIRule v2 / v2alpha1 in a real Envoy: Istio's answers (reference §3, cases 61-73), what the
upstream sees, wildcard and short hosts.

One Envoy for the module; each APIRule has its own host `<name>.v2.test`. The differential test
against Envoy's native jwt_authn + rbac (tests/e2e/peer) checks the same semantics over many more
requests; this module checks what a status code alone cannot show.
"""
import pytest

from harness import apirules as A
from harness import tokens as T
from harness.checks import assert_forwarded, assert_route_404
from harness.servers import AuthorizerServer

KEYS = "/v2/keys"
ISSUER = "https://idp.v2.test"


def host(name):
    return f"{name}.v2.test"


def v2(name, rules, *, hosts=None, api_version="v2"):
    return {
        "apiVersion": f"gateway.kyma-project.io/{api_version}", "kind": "APIRule",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"hosts": hosts or [host(name)], "gateway": "kyma-system/kyma-gateway",
                 "service": {"name": "httpbin", "namespace": "default", "port": 8000}, "rules": rules},
    }


def jwt(authorizations=None, **authentication):
    auth = {"issuer": ISSUER, "jwksUri": A.jwks_url(KEYS)}
    auth.update(authentication)
    out = {"authentications": [auth]}
    if authorizations is not None:
        out["authorizations"] = authorizations
    return out


RULES = [
    v2("ops", [
        {"path": "/one/{*}", "methods": ["GET"], "noAuth": True},
        {"path": "/rest/{**}", "methods": ["GET"], "noAuth": True},
        {"path": "/mid/{**}/end", "methods": ["GET"], "noAuth": True},
    ]),
    v2("order", [
        {"path": "/a/b", "methods": ["POST"], "jwt": jwt()},
        {"path": "/a/{**}", "methods": ["GET", "POST"], "noAuth": True},
    ]),
    v2("auth", [
        {"path": "/scoped", "methods": ["GET"], "jwt": jwt([{"requiredScopes": ["read"]}, {"audiences": ["x"]}])},
        {"path": "/*", "methods": ["GET"], "jwt": jwt()},
    ], api_version="v2alpha1"),
    v2("headers", [{"path": "/*", "methods": ["GET"], "jwt": jwt(fromHeaders=[{"name": "X-JWT", "prefix": "Token "}])}]),
    v2("params", [{"path": "/*", "methods": ["GET"], "jwt": jwt(fromParams=["jwt"])}]),
    v2("modify", [{"path": "/*", "methods": ["GET"], "noAuth": True,
                   "request": {"headers": {"X-Env": "prod", "X-User": "gateway"}, "cookies": {"session": "s1", "a": "b"}}}]),
    v2("wild", [{"path": "/*", "methods": ["GET"], "noAuth": True}], hosts=["*.wild.v2.test"]),
    v2("short", [{"path": "/*", "methods": ["GET"], "noAuth": True}], hosts=["shorty"]),
    v2("ext", [{"path": "/*", "methods": ["GET", "POST"], "extAuth": {"authorizers": ["authz"]}}]),
]

EXT_AUTH = {"providers": {"authz": {
    "cluster": "authz", "pathPrefix": "/check", "includeRequestHeadersInCheck": ["x-verdict"],
    "headersToUpstreamOnAllow": ["x-authz-user"], "headersToDownstreamOnDeny": ["x-reason"]}}}


@pytest.fixture(scope="module")
def authz():
    srv = AuthorizerServer().start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def gw(launcher, jwks_server, keys, authz):
    jwks_server.serve(KEYS, T.jwks(keys.rsa.jwk(), keys.ec.jwk()))
    cfg = A.plugin_config(RULES, jwks_paths=[KEYS], default_domain="v2.test", extAuth=EXT_AUTH)
    g = launcher(cfg, name="v2", clusters={"authz": authz.address})
    yield g
    g.stop()


def token(keys, key=None, **claims):
    claims.setdefault("iss", ISSUER)
    return T.mint(key or keys.rsa, T.std_claims(**claims), alg="ES256" if key is keys.ec else "RS256")


def assert_rbac_403(r):
    assert r.status == 403, r
    assert r.body == b"RBAC: access denied", r
    assert not r.reached_upstream, r


def assert_jwt_401(r):
    assert r.status == 401, r
    assert "invalid_token" in r.header("www-authenticate", ""), r
    assert not r.reached_upstream, r


def test_path_operators_cases_61_62(gw):
    h = host("ops")
    assert_forwarded(gw.get("/one/x", host=h), forwarded_host=h)
    assert_route_404(gw.get("/one/", host=h))
    assert_route_404(gw.get("/one/x/y", host=h))
    assert_forwarded(gw.get("/rest/", host=h))
    assert_forwarded(gw.get("/rest/a/b", host=h))
    assert_route_404(gw.get("/rest", host=h))
    assert_forwarded(gw.get("/mid/x/y/end", host=h))
    assert_route_404(gw.get("/mid/x/other", host=h))


def test_rule_order_and_not_paths_cases_64_71(gw, keys):
    h = host("order")
    assert_rbac_403(gw.request("POST", "/a/b", host=h))
    assert_forwarded(gw.request("POST", "/a/b", host=h, token=token(keys)), method="POST")
    assert_rbac_403(gw.get("/a/b", host=h, token=token(keys)))
    assert_forwarded(gw.get("/a/c", host=h))


def test_missing_is_403_and_invalid_is_401_cases_65_66_67(gw, keys):
    h = host("auth")
    assert_rbac_403(gw.get("/x", host=h))
    assert_jwt_401(gw.get("/x", host=h, token=token(keys, exp=T.now() - 3600)))
    assert_jwt_401(gw.get("/x", host=h, token=token(keys, iss="https://elsewhere.test")))
    assert_jwt_401(gw.get("/x", host=h, token=T.tamper(token(keys))))
    seen = assert_forwarded(gw.get("/x", host=h, token=token(keys)), forwarded_host=h)
    assert seen.header_values("authorization")[0].startswith("Bearer "), "the token is forwarded"


def test_skew_and_subject_cases_70_72(gw, keys):
    h = host("auth")
    assert_forwarded(gw.get("/x", host=h, token=token(keys, exp=T.now() - 30)))
    assert_rbac_403(gw.get("/x", host=h, token=token(keys, sub=None)))


def test_authorizations_are_ored_case_69(gw, keys):
    h = host("auth")
    assert_forwarded(gw.get("/scoped", host=h, token=token(keys, aud="x")))
    assert_forwarded(gw.get("/scoped", host=h, token=token(keys, scope="write read")))
    assert_rbac_403(gw.get("/scoped", host=h, token=token(keys, scp="read write")))
    assert_rbac_403(gw.get("/scoped", host=h, token=token(keys)))


def test_every_algorithm_and_no_kid(gw, keys):
    h = host("auth")
    assert_forwarded(gw.get("/x", host=h, token=token(keys, key=keys.ec)))
    no_kid = T.mint(keys.rsa, T.std_claims(iss=ISSUER), kid=None)
    assert_forwarded(gw.get("/x", host=h, token=no_kid))


def test_from_headers_and_from_params(gw, keys):
    tok = token(keys)
    assert_forwarded(gw.get("/x", host=host("headers"), headers={"X-JWT": f"Token {tok}"}))
    assert_rbac_403(gw.get("/x", host=host("headers"), token=tok))
    assert_forwarded(gw.get(f"/x?jwt={tok}", host=host("params")))
    assert_rbac_403(gw.get(f"/x?access_token={tok}", host=host("params")))


def test_request_headers_and_cookies_replace_the_clients(gw):
    r = gw.get("/x", host=host("modify"), headers={"X-User": "mallory", "Cookie": "session=evil; c=d"})
    seen = assert_forwarded(r)
    assert seen.header_values("x-env") == ["prod"]
    assert seen.header_values("x-user") == ["gateway"]
    assert seen.header_values("cookie") == ["a=b; session=s1"]


def test_wildcard_host_forwards_the_real_host(gw):
    assert_forwarded(gw.get("/x", host="shop.wild.v2.test"), forwarded_host="shop.wild.v2.test")
    assert_forwarded(gw.get("/x", host="a.b.wild.v2.test"), forwarded_host="a.b.wild.v2.test")


def test_short_host_takes_the_default_domain(gw):
    assert_forwarded(gw.get("/x", host="shorty.v2.test"), forwarded_host="shorty.v2.test")


def test_host_with_port_is_403(gw):
    assert_rbac_403(gw.get("/one/x", host=host("ops") + ":443"))


def test_ext_auth_allows_with_the_authorizers_headers(gw, authz):
    seen = assert_forwarded(gw.request("POST", "/orders?x=1", host=host("ext"), data=b"{}"), method="POST")
    assert seen.header_values("x-authz-user") == ["alice"]
    assert not seen.has_header("x-not-forwarded")
    check = authz.checks[-1]
    assert (check["method"], check["path"]) == ("POST", "/check/orders?x=1")


def test_ext_auth_denies_with_the_authorizers_answer(gw, authz):
    r = gw.get("/orders", host=host("ext"), headers={"x-verdict": "401"})
    assert r.status == 401, r
    assert r.body == b"denied by the authorizer"
    assert r.header("x-reason") == "verdict"
    assert r.header("x-not-returned") is None
    assert not r.reached_upstream


def test_ext_auth_unreachable_is_403(gw, authz):
    authz.stop()
    try:
        r = gw.get("/orders", host=host("ext"))
        assert r.status == 403, r
        assert not r.reached_upstream
    finally:
        authz.start()
