//! Wrapped data keys on PostgreSQL ([`PgKeyStore`], the [`crypto::WrappedKeyStore`] of a
//! [`crypto::Keyring`]), and the audited key-management writes of the `chartroom keys`
//! commands. The re-encryption passes walk the sealed-table registry
//! ([`crate::sealed_columns`], which also holds the field contexts and the crypto error
//! mapping); this module names no sealed table itself.
//!
//! # Tables (`migrations/0004_encryption.sql`)
//! - `practice_data_key (practice_id, dek_version, kek_id, kek_version, wrapped, masked)`: one
//!   row per version of a practice's data key, wrapped by a KEK (and masked with the practice
//!   secret when `masked`, `migrations/0006_backup.sql`). The runtime role may read and insert
//!   its practice's rows; rewrapping, retiring and destroying are owner-role operations.
//! - `practice_key_destroyed (practice_id, destroyed_at)`: the crypto-shredding tombstone.
//!   Inserting a key and destroying a practice's keys take the same per-practice advisory
//!   lock, so no key can be added once the tombstone is there.
//!
//! Every statement on these tables runs in its own short transaction with the practice set
//! transaction-locally, like every other tenant access; only the KEK rewrap scan lists rows
//! across practices (owner role, ids and opaque wrapped bytes only).
//!
//! # Layout
//! - `wrapped`: [`PgKeyStore`], the wrapped-key tables as a [`crypto::WrappedKeyStore`].
//! - `reseal`: the re-encryption passes over the sealed-table registry ([`ResealReport`]).
//! - `commands`: the audited key-management operations on [`crate::OwnerStore`] (encrypt
//!   existing rows, rotate the KEK or a practice's data key, retire old data keys, shred).

mod commands;
mod reseal;
mod wrapped;

pub use reseal::ResealReport;
pub use wrapped::PgKeyStore;
