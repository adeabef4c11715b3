-- Encrypted backups and crypto-shredding that reaches them.
--
-- A practice's data keys now also depend on a per-practice secret kept by the key store
-- outside the database and outside every backup (crypto crate, `practice_secret`): the wrapped
-- bytes of a `masked` key are the key XOR a mask derived from that secret. Shredding deletes
-- the secret, so the wrapped keys in a backup taken earlier no longer unwrap after a restore.
-- Keys written before this migration stay unmasked (and readable) until the practice's data
-- key is rotated.
alter table practice_data_key add column masked boolean not null default false;
