-- One meaning for "seal": encryption (sealed columns, sealed secrets, sealed disclosures).
-- The background step that gives each practice's queued audit events their gapless sequence
-- number, chain hash and Merkle leaf is the audit sequencer; its table and everything named
-- after it say so now. Names only: ALTER … RENAME keeps every column, constraint, index,
-- trigger, policy and grant with its behaviour, and row-level security stays enabled and
-- forced. Migration 0002 keeps its old wording (applied migrations are checksummed).

alter table audit_seal rename to audit_sequence;
alter table audit_sequence rename column sealed_at to sequenced_at;

-- Constraints (a primary key or unique constraint renames its index with it).
alter table audit_sequence rename constraint audit_seal_pkey to audit_sequence_pkey;
alter table audit_sequence rename constraint audit_seal_event_key to audit_sequence_event_key;
alter table audit_sequence rename constraint audit_seal_seq_check to audit_sequence_seq_check;
alter table audit_sequence rename constraint audit_seal_chain_hash_check to audit_sequence_chain_hash_check;
alter table audit_sequence rename constraint audit_seal_leaf_hash_check to audit_sequence_leaf_hash_check;

-- Append-only triggers.
alter trigger audit_seal_no_update_delete on audit_sequence rename to audit_sequence_no_update_delete;
alter trigger audit_seal_no_truncate on audit_sequence rename to audit_sequence_no_truncate;

-- The owner's directory of practices with a sequenced log (tenant_read, tenant_append and
-- owner_all keep their names: they are named after what they allow).
alter policy owner_seal_directory on audit_sequence rename to owner_sequence_directory;

-- A SQL function's body is stored as text and resolved when it runs: the checkpointer's
-- work-finding function names the table, so it is replaced with the same signature and
-- attributes (CREATE OR REPLACE keeps its owner and its grants).
create or replace function app.audit_log_practices() returns setof uuid
    language sql stable security definer
    set search_path = pg_catalog, public
    as $$ select distinct practice_id from public.audit_sequence $$;
