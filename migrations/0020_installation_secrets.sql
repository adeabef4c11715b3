-- Installation secrets under the installation data key (issue 15.5).
--
-- TOTP secrets (and the key of the invitation email lookup tags) were sealed with a second key
-- file, `secrets/identity.key`, that `keys rotate-kek` never touched. They are now field
-- ciphertexts of the `crypto` crate (`01 ‖ dek_version ‖ nonce ‖ ciphertext ‖ tag`) under the
-- installation data key — the data key of the system practice, wrapped by the KEK in
-- practice_data_key like every practice's — bound to (system practice, table, column, row).
--
-- user_totp.secret_sealed keeps secrets sealed the old way until the start-up job (`serve`,
-- `keys encrypt-existing`) re-seals them into secret_enc and empties it; nothing writes it any
-- more. A row holds its secret one way or the other, never both.
alter table user_totp alter column secret_sealed drop not null;
alter table user_totp add column secret_enc bytea
    check (length(secret_enc) between 33 and 256);
alter table user_totp add constraint user_totp_sealed_once
    check (num_nonnulls(secret_sealed, secret_enc) = 1);

-- Secrets of the installation itself, by name (a closed set). Today: the lookup-tag key
-- (HMAC-SHA256) under which invited email addresses are hashed.
create table installation_secret (
    name text primary key check (name in ('lookup_tag_key')),
    secret_enc bytea not null check (length(secret_enc) between 33 and 256)
);

alter table installation_secret enable row level security;
alter table installation_secret force row level security;

-- The server reads them and creates one that is missing (first use); it never changes or
-- deletes one (no UPDATE or DELETE grant), so a lookup key cannot be swapped under pending
-- invitations.
create policy installation_secret_read on installation_secret for select to chartroom_runtime
    using (true);
create policy installation_secret_create on installation_secret for insert to chartroom_runtime
    with check (true);
create policy owner_all on installation_secret for all to chartroom_owner
    using (true) with check (true);

grant select, insert on installation_secret to chartroom_runtime;
