-- Encrypted backups and crypto-shredding that reaches them.
--
-- A practice's data keys now also depend on a per-practice secret kept by the key store
-- outside the database and outside every backup (crypto crate, `practice_secret`): the wrapped
-- bytes of a `masked` key are the key XOR a mask derived from that secret. Shredding deletes
-- the secret, so the wrapped keys in a backup taken earlier no longer unwrap after a restore.
-- Keys written before this migration stay unmasked (and readable) until the practice's data
-- key is rotated.
alter table practice_data_key add column masked boolean not null default false;

-- The registry of encrypted blobs (audio, attachments): which practice owns each, under which
-- data-key version it was sealed, and its current object. `blob_id` is the stable id other
-- rows refer to; `object_id` names the object in the object store and changes when a
-- data-key rotation re-encrypts the blob into a new object. No PHI: ids, versions, sizes.
create table blob_object (
    practice_id uuid not null references practice (practice_id),
    blob_id uuid not null,
    object_id uuid not null,
    dek_version int4 not null check (dek_version > 0),
    plaintext_len int8 not null check (plaintext_len >= 0),
    stored_len int8 not null check (stored_len >= 0),
    created_at timestamptz not null,
    primary key (practice_id, blob_id),
    unique (practice_id, object_id)
);
create index blob_object_version_idx on blob_object (practice_id, dek_version);

alter table blob_object enable row level security;
alter table blob_object force row level security;
create policy blob_object_tenant on blob_object for all to chartroom_runtime
    using (practice_id = (select app.practice()))
    with check (practice_id = (select app.practice()));
create policy owner_all on blob_object for all to chartroom_owner
    using (practice_id = (select app.practice())) with check (practice_id = (select app.practice()));
grant select, insert, delete on blob_object to chartroom_runtime;
