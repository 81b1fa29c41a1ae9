//! `apirule check` validates a plugin configuration with the filter's own code.

mod common;

use std::process::Command;

use common::*;
use serde_json::json;

fn check(config: &serde_json::Value) -> std::process::Output {
    let dir = std::env::temp_dir().join(format!("apirule-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("{}.json", config.to_string().len()));
    std::fs::write(&file, config.to_string()).unwrap();
    Command::new(env!("CARGO_BIN_EXE_apirule")).arg("check").arg(&file).output().unwrap()
}

#[test]
fn valid_configuration_prints_what_the_filter_will_enforce() {
    let rules = json!([rule("/.*", &["GET"], "jwt", Some(jwt_config(json!({}))))]);
    let out = check(&json!({"apiRules": [apirule("httpbin", HOST, rules)]}));
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("default/httpbin: host api.example.com (1 route(s))"), "{text}");
    assert!(text.contains("JWKS https://idp.example.com/keys via cluster outbound|443||idp.example.com"), "{text}");
}

#[test]
fn invalid_configuration_fails_with_the_json_path() {
    let rules = json!([rule("/(", &["GET"], "noop", None)]);
    let out = check(&json!({"apiRules": [apirule("httpbin", HOST, rules)]}));
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stderr).unwrap();
    assert!(text.starts_with("APIRule default/httpbin: spec.rules[0].path: is not a valid regex"), "{text}");
}

#[test]
fn usage_errors() {
    let out = Command::new(env!("CARGO_BIN_EXE_apirule")).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(env!("CARGO_BIN_EXE_apirule")).args(["check", "/nonexistent/x.json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}
