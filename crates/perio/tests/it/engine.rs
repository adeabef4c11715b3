//! Engine behaviour, one line per case: context, earlier finals, the final, and the outcome
//! in the short notation of [`crate::support::brief`] (exact reject reasons and heard words).

use crate::support::run;

type Case = (
    &'static str,
    &'static [&'static str],
    &'static str,
    &'static str,
);

#[rustfmt::skip]
const CASES: &[Case] = &[
    // P1/P2/P4: paths, triplet order, skipped teeth, end of the path
    (r#"{"path":"per_tooth"}"#, &[], "three two three four five six", "ok [pd 1DB=3, pd 1B=2, pd 1MB=3, pd 1ML=4, pd 1L=5, pd 1DL=6] @2F.DB"),
    (r#"{"path":"facials_first","cursor":{"tooth":16,"surface":"F","site":"MB"}}"#, &[], "three two three four", "ok [pd 16MB=3, pd 16B=2, pd 16DB=3, pd 17DB=4] @17F.B {run_not_triplet}"),
    (r#"{"path":"classic_od","cursor":{"tooth":17,"surface":"F","site":"DB"}}"#, &[], "three two three four", "ok [pd 17DB=3, pd 17DL=2, pd 17L=3, pd 17ML=4] @18L.DL"),
    (r#"{"triplet_order":"mesial_first"}"#, &[], "three two three", "ok [pd 1MB=3, pd 1B=2, pd 1DB=3] @2F.MB"),
    (r#"{"tooth_status":{"2":"missing"},"cursor":{"tooth":1,"surface":"F","site":"MB"}}"#, &[], "three two", "ok [pd 1MB=3, pd 3DB=2] @3F.B"),
    (r#"{"tooth_status":{"2":"implant"},"implants_as_missing":true,"cursor":{"tooth":1,"surface":"F","site":"MB"}}"#, &[], "three two", "ok [pd 1MB=3, pd 3DB=2] @3F.B"),
    (r#"{"tooth_status":{"2":"implant"},"cursor":{"tooth":1,"surface":"F","site":"MB"}}"#, &[], "three two", "ok [pd 1MB=3, pd 2DB=2] @2F.B"),
    (r#"{"cursor":{"tooth":32,"surface":"F","site":"DB"}}"#, &[], "three", "ok [pd 32DB=3] @32F.DB {end_of_path}"),
    (r#"{"cursor":{"tooth":32,"surface":"F","site":"DB"}}"#, &[], "three four", "rejected tooth_not_available \"four\""),
    // N5 / G1–G3 / G4 / P5: values by mode
    (r#"{"compat":{"od_plus":true}}"#, &[], "plus three two three", "needs_confirmation [pd 1DB=13, pd 1B=2, pd 1MB=3] @2F.DB {depth_over_12:13}"),
    ("{}", &[], "plus three two three", "rejected ambiguous_sign \"plus three\""),
    (r#"{"mode":"gm"}"#, &[], "plus ten", "rejected out_of_range \"plus ten\""),
    (r#"{"mode":"mgj","cursor":{"tooth":3,"surface":"L","site":"ML"}}"#, &[], "two", "rejected no_mgj_on_palatal \"two\""),
    (r#"{"mode":"mgj","cursor":{"tooth":16,"surface":"F","site":"MB"}}"#, &[], "two two two", "ok [kg 16MB=2, kg 16B=2, kg 16DB=2] @32L.DL"),
    (r#"{"mode":"mobility"}"#, &[], "two", "rejected ambiguous_command \"two\""),
    // N3: digit strings
    (r#"{"path":"per_tooth"}"#, &[], "323434", "ok [pd 1DB=3, pd 1B=2, pd 1MB=3, pd 1ML=4, pd 1L=3, pd 1DL=4] @2F.DB {digit_string_split:323434->3,2,3,4,3,4}"),
    (r#"{"cursor":{"tooth":1,"surface":"F","site":"B"}}"#, &[], "323", "rejected concatenated_number \"323\""),
    (r#"{"split_digit_strings":"never"}"#, &[], "323", "rejected concatenated_number \"323\""),
    ("{}", &[], "323434", "rejected concatenated_number \"323434\""),
    // H1–H3: homophones; Bola repeat
    (r#"{"homophones":"off"}"#, &[], "three for three", "rejected incomplete \"for\""),
    ("{}", &[], "for to", "ignored [] @1F.DB"),
    ("{}", &[], "for to tree", "ok [pd 1DB=4, pd 1B=2, pd 1MB=3] @2F.DB {homophone:for->4, homophone:to->2, homophone:tree->3}"),
    ("{}", &[], "one one one repeat two times", "ok [pd 1DB=1, pd 1B=1, pd 1MB=1, pd 2DB=1, pd 2B=1, pd 2MB=1] @3F.DB"),
    // C1: inline repairs of surface, site and grade
    ("{}", &[], "tooth three buccal sorry lingual two two three", "ok [@3L.ML, pd 3ML=2, pd 3L=2, pd 3DL=3] @2L.ML {repair:surface F->L}"),
    ("{}", &["three two four"], "bleeding distal sorry mesial", "ok [+bleeding 1MB] @2F.DB {repair:site distal->mesial}"),
    ("{}", &["three two four"], "mobility two sorry three", "ok [mob 1=3] @2F.DB {repair:grade 2->3}"),
    // F1–F5: flags
    ("{}", &[], "bleeding", "rejected incomplete \"bleeding\""),
    ("{}", &["three two four"], "no bleeding", "ok [-bleeding 1MB] @2F.DB"),
    ("{}", &[], "bleeding on tooth three", "rejected incomplete \"tooth three\""),
    ("{}", &[], "plaque all six on tooth fourteen", "ok [+plaque 14MB, +plaque 14B, +plaque 14DB, +plaque 14ML, +plaque 14L, +plaque 14DL] @1F.DB"),
    ("{}", &["three two four"], "calculus whole tooth", "ok [+calculus 1MB, +calculus 1B, +calculus 1DB, +calculus 1ML, +calculus 1L, +calculus 1DL] @2F.DB"),
    ("{}", &["three two four"], "bleeding mesial distal", "ok [+bleeding 1MB, +bleeding 1DB] @2F.DB"),
    ("{}", &["three two four"], "bleeding facial", "ok [+bleeding 1B] @2F.DB"),
    (r#"{"flag_prefix_required":true}"#, &["three two four"], "add bleeding", "ok [+bleeding 1MB] @2F.DB"),
    (r#"{"flag_prefix_required":true}"#, &["three two four"], "bleeding", "rejected ambiguous_command \"bleeding\""),
    ("{}", &[], "bleeding on sextant two", "needs_confirmation [+bleeding 6MB, +bleeding 6B, +bleeding 6DB, +bleeding 6ML, +bleeding 6L, +bleeding 6DL, +bleeding 7MB, +bleeding 7B, +bleeding 7DB, +bleeding 7ML, +bleeding 7L, +bleeding 7DL, +bleeding 8MB, +bleeding 8B, +bleeding 8DB, +bleeding 8ML, +bleeding 8L, +bleeding 8DL, +bleeding 9MB, +bleeding 9B, +bleeding 9DB, +bleeding 9ML, +bleeding 9L, +bleeding 9DL, +bleeding 10MB, +bleeding 10B, +bleeding 10DB, +bleeding 10ML, +bleeding 10L, +bleeding 10DL, +bleeding 11MB, +bleeding 11B, +bleeding 11DB, +bleeding 11ML, +bleeding 11L, +bleeding 11DL] @1F.DB"),
    (r#"{"tooth_status":{"3":"missing"}}"#, &[], "bleeding on tooth three all", "rejected tooth_not_available \"tooth three\""),
    // Navigation
    ("{}", &[], "next", "ok [@2F.DB] @2F.DB"),
    ("{}", &[], "next site", "ok [@1F.B] @1F.B"),
    (r#"{"cursor":{"tooth":3,"surface":"F","site":"DB"}}"#, &[], "previous site", "ok [@2F.MB] @2F.MB"),
    (r#"{"cursor":{"tooth":3,"surface":"F","site":"DB"}}"#, &[], "previous tooth", "ok [@2F.DB] @2F.DB"),
    ("{}", &[], "select tooth five lingual distal", "ok [@5L.DL] @5L.DL"),
    ("{}", &[], "switch", "ok [@1L.ML] @1L.ML"),
    (r#"{"cursor":{"tooth":3,"surface":"L","site":"L"}}"#, &[], "flip", "ok [@3F.DB] @3F.DB"),
    ("{}", &["three two three"], "lingual three three three", "ok [@1L.ML, pd 1ML=3, pd 1L=3, pd 1DL=3] @32L.DL"),
    ("{}", &["three two three", "jump to tooth ten"], "resume path", "ok [@2F.DB] @2F.DB"),
    ("{}", &[], "resume path", "rejected incomplete \"resume path\""),
    ("{}", &[], "jump two three", "needs_confirmation [] @1F.DB alts [@3F.DB | @2F.DB, pd 2DB=3] {ambiguous_to_slot:two}"),
    ("{}", &[], "jump too tooth five", "ok [@5F.DB] @5F.DB"),
    // Palmer and FDI numbering, # numerals
    ("{}", &[], "UR6 three two three", "ok [@3F.DB, pd 3DB=3, pd 3B=2, pd 3MB=3] @4F.DB"),
    ("{}", &[], "tooth lower right six buccal two", "ok [@30F.MB, pd 30MB=2] @30F.B {run_not_triplet}"),
    (r#"{"numbering":"fdi"}"#, &[], "tooth 16", "ok [@3F.DB] @3F.DB"),
    (r#"{"numbering":"fdi"}"#, &[], "jump to tooth four eight lingual", "ok [@32L.DL] @32L.DL"),
    (r#"{"numbering":"palmer"}"#, &[], "tooth three", "rejected bad_tooth \"tooth three\""),
    (r#"{"numbering":"palmer"}"#, &[], "upper left one three three three", "ok [@9F.MB, pd 9MB=3, pd 9B=3, pd 9DB=3] @10F.MB"),
    ("{}", &[], "#14 three two three", "ok [@14F.MB, pd 14MB=3, pd 14B=2, pd 14DB=3] @15F.MB"),
    // S1: tooth status
    ("{}", &[], "teeth one through three missing", "ok [1 missing, 2 missing, 3 missing] @4F.DB"),
    ("{}", &[], "missing tooth five", "ok [5 missing] @1F.DB"),
    ("{}", &[], "skip tooth five", "ok [5 skipped] @1F.DB"),
    ("{}", &[], "tooth five skipped", "ok [5 skipped] @1F.DB"),
    (r#"{"tooth_status":{"3":"missing"}}"#, &[], "tooth three", "rejected tooth_not_available \"tooth three\""),
    ("{}", &["tooth three buccal three two three"], "tooth three missing", "ok [3 missing] @4F.DB {status_over_values:3}"),
    // T2/T3: furcation
    (r#"{"cursor":{"tooth":3,"surface":"L","site":"L"}}"#, &[], "furcation one", "rejected furcation_entrance_required \"tooth 3\""),
    ("{}", &[], "furcation two lingual on tooth nineteen", "ok [furc 19L=2] @1F.DB"),
    ("{}", &[], "furcation two lingual on tooth three", "rejected furcation_entrance_required \"tooth three\""),
    ("{}", &[], "furcation one on tooth five", "ok [furc 5D=1] @1F.DB"),
    (r#"{"allow_unusual_furcation":true}"#, &[], "furcation one on tooth eight", "ok [furc 8D=1] @1F.DB {unusual_furcation:8}"),
    ("{}", &[], "through and through on tooth thirty buccal", "ok [furc 30B=3] @1F.DB"),
    (r#"{"cursor":{"tooth":30,"surface":"F","site":"MB"}}"#, &[], "furca class iv", "ok [furc 30B=3 iv] @30F.MB {glickman_iv:30}"),
    (r#"{"tooth_status":{"3":"implant"}}"#, &[], "furcation two on tooth three buccal", "rejected no_furcation_on_tooth \"tooth three\""),
    // T1: mobility
    ("{}", &["three two four"], "mobility one plus", "ok [mob 1=1+] @2F.DB"),
    ("{}", &[], "tooth three mobility two", "ok [mob 3=2] @1F.DB"),
    ("{}", &[], "mobility on tooth three grade two", "ok [mob 3=2] @1F.DB"),
    ("{}", &[], "mobility on tooth three two", "rejected incomplete \"mobility on tooth three\""),
    // Spot commands (G1–G4)
    ("{}", &[], "recession two on tooth eight facial", "ok [rec 8B=2] @1F.DB"),
    ("{}", &[], "recession with plus two on tooth eight facial", "ok [rec 8B=-2] @1F.DB"),
    ("{}", &[], "keratinized tissue one on tooth twenty four facial", "ok [kg 24B=1] @1F.DB {kgw_below_2:24:B}"),
    ("{}", &[], "mgj two on tooth three lingual", "rejected no_mgj_on_palatal \"two\""),
    ("{}", &[], "recession two on tooth eight", "rejected incomplete \"tooth eight\""),
    // P5: mode commands
    (r#"{"mode":"gm"}"#, &[], "start pocket depths three", "ok [mode pd, pd 1DB=3] @1F.B {run_not_triplet}"),
    ("{}", &[], "switch to recession two", "ok [mode gm, rec 1DB=2] @1F.B {run_not_triplet}"),
    ("{}", &[], "go to gm tooth five one one one", "ok [mode gm, @5F.DB, rec 5DB=1, rec 5B=1, rec 5MB=1] @6F.DB"),
    // Session commands; C2 undo and backspace; CAL < 0; FDI anchor
    ("{}", &["pause"], "three two three", "ignored [] @1F.DB {paused}"),
    ("{}", &["pause"], "resume", "ok [session Resume] @1F.DB"),
    ("{}", &["three two three", "three two four"], "undo", "ok [undo LastFinal] @2F.DB"),
    ("{}", &["three two three", "three two four"], "backspace", "ok [undo LastValue] @2F.MB"),
    ("{}", &["three two three"], "scratch that three two four", "ok [undo LastFinal, pd 1DB=3, pd 1B=2, pd 1MB=4] @2F.DB"),
    ("{}", &[], "backspace", "rejected incomplete \"backspace\""),
    (r#"{"chart":{"3":{"pd":{"DB":2}}},"cursor":{"tooth":3,"surface":"F","site":"DB"},"mode":"gm"}"#, &[], "plus five", "ok [rec 3DB=-5] @3F.B {run_not_triplet, cal_negative:3:DB}"),
    (r#"{"numbering":"fdi"}"#, &[], "tooth one six bleeding all", "ok [@3F.DB, +bleeding 3MB, +bleeding 3B, +bleeding 3DB] @3F.DB"),
];

#[test]
fn engine_cases() {
    let mut failures = Vec::new();
    for (ctx, history, utterance, want) in CASES {
        let got = run(ctx, history, utterance);
        if got != *want {
            failures.push(format!(
                "{utterance:?} in {ctx} after {history:?}\n   want {want}\n    got {got}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
}
