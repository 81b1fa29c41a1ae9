"""Packaging for Istio (`make oci`, tools/oci_image.py): the OCI image Istio's WasmPlugin pulls, pushed
to a real registry and read back, and the .wasm loaded by Envoy from an HTTP source with its sha256.

The registry is Debian's `docker-registry` (the CNCF distribution registry) and the client is
`skopeo`, both installed by `make oci-tools` (part of `make test-e2e`). What Istio accepts is
modelled by istio_wasm() below, a port of the checks of Istio's image fetcher
(istio/istio pkg/wasm/imagefetcher.go): there is no Istio here.
"""
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from harness import apirules as A
from harness import gateway as gw
from harness import tokens as T
from harness.checks import assert_401
from tools.stack.envoy import render_bootstrap, start_envoy
from tools.stack.procs import Proc, StartupError, free_port

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
HOST = "api.example.com"
KEYS = "/oci-keys"


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def istio_wasm(manifest, blob):
    """The module Istio's ImageFetcher.PrepareFetch takes from an image (manifest: its bytes; blob:
    digest -> bytes), or AssertionError saying why Istio would refuse it. Istio: a Docker v2
    manifest needs its last layer to be a Docker tar+gzip layer; any other manifest is tried as the
    compat variant (last layer an OCI tar+gzip layer), then as the artifact variant, which needs
    exactly two layers and is not what we build. From the layer it takes the first tar member whose
    base name is plugin.wasm."""
    m = json.loads(manifest)
    layers = m.get("layers") or []
    assert layers, "Istio: number of layers must be greater than zero"
    want = DOCKER_LAYER if m.get("mediaType") == DOCKER_MANIFEST else OCI_LAYER
    last = layers[-1]
    assert last["mediaType"] == want, f"Istio: invalid media type {last['mediaType']} (expect {want})"
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob(last["digest"]))), mode="r:") as tar:
        for member in tar:
            if os.path.basename(member.name) == "plugin.wasm":
                return tar.extractfile(member).read()
    raise AssertionError("Istio: plugin.wasm not found in the archive")


