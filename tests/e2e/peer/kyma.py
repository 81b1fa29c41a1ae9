"""Kyma's controller for APIRule v2 (and v2alpha1, the same schema): the Istio resources it writes.

Follows kyma-project/api-gateway's internal/processing/processors/v2alpha1 (virtualservice,
requestauthentication, authorizationpolicy) and internal/builders, and the validation of
internal/validation/v2alpha1 that decides whether rules are accepted at all:

- VirtualService: one per APIRule, one HTTP route per rule in rule order (Envoy: the first
  matching route wins). Match: method regex `^(M1|M2)$`; uri prefix `/` for the path `/*`, else
  the regex `^<path>$` with `{*}` and `{**}` replaced by character-class regexes (the rest of the
  path is not escaped, so a `.` matches any character). Request headers: `x-forwarded-host` set
  to the first host (`%REQ(:AUTHORITY)%` for a wildcard host), the rule's `request.headers`, and
  its `request.cookies` as one `Cookie` header; upstream CORS response headers removed; timeout
  rule -> spec -> 180 s.
- RequestAuthentication: one per jwt rule, keyed by workload and its (issuer, jwksUri) list (a later
  rule with the same key replaces the earlier one), one jwtRule per authentication with
  `forwardOriginalToken: true` and the authentication's fromHeaders/fromParams.
- AuthorizationPolicy (ALLOW): per rule one policy per `authorizations` entry (one policy when there
  are none, and for noAuth). Its rule: `to.operation` hosts, methods, `paths: [path]` (`/*` written
  `/{**}`) and `notPaths`: the paths of earlier rules that share a method, skipping `/*`, `/{**}`
  and `/`, and stopping at the first rule with this rule's own path. `from.source`:
  `requestPrincipals: ["<issuer>/*"]` per authentication (jwt rules only) and the ingress gateway's
  service account as `principals`. With requiredScopes, three rules, one each for the claims scp,
  scope and scopes, every scope a `when` condition on that claim; every audience a `when` on
  `request.auth.claims[aud]`.

The cluster is not there to ask, so two things are stood in for: a Service `<name>.<namespace>`
selects the pods labelled `app: <name>` (Kyma reads the Service's selector), and a short host is
completed with `gateway_domain` (Kyma reads the Gateway's `*.<domain>` host). CORS policies and
extAuth rules are not modelled: `validate` refuses them rather than produce something else.
"""
import copy
import re

V2_VERSIONS = ("gateway.kyma-project.io/v2", "gateway.kyma-project.io/v2alpha1")
INGRESS_GATEWAY_PRINCIPAL = "cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"
DEFAULT_TIMEOUT_SECONDS = 180
SCOPE_CLAIM_KEYS = ("request.auth.claims[scp]", "request.auth.claims[scope]", "request.auth.claims[scopes]")
AUDIENCE_KEY = "request.auth.claims[aud]"
CORS_RESPONSE_HEADERS = ("Access-Control-Allow-Origin", "Access-Control-Expose-Headers",
                         "Access-Control-Allow-Headers", "Access-Control-Allow-Credentials",
                         "Access-Control-Allow-Methods", "Access-Control-Max-Age")
