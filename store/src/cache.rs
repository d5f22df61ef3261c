//! The page cache: pages read from disk, kept in memory within a bound, looked up by
//! every event loop at once.
//!
//! 64 shards, each a `RwLock` over a hash map keyed by page with a fixed hash
//! ([`PageHasher`]: deterministic, nothing hashed with a random seed): a lookup takes
//! one shard's read lock for a map probe and a 16-byte copy. A hash probe touches two
//! cache lines; the `BTreeMap` it replaced walked three nodes of several lines each,
//! which missed the cache on a full store (`bench/RESULTS.md`). Writers take a shard's
//! write lock only to insert a page read beforehand, to remove one, or to copy a few
//! 17-byte records into one: never across disk I/O and never for a page copy.
//!
//! A page's bytes live in its shard's frames ([`Frames`]), not in the map: the map's
//! entries stay small enough for the caches, and the frames past a shard's first few
//! are 2 MiB mappings advised for transparent huge pages. A lookup at random over a
//! full-size store (261 MB of pages) then misses no TLB entry for the record it reads:
//! with 4 KiB pages every detect paid a page walk, which a VM makes longer
//! (`bench/RESULTS.md`). A small store stays on the heap, without huge pages.
//!
//! Eviction is CLOCK: a ring of the cached pages, each with a reference bit that a
//! lookup sets; the hand (a mutex only workers take) clears set bits and evicts the
//! first page whose bit is clear. Pages pinned after a failed in-place write are never
//! evicted.

use std::collections::VecDeque;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use memmap2::{Advice, MmapMut};

use raida_core::keys::{An, Lookup, PageId, Record, PAGE_BYTES, RECORD_BYTES};
use raida_core::Timestamp;

use crate::disk::{FileMeta, RecordWrite};

/// Shards of the cache: enough that event loops on different pages rarely share one.
const SHARDS: usize = 64;

/// Most pages remembered as unreadable at once (each costs a map entry); beyond it an
/// unreadable page is simply read again on the next miss.
const MAX_UNREADABLE: usize = 4096;

/// Frames of a shard's first chunk, on the heap: a small store needs no more.
const HEAP_FRAMES: usize = 8;

/// A transparent huge page: the size of every chunk after the first (the kernel
/// aligns an anonymous mapping of this size to it).
const HUGE_PAGE_BYTES: usize = 2 << 20;

/// Frames of a chunk after the first: 120 (8 KiB of each 2 MiB left over).
const MAPPED_FRAMES: usize = HUGE_PAGE_BYTES / PAGE_BYTES;

/// A chunk of frames.
enum Chunk {
    Heap(Box<[u8]>),
    Mapped(MmapMut),
}

impl Chunk {
    /// The chunk at `index` of a shard: the first on the heap, the rest mapped and
    /// advised for huge pages (the advice is a hint: a kernel that ignores it, or a
    /// failed mapping, leaves ordinary pages).
    fn new(index: usize) -> Chunk {
        if index == 0 {
            return Chunk::Heap(vec![0u8; HEAP_FRAMES * PAGE_BYTES].into_boxed_slice());
        }
        match MmapMut::map_anon(HUGE_PAGE_BYTES) {
            Ok(map) => {
                let _ = map.advise(Advice::HugePage);
                Chunk::Mapped(map)
            }
            Err(_) => Chunk::Heap(vec![0u8; MAPPED_FRAMES * PAGE_BYTES].into_boxed_slice()),
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            Chunk::Heap(b) => b,
            Chunk::Mapped(m) => m,
        }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        match self {
            Chunk::Heap(b) => b,
            Chunk::Mapped(m) => m,
        }
    }
}

/// The page memory of one shard: frames of [`PAGE_BYTES`], one per page in memory,
/// allocated in chunks as the shard grows and reused when pages leave (never given
/// back: the cache is bounded, and a shard refills).
#[derive(Default)]
struct Frames {
    chunks: Vec<Chunk>,
    /// Frames given back, reused first.
    free: Vec<u32>,
    /// The next frame never used.
    next: u32,
}

impl Frames {
    /// The chunk and the place in it of `frame`.
    fn locate(frame: u32) -> (usize, usize) {
        let f = frame as usize;
        match f.checked_sub(HEAP_FRAMES) {
            None => (0, f),
            Some(r) => (1 + r / MAPPED_FRAMES, r % MAPPED_FRAMES),
        }
    }

    /// A frame for a page coming in (its bytes are the last page's, or zeros).
    fn take(&mut self) -> u32 {
        if let Some(frame) = self.free.pop() {
            return frame;
        }
        let frame = self.next;
        self.next += 1;
        let (chunk, _) = Self::locate(frame);
        while self.chunks.len() <= chunk {
            self.chunks.push(Chunk::new(self.chunks.len()));
        }
        frame
    }

