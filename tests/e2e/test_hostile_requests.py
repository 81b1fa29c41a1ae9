"""Hostile bytes on the wire never crash the filter's VM: header values with non-UTF-8 octets (which
proxy-wasm's string accessors would trap on), oversized and malformed tokens, odd request lines.
Each gets a clean answer, and afterwards both workers still serve valid requests."""
import socket

import pytest

from harness import apirules as A
from harness import tokens as T
from harness.checks import assert_forwarded

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


def raw(gw, request: bytes) -> int:
    """Sends bytes as they are; returns the response status (0 when Envoy closed without one)."""
    with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as s:
        s.sendall(request)
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                return 0
            data += chunk
    parts = data.split(b" ", 2)
    return int(parts[1])


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
    assert raw(gw, req(path, HOST.encode(), header)) == 401


def test_anonymous_with_binary_authorization_is_401(gw):
    assert raw(gw, req(b"/anon", HOST.encode(), b"Authorization: \xff")) == 401


def test_binary_header_on_an_open_route_is_forwarded(gw):
    assert raw(gw, req(b"/x", OPEN.encode(), b"X-Binary: \xff\xfe")) == 200


@pytest.mark.parametrize("path", [b"/bearer%", b"/bearer%zz", b"/%C3%28", b"/bearer/%2e%2e/%2e%2e/x"])
def test_odd_paths_get_a_clean_answer(gw, path):
    # 400 (bad escape or not UTF-8 once decoded) or 404 (no rule); never a crash or a 5xx.
    assert raw(gw, req(path)) in (400, 404)


@pytest.mark.parametrize("request_bytes", [
    req(b"/bearer\xff", HOST.encode()),
    req(b"/bearer", HOST.encode() + b"\xff"),
    req(b"/bearer", b"HOSTILE.TEST:99999"),
])
def test_odd_request_lines_never_crash(gw, request_bytes):
    # Envoy's codec may refuse these itself (400); whatever reaches the filter gets 400/401/404.
    assert raw(gw, request_bytes) in (0, 400, 401, 404)


@pytest.mark.parametrize("host", [b"hostile.test.", b"HOSTILE.test", b"hostile.test.:80"])
def test_other_spellings_of_a_governed_host_do_not_bypass_it(gw, keys, host):
    # Without a token these would reach the backend if the filter took them for another host.
    assert raw(gw, req(b"/bearer", host)) == 404


def test_a_host_no_apirule_governs_passes_even_when_malformed(gw):
    # `[::1` is not an APIRule host: the filter leaves it alone (Envoy routes it to the backend).
    assert raw(gw, req(b"/bearer", b"[::1")) == 200


def test_workers_still_serve_after_the_hostile_requests(gw, keys):
    # Runs last in this module (pytest keeps file order), after every hostile request above.
    token = T.mint(keys.rsa, T.std_claims())
    for _ in range(12):  # fresh connections spread over both workers
        assert_forwarded(gw.get("/bearer", host=HOST, token=token), forwarded_host=HOST)
    log = gw.log_text()
    for sign in ("panicked", "wasm trap", "Function: proxy_on_", "failed to", "Plugin configured to fail closed"):
        assert sign not in log, f"{sign!r} in Envoy's log"
