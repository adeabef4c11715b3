//! A readable description of the database schema, generated from the catalog of a freshly
//! migrated database: what the migrations add up to today, so nobody has to replay them to
//! know a table's columns, its policies or the body of `app.enter`.
//!
//! [`describe`] writes every table (columns, constraints, indexes, row-level security and each
//! policy with its roles and expressions, triggers, grants), sequence, view and function (owner,
//! security definer, grants, full definition) of the non-system schemas, in a fixed order
//! (names compared bytewise) and with no object ids, under fixed output settings (search path,
//! time zone, date and interval styles), so the same migrations always give the same text. The
//! expressions are PostgreSQL's own deparse: a different major version may word them
//! differently.
//!
//! The description is checked in as [`CHECKED_IN`]; `./dev schema` regenerates it (the
//! `chartroom-schema` binary prints it) and a test in the suite fails when it is out of date.
//! Object kinds the migrations do not use yet (enum and domain types, extensions, rules, event
//! triggers, default privileges) are listed by name, never silently left out.

use std::fmt::Write as _;

use sqlx::{Connection as _, PgConnection};

/// Where the description is checked in, relative to the workspace root.
pub const CHECKED_IN: &str = "migrations/SCHEMA.md";

/// The command that regenerates [`CHECKED_IN`].
pub const REGENERATE: &str = "./dev schema";

/// Bookkeeping of the migration tool, not part of the schema.
const MIGRATIONS_TABLE: &str = "_sqlx_migrations";

/// The non-system schemas (`n` is the `pg_namespace` row).
const USER_SCHEMA: &str = "n.nspname not like 'pg\\_%' and n.nspname <> 'information_schema'";

/// Settings that change how PostgreSQL prints names and constants, fixed for the description.
const SETTINGS: &[&str] = &[
    "set transaction read only",
    "set local search_path = public",
    "set local timezone = 'UTC'",
    "set local datestyle = 'ISO, YMD'",
    "set local intervalstyle = 'postgres'",
    "set local bytea_output = 'hex'",
    "set local extra_float_digits = 1",
];

/// Describes the schema of the database `conn` is connected to, as Markdown. Reads the catalog
/// only, in a read-only transaction that is rolled back; any role that can connect sees the
/// whole catalog.
pub async fn describe(conn: &mut PgConnection) -> anyhow::Result<String> {
    let mut tx = conn.begin().await?;
    for s in SETTINGS {
        sqlx::query(s).execute(&mut *tx).await?;
    }
    let mut out = String::new();
    header(&mut tx, &mut out).await?;
    let tables = tables(&mut tx).await?;
    overview(&mut tx, &tables, &mut out).await?;
    schemas(&mut tx, &mut out).await?;
    writeln!(out, "\n## Tables")?;
    for t in &tables {
        table(&mut tx, t, &mut out).await?;
    }
    sequences(&mut tx, &mut out).await?;
    views(&mut tx, &mut out).await?;
    functions(&mut tx, &mut out).await?;
    others(&mut tx, &mut out).await?;
    tx.rollback().await?;
    Ok(out)
}

async fn header(conn: &mut PgConnection, out: &mut String) -> anyhow::Result<()> {
    writeln!(out, "# Chartroom database schema (generated)")?;
    writeln!(out)?;
    writeln!(
        out,
        "What the migrations in this directory add up to, read from the catalog of a freshly \
         migrated database. Generated: do not edit. Regenerate with `{REGENERATE}` after \
         changing a migration; the test suite fails while this file differs from what the \
         migrations produce (`crates/testkit/src/schema.rs` writes it)."
    )?;
    let applied: Vec<(i64, String)> = sqlx::query_as(&format!(
        "select version, description from public.{MIGRATIONS_TABLE} where success order by version"
    ))
    .fetch_all(&mut *conn)
    .await?;
    writeln!(out, "\nMigrations applied:")?;
    for (version, description) in applied {
        writeln!(out, "- {version:04} {description}")?;
    }
    Ok(())
}

