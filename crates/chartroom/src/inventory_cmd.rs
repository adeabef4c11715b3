//! `chartroom inventory` (req OPS-04): the installation's assets as `serve` would run them,
//! from the same options — data stores, keys (ids, never material), listeners,
//! subprocessors, where PHI lives and how it flows — as JSON or Markdown.
//!
//! It reads configuration and public key ids only: it connects to no database and no key
//! service, creates no key, and prints no credential (URLs are shown as host, port and
//! database; integration credentials as nothing at all). The places PHI lives come from the
//! sealed-column registry ([`store::sealed_columns::TABLES`]), the subprocessors from the
//! integrations file `serve` loads (with the same refusals), so the inventory cannot drift
//! from the code and configuration it describes.

use std::fmt::Write as _;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use egress::registry::{BaaStatus, Hosting, Integration, Phi};
use serde::Serialize;

use crate::Global;
use crate::scribe_cmd::{ScribeListen, ScribeLocal};
use crate::serve::ServeArgs;
use crate::services::{KeyProviderKind, Services};

/// Options of `inventory`: the output format, and `serve`'s options.
#[derive(Args)]
pub(crate) struct InventoryArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Markdown)]
    format: Format,

    /// The server's options, as `serve` takes them.
    #[command(flatten)]
    serve: ServeArgs,
}

/// Output format of `inventory`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    /// A stable JSON document (version 1).
    Json,
    /// Markdown tables, for a security review or a wiki.
    Markdown,
}

/// The inventory (JSON document version 1; fields are only ever added).
#[derive(Serialize)]
struct Inventory {
    version: u32,
    generated_at: String,
    data_stores: Vec<DataStore>,
    keys: Vec<Key>,
    listeners: Vec<Listener>,
    subprocessors: Vec<SubprocessorEntry>,
    phi_locations: Vec<PhiLocation>,
    data_flows: Vec<Flow>,
    clock: ClockStatus,
}

/// The time audit events are stamped with (req AUD-04): what Chartroom guarantees, and
/// whether this host's clock is synchronized, as far as it can tell.
#[derive(Serialize)]
pub(crate) struct ClockStatus {
    /// How audit times are kept.
    audit_times: &'static str,
    /// `yes`, `no` or `unknown`: the host's NTP synchronization as systemd reports it.
    pub(crate) synchronized: &'static str,
    /// How that was checked.
    checked_with: &'static str,
}

#[derive(Serialize)]
struct DataStore {
    name: &'static str,
    kind: String,
    location: String,
    holds: &'static str,
    protection: String,
}

#[derive(Serialize)]
struct Key {
    name: &'static str,
    provider: String,
    /// A public id (provider-qualified KEK id, verifier key), never key material.
    id: Option<String>,
    location: String,
    protects: &'static str,
}

#[derive(Serialize)]
struct Listener {
    name: &'static str,
    address: String,
    protocol: &'static str,
}

#[derive(Serialize)]
struct SubprocessorEntry {
    id: String,
    vendor: &'static str,
    kind: &'static str,
    hosting: &'static str,
    /// Whether it is a subprocessor (run by a vendor, not on the operator's own host).
    subprocessor: bool,
    touches_phi: bool,
    baa: &'static str,
    location: String,
    hosts: Vec<String>,
    data_categories: Vec<&'static str>,
}

#[derive(Serialize)]
struct PhiLocation {
    store: &'static str,
    place: String,
    sealed_columns: Vec<&'static str>,
    protection: &'static str,
}

#[derive(Serialize)]
struct Flow {
    from: String,
    to: String,
    data: String,
    phi: bool,
    transport: String,
}

/// Prints the inventory.
pub(crate) async fn run(svc: &Services, args: InventoryArgs) -> anyhow::Result<()> {
    let inventory = build(svc, &args.serve).await?;
    match args.format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&inventory).context("cannot render the inventory")?
        ),
        Format::Markdown => print!("{}", markdown(&inventory)),
    }
    Ok(())
}

