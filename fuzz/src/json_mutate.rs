//! Structure-aware mutation of a JSON document, driven by the fuzzer's bytes: the input picks
//! nodes of a valid document and what to do to each (replace with a value from a dictionary,
//! copy another subtree over it, edit a string, drop or add a key, drop or repeat an array
//! element). libFuzzer then mutates these choices, so it explores documents close to valid ones
//! instead of mostly invalid JSON.

use arbitrary::{Result, Unstructured};
use serde_json::{Map, Value};

/// What a mutation may put into a document: whole values and object keys.
pub struct Dictionary {
    pub values: Vec<Value>,
    pub keys: Vec<&'static str>,
    /// Short strings spliced into string values.
    pub fragments: Vec<&'static str>,
}

/// Values interesting to any JSON consumer: types, boundaries, empties.
pub fn generic_values() -> Vec<Value> {
    use serde_json::json;
    vec![
        Value::Null,
        json!(true),
        json!(false),
        json!(0),
        json!(-1),
        json!(1),
        json!(300),
        json!(301),
        json!(100000),
        json!(100001),
        json!(u64::MAX),
        json!(i64::MIN),
        json!(1.5),
        json!(1e308),
        json!(""),
        json!(" "),
        json!("\u{0}"),
        json!("\u{e9}\u{1F600}"),
        json!([]),
        json!({}),
        json!([null]),
        json!([""]),
    ]
}

/// JSON pointer of every node, depth first (the root is "").
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                let escaped = k.replace('~', "~0").replace('/', "~1");
                pointers(child, format!("{at}/{escaped}"), out);
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                pointers(child, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
    out.push(at);
}

fn edit_string(u: &mut Unstructured, s: &str, dict: &Dictionary) -> Result<String> {
    let mut chars: Vec<char> = s.chars().collect();
    for _ in 0..u.int_in_range(1..=3u8)? {
        let at = u.int_in_range(0..=chars.len())?;
        match u.int_in_range(0..=4u8)? {
            0 if at < chars.len() => {
                chars.remove(at);
            }
            1 if at < chars.len() => chars.truncate(at),
            2 => {
                let c = char::from_u32(u.int_in_range(0..=0x10ffffu32)?).unwrap_or('\u{fffd}');
                chars.insert(at, c);
            }
            3 => {
                let c =
                    *u.choose(&['/', '.', '*', '{', '}', '%', '?', '\\', ':', '-', '_', '=', ' ', '\n', 'a', 'A'])?;
                chars.insert(at, c);
            }
            _ => {
                if let Ok(f) = u.choose(&dict.fragments) {
                    for (i, c) in f.chars().enumerate() {
                        chars.insert(at + i, c);
                    }
                }
            }
        }
    }
    Ok(chars.into_iter().collect())
}

/// Applies up to `max_ops` mutations to `doc`; with no input left, `doc` is unchanged.
pub fn mutate(u: &mut Unstructured, doc: &mut Value, dict: &Dictionary, max_ops: u8) -> Result<()> {
    let ops = u.int_in_range(0..=max_ops)?;
    for _ in 0..ops {
        let mut all = Vec::new();
        pointers(doc, String::new(), &mut all);
        let target = u.choose(&all)?.clone();
        let donor = u.choose(&all)?.clone();
        let donor_value = doc.pointer(&donor).cloned().unwrap_or(Value::Null);
        let Some(node) = doc.pointer_mut(&target) else { continue };
        match u.int_in_range(0..=7u8)? {
            0 => *node = u.choose(&dict.values)?.clone(),
            1 => *node = donor_value,
            2 => {
                if let Value::String(s) = node {
                    *s = edit_string(u, s, dict)?;
                } else {
                    *node = u.choose(&dict.values)?.clone();
                }
            }
            3 => match node {
                Value::Object(m) if !m.is_empty() => {
                    let k = u.choose_index(m.len())?;
                    if let Some(key) = m.keys().nth(k).cloned() {
                        m.remove(&key);
                    }
                }
                Value::Array(a) if !a.is_empty() => {
                    let i = u.choose_index(a.len())?;
                    a.remove(i);
                }
                _ => *node = Value::Null,
            },
            4 => match node {
                Value::Object(m) => {
                    let key = (*u.choose(&dict.keys)?).to_owned();
                    let value = if u.arbitrary()? { u.choose(&dict.values)?.clone() } else { donor_value };
                    m.insert(key, value);
                }
                Value::Array(a) => {
                    let value = match a.first() {
                        Some(first) if u.arbitrary()? => first.clone(),
                        _ => donor_value,
                    };
                    let at = u.int_in_range(0..=a.len())?;
                    a.insert(at, value);
                }
                _ => *node = Value::Array(vec![node.take()]),
            },
            5 => *node = Value::String(node.to_string()),
            6 => {
                // A key renamed (case, a neighbour's name): where unknown fields must be refused.
                if let Value::Object(m) = node {
                    if let Some(key) = m.keys().next().cloned() {
                        let v = m.remove(&key).unwrap_or(Value::Null);
                        let renamed = if u.arbitrary()? { key.to_ascii_uppercase() } else { format!("{key}s") };
                        m.insert(renamed, v);
                    }
                }
            }
            _ => {
                let mut m = Map::new();
                m.insert((*u.choose(&dict.keys)?).to_owned(), node.take());
                *node = Value::Object(m);
            }
        }
    }
    Ok(())
}
