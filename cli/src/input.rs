//! Reading what a user has: APIRule YAML or JSON (multi-document too), a plugin configuration, or
//! a `WasmPlugin` carrying one, from files or stdin (`-`).

use std::fmt;
use std::io::Read;

use serde::Deserialize;
use serde_json::{Map, Value};

/// One YAML/JSON document of an input file.
#[derive(Debug, Clone)]
pub struct Document {
    /// The file as the user named it (`-` for stdin).
    pub file: String,
    /// 1-based position in the file (YAML `---` separated).
    pub index: usize,
    pub kind: Kind,
}

#[derive(Debug, Clone)]
pub enum Kind {
    /// A `gateway.kyma-project.io` APIRule (any version; the filter's parser judges the version).
    ApiRule(Value),
    /// The filter's plugin configuration (`{"apiRules": [...], "jwks": {...}}`), as is or as the
    /// `pluginConfig` of an Istio `WasmPlugin`.
    Plugin(Map<String, Value>),
    /// Another Kubernetes resource (a rendered manifest set holds them): named and skipped.
    Other(String),
}

impl Document {
    /// `file: document N` for messages.
    pub fn place(&self) -> String {
        format!("{}: document {}", self.file, self.index)
    }

    /// `namespace/name` of an APIRule, as the filter names it in its messages.
    pub fn apirule_name(&self) -> Option<String> {
        let Kind::ApiRule(doc) = &self.kind else { return None };
        let meta = doc.get("metadata")?;
        let name = meta.get("name")?.as_str()?;
        let namespace = meta.get("namespace").and_then(Value::as_str).unwrap_or("default");
        Some(format!("{namespace}/{name}"))
    }
}

/// An input that cannot be read as documents at all.
#[derive(Debug)]
pub struct InputError(pub String);

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How `${VAR}` placeholders (the Kyma tutorials' shell variables) are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholders {
    /// Left as written (the filter then refuses what they make invalid, with a hint).
    Keep,
    /// Replaced from the environment; an unset variable is an error.
    FromEnv,
}

/// Reads every document of every file, in order. `-` is stdin (read once).
pub fn read_all(files: &[String], placeholders: Placeholders) -> Result<Vec<Document>, InputError> {
    let mut docs = Vec::new();
    for file in files {
        let text = read_text(file)?;
        let text = match placeholders {
            Placeholders::Keep => text,
            Placeholders::FromEnv => substitute_env(&text).map_err(|e| InputError(format!("{file}: {e}")))?,
        };
        docs.extend(parse_documents(file, &text)?);
    }
    Ok(docs)
}

fn read_text(file: &str) -> Result<String, InputError> {
    if file == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).map_err(|e| InputError(format!("-: cannot read stdin: {e}")))?;
        return Ok(text);
    }
    std::fs::read_to_string(file).map_err(|e| InputError(format!("{file}: {e}")))
}

/// Splits a file into documents. JSON is YAML, so one parser reads both; empty documents (a
/// trailing `---`, comments only) are skipped as kubectl skips them.
pub fn parse_documents(file: &str, text: &str) -> Result<Vec<Document>, InputError> {
    let mut docs = Vec::new();
    for (i, de) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let index = i + 1;
        let value = Value::deserialize(de)
            .map_err(|e| InputError(format!("{file}: document {index}: is not valid YAML or JSON: {e}")))?;
        if value.is_null() {
            continue;
        }
        let kind = classify(&value).map_err(|e| InputError(format!("{file}: document {index}: {e}")))?;
        docs.push(Document { file: file.to_owned(), index, kind });
    }
    if docs.is_empty() {
        return Err(InputError(format!("{file}: holds no document")));
    }
    Ok(docs)
}

fn classify(value: &Value) -> Result<Kind, String> {
    let Value::Object(map) = value else {
        return Err("must be an object (an APIRule, a plugin configuration or a WasmPlugin)".into());
    };
    let api_version = map.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    match map.get("kind").and_then(Value::as_str) {
        Some("APIRule") => Ok(Kind::ApiRule(value.clone())),
        Some("WasmPlugin") if api_version.starts_with("extensions.istio.io/") => {
            match map.get("spec").and_then(|s| s.get("pluginConfig")) {
                Some(Value::Object(plugin)) => Ok(Kind::Plugin(plugin.clone())),
                _ => Err("WasmPlugin: spec.pluginConfig must be an object (the filter's configuration)".into()),
            }
        }
        Some(other) if api_version.starts_with("gateway.kyma-project.io/") => {
            Err(format!("kind {other} ({api_version}): the only kind of that group apirule reads is APIRule"))
        }
        Some(other) => Ok(Kind::Other(format!("{other} ({api_version})"))),
        None if map.contains_key("apiVersion") => Err("has an apiVersion but no kind".into()),
        None => Ok(Kind::Plugin(map.clone())),
    }
}

/// Replaces `${NAME}` with the environment's `NAME` (what `envsubst` does, minus its silent empty
/// string for unset variables: an unset one is an error here).
fn substitute_env(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let (before, after) = rest.split_at(start);
        out.push_str(before);
        let after = after.get(2..).unwrap_or("");
        let Some(end) = after.find('}') else {
            return Err("an unclosed ${".into());
        };
        let name = after.get(..end).unwrap_or("");
        let valid = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid {
            return Err(format!("${{{name}}} is not a variable name"));
        }
        let value = std::env::var(name).map_err(|_| format!("${{{name}}} is not set in the environment"))?;
        out.push_str(&value);
        rest = after.get(end + 1..).unwrap_or("");
    }
    out.push_str(rest);
    Ok(out)
}

/// The first `${NAME}` left in a document, for the hint that the file is a template.
pub fn placeholder_in(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => {
            let start = s.find("${")?;
            let tail = s.get(start..)?;
            let end = tail.find('}')?;
            tail.get(..=end).map(str::to_owned)
        }
        Value::Array(items) => items.iter().find_map(placeholder_in),
        Value::Object(map) => map.values().find_map(placeholder_in),
        _ => None,
    }
}

/// The inputs combined as the filter would get them: the plugin options of the (at most one)
/// plugin configuration, with every APIRule of the inputs appended to its `apiRules`.
pub fn combine(docs: &[Document]) -> Result<Map<String, Value>, InputError> {
    let mut plugin: Option<(&Document, Map<String, Value>)> = None;
    let mut rules = Vec::new();
    for doc in docs {
        match &doc.kind {
            Kind::ApiRule(rule) => rules.push(rule.clone()),
            Kind::Other(_) => {}
            Kind::Plugin(map) => {
                if let Some((first, _)) = &plugin {
                    return Err(InputError(format!(
                        "{}: a second plugin configuration (the first is {}); give one",
                        doc.place(),
                        first.place()
                    )));
                }
                plugin = Some((doc, map.clone()));
            }
        }
    }
    let mut out = plugin.map(|(_, map)| map).unwrap_or_default();
    let mut all = match out.remove("apiRules") {
        Some(Value::Array(items)) => items,
        None | Some(Value::Null) => Vec::new(),
        Some(_) => return Err(InputError("the plugin configuration's apiRules must be an array".into())),
    };
    all.extend(rules);
    out.insert("apiRules".into(), Value::Array(all));
    Ok(out)
}
