//! The sequencer: gives each practice's queued audit events their place in the practice's
//! hash chain and Merkle tree, and serves proofs from the stored tree.
//!
//! One sequencer per practice at a time (a transaction-scoped advisory lock keyed on the
//! practice), so practices are sequenced in parallel and a busy practice never serializes
//! another; requests never touch the chain head. Sequencing runs as the runtime role with no
//! actor set: row-level security limits it to one practice per transaction.

use std::collections::HashMap;

use audit::chain::{GENESIS, Hash, chain_hash};
use audit::event::{Event, canonical};
use audit::merkle::{
    NodeSource, TreeBuilder, consistency_proof_from, inclusion_proof_from, leaf_hash,
    nodes_needed_for_consistency, nodes_needed_for_inclusion, nodes_needed_for_root, root_from,
};
use chrono::{DateTime, Utc};
use domain::PracticeId;
use sqlx::PgConnection;
use sqlx::Row as _;
use sqlx::postgres::PgRow;

use crate::{OwnerStore, Store, StoreError, TenantTx};

/// Events sequenced per practice per transaction.
pub const SEQUENCE_BATCH: i64 = 2_000;

fn to_hash(v: &[u8]) -> Result<Hash, StoreError> {
    v.try_into()
        .map_err(|_| StoreError::Corrupt("audit hash length"))
}

/// Turns the stored `details` object into the sorted key/value pairs the canonical
/// encoding takes (strings as they are, other JSON values as their JSON text).
pub(crate) fn detail_pairs(details: Option<&serde_json::Value>) -> Vec<(String, String)> {
    let Some(serde_json::Value::Object(map)) = details else {
        return Vec::new();
    };
    let mut pairs: Vec<(String, String)> = map
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_str().map_or_else(|| v.to_string(), str::to_owned),
            )
        })
        .collect();
    pairs.sort();
    pairs
}

/// Builds the canonical event from a row with the `audit_event` columns.
pub(crate) fn event_from_row(
    practice: PracticeId,
    seq: u64,
    row: &PgRow,
) -> Result<Event, StoreError> {
    let details: Option<serde_json::Value> = row.try_get("details")?;
    Ok(Event {
        practice_id: practice.as_uuid(),
        seq,
        event_id: row.try_get("event_id")?,
        occurred_at: row.try_get("occurred_at")?,
        actor_id: row.try_get("actor_id")?,
        patient_id: row.try_get("patient_id")?,
        action: row.try_get("action")?,
        outcome: row.try_get("outcome")?,
        object_type: row.try_get("object_type")?,
        object_id: row.try_get("object_id")?,
        request_id: row.try_get("request_id")?,
        details: detail_pairs(details.as_ref()),
    })
}

/// Reads the stored tree nodes `wanted` (level 0 from `audit_sequence`, higher levels from
/// `audit_node`) in one query.
pub(crate) async fn fetch_nodes(
    conn: &mut PgConnection,
    practice: PracticeId,
    wanted: &[(u8, u64)],
) -> Result<HashMap<(u8, u64), Hash>, StoreError> {
    let levels: Vec<i16> = wanted.iter().map(|w| i16::from(w.0)).collect();
    let idxs: Vec<i64> = wanted
        .iter()
        .map(|w| i64::try_from(w.1).unwrap_or(i64::MAX))
        .collect();
    let rows: Vec<(i16, i64, Vec<u8>)> = sqlx::query_as(
        "select w.level, w.idx, coalesce(n.hash, s.leaf_hash)
           from unnest($2::smallint[], $3::bigint[]) as w(level, idx)
           left join audit_node n on n.practice_id = $1 and w.level > 0 and n.level = w.level and n.idx = w.idx
           left join audit_sequence s on s.practice_id = $1 and w.level = 0 and s.seq = w.idx
          where coalesce(n.hash, s.leaf_hash) is not null",
    )
    .bind(practice)
    .bind(&levels)
    .bind(&idxs)
    .fetch_all(&mut *conn)
    .await?;
    let mut map = HashMap::with_capacity(rows.len());
    for (level, idx, hash) in rows {
        let level = u8::try_from(level).map_err(|_| StoreError::Corrupt("audit node level"))?;
        let idx = u64::try_from(idx).map_err(|_| StoreError::Corrupt("audit node index"))?;
        map.insert((level, idx), to_hash(&hash)?);
    }
    Ok(map)
}

