//! The write-ahead log: appends, group commit, failure, segments, and recovery at
//! open.
//!
//! **Appends.** A write encodes its entry into the log's buffer under the log's
//! mutex ([`Log::append`]) and gets its sequence number; it does not wait. The
//! store has already applied it in memory; it becomes durable with the next sync.
//!
//! **Group commit** (leader and followers, as PostgreSQL flushes its WAL): a sync
//! takes everything buffered so far, appends it to the segment with one write and
//! syncs it with one `fdatasync`. The driver's committer calls [`Log::flush`] for the
//! engine, which holds the answers meanwhile; a caller that must block until its own
//! entry is durable calls [`Log::wait`], which leads a sync when none runs and waits
//! for the running one otherwise. Entries appended while a sync runs go into the
//! next one. Nothing bounds a group but what was appended. No thread of the log's own,
//! so the simulator runs it step by step.
//!
//! **Failure is fail-stop** (as PostgreSQL after a failed fsync): the store applied
//! every entry in memory before it was durable, so after a failed append or sync no
//! later answer may come from memory. The batch is cut off the segment again (so a
//! restart does not replay what nobody was told is durable), and the log fails: no
//! write of that batch or after it is ever durable in this process, every later
//! append is `StoreError::Failed`, and a restart recovers from the log.
//!
//! **Durable writes are applied in place** by the store, in sequence order, after
//! their sync ([`Log::take_durable`]).
//!
//! **Segments**: when the segment being written passes a size bound, the next leader
//! starts a new one. An older segment is removed by [`Log::checkpoint_candidate`] /
//! [`Log::checkpointed`] only once every write of it was applied in place and the
//! page files it touched were synced, oldest first (replaying an old segment after a
//! newer one was removed would bring old records back).

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use raida_core::keys::{PageId, StoreError};

use crate::disk::{Disk, RecordWrite, Segment, Written};
use crate::entry;

/// A log that passes this many bytes starts a new segment (32 MiB: about 700,000
/// one-coin writes). A checkpoint follows each segment, writing every page written
/// since the last one in place, once: the longer the interval, the more writes of a
/// page share that write. With 4 MiB (a checkpoint a second under a pown load) the
/// in-place writes' writeback slowed the log's own syncs: 90.6k durable powns a
/// second over 20 s against 105k with 32 MiB (`bench/RESULTS.md`). Recovery replays
/// at most a segment or two.
pub const DEFAULT_SEGMENT_BYTES: u64 = 32 << 20;

/// What the log knows of one segment.
#[derive(Debug)]
struct SegmentState {
    /// The pages its entries write.
    pages: BTreeSet<PageId>,
    /// Its entries that are durable but not yet applied in place.
    unapplied: u64,
}

/// A failed batch whose writers have not all heard of it yet.
#[derive(Debug)]
struct Failure {
    lo: u64,
    hi: u64,
    kind: io::ErrorKind,
    message: String,
    waiting: u64,
}

#[derive(Debug)]
struct State {
    next_seq: u64,
    /// Encoded entries waiting for a leader.
    pending: Vec<u8>,
    pending_pages: BTreeSet<PageId>,
    pending_entries: u64,
    /// The pending entries' sequence numbers and writes, in sequence order.
    pending_writes: Vec<(u64, Vec<(PageId, RecordWrite)>)>,
    /// Durable entries not yet applied in place, in sequence order.
    durable: Vec<DurableEntry>,
    /// Every entry below this sequence number is durable.
    durable_below: u64,
    syncing: bool,
    /// The batch that pending entries go into (batches are numbered as leaders take
    /// them): its writers wait on `resolved[batch % 2]`.
    batch: u64,
    /// Writers waiting on `resolved[0]` and `resolved[1]`.
    waiting: [u32; 2],
    /// Every entry below this sequence number has its answer.
    resolved_below: u64,
    /// Every entry below this sequence number was taken by a leader (written, being
    /// written, or failed); the ones from here on are still pending.
    taken_below: u64,
    failures: Vec<Failure>,
    active: Segment,
    active_len: u64,
    /// The active segment was prepared (zero-filled) ahead: not the one a start
    /// creates, which a leader leaves for the first spare.
    active_prepared: bool,
    segments: BTreeMap<Segment, SegmentState>,
    /// The segment after `active`, created and filled with zeros ahead of time
    /// ([`Log::prepare_spare`]), for the next rotation to switch to. One is enough: a
    /// segment lasts seconds under the heaviest load, and a checkpoint looks at the
    /// spare every few hundred pages it writes.
    spare: Option<Segment>,
    /// The segment the background step is preparing now (the one after `active`).
    preparing: Option<Segment>,
    /// A leader with no spare is creating the segment after `active` now.
    leader_creating: bool,
    /// Something was appended since the start: only then is a spare prepared.
    written: bool,
}

