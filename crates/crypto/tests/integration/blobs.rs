//! Blobs on a real local filesystem object store.

use std::path::Path;

use bytes::Bytes;
use crypto::{BlobStore, CryptoError, Result};
use futures::TryStreamExt;
use futures::stream::BoxStream;

use super::support::{Synthetic, local_env, practice};

async fn collect(s: BoxStream<'static, Result<Bytes>>) -> Result<Vec<u8>> {
    let parts: Vec<Bytes> = s.try_collect().await?;
    Ok(parts.concat())
}

fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

// req: ENC-01 — attachments envelope-encrypted: stored bytes carry no plaintext run.
#[tokio::test]
async fn multipart_roundtrip_with_opaque_names() {
    let env = local_env().await;
    let p = practice(&env.keyring).await;
    let root = env.dir.path().join("blobs");
    let blobs = BlobStore::local(&root, env.keyring.clone()).unwrap();

    // 12 MiB + 5 bytes: three 5 MiB parts, last segment short.
    let len = 12 * 1024 * 1024 + 5;
    let stored = blobs.put_stream(p, Synthetic::new(len)).await.unwrap();
    assert_eq!(stored.plaintext_len, len);
    assert_eq!(stored.stored_len, crypto::stream::stored_len(len));

    let on_disk = files(&root);
    assert_eq!(on_disk.len(), 1, "{on_disk:?}");
    let name = on_disk[0].file_name().unwrap().to_str().unwrap().to_owned();
    assert_eq!(name.len(), 32);
    assert!(name.chars().all(|c| c.is_ascii_hexdigit()));
    assert!(!on_disk[0].to_str().unwrap().contains(&p.to_string()));
    assert!(
        !on_disk[0]
            .to_str()
            .unwrap()
            .contains(&p.as_uuid().simple().to_string())
    );
    assert_eq!(
        std::fs::metadata(&on_disk[0]).unwrap().len(),
        stored.stored_len
    );
    // No long run of plaintext appears in the stored object.
    let raw = std::fs::read(&on_disk[0]).unwrap();
    let probe = Synthetic::bytes(1_000_000..1_000_032);
    assert!(!raw.windows(32).any(|w| w == probe.as_slice()));

    let back = collect(blobs.get_stream(p, stored.id).await.unwrap())
        .await
        .unwrap();
    assert_eq!(back.len() as u64, len);
    assert!(
        back.iter()
            .enumerate()
            .all(|(i, b)| *b == Synthetic::byte_at(i as u64))
    );

    let r = 5 * 1024 * 1024 - 10..5 * 1024 * 1024 + 70_000;
    assert_eq!(
        blobs.get_range(p, stored.id, r.clone()).await.unwrap(),
        Synthetic::bytes(r)
    );

    blobs.delete(stored.id).await.unwrap();
    assert!(files(&root).is_empty());
}

#[tokio::test]
async fn tampered_file_is_refused() {
    let env = local_env().await;
    let p = practice(&env.keyring).await;
    let root = env.dir.path().join("blobs");
    let blobs = BlobStore::local(&root, env.keyring.clone()).unwrap();
    let stored = blobs.put_stream(p, Synthetic::new(300_000)).await.unwrap();
    let file = files(&root).remove(0);
    let mut raw = std::fs::read(&file).unwrap();
    raw[200_000] ^= 0x20; // inside segment 3 (plaintext bytes 196_608..262_144)
    std::fs::write(&file, &raw).unwrap();

    assert!(
        collect(blobs.get_stream(p, stored.id).await.unwrap())
            .await
            .is_err()
    );
    assert!(matches!(
        blobs.get_range(p, stored.id, 199_000..199_100).await,
        Err(CryptoError::Decrypt)
    ));
    // Segments away from the damage still verify (and the final segment is intact).
    assert_eq!(
        blobs.get_range(p, stored.id, 10..20).await.unwrap(),
        Synthetic::bytes(10..20)
    );
}

#[tokio::test]
async fn failed_source_aborts_the_upload() {
    let env = local_env().await;
    let p = practice(&env.keyring).await;
    let root = env.dir.path().join("blobs");
    let blobs = BlobStore::local(&root, env.keyring.clone()).unwrap();
    let mut src = Synthetic::new(20 * 1024 * 1024);
    src.fail_after = Some(11 * 1024 * 1024);
    let err = blobs.put_stream(p, src).await.unwrap_err();
    assert!(matches!(err, CryptoError::Io(_)), "{err}");
    assert!(files(&root).is_empty(), "{:?}", files(&root));
}

#[tokio::test]
async fn destroyed_practice_blobs_are_unreadable() {
    let env = local_env().await;
    let p = practice(&env.keyring).await;
    let q = practice(&env.keyring).await;
    let url = format!("file://{}", env.dir.path().join("by-url").display());
    let blobs =
        BlobStore::from_url(&url, Vec::<(String, String)>::new(), env.keyring.clone()).unwrap();
    let mine = blobs.put_stream(p, Synthetic::new(70_000)).await.unwrap();
    let theirs = blobs.put_stream(q, Synthetic::new(10)).await.unwrap();

    // Another practice cannot read it: its key and the (practice, id) binding differ.
    let r = match blobs.get_stream(q, mine.id).await {
        Ok(stream) => collect(stream).await.map(|_| ()),
        Err(e) => Err(e),
    };
    assert!(matches!(r, Err(CryptoError::Decrypt)), "{r:?}");

    env.keyring.destroy_practice_keys(p).await.unwrap();
    let err = blobs.get_stream(p, mine.id).await.map(|_| ()).unwrap_err();
    assert!(matches!(err, CryptoError::KeyDestroyed { .. }), "{err}");
    assert!(matches!(
        blobs.get_range(p, mine.id, 0..10).await,
        Err(CryptoError::KeyDestroyed { .. })
    ));
    assert!(matches!(
        blobs.put_stream(p, Synthetic::new(1)).await,
        Err(CryptoError::KeyDestroyed { .. })
    ));
    assert_eq!(
        collect(blobs.get_stream(q, theirs.id).await.unwrap())
            .await
            .unwrap(),
        Synthetic::bytes(0..10)
    );
}
