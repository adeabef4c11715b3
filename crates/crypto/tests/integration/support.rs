//! Shared fixtures.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crypto::{KeyProvider, Keyring, LocalKeyProvider, MemoryKeyStore};
use domain::{ManualClock, PracticeId};
use tokio::io::{AsyncRead, ReadBuf};

pub struct Env {
    pub dir: tempfile::TempDir,
    pub keyring: Arc<Keyring>,
}

pub async fn local_env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let provider = LocalKeyProvider::open(dir.path().join("keys"))
        .await
        .unwrap();
    let keyring = keyring_with(Arc::new(provider));
    Env {
        dir,
        keyring: Arc::new(keyring),
    }
}

pub fn keyring_with(provider: Arc<dyn KeyProvider>) -> Keyring {
    Keyring::new(
        provider,
        Arc::new(MemoryKeyStore::new()),
        Arc::new(ManualClock::starting_now()),
    )
}

pub async fn practice(keyring: &Keyring) -> PracticeId {
    let p = PracticeId::new();
    keyring.ensure_practice_keys(p).await.unwrap();
    p
}

/// A synthetic plaintext source of `len` bytes that never holds more than one read in
/// memory; fails with an IO error after `fail_after` bytes if set.
pub struct Synthetic {
    pub len: u64,
    pub pos: u64,
    pub fail_after: Option<u64>,
}

impl Synthetic {
    pub fn new(len: u64) -> Self {
        Self {
            len,
            pos: 0,
            fail_after: None,
        }
    }

    pub fn byte_at(i: u64) -> u8 {
        (i.wrapping_mul(2_654_435_761) >> 13) as u8
    }

    pub fn bytes(range: std::ops::Range<u64>) -> Vec<u8> {
        range.map(Self::byte_at).collect()
    }
}

impl AsyncRead for Synthetic {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.fail_after.is_some_and(|f| self.pos >= f) {
            return Poll::Ready(Err(std::io::Error::other("synthetic source failed")));
        }
        let n = (buf.remaining() as u64).min(self.len - self.pos);
        let start = self.pos;
        for i in 0..n {
            buf.put_slice(&[Self::byte_at(start + i)]);
        }
        self.pos += n;
        Poll::Ready(Ok(()))
    }
}
