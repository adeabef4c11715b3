//! A fast reader for `audit verify`: the sequenced positions (`audit_sequence`, in sequence
//! order) and the events (`audit_event`, in storage order) are streamed on two connections with
//! `COPY … TO STDOUT (FORMAT binary)`, each by its own task, and matched by event id on the
//! verifier's thread with a reorder buffer — so the server never joins or sorts the whole log
//! before sending the first row, and decoding overlaps with verification.
//!
//! The events task decodes each row straight from the COPY buffer (no per-field
//! allocation), writes its canonical encoding into the batch it sends and computes its leaf
//! hash; the verifier thread matches, chains and rebuilds the tree. The statements take their
//! parameters from transaction-local settings, so no SQL text is built from values.
//!
//! The verifier thread also reports the events no streamed position claimed (normally none, or
//! the few still queued), so the check for events that were never queued only looks at
//! those instead of anti-joining the whole log.

use std::collections::HashMap;

use audit::event::{EncodeError, EventFields, encode_fields_into};
use audit::merkle::leaf_hash;
use audit::verify::{Encoded, Sequenced, Verification};
use audit::{Checkpoint, Hash, verify::VerifyStart};
use domain::PracticeId;
use tokio::sync::mpsc::{Receiver, Sender};
use uuid::Uuid;

/// Positions from `chartroom.verify_from` on, in sequence order (the practice from
/// `chartroom.practice_id`). The settings are read once (`(select …)`), not per row.
const POSITIONS_SQL: &str = "copy (
    select seq, event_id, chain_hash, leaf_hash from audit_sequence
     where practice_id = (select app.practice())
       and seq >= (select current_setting('chartroom.verify_from')::bigint)
     order by seq
) to stdout (format binary)";

/// Every event of the practice, in storage order: exactly the columns of the canonical
/// encoding (the practice id is the filter). `(select app.practice())` is evaluated once;
/// a bare `app.practice()` would parse the setting again for every row of the scan.
const EVENTS_SQL: &str = "copy (
    select event_id, occurred_at, actor_id, patient_id, action, outcome, object_type, object_id,
           request_id, details::text
      from audit_event where practice_id = (select app.practice())
) to stdout (format binary)";

/// Columns of [`POSITIONS_SQL`].
const POSITION_FIELDS: usize = 4;
/// Columns of [`EVENTS_SQL`].
const EVENT_FIELDS: usize = 10;

/// Rows per batch sent to the verifier thread: large enough that channel hand-offs cost
/// nothing per row, small enough that the pipeline starts at once.
const BATCH_ROWS: usize = 2048;

/// Batches in flight per stream: bounds what is read ahead of the verifier (about 8 MB of
/// events, 3 MB of positions).
const CHANNEL_BATCHES: usize = 16;

/// Above this many unclaimed events, counting the never-queued ones by id is not worth it:
/// the whole-log query runs instead.
pub(crate) const MAX_UNCLAIMED: usize = 100_000;

/// PostgreSQL binary COPY signature (`COPY` docs, "Binary Format", file header).
const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";
/// Microseconds between the Unix epoch and PostgreSQL's (2000-01-01).
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// A sequenced position (one `audit_sequence` row).
#[derive(Debug)]
struct Position {
    seq: u64,
    event_id: Uuid,
    chain_hash: Hash,
    leaf_hash: Hash,
}

/// A batch of positions (a decoding failure ends the stream).
type PositionBatch = Vec<Result<Position, String>>;

/// Events in canonical form: their encodings back to back in `bytes`.
#[derive(Debug, Default)]
struct EventBatch {
    bytes: Vec<u8>,
    rows: Vec<EventRow>,
}

/// One row of an [`EventBatch`].
#[derive(Debug)]
enum EventRow {
    /// A decoded event: its id and canonical encoding (`bytes[start..end]`) with its leaf
    /// hash, or why it has none.
    Event {
        id: Uuid,
        encoding: Result<(usize, usize, Hash), EncodeError>,
    },
    /// The row (or the stream from here on) could not be read.
    Failed(String),
}

