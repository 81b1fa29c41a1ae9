"""APIRule v2: the filter answers as Istio does, request for request.

For APIRule v2 (and v2alpha1) Kyma has no Oathkeeper to be compatible with: the semantics are
whatever Istio makes of the resources Kyma writes. So the oracle here is not a table of expected
codes but that real thing: tests/e2e/peer turns the APIRules of peer/apirules.yaml into the
VirtualService, RequestAuthentication and AuthorizationPolicy Kyma's controller writes, and those
into the routes, `jwt_authn` and `rbac` istiod gives Envoy. One Envoy runs that ("native"),
another runs the filter with the same APIRules as its plugin configuration ("wasm"), both with
the same listener, connection manager settings, upstream recorder and JWKS server. Every probe of
peer/probes.py goes to both; the statuses must be equal, and no denied request may reach the
backend. An APIRule the filter refuses is a divergence of its own (Kyma accepts all of them): it is
reported and left out, so the others are still compared; a configuration refused as a whole fails
the comparison with the filter's reason. The native side is also checked on its own, against the
conformance cases 61-73 and the §3.5 statements of apirule-semantics.md, so the oracle itself is
known to be right whatever the filter does.

What one native Envoy simplifies compared with a cluster (gateway + sidecars) is listed in
peer/istio.py; none of it changes a decision for these probes.
"""
import os
import re

import pytest
import yaml

from harness import gateway as gw
from harness.istio_schema import validate_istio
from peer import istio, kyma
from peer.probes import ISSUERS, JWKS_HOST, PROBES, P, jwks_of, materialise, mint
from tools.stack.procs import StartupError

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "peer", "apirules.yaml")) as f:
    APIRULES = [d for d in yaml.safe_load_all(f) if d]
JWKS_CLUSTER = istio.jwks_cluster(f"http://{JWKS_HOST}/")
# What the backend sees that the APIRules decide: compared when both sides forward a request.
UPSTREAM_HEADERS = ("x-forwarded-host", "authorization", "x-token", "cookie", "x-peer-set", "x-peer-host")


def _serve_jwks(jwks_server, keys):
    for name, (_, path) in ISSUERS.items():
        jwks_server.serve(path, jwks_of(name, keys))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("peer")


@pytest.fixture(scope="module")
def native(artifacts, recorder, jwks_server, keys, workdir):
    """Envoy with Istio's filters and routes for APIRULES."""
    _serve_jwks(jwks_server, keys)
    resources = kyma.istio_resources(APIRULES)
    cfg = istio.envoy_config(resources, services=kyma.services(APIRULES), route_cluster="backend",
                             passthrough_cluster="backend", trusted_peers=(kyma.INGRESS_GATEWAY_PRINCIPAL,))
    assert cfg["jwks_clusters"] == [JWKS_CLUSTER], cfg["jwks_clusters"]
    g = gw.start_native(http_filters=cfg["http_filters"], route_config=cfg["route_config"], recorder=recorder,
                        workdir=workdir, clusters={JWKS_CLUSTER: jwks_server.address}, name="native")
    yield g
    g.stop()


def plugin_config(apirules):
    """The filter's configuration: the APIRules, every jwksUri on the JWKS server's cluster."""
    urls = sorted({a["jwksUri"] for ar in apirules for r in ar["spec"]["rules"]
                   for a in (r.get("jwt") or {}).get("authentications") or []})
    return {"apiRules": apirules, "jwks": {"clusters": {u: JWKS_CLUSTER for u in urls}}}


REFUSED = re.compile(r"configuration refused: APIRule ([\w.-]+)/([\w.-]+): (.*)$", re.M)


class Wasm:
    """The filter's Envoy with every APIRule it accepts (gateway: None when it accepts none or
    refuses the configuration as a whole), and the APIRules it refused: {name: its reason}."""

    def __init__(self, gateway, refused, error=None):
        self.gateway, self.refused, self.error = gateway, refused, error


@pytest.fixture(scope="module")
def wasm(artifacts, recorder, jwks_server, keys, workdir):
    """Envoy with the filter. An APIRule the filter refuses is a divergence in itself (Kyma accepts
    every one of them); it is left out and Envoy started again, so the comparison still covers the
    others."""
    _serve_jwks(jwks_server, keys)
    accepted, refused = list(APIRULES), {}
    while accepted:
        try:
            g = gw.start_gateway(plugin_config(accepted), recorder=recorder, workdir=workdir,
                                 clusters={JWKS_CLUSTER: jwks_server.address}, name=f"wasm-{len(refused)}")
        except StartupError as e:
            m = REFUSED.search(str(e))
            names = [a["metadata"]["name"] for a in accepted]
            if not m or m.group(2) not in names:
                lines = [ln for ln in str(e).splitlines() if "critical" in ln or "error" in ln]
                yield Wasm(None, refused, "\n".join(lines[-5:]) or str(e)[-2000:])
                return
            refused[m.group(2)] = m.group(3).strip()
            accepted = [a for a in accepted if a["metadata"]["name"] != m.group(2)]
            continue
        yield Wasm(g, refused)
        g.stop()
        return
    yield Wasm(None, refused, "every APIRule was refused")


