//! Intake forms: versioned form definitions per discipline, the validation of a client's
//! answers, and the hash that binds an e-signature to the exact form version and answers.
//!
//! # Guarantees
//! - The definitions are the files under `crates/domain/forms/` (`<id>.v<version>.json`),
//!   compiled into the binary and validated when the catalogue is first built ([`catalogue`];
//!   the server builds it at start and refuses to start on a bad definition).
//! - Each definition carries its id and version, and its hash is the SHA-256 of the file's
//!   exact bytes ([`FormDef::hash`]): a request records the hash, so what the client signed is
//!   the very definition that was sent, even after a newer version is added.
//! - Answers are checked field by field ([`FormDef::check_answers`]): required fields, sizes,
//!   closed choices, dates; no control characters except newlines in long text. A refusal
//!   names each field with a message and keeps nothing.
//! - [`evidence_hash`] is SHA-256 over a fixed, unambiguous encoding of the form (id, version,
//!   definition hash), the answers in key order and the typed name.
//!
//! # Syntax of a definition
//! ```json
//! {"id": "consent_to_treatment", "version": 1, "discipline": "general",
//!  "title": "Consent to treatment", "intro": "…", "intent": "By typing my full name…",
//!  "fields": [{"key": "full_name", "label": "Full name", "kind": "text",
//!              "required": true, "prefill": "name", "max_chars": 200}]}
//! ```
//! Kinds: `text`, `long_text`, `date` (`YYYY-MM-DD`), `yes_no` (`yes`/`no`), `choice` (one of
//! `options`), `checkbox` (ticked is `yes`; a required checkbox must be ticked). `prefill`
//! (`name`, `date_of_birth`) fills a field from the chart when the link holder opens the form.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// Most fields a form may have.
pub const MAX_FIELDS: usize = 100;
/// Longest answer of any field, in characters.
pub const MAX_ANSWER_CHARS: usize = 5000;
/// Longest typed signature name, in characters.
pub const MAX_SIGNER_CHARS: usize = 200;

/// The definitions compiled into the binary: (file name, exact bytes).
const FILES: &[(&str, &str)] = &[
    (
        "dental_health_history.v1.json",
        include_str!("../forms/dental_health_history.v1.json"),
    ),
    (
        "massage_intake.v1.json",
        include_str!("../forms/massage_intake.v1.json"),
    ),
    (
        "consent_to_treatment.v1.json",
        include_str!("../forms/consent_to_treatment.v1.json"),
    ),
];

/// The kind of a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldKind {
    /// One line of text.
    Text,
    /// Several lines of text.
    LongText,
    /// A date, `YYYY-MM-DD`.
    Date,
    /// `yes` or `no`.
    YesNo,
    /// One of the field's options.
    Choice,
    /// Ticked (`yes`) or not (`no`).
    Checkbox,
}

/// What the chart may fill in when the link holder opens the form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Prefill {
    /// Given and family name.
    Name,
    /// Date of birth.
    DateOfBirth,
}

/// One field of a form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Field {
    /// Stable key (`[a-z][a-z0-9_]*`), the answer's name.
    pub key: String,
    /// The question shown.
    pub label: String,
    /// Its kind.
    pub kind: FieldKind,
    /// Whether it must be answered (a checkbox: ticked).
    #[serde(default)]
    pub required: bool,
    /// The choices of a `choice` field.
    #[serde(default)]
    pub options: Vec<String>,
    /// Longest answer, in characters (text kinds; default 500).
    #[serde(default)]
    pub max_chars: Option<usize>,
    /// Filled from the chart when opened.
    #[serde(default)]
    pub prefill: Option<Prefill>,
}

impl Field {
    fn limit(&self) -> usize {
        self.max_chars.unwrap_or(500).min(MAX_ANSWER_CHARS)
    }
}

/// A form definition, as in its file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Definition {
    id: String,
    version: u32,
    discipline: String,
    title: String,
    intro: String,
    intent: String,
    fields: Vec<Field>,
}

/// A validated form definition with the hash of its exact bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormDef {
    /// Stable id (`dental_health_history`).
    pub id: String,
    /// Version (1, 2, …); a changed form is a new version, never an edit.
    pub version: u32,
    /// The discipline it is for (`dental`, `massage`, `general`).
    pub discipline: String,
    /// Title shown.
    pub title: String,
    /// Introduction shown above the questions.
    pub intro: String,
    /// The intent statement shown above the signature.
    pub intent: String,
    /// The questions.
    pub fields: Vec<Field>,
    /// SHA-256 of the definition's exact bytes.
    pub hash: [u8; 32],
}

