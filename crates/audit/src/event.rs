//! Audit events and their canonical binary encoding.
//!
//! Every hash in this crate is taken over [`canonical`] bytes, so this encoding is the
//! contract between the sequencer that wrote the log and every tool that verifies it. It is
//! versioned, deterministic (one event has exactly one encoding) and unambiguous (no two
//! events share an encoding). Outside tools can reimplement it from this page alone.
//!
//! # Canonical encoding, version 1
//!
//! All integers are big-endian. A UUID is its 16 bytes in RFC 9562 order (the order of the
//! hex digits in its text form). The fields follow each other with no padding:
//!
//! | # | Field         | Encoding                                                            |
//! |---|---------------|---------------------------------------------------------------------|
//! | 1 | version       | `u8`, always `0x01` for this format                                 |
//! | 2 | `practice_id` | UUID (16 bytes)                                                     |
//! | 3 | `event_id`    | UUID (16 bytes)                                                     |
//! | 4 | `occurred_at` | `i64`: microseconds since 1970-01-01T00:00:00Z (may be negative)    |
//! | 5 | `actor_id`    | option of UUID                                                      |
//! | 6 | `patient_id`  | option of UUID                                                      |
//! | 7 | `action`      | string                                                              |
//! | 8 | `outcome`     | string                                                              |
//! | 9 | `object_type` | option of string                                                    |
//! |10 | `object_id`   | option of UUID                                                      |
//! |11 | `request_id`  | option of UUID                                                      |
//! |12 | `details`     | `u32` entry count, then per entry: string key, string value         |
//!
//! * **string**: `u32` byte length, then that many bytes of UTF-8 (no terminator, no
//!   normalization: the bytes as stored).
//! * **option of X**: one presence byte, `0x00` (absent, nothing follows) or `0x01`
//!   (present, X follows). No other presence byte value exists.
//! * **details**: entries sorted by key in ascending byte order (`memcmp` of the UTF-8
//!   bytes). Keys must be distinct: an event whose details repeat a key has no encoding
//!   ([`EncodeError::DuplicateDetailKey`]). The order the caller supplied is irrelevant.
//! * `occurred_at` must be a whole number of microseconds, the precision PostgreSQL's
//!   `timestamptz` keeps; a value with a sub-microsecond part has no encoding
//!   ([`EncodeError::SubMicrosecond`]), so the sequencer and the verifier can never round
//!   differently. Use [`truncate_to_micros`] before writing an event. (A chrono leap-second
//!   value, which PostgreSQL cannot store, has no encoding either.)
//! * `seq` is **not** encoded. An event's position is bound by the hash chain (each chain
//!   hash covers the previous one) and by the Merkle tree (leaf `i` is event `seq = i`),
//!   and leaving it out lets the bytes exist before the sequencer assigns the position.
//!
//! A decoder reads the version byte first and refuses versions it does not know; a new
//! format gets a new version byte and old events keep theirs.
//!
//! # Test vector
//!
//! The event of `tests/it/vectors.rs` (its `details` given unsorted, as
//! `[("view", "summary"), ("mfa", "true")]`) encodes to these bytes (hex, spaces and
//! annotations added) and hashes; a change of the format fails that test:
//!
//! ```text
//! 01                                        version
//! 00000000000040008000000000000001          practice_id
//! 00000000000040008000000000000002          event_id
//! 000617c3bb534a80                          occurred_at = 2024-05-06T07:08:09.123456Z
//! 01 00000000000040008000000000000003       actor_id (present)
//! 01 00000000000040008000000000000004       patient_id (present)
//! 0000000c 70617469656e742e72656164         action "patient.read"
//! 00000007 73756363657373                   outcome "success"
//! 01 00000007 70617469656e74                object_type "patient"
//! 01 00000000000040008000000000000004       object_id
//! 00                                        request_id (absent)
//! 00000002                                  2 details, sorted by key:
//! 00000003 6d6661 00000004 74727565         "mfa" = "true"
//! 00000004 76696577 00000007 73756d6d617279 "view" = "summary"
//!
//! leaf_hash  = 174ea6b08819bfb5218c2b111c96eb3fe05401f3903109f1b0f8e4c2a026f898
//! chain_hash = a31def6fd26b2aa9784f8a9c841802bf8e5a0a5c9100942e664225b54988c059
//!              (with prev = GENESIS)
//! ```
//!
//! # What an event may carry
//!
//! Ids, stable action and outcome names, object types and `details` made of short
//! identifier-like keys and values (ids, flags, counts). Never names, note text, contact
//! details, free text or tokens: the audit log is kept for years, is exported for review,
//! and must not itself become a store of protected health information. [`validate`]
//! enforces the character sets below when an event is written; [`canonical`] encodes any
//! event that was ever sequenced, so that verification never depends on today's rules.

