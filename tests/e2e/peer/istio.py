"""istiod's translation of VirtualServices, RequestAuthentications and AuthorizationPolicies into
Envoy configuration: gateway routes, `envoy.filters.http.jwt_authn` and `envoy.filters.http.rbac`.

Read from istio/istio:
- routes (pilot/pkg/networking/core/route TranslateRouteMatch, TranslateHeadersOperations;
  core/gateway.go): one virtual host per VirtualService host (lower-cased, the route
  configuration ignores the port in host matching), its routes in VirtualService order; uri regex
  as `safe_regex`, prefix as `prefix`, `case_sensitive: true`, the method as a `:method` header
  regex; `set` headers as `request_headers_to_add` with OVERWRITE_IF_EXISTS_OR_ADD (sorted by
  name), `remove` as `response_headers_to_remove`; the route timeout.
- jwt_authn (pilot/pkg/security/authn/policy_applier.go convertToEnvoyJwtConfig): the jwtRules of
  every RequestAuthentication selecting the workload, sorted by issuer, one provider `origins-<i>`
  each: issuer, `forward` = forwardOriginalToken, `payload_in_metadata: payload`,
  `normalize_payload_in_metadata.space_delimited_claims: [permission, scope]`, fromHeaders as
  `from_headers` (name, value_prefix), fromParams as `from_params` (none of them: Envoy's default
  locations, `Authorization: Bearer` and the `access_token` query parameter), `remote_jwks` through
  the cluster `outbound|<port>||<host>` of the jwksUri, timeout 5 s, cache 5 min. Requirement: one
  provider -> requires_any [provider, allow_missing]; several -> requires_any [P0, ..., Pn,
  requires_all [requires_any [Pi, allow_missing] for each i]]. `bypass_cors_preflight`.
- rbac (pilot/pkg/security/authz/model model.go, generator.go, permission.go, principal.go,
  matcher/*; builder.go for names): ALLOW, one policy `ns[<ns>]-policy[<name>]-rule[<i>]` per rule
  of every AuthorizationPolicy selecting the workload. Permission = and of: `:authority` (exact,
  ignore case; `*.x` as a suffix), `:method` (exact), paths (`{*}`/`{**}` -> Envoy's uri_template
  `*`/`**`, else url_path exact) and not(notPaths), each an or over its values. Principal = and
  of: source principals, request principals (`<iss>/*`: payload.iss exact and payload.sub `.+`),
  then each `when` on `request.auth.claims[c]` as a jwt_authn payload metadata matcher that accepts
  a list containing the value or the value itself.

One Envoy stands in for the ingress gateway and every workload's sidecar. So each route (the
gateway's) carries its destination workload's sidecar filters as per-route configuration: a
`jwt_authn` requirement named after the workload (providers of all workloads sit in the one
filter, each workload's requirement names only its own, so extraction and the issuer check see
only that workload's locations and issuers) and the workload's whole `rbac` configuration. What
this simplifies, and why it does not change a decision here:
- Source principals in `trusted_peers` (the ingress gateway's service account) are always
  satisfied: in the cluster every request of the comparison reaches the sidecar from the gateway
  over mTLS with exactly that identity; a call that bypasses the gateway is not modelled.
- Routes go to one upstream (the test's recorder) instead of `outbound|<port>||<service>`.
- A host no VirtualService names goes to `passthrough_cluster`, as the filter's test Envoy sends
  every host it does not govern on (in the cluster: some other VirtualService's route).
- Route knobs that decide nothing (retries, decorators, stats names, tracing) are left out, and so
  is `clear_route_cache` (false for sidecars).
"""
from urllib.parse import urlsplit

JWT_AUTHN = "envoy.filters.http.jwt_authn"
RBAC = "envoy.filters.http.rbac"
PAYLOAD = "payload"
SPACE_DELIMITED = ["permission", "scope"]
JWT_TYPE = "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication"
JWT_ROUTE_TYPE = "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.PerRouteConfig"
RBAC_TYPE = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC"
RBAC_ROUTE_TYPE = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute"
URI_TEMPLATE_TYPE = "type.googleapis.com/envoy.extensions.path.match.uri_template.v3.UriTemplateMatchConfig"
CLAIMS = "request.auth.claims"


def jwks_cluster(uri):
    """Istio's cluster for a jwksUri's host and port (model.BuildSubsetKey, outbound)."""
    u = urlsplit(uri)
    port = u.port or (443 if u.scheme == "https" else 80)
    return f"outbound|{port}||{u.hostname}"