impl State {
    /// `segment` (created, empty) is the active segment from now on.
    fn switch_to(&mut self, segment: Segment, prepared: bool) {
        self.segments.insert(
            segment,
            SegmentState {
                pages: BTreeSet::new(),
                unapplied: 0,
            },
        );
        self.active = segment;
        self.active_len = 0;
        self.active_prepared = prepared;
    }

    fn take_failure(&mut self, seq: u64) -> Option<io::Error> {
        let i = self
            .failures
            .iter()
            .position(|f| f.lo <= seq && seq < f.hi)?;
        let f = &mut self.failures[i];
        let err = io::Error::new(f.kind, f.message.clone());
        f.waiting = f.waiting.saturating_sub(1);
        if f.waiting == 0 {
            self.failures.remove(i);
        }
        Some(err)
    }
}

/// A durable entry for the store to apply in place, then report with
/// [`Log::applied`].
#[derive(Debug)]
pub(crate) struct DurableEntry {
    pub(crate) seq: u64,
    pub(crate) segment: Segment,
    pub(crate) writes: Vec<(PageId, RecordWrite)>,
}

/// Counters the log keeps.
#[derive(Debug, Default)]
pub(crate) struct LogCounters {
    pub syncs: AtomicU64,
    pub write_errors: AtomicU64,
    /// Entries made durable.
    pub entries: AtomicU64,
}

#[derive(Debug)]
pub(crate) struct Log {
    state: Mutex<State>,
    /// Writers of even and of odd batches wait apart: a leader wakes the writers of its
    /// own batch and one writer of the next (to lead it), not every writer there is.
    resolved: [Condvar; 2],
    segment_bytes: u64,
    failed: AtomicBool,
    /// A sync (or append) failed: memory holds writes that will never be durable, so
    /// the store answers no read from it either.
    sync_failed: AtomicBool,
    /// `State::durable_below`, readable without the mutex (every answer asks).
    durable_below: AtomicU64,
    pub(crate) counters: LogCounters,
}

