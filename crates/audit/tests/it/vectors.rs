//! Known-answer vectors: a change of the canonical format or of any hash construction
//! fails here. The same values are printed in the `event` module docs.

use audit::chain::{GENESIS, chain_hash};
use audit::event::{EncodeError, Event, EventError, canonical, truncate_to_micros, validate};
use audit::merkle::leaf_hash;
use uuid::Uuid;

use crate::support::at;

/// The vector event (2024-05-06T07:08:09.123456Z).
pub fn vector_event() -> Event {
    Event {
        practice_id: Uuid::parse_str("00000000-0000-4000-8000-000000000001").unwrap(),
        seq: 0,
        event_id: Uuid::parse_str("00000000-0000-4000-8000-000000000002").unwrap(),
        occurred_at: at(1_714_979_289_123_456),
        actor_id: Some(Uuid::parse_str("00000000-0000-4000-8000-000000000003").unwrap()),
        patient_id: Some(Uuid::parse_str("00000000-0000-4000-8000-000000000004").unwrap()),
        action: "patient.read".to_owned(),
        outcome: "success".to_owned(),
        object_type: Some("patient".to_owned()),
        object_id: Some(Uuid::parse_str("00000000-0000-4000-8000-000000000004").unwrap()),
        request_id: None,
        // Deliberately unsorted: the encoding sorts by key.
        details: vec![
            ("view".to_owned(), "summary".to_owned()),
            ("mfa".to_owned(), "true".to_owned()),
        ],
    }
}

const CANONICAL_HEX: &str = concat!(
    "01",                               // version
    "00000000000040008000000000000001", // practice_id
    "00000000000040008000000000000002", // event_id
    "000617c3bb534a80",                 // occurred_at, µs since the epoch
    "01",
    "00000000000040008000000000000003", // actor_id
    "01",
    "00000000000040008000000000000004", // patient_id
    "0000000c",
    "70617469656e742e72656164", // action "patient.read"
    "00000007",
    "73756363657373", // outcome "success"
    "01",
    "00000007",
    "70617469656e74", // object_type "patient"
    "01",
    "00000000000040008000000000000004", // object_id
    "00",                               // request_id absent
    "00000002",                         // two details, sorted by key
    "00000003",
    "6d6661",
    "00000004",
    "74727565", // mfa = true
    "00000004",
    "76696577",
    "00000007",
    "73756d6d617279", // view = summary
);
const LEAF_HEX: &str = "174ea6b08819bfb5218c2b111c96eb3fe05401f3903109f1b0f8e4c2a026f898";
const CHAIN_HEX: &str = "a31def6fd26b2aa9784f8a9c841802bf8e5a0a5c9100942e664225b54988c059";

#[test]
fn canonical_encoding_known_answer() {
    let bytes = canonical(&vector_event()).unwrap();
    assert_eq!(hex::encode(&bytes), CANONICAL_HEX);
    assert_eq!(hex::encode(leaf_hash(&bytes)), LEAF_HEX);
    assert_eq!(hex::encode(chain_hash(&GENESIS, &bytes)), CHAIN_HEX);
}

#[test]
fn genesis_known_answer() {
    assert_eq!(
        hex::encode(GENESIS),
        "cbe387886f8177022e8dd75a93b5e50c142f4c624ddd02a0840c5d604cead0bb"
    );
}

#[test]
fn details_order_does_not_matter() {
    let mut e = vector_event();
    let a = canonical(&e).unwrap();
    e.details.reverse();
    assert_eq!(canonical(&e).unwrap(), a);
}

#[test]
fn repeated_detail_key_has_no_encoding() {
    let mut e = vector_event();
    e.details.push(("mfa".to_owned(), "false".to_owned()));
    assert_eq!(
        canonical(&e),
        Err(EncodeError::DuplicateDetailKey {
            key: "mfa".to_owned()
        })
    );
    // Also when the duplicates are adjacent and already in order.
    e.details = vec![
        ("a".to_owned(), "1".to_owned()),
        ("a".to_owned(), "1".to_owned()),
    ];
    assert!(matches!(
        canonical(&e),
        Err(EncodeError::DuplicateDetailKey { .. })
    ));
}