impl EventBatch {
    fn with_capacity(rows: usize) -> Self {
        Self {
            bytes: Vec::with_capacity(rows * 160),
            rows: Vec::with_capacity(rows),
        }
    }

    fn len(&self) -> usize {
        self.rows.len()
    }

    fn push_failure(&mut self, error: String) {
        self.rows.push(EventRow::Failed(error));
    }

    /// Decodes one `EVENTS_SQL` row of `practice` into the batch.
    fn push_row(&mut self, practice: PracticeId, f: &[Option<&[u8]>; EVENT_FIELDS]) {
        let start = self.bytes.len();
        let row = match encode_row(practice, f, &mut self.bytes) {
            Ok((id, Ok(()))) => {
                let end = self.bytes.len();
                let leaf = leaf_hash(self.bytes.get(start..end).unwrap_or_default());
                EventRow::Event {
                    id,
                    encoding: Ok((start, end, leaf)),
                }
            }
            Ok((id, Err(e))) => {
                self.bytes.truncate(start);
                EventRow::Event {
                    id,
                    encoding: Err(e),
                }
            }
            Err(e) => {
                self.bytes.truncate(start);
                EventRow::Failed(e)
            }
        };
        self.rows.push(row);
    }
}

/// Incremental decoder of a binary COPY stream of `N` columns. Rows are decoded straight
/// from the chunks the connection hands over (PostgreSQL sends one row per message); only a
/// row split across chunks is copied.
#[derive(Debug)]
struct CopyDecoder<const N: usize> {
    buf: Vec<u8>,
    header: bool,
    done: bool,
}

impl<const N: usize> Default for CopyDecoder<N> {
    fn default() -> Self {
        Self {
            buf: Vec::new(),
            header: false,
            done: false,
        }
    }
}

fn be_i16(b: &[u8]) -> Option<i16> {
    Some(i16::from_be_bytes(b.get(..2)?.try_into().ok()?))
}
fn be_i32(b: &[u8]) -> Option<i32> {
    Some(i32::from_be_bytes(b.get(..4)?.try_into().ok()?))
}
fn be_i64(b: &[u8]) -> Option<i64> {
    Some(i64::from_be_bytes(b.get(..8)?.try_into().ok()?))
}

impl<const N: usize> CopyDecoder<N> {
    /// Whether the end-of-data marker was seen.
    fn finished(&self) -> bool {
        self.done
    }

    /// Adds bytes from the stream and calls `row` with each complete row's fields (`None` =
    /// NULL). An error (from the framing or from `row`) ends the stream.
    fn feed(
        &mut self,
        chunk: &[u8],
        mut row: impl FnMut(&[Option<&[u8]>; N]) -> Result<(), String>,
    ) -> Result<(), String> {
        if self.buf.is_empty() {
            let used = self.parse(chunk, &mut row)?;
            self.buf
                .extend_from_slice(chunk.get(used..).unwrap_or_default());
        } else {
            let mut buf = std::mem::take(&mut self.buf);
            buf.extend_from_slice(chunk);
            let used = self.parse(&buf, &mut row)?;
            buf.drain(..used.min(buf.len()));
            self.buf = buf;
        }
        Ok(())
    }

    /// Decodes every complete row of `data`; returns the bytes used.
    fn parse(
        &mut self,
        data: &[u8],
        row: &mut impl FnMut(&[Option<&[u8]>; N]) -> Result<(), String>,
    ) -> Result<usize, String> {
        let mut at = 0;
        if !self.header {
            if data.len() < 19 {
                return Ok(0);
            }
            if data.get(..11) != Some(SIGNATURE.as_slice()) {
                return Err("not a binary COPY stream".into());
            }
            let ext = data
                .get(15..)
                .and_then(be_i32)
                .and_then(|e| usize::try_from(e).ok())
                .ok_or("bad COPY header")?;
            if data.len() < 19 + ext {
                return Ok(0);
            }
            at = 19 + ext;
            self.header = true;
        }
        let fields = i16::try_from(N).map_err(|_| "too many COPY fields")?;
        while !self.done {
            let Some(count) = data.get(at..).and_then(be_i16) else {
                break;
            };
            if count == -1 {
                self.done = true;
                at += 2;
                break;
            }
            if count != fields {
                return Err(format!("COPY tuple has {count} fields, expected {N}"));
            }
            let mut p = at + 2;
            let mut values: [Option<&[u8]>; N] = [None; N];
            let mut complete = true;
            for value in &mut values {
                let Some(len) = data.get(p..).and_then(be_i32) else {
                    complete = false;
                    break;
                };
                p += 4;
                if len < 0 {
                    continue;
                }
                let len = usize::try_from(len).map_err(|_| "bad field length")?;
                let Some(v) = data.get(p..p + len) else {
                    complete = false;
                    break;
                };
                *value = Some(v);
                p += len;
            }
            if !complete {
                break;
            }
            row(&values)?;
            at = p;
        }
        Ok(at)
    }
}

