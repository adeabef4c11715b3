//! The schema as the migrations leave it (issue 15.7): the checked-in description
//! (`migrations/SCHEMA.md`) is what a freshly migrated database says, and every tenant table
//! keys by `practice_id` first, so the schema can be distributed by practice (Citus) without
//! redesign (ARCHITECTURE.md, "Database rules").

use std::collections::BTreeSet;

use sqlx::{Connection as _, Executor as _, PgConnection};
use testkit::TestDb;
use testkit::schema::{CHECKED_IN, REGENERATE, describe};

use crate::util::tenant_tables;

/// Keys of tenant tables that do not lead with `practice_id`, each with its reason. Nothing
/// else may be listed here, and an entry the schema no longer has fails the test too.
const NOT_LED_BY_PRACTICE: &[(&str, &str)] = &[
    (
        "membership_invitation_tag_idx",
        "the invitee looks up the invitations addressed to them across practices by nature \
         (migration 0017); a non-unique index need not lead with the distribution column, and \
         under Citus this one lookup fans out to every shard",
    ),
    (
        "client_link_digest_idx",
        "a client link's holder presents only the token, so `app.enter_link` finds the link \
         by its digest across practices by nature (migration 0030); non-unique, and under \
         Citus this one lookup fans out to every shard",
    ),
    (
        "booking_payment_intent_idx",
        "Stripe's charge.refunded names only the refunded charge's PaymentIntent, so its \
         settlement finds the payment's practice by it across practices by nature (migration \
         0040); non-unique and partial, and under Citus this one lookup fans out to every shard",
    ),
    (
        "booking_payment_ref_idx",
        "a payment processor's webhook names only the opaque payment reference, so the \
         settlement finds the payment's practice by it across practices by nature (migration \
         0034); non-unique, and under Citus this one lookup fans out to every shard",
    ),
];

async fn owner_conn(db: &TestDb) -> PgConnection {
    PgConnection::connect_with(&db.owner_options().await)
        .await
        .unwrap()
}

/// Where the two texts first differ, with a few lines of each around it.
fn first_difference(old: &str, new: &str) -> String {
    let (old, new): (Vec<&str>, Vec<&str>) = (old.lines().collect(), new.lines().collect());
    let at = old
        .iter()
        .zip(&new)
        .position(|(a, b)| a != b)
        .unwrap_or(old.len().min(new.len()));
    let from = at.saturating_sub(2);
    let show = |lines: &[&str]| {
        lines
            .iter()
            .enumerate()
            .skip(from)
            .take(8)
            .map(|(i, l)| format!("{:>6} | {l}", i + 1))
            .collect::<Vec<_>>()
            .join("\n")
    };
    format!(
        "first difference at line {} ({} lines checked in, {} generated)\n\
         --- checked in\n{}\n+++ generated\n{}",
        at + 1,
        old.len(),
        new.len(),
        show(&old),
        show(&new)
    )
}

// issue 15.7
#[tokio::test]
async fn checked_in_schema_description_is_what_the_migrations_produce() {
    let db = TestDb::new().await;
    let generated = describe(&mut owner_conn(&db).await).await.unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let checked_in = std::fs::read_to_string(root.join(CHECKED_IN)).unwrap_or_default();
    if checked_in != generated {
        let fresh =
            std::env::temp_dir().join(format!("chartroom-SCHEMA-{}.md", std::process::id()));
        std::fs::write(&fresh, &generated).unwrap();
        panic!(
            "{CHECKED_IN} is not what the migrations produce: run `{REGENERATE}` to regenerate \
             it, and commit it with the migration.\n{}\nThe generated text: {} \
             (`diff -u {CHECKED_IN} {}`)",
            first_difference(&checked_in, &generated),
            fresh.display(),
            fresh.display()
        );
    }
}

// The description follows the catalog: a policy, a function or a grant added by a migration
// shows up in it (so the comparison above catches a migration whose description was not
// regenerated).
// issue 15.7
#[tokio::test]
async fn the_description_shows_a_new_policy_function_and_grant() {
    let db = TestDb::new().await;
    let mut owner = owner_conn(&db).await;
    let before = describe(&mut owner).await.unwrap();
    assert_eq!(before, describe(&mut owner).await.unwrap(), "deterministic");
    owner
        .execute(
            "create function app.schema_probe() returns boolean language sql stable
               security definer set search_path = pg_catalog as $$ select false $$;
             revoke all on function app.schema_probe() from public;
             grant execute on function app.schema_probe() to chartroom_runtime;
             create policy schema_probe on visit as restrictive for select to chartroom_runtime
               using (app.schema_probe());
             grant update (started_at) on visit to chartroom_runtime",
        )
        .await
        .unwrap();
    let after = describe(&mut owner).await.unwrap();
    for expected in [
        "### `app.schema_probe()`\n\nOwner `chartroom_owner` · **security definer** · \
         execute: chartroom_runtime\n",
        "create policy schema_probe on public.visit as restrictive for select to \
         chartroom_runtime\n    using (app.schema_probe());\n",
        "grant update (started_at) on table public.visit to chartroom_runtime;\n",
    ] {
        assert!(!before.contains(expected), "already there: {expected}");
        assert!(after.contains(expected), "missing: {expected}");
    }
}

