"""The `jwt` access strategy: token extraction, verification order, claims, scopes, algorithms.

Reference: apirule-semantics.md §2.2-2.5, §5 cases 16-18, 20-46, 49-53; contract: docs/behaviour.md
"JWT". One Envoy for the module; every jwt configuration sits on its own Host `<name>.jwt.test`
(rule `/.*` GET), all keys on the JWKS server path /jwt/keys unless stated.
"""
import time

import pytest

from harness import apirules as A
from harness import tokens as T
from harness.checks import assert_401, assert_forwarded

KEYS = "/jwt/keys"
FIRST = "/jwt/first"
SECOND = "/jwt/second"
SHADOW = "/jwt/shadow"  # has a different key under kid rsa-1
SHADOW2 = "/jwt/shadow2"  # same, for the warm-cache variant
KEYS_COLD = "/jwt/keys-cold"  # same document as KEYS, fetched by nobody else


def host(name):
    return f"{name}.jwt.test"


CONFIGS = {
    "basic": {},
    "iss": {"trusted_issuers": ["https://idp/", "https://issuer-b"]},
    "aud2": {"target_audience": ["a", "b"]},
    "aud1": {"target_audience": ["a"]},
    "read": {"required_scope": ["read"]},
    "readwrite": {"required_scope": ["read", "write"]},
    "wild": {"required_scope": ["orders.read"]},
    "wildtop": {"required_scope": ["orders"]},
    "anything": {"required_scope": ["anything"]},
    "hier": {"scope_strategy": "hierarchic", "required_scope": ["orders.read"]},
    "hiertop": {"scope_strategy": "hierarchic", "required_scope": ["orders"]},
    "exact": {"scope_strategy": "exact", "required_scope": ["orders.read"]},
    "none": {"scope_strategy": "none", "required_scope": ["x"]},
    "nonenoreq": {"scope_strategy": "none"},
    "es": {"allowed_algorithms": ["ES256"]},
    "algs": {"allowed_algorithms": ["RS384", "RS512", "PS256", "PS384", "PS512", "ES384", "ES512", "HS256", "HS384",
                                    "HS512", "EdDSA"]},
    "hs": {"allowed_algorithms": ["RS256", "HS256"]},
    "xtoken": {"token_from": {"header": "X-Token"}},
    "lowerauth": {"token_from": {"header": "authorization"}},
    "upperauth": {"token_from": {"header": "Authorization"}},
    "query": {"token_from": {"query_parameter": "t"}},
    "cookie": {"token_from": {"cookie": "c"}},
    "perrule": {"jwks_max_wait": "5s", "jwks_ttl": "60s"},
}
JWKS_OF = {"two": [FIRST, SECOND], "shadowfirst": [SHADOW, KEYS_COLD], "shadowwarm": [SHADOW2, KEYS]}


def _rules():
    out = []
    for name, cfg in CONFIGS.items():
        out.append(A.apirule(f"jwt-{name}", host(name), A.rule("/.*", ["GET"], A.jwt([KEYS], **cfg))))
    for name, paths in JWKS_OF.items():
        out.append(A.apirule(f"jwt-{name}", host(name), A.rule("/.*", ["GET"], A.jwt(paths))))
    return out


RULES = _rules()


@pytest.fixture(scope="module")
def gw(launcher, jwks_server, keys):
    jwks_server.serve(KEYS, jwks_server_doc(keys))
    jwks_server.serve(FIRST, T.jwks(keys.ec.jwk()))
    jwks_server.serve(SECOND, T.jwks(keys.rsa.jwk()))
    jwks_server.serve(SHADOW, T.jwks(keys.rsa_other.jwk()))
    jwks_server.serve(SHADOW2, T.jwks(keys.rsa_other.jwk()))
    jwks_server.serve(KEYS_COLD, jwks_server_doc(keys))
    g = launcher(A.plugin_config(RULES, jwks_paths=A.jwks_paths_of(RULES)), name="jwt")
    yield g
    g.stop()


def ok(gw, name, token, **kw):
    r = gw.get("/anything", host=host(name), token=token, **kw)
    return assert_forwarded(r, forwarded_host=host(name))


