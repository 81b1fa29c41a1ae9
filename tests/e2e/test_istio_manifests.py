"""The Istio manifests `apirule render` produces (the golden files of its tests, one per APIRule
version, and the example in istio/) are valid Istio resources, and the WasmPlugin's pluginConfig is
a configuration the real filter loads in a real Envoy, and enforces there.

Istio's schemas come from PyPI's `cloudcoil-models-istio` (pydantic models generated from Istio's
CRDs, pinned in requirements-test.txt), so nothing outside the repository is read. Validation is
stricter than the API server's: a field the schema does not know is an error here, where
Kubernetes would silently prune it. Kyma's APIRule has no registry package; the filter's own
parser, run in Envoy below, is its validator.
"""
import copy
import json
import subprocess
from pathlib import Path

import pydantic
import pytest
import yaml

from harness import tokens as T
from harness.gateway import REPO
from harness.istio_schema import MODELS, validate_istio

ISTIO_DIR = Path(REPO) / "istio"
GOLDEN_DIR = Path(REPO) / "cli" / "tests" / "golden"
APIRULE_GROUP = "gateway.kyma-project.io/"
MANIFESTS = sorted(ISTIO_DIR.glob("*.yaml")) + sorted(GOLDEN_DIR.glob("render-*.yaml"))


def _docs():
    for path in MANIFESTS:
        for i, doc in enumerate(yaml.safe_load_all(path.read_text())):
            if doc:
                yield pytest.param(path, doc, id=f"{path.parent.name}/{path.name}[{i}]:{doc['kind']}")


DOCS = list(_docs())


def _rendered(path=ISTIO_DIR / "rendered.yaml"):
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _plugin(path=ISTIO_DIR / "rendered.yaml"):
    return next(d for d in _rendered(path) if d["kind"] == "WasmPlugin")


def test_the_models_cover_what_we_ship_and_more():
    """The package really holds Istio's resources (not an empty import)."""
    for key in [("extensions.istio.io/v1alpha1", "WasmPlugin"), ("networking.istio.io/v1", "ServiceEntry"),
                ("networking.istio.io/v1", "DestinationRule"), ("networking.istio.io/v1", "VirtualService"),
                ("networking.istio.io/v1", "Gateway"), ("security.istio.io/v1", "RequestAuthentication"),
                ("security.istio.io/v1", "AuthorizationPolicy")]:
        assert key in MODELS, key
    kinds = {d.values[1]["kind"] for d in DOCS}
    assert {"WasmPlugin", "ServiceEntry", "DestinationRule", "VirtualService", "Gateway", "APIRule"} <= kinds, kinds
    assert {p.name for p in MANIFESTS} >= {"render-v1alpha1.yaml", "render-v1beta1.yaml", "render-v2.yaml",
                                           "rendered.yaml", "gateway.yaml", "apirule-httpbin.yaml"}


@pytest.mark.parametrize("path, doc", DOCS)
def test_manifest_is_a_valid_resource(path, doc):
    if doc["apiVersion"].startswith(APIRULE_GROUP):
        # Validated by the filter itself: it is the rendered WasmPlugin's pluginConfig, loaded in
        # Envoy below.
        assert doc in _plugin()["spec"]["pluginConfig"]["apiRules"]
        return
    validate_istio(doc)


@pytest.mark.parametrize("field, value", [("failStrategy", "FAIL_SOMETIMES"), ("phase", "AUTH"),
                                          ("priority", "high")])
def test_validation_catches_a_wrong_value(field, value):
    """The check above is not vacuous: a mistyped enum or a wrong type is refused, naming the field."""
    plugin = _plugin()
    plugin["spec"][field] = value
    with pytest.raises(pydantic.ValidationError, match=field):
        validate_istio(plugin)


def test_validation_catches_an_unknown_field():
    plugin = _plugin()
    plugin["spec"]["failstrategy"] = "FAIL_CLOSE"  # a typo Kubernetes would silently drop
    with pytest.raises(AssertionError, match=r"\$\.spec\.failstrategy"):
        validate_istio(plugin)
    entry = next(d for d in _rendered() if d["kind"] == "ServiceEntry")
    entry["spec"]["ports"][0]["protocl"] = "HTTP"
    with pytest.raises(AssertionError, match=r"\$\.spec\.ports\[0\]\.protocl"):
        validate_istio(entry)


def test_wasmplugin_carries_the_sample_apirule():
    apirule = yaml.safe_load((ISTIO_DIR / "apirule-httpbin.yaml").read_text())
    assert _plugin()["spec"]["pluginConfig"]["apiRules"] == [apirule]