async fn build(svc: &Services, serve: &ServeArgs) -> anyhow::Result<Inventory> {
    let g = svc.global();
    let integrations = crate::subprocessors::load(serve.integrations.as_deref(), &g.data_dir)?;
    let database = database(g)?;
    let subprocessors: Vec<SubprocessorEntry> =
        integrations.list().iter().map(subprocessor).collect();
    let mut flows = vec![
        Flow {
            from: "users' browsers and API clients".into(),
            to: "chartroom server".into(),
            data: "everything a user reads or writes".into(),
            phi: true,
            transport: if serve.behind_proxy {
                "plain HTTP from a TLS-terminating proxy on loopback".into()
            } else {
                "HTTPS, TLS 1.3 only".into()
            },
        },
        Flow {
            from: "chartroom server".into(),
            to: "database".into(),
            data: "records (free text only as field ciphertexts), audit log".into(),
            phi: true,
            transport: database.transport.clone(),
        },
        Flow {
            from: "chartroom server".into(),
            to: "blob store".into(),
            data: "visit audio and attachments, sealed before they leave the process".into(),
            phi: true,
            transport: "encrypted objects".into(),
        },
        Flow {
            from: "chartroom server".into(),
            to: "key provider".into(),
            data: "wrapped data keys to wrap and unwrap (no record data)".into(),
            phi: false,
            transport: match g.key_provider {
                KeyProviderKind::Local => "local file".into(),
                KeyProviderKind::Vault => "HTTPS to Vault/OpenBao transit".into(),
            },
        },
        Flow {
            from: "chartroom server".into(),
            to: "checkpoint directory and mirrors".into(),
            data: "signed audit checkpoints (hashes and counts, no record data)".into(),
            phi: false,
            transport: "files / object store, write-once".into(),
        },
        Flow {
            from: "chartroom server".into(),
            to: "AI providers registered by each practice".into(),
            data: "visit audio, transcripts and draft notes, as audited assistant turns".into(),
            phi: true,
            transport: "HTTPS, only to a provider with a BAA and training off, or self-hosted"
                .into(),
        },
    ];
    if serve.audit_sink.is_some() {
        flows.push(Flow {
            from: "chartroom server".into(),
            to: "audit log sink".into(),
            data: "every sequenced audit event: ids (patients by id), action and outcome names, chain hash"
                .into(),
            // Patients are named by id: treated as PHI, so only the operator's own hosts.
            phi: true,
            transport: "OTLP/HTTP JSON (https off loopback)".into(),
        });
    }
    if serve.scribe.mode != ScribeLocal::Off {
        flows.push(Flow {
            from: "chartroom server".into(),
            to: "local transcription (Whisper, this machine)".into(),
            data: "visit audio".into(),
            phi: true,
            transport: scribe_listener(g, serve),
        });
    }
    flows.extend(subprocessors.iter().map(|s| Flow {
        from: "chartroom server".into(),
        to: format!("{} ({})", s.id, s.hosts.join(", ")),
        data: s.data_categories.join("; "),
        phi: s.touches_phi,
        transport: "HTTPS (SMTP with STARTTLS for smtp)".into(),
    }));
    Ok(Inventory {
        version: 1,
        generated_at: domain::Clock::now(&domain::SystemClock)
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        data_stores: data_stores(svc, serve, database)?,
        keys: keys(g, serve).await,
        listeners: listeners(g, serve),
        subprocessors,
        phi_locations: phi_locations(),
        data_flows: flows,
        clock: clock_status(),
    })
}

/// The host clock's synchronization (req AUD-04), from `timedatectl show --property
/// NTPSynchronized` (systemd asks the kernel whatever the NTP daemon: timesyncd, chrony,
/// ntpd). `unknown` where it cannot tell (no systemd, a container): the operator's own
/// monitoring must say then. Audit times are UTC instants either way.
pub(crate) fn clock_status() -> ClockStatus {
    let synchronized = match std::process::Command::new("timedatectl")
        .args(["show", "--property=NTPSynchronized", "--value"])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
    {
        Ok(out) if out.status.success() => match String::from_utf8_lossy(&out.stdout).trim() {
            "yes" => "yes",
            "no" => "no",
            _ => "unknown",
        },
        _ => "unknown",
    };
    ClockStatus {
        audit_times: "UTC instants (timestamptz) from the server's clock; each practice's chain time never runs backwards",
        synchronized,
        checked_with: "timedatectl show --property=NTPSynchronized",
    }
}

/// The database as configured: where, and how it is reached (no credentials).
struct Database {
    kind: String,
    location: String,
    transport: String,
}

fn database(g: &Global) -> anyhow::Result<Database> {
    let Some(url) = &g.database_url else {
        return Ok(Database {
            kind: "PostgreSQL, embedded".into(),
            location: format!("{}/pg", g.data_dir.display()),
            transport: "Unix socket in the data directory (no TCP port), SCRAM".into(),
        });
    };
    let o = crate::db::external_options(url, "--database-url", g.database_ca_file.as_deref())?;
    let location = match o.get_socket() {
        Some(socket) => format!("{} (socket)", socket.display()),
        None => format!("{}:{}", o.get_host(), o.get_port()),
    };
    Ok(Database {
        kind: "PostgreSQL, external".into(),
        location: format!(
            "{location}/{}",
            o.get_database().unwrap_or(pgcluster::DATABASE)
        ),
        transport: format!(
            "sslmode={}{}",
            crate::db::ssl_mode_name(o.get_ssl_mode()),
            g.database_ca_file
                .as_ref()
                .map(|ca| format!(", CA {}", ca.display()))
                .unwrap_or_default()
        ),
    })
}