def _workload(resource):
    labels = tuple(sorted(resource["spec"]["selector"]["matchLabels"].items()))
    return resource["metadata"]["namespace"], labels


def workload_name(workload):
    ns, labels = workload
    return f"{ns}/" + ",".join(f"{k}={v}" for k, v in labels)


# --- string and metadata matchers (authz/matcher) -----------------------------------------------

def string_matcher(v, prefix=""):
    """StringMatcherWithPrefix: `*` -> regex .+, `*x` -> suffix, `x*` -> prefix, else exact."""
    if v == "*":
        return {"safe_regex": {"regex": ".+"}}
    if v.startswith("*"):
        return {"suffix": v[1:]}
    if v.endswith("*"):
        return {"prefix": prefix + v[:-1]}
    return {"exact": prefix + v}


def _host_matcher(v):
    if v == "*":
        return {"name": ":authority", "present_match": True}
    if v.startswith("*"):
        return {"name": ":authority", "string_match": {"suffix": v[1:], "ignore_case": True}}
    if v.endswith("*"):
        return {"name": ":authority", "string_match": {"prefix": v[:-1], "ignore_case": True}}
    return {"name": ":authority", "string_match": {"exact": v, "ignore_case": True}}


def _header_matcher(name, v):
    if v == "*":
        return {"name": name, "present_match": True}
    if v.startswith("*"):
        return {"name": name, "string_match": {"suffix": v[1:]}}
    if v.endswith("*"):
        return {"name": name, "string_match": {"prefix": v[:-1]}}
    return {"name": name, "string_match": {"exact": v}}


def _path_permission(path):
    if "{*}" in path or "{**}" in path:
        template = path.replace("{**}", "**").replace("{*}", "*")
        return {"uri_template": {"name": "uri-template",
                                 "typed_config": {"@type": URI_TEMPLATE_TYPE, "path_template": template}}}
    return {"url_path": {"path": string_matcher(path)}}


def _claim_metadata(claims, value_matcher):
    return {"metadata": {"filter": JWT_AUTHN, "path": [{"key": k} for k in [PAYLOAD, *claims]],
                         "value": value_matcher}}


def _string_or(values):
    ms = [{"string_match": string_matcher(v)} for v in values]
    return ms[0] if len(ms) == 1 else {"or_match": {"value_matchers": ms}}


def _claim_principal(claims, values):
    """MetadataListValueMatcher(..., useExtendedJwt=true): a list holding one of the values, or the
    value itself."""
    v = _string_or(values)
    return _claim_metadata(claims, {"or_match": {"value_matchers": [{"list_match": {"one_of": v}}, v]}})


def _request_principal(values):
    out = []
    for value in values:
        idx = value.rfind("/")
        iss, sub = (value[:idx], value[idx + 1:]) if idx >= 0 else (value, "")
        any_ = {"safe_regex": {"regex": ".+"}}
        if value == "*":
            m_iss, m_sub = any_, any_
        elif value.startswith("*"):
            if idx >= 0:
                m_iss = any_ if iss == "*" else {"suffix": iss[1:]}
                m_sub = {"exact": sub}
            else:
                m_iss, m_sub = any_, {"suffix": value[1:]}
        elif value.endswith("*"):
            if idx >= 0:
                m_iss = {"exact": iss}
                m_sub = any_ if sub == "*" else {"prefix": sub[:-1]}
            else:
                m_iss, m_sub = {"prefix": value[:-1]}, any_
        else:
            m_iss, m_sub = {"exact": iss}, {"exact": sub}
        out.append({"and_ids": {"ids": [_claim_metadata(["iss"], {"string_match": m_iss}),
                                        _claim_metadata(["sub"], {"string_match": m_sub})]}})
    return out[0] if len(out) == 1 else {"or_ids": {"ids": out}}


def _claims_of(key):
    """request.auth.claims[a][b] -> [a, b]"""
    rest = key[len(CLAIMS):]
    return [part.rstrip("]") for part in rest.split("[")[1:]]


# --- rbac (authz/model) ---------------------------------------------------------------------------