def test_rendered_virtualservice_binds_the_apirule_host_to_its_gateway():
    gateway = yaml.safe_load((ISTIO_DIR / "gateway.yaml").read_text())
    vs = next(d for d in _rendered() if d["kind"] == "VirtualService" and d["metadata"]["name"] == "httpbin")
    assert vs["spec"]["gateways"] == [f"{gateway['metadata']['namespace']}/{gateway['metadata']['name']}"]
    domain = gateway["spec"]["servers"][0]["hosts"][0].removeprefix("*")
    assert all(h.endswith(domain) for h in vs["spec"]["hosts"])


@pytest.mark.parametrize("golden", ["render-v1alpha1.yaml", "render-v1beta1.yaml", "render-v2.yaml"])
def test_rendered_plugin_config_is_enforced_in_envoy(golden, launcher, jwks_server, keys):
    """The pluginConfig as rendered, in Envoy with the filter; the JWKS comes through Istio's
    cluster name for the URL (`outbound|443||idp.example.com`), here a local server in the place
    of the ServiceEntry + DestinationRule: a request without a token is denied, one with a valid
    token reaches the backend."""
    plugin = _plugin(GOLDEN_DIR / golden)
    config = plugin["spec"]["pluginConfig"]
    rule = config["apiRules"][0]
    jwks_url = next(u for u in _strings(rule) if u.startswith("https://idp.example.com/"))
    issuer = "https://idp.example.com"
    assert issuer in list(_strings(rule))
    host = (rule["spec"].get("host") or rule["spec"].get("hosts", [None])[0]
            or rule["spec"]["service"]["host"])
    cluster = "outbound|443||idp.example.com"
    assert any(d["kind"] == "ServiceEntry" and d["spec"]["hosts"] == ["idp.example.com"] for d in _rendered(GOLDEN_DIR / golden))
    path = jwks_url.split("idp.example.com", 1)[1]
    jwks_server.serve(path, T.jwks(keys.rsa.jwk()))
    gw = launcher(config, name=f"rendered-{golden}", clusters={cluster: jwks_server.address})
    try:
        no_token = gw.get("/headers", host=host)
        # Oathkeeper's 401 for v1, Istio's RBAC 403 for v2.
        assert no_token.status == (403 if rule["apiVersion"].endswith("/v2") else 401), no_token
        assert not no_token.reached_upstream, no_token
        ok = gw.get("/headers", host=host, token=T.mint(keys.rsa, T.std_claims(iss=issuer)))
        assert ok.status == 200 and ok.reached_upstream, ok
    finally:
        gw.stop()


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def test_wasmplugin_config_loads_in_envoy(artifacts, tmp_path):
    """Envoy --mode validate really instantiates the filter and runs its on_configure: the filter's
    parser accepts the sample APIRule and refuses a broken one with the field's path."""
    config = _plugin()["spec"]["pluginConfig"]

    def validate(cfg):
        bootstrap = {
            "static_resources": {
                "listeners": [{
                    "name": "l", "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
                    "filter_chains": [{"filters": [{
                        "name": "envoy.filters.network.http_connection_manager",
                        "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                            "stat_prefix": "s",
                            "route_config": {"virtual_hosts": [{"name": "v", "domains": ["*"], "routes": [
                                {"match": {"prefix": "/"}, "direct_response": {"status": 200}}]}]},
                            "http_filters": [
                                {"name": "envoy.filters.http.wasm", "typed_config": {
                                    "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
                                    "config": {"name": "apirule", "root_id": "apirule",
                                               "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue",
                                                                 "value": json.dumps(cfg)},
                                               "vm_config": {"runtime": "envoy.wasm.runtime.v8",
                                                             "code": {"local": {"filename": str(artifacts.wasm)}}}}}},
                                {"name": "envoy.filters.http.router", "typed_config": {
                                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}}]}],
                }],
            },
        }
        path = tmp_path / "validate.json"
        path.write_text(json.dumps(bootstrap))
        return subprocess.run([str(artifacts.envoy), "--mode", "validate", "-c", str(path), "--disable-hot-restart"],
                              capture_output=True, text=True, timeout=60)

    ok = validate(config)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    broken = copy.deepcopy(config)
    broken["apiRules"][0]["spec"]["rules"][0]["path"] = "/(unclosed"
    refused = validate(broken)
    assert refused.returncode != 0
    assert "APIRule default/httpbin: spec.rules[0].path: is not a valid regex" in refused.stdout + refused.stderr
