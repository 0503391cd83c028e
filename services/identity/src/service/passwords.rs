//! Argon2id off the async executor: hashing and verifying run on tokio's
//! blocking pool, at most one per core at a time, so a login flood queues
//! here instead of stalling every other RPC of the worker it landed on.

use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::domain::credentials;
use crate::error::{Error, Result};

/// The bounded pool of password work.
#[derive(Clone, Debug)]
pub struct Passwords {
    permits: Arc<Semaphore>,
}

impl Default for Passwords {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        Self { permits: Arc::new(Semaphore::new(cores)) }
    }
}

impl Passwords {
    async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T> {
        let _permit = self.permits.acquire().await.map_err(|_| Error::Internal("password pool closed".into()))?;
        tokio::task::spawn_blocking(work).await.map_err(|_| Error::Internal("password work failed".into()))
    }

    /// Whether `password` matches `stored` (a PHC string).
    pub async fn verify(&self, password: &str, stored: &str) -> Result<bool> {
        let (password, stored) = (zeroize::Zeroizing::new(password.to_owned()), stored.to_owned());
        self.run(move || credentials::verify_password(&password, &stored)).await
    }

    /// Burns the time of a verification, for an unknown login (no user
    /// enumeration by timing).
    pub async fn verify_dummy(&self, password: &str) -> Result<()> {
        self.verify(password, credentials::dummy_hash()).await.map(|_| ())
    }

    /// A new PHC string with the pinned parameters.
    pub async fn hash(&self, password: &str) -> Result<String> {
        let password = zeroize::Zeroizing::new(password.to_owned());
        self.run(move || credentials::hash_password(&password)).await?
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    /// On a single-threaded runtime, a ticking task keeps running while a
    /// password is verified: the work is not on the executor.
    #[tokio::test(flavor = "current_thread")]
    async fn verification_leaves_the_executor_free() {
        let p = Passwords::default();
        let stored = p.hash("a long enough passphrase").await.expect("hash");
        let ticks = Arc::new(AtomicU64::new(0));
        let t = ticks.clone();
        let ticker = tokio::spawn(async move {
            loop {
                t.fetch_add(1, Ordering::SeqCst);
                tokio::task::yield_now().await;
            }
        });
        let before = ticks.load(Ordering::SeqCst);
        assert!(p.verify("a long enough passphrase", &stored).await.expect("verify"));
        let during = ticks.load(Ordering::SeqCst) - before;
        ticker.abort();
        assert!(during > 0, "the executor ran nothing while the password was checked");
        assert!(!p.verify("another passphrase!", &stored).await.expect("verify"));
    }
}
