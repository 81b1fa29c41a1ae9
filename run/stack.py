#!/usr/bin/env python3
"""`make run`: the Kyma tutorial "Expose and secure a workload with JWT", replayed on loopback.

Starts, each as a child process with its log in run/.state/ (tests pass their own directory):

  oidc      a real OIDC provider (run/oidc/server.mjs, oidc-provider from npm): discovery,
            client_credentials -> RS256 JWT access tokens, jwks_uri
  httpbin   the tutorial's httpbin workload (gunicorn httpbin:app)
  function  the tutorial's Function (run/function/handler.js in a tiny Node.js runtime)
  envoy     Envoy with apirule_wasm.wasm, configured from run/apirules/*.yaml (the tutorial's two
            APIRules) and routing httpbin.<domain> / function-example.<domain> to the workloads

then prints the tutorial's commands adapted to the local stack and runs until Ctrl-C or SIGTERM,
when it stops every process it started, by pid. The end-to-end test (tests/e2e/test_tutorial.py)
imports start_stack() from here, so what is tested is what `make run` runs.

Ports (environment): APIRULE_RUN_ENVOY_PORT 8080, APIRULE_RUN_ENVOY_ADMIN_PORT 9901,
APIRULE_RUN_OIDC_PORT 3000, APIRULE_RUN_HTTPBIN_PORT 8000, APIRULE_RUN_FUNCTION_PORT 8001.
Domain: APIRULE_RUN_DOMAIN (local.kyma.dev). Logs: APIRULE_RUN_STATE_DIR (run/.state). Reach the workloads with
`curl --resolve httpbin.local.kyma.dev:8080:127.0.0.1 http://httpbin.local.kyma.dev:8080/...`
or with a `Host: httpbin.local.kyma.dev` header on http://127.0.0.1:8080.

Other modes:
  --no-envoy        start the OIDC provider and the workloads only, for an Envoy you run yourself
                    (func-e run -c envoy/tutorial-local.yaml)
  --write-examples  regenerate envoy/tutorial-local.yaml and envoy/tutorial-compose.yaml
"""
import argparse
import dataclasses
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import yaml  # noqa: E402  (PyYAML, from requirements-test.txt)

from tools.stack.envoy import render_bootstrap, start_envoy  # noqa: E402
from tools.stack.procs import Proc, StartupError, free_port, port_in_use  # noqa: E402

RUN_DIR = REPO / "run"
STATE_DIR = RUN_DIR / ".state"
OIDC_DIR = RUN_DIR / "oidc"
FUNCTION_DIR = RUN_DIR / "function"
APIRULE_FILES = (RUN_DIR / "apirules" / "httpbin.yaml", RUN_DIR / "apirules" / "function.yaml")
WASM = REPO / "target" / "wasm32-wasip1" / "release" / "apirule_wasm.wasm"
WASM_REL = WASM.relative_to(REPO).as_posix()
EXAMPLE_LOCAL = REPO / "envoy" / "tutorial-local.yaml"
EXAMPLE_COMPOSE = REPO / "envoy" / "tutorial-compose.yaml"

DEFAULT_DOMAIN = "local.kyma.dev"
NAMESPACE = "default"
# The pre-registered confidential client of run/oidc/server.mjs (the tutorial's "application").
CLIENT_ID = "kyma-tutorial"
CLIENT_SECRET = "tutorial-secret"
# The resource server the provider issues JWT access tokens for (the tokens' "aud").
RESOURCE = "https://local.kyma.dev"
# oidc-provider's default jwks_uri path; used only where no provider runs (--write-examples).
JWKS_PATH = "/jwks"
# Envoy cluster that the plugin's jwks.clusters sends JWKS fetches to.
OIDC_CLUSTER = "oidc"

# component -> (environment variable, default port)
PORT_ENV = {
    "envoy": ("APIRULE_RUN_ENVOY_PORT", 8080),
    "admin": ("APIRULE_RUN_ENVOY_ADMIN_PORT", 9901),
    "oidc": ("APIRULE_RUN_OIDC_PORT", 3000),
    "httpbin": ("APIRULE_RUN_HTTPBIN_PORT", 8000),
    "function": ("APIRULE_RUN_FUNCTION_PORT", 8001),
}
DOMAIN_ENV = "APIRULE_RUN_DOMAIN"
STATE_ENV = "APIRULE_RUN_STATE_DIR"  # logs and Envoy's bootstrap; default run/.state