/// Decodes one `POSITIONS_SQL` row.
fn decode_position(f: &[Option<&[u8]>; POSITION_FIELDS]) -> Result<Position, String> {
    let [seq, event_id, chain_hash, leaf_hash] = *f;
    Ok(Position {
        seq: seq
            .and_then(be_i64)
            .and_then(|s| u64::try_from(s).ok())
            .ok_or("bad seq")?,
        event_id: uuid(event_id)?.ok_or("position without event id")?,
        chain_hash: hash(chain_hash)?,
        leaf_hash: hash(leaf_hash)?,
    })
}

fn uuid(f: Option<&[u8]>) -> Result<Option<Uuid>, String> {
    f.map(|b| Uuid::from_slice(b).map_err(|e| e.to_string()))
        .transpose()
}

fn text(f: Option<&[u8]>) -> Result<Option<&str>, String> {
    f.map(|b| std::str::from_utf8(b).map_err(|e| e.to_string()))
        .transpose()
}

fn hash(f: Option<&[u8]>) -> Result<Hash, String> {
    f.and_then(|b| b.try_into().ok())
        .ok_or_else(|| "stored hash is not 32 bytes".to_owned())
}

/// Details of a row, borrowed from the row when they are plain (the usual case), else owned.
enum Details<'a> {
    Borrowed(Vec<(&'a str, &'a str)>),
    Owned(Vec<(String, String)>),
}

/// Appends the canonical encoding of an `EVENTS_SQL` row of `practice` to `out`: the same
/// bytes as the [`audit::event::Event`] the sequencer built from the row. `Err` = the row could
/// not be read; `Ok((id, Err))` = it was read but has no canonical encoding.
fn encode_row(
    practice: PracticeId,
    f: &[Option<&[u8]>; EVENT_FIELDS],
    out: &mut Vec<u8>,
) -> Result<(Uuid, Result<(), EncodeError>), String> {
    let [
        event_id,
        occurred_at,
        actor_id,
        patient_id,
        action,
        outcome,
        object_type,
        object_id,
        request_id,
        details,
    ] = *f;
    let micros = occurred_at.and_then(be_i64).ok_or("missing occurred_at")?;
    let micros = micros.saturating_add(PG_EPOCH_MICROS);
    // The range the sequencer's `DateTime<Utc>` could hold.
    chrono::DateTime::from_timestamp_micros(micros).ok_or("bad occurred_at")?;
    let details = match text(details)? {
        None => Details::Borrowed(Vec::new()),
        Some(t) => {
            if let Some(pairs) = plain_json_object(t) {
                Details::Borrowed(pairs)
            } else {
                let v: serde_json::Value = serde_json::from_str(t).map_err(|e| e.to_string())?;
                Details::Owned(crate::sequence::detail_pairs(Some(&v)))
            }
        }
    };
    let event_id = uuid(event_id)?.ok_or("event without id")?;
    let actor_id = uuid(actor_id)?;
    let patient_id = uuid(patient_id)?;
    let action = text(action)?.ok_or("missing action")?;
    let outcome = text(outcome)?.ok_or("missing outcome")?;
    let object_type = text(object_type)?;
    let object_id = uuid(object_id)?;
    let request_id = uuid(request_id)?;
    macro_rules! encode {
        ($details:expr) => {
            encode_fields_into(
                &EventFields {
                    practice_id: practice.as_uuid(),
                    event_id,
                    occurred_at_micros: micros,
                    actor_id,
                    patient_id,
                    action,
                    outcome,
                    object_type,
                    object_id,
                    request_id,
                    details: $details,
                },
                out,
            )
        };
    }
    let encoded = match &details {
        Details::Borrowed(d) => encode!(d.as_slice()),
        Details::Owned(d) => encode!(d.as_slice()),
    };
    Ok((event_id, encoded))
}

