"""The requests of the APIRule v2 comparison: one Probe per request, over the APIRules of
apirules.yaml.

A probe names its APIRule (the Host is `<name>.peer.test` unless it says otherwise), method, path
as sent on the wire, the kind of token and where the token goes. Tokens are minted when the probe
is sent (`materialise`), so time-bound kinds (expired 30 s ago, valid from in 30 s) hold around the
60 s clock skew of Envoy's jwt_authn whenever the test runs. Probes that a conformance case of
apirule-semantics.md §5 (61-73) or a statement of §3.5.1 decides carry `case` and `expect`.
"""
import dataclasses

from jwt.algorithms import get_default_algorithms

from harness import tokens as T

ISSUERS = {  # issuer key -> (iss, JWKS path on the test JWKS server)
    "A": ("https://issuer-a.peer.test", "/peer/a"),
    "B": ("https://issuer-b.peer.test", "/peer/b"),
    "H": ("https://issuer-h.peer.test", "/peer/h"),
    "Q": ("https://issuer-q.peer.test", "/peer/q"),
    "E": ("https://issuer-e.peer.test", "/peer/e"),  # EC keys: P-256 (ec-1), P-384 (ec-384), P-521 (ec-521); Ed25519 (ed-1)
}
UNKNOWN_ISSUER = "https://unknown.peer.test"
JWKS_HOST = "jwks.local"


@dataclasses.dataclass(frozen=True)
class Probe:
    apirule: str
    method: str
    path: str
    token: str = None     # a kind of KINDS, or None for no token
    iss: str = "A"        # which issuer's valid token the kind starts from
    claims: tuple = ()    # (claim, value) overrides; value None deletes the claim
    send: str = "bearer"  # bearer | bearer-lower | bearer+<text after the token> | query:<name> |
    #                       header:<Name>:<prefix>
    host: str = None      # default <apirule>.peer.test
    headers: tuple = ()   # extra (name, value) request headers
    also: tuple = ()      # a second token: (kind, send), same issuer
    alg: str = None       # signing algorithm (default RS256; ES256 for issuer E); "ES512@P-256": the
    #                       header says ES512, the signature is made with the P-256 key
    case: str = None      # the reference statement that decides `expect`
    expect: int = None

    @property
    def host_header(self):
        return self.host or f"{self.apirule}.peer.test"

    @property
    def token_label(self):
        if self.token is None:
            return "none"
        out = self.token if self.iss == "A" else f"{self.token}({self.iss})"
        if self.alg:
            out += f"/{self.alg}"
        if self.claims:
            out += "+" + ",".join(f"{k}={v!r}" if v is not None else f"-{k}" for k, v in self.claims)
        if self.send != "bearer":
            out += "@" + self.send
        if self.also:
            out += f" and {self.also[0]}@{self.also[1]}"
        return out

    def line(self):
        return f"{self.apirule} {self.method} {self.host_header}{self.path} token={self.token_label}"


KINDS = ("valid", "expired", "expired_30s", "nbf_future", "nbf_30s", "no_exp", "wrong_issuer",
         "bad_signature", "wrong_key", "no_kid", "no_sub", "malformed")


def signing_key(iss, alg, keys):
    """keys: the session's signing keys plus ec521 (see peer_keys in test_peer_v2.py)."""
    if iss == "E":
        return {"ES384": keys.ec384, "ES512": keys.ec521, "EdDSA": keys.ed25519}.get(alg, keys.ec)
    return keys.rsa2 if iss == "B" else keys.rsa


def jwks_of(iss, keys):
    """The JWKS document the test JWKS server serves for an issuer."""
    if iss == "E":
        okp = get_default_algorithms()["EdDSA"].to_jwk(keys.ed25519.public, as_dict=True)
        return T.jwks(keys.ec.jwk(), keys.ec384.jwk(), keys.ec521.jwk(), {**okp, "kid": keys.ed25519.kid, "use": "sig"})
    return T.jwks(signing_key(iss, "RS256", keys).jwk())


