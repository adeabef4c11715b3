//! The rows the pack accounts for: the requirement table of the design's REQUIREMENTS.md (read
//! only), the project's refinements of some rows, and the rows not proven yet.
//!
//! - The requirement table: every Markdown table row whose first cell is a requirement id,
//!   `| ID | Requirement | Proof (automated) | Source |`.
//! - Refinements (`docs/requirements-refined.md`): table rows `| ID | Refined proof | Reason |`
//!   — a row's proof replaced by a stronger one the design makes possible, with the reason.
//! - Pending rows (`docs/evidence-pending.txt`): one `ID reason…` a line (`#` comments and
//!   blank lines ignored). The pack reports them as not proven yet; the list only shrinks.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::scan::is_req_id;

/// One requirement row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requirement {
    /// `AC-01`.
    pub id: String,
    /// What is required.
    pub requirement: String,
    /// The proof the table asks for (the refined one when the row is refined).
    pub proof: String,
    /// The sources (regulation, standard).
    pub source: String,
    /// The refinement, when the project refined the row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refinement: Option<Refinement>,
}

/// A refined row: the proof as the catalog wrote it, and why the stronger proof replaces it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refinement {
    /// The catalog's proof, as written there.
    pub original_proof: String,
    /// Why the row was refined.
    pub reason: String,
}

/// Cells of a Markdown table row (`| a | b |` → `["a", "b"]`), or `None` for other lines.
fn cells(line: &str) -> Option<Vec<String>> {
    let inner = line.trim().strip_prefix('|')?.strip_suffix('|')?;
    Some(inner.split('|').map(|c| c.trim().to_owned()).collect())
}

/// The requirement rows of `markdown` in order. Errors name the line of a row that has an
/// id but not four cells, or a repeated id.
pub fn parse_requirements(markdown: &str) -> Result<Vec<Requirement>, String> {
    let mut rows: Vec<Requirement> = Vec::new();
    for (i, line) in markdown.lines().enumerate() {
        let Some(c) = cells(line) else { continue };
        let Some(id) = c.first().filter(|id| is_req_id(id)) else {
            continue;
        };
        let [_, requirement, proof, source] = c.as_slice() else {
            return Err(format!(
                "line {}: row {id} has {} cells, not 4",
                i + 1,
                c.len()
            ));
        };
        if rows.iter().any(|r| &r.id == id) {
            return Err(format!("line {}: {id} appears twice", i + 1));
        }
        rows.push(Requirement {
            id: id.clone(),
            requirement: requirement.clone(),
            proof: proof.clone(),
            source: source.clone(),
            refinement: None,
        });
    }
    if rows.is_empty() {
        return Err("no requirement rows (`| ID | Requirement | Proof | Source |`)".into());
    }
    Ok(rows)
}

/// Applies the refinement table in `markdown` (`| ID | Refined proof | Reason |`) to `rows`.
pub fn apply_refinements(rows: &mut [Requirement], markdown: &str) -> Result<(), String> {
    let mut seen = Vec::new();
    for (i, line) in markdown.lines().enumerate() {
        let Some(c) = cells(line) else { continue };
        let Some(id) = c.first().filter(|id| is_req_id(id)) else {
            continue;
        };
        let [_, proof, reason] = c.as_slice() else {
            return Err(format!(
                "refinements line {}: {id} has {} cells, not 3",
                i + 1,
                c.len()
            ));
        };
        if proof.is_empty() || reason.is_empty() {
            return Err(format!(
                "refinements line {}: {id} needs a proof and a reason",
                i + 1
            ));
        }
        if seen.contains(id) {
            return Err(format!("refinements line {}: {id} appears twice", i + 1));
        }
        seen.push(id.clone());
        let row = rows
            .iter_mut()
            .find(|r| &r.id == id)
            .ok_or_else(|| format!("refinements line {}: {id} is not a requirement", i + 1))?;
        let original = std::mem::replace(&mut row.proof, proof.clone());
        row.refinement = Some(Refinement {
            original_proof: original,
            reason: reason.clone(),
        });
    }
    Ok(())
}

/// The pending rows of `text` (`ID reason…` a line), id → reason.
pub fn parse_pending(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (id, reason) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        if !is_req_id(id) {
            return Err(format!(
                "pending line {}: `{id}` is not a requirement id",
                i + 1
            ));
        }
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(format!(
                "pending line {}: {id} needs a one-line reason",
                i + 1
            ));
        }
        if out.insert(id.to_owned(), reason.to_owned()).is_some() {
            return Err(format!("pending line {}: {id} appears twice", i + 1));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "\
# Requirements

| ID | Requirement | Proof (automated) | Source |
|---|---|---|---|
| AC-01 | Unique IDs | [db] UNIQUE | 164.312 |
| OPS-07 | Evidence pack | CI job | NPRM N11 |
";

    // req: OPS-07 — the pack reads the catalog's rows and the project's refinements.
    #[test]
    fn rows_refinements_and_pending() {
        let mut rows = parse_requirements(TABLE).expect("rows");
        assert_eq!(
            rows.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["AC-01", "OPS-07"]
        );
        apply_refinements(
            &mut rows,
            "| ID | Refined proof | Reason |\n|---|---|---|\n| AC-01 | [db] stronger | the design allows it |\n",
        )
        .expect("refined");
        let ac01 = rows.first().expect("AC-01");
        assert_eq!(ac01.proof, "[db] stronger");
        assert_eq!(
            ac01.refinement.as_ref().map(|r| r.original_proof.as_str()),
            Some("[db] UNIQUE")
        );
        assert!(apply_refinements(&mut rows, "| ZZ-99 | p | r |").is_err());
        assert!(apply_refinements(&mut rows, "| AC-01 | p |").is_err());

        let pending =
            parse_pending("# comment\n\nAC-01 needs the reuse constraint\n").expect("pending");
        assert_eq!(
            pending.get("AC-01").map(String::as_str),
            Some("needs the reuse constraint")
        );
        assert!(parse_pending("AC-01\n").is_err(), "a reason is required");
        assert!(parse_pending("AC-01 a\nAC-01 b\n").is_err());
        assert!(parse_pending("ac-01 x\n").is_err());
        assert!(parse_requirements("| AC-01 | only | three |").is_err());
        assert!(parse_requirements("nothing").is_err());
    }
}
