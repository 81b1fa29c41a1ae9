"""The Kyma tutorial "Expose and secure a workload with JWT", end to end, on the `make run` stack.

The stack is started by run/stack.py's start_stack() (the function `make run` calls) from the same
APIRule files (run/apirules/*.yaml): a real OIDC provider (oidc-provider on Node), httpbin, the
tutorial's Function, and Envoy running the compiled filter. The tests follow the tutorial with a
real HTTP client: discovery -> token endpoint (client_credentials, HTTP Basic) -> calls through
Envoy. They also run the commands `make run` prints, run `run/stack.py` itself as `make run` does
(port variables, Ctrl-C/SIGTERM), and check the envoy/ examples and docker-compose file.

A missing tool (node, npm packages, envoy, the .wasm, curl) is a failure, never a
skip.
"""
import base64
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import jwt as pyjwt
import pytest
import requests
import yaml

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from run import stack as runstack  # noqa: E402
from tools.stack.procs import StartupError, port_in_use  # noqa: E402

TIMEOUT = 10


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    try:
        s = runstack.start_stack(runstack.Ports.free(), workdir=tmp_path_factory.mktemp("tutorial"))
    except StartupError as e:
        pytest.fail(f"the tutorial stack did not start: {e}", pytrace=False)
    yield s
    s.stop()


@pytest.fixture(autouse=True)
def _stack_logs_on_failure(request):
    """When a test fails, show the end of every log of the module's stack."""
    yield
    rep = getattr(request.node, "rep_call", None)
    if rep is None or not rep.failed or "stack" not in request.fixturenames:
        return
    s = request.getfixturevalue("stack")
    for name, proc in s.procs.items():
        print(f"\n----- {name} ({proc.log_path}), last lines -----\n{proc.log_tail(30)}")


# -- the tutorial with a real HTTP client ----------------------------------------------------------

