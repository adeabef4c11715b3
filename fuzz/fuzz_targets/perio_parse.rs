//! Fuzz target `perio_parse`: arbitrary finals through the whole engine.
//!
//! Input: the first byte picks the session settings (numbering, path, homophones, digit
//! strings, OD "plus", "add" mode, implants); the rest, as UTF-8, is split on newlines into
//! finals applied in order to a fresh session and to a session that already holds a chart,
//! a pending confirmation and history. Checked after every final:
//! * nothing panics (parse under every numbering, resolve, commit, serde);
//! * all or nothing: a rejected or ignored final leaves the session equal to before, and a
//!   held one changes nothing but the prompt;
//! * an applied final that added one history entry is exactly undone by "undo";
//! * the sessions survive a JSON round trip unchanged.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use perio::parse::ParseSettings;
use perio::session::{Compat, Homophones, SplitDigitStrings};
use perio::{ChartingPath, Numbering, Session, Settings, Status};

fn settings(b: u8) -> Settings {
    Settings {
        numbering: [Numbering::Universal, Numbering::Fdi, Numbering::Palmer, Numbering::Universal][usize::from(b & 3)],
        path: [ChartingPath::MaxillaryFirst, ChartingPath::FacialsFirst, ChartingPath::ClassicOd, ChartingPath::PerTooth]
            [usize::from((b >> 2) & 3)],
        homophones: if b & 16 == 0 { Homophones::RunOnly } else { Homophones::Off },
        split_digit_strings: if b & 32 == 0 { SplitDigitStrings::ExactGroup } else { SplitDigitStrings::Never },
        compat: Compat { od_plus: b & 64 != 0 },
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
        Status::Rejected | Status::Ignored => assert_eq!(*session, before, "{text:?} changed the session"),
        Status::NeedsConfirmation => {
            assert_eq!(session.chart(), before.chart());
            assert_eq!(session.nav(), before.nav());
            assert_eq!(session.history(), before.history());
        }
        Status::Ok => {
            if session.history().len() == before.history().len() + 1 && before.pending().is_none() {
                let mut undone = session.clone();
                assert_eq!(undone.apply_final("undo").status, Status::Ok);
                assert_eq!(undone.chart(), before.chart(), "undo of {text:?}");
                assert_eq!(undone.nav(), before.nav(), "undo of {text:?}");
            }
        }
    }
}

fn serde_json_round_trip(s: &Session) -> Session {
    let text = serde_json::to_string(s).expect("a session serializes");
    serde_json::from_str(&text).expect("a serialized session deserializes")
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    for numbering in [Numbering::Universal, Numbering::Fdi, Numbering::Palmer] {
        let _ = perio::parse(text, ParseSettings { numbering, ..ParseSettings::default() });
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
