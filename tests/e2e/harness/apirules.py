"""Builders for APIRule resources and the plugin configuration (the filter's JSON contract)."""
import copy

JWKS_HOST = "jwks.local"
JWKS_CLUSTER = "jwks"


def jwks_url(path, host=JWKS_HOST):
    return f"http://{host}{path}"


def strategy(handler, config=None):
    s = {"handler": handler}
    if config is not None:
        s["config"] = config
    return s


def jwt(jwks_paths=("/keys",), **config):
    """A `jwt` access strategy; jwks_paths are paths on the test JWKS server (or full URLs)."""
    urls = [p if p.startswith(("http://", "https://")) else jwks_url(p) for p in jwks_paths]
    cfg = {"jwks_urls": urls}
    cfg.update(config)
    return strategy("jwt", cfg)


def rule(path, methods=("GET",), *strategies, mutators=None, **extra):
    r = {"path": path, "methods": list(methods),
         "accessStrategies": list(strategies) if strategies else [strategy("noop")]}
    if mutators is not None:
        r["mutators"] = mutators
    r.update(extra)
    return r


def apirule(name, host, *rules, namespace="default", api_version="v1beta1"):
    """A whole APIRule resource as a user would paste it (v1beta1: spec.host; v1alpha1:
    spec.service.host)."""
    meta = {"name": name, "namespace": namespace}
    if api_version == "v1alpha1":
        spec = {"service": {"name": "httpbin", "port": 8000, "host": host},
                "gateway": "kyma-system/kyma-gateway", "rules": list(rules)}
    else:
        spec = {"host": host, "service": {"name": "httpbin", "namespace": namespace, "port": 8000},
                "gateway": "kyma-system/kyma-gateway", "rules": list(rules)}
    return {"apiVersion": f"gateway.kyma-project.io/{api_version}", "kind": "APIRule",
            "metadata": meta, "spec": spec}


def plugin_config(api_rules, *, jwks_clusters=None, jwks_paths=(), cache_ttl=300, fetch_timeout_ms=1000,
                  max_stale=3600, min_refetch=10, clock_skew=0, default_domain="example.com", **extra):
    """The filter's configuration. jwks_paths: paths on the test JWKS server to map to its cluster
    (every jwks URL used by the rules must be mapped, unless a test means to exercise the Istio
    `outbound|port||host` cluster-name fallback)."""
    clusters = {jwks_url(p): JWKS_CLUSTER for p in jwks_paths}
    clusters.update(jwks_clusters or {})
    cfg = {
        "apiRules": copy.deepcopy(list(api_rules)),
        "jwks": {"clusters": clusters, "cacheTtlSeconds": cache_ttl, "fetchTimeoutMs": fetch_timeout_ms,
                 "maxStaleSeconds": max_stale, "minRefetchSeconds": min_refetch},
        "clockSkewSeconds": clock_skew,
    }
    if default_domain is not None:
        cfg["defaultDomain"] = default_domain
    cfg.update(extra)
    return cfg


def jwks_paths_of(api_rules):
    """Every JWKS URL path on JWKS_HOST that the rules reference."""
    paths = []
    for ar in api_rules:
        for r in ar["spec"]["rules"]:
            for s in r.get("accessStrategies", []):
                cfg = s.get("config") or {}
                if isinstance(cfg, dict) and isinstance(cfg.get("jwks_urls"), list):
                    for u in cfg["jwks_urls"]:
                        prefix = f"http://{JWKS_HOST}"
                        if isinstance(u, str) and u.startswith(prefix + "/") and u[len(prefix):] not in paths:
                            paths.append(u[len(prefix):])
    return paths
