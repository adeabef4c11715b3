//! Clinical notes as values: SOAP content with template fields, the lifecycle state machine,
//! the content hash a signature is bound to, and the word-level diff of an amendment.
//!
//! # Lifecycle
//!
//! ```text
//! draft ──save──▶ draft (a new version per save)
//! draft ──sign (step-up)──▶ signed (locked)
//! signed ──amend (reason, signature)──▶ signed, amended   (new content version)
//! signed ──addendum (reason, signature)──▶ signed          (appended text)
//! draft ──delete──▶ deleted (soft)        signed ──delete──▶ refused (409)
//! ```
//!
//! [`NoteStatus::allows`] is the whole table; the store and the API both consult it.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use utoipa::ToSchema;

use crate::values::ValueError;

/// Longest SOAP section, in bytes.
pub const SECTION_MAX: usize = 32 * 1024;
/// Longest reason of an amendment or addendum, in bytes.
pub const REASON_MAX: usize = 2 * 1024;
/// Longest addendum text, in bytes.
pub const ADDENDUM_MAX: usize = 16 * 1024;
/// What every signature means (21 CFR 11.50(a)(3)).
pub const SIGNATURE_MEANING: &str = "authored and approved";

/// A note template: which structured fields a note may carry besides its SOAP text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Template {
    /// SOAP text only.
    Free,
    /// A dental hygiene visit.
    DentalHygiene,
    /// A dental exam.
    DentalExam,
    /// A massage or manual-therapy session.
    Massage,
}

/// The type of a template field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum FieldType {
    /// `true` / `false`.
    Bool,
    /// An integer within bounds.
    Int {
        /// Smallest value.
        min: i64,
        /// Largest value.
        max: i64,
    },
    /// One of a fixed list of words.
    Choice {
        /// The allowed words.
        #[schema(value_type = Vec<String>)]
        options: &'static [&'static str],
    },
}

/// One structured field of a template.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct TemplateField {
    /// The field's key in `fields`.
    pub name: &'static str,
    /// Its type.
    #[serde(flatten)]
    pub kind: FieldType,
}

const fn int(name: &'static str, min: i64, max: i64) -> TemplateField {
    TemplateField {
        name,
        kind: FieldType::Int { min, max },
    }
}
const fn boolean(name: &'static str) -> TemplateField {
    TemplateField {
        name,
        kind: FieldType::Bool,
    }
}
const fn choice(name: &'static str, options: &'static [&'static str]) -> TemplateField {
    TemplateField {
        name,
        kind: FieldType::Choice { options },
    }
}

const HYGIENE: &[TemplateField] = &[
    choice("calculus", &["none", "light", "moderate", "heavy"]),
    int("plaque_score", 0, 3),
    boolean("bleeding_on_probing"),
    boolean("fluoride_applied"),
    boolean("perio_charted"),
    int("recall_months", 1, 24),
];
const EXAM: &[TemplateField] = &[
    choice("caries_risk", &["low", "moderate", "high"]),
    boolean("radiographs_taken"),
    int("teeth_present", 0, 32),
    boolean("oral_cancer_screening"),
];
const MASSAGE: &[TemplateField] = &[
    choice("pressure", &["light", "medium", "firm"]),
    int("duration_minutes", 5, 240),
    int("pain_before", 0, 10),
    int("pain_after", 0, 10),
    boolean("contraindications_screened"),
];

impl Template {
    /// Every template.
    pub const ALL: [Self; 4] = [
        Self::Free,
        Self::DentalHygiene,
        Self::DentalExam,
        Self::Massage,
    ];

    /// The stable name stored in `clinical_note.template`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Free => "free",
            Self::DentalHygiene => "dental_hygiene",
            Self::DentalExam => "dental_exam",
            Self::Massage => "massage",
        }
    }

    /// Parses a stored name.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// A human title.
    #[must_use]
    pub const fn title(self) -> &'static str {
        match self {
            Self::Free => "Clinical note (SOAP)",
            Self::DentalHygiene => "Dental hygiene visit",
            Self::DentalExam => "Dental exam",
            Self::Massage => "Massage / manual therapy session",
        }
    }

    /// The structured fields.
    #[must_use]
    pub const fn fields(self) -> &'static [TemplateField] {
        match self {
            Self::Free => &[],
            Self::DentalHygiene => HYGIENE,
            Self::DentalExam => EXAM,
            Self::Massage => MASSAGE,
        }
    }
}

