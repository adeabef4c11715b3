use super::*;

fn heard(text: &str) -> Heard {
    Heard {
        text: text.to_owned(),
        avg_logprob: Some(-0.2),
        no_speech_prob: Some(0.01),
    }
}

fn decided(text: &str) -> VoiceFinal {
    decide(&Session::default(), &heard(text), &Policy::default())
}

#[test]
fn normalizing() {
    let cases: &[(&str, &str)] = &[
        ("Three two three.", "three two three"),
        (
            "Tooth three buccal, three two four, bleeding distal. Lingual two two three.",
            "tooth three buccal, three two four, bleeding distal, lingual two two three",
        ),
        ("Three hundred twenty-three.", "323"),
        ("One thousand and ten.", "1010"),
        ("Jump to 2:30.", "jump to 2:30"),
        ("1,010", "1,010"),
        ("the 3rd", "the 3"),
        ("#14", "#14"),
        ("Let's go!", "lets go"),
    ];
    for (input, want) in cases {
        assert_eq!(join(&normalize(input)), *want, "{input}");
    }
}

#[test]
fn snapping() {
    let cases: &[(&str, &str)] = &[
        ("Focation two.", "furcation two"),
        ("vacation 2 on tooth 8", "furcation 2 on tooth 8"),
        (
            "Sublimation on tooth number three",
            "suppuration on tooth number three",
        ),
        ("Bleeding into proximal.", "bleeding interproximal"),
        ("free to free", "three to three"),
        // Conversation stays conversation: the engine refuses or ignores it.
        (
            "Your thumbs are bleeding a little.",
            "your thumbs are bleeding a little",
        ),
    ];
    for (input, want) in cases {
        assert_eq!(decided(input).text, *want, "{input}");
    }
    assert_eq!(
        decided("Okay, open wide for me.").preview.status,
        Status::Ignored
    );
    assert_eq!(
        decided("Your gums are bleeding a little.").preview.status,
        Status::Rejected
    );
}

#[test]
fn phonetic_distances() {
    assert!(phonetic_distance("free", "three") < MAX_SNAP_DISTANCE);
    assert!(phonetic_distance("focation", "furcation") < MAX_SNAP_DISTANCE);
    assert!(phonetic_distance("your", "four") > MAX_SNAP_DISTANCE);
    assert!(phonetic_distance("little", "lingle") > MAX_SNAP_DISTANCE);
    assert!(phonetic_distance("", "").abs() < f64::EPSILON);
}

#[test]
fn tooth_and_two() {
    // Only one reading charts: the heard "two" is read as "tooth".
    let v = decided("Two one missing.");
    assert_eq!(v.text, "tooth one missing");
    assert!(!v.held(), "{v:?}");
    assert_eq!(v.preview.status, Status::Ok);
    // "on to" is "on tooth".
    let v = decided("Mobility class three on to twenty four.");
    assert_eq!(v.text, "mobility class three on tooth twenty four");
    // Both readings chart whole triplets: ask.
    let fdi = Session::new(crate::Settings {
        numbering: crate::Numbering::Fdi,
        ..crate::Settings::default()
    });
    let v = decide(
        &fdi,
        &heard("Tooth one six three two three."),
        &Policy::default(),
    );
    assert_eq!(v.hold, vec![HoldReason::Ambiguous]);
    assert_eq!(v.alternatives, vec!["two one six three two three"]);
    // The reading with whole triplets wins over one with a broken run.
    let v = decided("Tooth three two.");
    assert_eq!(v.text, "two three two");
    let v = decided("Two two three three two two.");
    assert_eq!(v.text, "two two three three two two");
    assert!(!v.held());
    // "jump to four" and "jump tooth four" do the same: nothing to ask.
    assert!(!decided("Jump to four.").held());
}

#[test]
fn holds() {
    let session = Session::default();
    let policy = Policy::default();
    let unsure = Heard {
        text: "three two three".to_owned(),
        avg_logprob: Some(-1.5),
        no_speech_prob: Some(0.0),
    };
    assert_eq!(
        decide(&session, &unsure, &policy).hold,
        vec![HoldReason::LowConfidence]
    );
    let silence = Heard {
        text: "three two three".to_owned(),
        avg_logprob: Some(-0.1),
        no_speech_prob: Some(0.9),
    };
    assert!(
        decide(&session, &silence, &policy)
            .hold
            .contains(&HoldReason::NoSpeech)
    );
    // A refused or ignored final is shown as such, never held.
    let refused = Heard {
        avg_logprob: Some(-3.0),
        ..heard("your gums are bleeding")
    };
    let v = decide(&session, &refused, &policy);
    assert!(!v.held());
    assert_eq!(v.preview.status, Status::Rejected);
    // A far snap is held: two unknown words snapped into a final that charts.
    let v = decided("free to form bleeding");
    assert_eq!(v.text, "three to four bleeding");
    assert!(v.confidence < decided("three to four bleeding").confidence);
}