/// A bad form definition (the server does not start with one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("form definition {file}: {problem}")]
pub struct FormError {
    /// The file.
    pub file: String,
    /// What is wrong.
    pub problem: String,
}

fn is_key(s: &str) -> bool {
    let mut b = s.bytes();
    b.next().is_some_and(|c| c.is_ascii_lowercase())
        && b.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
        && s.len() <= 63
}

impl FormDef {
    /// Parses and validates one definition file.
    ///
    /// # Errors
    /// [`FormError`] naming the file and the problem.
    pub fn parse(file: &str, bytes: &str) -> Result<Self, FormError> {
        let bad = |problem: String| FormError {
            file: file.to_owned(),
            problem,
        };
        let d: Definition = serde_json::from_str(bytes).map_err(|e| bad(e.to_string()))?;
        if !is_key(&d.id) {
            return Err(bad(format!("id {:?} is not [a-z][a-z0-9_]*", d.id)));
        }
        if !(1..=10_000).contains(&d.version) {
            return Err(bad("version must be 1 to 10000".into()));
        }
        if file != format!("{}.v{}.json", d.id, d.version) {
            return Err(bad("the file must be named <id>.v<version>.json".into()));
        }
        for (name, v) in [
            ("discipline", &d.discipline),
            ("title", &d.title),
            ("intent", &d.intent),
        ] {
            if v.trim().is_empty() {
                return Err(bad(format!("{name} is empty")));
            }
        }
        if d.fields.is_empty() || d.fields.len() > MAX_FIELDS {
            return Err(bad(format!("1 to {MAX_FIELDS} fields")));
        }
        let mut seen = std::collections::BTreeSet::new();
        for f in &d.fields {
            if !is_key(&f.key) || !seen.insert(f.key.as_str()) {
                return Err(bad(format!("field key {:?} is invalid or repeated", f.key)));
            }
            if f.label.trim().is_empty() {
                return Err(bad(format!("field {} has no label", f.key)));
            }
            if (f.kind == FieldKind::Choice) == f.options.is_empty() {
                return Err(bad(format!(
                    "field {}: options are for choice fields, and a choice needs them",
                    f.key
                )));
            }
            if f.max_chars.is_some_and(|m| m == 0 || m > MAX_ANSWER_CHARS) {
                return Err(bad(format!("field {}: max_chars out of range", f.key)));
            }
            match (f.prefill, f.kind) {
                (None, _)
                | (Some(Prefill::Name), FieldKind::Text)
                | (Some(Prefill::DateOfBirth), FieldKind::Date) => {}
                _ => return Err(bad(format!("field {}: prefill does not fit", f.key))),
            }
        }
        Ok(Self {
            id: d.id,
            version: d.version,
            discipline: d.discipline,
            title: d.title,
            intro: d.intro,
            intent: d.intent,
            fields: d.fields,
            hash: Sha256::digest(bytes.as_bytes()).into(),
        })
    }