def denied(gw, name, token, token_presented=True, **kw):
    r = gw.get("/anything", host=host(name), token=token, **kw)
    assert_401(r, token_presented=token_presented)
    return r


def rs(keys, **claims):
    return T.mint(keys.rsa, T.std_claims(**claims))


# --- token extraction (§2.3) ----------------------------------------------------------------------

def test_valid_token_forwarded_with_authorization_intact(gw, keys):
    tok = rs(keys)
    seen = ok(gw, "basic", tok)
    assert seen.header_values("authorization") == [f"Bearer {tok}"]


def test_case_16_no_authorization_401(gw):
    denied(gw, "basic", None, token_presented=False)


def test_case_17_basic_scheme_is_no_token(gw):
    """Other schemes mean "no token" (behaviour.md): so no error="invalid_token" either."""
    r = gw.get("/anything", host=host("basic"), headers={"Authorization": "Basic eHl6OmFiYw=="})
    assert_401(r, token_presented=False)


def test_case_18_lowercase_bearer_scheme_accepted(gw, keys):
    ok(gw, "basic", rs(keys), scheme="bearer")
    ok(gw, "basic", rs(keys), scheme="BEARER")


def test_token_after_double_space_is_not_trimmed(gw, keys):
    """Split at the first space; the rest is the token verbatim (" eyJ..." is not a JWT)."""
    r = gw.get("/anything", host=host("basic"), headers={"Authorization": "Bearer  " + rs(keys)})
    assert_401(r)


def test_opaque_token_401(gw):
    """v0.38.25: any non-empty token is parsed as a JWT, an opaque one is an error (no fall-through)."""
    denied(gw, "basic", "abc")
    denied(gw, "basic", "a.b.c")


def test_case_49_token_from_custom_header(gw, keys):
    r = gw.get("/anything", host=host("xtoken"), headers={"X-Token": rs(keys)})
    assert_forwarded(r, forwarded_host=host("xtoken"))


def test_case_50_custom_header_takes_raw_value(gw, keys):
    r = gw.get("/anything", host=host("xtoken"), headers={"X-Token": "Bearer " + rs(keys)})
    assert_401(r, token_presented=True)


def test_custom_header_absent_means_no_token(gw, keys):
    """token_from.header X-Token: a Bearer token in Authorization is not looked at."""
    assert_401(gw.get("/anything", host=host("xtoken"), token=rs(keys)), token_presented=False)


def test_case_51_lowercase_authorization_config_takes_raw_value(gw, keys):
    tok = rs(keys)
    assert_401(gw.get("/anything", host=host("lowerauth"), token=tok), token_presented=True)
    # the raw header value is the token
    r = gw.get("/anything", host=host("lowerauth"), headers={"Authorization": tok})
    assert_forwarded(r, forwarded_host=host("lowerauth"))


def test_token_from_header_exactly_authorization_uses_bearer_logic(gw, keys):
    ok(gw, "upperauth", rs(keys))
    r = gw.get("/anything", host=host("upperauth"), headers={"Authorization": rs(keys)})
    assert_401(r)


def test_case_52_token_from_query_parameter(gw, keys):
    tok = rs(keys)
    r = gw.get(f"/anything?x=1&t={tok}", host=host("query"))
    assert_forwarded(r, forwarded_host=host("query"), path=f"/anything?x=1&t={tok}")
    assert_401(gw.get("/anything?x=1", host=host("query"), token=tok))
    assert_401(gw.get(f"/anything?t={T.tamper(tok)}", host=host("query")), token_presented=True)


def test_case_53_token_from_cookie(gw, keys):
    tok = rs(keys)
    r = gw.get("/anything", host=host("cookie"), headers={"Cookie": f"a=1; c={tok}; d=2"})
    seen = assert_forwarded(r, forwarded_host=host("cookie"))
    assert seen.header("cookie") == f"a=1; c={tok}; d=2"
    assert_401(gw.get("/anything", host=host("cookie"), headers={"Cookie": "a=1"}))
    assert_401(gw.get("/anything", host=host("cookie"), token=tok))


