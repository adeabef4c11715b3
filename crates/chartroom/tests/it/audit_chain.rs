//! The audit hash chain, Merkle tree and signed checkpoints, against tampering by a database
//! superuser who disables triggers (`session_replication_role = replica`).
//! req: AUD-02, AUD-09

use std::sync::Arc;

use audit::checkpoint::{Signer, origin};
use audit::store::{CheckpointStore as _, DirStore};
use audit::verify::ProblemKind;
use chrono::{Duration, Utc};
use domain::{PracticeId, UserId};
use sqlx::{Executor as _, PgConnection};
use testkit::{TestDb, World};

const ORIGIN: &str = "test.example/chartroom/audit";

struct Log {
    db: TestDb,
    w: World,
    store: store::Store,
    cp: server::checkpoint::Checkpointer,
    dir: std::path::PathBuf,
}

impl Log {
    async fn new(reads: usize) -> Self {
        let db = TestDb::new().await;
        let w = World::build(&db).await;
        let store = db.store().await;
        let dir =
            std::env::temp_dir().join(format!("chartroom-cp-{}", uuid::Uuid::new_v4().simple()));
        let cp = server::checkpoint::Checkpointer::new(
            Arc::new(Signer::generate("chartroom-test").unwrap()),
            DirStore::new(&dir),
            ORIGIN,
        );
        let log = Log {
            db,
            w,
            store,
            cp,
            dir,
        };
        log.reads(reads).await;
        log
    }

    /// `n` audited reads, then sequences everything queued (`n = 0`: nothing, not even
    /// sequencing).
    async fn reads(&self, n: usize) {
        if n == 0 {
            return;
        }
        let token = testkit::session_token(&self.store, self.w.a.user("reception")).await;
        for _ in 0..n {
            assert!(
                testkit::read_patient(&self.store, &token, self.w.a.id, self.w.a.patient)
                    .await
                    .unwrap()
                    .is_some()
            );
        }
        self.store.sequence_pending(Utc::now()).await.unwrap();
    }

    async fn checkpoint(&self) -> u64 {
        self.cp
            .checkpoint(&self.store, self.w.a.id)
            .await
            .unwrap()
            .unwrap()
    }

    async fn verify(&self) -> store::audit::VerifyOutcome {
        let verifier = self.cp.signer.verifier();
        let cps = DirStore::new(&self.dir)
            .all(self.w.a.id.as_uuid())
            .unwrap()
            .iter()
            .map(|n| verifier.open(n).unwrap())
            .collect();
        self.db
            .owner()
            .await
            .verify_practice(
                self.w.a.id,
                &origin(ORIGIN, self.w.a.id.as_uuid()),
                cps,
                Duration::seconds(60),
                Utc::now(),
            )
            .await
            .unwrap()
    }

    /// A superuser connection with triggers disabled: the attacker.
    async fn attacker(&self) -> PgConnection {
        let mut su = self.db.superuser_unsafe().await;
        su.execute("set session_replication_role = replica")
            .await
            .unwrap();
        su
    }

    async fn event_at(&self, su: &mut PgConnection, seq: i64) -> uuid::Uuid {
        sqlx::query_scalar(
            "select event_id from audit_sequence where practice_id = $1 and seq = $2",
        )
        .bind(self.w.a.id)
        .bind(seq)
        .fetch_one(su)
        .await
        .unwrap()
    }
}

