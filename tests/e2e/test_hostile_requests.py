"""Hostile bytes on the wire never crash the filter's VM: header values with non-UTF-8 octets (which
proxy-wasm's string accessors would trap on), oversized and malformed tokens, odd request lines.
Each gets a clean answer, and afterwards both workers still serve valid requests."""
import socket
import uuid

import pytest
from requests.structures import CaseInsensitiveDict

from harness import apirules as A
from harness import h2
from harness import tokens as T
from harness.checks import assert_forwarded, assert_json_error, assert_route_404
from harness.gateway import UPSTREAM_TAG, Response

KEYS = "/hostile/keys"
HOST = "hostile.test"
OPEN = "open.test"

RULES = [
    A.apirule("hostile", HOST,
              A.rule("/bearer", ["GET"], A.jwt([KEYS])),
              A.rule("/header", ["GET"], A.jwt([KEYS], token_from={"header": "X-Token"})),
              A.rule("/cookie", ["GET"], A.jwt([KEYS], token_from={"cookie": "c"})),
              A.rule("/query", ["GET"], A.jwt([KEYS], token_from={"query_parameter": "t"})),
              A.rule("/anon", ["GET"], A.strategy("anonymous"))),
    A.apirule("open", OPEN, A.rule("/.*", ["GET"], A.strategy("no_auth"))),
]


@pytest.fixture(scope="module")
def gw(launcher, jwks_server, keys):
    jwks_server.serve(KEYS, T.jwks(keys.rsa.jwk()))
    g = launcher(A.plugin_config(RULES, jwks_paths=[KEYS]), name="hostile")
    yield g
    g.stop()


def raw(gw, request: bytes) -> Response:
    """Sends bytes as they are (a connection of its own, tagged so the upstream recorder's copy is
    found); the status is 0 when Envoy closed without an answer."""
    tag = uuid.uuid4().hex
    head, sep, rest = request.partition(b"\r\n")
    request = head + sep + f"{UPSTREAM_TAG}: {tag}\r\nx-request-id: hostile-{tag}\r\n".encode() + rest
    with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as s:
        s.sendall(request)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    upstream = gw.recorder.received(tag)
    if b"\r\n\r\n" not in data:
        return Response(0, CaseInsensitiveDict(), b"", upstream, 0.0, f"hostile-{tag}")
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    headers = CaseInsensitiveDict()
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.decode("latin-1").strip()] = value.decode("latin-1").strip()
    return Response(int(lines[0].split(b" ", 2)[1]), headers, body, upstream, 0.0, f"hostile-{tag}")


def req(path: bytes, host: bytes = HOST.encode(), *headers: bytes) -> bytes:
    lines = [b"GET " + path + b" HTTP/1.1", b"Host: " + host, *headers, b"Connection: close", b"", b""]
    return b"\r\n".join(lines)


@pytest.mark.parametrize("path,header", [
    (b"/bearer", b"Authorization: Bearer \xff\xfe\x80"),
    (b"/bearer", b"Authorization: Bearer eyJ\xc3(.e30.\xff"),
    (b"/bearer", b"Authorization: \xffBearer x"),
    (b"/header", b"X-Token: \x80\x81\x82"),
    (b"/cookie", b"Cookie: c=\xff\xfe; d=\x80"),
    (b"/query?t=%FF%FE", b"X-Other: \xff"),
    (b"/bearer", b"Authorization: Bearer " + b"A" * 40_000),
    (b"/bearer", b"Authorization: Bearer " + b"." * 5_000),
])
def test_non_utf8_and_oversized_tokens_are_401(gw, path, header):
    assert_json_error(raw(gw, req(path, HOST.encode(), header)), 401)


def test_anonymous_with_binary_authorization_is_401(gw):
    assert_json_error(raw(gw, req(b"/anon", HOST.encode(), b"Authorization: \xff")), 401)


def test_binary_header_on_an_open_route_is_forwarded(gw):
    r = raw(gw, req(b"/x", OPEN.encode(), b"X-Binary: \xff\xfe"))
    assert r.status == 200 and len(r.upstream) == 1, r


