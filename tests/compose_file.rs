//! envoy/docker-compose.yaml is a valid Compose file. Checked with the compose_spec crate (strict:
//! unknown keys, bad port or volume syntax are errors), because no Docker engine or docker-compose
//! binary can be assumed on a test machine, and a compose file nobody can start is a broken promise.

use std::path::Path;

fn parse(text: &str) -> Result<compose_spec::Compose, String> {
    let compose = compose_spec::Compose::options().from_yaml_str(text).map_err(|e| e.to_string())?;
    compose.validate_all().map_err(|e| e.to_string())?;
    Ok(compose)
}

fn shipped() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("envoy/docker-compose.yaml");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn compose_file_is_valid_and_has_the_tutorial_services() {
    let compose = parse(&shipped()).unwrap_or_else(|e| panic!("envoy/docker-compose.yaml: {e}"));
    let names: Vec<String> = compose.services.keys().map(|k| k.to_string()).collect();
    for want in ["oidc", "httpbin", "function", "envoy"] {
        assert!(names.iter().any(|n| n == want), "service {want} missing: {names:?}");
    }
}

#[test]
fn the_check_catches_mistakes() {
    let text = shipped();
    let typo = text.replacen("    working_dir: /app", "    workdir: /app", 1);
    assert_ne!(typo, text);
    let err = parse(&typo).expect_err("an unknown service key must be refused");
    assert!(err.contains("workdir"), "{err}");
    let port = text.replacen("\"127.0.0.1:8080:8080\"", "\"127.0.0.1:8080:http\"", 1);
    assert_ne!(port, text);
    assert!(parse(&port).is_err(), "a port that is not a number must be refused");
}