impl Drop for Log {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn first_problem(out: &store::audit::VerifyOutcome) -> (u64, ProblemKind) {
    let p = out
        .report
        .problem
        .clone()
        .unwrap_or_else(|| panic!("tampering not detected: {}", out.report));
    (p.seq, p.kind)
}

#[tokio::test]
async fn an_untouched_log_verifies_and_proofs_check_out() {
    let log = Log::new(30).await;
    let size = log.checkpoint().await;
    assert!(
        size >= 30,
        "World's own events plus the reads are sequenced: {size}"
    );
    let out = log.verify().await;
    assert!(out.is_ok(), "{}", out.report);
    assert_eq!(out.report.events_checked, size);
    assert_eq!(out.report.checkpoints_matched, 1);
    // Every event of both practices was sequenced, gapless, per practice.
    let mut su = log.db.superuser_unsafe().await;
    for p in [log.w.a.id, log.w.b.id] {
        let (n, max, pending): (i64, Option<i64>, i64) = sqlx::query_as(
            "select count(*), max(seq), (select count(*) from audit_pending where practice_id = $1) from audit_sequence where practice_id = $1",
        )
        .bind(p)
        .fetch_one(&mut su)
        .await
        .unwrap();
        assert_eq!(Some(n - 1), max, "gapless");
        assert_eq!(pending, 0);
    }
    // Proofs from the stored tree verify against the signed root.
    let owner = log.db.owner().await;
    let head = owner.tree_head(log.w.a.id).await.unwrap();
    for seq in [0, 7, size - 1] {
        let p = owner
            .inclusion_proof(log.w.a.id, seq, None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(p.root, head.root);
        audit::merkle::verify_inclusion(&p.leaf_hash, seq, size, &p.path, &head.root).unwrap();
    }
    log.reads(5).await;
    let c = owner
        .consistency_proof(log.w.a.id, size, None)
        .await
        .unwrap()
        .unwrap();
    audit::merkle::verify_consistency(size, c.second, &head.root, &c.second_root, &c.path).unwrap();
    assert!(
        owner
            .inclusion_proof(log.w.a.id, 10_000, None)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn a_changed_event_is_caught() {
    let log = Log::new(20).await;
    log.checkpoint().await;
    let mut su = log.attacker().await;
    let id = log.event_at(&mut su, 5).await;
    sqlx::query("update audit_event set action = 'patient.update' where event_id = $1")
        .bind(id)
        .execute(&mut su)
        .await
        .unwrap();
    let out = log.verify().await;
    assert_eq!(first_problem(&out), (5, ProblemKind::ContentChanged));
}

#[tokio::test]
async fn a_deleted_event_is_caught() {
    let log = Log::new(20).await;
    log.checkpoint().await;
    let mut su = log.attacker().await;
    let id = log.event_at(&mut su, 7).await;
    sqlx::query("delete from audit_event where event_id = $1")
        .bind(id)
        .execute(&mut su)
        .await
        .unwrap();
    let out = log.verify().await;
    assert_eq!(first_problem(&out).0, 7, "{}", out.report);
    assert!(
        matches!(first_problem(&out).1, ProblemKind::Gap { .. }),
        "{}",
        out.report
    );
    // Deleting the sequence row as well leaves the same gap.
    sqlx::query("delete from audit_sequence where practice_id = $1 and seq = 7")
        .bind(log.w.a.id)
        .execute(&mut su)
        .await
        .unwrap();
    assert!(matches!(
        first_problem(&log.verify().await),
        (7, ProblemKind::Gap { .. })
    ));
}

#[tokio::test]
async fn an_inserted_event_is_caught() {
    let log = Log::new(20).await;
    log.checkpoint().await;
    let mut su = log.attacker().await;
    // Outside the chain: a row that never went through the queue.
    sqlx::query("insert into audit_event (practice_id, event_id, occurred_at, action, outcome) values ($1, gen_random_uuid(), now(), 'patient.read', 'success')")
        .bind(log.w.a.id)
        .execute(&mut su)
        .await
        .unwrap();
    let out = log.verify().await;
    assert_eq!(out.unqueued_events, 1);
    assert!(!out.is_ok());
    // Inside the chain: renumber the tail and slip a forged event in at seq 10.
    sqlx::query(
        "update audit_sequence set seq = seq + 100000 where practice_id = $1 and seq >= 10",
    )
    .bind(log.w.a.id)
    .execute(&mut su)
    .await
    .unwrap();
    sqlx::query(
        "update audit_sequence set seq = seq - 99999 where practice_id = $1 and seq >= 100000",
    )
    .bind(log.w.a.id)
    .execute(&mut su)
    .await
    .unwrap();
    let forged = uuid::Uuid::new_v4();
    sqlx::query("insert into audit_event (practice_id, event_id, occurred_at, actor_id, action, outcome) values ($1, $2, now(), $3, 'patient.read', 'success')")
        .bind(log.w.a.id)
        .bind(forged)
        .bind(log.w.a.user("owner"))
        .execute(&mut su)
        .await
        .unwrap();
    sqlx::query("insert into audit_sequence (practice_id, seq, event_id, chain_hash, leaf_hash, sequenced_at) select practice_id, 10, $2, chain_hash, leaf_hash, now() from audit_sequence where practice_id = $1 and seq = 11")
        .bind(log.w.a.id)
        .bind(forged)
        .execute(&mut su)
        .await
        .unwrap();
    let out = log.verify().await;
    assert_eq!(first_problem(&out).0, 10, "{}", out.report);
}

#[tokio::test]
async fn reordered_events_are_caught() {
    let log = Log::new(20).await;
    log.checkpoint().await;
    let mut su = log.attacker().await;
    let p = log.w.a.id;
    for (from, to) in [(3, 999_999), (4, 3), (999_999, 4)] {
        sqlx::query("update audit_sequence set seq = $3 where practice_id = $1 and seq = $2")
            .bind(p)
            .bind(from)
            .bind(to)
            .execute(&mut su)
            .await
            .unwrap();
    }
    let out = log.verify().await;
    assert_eq!(first_problem(&out).0, 3, "{}", out.report);
}

#[tokio::test]
async fn a_truncated_tail_is_caught_even_back_to_an_earlier_consistent_state() {
    let log = Log::new(20).await;
    let first = log.checkpoint().await;
    log.reads(10).await;
    let second = log.checkpoint().await;
    assert!(second > first);
    // Cut the log back to exactly what the first checkpoint signed: internally consistent.
    let mut su = log.attacker().await;
    let p = log.w.a.id;
    sqlx::query("delete from audit_event e using audit_sequence s where s.practice_id = $1 and e.practice_id = $1 and e.event_id = s.event_id and s.seq >= $2")
        .bind(p)
        .bind(i64::try_from(first).unwrap())
        .execute(&mut su)
        .await
        .unwrap();
    sqlx::query("delete from audit_sequence where practice_id = $1 and seq >= $2")
        .bind(p)
        .bind(i64::try_from(first).unwrap())
        .execute(&mut su)
        .await
        .unwrap();
    sqlx::query("delete from audit_node where practice_id = $1")
        .bind(p)
        .execute(&mut su)
        .await
        .unwrap();
    let out = log.verify().await;
    let (seq, kind) = first_problem(&out);
    assert_eq!(
        kind,
        ProblemKind::Truncated {
            checkpoint_size: second
        },
        "{}",
        out.report
    );
    assert_eq!(seq, first);
}

#[tokio::test]
async fn deleting_a_patient_keeps_the_trail_verifiable() {
    let log = Log::new(5).await;
    let owner = log.db.owner().await;
    let now = Utc::now();
    let p = owner
        .seed_patient(
            log.w.a.id,
            &domain::synthetic::Generator::new(5).patient().into(),
            now,
        )
        .await
        .unwrap();
    let mut su = log.db.superuser_unsafe().await;
    sqlx::query("delete from patient where practice_id = $1 and patient_id = $2")
        .bind(log.w.a.id)
        .bind(p)
        .execute(&mut su)
        .await
        .unwrap();
    log.reads(1).await;
    log.checkpoint().await;
    let n: i64 = sqlx::query_scalar("select count(*) from audit_event where patient_id = $1")
        .bind(p)
        .fetch_one(&mut su)
        .await
        .unwrap();
    assert_eq!(n, 1, "the creation event outlives the patient");
    let out = log.verify().await;
    assert!(out.is_ok(), "{}", out.report);
}

#[tokio::test]
async fn retention_prunes_only_rows_older_than_six_years_and_stays_verifiable() {
    let log = Log::new(0).await;
    let p = log.w.a.id;
    let mut su = log.db.superuser_unsafe().await;
    let now = Utc::now();
    let six_years = Duration::days(6 * 365 + 1);
    // The practice's own first events (its creation, members, a patient) date from eight
    // years ago; they are queued, not yet sequenced, so moving them back is still honest here.
    su.execute("set session_replication_role = replica")
        .await
        .unwrap();
    sqlx::query("update audit_event set occurred_at = occurred_at - interval '8 years' where practice_id = $1").bind(p).execute(&mut su).await.unwrap();
    su.execute("set session_replication_role = origin")
        .await
        .unwrap();
    let founding: u64 =
        sqlx::query_scalar::<_, i64>("select count(*) from audit_event where practice_id = $1")
            .bind(p)
            .fetch_one(&mut su)
            .await
            .unwrap()
            .try_into()
            .unwrap();
    // Then twelve events from seven years ago, three from six years minus a day ago.
    for (age, n) in [
        (Duration::days(7 * 365), 12),
        (six_years - Duration::days(1), 3),
    ] {
        for i in 0..n {
            sqlx::query("insert into audit_event (practice_id, event_id, occurred_at, action, outcome) values ($1, gen_random_uuid(), $2, 'patient.read', 'success')")
                .bind(p)
                .bind(now - age + Duration::minutes(i))
                .execute(&mut su)
                .await
                .unwrap();
        }
    }
    log.store.sequence_pending(now).await.unwrap();
    log.reads(3).await;
    log.checkpoint().await;
    let owner = log.db.owner().await;
    let sign = |h: &store::sequence::TreeHead| -> Result<(), String> {
        let cp = audit::Checkpoint::new(origin(ORIGIN, p.as_uuid()), h.size, h.root)
            .with_chain_head(&h.chain_head);
        let note = log.cp.signer.sign(&cp).map_err(|e| e.to_string())?;
        DirStore::new(&log.dir)
            .put(p.as_uuid(), &note, h.size)
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    let count_old = async |su: &mut PgConnection| -> i64 {
        sqlx::query_scalar(
            "select count(*) from audit_event where practice_id = $1 and occurred_at < $2",
        )
        .bind(p)
        .bind(now - Duration::days(5 * 365))
        .fetch_one(su)
        .await
        .unwrap()
    };
    assert_eq!(
        count_old(&mut su).await,
        i64::try_from(founding).unwrap() + 15
    );
    // A retention job whose cut-off reaches rows younger than six years is refused whole.
    let err = owner
        .prune_audit(p, now - six_years + Duration::days(2), now, sign)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("younger than six years")
            || matches!(err, store::StoreError::Forbidden),
        "{err}"
    );
    assert_eq!(
        count_old(&mut su).await,
        i64::try_from(founding).unwrap() + 15,
        "nothing was deleted"
    );
    // A direct delete of in-window rows with the prune switch on is refused too.
    let mut o: PgConnection = sqlx::Connection::connect_with(&log.db.owner_options().await)
        .await
        .unwrap();
    sqlx::query("select set_config('chartroom.practice_id', $1, false), set_config('chartroom.audit_prune', 'on', false)")
        .bind(p.to_string())
        .execute(&mut o)
        .await
        .unwrap();
    let err = sqlx::query("delete from audit_event where occurred_at > $1")
        .bind(now - six_years)
        .execute(&mut o)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("younger than six years"), "{err}");
    // At six years, exactly the twelve seven-year-old events go, and the log still verifies
    // from the checkpoint signed at the pruning point.
    let (start, removed) = owner
        .prune_audit(p, now - six_years, now, sign)
        .await
        .unwrap();
    assert_eq!((start, removed), (founding + 12, founding + 12));
    assert_eq!(count_old(&mut su).await, 3);
    let prunes: i64 = sqlx::query_scalar(
        "select count(*) from audit_event where practice_id = $1 and action = 'audit.prune'",
    )
    .bind(p)
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert_eq!(prunes, 1, "the prune itself is on the trail");
    let out = log.verify().await;
    assert!(out.is_ok(), "{}", out.report);
    assert_eq!(
        out.report.start,
        founding + 12,
        "verification starts at the pruning point"
    );
    // Tampering after the pruning point is still caught.
    let mut attacker = log.attacker().await;
    let at = founding + 13;
    let id = log
        .event_at(&mut attacker, i64::try_from(at).unwrap())
        .await;
    sqlx::query("update audit_event set outcome = 'denied' where event_id = $1")
        .bind(id)
        .execute(&mut attacker)
        .await
        .unwrap();
    assert_eq!(
        first_problem(&log.verify().await),
        (at, ProblemKind::ContentChanged)
    );
}

#[tokio::test]
async fn many_practices_are_sequenced_in_parallel_without_gaps() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let store = db.store().await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (store, w) = (store.clone(), w.clone());
        tasks.push(tokio::spawn(async move {
            let (p, u, pat): (PracticeId, UserId, _) = if i % 2 == 0 {
                (w.a.id, w.a.user("reception"), w.a.patient)
            } else {
                (w.b.id, w.b.user("reception"), w.b.patient)
            };
            let token = testkit::session_token(&store, u).await;
            for _ in 0..25 {
                testkit::read_patient(&store, &token, p, pat).await.unwrap();
            }
        }));
    }
    // Sequence concurrently with the appends.
    let sequencer = {
        let store = store.clone();
        tokio::spawn(async move {
            for _ in 0..20 {
                store.sequence_pending(Utc::now()).await.unwrap();
            }
        })
    };
    for t in tasks {
        t.await.unwrap();
    }
    sequencer.await.unwrap();
    while store.sequence_pending(Utc::now()).await.unwrap() > 0 {}
    let mut su = db.superuser_unsafe().await;
    for p in [w.a.id, w.b.id] {
        let (n, max, events): (i64, Option<i64>, i64) = sqlx::query_as(
            "select count(*), max(seq), (select count(*) from audit_event where practice_id = $1) from audit_sequence where practice_id = $1",
        )
        .bind(p)
        .fetch_one(&mut su)
        .await
        .unwrap();
        assert_eq!(n, events, "every event sequenced once");
        assert_eq!(max, Some(n - 1), "gapless");
    }
}

// issue 16 — what the load benchmark found: a backlog larger than one batch is drained pass
// after pass (the pass says there is more), and every practice with queued events is found by
// the index walk (`app.audit_pending_practices()`, migration 0022), then none once drained.
#[tokio::test]
async fn a_backlog_larger_than_a_batch_is_drained_and_every_queued_practice_is_found() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let store = db.store().await;
    let mut su = db.superuser_unsafe().await;
    let batch = store::sequence::SEQUENCE_BATCH;
    testkit::queue_synthetic_events(
        &mut su,
        w.a.id,
        w.a.user("reception"),
        w.a.patient,
        batch + 150,
    )
    .await;
    testkit::queue_synthetic_events(&mut su, w.b.id, w.b.user("reception"), w.b.patient, 7).await;
    let pending = |mut conn: PgConnection| async move {
        let mut v: Vec<uuid::Uuid> = sqlx::query_scalar("select app.audit_pending_practices()")
            .fetch_all(&mut conn)
            .await
            .unwrap();
        v.sort();
        v
    };
    let mut both = vec![w.a.id.as_uuid(), w.b.id.as_uuid()];
    both.sort();
    // The World's own setup may have queued events too: A and B are what is queued.
    assert_eq!(pending(db.runtime_conn().await).await, both);

    let first = store.sequence_pending_each(Utc::now()).await.unwrap();
    assert!(first.failed.is_empty(), "{:?}", first.failed);
    assert!(first.more, "A had more than a batch queued");
    assert_eq!(
        pending(db.runtime_conn().await).await,
        vec![w.a.id.as_uuid()]
    );
    let second = store.sequence_pending_each(Utc::now()).await.unwrap();
    assert!(!second.more, "the rest fits one batch");
    assert!(second.sequenced >= 150);
    assert!(pending(db.runtime_conn().await).await.is_empty());
    assert_eq!(store.sequence_pending(Utc::now()).await.unwrap(), 0);
    for p in [w.a.id, w.b.id] {
        let (n, max, events): (i64, Option<i64>, i64) = sqlx::query_as(
            "select count(*), max(seq), (select count(*) from audit_event where practice_id = $1) from audit_sequence where practice_id = $1",
        )
        .bind(p)
        .fetch_one(&mut su)
        .await
        .unwrap();
        assert_eq!(n, events, "every event sequenced once");
        assert_eq!(max, Some(n - 1), "gapless");
    }
}