/// The sequenced size of a practice's log and the chain hash of its last event.
pub(crate) async fn head(
    conn: &mut PgConnection,
    practice: PracticeId,
) -> Result<(u64, Hash), StoreError> {
    let row: Option<(i64, Vec<u8>)> = sqlx::query_as(
        "select seq, chain_hash from audit_sequence where practice_id = $1 order by seq desc limit 1",
    )
    .bind(practice)
    .fetch_optional(&mut *conn)
    .await?;
    match row {
        Some((seq, chain)) => Ok((
            u64::try_from(seq).map_err(|_| StoreError::Corrupt("audit seq"))? + 1,
            to_hash(&chain)?,
        )),
        None => Ok((0, GENESIS)),
    }
}

/// The signed-tree-head material of a practice: size and RFC 6962 root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeHead {
    /// Number of sequenced events.
    pub size: u64,
    /// Merkle root over them.
    pub root: Hash,
    /// Chain hash of the last of them.
    pub chain_head: Hash,
}

async fn tree_head_on(
    conn: &mut PgConnection,
    practice: PracticeId,
) -> Result<TreeHead, StoreError> {
    let (size, chain_head) = head(conn, practice).await?;
    tree_head_at(conn, practice, size, Some(chain_head)).await
}

/// The tree head at an earlier `size` (for the checkpoint taken at a pruning point).
pub(crate) async fn tree_head_at(
    conn: &mut PgConnection,
    practice: PracticeId,
    size: u64,
    chain_head: Option<Hash>,
) -> Result<TreeHead, StoreError> {
    let nodes = fetch_nodes(conn, practice, &nodes_needed_for_root(size)).await?;
    let root =
        root_from(&nodes, size).map_err(|_| StoreError::Corrupt("audit tree nodes missing"))?;
    let chain_head = match chain_head {
        Some(h) => h,
        None if size == 0 => GENESIS,
        None => {
            let v: Vec<u8> = sqlx::query_scalar(
                "select chain_hash from audit_sequence where practice_id = $1 and seq = $2",
            )
            .bind(practice)
            .bind(i64::try_from(size - 1).map_err(|_| StoreError::Corrupt("audit seq"))?)
            .fetch_one(&mut *conn)
            .await?;
            to_hash(&v)?
        }
    };
    Ok(TreeHead {
        size,
        root,
        chain_head,
    })
}

/// What one sequencing pass over every practice did.
#[derive(Debug, Default)]
pub struct SequencePass {
    /// Events sequenced.
    pub sequenced: u64,
    /// Practices whose events could not be sequenced, and why (the others were sequenced).
    pub failed: Vec<(PracticeId, StoreError)>,
    /// Whether some practice had a full batch ([`SEQUENCE_BATCH`]): more may be queued, and
    /// the next pass should follow at once rather than at the next tick.
    pub more: bool,
}

impl Store {
    /// Sequences every practice's queued events (at most [`SEQUENCE_BATCH`] per practice per
    /// call). Returns how many events were sequenced; a practice that fails does not stop the
    /// others, and the first failure is returned once every practice was tried (see
    /// [`sequence_pending_each`](Self::sequence_pending_each)). Safe to run from several
    /// processes at once.
    pub async fn sequence_pending(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let pass = self.sequence_pending_each(now).await?;
        match pass.failed.into_iter().next() {
            Some((_, e)) => Err(e),
            None => Ok(pass.sequenced),
        }
    }

    /// Sequences every practice's queued events, practice by practice: one practice whose
    /// events cannot be sequenced (rows changed around the application, a broken tree) is
    /// reported in [`SequencePass::failed`] and the others are sequenced all the same. Fails
    /// only when the practices with queued events cannot be listed.
    pub async fn sequence_pending_each(
        &self,
        now: DateTime<Utc>,
    ) -> Result<SequencePass, StoreError> {
        let practices: Vec<PracticeId> = sqlx::query_scalar("select app.audit_pending_practices()")
            .fetch_all(&self.pool)
            .await?;
        let mut pass = SequencePass::default();
        for practice in practices {
            match self.sequence_practice(practice, now).await {
                Ok(n) => {
                    pass.sequenced += n;
                    pass.more |= i64::try_from(n).is_ok_and(|n| n >= SEQUENCE_BATCH);
                }
                Err(e) => pass.failed.push((practice, e)),
            }
        }
        Ok(pass)
    }

