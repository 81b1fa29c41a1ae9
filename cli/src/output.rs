//! Printing documents: YAML by default (multi-document, as `kubectl apply -f` reads it), or JSON
//! (one object, or a Kubernetes `List` of several, which kubectl also applies).

use clap::ValueEnum;
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Yaml,
    Json,
}

pub fn documents(docs: &[Value], format: Format) -> Result<String, String> {
    match format {
        Format::Yaml => {
            let mut out = String::new();
            for doc in docs {
                out.push_str("---\n");
                out.push_str(&serde_yaml_ng::to_string(doc).map_err(|e| format!("cannot write YAML: {e}"))?);
            }
            Ok(out)
        }
        Format::Json => {
            let value = match docs {
                [one] => one.clone(),
                many => json!({"apiVersion": "v1", "kind": "List", "items": many}),
            };
            serde_json::to_string_pretty(&value).map(|s| s + "\n").map_err(|e| format!("cannot write JSON: {e}"))
        }
    }
}
