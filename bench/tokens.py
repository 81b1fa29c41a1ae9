"""Keys, tokens and the JWKS server of `make bench`.

The cold-path scenarios send a different token on every request, so that no cache of verified
tokens (ours or Envoy's) can answer them: the tokens are minted before Envoy starts, one per line
in a file that the wrk script `cycle.lua` walks through. Minting 20,000 RS256 tokens takes about
0.6 ms each in Python, so it is spread over the CPUs (Envoy is not running yet).
"""
import base64
import concurrent.futures
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt  # PyJWT
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

ISSUER = "https://issuer.bench.local"
RS_KID, ES_KID = "bench-rsa", "bench-ec"


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def make_keys():
    """RSA-2048 and P-256 signing keys, and the JWKS document with both public keys."""
    rs = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    es = ec.generate_private_key(ec.SECP256R1())
    rs_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rs.public_key()))
    es_jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(es.public_key()))
    for jwk, kid in ((rs_jwk, RS_KID), (es_jwk, ES_KID)):
        jwk.pop("key_ops", None)
        jwk.update({"kid": kid, "use": "sig"})
    return rs, es, {"keys": [rs_jwk, es_jwk]}


def _claims(jti):
    now = int(time.time())
    # exp an hour ahead: longer than any bench run. jti makes each token (and its signature) unique.
    return {"iss": ISSUER, "sub": "bench-user", "iat": now - 10, "exp": now + 3600, "jti": jti}


def mint(key, alg, kid, jti="bench-0"):
    return jwt.encode(_claims(jti), key, algorithm=alg, headers={"kid": kid, "typ": "JWT"})


def _mint_chunk(pem, alg, kid, prefix, start, count):
    key = serialization.load_pem_private_key(pem, password=None)
    return [mint(key, alg, kid, f"{prefix}-{i:08d}") for i in range(start, start + count)]


def mint_many(key, alg, kid, count, prefix, workers):
    """count valid tokens with distinct jti, minted in `workers` processes."""
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    if workers <= 1 or count < 1000:
        return _mint_chunk(pem, alg, kid, prefix, 0, count)
    step = -(-count // workers)
    with concurrent.futures.ProcessPoolExecutor(max_workers=workers) as pool:
        parts = [pool.submit(_mint_chunk, pem, alg, kid, prefix, s, min(step, count - s))
                 for s in range(0, count, step)]
        return [t for p in parts for t in p.result()]


def forge_many(alg, kid, count, prefix, modulus):
    """count tokens with a well-formed header and claims and a random RSA signature below the
    key's modulus: each is different, none verifies, and every one costs a full verification (a
    value at or above the modulus would be refused before the exponentiation). Free to make."""
    head = b64url(json.dumps({"alg": alg, "kid": kid, "typ": "JWT"}, separators=(",", ":")).encode())
    size = (modulus.bit_length() + 7) // 8
    out = []
    for i in range(count):
        payload = b64url(json.dumps(_claims(f"{prefix}-{i:08d}"), separators=(",", ":")).encode())
        sig = (1 + secrets.randbelow(modulus - 1)).to_bytes(size, "big")
        out.append(f"{head}.{payload}.{b64url(sig)}")
    return out


def write_tokens(path, tokens):
    with open(path, "w") as f:
        f.write("\n".join(tokens) + "\n")


class JwksServer:
    """Serves one JWKS document on 127.0.0.1 from a daemon thread; counts the fetches."""

    def __init__(self, document):
        body = json.dumps(document).encode()
        owner = self
        self.hits = 0

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                owner.hits += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                       name="jwks", daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)