def mint(probe, keys):
    """The token string for probe (None for no token). keys: the session's signing keys; issuer B
    signs with keys.rsa2, every other issuer with keys.rsa; keys.rsa_other forges rsa-1."""
    if probe.token is None:
        return None
    if probe.token == "malformed":
        return "not-a-jwt"
    iss = ISSUERS[probe.iss][0]
    alg = probe.alg or ("ES256" if probe.iss == "E" else "RS256")
    key = signing_key(probe.iss, alg, keys)
    alg = alg.split("@")[0]
    t = T.now()
    claims = {"iss": iss, "sub": "user-1", "iat": t - 10, "exp": t + 600}
    kind = probe.token
    if kind == "expired":
        claims["exp"] = t - 120
    elif kind == "expired_30s":
        claims["exp"] = t - 30
    elif kind == "nbf_future":
        claims["nbf"] = t + 120
    elif kind == "nbf_30s":
        claims["nbf"] = t + 30
    elif kind == "no_exp":
        del claims["exp"]
    elif kind == "wrong_issuer":
        claims["iss"] = UNKNOWN_ISSUER
    elif kind == "no_sub":
        del claims["sub"]
    for k, v in probe.claims:
        if v is None:
            claims.pop(k, None)
        else:
            claims[k] = v
    if kind == "wrong_key":
        return T.mint(keys.rsa_other if key.kind == "RSA" else keys.rsa, claims, alg=alg if key.kind == "RSA" else "RS256",
                      kid=key.kid)
    if kind == "no_kid":
        return T.mint(key, claims, alg=alg, kid=None)
    tok = T.mint(key, claims, alg=alg)
    if kind == "bad_signature":
        tok = T.tamper(tok)
    assert kind in KINDS, kind
    return tok


def materialise(probe, keys):
    """(method, path, headers) to send, with the token where probe.send puts it (and the second
    token, if any, where its send puts it)."""
    method, path, headers = _place(probe, mint(probe, keys), probe.path, dict(probe.headers))
    if probe.also:
        second = dataclasses.replace(probe, token=probe.also[0], send=probe.also[1], also=())
        method, path, headers = _place(second, mint(second, keys), path, headers)
    return method, path, headers


def _place(probe, tok, path, headers):
    if tok is not None:
        if probe.send == "bearer":
            headers["Authorization"] = f"Bearer {tok}"
        elif probe.send == "bearer-lower":
            headers["Authorization"] = f"bearer {tok}"
        elif probe.send.startswith("query:"):
            path += ("&" if "?" in path else "?") + f"{probe.send[6:]}={tok}"
        elif probe.send.startswith("header:"):
            _, name, prefix = probe.send.split(":", 2)
            headers[name] = prefix + tok
        elif probe.send.startswith("bearer+"):
            headers["Authorization"] = f"Bearer {tok}{probe.send[7:]}"
        elif probe.send == "bearer-2sp":
            headers["Authorization"] = f"Bearer  {tok}"
        else:
            raise ValueError(probe.send)
    return probe.method, path, headers


def _frozen(v):
    return tuple(v) if isinstance(v, list) else v


def P(apirule, method, path, token=None, **kw):
    """A Probe; claims and headers as dicts (claim lists become tuples, sent as JSON arrays)."""
    if "claims" in kw:
        kw["claims"] = tuple((k, _frozen(v)) for k, v in kw["claims"].items())
    if "headers" in kw:
        kw["headers"] = tuple(kw["headers"].items())
    return Probe(apirule, method, path, token, **kw)


# --- the request set -----------------------------------------------------------------------------

# Every kind of token, and a valid one in places a default-location provider does or does not read.
BATTERY = [dict(token=None), *[dict(token=k) for k in KINDS], dict(token="valid", iss="B"),
           dict(token="valid", send="bearer-lower"), dict(token="valid", send="query:access_token"),
           dict(token="valid", send="header:X-Token:Token "), dict(token="valid", send="bearer+ trailing")]


def _battery(apirule, method, path, **kw):
    return [P(apirule, method, path, **{**b, **kw}) for b in BATTERY]


def _both(apirule, method, path, **kw):
    """No token and a valid one."""
    return [P(apirule, method, path, **kw), P(apirule, method, path, "valid", **kw)]