/// A structured field value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum FieldValue {
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A choice.
    Text(String),
}

/// The content of one note version: SOAP sections and template fields. All clinical text.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoteContent {
    /// S: what the patient reports.
    #[serde(default)]
    pub subjective: String,
    /// O: findings.
    #[serde(default)]
    pub objective: String,
    /// A: assessment.
    #[serde(default)]
    pub assessment: String,
    /// P: plan.
    #[serde(default)]
    pub plan: String,
    /// Template fields (keys from the template).
    #[serde(default)]
    pub fields: BTreeMap<String, FieldValue>,
}

fn section(name: &'static str, s: &str) -> Result<(), ValueError> {
    if s.len() > SECTION_MAX {
        return Err(ValueError::new(name, "is too long"));
    }
    if s.chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
    {
        return Err(ValueError::new(name, "must not contain control characters"));
    }
    Ok(())
}

impl NoteContent {
    /// Checks sizes, characters and the template's fields. An empty note (no text, no
    /// fields) is valid as a draft but cannot be signed ([`NoteContent::is_empty`]).
    pub fn validate(&self, template: Template) -> Result<(), ValueError> {
        section("subjective", &self.subjective)?;
        section("objective", &self.objective)?;
        section("assessment", &self.assessment)?;
        section("plan", &self.plan)?;
        for (k, v) in &self.fields {
            let Some(f) = template.fields().iter().find(|f| f.name == k) else {
                return Err(ValueError::new(
                    "fields",
                    "holds a field the template does not have",
                ));
            };
            let ok = match (f.kind, v) {
                (FieldType::Bool, FieldValue::Bool(_)) => true,
                (FieldType::Int { min, max }, FieldValue::Int(i)) => (min..=max).contains(i),
                (FieldType::Choice { options }, FieldValue::Text(t)) => {
                    options.contains(&t.as_str())
                }
                _ => false,
            };
            if !ok {
                return Err(ValueError::new(
                    "fields",
                    "holds a value of the wrong type or out of range",
                ));
            }
        }
        Ok(())
    }

    /// Whether there is nothing to sign.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        [
            &self.subjective,
            &self.objective,
            &self.assessment,
            &self.plan,
        ]
        .iter()
        .all(|s| s.trim().is_empty())
            && self.fields.is_empty()
    }

    /// The canonical bytes: JSON with a fixed member order (struct order, sorted fields).
    #[must_use]
    pub fn canonical(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses canonical bytes.
    pub fn from_canonical(bytes: &[u8]) -> Result<Self, ValueError> {
        serde_json::from_slice(bytes).map_err(|_| ValueError::new("content", "is malformed"))
    }

    /// The text a reader sees, one section per paragraph (diffs are computed on it).
    #[must_use]
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        for (h, s) in [
            ("S", &self.subjective),
            ("O", &self.objective),
            ("A", &self.assessment),
            ("P", &self.plan),
        ] {
            out.push_str(h);
            out.push_str(": ");
            out.push_str(s);
            out.push('\n');
        }
        for (k, v) in &self.fields {
            let v = match v {
                FieldValue::Bool(b) => b.to_string(),
                FieldValue::Int(i) => i.to_string(),
                FieldValue::Text(t) => t.clone(),
            };
            let _ = writeln!(out, "{k}: {v}");
        }
        out
    }
}

/// What one version is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum VersionKind {
    /// A saved draft.
    Draft,
    /// The signed copy of the last draft.
    Signed,
    /// A signed replacement of the signed content.
    Amendment,
    /// Signed text appended to a signed note.
    Addendum,
}

