//! A cursor over a JSON value that remembers its JSON path, so every configuration error can
//! name the exact field (`spec.rules[2].accessStrategies[0].config.jwks_urls[1]`).

use serde_json::{Map, Value};

use super::ConfigError;

/// A JSON value together with the path that led to it and the resource it belongs to.
#[derive(Clone)]
pub struct Node<'a> {
    pub value: &'a Value,
    pub path: String,
    resource: &'a str,
}

impl<'a> Node<'a> {
    pub fn root(value: &'a Value, resource: &'a str) -> Self {
        Node { value, path: String::new(), resource }
    }

    /// A value found at `path` outside a parsed tree (an APIRule parsed on its own).
    pub fn at(value: &'a Value, path: String, resource: &'a str) -> Self {
        Node { value, path, resource }
    }

    /// The resource label errors carry (`APIRule ns/name`).
    pub fn resource(&self) -> &'a str {
        self.resource
    }

    pub fn error(&self, message: impl Into<String>) -> ConfigError {
        ConfigError::new(self.resource, &self.path, message)
    }

    /// The member `key` of this object, if present and not null.
    pub fn get(&self, key: &str) -> Option<Node<'a>> {
        match self.value.get(key) {
            None | Some(Value::Null) => None,
            Some(v) => Some(Node { value: v, path: join_key(&self.path, key), resource: self.resource }),
        }
    }

    /// The member `key`, which must be present.
    pub fn req(&self, key: &str) -> Result<Node<'a>, ConfigError> {
        self.get(key).ok_or_else(|| {
            let path = join_key(&self.path, key);
            ConfigError::new(self.resource, &path, "is required")
        })
    }

    pub fn object(&self) -> Result<&'a Map<String, Value>, ConfigError> {
        self.value.as_object().ok_or_else(|| self.error("must be an object"))
    }

    pub fn str(&self) -> Result<&'a str, ConfigError> {
        self.value.as_str().ok_or_else(|| self.error("must be a string"))
    }

    pub fn non_empty_str(&self) -> Result<&'a str, ConfigError> {
        let s = self.str()?;
        if s.is_empty() {
            return Err(self.error("must not be empty"));
        }
        Ok(s)
    }

    pub fn bool(&self) -> Result<bool, ConfigError> {
        self.value.as_bool().ok_or_else(|| self.error("must be a boolean"))
    }

    /// An unsigned integer within `min..=max`.
    pub fn uint(&self, min: u64, max: u64) -> Result<u64, ConfigError> {
        match self.value.as_u64() {
            Some(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(self.error(format!("must be an integer from {min} to {max}"))),
        }
    }

    /// The items of an array, each with its indexed path.
    pub fn items(&self) -> Result<Vec<Node<'a>>, ConfigError> {
        let items = self.value.as_array().ok_or_else(|| self.error("must be an array"))?;
        Ok(items
            .iter()
            .enumerate()
            .map(|(i, v)| Node { value: v, path: format!("{}[{i}]", self.path), resource: self.resource })
            .collect())
    }

    /// An array of strings (each non-empty).
    pub fn str_list(&self) -> Result<Vec<String>, ConfigError> {
        self.items()?.iter().map(|n| n.non_empty_str().map(str::to_owned)).collect()
    }

    /// Refuses members other than `allowed`, so a typo is an error rather than a silent default.
    pub fn only_keys(&self, allowed: &[&str]) -> Result<(), ConfigError> {
        for key in self.object()?.keys() {
            if !allowed.contains(&key.as_str()) {
                let path = join_key(&self.path, key);
                return Err(ConfigError::new(
                    self.resource,
                    &path,
                    format!("unknown field (allowed: {})", allowed.join(", ")),
                ));
            }
        }
        Ok(())
    }
}

fn join_key(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}