def _probes():
    out = []
    add = out.extend
    # The batteries: jwt rules of every shape, a noAuth rule beside jwt rules, a noAuth-only workload.
    for apirule, method, path in [("paths", "GET", "/exact"), ("order", "POST", "/a/b"),
                                  ("catchall", "GET", "/anything"), ("mixed", "GET", "/jwt"),
                                  ("multi", "GET", "/multi"), ("tworules", "GET", "/ra"),
                                  ("mixed", "GET", "/free"), ("open", "GET", "/open/x"),
                                  ("paths", "GET", "/file.json")]:
        add(_battery(apirule, method, path))
    add(_battery("wild", "GET", "/w", host="a.wild.peer.test"))

    # Path operators and path variants (trailing slash, extra segment, case, encodings, sub-delims).
    for path in ["/exact/", "/exact/x", "/EXACT", "/Exact", "/exac", "/exact?x=1", "/%65xact", "/exact%2F",
                 "/one/x", "/one/", "/one/x/y", "/one", "/one/a%2Fb", "/one/a=b", "/one/a*b", "/one/%7Ex",
                 "/one/a%20b", "/one/a.b", '/one/a"b', "/one/../exact", "/one/x?y=/z",
                 "/any/", "/any", "/any/a/b", "/any/a/b/", "/any/a=b", "/any/a%2F..%2Fb", "/anyx/a",
                 "/mid/q/x", "/mid//x", "/mid/q/r/x", "/mid/q/x/", "/mid/q/y",
                 "/deep/end", "/deep//end", "/deep/a/end", "/deep/a/b/end", "/deep/a/end/x", "/deep/a/end/end",
                 "/fileXjson", "/file.json/", "/FILE.JSON", "/"]:
        add(_both("paths", "GET", path))
    add(_both("paths", "HEAD", "/exact") + _both("paths", "POST", "/exact"))

    # Rule order and notPaths.
    for method, path in [("GET", "/a/b"), ("POST", "/a/c"), ("GET", "/a/c"), ("PUT", "/a/c"), ("GET", "/a"),
                         ("GET", "/a/"), ("GET", "/x/y"), ("GET", "/x/z"), ("DELETE", "/x/y"), ("DELETE", "/x/z"),
                         ("POST", "/x/z"), ("GET", "/x/y/z")]:
        add(_both("order", method, path))
    for method, path in [("GET", "/public/x"), ("POST", "/public/x"), ("GET", "/public"), ("GET", "/"),
                         ("GET", "/x=y"), ("POST", "/anything"), ("PUT", "/anything"), ("GET", "/a/b/c/")]:
        add(_both("catchall", method, path))

    # requiredScopes and audiences.
    for claims in [{"scp": ["read", "write"]}, {"scope": "read write"}, {"scopes": ["read", "write"]},
                   {"scp": "read write"}, {"scp": ["read"], "scope": "write"}, {"scope": "write read extra"},
                   {"scopes": "read write"}, {}, {"scp": [], "scope": "read write"}, {"scp": ["read", "write", "x"]},
                   {"scp": ["read"]}, {"scope": "read"}, {"scp": ["Read", "Write"]}]:
        add([P("scopes", "GET", "/scoped", "valid", claims=claims), P("scopes", "GET", "/single", "valid", claims=claims)])
    add([P("scopes", "GET", "/single", "valid", claims={"scp": "read"}),
         P("scopes", "GET", "/single", "valid", claims={"scopes": "read"}),
         P("scopes", "GET", "/single", "expired", claims={"scp": ["read"]}),
         P("scopes", "GET", "/single")])
    for claims in [{"aud": ["x", "y"]}, {"aud": ["y", "x", "z"]}, {"aud": ["x"]}, {"aud": "x"}, {},
                   {"aud": "x y"}]:
        add([P("audiences", "GET", "/aud", "valid", claims=claims)])
    for claims in [{"scp": ["read"], "aud": "x"}, {"scp": ["read"], "aud": ["x", "q"]}, {"scope": "read", "aud": "x"},
                   {"scp": ["read"], "aud": "z"}, {"aud": "x"}, {"scopes": ["read"], "aud": ["x"]}]:
        add([P("audiences", "GET", "/aud-scope", "valid", claims=claims)])
    for claims in [{"aud": "x"}, {"scp": ["a"]}, {"scope": "a"}, {}, {"aud": "y"}, {"scp": "a"}, {"aud": ["z", "x"]}]:
        add([P("anyof", "GET", "/or", "valid", claims=claims)])
    add([P("anyof", "GET", "/or"), P("anyof", "GET", "/or", "expired", claims={"aud": "x"})])

    # Methods, two issuers on one rule, two rules with different issuers.
    for method in ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "get"]:
        add([P("multi", method, "/multi", "valid"), P("multi", method, "/multi", "valid", iss="B"),
             P("multi", method, "/multi")])
    add([P("tworules", "GET", "/ra", "valid", iss="B"), P("tworules", "GET", "/rb", "valid"),
         P("tworules", "GET", "/rb", "valid", iss="B"), P("tworules", "GET", "/rb"),
         P("tworules", "GET", "/rb", "expired", iss="B"), P("tworules", "GET", "/rb", "wrong_issuer")])

    # Token locations: fromHeaders with a prefix, fromParams.
    for b in [dict(send="header:X-Token:Token "), dict(send="header:X-Token:"), dict(send="header:X-Token:Bearer "),
              dict(send="header:X-Token:token "), dict(send="header:X-Token:xToken "), dict(send="bearer"),
              dict(send="query:access_token"), dict(send="header:X-Token:Token ", token="expired"),
              dict(send="header:X-Token:Token ", token="malformed"), dict(send="header:X-Token:Token ", iss="A"),
              dict(send="header:X-Token:Token ", token="no_sub"), dict(send="header:X-Token:Token ", token="expired_30s"),
              dict(send="header:Authorization:Token ")]:
        add([P("header", "GET", "/h", **{"token": "valid", "iss": "H", **b})])
    add([P("header", "GET", "/h")])
    for b in [dict(send="query:jwt"), dict(send="query:access_token"), dict(send="bearer"), dict(send="query:JWT"),
              dict(send="query:jwt", token="expired"), dict(send="query:jwt", token="malformed"),
              dict(send="query:jwt", iss="A"), dict(send="header:X-Token:Token ")]:
        add([P("param", "GET", "/q", **{"token": "valid", "iss": "Q", **b})])
    add([P("param", "GET", "/q"), P("param", "GET", "/q?jwt=", "valid", iss="Q", send="query:jwt")])

    # noAuth-only workload, noAuth beside jwt.
    for method, path in [("GET", "/"), ("GET", "/open"), ("GET", "/open/"), ("HEAD", "/open/a"),
                         ("OPTIONS", "/open/a"), ("DELETE", "/open/a/b"), ("GET", "/x"), ("POST", "/")]:
        add([P("open", method, path), P("open", method, path, "expired")])
    add([P("mixed", "POST", "/free"), P("mixed", "POST", "/free", "expired"), P("mixed", "POST", "/jwt", "valid"),
         P("mixed", "GET", "/free", "valid", send="header:X-Token:Token ")])

    # Hosts: wildcard, case, an explicit port, a host no APIRule governs.
    for host in ["A.WILD.PEER.TEST", "b.c.wild.peer.test", "wild.peer.test", "a.wild.peer.test:443",
                 "a.wild.peer.test:8080"]:
        add(_both("wild", "GET", "/w", host=host))
    for host in ["PATHS.PEER.TEST", "paths.peer.test:443", "paths.peer.test.", "nobody.peer.test"]:
        add(_both("paths", "GET", "/exact", host=host))
    add([P("paths", "GET", "/exact", "expired", host="nobody.peer.test")])

    # Algorithms: RSA PKCS#1 and PSS variants under one RSA key, ES256 and ES384.
    for alg in ["RS384", "RS512", "PS256", "PS384"]:
        add([P("paths", "GET", "/exact", "valid", alg=alg), P("paths", "GET", "/exact", "bad_signature", alg=alg)])
    add(_battery("ec", "GET", "/ec", iss="E"))
    add([P("ec", "GET", "/ec", "valid", iss="E", alg="ES384"), P("ec", "GET", "/ec", "bad_signature", iss="E", alg="ES384"),
         P("ec", "GET", "/ec", "no_kid", iss="E", alg="ES384"), P("ec", "GET", "/ec", "valid"),
         P("ec", "GET", "/ec", "valid", iss="E", alg="ES512"), P("ec", "GET", "/ec", "bad_signature", iss="E", alg="ES512"),
         P("ec", "GET", "/ec", "valid", iss="E", alg="ES512@P-256"),
         P("ec", "GET", "/ec", "valid", iss="E", alg="EdDSA"), P("ec", "GET", "/ec", "bad_signature", iss="E", alg="EdDSA"),
         P("ec", "GET", "/ec", "no_kid", iss="E", alg="EdDSA"), P("ec", "GET", "/ec", "expired", iss="E", alg="EdDSA")])

    # Envoy specifics: CORS preflights skip jwt_authn (bypass_cors_preflight), two tokens in one
    # request (each location is tried), a double space after Bearer, `;` in a path.
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "GET"}
    add([P("multi", "OPTIONS", "/multi", headers=preflight), P("multi", "OPTIONS", "/multi", "expired", headers=preflight),
         P("multi", "OPTIONS", "/multi", "valid", headers=preflight),
         P("multi", "OPTIONS", "/multi", "expired", headers={"Origin": "https://app.example"}),
         P("open", "OPTIONS", "/open/a", "expired", headers=preflight),
         P("mixed", "GET", "/free", "expired", headers=preflight)])
    for first, second in [("valid", "expired"), ("expired", "valid"), ("valid", "malformed"), ("malformed", "valid"),
                          ("valid", "valid")]:
        add([P("paths", "GET", "/exact", first, also=(second, "query:access_token")),
             P("mixed", "GET", "/free", first, also=(second, "query:access_token"))])
    add([P("paths", "GET", "/exact", "valid", send="bearer-2sp"), P("paths", "GET", "/exact", "valid",
                                                                    send="query:access_token", also=("valid", "query:access_token"))])
    add(_both("paths", "GET", "/exact;x") + _both("paths", "GET", "/one/x;y"))

    # Request header and cookie setters.
    add([P("setters", "GET", "/set", headers={"X-Peer-Set": "client", "Cookie": "c=1"}),
         P("setters", "GET", "/set"),
         P("setters", "GET", "/set-jwt", "valid", headers={"X-Peer-Set": "client"}),
         P("setters", "GET", "/set-jwt", headers={"X-Peer-Set": "client"}),
         P("setters", "GET", "/set", "expired"),
         P("operators", "GET", "/op"), P("operators", "GET", "/op", "expired", host="OPERATORS.peer.test")])
    return out


