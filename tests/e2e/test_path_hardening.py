"""Issue 11 and its class (CVE-2021-31920) through a real Envoy: what a client gets for each
hostile spelling of a path, under each of Istio's `meshConfig.pathNormalization` settings, and that
nothing denied reaches the backend while what is forwarded arrives exactly as decided on.

Istio turns pathNormalization into these connection manager settings (pilot's listener builder):
NONE: normalize_path false; BASE (the default): normalize_path; MERGE_SLASHES: and merge_slashes;
DECODE_AND_MERGE_SLASHES: and path_with_escaped_slashes_action UNESCAPE_AND_FORWARD; all others
KEEP_UNCHANGED. Envoy applies them before any filter, so some requests never reach the filter: the
expected answers say who answered ("envoy": Envoy's own reply, not the filter's). The same two
APIRules as tests/path_hardening.rs (which has the filter's answer to every request as written):
v1beta1 `/public/.*` no_auth + `/admin.*` jwt, v2 `/public/{**}` noAuth + `/admin/{**}` jwt.
docs/security.md, "Paths", explains each answer.
"""
import http.client
import json
import os
import uuid

import pytest
import requests

from harness import apirules as A
from harness import gateway as gw
from harness import h2
from harness import tokens as T
from harness.checks import herodot_body
from tools.stack.envoy import render_bootstrap, start_envoy
from tools.stack.procs import free_port

KEYS = "/paths/keys"
ISSUER = "https://idp.paths.test"
V1 = "v1.paths.test"
V2 = "v2.paths.test"

RULES = [
    A.apirule("paths-v1", V1, A.rule("/public/.*", ["GET"], A.strategy("no_auth")),
              A.rule("/admin.*", ["GET", "POST"], A.jwt([KEYS], trusted_issuers=[ISSUER]))),
    {"apiVersion": "gateway.kyma-project.io/v2", "kind": "APIRule",
     "metadata": {"name": "paths-v2", "namespace": "default"},
     "spec": {"hosts": [V2], "gateway": "kyma-system/kyma-gateway",
              "service": {"name": "httpbin", "namespace": "default", "port": 8000},
              "rules": [{"path": "/public/{**}", "methods": ["GET"], "noAuth": True},
                        {"path": "/admin/{**}", "methods": ["GET", "POST"],
                         "jwt": {"authentications": [{"issuer": ISSUER, "jwksUri": A.jwks_url(KEYS)}]}}]}},
]

# Istio's pathNormalization -> the HttpConnectionManager fields istiod sets.
MODES = {
    "NONE": {"normalize_path": False, "path_with_escaped_slashes_action": "KEEP_UNCHANGED"},
    "BASE": {"normalize_path": True, "path_with_escaped_slashes_action": "KEEP_UNCHANGED"},
    "MERGE_SLASHES": {"normalize_path": True, "merge_slashes": True,
                      "path_with_escaped_slashes_action": "KEEP_UNCHANGED"},
    "DECODE_AND_MERGE_SLASHES": {"normalize_path": True, "merge_slashes": True,
                                 "path_with_escaped_slashes_action": "UNESCAPE_AND_FORWARD"},
}
DECODING = ("DECODE_AND_MERGE_SLASHES",)
NORMALISING = ("BASE", "MERGE_SLASHES", "DECODE_AND_MERGE_SLASHES")


def start(workdir, recorder, jwks_server, plugin_config, name, **hcm):
    """Envoy with the filter and these connection manager settings (else as every e2e test runs it)."""
    listen, admin = free_port(), free_port()
    boot = render_bootstrap(listen_port=listen, admin_port=admin, wasm_path=gw.WASM, plugin_config=plugin_config,
                            upstream=recorder.address, clusters={"jwks": jwks_server.address})
    boot["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"].update(hcm)
    proc = start_envoy(envoy_bin=gw.ENVOY, bootstrap=boot, workdir=workdir, name=name)
    g = gw.Gateway(proc, listen, admin, recorder, os.path.join(str(workdir), f"{name}.log"))
    gw.RUNNING.append(g)
    return g


def plugin(**options):
    return A.plugin_config(RULES, jwks_paths=[KEYS], default_domain=None, **options)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("paths")