/// The entries of `text` when it is a flat JSON object whose values are all strings without
/// escapes or control characters and whose keys are distinct (what `jsonb` prints for
/// Chartroom's details), sorted by key; `None` for anything else, which then goes through
/// `serde_json` (so both paths give the sequencer's pairs).
fn plain_json_object(text: &str) -> Option<Vec<(&str, &str)>> {
    let mut rest = text.trim_start_matches(is_json_space);
    rest = rest.strip_prefix('{')?.trim_start_matches(is_json_space);
    let mut pairs = Vec::new();
    if let Some(after) = rest.strip_prefix('}') {
        return after
            .trim_start_matches(is_json_space)
            .is_empty()
            .then_some(pairs);
    }
    loop {
        let (key, after) = plain_json_string(rest)?;
        rest = after
            .trim_start_matches(is_json_space)
            .strip_prefix(':')?
            .trim_start_matches(is_json_space);
        let (value, after) = plain_json_string(rest)?;
        pairs.push((key, value));
        rest = after.trim_start_matches(is_json_space);
        if let Some(after) = rest.strip_prefix(',') {
            rest = after.trim_start_matches(is_json_space);
        } else {
            rest = rest.strip_prefix('}')?;
            break;
        }
    }
    if !rest.trim_start_matches(is_json_space).is_empty() {
        return None;
    }
    pairs.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let distinct = pairs.windows(2).all(|w| matches!(w, [a, b] if a.0 != b.0));
    distinct.then_some(pairs)
}

/// A JSON string at the start of `s` with no escapes and no control characters: its
/// content and what follows it.
fn plain_json_string(s: &str) -> Option<(&str, &str)> {
    let body = s.strip_prefix('"')?;
    let end = body.find(|c: char| c == '"' || c == '\\' || c < ' ')?;
    let (content, after) = body.split_at(end);
    Some((content, after.strip_prefix('"')?))
}

fn is_json_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

/// What the verifier thread reports back.
pub(crate) struct Verified {
    /// The verification report.
    pub(crate) report: audit::verify::Report,
    /// Ids of the events no streamed position claimed, if both streams were read to the end.
    pub(crate) unclaimed: Option<Vec<Uuid>>,
}

/// The events stream as the verifier thread reads it.
struct EventCursor {
    recv: Receiver<EventBatch>,
    batch: EventBatch,
    at: usize,
}

impl EventCursor {
    /// Moves to the next row (receiving the next batch when needed); `false` at the end.
    fn advance(&mut self) -> bool {
        self.at += 1;
        while self.at >= self.batch.rows.len() {
            let Some(next) = self.recv.blocking_recv() else {
                self.batch = EventBatch::default();
                self.at = 0;
                return false;
            };
            self.batch = next;
            self.at = 0;
        }
        true
    }

    fn row(&self) -> Option<&EventRow> {
        self.batch.rows.get(self.at)
    }

    fn bytes(&self, start: usize, end: usize) -> &[u8] {
        self.batch.bytes.get(start..end).unwrap_or_default()
    }
}

fn sequenced<'a>(
    practice: PracticeId,
    position: &Position,
    encoding: Result<Encoded<'a>, &'a EncodeError>,
) -> Sequenced<'a> {
    Sequenced {
        seq: position.seq,
        practice_id: practice.as_uuid(),
        encoding,
        chain_hash: position.chain_hash,
        leaf_hash: position.leaf_hash,
    }
}

/// An event that arrived before its position.
type Waiting = Result<(Vec<u8>, Hash), EncodeError>;