def _permission(operation):
    """Istio's order: hosts, methods, paths, not(notPaths); each an or over its values."""
    for key in ("ports", "notPorts", "notHosts", "notMethods"):
        if operation.get(key):
            raise NotImplementedError(f"to.operation.{key} is not modelled")
    rules = []
    if operation.get("hosts"):
        rules.append({"or_rules": {"rules": [{"header": _host_matcher(v)} for v in operation["hosts"]]}})
    if operation.get("methods"):
        rules.append({"or_rules": {"rules": [{"header": _header_matcher(":method", v)} for v in operation["methods"]]}})
    if operation.get("paths"):
        rules.append({"or_rules": {"rules": [_path_permission(p) for p in operation["paths"]]}})
    if operation.get("notPaths"):
        rules.append({"not_rule": {"or_rules": {"rules": [_path_permission(p) for p in operation["notPaths"]]}}})
    return {"and_rules": {"rules": rules or [{"any": True}]}}


def _principal(source, when, trusted_peers):
    ids = []
    if source is not None:
        for key in source:
            if key not in ("principals", "requestPrincipals"):
                raise NotImplementedError(f"from.source.{key} is not modelled")
        if source.get("principals"):
            ors = []
            for p in source["principals"]:
                if p in trusted_peers:
                    ors.append({"any": True})  # the stand-in: see the module docstring
                else:
                    ors.append({"authenticated": {"principal_name": string_matcher(p, "spiffe://")}})
            ids.append({"or_ids": {"ids": ors}})
        if source.get("requestPrincipals"):
            ids.append(_request_principal(source["requestPrincipals"]))
    for cond in when:
        if not cond["key"].startswith(CLAIMS + "["):
            raise NotImplementedError(f"when {cond['key']} is not modelled")
        ids.append(_claim_principal(_claims_of(cond["key"]), cond["values"]))
    return {"and_ids": {"ids": ids or [{"any": True}]}}


def rbac_rules(policies, trusted_peers=()):
    """The ALLOW RBAC of one workload from its AuthorizationPolicies (action ALLOW only)."""
    out = {}
    for ap in policies:
        if ap["spec"].get("action", "ALLOW") != "ALLOW":
            raise NotImplementedError("only ALLOW policies are modelled")
        ns, name = ap["metadata"]["namespace"], ap["metadata"]["name"]
        for i, rule in enumerate(ap["spec"].get("rules") or []):
            when = rule.get("when") or []
            principals = [_principal(f.get("source"), when, trusted_peers) for f in rule.get("from") or []] \
                or [_principal(None, when, trusted_peers)]
            permissions = [_permission(t.get("operation") or {}) for t in rule.get("to") or []] \
                or [{"and_rules": {"rules": [{"any": True}]}}]
            out[f"ns[{ns}]-policy[{name}]-rule[{i}]"] = {"permissions": permissions, "principals": principals}
        if not ap["spec"].get("rules"):
            raise NotImplementedError("a policy without rules (match never) is not modelled")
    return {"action": "ALLOW", "policies": out}


# --- jwt_authn (authn/policy_applier.go) ----------------------------------------------------------

def _provider(jwt_rule):
    p = {"issuer": jwt_rule["issuer"], "forward": bool(jwt_rule.get("forwardOriginalToken")),
         "payload_in_metadata": PAYLOAD,
         "normalize_payload_in_metadata": {"space_delimited_claims": list(SPACE_DELIMITED)},
         "remote_jwks": {"http_uri": {"uri": jwt_rule["jwksUri"], "cluster": jwks_cluster(jwt_rule["jwksUri"]),
                                      "timeout": "5s"},
                         "cache_duration": "300s"}}
    if jwt_rule.get("fromHeaders"):
        p["from_headers"] = [{k: v for k, v in (("name", h["name"]), ("value_prefix", h.get("prefix"))) if v}
                             for h in jwt_rule["fromHeaders"]]
    if jwt_rule.get("fromParams"):
        p["from_params"] = list(jwt_rule["fromParams"])
    return p


def _requirement(names):
    inner = [{"requires_any": {"requirements": [{"provider_name": n}, {"allow_missing": {}}]}} for n in names]
    if len(inner) == 1:
        return inner[0]
    return {"requires_any": {"requirements": [{"provider_name": n} for n in names]
                             + [{"requires_all": {"requirements": inner}}]}}


# --- the whole configuration -----------------------------------------------------------------------