@dataclasses.dataclass(frozen=True)
class Ports:
    envoy: int
    admin: int
    oidc: int
    httpbin: int
    function: int

    @classmethod
    def from_env(cls, env=None):
        """Ports from APIRULE_RUN_*_PORT, defaults for the unset ones; a bad value names its variable."""
        env = os.environ if env is None else env
        values = {}
        for name, (var, default) in PORT_ENV.items():
            raw = env.get(var, "").strip()
            if not raw:
                values[name] = default
                continue
            if not raw.isdigit() or not 1 <= int(raw) <= 65535:
                raise StartupError(f"{var}={raw!r} is not a port number (1-65535)")
            values[name] = int(raw)
        return cls(**values)

    @classmethod
    def free(cls):
        """Distinct ports the OS says are free now (for tests that run beside other stacks)."""
        while True:
            ports = [free_port() for _ in PORT_ENV]
            if len(set(ports)) == len(ports):
                return cls(*ports)


def check_ports(ports, components=tuple(PORT_ENV)):
    """Refuse duplicates and ports something already listens on, naming the variable to change."""
    problems = []
    seen = {}
    for name in components:
        port = getattr(ports, name)
        var = PORT_ENV[name][0]
        if port in seen:
            problems.append(f"port {port} is given to both {seen[port]} and {var}")
            continue
        seen[port] = var
        if port_in_use(port):
            problems.append(
                f"port {port} ({name}, {var}) is already in use on 127.0.0.1: stop what listens "
                f"there (ss -ltnp 'sport = :{port}') or choose another port, e.g. "
                f"{var}={port + 10000 if port < 55536 else port - 10000} make run")
    if problems:
        raise StartupError("cannot start the local stack:\n  " + "\n  ".join(problems))


_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def substitute(text, values, source="<text>"):
    """Replace ${NAME} with values[NAME]; an unknown NAME is an error (never left in silently)."""
    def repl(m):
        if m.group(1) not in values:
            raise StartupError(f"{source}: no value for ${{{m.group(1)}}} (known: {', '.join(sorted(values))})")
        return values[m.group(1)]
    return _PLACEHOLDER.sub(repl, text)


def load_apirules(*, domain, jwks_uri, issuer, files=APIRULE_FILES):
    """The tutorial's APIRule files with their shell variables filled in, as dicts."""
    values = {"NAMESPACE": NAMESPACE, "DOMAIN_TO_EXPOSE_WORKLOADS": domain,
              "JWKS_URI": jwks_uri, "ISSUER": issuer}
    rules = []
    for path in files:
        doc = yaml.safe_load(substitute(Path(path).read_text(), values, source=str(path)))
        if not isinstance(doc, dict) or doc.get("kind") != "APIRule":
            raise StartupError(f"{path}: not an APIRule")
        rules.append(doc)
    return rules


def apirule_host(rule):
    """spec.service.host (v1alpha1) or spec.host (v1beta1)."""
    spec = rule["spec"]
    return spec.get("host") or spec["service"]["host"]


def plugin_config(apirules, jwks_uri):
    return {"apiRules": apirules, "jwks": {"clusters": {jwks_uri: OIDC_CLUSTER}}}


def build_bootstrap(*, apirules, jwks_uri, listen_port, admin_port, wasm_path, addresses,
                    listen_address="127.0.0.1"):
    """The Envoy bootstrap of the tutorial stack.

    addresses: {"oidc": (host, port), "<spec.service.name>": (host, port), ...}. Each APIRule's
    host is a virtual host routed to the cluster named like its spec.service.name (Kyma's
    VirtualService); any other host gets Envoy's 404. The port is stripped from Host, so
    `httpbin.local.kyma.dev:8080` is seen as `httpbin.local.kyma.dev`, as on a gateway on 443.
    """
    vhosts = []
    for rule in apirules:
        host = apirule_host(rule)
        service = rule["spec"]["service"]["name"]
        if service not in addresses:
            raise StartupError(f"APIRule {rule['metadata']['name']}: no local workload for service {service!r}")
        vhosts.append(([host, f"{host}:*"], service))
    return render_bootstrap(
        listen_port=listen_port, admin_port=admin_port, wasm_path=wasm_path,
        plugin_config=plugin_config(apirules, jwks_uri), upstream=None,
        clusters=dict(addresses), virtual_hosts=vhosts, listen_address=listen_address,
        strip_host_port=True)


