"""Istio's resource schemas, from PyPI's `cloudcoil-models-istio` (pydantic models generated from
Istio's CRDs, pinned in requirements-test.txt), so nothing outside the repository is read.

Validation is stricter than the API server's: a field the schema does not know is an error here,
where Kubernetes would silently prune it. Used for the manifests in istio/ and for the resources
the APIRule v2 peer (tests/e2e/peer) writes as Kyma's controller would.
"""
import importlib
import inspect
import pkgutil

import cloudcoil.models.istio


def _istio_models():
    """(apiVersion, kind) -> model class, for every resource the package ships."""
    found = {}
    root = cloudcoil.models.istio
    for mod in pkgutil.walk_packages(root.__path__, root.__name__ + "."):
        module = importlib.import_module(mod.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            fields = getattr(cls, "model_fields", {})
            if cls.__module__ == module.__name__ and "api_version" in fields and "kind" in fields:
                found[(fields["api_version"].default, fields["kind"].default)] = cls
    return found


MODELS = _istio_models()


def _dropped(given, kept, path="$"):
    """Paths of what validation dropped from `given` (fields the schema does not know)."""
    if isinstance(given, dict) and isinstance(kept, dict):
        out = []
        for key, value in given.items():
            if key not in kept:
                out.append(f"{path}.{key}")
            else:
                out += _dropped(value, kept[key], f"{path}.{key}")
        return out
    if isinstance(given, list) and isinstance(kept, list) and len(given) == len(kept):
        return [p for i, (g, k) in enumerate(zip(given, kept)) for p in _dropped(g, k, f"{path}[{i}]")]
    return [] if given == kept else [f"{path} (read as {kept!r})"]


def validate_istio(doc):
    """Raises pydantic.ValidationError for a wrong type or value, AssertionError for an unknown
    field. Returns the model."""
    key = (doc["apiVersion"], doc["kind"])
    assert key in MODELS, f"no Istio model for {key}: is it an Istio resource?"
    model = MODELS[key].model_validate(doc)
    kept = model.model_dump(mode="json", by_alias=True, exclude_unset=True)
    dropped = _dropped(doc, kept)
    assert not dropped, f"{doc['kind']} {doc['metadata']['name']}: not in Istio's schema: {dropped}"
    return model