use chrono::{DateTime, Timelike, Utc};
use uuid::Uuid;

/// The version byte that leads every version-1 canonical encoding.
pub const CANONICAL_VERSION: u8 = 0x01;

/// At most this many `details` entries ([`validate`]).
pub const MAX_DETAILS: usize = 32;

/// A detail key is at most this many bytes ([`validate`]).
pub const MAX_DETAIL_KEY_LEN: usize = 64;

/// A detail value is at most this many bytes ([`validate`]): room for a few UUIDs, not prose.
pub const MAX_DETAIL_VALUE_LEN: usize = 128;

/// Action, outcome and object type names are at most this many bytes ([`validate`]).
pub const MAX_NAME_LEN: usize = 64;

/// One audit event of one practice, as stored in `audit_event` plus its sequenced position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// The practice (tenant) whose log this event belongs to.
    pub practice_id: Uuid,
    /// Position in the practice's log: 0, 1, 2, … without gaps (assigned by the
    /// sequencer; not part of the canonical encoding).
    pub seq: u64,
    /// Unique id of the event.
    pub event_id: Uuid,
    /// When the audited attempt happened, microsecond precision.
    pub occurred_at: DateTime<Utc>,
    /// Who acted (absent for the system).
    pub actor_id: Option<Uuid>,
    /// The patient whose record was touched, if any.
    pub patient_id: Option<Uuid>,
    /// Stable action name, e.g. `patient.read`.
    pub action: String,
    /// Stable outcome name: `success` or `denied`.
    pub outcome: String,
    /// Kind of object acted on, e.g. `note`.
    pub object_type: Option<String>,
    /// Id of the object acted on.
    pub object_id: Option<Uuid>,
    /// Request that caused the event (joins application logs).
    pub request_id: Option<Uuid>,
    /// Extension metadata: ids and flags only, never free text (see the module docs).
    pub details: Vec<(String, String)>,
}

/// Why an event has no canonical encoding.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// Two `details` entries share a key; the encoding would depend on their order.
    #[error("details repeat the key {key:?}")]
    DuplicateDetailKey {
        /// The repeated key.
        key: String,
    },
    /// `occurred_at` has a sub-microsecond part that PostgreSQL would not keep (or is a
    /// leap second, which PostgreSQL cannot store).
    #[error("occurred_at {at} is not a whole number of microseconds within a second")]
    SubMicrosecond {
        /// The offending timestamp.
        at: DateTime<Utc>,
    },
    /// A string or the details list is longer than a `u32` length prefix can state.
    #[error("{field} is too long to encode ({len} bytes or entries)")]
    TooLong {
        /// Which field.
        field: &'static str,
        /// Its length.
        len: usize,
    },
}