impl VersionKind {
    /// The stored name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Signed => "signed",
            Self::Amendment => "amendment",
            Self::Addendum => "addendum",
        }
    }

    /// Parses a stored name.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Draft, Self::Signed, Self::Amendment, Self::Addendum]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// A note's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NoteStatus {
    /// Editable.
    Draft,
    /// Locked; only amendments and addenda.
    Signed,
    /// Soft-deleted draft.
    Deleted,
}

/// An action on a note.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoteAction {
    /// Save a new draft version.
    Save,
    /// Sign.
    Sign,
    /// Amend.
    Amend,
    /// Add an addendum.
    Addendum,
    /// Delete (soft).
    Delete,
}

impl NoteStatus {
    /// Whether `action` is allowed in this state (the lifecycle table).
    #[must_use]
    pub const fn allows(self, action: NoteAction) -> bool {
        matches!(
            (self, action),
            (
                Self::Draft,
                NoteAction::Save | NoteAction::Sign | NoteAction::Delete
            ) | (Self::Signed, NoteAction::Amend | NoteAction::Addendum)
        )
    }
}

/// Who signed, when, as what: the signature manifestation (21 CFR 11.50).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Signature {
    /// The signer's user id (always the signed-in user).
    #[schema(value_type = String, format = Uuid)]
    pub signer_id: uuid::Uuid,
    /// Printed name.
    pub printed_name: String,
    /// Credential (RDH, DDS, LMT …), when the signer has one on file.
    pub credential: Option<String>,
    /// When, UTC.
    pub signed_at: chrono::DateTime<chrono::Utc>,
    /// The time zone the signature is displayed in (IANA name or `UTC`).
    pub time_zone: String,
    /// What the signature means.
    pub meaning: String,
}

/// How a version's hash is computed; stored per version (`clinical_note_version.hash_scheme`)
/// so a version is always checked the way it was hashed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HashScheme {
    /// Versions written before issue 14 ([`content_hash`]): the note, the version, its kind,
    /// the signer id, the signed time, the meaning and the content. The printed name,
    /// credential, time zone, creation time, reason and AI flags are **not** bound: a change
    /// to them is not detected.
    V1,
    /// Every version written since ([`VersionBinding::hash`]): everything the manifestation and
    /// the rendering show.
    V2,
}

impl HashScheme {
    /// The scheme new versions are written with.
    pub const CURRENT: Self = Self::V2;

    /// The stored number.
    #[must_use]
    pub const fn as_i16(self) -> i16 {
        match self {
            Self::V1 => 1,
            Self::V2 => 2,
        }
    }

    /// Parses a stored number.
    #[must_use]
    pub const fn from_i16(n: i16) -> Option<Self> {
        match n {
            1 => Some(Self::V1),
            2 => Some(Self::V2),
            _ => None,
        }
    }

    /// Whether the hash covers the signature manifestation (printed name, credential, time
    /// with zone, meaning) and the rest of what a reader is shown.
    #[must_use]
    pub const fn binds_manifestation(self) -> bool {
        matches!(self, Self::V2)
    }
}

/// The scheme-1 hash ([`HashScheme::V1`]), kept so versions written before scheme 2 stay
/// verifiable: a label, the note's identity, the version, its kind, the signer, time and
/// meaning (when signed) and the canonical content. A hash copied to another note, version or
/// signer does not verify; the printed name, credential and time zone are not covered.
#[must_use]
pub fn content_hash(
    practice: uuid::Uuid,
    note: uuid::Uuid,
    version: i32,
    kind: VersionKind,
    signature: Option<&Signature>,
    canonical: &[u8],
) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"chartroom/note-version/v1\n");
    h.update(practice.as_bytes());
    h.update(note.as_bytes());
    h.update(version.to_be_bytes());
    h.update(kind.as_str().as_bytes());
    h.update([0]);
    if let Some(s) = signature {
        h.update(s.signer_id.as_bytes());
        h.update(s.signed_at.timestamp_micros().to_be_bytes());
        h.update(s.meaning.as_bytes());
        h.update([0]);
    }
    h.update(canonical);
    h.finalize().into()
}