@pytest.fixture(scope="module")
def gateways(artifacts, recorder, jwks_server, keys, workdir):
    jwks_server.serve(KEYS, T.jwks(keys.rsa.jwk()))
    started = {mode: start(workdir, recorder, jwks_server, plugin(), f"paths-{mode.lower()}", **hcm)
               for mode, hcm in MODES.items()}
    yield started
    for g in started.values():
        g.stop()


@pytest.fixture(scope="module")
def token(keys):
    return T.mint(keys.rsa, T.std_claims(iss=ISSUER))


def is_filter_json(r, code):
    """The filter's deny body (herodot's JSON, as for bad percent-encoding)."""
    try:
        body = json.loads(r.body)
    except ValueError:
        return False
    return r.header("content-type", "").startswith("application/json") and body["error"]["code"] == code


def answer(r):
    """What the client got, as the tables write it: `200 <path the backend got>`, the filter's deny
    status, or `<status> envoy` for Envoy's own reply. A denied request must not reach the backend."""
    if r.status == 200:
        return f"200 {r.seen['path']}"
    assert not r.reached_upstream, f"a denied request reached the backend: {r}"
    if r.status == 400:
        return "400" if is_filter_json(r, 400) else "400 envoy"
    if r.status == 431:
        return "431 envoy"
    return str(r.status)


LONG = "/public/" + "a" * (64 * 1024)


def case(method, path, v1, v2, modes=None, token=False, headers=None, name=None):
    """One request; `v1`/`v2`: the answer under every mode, `modes`: {mode: (v1, v2)} where a mode
    answers otherwise."""
    return pytest.param(method, path, headers or {}, token, v1, v2, modes or {},
                        id=name or f"{method} {path}")


def per_mode(answers, *modes):
    return {m: answers for m in modes}


CASES = [
    case("GET", "/public/x", "200 /public/x", "200 /public/x"),
    # Dot segments, also encoded: decided as /admin (by Envoy when it normalises, else by the filter).
    case("GET", "/public/../admin", "401", "404"),
    case("GET", "/public/%2e%2e/admin", "401", "404"),
    case("GET", "/public/../admin/x", "200 /admin/x", "200 /admin/x", token=True),
    # The issue: encoded separators. Refused by the filter, unless Istio decodes them first
    # (DECODE_AND_MERGE_SLASHES), which makes them real separators and the dot segments real ones.
    case("GET", "/public/..%2Fadmin", "400", "400", per_mode(("401", "404"), *DECODING)),
    case("GET", "/public/%5c../admin", "400", "400", per_mode(("200 /public/admin", "200 /public/admin"), *DECODING)),
    case("GET", "/public/%2E%2E%2Fadmin/x", "400", "400", per_mode(("401", "403"), *DECODING)),
    # A raw backslash: Envoy's normalisation reads it as /, and `//..` removes the empty segment.
    case("GET", "/public/\\../admin", "400", "400",
         per_mode(("200 /public/admin", "200 /public/admin"), *NORMALISING)),
    case("GET", "/public//../admin", "400", "400",
         per_mode(("200 /public/admin", "200 /public/admin"), *NORMALISING)),
    # What no Envoy setting catches: double encoding, overlong UTF-8, dot segments with parameters.
    case("GET", "/public/%252e%252e/admin", "400", "400"),
    case("GET", "/public/%c0%ae%c0%ae/admin", "400", "400"),
    case("GET", "/public/..;/admin", "400", "400", per_mode(("401", "404"), *NORMALISING)),
    # Slashes are merged whatever Istio does, so a backend that merges them sees what was decided on.
    case("GET", "//admin", "401", "404"),
    case("GET", "//admin/x", "200 /admin/x", "200 /admin/x", token=True),
    case("GET", "/public//x", "200 /public/x", "200 /public/x"),
    # Other paths, not other spellings: case, trailing slash, `;` parameters.
    case("GET", "/admin/", "401", "403"),
    case("GET", "/ADMIN", "404", "404"),
    case("GET", "/%61dmin", "401", "404"),
    case("GET", "/admin;x", "401", "404"),
    # A control character: refused by Envoy's normalisation, else by the filter.
    case("GET", "/admin%00", "400", "400", per_mode(("400 envoy", "400 envoy"), *NORMALISING)),
    # The query is not the path; Envoy refuses a fragment in the request line.
    case("GET", "/admin?x=/public", "401", "404"),
    case("GET", "/admin#/public", "400 envoy", "400 envoy"),
    case("GET", "/public/x#/.././../admin", "400 envoy", "400 envoy"),
    # 64 KiB: over Envoy's header limit (60 KiB by default) before the filter.
    case("GET", LONG, "431 envoy", "431 envoy", name="GET /public/<64 KiB>"),
    # Envoy's HTTP/1 codec refuses a lowercase method.
    case("get", "/public/x", "400 envoy", "400 envoy"),
    # An override header never changes the method the rules see (POST: no route on /public).
    case("POST", "/public/x", "404", "404", headers={"X-HTTP-Method-Override": "GET"}),
]


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("method,path,headers,with_token,v1,v2,modes", CASES)
def test_paths(gateways, token, mode, method, path, headers, with_token, v1, v2, modes):
    g = gateways[mode]
    want = dict(zip((V1, V2), modes.get(mode, (v1, v2))))
    got = {host: answer(g.raw_request(method, path, host=host, headers=headers, token=token if with_token else None))
           for host in (V1, V2)}
    assert got == want