/// Why an event may not be written to the audit log ([`validate`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// The event has no canonical encoding.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// A name field breaks its character set (`[a-z_]`, with one dot for actions).
    #[error("{field} {value:?} is not a stable name (expected {expected})")]
    BadName {
        /// Which field.
        field: &'static str,
        /// The value given.
        value: String,
        /// What was expected.
        expected: &'static str,
    },
    /// More than [`MAX_DETAILS`] entries.
    #[error("{count} details entries; at most {MAX_DETAILS} are allowed")]
    TooManyDetails {
        /// How many were given.
        count: usize,
    },
    /// A detail key breaks `[a-z][a-z0-9_]*` or is longer than [`MAX_DETAIL_KEY_LEN`].
    #[error(
        "detail key {key:?} must match [a-z][a-z0-9_]* and be at most {MAX_DETAIL_KEY_LEN} bytes"
    )]
    BadDetailKey {
        /// The key given.
        key: String,
    },
    /// A detail value is empty, longer than [`MAX_DETAIL_VALUE_LEN`], or holds a character
    /// outside `[A-Za-z0-9._:-]` (spaces in particular: values are ids and flags, not text).
    #[error(
        "detail {key:?} must be 1 to {MAX_DETAIL_VALUE_LEN} characters from [A-Za-z0-9._:-] (ids and flags, never free text)"
    )]
    BadDetailValue {
        /// The key whose value was refused (the value itself is not repeated here).
        key: String,
    },
}

/// `at` with any sub-microsecond part dropped (the value PostgreSQL keeps when it is given
/// a whole number of microseconds; call this before inserting so the stored and the hashed
/// value agree).
#[must_use]
pub fn truncate_to_micros(at: DateTime<Utc>) -> DateTime<Utc> {
    let nanos = at.nanosecond();
    let keep = nanos - nanos % 1_000;
    at.with_nanosecond(keep).unwrap_or(at)
}

/// The canonical encoding of `event` (format in the module docs).
pub fn canonical(event: &Event) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::with_capacity(encoded_len_hint(event));
    encode_into(event, &mut out)?;
    Ok(out)
}

/// Appends the canonical encoding of `event` to `out` (clears nothing; on error `out` may
/// hold a partial encoding). Lets a verifier reuse one buffer for millions of events.
pub fn encode_into(event: &Event, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    // chrono encodes a leap second as nanoseconds >= 10^9; PostgreSQL never stores one, and
    // its microsecond count would collide with the next second's.
    let nanos = event.occurred_at.nanosecond();
    if !nanos.is_multiple_of(1_000) || nanos >= 1_000_000_000 {
        return Err(EncodeError::SubMicrosecond {
            at: event.occurred_at,
        });
    }
    encode_fields_into(
        &EventFields {
            practice_id: event.practice_id,
            event_id: event.event_id,
            occurred_at_micros: event.occurred_at.timestamp_micros(),
            actor_id: event.actor_id,
            patient_id: event.patient_id,
            action: &event.action,
            outcome: &event.outcome,
            object_type: event.object_type.as_deref(),
            object_id: event.object_id,
            request_id: event.request_id,
            details: &event.details,
        },
        out,
    )
}

/// The encoded fields of an event, borrowed: what a reader that decodes rows straight from
/// a database buffer hands to [`encode_fields_into`] without building an [`Event`] (and
/// its owned strings) first. `K` and `V` are the detail key and value types (`String`,
/// `&str`, …).
#[derive(Clone, Copy, Debug)]
pub struct EventFields<'a, K, V> {
    /// The practice (tenant).
    pub practice_id: Uuid,
    /// Unique id of the event.
    pub event_id: Uuid,
    /// `occurred_at` as whole microseconds since 1970-01-01T00:00:00Z (the unit the format
    /// stores, so no sub-microsecond value can be given here).
    pub occurred_at_micros: i64,
    /// Who acted.
    pub actor_id: Option<Uuid>,
    /// The patient touched.
    pub patient_id: Option<Uuid>,
    /// Action name.
    pub action: &'a str,
    /// Outcome name.
    pub outcome: &'a str,
    /// Kind of object acted on.
    pub object_type: Option<&'a str>,
    /// Id of the object acted on.
    pub object_id: Option<Uuid>,
    /// Request that caused the event.
    pub request_id: Option<Uuid>,
    /// `details` entries in any order (sorted here; a repeated key is an error).
    pub details: &'a [(K, V)],
}