def _node():
    node = shutil.which("node")
    if not node:
        raise StartupError("node not found on PATH: the OIDC provider and the Function need Node.js 20 or later")
    out = subprocess.run([node, "--version"], capture_output=True, text=True, check=False).stdout.strip()
    m = re.match(r"v(\d+)\.", out)
    if not m or int(m.group(1)) < 20:
        raise StartupError(f"{node} is {out or 'of unknown version'}; Node.js 20 or later is needed")
    return node


def _default_envoy():
    beside = Path(sys.executable).parent / "envoy"
    return beside if beside.exists() else REPO / ".venv" / "bin" / "envoy"


def _get_json(url):
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.load(resp)


class Stack:
    """A running local stack: ports, URLs, the processes, and stop()."""

    def __init__(self, *, ports, domain, workdir):
        self.ports = ports
        self.domain = domain
        self.workdir = Path(workdir)
        self.client_id = CLIENT_ID
        self.client_secret = CLIENT_SECRET
        self.procs = {}  # name -> Proc, in start order
        self.issuer = f"http://127.0.0.1:{ports.oidc}"
        self.discovery_url = f"{self.issuer}/.well-known/openid-configuration"
        self.token_endpoint = None
        self.jwks_uri = None
        self.apirules = []

    # -- addresses --------------------------------------------------------------------------
    @property
    def envoy_url(self):
        return f"http://127.0.0.1:{self.ports.envoy}"

    def host(self, workload):
        """httpbin -> httpbin.<domain>, function -> function-example.<domain> (from the APIRules)."""
        for rule in self.apirules:
            if rule["spec"]["service"]["name"] == workload:
                return apirule_host(rule)
        raise KeyError(workload)

    # -- processes ----------------------------------------------------------------------------
    def dead(self):
        return [p for p in self.procs.values() if not p.alive()]

    def stop(self):
        """Stop every process this stack started, by pid (process group), newest first."""
        for proc in reversed(list(self.procs.values())):
            proc.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    # -- the tutorial ---------------------------------------------------------------------------
    def tutorial_steps(self):
        """[(comment, shell command, expected HTTP status or None)], in the tutorial's order.

        Printed by `make run`; tests/e2e/test_tutorial.py runs them in bash and checks the statuses.
        """
        p = self.ports.envoy
        fld = "python3 -c 'import json,sys; print(json.load(sys.stdin)[\"{}\"])'"
        get_token = ('curl -X POST "$TOKEN_ENDPOINT" -d "grant_type=client_credentials" '
                     '-d "client_id=$CLIENT_ID" -H "Content-Type: application/x-www-form-urlencoded" '
                     '-H "Authorization: Basic $ENCODED_CREDENTIALS"')

        def call(workload, path, auth=True, method=None):
            host = f"{workload}.$DOMAIN_TO_EXPOSE_WORKLOADS"
            verb = f" -X {method}" if method else ""
            cmd = (f'curl -i{verb} --resolve "{host}:$GATEWAY_PORT:127.0.0.1" '
                   f'"http://{host}:$GATEWAY_PORT{path}"')
            return cmd + (' -H "Authorization: Bearer $ACCESS_TOKEN"' if auth else "")

        return [
            ("Get a JWT. 1: the client credentials of the provider's pre-registered application",
             f"export CLIENT_ID={self.client_id}\nexport CLIENT_SECRET={self.client_secret}", None),
            ("2: encode them",
             'export ENCODED_CREDENTIALS=$(echo -n "$CLIENT_ID:$CLIENT_SECRET" | base64)', None),
            ("3: token_endpoint and jwks_uri from the provider's discovery document",
             f"export OIDC_DISCOVERY_URL={self.discovery_url}\n"
             f'export TOKEN_ENDPOINT=$(curl -s "$OIDC_DISCOVERY_URL" | {fld.format("token_endpoint")})\n'
             f'export JWKS_URI=$(curl -s "$OIDC_DISCOVERY_URL" | {fld.format("jwks_uri")})\n'
             'echo "TOKEN_ENDPOINT=$TOKEN_ENDPOINT JWKS_URI=$JWKS_URI"', None),
            ("4: get the JWT access token", get_token, None),
            ("5: save it",
             f"export ACCESS_TOKEN=$({get_token.replace('curl ', 'curl -s ', 1)} | "
             f"{fld.format('access_token')})", None),
            ("Expose and secure: the APIRules of run/apirules/ are already applied; the gateway is "
             f"Envoy on 127.0.0.1:{p}",
             f"export DOMAIN_TO_EXPOSE_WORKLOADS={self.domain}\nexport GATEWAY_PORT={p}", None),
            ("HttpBin: call the secured service with the token (200)", call("httpbin", "/headers"), 200),
            ("HttpBin: without the token (401)", call("httpbin", "/headers", auth=False), 401),
            ("HttpBin: a method the APIRule does not list (404)",
             call("httpbin", "/post", method="POST"), 404),
            ("Function: call the secured Function with the token (200)",
             call("function-example", "/function"), 200),
            ("Function: without the token (401)", call("function-example", "/function", auth=False), 401),
        ]

    def tutorial_text(self):
        lines = []
        for comment, command, expect in self.tutorial_steps():
            lines.append(f"# {comment}")
            lines.append(command)
            lines.append("")
        return "\n".join(lines)

    def banner(self):
        rows = [
            ("envoy", f"{self.envoy_url} (admin http://127.0.0.1:{self.ports.admin})"),
            ("oidc", f"{self.issuer}  discovery {self.discovery_url}"),
            ("", f"client_id={self.client_id} client_secret={self.client_secret}"),
            ("httpbin", f"http://127.0.0.1:{self.ports.httpbin} -> http://{self.host('httpbin')}:{self.ports.envoy}"),
            ("function", f"http://127.0.0.1:{self.ports.function} -> "
                         f"http://{self.host('function')}:{self.ports.envoy}/function"),
            ("apirules", ", ".join(str(f.relative_to(REPO)) for f in APIRULE_FILES)
             + f"  (jwks_urls {self.jwks_uri}, trusted_issuers {self.issuer})"),
        ]
        if "envoy" not in self.procs:
            rows[0] = ("envoy", f"not started (--no-envoy): func-e run -c {EXAMPLE_LOCAL.relative_to(REPO)}")
        out = ["apirule-wasm local stack (the Kyma tutorial 'Expose and secure a workload with JWT')"]
        out += [f"  {k:<9} {v}" for k, v in rows]
        out.append("  pids      " + ", ".join(f"{n}={p.pid}" for n, p in self.procs.items()))
        out.append(f"  logs      {self.workdir}/{{{','.join(self.procs)}}}.log")
        return "\n".join(out)


