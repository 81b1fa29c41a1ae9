"""The hostile input corpus (issue 11) through one real Envoy (`--concurrency 2`, Istio's default
path normalisation): every case of tests/e2e/corpus/*.yaml, once per APIRule version it names.

Each case gets the one status it expects; a denied request must not have reached the backend; an
allowed one must have reached it once, with the path that was decided on and the token that was
verified (harness/corpus.py says what a case may contain). Cases that share a JWKS document and a
rule share a host: one plugin configuration holds them all. After the corpus, Envoy's wasm stats
must show that no VM failed.
"""
import json
import os
import re
import uuid

import pytest

from harness import apirules as A
from harness import corpus as C
from harness import tokens as T

CASES = C.load()


def _setups():
    """(case, version) -> (host, jwks path), fixed at collection time."""
    hosts, jwks_paths, out = {}, {}, {}
    for case in CASES:
        for version in case.expect:
            key = case.setup_key(version)
            host = hosts.setdefault(key, f"s{len(hosts)}.{version}.corpus.test")
            jkey = json.dumps(case.jwks, sort_keys=True)
            path = jwks_paths.setdefault(jkey, f"/corpus/jwks/{len(jwks_paths)}")
            out[(case.id, version)] = (host, path)
    return out


SETUPS = _setups()


def _params():
    params = []
    for case in CASES:
        for version in case.expect:
            marks = []
            finding = case.finding.get(version) if isinstance(case.finding, dict) else case.finding
            if finding:
                marks.append(pytest.mark.xfail(strict=True, reason=f"finding: {finding}"))
            params.append(pytest.param(case, version, id=f"{case.id}:{version}", marks=marks))
    return params


@pytest.fixture(scope="module")
def corpus_keys(keys):
    """The per-run keys a case can name (tests/e2e/conftest.py's, plus hostile ones)."""
    return {
        "rsa": keys.rsa, "rsa2": keys.rsa2, "rsa_same_kid": keys.rsa_other, "ec": keys.ec,
        "ec384": keys.ec384, "ec521": keys.ec521, "oct": keys.oct, "ed25519": keys.ed25519,
        "attacker": T.SigningKey.rsa("attacker"),
        "rsa1024": T.SigningKey.rsa("weak-1024", bits=1024),
        "rsa2040": T.SigningKey.rsa("short-2040", bits=2040),
    }


@pytest.fixture(scope="module")
def gateway(launcher, jwks_server, corpus_keys):
    served = {}
    for case in CASES:
        for version in case.expect:
            host, path = SETUPS[(case.id, version)]
            if path not in served:
                served[path] = C.jwks_body(case.jwks if case.jwks is not None else ["rsa"], corpus_keys)
                body, ctype = served[path]
                jwks_server.raw(path, body, ctype)
    rules, seen = [], set()
    for case in CASES:
        for version in case.expect:
            host, path = SETUPS[(case.id, version)]
            if host in seen:
                continue
            seen.add(host)
            rule = case.rule or {}
            rules.append(C.apirule(version, host.split(".")[0] + "-" + version, host,
                                   rule.get("profile", "jwt"), rule.get(version), A.jwks_url(path)))
    attacker = C.jwks_body([{"key": "attacker"}, {"key": "attacker", "kid": "rsa-1"}], corpus_keys)
    jwks_server.raw(C.ATTACKER_KEYS, *attacker)
    cfg = A.plugin_config(rules, jwks_paths=sorted(served), default_domain=None, min_refetch=10)
    # The first request for each of the ~60 key sets waits for its fetch: room for a busy machine.
    cfg["jwks"].update(maxWaitMs=5000, fetchTimeoutMs=3000)
    g = launcher(cfg, name="corpus", concurrency=2)
    g.initial_stats = stats_of(g)
    yield g
    g.stop()


def test_the_corpus_is_whole():
    """At least 150 cases over the five classes of issue 11, and docs/security.md counts them."""
    classes = {c.cls for c in CASES}
    assert classes == {"tokens", "claims", "jwks", "paths", "headers"}, classes
    assert len(CASES) >= 150, len(CASES)
    with open(os.path.join(C.HERE, "..", "..", "..", "docs", "security.md")) as f:
        doc = f.read()
    counts = re.search(r"(\d+) cases in `tests/e2e/corpus/`", doc)
    assert counts and int(counts.group(1)) == len(CASES), \
        f"docs/security.md, 'Hostile input corpus', should say {len(CASES)} cases"
    for cls in classes:
        n = sum(c.cls == cls for c in CASES)
        assert f"`{cls}.yaml` {n}" in doc, f"docs/security.md should count {n} cases in {cls}.yaml"


def is_filter_json(answer, code):
    try:
        body = json.loads(answer.body)
    except ValueError:
        return False
    return (answer.header("content-type") or "").startswith("application/json") and \
        isinstance(body, dict) and body.get("error", {}).get("code") == code


