"""Signing keys, their JWKs, and JWT minting with full control over header, claims and signature.

Tokens are assembled by hand (base64url(header) . base64url(payload) . base64url(sig)) and signed
with PyJWT's algorithm objects, so a test can put anything in the header or the claims (a string
`exp`, no `kid`, `alg: none`, a `crit` header ...) without PyJWT normalising it away.
"""
import base64
import hashlib
import hmac
import json
import time

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import get_default_algorithms

_ALGS = get_default_algorithms()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_json(obj) -> str:
    return b64url(json.dumps(obj, separators=(",", ":")).encode())


class SigningKey:
    """A private key with a kid; `jwk()` gives its public JWK for a JWKS document."""

    def __init__(self, kind, kid, private, secret=None):
        self.kind = kind          # "RSA", "EC", "OKP" (Ed25519) or "oct"
        self.kid = kid
        self.private = private    # cryptography private key, or bytes for oct
        self.secret = secret

    @classmethod
    def rsa(cls, kid, bits=2048):
        return cls("RSA", kid, rsa.generate_private_key(public_exponent=65537, key_size=bits))

    @classmethod
    def ec(cls, kid, curve="P-256"):
        c = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1(), "P-521": ec.SECP521R1()}[curve]
        return cls("EC", kid, ec.generate_private_key(c))

    @classmethod
    def ed25519(cls, kid):
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        return cls("OKP", kid, Ed25519PrivateKey.generate())

    @classmethod
    def oct(cls, kid, secret=b"0123456789abcdef0123456789abcdef-e2e-hmac-secret, 64 bytes for HS512"):
        return cls("oct", kid, secret, secret=secret)

    @property
    def public(self):
        return self.private.public_key()

    def public_pem(self) -> bytes:
        return self.public.public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)

    def jwk(self, use="sig", kid=None, alg=None, **extra):
        """Public JWK. use=None leaves `use` out; kid=None keeps this key's kid."""
        if self.kind == "RSA":
            d = _ALGS["RS256"].to_jwk(self.public, as_dict=True)
        elif self.kind == "EC":
            d = _ALGS["ES256"].to_jwk(self.public, as_dict=True)
        elif self.kind == "OKP":
            d = _ALGS["EdDSA"].to_jwk(self.public, as_dict=True)
        else:
            d = {"kty": "oct", "k": b64url(self.secret)}
        d = {k: v for k, v in d.items() if k not in ("key_ops", "alg", "use", "kid")}
        d["kid"] = self.kid if kid is None else kid
        if use is not None:
            d["use"] = use
        if alg is not None:
            d["alg"] = alg
        d.update(extra)
        return d


def jwks(*jwk_dicts):
    return {"keys": list(jwk_dicts)}


def sign(signing_input: bytes, key: SigningKey, alg: str) -> bytes:
    if alg.startswith("HS"):
        secret = key.secret if key.kind == "oct" else key
        return _ALGS[alg].sign(signing_input, secret)
    return _ALGS[alg].sign(signing_input, key.private)


def mint(key: SigningKey = None, claims=None, *, alg="RS256", kid=..., typ="JWT", header=None,
         signature=None):
    """A signed compact JWT.

    kid: ... (default) uses key.kid; None leaves `kid` out; anything else is put in verbatim.
    typ: None leaves `typ` out.
    header: extra/overriding header members (a value of None deletes the member).
    signature: bytes to use instead of the real signature (b"" for unsigned tokens).
    """
    h = {"alg": alg}
    if typ is not None:
        h["typ"] = typ
    if kid is ...:
        if key is not None:
            h["kid"] = key.kid
    elif kid is not None:
        h["kid"] = kid
    for k, v in (header or {}).items():
        if v is None:
            h.pop(k, None)
        else:
            h[k] = v
    signing_input = (b64url_json(h) + "." + b64url_json(claims if claims is not None else {})).encode()
    if signature is None:
        signature = sign(signing_input, key, alg)
    return signing_input.decode() + "." + b64url(signature)


def mint_none(claims, kid="any"):
    """`alg: none`, empty signature part."""
    h = {"alg": "none", "typ": "JWT"}
    if kid is not None:
        h["kid"] = kid
    return b64url_json(h) + "." + b64url_json(claims) + "."


def mint_hs_with_public_key(key: SigningKey, claims, alg="HS256"):
    """Algorithm confusion: HS256 whose HMAC secret is the RSA public key's PEM bytes, kid = the
    RSA key's kid (a verifier that trusts `alg` would 'verify' it with the public key)."""
    h = {"alg": alg, "typ": "JWT", "kid": key.kid}
    signing_input = (b64url_json(h) + "." + b64url_json(claims)).encode()
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    sig = hmac.new(key.public_pem(), signing_input, digest).digest()
    return signing_input.decode() + "." + b64url(sig)


def tamper(token: str) -> str:
    """Same header and claims, signature with one byte flipped in its middle."""
    head, payload, sig = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)))
    raw[len(raw) // 2] ^= 0x01
    return f"{head}.{payload}.{b64url(bytes(raw))}"


def tamper_payload(token: str, **changes) -> str:
    """Change claims but keep the original signature (must fail verification)."""
    head, payload, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.update(changes)
    return f"{head}.{b64url_json(claims)}.{sig}"


def now() -> int:
    return int(time.time())


def std_claims(**extra):
    """Claims of an ordinary valid access token; extra keys override, a value of None deletes."""
    t = now()
    c = {"sub": "user-1", "iat": t - 10, "exp": t + 600}
    for k, v in extra.items():
        if v is None:
            c.pop(k, None)
        else:
            c[k] = v
    return c