/// Matches the positions (in sequence order) with the events (in any order) by event id and
/// verifies them; a position whose event is gone is handed to the verifier as a missing event
/// (a gap if a later event follows, deleted newest events if none does). After the last
/// position (or the first problem) it still reads every remaining row to name the events no
/// position claimed. Runs on a blocking thread.
fn verify_streams(
    practice: PracticeId,
    origin: &str,
    start: &VerifyStart,
    checkpoints: &[Checkpoint],
    mut positions: Receiver<PositionBatch>,
    events: Receiver<EventBatch>,
) -> Verified {
    let mut v = Verification::new(practice.as_uuid(), origin, start, checkpoints);
    let mut events = EventCursor {
        recv: events,
        batch: EventBatch::default(),
        at: 0,
    };
    let mut waiting: HashMap<Uuid, Waiting> = HashMap::new();
    let mut events_done = false;
    let mut read_failed = false;
    'positions: while let Some(batch) = positions.blocking_recv() {
        for position in batch {
            let position = match position {
                Ok(s) => s,
                Err(e) => {
                    v.push_error(e);
                    read_failed = true;
                    break 'positions;
                }
            };
            if !waiting.is_empty()
                && let Some(w) = waiting.remove(&position.event_id)
            {
                v.push(&sequenced(
                    practice,
                    &position,
                    match &w {
                        Ok((bytes, leaf)) => Ok(Encoded { bytes, leaf: *leaf }),
                        Err(e) => Err(e),
                    },
                ));
                continue;
            }
            let mut found = false;
            while !events_done {
                if !events.advance() {
                    events_done = true;
                    break;
                }
                match events.row() {
                    Some(EventRow::Event { id, encoding }) if *id == position.event_id => {
                        v.push(&sequenced(
                            practice,
                            &position,
                            match encoding {
                                Ok((s, e, leaf)) => Ok(Encoded {
                                    bytes: events.bytes(*s, *e),
                                    leaf: *leaf,
                                }),
                                Err(e) => Err(e),
                            },
                        ));
                        found = true;
                        break;
                    }
                    Some(EventRow::Event { id, encoding }) => {
                        let w = match encoding {
                            Ok((s, e, leaf)) => Ok((events.bytes(*s, *e).to_vec(), *leaf)),
                            Err(e) => Err(e.clone()),
                        };
                        waiting.insert(*id, w);
                    }
                    Some(EventRow::Failed(e)) => {
                        v.push_error(e);
                        read_failed = true;
                        break 'positions;
                    }
                    None => {}
                }
            }
            if !found {
                // The position is there, its event is gone (deleted).
                v.push_missing(position.seq);
            }
        }
    }
    let report = v.finish();
    if read_failed {
        return Verified {
            report,
            unclaimed: None,
        };
    }
    // The events no position claimed: those waiting, and the rest of the stream.
    let mut unclaimed: Vec<Uuid> = waiting.into_keys().collect();
    while !events_done && events.advance() {
        match events.row() {
            Some(EventRow::Event { id, .. }) => unclaimed.push(*id),
            Some(EventRow::Failed(_)) => {
                return Verified {
                    report,
                    unclaimed: None,
                };
            }
            None => {}
        }
    }
    Verified {
        report,
        unclaimed: Some(unclaimed),
    }
}

/// A transaction of the owner pool, owned by a reader task.
type Tx = sqlx::Transaction<'static, sqlx::Postgres>;