    /// `frame` is free again.
    fn give_back(&mut self, frame: u32) {
        self.free.push(frame);
    }

    fn page(&self, frame: u32) -> Option<&[u8]> {
        let (chunk, at) = Self::locate(frame);
        self.chunks
            .get(chunk)?
            .bytes()
            .get(at * PAGE_BYTES..(at + 1) * PAGE_BYTES)
    }

    fn page_mut(&mut self, frame: u32) -> Option<&mut [u8]> {
        let (chunk, at) = Self::locate(frame);
        self.chunks
            .get_mut(chunk)?
            .bytes_mut()
            .get_mut(at * PAGE_BYTES..(at + 1) * PAGE_BYTES)
    }

    /// Puts `bytes` in `frame`.
    fn fill(&mut self, frame: u32, bytes: &[u8; PAGE_BYTES]) {
        if let Some(page) = self.page_mut(frame) {
            page.copy_from_slice(bytes);
        }
    }
}

/// One page in memory.
pub(crate) struct CachedPage {
    /// Its bytes: a frame of its shard's [`Frames`].
    frame: u32,
    /// What a read of records never needs, apart: the map's entries keep only the 32
    /// bytes a lookup reads (a detect over a full store misses fewer cache lines).
    cold: Box<ColdPage>,
    /// `cold.pending` is not empty: a read looks there only then.
    any_pending: bool,
    /// Set by lookups, cleared by the CLOCK hand.
    referenced: AtomicBool,
    /// Tells this insertion apart from an earlier one of the same page in the ring.
    generation: u64,
    /// An in-place write failed after its log entry was durable: the page in memory is
    /// the truth until a restart replays the log, so it is never evicted nor reloaded.
    pinned: bool,
    /// The file changed from outside between the store's read and its own write: the
    /// next refresh reads it again whatever its metadata says.
    stale: bool,
    /// Writes applied here whose records are not yet written in place (not yet
    /// durable, or durable and waiting for the store to write them), and writers
    /// about to apply one: the page in memory is ahead of its file, so it is neither
    /// evicted nor reloaded meanwhile.
    unapplied: u32,
}

/// The parts of a [`CachedPage`] that reads of records do not touch.
struct ColdPage {
    /// The file's metadata as of the store's last read or write of it.
    meta: FileMeta,
    /// The records written by a write not yet in place, with that write's sequence
    /// number: a read of one waits for that commit. Changed under the shard's write
    /// lock together with the bytes, so a reader that sees a record sees its mark.
    pending: Vec<(u16, u64)>,
}

impl CachedPage {
    /// A page just read, referenced, held by `unapplied` writers.
    fn new(frame: u32, meta: FileMeta, generation: u64, unapplied: u32) -> Self {
        CachedPage {
            frame,
            cold: Box::new(ColdPage {
                meta,
                pending: Vec::new(),
            }),
            any_pending: false,
            referenced: AtomicBool::new(true),
            generation,
            pinned: false,
            stale: false,
            unapplied,
        }
    }

    /// Whether memory is ahead of the file: the page must stay, as it is.
    fn held(&self) -> bool {
        self.pinned || self.unapplied > 0
    }

    fn record(&self, frames: &Frames, index: usize) -> Option<Record> {
        let start = index.checked_mul(RECORD_BYTES)?;
        let bytes = frames
            .page(self.frame)?
            .get(start..start.checked_add(RECORD_BYTES)?)?;
        let an: An = bytes.get(..16)?.try_into().ok()?;
        Some(Record {
            an,
            status: bytes[16],
        })
    }

    fn write(&self, frames: &mut Frames, writes: &[RecordWrite]) {
        let Some(page) = frames.page_mut(self.frame) else {
            return;
        };
        for w in writes {
            let start = usize::from(w.index) * RECORD_BYTES;
            if let Some(slot) = page.get_mut(start..start + RECORD_BYTES) {
                slot.copy_from_slice(&w.bytes);
            }
        }
    }
}

enum Slot {
    Page(CachedPage),
    /// Reading the page failed: lookups answer `Unreadable` until `until`.
    Unreadable {
        until: Timestamp,
    },
}

/// What one shard's lock guards: its map and its pages' bytes.
#[derive(Default)]
struct ShardPages {
    map: PageMap,
    frames: Frames,
}

impl ShardPages {
    fn get(&self, page: &PageId) -> Option<&Slot> {
        self.map.get(page)
    }

    fn get_mut(&mut self, page: &PageId) -> Option<&mut Slot> {
        self.map.get_mut(page)
    }

    /// Puts `slot` at `page`, giving back the frame of a page it replaces.
    fn insert(&mut self, page: PageId, slot: Slot) -> Option<Slot> {
        let old = self.map.insert(page, slot);
        self.free_frame_of(old.as_ref());
        old
    }