    /// Sequences one practice's queued events in queue order (the order they were written).
    /// Returns 0 when another sequencer holds the practice.
    pub async fn sequence_practice(
        &self,
        practice: PracticeId,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let mut tx = crate::entry::begin_in(&self.pool, practice).await?;
        let locked: bool = sqlx::query_scalar(
            "select pg_try_advisory_xact_lock(hashtextextended('chartroom.audit.sequence.' || $1::text, 0))",
        )
        .bind(practice)
        .fetch_one(&mut *tx)
        .await?;
        if !locked {
            return Ok(0);
        }
        let rows = sqlx::query(
            "select e.event_id, e.occurred_at, e.actor_id, e.patient_id, e.action, e.outcome, e.object_type,
                    e.object_id, e.request_id, e.details
               from audit_pending p join audit_event e on e.practice_id = p.practice_id and e.event_id = p.event_id
              where p.practice_id = $1
              order by p.pos
              limit $2",
        )
        .bind(practice)
        .bind(SEQUENCE_BATCH)
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let (size, mut prev) = head(&mut tx, practice).await?;
        let edge = fetch_nodes(&mut tx, practice, &nodes_needed_for_root(size)).await?;
        let mut tree = TreeBuilder::from_source(&edge, size)
            .map_err(|_| StoreError::Corrupt("audit tree right edge"))?;
        let n = rows.len();
        let (mut seqs, mut ids, mut chains, mut leaves) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let (mut levels, mut node_idxs, mut hashes) = (Vec::new(), Vec::new(), Vec::new());
        for (i, row) in rows.iter().enumerate() {
            let seq = size + i as u64;
            let event = event_from_row(practice, seq, row)?;
            let bytes =
                canonical(&event).map_err(|_| StoreError::Corrupt("audit event not encodable"))?;
            prev = chain_hash(&prev, &bytes);
            let leaf = leaf_hash(&bytes);
            tree.push_with(leaf, |level, idx, hash| {
                levels.push(i16::from(level));
                node_idxs.push(i64::try_from(idx).unwrap_or(i64::MAX));
                hashes.push(hash.to_vec());
            })
            .map_err(|_| StoreError::Corrupt("audit tree full"))?;
            seqs.push(i64::try_from(seq).map_err(|_| StoreError::Corrupt("audit seq"))?);
            ids.push(event.event_id);
            chains.push(prev.to_vec());
            leaves.push(leaf.to_vec());
        }
        // The chain's time never runs backwards (req AUD-04): a batch is stamped `now`, or the
        // previous position's time if the host clock was stepped back since (the newest
        // position is one index probe away on the primary key).
        sqlx::query(
            "insert into audit_sequence (practice_id, seq, event_id, chain_hash, leaf_hash, sequenced_at)
             select $1, s, e, c, l,
                    greatest($6, (select h.sequenced_at from audit_sequence h
                                   where h.practice_id = $1 order by h.seq desc limit 1))
               from unnest($2::bigint[], $3::uuid[], $4::bytea[], $5::bytea[]) as t(s, e, c, l)",
        )
        .bind(practice)
        .bind(&seqs)
        .bind(&ids)
        .bind(&chains)
        .bind(&leaves)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if !levels.is_empty() {
            sqlx::query(
                "insert into audit_node (practice_id, level, idx, hash)
                 select $1, l, i, h from unnest($2::smallint[], $3::bigint[], $4::bytea[]) as t(l, i, h)",
            )
            .bind(practice)
            .bind(&levels)
            .bind(&node_idxs)
            .bind(&hashes)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("delete from audit_pending where practice_id = $1 and event_id = any($2)")
            .bind(practice)
            .bind(&ids)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(n as u64)
    }

    /// The current tree head (size and root) of a practice, for checkpoints. Runs without an
    /// actor, like the sequencer.
    pub async fn tree_head(&self, practice: PracticeId) -> Result<TreeHead, StoreError> {
        Ok(self.tree_head_since(practice, 0).await?.0)
    }

    /// The current tree head of a practice and an RFC 6962 consistency proof from the tree of
    /// `since` events to it, read in one transaction from the stored nodes — what the
    /// checkpointer needs to check that the log still extends the last signed checkpoint
    /// ([`audit::verify::extends`]) before it signs. The proof is empty when `since` is 0 or
    /// not below the head, and an error when stored nodes are missing. Runs without an actor,
    /// like the sequencer.
    pub async fn tree_head_since(
        &self,
        practice: PracticeId,
        since: u64,
    ) -> Result<(TreeHead, Result<Vec<Hash>, audit::merkle::MerkleError>), StoreError> {
        let mut tx = crate::entry::begin_in(&self.pool, practice).await?;
        let head = tree_head_on(&mut tx, practice).await?;
        let proof = if since == 0 || since >= head.size {
            Ok(Vec::new())
        } else {
            let nodes = fetch_nodes(
                &mut tx,
                practice,
                &nodes_needed_for_consistency(since, head.size),
            )
            .await?;
            consistency_proof_from(&nodes, since, head.size)
        };
        tx.commit().await?;
        Ok((head, proof))
    }

    /// Every practice id (for the checkpointer), through the sequence table: practices with
    /// no sequenced event need no checkpoint.
    pub async fn practices_with_log(&self) -> Result<Vec<PracticeId>, StoreError> {
        Ok(sqlx::query_scalar("select app.audit_log_practices()")
            .fetch_all(&self.pool)
            .await?)
    }
}

/// An inclusion proof: the event at `index` is leaf `index` of the tree of `size` leaves.
#[derive(Debug, Clone, serde::Serialize)]
pub struct InclusionProof {
    /// The leaf index (the event's sequence number).
    pub index: u64,
    /// The tree size the proof is for.
    pub size: u64,
    /// The leaf hash (RFC 6962: SHA-256(0x00 ‖ canonical event)).
    pub leaf_hash: Hash,
    /// The audit path, bottom up.
    pub path: Vec<Hash>,
    /// The root the path leads to.
    pub root: Hash,
}

/// A consistency proof between two tree sizes.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConsistencyProof {
    /// The smaller size.
    pub first: u64,
    /// The larger size.
    pub second: u64,
    /// The proof nodes.
    pub path: Vec<Hash>,
    /// Root at `first`.
    pub first_root: Hash,
    /// Root at `second`.
    pub second_root: Hash,
}

