"""The hostile input corpus (tests/e2e/corpus/*.yaml): loading the cases, building each case's
JWKS document, token, APIRule and request from its declarative description, and sending the request
byte for byte. tests/e2e/test_hostile_corpus.py runs them; docs/security.md, "Hostile input corpus",
says how to add one.

A case (every field but `name` and `expect` optional; a file's `defaults` fill in what a case
leaves out):

    name:    unique in its file
    why:     one line: what the case is about and where its answer comes from
    expect:  {v1beta1: status, v2: status}: the one answer per APIRule version the case runs under
    by:      envoy | filter: who answers a 400 (default: the filter, with its JSON body)
    finding: text, or {version: text}: the filter answers otherwise today (reported to the
             maintainers; the test is a strict xfail until it is fixed, then the line goes)
    rule:    {profile: jwt | paths, v1beta1: {jwt handler config}, v2: {authentication: {...},
             authorizations: [...]}}. jwt: `GET /.*` (v1beta1) / `GET /{**}` (v2) with the jwt
             handler; paths: `/public/.*` GET no_auth + `/admin.*` GET,POST jwt (v1beta1),
             `/public/{**}` GET noAuth + `/admin/{**}` GET,POST jwt (v2).
    jwks:    [key, ...] (see jwk()), or {raw: "<body>"}, or {doc: {...}}
    token:   see mint(); absent: no token
    request: {method, path, headers: [[name, value], ...], auth: bearer | none}; `auth: bearer`
             (the default when there is a token) sends `Authorization: Bearer <token>`. Strings may
             hold ${token} (the case's token), ${valid} (a valid token of key rsa), ${forged}
             (${valid} with a flipped signature byte), ${now}, ${exp} (now + 600), ${exp_e} (the
             same in exponent notation), ${iss} (the rules' issuer), ${attacker_jku} (a URL of
             the attacker's key set); YAML escapes like "\\xff" are sent as that byte.
    forwarded: the path the backend must get when the answer is 200 (default: the request path)
    upstream:  {header: [values]} the backend must get on a 200 (default: `authorization:
             ["Bearer ${token}"]` when the token was sent that way)
    warm:    a version: under every other version, the same request (same token) is first sent
             to this case's host of that version, its answer ignored (the verified-token cache is
             shared by the semantics; the answer must not depend on what the other one verified)

Anywhere in token claims/headers, paths and header values: {$repeat: text, count: n} is text n
times, {$cat: [a, b, ...]} the strings joined, {$now: offset} the current time plus offset
(a float offset gives a float), {$nest: depth, leaf: value, kind: object} the leaf inside depth
JSON arrays (or objects `{"a": ...}`).
"""
import base64
import glob
import hashlib
import hmac
import json
import os
import re
import socket
import time
import uuid

import yaml
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from . import tokens as T

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS_DIR = os.path.join(os.path.dirname(HERE), "corpus")
ISSUER = "https://idp.corpus.test"
ATTACKER_KEYS = "/corpus/attacker/keys"  # the attacker's key set, which jku/x5u cases name
VERSIONS = ("v1beta1", "v2")
PROFILES = ("jwt", "paths")
CASE_FIELDS = {"name", "why", "expect", "by", "finding", "rule", "jwks", "token", "request",
               "forwarded", "upstream", "warm"}


# ---------------------------------------------------------------------------------------------
# Loading


class Case:
    def __init__(self, cls, data):
        self.cls = cls
        self.name = data["name"]
        self.data = data

    def __getattr__(self, item):
        if item in CASE_FIELDS:
            return self.data.get(item)
        raise AttributeError(item)

    @property
    def id(self):
        return f"{self.cls}:{self.name}"

    def setup_key(self, version):
        """Cases with the same JWKS and rule share a host."""
        rule = self.data.get("rule") or {}
        return json.dumps({"v": version, "profile": rule.get("profile", "jwt"),
                           "rule": rule.get(version), "jwks": self.data.get("jwks")}, sort_keys=True)