    /// Takes `page` out, giving back its frame.
    fn remove(&mut self, page: &PageId) -> Option<Slot> {
        let old = self.map.remove(page);
        self.free_frame_of(old.as_ref());
        old
    }

    fn free_frame_of(&mut self, old: Option<&Slot>) {
        if let Some(Slot::Page(p)) = old {
            self.frames.give_back(p.frame);
        }
    }

    /// A new page `page` of `bytes` in a frame of its own (or in the frame of the page
    /// it replaces), returning what was there.
    fn put_page(
        &mut self,
        page: PageId,
        bytes: &[u8; PAGE_BYTES],
        meta: FileMeta,
        generation: u64,
        unapplied: u32,
    ) -> Option<Slot> {
        let frame = match self.map.get(&page) {
            Some(Slot::Page(p)) => p.frame,
            _ => self.frames.take(),
        };
        self.frames.fill(frame, bytes);
        // The same frame when a page replaces itself: not given back.
        self.map.insert(
            page,
            Slot::Page(CachedPage::new(frame, meta, generation, unapplied)),
        )
    }
}

/// One shard, on a cache line of its own with its counters.
#[repr(align(64))]
struct Shard {
    map: RwLock<ShardPages>,
    hits: AtomicU64,
    misses: AtomicU64,
    out_of_range: AtomicU64,
}

/// What became of a held write's in-place write ([`Cache::applied_in_place`]).
#[derive(Clone, Copy, Debug)]
pub(crate) enum InPlace {
    /// Written; the file's metadata before and after it (when `before` is what the
    /// cache last saw, `after` becomes it; otherwise the file changed from outside
    /// meanwhile and the page is marked for a reload).
    Written { before: FileMeta, after: FileMeta },
    /// The file went away (or was cut short) from outside: the page leaves memory
    /// once no other write holds it, and its absence is learned on the next load.
    Gone,
    /// The write failed: memory is the only place the records are until a restart
    /// replays the log, so the page is pinned.
    Failed,
}

/// What a refresh needs to know of one cached page.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Cached {
    pub page: PageId,
    pub meta: FileMeta,
    pub stale: bool,
}

pub(crate) struct Cache {
    shards: Box<[Shard]>,
    capacity: usize,
    cached: AtomicUsize,
    unreadable: AtomicUsize,
    clock: Mutex<VecDeque<(PageId, u64)>>,
    next_generation: AtomicU64,
    evictions: AtomicU64,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("capacity", &self.capacity)
            .field("cached", &self.cached_pages())
            .finish_non_exhaustive()
    }
}

/// A shard's pages. The workspace bans `HashMap` for its random iteration order; this
/// one hashes with [`PageHasher`], which has no seed, so the same operations give the
/// same order in every run.
#[allow(clippy::disallowed_types)]
type PageMap = std::collections::HashMap<PageId, Slot, BuildHasherDefault<PageHasher>>;

/// The hash of a page id within a shard: the id's three bytes, multiplied and folded.
/// Fixed (no random seed), so that a seed's run in the simulator is the same every time;
/// page ids are not chosen by clients in a way that could flood one bucket (a shard
/// holds at most a few hundred pages, and a lookup of a page that is not there misses
/// by its own hash).
#[derive(Default)]
struct PageHasher(u64);

impl Hasher for PageHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }

    fn finish(&self) -> u64 {
        let h = self.0.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        h ^ (h >> 32)
    }
}

fn shard_index(page: PageId) -> usize {
    let key = (u32::from(page.denomination.to_ne_bytes()[0]) << 16) | u32::from(page.number);
    // Fibonacci hashing: consecutive pages land on different shards.
    (key.wrapping_mul(0x9E37_79B1) >> 26) as usize % SHARDS
}

impl Cache {
    /// A cache of at most `capacity` pages (at least 1).
    pub(crate) fn new(capacity: usize) -> Cache {
        Cache {
            shards: (0..SHARDS)
                .map(|_| Shard {
                    map: RwLock::new(ShardPages::default()),
                    hits: AtomicU64::new(0),
                    misses: AtomicU64::new(0),
                    out_of_range: AtomicU64::new(0),
                })
                .collect(),
            capacity: capacity.max(1),
            cached: AtomicUsize::new(0),
            unreadable: AtomicUsize::new(0),
            clock: Mutex::new(VecDeque::new()),
            next_generation: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
        }
    }

    fn shard(&self, page: PageId) -> &Shard {
        &self.shards[shard_index(page)]
    }