def test_a_token_location_with_two_values_is_401(gw, keys):
    """A custom token header sent twice, the token query parameter or cookie named twice: 401 as an
    invalid token and nothing forwarded, whatever the values (Envoy keeps a repeated custom header
    as two values, and the filter reads them apart). Oathkeeper read the first one, leaving the
    other unverified for the backend (docs/security.md, "Tokens and keys")."""
    tok, forged = rs(keys), T.tamper(rs(keys))
    for a, b in [(tok, tok), (tok, forged), (forged, tok), ("", tok)]:
        r = gw.raw_request("GET", "/anything", host=host("xtoken"), headers=[("X-Token", a), ("X-Token", b)])
        assert_401(r, token_presented=True)
        assert_401(gw.raw_request("GET", f"/anything?t={a}&x=1&t={b}", host=host("query")), token_presented=True)
        r = gw.raw_request("GET", "/anything", host=host("cookie"), headers=[("Cookie", f"c={a}"), ("Cookie", f"c={b}")])
        assert_401(r, token_presented=True)
    # One value at the location, other parameters and cookies beside it: judged as usual.
    r = gw.raw_request("GET", f"/anything?t={tok}&tt=x", host=host("query"))
    assert_forwarded(r, forwarded_host=host("query"), path=f"/anything?t={tok}&tt=x")


def test_per_rule_jwks_max_wait_and_ttl_accepted(gw, keys):
    ok(gw, "perrule", rs(keys))


# --- signature, kid, keys (§2.4 1-4) ---------------------------------------------------------------

def test_bad_signature_401(gw, keys):
    denied(gw, "basic", T.tamper(rs(keys)))


def test_modified_claims_401(gw, keys):
    denied(gw, "basic", T.tamper_payload(rs(keys, scp=["read"]), sub="admin"))


def test_forged_with_other_key_same_kid_401(gw, keys):
    denied(gw, "basic", T.mint(keys.rsa_other, T.std_claims()))


def test_case_40_no_kid_401(gw, keys):
    denied(gw, "basic", T.mint(keys.rsa, T.std_claims(), kid=None))
    denied(gw, "basic", T.mint(keys.rsa, T.std_claims(), kid=""))


def test_case_41_unknown_kid_401(gw, keys):
    denied(gw, "basic", T.mint(keys.rsa, T.std_claims(), kid="no-such-kid"))


def test_case_42_jwk_without_use_sig_not_selected(gw, keys):
    denied(gw, "basic", T.mint(keys.rsa2, T.std_claims(), kid="rsa-nouse"))
    denied(gw, "basic", T.mint(keys.rsa2, T.std_claims(), kid="rsa-enc"))


def test_case_43_alg_none_401(gw):
    denied(gw, "basic", T.mint_none(T.std_claims(), kid="rsa-1"))
    denied(gw, "basic", T.mint_none(T.std_claims(), kid=None))


def test_wrong_alg_not_allowed_401(gw, keys):
    """RS512 is a valid signature by the right key, but only RS256 is allowed by default."""
    denied(gw, "basic", T.mint(keys.rsa, T.std_claims(), alg="RS512"))
    denied(gw, "basic", T.mint(keys.rsa, T.std_claims(), alg="PS256"))


def test_case_44_es256_needs_allowed_algorithms(gw, keys):
    tok = T.mint(keys.ec, T.std_claims(), alg="ES256")
    denied(gw, "basic", tok)
    ok(gw, "es", tok)
    denied(gw, "es", rs(keys))


def test_case_45_alg_and_key_type_must_agree(gw, keys):
    # RS256 signed with the RSA key, but the kid resolves to the EC key / the oct key
    denied(gw, "basic", T.mint(keys.rsa, T.std_claims(), kid="ec-1"))
    denied(gw, "basic", T.mint(keys.rsa, T.std_claims(), kid="oct-1"))
    # ES384 token whose kid names the P-256 key
    denied(gw, "algs", T.mint(keys.ec384, T.std_claims(), alg="ES384", kid="ec-1"))
    # ES512 (P-521 key, SHA-512) whose kid names the P-384 key, and ES384 naming the P-521 key
    denied(gw, "algs", T.mint(keys.ec521, T.std_claims(), alg="ES512", kid="ec-384"))
    denied(gw, "algs", T.mint(keys.ec384, T.std_claims(), alg="ES384", kid="ec-521"))