# --- headers (Istio's default, BASE) ------------------------------------------------------------

def test_two_authorization_headers_reach_the_filter_joined_and_are_no_token(gateways, token, keys):
    """Envoy joins repeated Authorization headers into one value (`a,b`) before any filter: that is
    no valid token, so a protected path answers 401 whichever token is valid, and an open one
    forwards the joined value: the backend never gets a token apart from the others."""
    g = gateways["BASE"]
    forged = T.tamper(token)
    for first, second in ((token, forged), (forged, token)):
        headers = [("Authorization", f"Bearer {first}"), ("Authorization", f"Bearer {second}")]
        assert answer(raw_headers(g, "/admin/x", V1, headers)) == "401"
        assert answer(raw_headers(g, "/admin/x", V2, headers)) == "401"
    r = raw_headers(g, "/public/x", V1, [("Authorization", f"Bearer {token}"), ("Authorization", "Basic x")])
    assert answer(r) == "200 /public/x"
    assert r.seen.header_values("authorization") == [f"Bearer {token},Basic x"]


def raw_headers(g, path, host, pairs):
    """A GET with these header lines, repeated names included (a dict cannot hold them)."""
    tag = uuid.uuid4().hex
    conn = http.client.HTTPConnection("127.0.0.1", g.port, timeout=10)
    try:
        conn.putrequest("GET", path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", host)
        conn.putheader(gw.UPSTREAM_TAG, tag)
        for k, v in pairs:
            conn.putheader(k, v)
        conn.endheaders()
        resp = conn.getresponse()
        body = resp.read()
        headers = requests.structures.CaseInsensitiveDict(resp.getheaders())
        return gw.Response(resp.status, headers, body, g.recorder.received(tag), 0.0)
    finally:
        conn.close()


def test_a_token_in_header_and_query(gateways, token):
    """v1 reads only its token_from location, by default the Authorization header (Oathkeeper); v2
    reads every location and all tokens found must verify (Envoy jwt_authn)."""
    g = gateways["BASE"]
    forged = T.tamper(token)
    r = g.raw_request("GET", f"/admin/x?access_token={forged}", host=V1, token=token)
    assert answer(r) == f"200 /admin/x?access_token={forged}"
    assert answer(g.raw_request("GET", f"/admin/x?access_token={forged}", host=V2, token=token)) == "401"
    assert answer(g.raw_request("GET", f"/admin/x?access_token={token}", host=V1, token=forged)) == "401"
    assert answer(g.raw_request("GET", f"/admin/x?access_token={token}", host=V2, token=forged)) == "401"


def test_long_header_values(gateways):
    """Envoy bounds the header block (60 KiB); the filter refuses tokens over 16 KiB."""
    g = gateways["BASE"]
    for host in (V1, V2):
        assert answer(g.raw_request("GET", "/admin/x", host=host, token="A" * (56 * 1024))) == "401"
        assert answer(g.raw_request("GET", "/public/x", host=host, headers={"X-Big": "a" * (56 * 1024)})) == "200 /public/x"
        assert answer(g.raw_request("GET", "/public/x", host=host, headers={"X-Big": "a" * (64 * 1024)})) == "431 envoy"


def h2_get(g, host: bytes, path: bytes):
    """A GET over HTTP/2 with these bytes as :authority and :path (HTTP/1's codec refuses non-ASCII
    octets in the request line before any filter; HTTP/2's carries them)."""
    tag = uuid.uuid4().hex
    request_id = f"e2e-{tag}"
    status, body = h2.request(g.port, [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", host),
                                       (b":path", path), (gw.UPSTREAM_TAG.encode(), tag.encode()),
                                       (b"x-request-id", request_id.encode())])
    return status, body, request_id, g.recorder.received(tag)


@pytest.mark.parametrize("mode", ["NONE", "BASE"])
def test_a_path_that_is_not_utf8_is_the_filters_400(gateways, mode):
    """docs/behaviour.md, "What reaches the backend": a :path that is not UTF-8 gets the filter's 400
    JSON body on a governed host (without normalisation it reaches the filter as sent, "request
    line is not UTF-8"; Envoy's normalisation escapes the octet to %FF, which decodes to invalid
    UTF-8: the same 400), and passes through on a host no APIRule governs."""
    g = gateways[mode]
    for host in (V1, V2):
        status, body, request_id, upstream = h2_get(g, host.encode(), b"/public/x\xff")
        assert (status, json.loads(body), upstream) == (400, herodot_body(400, request_id), []), body
    status, body, _, upstream = h2_get(g, b"ungoverned.paths.test", b"/public/x\xff")
    assert status == 200 and len(upstream) == 1, body
    assert upstream[0]["path"] == ("/public/x\xff" if mode == "NONE" else "/public/x%FF"), upstream


# --- what the filter does with what Envoy would refuse, and the option -----------------------------

def test_a_path_over_8_kib_that_envoy_lets_through_is_refused_by_the_filter(recorder, jwks_server, keys, workdir):
    """With Envoy's header limit raised (max_request_headers_kb: 96), a 64 KiB path reaches the
    filter, which refuses paths over 8 KiB with its 400."""
    jwks_server.serve(KEYS, T.jwks(keys.rsa.jwk()))
    g = start(workdir, recorder, jwks_server, plugin(), "paths-big", normalize_path=True, max_request_headers_kb=96)
    try:
        for host in (V1, V2):
            assert answer(g.raw_request("GET", LONG, host=host)) == "400"
            assert answer(g.raw_request("GET", "/public/" + "a" * 8000, host=host)) == f"200 /public/{'a' * 8000}"
    finally:
        g.stop()


def test_escaped_slashes_keep(recorder, jwks_server, keys, workdir, token):
    """`paths.escapedSlashes: keep`: %2F and %5C are data, decided on and forwarded as sent
    (upper-case hex), but never when decoding them makes a dot segment; v1's access rules see them
    decoded (case 11)."""
    jwks_server.serve(KEYS, T.jwks(keys.rsa.jwk()))
    g = start(workdir, recorder, jwks_server, plugin(paths={"escapedSlashes": "keep"}), "paths-keep",
              **MODES["BASE"])
    try:
        for host in (V1, V2):
            assert answer(g.raw_request("GET", "/public/a%2fb", host=host)) == "200 /public/a%2Fb"
            assert answer(g.raw_request("GET", "/public/..%2Fadmin", host=host)) == "400"
            assert answer(g.raw_request("GET", "/public/%5c../admin", host=host)) == "400"
            assert answer(g.raw_request("GET", "/public/%252F", host=host)) == "400"
        assert answer(g.raw_request("GET", "/admin%2Fx", host=V1)) == "401"
        assert answer(g.raw_request("GET", "/admin%2Fx", host=V1, token=token)) == "200 /admin%2Fx"
        assert answer(g.raw_request("GET", "/admin%2Fx", host=V2, token=token)) == "404"
    finally:
        g.stop()


@pytest.mark.parametrize("value", ["unescape", "KEEP", True])
def test_a_bad_escaped_slashes_value_is_refused_at_load(refusal, value):
    r = refusal(plugin(paths={"escapedSlashes": value}), name="paths-option")
    assert "plugin configuration: paths.escapedSlashes: must be" in r.log, r.log[-2000:]
