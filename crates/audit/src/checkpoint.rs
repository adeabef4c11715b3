//! Signed checkpoints: C2SP `tlog-checkpoint` bodies in C2SP `signed-note` envelopes,
//! Ed25519 keys, and the signer key file.
//!
//! # Checkpoint body (<https://c2sp.org/tlog-checkpoint>)
//!
//! ```text
//! <origin>\n                  non-empty; here "<prefix>/<practice uuid>", see origin()
//! <tree size>\n               ASCII decimal, no leading zeros ("0" for the empty tree)
//! <root hash>\n               standard base64 (RFC 4648 §4, padded) of the 32-byte RFC 6962 root
//! [<extension line>\n …]      optional, each non-empty
//! ```
//!
//! Chartroom writes one extension line, `chartroom-chain-head <base64 chain hash>`, the
//! chain hash of the last event the checkpoint covers ([`Checkpoint::with_chain_head`]);
//! the verifier checks it, and a retention prune continues the chain from it.
//!
//! # Signed note (<https://c2sp.org/signed-note>)
//!
//! The body, an empty line, then one or more signature lines
//! `— <key name> <base64(key ID (4 bytes, big-endian) || Ed25519 signature (64 bytes))>\n`
//! (the dash is U+2014 EM DASH, followed by one space). The signature covers the body
//! including its final newline. With the Ed25519 signature type `0x01`:
//!
//! ```text
//! key ID       = SHA-256(key name || 0x0A || 0x01 || 32-byte public key)[0..4]
//! verifier key = <name>+<key ID, 8 lowercase hex digits>+<base64(0x01 || public key)>
//! signer key   = PRIVATE+KEY+<name>+<key ID hex>+<base64(0x01 || 32-byte seed)>
//! ```
//!
//! These are the strings Go's `golang.org/x/mod/sumdb/note` reads and writes, so a note
//! signed here opens with `note.Open` and vice versa (tested against Go's published
//! vectors and a checkpoint signed by sum.golang.org). The crate documentation shows a
//! complete example note with its verifier key.
//!
//! [`Verifier::open`] accepts a note only if it is at most [`MAX_NOTE_BYTES`] bytes, has at
//! most [`MAX_SIGNATURES`] signature lines, contains no control character other than the
//! line feeds of its lines, ends exactly after its last signature line, carries a valid
//! signature by the configured key (signatures by other keys are ignored, as the spec
//! requires; a bad signature by the configured key rejects the note) and its body is a
//! well-formed checkpoint (canonical decimal size, canonical base64 root).

use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::chain::Hash;

/// Largest note [`Verifier::open`] reads (a defensive cap; real checkpoints are < 1 KiB).
pub const MAX_NOTE_BYTES: usize = 1 << 20;

/// Most signature lines a note may carry (Go's `note.Open` uses the same limit).
pub const MAX_SIGNATURES: usize = 100;

/// Signature type byte of Ed25519 in signed notes (C2SP signed-note, "Signature types").
pub const ALG_ED25519: u8 = 0x01;

/// Keyword of the extension line that carries the chain head.
pub const CHAIN_HEAD_EXTENSION: &str = "chartroom-chain-head";

/// Prefix of a signer key string (Go `note.NewSigner`).
const PRIVATE_KEY_PREFIX: &str = "PRIVATE+KEY+";

/// Largest key file [`Signer::load_or_create`] reads.
const MAX_KEY_FILE_BYTES: u64 = 4096;

/// The origin line of a practice's checkpoints: `<prefix>/<practice uuid>`, e.g.
/// `clinic.example/chartroom/audit/0190a0c4-…`. One origin per practice keeps a
/// checkpoint of one practice from being passed off as another's.
#[must_use]
pub fn origin(prefix: &str, practice: Uuid) -> String {
    format!("{prefix}/{}", practice.hyphenated())
}

/// The note key ID of an Ed25519 key: `SHA-256(name || 0x0A || 0x01 || public key)[0..4]`
/// read big-endian.
#[must_use]
pub fn key_id(name: &str, public_key: &[u8; 32]) -> u32 {
    let digest = Sha256::new()
        .chain_update(name.as_bytes())
        .chain_update([b'\n', ALG_ED25519])
        .chain_update(public_key)
        .finalize();
    let mut id = [0u8; 4];
    for (dst, src) in id.iter_mut().zip(digest.iter()) {
        *dst = *src;
    }
    u32::from_be_bytes(id)
}