/// Streams the positions on `tx` (`chartroom.verify_from` set) and the events on `events_tx`
/// (both entered into `practice`), each by its own task, and verifies them on a blocking
/// thread. The events statement starts once the positions statement has taken its snapshot,
/// so every sequenced event (committed before it was sequenced) is in it. Returns `tx` for the
/// statements that follow (`events_tx` is rolled back).
pub(crate) async fn read_and_verify(
    mut tx: Tx,
    mut events_tx: Tx,
    practice: PracticeId,
    origin: &str,
    start: VerifyStart,
    checkpoints: Vec<Checkpoint>,
) -> Result<(Tx, Verified), crate::StoreError> {
    let (position_send, position_recv) =
        tokio::sync::mpsc::channel::<PositionBatch>(CHANNEL_BATCHES);
    let (event_send, event_recv) = tokio::sync::mpsc::channel::<EventBatch>(CHANNEL_BATCHES);
    let origin = origin.to_owned();
    let verify_task = tokio::task::spawn_blocking(move || {
        verify_streams(
            practice,
            &origin,
            &start,
            &checkpoints,
            position_recv,
            event_recv,
        )
    });
    let (positions_started, events_may_start) = tokio::sync::oneshot::channel::<()>();
    let positions_task = tokio::spawn(async move {
        let read = async {
            let stream = tx.copy_out_raw(POSITIONS_SQL).await?;
            let _ = positions_started.send(());
            pump::<POSITION_FIELDS, _, _, _>(
                stream,
                position_send,
                || Vec::with_capacity(BATCH_ROWS + 1),
                Vec::len,
                |batch, f| {
                    batch.push(Ok(decode_position(f)?));
                    Ok(())
                },
                |batch, e| batch.push(Err(e)),
            )
            .await;
            Ok::<_, sqlx::Error>(())
        }
        .await;
        (tx, read)
    });
    let events_task = tokio::spawn(async move {
        if events_may_start.await.is_err() {
            return (events_tx, Ok(())); // the positions statement failed
        }
        let read = async {
            let stream = events_tx.copy_out_raw(EVENTS_SQL).await?;
            pump::<EVENT_FIELDS, _, _, _>(
                stream,
                event_send,
                || EventBatch::with_capacity(BATCH_ROWS + 1),
                EventBatch::len,
                |batch, f| {
                    batch.push_row(practice, f);
                    Ok(())
                },
                EventBatch::push_failure,
            )
            .await;
            Ok::<_, sqlx::Error>(())
        }
        .await;
        (events_tx, read)
    });
    let task_failed = |_| crate::StoreError::Corrupt("audit verify reader task failed");
    let (tx, positions_read) = positions_task.await.map_err(task_failed)?;
    let (events_tx, events_read) = events_task.await.map_err(task_failed)?;
    let verified = verify_task
        .await
        .map_err(|_| crate::StoreError::Corrupt("audit verifier task failed"))?;
    positions_read?;
    events_read?;
    events_tx.rollback().await?;
    Ok((tx, verified))
}