    /// Checks the submitted values (`key → raw value`; keys the form does not have are
    /// ignored) and returns the answers, one per field, trimmed: a checkbox or an empty
    /// optional field included (`no`, `""`), so the record says what was left blank.
    ///
    /// # Errors
    /// Every field that is wrong, with a message for the client, in the form's order.
    pub fn check_answers(
        &self,
        raw: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, Vec<(String, String)>> {
        let mut out = BTreeMap::new();
        let mut errors = Vec::new();
        for f in &self.fields {
            let v = raw.get(&f.key).map_or("", |s| s.trim());
            match check_field(f, v) {
                Ok(v) => {
                    out.insert(f.key.clone(), v);
                }
                Err(msg) => errors.push((f.key.clone(), msg)),
            }
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(errors)
        }
    }
}

fn check_field(f: &Field, v: &str) -> Result<String, String> {
    if f.kind == FieldKind::Checkbox {
        let ticked = !v.is_empty();
        if f.required && !ticked {
            return Err("Tick this box to continue.".into());
        }
        return Ok(if ticked { "yes" } else { "no" }.into());
    }
    if v.is_empty() {
        return if f.required {
            Err("Answer this question.".into())
        } else {
            Ok(String::new())
        };
    }
    match f.kind {
        FieldKind::Text | FieldKind::LongText => {
            if v.chars().count() > f.limit() {
                return Err(format!("At most {} characters.", f.limit()));
            }
            let newline_ok = f.kind == FieldKind::LongText;
            if v.chars()
                .any(|c| c.is_control() && !(newline_ok && (c == '\n' || c == '\r' || c == '\t')))
            {
                return Err("Remove the control characters.".into());
            }
            Ok(v.replace("\r\n", "\n"))
        }
        FieldKind::Date => chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d")
            .map(|d| d.format("%Y-%m-%d").to_string())
            .map_err(|_| "Enter a date as YYYY-MM-DD.".to_owned()),
        FieldKind::YesNo => match v {
            "yes" | "no" => Ok(v.to_owned()),
            _ => Err("Choose yes or no.".into()),
        },
        FieldKind::Choice => {
            if f.options.iter().any(|o| o == v) {
                Ok(v.to_owned())
            } else {
                Err("Choose one of the options.".into())
            }
        }
        FieldKind::Checkbox => Ok("yes".into()),
    }
}

/// Checks the name typed as a signature: 1–200 characters, no control characters.
///
/// # Errors
/// A message for the client.
pub fn check_signer_name(name: &str) -> Result<String, String> {
    let t = name.trim();
    if t.is_empty() {
        return Err("Type your full name to sign.".into());
    }
    if t.chars().count() > MAX_SIGNER_CHARS || t.chars().any(char::is_control) {
        return Err(format!(
            "Your name: at most {MAX_SIGNER_CHARS} characters, no control characters."
        ));
    }
    Ok(t.to_owned())
}

/// The SHA-256 evidence of a signature: over `chartroom-intake-evidence-v1`, the form's id,
/// version and definition hash, each answer (key and value, in key order) and the typed
/// name, every string length-prefixed (8 bytes, big-endian), so no two inputs encode alike.
#[must_use]
pub fn evidence_hash(
    form: &FormDef,
    answers: &BTreeMap<String, String>,
    signer_name: &str,
) -> [u8; 32] {
    let mut h = Sha256::new();
    let mut put = |b: &[u8]| {
        h.update((b.len() as u64).to_be_bytes());
        h.update(b);
    };
    put(b"chartroom-intake-evidence-v1");
    put(form.id.as_bytes());
    put(&form.version.to_be_bytes());
    put(&form.hash);
    put(&(answers.len() as u64).to_be_bytes());
    for (k, v) in answers {
        put(k.as_bytes());
        put(v.as_bytes());
    }
    put(signer_name.as_bytes());
    h.finalize().into()
}

/// Every form definition, validated.
#[derive(Debug)]
pub struct Catalogue {
    forms: Vec<FormDef>,
}

impl Catalogue {
    /// Builds the catalogue from `files` (file name, bytes).
    ///
    /// # Errors
    /// The first bad definition, or an id and version given twice.
    pub fn from_files(files: &[(&str, &str)]) -> Result<Self, FormError> {
        let mut forms: Vec<FormDef> = Vec::with_capacity(files.len());
        for (file, bytes) in files {
            let f = FormDef::parse(file, bytes)?;
            if forms.iter().any(|g| g.id == f.id && g.version == f.version) {
                return Err(FormError {
                    file: (*file).to_owned(),
                    problem: "id and version given twice".into(),
                });
            }
            forms.push(f);
        }
        forms.sort_by(|a, b| a.title.cmp(&b.title).then(a.version.cmp(&b.version)));
        Ok(Self { forms })
    }

    /// The form `id` at `version`.
    #[must_use]
    pub fn get(&self, id: &str, version: u32) -> Option<&FormDef> {
        self.forms
            .iter()
            .find(|f| f.id == id && f.version == version)
    }

    /// The newest version of `id`.
    #[must_use]
    pub fn latest(&self, id: &str) -> Option<&FormDef> {
        self.forms
            .iter()
            .filter(|f| f.id == id)
            .max_by_key(|f| f.version)
    }

