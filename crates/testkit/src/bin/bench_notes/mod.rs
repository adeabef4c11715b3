//! Clinical notes: a draft save (encrypt + hash + version row + header + audit + commit) and a
//! note read (versions + decrypt + hash check + audit + commit), through `store::notes` after a
//! real session entry, against the same statements with the content stored as plaintext bytes
//! and no audit event (raw SQL after the same session entry: [`Baseline::save_note`],
//! [`Baseline::read_note`]), alternating, best of `rounds`. Each client works on its own notes
//! (a save locks its note's header).

use std::sync::Arc;

use domain::notes::{FieldValue, NoteContent, Template};
use domain::{AuditAction, NoteId};
use pgcluster::DbRole;
use testkit::{TestDb, World};

use crate::baseline::{Baseline, SessionHash};
use crate::run_for;

struct Fx {
    practice: domain::PracticeId,
    store: store::Store,
    baseline: Baseline,
    /// The clinician's session, as the product path presents it and as the baseline does.
    token: String,
    session: SessionHash,
    full: Vec<NoteId>,
    plain: Vec<NoteId>,
    content: NoteContent,
}

impl Fx {
    /// The product path's draft save: session entry, [`store::notes::save_draft`], its audit
    /// event (as the note route writes it), commit.
    async fn save(&self, note: NoteId) -> anyhow::Result<bool> {
        let mut tx = testkit::enter_practice(&self.store, &self.token, self.practice).await?;
        let Ok(n) =
            store::notes::save_draft(&mut tx, self.store.keyring()?, note, None, &self.content)
                .await?
        else {
            return Ok(false);
        };
        tx.audit_details(
            AuditAction::NoteUpdate,
            Some(n.patient_id),
            Some(domain::AuditObject::note(note)),
            Some(serde_json::json!({ "version": n.version })),
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The product path's note read: session entry, [`store::notes::get`] (header, versions,
    /// decryption, hash check), its audit event, commit.
    async fn read(&self, note: NoteId) -> anyhow::Result<bool> {
        let mut tx = testkit::enter_practice(&self.store, &self.token, self.practice).await?;
        let n = store::notes::get(&mut tx, self.store.keyring()?, note).await?;
        if let Some(n) = &n {
            tx.audit(
                AuditAction::NoteRead,
                Some(n.patient_id),
                Some(domain::AuditObject::note(note)),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(n.is_some())
    }

    /// A draft note through the product path (session entry, [`store::notes::create`], audit).
    async fn create(&self, patient: domain::PatientId) -> anyhow::Result<NoteId> {
        let mut tx = testkit::enter_practice(&self.store, &self.token, self.practice).await?;
        let n = store::notes::create(
            &mut tx,
            self.store.keyring()?,
            patient,
            Template::DentalHygiene,
            None,
            &self.content,
        )
        .await?;
        tx.audit(
            AuditAction::NoteCreate,
            Some(patient),
            Some(domain::AuditObject::note(n.note_id)),
        )
        .await?;
        tx.commit().await?;
        Ok(n.note_id)
    }
}

/// A synthetic dental hygiene note.
pub(crate) fn content() -> NoteContent {
    let mut c = NoteContent {
        subjective: "Synthetic: patient reports mild sensitivity on the upper left when drinking cold water, no pain at night.".into(),
        objective: "Synthetic: generalized mild marginal gingivitis, light supragingival calculus lower anteriors, plaque score 1.".into(),
        assessment: "Synthetic: gingivitis, plaque induced; dentin hypersensitivity suspected.".into(),
        plan: "Synthetic: scaling and polishing done, fluoride varnish applied, desensitizing toothpaste advised, recall six months.".into(),
        ..NoteContent::default()
    };
    c.fields
        .insert("calculus".into(), FieldValue::Text("light".into()));
    c.fields.insert("recall_months".into(), FieldValue::Int(6));
    c.fields
        .insert("fluoride_applied".into(), FieldValue::Bool(true));
    c
}

/// Note saves and reads per second, full path vs the plain statements.
pub(crate) async fn notes(
    seconds: u64,
    clients: Vec<usize>,
    rounds: usize,
    pool: u32,
) -> anyhow::Result<()> {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let store = store::Store::connect_runtime(db.runtime_options().await, pool)
        .await?
        .with_keyring(db.keyring(DbRole::Runtime).await);
    let baseline = Baseline::connect(&db, pool, store.keyring()?.clone()).await?;
    let token = testkit::session_token(&store, w.a.user("clinician")).await;
    let mut fx = Fx {
        practice: w.a.id,
        store,
        baseline,
        session: SessionHash::of(&token),
        token,
        full: Vec::new(),
        plain: Vec::new(),
        content: content(),
    };
    // One full and one plain note per client; the plain ones get a plaintext current version
    // through the baseline's save.
    let max_clients = clients.iter().copied().max().unwrap_or(1);
    for _ in 0..max_clients {
        let full = fx.create(w.a.patient).await?;
        fx.full.push(full);
        let p = fx.create(w.a.patient).await?;
        anyhow::ensure!(
            fx.baseline
                .save_note(&fx.session, fx.practice, p, &fx.content)
                .await?
        );
        fx.plain.push(p);
    }
    let fx = Arc::new(fx);
    println!(
        "clinical note save and read: full path (encryption, hash, version, audit) vs the same statements in plaintext without audit; pool {pool}, {seconds} s per run, {rounds} alternating rounds"
    );
    println!(
        "{:>8} {:>12} {:>12} {:>7} {:>12} {:>12} {:>7}",
        "clients", "save plain/s", "save full/s", "ratio", "read plain/s", "read full/s", "ratio"
    );
    for &n in &clients {
        let mut best = [0.0_f64; 4];
        for _ in 0..rounds {
            for (slot, full_path, save) in [
                (0, false, true),
                (1, true, true),
                (2, false, false),
                (3, true, false),
            ] {
                let f = Arc::clone(&fx);
                let rate = run_for(n, seconds, move |client, _| {
                    let f = Arc::clone(&f);
                    async move {
                        let notes = if full_path { &f.full } else { &f.plain };
                        let note = notes[client % notes.len()];
                        let done = match (save, full_path) {
                            (true, true) => f.save(note).await,
                            (true, false) => {
                                f.baseline
                                    .save_note(&f.session, f.practice, note, &f.content)
                                    .await
                            }
                            (false, true) => f.read(note).await,
                            (false, false) => {
                                f.baseline.read_note(&f.session, f.practice, note).await
                            }
                        };
                        done.unwrap_or(false)
                    }
                })
                .await;
                best[slot] = best[slot].max(rate);
            }
        }
        println!(
            "{n:>8} {:>12.0} {:>12.0} {:>6.1}% {:>12.0} {:>12.0} {:>6.1}%",
            best[0],
            best[1],
            100.0 * best[1] / best[0],
            best[2],
            best[3],
            100.0 * best[3] / best[2],
        );
    }
    Ok(())
}
