"""The Istio manifests in istio/ are valid against the CRDs in shared/crds, and the WasmPlugin's
pluginConfig is a configuration the real filter loads in a real Envoy."""
import json
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CRDS = REPO.parent / "shared" / "crds"
WASM = REPO / "target" / "wasm32-wasip1" / "release" / "apirule_wasm.wasm"
ENVOY = REPO / ".venv" / "bin" / "envoy"


def _schemas():
    found = {}
    for name in ("istio-crds.yaml", "kyma-apirules-crd.yaml"):
        path = CRDS / name
        assert path.exists(), f"missing CRD file {path} (the shared/ folder beside the repository)"
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = doc["spec"]["group"], doc["spec"]["names"]["kind"]
            for version in doc["spec"]["versions"]:
                found[(f"{group}/{version['name']}", kind)] = version["schema"]["openAPIV3Schema"]
    return found


SCHEMAS = _schemas()
MANIFESTS = sorted((REPO / "istio").glob("*.yaml"))


def _docs():
    for path in MANIFESTS:
        for i, doc in enumerate(yaml.safe_load_all(path.read_text())):
            if doc:
                yield pytest.param(doc, id=f"{path.name}[{i}]:{doc['kind']}")


@pytest.mark.parametrize("doc", list(_docs()))
def test_manifest_matches_its_crd(doc):
    key = (doc["apiVersion"], doc["kind"])
    assert key in SCHEMAS, f"no CRD schema for {key}"
    schema = SCHEMAS[key]
    # Validate what the CRD describes (spec); metadata is Kubernetes' own.
    jsonschema.validate(doc["spec"], schema["properties"]["spec"])


def test_crd_schema_catches_a_wrong_field():
    """The check above is not vacuous: a mistyped enum in the WasmPlugin is rejected."""
    plugin = yaml.safe_load((REPO / "istio" / "wasmplugin.yaml").read_text())
    plugin["spec"]["failStrategy"] = "FAIL_SOMETIMES"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(plugin["spec"], SCHEMAS[("extensions.istio.io/v1alpha1", "WasmPlugin")]["properties"]["spec"])


def test_wasmplugin_carries_the_sample_apirule():
    plugin = yaml.safe_load((REPO / "istio" / "wasmplugin.yaml").read_text())
    apirule = yaml.safe_load((REPO / "istio" / "apirule-httpbin.yaml").read_text())
    assert plugin["spec"]["pluginConfig"]["apiRules"] == [apirule]


def test_wasmplugin_config_loads_in_envoy(tmp_path):
    """Envoy --mode validate really instantiates the filter and runs its on_configure."""
    assert WASM.exists(), f"{WASM} missing: run `make wasm` first"
    assert ENVOY.exists(), f"{ENVOY} missing: run `make envoy` first"
    plugin = yaml.safe_load((REPO / "istio" / "wasmplugin.yaml").read_text())
    config = plugin["spec"]["pluginConfig"]

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
                                                             "code": {"local": {"filename": str(WASM)}}}}}},
                                {"name": "envoy.filters.http.router", "typed_config": {
                                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}}]}],
                }],
            },
        }
        path = tmp_path / "validate.json"
        path.write_text(json.dumps(bootstrap))
        return subprocess.run([str(ENVOY), "--mode", "validate", "-c", str(path), "--disable-hot-restart"],
                              capture_output=True, text=True, timeout=60)

    ok = validate(config)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    broken = json.loads(json.dumps(config))
    broken["apiRules"][0]["spec"]["rules"][0]["path"] = "/(unclosed"
    refused = validate(broken)
    assert refused.returncode != 0
    assert "APIRule default/httpbin: spec.rules[0].path: is not a valid regex" in refused.stdout + refused.stderr