def discover(stack):
    """Tutorial "Get a JWT", step 3: token_endpoint and jwks_uri from discovery."""
    r = requests.get(stack.discovery_url, timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    return r.json()


def get_token(stack, **form):
    """Tutorial "Get a JWT", step 4: client_credentials with HTTP Basic client authentication."""
    token_endpoint = discover(stack)["token_endpoint"]
    encoded = base64.b64encode(f"{stack.client_id}:{stack.client_secret}".encode()).decode()
    r = requests.post(
        token_endpoint,
        data={"grant_type": "client_credentials", "client_id": stack.client_id, **form},
        headers={"Content-Type": "application/x-www-form-urlencoded", "Authorization": f"Basic {encoded}"},
        timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "Bearer"
    return body["access_token"]


@pytest.fixture(scope="module")
def token(stack):
    return get_token(stack)


def call(stack, workload, path, token=None, method="GET", host=None):
    """A request through Envoy for <workload>.<domain>, sent as curl --resolve sends it (Host with
    the gateway's port, which Envoy strips)."""
    headers = {"Host": host or f"{stack.host(workload)}:{stack.ports.envoy}"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return requests.request(method, f"{stack.envoy_url}{path}", headers=headers, timeout=TIMEOUT)


def tamper_signature(token):
    head, payload, sig = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)))
    raw[len(raw) // 2] ^= 0x01
    return ".".join([head, payload, base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()])


def assert_denied(resp, status):
    assert resp.status_code == status, (resp.status_code, resp.headers, resp.text)


def test_discovery_matches_the_apirules(stack):
    d = discover(stack)
    assert d["issuer"] == stack.issuer
    assert "client_credentials" in d["grant_types_supported"]
    assert d["token_endpoint"].startswith(stack.issuer + "/")
    # The APIRules Envoy runs with carry the jwks_uri read from discovery (the tutorial's $JWKS_URI).
    for rule in stack.apirules:
        config = rule["spec"]["rules"][0]["accessStrategies"][0]["config"]
        assert config["jwks_urls"] == [d["jwks_uri"]]
        assert config["trusted_issuers"] == [d["issuer"]]
    # The envoy/*.yaml examples assume oidc-provider's jwks_uri path.
    assert d["jwks_uri"] == stack.issuer + runstack.JWKS_PATH


def test_provider_issues_rs256_jwt_access_tokens(stack, token):
    jwks = requests.get(discover(stack)["jwks_uri"], timeout=TIMEOUT).json()
    header = pyjwt.get_unverified_header(token)
    assert header["alg"] == "RS256" and header["kid"]
    key = pyjwt.PyJWKSet.from_dict(jwks)[header["kid"]]
    claims = pyjwt.decode(token, key.key, algorithms=["RS256"], audience=runstack.RESOURCE,
                          issuer=stack.issuer)
    assert claims["client_id"] == stack.client_id
    # scopes: granted when asked for, as `scope=read` in the Kyma docs
    scoped = pyjwt.decode(get_token(stack, scope="read write"), key.key, algorithms=["RS256"],
                          audience=runstack.RESOURCE)
    assert scoped["scope"] == "read write"


def test_httpbin_with_token_200_and_headers_reach_it_intact(stack, token):
    r = call(stack, "httpbin", "/headers", token)
    assert r.status_code == 200, r.text
    echoed = r.json()["headers"]
    assert echoed["Authorization"] == f"Bearer {token}"
    assert echoed["Host"] == stack.host("httpbin")  # the gateway's port stripped


def test_function_with_token_200(stack, token):
    r = call(stack, "function", "/function", token)
    assert r.status_code == 200, r.text
    assert r.text == "Hello World"


@pytest.mark.parametrize("workload,path", [("httpbin", "/headers"), ("function", "/function")])
def test_without_token_401(stack, workload, path):
    r = call(stack, workload, path)
    assert_denied(r, 401)
    assert r.json()["error"]["code"] == 401


@pytest.mark.parametrize("workload,path", [("httpbin", "/headers"), ("function", "/function")])
def test_altered_signature_401(stack, token, workload, path):
    bad = tamper_signature(token)
    assert bad != token
    assert_denied(call(stack, workload, path, bad), 401)


@pytest.mark.parametrize("workload,method,path", [
    ("httpbin", "POST", "/post"), ("httpbin", "DELETE", "/delete"), ("function", "POST", "/function")])
def test_method_not_in_the_apirule_404(stack, token, workload, method, path):
    assert_denied(call(stack, workload, path, token, method=method), 404)


def test_plain_host_header_and_unknown_host(stack, token):
    # `-H "Host: httpbin.local.kyma.dev"` works like --resolve ...
    assert call(stack, "httpbin", "/headers", token, host=stack.host("httpbin")).status_code == 200
    # ... and a host no APIRule exposes has no route at all (no way around the filter).
    r = call(stack, "httpbin", "/headers", token, host=f"other.{stack.domain}")
    assert_denied(r, 404)


# -- the commands `make run` prints ------------------------------------------------------------------

def test_printed_tutorial_commands(stack):
    """Run the printed steps in bash, as a user pasting them would, and check every status."""
    for tool in ("bash", "curl", "base64", "python3"):
        assert shutil.which(tool), f"{tool} is needed to run the printed tutorial commands"
    script = ["set -euo pipefail"]
    expected = {}
    for i, (comment, command, status) in enumerate(stack.tutorial_steps()):
        script += [f"printf '\\n@@step {i}\\n'", command]
        if status is not None:
            expected[i] = (comment, status)
    r = subprocess.run(["bash", "-c", "\n".join(script)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    outputs = dict(re.findall(r"^@@step (\d+)\n(.*?)(?=^@@step |\Z)", r.stdout, flags=re.S | re.M))
    assert '"access_token"' in outputs[str(next(i for i, s in enumerate(stack.tutorial_steps())
                                                 if s[0].startswith("4:")))]
    for i, (comment, status) in expected.items():
        m = re.search(r"^HTTP/[\d.]+ (\d{3})", outputs[str(i)], flags=re.M)
        assert m, f"{comment}: no HTTP status in\n{outputs[str(i)]}"
        assert int(m.group(1)) == status, f"{comment}:\n{outputs[str(i)]}"


# -- run/stack.py as `make run` runs it ----------------------------------------------------------

def _read_until(proc, marker, timeout, err_path):
    """Read proc.stdout (in a thread) until a line contains marker; return everything read."""
    lines = queue.Queue()

    def pump():
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    out = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.2)
        except queue.Empty:
            continue
        if line is None:
            break
        out.append(line)
        if marker in line:
            proc.rest_of_stdout = lines
            return "".join(out)
    raise AssertionError(f"no {marker!r} from run/stack.py; output:\n{''.join(out)}\n"
                         f"stderr:\n{Path(err_path).read_text()}")


def _drain(q):
    out = []
    while True:
        line = q.get(timeout=20)
        if line is None:
            return "".join(out)
        out.append(line)


def test_make_run_entrypoint_ports_from_env_and_sigterm(tmp_path):
    ports = runstack.Ports.free()
    env = dict(os.environ)
    env.update({var: str(getattr(ports, name)) for name, (var, _) in runstack.PORT_ENV.items()})
    env[runstack.STATE_ENV] = str(tmp_path / "state")
    argv = [sys.executable, str(REPO / "run" / "stack.py")]
    log = tmp_path / "stderr.log"
    with open(log, "w") as err:
        proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=err,
                                text=True, start_new_session=True)
    try:
        out = _read_until(proc, "Ready.", timeout=40, err_path=log)
        assert f"export GATEWAY_PORT={ports.envoy}" in out
        assert f"client_id={runstack.CLIENT_ID} client_secret={runstack.CLIENT_SECRET}" in out
        pids = {int(p) for p in re.findall(r"=(\d+)", re.search(r"^  pids +(.*)$", out, re.M).group(1))}
        assert len(pids) == 4, out
        assert sorted(p.name for p in (tmp_path / "state").glob("*.log")) == [
            "envoy.log", "function.log", "httpbin.log", "oidc.log"]

        # A second `make run` on the same ports: a clear message naming every variable, exit 1.
        second = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=30)
        assert second.returncode == 1
        for name, (var, _) in runstack.PORT_ENV.items():
            assert f"port {getattr(ports, name)} ({name}, {var}) is already in use" in second.stderr

        s = runstack.Stack(ports=ports, domain=runstack.DEFAULT_DOMAIN, workdir=tmp_path)
        s.apirules = runstack.load_apirules(domain=s.domain, jwks_uri="", issuer="")
        tok = get_token(s)
        assert call(s, "httpbin", "/headers", tok).status_code == 200
        assert call(s, "function", "/function").status_code == 401

        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
        rest = _drain(proc.rest_of_stdout)
        assert proc.returncode == 0, rest + log.read_text()
        assert "run: stopped" in rest
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    for pid in pids:
        assert not _pid_alive(pid), f"pid {pid} still running after SIGTERM"
    for name in runstack.PORT_ENV:
        assert not port_in_use(getattr(ports, name)), f"{name} port still open"


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie not yet reaped by its parent counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def test_bad_port_variable_is_named():
    with pytest.raises(StartupError, match="APIRULE_RUN_OIDC_PORT='http'"):
        runstack.Ports.from_env({"APIRULE_RUN_OIDC_PORT": "http"})
    assert runstack.Ports.from_env({}) == runstack.Ports(envoy=8080, admin=9901, oidc=3000, httpbin=8000,
                                                         function=8001)


