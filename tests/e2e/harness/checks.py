"""Assertions for what docs/behaviour.md promises the client and the backend see."""
import json

MESSAGES = {
    400: ("Bad Request", "The request was malformed or contained invalid parameters"),
    401: ("Unauthorized", "The request could not be authorized"),
    403: ("Forbidden", "The requested action was forbidden"),
    404: ("Not Found", "The requested resource could not be found"),
    500: ("Internal Server Error",
          "An internal server error occurred, please contact the system administrator"),
}


def herodot_body(code, request_id):
    status, message = MESSAGES[code]
    err = {"code": code, "status": status}
    if request_id is not None:
        err["request"] = request_id
    err["message"] = message
    return {"error": err}


def assert_json_error(resp, code):
    """Deny with herodot's non-verbose JSON body (behaviour.md 'Deny responses'); nothing reached
    the backend."""
    assert resp.status == code, resp
    assert not resp.reached_upstream, f"a denied request reached the backend: {resp.upstream}"
    ctype = resp.header("content-type", "")
    assert ctype.split(";")[0].strip() == "application/json", resp
    try:
        body = json.loads(resp.body)
    except ValueError:
        raise AssertionError(f"deny body is not JSON: {resp}")
    assert body == herodot_body(code, resp.request_id), f"{body} != {herodot_body(code, resp.request_id)}"
    return body


def assert_401(resp, token_presented=None):
    """401 JSON + WWW-Authenticate: Bearer. token_presented=True: the header also says
    error="invalid_token"; False: it is exactly `Bearer`; None: only the scheme is checked."""
    assert_json_error(resp, 401)
    www = resp.header("www-authenticate")
    assert www is not None, f"401 without WWW-Authenticate: {resp}"
    assert www == "Bearer" or www.startswith("Bearer "), resp
    if token_presented is True:
        assert 'error="invalid_token"' in www, f"token presented, expected error=\"invalid_token\": {www!r}"
    elif token_presented is False:
        assert www == "Bearer", f"no token presented, expected exactly 'Bearer': {www!r}"


def assert_404_json(resp):
    """Access-rule stage: no Oathkeeper rule matches (herodot 404)."""
    assert_json_error(resp, 404)


def assert_500_json(resp):
    assert_json_error(resp, 500)


def assert_route_404(resp):
    """Route stage: no VirtualService route; Envoy's 404 with an empty body."""
    assert resp.status == 404, resp
    assert resp.body == b"", f"route-stage 404 must have an empty body: {resp}"
    assert not resp.reached_upstream, resp


def assert_forwarded(resp, forwarded_host=None, path=None, method=None):
    """200 from the recorder, exactly one upstream request; x-forwarded-host set to the APIRule
    host when given."""
    assert resp.status == 200, resp
    seen = resp.seen
    if forwarded_host is not None:
        assert seen.header_values("x-forwarded-host") == [forwarded_host], seen["headers"]
    if path is not None:
        assert seen["path"] == path, seen["path"]
    if method is not None:
        assert seen["method"] == method, seen["method"]
    return seen


def assert_passed_through_untouched(resp, sent_headers, path):
    """A host the filter does not govern: forwarded, no header added or changed by the filter."""
    seen = assert_forwarded(resp, path=path)
    assert not seen.has_header("x-forwarded-host"), seen["headers"]
    for k, v in sent_headers.items():
        assert seen.header_values(k) == [v], (k, seen["headers"])
    return seen
