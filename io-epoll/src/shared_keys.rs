//! One key store shared by several event loops (`io_threads` > 1): each engine owns a
//! handle; lookups take a mutex. Header-time lookups are short (the page cache answers
//! from memory; a miss reads one small file), so the lock is held briefly.

use std::sync::{Arc, Mutex, MutexGuard};

use raida_core::keys::{An, KeyStore, KeyStoreStats};
use raida_core::Timestamp;

/// A handle on a shared [`KeyStore`].
#[derive(Debug)]
pub struct SharedKeyStore<K: KeyStore> {
    inner: Arc<Mutex<K>>,
}

impl<K: KeyStore> SharedKeyStore<K> {
    /// Shares `store`.
    pub fn new(store: K) -> SharedKeyStore<K> {
        SharedKeyStore {
            inner: Arc::new(Mutex::new(store)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, K> {
        // A panic while holding the lock left the store as it was between two lookups
        // (each lookup is self-contained): keep serving it.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl<K: KeyStore> Clone for SharedKeyStore<K> {
    fn clone(&self) -> Self {
        SharedKeyStore {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<K: KeyStore> KeyStore for SharedKeyStore<K> {
    fn coin_an(&mut self, denomination: i8, serial: u32, now: Timestamp) -> Option<An> {
        self.lock().coin_an(denomination, serial, now)
    }

    fn locker_an(&mut self, prefix: &[u8; 5], now: Timestamp) -> Option<An> {
        self.lock().locker_an(prefix, now)
    }

    fn cache_stats(&self) -> Option<KeyStoreStats> {
        self.lock().cache_stats()
    }
}