/// Whether `name` may be a key name: non-empty, no Unicode white space, no `+`, no
/// control characters (C2SP signed-note, "Format").
#[must_use]
pub fn is_valid_key_name(name: &str) -> bool {
    !name.is_empty()
        && !name
            .chars()
            .any(|c| c.is_whitespace() || c == '+' || c.is_control())
}

/// Why a checkpoint body is not well formed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// The body does not end with a newline.
    #[error("checkpoint body must end with a newline")]
    NoFinalNewline,
    /// Fewer than the three mandatory lines.
    #[error("checkpoint body has {lines} lines; origin, tree size and root hash are required")]
    TooFewLines {
        /// How many lines there were.
        lines: usize,
    },
    /// A line (1-based) is empty or contains a control character or newline.
    #[error("checkpoint line {line} must be non-empty and free of control characters")]
    BadLine {
        /// 1-based line number.
        line: usize,
    },
    /// The size line is not canonical decimal or overflows `u64`.
    #[error(
        "checkpoint tree size {text:?} is not a decimal number without leading zeros that fits in 64 bits"
    )]
    BadSize {
        /// The line as found.
        text: String,
    },
    /// The root line is not canonical standard base64 of 32 bytes.
    #[error("checkpoint root hash {text:?} is not standard base64 of 32 bytes")]
    BadRoot {
        /// The line as found.
        text: String,
    },
    /// The chain-head extension line is malformed or repeated.
    #[error("checkpoint extension {CHAIN_HEAD_EXTENSION} is malformed or repeated")]
    BadChainHead,
}

/// Why a signed note was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// Over [`MAX_NOTE_BYTES`].
    #[error("note is {len} bytes; at most {MAX_NOTE_BYTES} are accepted")]
    TooLarge {
        /// Its length.
        len: usize,
    },
    /// A control character other than a line's newline.
    #[error("note contains a control character at byte {offset}")]
    ControlChar {
        /// Byte offset of the character.
        offset: usize,
    },
    /// No empty line separating text from signatures, or no final newline.
    #[error(
        "note has no signature block (text, an empty line, signature lines, each ending in a newline)"
    )]
    NoSignatureBlock,
    /// A line of the signature block is not a well-formed signature line.
    #[error("signature line {line} is malformed: {reason}")]
    BadSignatureLine {
        /// 1-based line number within the signature block.
        line: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// Over [`MAX_SIGNATURES`] signature lines.
    #[error("note has more than {MAX_SIGNATURES} signatures")]
    TooManySignatures,
    /// The configured key signed, but the signature does not verify.
    #[error("invalid signature for key {name}+{id:08x}")]
    BadSignature {
        /// Key name.
        name: String,
        /// Key ID.
        id: u32,
    },
    /// No signature by the configured key.
    #[error("note is not signed by key {name}+{id:08x}")]
    NotSignedByKey {
        /// Key name.
        name: String,
        /// Key ID.
        id: u32,
    },
    /// The signed text is not a well-formed checkpoint.
    #[error("signed text is not a checkpoint: {0}")]
    Body(#[from] CheckpointError),
}

/// Why a key string or key file was refused.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key name is empty or holds spaces, `+` or control characters.
    #[error("key name {0:?} must be non-empty without spaces, '+' or control characters")]
    BadName(String),
    /// The key string does not have the expected shape.
    #[error("malformed {what}: expected {expected}")]
    Malformed {
        /// Which kind of key string.
        what: &'static str,
        /// The shape expected.
        expected: &'static str,
    },
    /// The key uses a signature type other than Ed25519 (0x01).
    #[error("unsupported key algorithm 0x{0:02x} (only Ed25519, 0x01)")]
    Algorithm(u8),
    /// The key ID in the string does not match the key.
    #[error("key ID {stated:08x} does not match the key (computed {computed:08x})")]
    KeyIdMismatch {
        /// The ID written in the string.
        stated: u32,
        /// The ID computed from name and key.
        computed: u32,
    },
    /// The public key is not a valid Ed25519 point.
    #[error("public key is not a valid Ed25519 key")]
    BadPublicKey,
    /// Reading or writing the key file failed.
    #[error("key file {path}: {source}")]
    Io {
        /// The key file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The key file can be read or written by group or others.
    #[error(
        "key file {path} has mode {mode:04o}: a signing key must be readable by its owner only; run `chmod 600 {path}` and check who could have copied it"
    )]
    Permissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The key file is not a regular file.
    #[error("key file {path} is not a regular file")]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// The key file holds a key with another name than the one asked for.
    #[error("key file {path} holds a key named {found:?}, not {wanted:?}")]
    NameMismatch {
        /// The key file.
        path: PathBuf,
        /// The name in the file.
        found: String,
        /// The name asked for.
        wanted: String,
    },
    /// The checkpoint cannot be signed as given.
    #[error("checkpoint cannot be signed: {0}")]
    Checkpoint(#[from] CheckpointError),
    /// The text cannot be signed as a note.
    #[error(
        "note text must be non-empty, end in a newline, contain no control characters other than newlines, and stay under {MAX_NOTE_BYTES} bytes"
    )]
    BadNoteText,
    /// The operating system's random source failed.
    #[error("random source failed: {0}")]
    Random(String),
}