/// Appends the canonical encoding of `fields` to `out` (format in the module docs; the same
/// bytes [`encode_into`] writes for the [`Event`] holding these values). Clears nothing; on
/// error `out` may hold a partial encoding.
pub fn encode_fields_into<K, V>(
    fields: &EventFields<'_, K, V>,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError>
where
    K: AsRef<str>,
    V: AsRef<str>,
{
    out.push(CANONICAL_VERSION);
    out.extend_from_slice(fields.practice_id.as_bytes());
    out.extend_from_slice(fields.event_id.as_bytes());
    out.extend_from_slice(&fields.occurred_at_micros.to_be_bytes());
    put_opt_uuid(out, fields.actor_id);
    put_opt_uuid(out, fields.patient_id);
    put_str(out, "action", fields.action)?;
    put_str(out, "outcome", fields.outcome)?;
    match fields.object_type {
        None => out.push(0),
        Some(s) => {
            out.push(1);
            put_str(out, "object_type", s)?;
        }
    }
    put_opt_uuid(out, fields.object_id);
    put_opt_uuid(out, fields.request_id);
    let details = fields.details;
    put_len(out, "details", details.len())?;

    // Fast path: details usually arrive sorted (the store keeps them in a sorted JSON
    // object); only sort when they do not.
    let sorted_strictly = details
        .windows(2)
        .all(|w| matches!(w, [a, b] if key(a) < key(b)));
    if sorted_strictly {
        for (k, v) in details {
            put_str(out, "details key", k.as_ref())?;
            put_str(out, "details value", v.as_ref())?;
        }
        return Ok(());
    }
    let mut refs: Vec<&(K, V)> = details.iter().collect();
    refs.sort_unstable_by(|a, b| key(a).cmp(key(b)));
    for w in refs.windows(2) {
        if let [a, b] = w
            && key(a) == key(b)
        {
            return Err(EncodeError::DuplicateDetailKey {
                key: a.0.as_ref().to_owned(),
            });
        }
    }
    for (k, v) in refs {
        put_str(out, "details key", k.as_ref())?;
        put_str(out, "details value", v.as_ref())?;
    }
    Ok(())
}

fn key<K: AsRef<str>, V>(entry: &(K, V)) -> &[u8] {
    entry.0.as_ref().as_bytes()
}

/// Checks that `event` may be written to the audit log: it has a canonical encoding and its
/// names and details keep to the character sets that make free text (and so PHI)
/// impossible to smuggle in. Run it before inserting; the verifier does not (old events
/// stay verifiable even if these rules tighten).
pub fn validate(event: &Event) -> Result<(), EventError> {
    canonical(event)?;
    check_name("action", &event.action, true)?;
    check_name("outcome", &event.outcome, false)?;
    if let Some(t) = &event.object_type {
        check_name("object_type", t, false)?;
    }
    if event.details.len() > MAX_DETAILS {
        return Err(EventError::TooManyDetails {
            count: event.details.len(),
        });
    }
    for (k, v) in &event.details {
        let key_ok = k.len() <= MAX_DETAIL_KEY_LEN
            && k.bytes().next().is_some_and(|c| c.is_ascii_lowercase())
            && k.bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_');
        if !key_ok {
            return Err(EventError::BadDetailKey { key: k.clone() });
        }
        let value_ok =
            !v.is_empty() && v.len() <= MAX_DETAIL_VALUE_LEN && v.bytes().all(detail_char);
        if !value_ok {
            return Err(EventError::BadDetailValue { key: k.clone() });
        }
    }
    Ok(())
}

/// Whether `c` may appear in a detail value ([`validate`]).
fn detail_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b':' | b'-')
}