/// One table, as the catalog describes it.
struct Table {
    oid: i64,
    name: String,
    owner: String,
    rls: bool,
    forced: bool,
    tenant: bool,
    options: Option<String>,
    comment: Option<String>,
}

async fn tables(conn: &mut PgConnection) -> anyhow::Result<Vec<Table>> {
    type Row = (
        i64,
        String,
        String,
        bool,
        bool,
        bool,
        Option<String>,
        Option<String>,
    );
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "select c.oid::int8, quote_ident(n.nspname) || '.' || quote_ident(c.relname),
                pg_get_userbyid(c.relowner)::text, c.relrowsecurity, c.relforcerowsecurity,
                exists (select 1 from pg_attribute a where a.attrelid = c.oid
                         and a.attname = 'practice_id' and not a.attisdropped),
                array_to_string(c.reloptions, ', '), obj_description(c.oid, 'pg_class')
           from pg_class c join pg_namespace n on n.oid = c.relnamespace
          where c.relkind in ('r', 'p') and {USER_SCHEMA}
            and not (n.nspname = 'public' and c.relname = '{MIGRATIONS_TABLE}')
          order by n.nspname collate \"C\", c.relname collate \"C\""
    ))
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(oid, name, owner, rls, forced, tenant, options, comment)| Table {
                oid,
                name,
                owner,
                rls,
                forced,
                tenant,
                options,
                comment,
            },
        )
        .collect())
}

async fn overview(
    conn: &mut PgConnection,
    tables: &[Table],
    out: &mut String,
) -> anyhow::Result<()> {
    writeln!(out, "\n## Overview\n")?;
    writeln!(
        out,
        "A tenant table has a `practice_id` column. RLS: row-level security enabled / forced."
    )?;
    writeln!(out)?;
    writeln!(out, "| table | tenant | RLS | policies | granted |")?;
    writeln!(out, "|---|---|---|---|---|")?;
    for t in tables {
        let policies: i64 =
            sqlx::query_scalar("select count(*) from pg_policy where polrelid = $1::oid")
                .bind(t.oid)
                .fetch_one(&mut *conn)
                .await?;
        let granted =
            grants(conn, Acl::Relation, t.oid)
                .await?
                .iter()
                .map(|g| format!("{}: {}", g.grantee, g.privileges))
                .chain(column_grants(conn, t.oid).await?.iter().map(
                    |(grantee, privilege, columns)| format!("{grantee}: {privilege} ({columns})"),
                ))
                .collect::<Vec<_>>()
                .join("; ");
        let rls = match (t.rls, t.forced) {
            (true, true) => "enabled, forced",
            (true, false) => "enabled, NOT forced",
            (false, true) => "DISABLED (forced)",
            (false, false) => "DISABLED",
        };
        writeln!(
            out,
            "| `{}` | {} | {rls} | {policies} | {} |",
            t.name,
            if t.tenant { "yes" } else { "no" },
            granted.replace('|', "\\|")
        )?;
    }
    Ok(())
}

async fn schemas(conn: &mut PgConnection, out: &mut String) -> anyhow::Result<()> {
    let rows: Vec<(i64, String, String)> = sqlx::query_as(&format!(
        "select n.oid::int8, quote_ident(n.nspname), pg_get_userbyid(n.nspowner)::text
           from pg_namespace n where {USER_SCHEMA} order by n.nspname collate \"C\""
    ))
    .fetch_all(&mut *conn)
    .await?;
    writeln!(out, "\n## Schemas\n\n```sql")?;
    for (oid, name, owner) in rows {
        writeln!(out, "create schema {name};  -- owner {owner}")?;
        for g in grants(conn, Acl::Schema, oid).await? {
            writeln!(out, "{}", g.statement("schema", &name))?;
        }
    }
    writeln!(out, "```")?;
    Ok(())
}