def send(g, probe, keys, request=None):
    """request: what materialise(probe, keys) gave, to send the very same token to both sides."""
    method, path, headers = request or materialise(probe, keys)
    return g.raw_request(method, path, host=probe.host_header, headers=headers)


def backend_violation(resp):
    """Why resp breaks "denied never reaches the backend, allowed reaches it once", or None."""
    if resp.status == 200:
        return None if len(resp.upstream) == 1 else f"200 but {len(resp.upstream)} upstream requests"
    return f"{resp.status} but reached the backend" if resp.upstream else None


def upstream_view(resp):
    """The headers of UPSTREAM_HEADERS the backend saw (Cookie as a set of pairs: Kyma writes its
    cookies in no fixed order)."""
    seen = resp.seen
    out = {}
    for name in UPSTREAM_HEADERS:
        values = seen.header_values(name)
        if name == "cookie":
            values = sorted(p.strip() for v in values for p in v.split(";"))
        out[name] = values
    return out


def _probe_line(probe, *statuses):
    return " | ".join([f"APIRule {probe.apirule}", probe.method, f"{probe.host_header}{probe.path}",
                       f"token {probe.token_label}", *statuses])


# --- the oracle itself -----------------------------------------------------------------------------

def test_the_comparison_is_big_enough():
    """The brief of the comparison: at least 12 APIRules and 200 requests."""
    assert len(APIRULES) >= 12 and len(PROBES) >= 200, (len(APIRULES), len(PROBES))
    assert {a["apiVersion"] for a in APIRULES} == set(kyma.V2_VERSIONS)


def test_peer_writes_valid_istio_resources():
    """What the peer writes as Kyma's controller is accepted by Istio's schema (a misspelt field
    would be ignored by Istio and change nothing in Envoy, silently)."""
    resources = kyma.istio_resources(APIRULES)
    kinds = [r["kind"] for r in resources]
    assert kinds.count("VirtualService") == len(APIRULES)
    assert {"RequestAuthentication", "AuthorizationPolicy"} <= set(kinds)
    for r in resources:
        validate_istio(r)


def test_case_63_covered_path_after_a_general_one_is_refused():
    """v2 validation: a path fully covered by an earlier rule with a shared method is an error, so
    there is nothing to send requests to; the other order is fine (case 64)."""
    general_first = {"apiVersion": "gateway.kyma-project.io/v2", "kind": "APIRule",
                     "metadata": {"name": "c63", "namespace": "peer"},
                     "spec": {"hosts": ["c63.peer.test"], "gateway": "kyma-system/kyma-gateway",
                              "service": {"name": "c63", "port": 8000},
                              "rules": [{"path": "/a/{**}", "methods": ["GET"], "noAuth": True},
                                        {"path": "/a/b", "methods": ["GET", "POST"], "noAuth": True}]}}
    with pytest.raises(kyma.Invalid, match="Path /a/b with method GET conflicts with at least one of the previous rule paths"):
        kyma.validate(general_first)
    specific_first = dict(general_first, spec=dict(general_first["spec"],
                                                   rules=list(reversed(general_first["spec"]["rules"]))))
    kyma.validate(specific_first)


def test_native_peer_matches_the_reference(native, keys):
    """The cases 61-73 and §3.5 statements the reference decides, against the native Envoy: proof
    that the translation in tests/e2e/peer is Istio's."""
    wrong = []
    for probe in (p for p in PROBES if p.case):
        r = send(native, probe, keys)
        if r.status != probe.expect or backend_violation(r):
            wrong.append(_probe_line(probe, f"case {probe.case}", f"expected {probe.expect}",
                                     f"native {r.status}", backend_violation(r) or "") + f" body={r.text[:80]!r}")
    assert not wrong, "native peer disagrees with the reference:\n" + "\n".join(wrong)