/// A machine string from outside (a KEK id, a user agent, a route template) as a detail value
/// [`validate`] accepts: every character outside `[A-Za-z0-9._:-]` becomes `_`, and the result
/// is cut to [`MAX_DETAIL_VALUE_LEN`] bytes. `None` when nothing is left. Never use it on text
/// a person typed: such text has no place in an event at all.
#[must_use]
pub fn detail_value_lossy(s: &str) -> Option<String> {
    let v: String = s
        .bytes()
        .take(MAX_DETAIL_VALUE_LEN)
        .map(|c| if detail_char(c) { char::from(c) } else { '_' })
        .collect();
    (!v.is_empty()).then_some(v)
}

fn check_name(field: &'static str, value: &str, dotted: bool) -> Result<(), EventError> {
    let part_ok = |p: &str| !p.is_empty() && p.bytes().all(|c| c.is_ascii_lowercase() || c == b'_');
    let ok = value.len() <= MAX_NAME_LEN
        && if dotted {
            value
                .split_once('.')
                .is_some_and(|(a, b)| part_ok(a) && part_ok(b))
        } else {
            part_ok(value)
        };
    if ok {
        Ok(())
    } else {
        Err(EventError::BadName {
            field,
            value: value.to_owned(),
            expected: if dotted { "[a-z_]+.[a-z_]+" } else { "[a-z_]+" },
        })
    }
}

fn encoded_len_hint(event: &Event) -> usize {
    let details: usize = event
        .details
        .iter()
        .map(|(k, v)| 8 + k.len() + v.len())
        .sum();
    1 + 16
        + 16
        + 8
        + 4 * 17
        + 8
        + event.action.len()
        + event.outcome.len()
        + 5
        + event.object_type.as_ref().map_or(0, String::len)
        + 4
        + details
}

fn put_opt_uuid(out: &mut Vec<u8>, id: Option<Uuid>) {
    match id {
        None => out.push(0),
        Some(id) => {
            out.push(1);
            out.extend_from_slice(id.as_bytes());
        }
    }
}

fn put_len(out: &mut Vec<u8>, field: &'static str, len: usize) -> Result<(), EncodeError> {
    let n = u32::try_from(len).map_err(|_| EncodeError::TooLong { field, len })?;
    out.extend_from_slice(&n.to_be_bytes());
    Ok(())
}

fn put_str(out: &mut Vec<u8>, field: &'static str, s: &str) -> Result<(), EncodeError> {
    put_len(out, field, s.len())?;
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // issue 15.1 — machine strings from outside become values `validate` accepts.
    #[test]
    fn lossy_detail_values_pass_validation() {
        let cases = [
            (
                "Mozilla/5.0 (X11; Linux x86_64)",
                Some("Mozilla_5.0__X11__Linux_x86_64_"),
            ),
            (
                "aws-kms:arn:aws:kms:eu-west-1:1:key/ab-12",
                Some("aws-kms:arn:aws:kms:eu-west-1:1:key_ab-12"),
            ),
            ("local:0190", Some("local:0190")),
            ("", None),
        ];
        for (input, want) in cases {
            assert_eq!(detail_value_lossy(input).as_deref(), want, "{input}");
        }
        let long = detail_value_lossy(&"é".repeat(200)).unwrap();
        assert_eq!(long.len(), MAX_DETAIL_VALUE_LEN);
        for v in [long, detail_value_lossy("a b/c{d}").unwrap()] {
            let event = Event {
                practice_id: Uuid::nil(),
                seq: 0,
                event_id: Uuid::nil(),
                occurred_at: DateTime::UNIX_EPOCH,
                actor_id: None,
                patient_id: None,
                action: "auth.sign_in".into(),
                outcome: "success".into(),
                object_type: None,
                object_id: None,
                request_id: None,
                details: vec![("user_agent".into(), v)],
            };
            validate(&event).unwrap();
        }
    }
}
