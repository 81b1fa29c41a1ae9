"""The Istio manifests in istio/ are valid Istio resources, and the WasmPlugin's pluginConfig is a
configuration the real filter loads in a real Envoy.

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

from harness.gateway import REPO
from harness.istio_schema import MODELS, validate_istio

ISTIO_DIR = Path(REPO) / "istio"
APIRULE_KIND = ("gateway.kyma-project.io/v1beta1", "APIRule")


def _docs():
    for path in sorted(ISTIO_DIR.glob("*.yaml")):
        for i, doc in enumerate(yaml.safe_load_all(path.read_text())):
            if doc:
                yield pytest.param(doc, id=f"{path.name}[{i}]:{doc['kind']}")


DOCS = list(_docs())


def test_the_models_cover_what_we_ship_and_more():
    """The package really holds Istio's resources (not an empty import)."""
    for key in [("extensions.istio.io/v1alpha1", "WasmPlugin"), ("networking.istio.io/v1", "ServiceEntry"),
                ("networking.istio.io/v1", "DestinationRule"), ("networking.istio.io/v1", "VirtualService"),
                ("networking.istio.io/v1", "Gateway"), ("security.istio.io/v1", "RequestAuthentication"),
                ("security.istio.io/v1", "AuthorizationPolicy")]:
        assert key in MODELS, key
    kinds = {d.values[0]["kind"] for d in DOCS}
    assert {"WasmPlugin", "ServiceEntry", "DestinationRule", "APIRule"} <= kinds, kinds


@pytest.mark.parametrize("doc", DOCS)
def test_manifest_is_a_valid_resource(doc):
    if (doc["apiVersion"], doc["kind"]) == APIRULE_KIND:
        # Validated by the filter itself: it is the WasmPlugin's pluginConfig, loaded in Envoy below.
        assert doc in _plugin()["spec"]["pluginConfig"]["apiRules"]
        return
    validate_istio(doc)


def _plugin():
    return yaml.safe_load((ISTIO_DIR / "wasmplugin.yaml").read_text())


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
    entry = next(yaml.safe_load_all((ISTIO_DIR / "serviceentry-idp.yaml").read_text()))
    entry["spec"]["ports"][0]["protocl"] = "HTTP"
    with pytest.raises(AssertionError, match=r"\$\.spec\.ports\[0\]\.protocl"):
        validate_istio(entry)


def test_wasmplugin_carries_the_sample_apirule():
    apirule = yaml.safe_load((ISTIO_DIR / "apirule-httpbin.yaml").read_text())
    assert _plugin()["spec"]["pluginConfig"]["apiRules"] == [apirule]


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