async fn inclusion_on(
    conn: &mut PgConnection,
    practice: PracticeId,
    index: u64,
    size: Option<u64>,
) -> Result<Option<InclusionProof>, StoreError> {
    let (sequenced, _) = head(conn, practice).await?;
    let size = size.unwrap_or(sequenced);
    if index >= size || size > sequenced {
        return Ok(None);
    }
    let mut wanted = nodes_needed_for_inclusion(index, size);
    wanted.extend(nodes_needed_for_root(size));
    wanted.push((0, index));
    let nodes = fetch_nodes(conn, practice, &wanted).await?;
    let path = inclusion_proof_from(&nodes, index, size)
        .map_err(|_| StoreError::Corrupt("audit tree nodes missing"))?;
    let root =
        root_from(&nodes, size).map_err(|_| StoreError::Corrupt("audit tree nodes missing"))?;
    let leaf_hash = nodes
        .node(0, index)
        .ok_or(StoreError::Corrupt("audit leaf missing"))?;
    Ok(Some(InclusionProof {
        index,
        size,
        leaf_hash,
        path,
        root,
    }))
}

async fn consistency_on(
    conn: &mut PgConnection,
    practice: PracticeId,
    first: u64,
    second: Option<u64>,
) -> Result<Option<ConsistencyProof>, StoreError> {
    let (sequenced, _) = head(conn, practice).await?;
    let second = second.unwrap_or(sequenced);
    if first == 0 || first > second || second > sequenced {
        return Ok(None);
    }
    let mut wanted = nodes_needed_for_consistency(first, second);
    wanted.extend(nodes_needed_for_root(first));
    wanted.extend(nodes_needed_for_root(second));
    let nodes = fetch_nodes(conn, practice, &wanted).await?;
    let corrupt = |_| StoreError::Corrupt("audit tree nodes missing");
    Ok(Some(ConsistencyProof {
        first,
        second,
        path: consistency_proof_from(&nodes, first, second).map_err(corrupt)?,
        first_root: root_from(&nodes, first).map_err(corrupt)?,
        second_root: root_from(&nodes, second).map_err(corrupt)?,
    }))
}

/// An inclusion proof for the event at `index` in the tree of `size` (default: the sequenced
/// size) of the transaction's practice. `None` when out of range. The caller audits.
pub async fn inclusion_proof(
    tx: &mut TenantTx,
    index: u64,
    size: Option<u64>,
) -> Result<Option<InclusionProof>, StoreError> {
    let practice = tx.practice();
    inclusion_on(tx.conn(), practice, index, size).await
}

/// A consistency proof from `first` to `second` (default: the sequenced size). `None` when
/// out of range. The caller audits.
pub async fn consistency_proof(
    tx: &mut TenantTx,
    first: u64,
    second: Option<u64>,
) -> Result<Option<ConsistencyProof>, StoreError> {
    let practice = tx.practice();
    consistency_on(tx.conn(), practice, first, second).await
}