/// A tree head for one practice's log (the body of a checkpoint note).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// Which log: `<prefix>/<practice uuid>` ([`origin`]).
    pub origin: String,
    /// Number of events covered (`seq` 0 to `size - 1`).
    pub size: u64,
    /// RFC 6962 root of the first `size` leaves.
    pub root: Hash,
    /// Extension lines, without their newlines (each non-empty).
    pub extensions: Vec<String>,
}

impl Checkpoint {
    /// A checkpoint without extension lines.
    #[must_use]
    pub fn new(origin: impl Into<String>, size: u64, root: Hash) -> Self {
        Self {
            origin: origin.into(),
            size,
            root,
            extensions: Vec::new(),
        }
    }

    /// Adds the `chartroom-chain-head <base64>` extension line: the chain hash of event
    /// `size - 1` (or [`crate::chain::GENESIS`] for size 0).
    #[must_use]
    pub fn with_chain_head(mut self, chain_head: &Hash) -> Self {
        self.extensions
            .push(format!("{CHAIN_HEAD_EXTENSION} {}", B64.encode(chain_head)));
        self
    }

    /// The chain head stated by the extension line, if there is one.
    pub fn chain_head(&self) -> Result<Option<Hash>, CheckpointError> {
        let prefix = CHAIN_HEAD_EXTENSION;
        let mut found = None;
        for line in &self.extensions {
            let Some(rest) = line.strip_prefix(prefix) else {
                continue;
            };
            let Some(b64) = rest.strip_prefix(' ') else {
                continue;
            };
            if found.is_some() {
                return Err(CheckpointError::BadChainHead);
            }
            found = Some(decode_hash(b64).ok_or(CheckpointError::BadChainHead)?);
        }
        Ok(found)
    }

    /// Checks that [`to_body`](Self::to_body) yields a body [`parse`](Self::parse) accepts.
    pub fn validate(&self) -> Result<(), CheckpointError> {
        if !line_ok(&self.origin) {
            return Err(CheckpointError::BadLine { line: 1 });
        }
        for (i, ext) in self.extensions.iter().enumerate() {
            if !line_ok(ext) {
                return Err(CheckpointError::BadLine { line: i + 4 });
            }
        }
        self.chain_head()?;
        Ok(())
    }

    /// The note text: origin, size, base64 root, extension lines, each ending in `\n`.
    #[must_use]
    pub fn to_body(&self) -> String {
        let mut body = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root)
        );
        for ext in &self.extensions {
            body.push_str(ext);
            body.push('\n');
        }
        body
    }

    /// Parses a checkpoint body (strict: see [`CheckpointError`] for what is refused).
    pub fn parse(body: &str) -> Result<Self, CheckpointError> {
        let Some(text) = body.strip_suffix('\n') else {
            return Err(CheckpointError::NoFinalNewline);
        };
        let lines: Vec<&str> = text.split('\n').collect();
        for (i, line) in lines.iter().enumerate() {
            if !line_ok(line) {
                return Err(CheckpointError::BadLine { line: i + 1 });
            }
        }
        let [origin, size, root, extensions @ ..] = lines.as_slice() else {
            return Err(CheckpointError::TooFewLines { lines: lines.len() });
        };
        let size = parse_size(size).ok_or_else(|| CheckpointError::BadSize {
            text: (*size).to_owned(),
        })?;
        let root = decode_hash(root).ok_or_else(|| CheckpointError::BadRoot {
            text: (*root).to_owned(),
        })?;
        let cp = Self {
            origin: (*origin).to_owned(),
            size,
            root,
            extensions: extensions.iter().map(|s| (*s).to_owned()).collect(),
        };
        cp.chain_head()?;
        Ok(cp)
    }
}

fn line_ok(line: &str) -> bool {
    !line.is_empty() && !line.chars().any(char::is_control)
}

