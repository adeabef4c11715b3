//! A fast reader for `audit verify`: the sealed positions (`audit_seal`, in sequence order)
//! and the events (`audit_event`, in storage order) are streamed on two connections with
//! `COPY … TO STDOUT (FORMAT binary)`, decoded here, and matched by event id in the verifier
//! with a reorder buffer — so the server never joins or sorts the whole log before sending
//! the first row. The statements take their parameters from transaction-local settings, so
//! no SQL text is built from values.

use audit::event::Event;
use audit::{Hash, verify::StoredEvent};
use domain::PracticeId;
use std::collections::HashMap;

/// Seals from `chartroom.verify_from` on, in sequence order (the practice from
/// `chartroom.practice_id`).
pub(crate) const SEALS_SQL: &str = "copy (
    select seq, event_id, chain_hash, leaf_hash from audit_seal
     where practice_id = app.practice() and seq >= current_setting('chartroom.verify_from')::bigint
     order by seq
) to stdout (format binary)";

/// Every event of the practice, in storage order.
pub(crate) const EVENTS_SQL: &str = "copy (
    select event_id, occurred_at, actor_id, patient_id, action, outcome, object_type, object_id,
           request_id, details::text
      from audit_event where practice_id = app.practice()
) to stdout (format binary)";

const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";
/// Microseconds between the Unix epoch and PostgreSQL's (2000-01-01).
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// A sealed position.
#[derive(Debug)]
pub(crate) struct Seal {
    seq: u64,
    event_id: uuid::Uuid,
    chain_hash: Hash,
    leaf_hash: Hash,
}

/// Incremental decoder of a binary COPY stream with a fixed number of fields.
#[derive(Debug)]
pub(crate) struct CopyDecoder {
    fields: i16,
    buf: Vec<u8>,
    pos: usize,
    header: bool,
    done: bool,
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

impl CopyDecoder {
    /// A decoder for tuples of `fields` columns.
    pub(crate) fn new(fields: i16) -> Self {
        Self {
            fields,
            buf: Vec::new(),
            pos: 0,
            header: false,
            done: false,
        }
    }

