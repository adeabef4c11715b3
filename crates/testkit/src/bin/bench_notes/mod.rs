//! Clinical notes: a draft save (encrypt + hash + version row + header + audit + commit) and a
//! note read (versions + decrypt + hash check + audit + commit) against the same statements
//! with the content stored as plaintext bytes and no audit event, alternating, best of
//! `rounds`. Each client works on its own notes (a save locks its note's header).

use std::sync::Arc;

use domain::NoteId;
use domain::notes::{FieldValue, NoteContent, Template};
use store::embedded::DbRole;
use testkit::{TestDb, World};

use crate::run_for;

struct Fx {
    practice: domain::PracticeId,
    actor: domain::UserId,
    full: Vec<NoteId>,
    plain: Vec<NoteId>,
    content: NoteContent,
}

fn content() -> NoteContent {
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
    let actor = w.a.user("clinician");
    let c = content();
    let max_clients = clients.iter().copied().max().unwrap_or(1);
    // One full and one plain note per client; the plain ones get a plaintext first version
    // through the plain save path.
    let mut full = Vec::new();
    let mut plain = Vec::new();
    let create = async || {
        store
            .bench_note_create(
                w.a.id,
                actor,
                domain::RoleSet::from_iter([domain::Role::Clinician]),
                w.a.patient,
                Template::DentalHygiene,
                &c,
            )
            .await
    };
    for _ in 0..max_clients {
        full.push(create().await?);
        let p = create().await?;
        anyhow::ensure!(
            store
                .bench_note_save(
                    w.a.id,
                    actor,
                    domain::RoleSet::from_iter([domain::Role::Clinician]),
                    p,
                    &c,
                    false
                )
                .await?
        );
        plain.push(p);
    }
    let fx = Arc::new(Fx {
        practice: w.a.id,
        actor,
        full,
        plain,
        content: c,
    });
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
                let (s, f) = (store.clone(), Arc::clone(&fx));
                let rate = run_for(n, seconds, move |client, _| {
                    let (s, f) = (s.clone(), Arc::clone(&f));
                    async move {
                        let notes = if full_path { &f.full } else { &f.plain };
                        let note = notes[client % notes.len()];
                        if save {
                            s.bench_note_save(
                                f.practice,
                                f.actor,
                                domain::RoleSet::from_iter([domain::Role::Clinician]),
                                note,
                                &f.content,
                                full_path,
                            )
                            .await
                            .unwrap_or(false)
                        } else {
                            s.bench_note_read(
                                f.practice,
                                f.actor,
                                domain::RoleSet::from_iter([domain::Role::Clinician]),
                                note,
                                full_path,
                            )
                            .await
                            .unwrap_or(false)
                        }
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