/// Canonical decimal: digits only, no leading zero unless the number is 0, fits `u64`.
fn parse_size(text: &str) -> Option<u64> {
    let canonical = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    if canonical { text.parse().ok() } else { None }
}

/// Canonical standard base64 of exactly 32 bytes.
fn decode_hash(text: &str) -> Option<Hash> {
    let bytes = B64.decode(text).ok()?;
    let hash: Hash = bytes.try_into().ok()?;
    (B64.encode(hash) == text).then_some(hash)
}

/// Signs checkpoints with an Ed25519 key. The seed is zeroized when the signer is
/// dropped, and `Debug` shows only the key name and ID.
pub struct Signer {
    name: String,
    id: u32,
    key: SigningKey,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("name", &self.name)
            .field("key_id", &format_args!("{:08x}", self.id))
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// A signer for key `name` from a 32-byte Ed25519 seed (RFC 8032 private key).
    pub fn from_seed(name: &str, seed: &[u8; 32]) -> Result<Self, KeyError> {
        if !is_valid_key_name(name) {
            return Err(KeyError::BadName(name.to_owned()));
        }
        let key = SigningKey::from_bytes(seed);
        let id = key_id(name, key.verifying_key().as_bytes());
        Ok(Self {
            name: name.to_owned(),
            id,
            key,
        })
    }

    /// A new key named `name`, from the operating system's random source.
    pub fn generate(name: &str) -> Result<Self, KeyError> {
        use rand::RngCore as _;
        let mut seed = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng
            .try_fill_bytes(seed.as_mut())
            .map_err(|e| KeyError::Random(e.to_string()))?;
        Self::from_seed(name, &seed)
    }

    /// Parses a signer key string `PRIVATE+KEY+<name>+<hex id>+<base64(0x01 || seed)>`
    /// (Go `note.NewSigner`), checking the ID against the derived public key.
    pub fn from_key_string(skey: &str) -> Result<Self, KeyError> {
        const WHAT: &str = "signer key";
        const EXPECTED: &str = "PRIVATE+KEY+<name>+<8 hex digits>+<base64 key>";
        let malformed = || KeyError::Malformed {
            what: WHAT,
            expected: EXPECTED,
        };
        let rest = skey
            .strip_prefix(PRIVATE_KEY_PREFIX)
            .ok_or_else(malformed)?;
        let (name, id, key) = split_key_string(rest).ok_or_else(malformed)?;
        if !is_valid_key_name(name) {
            return Err(KeyError::BadName(name.to_owned()));
        }
        let raw = Zeroizing::new(B64.decode(key).map_err(|_| malformed())?);
        let (alg, seed) = raw.split_first().ok_or_else(malformed)?;
        if *alg != ALG_ED25519 {
            return Err(KeyError::Algorithm(*alg));
        }
        let seed: Zeroizing<[u8; 32]> = Zeroizing::new(seed.try_into().map_err(|_| malformed())?);
        let signer = Self::from_seed(name, &seed)?;
        if signer.id != id {
            return Err(KeyError::KeyIdMismatch {
                stated: id,
                computed: signer.id,
            });
        }
        Ok(signer)
    }

    /// The signer key string (secret: keep it in a 0600 file, never log it).
    #[must_use]
    pub fn to_key_string(&self) -> Zeroizing<String> {
        let mut raw = Zeroizing::new([0u8; 33]);
        if let Some((alg, seed)) = raw.split_first_mut() {
            *alg = ALG_ED25519;
            seed.copy_from_slice(self.key.as_bytes());
        }
        let b64 = Zeroizing::new(B64.encode(raw.as_slice()));
        Zeroizing::new(format!(
            "{PRIVATE_KEY_PREFIX}{}+{:08x}+{}",
            self.name, self.id, *b64
        ))
    }

    /// The key name (the name in signature lines).
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The 4-byte key ID.
    #[must_use]
    pub fn key_id(&self) -> u32 {
        self.id
    }

    /// The verifier key string `<name>+<hex id>+<base64(0x01 || public key)>` to give to
    /// whoever verifies (Go `note.NewVerifier` reads it too).
    #[must_use]
    pub fn verifier_key(&self) -> String {
        verifier_key_string(&self.name, self.id, &self.key.verifying_key())
    }

    /// The matching verifier.
    #[must_use]
    pub fn verifier(&self) -> Verifier {
        Verifier {
            name: self.name.clone(),
            id: self.id,
            key: self.key.verifying_key(),
        }
    }