#[test]
fn sub_microsecond_time_has_no_encoding() {
    let mut e = vector_event();
    e.occurred_at += chrono::Duration::nanoseconds(1);
    assert!(matches!(
        canonical(&e),
        Err(EncodeError::SubMicrosecond { .. })
    ));
    e.occurred_at = truncate_to_micros(e.occurred_at);
    assert_eq!(canonical(&e).unwrap(), canonical(&vector_event()).unwrap());
}

#[test]
fn presence_bytes_keep_fields_apart() {
    // An absent actor followed by a present patient must not encode like the reverse.
    let mut a = vector_event();
    a.actor_id = None;
    let mut b = vector_event();
    b.patient_id = None;
    b.actor_id = a.patient_id;
    assert_ne!(canonical(&a).unwrap(), canonical(&b).unwrap());
    // Moving bytes between adjacent strings changes the encoding (length prefixes).
    let mut c = vector_event();
    c.action = "patient.rea".to_owned();
    c.outcome = "dsuccess".to_owned();
    assert_ne!(canonical(&c).unwrap(), canonical(&vector_event()).unwrap());
    // Empty details and one empty-looking entry differ.
    let mut d = vector_event();
    d.details.clear();
    let mut e = d.clone();
    e.details.push(("x".to_owned(), "y".to_owned()));
    assert_ne!(canonical(&d).unwrap(), canonical(&e).unwrap());
}

#[test]
fn seq_is_not_encoded() {
    let mut e = vector_event();
    e.seq = 41;
    assert_eq!(canonical(&e).unwrap(), canonical(&vector_event()).unwrap());
}

#[test]
fn times_before_1970_encode() {
    let mut e = vector_event();
    e.occurred_at = at(-1);
    let bytes = canonical(&e).unwrap();
    assert_eq!(&bytes[33..41], &(-1i64).to_be_bytes());
}

#[test]
fn validate_accepts_the_vector_event() {
    validate(&vector_event()).unwrap();
}

#[test]
fn validate_refuses_free_text() {
    fn add(e: &mut Event, key: &str, value: &str) {
        e.details.push((key.to_owned(), value.to_owned()));
    }
    let cases: Vec<(fn(&mut Event), &str)> = vec![
        (
            |e| e.action = "Patient Read".to_owned(),
            "action \"Patient Read\" is not a stable name (expected [a-z_]+.[a-z_]+)",
        ),
        (
            |e| e.action = "patient".to_owned(),
            "action \"patient\" is not a stable name (expected [a-z_]+.[a-z_]+)",
        ),
        (
            |e| e.action = "a.b.c".to_owned(),
            "action \"a.b.c\" is not a stable name (expected [a-z_]+.[a-z_]+)",
        ),
        (
            |e| e.outcome = String::new(),
            "outcome \"\" is not a stable name (expected [a-z_]+)",
        ),
        (
            |e| e.object_type = Some("note text".to_owned()),
            "object_type \"note text\" is not a stable name (expected [a-z_]+)",
        ),
        (
            |e| add(e, "Note", "x"),
            "detail key \"Note\" must match [a-z][a-z0-9_]* and be at most 64 bytes",
        ),
        (
            |e| add(e, "reason", "patient was upset"),
            "detail \"reason\" must be 1 to 128 characters from [A-Za-z0-9._:-] (ids and flags, never free text)",
        ),
        (
            |e| add(e, "empty", ""),
            "detail \"empty\" must be 1 to 128 characters from [A-Za-z0-9._:-] (ids and flags, never free text)",
        ),
        (
            |e| add(e, "long", &"x".repeat(129)),
            "detail \"long\" must be 1 to 128 characters from [A-Za-z0-9._:-] (ids and flags, never free text)",
        ),
        (
            |e| e.details = (0..33).map(|i| (format!("k{i}"), "1".to_owned())).collect(),
            "33 details entries; at most 32 are allowed",
        ),
        (|e| add(e, "mfa", "x"), "details repeat the key \"mfa\""),
    ];
    for (mutate, message) in cases {
        let mut e = vector_event();
        mutate(&mut e);
        let err: EventError = validate(&e).unwrap_err();
        assert_eq!(err.to_string(), message);
    }
}

#[test]
fn leap_second_has_no_encoding() {
    let leap = chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
        .unwrap()
        .and_hms_micro_opt(23, 59, 59, 1_500_000)
        .unwrap()
        .and_utc();
    let mut e = vector_event();
    e.occurred_at = leap;
    assert!(matches!(
        canonical(&e),
        Err(EncodeError::SubMicrosecond { .. })
    ));
}