def test_case_46_hs256_with_rsa_public_key_alg_confusion(gw, keys):
    tok = T.mint_hs_with_public_key(keys.rsa, T.std_claims())
    denied(gw, "basic", tok)
    denied(gw, "hs", tok)  # even with HS256 allowed: the kid resolves to an RSA key


def test_hs256_with_oct_key_when_allowed(gw, keys):
    tok = T.mint(keys.oct, T.std_claims(), alg="HS256")
    ok(gw, "hs", tok)
    denied(gw, "basic", tok)


@pytest.mark.parametrize("alg,key", [("RS384", "rsa"), ("RS512", "rsa"), ("PS256", "rsa"),
                                     ("PS384", "rsa"), ("PS512", "rsa"), ("ES384", "ec384"),
                                     ("ES512", "ec521"), ("HS256", "oct"), ("HS384", "oct"), ("HS512", "oct"), ("EdDSA", "ed25519")])
def test_supported_algorithms(gw, keys, alg, key):
    tok = T.mint(getattr(keys, key), T.std_claims(), alg=alg)
    ok(gw, "algs", tok)
    denied(gw, "algs", T.tamper(tok))


def test_case_39_key_only_in_second_jwks_url(gw, keys):
    ok(gw, "two", rs(keys))


def test_first_key_with_kid_over_urls_wins(gw, keys):
    """`the first key, over jwks_urls in order, with that kid`: the first URL has another key under
    kid rsa-1, so a token signed by the second URL's key is refused (no try-all-keys fallback).
    Both sets are cold here (fetched for this host only)."""
    denied(gw, "shadowfirst", rs(keys))
    ok(gw, "shadowfirst", T.mint(keys.rsa_other, T.std_claims()))
    denied(gw, "shadowfirst", rs(keys))


def test_first_key_wins_when_only_the_later_url_is_cached(gw, keys):
    """Same rule shape, but the second URL's set is already cached (another host uses it) and the
    first one has not been fetched yet: the answer must not depend on cache state, so the first URL
    has to be consulted before the second URL's key is used."""
    for _ in range(12):  # fresh connections: KEYS gets cached on both workers
        ok(gw, "basic", rs(keys))
    denied(gw, "shadowwarm", rs(keys))
    ok(gw, "shadowwarm", T.mint(keys.rsa_other, T.std_claims()))
    denied(gw, "shadowwarm", rs(keys))


# --- header strictness ----------------------------------------------------------------------------

def test_typ_jwt_and_plus_jwt_accepted(gw, keys):
    ok(gw, "basic", T.mint(keys.rsa, T.std_claims(), typ="JWT"))
    ok(gw, "basic", T.mint(keys.rsa, T.std_claims(), typ="at+jwt"))


def test_typ_absent_accepted(gw, keys):
    ok(gw, "basic", T.mint(keys.rsa, T.std_claims(), typ=None))


def test_typ_other_denied(gw, keys):
    denied(gw, "basic", T.mint(keys.rsa, T.std_claims(), typ="JOSE"))
    denied(gw, "basic", T.mint(keys.rsa, T.std_claims(), typ="secevent"))


def test_crit_header_denied(gw, keys):
    denied(gw, "basic", T.mint(keys.rsa, T.std_claims(), header={"crit": ["exp"], "exp": 1}))


def test_token_over_16kib_denied(gw, keys):
    small = T.mint(keys.rsa, T.std_claims(pad="x" * 8000))
    assert len(small) < 16 * 1024
    ok(gw, "basic", small)
    big = T.mint(keys.rsa, T.std_claims(pad="x" * 13000))
    assert len(big) > 16 * 1024
    denied(gw, "basic", big)


# --- time claims (§2.4 5) -------------------------------------------------------------------------

