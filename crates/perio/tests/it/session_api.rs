//! The session API: confirmation, undo, backspace, derived values, limits, serde.

use perio::outcome::{RejectReason, Status};
use perio::session::{Session, chart_to_json};
use perio::{Error, Site, Tooth};
use serde_json::json;

use crate::support::{brief, session};

fn t(n: u8) -> Tooth {
    Tooth::new(n).unwrap()
}

#[test]
fn depth_over_12_is_held_until_confirmed() {
    let mut s = Session::default();
    let held = s.apply_final("three fourteen four");
    assert_eq!(held.status, Status::NeedsConfirmation);
    assert_eq!(
        s.chart().pd(t(1), Site::B),
        None,
        "nothing applied while held"
    );
    assert_eq!(s.cursor().tooth, t(1));
    let confirmed = s.apply_final("confirm");
    assert_eq!(
        brief(&confirmed),
        "ok [pd 1DB=3, pd 1B=14, pd 1MB=4] @2F.DB"
    );
    assert_eq!(s.chart().pd(t(1), Site::B), Some(14));
    assert!(s.pending().is_none());
    assert_eq!(s.history().len(), 1);
}

#[test]
fn declining_applies_nothing() {
    let mut s = Session::default();
    s.apply_final("three fourteen four");
    let before = s.chart().clone();
    assert_eq!(
        brief(&s.apply_final("no")),
        "ok [] @1F.DB {confirmation_declined}"
    );
    assert_eq!(s.chart(), &before);
    assert!(s.pending().is_none());
    // With nothing held, "no" and "yes" are conversation.
    assert_eq!(s.apply_final("yes").status, Status::Ignored);
}

#[test]
fn a_new_final_discards_the_held_one() {
    let mut s = Session::default();
    s.apply_final("three fourteen four");
    assert_eq!(
        brief(&s.apply_final("three two three")),
        "ok [pd 1DB=3, pd 1B=2, pd 1MB=3] @2F.DB {pending_discarded}"
    );
    assert!(s.pending().is_none());
    // A rejected or ignored final keeps it.
    s.apply_final("three fourteen four");
    assert_eq!(s.apply_final("open wide").status, Status::Ignored);
    assert_eq!(s.apply_final("your bleeding").status, Status::Rejected);
    assert!(s.pending().is_some());
}

#[test]
fn alternatives_are_chosen_by_option() {
    let mut s = Session::default();
    assert_eq!(
        s.apply_final("tooth twenty three two four")
            .alternatives
            .len(),
        2
    );
    let vague = s.apply_final("confirm");
    assert_eq!(
        vague.reject.as_ref().map(|r| r.reason),
        Some(RejectReason::AmbiguousCommand)
    );
    assert!(s.pending().is_some(), "still held");
    assert_eq!(
        s.apply_final("option three").reject.map(|r| r.reason),
        Some(RejectReason::OutOfRange)
    );
    let chosen = s.apply_final("option two");
    assert_eq!(
        brief(&chosen),
        "ok [@20F.DB, pd 20DB=3, pd 20B=2, pd 20MB=4] @21F.DB"
    );
    assert_eq!(s.chart().pd(t(20), Site::MB), Some(4));
}

#[test]
fn confirm_and_decline_methods() {
    let mut s = Session::default();
    s.apply_final("tooth twenty three two four");
    assert_eq!(
        brief(&s.confirm(0)),
        "ok [@23F.DB, pd 23DB=2, pd 23B=4] @23F.MB"
    );
    s.apply_final("bleeding on quadrant one");
    assert_eq!(brief(&s.decline()), "ok [] @23F.MB {confirmation_declined}");
    assert_eq!(s.confirm(0).status, Status::Rejected, "nothing held");
}