/// Everything one version's hash binds: the note it belongs to (practice, id, patient,
/// template), the version (number, kind, author, creation time), what a reader is told about
/// it (reason, whether AI-assisted and from which turn), the whole signature manifestation
/// (signer, printed name, credential, signed time, time zone, meaning) and the exact content.
/// A version's hash therefore also changes if its note's template or patient changes: a
/// feature that changes either must write a new version.
#[derive(Clone, Copy, Debug)]
pub struct VersionBinding<'a> {
    /// The practice.
    pub practice: uuid::Uuid,
    /// The note.
    pub note: uuid::Uuid,
    /// The note's patient.
    pub patient: uuid::Uuid,
    /// The note's template (its title heads every rendering).
    pub template: Template,
    /// The version number.
    pub version: i32,
    /// Its kind.
    pub kind: VersionKind,
    /// Its author (the signer, for signed kinds).
    pub author: uuid::Uuid,
    /// When it was written (microsecond precision, as stored).
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// The reason (amendments, addenda), as the reader sees it.
    pub reason: Option<&'a str>,
    /// Whether an AI assistant drafted it.
    pub ai_assisted: bool,
    /// The assistant turn it came from.
    pub assistant_turn_id: Option<uuid::Uuid>,
    /// The signature manifestation (all but drafts).
    pub signature: Option<&'a Signature>,
    /// The canonical content (an addendum's text as it is).
    pub canonical: &'a [u8],
}

/// Feeds a length-prefixed field (so no two different field lists hash alike).
fn field(h: &mut Sha256, bytes: &[u8]) {
    h.update(u64::try_from(bytes.len()).unwrap_or(u64::MAX).to_be_bytes());
    h.update(bytes);
}

/// Feeds an optional field: a presence byte, then the field.
fn optional(h: &mut Sha256, bytes: Option<&[u8]>) {
    match bytes {
        Some(b) => {
            h.update([1]);
            field(h, b);
        }
        None => h.update([0]),
    }
}

impl VersionBinding<'_> {
    /// The version's SHA-256 under `scheme`.
    #[must_use]
    pub fn hash(&self, scheme: HashScheme) -> [u8; 32] {
        match scheme {
            HashScheme::V1 => content_hash(
                self.practice,
                self.note,
                self.version,
                self.kind,
                self.signature,
                self.canonical,
            ),
            HashScheme::V2 => self.hash_v2(),
        }
    }

    fn hash_v2(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(b"chartroom/note-version/v2\n");
        field(&mut h, self.practice.as_bytes());
        field(&mut h, self.note.as_bytes());
        field(&mut h, self.patient.as_bytes());
        field(&mut h, self.template.as_str().as_bytes());
        field(&mut h, &self.version.to_be_bytes());
        field(&mut h, self.kind.as_str().as_bytes());
        field(&mut h, self.author.as_bytes());
        field(&mut h, &self.created_at.timestamp_micros().to_be_bytes());
        optional(&mut h, self.reason.map(str::as_bytes));
        field(&mut h, &[u8::from(self.ai_assisted)]);
        optional(
            &mut h,
            self.assistant_turn_id
                .as_ref()
                .map(|t| t.as_bytes().as_slice()),
        );
        match self.signature {
            Some(s) => {
                h.update([1]);
                field(&mut h, s.signer_id.as_bytes());
                field(&mut h, s.printed_name.as_bytes());
                optional(&mut h, s.credential.as_deref().map(str::as_bytes));
                field(&mut h, &s.signed_at.timestamp_micros().to_be_bytes());
                field(&mut h, s.time_zone.as_bytes());
                field(&mut h, s.meaning.as_bytes());
            }
            None => h.update([0]),
        }
        field(&mut h, self.canonical);
        h.finalize().into()
    }
}