async fn table(conn: &mut PgConnection, t: &Table, out: &mut String) -> anyhow::Result<()> {
    writeln!(out, "\n### `{}`\n", t.name)?;
    if let Some(c) = &t.comment {
        writeln!(out, "{c}\n")?;
    }
    writeln!(out, "```sql")?;
    writeln!(out, "-- owner {}", t.owner)?;
    writeln!(out, "create table {} (", t.name)?;
    let mut items = columns(conn, t.oid).await?;
    let constraints: Vec<(String, String)> = sqlx::query_as(
        "select quote_ident(conname), pg_get_constraintdef(oid, true) from pg_constraint
          where conrelid = $1::oid and contype in ('p', 'u', 'f', 'c', 'x')
          order by position(contype::text in 'pufcx'), conname collate \"C\"",
    )
    .bind(t.oid)
    .fetch_all(&mut *conn)
    .await?;
    items.extend(
        constraints
            .into_iter()
            .map(|(name, def)| format!("constraint {name} {def}")),
    );
    writeln!(out, "    {}", items.join(",\n    "))?;
    match &t.options {
        Some(o) => writeln!(out, ") with ({o});")?,
        None => writeln!(out, ");")?,
    }
    let indexes: Vec<String> = sqlx::query_scalar(
        "select pg_get_indexdef(i.indexrelid) from pg_index i
           join pg_class ic on ic.oid = i.indexrelid
          where i.indrelid = $1::oid
            and not exists (select 1 from pg_constraint c where c.conindid = i.indexrelid
                             and c.conrelid = i.indrelid and c.contype in ('p', 'u', 'x'))
          order by ic.relname collate \"C\"",
    )
    .bind(t.oid)
    .fetch_all(&mut *conn)
    .await?;
    for i in indexes {
        writeln!(out, "{i};")?;
    }
    if t.rls {
        writeln!(out, "alter table {} enable row level security;", t.name)?;
    }
    if t.forced {
        writeln!(out, "alter table {} force row level security;", t.name)?;
    }
    policies(conn, t, out).await?;
    triggers(conn, t.oid, out).await?;
    for g in grants(conn, Acl::Relation, t.oid).await? {
        writeln!(out, "{}", g.statement("table", &t.name))?;
    }
    for (grantee, privilege, columns) in column_grants(conn, t.oid).await? {
        writeln!(
            out,
            "grant {privilege} ({columns}) on table {} to {grantee};",
            t.name
        )?;
    }
    writeln!(out, "```")?;
    Ok(())
}

async fn columns(conn: &mut PgConnection, table: i64) -> anyhow::Result<Vec<String>> {
    type Row = (
        String,
        String,
        bool,
        Option<String>,
        String,
        String,
        Option<String>,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "select quote_ident(a.attname), format_type(a.atttypid, a.atttypmod), a.attnotnull,
                pg_get_expr(d.adbin, d.adrelid), a.attidentity::text, a.attgenerated::text,
                (select quote_ident(co.collname) from pg_collation co
                  where co.oid = a.attcollation and a.attcollation <> t.typcollation)
           from pg_attribute a
           join pg_type t on t.oid = a.atttypid
           left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
          where a.attrelid = $1::oid and a.attnum > 0 and not a.attisdropped
          order by a.attnum",
    )
    .bind(table)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(name, ty, not_null, default, identity, generated, collation)| {
                let mut c = format!("{name} {ty}");
                if let Some(co) = collation {
                    write!(c, " collate {co}").ok();
                }
                match (default, identity.as_str(), generated.as_str()) {
                    (Some(e), _, "s") => write!(c, " generated always as ({e}) stored").ok(),
                    (Some(e), _, _) => write!(c, " default {e}").ok(),
                    (None, "a", _) => write!(c, " generated always as identity").ok(),
                    (None, "d", _) => write!(c, " generated by default as identity").ok(),
                    _ => None,
                };
                if not_null {
                    c.push_str(" not null");
                }
                c
            },
        )
        .collect())
}