def test_case_20_expired_one_second_ago_401(gw, keys):
    # exp < now for the filter whatever the sub-second phase: the filter's clock is never behind ours
    denied(gw, "basic", rs(keys, exp=T.now() - 1))
    denied(gw, "basic", rs(keys, exp=T.now() - 3600))


def test_case_21_exp_equal_now_accepted(gw, keys):
    """exp == now is valid (inclusive). Robust against the clock ticking: wait until just after a
    second boundary, send exp=<this second>, and only count the attempt if the whole exchange
    finished within the same second; else retry (at most 15 times: on a busy machine some
    exchanges straddle a second). exp = now + 2 is the trivial neighbour that must pass too."""
    ok(gw, "basic", rs(keys, exp=T.now() + 2))
    ok(gw, "basic", rs(keys))  # warm the JWKS cache on both workers before the exact attempt
    for _ in range(15):
        t = time.time()
        frac = t - int(t)
        if not 0.02 <= frac <= 0.25:
            time.sleep((1.02 - frac) % 1.0)
        sec = int(time.time())
        tok = rs(keys, exp=sec, iat=sec - 5)
        r = gw.get("/anything", host=host("basic"), token=tok)
        if int(time.time()) != sec:
            continue  # the second ticked during the exchange: inconclusive
        assert_forwarded(r, forwarded_host=host("basic"))
        return
    pytest.fail("could not complete a request within one wall-clock second in 15 attempts")


def test_case_22_nbf_or_iat_in_future_401(gw, keys):
    denied(gw, "basic", rs(keys, nbf=T.now() + 5))
    denied(gw, "basic", rs(keys, iat=T.now() + 5))
    ok(gw, "basic", rs(keys, nbf=T.now() - 5, iat=T.now() - 5))


def test_case_23_no_exp_accepted(gw, keys):
    ok(gw, "basic", rs(keys, exp=None))
    ok(gw, "basic", T.mint(keys.rsa, {}))


def test_case_24_exp_as_string_401(gw, keys):
    denied(gw, "basic", rs(keys, exp="9999999999"))


def test_time_claims_of_wrong_type_or_negative_denied(gw, keys):
    denied(gw, "basic", rs(keys, exp=-1))
    denied(gw, "basic", rs(keys, nbf="0"))
    denied(gw, "basic", rs(keys, iat=[1]))


# --- issuer / audience (§2.4 6) -------------------------------------------------------------------

def test_case_25_issuer_exact_string(gw, keys):
    denied(gw, "iss", rs(keys, iss="https://idp"))
    denied(gw, "iss", rs(keys, iss="HTTPS://IDP/"))
    ok(gw, "iss", rs(keys, iss="https://idp/"))


def test_case_26_no_trusted_issuers_no_iss_accepted(gw, keys):
    ok(gw, "basic", rs(keys))
    denied(gw, "iss", rs(keys))  # with trusted_issuers a missing iss fails


def test_case_27_trusted_issuers_or(gw, keys):
    ok(gw, "iss", rs(keys, iss="https://issuer-b"))


def test_case_28_target_audience_and(gw, keys):
    denied(gw, "aud2", rs(keys, aud=["a"]))
    denied(gw, "aud2", rs(keys, aud="a"))
    ok(gw, "aud2", rs(keys, aud=["b", "x", "a"]))


def test_case_29_audience_as_string(gw, keys):
    ok(gw, "aud1", rs(keys, aud="a"))
    denied(gw, "aud1", rs(keys, aud="ab"))
    denied(gw, "aud1", rs(keys))


def test_registered_claims_of_wrong_type_denied(gw, keys):
    denied(gw, "basic", rs(keys, iss=42))
    denied(gw, "basic", rs(keys, aud=7))
    denied(gw, "basic", rs(keys, aud=["a", 7]))


# --- scopes (§2.5) --------------------------------------------------------------------------------

def test_case_30_scp_array(gw, keys):
    ok(gw, "read", rs(keys, scp=["read", "write"]))
    denied(gw, "read", rs(keys, scp=["write"]))
    denied(gw, "read", rs(keys))