fn data_stores(svc: &Services, serve: &ServeArgs, db: Database) -> anyhow::Result<Vec<DataStore>> {
    let g = svc.global();
    let blob_location = match &g.blob_store_url {
        Some(url) => crate::services::url_label(url).context("--blob-store-url is not a URL")?,
        None => format!("{}/blobs", g.data_dir.display()),
    };
    let mut out = vec![
        DataStore {
            name: "database",
            kind: db.kind,
            location: db.location,
            holds: "every record, the audit log, sessions, wrapped data keys",
            protection: format!(
                "row-level security per practice; free text sealed per field; {}",
                db.transport
            ),
        },
        DataStore {
            name: "blob store",
            kind: if g.blob_store_url.is_some() {
                "object store".into()
            } else {
                "local directory".into()
            },
            location: blob_location,
            holds: "visit audio chunks and attachments",
            protection: "AES-256-GCM per object under the practice's data key".into(),
        },
        DataStore {
            name: "checkpoints",
            kind: if g.checkpoint_store_url.is_some() {
                "object store".into()
            } else {
                "local directory".into()
            },
            location: match &g.checkpoint_store_url {
                Some(url) => crate::services::url_label(url)
                    .unwrap_or_else(|| "the checkpoint store URL".to_owned()),
                None => svc.checkpoint_dir().display().to_string(),
            },
            holds: "signed audit checkpoints",
            protection: "Ed25519 signatures; files created once, never replaced".into(),
        },
    ];
    if let Some(dir) = &g.checkpoint_mirror_dir {
        out.push(DataStore {
            name: "checkpoint mirror",
            kind: "local directory".into(),
            location: dir.display().to_string(),
            holds: "copies of the signed audit checkpoints",
            protection: "write-once".into(),
        });
    }
    if let Some(url) = &g.checkpoint_mirror_url {
        out.push(DataStore {
            name: "checkpoint mirror",
            kind: "object store".into(),
            location: crate::services::url_label(url)
                .context("--checkpoint-mirror-url is not a URL")?,
            holds: "copies of the signed audit checkpoints",
            protection: "write-once objects".into(),
        });
    }
    if let Some(url) = &serve.audit_sink {
        out.push(DataStore {
            name: "audit log sink",
            kind: "OpenTelemetry collector (OTLP/HTTP), the operator's own".into(),
            location: crate::services::url_label(url).context("--audit-sink is not a URL")?,
            holds: "a copy of every audit event (ids and names; patients by id, no record data)",
            protection: "loopback or the operator's listed hosts only; https off loopback".into(),
        });
    }
    out.push(DataStore {
        name: "backups",
        kind: "archive files".into(),
        location: "where `chartroom backup create --out` writes them (none configured here)".into(),
        holds: "the database and the blobs",
        protection: "encrypted archives (database rows already sealed per field)".into(),
    });
    out.push(DataStore {
        name: "secrets",
        kind: "local directory".into(),
        location: format!("{}/secrets (0700)", g.data_dir.display()),
        holds: "key files, role passwords, the TLS key, practice secrets",
        protection: "0600 files, owner only".into(),
    });
    Ok(out)
}

