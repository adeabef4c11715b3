//! TLS: rustls with TLS 1.3 only (the `aws-lc-rs` provider), a configured certificate or a
//! self-signed one generated in the data directory, and the HTTPS listener (req TX-01).
//!
//! A TLS 1.2 (or older) client fails the handshake; plain HTTP sent to the TLS port is not
//! answered as HTTP. A plain listener exists only behind an explicit `--behind-proxy` flag in
//! the binary, bound to loopback.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest as _, Sha256};

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Reading or writing a certificate or key file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The PEM file holds no usable certificate or key.
    #[error("{0}: no PEM certificate or private key found")]
    Pem(PathBuf),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// The rustls server configuration: TLS 1.3 only, `aws-lc-rs`, ALPN h2 and http/1.1.
pub fn server_config(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// Loads a PEM certificate chain and private key.
pub fn load_pem(
    cert: &Path,
    key: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|_| TlsError::Pem(cert.to_path_buf()))?
        .collect::<Result<_, _>>()
        .map_err(|_| TlsError::Pem(cert.to_path_buf()))?;
    if certs.is_empty() {
        return Err(TlsError::Pem(cert.to_path_buf()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|_| TlsError::Pem(key.to_path_buf()))?;
    Ok((certs, key))
}

/// The SHA-256 fingerprint of a certificate, as colon-separated hex (what browsers show).
#[must_use]
pub fn fingerprint(cert: &CertificateDer<'_>) -> String {
    Sha256::digest(cert.as_ref())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A self-signed certificate and key (PEM) for `names` (DNS names or IP addresses).
pub fn generate_self_signed(names: &[String]) -> Result<(String, String), TlsError> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let mut params = rcgen::CertificateParams::new(names.to_vec())
        .map_err(|e| TlsError::Config(e.to_string()))?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Chartroom (self-signed)");
    let cert = params
        .self_signed(&key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// The self-signed certificate kept in `dir` (`tls-cert.pem`, `tls-key.pem` 0600), generated
/// on first use for `localhost`, `127.0.0.1`, `::1` and any extra `names`; reused afterwards.
pub fn self_signed_in(
    dir: &Path,
    names: &[String],
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>, bool), TlsError> {
    let cert_path = dir.join("tls-cert.pem");
    let key_path = dir.join("tls-key.pem");
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TlsError::Io { path, source }
    };
    let mut created = false;
    if !cert_path.exists() || !key_path.exists() {
        let mut all: Vec<String> = ["localhost", "127.0.0.1", "::1"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        all.extend(names.iter().cloned());
        let (cert, key) = generate_self_signed(&all)?;
        write_private(&key_path, key.as_bytes()).map_err(io(&key_path))?;
        std::fs::write(&cert_path, cert).map_err(io(&cert_path))?;
        created = true;
    }
    let (certs, key) = load_pem(&cert_path, &key_path)?;
    Ok((certs, key, created))
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Serves `app` over HTTPS on `listener` until `handle` is told to shut down. Connection info
/// (the peer address) is available to handlers.
pub async fn serve_https(
    listener: std::net::TcpListener,
    config: Arc<rustls::ServerConfig>,
    app: axum::Router,
    handle: axum_server::Handle<SocketAddr>,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    axum_server::from_tcp_rustls(
        listener,
        axum_server::tls_rustls::RustlsConfig::from_config(config),
    )?
    .handle(handle)
    .serve(app.into_make_service_with_connect_info::<SocketAddr>())
    .await
}
