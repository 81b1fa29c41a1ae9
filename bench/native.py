"""Envoy's native JWT path, shaped as Istio generates it for a Kyma APIRule v2: the comparison row.

An APIRule v2 with a `jwt` rule becomes an Istio RequestAuthentication (issuer, jwksUri) and an
AuthorizationPolicy whose `from` requires `requestPrincipals: ["<issuer>/*"]`; a `noAuth` rule
becomes an AuthorizationPolicy without `from`. Istio turns those into two HTTP filters, which this
module writes the way istiod does (pilot/pkg/security/authn policy_applier.go
`convertToEnvoyJwtConfig`, pilot/pkg/security/authz/model generator.go `requestPrincipalGenerator`):

- `envoy.filters.http.jwt_authn`: one provider `origins-0` (issuer, `remote_jwks` through a
  cluster with a 5 s timeout and a 5 min cache_duration, `payload_in_metadata: payload`, scopes
  normalised), and one rule for every path: `requires_any [origins-0, allow_missing]`, i.e. a
  token, when present, must verify; a missing token is left to RBAC. `bypass_cors_preflight`.
  `forward: true` (the APIRule controller forwards the original token). Istio sets no
  `jwt_cache_config`, so every request verifies its token; `jwt_cache_size` adds Envoy's cache of
  verified tokens for the comparison row.
- `envoy.filters.http.rbac` (ALLOW): per rule, method and exact path; the principal of a jwt rule
  is `payload.iss == issuer AND payload.sub matches .+` in jwt_authn's dynamic metadata.

So a missing token gets RBAC's 403, a bad one jwt_authn's 401 (Istio's answers), where the
APIRule filter answers 401 to both.
"""

JWT_AUTHN = "envoy.filters.http.jwt_authn"
PROVIDER = "origins-0"


def jwt_authn_filter(*, issuer, jwks_url, jwks_cluster, jwt_cache_size=None):
    provider = {
        "issuer": issuer,
        "remote_jwks": {
            "http_uri": {"uri": jwks_url, "cluster": jwks_cluster, "timeout": "5s"},
            "cache_duration": "300s",
        },
        "forward": True,
        "payload_in_metadata": "payload",
        "normalize_payload_in_metadata": {"space_delimited_claims": ["permission", "scope"]},
    }
    if jwt_cache_size:
        provider["jwt_cache_config"] = {"jwt_cache_size": jwt_cache_size}
    return {
        "name": JWT_AUTHN,
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
            "providers": {PROVIDER: provider},
            "rules": [{"match": {"prefix": "/"}, "requires": {"requires_any": {"requirements": [
                {"provider_name": PROVIDER}, {"allow_missing": {}}]}}}],
            "bypass_cors_preflight": True,
        },
    }


def _claim(claim, string_match):
    return {"metadata": {"filter": JWT_AUTHN, "path": [{"key": "payload"}, {"key": claim}],
                         "value": {"string_match": string_match}}}


def _permission(path, methods):
    return {"and_rules": {"rules": [
        {"or_rules": {"rules": [{"header": {"name": ":method", "string_match": {"exact": m}}} for m in methods]}},
        {"or_rules": {"rules": [{"url_path": {"path": {"exact": path}}}]}},
    ]}}


def rbac_filter(*, issuer, jwt_paths, public_paths, methods=("GET",), name="bench", namespace="default"):
    """ALLOW policies: jwt_paths need a principal from issuer ("<issuer>/*"), public_paths anyone."""
    principal = {"and_ids": {"ids": [{"and_ids": {"ids": [
        _claim("iss", {"exact": issuer}),
        _claim("sub", {"safe_regex": {"regex": ".+"}}),
    ]}}]}}
    policies = {}
    for i, path in enumerate(jwt_paths):
        policies[f"ns[{namespace}]-policy[{name}-jwt]-rule[{i}]"] = {
            "permissions": [_permission(path, methods)], "principals": [principal]}
    for i, path in enumerate(public_paths):
        policies[f"ns[{namespace}]-policy[{name}-noauth]-rule[{i}]"] = {
            "permissions": [_permission(path, methods)], "principals": [{"and_ids": {"ids": [{"any": True}]}}]}
    return {
        "name": "envoy.filters.http.rbac",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
            "rules": {"action": "ALLOW", "policies": policies},
            "shadow_rules_stat_prefix": "istio_dry_run_allow_",
        },
    }