def start_stack(ports=None, *, domain=None, workdir=None, wasm_path=WASM, envoy_bin=None,
                with_envoy=True, log=None, timeout=30.0):
    """Start the whole stack, wait until every component is healthy, return a Stack.

    On any failure everything already started is stopped and StartupError is raised, with the
    failing component's log tail. ports: Ports (default: from the environment); domain: default
    $APIRULE_RUN_DOMAIN or local.kyma.dev; workdir: logs and Envoy's bootstrap (default
    $APIRULE_RUN_STATE_DIR or run/.state)."""
    log = log or (lambda msg: None)
    ports = ports or Ports.from_env()
    domain = domain or os.environ.get(DOMAIN_ENV, "").strip() or DEFAULT_DOMAIN
    components = [n for n in PORT_ENV if with_envoy or n not in ("envoy", "admin")]
    check_ports(ports, components)

    node = _node()
    if not (OIDC_DIR / "node_modules" / "oidc-provider").is_dir():
        raise StartupError(f"{OIDC_DIR}/node_modules is missing: run `make deps` (npm ci in run/oidc)")
    for module in ("gunicorn", "httpbin"):
        if importlib.util.find_spec(module) is None:
            raise StartupError(f"{module} is not installed for {sys.executable}: run `make deps` "
                               "and start this with .venv/bin/python")
    if with_envoy:
        envoy_bin = Path(envoy_bin or _default_envoy())
        if not envoy_bin.exists():
            raise StartupError(f"{envoy_bin} not found: run `make envoy`")
        if not Path(wasm_path).exists():
            raise StartupError(f"{wasm_path} not found: run `make wasm`")

    workdir = Path(workdir or os.environ.get(STATE_ENV, "").strip() or STATE_DIR)
    workdir.mkdir(parents=True, exist_ok=True)
    stack = Stack(ports=ports, domain=domain, workdir=workdir)
    base_env = dict(os.environ)
    try:
        def spawn(name, argv, cwd=None, **env):
            proc = Proc(name, argv, workdir / f"{name}.log", env={**base_env, **env}, cwd=cwd)
            stack.procs[name] = proc
            log(f"started {name} (pid {proc.pid})")
            return proc

        oidc = spawn("oidc", [node, "server.mjs"], cwd=OIDC_DIR, HOST="127.0.0.1",
                     PORT=str(ports.oidc), ISSUER=stack.issuer, CLIENT_ID=CLIENT_ID,
                     CLIENT_SECRET=CLIENT_SECRET, RESOURCE=RESOURCE)
        httpbin = spawn("httpbin", [sys.executable, "-m", "gunicorn", "-b", f"127.0.0.1:{ports.httpbin}",
                                    "--access-logfile", "-", "--no-control-socket", "httpbin:app"])
        function = spawn("function", [node, "server.js"], cwd=FUNCTION_DIR, HOST="127.0.0.1",
                         PORT=str(ports.function))

        oidc.wait_http(stack.discovery_url, timeout=timeout, ok=lambda s: s == 200)
        httpbin.wait_http(f"http://127.0.0.1:{ports.httpbin}/get", timeout=timeout, ok=lambda s: s == 200)
        function.wait_http(f"http://127.0.0.1:{ports.function}/healthz", timeout=timeout, ok=lambda s: s == 200)
        log("oidc, httpbin and function are healthy")

        # As in the tutorial: token_endpoint and jwks_uri come from discovery.
        discovery = _get_json(stack.discovery_url)
        if discovery.get("issuer") != stack.issuer:
            raise StartupError(f"oidc: discovery issuer {discovery.get('issuer')!r}, expected {stack.issuer!r}")
        stack.token_endpoint = discovery["token_endpoint"]
        stack.jwks_uri = discovery["jwks_uri"]
        stack.apirules = load_apirules(domain=domain, jwks_uri=stack.jwks_uri, issuer=stack.issuer)

        if with_envoy:
            addresses = {OIDC_CLUSTER: ("127.0.0.1", ports.oidc), "httpbin": ("127.0.0.1", ports.httpbin),
                         "function": ("127.0.0.1", ports.function)}
            bootstrap = build_bootstrap(apirules=stack.apirules, jwks_uri=stack.jwks_uri,
                                        listen_port=ports.envoy, admin_port=ports.admin,
                                        wasm_path=Path(wasm_path).resolve(), addresses=addresses)
            stack.procs["envoy"] = start_envoy(envoy_bin=envoy_bin, bootstrap=bootstrap, workdir=workdir,
                                               name="envoy", timeout=timeout)
            log(f"started envoy (pid {stack.procs['envoy'].pid}), ready")
    except BaseException:
        stack.stop()
        raise
    return stack