async fn keys(g: &Global, serve: &ServeArgs) -> Vec<Key> {
    let secrets = g.data_dir.join("secrets");
    let kek = match g.key_provider {
        KeyProviderKind::Local => {
            let file = secrets.join(store::crypto::provider::KEY_FILE_NAME);
            // Opened only when it exists: the inventory never creates a key.
            let id = if file.exists() {
                match store::crypto::LocalKeyProvider::open(&secrets).await {
                    Ok(p) => Some(p.kek_id()),
                    Err(e) => Some(format!("unreadable ({e})")),
                }
            } else {
                None
            };
            Key {
                name: "key-encryption key (KEK)",
                provider: "local key file".into(),
                id,
                location: if file.exists() {
                    file.display().to_string()
                } else {
                    format!("{} (created on the first start)", file.display())
                },
                protects: "every data key (wraps them)",
            }
        }
        KeyProviderKind::Vault => match crate::services::vault_config() {
            Ok(cfg) => Key {
                name: "key-encryption key (KEK)",
                provider: "Vault/OpenBao transit".into(),
                id: Some(format!("vault-transit:{}/{}", cfg.mount, cfg.key_name)),
                location: crate::services::url_label(cfg.address.as_str()).unwrap_or_default(),
                protects: "every data key (wraps them)",
            },
            Err(e) => Key {
                name: "key-encryption key (KEK)",
                provider: "Vault/OpenBao transit".into(),
                id: None,
                location: format!("not configured: {e}"),
                protects: "every data key (wraps them)",
            },
        },
    };
    let verifier = std::fs::read_to_string(g.data_dir.join("audit-verifier.key"))
        .ok()
        .map(|v| v.trim().to_owned());
    vec![
        kek,
        Key {
            name: "practice data keys",
            provider: "wrapped by the KEK".into(),
            id: None,
            location: "database table practice_data_key (key ids and versions per practice)".into(),
            protects: "a practice's sealed fields and blobs",
        },
        Key {
            name: "practice secrets",
            provider: "local directory".into(),
            id: None,
            location: format!("{}/practice-keys", secrets.display()),
            protects: "a practice's blind-index and archive keys (shredded with the practice)",
        },
        Key {
            name: "audit checkpoint signing key",
            provider: "local key file (Ed25519)".into(),
            id: verifier,
            location: format!("{}/audit-checkpoint.key", secrets.display()),
            protects: "the signatures on audit checkpoints",
        },
        Key {
            name: "TLS server key",
            provider: "PEM file".into(),
            id: None,
            location: match &serve.tls_key {
                Some(k) => k.display().to_string(),
                None if serve.behind_proxy => "none (the proxy terminates TLS)".into(),
                None => format!("{}/tls-key.pem (self-signed)", secrets.display()),
            },
            protects: "the HTTPS listener",
        },
    ]
}

fn listeners(g: &Global, serve: &ServeArgs) -> Vec<Listener> {
    let mut out = vec![Listener {
        name: "chartroom server",
        address: serve.listen.to_string(),
        protocol: if serve.behind_proxy {
            "HTTP (loopback, behind a TLS-terminating proxy)"
        } else {
            "HTTPS, TLS 1.3 only"
        },
    }];
    if g.database_url.is_none() {
        out.push(Listener {
            name: "embedded PostgreSQL",
            address: format!("{}/run (Unix socket, 0700)", g.data_dir.display()),
            protocol: "PostgreSQL, SCRAM; no TCP port",
        });
    }
    if serve.scribe.mode != ScribeLocal::Off {
        out.push(Listener {
            name: "local transcription (Whisper)",
            address: scribe_listener(g, serve),
            protocol: "HTTP to the server only",
        });
    }
    out
}

fn scribe_listener(g: &Global, serve: &ServeArgs) -> String {
    match serve.scribe.socket {
        ScribeListen::Unix => format!(
            "{}/{} (Unix socket, 0600)",
            g.data_dir.display(),
            crate::scribe_cmd::SOCKET_SUBDIR
        ),
        ScribeListen::Loopback => "127.0.0.1, a port the kernel picks".into(),
    }
}

fn subprocessor(i: &Integration) -> SubprocessorEntry {
    let facts = i.facts();
    SubprocessorEntry {
        id: i.id(),
        vendor: i.vendor.as_str(),
        kind: i.kind.as_str(),
        hosting: match i.hosting {
            Hosting::Vendor => "vendor",
            Hosting::SelfHosted => "self_hosted",
        },
        subprocessor: i.is_subprocessor(),
        touches_phi: matches!(facts.phi, Phi::Touches(_)),
        baa: match i.baa.as_ref().map(|b| b.status) {
            Some(BaaStatus::Signed) => "signed",
            Some(BaaStatus::NotRequired) => "not_required",
            None => "none",
        },
        location: match &i.location.region {
            Some(r) => format!("{} ({r})", i.location.country),
            None => i.location.country.clone(),
        },
        hosts: i.hosts(),
        data_categories: facts.data_categories.to_vec(),
    }
}

