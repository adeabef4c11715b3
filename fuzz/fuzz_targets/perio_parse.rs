//! Fuzz target `perio_parse`: arbitrary finals through the whole engine.
//!
//! Input: the first byte picks the session settings (numbering, path, homophones, digit
//! strings, OD "plus", "add" mode, implants); the rest, as UTF-8, is split on newlines into
//! finals applied in order to a fresh session and to a session that already holds a chart,
//! a pending confirmation and history. Checked after every final:
//! * nothing panics (parse under every numbering, resolve, commit, serde);
//! * all or nothing: a rejected or ignored final leaves the session equal to before, and a
//!   held one changes nothing but the prompt;
//! * "undo" after an applied final (other than a bare undo) restores chart, cursor and
//!   history to the state before it, or right after its opening "scratch that"/"backspace"
//!   (unless it also paused the session, which then hears only "resume");
//! * the sessions survive a JSON round trip unchanged.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use perio::outcome::UndoScope;
use perio::parse::ParseSettings;
use perio::session::{Compat, Homophones, SplitDigitStrings};
use perio::{ChartingPath, Event, Numbering, Session, Settings, Status};

fn settings(b: u8) -> Settings {
    Settings {
        numbering: [
            Numbering::Universal,
            Numbering::Fdi,
            Numbering::Palmer,
            Numbering::Universal,
        ][usize::from(b & 3)],
        path: [
            ChartingPath::MaxillaryFirst,
            ChartingPath::FacialsFirst,
            ChartingPath::ClassicOd,
            ChartingPath::PerTooth,
        ][usize::from((b >> 2) & 3)],
        homophones: if b & 16 == 0 {
            Homophones::RunOnly
        } else {
            Homophones::Off
        },
        split_digit_strings: if b & 32 == 0 {
            SplitDigitStrings::ExactGroup
        } else {
            SplitDigitStrings::Never
        },
        compat: Compat {
            od_plus: b & 64 != 0,
        },
        flag_prefix_required: b & 128 != 0 && b & 1 != 0,
        implants_as_missing: b & 128 != 0,
        ..Settings::default()
    }
}

fn charted() -> &'static Session {
    static S: OnceLock<Session> = OnceLock::new();
    S.get_or_init(|| {
        let mut s = Session::default();
        for f in [
            "three two three",
            "tooth three buccal four four five bleeding distal, lingual two two three, mobility one",
            "teeth seventeen and thirty two missing",
            "tooth nineteen implant",
            "gingival margin one one two",
            "pocket depths",
            "three fourteen four",
        ] {
            s.apply_final(f);
        }
        s
    })
}

fn step(session: &mut Session, text: &str) {
    let before = session.clone();
    let outcome = session.apply_final(text);
    match outcome.status {
        Status::Rejected | Status::Ignored => {
            assert_eq!(*session, before, "{text:?} changed the session")
        }
        Status::NeedsConfirmation => {
            assert_eq!(session.chart(), before.chart());
            assert_eq!(session.nav(), before.nav());
            assert_eq!(session.history(), before.history());
        }
        Status::Ok => {
            // "undo" takes back what an applied final wrote, returning to the state before
            // it, or, for a final that opened with "scratch that"/"backspace", to the state
            // right after that opening undo (what it erased stays erased). A bare undo is
            // not recorded; a paused session hears nothing but "resume", "undo" included.
            let recorded = outcome
                .events
                .iter()
                .any(|e| !matches!(e, Event::Undo { .. } | Event::Session { .. }));
            if recorded && before.pending().is_none() && session.listening() {
                let mut expected = before.clone();
                match outcome.events.first() {
                    Some(Event::Undo {
                        scope: UndoScope::LastFinal,
                    }) => {
                        expected.undo();
                    }
                    Some(Event::Undo {
                        scope: UndoScope::LastValue,
                    }) => {
                        expected.backspace();
                    }
                    _ => {}
                }
                let mut undone = session.clone();
                assert_eq!(undone.undo().status, Status::Ok);
                assert_eq!(undone.chart(), expected.chart(), "undo of {text:?}");
                assert_eq!(undone.nav(), expected.nav(), "undo of {text:?}");
                assert_eq!(undone.history(), expected.history(), "undo of {text:?}");
            }
        }
    }
}

fn serde_json_round_trip(s: &Session) -> Session {
    let text = serde_json::to_string(s).expect("a session serializes");
    serde_json::from_str(&text).expect("a serialized session deserializes")
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    for numbering in [Numbering::Universal, Numbering::Fdi, Numbering::Palmer] {
        let _ = perio::parse(
            text,
            ParseSettings {
                numbering,
                ..ParseSettings::default()
            },
        );
    }
    let mut fresh = Session::new(settings(first));
    let mut used = charted().clone();
    for line in text.split('\n').take(8) {
        step(&mut fresh, line);
        step(&mut used, line);
    }
    assert_eq!(serde_json_round_trip(&fresh), fresh, "serde round trip");
    assert_eq!(serde_json_round_trip(&used), used, "serde round trip");
});