    /// Signs `text` (a note text: non-empty, ending in `\n`, no control characters but
    /// newlines) and returns the signed note: text, empty line, one signature line.
    pub fn sign_note(&self, text: &str) -> Result<String, KeyError> {
        let ok = text.ends_with('\n')
            && text.len() < MAX_NOTE_BYTES / 2
            && !text.chars().any(|c| c.is_control() && c != '\n');
        if !ok {
            return Err(KeyError::BadNoteText);
        }
        let sig = self.key.sign(text.as_bytes());
        let mut raw = [0u8; 68];
        let (id, rest) = raw.split_at_mut(4);
        id.copy_from_slice(&self.id.to_be_bytes());
        rest.copy_from_slice(&sig.to_bytes());
        Ok(format!(
            "{text}\n\u{2014} {} {}\n",
            self.name,
            B64.encode(raw)
        ))
    }

    /// Signs a checkpoint: the C2SP signed note of its body.
    pub fn sign(&self, checkpoint: &Checkpoint) -> Result<String, KeyError> {
        checkpoint.validate()?;
        self.sign_note(&checkpoint.to_body())
    }

    /// Loads the signer key from `path`, or creates a new key named `name` there.
    ///
    /// The file holds the signer key string and a newline. It is created with mode 0600
    /// (never wider, whatever the umask); an existing file that group or others can read or
    /// write is refused ([`KeyError::Permissions`]), as is a key with another name.
    #[cfg(unix)]
    pub fn load_or_create(path: &Path, name: &str) -> Result<Self, KeyError> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let io = |source| KeyError::Io {
            path: path.to_owned(),
            source,
        };
        if !is_valid_key_name(name) {
            return Err(KeyError::BadName(name.to_owned()));
        }
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(mut file) => {
                let signer = Self::generate(name)?;
                let mut line = signer.to_key_string();
                line.push('\n');
                file.write_all(line.as_bytes()).map_err(io)?;
                file.sync_all().map_err(io)?;
                sync_parent(path).map_err(io)?;
                Ok(signer)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Self::load(path, name),
            Err(e) => Err(io(e)),
        }
    }

    /// Loads the signer key from `path` (see [`load_or_create`](Self::load_or_create)).
    #[cfg(unix)]
    pub fn load(path: &Path, name: &str) -> Result<Self, KeyError> {
        use std::os::unix::fs::PermissionsExt as _;
        let io = |source| KeyError::Io {
            path: path.to_owned(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let meta = file.metadata().map_err(io)?;
        if !meta.is_file() {
            return Err(KeyError::NotAFile {
                path: path.to_owned(),
            });
        }
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(KeyError::Permissions {
                path: path.to_owned(),
                mode,
            });
        }
        let mut text = Zeroizing::new(String::new());
        file.take(MAX_KEY_FILE_BYTES)
            .read_to_string(&mut text)
            .map_err(io)?;
        let signer = Self::from_key_string(text.trim_end_matches('\n'))?;
        if signer.name != name {
            return Err(KeyError::NameMismatch {
                path: path.to_owned(),
                found: signer.name.clone(),
                wanted: name.to_owned(),
            });
        }
        Ok(signer)
    }
}

#[cfg(unix)]
fn sync_parent(path: &Path) -> std::io::Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::File::open(parent)?.sync_all()
}

fn verifier_key_string(name: &str, id: u32, key: &VerifyingKey) -> String {
    let mut raw = [0u8; 33];
    if let Some((alg, public)) = raw.split_first_mut() {
        *alg = ALG_ED25519;
        public.copy_from_slice(key.as_bytes());
    }
    format!("{name}+{id:08x}+{}", B64.encode(raw))
}

/// `<name>+<8 hex>+<key>` → parts (the name cannot contain `+`).
fn split_key_string(s: &str) -> Option<(&str, u32, &str)> {
    let (name, rest) = s.split_once('+')?;
    let (hex_id, key) = rest.split_once('+')?;
    if hex_id.len() != 8 || !hex_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let id = u32::from_str_radix(hex_id, 16).ok()?;
    Some((name, id, key))
}

/// Verifies notes signed by one Ed25519 key.
#[derive(Clone, PartialEq, Eq)]
pub struct Verifier {
    name: String,
    id: u32,
    key: VerifyingKey,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_key_string())
    }
}

