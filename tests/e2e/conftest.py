"""Shared fixtures for the end-to-end tests: a real Envoy (tools/stack) running the compiled filter,
an upstream recorder, a JWKS server the tests control, and signing keys.

Envoy instances are started per test module (one plugin configuration each, many scenarios per
configuration, each scenario on its own Host), so the whole suite stays within a few minutes.
"""
import os
import sys
import types

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
for p in (REPO, HERE):
    if p not in sys.path:
        sys.path.insert(0, p)

from harness import gateway as gw  # noqa: E402
from harness.servers import JwksServer, UpstreamRecorder  # noqa: E402
from harness.tokens import SigningKey  # noqa: E402


def pytest_sessionstart(session):
    """Refuse the whole run when the filter is missing or older than its sources: an end-to-end
    result about a stale .wasm is worthless."""
    problem = gw.check_artifacts()
    if problem:
        pytest.exit(problem, returncode=1)


@pytest.fixture(scope="session")
def artifacts():
    """The compiled filter and Envoy must exist: a missing one is a failure, never a skip."""
    problem = gw.check_artifacts()
    if problem:
        pytest.fail(problem, pytrace=False)
    return types.SimpleNamespace(wasm=gw.WASM, envoy=gw.ENVOY)


@pytest.fixture(scope="session")
def recorder():
    rec = UpstreamRecorder().start()
    yield rec
    rec.stop()


@pytest.fixture(scope="session")
def jwks_server():
    srv = JwksServer().start()
    yield srv
    srv.close()


@pytest.fixture(scope="session")
def keys():
    """Signing keys shared by all tests (RSA generation is the slow part)."""
    return types.SimpleNamespace(
        rsa=SigningKey.rsa("rsa-1"),
        rsa2=SigningKey.rsa("rsa-2"),
        rsa_other=SigningKey.rsa("rsa-1"),  # same kid as `rsa`, different key: forged tokens
        ec=SigningKey.ec("ec-1"),
        ec384=SigningKey.ec("ec-384", curve="P-384"),
        ec521=SigningKey.ec("ec-521", curve="P-521"),
        oct=SigningKey.oct("oct-1"),
        ed25519=SigningKey.ed25519("ed-1"),
    )


@pytest.fixture(scope="session")
def launcher(artifacts, recorder, jwks_server, tmp_path_factory):
    """launcher(plugin_config, name=..., clusters=...) -> running Gateway (stopped by the caller's
    fixture, and in any case at the end of the session). The JWKS server is the `jwks` cluster."""
    workdir = tmp_path_factory.mktemp("envoy")

    def launch(plugin_config, *, name="envoy", clusters=None, concurrency=2):
        all_clusters = {"jwks": jwks_server.address}
        all_clusters.update(clusters or {})
        return gw.start_gateway(plugin_config, recorder=recorder, workdir=workdir,
                                clusters=all_clusters, name=name, concurrency=concurrency)

    launch.workdir = workdir
    yield launch
    while gw.RUNNING:
        gw.RUNNING[-1].stop()


@pytest.fixture(scope="session")
def refusal(artifacts, recorder, jwks_server, tmp_path_factory):
    """refusal(plugin_config, name) -> Refusal(log, ...); fails the test if Envoy starts."""
    workdir = tmp_path_factory.mktemp("refused")
    counter = [0]

    def run(plugin_config, name="refused", clusters=None):
        counter[0] += 1
        all_clusters = {"jwks": jwks_server.address}
        all_clusters.update(clusters or {})
        return gw.start_expect_refusal(plugin_config, recorder=recorder, workdir=workdir,
                                       clusters=all_clusters, name=f"{name}-{counter[0]}")

    return run


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture(autouse=True)
def _envoy_log_on_failure(request):
    """When a test fails, print what the running Envoys logged during it."""
    offsets = {}
    for g in list(gw.RUNNING):
        try:
            offsets[g] = os.path.getsize(g.log_path)
        except OSError:
            pass
    yield
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        for g, off in offsets.items():
            try:
                with open(g.log_path, errors="replace") as f:
                    f.seek(off)
                    text = f.read()
            except OSError:
                continue
            lines = text.splitlines()[-60:]
            print(f"\n----- {g.log_path} (during this test, last {len(lines)} lines) -----")
            print("\n".join(lines))
