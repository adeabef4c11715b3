//! A fast reader for `audit verify`: the sealed log streamed with `COPY … TO STDOUT (FORMAT
//! binary)` and decoded here, instead of row-by-row protocol decoding. The query takes its
//! parameters from transaction-local settings, so no SQL text is built from values.

use audit::verify::StoredEvent;
use domain::PracticeId;

/// The statement: the practice comes from `chartroom.practice_id`, the first sequence number
/// from `chartroom.verify_from`.
pub(crate) const COPY_SQL: &str = "copy (
    select s.seq, s.chain_hash, s.leaf_hash, e.event_id, e.occurred_at, e.actor_id, e.patient_id,
           e.action, e.outcome, e.object_type, e.object_id, e.request_id, e.details::text
      from audit_seal s left join audit_event e on e.practice_id = s.practice_id and e.event_id = s.event_id
     where s.practice_id = app.practice() and s.seq >= current_setting('chartroom.verify_from')::bigint
     order by s.seq
) to stdout (format binary)";

const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";
/// Microseconds between the Unix epoch and PostgreSQL's (2000-01-01).
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
const FIELDS: i16 = 13;

/// Incremental decoder of the binary COPY stream.
#[derive(Debug, Default)]
pub(crate) struct CopyDecoder {
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
    /// Adds bytes from the stream.
    pub(crate) fn feed(&mut self, chunk: &[u8]) {
        if self.pos > 0 && self.pos * 2 > self.buf.len() {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(chunk);
    }

    /// The next complete tuple's fields (`None` = NULL), or `None` when more bytes are needed
    /// or the stream ended.
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
            let ext =
                usize::try_from(be_i32(&rest[15..]).unwrap_or(0)).map_err(|_| "bad COPY header")?;
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
        if count != FIELDS {
            return Err(format!("COPY tuple has {count} fields, expected {FIELDS}"));
        }
        let mut p = at + 2;
        let mut spans = Vec::with_capacity(13);
        for _ in 0..FIELDS {
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

    /// Whether the end-of-data marker was seen.
    pub(crate) fn finished(&self) -> bool {
        self.done
    }

    /// Decodes every complete tuple now buffered into `out`; a sealed event whose row is gone
    /// is skipped (the verifier then reports the gap).
    pub(crate) fn drain_into(
        &mut self,
        practice: PracticeId,
        out: &mut Vec<Result<StoredEvent, String>>,
    ) -> Result<(), String> {
        while let Some(fields) = self.next_fields()? {
            if let Some(ev) = decode(practice, &fields)? {
                out.push(Ok(ev));
            }
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

fn hash(f: Option<&[u8]>) -> Result<audit::Hash, String> {
    f.and_then(|b| b.try_into().ok())
        .ok_or_else(|| "stored hash is not 32 bytes".to_owned())
}

fn decode(practice: PracticeId, f: &[Option<&[u8]>]) -> Result<Option<StoredEvent>, String> {
    let get = |i: usize| f.get(i).copied().flatten();
    let seq = get(0).and_then(be_i64).ok_or("missing seq")?;
    let Some(event_id) = uuid(get(3))? else {
        return Ok(None);
    };
    let micros = get(4).and_then(be_i64).ok_or("missing occurred_at")?;
    let occurred_at =
        chrono::DateTime::from_timestamp_micros(micros.saturating_add(PG_EPOCH_MICROS))
            .ok_or("bad occurred_at")?;
    let details = match text(get(12))? {
        Some(t) => {
            let v: serde_json::Value = serde_json::from_str(&t).map_err(|e| e.to_string())?;
            crate::seal::detail_pairs(Some(&v))
        }
        None => Vec::new(),
    };
    let event = audit::event::Event {
        practice_id: practice.as_uuid(),
        seq: u64::try_from(seq).map_err(|e| e.to_string())?,
        event_id,
        occurred_at,
        actor_id: uuid(get(5))?,
        patient_id: uuid(get(6))?,
        action: text(get(7))?.ok_or("missing action")?,
        outcome: text(get(8))?.ok_or("missing outcome")?,
        object_type: text(get(9))?,
        object_id: uuid(get(10))?,
        request_id: uuid(get(11))?,
        details,
    };
    Ok(Some(StoredEvent {
        event,
        chain_hash: hash(get(1))?,
        leaf_hash: hash(get(2))?,
    }))
}