impl Log {
    /// A log writing segment `active` (created and empty), starting at `next_seq`.
    pub(crate) fn new(active: Segment, next_seq: u64, segment_bytes: u64) -> Log {
        let mut segments = BTreeMap::new();
        segments.insert(
            active,
            SegmentState {
                pages: BTreeSet::new(),
                unapplied: 0,
            },
        );
        Log {
            state: Mutex::new(State {
                next_seq,
                pending: Vec::new(),
                pending_pages: BTreeSet::new(),
                pending_entries: 0,
                pending_writes: Vec::new(),
                durable: Vec::new(),
                durable_below: next_seq,
                syncing: false,
                batch: 0,
                waiting: [0, 0],
                resolved_below: next_seq,
                taken_below: next_seq,
                failures: Vec::new(),
                active,
                active_len: 0,
                active_prepared: false,
                segments,
                spare: None,
                preparing: None,
                leader_creating: false,
                written: false,
            }),
            resolved: [Condvar::new(), Condvar::new()],
            segment_bytes: segment_bytes.max(1),
            failed: AtomicBool::new(false),
            sync_failed: AtomicBool::new(false),
            durable_below: AtomicU64::new(next_seq),
            counters: LogCounters::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is changed only in short, panic-free sections.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the log failed (every later write is refused until a restart).
    pub(crate) fn is_failed(&self) -> bool {
        self.failed.load(Ordering::SeqCst)
    }

    /// Whether a sync (or append) failed: memory is ahead of what will ever be
    /// durable in this process.
    pub(crate) fn sync_failed(&self) -> bool {
        self.sync_failed.load(Ordering::SeqCst)
    }

    /// Fails the log: an in-place write failed after its entry was durable, so the
    /// segment must stay until a restart replays it.
    pub(crate) fn fail(&self) {
        self.failed.store(true, Ordering::SeqCst);
    }

    /// Appends one entry of `writes` (not yet durable) and returns its sequence
    /// number; the caller has applied it in memory.
    pub(crate) fn append(&self, writes: &[(PageId, RecordWrite)]) -> Result<u64, StoreError> {
        let mut st = self.lock();
        if self.is_failed() {
            return Err(StoreError::Failed);
        }
        let seq = st.next_seq;
        st.next_seq += 1;
        st.written = true;
        entry::encode(seq, writes, &mut st.pending);
        st.pending_pages.extend(writes.iter().map(|(p, _)| *p));
        st.pending_entries += 1;
        st.pending_writes.push((seq, writes.to_vec()));
        Ok(seq)
    }

    /// Where the log stands: every entry below `durable_below` is durable; `failed`
    /// when a sync failed (nothing at or past it will be, in this process).
    pub(crate) fn commit_point(&self) -> raida_core::keys::CommitPoint {
        // Failed first: a failure never makes more durable.
        let failed = self.is_failed();
        raida_core::keys::CommitPoint {
            durable_below: self.durable_below.load(Ordering::SeqCst),
            failed,
        }
    }

    /// The newest entry appended and not yet durable, if any.
    pub(crate) fn newest_pending(&self) -> Option<u64> {
        let st = self.lock();
        (st.next_seq > st.durable_below).then(|| st.next_seq - 1)
    }

    /// Blocks until entry `seq` is durable (leading a sync when none runs), or fails.
    pub(crate) fn wait<D: Disk>(&self, disk: &D, seq: u64) -> Result<(), StoreError> {
        let mut st = self.lock();
        loop {
            if seq < st.durable_below {
                return Ok(());
            }
            if seq < st.resolved_below {
                // Its batch was resolved without becoming durable: it failed.
                return Err(match st.take_failure(seq) {
                    Some(e) => StoreError::Write(e),
                    None => StoreError::Failed,
                });
            }
            // Failed meanwhile: an entry no leader took is never written; one being
            // written waits for its leader's answer.
            if self.is_failed() && seq >= st.taken_below {
                return Err(StoreError::Failed);
            }
            if st.syncing {
                // Which batch the entry is in: the one being synced (its leader took
                // it, and wakes that batch's waiters) or the next (whose first waiter
                // the leader wakes to lead it).
                let batch = if seq < st.taken_below {
                    st.batch.wrapping_sub(1)
                } else {
                    st.batch
                };
                let parity = (batch % 2) as usize;
                st.waiting[parity] += 1;
                st = self.resolved[parity]
                    .wait(st)
                    .unwrap_or_else(PoisonError::into_inner);
                st.waiting[parity] -= 1;
            } else {
                st = self.lead(st, disk);
            }
        }
    }

    /// Whether a sync is running now.
    #[cfg(raida_mutants)]
    pub(crate) fn is_syncing(&self) -> bool {
        self.lock().syncing
    }

    /// The durable entries not yet applied in place, in sequence order (each with its
    /// segment, to report with [`applied`](Self::applied)).
    pub(crate) fn take_durable(&self) -> Vec<DurableEntry> {
        std::mem::take(&mut self.lock().durable)
    }

    /// Writes and syncs everything pending (a leader's turn), if anything is and no
    /// sync runs: a step the server's background thread (or the simulator) may call.
    pub(crate) fn flush<D: Disk>(&self, disk: &D) {
        let st = self.lock();
        if !st.syncing && !st.pending.is_empty() && !self.is_failed() {
            drop(self.lead(st, disk));
        }
    }

    /// One leader's turn: takes the batch, writes and syncs it without the mutex,
    /// records the outcome and wakes every writer.
    fn lead<'a, D: Disk>(
        &'a self,
        mut st: MutexGuard<'a, State>,
        disk: &D,
    ) -> MutexGuard<'a, State> {
        st.syncing = true;
        let number = st.batch;
        st.batch += 1;
        let batch = std::mem::take(&mut st.pending);
        let pages = std::mem::take(&mut st.pending_pages);
        let entries = std::mem::take(&mut st.pending_entries);
        let writes = std::mem::take(&mut st.pending_writes);
        let first = st.taken_below;
        let end = st.next_seq;
        st.taken_below = end;
        let mut segment = st.active;
        let mut offset = st.active_len;
        // A full segment rolls over to the first spare prepared for it; without one
        // (the background step has not run), to a segment created now, unless the
        // background step is creating it, and then the segment grows until it is there.
        // A segment a start created (empty, not prepared) is left for the first spare
        // as soon as there is one.
        let full = offset >= self.segment_bytes || (!st.active_prepared && offset > 0);
        let rotate = if !full {
            Rotate::No
        } else if let Some(spare) = st.spare.take() {
            Rotate::ToSpare(spare)
        } else if st.preparing.is_some() || offset < self.segment_bytes {
            Rotate::No
        } else {
            st.leader_creating = true;
            Rotate::ToNew(segment + 1)
        };
        // A spare exists already: it is the active segment from here on, so that the
        // background step, looking meanwhile, prepares the one after it.
        if let Rotate::ToSpare(spare) = rotate {
            st.switch_to(spare, true);
        }
        drop(st);

        // Only the leader writes the log, so the segment is its own while it leads.
        let mut rotated = false;
        match rotate {
            Rotate::No => {}
            Rotate::ToSpare(spare) => {
                segment = spare;
                offset = 0;
                rotated = true;
            }
            Rotate::ToNew(next) => match disk.log_create(next) {
                Ok(()) => {
                    segment = next;
                    offset = 0;
                    rotated = true;
                }
                Err(e) => tracing::warn!(
                    "raida-store: cannot start log segment {next}: {e}; segment {segment} grows"
                ),
            },
        }
        let result = disk
            .log_append(segment, offset, &batch)
            .and_then(|()| disk.log_sync(segment));

        let mut st = self.lock();
        if let Rotate::ToNew(_) = rotate {
            st.leader_creating = false;
            if rotated {
                st.switch_to(segment, false);
            }
        }
        match result {
            Ok(()) => {
                self.counters.syncs.fetch_add(1, Ordering::Relaxed);
                st.active_len = offset + batch.len() as u64;
                if let Some(s) = st.segments.get_mut(&segment) {
                    s.pages.extend(pages);
                    s.unapplied += entries;
                }
                st.resolved_below = end;
                st.durable_below = end;
                self.durable_below.store(end, Ordering::SeqCst);
                self.counters.entries.fetch_add(entries, Ordering::Relaxed);
                st.durable
                    .extend(writes.into_iter().map(|(seq, writes)| DurableEntry {
                        seq,
                        segment,
                        writes,
                    }));
            }
            Err(e) => {
                self.counters.write_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    "raida-store: log write failed: {e}; {} write(s) refused",
                    end - first
                );
                st.failures.push(Failure {
                    lo: first,
                    hi: end,
                    kind: e.kind(),
                    message: e.to_string(),
                    waiting: end - first,
                });
                st.resolved_below = end;
                // The store applied the batch in memory already: fail-stop.
                self.sync_failed.store(true, Ordering::SeqCst);
                self.fail();
                // Cut the batch off again so that a restart does not replay what
                // nobody was told is durable.
                let undo = disk
                    .log_truncate(segment, offset)
                    .and_then(|()| disk.log_sync(segment));
                if let Err(undo) = undo {
                    tracing::error!(
                        "raida-store: cannot cut log segment {segment} back after a failed \
                         write: {undo}; a restart may replay writes that were answered 252"
                    );
                }
                tracing::error!(
                    "raida-store: the store takes no more writes until a restart recovers \
                     it from its log"
                );
            }
        }
        st.syncing = false;
        let (own, next) = ((number % 2) as usize, ((number + 1) % 2) as usize);
        if st.waiting[own] > 0 {
            self.resolved[own].notify_all();
        }
        if !st.pending.is_empty() && st.waiting[next] > 0 {
            // Someone of the next batch leads it.
            self.resolved[next].notify_one();
        }
        st
    }

    /// Creates the segment after the active one and fills it with zeros, if no spare is
    /// ready and nobody creates one: the
    /// background step's share of the log, so that a rotation only switches files and
    /// every append overwrites preallocated bytes (see [`Disk::log_prepare`]). A
    /// failure leaves no spare; the next call tries again, and a leader that needs a
    /// segment meanwhile creates an empty one.
    pub(crate) fn prepare_spare<D: Disk>(&self, disk: &D) {
        let next = {
            let mut st = self.lock();
            // A log nobody writes prepares nothing: an idle server (or one of a
            // test's many) writes no zeros.
            if self.is_failed()
                || st.spare.is_some()
                || st.preparing.is_some()
                || st.leader_creating
                || !st.written
            {
                return;
            }
            let next = st.active + 1;
            st.preparing = Some(next);
            next
        };
        let result = disk.log_prepare(next, self.segment_bytes);
        let mut st = self.lock();
        st.preparing = None;
        match result {
            // Still the one after the active segment: with no spare, a leader meanwhile
            // grew its segment, never creating one while this was being prepared.
            Ok(()) => st.spare = Some(next),
            Err(e) => tracing::warn!(
                "raida-store: cannot prepare log segment {next}: {e}; writes append to \
                 segment {} meanwhile",
                st.active
            ),
        }
    }

    /// A durable entry of `segment` was applied in place.
    pub(crate) fn applied(&self, segment: Segment) {
        let mut st = self.lock();
        if let Some(s) = st.segments.get_mut(&segment) {
            s.unapplied = s.unapplied.saturating_sub(1);
        }
    }

    /// The oldest segment, if it may go now: not the one being written, every write
    /// of it applied in place. The caller syncs its pages, removes it, and reports
    /// [`checkpointed`](Self::checkpointed).
    pub(crate) fn checkpoint_candidate(&self) -> Option<(Segment, Vec<PageId>)> {
        if self.is_failed() {
            return None;
        }
        let st = self.lock();
        let (&oldest, state) = st.segments.iter().next()?;
        if oldest == st.active || state.unapplied > 0 {
            return None;
        }
        Some((oldest, state.pages.iter().copied().collect()))
    }

    /// Segment `segment` was removed.
    pub(crate) fn checkpointed(&self, segment: Segment) {
        self.lock().segments.remove(&segment);
    }

    /// Segments the log holds now (the one being written included).
    pub(crate) fn segments(&self) -> usize {
        self.lock().segments.len()
    }

    /// Writers blocked in [`wait`](Self::wait) until a sync covers their entry.
    pub(crate) fn writers_waiting(&self) -> u32 {
        let st = self.lock();
        st.waiting[0] + st.waiting[1]
    }
}