impl Verifier {
    /// Parses a verifier key string `<name>+<8 hex digits>+<base64(0x01 || public key)>`
    /// (Go `note.NewVerifier`), checking the key ID.
    pub fn new(vkey: &str) -> Result<Self, KeyError> {
        let malformed = || KeyError::Malformed {
            what: "verifier key",
            expected: "<name>+<8 hex digits>+<base64 of 0x01 and a 32-byte key>",
        };
        let (name, id, key) = split_key_string(vkey).ok_or_else(malformed)?;
        if !is_valid_key_name(name) {
            return Err(KeyError::BadName(name.to_owned()));
        }
        let raw = B64.decode(key).map_err(|_| malformed())?;
        let (alg, public) = raw.split_first().ok_or_else(malformed)?;
        if *alg != ALG_ED25519 {
            return Err(KeyError::Algorithm(*alg));
        }
        let public: [u8; 32] = public.try_into().map_err(|_| malformed())?;
        let computed = key_id(name, &public);
        if computed != id {
            return Err(KeyError::KeyIdMismatch {
                stated: id,
                computed,
            });
        }
        let key = VerifyingKey::from_bytes(&public).map_err(|_| KeyError::BadPublicKey)?;
        Ok(Self {
            name: name.to_owned(),
            id,
            key,
        })
    }

    /// The key name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key ID.
    #[must_use]
    pub fn key_id(&self) -> u32 {
        self.id
    }

    /// The verifier key string.
    #[must_use]
    pub fn to_key_string(&self) -> String {
        verifier_key_string(&self.name, self.id, &self.key)
    }

    /// Opens a signed note: checks its syntax and this key's signature and returns the
    /// signed text (ending in its newline). Signatures by other keys are ignored; the
    /// first signature line with this key's name and ID decides (as in Go's `note.Open`).
    pub fn open_note<'a>(&self, note: &'a str) -> Result<&'a str, NoteError> {
        if note.len() > MAX_NOTE_BYTES {
            return Err(NoteError::TooLarge { len: note.len() });
        }
        if let Some(offset) = note
            .bytes()
            .position(|b| (b < 0x20 && b != b'\n') || b == 0x7f)
        {
            return Err(NoteError::ControlChar { offset });
        }
        let split = note.rfind("\n\n").ok_or(NoteError::NoSignatureBlock)?;
        let (text, sigs) = (
            note.get(..=split).ok_or(NoteError::NoSignatureBlock)?,
            note.get(split + 2..).ok_or(NoteError::NoSignatureBlock)?,
        );
        let sigs = sigs.strip_suffix('\n').ok_or(NoteError::NoSignatureBlock)?;
        if sigs.is_empty() {
            return Err(NoteError::NoSignatureBlock);
        }
        let mut verified = false;
        for (i, line) in sigs.split('\n').enumerate() {
            let line_no = i + 1;
            if line_no > MAX_SIGNATURES {
                return Err(NoteError::TooManySignatures);
            }
            let bad = |reason| NoteError::BadSignatureLine {
                line: line_no,
                reason,
            };
            let rest = line
                .strip_prefix("\u{2014} ")
                .ok_or_else(|| bad("does not start with an em dash (U+2014) and a space"))?;
            let (name, b64) = rest
                .split_once(' ')
                .ok_or_else(|| bad("no space between key name and signature"))?;
            if !is_valid_key_name(name) {
                return Err(bad("invalid key name"));
            }
            let raw = B64
                .decode(b64)
                .map_err(|_| bad("signature is not standard base64"))?;
            let (id, sig) = raw
                .split_first_chunk::<4>()
                .filter(|(_, sig)| !sig.is_empty())
                .ok_or_else(|| bad("signature shorter than 5 bytes"))?;
            let id = u32::from_be_bytes(*id);
            if name != self.name || id != self.id || verified {
                continue; // another key's signature, or a repeat of ours (ignored, as in Go)
            }
            let sig = Signature::from_slice(sig).map_err(|_| NoteError::BadSignature {
                name: self.name.clone(),
                id,
            })?;
            self.key
                .verify_strict(text.as_bytes(), &sig)
                .map_err(|_| NoteError::BadSignature {
                    name: self.name.clone(),
                    id,
                })?;
            verified = true;
        }
        if verified {
            Ok(text)
        } else {
            Err(NoteError::NotSignedByKey {
                name: self.name.clone(),
                id: self.id,
            })
        }
    }

    /// Opens a signed checkpoint: [`open_note`](Self::open_note), then
    /// [`Checkpoint::parse`] of the signed text.
    pub fn open(&self, note: &str) -> Result<Checkpoint, NoteError> {
        Ok(Checkpoint::parse(self.open_note(note)?)?)
    }
}
