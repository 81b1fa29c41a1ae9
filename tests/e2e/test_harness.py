"""Self-tests of the harness pieces (no Envoy): token minting, the JWKS server, the recorder.

If these fail, every end-to-end result is suspect, so they run first (alphabetical order is not
relied upon; they are just cheap)."""
import base64
import json
import socket
import time

import jwt as pyjwt
import pytest
import requests

from harness import tokens as T
from harness.servers import JwksServer, UpstreamRecorder


def _header(token):
    h = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(h + "=" * (-len(h) % 4)))


def test_rs256_token_verifies_with_its_jwk(keys):
    tok = T.mint(keys.rsa, T.std_claims(iss="https://idp"))
    pub = pyjwt.PyJWK(keys.rsa.jwk()).key
    claims = pyjwt.decode(tok, pub, algorithms=["RS256"], options={"verify_aud": False})
    assert claims["iss"] == "https://idp"
    assert _header(tok) == {"alg": "RS256", "typ": "JWT", "kid": "rsa-1"}
    assert keys.rsa.jwk()["use"] == "sig" and keys.rsa.jwk()["kty"] == "RSA"


@pytest.mark.parametrize("alg", ["RS384", "RS512", "PS256", "PS384", "PS512"])
def test_other_rsa_algorithms_verify(keys, alg):
    tok = T.mint(keys.rsa, T.std_claims(), alg=alg)
    pyjwt.decode(tok, pyjwt.PyJWK(keys.rsa.jwk(), algorithm=alg).key, algorithms=[alg])


def test_ec_and_hmac_tokens_verify(keys):
    tok = T.mint(keys.ec, T.std_claims(), alg="ES256")
    pyjwt.decode(tok, pyjwt.PyJWK(keys.ec.jwk()).key, algorithms=["ES256"])
    assert keys.ec.jwk()["crv"] == "P-256"
    tok = T.mint(keys.ec384, T.std_claims(), alg="ES384")
    pyjwt.decode(tok, pyjwt.PyJWK(keys.ec384.jwk()).key, algorithms=["ES384"])
    tok = T.mint(keys.oct, T.std_claims(), alg="HS256")
    pyjwt.decode(tok, keys.oct.secret, algorithms=["HS256"])


def test_tampered_and_forged_tokens_do_not_verify(keys):
    pub = pyjwt.PyJWK(keys.rsa.jwk()).key
    good = T.mint(keys.rsa, T.std_claims())
    with pytest.raises(pyjwt.InvalidSignatureError):
        pyjwt.decode(T.tamper(good), pub, algorithms=["RS256"])
    with pytest.raises(pyjwt.InvalidSignatureError):
        pyjwt.decode(T.tamper_payload(good, sub="admin"), pub, algorithms=["RS256"])
    forged = T.mint(keys.rsa_other, T.std_claims())
    assert _header(forged)["kid"] == keys.rsa.kid
    with pytest.raises(pyjwt.InvalidSignatureError):
        pyjwt.decode(forged, pub, algorithms=["RS256"])


def test_header_tweaks(keys):
    assert "kid" not in _header(T.mint(keys.rsa, {}, kid=None))
    assert "typ" not in _header(T.mint(keys.rsa, {}, typ=None))
    assert _header(T.mint(keys.rsa, {}, header={"crit": ["exp"]}))["crit"] == ["exp"]
    none = T.mint_none({"sub": "x"})
    assert none.endswith(".") and _header(none)["alg"] == "none"
    # alg confusion: HS256 with the RSA public key PEM as secret verifies as HMAC with those bytes
    conf = T.mint_hs_with_public_key(keys.rsa, {"sub": "x"})
    head, payload, sig = conf.split(".")
    import hashlib
    import hmac
    expect = hmac.new(keys.rsa.public_pem(), f"{head}.{payload}".encode(), hashlib.sha256).digest()
    assert T.b64url(expect) == sig and _header(conf) == {"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}


def test_jwk_use_variants(keys):
    assert "use" not in keys.rsa.jwk(use=None)
    assert keys.rsa.jwk(use="enc")["use"] == "enc"
    assert keys.rsa.jwk(kid="other")["kid"] == "other"


def test_jwks_server_behaviours():
    srv = JwksServer().start()
    try:
        base = f"http://127.0.0.1:{srv.port}"
        srv.serve("/k", {"keys": []})
        assert requests.get(base + "/k", timeout=2).json() == {"keys": []}
        srv.fail("/k", 500)
        assert requests.get(base + "/k", timeout=2).status_code == 500
        srv.raw("/k", "not json")
        assert requests.get(base + "/k", timeout=2).text == "not json"
        srv.serve("/slow", {"keys": []}, delay=0.3)
        t0 = time.monotonic()
        requests.get(base + "/slow", timeout=6)
        assert 0.28 <= time.monotonic() - t0 < 5.0  # delayed, not hung (2 s would time out)
        srv.hang("/h", 5)
        with pytest.raises(requests.exceptions.ReadTimeout):
            requests.get(base + "/h", timeout=0.3)
        assert requests.get(base + "/unknown", timeout=2).status_code == 404
        assert srv.hits("/k") == 3 and srv.hits("/slow") == 1 and srv.hits("/h") == 1
        srv.stop()
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", srv.port)) != 0, "stopped server must refuse"
        srv.start()
        assert requests.get(base + "/k", timeout=2).text == "not json"
    finally:
        srv.close()


def test_stopped_recorder_cuts_keep_alive_connections():
    rec = UpstreamRecorder().start()
    try:
        with requests.Session() as s:
            assert s.get(f"http://127.0.0.1:{rec.port}/a", timeout=2).status_code == 200
            rec.stop()
            with pytest.raises(requests.exceptions.ConnectionError):
                s.get(f"http://127.0.0.1:{rec.port}/b", timeout=2)
    finally:
        rec.stop()


def test_upstream_recorder_records():
    rec = UpstreamRecorder().start()
    try:
        r = requests.post(f"http://127.0.0.1:{rec.port}/p?q=1", data=b"hi",
                          headers={"x-e2e-id": "t1", "Authorization": "Bearer abc"}, timeout=2)
        assert r.status_code == 200 and r.json()["path"] == "/p?q=1"
        (seen,) = rec.received("t1")
        assert seen["method"] == "POST" and seen["body"] == "hi"
        assert seen.header("authorization") == "Bearer abc"
        assert rec.received("nope") == []
    finally:
        rec.stop()
