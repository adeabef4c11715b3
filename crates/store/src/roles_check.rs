use sqlx::PgPool;

use crate::StoreError;

/// Checks that the connected role is safe to serve tenant data with (req AC-05, AU-09): not
/// superuser, no BYPASSRLS, cannot create roles or databases, owns nothing (directly or
/// through a role it can act as), has no CREATE on the database or any schema, no TEMP, and
/// no TRUNCATE on any table.
pub async fn check_runtime_role(pool: &PgPool) -> Result<(), StoreError> {
    let row: (bool, bool, bool, bool, i64, i64, i64, bool, bool, i64) = sqlx::query_as(
        r"
        select r.rolsuper, r.rolbypassrls, r.rolcreaterole, r.rolcreatedb,
               (select count(*) from pg_class c
                 where pg_has_role(current_user, c.relowner, 'USAGE')
                   and c.relnamespace not in (select oid from pg_namespace
                                              where nspname in ('pg_catalog', 'information_schema', 'pg_toast'))),
               (select count(*) from pg_namespace n
                 where pg_has_role(current_user, n.nspowner, 'USAGE')
                    or (has_schema_privilege(current_user, n.oid, 'CREATE')
                        and n.nspname not like 'pg_temp%' and n.nspname not like 'pg_toast_temp%')),
               (select count(*) from pg_proc p
                 where pg_has_role(current_user, p.proowner, 'USAGE')
                   and p.pronamespace not in (select oid from pg_namespace
                                              where nspname in ('pg_catalog', 'information_schema'))),
               has_database_privilege(current_database(), 'CREATE'),
               has_database_privilege(current_database(), 'TEMP'),
               (select count(*) from pg_class c
                 where c.relkind in ('r', 'p')
                   and c.relnamespace not in (select oid from pg_namespace
                                              where nspname in ('pg_catalog', 'information_schema', 'pg_toast'))
                   and has_table_privilege(current_user, c.oid, 'TRUNCATE'))
          from pg_roles r where r.rolname = current_user
        ",
    )
    .fetch_one(pool)
    .await?;
    let (
        superuser,
        bypassrls,
        createrole,
        createdb,
        owns_rel,
        schemas,
        owns_fn,
        db_create,
        db_temp,
        truncate,
    ) = row;
    let mut problems = Vec::new();
    if superuser {
        problems.push("is superuser");
    }
    if bypassrls {
        problems.push("has BYPASSRLS");
    }
    if createrole {
        problems.push("has CREATEROLE");
    }
    if createdb {
        problems.push("has CREATEDB");
    }
    if owns_rel > 0 || owns_fn > 0 {
        problems.push("owns tables, views, sequences or functions");
    }
    if schemas > 0 {
        problems.push("owns or can CREATE in a schema");
    }
    if db_create || db_temp {
        problems.push("has CREATE or TEMP on the database");
    }
    if truncate > 0 {
        problems.push("can TRUNCATE a table");
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(StoreError::UnsafeRole(format!(
            "the runtime database role {}; connect the server as the least-privilege runtime role (chartroom_app)",
            problems.join(", ")
        )))
    }
}
