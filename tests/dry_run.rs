//! The annotation `apirule-wasm.kyma-project.io/mode` (issue 10): `dry-run` or `enforce` on every
//! APIRule version, anything else refused at load with its JSON path; the decision it logs is
//! the one enforce mode answers.

mod common;

use apirule_wasm::policy::Mode;
use common::*;
use serde_json::{json, Value};

const MODE: &str = "apirule-wasm.kyma-project.io/mode";
const MODE_PATH: &str = "metadata.annotations[\"apirule-wasm.kyma-project.io/mode\"]";

/// A jwt-protected APIRule on HOST in `version`, in that version's own shape.
fn apirule_in(version: &str) -> Value {
    let jwt_v1 = json!([rule("/.*", &["GET"], "jwt", Some(jwt_config(json!({}))))]);
    let jwt_v2 = json!([{"path": "/*", "methods": ["GET"],
                         "jwt": {"authentications": [{"issuer": ISSUER, "jwksUri": JWKS_URL}]}}]);
    let mut r = apirule("httpbin", HOST, jwt_v1);
    r["apiVersion"] = json!(format!("gateway.kyma-project.io/{version}"));
    match version {
        "v1alpha1" => {
            r["spec"] = json!({"service": {"name": "httpbin", "port": 8000, "host": HOST},
                               "gateway": "kyma-system/kyma-gateway", "rules": r["spec"]["rules"].clone()});
        }
        "v2alpha1" | "v2" => {
            r["spec"] = json!({"hosts": [HOST], "service": {"name": "httpbin", "port": 8000},
                               "gateway": "kyma-system/kyma-gateway", "rules": jwt_v2});
        }
        _ => {}
    }
    r
}

const VERSIONS: [&str; 4] = ["v1alpha1", "v1beta1", "v2alpha1", "v2"];

fn with_annotations(mut r: Value, annotations: Value) -> Value {
    r["metadata"]["annotations"] = annotations;
    r
}

fn mode_of(r: Value) -> Mode {
    load(vec![r]).policy.hosts()[0].mode
}

fn error_of(r: Value) -> String {
    match try_load(json!({"apiRules": [r]})) {
        Ok(_) => panic!("configuration was accepted"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn dry_run_and_enforce_on_every_version() {
    for version in VERSIONS {
        let r = apirule_in(version);
        assert_eq!(mode_of(r.clone()), Mode::Enforce, "{version}: no annotation");
        assert_eq!(mode_of(with_annotations(r.clone(), json!({MODE: "dry-run"}))), Mode::DryRun, "{version}");
        assert_eq!(mode_of(with_annotations(r.clone(), json!({MODE: "enforce"}))), Mode::Enforce, "{version}");
        assert_eq!(mode_of(with_annotations(r, json!({MODE: null}))), Mode::Enforce, "{version}: null is absent");
    }
}

#[test]
fn other_annotations_and_labels_are_kubernetes_business() {
    for version in VERSIONS {
        let mut r = with_annotations(
            apirule_in(version),
            json!({"kubectl.kubernetes.io/last-applied-configuration": "{}", "example.com/owner": 7,
                   "apirule-wasm.kyma-project.io/other": "whatever", MODE: "dry-run"}),
        );
        r["metadata"]["labels"] = json!({"app": "httpbin"});
        r["metadata"]["uid"] = json!("0b6f7a3e");
        assert_eq!(mode_of(r), Mode::DryRun, "{version}");
    }
}

#[test]
fn an_unknown_mode_is_refused_with_its_path_and_the_valid_values() {
    for version in VERSIONS {
        for typo in ["dryrun", "Dry-Run", "dry-run ", "", "audit"] {
            let e = error_of(with_annotations(apirule_in(version), json!({MODE: typo})));
            assert_eq!(
                e,
                format!(
                    "APIRule default/httpbin: {MODE_PATH}: {typo:?} is not a mode: must be \"dry-run\" or \"enforce\" (absent: enforce)"
                ),
                "{version}"
            );
        }
    }
}

#[test]
fn a_mode_that_is_not_a_string_is_refused() {
    for version in VERSIONS {
        for value in [json!(true), json!(1), json!(["dry-run"]), json!({"mode": "dry-run"})] {
            let e = error_of(with_annotations(apirule_in(version), json!({MODE: value})));
            assert_eq!(
                e,
                format!(
                    "APIRule default/httpbin: {MODE_PATH}: is not a string: must be \"dry-run\" or \"enforce\" (absent: enforce)"
                ),
                "{version} {value}"
            );
        }
        // Annotations that cannot be read at all could hide a mode.
        let e = error_of(with_annotations(apirule_in(version), json!(["dry-run"])));
        assert_eq!(e, "APIRule default/httpbin: metadata.annotations: must be an object", "{version}");
    }
}

/// A v1beta1 APIRule as Kyma stores it (v2 with the v1beta1 spec in an annotation) keeps the
/// mode its author gave it.
#[test]
fn a_stored_v1beta1_apirule_keeps_its_mode() {
    let v1 = apirule_in("v1beta1");
    let stored = json!({
        "apiVersion": "gateway.kyma-project.io/v2", "kind": "APIRule",
        "metadata": {"name": "stored", "namespace": "default", "annotations": {
            "gateway.kyma-project.io/original-version": "v1beta1",
            "gateway.kyma-project.io/v1beta1-spec": v1["spec"].to_string(),
            MODE: "dry-run"}},
        "spec": {}
    });
    assert_eq!(mode_of(stored.clone()), Mode::DryRun);
    let mut typo = stored;
    typo["metadata"]["annotations"][MODE] = json!("dry_run");
    assert!(error_of(typo).starts_with(&format!("APIRule default/stored: {MODE_PATH}: \"dry_run\" is not a mode")));
}

/// The mode never changes the decision: a dry run logs exactly what enforcing would answer
/// (v1: 401 without a token, v2: 403; a valid token is allowed with the same headers).
#[test]
fn the_decision_is_the_one_enforce_mode_answers() {
    let token = rs256(good_claims());
    for version in VERSIONS {
        let enforce = load(vec![apirule_in(version)]);
        let dry = load(vec![with_annotations(apirule_in(version), json!({MODE: "dry-run"}))]);
        let v2 = version.starts_with("v2");
        let cases = [
            (get("/headers"), if v2 { 403 } else { 401 }),
            (bearer(get("/headers"), &token), 200),
            (bearer(get("/headers"), "not-a-jwt"), 401),
        ];
        for (req, expected) in cases {
            let decide = |cfg: &apirule_wasm::config::Config| {
                decide_refetching(&cfg.policy, &req, NOW_MS, &mut default_cache(), &default_jwks())
            };
            let (d, e) = (decide(&dry), decide(&enforce));
            assert_eq!(d, e, "{version}");
            assert_eq!(status(&d), expected, "{version}");
        }
    }
}