#[test]
fn scoring() {
    let policy = Policy::default();
    let scored = |s: &mut Session, typed: &str, h: &Heard| {
        let v = decide(s, h, &policy);
        apply_scored(s, typed, v)
    };
    let mut s = Session::default();
    let exact = scored(&mut s, "three two three", &heard("Three, two, three."));
    assert_eq!(exact.verdict, Verdict::Exact);
    let flagged = scored(&mut s, "three two three", &heard("Three two tree house."));
    assert_eq!(flagged.verdict, Verdict::Flagged, "{flagged:?}");
    let wrong = scored(&mut s, "three two three", &heard("Four two three."));
    assert_eq!(wrong.verdict, Verdict::Wrong);
    let unsure = Heard {
        avg_logprob: Some(-2.0),
        ..heard("three two three")
    };
    let held = scored(&mut s, "three two three", &unsure);
    assert_eq!(
        (held.verdict, held.applied.is_none()),
        (Verdict::Flagged, true)
    );
}

#[test]
fn a_second_reading_that_charts_otherwise_holds() {
    let s = Session::default();
    let policy = Policy::default();
    let first = decide(&s, &heard("Jump to tooth twenty."), &policy);
    assert!(needs_check(&first));
    let agree = cross_check(&s, first.clone(), &heard("jump to tooth 20"), &policy);
    assert!(!agree.held());
    // A reading the engine refuses does not count against the first while it still says the
    // first's tooth number (as a word or digits, alone or in a pair)…
    for same in [
        "jump to tooth wobble twenty",
        "jump 20 wobble",
        "twenty wobble",
    ] {
        let refused = cross_check(&s, first.clone(), &heard(same), &policy);
        assert!(!refused.held(), "{same}");
    }
    // …and holds the first when it does not say it at all (the number came from the prompt).
    let copied = cross_check(
        &s,
        first.clone(),
        &heard("jump to two thirty wobble"),
        &policy,
    );
    assert_eq!(copied.hold, vec![HoldReason::Disagreement]);
    let other = cross_check(&s, first, &heard("Jump to tooth three."), &policy);
    assert_eq!(other.hold, vec![HoldReason::Disagreement]);
    assert_eq!(other.alternatives, vec!["jump to tooth three"]);
    assert_ne!(prompt(), check_prompt());
}

#[test]
fn a_third_reading_settles_a_held_final_only_by_agreeing_with_one_of_its_readings() {
    let s = Session::default();
    let policy = Policy::default();
    let first = decide(&s, &heard("Jump to tooth twenty."), &policy);
    let held = cross_check(&s, first, &heard("jump to tooth wobble"), &policy);
    assert_eq!(held.hold, vec![HoldReason::Disagreement]);
    // The third prompt says none of the candidates' numbers: twenty is named, so teens.
    let third = tie_prompt(&s, &held).unwrap();
    assert!(!third.to_lowercase().contains("twenty"), "{third}");
    assert!(third.to_lowercase().contains("nineteen"), "{third}");
    assert_ne!(third, prompt());
    // Agreeing with the held final charts it.
    let settled = tie_break(&s, held.clone(), &heard("Jump to tooth 20."), &policy);
    assert!(!settled.held(), "{settled:?}");
    assert_eq!(settled.text, "jump to tooth twenty");
    // Saying another tooth, or nothing that charts, leaves it held (the third reading is
    // shown among the alternatives).
    for other in ["Jump to tooth eighteen.", "Jump to tooth nd.", ""] {
        let v = tie_break(&s, held.clone(), &heard(other), &policy);
        assert_eq!(v.hold, vec![HoldReason::Disagreement], "{other}");
        assert_eq!(v.text, "jump to tooth twenty");
    }
    // A third reading the recognizer is unsure of settles nothing.
    let unsure = Heard {
        avg_logprob: Some(-2.5),
        ..heard("Jump to tooth twenty.")
    };
    assert!(tie_break(&s, held.clone(), &unsure, &policy).held());
    // A final held for no speech is not tie-broken, nor one that charts without asking.
    let silence = Heard {
        no_speech_prob: Some(0.95),
        ..heard("three two three")
    };
    let v = decide(&s, &silence, &policy);
    assert!(v.hold.contains(&HoldReason::NoSpeech));
    assert_eq!(tie_prompt(&s, &v), None);
    let fine = decided("three two three");
    assert_eq!(tie_prompt(&s, &fine), None);
    // A teen among the candidates: the prompt's tooth numbers are twenty and thirty only.
    let teen = cross_check(
        &s,
        decide(&s, &heard("Tooth fourteen implant."), &policy),
        &heard("Tooth implant wobble."),
        &policy,
    );
    assert!(teen.held());
    let p = tie_prompt(&s, &teen).unwrap().to_lowercase();
    assert!(!p.contains("fourteen") && !p.contains("teen "), "{p}");
    // Both a teen and twenty among the candidates: no prompt is free of them.
    let both = cross_check(
        &s,
        decide(&s, &heard("Tooth fourteen implant."), &policy),
        &heard("Tooth twenty implant."),
        &policy,
    );
    assert_eq!(both.hold, vec![HoldReason::Disagreement]);
    assert_eq!(tie_prompt(&s, &both), None);
}