def load(directory=CORPUS_DIR):
    """Every case of every corpus file, checked for shape (a typo must fail, never be ignored)."""
    cases = []
    for path in sorted(glob.glob(os.path.join(directory, "*.yaml"))):
        cls = os.path.splitext(os.path.basename(path))[0]
        with open(path) as f:
            doc = yaml.safe_load(f)
        unknown = set(doc) - {"defaults", "cases"}
        assert not unknown, f"{path}: unknown top-level keys {unknown}"
        defaults = doc.get("defaults") or {}
        names = set()
        for raw in doc["cases"]:
            data = dict(defaults)
            data.update(raw)
            where = f"{path}: case {raw.get('name')!r}"
            assert set(data) <= CASE_FIELDS, f"{where}: unknown fields {set(data) - CASE_FIELDS}"
            assert data.get("name") and data["name"] not in names, f"{where}: missing or repeated name"
            names.add(data["name"])
            expect = data.get("expect")
            assert isinstance(expect, dict) and expect and set(expect) <= set(VERSIONS), \
                f"{where}: expect must map {VERSIONS} to one status each"
            assert all(isinstance(s, int) for s in expect.values()), f"{where}: one status per version"
            assert data.get("by") in (None, "envoy", "filter"), where
            assert data.get("warm") in (None, *expect), f"{where}: warm must be a version it runs under"
            profile = (data.get("rule") or {}).get("profile", "jwt")
            assert profile in PROFILES, f"{where}: rule.profile {profile!r}"
            cases.append(Case(cls, data))
    return cases


# ---------------------------------------------------------------------------------------------
# Values


class RawJson(str):
    """JSON text to be put into a document as it is."""


def expand(value, ctx):
    """Resolve the $-directives and ${...} placeholders in a YAML value."""
    if isinstance(value, dict):
        if "$repeat" in value:
            return expand(value["$repeat"], ctx) * int(value["count"])
        if "$cat" in value:
            return "".join(expand(v, ctx) for v in value["$cat"])
        if "$now" in value:
            off = value["$now"]
            return ctx["now"] + off
        if "$nest" in value:
            depth = int(value["$nest"])
            leaf = dumps(expand(value.get("leaf", 1), ctx))
            if value.get("kind") == "object":
                return RawJson('{"a":' * depth + leaf + "}" * depth)
            return RawJson("[" * depth + leaf + "]" * depth)
        return {k: expand(v, ctx) for k, v in value.items()}
    if isinstance(value, list):
        return [expand(v, ctx) for v in value]
    if isinstance(value, str):
        return substitute(value, ctx)
    return value


def substitute(text, ctx):
    def one(m):
        name = m.group(1)
        if name not in ctx:
            raise KeyError(f"unknown placeholder ${{{name}}} in {text!r}")
        return str(ctx[name])
    return re.sub(r"\$\{([a-z_]+)\}", one, text)