async fn policies(conn: &mut PgConnection, t: &Table, out: &mut String) -> anyhow::Result<()> {
    type Row = (String, bool, String, String, Option<String>, Option<String>);
    let rows: Vec<Row> = sqlx::query_as(
        "select quote_ident(p.polname), p.polpermissive,
                case p.polcmd when 'r' then 'select' when 'a' then 'insert'
                              when 'w' then 'update' when 'd' then 'delete' else 'all' end,
                coalesce((select string_agg(quote_ident(r.rolname), ', ' order by r.rolname collate \"C\")
                            from pg_roles r where r.oid = any (p.polroles)), 'public'),
                pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid)
           from pg_policy p where p.polrelid = $1::oid order by p.polname collate \"C\"",
    )
    .bind(t.oid)
    .fetch_all(conn)
    .await?;
    for (name, permissive, command, roles, using, check) in rows {
        write!(out, "create policy {name} on {}", t.name)?;
        if !permissive {
            write!(out, " as restrictive")?;
        }
        write!(out, " for {command} to {roles}")?;
        if let Some(u) = using {
            write!(out, "\n    using ({u})")?;
        }
        if let Some(c) = check {
            write!(out, "\n    with check ({c})")?;
        }
        writeln!(out, ";")?;
    }
    Ok(())
}

async fn triggers(conn: &mut PgConnection, table: i64, out: &mut String) -> anyhow::Result<()> {
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "select pg_get_triggerdef(t.oid, true), quote_ident(t.tgname), t.tgenabled::text
           from pg_trigger t where t.tgrelid = $1::oid and not t.tgisinternal
          order by t.tgname collate \"C\"",
    )
    .bind(table)
    .fetch_all(conn)
    .await?;
    for (def, name, enabled) in rows {
        writeln!(out, "{def};")?;
        // 'O': fires in the normal (origin) replication role, the default.
        let state = match enabled.as_str() {
            "O" => continue,
            "D" => "disable",
            "R" => "enable replica",
            _ => "enable always",
        };
        writeln!(out, "-- {state} trigger {name}")?;
    }
    Ok(())
}

async fn sequences(conn: &mut PgConnection, out: &mut String) -> anyhow::Result<()> {
    type Row = (
        i64,
        String,
        String,
        String,
        i64,
        i64,
        i64,
        i64,
        bool,
        Option<String>,
    );
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "select c.oid::int8, quote_ident(n.nspname) || '.' || quote_ident(c.relname),
                pg_get_userbyid(c.relowner)::text, format_type(s.seqtypid, null),
                s.seqstart, s.seqincrement, s.seqmin, s.seqmax, s.seqcycle,
                (select quote_ident(rc.relname) || '.' || quote_ident(ra.attname)
                   from pg_depend dep
                   join pg_class rc on rc.oid = dep.refobjid
                   join pg_attribute ra on ra.attrelid = dep.refobjid and ra.attnum = dep.refobjsubid
                  where dep.classid = 'pg_class'::regclass and dep.objid = c.oid
                    and dep.refobjsubid > 0 and dep.deptype in ('a', 'i'))
           from pg_class c join pg_namespace n on n.oid = c.relnamespace
           join pg_sequence s on s.seqrelid = c.oid
          where {USER_SCHEMA} order by n.nspname collate \"C\", c.relname collate \"C\""
    ))
    .fetch_all(&mut *conn)
    .await?;
    if rows.is_empty() {
        return Ok(());
    }
    writeln!(out, "\n## Sequences\n\n```sql")?;
    for (oid, name, owner, ty, start, step, min, max, cycle, owned_by) in rows {
        writeln!(out, "-- owner {owner}")?;
        write!(
            out,
            "create sequence {name} as {ty} start {start} increment {step} minvalue {min} \
             maxvalue {max}{}",
            if cycle { " cycle" } else { "" }
        )?;
        if let Some(o) = owned_by {
            write!(out, " owned by {o}")?;
        }
        writeln!(out, ";")?;
        for g in grants(conn, Acl::Relation, oid).await? {
            writeln!(out, "{}", g.statement("sequence", &name))?;
        }
    }
    writeln!(out, "```")?;
    Ok(())
}

