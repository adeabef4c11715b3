//! Periodontal charting by voice: the chart model and the dictation grammar of Chartroom.
//!
//! A hygienist probes six sites per tooth and says what she measures; a speech recognizer
//! turns each utterance into a *final* (one string). This crate turns finals into chart
//! changes, one final at a time, against a charting [`Session`] (numbering, charting path,
//! mode, cursor, tooth statuses, history). It implements `shared/perio/SPEC.md` sections
//! 1–4 and 6; the rule names used below (P1, N3, H2, F3, …) are the SPEC's.
//!
//! # Guarantees
//!
//! * **All or nothing.** A final applies completely or not at all. A final that cannot be
//!   read with certainty is `rejected` with a reason, or `needs_confirmation` with what it
//!   would do (or the alternatives to choose from): never half-applied, never guessed.
//! * **Pure.** [`parse()`] depends only on the text and the parse settings;
//!   [`Session::resolve`] computes an outcome without touching the session;
//!   [`Session::commit`] applies it. No IO, no clock, no randomness, no `unsafe`.
//! * **One vocabulary.** The tables the tokenizer and the parser read ([`lexicon`]) are the
//!   tables exported as the recognizer's phrase list ([`lexicon::vocabulary`],
//!   `chartroom perio vocabulary`); a test parses every exported phrase.
//! * **Universal numbering inside.** Teeth are [`Tooth`] (Universal 1–32, validated);
//!   events always carry Universal numbers, and the outcome's `labels` give the display
//!   label in the session numbering (`"FDI 16"`).
//! * **Bounded work.** A final over [`token::MAX_FINAL_BYTES`] (4 KiB) or
//!   [`token::MAX_TOKENS`] (256) is refused before parsing; the parser tries at most
//!   [`parse::MAX_PARSES`] readings; a value run is capped at 192 values; the undo history
//!   at [`session::MAX_HISTORY`] finals.
//!
//! What it must never do: chart a site the clinician did not say, keep a raw transcript
//! (history holds events, not text), or read the wall clock.
//!
//! # Example
//!
//! ```
//! use perio::{Session, Site, Status, Tooth};
//!
//! let mut session = Session::default(); // SPEC C0: Universal, maxillary-first, PD mode
//! let outcome = session.apply_final("tooth three buccal three two four bleeding distal");
//! assert_eq!(outcome.status, Status::Ok);
//! let three = Tooth::new(3).unwrap();
//! assert_eq!(session.chart().pd(three, Site::DB), Some(3)); // path order: DB, B, MB
//! assert_eq!(session.chart().pd(three, Site::MB), Some(4));
//! assert!(session.chart().tooth(three).bleeding.contains(Site::DB));
//! assert_eq!(session.cursor().tooth.number(), 4); // auto-advanced along the path
//!
//! // Refused finals change nothing.
//! let before = session.clone();
//! let refused = session.apply_final("your gums are bleeding a little");
//! assert_eq!(refused.reject.unwrap().heard, "your");
//! assert_eq!(session, before);
//!
//! // Undo takes back the previous final as one transaction.
//! session.undo();
//! assert_eq!(session.chart().pd(three, Site::DB), None);
//! ```
//!
//! # Syntax
//!
//! A final is a sequence of *clauses*; commas only separate. Words are lower-cased,
//! punctuation is dropped, hyphens split (`twenty-one`), `#14` is tooth 14, and multiword
//! phrases ("mesial buccal", "scratch that") are matched longest-first. Fillers ("um",
//! "uh", "er", "hmm") are dropped with a `filler_dropped` warning. Any other unknown word
//! rejects the whole final (`out_of_vocabulary`), unless the final has no core word at all,
//! in which case it is `ignored` as conversation (rule A1).
//!
//! ## Values
//!
//! | Said | Read as |
//! |---|---|
//! | `zero`/`oh` … `nine` | 0–9 |
//! | `ten` … `nineteen` | 10–19, one value each (N1) |
//! | `3` | 3 (display text) |
//! | `11` | refused, `ambiguous_numeral`: "eleven" or "one one"? (N2) |
//! | `323` | split 3, 2, 3 when exactly the sites left in the group (3, or 6 on the per-tooth path), else `concatenated_number` (N3) |
//! | `3.5`, `1,010` | refused, `concatenated_number` |
//! | `for`, `to`, `tree` … | digits only inside a run with a real number or of a length divisible by 3 (H1–H2); "to"/"too"/"for" after a navigation verb or before "tooth" keep their meaning (H3); each repair is a warning |
//! | `plus two` (GM) | recession −2: margin 2 mm coronal to the CEJ (G2); also "coronal", "hyperplasia", "overgrowth", "enlargement" |
//! | `minus two` | refused, `ambiguous_sign` (G3) |
//! | `four no three` | 3: "no", "sorry", "i mean", "make that", "correction" repair the slot just said (C1) |
//! | `one one one repeat two times` | the run, twice in all (Bola) |
//!
//! A PD over 12 (`max_unconfirmed_depth`) holds the final for confirmation (N5).
//!
//! ```
//! # use perio::{Session, Status};
//! let mut s = Session::default();
//! let o = s.apply_final("tree to tree");
//! let w: Vec<String> = o.warnings.iter().map(|w| w.to_string()).collect();
//! assert_eq!(w, ["homophone:tree->3", "homophone:to->2", "homophone:tree->3"]);
//! assert_eq!(s.apply_final("okay open wide for me").status, Status::Ignored);
//! assert_eq!(s.apply_final("three fourteen four").status, Status::NeedsConfirmation);
//! assert_eq!(s.apply_final("confirm").status, Status::Ok);
//! ```
//!
//! ## Teeth
//!
//! | Numbering | Said |
//! |---|---|
//! | Universal (default) | `tooth three`, `number three`, `#3`, `tooth 14`, `twenty one`, `thirty two` |
//! | FDI | exactly two digit words or one two-digit numeral: `tooth one six`, `tooth 16`; "sixteen" is refused (`fdi_needs_two_digits`, A3) |
//! | Palmer (any session) | `upper right six`, `lower left one`, `UR6`; letters (primary teeth) are refused |
//!
//! Primary teeth are not charted (Open Dental: permanent teeth 1–32). A compound number is
//! read greedily; when the split reading also parses *as the same clause* ("tooth twenty
//! three two four" = tooth 23 + two depths, or tooth 20 + a triplet), the final needs
//! confirmation with both alternatives (A2). "Jump two three" likewise offers tooth 3 and
//! tooth 2 + a depth.
//!
//! ```
//! # use perio::{Session, Settings, Numbering, Status};
//! let mut fdi = Session::new(Settings { numbering: Numbering::Fdi, ..Settings::default() });
//! let o = fdi.apply_final("tooth one six three two three");
//! assert_eq!(o.labels["3"], "FDI 16"); // Universal 3
//! let mut s = Session::default();
//! let o = s.apply_final("tooth twenty three two four");
//! assert_eq!(o.status, Status::NeedsConfirmation);
//! assert_eq!(o.alternatives.len(), 2);
//! s.apply_final("option two"); // tooth 20, depths 3 2 4
//! ```
//!
//! ## Sites and surfaces
//!
//! Surfaces: `facial`/`buccal`/`labial`/`buckle`, `lingual`/`palatal`/`palatial`/`lingle`.
//! Full sites: `mesiobuccal`, `mesial buccal`, `mesio lingual`, `distopalatal`, `m b`,
//! `dl`, … (also `mid facial`). Half sites — `mesial`, `distal`, `mid`/`middle`/
//! `direct`/`central` — take the surface of the anchor (below).
//!
//! ## Clauses
//!
//! | Clause | Examples | Effect |
//! |---|---|---|
//! | value run | `three two four` | fills the cursor site and auto-advances along the path (P1, P4) |
//! | tooth clause | `tooth three buccal three two four`, `tooth three mesial four distal five` | moves the cursor to the first site of the surface in path order, then fills (P3) |
//! | navigation | `jump to tooth thirty facial`, `go back to tooth three mesial buccal six`, `select tooth five lingual distal`, `next`, `previous site`, `switch`, `flip`, `lingual`, `resume path` | moves the cursor; "jump to 2:30" is tooth 30 (N4) |
//! | mode | `gingival margin one one two`, `start pocket depths`, `go to gm tooth five …`, `mgj …` | values mean PD, recession (GM) or keratinized width (MGJ, never palatal: G4) |
//! | spot | `recession two on tooth eight facial`, `recession with plus two on tooth eight facial`, `keratinized tissue one on tooth twenty four facial` | one value, cursor stays |
//! | status | `missing`, `tooth one missing`, `teeth seventeen and thirty two missing`, `teeth one through three missing`, `implant`, `skip this tooth`, `skip tooth five` | a cursor tooth leaving the path is skipped at once (S1); bare `skip` is refused |
//! | flags | `bleeding`, `bleeding distal`, `bleeding interproximal`, `suppuration on tooth number three all facial`, `plaque all six`, `no bleeding`, `bleeding on quadrant one` | set, never toggle; bulk needs confirmation (F1–F5) |
//! | mobility | `mobility one`, `mobility class three on tooth twenty four`, `tooth three mobility two`, `mobility one plus` | Miller 0–3 (T1) |
//! | furcation | `furcation two`, `furcation on tooth number fourteen mesial grade three`, `through and through on tooth thirty buccal`, `furcation class four` | entrance by anatomy (T2), Glickman IV → 3 (T3) |
//! | undo | `undo`, `scratch that`, `oops`; `backspace`, `delete last` | the previous final / one value (C2); must open the final. A bare undo is not recorded (undo again goes further back); undoing a re-dictation ("scratch that four four four") takes back what it wrote, and what its own opening undo erased stays erased, so repeated re-dictation charts the same sites |
//! | session | `pause`, `resume`, `start listening`, `done charting` | a paused session ignores everything but resume |
//! | prompt answer (whole final) | `confirm`/`yes`/`correct`, `no`/`cancel`, `option two` | answers a held final (C3) |
//!
//! Decisions where the SPEC grammar is silent or narrower than its examples: the parts of
//! a furcation or mobility clause may come in any order ("furcation on tooth fourteen
//! mesial grade three"), but after "on tooth N" the grade needs "grade"/"class"; `jump to
//! 2:30` is accepted with the "to"; an unmarked number directly before or after a status
//! word ("three missing") is refused as `ambiguous_command` (tooth 3, or a depth?); a bare
//! surface switches the surface of the *anchor* tooth ("buccal three two four, lingual two
//! two three" charts one tooth); a flag with a tooth but no scope ("bleeding on tooth
//! three") is `incomplete`.
//!
//! ## Anchors (F3)
//!
//! Scope words, mobility, furcation and a bare surface use the anchor: the tooth (and
//! surface) named in the clause; else the last value of this final; else `last_site`, if
//! the cursor only auto-advanced since; else the cursor. A bare flag goes to the last value
//! of this final (F1), else to `last_site` (F2).
//!
//! # Outcomes
//!
//! [`Outcome`] is SPEC §4: `status` (`ok`, `needs_confirmation`, `rejected`, `ignored`),
//! `events` (Universal teeth), `alternatives`, `cursor_after`, `last_site`, `derived` (CAL
//! of the touched teeth), `warnings` (`kind:detail` strings, see [`Warning`]), `reject`
//! (`reason` + `heard`, see [`RejectReason`]; `too_long` and `too_many_tokens` are ours),
//! plus `reverts`, `labels` and a canonical `echo` for read-back.
//!
//! # Sessions
//!
//! [`Session`] holds the [`Settings`] of SPEC §4.2, the [`Chart`], the cursor state, the
//! undo history and a held final; it is `Serialize + Deserialize` so the server can store
//! it sealed. Derived values: [`Session::cal`] (CAL = PD + recession, `None` until
//! recession is recorded unless [`chart::CalPolicy::AssumeZeroRecession`]),
//! [`Session::summary`] (BOP %, sites ≥ 4 / ≥ 6 mm, per-tooth summaries).
//!
//! # Modules
//!
//! [`tooth`], [`site`], [`path`] and [`chart`] are the model; [`lexicon`], [`token`] and
//! [`parse`](mod@parse) read finals; [`session`] resolves and applies them; [`outcome`] is the
//! result; [`fixtures`] evaluates SPEC fixture files (`chartroom perio eval`); [`voice`]
//! snaps a speech recognizer's free text onto this grammar with a confidence, holding unsure
//! finals for confirmation (`chartroom perio eval-voice`).

pub mod chart;
mod error;
pub mod fixtures;
pub mod lexicon;
pub mod outcome;
pub mod parse;
pub mod path;
mod resolve;
pub mod session;
pub mod site;
pub mod token;
pub mod tooth;
pub mod voice;

pub use chart::{Chart, Entrance, Flag, ToothStatus};
pub use error::Error;
pub use outcome::{Event, Mode, Outcome, Reject, RejectReason, Status, Warning};
pub use parse::{Parse, parse};
pub use path::{ChartingPath, Cursor};
pub use session::{Session, Settings};
pub use site::{Site, Surface};
pub use tooth::{Numbering, Tooth};