# virtual_service_processor.go envoyTemplatesTranslation
VS_TEMPLATES = {
    "{**}": r"([A-Za-z0-9-._~!$&'()*+,;=:@/]|%[0-9a-fA-F]{2})*",
    "{*}": r"([A-Za-z0-9-._~!$&'()*+,;=:@]|%[0-9a-fA-F]{2})+",
}
METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH")
# The CRD's patterns (apis/gateway/v2 apirule_types.go).
PATH_PATTERN = re.compile(r"^((/([A-Za-z0-9-._~!$&'()+,;=:@]|%[0-9a-fA-F]{2})*)|(/\{\*{1,2}\}))+$|^/\*$")
HOST_PATTERN = re.compile(r"^(?:\*\.(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9]{2,63}|"
                          r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)(?:(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*"
                          r"(?:\.[a-z0-9]{2,63}))?)$")


class Invalid(ValueError):
    """The controller would set the APIRule's status to Error and write nothing."""


# --- names -----------------------------------------------------------------------------------------

def name_of(apirule):
    meta = apirule["metadata"]
    return f"{meta.get('namespace', 'default')}/{meta['name']}"


def hosts_of(apirule, gateway_domain=None):
    """FQDNs of spec.hosts (a short host gets the gateway's domain)."""
    out = []
    for h in apirule["spec"]["hosts"]:
        if "." in h:
            out.append(h)
        elif gateway_domain:
            out.append(f"{h}.{gateway_domain}")
        else:
            raise Invalid(f"{name_of(apirule)}: short host {h} needs the gateway's domain")
    return out


def service_of(apirule, rule):
    """(namespace, name, port) of the rule's service: rule.service > spec.service, namespace
    rule > spec > the APIRule's (FindServiceNamespace)."""
    spec = apirule["spec"]
    svc = rule.get("service") or spec.get("service")
    if svc is None:
        raise Invalid(f"{name_of(apirule)}: the rule must define a service, because no service is defined on spec level")
    ns = ((rule.get("service") or {}).get("namespace") or (spec.get("service") or {}).get("namespace")
          or apirule["metadata"].get("namespace", "default"))
    return ns, svc["name"], svc["port"]


def service_host(ns, name):
    return f"{name}.{ns}.svc.cluster.local"


def selector_of(name):
    """The stand-in for the Service's pod selector (see the module docstring)."""
    return {"matchLabels": {"app": name}}


def services(apirules):
    """The cluster's Services the APIRules name: {service host: (namespace, matchLabels)}."""
    out = {}
    for a in apirules:
        for rule in a["spec"]["rules"]:
            ns, name, _ = service_of(a, rule)
            out[service_host(ns, name)] = (ns, selector_of(name)["matchLabels"])
    return out


def standardize_path(path):
    return "/{**}" if path == "/*" else path


# --- validation ------------------------------------------------------------------------------------

def _tokens(path):
    """internal/path/token TokenizePath: the segments after the leading slashes."""
    return path.lstrip("/").split("/")


class _SegmentTrie:
    """internal/path/segment_trie: does an earlier path cover the new one?"""

    def __init__(self):
        self.root = {"end": False, "children": {}, "suffixes": []}

    @staticmethod
    def _suffix(tokens):
        return "".join("/" + t for t in tokens)

    def _exists(self, node, tokens, cur):
        if cur >= len(tokens):
            return node["end"]
        tok = tokens[cur]
        for key in (tok, "{*}"):
            nxt = node["children"].get(key)
            if nxt is not None and self._exists(nxt, tokens, cur + 1):
                return True
        nxt = node["children"].get("{**}")
        if nxt is not None:
            for i in range(cur, len(tokens) + 1):
                suffix = self._suffix(tokens[i:])
                if any(s == suffix or s == "" for s in nxt["suffixes"]):
                    return True
        return False

    def insert_collides(self, tokens):
        if not tokens:
            return False
        if self.root["children"] and self._exists(self.root, tokens, 0):
            return True
        node = self.root
        for i, tok in enumerate(tokens):
            last = i == len(tokens) - 1
            child = node["children"].get(tok)
            if tok == "{**}":
                if child is None:
                    child = node["children"][tok] = {"end": last, "children": {}, "suffixes": []}
                child["suffixes"].append(self._suffix(tokens[i + 1:]))
            elif child is None:
                child = node["children"][tok] = {"end": last, "children": {}, "suffixes": []}
            node = child
        return False


def _validate_jwt(where, jwt):
    problems = []
    authz = jwt.get("authorizations")
    if authz is not None:
        if not authz:
            problems.append(f"{where}.authorizations: authorizations defined, but no configuration exists")
        for i, a in enumerate(authz):
            for key in ("requiredScopes", "audiences"):
                if key in a and (not a[key] or any(v == "" for v in a[key])):
                    problems.append(f"{where}.authorizations[{i}].{key}: value is empty")
    authn = jwt.get("authentications") or []
    if not authn:
        problems.append(f"{where}.authentications: A JWT config must have at least one authentication")
    headers = params = False
    for i, a in enumerate(authn):
        if not a.get("issuer"):
            problems.append(f"{where}.authentications[{i}].issuer: value is empty")
        if not a.get("jwksUri"):
            problems.append(f"{where}.authentications[{i}].jwksUri: value is empty")
        if a.get("fromHeaders"):
            if params:
                problems.append(f"{where}.authentications[{i}].fromHeaders: mixture of multiple fromHeaders and fromParams is not supported")
            headers = True
        if a.get("fromParams"):
            if headers:
                problems.append(f"{where}.authentications[{i}].fromParams: mixture of multiple fromHeaders and fromParams is not supported")
            params = True
        for key in ("fromHeaders", "fromParams"):
            if len(a.get(key) or []) > 1:
                problems.append(f"{where}.authentications[{i}].{key}: multiple {key} are not supported")
    return problems


def _location(auth):
    return (auth["issuer"], auth["jwksUri"], [(h["name"], h.get("prefix", "")) for h in auth.get("fromHeaders") or []],
            list(auth.get("fromParams") or []))


def validate(apirule):
    """Raise Invalid with every problem the CRD or the controller reports for this APIRule."""
    problems = []
    if apirule.get("apiVersion") not in V2_VERSIONS or apirule.get("kind") != "APIRule":
        raise Invalid(f"not an APIRule v2: {apirule.get('apiVersion')} {apirule.get('kind')}")
    spec = apirule["spec"]
    hosts = spec.get("hosts") or []
    if len(hosts) != 1:
        problems.append("spec.hosts: exactly one host")
    problems += [f"spec.hosts: {h} is not a host" for h in hosts if not HOST_PATTERN.match(h)]
    if bool(spec.get("gateway")) == bool(spec.get("externalGateway")):
        problems.append("spec: one of gateway and externalGateway")
    if "corsPolicy" in spec:
        problems.append("spec.corsPolicy: not modelled by this peer")
    rules = spec.get("rules") or []
    if not rules:
        problems.append("spec.rules: No rules defined")
    seen_auth = {}
    for i, rule in enumerate(rules):
        where = f"spec.rules[{i}]"
        kinds = [k for k in ("jwt", "extAuth") if k in rule] + (["noAuth"] if rule.get("noAuth") is True else [])
        if len(kinds) != 1:
            problems.append(f"{where}: One of the following fields must be set: noAuth, jwt, extAuth")
        if "extAuth" in rule:
            problems.append(f"{where}.extAuth: not modelled by this peer")
        if not rule.get("methods") or any(m not in METHODS for m in rule["methods"]):
            problems.append(f"{where}.methods: at least one of {', '.join(METHODS)}")
        path = rule.get("path", "")
        if not PATH_PATTERN.match(path):
            problems.append(f"{where}.path: {path!r} does not match the CRD pattern")
        if path.count("{**}") > 1:
            problems.append(f"{where}.path: Only one {{**}} operator is allowed in the path.")
        elif "{**}" in path:
            ops = [s for s in _tokens(path) if s in ("{*}", "{**}")]
            if ops.index("{**}") != len(ops) - 1:
                problems.append(f"{where}.path: The {{**}} operator must be the last operator in the path.")
        if not rule.get("service") and not spec.get("service"):
            problems.append(f"{where}.service: The rule must define a service, because no service is defined on spec level")
        if "jwt" in rule:
            problems += _validate_jwt(f"{where}.jwt", rule["jwt"])
            for k, a in enumerate(rule["jwt"].get("authentications") or []):
                key = (a.get("issuer"), a.get("jwksUri"))
                if key in seen_auth and seen_auth[key] != _location(a):
                    problems.append(f"{where}.jwt.authentications[{k}]: multiple jwt configurations that differ for the same issuer")
                seen_auth.setdefault(key, _location(a))
    by_method = {}
    for rule in rules:
        for m in rule.get("methods") or []:
            by_method.setdefault(m, []).append(rule.get("path", ""))
    for m, paths in by_method.items():
        trie = _SegmentTrie()
        for path in paths:
            path = standardize_path(path)
            if trie.insert_collides(_tokens(path)):
                problems.append(f"spec.rules: Path {path} with method {m} conflicts with at least one of the previous rule paths")
                break
    if problems:
        raise Invalid(f"APIRule {name_of(apirule)}: " + "; ".join(problems))


# --- VirtualService --------------------------------------------------------------------------------

def vs_path_regex(path):
    for key, regex in VS_TEMPLATES.items():
        path = path.replace(key, regex)
    return f"^{path}$"


def _timeout(apirule, rule):
    return rule.get("timeout") or apirule["spec"].get("timeout") or DEFAULT_TIMEOUT_SECONDS


def virtual_service(apirule, gateway_domain=None):
    spec = apirule["spec"]
    hosts = hosts_of(apirule, gateway_domain)
    http = []
    for rule in spec["rules"]:
        ns, svc, port = service_of(apirule, rule)
        match = {"method": {"regex": "^(" + "|".join(rule["methods"]) + ")$"}}
        match["uri"] = {"prefix": "/"} if rule["path"] == "/*" else {"regex": vs_path_regex(rule["path"])}
        first = hosts[0]
        set_headers = {"x-forwarded-host": "%REQ(:AUTHORITY)%" if first.startswith("*.") else first}
        request = rule.get("request") or {}
        set_headers.update(request.get("headers") or {})
        if request.get("cookies"):
            # Kyma joins a Go map, in no fixed order; sorted here so the value is reproducible.
            set_headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in sorted(request["cookies"].items()))
        http.append({
            "match": [match],
            "route": [{"destination": {"host": service_host(ns, svc), "port": {"number": port}}, "weight": 100}],
            "timeout": f"{_timeout(apirule, rule)}s",
            "headers": {"request": {"set": set_headers},
                        "response": {"remove": list(CORS_RESPONSE_HEADERS)}},
        })
    meta = apirule["metadata"]
    return {"apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService",
            "metadata": {"name": f"{meta['name']}-vs", "namespace": meta.get("namespace", "default")},
            "spec": {"hosts": hosts, "gateways": [spec["gateway"]], "http": http}}