def test_failed_component_fails_loudly_with_its_log_and_stops_the_others(tmp_path):
    fake = tmp_path / "envoy"
    fake.write_text("#!/bin/sh\necho 'fake envoy: cannot load the filter' >&2\nexit 3\n")
    fake.chmod(0o755)
    ports = runstack.Ports.free()
    with pytest.raises(StartupError) as err:
        runstack.start_stack(ports, workdir=tmp_path / "state", envoy_bin=fake, timeout=15)
    assert "envoy exited with 3" in str(err.value)
    assert "fake envoy: cannot load the filter" in str(err.value)
    for name in ("oidc", "httpbin", "function"):
        assert not port_in_use(getattr(ports, name)), f"{name} left running after the failure"


# -- envoy/ examples and docker-compose -------------------------------------------------------------

def test_envoy_examples_are_generated_from_the_apirules():
    for path, text in runstack.render_examples().items():
        assert path.read_text() == text, (
            f"{path.relative_to(REPO)} is out of date: run .venv/bin/python run/stack.py --write-examples")


def test_envoy_examples_load_the_filter(tmp_path):
    """`envoy --mode validate` loads the wasm and its configuration, as func-e/docker would."""
    envoy = runstack._default_envoy()
    assert envoy.exists(), f"{envoy} not found: run make envoy"
    assert runstack.WASM.exists(), f"{runstack.WASM} not found: run make wasm"
    local = subprocess.run([str(envoy), "--mode", "validate", "-c", str(runstack.EXAMPLE_LOCAL),
                            "--disable-hot-restart"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert local.returncode == 0, local.stdout + local.stderr
    # The compose variant, with the wasm where the container mounts it replaced by the local path.
    text = runstack.EXAMPLE_COMPOSE.read_text().replace("/etc/envoy/apirule_wasm.wasm", str(runstack.WASM))
    compose_cfg = tmp_path / "compose.yaml"
    compose_cfg.write_text(text)
    compose = subprocess.run([str(envoy), "--mode", "validate", "-c", str(compose_cfg), "--disable-hot-restart"],
                             cwd=REPO, capture_output=True, text=True, timeout=60)
    assert compose.returncode == 0, compose.stdout + compose.stderr


def test_docker_compose_file_is_pinned_like_make_run():
    """What the compose file runs is what `make run` runs. Its validity against the Compose
    specification is checked by `cargo test` (tests/compose_file.rs, the compose_spec crate)."""
    path = REPO / "envoy" / "docker-compose.yaml"
    doc = yaml.safe_load(path.read_text())
    services = doc["services"]
    envoy = services["envoy"]
    assert envoy["image"].startswith("envoyproxy/envoy:v1.40")
    mounts = {v.split(":")[1]: v.split(":")[0] for v in envoy["volumes"]}
    assert (path.parent / mounts["/etc/envoy/envoy.yaml"]).resolve() == runstack.EXAMPLE_COMPOSE
    assert (path.parent / mounts["/etc/envoy/apirule_wasm.wasm"]).resolve() == runstack.WASM
    # httpbin and gunicorn: the versions requirements-run.txt pins for `make run`.
    pins = dict(re.findall(r"^(httpbin|gunicorn)==(\S+)", (REPO / "requirements-run.txt").read_text(), re.M))
    assert set(pins) == {"httpbin", "gunicorn"}, pins
    command = " ".join(services["httpbin"]["command"])
    for pkg, version in pins.items():
        assert f"{pkg}=={version}" in command
    # The provider and the Function are the repository's own files.
    for svc, d in (("oidc", runstack.OIDC_DIR), ("function", runstack.FUNCTION_DIR)):
        src = services[svc]["volumes"][0].split(":")[0]
        assert (path.parent / src).resolve() == d
    assert services["oidc"]["environment"]["ISSUER"] == "http://127.0.0.1:3000"


def test_free_ports_are_distinct_and_free():
    p = runstack.Ports.free()
    values = [getattr(p, n) for n in runstack.PORT_ENV]
    assert len(set(values)) == len(values)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        taken = s.getsockname()[1]
        with pytest.raises(StartupError, match=rf"port {taken} \(envoy, APIRULE_RUN_ENVOY_PORT\) is already in use"):
            runstack.check_ports(runstack.Ports(envoy=taken, admin=p.admin, oidc=p.oidc, httpbin=p.httpbin,
                                                function=p.function))
