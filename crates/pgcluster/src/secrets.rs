//! Role passwords: one 0600 file per role under `secrets/`, 32 bytes from the OS CSPRNG,
//! hex encoded.

use std::fmt;
use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use rand::RngCore as _;

use super::error::{EmbeddedError, io};
use super::layout;
use super::{APP_ROLE, DbRole, OWNER_ROLE, SUPERUSER_ROLE};

/// Bytes of randomness per password (256 bits).
const SECRET_BYTES: usize = 32;

/// A role password. `Debug` never shows it.
#[derive(Clone)]
pub(super) struct Password(String);

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

impl Password {
    pub(super) fn expose(&self) -> &str {
        &self.0
    }

    /// The password as an SQL string literal. Passwords are hex by construction (checked when
    /// loaded); this re-checks, so a literal can never carry a quote or backslash.
    pub(super) fn sql_literal(&self) -> Result<String, EmbeddedError> {
        if is_valid(&self.0) {
            Ok(format!("'{}'", self.0))
        } else {
            Err(EmbeddedError::UnsafeSql {
                what: "a role password",
                reason: "it is not hex",
            })
        }
    }
}

fn is_valid(text: &str) -> bool {
    text.len() >= SECRET_BYTES * 2 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The passwords of the three login roles.
#[derive(Debug, Clone)]
pub(super) struct Passwords {
    admin: Password,
    owner: Password,
    app: Password,
}

impl Passwords {
    /// Reads the password files, creating missing ones. The superuser's must exist when the
    /// cluster does (it cannot be reset without it); the others are re-applied by bootstrap,
    /// so a lost one is simply replaced.
    pub(super) fn load_or_create(
        secrets_dir: &Path,
        cluster_exists: bool,
    ) -> Result<Self, EmbeddedError> {
        Ok(Self {
            admin: load_or_create(secrets_dir, SUPERUSER_ROLE, cluster_exists)?,
            owner: load_or_create(secrets_dir, OWNER_ROLE, false)?,
            app: load_or_create(secrets_dir, APP_ROLE, false)?,
        })
    }

    pub(super) fn for_role(&self, role: DbRole) -> &Password {
        match role {
            DbRole::Superuser => &self.admin,
            DbRole::Owner => &self.owner,
            DbRole::Runtime => &self.app,
        }
    }
}

fn load_or_create(dir: &Path, role: &str, must_exist: bool) -> Result<Password, EmbeddedError> {
    let path = dir.join(role);
    match fs::read_to_string(&path) {
        Ok(text) => {
            let text = text.trim();
            if !is_valid(text) {
                return Err(EmbeddedError::SecretInvalid { path });
            }
            let meta = fs::metadata(&path).map_err(io("inspect", &path))?;
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(path = %path.display(), "password file was readable by others; making it 0600");
                fs::set_permissions(&path, fs::Permissions::from_mode(0o600))
                    .map_err(io("set the permissions of", &path))?;
            }
            Ok(Password(text.to_owned()))
        }
        Err(error) if error.kind() == ErrorKind::NotFound => {
            if must_exist {
                return Err(EmbeddedError::SecretMissing { path });
            }
            let mut bytes = [0_u8; SECRET_BYTES];
            rand::rngs::OsRng
                .try_fill_bytes(&mut bytes)
                .map_err(|error| EmbeddedError::Randomness {
                    source: std::io::Error::other(error),
                })?;
            let password = hex::encode(bytes);
            // Write under a temporary name and rename, so a crash never leaves a truncated
            // password file behind.
            let tmp = dir.join(format!(".{role}.tmp"));
            layout::remove_file_if_exists(&tmp)?;
            layout::write_private_file(&tmp, format!("{password}\n").as_bytes(), None)?;
            layout::rename(&tmp, &path)?;
            layout::sync_dir(dir)?;
            Ok(Password(password))
        }
        Err(source) => Err(io("read", &path)(source)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_generated_once_and_kept_private() {
        let dir = tempfile::tempdir().unwrap();
        let first = Passwords::load_or_create(dir.path(), false).unwrap();
        let again = Passwords::load_or_create(dir.path(), true).unwrap();
        for role in [DbRole::Superuser, DbRole::Owner, DbRole::Runtime] {
            let password = first.for_role(role).expose();
            assert_eq!(password.len(), 64);
            assert_eq!(again.for_role(role).expose(), password);
            let path = dir.path().join(role.login_name());
            assert_eq!(
                fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        assert_ne!(first.owner.expose(), first.app.expose());
        assert_eq!(format!("{:?}", first.admin), "Password(***)");
        assert!(first.admin.sql_literal().unwrap().starts_with('\''));
        assert!(
            Password("x'; DROP ROLE y; --".to_owned())
                .sql_literal()
                .is_err()
        );
    }

    #[test]
    fn missing_superuser_password_of_existing_cluster_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let error = Passwords::load_or_create(dir.path(), true).unwrap_err();
        assert!(
            matches!(error, EmbeddedError::SecretMissing { .. }),
            "{error}"
        );
        fs::write(dir.path().join(SUPERUSER_ROLE), "not hex").unwrap();
        let error = Passwords::load_or_create(dir.path(), true).unwrap_err();
        assert!(
            matches!(error, EmbeddedError::SecretInvalid { .. }),
            "{error}"
        );
    }
}
