//! The Vault/OpenBao transit provider against the stand-in server (see `vault_standin`).

use std::net::SocketAddr;
use std::sync::Arc;

use crypto::{
    CryptoError, FieldContext, KeyProvider, RewrapScope, Secret, VaultConfig, VaultTransitProvider,
    WrapContext,
};
use domain::PracticeId;
use reqwest::Url;

use super::support::keyring_with;
use super::vault_standin::{self, TOKEN, TransitKey};

fn config(addr: SocketAddr, token: &str, key: &str) -> VaultConfig {
    VaultConfig::new(
        Url::parse(&format!("http://{addr}")).unwrap(),
        Secret::new(token.to_owned()),
        key,
    )
}

fn ctx() -> WrapContext {
    WrapContext {
        practice: PracticeId::new(),
        dek_version: crypto::DekVersion::FIRST,
    }
}

fn dek() -> crypto::DekMaterial {
    Secret::new([42u8; 32])
}

#[tokio::test]
async fn wrap_unwrap_and_binding() {
    let (addr, _s) = vault_standin::start().await;
    let p = VaultTransitProvider::create_key_and_connect(config(addr, TOKEN, "chartroom"))
        .await
        .unwrap();
    let c = ctx();
    let w = p.wrap(&c, &dek()).await.unwrap();
    assert_eq!(w.kek.id, "vault-transit:transit/chartroom");
    assert_eq!(w.kek.version, 1);
    assert!(w.bytes.starts_with(b"vault:v1:"));
    assert_eq!(
        p.unwrap(&c, &w.kek, &w.bytes)
            .await
            .unwrap()
            .expose_secret(),
        &[42u8; 32]
    );

    // Presented for another practice: Vault derives another key and refuses.
    let other = WrapContext {
        practice: PracticeId::new(),
        ..c
    };
    let e = p.unwrap(&other, &w.kek, &w.bytes).await.unwrap_err();
    assert!(matches!(e, CryptoError::KekUnwrap { .. }), "{e}");

    // A flipped ciphertext byte.
    let mut t = String::from_utf8(w.bytes.clone()).unwrap();
    let last = t.pop().unwrap();
    t.push(if last == 'A' { 'B' } else { 'A' });
    let e = p.unwrap(&c, &w.kek, t.as_bytes()).await.unwrap_err();
    assert!(matches!(e, CryptoError::KekUnwrap { .. }), "{e}");

    // Another transit key (wrong KEK).
    let q = VaultTransitProvider::create_key_and_connect(config(addr, TOKEN, "other"))
        .await
        .unwrap();
    let e = q.unwrap(&c, &w.kek, &w.bytes).await.unwrap_err();
    assert!(matches!(e, CryptoError::UnknownKek { .. }), "{e}");
}

#[tokio::test]
async fn rotate_rewrap_retire() {
    let (addr, s) = vault_standin::start().await;
    let p = VaultTransitProvider::create_key_and_connect(config(addr, TOKEN, "k"))
        .await
        .unwrap();
    let c = ctx();
    let w1 = p.wrap(&c, &dek()).await.unwrap();
    let k2 = p.rotate_kek().await.unwrap();
    assert_eq!(k2.version, 2);
    assert_eq!(p.current_kek().await.unwrap(), k2);
    assert!(
        p.unwrap(&c, &w1.kek, &w1.bytes).await.is_ok(),
        "old versions stay readable"
    );

    let before = s.requests.lock().unwrap().len();
    let w2 = p.rewrap(&c, &w1.kek, &w1.bytes).await.unwrap();
    assert_eq!(w2.kek, k2);
    assert!(w2.bytes.starts_with(b"vault:v2:"));
    // The rewrap used transit's rewrap endpoint: the data key did not come back to us.
    assert_eq!(
        s.requests.lock().unwrap()[before..],
        ["rewrap/k".to_owned()]
    );

    p.retire_kek_versions_below(2).await.unwrap();
    let e = p.unwrap(&c, &w1.kek, &w1.bytes).await.unwrap_err();
    assert!(matches!(e, CryptoError::UnknownKek { .. }), "{e}");
    assert_eq!(
        p.unwrap(&c, &w2.kek, &w2.bytes)
            .await
            .unwrap()
            .expose_secret(),
        &[42u8; 32]
    );
}

#[tokio::test]
async fn refuses_bad_token_and_non_derived_keys() {
    let (addr, s) = vault_standin::start().await;
    let e = VaultTransitProvider::create_key_and_connect(config(addr, "wrong", "k"))
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("HTTP 403 Forbidden: permission denied"),
        "{e}"
    );

    s.keys.lock().unwrap().insert(
        "plain".into(),
        TransitKey {
            versions: vec![[1; 32]],
            min_decryption_version: 1,
            derived: false,
        },
    );
    let e = VaultTransitProvider::connect(config(addr, TOKEN, "plain"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("is not derived"), "{e}");

    let e = VaultTransitProvider::connect(config(addr, TOKEN, "missing"))
        .await
        .unwrap_err();
    assert!(matches!(e, CryptoError::Provider { .. }), "{e}");
}

// req: ENC-02 — KEK in a vault (stand-in transit server); rotate, rewrap, retire.
#[tokio::test]
async fn keyring_over_vault_end_to_end() {
    let (addr, _s) = vault_standin::start().await;
    let provider = VaultTransitProvider::create_key_and_connect(config(addr, TOKEN, "chartroom"))
        .await
        .unwrap();
    let keyring = keyring_with(Arc::new(provider));
    let p = PracticeId::new();
    keyring.ensure_practice_keys(p).await.unwrap();
    let row = [7u8; 16];
    let fc = FieldContext::new(p, "note", "body", &row);
    let ct = keyring
        .encrypt_field(&fc, b"synthetic note text")
        .await
        .unwrap();

    keyring.rotate_kek().await.unwrap();
    let report = keyring.rewrap_all(RewrapScope::Stale).await.unwrap();
    assert_eq!((report.examined, report.rewrapped), (1, 1));
    keyring.retire_kek_versions_below(2).await.unwrap();

    keyring.clear_cache();
    assert_eq!(
        keyring.decrypt_field(&fc, &ct).await.unwrap(),
        b"synthetic note text"
    );
}
