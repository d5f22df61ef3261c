//! Write intents on pages: the lock table that serialises the writers, loaders and
//! the refresh of one page while those of different pages run in parallel.
//!
//! Only worker threads (and the refresh step) take intents; a lookup never does, so a
//! writer waiting for its sync holds no lock an event loop waits on.

use std::collections::BTreeSet;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use raida_core::keys::PageId;

#[derive(Debug, Default)]
pub(crate) struct PageLocks {
    held: Mutex<Held>,
    released: Condvar,
}

#[derive(Debug, Default)]
struct Held {
    pages: BTreeSet<PageId>,
    /// Callers waiting for some page: a release wakes them only when there are any
    /// (a wake-up is a system call).
    waiting: usize,
}

/// Intents on some pages, released when dropped.
#[derive(Debug)]
#[must_use]
pub(crate) struct Intents<'a> {
    locks: &'a PageLocks,
    pages: Vec<PageId>,
}

impl PageLocks {
    fn held(&self) -> MutexGuard<'_, Held> {
        // Insert and remove only: a panic elsewhere never leaves the set half changed.
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes the intents on `pages`, waiting for each in ascending order (the one order
    /// every caller uses, so two callers never wait for each other in a cycle).
    pub(crate) fn lock(&self, pages: &[PageId]) -> Intents<'_> {
        let mut sorted = pages.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let mut held = self.held();
        for page in &sorted {
            while held.pages.contains(page) {
                held.waiting += 1;
                held = self
                    .released
                    .wait(held)
                    .unwrap_or_else(PoisonError::into_inner);
                held.waiting -= 1;
            }
            held.pages.insert(*page);
        }
        Intents {
            locks: self,
            pages: sorted,
        }
    }

    /// Takes the intents on `pages` if none is held now, without waiting (the event
    /// loop's writes: one that would wait runs on a worker instead).
    pub(crate) fn try_lock(&self, pages: &[PageId]) -> Option<Intents<'_>> {
        let mut sorted = pages.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let mut held = self.held();
        if sorted.iter().any(|p| held.pages.contains(p)) {
            return None;
        }
        held.pages.extend(sorted.iter().copied());
        Some(Intents {
            locks: self,
            pages: sorted,
        })
    }

    /// Whether someone holds the intent on `page` now.
    #[cfg(test)]
    pub(crate) fn is_held(&self, page: PageId) -> bool {
        self.held().pages.contains(&page)
    }
}

impl Drop for Intents<'_> {
    fn drop(&mut self) {
        let mut held = self.locks.held();
        for page in &self.pages {
            held.pages.remove(page);
        }
        let waiting = held.waiting > 0;
        drop(held);
        if waiting {
            self.locks.released.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn page(n: u16) -> PageId {
        PageId {
            denomination: 0,
            number: n,
        }
    }

    #[test]
    fn intents_release_on_drop_and_exclude_others() {
        let locks = PageLocks::default();
        let a = locks.lock(&[page(2), page(1), page(2)]);
        assert!(locks.is_held(page(1)) && locks.is_held(page(2)));
        let b = locks.lock(&[page(3)]);
        drop(a);
        assert!(!locks.is_held(page(1)));
        drop(b);
        assert!(!locks.is_held(page(3)));
    }

    #[test]
    #[allow(clippy::disallowed_methods)] // real threads, to race for real
    fn crossing_orders_do_not_deadlock() {
        let locks = Arc::new(PageLocks::default());
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let locks = Arc::clone(&locks);
                std::thread::spawn(move || {
                    for i in 0..500u16 {
                        let pages = if t % 2 == 0 {
                            [page(i % 5), page((i + 1) % 5)]
                        } else {
                            [page((i + 1) % 5), page(i % 5)]
                        };
                        let _g = locks.lock(&pages);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("no panic");
        }
    }
}