    /// Adds bytes from the stream.
    pub(crate) fn feed(&mut self, chunk: &[u8]) {
        if self.pos > 0 && self.pos * 2 > self.buf.len() {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(chunk);
    }

    /// Whether the end-of-data marker was seen.
    pub(crate) fn finished(&self) -> bool {
        self.done
    }

    /// The next complete tuple's fields (`None` = NULL); `None` when more bytes are needed
    /// or the data ended.
    fn next_fields(&mut self) -> Result<Option<Vec<Option<&[u8]>>>, String> {
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        let mut at = 0;
        if !self.header {
            if rest.len() < 19 {
                return Ok(None);
            }
            if rest.get(..11) != Some(SIGNATURE.as_slice()) {
                return Err("not a binary COPY stream".into());
            }
            let ext = rest
                .get(15..)
                .and_then(be_i32)
                .and_then(|e| usize::try_from(e).ok())
                .ok_or("bad COPY header")?;
            if rest.len() < 19 + ext {
                return Ok(None);
            }
            at = 19 + ext;
            self.header = true;
        }
        let Some(count) = rest.get(at..).and_then(be_i16) else {
            self.pos += at;
            return Ok(None);
        };
        if count == -1 {
            self.done = true;
            self.pos += at + 2;
            return Ok(None);
        }
        if count != self.fields {
            return Err(format!(
                "COPY tuple has {count} fields, expected {}",
                self.fields
            ));
        }
        let mut p = at + 2;
        let mut spans = Vec::with_capacity(usize::try_from(self.fields).unwrap_or(0));
        for _ in 0..self.fields {
            let Some(len) = rest.get(p..).and_then(be_i32) else {
                self.pos += at;
                return Ok(None);
            };
            p += 4;
            if len < 0 {
                spans.push(None);
                continue;
            }
            let len = usize::try_from(len).map_err(|_| "bad field length")?;
            if rest.len() < p + len {
                self.pos += at;
                return Ok(None);
            }
            spans.push(Some((p, p + len)));
            p += len;
        }
        let start = self.pos;
        self.pos += p;
        let tuple = self.buf.get(start..self.pos).unwrap_or_default();
        Ok(Some(
            spans
                .into_iter()
                .map(|s| s.and_then(|(a, b)| tuple.get(a..b)))
                .collect(),
        ))
    }

    /// Decodes every complete seal now buffered.
    pub(crate) fn drain_seals(
        &mut self,
        out: &mut Vec<Result<Seal, String>>,
    ) -> Result<(), String> {
        while let Some(f) = self.next_fields()? {
            let get = |i: usize| f.get(i).copied().flatten();
            out.push(Ok(Seal {
                seq: get(0)
                    .and_then(be_i64)
                    .and_then(|s| u64::try_from(s).ok())
                    .ok_or("bad seq")?,
                event_id: uuid(get(1))?.ok_or("seal without event id")?,
                chain_hash: hash(get(2))?,
                leaf_hash: hash(get(3))?,
            }));
        }
        Ok(())
    }

    /// Decodes every complete event now buffered (with `seq` 0 until matched to its seal).
    pub(crate) fn drain_events(
        &mut self,
        practice: PracticeId,
        out: &mut Vec<Result<Event, String>>,
    ) -> Result<(), String> {
        while let Some(f) = self.next_fields()? {
            out.push(decode_event(practice, &f));
        }
        Ok(())
    }
}

fn uuid(f: Option<&[u8]>) -> Result<Option<uuid::Uuid>, String> {
    f.map(|b| uuid::Uuid::from_slice(b).map_err(|e| e.to_string()))
        .transpose()
}

fn text(f: Option<&[u8]>) -> Result<Option<String>, String> {
    f.map(|b| {
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|e| e.to_string())
    })
    .transpose()
}

fn hash(f: Option<&[u8]>) -> Result<Hash, String> {
    f.and_then(|b| b.try_into().ok())
        .ok_or_else(|| "stored hash is not 32 bytes".to_owned())
}

fn decode_event(practice: PracticeId, f: &[Option<&[u8]>]) -> Result<Event, String> {
    let get = |i: usize| f.get(i).copied().flatten();
    let micros = get(1).and_then(be_i64).ok_or("missing occurred_at")?;
    let occurred_at =
        chrono::DateTime::from_timestamp_micros(micros.saturating_add(PG_EPOCH_MICROS))
            .ok_or("bad occurred_at")?;
    let details = match text(get(9))? {
        Some(t) => {
            let v: serde_json::Value = serde_json::from_str(&t).map_err(|e| e.to_string())?;
            crate::seal::detail_pairs(Some(&v))
        }
        None => Vec::new(),
    };
    Ok(Event {
        practice_id: practice.as_uuid(),
        seq: 0,
        event_id: uuid(get(0))?.ok_or("event without id")?,
        occurred_at,
        actor_id: uuid(get(2))?,
        patient_id: uuid(get(3))?,
        action: text(get(4))?.ok_or("missing action")?,
        outcome: text(get(5))?.ok_or("missing outcome")?,
        object_type: text(get(6))?,
        object_id: uuid(get(7))?,
        request_id: uuid(get(8))?,
        details,
    })
}

/// Matches seals (in sequence order) with events (in any order) by event id. A seal whose
/// event is gone is skipped, leaving a gap for the verifier to report.
pub(crate) struct Matcher<S, E> {
    seals: S,
    events: E,
    waiting: HashMap<uuid::Uuid, Event>,
    events_done: bool,
}

impl<S, E> Matcher<S, E>
where
    S: Iterator<Item = Result<Seal, String>>,
    E: Iterator<Item = Result<Event, String>>,
{
    /// A matcher over the two streams.
    pub(crate) fn new(seals: S, events: E) -> Self {
        Self {
            seals,
            events,
            waiting: HashMap::new(),
            events_done: false,
        }
    }
}

impl<S, E> Iterator for Matcher<S, E>
where
    S: Iterator<Item = Result<Seal, String>>,
    E: Iterator<Item = Result<Event, String>>,
{
    type Item = Result<StoredEvent, String>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let seal = match self.seals.next()? {
                Ok(s) => s,
                Err(e) => return Some(Err(e)),
            };
            loop {
                if let Some(mut event) = self.waiting.remove(&seal.event_id) {
                    event.seq = seal.seq;
                    return Some(Ok(StoredEvent {
                        event,
                        chain_hash: seal.chain_hash,
                        leaf_hash: seal.leaf_hash,
                    }));
                }
                if self.events_done {
                    break; // the event is gone: skip this seal
                }
                match self.events.next() {
                    Some(Ok(ev)) => {
                        self.waiting.insert(ev.event_id, ev);
                    }
                    Some(Err(e)) => return Some(Err(e)),
                    None => self.events_done = true,
                }
            }
        }
    }
}
