#!/usr/bin/env python3
"""Extracts the APIRules of Kyma's own integration and e2e test scenarios into a test corpus.

    python tools/kyma_corpus.py <api-gateway checkout or bare mirror> [--rev REV] [--out DIR]

Reads every YAML manifest under `tests/integration` and `tests/e2e` of kyma-project/api-gateway
at REV (default HEAD, read with `git show`, so a bare mirror works as well as a checkout), fills in
the Go text/template placeholders the test steps would fill in (`{{.TestID}}`, `{{ .IssuerUrl }}`,
`{{- range .AllowOrigins }}` ...) with fixed, plausible values, and writes each APIRule document
as one JSON file under `tests/data/kyma_scenarios/` (default):

    {"source": "<path in api-gateway>", "document": <index in that file>, "commit": "<sha>",
     "apiRule": {...}}

Placeholders the table below does not know stop the run (no APIRule is ever written with a
placeholder left in it). Files in the output folder that this run did not write are removed, so
the folder is exactly the corpus of that commit. `tests/kyma_scenarios.rs` loads the result.
"""
import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOTS = ("tests/integration/", "tests/e2e/")
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "kyma_scenarios"

DOMAIN = "example.com"
ISSUER_URL = "https://oauth2.example.com"  # templates append /oauth2/certs, /oauth2/introspect
ISSUER = "https://oauth2.example.com/"
JWKS_URI = "https://oauth2.example.com/.well-known/jwks.json"


def values(n, source):
    """The template values for the n-th source file: what Kyma's test steps set, with fixed hosts,
    namespaces and an issuer of our own. Lists render as YAML flow sequences (JSON)."""
    stem = Path(source).stem
    v = {
        # integration suites (tests/integration/testsuites/*/scenario*.go, *.feature)
        "TestID": str(n),
        "SuiteID": str(n),
        "NamePrefix": stem,
        "Namespace": "default",
        "GatewayNamespace": "kyma-system",
        "GatewayName": "kyma-gateway",
        "Domain": DOMAIN,
        "Subdomain": f"custom-{n}.{DOMAIN}",
        "ParentDomain": DOMAIN,
        "IssuerUrl": ISSUER_URL,
        "IssuerURL": ISSUER_URL,
        "EncodedCredentials": "Y2xpZW50OnNlY3JldA==",  # base64("client:secret")
        "CustomLabelName": "custom-name",
        "jwtSecuredPath": "/ip",
        "jwtSecuredPathWithService": "/headers",
        "otherNamespacePath": "/hello",
        "extAuthPath": "/headers",
        "extAuthProvider": "sample-ext-authz-http",
        "headersJwtSecuredPath": "/headers",
        "helloJwtSecuredPath": "/hello",
        "headersMethods": ["GET", "POST"],
        "helloMethods": ["GET", "POST"],
        "ipRequiredScopes": ["read", "write"],
        "getRequiredScopes": ["test", "write"],
        "headersRequiredScopes": ["read"],
        "getAudiences": ["https://example.com"],
        "ipAudiences": ["https://example.com", "https://example.com/user"],
        "headersAudiences": ["https://example.com", "https://example.com/admin"],
        "header": "X-Request-Test",
        "headerValue": "a-header-value",
        "cookie": "x-request-test",
        "cookieValue": "a-cookie-value",
        "JWTHeaderName": "x-jwt-token",
        "FromParamName": "jwt_token",
        "AllowOrigins": [{"regex": ".*local.kyma.dev"}],
        "AllowMethods": ["GET", "POST"],
        "AllowHeaders": ["x-custom-allow-headers"],
        "AllowCredentials": "false",
        "ExposeHeaders": ["x-custom-expose-headers"],
        "MaxAge": "300",
        # e2e tests (tests/e2e/tests/*/*_test.go)
        "Name": f"{stem.replace('_', '-')}-{n}",
        "Host": f"httpbin-{n}.{DOMAIN}",
        "ServiceName": f"httpbin-{n}",
        "ServicePort": "8000",
        "ServiceNamespace": "default",
        "Gateway": "kyma-system/kyma-gateway",
        "ExternalGateway": "default/external-gateway",
        "Issuer": ISSUER,
        "JwksUri": JWKS_URI,
        "ExtAuthProvider": "sample-ext-authz-http",
        "HeaderKey": "X-Request-Test",
        "HeaderValue": "a-header-value",
        "Cookie": "x-request-test",
        "CookieValue": "a-cookie-value",
        "JwtSecuredPath": "/get",
        "JwtSecuredPathWithService": "/headers",
        "JwtSecuredPathWithoutService": "/ip",
        "OtherNamespace": "default-2",
        "OtherNamespaceJwtSecuredPath": "/ip",
        "OtherNamespaceServiceName": f"helloworld-{n}",
        "OtherNamespaceServicePort": "5000",
        "SecondServiceName": f"helloworld-{n}",
        "SecondServicePort": "5000",
    }
    # The values of the scenario the file was written for, where they differ from the above.
    if source == "tests/e2e/tests/short_host/short_host.yaml":
        v["Host"] = f"httpbin-{n}"  # the test sets Host to the bare test name
    if source == "tests/e2e/tests/asterisk/asterisk_host.yaml":
        v["Host"] = f"*.{DOMAIN}"  # "*.<kyma-gateway domain>"
    return v