/// One piece of a word-level diff.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct DiffOp {
    /// `equal`, `insert` or `delete`.
    pub op: &'static str,
    /// The words.
    pub text: String,
}

/// The word-level diff from `old` to `new` (rendered text), equal runs merged.
#[must_use]
pub fn word_diff(old: &str, new: &str) -> Vec<DiffOp> {
    let diff = similar::TextDiff::from_words(old, new);
    let mut out: Vec<DiffOp> = Vec::new();
    for c in diff.iter_all_changes() {
        let op = match c.tag() {
            similar::ChangeTag::Equal => "equal",
            similar::ChangeTag::Insert => "insert",
            similar::ChangeTag::Delete => "delete",
        };
        match out.last_mut() {
            Some(last) if last.op == op => last.text.push_str(c.value()),
            _ => out.push(DiffOp {
                op,
                text: c.value().to_owned(),
            }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_table() {
        use NoteAction::*;
        for (s, ok) in [
            (NoteStatus::Draft, [true, true, false, false, true]),
            (NoteStatus::Signed, [false, false, true, true, false]),
            (NoteStatus::Deleted, [false; 5]),
        ] {
            for (a, want) in [Save, Sign, Amend, Addendum, Delete].into_iter().zip(ok) {
                assert_eq!(s.allows(a), want, "{s:?} {a:?}");
            }
        }
    }

    #[test]
    fn template_fields_are_checked() {
        let mut c = NoteContent {
            subjective: "no pain".into(),
            ..NoteContent::default()
        };
        c.fields
            .insert("pressure".into(), FieldValue::Text("firm".into()));
        assert!(c.validate(Template::Massage).is_ok());
        assert!(
            c.validate(Template::DentalExam).is_err(),
            "not a field of the exam"
        );
        c.fields.insert("pain_after".into(), FieldValue::Int(11));
        assert!(c.validate(Template::Massage).is_err(), "out of range");
        c.fields
            .insert("pain_after".into(), FieldValue::Text("2".into()));
        assert!(c.validate(Template::Massage).is_err(), "wrong type");
        let bad = NoteContent {
            plan: "a\u{0}b".into(),
            ..NoteContent::default()
        };
        assert!(bad.validate(Template::Free).is_err());
        assert!(NoteContent::default().is_empty());
    }

    #[test]
    fn canonical_round_trip_and_hash_binding() {
        let mut c = NoteContent {
            subjective: "sore".into(),
            ..NoteContent::default()
        };
        c.fields.insert("b".into(), FieldValue::Int(1));
        c.fields.insert("a".into(), FieldValue::Bool(true));
        let bytes = c.canonical();
        assert_eq!(NoteContent::from_canonical(&bytes).unwrap(), c);
        let (p, n) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
        let h = content_hash(p, n, 1, VersionKind::Draft, None, &bytes);
        assert_eq!(h, content_hash(p, n, 1, VersionKind::Draft, None, &bytes));
        assert_ne!(
            h,
            content_hash(p, uuid::Uuid::new_v4(), 1, VersionKind::Draft, None, &bytes)
        );
        assert_ne!(h, content_hash(p, n, 2, VersionKind::Draft, None, &bytes));
        assert_ne!(h, content_hash(p, n, 1, VersionKind::Signed, None, &bytes));
    }

    // issue 14.4, req SIG-01/SIG-02: scheme 2 binds every part of the manifestation and of
    // what a rendering shows; scheme 1 (old rows) does not bind the printed name.
    #[test]
    #[allow(
        clippy::too_many_lines,
        reason = "one table of cases, a line per changed part"
    )]
    fn scheme_two_binds_the_whole_manifestation() {
        let t = chrono::DateTime::from_timestamp_micros(1_750_000_000_123_456).unwrap();
        let sig = Signature {
            signer_id: uuid::Uuid::new_v4(),
            printed_name: "Ada Example".into(),
            credential: Some("RDH".into()),
            signed_at: t,
            time_zone: "UTC".into(),
            meaning: SIGNATURE_MEANING.into(),
        };
        let content = br#"{"subjective":"x"}"#.to_vec();
        let base = VersionBinding {
            practice: uuid::Uuid::new_v4(),
            note: uuid::Uuid::new_v4(),
            patient: uuid::Uuid::new_v4(),
            template: Template::DentalHygiene,
            version: 3,
            kind: VersionKind::Amendment,
            author: sig.signer_id,
            created_at: t,
            reason: Some("typo"),
            ai_assisted: true,
            assistant_turn_id: Some(uuid::Uuid::new_v4()),
            signature: Some(&sig),
            canonical: &content,
        };
        let h = base.hash(HashScheme::V2);
        assert_eq!(h, base.hash(HashScheme::V2), "deterministic");
        assert_ne!(h, base.hash(HashScheme::V1));
        let changed_sigs = [
            Signature {
                printed_name: "Eve Example".into(),
                ..sig.clone()
            },
            Signature {
                credential: Some("DDS".into()),
                ..sig.clone()
            },
            Signature {
                credential: None,
                ..sig.clone()
            },
            Signature {
                signed_at: t + chrono::Duration::microseconds(1),
                ..sig.clone()
            },
            Signature {
                time_zone: "America/New_York".into(),
                ..sig.clone()
            },
            Signature {
                meaning: "reviewed".into(),
                ..sig.clone()
            },
            Signature {
                signer_id: uuid::Uuid::new_v4(),
                ..sig.clone()
            },
        ];
        for s in &changed_sigs {
            let b = VersionBinding {
                signature: Some(s),
                ..base
            };
            assert_ne!(h, b.hash(HashScheme::V2), "{s:?}");
        }
        let other = b"{}".to_vec();
        let variants = [
            VersionBinding {
                patient: uuid::Uuid::new_v4(),
                ..base
            },
            VersionBinding {
                template: Template::Massage,
                ..base
            },
            VersionBinding {
                created_at: t + chrono::Duration::seconds(1),
                ..base
            },
            VersionBinding {
                reason: Some("typo!"),
                ..base
            },
            VersionBinding {
                reason: None,
                ..base
            },
            VersionBinding {
                ai_assisted: false,
                ..base
            },
            VersionBinding {
                assistant_turn_id: None,
                ..base
            },
            VersionBinding {
                author: uuid::Uuid::new_v4(),
                ..base
            },
            VersionBinding {
                signature: None,
                ..base
            },
            VersionBinding {
                canonical: &other,
                ..base
            },
            VersionBinding { version: 4, ..base },
        ];
        for v in &variants {
            assert_ne!(h, v.hash(HashScheme::V2), "{v:?}");
        }
        // Scheme 1 (rows written before scheme 2) did not cover the printed name: why a scheme
        // number is stored per version and reported by `notes verify`.
        let renamed = Signature {
            printed_name: "Eve Example".into(),
            ..sig.clone()
        };
        assert_eq!(
            base.hash(HashScheme::V1),
            VersionBinding {
                signature: Some(&renamed),
                ..base
            }
            .hash(HashScheme::V1)
        );
        assert!(!HashScheme::V1.binds_manifestation());
        assert_eq!(
            HashScheme::from_i16(HashScheme::CURRENT.as_i16()),
            Some(HashScheme::V2)
        );
        assert_eq!(HashScheme::from_i16(3), None);
    }

    #[test]
    fn word_diff_marks_changed_words() {
        let d = word_diff("S: mild gingivitis\n", "S: moderate gingivitis\n");
        let ins: Vec<_> = d
            .iter()
            .filter(|o| o.op == "insert")
            .map(|o| o.text.as_str())
            .collect();
        let del: Vec<_> = d
            .iter()
            .filter(|o| o.op == "delete")
            .map(|o| o.text.as_str())
            .collect();
        assert_eq!(ins, ["moderate"]);
        assert_eq!(del, ["mild"]);
    }
}