#[test]
fn undo_restores_chart_and_cursor_exactly() {
    let mut s = session(
        "{}",
        &[
            "three two three",
            "tooth one missing",
            "bleeding on tooth two all",
            "mobility one on tooth two",
        ],
    );
    let before = (s.chart().clone(), s.nav().clone());
    let out = s.apply_final(
        "tooth two buccal four four four bleeding furcation two on tooth three buccal",
    );
    assert_eq!(out.status, Status::Ok);
    let undone = s.undo();
    assert_eq!(undone.status, Status::Ok);
    assert_eq!(undone.reverts.len(), out.events.len());
    assert_eq!((s.chart().clone(), s.nav().clone()), before);
    // Undo again takes back the mobility, then the flags, then the status.
    s.undo();
    assert_eq!(s.chart().tooth(t(2)).mobility, None);
    s.undo();
    assert!(s.chart().tooth(t(2)).bleeding.is_empty());
    s.undo();
    assert_eq!(s.chart().status(t(1)), perio::ToothStatus::Present);
}

#[test]
fn backspace_takes_back_one_value_and_moves_back() {
    let mut s = session("{}", &["three two four"]);
    assert_eq!(brief(&s.backspace()), "ok [undo LastValue] @1F.MB");
    assert_eq!(s.chart().pd(t(1), Site::MB), None);
    assert_eq!(s.chart().pd(t(1), Site::B), Some(2));
    assert_eq!(s.nav().last_site.map(|r| r.site), Some(Site::B));
    assert_eq!(brief(&s.apply_final("five")), "ok [pd 1MB=5] @2F.DB");
}

#[test]
fn derived_values() {
    let mut s = session(
        "{}",
        &[
            "four five six bleeding",
            "gingival margin tooth one two one three",
            "pd seven two three bleeding",
        ],
    );
    assert_eq!(s.cal(t(1), Site::DB), Some(6));
    assert_eq!(s.cal(t(1), Site::MB), Some(9));
    assert_eq!(s.cal(t(2), Site::DB), None, "recession never recorded");
    let summary = s.summary();
    assert_eq!(
        (summary.bop.bleeding_sites, summary.bop.examined_sites),
        (2, 6)
    );
    assert_eq!(summary.bop_percent, Some(33.3));
    assert_eq!((summary.sites_pd_ge_4, summary.sites_pd_ge_6), (4, 2));
    assert_eq!(summary.teeth[0].max_cal, Some(9));
    let o = s.apply_final("tooth one missing");
    assert_eq!(
        o.warnings
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["status_over_values:1"]
    );
    assert_eq!(
        s.summary().bop.examined_sites,
        3,
        "missing teeth are excluded"
    );
}

#[test]
fn size_limits_reject_without_touching_the_session() {
    let mut s = session("{}", &["three two three"]);
    let before = s.clone();
    let long = format!("three {}", "two ".repeat(1100));
    assert_eq!(
        brief(&s.apply_final(&long)),
        "rejected too_long \"4406 bytes\""
    );
    let many = "two ".repeat(257);
    assert_eq!(
        brief(&s.apply_final(&many)),
        "rejected too_many_tokens \"more than 256 tokens\""
    );
    assert_eq!(s, before);
}

#[test]
fn rejected_finals_leave_the_session_unchanged() {
    let mut s = session("{}", &["three two three", "three fourteen four"]);
    let before = s.clone();
    for text in [
        "three two three four bleeding on tooth ninety",
        "mobility four",
        "1010",
        "skip",
        "mobility on tooth three",
    ] {
        assert_eq!(s.apply_final(text).status, Status::Rejected, "{text}");
        assert_eq!(s, before, "{text}");
    }
}

#[test]
fn session_round_trips_through_json() {
    let mut a = session(
        "{\"numbering\":\"fdi\"}",
        &[
            "tooth one six three two three",
            "bleeding distal",
            "three fourteen four",
        ],
    );
    let json = serde_json::to_string(&a).unwrap();
    let mut b: Session = serde_json::from_str(&json).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.apply_final("confirm"), b.apply_final("confirm"));
    assert_eq!(a.apply_final("undo"), b.apply_final("undo"));
    assert_eq!(a, b);
}

#[test]
fn labels_follow_the_session_numbering() {
    let mut fdi = session("{\"numbering\":\"fdi\"}", &[]);
    let o = fdi.apply_final("tooth one six three two three");
    assert_eq!(o.labels.get("3").map(String::as_str), Some("FDI 16"));
    assert_eq!(
        o.echo,
        "FDI 16 DB depth 3; FDI 16 B depth 2; FDI 16 MB depth 3"
    );
    let mut palmer = session("{\"numbering\":\"palmer\"}", &[]);
    let o = palmer.apply_final("upper left six lingual four three four");
    assert_eq!(o.labels.get("14").map(String::as_str), Some("Palmer UL6"));
}