impl OwnerStore {
    /// [`inclusion_proof`] as the owner role (CLI).
    pub async fn inclusion_proof(
        &self,
        practice: PracticeId,
        index: u64,
        size: Option<u64>,
    ) -> Result<Option<InclusionProof>, StoreError> {
        let mut tx = crate::entry::begin_in(&self.pool, practice).await?;
        let p = inclusion_on(&mut tx, practice, index, size).await?;
        tx.commit().await?;
        Ok(p)
    }

    /// [`consistency_proof`] as the owner role (CLI).
    pub async fn consistency_proof(
        &self,
        practice: PracticeId,
        first: u64,
        second: Option<u64>,
    ) -> Result<Option<ConsistencyProof>, StoreError> {
        let mut tx = crate::entry::begin_in(&self.pool, practice).await?;
        let p = consistency_on(&mut tx, practice, first, second).await?;
        tx.commit().await?;
        Ok(p)
    }

    /// The current tree head of a practice as the owner role.
    pub async fn tree_head(&self, practice: PracticeId) -> Result<TreeHead, StoreError> {
        let mut tx = crate::entry::begin_in(&self.pool, practice).await?;
        let h = tree_head_on(&mut tx, practice).await?;
        tx.commit().await?;
        Ok(h)
    }
}

impl OwnerStore {
    /// Retention: removes the contents of the sequenced events of `practice` that happened
    /// before `before` (which the database refuses unless older than six years), from the
    /// last pruning point up to the first event that is younger. Before anything is removed,
    /// `sign_checkpoint` must durably store a signed checkpoint of the tree head at the new
    /// pruning point — the anchor from which `audit verify` continues. Sequence rows and tree
    /// nodes (hashes and ids only) are kept, so every older checkpoint stays provable. Returns
    /// the new starting sequence number and how many events were removed.
    pub async fn prune_audit(
        &self,
        practice: PracticeId,
        before: DateTime<Utc>,
        now: DateTime<Utc>,
        sign_checkpoint: impl FnOnce(&TreeHead) -> Result<(), String>,
    ) -> Result<(u64, u64), StoreError> {
        let mut tx = self.begin_at(practice, now).await?;
        let prev: i64 = sqlx::query_scalar(
            "select coalesce(max(seq), 0) from audit_prune where practice_id = $1",
        )
        .bind(practice)
        .fetch_one(tx.conn())
        .await?;
        let cut: i64 = sqlx::query_scalar(
            "select coalesce(
                 (select min(s.seq) from audit_sequence s join audit_event e on e.practice_id = s.practice_id and e.event_id = s.event_id
                   where s.practice_id = $1 and s.seq >= $2 and e.occurred_at >= $3),
                 (select count(*) from audit_sequence where practice_id = $1))",
        )
        .bind(practice)
        .bind(prev)
        .bind(before)
        .fetch_one(tx.conn())
        .await?;
        if cut <= prev {
            tx.commit().await?;
            return Ok((u64::try_from(prev).unwrap_or(0), 0));
        }
        let size = u64::try_from(cut).map_err(|_| StoreError::Corrupt("audit seq"))?;
        let head = tree_head_at(tx.conn(), practice, size, None).await?;
        sign_checkpoint(&head).map_err(|e| {
            StoreError::Corrupt(if e.is_empty() {
                "checkpoint"
            } else {
                "could not store the pruning checkpoint"
            })
        })?;
        sqlx::query("insert into audit_prune (practice_id, seq, chain_hash, pruned_at) values ($1, $2, $3, $4)")
            .bind(practice)
            .bind(cut)
            .bind(head.chain_head.to_vec())
            .bind(now)
            .execute(tx.conn())
            .await?;
        sqlx::query("select set_config('chartroom.audit_prune', 'on', true)")
            .execute(tx.conn())
            .await?;
        let done = sqlx::query(
            "delete from audit_event e using audit_sequence s
              where e.practice_id = $1 and s.practice_id = e.practice_id and s.event_id = e.event_id
                and s.seq >= $2 and s.seq < $3",
        )
        .bind(practice)
        .bind(prev)
        .bind(cut)
        .execute(tx.conn())
        .await?;
        sqlx::query("select set_config('chartroom.audit_prune', '', true)")
            .execute(tx.conn())
            .await?;
        tx.audit(
            domain::AuditAction::AuditPrune,
            None,
            None,
            Some(serde_json::json!({"from_seq": prev, "to_seq": cut, "events": done.rows_affected()})),
        )
        .await?;
        tx.commit().await?;
        Ok((size, done.rows_affected()))
    }
}