/// The length of `bytes` without its tail of zeros: what a segment holds, prepared
/// or not.
fn data_len(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .rposition(|&b| b != 0)
        .map_or(0, |last| last + 1)
}

/// Where a leader's batch goes.
#[derive(Clone, Copy)]
enum Rotate {
    /// The active segment.
    No,
    /// The spare segment, prepared ahead.
    ToSpare(Segment),
    /// A segment the leader creates (empty) now.
    ToNew(Segment),
}

/// What recovery found and did at open.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Recovery {
    /// Segments read.
    pub segments: usize,
    /// Entries replayed (their CRC checked).
    pub entries: u64,
    /// Records written in place.
    pub records: u64,
    /// Records of pages whose file is missing or short (not written).
    pub skipped: u64,
    /// Bytes dropped: a torn tail entry and everything after it (a prepared
    /// segment's zeros after its last entry are its end, not counted).
    pub dropped_bytes: u64,
}

/// Replays every segment into the page files (after syncing the segment, so that
/// what is replayed stays replayable), syncs them, removes the segments, and creates a
/// fresh one (empty: the first writes go to it until a spare is prepared, see
/// [`Log::prepare_spare`]). Returns what it did, the segment to write next and the
/// next sequence number. Idempotent: a crash anywhere in it, then recovery again,
/// gives the same pages.
pub(crate) fn recover<D: Disk>(disk: &D) -> io::Result<(Recovery, Segment, u64)> {
    let segments = disk.log_segments()?;
    let mut report = Recovery {
        segments: segments.len(),
        ..Recovery::default()
    };
    // The last write of each record wins: one write per record, one pass per page.
    let mut pages: BTreeMap<PageId, BTreeMap<u16, RecordWrite>> = BTreeMap::new();
    let mut last_seq = None;
    let mut torn = false;
    for &segment in &segments {
        let bytes = disk.log_read(segment)?;
        // What is replayed must be durable before it is written in place: a segment's
        // bytes may include a tail that was never synced (a batch whose sync failed and
        // whose undo failed too, then a restart without a power loss). Replayed from
        // there, a power loss during this recovery could keep some of its in-place
        // records and cut the tail, and the next recovery would drop the entry: a write
        // half applied. Synced first, the next recovery replays the same entries.
        disk.log_sync(segment)?;
        if torn {
            report.dropped_bytes += data_len(&bytes) as u64;
            continue;
        }
        let decoded = entry::decode(&bytes, last_seq);
        for e in &decoded.entries {
            report.entries += 1;
            last_seq = Some(e.seq);
            for (page, write) in &e.writes {
                pages.entry(*page).or_default().insert(write.index, *write);
            }
        }
        // A segment prepared ahead ends in zeros after its last entry: the log's end,
        // not a tear (a torn entry leaves non-zero bytes behind its start).
        let dropped = data_len(&bytes).saturating_sub(decoded.valid);
        if let Some(stop) = decoded.stop.filter(|_| dropped > 0) {
            torn = true;
            report.dropped_bytes += dropped as u64;
            tracing::warn!(
                "raida-store: log segment {segment}: {dropped} byte(s) from offset {} dropped \
                 ({stop:?}): a write that was never acknowledged",
                decoded.valid
            );
        }
    }
    for (page, writes) in &pages {
        let writes: Vec<RecordWrite> = writes.values().copied().collect();
        match disk.write_records(*page, &writes)? {
            Written::Done { .. } => report.records += writes.len() as u64,
            Written::NotAPage => {
                report.skipped += writes.len() as u64;
                tracing::warn!(
                    "raida-store: recovery: page {page:?} is missing or short; {} logged \
                     record(s) not written",
                    writes.len()
                );
            }
        }
    }
    for page in pages.keys() {
        disk.sync_page(*page)?;
    }
    for &segment in &segments {
        disk.log_remove(segment)?;
    }
    let next_segment = segments.last().map_or(1, |s| s + 1);
    disk.log_create(next_segment)?;
    let next_seq = last_seq.map_or(1, |s| s + 1);
    if report.entries > 0 || report.dropped_bytes > 0 {
        tracing::info!(
            "raida-store: recovery replayed {} entr(ies), {} record(s) from {} segment(s)",
            report.entries,
            report.records,
            report.segments
        );
    }
    Ok((report, next_segment, next_seq))
}
