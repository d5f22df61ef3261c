//! The committer: one thread that runs the store's group commit
//! ([`KeyStore::sync`]) when an engine asks for one ([`Output::Sync`]) and then tells
//! every event loop ([`Engine::handle_commit`]).
//!
//! Asks are merged: every ask that arrives while a sync runs is served by the next
//! one, which covers every write appended before it began; while the store says
//! writes are waiting ([`KeyStore::sync`]'s answer) the committer syncs again at
//! once, without waiting for an ask. So one
//! `fdatasync` covers every write in flight, however many, and no worker waits for
//! the disk.
//!
//! [`Output::Sync`]: raida_core::Output::Sync
//! [`Engine::handle_commit`]: raida_core::Engine::handle_commit

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};
use raida_core::KeyStore;

use crate::poll::Poller;

/// What an event loop holds of the committer.
#[derive(Debug, Clone)]
pub(crate) struct CommitLink {
    /// Asks for a sync.
    pub asks: Sender<()>,
    /// Set (and the loop's poller notified) when a sync ended.
    pub ended: Arc<AtomicBool>,
}

impl CommitLink {
    /// Whether a sync ended since the last call.
    pub(crate) fn take_ended(&self) -> bool {
        self.ended.swap(false, Ordering::AcqRel)
    }
}

/// Starts the committer thread for `store`, serving the loops whose pollers are
/// `pollers` (index = loop index); returns each loop's link. The thread ends when
/// every loop has dropped its link.
pub(crate) fn spawn(
    store: Arc<dyn KeyStore>,
    pollers: &[Arc<Poller>],
) -> std::io::Result<Vec<CommitLink>> {
    let (asks, asked) = crossbeam_channel::unbounded::<()>();
    let ended: Vec<Arc<AtomicBool>> = pollers
        .iter()
        .map(|_| Arc::new(AtomicBool::new(false)))
        .collect();
    let loops: Vec<(Arc<AtomicBool>, Arc<Poller>)> =
        ended.iter().cloned().zip(pollers.iter().cloned()).collect();
    std::thread::Builder::new()
        .name("raida-committer".into())
        .spawn(move || commit_loop(&*store, &asked, &loops))?;
    Ok(ended
        .into_iter()
        .map(|ended| CommitLink {
            asks: asks.clone(),
            ended,
        })
        .collect())
}

fn commit_loop(
    store: &dyn KeyStore,
    asked: &Receiver<()>,
    loops: &[(Arc<AtomicBool>, Arc<Poller>)],
) {
    while asked.recv().is_ok() {
        // Syncs again at once while the store says writes are waiting (appended while
        // the last one ran): each covers every ask so far.
        loop {
            while asked.try_recv().is_ok() {}
            let more = store.sync();
            for (ended, poller) in loops {
                ended.store(true, Ordering::Release);
                if let Err(e) = poller.notify() {
                    tracing::error!("committer: cannot wake an event loop: {e}");
                }
            }
            if !more {
                break;
            }
        }
    }
}