# --- RequestAuthentication -------------------------------------------------------------------------

def _jwt_rule(auth):
    out = {"issuer": auth["issuer"], "jwksUri": auth["jwksUri"], "forwardOriginalToken": True}
    if auth.get("fromHeaders"):
        out["fromHeaders"] = [{k: v for k, v in (("name", h["name"]), ("prefix", h.get("prefix"))) if v}
                              for h in auth["fromHeaders"]]
    if auth.get("fromParams"):
        out["fromParams"] = list(auth["fromParams"])
    return out


def request_authentications(apirule):
    by_key = {}
    for rule in apirule["spec"]["rules"]:
        if "jwt" not in rule:
            continue
        ns, svc, _ = service_of(apirule, rule)
        auths = rule["jwt"]["authentications"]
        key = (ns, svc, tuple((a["issuer"], a["jwksUri"]) for a in auths))
        by_key[key] = (ns, svc, [_jwt_rule(a) for a in auths])
    out = []
    for i, (ns, svc, jwt_rules) in enumerate(by_key.values()):
        out.append({"apiVersion": "security.istio.io/v1beta1", "kind": "RequestAuthentication",
                    "metadata": {"name": f"{apirule['metadata']['name']}-ra-{i}", "namespace": ns},
                    "spec": {"selector": selector_of(svc), "jwtRules": jwt_rules}})
    return out