    fn read(&self, page: PageId) -> RwLockReadGuard<'_, ShardPages> {
        // Every change under the lock is one map operation or a byte copy: a panic
        // elsewhere never leaves a shard half changed.
        self.shard(page)
            .map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self, page: PageId) -> RwLockWriteGuard<'_, ShardPages> {
        self.shard(page)
            .map
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The header-time lookup of record `index` of `page` (known not to be absent).
    pub(crate) fn lookup(&self, page: PageId, index: usize, now: Timestamp) -> Lookup {
        let shard = self.shard(page);
        let map = shard.map.read().unwrap_or_else(PoisonError::into_inner);
        let found = match map.get(&page) {
            Some(Slot::Page(p)) => {
                // Read before writing: a hot page's bit stays set without a store to
                // its cache line on every lookup.
                if !p.referenced.load(Ordering::Relaxed) {
                    p.referenced.store(true, Ordering::Relaxed);
                }
                match p.record(&map.frames, index) {
                    Some(record) => Lookup::Found(record.an),
                    None => Lookup::Unknown,
                }
            }
            Some(Slot::Unreadable { until }) if now < *until => Lookup::Unreadable(page),
            _ => Lookup::NotInMemory(page),
        };
        drop(map);
        let counter = if matches!(found, Lookup::NotInMemory(_)) {
            &shard.misses
        } else {
            &shard.hits
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Counts a lookup answered without the cache (an absent page).
    pub(crate) fn count_hit(&self, page: PageId) {
        self.shard(page).hits.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a lookup of a coin that can never be known.
    pub(crate) fn count_out_of_range(&self, serial: u32) {
        self.shards[serial as usize % SHARDS]
            .out_of_range
            .fetch_add(1, Ordering::Relaxed);
    }

    /// (hits, misses, out of range) over every shard.
    pub(crate) fn lookup_counts(&self) -> (u64, u64, u64) {
        self.shards.iter().fold((0, 0, 0), |(h, m, o), s| {
            (
                h + s.hits.load(Ordering::Relaxed),
                m + s.misses.load(Ordering::Relaxed),
                o + s.out_of_range.load(Ordering::Relaxed),
            )
        })
    }

    /// Whether `page` is in memory.
    pub(crate) fn has_page(&self, page: PageId) -> bool {
        matches!(self.read(page).get(&page), Some(Slot::Page(_)))
    }

    /// The records at `indices` of `page`, if it is in memory.
    pub(crate) fn records(&self, page: PageId, indices: &[usize]) -> Option<Vec<Record>> {
        let map = self.read(page);
        match map.get(&page) {
            Some(Slot::Page(p)) => indices.iter().map(|&i| p.record(&map.frames, i)).collect(),
            _ => None,
        }
    }

    /// What a refresh compares for `page`: `None` when it is not in memory or pinned.
    pub(crate) fn cached(&self, page: PageId) -> Option<Cached> {
        match self.read(page).get(&page) {
            Some(Slot::Page(p)) if !p.held() => Some(Cached {
                page,
                meta: p.cold.meta,
                stale: p.stale,
            }),
            _ => None,
        }
    }

    /// Every page in memory that a refresh may reload (pinned ones are not).
    pub(crate) fn snapshot(&self) -> Vec<Cached> {
        let mut out = Vec::with_capacity(self.cached_pages());
        for shard in self.shards.iter() {
            let map = shard.map.read().unwrap_or_else(PoisonError::into_inner);
            out.extend(map.map.iter().filter_map(|(page, slot)| match slot {
                Slot::Page(p) if !p.held() => Some(Cached {
                    page: *page,
                    meta: p.cold.meta,
                    stale: p.stale,
                }),
                _ => None,
            }));
        }
        out
    }

    /// Puts `page` in memory (replacing what was there), then evicts to stay within
    /// the bound. The caller holds the page's intent.
    pub(crate) fn insert(&self, page: PageId, bytes: Box<[u8; PAGE_BYTES]>, meta: FileMeta) {
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
        let old = {
            let mut map = self.write(page);
            if matches!(map.get(&page), Some(Slot::Page(p)) if p.held()) {
                // Memory is ahead of the file: what was read is older.
                return;
            }
            map.put_page(page, &bytes, meta, generation, 0)
        };
        match &old {
            Some(Slot::Page(_)) => {}
            Some(Slot::Unreadable { .. }) => {
                self.unreadable.fetch_sub(1, Ordering::Relaxed);
                self.cached.fetch_add(1, Ordering::Relaxed);
            }
            None => {
                self.cached.fetch_add(1, Ordering::Relaxed);
            }
        }
        // The buffer read (17 KB) is freed outside the shard lock.
        drop(bytes);
        let mut clock = self.clock.lock().unwrap_or_else(PoisonError::into_inner);
        clock.push_back((page, generation));
        self.evict(&mut clock);
    }

    /// Forgets `page` (its file went away or became short). Pinned pages stay.
    pub(crate) fn remove(&self, page: PageId) {
        let old = {
            let mut map = self.write(page);
            match map.get(&page) {
                Some(Slot::Page(p)) if p.held() => None,
                Some(_) => map.remove(&page),
                None => None,
            }
        };
        self.account_removed(old.as_ref());
    }

    fn account_removed(&self, old: Option<&Slot>) {
        match old {
            Some(Slot::Page(_)) => {
                self.cached.fetch_sub(1, Ordering::Relaxed);
            }
            Some(Slot::Unreadable { .. }) => {
                self.unreadable.fetch_sub(1, Ordering::Relaxed);
            }
            None => {}
        }
    }

    /// Remembers that `page` cannot be read until `until` (replacing a page in memory:
    /// after a failed reload, stale bytes are not served). Pinned pages stay.
    pub(crate) fn set_unreadable(&self, page: PageId, until: Timestamp) {
        let old = {
            let mut map = self.write(page);
            match map.get_mut(&page) {
                Some(Slot::Page(p)) if p.held() => return,
                Some(Slot::Unreadable { until: u }) => {
                    *u = until;
                    return;
                }
                Some(_) => map.insert(page, Slot::Unreadable { until }),
                None => {
                    if self.unreadable.load(Ordering::Relaxed) >= MAX_UNREADABLE {
                        return;
                    }
                    map.insert(page, Slot::Unreadable { until })
                }
            }
        };
        self.account_removed(old.as_ref());
        self.unreadable.fetch_add(1, Ordering::Relaxed);
    }

    /// Holds `page` in memory for a writer (see [`write_held`](Self::write_held)):
    /// it is neither evicted nor reloaded until the write is in place
    /// ([`applied_in_place`](Self::applied_in_place)) or the hold is let go
    /// ([`let_go`](Self::let_go)). `bytes`: the page as read, put in memory (beyond
    /// the bound) when it is not there. Returns false when it is not and no bytes
    /// were given. The caller holds the page's intent.
    pub(crate) fn hold(
        &self,
        page: PageId,
        bytes: Option<(Box<[u8; PAGE_BYTES]>, FileMeta)>,
    ) -> bool {
        let mut map = self.write(page);
        if let Some(Slot::Page(p)) = map.get_mut(&page) {
            p.unapplied += 1;
            return true;
        }
        let Some((bytes, meta)) = bytes else {
            return false;
        };
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
        let old = map.put_page(page, &bytes, meta, generation, 1);
        drop(map);
        self.account_removed(old.as_ref());
        self.cached.fetch_add(1, Ordering::Relaxed);
        let mut clock = self.clock.lock().unwrap_or_else(PoisonError::into_inner);
        clock.push_back((page, generation));
        true
    }

    /// Lets go of a hold that wrote nothing.
    pub(crate) fn let_go(&self, page: PageId) {
        if let Some(Slot::Page(p)) = self.write(page).get_mut(&page) {
            p.unapplied = p.unapplied.saturating_sub(1);
        }
    }

    /// Applies write `seq` (not yet in place) to held `page` in memory, marking its
    /// records pending until it is in place.
    pub(crate) fn write_held(&self, page: PageId, writes: &[RecordWrite], seq: u64) {
        let mut map = self.write(page);
        let ShardPages { map, frames } = &mut *map;
        let Some(Slot::Page(p)) = map.get_mut(&page) else {
            return;
        };
        p.write(frames, writes);
        for w in writes {
            match p.cold.pending.iter_mut().find(|(i, _)| *i == w.index) {
                Some(entry) => entry.1 = entry.1.max(seq),
                None => p.cold.pending.push((w.index, seq)),
            }
        }
        p.any_pending = !p.cold.pending.is_empty();
    }

    /// The records at `indices` of `page` if it is in memory, and the newest write
    /// not yet in place among them (a read of them waits for its commit).
    pub(crate) fn records_pending(
        &self,
        page: PageId,
        indices: &[usize],
    ) -> Option<(Vec<Record>, Option<u64>)> {
        let map = self.read(page);
        match map.get(&page) {
            Some(Slot::Page(p)) => {
                let records = indices
                    .iter()
                    .map(|&i| p.record(&map.frames, i))
                    .collect::<Option<_>>()?;
                let seq = p
                    .any_pending
                    .then(|| {
                        p.cold
                            .pending
                            .iter()
                            .filter(|(i, _)| indices.contains(&usize::from(*i)))
                            .map(|(_, seq)| *seq)
                            .max()
                    })
                    .flatten();
                Some((records, seq))
            }
            _ => None,
        }
    }

    /// Hints the CPU to bring the records at `at` (page, index) into its cache, for
    /// the pages in memory: their addresses are found under the shards' locks first,
    /// then every line is hinted at once, after the locks, so that the misses overlap
    /// (see [`crate::prefetch`]). Changes nothing.
    pub(crate) fn prefetch(&self, at: impl IntoIterator<Item = (PageId, usize)>) {
        // Hinted 64 at a time, from an array: no allocation on the loop's path.
        const CHUNK: usize = 64;
        let hint = |records: &[*const u8]| {
            for &record in records {
                // A record is 17 bytes: its last byte may be on the next line.
                crate::prefetch::line(record);
                crate::prefetch::line(record.wrapping_add(RECORD_BYTES - 1));
            }
        };
        let mut records = [std::ptr::null::<u8>(); CHUNK];
        let mut found = 0;
        for (page, index) in at {
            let map = self.read(page);
            let Some(Slot::Page(p)) = map.get(&page) else {
                continue;
            };
            let record = index
                .checked_mul(RECORD_BYTES)
                .and_then(|start| map.frames.page(p.frame)?.get(start..));
            if let Some(record) = record {
                records[found] = record.as_ptr();
                found += 1;
            }
            drop(map);
            if found == CHUNK {
                hint(&records);
                found = 0;
            }
        }
        hint(&records[..found]);
    }

    /// The newest write not yet in place of record `index` of `page`, if any.
    pub(crate) fn pending_of(&self, page: PageId, index: usize) -> Option<u64> {
        match self.read(page).get(&page) {
            Some(Slot::Page(p)) if p.any_pending => p
                .cold
                .pending
                .iter()
                .find(|(i, _)| usize::from(*i) == index)
                .map(|(_, seq)| *seq),
            _ => None,
        }
    }

    /// Write `seq`, held by [`write_held`](Self::write_held), reached the page file
    /// (or did not: see [`InPlace`]). Memory already holds it, and maybe newer writes:
    /// no bytes change here; its records' marks go, unless a newer write marked them
    /// since, and so does its hold.
    pub(crate) fn applied_in_place(&self, page: PageId, seq: u64, holds: u32, outcome: InPlace) {
        let removed = {
            let mut map = self.write(page);
            let Some(Slot::Page(p)) = map.get_mut(&page) else {
                return;
            };
            p.unapplied = p.unapplied.saturating_sub(holds);
            p.cold.pending.retain(|(_, s)| *s > seq);
            p.any_pending = !p.cold.pending.is_empty();
            match outcome {
                InPlace::Written { before, after } => {
                    if p.cold.meta == before && !p.stale {
                        p.cold.meta = after;
                    } else {
                        p.stale = true;
                    }
                    None
                }
                InPlace::Failed => {
                    p.pinned = true;
                    None
                }
                // The outside change wins, as for any page, once no write holds it.
                InPlace::Gone if !p.held() => map.remove(&page),
                InPlace::Gone => None,
            }
        };
        self.account_removed(removed.as_ref());
    }

    /// CLOCK: evicts until the cache is within its bound (or only pinned or
    /// just-referenced pages are left after two sweeps).
    fn evict(&self, ring: &mut VecDeque<(PageId, u64)>) {
        enum Seen {
            Gone,
            Keep,
            Evict,
        }
        let mut budget = ring.len().saturating_mul(2).saturating_add(1);
        while self.cached.load(Ordering::Relaxed) > self.capacity && budget > 0 {
            budget -= 1;
            let Some((page, generation)) = ring.pop_front() else {
                break;
            };
            let seen = match self.read(page).get(&page) {
                Some(Slot::Page(p)) if p.generation == generation => {
                    if p.held() || p.referenced.swap(false, Ordering::Relaxed) {
                        Seen::Keep
                    } else {
                        Seen::Evict
                    }
                }
                _ => Seen::Gone,
            };
            match seen {
                Seen::Gone => {}
                Seen::Keep => ring.push_back((page, generation)),
                Seen::Evict => {
                    let old = {
                        let mut map = self.write(page);
                        match map.get(&page) {
                            Some(Slot::Page(p)) if p.generation == generation && !p.held() => {
                                map.remove(&page)
                            }
                            _ => None,
                        }
                    };
                    if old.is_some() {
                        self.cached.fetch_sub(1, Ordering::Relaxed);
                        self.evictions.fetch_add(1, Ordering::Relaxed);
                    }
                    drop(old);
                }
            }
        }
        // Entries of pages removed otherwise (reloads, deletions) are dropped as the
        // hand passes; without evictions nothing passes, so compact now and then.
        let live = self.cached.load(Ordering::Relaxed);
        if ring.len() > live.saturating_mul(2).max(64) {
            ring.retain(|&(page, generation)| {
                matches!(self.read(page).get(&page),
                    Some(Slot::Page(p)) if p.generation == generation)
            });
        }
    }

    /// Pages in memory now.
    pub(crate) fn cached_pages(&self) -> usize {
        self.cached.load(Ordering::Relaxed)
    }

    /// Pages evicted so far.
    pub(crate) fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }

    /// The bound.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(n: u16) -> PageId {
        PageId {
            denomination: 1,
            number: n,
        }
    }

    fn bytes(fill: u8) -> Box<[u8; PAGE_BYTES]> {
        Box::new([fill; PAGE_BYTES])
    }

    #[test]
    fn consecutive_pages_spread_over_the_shards() {
        let mut counts = [0usize; SHARDS];
        for den in -8..=6i8 {
            for number in 0..1000u16 {
                counts[shard_index(PageId {
                    denomination: den,
                    number,
                })] += 1;
            }
        }
        let (min, max) = (counts.iter().min(), counts.iter().max());
        assert!(min.zip(max).is_some_and(|(a, b)| b - a < 60), "{counts:?}");
    }

    #[test]
    fn clock_keeps_referenced_pages_and_stays_within_the_bound() {
        let cache = Cache::new(2);
        cache.insert(page(0), bytes(0), FileMeta::default());
        cache.insert(page(1), bytes(1), FileMeta::default());
        // Both were inserted referenced; a third insert sweeps, clears, evicts page 0.
        cache.insert(page(2), bytes(2), FileMeta::default());
        assert_eq!(cache.cached_pages(), 2);
        assert_eq!(cache.evictions(), 1);
        assert!(!cache.has_page(page(0)));
        // Page 1's bit was cleared by the sweep; a lookup sets it again, so page 2 goes.
        let _ = cache.lookup(page(1), 0, Timestamp::ZERO);
        cache.insert(page(3), bytes(3), FileMeta::default());
        assert!(cache.has_page(page(1)) && cache.has_page(page(3)));
        assert!(!cache.has_page(page(2)));
    }

    /// Pages that share a shard with page 0 (the frames under test are per shard).
    fn same_shard(count: usize) -> Vec<PageId> {
        (0..u16::MAX)
            .map(page)
            .filter(|p| shard_index(*p) == shard_index(page(0)))
            .take(count)
            .collect()
    }

    fn frames_used(cache: &Cache, p: PageId) -> u32 {
        cache.read(p).frames.next
    }

    #[test]
    fn a_shard_s_frames_are_reused_and_hold_only_the_page_now_there() {
        // 20 pages of one shard through a cache of 4: at most 4 (and the one being
        // inserted) are ever in frames, and each lookup reads its own page's bytes.
        let cache = Cache::new(4);
        let pages = same_shard(20);
        for (i, p) in pages.iter().enumerate() {
            let fill = i as u8 + 1;
            cache.insert(*p, bytes(fill), FileMeta::default());
            assert_eq!(
                cache.records(*p, &[1023]).map(|r| r[0].an),
                Some([fill; 16])
            );
        }
        assert!(frames_used(&cache, pages[0]) <= 5, "frames reused");
        for (i, p) in pages.iter().enumerate() {
            match cache.lookup(*p, 7, Timestamp::ZERO) {
                Lookup::Found(an) => assert_eq!(an, [i as u8 + 1; 16]),
                Lookup::NotInMemory(_) => {}
                other => panic!("{other:?}"),
            }
        }
        // A page that replaces itself (a reload) keeps its frame.
        let last = pages[19];
        let before = frames_used(&cache, last);
        cache.insert(last, bytes(99), FileMeta::default());
        assert_eq!(frames_used(&cache, last), before);
        assert_eq!(cache.records(last, &[0]).map(|r| r[0].an), Some([99; 16]));
        // A page removed gives its frame to the next one, which reads its own bytes.
        cache.remove(last);
        let next = same_shard(21)[20];
        cache.insert(next, bytes(42), FileMeta::default());
        assert_eq!(frames_used(&cache, next), before);
        assert_eq!(cache.records(next, &[5]).map(|r| r[0].an), Some([42; 16]));
        assert_eq!(cache.records(last, &[5]), None);
    }

    #[test]
    fn a_map_entry_holds_only_what_a_read_of_records_needs() {
        // The map's values are what a lookup walks over; the rest of a page is apart.
        assert!(
            std::mem::size_of::<Slot>() <= 32,
            "{}",
            std::mem::size_of::<Slot>()
        );
    }

    #[test]
    fn past_its_first_frames_a_shard_maps_huge_page_chunks() {
        let pages = same_shard(HEAP_FRAMES + MAPPED_FRAMES + 1);
        let cache = Cache::new(pages.len());
        for (i, p) in pages.iter().enumerate() {
            cache.insert(*p, bytes(i as u8), FileMeta::default());
        }
        let shard = cache.read(pages[0]);
        let kinds: Vec<(bool, usize)> = shard
            .frames
            .chunks
            .iter()
            .map(|c| (matches!(c, Chunk::Mapped(_)), c.bytes().len()))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (false, HEAP_FRAMES * PAGE_BYTES),
                (true, HUGE_PAGE_BYTES),
                (true, HUGE_PAGE_BYTES)
            ]
        );
        drop(shard);
        // Every page reads its own bytes, across the chunks' edges.
        for (i, p) in pages.iter().enumerate() {
            assert_eq!(
                cache.records(*p, &[0, 1023]).map(|r| (r[0].an, r[1].an)),
                Some(([i as u8; 16], [i as u8; 16]))
            );
        }
    }

    #[test]
    fn held_pages_are_never_evicted_nor_replaced_until_their_write_is_in_place() {
        let cache = Cache::new(1);
        cache.insert(page(0), bytes(0), FileMeta::default());
        assert!(cache.hold(page(0), None));
        let w = [RecordWrite {
            index: 3,
            bytes: [9; RECORD_BYTES],
        }];
        cache.write_held(page(0), &w, 7);
        for n in 1..10 {
            cache.insert(page(n), bytes(1), FileMeta::default());
        }
        // A reload of the file's older bytes does not replace memory either.
        cache.insert(page(0), bytes(0), FileMeta::default());
        assert!(cache.has_page(page(0)));
        assert!(cache.cached_pages() <= 2);
        assert_eq!(
            cache
                .records_pending(page(0), &[3])
                .map(|(r, seq)| (r[0].an, seq)),
            Some(([9; 16], Some(7)))
        );
        assert_eq!(cache.pending_of(page(0), 2), None);
        cache.applied_in_place(
            page(0),
            7,
            1,
            InPlace::Written {
                before: FileMeta::default(),
                after: FileMeta::default(),
            },
        );
        assert_eq!(cache.pending_of(page(0), 3), None);
        cache.insert(page(1), bytes(1), FileMeta::default());
        assert!(
            !cache.has_page(page(0)),
            "no longer held: evicted as any page"
        );
    }

    #[test]
    fn a_newer_write_keeps_its_mark_when_an_older_one_lands_in_place() {
        let cache = Cache::new(4);
        cache.insert(page(0), bytes(0), FileMeta::default());
        let w = |b| {
            [RecordWrite {
                index: 1,
                bytes: [b; RECORD_BYTES],
            }]
        };
        assert!(cache.hold(page(0), None));
        cache.write_held(page(0), &w(1), 10);
        assert!(cache.hold(page(0), None));
        cache.write_held(page(0), &w(2), 11);
        cache.applied_in_place(page(0), 10, 1, InPlace::Failed);
        assert_eq!(cache.pending_of(page(0), 1), Some(11));
        assert_eq!(cache.records(page(0), &[1]).map(|r| r[0].an), Some([2; 16]));
    }

    #[test]
    fn own_write_moves_the_metadata_an_outside_one_marks_stale() {
        let cache = Cache::new(4);
        let m = |len| FileMeta {
            len,
            ..FileMeta::default()
        };
        cache.insert(page(0), bytes(0), m(1));
        let w = [RecordWrite {
            index: 3,
            bytes: [9; RECORD_BYTES],
        }];
        assert!(cache.hold(page(0), None));
        cache.write_held(page(0), &w, 1);
        cache.applied_in_place(
            page(0),
            1,
            1,
            InPlace::Written {
                before: m(1),
                after: m(2),
            },
        );
        let c = cache.cached(page(0)).expect("cached");
        assert_eq!((c.meta, c.stale), (m(2), false));
        assert_eq!(cache.records(page(0), &[3]).map(|r| r[0].an), Some([9; 16]));
        // The file was m(5) before this write: someone else wrote it.
        assert!(cache.hold(page(0), None));
        cache.write_held(page(0), &w, 2);
        cache.applied_in_place(
            page(0),
            2,
            1,
            InPlace::Written {
                before: m(5),
                after: m(6),
            },
        );
        assert!(cache.cached(page(0)).is_some_and(|c| c.stale));
    }

    #[test]
    fn unreadable_pages_answer_until_their_time_then_miss() {
        let cache = Cache::new(4);
        let t = |s: u64| Timestamp::from_micros(s * 1_000_000);
        cache.set_unreadable(page(0), t(2));
        assert_eq!(cache.lookup(page(0), 0, t(1)), Lookup::Unreadable(page(0)));
        assert_eq!(cache.lookup(page(0), 0, t(2)), Lookup::NotInMemory(page(0)));
        cache.insert(page(0), bytes(7), FileMeta::default());
        assert_eq!(cache.lookup(page(0), 0, t(1)), Lookup::Found([7; 16]));
        assert_eq!(cache.cached_pages(), 1);
    }
}