async fn views(conn: &mut PgConnection, out: &mut String) -> anyhow::Result<()> {
    type Row = (i64, String, String, bool, Option<String>, String);
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "select c.oid::int8, quote_ident(n.nspname) || '.' || quote_ident(c.relname),
                pg_get_userbyid(c.relowner)::text, c.relkind = 'm',
                array_to_string(c.reloptions, ', '), pg_get_viewdef(c.oid, true)
           from pg_class c join pg_namespace n on n.oid = c.relnamespace
          where c.relkind in ('v', 'm') and {USER_SCHEMA}
          order by n.nspname collate \"C\", c.relname collate \"C\""
    ))
    .fetch_all(&mut *conn)
    .await?;
    if rows.is_empty() {
        return Ok(());
    }
    writeln!(out, "\n## Views")?;
    for (oid, name, owner, materialized, options, def) in rows {
        writeln!(out, "\n### `{name}`\n\n```sql\n-- owner {owner}")?;
        let kind = if materialized {
            "materialized view"
        } else {
            "view"
        };
        write!(out, "create {kind} {name}")?;
        if let Some(o) = options {
            write!(out, " with ({o})")?;
        }
        writeln!(out, " as\n{}", def.trim_end())?;
        for g in grants(conn, Acl::Relation, oid).await? {
            writeln!(out, "{}", g.statement("table", &name))?;
        }
        writeln!(out, "```")?;
    }
    Ok(())
}

async fn functions(conn: &mut PgConnection, out: &mut String) -> anyhow::Result<()> {
    type Row = (i64, String, String, bool, Option<String>);
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "select p.oid::int8,
                quote_ident(n.nspname) || '.' || quote_ident(p.proname)
                    || '(' || pg_get_function_identity_arguments(p.oid) || ')',
                pg_get_userbyid(p.proowner)::text, p.prosecdef,
                case when p.prokind in ('f', 'p') then pg_get_functiondef(p.oid) end
           from pg_proc p join pg_namespace n on n.oid = p.pronamespace
          where {USER_SCHEMA}
          order by n.nspname collate \"C\", p.proname collate \"C\",
                   pg_get_function_identity_arguments(p.oid) collate \"C\""
    ))
    .fetch_all(&mut *conn)
    .await?;
    writeln!(out, "\n## Functions")?;
    for (oid, signature, owner, definer, def) in rows {
        let execute = grants(conn, Acl::Function, oid)
            .await?
            .iter()
            .map(|g| g.grantee.clone())
            .collect::<Vec<_>>();
        let execute = if execute.is_empty() {
            "owner only".to_owned()
        } else {
            execute.join(", ")
        };
        writeln!(out, "\n### `{signature}`\n")?;
        writeln!(
            out,
            "Owner `{owner}` · {} · execute: {execute}\n",
            if definer {
                "**security definer**"
            } else {
                "security invoker"
            }
        )?;
        if let Some(d) = def {
            writeln!(out, "```sql\n{}\n```", d.trim_end())?;
        }
    }
    Ok(())
}