def test_case_31_scope_space_separated(gw, keys):
    ok(gw, "read", rs(keys, scope="write read"))
    ok(gw, "read", rs(keys, scopes=["read"]))
    ok(gw, "read", rs(keys, scp="write read"))


def test_case_32_first_present_scope_claim_wins(gw, keys):
    denied(gw, "read", rs(keys, scp=[], scope="read"))
    denied(gw, "read", rs(keys, scope="write", scopes=["read"]))


def test_case_33_required_scopes_and(gw, keys):
    denied(gw, "readwrite", rs(keys, scp=["read"]))
    ok(gw, "readwrite", rs(keys, scp=["write", "read"]))


def test_case_34_wildcard_strategy_is_default(gw, keys):
    ok(gw, "wild", rs(keys, scp=["orders.*"]))
    denied(gw, "wildtop", rs(keys, scp=["orders.*"]))
    ok(gw, "wild", rs(keys, scp=["orders.read"]))
    denied(gw, "wild", rs(keys, scp=["orders*"]))
    denied(gw, "wild", rs(keys, scp=["orders"]))  # wildcard is not hierarchic


def test_case_35_wildcard_star_grants_anything(gw, keys):
    ok(gw, "anything", rs(keys, scp=["*"]))
    ok(gw, "wild", rs(keys, scp=["*"]))


def test_case_36_hierarchic(gw, keys):
    ok(gw, "hier", rs(keys, scp=["orders"]))
    denied(gw, "hiertop", rs(keys, scp=["orders.read"]))
    denied(gw, "hier", rs(keys, scp=["order"]))


def test_case_37_exact(gw, keys):
    denied(gw, "exact", rs(keys, scp=["orders"]))
    denied(gw, "exact", rs(keys, scp=["orders.*"]))
    ok(gw, "exact", rs(keys, scp=["orders.read"]))


def test_case_38_strategy_none_with_required_scope_401(gw, keys):
    denied(gw, "none", rs(keys, scp=["x"]))
    ok(gw, "nonenoreq", rs(keys, scp=["x"]))


# --- plugin options -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def skew_gw(launcher, jwks_server, keys):
    rules = [A.apirule("skew", "skew.jwt.test", A.rule("/.*", ["GET"], A.jwt([KEYS])))]
    jwks_server.serve(KEYS, jwks_server_doc(keys))
    g = launcher(A.plugin_config(rules, jwks_paths=[KEYS], clock_skew=30), name="jwt-skew")
    yield g
    g.stop()


def jwks_server_doc(keys):
    return T.jwks(keys.rsa.jwk(), keys.ec.jwk(), keys.ec384.jwk(), keys.ec521.jwk(), keys.oct.jwk(), keys.ed25519.jwk(),
                  keys.rsa2.jwk(kid="rsa-nouse", use=None), keys.rsa2.jwk(kid="rsa-enc", use="enc"))


def test_clock_skew_seconds_applies_to_exp_nbf_iat(skew_gw, keys):
    def get(tok):
        return skew_gw.get("/x", host="skew.jwt.test", token=tok)
    assert_forwarded(get(rs(keys, exp=T.now() - 10)))
    assert_forwarded(get(rs(keys, nbf=T.now() + 10, iat=T.now() + 10)))
    assert_401(get(rs(keys, exp=T.now() - 60)), token_presented=True)
    assert_401(get(rs(keys, nbf=T.now() + 60)), token_presented=True)


def test_case_43_alg_none_listed_in_allowed_algorithms(refusal):
    """`none` can never succeed, so listing it is refused at load (docs/behaviour.md), with the
    APIRule and the JSON path of the entry."""
    rules = [A.apirule("allow-none", "none.jwt.test",
                       A.rule("/.*", ["GET"], A.jwt([KEYS], allowed_algorithms=["RS256", "none"])))]
    r = refusal(A.plugin_config(rules, jwks_paths=[KEYS]), name="jwt-allow-none")
    assert ("APIRule default/allow-none: spec.rules[0].accessStrategies[0].config.allowed_algorithms[1]: "
            "none is not supported") in r.log, r.log[-2000:]