# --- AuthorizationPolicy ---------------------------------------------------------------------------

def not_paths(rules, current):
    """generateNotPaths: earlier rules' paths that share a method with current."""
    out = []
    before = True
    for rule in rules:
        if standardize_path(rule["path"]) == "/{**}" or rule["path"] == "/":
            continue
        if rule["path"] == current["path"]:
            before = False
            continue
        if before and set(rule["methods"]) & set(current["methods"]):
            out.append(rule["path"])
    return out


def _ap_rule(hosts, rule, notpaths, when):
    operation = {"hosts": list(hosts), "methods": list(rule["methods"]), "paths": [standardize_path(rule["path"])]}
    if notpaths:
        operation["notPaths"] = list(notpaths)
    source = {}
    if "jwt" in rule:
        source["requestPrincipals"] = [f"{a['issuer']}/*" for a in rule["jwt"]["authentications"]]
    source["principals"] = [INGRESS_GATEWAY_PRINCIPAL]
    out = {"from": [{"source": source}], "to": [{"operation": operation}]}
    if when:
        out["when"] = when
    return out


def authorization_policies(apirule, gateway_domain=None):
    rules = apirule["spec"]["rules"]
    hosts = hosts_of(apirule, gateway_domain)
    out = []
    for rule in rules:
        ns, svc, _ = service_of(apirule, rule)
        notpaths = not_paths(rules, rule)
        authorizations = (rule.get("jwt") or {}).get("authorizations") or [{}]
        for authorization in authorizations:
            audiences = [{"key": AUDIENCE_KEY, "values": [a]} for a in authorization.get("audiences") or []]
            scopes = authorization.get("requiredScopes") or []
            if scopes:
                ap_rules = [_ap_rule(hosts, rule, notpaths, [{"key": key, "values": [s]} for s in scopes] + audiences)
                            for key in SCOPE_CLAIM_KEYS]
            else:
                ap_rules = [_ap_rule(hosts, rule, notpaths, audiences)]
            out.append({"apiVersion": "security.istio.io/v1beta1", "kind": "AuthorizationPolicy",
                        "metadata": {"name": f"{apirule['metadata']['name']}-ap-{len(out)}", "namespace": ns},
                        "spec": {"selector": selector_of(svc), "rules": ap_rules}})
    return out


def istio_resources(apirules, gateway_domain=None):
    """Everything the controller writes for these APIRules (each validated first), in order:
    VirtualServices, RequestAuthentications, AuthorizationPolicies."""
    apirules = [copy.deepcopy(a) for a in apirules]
    for a in apirules:
        validate(a)
    out = [virtual_service(a, gateway_domain) for a in apirules]
    for a in apirules:
        out += request_authentications(a)
    for a in apirules:
        out += authorization_policies(a, gateway_domain)
    return out