def make_image(wasm_path, out, tag):
    """Run the tool as `make oci` does; returns (its output, the layout's manifest bytes, blob reader)."""
    r = subprocess.run(["python3", os.path.join(gw.REPO, "tools", "oci_image.py"), "--wasm", str(wasm_path),
                        "--out", str(out), "--tag", tag], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout, Layout(out)


class Layout:
    """An OCI image layout directory, read as the spec says (index.json -> manifest -> blobs)."""

    def __init__(self, path):
        self.path = path
        with open(os.path.join(path, "oci-layout")) as f:
            assert json.load(f) == {"imageLayoutVersion": "1.0.0"}
        with open(os.path.join(path, "index.json")) as f:
            self.index = json.load(f)
        [self.entry] = self.index["manifests"]
        self.manifest = self.blob(self.entry["digest"])
        assert self.entry["mediaType"] == OCI_MANIFEST and self.entry["size"] == len(self.manifest)

    def blob(self, digest):
        algo, hexdigest = digest.split(":")
        with open(os.path.join(self.path, "blobs", algo, hexdigest), "rb") as f:
            data = f.read()
        assert sha256(data) == hexdigest, f"blob {digest} does not hash to its name"
        return data

    def blobs(self):
        folder = os.path.join(self.path, "blobs", "sha256")
        return {name: self.blob("sha256:" + name) for name in sorted(os.listdir(folder))}


def printed(output, label):
    m = re.search(rf"^{re.escape(label)}\s+(\S+)", output, re.M)
    assert m, f"`make oci` output has no {label!r} line:\n{output}"
    return m.group(1)


@pytest.fixture(scope="module")
def wasm(artifacts):
    with open(artifacts.wasm, "rb") as f:
        return f.read()


def test_the_image_is_one_plugin_wasm_layer_istio_takes(artifacts, wasm, tmp_path):
    out, layout = make_image(artifacts.wasm, tmp_path / "img", "0.1.0")
    assert layout.entry["annotations"] == {"org.opencontainers.image.ref.name": "0.1.0"}
    manifest = json.loads(layout.manifest)
    assert manifest["schemaVersion"] == 2 and manifest["mediaType"] == OCI_MANIFEST
    assert [layer["mediaType"] for layer in manifest["layers"]] == [OCI_LAYER]
    assert manifest["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    for d in [manifest["config"], *manifest["layers"]]:
        assert len(layout.blob(d["digest"])) == d["size"], d
    # The config names the uncompressed layer, as the image spec requires of every image.
    config = json.loads(layout.blob(manifest["config"]["digest"]))
    tar = gzip.decompress(layout.blob(manifest["layers"][0]["digest"]))
    assert config["rootfs"] == {"type": "layers", "diff_ids": ["sha256:" + sha256(tar)]}
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        assert [(m.name, m.isfile(), m.size) for m in t.getmembers()] == [("plugin.wasm", True, len(wasm))]
    assert istio_wasm(layout.manifest, layout.blob) == wasm
    # What it prints: the manifest's digest (what Istio compares `sha256` with for oci://) and the
    # .wasm's own sha256 (for http(s)://), each said to be which.
    assert printed(out, "image digest (manifest):") == "sha256:" + sha256(layout.manifest)
    assert printed(out, ".wasm sha256:") == sha256(wasm)
    assert f"oci://REGISTRY/apirule-wasm:0.1.0        sha256: {sha256(layout.manifest)}" in out
    assert f"https://HOST/apirule_wasm.wasm             sha256: {sha256(wasm)}" in out


def test_the_digest_depends_on_the_wasm_only(artifacts, wasm, tmp_path):
    _, first = make_image(artifacts.wasm, tmp_path / "a", "0.1.0")
    _, again = make_image(artifacts.wasm, tmp_path / "b", "other-tag")
    assert first.blobs() == again.blobs()  # the tag lives in index.json only
    changed = tmp_path / "changed.wasm"
    changed.write_bytes(wasm[:-1] + bytes([wasm[-1] ^ 1]))
    _, other = make_image(changed, tmp_path / "c", "0.1.0")
    assert other.entry["digest"] != first.entry["digest"]
    assert istio_wasm(other.manifest, other.blob) == changed.read_bytes()


def test_a_rebuild_replaces_the_old_layout_and_nothing_else(artifacts, tmp_path):
    out = tmp_path / "img"
    _, first = make_image(artifacts.wasm, out, "0.1.0")
    stale = out / "blobs" / "sha256" / ("0" * 64)
    stale.write_bytes(b"left over from an older build")
    make_image(artifacts.wasm, out, "0.1.0")
    assert not stale.exists()
    other = tmp_path / "not-a-layout"
    other.mkdir()
    (other / "keep").write_text("mine")
    r = subprocess.run(["python3", os.path.join(gw.REPO, "tools", "oci_image.py"), "--wasm", str(artifacts.wasm),
                        "--out", str(other), "--tag", "0.1.0"], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "not an OCI image layout" in r.stderr
    assert (other / "keep").read_text() == "mine"


# ---------------------------------------------------------------------------------------------
# A real registry: push with `make oci-push` (skopeo), read back with skopeo and the registry API.


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """docker-registry on 127.0.0.1:<free port>, plain http, storage in a temp folder."""
    for tool in ("skopeo", "docker-registry"):
        assert shutil.which(tool), f"{tool} is missing: run `make oci-tools` (Debian packages skopeo, docker-registry)"
    work = tmp_path_factory.mktemp("registry")
    last = None
    for attempt in range(3):  # a port taken between free_port() and the bind: try another
        port = free_port()
        config = work / f"config-{attempt}.yml"
        config.write_text(f"version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n"
                          f"    rootdirectory: {work / 'data'}\nhttp:\n  addr: 127.0.0.1:{port}\n")
        proc = Proc("registry", ["docker-registry", "serve", str(config)], work / f"registry-{attempt}.log")
        try:
            proc.wait_http(f"http://127.0.0.1:{port}/v2/", timeout=30, ok=lambda s: s == 200)
        except StartupError as e:
            proc.stop()
            last = e
            continue
        try:
            yield f"127.0.0.1:{port}"
        finally:
            proc.stop()
        return
    raise last


def skopeo(*args):
    r = subprocess.run(["skopeo", *args], capture_output=True, timeout=120)
    assert r.returncode == 0, (r.stdout + r.stderr).decode(errors="replace")
    return r.stdout


def registry_get(url, accept=None):
    req = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.read(), resp.headers


def test_pushed_image_reads_back_byte_for_byte(artifacts, wasm, registry, tmp_path):
    layout_dir = tmp_path / "img"
    repo = f"{registry}/apirule-wasm"
    r = subprocess.run(["make", "--no-print-directory", "oci-push", f"OCI_DIR={layout_dir}", f"REGISTRY={repo}",
                        "TAG=e2e", "SKOPEO_FLAGS=--dest-tls-verify=false"],
                       cwd=gw.REPO, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    layout = Layout(layout_dir)
    digest = layout.entry["digest"]
    assert printed(r.stdout, "image digest (manifest):") == digest

    raw = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{repo}:e2e")
    assert raw == layout.manifest  # pushed as built: the digest Istio sees is the one printed
    info = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{repo}:e2e"))
    assert info["Digest"] == digest
    assert info["Layers"] == [d["digest"] for d in json.loads(raw)["layers"]]
    [layer] = json.loads(raw)["layers"]
    assert layer["mediaType"] == OCI_LAYER

    # The registry's own API, as Istio's fetcher talks to it: by tag and by digest (url @sha256:).
    base = f"http://{registry}/v2/apirule-wasm"
    for ref in ("e2e", digest):
        body, headers = registry_get(f"{base}/manifests/{ref}", accept=OCI_MANIFEST)
        assert body == layout.manifest and headers["Docker-Content-Digest"] == digest
        assert headers["Content-Type"] == OCI_MANIFEST

    def blob(d):
        return registry_get(f"{base}/blobs/{d}")[0]

    assert blob(layer["digest"]) == layout.blob(layer["digest"])
    assert istio_wasm(raw, blob) == wasm

    # And skopeo's own copy back out of the registry holds the same layer.
    back = tmp_path / "back"
    skopeo("copy", "--src-tls-verify=false", f"docker://{repo}:e2e", f"dir:{back}")
    assert (back / layer["digest"].split(":")[1]).read_bytes() == layout.blob(layer["digest"])


# ---------------------------------------------------------------------------------------------
# Envoy loading the .wasm from http with its sha256 (vm_config.code.remote), as for a WasmPlugin
# `url: https://...`: Envoy checks the body's sha256 itself (source/common/config/remote_data_fetcher.cc).


class WasmServer:
    """A stdlib HTTP server with one file, counting the GETs per path."""

    def __init__(self, files):
        self.files = files
        self.hits = {}
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                owner.hits[self.path] = owner.hits.get(self.path, 0) + 1
                body = owner.files.get(self.path)
                self.send_response(200 if body is not None else 404)
                body = body if body is not None else b"not found"
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def wasm_server(wasm):
    srv = WasmServer({"/apirule_wasm.wasm": wasm})
    yield srv
    srv.stop()


def start_remote(*, name, sha, path, wasm_server, recorder, jwks_server, workdir):
    """Envoy with the harness's bootstrap, its wasm filter's code taken over http instead of a file."""
    rules = [A.apirule("oci", HOST, A.rule("/open", ["GET"], A.strategy("no_auth")),
                       A.rule("/secure", ["GET"], A.jwt((KEYS,))))]
    listen_port, admin_port = free_port(), free_port()
    boot = render_bootstrap(listen_port=listen_port, admin_port=admin_port, wasm_path="unused",
                            plugin_config=A.plugin_config(rules, jwks_paths=[KEYS]), upstream=recorder.address,
                            clusters={"jwks": jwks_server.address, "wasm_http": ("127.0.0.1", wasm_server.port)})
    hcm = boot["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    [wasm_filter] = [f for f in hcm["http_filters"] if f["name"] == "envoy.filters.http.wasm"]
    vm = wasm_filter["typed_config"]["config"]["vm_config"]
    assert wasm_filter["typed_config"]["config"]["fail_open"] is False
    # Istio's http(s) data source (pilot/pkg/model/extensions.go buildDataSource): no retry_policy,
    # so Envoy's default of one retry applies.
    vm["code"] = {"remote": {"http_uri": {"uri": f"http://127.0.0.1:{wasm_server.port}{path}",
                                          "cluster": "wasm_http", "timeout": "10s"},
                             "sha256": sha}}
    proc = start_envoy(envoy_bin=gw.ENVOY, bootstrap=boot, workdir=workdir, name=name, timeout=90)
    g = gw.Gateway(proc, listen_port, admin_port, recorder, os.path.join(str(workdir), f"{name}.log"))
    gw.RUNNING.append(g)
    return g


def test_envoy_runs_the_filter_fetched_over_http_with_its_sha256(artifacts, wasm, wasm_server, recorder,
                                                                   jwks_server, keys, tmp_path):
    jwks_server.serve(KEYS, T.jwks(keys.rsa.jwk()))
    g = start_remote(name="remote-ok", sha=sha256(wasm), path="/apirule_wasm.wasm", wasm_server=wasm_server,
                     recorder=recorder, jwks_server=jwks_server, workdir=tmp_path)
    try:
        # Fetched once, before the listener took traffic (the fetch holds Envoy's init).
        assert wasm_server.hits == {"/apirule_wasm.wasm": 1}
        r = g.get("/open", host=HOST)
        assert r.status == 200 and r.seen["path"] == "/open", r
        assert_401(g.get("/secure", host=HOST), token_presented=False)
        r = g.get("/secure", host=HOST, token=T.mint(keys.rsa, T.std_claims()))
        assert r.status == 200 and r.seen["path"] == "/secure", r
        assert g.counter("apirule_requests_allowed") >= 2
        assert wasm_server.hits == {"/apirule_wasm.wasm": 1}
    finally:
        g.stop()


@pytest.mark.parametrize("case", ["image digest as sha256", "file missing"])
def test_envoy_fails_closed_when_the_fetched_code_is_not_the_module(artifacts, wasm, wasm_server, recorder,
                                                                     jwks_server, case, tmp_path):
    """A wrong sha256 (here the image digest, the easy mistake with an https:// url) or a failed
    fetch: Envoy retries once (the default retry_policy), gives up, starts anyway
    (RemoteAsyncDataProvider lets init continue), and the plugin, with fail_open false, answers
    every request with 503: nothing passes unfiltered, governed host or not."""
    _, layout = make_image(artifacts.wasm, tmp_path / "img", "0.1.0")
    if case == "file missing":
        sha, path = sha256(wasm), "/missing.wasm"
    else:
        sha, path = layout.entry["digest"].split(":")[1], "/apirule_wasm.wasm"
    g = start_remote(name="remote-bad", sha=sha, path=path, wasm_server=wasm_server, recorder=recorder,
                     jwks_server=jwks_server, workdir=tmp_path)
    try:
        assert wasm_server.hits == {path: 2}, "expected the first fetch and one retry before Envoy went live"
        for p, host in [("/open", HOST), ("/secure", HOST), ("/headers", "not-governed.example.com")]:
            r = g.get(p, host=host)
            assert r.status == 503 and not r.reached_upstream, r
        log = g.log_text()
        assert "Plugin apirule failed to load" in log and "Plugin configured to fail closed failed to load" in log
        assert wasm_server.hits == {path: 2}
    finally:
        g.stop()