/// Reads a binary COPY stream, decodes each row into the current batch with `row`, and
/// sends full batches to the verifier. A failure becomes the last row sent (`fail`).
/// Returns whether the stream was read to its end.
async fn pump<const N: usize, T, S, B>(
    mut stream: S,
    send: Sender<T>,
    new_batch: impl Fn() -> T,
    len: impl Fn(&T) -> usize,
    mut row: impl FnMut(&mut T, &[Option<&[u8]>; N]) -> Result<(), String>,
    fail: impl Fn(&mut T, String),
) -> bool
where
    S: futures::Stream<Item = sqlx::Result<B>> + Unpin,
    B: AsRef<[u8]>,
{
    use futures::TryStreamExt as _;
    let mut decoder = CopyDecoder::<N>::default();
    let mut batch = new_batch();
    let complete = loop {
        match stream.try_next().await {
            Ok(Some(chunk)) => {
                if let Err(e) = decoder.feed(chunk.as_ref(), |f| row(&mut batch, f)) {
                    fail(&mut batch, e);
                    break false;
                }
            }
            Ok(None) => {
                if decoder.finished() {
                    break true;
                }
                fail(&mut batch, "the COPY stream ended early".to_owned());
                break false;
            }
            Err(e) => {
                fail(&mut batch, e.to_string());
                break false;
            }
        }
        if len(&batch) >= BATCH_ROWS
            && send
                .send(std::mem::replace(&mut batch, new_batch()))
                .await
                .is_err()
        {
            return false;
        }
    };
    let _ = send.send(batch).await;
    complete
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_objects_are_read_without_serde() {
        let p = plain_json_object;
        assert_eq!(p("{}"), Some(vec![]));
        assert_eq!(p(" { } "), Some(vec![]));
        assert_eq!(
            p(r#"{"mfa": "totp", "a": "x"}"#),
            Some(vec![("a", "x"), ("mfa", "totp")])
        );
        assert_eq!(p(r#"{"k":"é ü"}"#), Some(vec![("k", "é ü")]));
        // Anything else goes through serde_json.
        assert_eq!(p(r#"{"a": 1}"#), None);
        assert_eq!(p(r#"{"a": "x\"y"}"#), None);
        assert_eq!(p(r#"{"a": "x", "a": "y"}"#), None);
        assert_eq!(p(r#"{"a": {"b": "c"}}"#), None);
        assert_eq!(p(r#"{"a": "x",}"#), None);
        assert_eq!(p(r#"{"a": "x"} x"#), None);
        assert_eq!(p("[]"), None);
        assert_eq!(p("{\"a\": \"x\ty\"}"), None);
    }

    #[test]
    fn both_detail_paths_give_the_sequencers_pairs() {
        for t in [
            r#"{"a": "x", "mfa": "totp"}"#,
            r#"{"route": "/p/1", "reason": "not_member"}"#,
            r#"{"z": "1", "y": "2", "x": "3"}"#,
            "{}",
        ] {
            let v: serde_json::Value = serde_json::from_str(t).unwrap();
            let slow = crate::sequence::detail_pairs(Some(&v));
            let fast: Vec<(String, String)> = plain_json_object(t)
                .unwrap()
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            assert_eq!(fast, slow, "{t}");
        }
    }

    /// An `EVENTS_SQL` row encodes to the bytes of the event the sequencer built.
    #[test]
    fn rows_encode_like_the_sequencers_events() {
        let practice = PracticeId::from_uuid(Uuid::from_u128(1));
        let id = Uuid::from_u128(2);
        let actor = Uuid::from_u128(3);
        let micros: i64 = 1_714_979_289_123_456;
        let pg_micros = (micros - PG_EPOCH_MICROS).to_be_bytes();
        for details in [
            None,
            Some("{}"),
            Some(r#"{"route": "/patients/x", "reason": "not_member"}"#),
            Some(r#"{"n": 1, "flag": true, "s": "a\"b"}"#),
        ] {
            let f: [Option<&[u8]>; EVENT_FIELDS] = [
                Some(id.as_bytes()),
                Some(&pg_micros),
                Some(actor.as_bytes()),
                None,
                Some(b"access.denied"),
                Some(b"denied"),
                Some(b"patient"),
                None,
                None,
                details.map(str::as_bytes),
            ];
            let mut out = Vec::new();
            let (got_id, encoded) = encode_row(practice, &f, &mut out).unwrap();
            encoded.unwrap();
            let json = details.map(|d| serde_json::from_str(d).unwrap());
            let event = audit::event::Event {
                practice_id: practice.as_uuid(),
                seq: 0,
                event_id: id,
                occurred_at: chrono::DateTime::from_timestamp_micros(micros).unwrap(),
                actor_id: Some(actor),
                patient_id: None,
                action: "access.denied".to_owned(),
                outcome: "denied".to_owned(),
                object_type: Some("patient".to_owned()),
                object_id: None,
                request_id: None,
                details: crate::sequence::detail_pairs(json.as_ref()),
            };
            assert_eq!(got_id, id);
            assert_eq!(out, audit::canonical(&event).unwrap(), "{details:?}");
        }
    }

    #[test]
    fn rows_split_across_chunks_decode() {
        let mut stream = SIGNATURE.to_vec();
        stream.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
        for i in 0..3_i64 {
            stream.extend_from_slice(&2_i16.to_be_bytes());
            stream.extend_from_slice(&8_i32.to_be_bytes());
            stream.extend_from_slice(&i.to_be_bytes());
            stream.extend_from_slice(&(-1_i32).to_be_bytes());
        }
        stream.extend_from_slice(&(-1_i16).to_be_bytes());
        for split in 1..stream.len() {
            let mut d = CopyDecoder::<2>::default();
            let mut seen = Vec::new();
            for chunk in [&stream[..split], &stream[split..]] {
                d.feed(chunk, |f| {
                    seen.push((be_i64(f[0].unwrap()).unwrap(), f[1].is_none()));
                    Ok(())
                })
                .unwrap();
            }
            assert!(d.finished());
            assert_eq!(seen, vec![(0, true), (1, true), (2, true)], "split {split}");
        }
    }
}