    /// The newest version of every form, by title.
    #[must_use]
    pub fn current(&self) -> Vec<&FormDef> {
        let mut out: Vec<&FormDef> = Vec::new();
        for f in &self.forms {
            if self.latest(&f.id).is_some_and(|l| std::ptr::eq(l, f)) {
                out.push(f);
            }
        }
        out
    }
}

/// The compiled-in catalogue, validated on first use.
///
/// # Errors
/// The first bad definition.
pub fn catalogue() -> Result<&'static Catalogue, FormError> {
    static CATALOGUE: OnceLock<Result<Catalogue, FormError>> = OnceLock::new();
    CATALOGUE
        .get_or_init(|| Catalogue::from_files(FILES))
        .as_ref()
        .map_err(Clone::clone)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_forms_are_valid_and_hash_their_exact_bytes() {
        let c = catalogue().unwrap();
        let ids: Vec<&str> = c.current().iter().map(|f| f.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "consent_to_treatment",
                "dental_health_history",
                "massage_intake"
            ]
        );
        let m = c.get("massage_intake", 1).unwrap();
        assert!(m.fields.iter().any(|f| f.key.starts_with("contra_")));
        let (_, bytes) = FILES
            .iter()
            .find(|(f, _)| *f == "massage_intake.v1.json")
            .unwrap();
        assert_eq!(m.hash, <[u8; 32]>::from(Sha256::digest(bytes.as_bytes())));
    }

    #[test]
    fn bad_definitions_are_refused_with_the_reason() {
        let ok = r#"{"id":"f","version":1,"discipline":"d","title":"T","intro":"","intent":"I",
            "fields":[{"key":"a","label":"A","kind":"text"}]}"#;
        assert!(FormDef::parse("f.v1.json", ok).is_ok());
        let cases = [
            (
                "g.v1.json",
                ok,
                "the file must be named <id>.v<version>.json",
            ),
            (
                "f.v1.json",
                r#"{"id":"f","version":1,"discipline":"d","title":"T","intro":"","intent":"I",
                   "fields":[{"key":"a","label":"A","kind":"choice"}]}"#,
                "field a: options are for choice fields, and a choice needs them",
            ),
            (
                "f.v1.json",
                r#"{"id":"f","version":1,"discipline":"d","title":"T","intro":"","intent":" ",
                   "fields":[{"key":"a","label":"A","kind":"text"}]}"#,
                "intent is empty",
            ),
            (
                "f.v1.json",
                r#"{"id":"f","version":1,"discipline":"d","title":"T","intro":"","intent":"I",
                   "fields":[{"key":"a","label":"A","kind":"yes_no","prefill":"name"}]}"#,
                "field a: prefill does not fit",
            ),
        ];
        for (file, text, problem) in cases {
            assert_eq!(FormDef::parse(file, text).unwrap_err().problem, problem);
        }
        assert!(Catalogue::from_files(&[("f.v1.json", ok), ("f.v1.json", ok)]).is_err());
    }

    #[test]
    fn answers_are_checked_field_by_field() {
        let c = catalogue().unwrap();
        let f = c.get("consent_to_treatment", 1).unwrap();
        let mut raw = BTreeMap::new();
        raw.insert("full_name".to_owned(), " Ada Example ".to_owned());
        raw.insert("date_of_birth".to_owned(), "1990-02-30".to_owned());
        raw.insert("understand_treatment".to_owned(), "on".to_owned());
        raw.insert("unknown".to_owned(), "x".to_owned());
        let errors = f.check_answers(&raw).unwrap_err();
        let keys: Vec<&str> = errors.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["date_of_birth", "consent_treatment", "withdraw"]);
        raw.insert("date_of_birth".to_owned(), "1990-02-28".to_owned());
        raw.insert("consent_treatment".to_owned(), "on".to_owned());
        raw.insert("withdraw".to_owned(), "on".to_owned());
        let answers = f.check_answers(&raw).unwrap();
        assert_eq!(answers["full_name"], "Ada Example");
        assert_eq!(answers["questions"], "");
        assert!(!answers.contains_key("unknown"));
        let h = evidence_hash(f, &answers, "Ada Example");
        assert_ne!(h, evidence_hash(f, &answers, "Ada Exampl"));
        let mut other = answers.clone();
        other.insert("questions".into(), "x".into());
        assert_ne!(h, evidence_hash(f, &other, "Ada Example"));
        assert_eq!(
            check_signer_name("  "),
            Err("Type your full name to sign.".into())
        );
    }
}