def test_a_token_location_with_two_values_is_401_and_never_looser_than_envoy(native, wasm, keys):
    """A token location holding two values (a `fromHeaders` header sent twice, a `fromParams` or
    the default `access_token` parameter named twice; issue 11, the CVE-2026-31838 class): the
    filter answers 401 and forwards nothing, whatever the values. Beside it, what native Envoy
    1.40's jwt_authn answers, pinned as the record docs/security.md ("Tokens and keys") cites: each
    header value is a token of its own that must verify (two valid ones pass), and only the first
    value of a query parameter is read (a second one reaches the backend unverified)."""
    assert wasm.gateway is not None, wasm.error
    tok = lambda kind, iss: mint(P("x", "GET", "/", kind, iss=iss), keys)  # noqa: E731
    rows = []  # (label, host, path, headers, native status)
    for a, b, header_native, param_native in [("valid", "valid", 200, 200), ("valid", "bad_signature", 401, 200),
                                              ("bad_signature", "valid", 401, 401)]:
        headers = [("X-Token", f"Token {tok(a, 'H')}"), ("X-Token", f"Token {tok(b, 'H')}")]
        rows.append((f"X-Token: {a}, X-Token: {b}", "header.peer.test", "/h", headers, header_native))
        rows.append((f"?jwt={a}&jwt={b}", "param.peer.test", f"/q?jwt={tok(a, 'Q')}&jwt={tok(b, 'Q')}", [],
                     param_native))
        rows.append((f"?access_token={a}&access_token={b}", "paths.peer.test",
                     f"/exact?access_token={tok(a, 'A')}&access_token={tok(b, 'A')}", [], param_native))
    wrong = []
    for label, host, path, headers, native_expect in rows:
        n = native.raw_request("GET", path, host=host, headers=headers)
        w = wasm.gateway.raw_request("GET", path, host=host, headers=headers)
        if w.status != 401 or w.upstream or n.status != native_expect or backend_violation(n):
            wrong.append(f"{label}: wasm {w.status} (reached backend: {bool(w.upstream)}), native {n.status} "
                         f"(expected {native_expect}) {backend_violation(n) or ''} body={w.text[:60]!r}")
    assert not wrong, "\n".join(wrong)


def test_native_peer_never_forwards_a_denied_request(native, keys):
    """Every probe against the native Envoy alone: only the statuses the peer can give (400: Envoy's
    HTTP codec refuses a lowercase method before any filter), and the backend sees exactly the
    forwarded requests."""
    bad = []
    for probe in PROBES:
        r = send(native, probe, keys)
        if r.status not in (200, 400, 401, 403, 404) or backend_violation(r):
            bad.append(_probe_line(probe, f"native {r.status}", backend_violation(r) or "unexpected status"))
    assert not bad, "\n".join(bad)


def test_wildcard_host_and_setters_reach_the_backend_natively(native, keys):
    """The VirtualService's header setters as the backend sees them (what the comparison of
    upstream headers relies on): x-forwarded-host is the request's authority for a wildcard host,
    the rule's headers and cookies replace the client's."""
    seen = send(native, P("wild", "GET", "/w", "valid", host="a.wild.peer.test"), keys).seen
    assert seen.header_values("x-forwarded-host") == ["a.wild.peer.test"]
    seen = send(native, P("setters", "GET", "/set", headers={"X-Peer-Set": "client", "Cookie": "c=1"}), keys).seen
    assert seen.header_values("x-peer-set") == ["from-rule"]
    assert seen.header_values("cookie") == ["lang=en; session=abc"]
    assert seen.header_values("x-forwarded-host") == ["setters.peer.test"]
    seen = send(native, P("operators", "GET", "/op"), keys).seen
    assert seen.header_values("x-peer-host") == ["operators.peer.test"]


# --- the comparison --------------------------------------------------------------------------------