def envoy_config(resources, *, services, route_cluster, passthrough_cluster=None, trusted_peers=()):
    """http_filters (jwt_authn, rbac; the router is added by the bootstrap), route_config and the
    names of the JWKS clusters the providers use.

    services: {service host (`<name>.<ns>.svc.cluster.local`): (namespace, matchLabels)}, the
    cluster's Services, to find the workload a VirtualService route sends to."""
    by_kind = {}
    for r in resources:
        by_kind.setdefault(r["kind"], []).append(r)
    ras, aps = {}, {}
    for ra in by_kind.get("RequestAuthentication", []):
        ras.setdefault(_workload(ra), []).append(ra)
    for ap in by_kind.get("AuthorizationPolicy", []):
        aps.setdefault(_workload(ap), []).append(ap)

    providers, requirements, clusters = {}, {}, set()
    for workload, policies in ras.items():
        jwt_rules = [jr for ra in policies for jr in ra["spec"]["jwtRules"]]
        jwt_rules.sort(key=lambda jr: jr["issuer"])
        names = []
        for i, jr in enumerate(jwt_rules):
            name = f"{workload_name(workload)}|origins-{i}"
            providers[name] = _provider(jr)
            clusters.add(jwks_cluster(jr["jwksUri"]))
            names.append(name)
        requirements[workload_name(workload)] = _requirement(names)
    rbac_of = {w: rbac_rules(p, trusted_peers) for w, p in aps.items()}

    vhosts = {}
    for vs in by_kind.get("VirtualService", []):
        routes = [_route(http, services, route_cluster, requirements, rbac_of) for http in vs["spec"]["http"]]
        for host in vs["spec"]["hosts"]:
            vh = vhosts.setdefault(host.lower(), {"name": f"{host.lower()}:80", "domains": [host.lower()], "routes": []})
            vh["routes"] += routes
    virtual_hosts = list(vhosts.values())
    if passthrough_cluster:
        virtual_hosts.append({"name": "passthrough", "domains": ["*"], "routes": [
            {"match": {"prefix": "/"}, "route": {"cluster": passthrough_cluster, "timeout": "30s"}}]})

    filters = []
    if providers:
        filters.append({"name": JWT_AUTHN, "typed_config": {
            "@type": JWT_TYPE, "providers": providers, "requirement_map": requirements,
            "bypass_cors_preflight": True}})
    # No rules at the filter level: a route without a workload (no route, other hosts) is not
    # authorised here, as no sidecar would see it.
    filters.append({"name": RBAC, "typed_config": {"@type": RBAC_TYPE}})
    route_config = {"name": "peer", "ignore_port_in_host_matching": True, "virtual_hosts": virtual_hosts}
    return {"http_filters": filters, "route_config": route_config, "jwks_clusters": sorted(clusters)}


def _route(http, services, route_cluster, requirements, rbac_of):
    if len(http.get("match") or []) != 1 or len(http.get("route") or []) != 1:
        raise NotImplementedError("one match and one destination per route are modelled")
    m = http["match"][0]
    match = {}
    uri = m.get("uri") or {"prefix": "/"}
    if "prefix" in uri:
        match["prefix"] = uri["prefix"]
    elif "regex" in uri:
        match["safe_regex"] = {"regex": uri["regex"]}
    else:
        match["path"] = uri["exact"]
    match["case_sensitive"] = True
    if "method" in m:
        match["headers"] = [{"name": ":method", "string_match": {"safe_regex": {"regex": m["method"]["regex"]}}}]
    headers = http.get("headers") or {}
    to_add = [{"header": {"key": k, "value": v}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}
              for k, v in sorted(((headers.get("request") or {}).get("set") or {}).items())]
    route = {"match": match, "route": {"cluster": route_cluster, "timeout": http.get("timeout", "0s")}}
    if to_add:
        route["request_headers_to_add"] = to_add
    remove = (headers.get("response") or {}).get("remove")
    if remove:
        route["response_headers_to_remove"] = list(remove)
    dest = http["route"][0]["destination"]["host"]
    ns, labels = services[dest]
    workload = (ns, tuple(sorted(labels.items())))
    name = workload_name(workload)
    per_filter = {JWT_AUTHN: {"@type": JWT_ROUTE_TYPE, **({"requirement_name": name} if name in requirements
                                                          else {"disabled": True})}}
    if workload in rbac_of:
        per_filter[RBAC] = {"@type": RBAC_ROUTE_TYPE, "rbac": {"rules": rbac_of[workload]}}
    else:
        per_filter[RBAC] = {"@type": RBAC_ROUTE_TYPE}  # no policy on the workload: nothing enforced
    route["typed_per_filter_config"] = per_filter
    return route