/// A key of a tenant table that does not lead with `practice_id`: (name, definition).
type Stray = (String, String);

/// Every primary key, index and foreign key of a tenant table ([`tenant_tables`]) that does not
/// lead with `practice_id`; a foreign key into a tenant
/// table must also pair `practice_id` with `practice_id` and come from a tenant table.
/// Foreign keys from a tenant table to an installation table (`app_user`) are what a reference
/// table is for under Citus and need no practice.
async fn keys_not_led_by_practice(conn: &mut PgConnection) -> Vec<Stray> {
    sqlx::query_as(
        "with tenant as (
           select c.oid from pg_class c join pg_namespace n on n.oid = c.relnamespace
            where n.nspname = 'public' and c.relname = any ($1)),
         first_column as (
           select attrelid, attnum, attname = 'practice_id' as practice
             from pg_attribute where attnum > 0)
         select c.relname::text || ' (no primary key)', ''
           from tenant t join pg_class c on c.oid = t.oid
          where not exists (select 1 from pg_constraint k where k.conrelid = t.oid and k.contype = 'p')
         union all
         select ic.relname::text, pg_get_indexdef(i.indexrelid)
           from tenant t join pg_index i on i.indrelid = t.oid
           join pg_class ic on ic.oid = i.indexrelid
          where not coalesce((select f.practice from first_column f
                               where f.attrelid = t.oid and f.attnum = i.indkey[0]), false)
         union all
         select k.conname::text, k.conrelid::regclass::text || ' ' || pg_get_constraintdef(k.oid)
           from pg_constraint k
          where k.contype = 'f' and k.confrelid in (select oid from tenant)
            and not (k.conrelid in (select oid from tenant)
                     and coalesce((select f.practice from first_column f
                                    where f.attrelid = k.conrelid and f.attnum = k.conkey[1]), false)
                     and coalesce((select f.practice from first_column f
                                    where f.attrelid = k.confrelid and f.attnum = k.confkey[1]), false))
          order by 1",
    )
    .bind(tenant_tables(&mut *conn).await)
    .fetch_all(conn)
    .await
    .unwrap()
}

// issue 15.7
#[tokio::test]
async fn practice_id_leads_every_key_of_every_tenant_table() {
    let db = TestDb::new().await;
    let mut owner = owner_conn(&db).await;
    let strays = keys_not_led_by_practice(&mut owner).await;
    let allowed: BTreeSet<&str> = NOT_LED_BY_PRACTICE.iter().map(|(name, _)| *name).collect();
    let unexplained: Vec<&Stray> = strays
        .iter()
        .filter(|(name, _)| !allowed.contains(name.as_str()))
        .collect();
    assert!(
        unexplained.is_empty(),
        "keys of tenant tables that do not lead with practice_id (lead with it, or add the \
         key with its reason to NOT_LED_BY_PRACTICE): {unexplained:#?}"
    );
    let found: BTreeSet<&str> = strays.iter().map(|(name, _)| name.as_str()).collect();
    let stale: Vec<&&str> = allowed.difference(&found).collect();
    assert!(
        stale.is_empty(),
        "NOT_LED_BY_PRACTICE names keys the schema does not have (any more): {stale:?}"
    );

    // The check sees each kind of stray key.
    owner
        .execute(
            "create table schema_probe (
               practice_id uuid not null references practice (practice_id),
               probe_id uuid not null, other uuid,
               primary key (probe_id, practice_id),
               constraint schema_probe_other_fkey foreign key (other, practice_id)
                 references schema_probe (probe_id, practice_id));
             create index schema_probe_other_idx on schema_probe (other, practice_id);
             create index schema_probe_expr_idx on schema_probe ((practice_id::text));
             create table schema_probe_keyless (practice_id uuid);
             create table schema_probe_global (
               probe_id uuid primary key,
               practice uuid references practice (practice_id))",
        )
        .await
        .unwrap();
    let probed: BTreeSet<String> = keys_not_led_by_practice(&mut owner)
        .await
        .into_iter()
        .map(|(name, _)| name)
        .filter(|name| name.starts_with("schema_probe"))
        .collect();
    assert_eq!(
        probed,
        BTreeSet::from(
            [
                "schema_probe_expr_idx",
                "schema_probe_global_practice_fkey",
                "schema_probe_keyless (no primary key)",
                "schema_probe_other_fkey",
                "schema_probe_other_idx",
                "schema_probe_pkey",
            ]
            .map(str::to_owned)
        )
    );
}