fn phi_locations() -> Vec<PhiLocation> {
    let mut out: Vec<PhiLocation> = store::sealed_columns::TABLES
        .iter()
        .map(|t| PhiLocation {
            store: "database",
            place: t.table.to_owned(),
            sealed_columns: t.columns.iter().map(|c| c.enc).collect(),
            protection: if t.columns.is_empty() {
                "belongs to a patient: ids and times only, no free text"
            } else {
                "AES-256-GCM field ciphertexts under the practice's data key, bound to practice, table, column and row"
            },
        })
        .collect();
    out.push(PhiLocation {
        store: "database",
        place: "audit_event".into(),
        sealed_columns: Vec::new(),
        protection: "who touched which patient's record, when: ids and actions, no content",
    });
    out.push(PhiLocation {
        store: "blob store",
        place: "capture chunks and attachments".into(),
        sealed_columns: Vec::new(),
        protection: "AES-256-GCM per object under the practice's data key",
    });
    out.push(PhiLocation {
        store: "backups",
        place: "backup archives".into(),
        sealed_columns: Vec::new(),
        protection: "encrypted archive; the rows inside stay sealed per field",
    });
    out
}

/// One Markdown table cell: pipes escaped, lines joined.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

fn table(out: &mut String, title: &str, header: &[&str], rows: Vec<Vec<String>>) {
    let _ = writeln!(out, "\n## {title}\n");
    let _ = writeln!(out, "| {} |", header.join(" | "));
    let _ = writeln!(out, "|{}", "---|".repeat(header.len()));
    for row in rows {
        let cells: Vec<String> = row.iter().map(|c| cell(c)).collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
}

fn yes_no(b: bool) -> String {
    if b { "yes".into() } else { "no".into() }
}

#[allow(clippy::too_many_lines, reason = "one table per section, in order")]
fn markdown(inv: &Inventory) -> String {
    let mut out = format!(
        "# Chartroom inventory\n\nGenerated {} from this installation's configuration (req OPS-04).\n",
        inv.generated_at
    );
    table(
        &mut out,
        "Data stores",
        &["Store", "Kind", "Location", "Holds", "Protection"],
        inv.data_stores
            .iter()
            .map(|d| {
                vec![
                    d.name.into(),
                    d.kind.clone(),
                    d.location.clone(),
                    d.holds.into(),
                    d.protection.clone(),
                ]
            })
            .collect(),
    );
    table(
        &mut out,
        "Keys (ids only, never material)",
        &["Key", "Provider", "Id", "Location", "Protects"],
        inv.keys
            .iter()
            .map(|k| {
                vec![
                    k.name.into(),
                    k.provider.clone(),
                    k.id.clone().unwrap_or_else(|| "-".into()),
                    k.location.clone(),
                    k.protects.into(),
                ]
            })
            .collect(),
    );
    table(
        &mut out,
        "Listeners",
        &["Listener", "Address", "Protocol"],
        inv.listeners
            .iter()
            .map(|l| vec![l.name.into(), l.address.clone(), l.protocol.into()])
            .collect(),
    );
    let subprocessors: Vec<Vec<String>> = inv
        .subprocessors
        .iter()
        .map(|s| {
            vec![
                s.id.clone(),
                s.hosting.into(),
                yes_no(s.touches_phi),
                s.baa.into(),
                s.location.clone(),
                s.hosts.join(", "),
            ]
        })
        .collect();
    if subprocessors.is_empty() {
        out.push_str("\n## Subprocessors\n\nNo integrations are configured: no messaging, payment or geocoding vendor is called. AI providers are registered per practice in the database.\n");
    } else {
        table(
            &mut out,
            "Subprocessors",
            &["Integration", "Hosting", "PHI", "BAA", "Location", "Hosts"],
            subprocessors,
        );
    }
    table(
        &mut out,
        "Where PHI lives",
        &["Store", "Place", "Sealed columns", "Protection"],
        inv.phi_locations
            .iter()
            .map(|p| {
                vec![
                    p.store.into(),
                    p.place.clone(),
                    p.sealed_columns.join(", "),
                    p.protection.into(),
                ]
            })
            .collect(),
    );
    table(
        &mut out,
        "Data flows",
        &["From", "To", "Data", "PHI", "Transport"],
        inv.data_flows
            .iter()
            .map(|f| {
                vec![
                    f.from.clone(),
                    f.to.clone(),
                    f.data.clone(),
                    yes_no(f.phi),
                    f.transport.clone(),
                ]
            })
            .collect(),
    );
    let _ = writeln!(
        out,
        "\n## Clock\n\nAudit times: {}. Host clock synchronized (NTP): **{}** (checked with `{}`).",
        inv.clock.audit_times, inv.clock.synchronized, inv.clock.checked_with
    );
    out
}

#[cfg(test)]
mod tests {
    use super::cell;

    #[test]
    fn markdown_cells_cannot_break_the_table() {
        assert_eq!(cell("a|b\nc"), "a\\|b c");
    }
}