# -- envoy/*.yaml examples -------------------------------------------------------------------------

class _Dumper(yaml.SafeDumper):
    pass


def _str_presenter(dumper, data):
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _str_presenter)

_EXAMPLE_HEADER = """\
# GENERATED by `.venv/bin/python run/stack.py --write-examples` from run/apirules/*.yaml; do not edit
# (tests/e2e/test_tutorial.py fails when it is out of date).
#
# {what}
"""


def render_examples():
    """{path: text} of the static Envoy configs for the tutorial topology with the default ports."""
    d = {name: default for name, (_, default) in PORT_ENV.items()}
    issuer = f"http://127.0.0.1:{d['oidc']}"
    jwks_uri = issuer + JWKS_PATH
    apirules = load_apirules(domain=DEFAULT_DOMAIN, jwks_uri=jwks_uri, issuer=issuer)
    variants = {
        EXAMPLE_LOCAL: (
            "Envoy on the host, the workloads and the OIDC provider on their default ports on 127.0.0.1\n"
            "# (start them with `.venv/bin/python run/stack.py --no-envoy`), run from the repository root:\n"
            f"#   func-e run -c {EXAMPLE_LOCAL.relative_to(REPO)}   (or .venv/bin/envoy -c ...)",
            dict(wasm_path=WASM_REL, listen_address="127.0.0.1",
                 addresses={OIDC_CLUSTER: ("127.0.0.1", d["oidc"]), "httpbin": ("127.0.0.1", d["httpbin"]),
                            "function": ("127.0.0.1", d["function"])})),
        EXAMPLE_COMPOSE: (
            "Envoy in envoy/docker-compose.yaml: the services by their compose names, the filter mounted\n"
            "# at /etc/envoy/apirule_wasm.wasm. The JWKS URL stays the one the token's issuer publishes\n"
            "# (http://127.0.0.1:3000/jwks); the cluster `oidc` says where Envoy really fetches it.",
            dict(wasm_path="/etc/envoy/apirule_wasm.wasm", listen_address="0.0.0.0",
                 addresses={OIDC_CLUSTER: ("oidc", d["oidc"]), "httpbin": ("httpbin", d["httpbin"]),
                            "function": ("function", d["function"])})),
    }
    out = {}
    for path, (what, kw) in variants.items():
        boot = build_bootstrap(apirules=apirules, jwks_uri=jwks_uri, listen_port=d["envoy"],
                               admin_port=d["admin"], **kw)
        # Same JSON, pretty-printed so that the APIRules are readable in the example.
        wasm = boot["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"][
            "http_filters"][0]["typed_config"]["config"]
        wasm["configuration"]["value"] = json.dumps(plugin_config(apirules, jwks_uri), indent=2) + "\n"
        out[path] = _EXAMPLE_HEADER.format(what=what) + yaml.dump(
            boot, Dumper=_Dumper, sort_keys=False, width=110, default_flow_style=False)
    return out


