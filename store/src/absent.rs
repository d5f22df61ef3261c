//! Pages known to be absent, remembered apart from the page cache.
//!
//! A bitmap of every page there can be (15 denominations × 65,536 pages: 120 KiB,
//! allocated once), read by lookups without a lock: a flood of lookups of random
//! absent coins costs one read per page and never evicts a real page. Its bound is the
//! page space itself.
//!
//! Freshness: a missing page file can only appear by a change of its directory
//! `Data/<dd>/<pp>` (a created or renamed-in file changes the directory's metadata; a
//! created directory appears), so the store remembers, for each directory holding
//! absent pages (at most 15 × 256), its metadata as of before the reads that found
//! them missing; a refresh that sees it changed forgets every absence under it. A
//! short page file (shorter than a page) can grow in place, so it is watched by its
//! own metadata (at most [`MAX_SHORT`] of them; beyond that a short page is not
//! remembered and is read again on its next lookup).

use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use raida_core::keys::PageId;

use crate::disk::{DirId, FileMeta};

/// Most short page files remembered at once.
pub(crate) const MAX_SHORT: usize = 16_384;

const PAGES_PER_DENOMINATION: usize = 1 << 16;
const DENOMINATION_COUNT: usize = 15;
const WORDS: usize = DENOMINATION_COUNT * PAGES_PER_DENOMINATION / 64;

/// What a directory looked like when the store last looked.
#[derive(Clone, Copy, Debug)]
pub(crate) enum DirState {
    Missing,
    Present(FileMeta),
    /// It could not be looked at, or two looks disagreed: the next refresh counts it
    /// as changed.
    Unknown,
}

impl DirState {
    pub(crate) fn from_meta(meta: io::Result<Option<FileMeta>>) -> DirState {
        match meta {
            Ok(None) => DirState::Missing,
            Ok(Some(m)) => DirState::Present(m),
            Err(_) => DirState::Unknown,
        }
    }

    /// Whether two looks saw the same directory (an unknown look matches nothing).
    pub(crate) fn same(&self, other: &DirState) -> bool {
        match (self, other) {
            (DirState::Missing, DirState::Missing) => true,
            (DirState::Present(a), DirState::Present(b)) => a == b,
            _ => false,
        }
    }
}

pub(crate) struct Absent {
    bits: Box<[AtomicU64]>,
    count: AtomicU64,
    dirs: Mutex<BTreeMap<DirId, DirState>>,
    short: Mutex<BTreeMap<PageId, FileMeta>>,
}

impl std::fmt::Debug for Absent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Absent")
            .field("pages", &self.count())
            .finish_non_exhaustive()
    }
}

