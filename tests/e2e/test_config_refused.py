"""Configurations the filter must refuse at load: Envoy exits ("Unable to create Wasm plugin") and
the log names the offending APIRule and the JSON path of the field.

Reference: apirule-semantics.md §1.5 (controller validation), §5 cases 14, 15, 59;
contract: docs/behaviour.md "Handlers" (refused at load, never ignored) and "JWT" (unknown keys).
Case 59 (id_token mutator) describes behaviour this filter does not implement, nor do header
templates beyond `.Subject` and `.Extra` or introspection's `pre_authorization`: the contract is
that such an APIRule is refused, asserted here.

Every refused configuration also carries a valid APIRule first, so the message has to point at the
right one.
"""
import pytest

from harness import apirules as A

S = A.strategy
JWT = A.jwt(["/keys"])
FINE = A.apirule("fine-rule", "fine.example.com", A.rule("/.*", ["GET"], S("noop")))


def bad(name, *rules, **kw):
    return A.apirule(name, f"{name}.example.com", *rules, **kw)


def with_api_version(ar, v):
    ar = dict(ar)
    ar["apiVersion"] = v
    return ar


def without_service_host(ar):
    ar["spec"]["service"].pop("host")
    return ar


CASES = [
    # (test id, APIRule, substrings the log must contain besides the APIRule name, plugin overrides)
    ("unknown_api_version", with_api_version(bad("bad-version", A.rule("/.*", ["GET"], S("noop"))),
                                             "gateway.kyma-project.io/v9"),
     ["apiVersion"], {}),
    ("unsupported_handler", bad("bad-handler", A.rule("/.*", ["GET"], S("magic"))),
     ["spec.rules[0].accessStrategies[0].handler"], {}),
    ("bad_regex", bad("bad-regex", A.rule("/ok", ["GET"], S("noop")), A.rule("/foo(", ["GET"], S("noop"))),
     ["spec.rules[1].path"], {}),
    ("case_14_duplicate_path_and_method",
     bad("dup-rule", A.rule("/a", ["GET", "POST"], S("noop")), A.rule("/a", ["POST"], S("noop"))),
     ["spec.rules[1]"], {}),
    ("jwt_trusted_issuers_not_a_list",
     bad("jwt-types-iss", A.rule("/.*", ["GET"], A.jwt(["/keys"], trusted_issuers="https://idp"))),
     ["spec.rules[0].accessStrategies[0].config.trusted_issuers"], {}),
    ("jwt_jwks_urls_not_a_list",
     bad("jwt-types-urls", A.rule("/.*", ["GET"], S("jwt", {"jwks_urls": 5}))),
     ["spec.rules[0].accessStrategies[0].config.jwks_urls"], {}),
    ("jwt_required_scope_not_strings",
     bad("jwt-types-scope", A.rule("/.*", ["GET"], A.jwt(["/keys"], required_scope=[1]))),
     ["spec.rules[0].accessStrategies[0].config.required_scope"], {}),
    ("jwt_config_not_an_object",
     bad("jwt-config-string", A.rule("/.*", ["GET"], S("jwt", "jwks_urls=http://x"))),
     ["spec.rules[0].accessStrategies[0].config"], {}),
    ("jwt_unknown_key", bad("jwt-unknown-key", A.rule("/.*", ["GET"], A.jwt(["/keys"], jwks_uri="x"))),
     ["spec.rules[0].accessStrategies[0].config", "jwks_uri"], {}),
    ("jwt_istio_mode_with_ory_keys",
     bad("jwt-istio-mode", A.rule("/.*", ["GET"], S("jwt", {"authentications": [
         {"issuer": "https://idp", "jwksUri": "http://jwks.local/keys"}], "jwks_urls": ["http://jwks.local/keys"]}))),
     ["spec.rules[0].accessStrategies[0].config.jwks_urls", "not supported with Istio handler"], {}),
    ("jwt_without_jwks_urls",
     bad("jwt-no-jwks", A.rule("/.*", ["GET"], S("jwt", {"trusted_issuers": ["https://idp"]}))),
     ["spec.rules[0].accessStrategies[0].config", "jwks_urls"], {}),
    ("jwt_jwks_url_scheme_file",
     bad("jwt-file-url", A.rule("/.*", ["GET"], S("jwt", {"jwks_urls": ["file:///etc/jwks.json"]}))),
     ["spec.rules[0].accessStrategies[0].config.jwks_urls"], {}),
    ("jwt_token_from_two_sources",
     bad("jwt-token-from", A.rule("/.*", ["GET"], A.jwt(["/keys"], token_from={"header": "X", "cookie": "c"}))),
     ["spec.rules[0].accessStrategies[0].config.token_from"], {}),
    ("jwt_token_from_empty",
     bad("jwt-token-from-empty", A.rule("/.*", ["GET"], A.jwt(["/keys"], token_from={}))),
     ["spec.rules[0].accessStrategies[0].config.token_from"], {}),
    ("case_15_jwt_and_noop_mixed", bad("jwt-noop", A.rule("/.*", ["GET"], JWT, S("noop"))),
     ["spec.rules[0].accessStrategies"], {}),
    ("secure_and_insecure_mixed", bad("jwt-anonymous", A.rule("/.*", ["GET"], JWT, S("anonymous"))),
     ["spec.rules[0].accessStrategies"], {}),
    ("allow_not_exclusive", bad("allow-noop", A.rule("/.*", ["GET"], S("allow"), S("unauthorized"))),
     ["spec.rules[0].accessStrategies"], {}),
    ("insecure_handler_with_config", bad("noop-config", A.rule("/.*", ["GET"], S("noop", {"x": 1}))),
     ["spec.rules[0].accessStrategies[0].config"], {}),
    ("introspection_pre_authorization_refused",
     bad("jwt-introspection", A.rule("/.*", ["GET"], JWT, S("oauth2_introspection", {
         "introspection_url": "http://hydra/oauth2/introspect", "pre_authorization": {"enabled": True}}))),
     ["spec.rules[0].accessStrategies[1].config.pre_authorization", "not supported"], {}),
    ("oauth2_client_credentials_refused",
     bad("client-credentials", A.rule("/.*", ["GET"], S("oauth2_client_credentials", {"token_url": "http://x/t"}))),
     ["spec.rules[0].accessStrategies[0]", "oauth2_client_credentials"], {}),
    ("cookie_session_refused", bad("cookie-session", A.rule("/.*", ["GET"], S("cookie_session"))),
     ["spec.rules[0].accessStrategies[0]", "cookie_session"], {}),
    ("header_mutator_template_beyond_subject_and_extra_refused",
     bad("header-mutator", A.rule("/.*", ["GET"], JWT, mutators=[
         {"handler": "header", "config": {"headers": {"X-Path": "{{ print .MatchContext.URL }}"}}}])),
     ["spec.rules[0].mutators[0].config.headers.X-Path", "not supported"], {}),
    ("case_59_id_token_mutator_refused",
     bad("id-token-mutator", A.rule("/.*", ["GET"], JWT, mutators=[
         {"handler": "id_token", "config": {"ttl": "60s"}}])),
     ["spec.rules[0].mutators[0]"], {}),
    ("no_rules", bad("no-rules"), ["spec.rules"], {}),
    ("rule_without_access_strategies",
     bad("no-strategies", {"path": "/.*", "methods": ["GET"], "accessStrategies": []}),
     ["spec.rules[0].accessStrategies"], {}),
    ("short_host_without_default_domain", A.apirule("short-host", "shorty", A.rule("/.*", ["GET"], S("noop"))),
     ["spec.host"], {"default_domain": None}),
    ("v1alpha1_without_service_host",
     without_service_host(A.apirule("alpha-no-host", "x.example.com", A.rule("/.*", ["GET"], S("noop")),
                                    api_version="v1alpha1")),
     ["spec.service.host"], {}),
]