@pytest.mark.parametrize("path,expected", [
    (b"/bearer%", 400),  # a `%` without two hex digits
    (b"/bearer%zz", 400),  # not hex
    (b"/%C3%28", 400),  # decodes to bytes that are not UTF-8
    (b"/bearer/%2e%2e/%2e%2e/x", 404),  # normalised to /x, which no rule's path matches: the route stage
])
def test_odd_paths_get_their_one_answer(gw, path, expected):
    """docs/behaviour.md, "What reaches the backend": invalid percent-encoding or a path that decodes
    to invalid UTF-8 is the filter's 400 JSON before any rule; a path no route matches once
    normalised is Envoy's no-route 404 with an empty body."""
    r = raw(gw, req(path))
    if expected == 404:
        assert_route_404(r)
    else:
        assert_json_error(r, expected)


@pytest.mark.parametrize("request_bytes,expected", [
    # Non-ASCII octets in the request line: Envoy's HTTP/1 codec refuses them before any filter
    # (over HTTP/2 they reach the filter: tests/e2e/test_path_hardening.py, its 400 JSON).
    (req(b"/bearer\xff", HOST.encode()), "400 envoy"),
    (req(b"/bearer", HOST.encode() + b"\xff"), "400 envoy"),
    # The governed host with a port: no access rule's host matches (case 10): 404 JSON.
    (req(b"/bearer", b"HOSTILE.TEST:99999"), "404 filter"),
], ids=["path-not-utf8", "host-not-utf8", "host-with-port"])
def test_odd_request_lines_get_their_one_answer(gw, request_bytes, expected):
    r = raw(gw, request_bytes)
    code, who = expected.split()
    if who == "filter":
        assert_json_error(r, int(code))
    else:
        assert r.status == int(code) and not r.reached_upstream, r
        assert not r.header("content-type", "").startswith("application/json"), f"the filter answered: {r}"


@pytest.mark.parametrize("method,authority", [(b"G\xffT", HOST.encode()), (b"GET", HOST.encode() + b"\xff")],
                         ids=["method-not-utf8", "authority-not-utf8"])
def test_a_method_or_authority_that_is_not_utf8_never_reaches_the_filter(gw, method, authority):
    """Over HTTP/2 too, Envoy resets the stream of a non-token method or an invalid authority before
    any filter runs (the filter's own 400 for them is a second line: docs/behaviour.md)."""
    tag = uuid.uuid4().hex
    status, _ = h2.request(gw.port, [(b":method", method), (b":scheme", b"http"), (b":authority", authority),
                                     (b":path", b"/bearer"), (UPSTREAM_TAG.encode(), tag.encode())])
    assert (status, gw.recorder.received(tag)) == (0, [])


@pytest.mark.parametrize("host", [b"hostile.test.", b"HOSTILE.test", b"hostile.test.:80"])
def test_other_spellings_of_a_governed_host_do_not_bypass_it(gw, keys, host):
    # Without a token these would reach the backend if the filter took them for another host.
    assert_json_error(raw(gw, req(b"/bearer", host)), 404)


def test_a_host_no_apirule_governs_passes_even_when_malformed(gw):
    # `[::1` is not an APIRule host: the filter leaves it alone (Envoy routes it to the backend).
    r = raw(gw, req(b"/bearer", b"[::1"))
    assert r.status == 200 and len(r.upstream) == 1, r


def test_workers_still_serve_after_the_hostile_requests(gw, keys):
    # Runs last in this module (pytest keeps file order), after every hostile request above.
    token = T.mint(keys.rsa, T.std_claims())
    for _ in range(12):  # fresh connections spread over both workers
        assert_forwarded(gw.get("/bearer", host=HOST, token=token), forwarded_host=HOST)
    log = gw.log_text()
    for sign in ("panicked", "wasm trap", "Function: proxy_on_", "failed to", "Plugin configured to fail closed"):
        assert sign not in log, f"{sign!r} in Envoy's log"