#[test]
fn a_third_reading_chooses_between_tooth_and_two() {
    let s = Session::default();
    let policy = Policy::default();
    // Unsure, and "on two eight" is tooth 28 as heard: the third reading says tooth eight,
    // which is one of the final's readings.
    let unsure = Heard {
        avg_logprob: Some(-0.9),
        ..heard("Focation two on two eight.")
    };
    let first = decide(&s, &unsure, &policy);
    assert_eq!(first.hold, vec![HoldReason::LowConfidence]);
    assert_eq!(candidates(&s, &first).len(), 1);
    assert!(tie_prompt(&s, &first).is_some());
    // The third reading says "on tooth eight", one of the final's readings, which the
    // engine refuses (no furcation on an incisor): the final is that refusal.
    let settled = tie_break(
        &s,
        first.clone(),
        &heard("Forcation two on tooth eight."),
        &policy,
    );
    assert!(!settled.held(), "{settled:?}");
    assert_eq!(settled.text, "furcation two on tooth eight");
    assert_eq!(settled.preview.status, Status::Rejected);
    // A refusal that is none of the final's readings settles nothing.
    let v = tie_break(&s, first.clone(), &heard("Furcation wobble."), &policy);
    assert!(v.held());
    // Unsure "tooth three" against "two three": the third reading picks one of them.
    let unsure = Heard {
        avg_logprob: Some(-0.9),
        ..heard("Tooth three two four.")
    };
    let first = decide(&s, &unsure, &policy);
    assert!(first.held(), "{first:?}");
    let settled = tie_break(&s, first.clone(), &heard("Tooth three, two four."), &policy);
    assert!(!settled.held() || settled.text == first.text, "{settled:?}");
    // A third reading that charts none of the readings (tooth nine) settles nothing.
    let v = tie_break(&s, first, &heard("Tooth nine two four."), &policy);
    assert!(v.held());
}

#[test]
fn prompt_speaks_the_lexicon() {
    let p = prompt();
    assert!(p.len() < 1200, "{}", p.len());
    for word in [
        "furcation",
        "suppuration",
        "mesial",
        "lingual",
        "tooth",
        "scratch",
    ] {
        assert!(p.to_lowercase().contains(word), "{word}");
    }
}

proptest::proptest! {
    #[test]
    fn never_panics(
        text in ".{0,300}",
        lp in proptest::option::of(proptest::num::f64::ANY),
        ns in proptest::option::of(proptest::num::f64::ANY),
    ) {
        let h = Heard { text, avg_logprob: lp, no_speech_prob: ns };
        let v = decide(&Session::default(), &h, &Policy::default());
        proptest::prop_assert!((0.0..=1.0).contains(&v.confidence));
    }

    #[test]
    fn never_panics_on_dictation_like_text(
        words in proptest::collection::vec(
            proptest::sample::select(vec![
                "two", "to", "tooth", "three", "hundred", "thousand", "and", "on", "free",
                "vacation", ",", ".", "1", "23", "2:30", "1,010", "thirty", "missing", "into",
                "proximal", "jump", "back",
            ]),
            0..40,
        )
    ) {
        let h = heard(&words.join(" "));
        let _ = decide(&Session::default(), &h, &Policy::default());
        let first = decide(&Session::default(), &h, &Policy::default());
        let checked = cross_check(&Session::default(), first, &h, &Policy::default());
        let _ = apply_scored(&mut Session::default(), "three", checked);
    }

    #[test]
    fn a_third_reading_only_chooses_among_the_readings_it_settles(
        first_words in proptest::collection::vec(
            proptest::sample::select(vec![
                "two", "to", "tooth", "three", "eight", "on", "thirty", "twenty", "fourteen",
                "implant", "missing", "jump", "furcation", "wobble", ",",
            ]),
            0..12,
        ),
        third_words in proptest::collection::vec(
            proptest::sample::select(vec![
                "two", "to", "tooth", "three", "eight", "on", "thirty", "twenty", "fourteen",
                "implant", "missing", "jump", "furcation", "wobble", ",",
            ]),
            0..12,
        ),
        lp in -2.0f64..0.0,
    ) {
        let s = Session::default();
        let policy = Policy::default();
        let unsure = Heard { avg_logprob: Some(lp), ..heard(&first_words.join(" ")) };
        let first = decide(&s, &unsure, &policy);
        let _ = tie_prompt(&s, &first);
        let settled = tie_break(&s, first.clone(), &heard(&third_words.join(" ")), &policy);
        if first.held() && !settled.held() {
            proptest::prop_assert!(readings_of(&first).contains(&settled.text));
        } else {
            proptest::prop_assert_eq!(&settled.text, &first.text);
            proptest::prop_assert_eq!(settled.held(), first.held());
        }
    }
}
