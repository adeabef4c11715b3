//! Finding the PostgreSQL server binaries and their version.

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use super::BIN_DIR_ENV;
use super::error::EmbeddedError;

/// Where distributions install versioned PostgreSQL server binaries (`<root>/<version>/bin`).
const VERSIONED_ROOT: &str = "/usr/lib/postgresql";

/// Finds the directory holding the PostgreSQL server binaries `initdb` and `postgres`.
///
/// Looks, in order, in `explicit` (only there, when given), in the directory named by
/// [`BIN_DIR_ENV`] (only there, when set), on `PATH` (following symlinks to the real install
/// directory, so `/usr/local/bin/initdb -> /usr/lib/postgresql/15/bin/initdb` yields the
/// latter), and finally in the highest version under `/usr/lib/postgresql/*/bin`.
///
/// # Errors
/// [`EmbeddedError::BinariesNotFound`], whose message is one line saying how to install them.
pub fn find_pg_bin_dir(explicit: Option<&Path>) -> Result<PathBuf, EmbeddedError> {
    if let Some(dir) = explicit {
        return checked(dir, format!("in {}", dir.display()));
    }
    if let Some(dir) = std::env::var_os(BIN_DIR_ENV).filter(|value| !value.is_empty()) {
        let dir = PathBuf::from(dir);
        let looked_in = format!("in {} (from {BIN_DIR_ENV})", dir.display());
        return checked(&dir, looked_in);
    }
    if let Some(dir) = std::env::var_os("PATH").and_then(|path| search_path(&path)) {
        return Ok(dir);
    }
    if let Some(dir) = highest_versioned(Path::new(VERSIONED_ROOT)) {
        return Ok(dir);
    }
    Err(EmbeddedError::BinariesNotFound {
        looked_in: format!("on PATH or in {VERSIONED_ROOT}/*/bin"),
    })
}

/// `dir` made absolute if it holds both binaries.
fn checked(dir: &Path, looked_in: String) -> Result<PathBuf, EmbeddedError> {
    if has_binaries(dir) {
        std::path::absolute(dir).map_err(super::error::io("resolve", dir))
    } else {
        Err(EmbeddedError::BinariesNotFound { looked_in })
    }
}

fn has_binaries(dir: &Path) -> bool {
    is_executable(&dir.join("initdb")) && is_executable(&dir.join("postgres"))
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path)
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// The first absolute `PATH` entry with an `initdb` whose real directory (or the entry itself)
/// also holds `postgres`.
fn search_path(path: &OsString) -> Option<PathBuf> {
    std::env::split_paths(path)
        .filter(|dir| dir.is_absolute())
        .find_map(|dir| {
            let initdb = dir.join("initdb");
            if !is_executable(&initdb) {
                return None;
            }
            let real_dir = std::fs::canonicalize(&initdb)
                .ok()
                .and_then(|real| real.parent().map(Path::to_path_buf));
            match real_dir {
                Some(real) if has_binaries(&real) => Some(real),
                _ if has_binaries(&dir) => Some(dir),
                _ => None,
            }
        })
}

/// The `bin` directory of the highest version under `root` that holds both binaries.
fn highest_versioned(root: &Path) -> Option<PathBuf> {
    std::fs::read_dir(root)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = parse_version(entry.file_name().to_str()?)?;
            let bin = entry.path().join("bin");
            has_binaries(&bin).then_some((version, bin))
        })
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, bin)| bin)
}

/// `"15"` → `[15]`, `"9.6"` → `[9, 6]`; anything else → `None`.
fn parse_version(name: &str) -> Option<Vec<u32>> {
    name.split('.').map(|part| part.parse().ok()).collect()
}

/// The major version of the `postgres` binary in `bin_dir`, from `postgres --version`.
pub(super) async fn server_major_version(bin_dir: &Path) -> Result<u32, EmbeddedError> {
    let postgres = bin_dir.join("postgres");
    let output = tokio::process::Command::new(&postgres)
        .arg("--version")
        .env_clear()
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|source| EmbeddedError::Spawn {
            program: postgres.clone(),
            source,
        })?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(EmbeddedError::VersionUnreadable {
            postgres,
            detail: format!("it exited with {}", output.status),
        });
    }
    parse_major(&text).ok_or_else(|| EmbeddedError::VersionUnreadable {
        postgres,
        detail: format!("unexpected output {:?}", text.trim()),
    })
}

/// `"postgres (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)"` → `15`.
fn parse_major(text: &str) -> Option<u32> {
    let (_, rest) = text.split_once("(PostgreSQL)")?;
    let digits: String = rest
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_versions() {
        assert_eq!(
            parse_major("postgres (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)\n"),
            Some(15)
        );
        assert_eq!(parse_major("postgres (PostgreSQL) 17beta1"), Some(17));
        assert_eq!(parse_major("postgres (PostgreSQL) 9.6.24"), Some(9));
        assert_eq!(parse_major("something else"), None);
        assert_eq!(parse_version("15"), Some(vec![15]));
        assert_eq!(parse_version("9.6"), Some(vec![9, 6]));
        assert_eq!(parse_version("15-beta"), None);
    }
}