#[test]
fn contexts_are_validated() {
    let err = |ctx: serde_json::Value| Session::from_ctx(&ctx).unwrap_err();
    assert_eq!(
        err(json!({"colour": "red"})),
        Error::Context("unknown field \"colour\"".into())
    );
    assert_eq!(
        err(json!({"cursor": {"tooth": 3, "surface": "F", "site": "ML"}})).to_string(),
        "invalid session context: cursor site ML is not on surface F"
    );
    assert_eq!(
        err(json!({"chart": {"3": {"pd": {"DB": 25}}}})),
        Error::Context("chart: tooth 3: pd/kg_width out of range".into())
    );
    assert_eq!(
        err(json!({"history": ["three two three", "skip"]})),
        Error::History {
            index: 1,
            text: "skip".into(),
            status: "Rejected".into()
        }
    );
    assert!(
        Session::from_ctx(&json!({"chart": {"teeth": {"3": {"pd": {"DB": 3}, "mobility": 1}}}}))
            .is_ok()
    );
}

#[test]
fn chart_json_has_the_fixture_shape() {
    let s = session(
        "{}",
        &[
            "tooth one missing",
            "four three five bleeding",
            "furcation two on tooth two buccal",
        ],
    );
    assert_eq!(
        chart_to_json(s.chart()),
        json!({"teeth": {
            "1": {"status": "missing", "pd": {}, "recession": {}, "kg_width": {}, "bleeding": [], "suppuration": [], "plaque": [], "calculus": []},
            "2": {"status": "present", "pd": {"DB": 4, "B": 3, "MB": 5}, "recession": {}, "kg_width": {}, "bleeding": ["MB"],
                  "suppuration": [], "plaque": [], "calculus": [], "furcation": {"B": 2}}
        }})
    );
}

#[test]
fn lexical_form_is_preferred_over_display_text() {
    let mut s = Session::default();
    // Display ITN wrote "eleven" as "11" (refused, N2); the lexical form is unambiguous.
    let o = s.apply_recognized(Some("eleven two three"), "11 2 3");
    assert_eq!(brief(&o), "ok [pd 1DB=11, pd 1B=2, pd 1MB=3] @2F.DB");
    let o = s.apply_recognized(None, "11 2 3");
    assert_eq!(brief(&o), "rejected ambiguous_numeral \"11\"");
}

#[test]
fn undo_reverts_what_the_previous_final_wrote() {
    // What a final's opening "scratch that" / "backspace" erased stays erased: undoing
    // "scratch that four four four" leaves tooth 1 empty, it does not bring back 3 2 3.
    let mut s = session("{}", &["three two three", "scratch that four four four"]);
    assert_eq!(brief(&s.undo()), "ok [undo LastFinal] @1F.DB");
    assert_eq!(s.chart().pd(t(1), Site::DB), None);
    assert!(s.history().is_empty());
    let mut s = session("{}", &["three two four", "backspace two"]);
    assert_eq!(s.chart().pd(t(1), Site::MB), Some(2));
    assert_eq!(brief(&s.undo()), "ok [undo LastFinal] @1F.MB");
    assert_eq!(s.chart().pd(t(1), Site::MB), None);
    assert_eq!(s.chart().pd(t(1), Site::B), Some(2));
}

#[test]
fn repeated_redictation_charts_the_same_sites() {
    let mut s = session("{}", &["three two three"]);
    for redo in ["scratch that four four four", "scratch that five five five"] {
        assert_eq!(s.apply_final(redo).status, Status::Ok, "{redo}");
    }
    let r = s.chart().tooth(t(1));
    assert_eq!(
        r.pd.iter().collect::<Vec<_>>(),
        [(Site::MB, 5), (Site::B, 5), (Site::DB, 5)]
    );
    assert_eq!(s.chart().tooth(t(2)).pd.iter().count(), 0);
    assert_eq!((s.cursor().tooth, s.history().len()), (t(2), 1));
}