def dumps(value):
    """Compact JSON that leaves RawJson fragments as they are (deep nesting without recursion)."""
    if isinstance(value, RawJson):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(json.dumps(k) + ":" + dumps(v) for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(dumps(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def b64(data):
    return T.b64url(data)


def b64_int(i, length=None):
    length = length or (i.bit_length() + 7) // 8
    return b64(i.to_bytes(length, "big"))


# ---------------------------------------------------------------------------------------------
# Keys and JWKS documents


DEFAULT_ALG = {"RSA": "RS256", "EC": None, "OKP": "EdDSA", "oct": "HS256"}
EC_ALG = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}


CURVES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}


def default_alg(key):
    if key.kind == "EC":
        return EC_ALG[CURVES[key.private.curve.name]]
    return DEFAULT_ALG[key.kind]


def jwk(entry, keys):
    """One key of a JWKS: a key name (its public JWK, `use: sig`, no `alg`), or
    {key: name, kid, alg, use (null: left out), omit: [members], set: {members}, private: true
    (add the private members), off_curve: true (EC: y + 1), ec_zero_pad: bytes (EC: leading zero
    bytes on x and y), n_zero_pad: bytes (RSA: leading zero bytes on n), n_fill: {byte, count} (RSA: n replaced)}, or {oct: secret text, kid}, or
    {jwk: {...}} as it is."""
    if isinstance(entry, str):
        entry = {"key": entry}
    if "jwk" in entry:
        return entry["jwk"]
    if "oct" in entry:
        return {"kty": "oct", "kid": entry["kid"], "use": "sig", "k": b64(entry["oct"].encode())}
    key = keys[entry["key"]]
    use = entry.get("use", "sig")
    d = key.jwk(use=use, kid=entry.get("kid"), alg=entry.get("alg"))
    if key.kind == "RSA":
        nums = key.public.public_numbers()
        if entry.get("n_zero_pad"):
            d["n"] = b64(b"\0" * entry["n_zero_pad"] + nums.n.to_bytes((nums.n.bit_length() + 7) // 8, "big"))
        if entry.get("n_fill"):
            d["n"] = b64(bytes([entry["n_fill"]["byte"]]) * entry["n_fill"]["count"])
        if entry.get("private"):
            p = key.private.private_numbers()
            d.update(d=b64_int(p.d), p=b64_int(p.p), q=b64_int(p.q), dp=b64_int(p.dmp1),
                     dq=b64_int(p.dmq1), qi=b64_int(p.iqmp))
    if key.kind == "EC":
        size = (key.private.curve.key_size + 7) // 8
        if entry.get("ec_zero_pad"):
            nums = key.public.public_numbers()
            pad0 = b"\0" * entry["ec_zero_pad"]
            d["x"], d["y"] = (b64(pad0 + nums.x.to_bytes(size, "big")), b64(pad0 + nums.y.to_bytes(size, "big")))
        if entry.get("off_curve"):
            y = key.public.public_numbers().y
            d["y"] = b64_int(y + 1, size)
        if entry.get("private"):
            d["d"] = b64_int(key.private.private_numbers().private_value, size)
    for m in entry.get("omit", ()):
        d.pop(m, None)
    d.update(entry.get("set") or {})
    return d


def jwks_body(spec, keys):
    """(body bytes, content type) the JWKS server answers for a case's `jwks`."""
    if isinstance(spec, dict) and "raw" in spec:
        return spec["raw"], "application/json"
    if isinstance(spec, dict) and "doc" in spec:
        return json.dumps(spec["doc"]), "application/json"
    return json.dumps({"keys": [jwk(e, keys) for e in spec]}), "application/json"


# ---------------------------------------------------------------------------------------------
# Tokens


def secret_of(name, key):
    """An HMAC secret made from an RSA key's public (or private) material: the algorithm
    confusion attacker's guesses at what a verifier that trusts `alg` would use."""
    pub = key.public
    pem = key.public_pem()
    n = pub.public_numbers().n
    n_bytes = n.to_bytes((n.bit_length() + 7) // 8, "big")
    table = {
        "public_pem": lambda: pem,
        "public_pem_leading_space": lambda: b"  " + pem,
        "public_pem_leading_newline": lambda: b"\n" + pem,
        "public_pem_no_final_newline": lambda: pem.rstrip(b"\n"),
        "public_pem_crlf": lambda: pem.replace(b"\n", b"\r\n"),
        "pkcs1_pem": lambda: pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1),
        "der": lambda: pub.public_bytes(serialization.Encoding.DER,
                                        serialization.PublicFormat.SubjectPublicKeyInfo),
        "n_raw": lambda: n_bytes,
        "n_b64": lambda: b64(n_bytes).encode(),
        "jwk_json": lambda: json.dumps(key.jwk()).encode(),
        "d_raw": lambda: key.private.private_numbers().d.to_bytes(256, "big"),
    }
    return table[name]()


HASHES = {"256": hashlib.sha256, "384": hashlib.sha384, "512": hashlib.sha512}
EC_HASHES = {"ES256": hashes.SHA256, "ES384": hashes.SHA384, "ES512": hashes.SHA512}
ED25519_ORDER = 2**252 + 27742317777372353535851937790883648493
EC_ORDERS = {
    "P-256": 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
    "P-384": 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973,
}


def signature(signing_input, key, alg, secret=None):
    if secret is not None:
        return hmac.new(secret, signing_input, HASHES[alg[-3:]]).digest()
    return T.sign(signing_input, key, alg)


def pad(segment):
    return segment + "=" * (-len(segment) % 4)


def mint(spec, keys, ctx):
    """The token a case describes:

    raw: the token text as it is (placeholders resolved), else a signed compact JWS:
    key: signing key name (default rsa); alg: the header's alg (default: the key's algorithm);
    sign_alg: the algorithm really used (default: alg); secret: HS* keyed with this material of
    `key` (secret_of); hmac_key: HS* keyed with this text; unsigned: true: empty signature;
    der: true: the ECDSA signature DER-encoded (JWS wants r || s); high_s: true: s replaced by
    n - s (the other valid ECDSA signature); ed_s_plus_l: true: Ed25519's S replaced by S + L
    (not canonical); signature_hex: these signature bytes; kid: default the key's kid (any JSON value);
    typ: default JWT; header: extra members; omit: header members left out; header_raw: the
    header's exact JSON text; claims: members over the standard ones (iss, sub, iat, exp);
    omit_claims: members left out; claims_raw: the payload's exact JSON text; padded: true:
    header and payload base64url with padding (then signed); transform: applied to the result in
    order (see transform())."""
    spec = spec or {}
    if "raw" in spec:
        return expand(spec["raw"], ctx)
    key = keys[spec.get("key", "rsa")]
    alg = expand(spec.get("alg", default_alg(key)), ctx)
    header = {"alg": alg}
    typ = spec.get("typ", "JWT")
    if typ is not None:
        header["typ"] = typ
    header["kid"] = expand(spec["kid"], ctx) if "kid" in spec else key.kid
    header.update(expand(spec.get("header") or {}, ctx))
    for m in spec.get("omit", ()):
        header.pop(m, None)
    claims = {"iss": ISSUER, "sub": "user-1", "iat": ctx["now"] - 10, "exp": ctx["now"] + 600,
              "jti": uuid.uuid4().hex}
    claims.update(expand(spec.get("claims") or {}, ctx))
    for m in spec.get("omit_claims", ()):
        claims.pop(m, None)
    header_text = expand(spec["header_raw"], ctx) if "header_raw" in spec else dumps(header)
    claims_text = expand(spec["claims_raw"], ctx) if "claims_raw" in spec else dumps(claims)
    enc = (lambda s: pad(b64(s.encode()))) if spec.get("padded") else (lambda s: b64(s.encode()))
    signing_input = enc(header_text) + "." + enc(claims_text)
    if spec.get("unsigned"):
        sig = b""
    else:
        sign_alg = spec.get("sign_alg", alg)
        secret = secret_of(spec["secret"], key) if spec.get("secret") else None
        if "hmac_key" in spec:
            secret = spec["hmac_key"].encode()
        sig = signature(signing_input.encode(), key, sign_alg, secret)
        if spec.get("der"):
            sig = key.private.sign(signing_input.encode(), ec.ECDSA(EC_HASHES[sign_alg]()))
        if spec.get("high_s"):
            order = EC_ORDERS[CURVES[key.private.curve.name]]
            half = len(sig) // 2
            s_value = order - int.from_bytes(sig[half:], "big")
            sig = sig[:half] + s_value.to_bytes(half, "big")
        if spec.get("ed_s_plus_l"):
            s_value = int.from_bytes(sig[32:], "little") + ED25519_ORDER
            sig = sig[:32] + s_value.to_bytes(32, "little")
    if "signature_hex" in spec:
        sig = bytes.fromhex(expand(spec["signature_hex"], ctx))
    token = signing_input + "." + b64(sig)
    for step in spec.get("transform", ()):
        token = transform(token, step, ctx)
    return token


def transform(token, step, ctx):
    """strip_signature (`h.p.`), drop_signature (`h.p`), flip_signature (one bit),
    signature_leading_zero (a zero byte before the signature's bytes), pad (base64
    padding on every part), pad_signature, jwe (five parts: the header as a JWE's with
    alg RSA-OAEP, enc A256GCM, and random key, iv, ciphertext, tag), {append: text},
    {prepend: text}, {segment: i, set: text}, {segment: i, insert: text, at: position}."""
    parts = token.split(".")
    if step == "strip_signature":
        return ".".join(parts[:2]) + "."
    if step == "drop_signature":
        return ".".join(parts[:2])
    if step == "flip_signature":
        return T.tamper(token)
    if step == "signature_leading_zero":
        raw = base64.urlsafe_b64decode(pad(parts[2]))
        return ".".join(parts[:2] + [b64(b"\0" + raw)])
    if step == "pad":
        return ".".join(pad(p) for p in parts)
    if step == "pad_signature":
        return ".".join(parts[:2] + [pad(parts[2])])
    if step == "jwe":
        header = json.loads(base64.urlsafe_b64decode(pad(parts[0])))
        header.update(alg="RSA-OAEP", enc="A256GCM")
        header.pop("typ", None)
        return ".".join([T.b64url_json(header), b64(os.urandom(256)), b64(os.urandom(12)),
                         parts[1], b64(os.urandom(16))])
    if isinstance(step, dict):
        if "append" in step:
            return token + expand(step["append"], ctx)
        if "prepend" in step:
            return expand(step["prepend"], ctx) + token
        if "segment" in step:
            i = step["segment"]
            if "set" in step:
                parts[i] = expand(step["set"], ctx)
            else:
                at = step["at"]
                parts[i] = parts[i][:at] + expand(step["insert"], ctx) + parts[i][at:]
            return ".".join(parts)
    raise ValueError(f"unknown token transform {step!r}")


# ---------------------------------------------------------------------------------------------
# APIRules


def jwt_handler(url, extra):
    cfg = {"jwks_urls": [url], "trusted_issuers": [ISSUER]}
    cfg.update(extra or {})
    return {"handler": "jwt", "config": cfg}


def apirule(version, name, host, profile, extra, url):
    """The APIRule of one setup (a host per JWKS + rule combination)."""
    extra = extra or {}
    service = {"name": f"svc-{name}", "namespace": "default", "port": 8000}
    if version == "v1beta1":
        if profile == "jwt":
            rules = [{"path": "/.*", "methods": ["GET"], "accessStrategies": [jwt_handler(url, extra)]}]
        else:
            rules = [{"path": "/public/.*", "methods": ["GET"], "accessStrategies": [{"handler": "no_auth"}]},
                     {"path": "/admin.*", "methods": ["GET", "POST"], "accessStrategies": [jwt_handler(url, extra)]}]
        spec = {"host": host, "service": service, "gateway": "kyma-system/kyma-gateway", "rules": rules}
    else:
        authentication = {"issuer": ISSUER, "jwksUri": url}
        authentication.update(extra.get("authentication") or {})
        jwt = {"authentications": [authentication]}
        if extra.get("authorizations") is not None:
            jwt["authorizations"] = extra["authorizations"]
        if profile == "jwt":
            rules = [{"path": "/{**}", "methods": ["GET"], "jwt": jwt}]
        else:
            rules = [{"path": "/public/{**}", "methods": ["GET"], "noAuth": True},
                     {"path": "/admin/{**}", "methods": ["GET", "POST"], "jwt": jwt}]
        spec = {"hosts": [host], "service": service, "gateway": "kyma-system/kyma-gateway", "rules": rules}
    return {"apiVersion": f"gateway.kyma-project.io/{version}", "kind": "APIRule",
            "metadata": {"name": name, "namespace": "default"}, "spec": spec}


# ---------------------------------------------------------------------------------------------
# The wire


class Answer:
    def __init__(self, status, headers, body, upstream):
        self.status = status
        self.headers = headers  # [(name lower-case, value)]
        self.body = body
        self.upstream = upstream

    def header(self, name):
        for k, v in self.headers:
            if k == name.lower():
                return v
        return None

    def __repr__(self):
        return (f"<Answer {self.status} headers={self.headers!r} body={self.body[:300]!r} "
                f"upstream={len(self.upstream)}>")


def wire(text):
    """A str from YAML or a placeholder as bytes: code points up to 255 are those bytes (so
    "\\xff" is the byte 0xff), anything else UTF-8."""
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8")


def _request_bytes(method, path, host, headers, tag, close):
    lines = [wire(method) + b" " + wire(path) + b" HTTP/1.1", b"Host: " + wire(host),
             b"x-e2e-id: " + tag.encode(), b"x-request-id: corpus-" + tag.encode()]
    lines += [wire(k) + b": " + wire(v) for k, v in headers]
    lines += [b"Connection: close" if close else b"Connection: keep-alive", b"", b""]
    return b"\r\n".join(lines)


def _read_answer(s, method):
    """One response, read up to the end of its body (Content-Length), not until Envoy closes:
    after a local reply Envoy waits for the client to close first (delayed_close_timeout, 1 s)."""
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
        head, sep, rest = data.partition(b"\r\n\r\n")
        if sep:
            m = re.search(rb"\r\ncontent-length:\s*(\d+)", head, re.I)
            if method == "HEAD" or (m and len(rest) >= int(m.group(1))):
                break
    if not data:
        return 0, [], b""
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    status = int(status_line.split(" ")[1])
    hdrs = []
    for line in header_lines:
        k, _, v = line.partition(":")
        hdrs.append((k.strip().lower(), v.strip()))
    length = dict(hdrs).get("content-length")
    if length is not None:
        body = body[:int(length)]
    return status, hdrs, body


def send(port, recorder, method, path, host, headers, warm_host=None, timeout=10):
    """One HTTP/1.1 request on its own connection, byte for byte; the answer and what the upstream
    recorder got for it. warm_host: first the same request for that host, on the same connection
    (so on the same Envoy worker, whose verified-token cache it fills)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        if warm_host is not None:
            s.sendall(_request_bytes(method, path, warm_host, headers, uuid.uuid4().hex, close=False))
            status, hdrs, _ = _read_answer(s, method)
            assert status and ("connection", "close") not in hdrs, f"the warm-up request got {status} {hdrs}"
        tag = uuid.uuid4().hex
        s.sendall(_request_bytes(method, path, host, headers, tag, close=True))
        status, hdrs, body = _read_answer(s, method)
    return Answer(status, hdrs, body, recorder.received(tag))


def now():
    return int(time.time())


def context():
    """The placeholders every case may use (the runner adds token, valid, forged)."""
    t = now()
    exp = str(t + 600)
    return {"now": t, "iss": ISSUER, "attacker_jku": f"http://jwks.local{ATTACKER_KEYS}",
            "exp": t + 600, "exp_e": f"{exp[0]}.{exp[1:]}e{len(exp) - 1}"}