CASES = [  # (case, probe, expected status) as apirule-semantics.md states them
    ("61", P("paths", "GET", "/one/x", "valid"), 200),
    ("61", P("paths", "GET", "/one/", "valid"), 404),
    ("61", P("paths", "GET", "/one/x/y", "valid"), 404),
    ("62", P("paths", "GET", "/any/", "valid"), 200),
    ("62", P("paths", "GET", "/any/a/b", "valid"), 200),
    ("62", P("paths", "GET", "/any", "valid"), 404),
    ("64", P("order", "POST", "/a/b"), 403),
    ("65", P("paths", "GET", "/exact"), 403),
    ("66", P("paths", "GET", "/exact", "expired"), 401),
    ("67", P("paths", "GET", "/exact", "wrong_issuer"), 401),
    ("68", P("scopes", "GET", "/scoped", "valid", claims={"scp": ["read", "write"]}), 200),
    ("68", P("scopes", "GET", "/scoped", "valid", claims={"scope": "read write"}), 200),
    ("68", P("scopes", "GET", "/scoped", "valid", claims={"scp": "read write"}), 403),
    ("68", P("scopes", "GET", "/scoped", "valid", claims={"scp": ["read"], "scope": "write"}), 403),
    ("69", P("anyof", "GET", "/or", "valid", claims={"aud": "x"}), 200),
    ("70", P("paths", "GET", "/exact", "expired_30s"), 200),
    ("71", P("order", "GET", "/a/b"), 403),
    ("71", P("order", "GET", "/a/b", "valid"), 403),
    ("72", P("mixed", "GET", "/jwt", "no_sub"), 403),
    ("73", P("mixed", "GET", "/free", "expired"), 401),
    # §3.5 / §3.5.1 statements
    ("3.5.1 skew for nbf", P("paths", "GET", "/exact", "nbf_30s"), 200),
    ("3.5.1 skew for nbf", P("paths", "GET", "/exact", "nbf_future"), 401),
    ("3.5.1 kid optional", P("paths", "GET", "/exact", "no_kid"), 200),
    ("3.5.1 Bearer is case-sensitive", P("paths", "GET", "/exact", "valid", send="bearer-lower"), 403),
    ("3.5 access_token query parameter", P("paths", "GET", "/exact", "valid", send="query:access_token"), 200),
    ("3.5 bad signature", P("paths", "GET", "/exact", "bad_signature"), 401),
    ("3.5 host with a port", P("paths", "GET", "/exact", "valid", host="paths.peer.test:443"), 403),
    ("3.5 scp string not split", P("scopes", "GET", "/single", "valid", claims={"scp": "read write"}), 403),
    ("3.5 no route", P("paths", "GET", "/nothing", "valid"), 404),
    ("3.5 no route before 401", P("paths", "GET", "/nothing", "expired"), 404),
    ("3.5.1 fromHeaders prefix", P("header", "GET", "/h", "valid", iss="H", send="header:X-Token:Token "), 200),
    ("3.5.1 fromHeaders prefix", P("header", "GET", "/h", "valid", iss="H", send="bearer"), 403),
    ("3.5 fromParams", P("param", "GET", "/q", "valid", iss="Q", send="query:jwt"), 200),
]


def _with_cases(probes):
    """The probes without repeats, every case probe among them, marked with its case and
    expectation."""
    out = list(dict.fromkeys(probes))
    for case, probe, expect in CASES:
        marked = dataclasses.replace(probe, case=case, expect=expect)
        if probe in out:
            out[out.index(probe)] = marked
        else:
            out.append(marked)
    return out


PROBES = _with_cases(_probes())