ACTION = re.compile(r"\{\{(-?)\s*(.*?)\s*(-?)\}\}", re.S)


def parse(text, source):
    """Go text/template, as far as Kyma's manifests use it: `{{ .X }}`, `{{ . }}`, `{{- ... -}}`
    trimming and `{{ range .X }} ... {{ end }}`. Returns a list of nodes: text, ("value", expr),
    ("range", expr, body)."""
    tokens = list(ACTION.finditer(text))
    segments = []  # the text before each token, trimmed as `{{-` and `-}}` ask, then the tail
    for i in range(len(tokens) + 1):
        start = tokens[i - 1].end() if i else 0
        end = tokens[i].start() if i < len(tokens) else len(text)
        seg = text[start:end]
        if i and tokens[i - 1].group(3):
            seg = seg.lstrip()
        if i < len(tokens) and tokens[i].group(1):
            seg = seg.rstrip()
        segments.append(seg)
    root = []
    stack = [root]
    for i, m in enumerate(tokens):
        stack[-1].append(segments[i])
        expr = m.group(2)
        if expr.startswith("range "):
            body = []
            stack[-1].append(("range", expr[len("range "):].strip(), body))
            stack.append(body)
        elif expr == "end":
            if len(stack) == 1:
                raise SystemExit(f"{source}: {{{{end}}}} without range")
            stack.pop()
        else:
            stack[-1].append(("value", expr))
    if len(stack) != 1:
        raise SystemExit(f"{source}: range without end")
    root.append(segments[-1])
    return root


def lookup(expr, dot, data, source):
    if expr == ".":
        return dot
    if not re.fullmatch(r"\.[A-Za-z_][A-Za-z0-9_]*", expr):
        raise SystemExit(f"{source}: unsupported template action {{{{{expr}}}}}")
    scope = dot if isinstance(dot, dict) else data
    if expr[1:] not in scope:
        raise SystemExit(f"{source}: no value for template placeholder {{{{{expr}}}}}")
    return scope[expr[1:]]


def execute(nodes, dot, data, source):
    out = []
    for node in nodes:
        if isinstance(node, str):
            out.append(node)
        elif node[0] == "value":
            v = lookup(node[1], dot, data, source)
            out.append(json.dumps(v) if isinstance(v, (list, dict)) else str(v))
        else:
            items = lookup(node[1], dot, data, source)
            if not isinstance(items, list):
                raise SystemExit(f"{source}: range over {node[1]}, which is not a list")
            out.extend(execute(node[2], item, data, source) for item in items)
    return "".join(out)


def render(text, data, source):
    return execute(parse(text, source), data, data, source)


def git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=True, text=True).stdout


def out_name(source, index, count):
    parts = Path(source).with_suffix("").parts[1:]  # without the leading "tests"
    parts = [p for p in parts if p not in ("testsuites", "manifests", "tests")]
    name = "__".join(parts)
    return f"{name}.{index}.json" if count > 1 else f"{name}.json"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("repo", help="a kyma-project/api-gateway checkout or bare mirror")
    ap.add_argument("--rev", default="HEAD")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()

    commit = git(args.repo, "rev-parse", f"{args.rev}^{{commit}}").strip()
    files = sorted(f for f in git(args.repo, "ls-tree", "-r", "--name-only", commit).splitlines()
                   if f.startswith(ROOTS) and f.endswith((".yaml", ".yml")))
    corpus = {}
    n = 0
    for source in files:
        text = git(args.repo, "show", f"{commit}:{source}")
        if not re.search(r"^kind:\s*APIRule\s*$", text, re.M):
            continue
        n += 1
        rendered = render(text, values(n, source), source)
        docs = [d for d in yaml.safe_load_all(rendered)
                if isinstance(d, dict) and d.get("kind") == "APIRule"
                and str(d.get("apiVersion", "")).startswith("gateway.kyma-project.io/")]
        for index, doc in enumerate(docs):
            left = re.search(r"\{\{.*?\}\}", json.dumps(doc))
            if left:
                raise SystemExit(f"{source}: placeholder left after rendering: {left.group(0)}")
            name = out_name(source, index, len(docs))
            if name in corpus:
                raise SystemExit(f"{source}: output name {name} is taken")
            corpus[name] = {"source": source, "document": index, "commit": commit, "apiRule": doc}

    args.out.mkdir(parents=True, exist_ok=True)
    for old in args.out.glob("*.json"):
        if old.name not in corpus:
            old.unlink()
    for name, item in corpus.items():
        (args.out / name).write_text(json.dumps(item, indent=2, ensure_ascii=False) + "\n")
    versions = {}
    for item in corpus.values():
        v = item["apiRule"]["apiVersion"].rsplit("/", 1)[1]
        ann = (item["apiRule"].get("metadata") or {}).get("annotations") or {}
        if ann.get("gateway.kyma-project.io/original-version") == "v1beta1" and not item["apiRule"].get("spec"):
            v = "v1beta1 (stored as v2)"
        versions[v] = versions.get(v, 0) + 1
    print(f"{len(corpus)} APIRules from {n} files at {commit[:12]}: "
          + ", ".join(f"{k} {c}" for k, c in sorted(versions.items())), file=sys.stderr)


if __name__ == "__main__":
    main()