# Divergences the filter has on purpose, each listed in docs/compatibility.md with its reason:
# (APIRule, host header + path, token label) -> (native status, wasm status, why). Only these may
# differ, and each must still differ exactly so (an entry that stops matching fails the test too,
# so the list never outlives the difference).
EXPECTED_DIVERGENCES = {
    ("paths", "paths.peer.test./exact", "none"): (200, 403, "a trailing-dot host is held to the APIRule (deny), Istio routes it elsewhere"),
    ("paths", "paths.peer.test./exact", "valid"): (200, 403, "a trailing-dot host is held to the APIRule (deny), Istio routes it elsewhere"),
    ("ec", "ec.peer.test/ec", "valid(E)/ES512@P-256"): (200, 401, "RFC 7518 ties ES512 to P-521; Envoy accepts a P-256 key"),
}
# Paths backends could read two ways (docs/security.md, "Paths", issue 11): an escaped slash is
# refused before any rule, where Istio's default (KEEP_UNCHANGED) forwards it; `//` is merged, where
# Istio's default does not merge slashes.
ESCAPED = "an escaped slash is refused (400) before any rule; Istio's default forwards it"
MERGED = "// is merged, and /deep/end matches no route; Istio's default routes /deep//end"
EXPECTED_DIVERGENCES.update({
    ("paths", "paths.peer.test/exact%2F", "none"): (404, 400, ESCAPED),
    ("paths", "paths.peer.test/exact%2F", "valid"): (404, 400, ESCAPED),
    ("paths", "paths.peer.test/one/a%2Fb", "none"): (403, 400, ESCAPED),
    ("paths", "paths.peer.test/one/a%2Fb", "valid"): (200, 400, ESCAPED),
    ("paths", "paths.peer.test/any/a%2F..%2Fb", "none"): (403, 400, ESCAPED),
    ("paths", "paths.peer.test/any/a%2F..%2Fb", "valid"): (200, 400, ESCAPED),
    ("paths", "paths.peer.test/deep//end", "none"): (403, 404, MERGED),
    ("paths", "paths.peer.test/deep//end", "valid"): (200, 404, MERGED),
})
# A token location with two values (docs/security.md, "Tokens and keys", issue 11): 401 whatever the
# values, where Envoy reads only the first `access_token` (here two valid tokens: it allows).
EXPECTED_DIVERGENCES[("paths", "paths.peer.test/exact", "valid@query:access_token and valid@query:access_token")] = (
    200, 401, "two values for one token parameter are refused; Envoy reads the first")


def test_filter_answers_every_probe_as_the_native_peer(native, wasm, keys):
    """The differential: every probe to both Envoys. One line per divergence: APIRule, method,
    host and path, token kind, native status, wasm status; and every request either side let
    through where it should not have (or that did not reach the backend though allowed), or
    forwarded with other headers. An APIRule the filter refused is a divergence, and so is every
    probe of it (answered by the native side only)."""
    if wasm.error:
        pytest.fail(f"the filter refused the configuration of {len(APIRULES)} v2 APIRules, so nothing could "
                    f"be compared:\n{wasm.error}", pytrace=False)
    refused, status, backend, headers = [], [], [], []
    seen_expected = set()
    for name, reason in wasm.refused.items():
        count = sum(p.apirule == name for p in PROBES)
        refused.append(f"APIRule {name} refused by the filter ({count} probes not compared): {reason}")
    for probe in PROBES:
        request = materialise(probe, keys)
        n = send(native, probe, keys, request)
        why = backend_violation(n)
        if why:
            backend.append(_probe_line(probe, f"native: {why}"))
        if probe.apirule in wasm.refused:
            status.append(_probe_line(probe, f"native {n.status}", "wasm refused the APIRule"))
            continue
        w = send(wasm.gateway, probe, keys, request)
        expected = EXPECTED_DIVERGENCES.get((probe.apirule, f"{probe.host_header}{probe.path}", probe.token_label))
        if expected is not None:
            seen_expected.add((probe.apirule, f"{probe.host_header}{probe.path}", probe.token_label))
            if (n.status, w.status) != expected[:2]:
                status.append(_probe_line(probe, f"native {n.status}", f"wasm {w.status}",
                                          f"expected {expected[0]} vs {expected[1]}: {expected[2]}"))
        elif n.status != w.status:
            status.append(_probe_line(probe, f"native {n.status}", f"wasm {w.status}"))
        why = backend_violation(w)
        if why:
            backend.append(_probe_line(probe, f"wasm: {why}"))
        if n.status == w.status == 200 and not backend_violation(n) and not why:
            nv, wv = upstream_view(n), upstream_view(w)
            for name in UPSTREAM_HEADERS:
                if nv[name] != wv[name]:
                    headers.append(_probe_line(probe, f"{name}: native {nv[name]!r}", f"wasm {wv[name]!r}"))
    report = []
    stale = set(EXPECTED_DIVERGENCES) - seen_expected
    if stale:
        report.append("expected divergences no probe produced any more: " + ", ".join(map(str, sorted(stale))))
    if refused:
        report.append("APIRules the filter refused:\n" + "\n".join(refused))
    if status:
        report.append(f"{len(status)} of {len(PROBES)} probes with another status:\n" + "\n".join(status))
    if backend:
        report.append("the backend saw what it should not (or missed what it should):\n" + "\n".join(backend))
    if headers:
        report.append("forwarded with other headers:\n" + "\n".join(headers))
    assert not report, "\n\n".join(report)