def write_examples():
    for path, text in render_examples().items():
        path.write_text(text)
        print(f"wrote {path.relative_to(REPO)}")


# -- main -------------------------------------------------------------------------------------------

def _interrupt(signum, frame):
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="run/stack.py", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-envoy", action="store_true",
                        help="start the OIDC provider and the workloads only; run Envoy yourself "
                             f"(func-e run -c {EXAMPLE_LOCAL.relative_to(REPO)})")
    parser.add_argument("--write-examples", action="store_true",
                        help="regenerate envoy/tutorial-local.yaml and envoy/tutorial-compose.yaml, then exit")
    args = parser.parse_args(argv)
    if args.write_examples:
        write_examples()
        return 0

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    stack = None
    try:
        stack = start_stack(with_envoy=not args.no_envoy, log=lambda m: print(f"run: {m}", flush=True))
        print()
        print(stack.banner())
        print()
        print("The tutorial, adapted to this stack (copy into another shell):")
        print()
        print(stack.tutorial_text())
        print("Ready. Ctrl-C stops everything.", flush=True)
        while True:
            time.sleep(0.5)
            dead = stack.dead()
            if dead:
                for p in dead:
                    print(f"run: {p.name} (pid {p.pid}) exited with {p.popen.returncode}; log tail:\n"
                          f"{p.log_tail()}", file=sys.stderr, flush=True)
                return 1
    except StartupError as e:
        print(f"run: {e}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("\nrun: stopping", flush=True)
        return 0
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        if stack is not None:
            pids = ", ".join(f"{n}={p.pid}" for n, p in stack.procs.items())
            stack.stop()
            print(f"run: stopped {pids}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