/// Objects of kinds the migrations do not use yet: named, so none is silently left out.
async fn others(conn: &mut PgConnection, out: &mut String) -> anyhow::Result<()> {
    let rows: Vec<String> = sqlx::query_scalar(&format!(
        "select x from (
           select 'type ' || quote_ident(n.nspname) || '.' || quote_ident(t.typname)
                  || ' (typtype ' || t.typtype::text || ')' as x
             from pg_type t join pg_namespace n on n.oid = t.typnamespace
            where {USER_SCHEMA} and t.typcategory <> 'A'
              and (t.typtype in ('b', 'd', 'e', 'm', 'r')
                   or (t.typtype = 'c' and (select c.relkind from pg_class c
                                              where c.oid = t.typrelid) = 'c'))
           union all
           select 'foreign table ' || quote_ident(n.nspname) || '.' || quote_ident(c.relname)
             from pg_class c join pg_namespace n on n.oid = c.relnamespace
            where {USER_SCHEMA} and c.relkind = 'f'
           union all
           select 'extension ' || quote_ident(e.extname) || ' ' || e.extversion
             from pg_extension e where e.extname <> 'plpgsql'
           union all
           select 'rule ' || quote_ident(r.rulename) || ' on ' || r.ev_class::regclass::text
             from pg_rewrite r join pg_class c on c.oid = r.ev_class
             join pg_namespace n on n.oid = c.relnamespace
            where {USER_SCHEMA} and r.rulename <> '_RETURN'
           union all
           select 'event trigger ' || quote_ident(evtname) from pg_event_trigger
           union all
           select 'default privileges of ' || pg_get_userbyid(d.defaclrole)::text
                  || case when d.defaclnamespace = 0 then ''
                          else ' in schema ' || d.defaclnamespace::regnamespace::text end
                  || ' on ' || d.defaclobjtype::text || ': ' || d.defaclacl::text
             from pg_default_acl d
         ) o order by x collate \"C\""
    ))
    .fetch_all(conn)
    .await?;
    if rows.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "\n## Other objects\n\nNamed only (`crates/testkit/src/schema.rs` does not describe \
         their kind in full yet):\n"
    )?;
    for r in rows {
        writeln!(out, "- {r}")?;
    }
    Ok(())
}

/// The catalogs whose access control lists [`grants`] reads.
#[derive(Clone, Copy)]
enum Acl {
    Schema,
    Relation,
    Function,
}

/// One grantee's privileges on an object (the owner's implicit ones left out).
struct Grant {
    grantee: String,
    privileges: String,
    grantable: bool,
}

impl Grant {
    fn statement(&self, kind: &str, object: &str) -> String {
        format!(
            "grant {} on {kind} {object} to {}{};",
            self.privileges,
            self.grantee,
            if self.grantable {
                " with grant option"
            } else {
                ""
            }
        )
    }
}

/// Who besides the owner holds which privileges on the object `oid`; an object with no
/// explicit list has PostgreSQL's default one (for a function: execute for `public`).
async fn grants(conn: &mut PgConnection, kind: Acl, oid: i64) -> anyhow::Result<Vec<Grant>> {
    let (catalog, acl, owner, default) = match kind {
        Acl::Schema => ("pg_namespace", "nspacl", "nspowner", "n"),
        Acl::Relation => ("pg_class", "relacl", "relowner", "r"),
        Acl::Function => ("pg_proc", "proacl", "proowner", "f"),
    };
    let rows: Vec<(String, String, bool)> = sqlx::query_as(&format!(
        "select grantee, privileges, grantable from (
           select case when a.grantee = 0 then 'public'
                       else quote_ident(pg_get_userbyid(a.grantee)) end as grantee,
                  string_agg(lower(a.privilege_type), ', '
                             order by a.privilege_type collate \"C\") as privileges,
                  a.is_grantable as grantable
             from {catalog} o, aclexplode(coalesce(o.{acl}, acldefault('{default}', o.{owner}))) a
            where o.oid = $1::oid and a.grantee <> o.{owner}
            group by 1, 3) g
          order by grantee collate \"C\", grantable"
    ))
    .bind(oid)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(grantee, privileges, grantable)| Grant {
            grantee,
            privileges,
            grantable,
        })
        .collect())
}

/// Column privileges on `table`: (grantee, privilege, columns in table order).
async fn column_grants(
    conn: &mut PgConnection,
    table: i64,
) -> anyhow::Result<Vec<(String, String, String)>> {
    Ok(sqlx::query_as(
        "select grantee, privilege, columns from (
           select case when a.grantee = 0 then 'public'
                       else quote_ident(pg_get_userbyid(a.grantee)) end as grantee,
                  lower(a.privilege_type) as privilege,
                  string_agg(quote_ident(att.attname), ', ' order by att.attnum) as columns
             from pg_attribute att, aclexplode(att.attacl) a
            where att.attrelid = $1::oid and att.attnum > 0 and not att.attisdropped
            group by 1, 2) g
          order by grantee collate \"C\", privilege collate \"C\"",
    )
    .bind(table)
    .fetch_all(conn)
    .await?)
}