/// (word, mask) of `page`'s bit; `None` for a denomination outside -8..=6.
fn bit(page: PageId) -> Option<(usize, u64)> {
    let den = usize::try_from(i16::from(page.denomination) + 8).ok()?;
    if den >= DENOMINATION_COUNT {
        return None;
    }
    let index = den * PAGES_PER_DENOMINATION + usize::from(page.number);
    Some((index / 64, 1u64 << (index % 64)))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Single map operations only: a panic elsewhere never leaves one half done.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Absent {
    pub(crate) fn new() -> Absent {
        Absent {
            bits: (0..WORDS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            dirs: Mutex::new(BTreeMap::new()),
            short: Mutex::new(BTreeMap::new()),
        }
    }

    /// Whether `page` is known to be absent (lock-free: the lookup path).
    pub(crate) fn contains(&self, page: PageId) -> bool {
        bit(page).is_some_and(|(w, m)| self.bits[w].load(Ordering::Acquire) & m != 0)
    }

    fn set(&self, page: PageId) {
        if let Some((w, m)) = bit(page) {
            if self.bits[w].fetch_or(m, Ordering::AcqRel) & m == 0 {
                self.count.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Forgets that `page` is absent.
    pub(crate) fn clear(&self, page: PageId) {
        if let Some((w, m)) = bit(page) {
            if self.bits[w].fetch_and(!m, Ordering::AcqRel) & m != 0 {
                self.count.fetch_sub(1, Ordering::Relaxed);
            }
        }
        lock(&self.short).remove(&page);
    }

    /// Whether `dir`'s metadata is being watched already.
    pub(crate) fn watches(&self, dir: DirId) -> bool {
        lock(&self.dirs).contains_key(&dir)
    }

    /// `page` has no file. `before` is its directory as seen before the read that
    /// found it missing (`None` when the directory was watched already).
    pub(crate) fn mark_missing(&self, page: PageId, before: Option<DirState>) {
        lock(&self.short).remove(&page);
        self.set(page);
        if let Some(before) = before {
            let mut dirs = lock(&self.dirs);
            let dir = DirId::of(page);
            match dirs.get_mut(&dir) {
                None => {
                    dirs.insert(dir, before);
                }
                // Two reads saw the directory differently: it changed in between, and
                // the later read may have missed a file the change made.
                Some(seen) if !seen.same(&before) => *seen = DirState::Unknown,
                Some(_) => {}
            }
        }
    }

    /// `page`'s file is shorter than a page (`meta`, as of before the read). Returns
    /// false when too many short pages are remembered (then it is not marked).
    pub(crate) fn mark_short(&self, page: PageId, meta: FileMeta) -> bool {
        let mut short = lock(&self.short);
        if short.len() >= MAX_SHORT && !short.contains_key(&page) {
            return false;
        }
        short.insert(page, meta);
        drop(short);
        self.set(page);
        true
    }

    /// The watched directories and what they looked like.
    pub(crate) fn dirs(&self) -> Vec<(DirId, DirState)> {
        lock(&self.dirs).iter().map(|(d, s)| (*d, *s)).collect()
    }

    /// The remembered short pages and their metadata.
    pub(crate) fn shorts(&self) -> Vec<(PageId, FileMeta)> {
        lock(&self.short).iter().map(|(p, m)| (*p, *m)).collect()
    }

    /// `dir` looks like `now` instead of `was`: every absence under it is forgotten
    /// (the next lookup reads the page again) and `now` is what it looks like. Returns
    /// how many absences were forgotten.
    pub(crate) fn dir_changed(&self, dir: DirId, was: DirState, now: DirState) -> u64 {
        let first = PageId {
            denomination: dir.denomination,
            number: u16::from_be_bytes([dir.high, 0]),
        };
        let mut forgotten = 0;
        if let Some((w, _)) = bit(first) {
            // 256 pages: four whole words.
            for word in &self.bits[w..w + 4] {
                forgotten += u64::from(word.swap(0, Ordering::AcqRel).count_ones());
            }
        }
        self.count.fetch_sub(forgotten, Ordering::Relaxed);
        lock(&self.short).retain(|page, _| DirId::of(*page) != dir);
        let mut dirs = lock(&self.dirs);
        if let Some(seen) = dirs.get_mut(&dir) {
            // A read that raced with this refresh may have recorded a newer look.
            *seen = if seen.same(&was) {
                now
            } else {
                DirState::Unknown
            };
        }
        forgotten
    }

    /// Pages known to be absent.
    pub(crate) fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(den: i8, number: u16) -> PageId {
        PageId {
            denomination: den,
            number,
        }
    }

    #[test]
    fn every_page_has_its_own_bit() {
        let absent = Absent::new();
        for den in [-8, -1, 0, 6] {
            for number in [0, 1, 255, 256, 0xffff] {
                absent.mark_missing(page(den, number), None);
            }
        }
        assert_eq!(absent.count(), 20);
        assert!(absent.contains(page(-8, 0xffff)));
        assert!(!absent.contains(page(-7, 0)));
        assert!(!absent.contains(page(6, 2)));
        assert!(!absent.contains(page(7, 0)), "outside the store");
        absent.clear(page(6, 0xffff));
        assert!(!absent.contains(page(6, 0xffff)));
        assert_eq!(absent.count(), 19);
    }

    #[test]
    fn a_changed_directory_forgets_exactly_its_256_pages() {
        let absent = Absent::new();
        let before = DirState::Missing;
        for number in 0x1200..0x1300u16 {
            absent.mark_missing(page(2, number), Some(before));
        }
        absent.mark_missing(page(2, 0x11ff), Some(before));
        absent.mark_missing(page(2, 0x1300), Some(before));
        assert_eq!(absent.count(), 258);
        let dir = DirId {
            denomination: 2,
            high: 0x12,
        };
        let now = DirState::Present(FileMeta::default());
        assert_eq!(absent.dir_changed(dir, before, now), 256);
        assert_eq!(absent.count(), 2);
        assert!(absent.contains(page(2, 0x11ff)) && absent.contains(page(2, 0x1300)));
        assert!(absent.dirs().iter().any(|(d, s)| *d == dir && s.same(&now)));
    }

    #[test]
    fn disagreeing_looks_at_a_directory_make_it_unknown() {
        let absent = Absent::new();
        let m = |len| {
            DirState::Present(FileMeta {
                len,
                ..FileMeta::default()
            })
        };
        absent.mark_missing(page(0, 1), Some(m(1)));
        absent.mark_missing(page(0, 2), Some(m(1)));
        assert!(absent.dirs()[0].1.same(&m(1)));
        absent.mark_missing(page(0, 3), Some(m(2)));
        assert!(matches!(absent.dirs()[0].1, DirState::Unknown));
    }

    #[test]
    fn short_pages_are_bounded() {
        let absent = Absent::new();
        for n in 0..MAX_SHORT as u32 + 10 {
            let p = page((n / 65536) as i8, (n % 65536) as u16);
            let marked = absent.mark_short(p, FileMeta::default());
            assert_eq!(marked, (n as usize) < MAX_SHORT);
        }
        assert_eq!(absent.shorts().len(), MAX_SHORT);
    }
}
