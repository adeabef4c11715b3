//! No SQL is built from values (the static part of req INT-04): every value reaches
//! PostgreSQL as a bound parameter (`$1`), and a `format!` that builds SQL in the product's
//! crates may only splice in code: a column list or SQL fragment held in a `SCREAMING_CASE`
//! constant, or one of the few named pieces below, each built from constants only (a table
//! or column name of the sealed-column registry, a fixed condition) — listed here with its
//! reason, so a new one fails this test until someone has looked at it.

use std::collections::BTreeSet;
use std::path::Path;

use crate::util::source_files;

/// (file, placeholder, why it holds no value).
const SPLICED_CODE: &[(&str, &str, &str)] = &[
    (
        "crates/store/src/amendments.rs",
        "column",
        "a `&'static str` column stem the callers name (disagreement, rebuttal)",
    ),
    (
        "crates/store/src/notes/stored.rs",
        "which",
        "a fixed version filter each caller writes as a literal",
    ),
    (
        "crates/store/src/patients.rs",
        "todo",
        "the reseal pass's fixed condition on key versions",
    ),
    (
        "crates/store/src/keys/commands.rs",
        "rows",
        "`exists` terms built from the sealed-column registry's table names",
    ),
    (
        "crates/store/src/keys/reseal.rs",
        "key",
        "the registry table's key column",
    ),
    (
        "crates/store/src/keys/reseal.rs",
        "select",
        "the registry table's sealed column names",
    ),
    (
        "crates/store/src/keys/reseal.rs",
        "table",
        "the registry's table name",
    ),
    (
        "crates/store/src/keys/reseal.rs",
        "",
        "the registry table's fixed key-version condition (`todo(t)`)",
    ),
    (
        "crates/store/src/keys/reseal.rs",
        "set",
        "`column = $n` pairs of the registry table's sealed columns",
    ),
    (
        "crates/store/src/keys/reseal.rs",
        "key_where",
        "the registry table's key columns compared with `$n`",
    ),
    (
        "crates/store/src/notes/stored.rs",
        "",
        "` for update` or nothing",
    ),
    ("crates/store/src/perio.rs", "", "` for update` or nothing"),
    (
        "crates/store/src/retention.rs",
        "",
        "the sealed-column registry's table name",
    ),
    (
        "crates/store/src/retention.rs",
        "key",
        "`note_id` or `patient_id`, fixed per registry entry",
    ),
    (
        "crates/chartroom/src/backup_cmd/database.rs",
        "",
        "a table name read from the catalog, quoted with `quote_ident` (row counts of the restore check)",
    ),
    (
        "crates/store/src/amendments.rs",
        "author",
        "`, rebuttal_by = $5` or nothing, by the column named",
    ),
    (
        "crates/store/src/requests.rs",
        "",
        "the request kind's table name (`access_request`, `amendment_request`), a constant per kind",
    ),
    (
        "crates/store/src/patients.rs",
        "source",
        "the scanner source's `SOURCE` constant (a table or a security-definer function)",
    ),
];

/// The string literal that starts `s` (after whitespace): its text, unescaped enough to find
/// placeholders (`{{` stays doubled).
fn literal(s: &str) -> Option<&str> {
    let s = s.trim_start();
    if let Some(rest) = s.strip_prefix('"') {
        let mut escaped = false;
        for (i, c) in rest.char_indices() {
            match c {
                '\\' if !escaped => escaped = true,
                '"' if !escaped => return rest.get(..i),
                _ => escaped = false,
            }
        }
        return None;
    }
    let rest = s.strip_prefix('r')?;
    let hashes = rest.len() - rest.trim_start_matches('#').len();
    let body = rest.get(hashes..)?.strip_prefix('"')?;
    let end = format!("\"{}", "#".repeat(hashes));
    body.find(&end).and_then(|i| body.get(..i))
}

fn looks_like_sql(text: &str) -> bool {
    text.lines().any(|l| {
        let l = l.trim_start().to_ascii_lowercase();
        [
            "select ",
            "insert into ",
            "update ",
            "delete from ",
            "with ",
        ]
        .iter()
        .any(|verb| l.starts_with(verb))
    })
}

/// The placeholders of a format string: `{name}`, `{name:…}`, `{}` (as "").
fn placeholders(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find('{') {
        let after = rest.get(i + 1..).unwrap_or_default();
        if let Some(after_brace) = after.strip_prefix('{') {
            rest = after_brace;
            continue;
        }
        let Some(end) = after.find('}') else { break };
        let inner = after.get(..end).unwrap_or_default();
        out.push(inner.split(':').next().unwrap_or_default().to_owned());
        rest = after.get(end + 1..).unwrap_or_default();
    }
    out
}

// The static part of INT-04 (the row stays pending: docs/evidence-pending.txt).
#[test]
fn sql_is_never_built_from_values() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = Vec::new();
    source_files(&root.join("crates"), &["rs"], &mut files);
    let mut found = BTreeSet::new();
    let mut offending = Vec::new();
    let mut sites = 0;
    for f in files
        .iter()
        .filter(|f| f.components().any(|c| c.as_os_str() == "src"))
        .filter(|f| {
            !f.components()
                .any(|c| c.as_os_str() == "testkit" || c.as_os_str() == "bin")
        })
    {
        let rel = f
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let text = std::fs::read_to_string(f).unwrap();
        for (at, _) in text.match_indices("format!(") {
            let Some(lit) = text.get(at + "format!(".len()..).and_then(literal) else {
                continue;
            };
            if !looks_like_sql(lit) {
                continue;
            }
            sites += 1;
            for p in placeholders(lit) {
                let constant = !p.is_empty()
                    && p.chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
                if constant {
                    continue;
                }
                if SPLICED_CODE
                    .iter()
                    .any(|(file, name, _)| *file == rel && *name == p)
                {
                    found.insert((rel.clone(), p));
                } else {
                    let line = text.get(..at).unwrap_or_default().lines().count() + 1;
                    offending.push(format!("{rel}:{line}: `{{{p}}}` spliced into SQL"));
                }
            }
        }
    }
    assert!(
        sites >= 40,
        "the scan found only {sites} SQL format strings: is it still reading them?"
    );
    assert!(
        offending.is_empty(),
        "SQL built from something that is not a constant (bind it as $n, or hold the SQL fragment in a SCREAMING_CASE constant):\n{}",
        offending.join("\n")
    );
    let stale: Vec<_> = SPLICED_CODE
        .iter()
        .filter(|(file, name, _)| !found.contains(&((*file).to_owned(), (*name).to_owned())))
        .collect();
    assert!(
        stale.is_empty(),
        "listed but no longer spliced (remove them): {stale:?}"
    );
}

#[test]
fn the_lint_reads_literals_and_placeholders() {
    assert_eq!(
        literal(r#" "select {A} from t where x = {b}", y"#),
        Some("select {A} from t where x = {b}")
    );
    assert_eq!(
        literal(r##" r#"select "q" from {t}"#, y"##),
        Some(r#"select "q" from {t}"#)
    );
    assert_eq!(literal(r#" "a \" {b}""#), Some(r#"a \" {b}"#));
    assert_eq!(
        placeholders("select {A}, {b:?}, {} from x where y = '{{z}}'"),
        ["A", "b", ""]
    );
    assert!(looks_like_sql(
        "select {COLUMNS} from patient where practice_id = $1"
    ));
    assert!(looks_like_sql("update {table} set x = $2"));
    assert!(!looks_like_sql("{} = ${}"));
    assert!(!looks_like_sql("the request {id} was updated"));
}
