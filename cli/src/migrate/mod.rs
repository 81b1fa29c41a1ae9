//! `apirule migrate`: v1alpha1/v1beta1 APIRules rewritten as v2, following Kyma's migration
//! rules, with what v2 cannot express reported, and the result proven by deciding a generated
//! request set with both (`prove`).

mod convert;
mod paths;
mod prove;

use serde_json::Value;

use crate::input::{Document, Kind};

/// What `migrate` produced.
pub struct Migration {
    pub apirules: Vec<Value>,
    /// Lines for the user: conversions that are not exact, then the proof.
    pub report: Vec<String>,
    /// No rule was left out or changed in meaning, and the proof found no request whose access
    /// or backend request differs.
    pub clean: bool,
}

pub fn migrate(docs: &[Document]) -> Result<Migration, String> {
    let options = match crate::input::combine(docs) {
        Ok(mut c) => {
            c.remove("apiRules");
            c
        }
        Err(e) => return Err(e.0),
    };
    let mut apirules = Vec::new();
    let mut report = Vec::new();
    let mut clean = true;
    for doc in docs {
        let Kind::ApiRule(old) = &doc.kind else { continue };
        let name = doc.apirule_name().unwrap_or_default();
        let version = old.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        if version.ends_with("/v2") || version.ends_with("/v2alpha1") {
            report.push(format!("{}: APIRule {name} is already {version}; left as it is", doc.place()));
            apirules.push(old.clone());
            continue;
        }
        let converted = convert::convert(old);
        for note in &converted.notes {
            clean &= !note.changes_access;
            let mark = if note.changes_access { "NOT EXPRESSIBLE" } else { "note" };
            report.push(format!("{}: APIRule {name}: {}: {mark}: {}", doc.place(), note.at, note.message));
        }
        let proof = match prove::prove(&options, old, &converted.apirule) {
            Ok(p) => p,
            Err(e) => {
                clean = false;
                report.push(format!("{}: APIRule {name}: NOT PROVEN: {e}", doc.place()));
                apirules.push(converted.apirule);
                continue;
            }
        };
        clean &= proof.differences.is_empty();
        let count = |groups: &[prove::Group]| groups.iter().map(|g| g.methods.len() * g.paths.len()).sum::<usize>();
        let verdict = if proof.differences.is_empty() && proof.status_only.is_empty() {
            "the same answer for every one".to_owned()
        } else {
            format!(
                "{} with another access or backend request, {} denied by both with another status",
                count(&proof.differences),
                count(&proof.status_only)
            )
        };
        report.push(format!(
            "{}: APIRule {name}: proof: {} requests decided by both ({} paths x {} methods x {} tokens): {verdict}",
            doc.place(),
            proof.requests,
            proof.paths,
            proof.methods,
            proof.tokens,
        ));
        for g in &proof.differences {
            report.push(format!("  DIFFERS {g}"));
        }
        for g in &proof.status_only {
            report.push(format!("  status  {g}"));
        }
        apirules.push(converted.apirule);
    }
    if apirules.is_empty() {
        return Err("no APIRule in the inputs".into());
    }
    Ok(Migration { apirules, report, clean })
}