@pytest.mark.parametrize("case,version", _params())
def test_case(gateway, recorder, corpus_keys, case, version):
    host, _ = SETUPS[(case.id, version)]
    ctx = C.context()
    valid = T.mint(corpus_keys["rsa"], {"iss": C.ISSUER, "sub": "user-1", "iat": ctx["now"] - 10,
                                        "exp": ctx["now"] + 600, "jti": uuid.uuid4().hex})
    ctx.update(valid=valid, forged=T.tamper(valid))
    token = C.mint(case.token, corpus_keys, ctx) if case.token is not None else None
    if token is not None:
        ctx["token"] = token
    request = case.request or {}
    method = request.get("method", "GET")
    path = C.expand(request.get("path", "/x"), ctx)
    headers = [(C.expand(k, ctx), C.expand(v, ctx)) for k, v in request.get("headers", [])]
    bearer = token is not None and request.get("auth", "bearer") == "bearer"
    if bearer:
        headers.append(("Authorization", f"Bearer {token}"))

    warm_host = SETUPS[(case.id, case.warm)][0] if case.warm and case.warm != version else None
    got = C.send(gateway.port, recorder, method, path, host, headers, warm_host=warm_host)
    want = case.expect[version]
    assert got.status == want, f"{case.id} ({version}, {case.why or ''}): {got.status}, expected {want}: {got}"

    if want != 200:
        assert not got.upstream, f"a denied request reached the backend: {got.upstream}"
        by = case.by or "filter"
        if want == 400:
            assert is_filter_json(got, 400) == (by == "filter"), f"400 not by the {by}: {got}"
        elif by == "filter" and want in (401, 403):
            if version == "v1beta1":
                assert is_filter_json(got, want), got
            else:
                assert (got.header("content-type") or "").startswith("text/plain"), got
        return

    assert len(got.upstream) == 1, f"expected one upstream request: {got.upstream}"
    seen = got.upstream[0]
    assert seen["method"] == method
    want_path = C.expand(case.forwarded, ctx) if case.forwarded is not None else path
    assert seen["path"] == want_path, seen["path"]
    assert seen.header_values("x-forwarded-host") == [host], seen["headers"]
    expected_headers = dict(case.upstream or {})
    if bearer and "authorization" not in {k.lower() for k in expected_headers}:
        expected_headers["authorization"] = ["Bearer ${token}"]
    for name, values in expected_headers.items():
        assert seen.header_values(name) == [C.expand(v, ctx) for v in values], (name, seen["headers"])


def test_key_urls_in_tokens_were_never_fetched(gateway, jwks_server):
    """`jku`/`x5u` cases point at the attacker's key set on the JWKS server: never fetched."""
    assert jwks_server.hits(C.ATTACKER_KEYS) == 0


# Envoy 1.40's wasm stats (docs: "Wasm" statistics; these names exist for a V8 filter whatever
# happened): `wasm.envoy.wasm.runtime.v8.created` / `.active` count the VMs of the runtime,
# `wasm.wasm_vm_count` all VMs, and `wasm.<plugin name>.vm_reload*` the reloads of a failed VM. A
# VM that traps is marked failed and, under the filter's fail-closed setting, every later request
# of that worker gets Envoy's 503; Envoy counts that nowhere else than in these (a reload creates a
# VM) and in the connection manager's 5xx counter.
VM_STATS_UNCHANGED = ("wasm.envoy.wasm.runtime.v8.created", "wasm.envoy.wasm.runtime.v8.active",
                      "wasm.wasm_vm_count")
VM_STATS_ZERO = ("wasm.apirule.vm_reload", "wasm.apirule.vm_reload_success",
                 "wasm.apirule.vm_reload_failure", "wasm.apirule.vm_reload_backoff",
                 "http.ingress.downstream_rq_5xx")


def gateway_stats(gateway, pattern):
    return dict(line.rsplit(": ", 1) for line in gateway.stats(pattern) if ": " in line)


def stats_of(gateway):
    return gateway_stats(gateway, r"^(wasm|http\.ingress)\.")


def test_no_wasm_vm_failed_through_the_corpus(gateway, recorder, corpus_keys):
    """Runs after every case (pytest keeps file order): the VMs that started with Envoy
    (`--concurrency 2`) served the whole corpus, none failed or was replaced, no request got a
    5xx, and both workers still allow a valid token."""
    before, after = gateway.initial_stats, stats_of(gateway)
    for name in VM_STATS_UNCHANGED + VM_STATS_ZERO:
        assert name in after, f"Envoy reports no {name}: {sorted(after)}"
    for name in VM_STATS_UNCHANGED:
        assert after[name] == before[name], f"{name}: {before[name]} at start, {after[name]} after the corpus"
    for name in VM_STATS_ZERO:
        assert after[name] == "0", f"{name}: {after[name]}"
    assert int(after["wasm.envoy.wasm.runtime.v8.active"]) >= 3, after  # the main thread's and 2 workers'
    log = gateway.log_text()
    for sign in ("panicked", "wasm trap", "Function: proxy_on_", "Plugin configured to fail closed", "wasm_fail_stream"):
        assert sign not in log, f"{sign!r} in Envoy's log"
    workers = gateway_stats(gateway, r"^listener\.127\.0\.0\.1_\d+\.worker_\d+\.downstream_cx_total:")
    assert len(workers) == 2 and all(int(v) > 0 for v in workers.values()), f"both workers served: {workers}"
    host = next(h for (cid, v), (h, _) in SETUPS.items() if cid == "tokens:baseline-rs256" and v == "v1beta1")
    for _ in range(12):  # fresh connections spread over both workers
        token = T.mint(corpus_keys["rsa"], {"iss": C.ISSUER, "sub": "user-1", "exp": C.now() + 600})
        got = C.send(gateway.port, recorder, "GET", "/x", host, [("Authorization", f"Bearer {token}")])
        assert got.status == 200 and len(got.upstream) == 1, got