@pytest.mark.parametrize("case_id,api_rule,paths,overrides", CASES, ids=[c[0] for c in CASES])
def test_refused_at_load(refusal, case_id, api_rule, paths, overrides):
    cfg = A.plugin_config([FINE, api_rule], jwks_paths=A.jwks_paths_of([api_rule]), **overrides)
    r = refusal(cfg, name=case_id)
    assert "exited with" in str(r.error), f"Envoy did not exit: {r.error}"
    errors = _error_lines(r.log)
    name = api_rule["metadata"]["name"]
    assert name in errors, f"the error does not name the APIRule {name!r}:\n{errors}"
    for p in paths:
        assert p in errors, f"the error does not name {p!r}:\n{errors}"
    assert any(name in line and all(p in line for p in paths) for line in errors.splitlines()), \
        f"no single error line names both the APIRule {name!r} and {paths}:\n{errors}"


def test_plugin_config_not_an_object_refused(refusal):
    r = refusal(["apiRules"], name="not-an-object")
    assert "exited with" in str(r.error), r.error


def test_valid_config_loads(launcher):
    """Control: the same valid APIRule alone starts fine."""
    g = launcher(A.plugin_config([FINE]), name="refused-control")
    try:
        assert g.get("/x", host="fine.example.com").status == 200
    finally:
        g.stop()


def _error_lines(log):
    """Envoy log lines at warning level or above (the filter's refusal message is among them;
    debug lines that might echo the configuration are not)."""
    keep = ("][warning][", "][error][", "][critical][")
    return "\n".join(line for line in log.splitlines() if any(k in line for k in keep))
