//! The budget for buffered request bytes (`max_buffered_bytes`): bodies grow as their
//! bytes arrive instead of being allocated at their declared size, every byte of a
//! body being read counts against one total, and a connection that finds the budget
//! spent stops reading (the kernel's buffers and TCP flow control hold the rest) until
//! room frees, when it is woken.
//!
//! Small requests get through while large stalled bodies hold the budget: the last
//! `small_reserve` bytes of it only go to bodies of at most `small_body` bytes (echo,
//! version, detect of a few coins), so a flood of large half-sent bodies cannot starve
//! them.

use std::collections::VecDeque;

use super::ConnId;

#[derive(Debug)]
pub(crate) struct Budget {
    limit: usize,
    reserve: usize,
    small_body: usize,
    chunk: usize,
    used: usize,
    /// Room promised to connections woken but not yet back for it: a woken connection
    /// finds its room still there, and one that closes instead passes it on.
    claimed: usize,
    /// Connections that found no room, oldest first, with what they need; plus
    /// entries of connections that left their wait since (closed), dropped at the
    /// next pass over the queue.
    waiters: VecDeque<Waiter>,
    /// Connections in `waiters` still waiting (the other entries are stale).
    live: usize,
    /// For small bodies (0) and large ones (1), at most the least need of any entry
    /// in `waiters` of that kind (`usize::MAX` when there is none): a release that
    /// leaves less room than this for both kinds can wake nobody, and skips the pass.
    least_need: [usize; 2],
}

/// A connection waiting for room: the least its next read needs and what it may hold.
#[derive(Clone, Copy, Debug)]
struct Waiter {
    id: ConnId,
    need: usize,
    ceiling: usize,
}

/// What [`Budget::wake`] asks of the engine about one waiter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Visit {
    /// Is it still waiting (alive, in the same wait)? Stale entries are dropped.
    StillWaiting,
    /// Wake it: this much room is claimed for it.
    Wake(usize),
}

impl Budget {
    pub(crate) fn new(limit: usize, reserve: usize, small_body: usize, chunk: usize) -> Budget {
        Budget {
            limit,
            reserve: reserve.min(limit),
            small_body,
            chunk: chunk.max(1),
            used: 0,
            claimed: 0,
            waiters: VecDeque::new(),
            live: 0,
            least_need: [usize::MAX; 2],
        }
    }

    /// What a body of `declared` bytes may hold at most: all of the budget for a small
    /// body, all but the reserve for a larger one.
    fn ceiling(&self, declared: usize) -> usize {
        if declared <= self.small_body {
            self.limit
        } else {
            self.limit - self.reserve
        }
    }

    /// The least a body of `declared` bytes that holds `held` must grow by to read on:
    /// a chunk, or the rest of it if smaller.
    fn need(&self, declared: usize, held: usize) -> usize {
        self.chunk.min(declared.saturating_sub(held))
    }

    /// Whether a body of `declared` bytes could ever fit (else it is answered 16 before
    /// anything is allocated).
    pub(crate) fn could_fit(&self, declared: usize) -> bool {
        declared <= self.ceiling(declared)
    }

    /// How many more bytes a body of `declared` bytes that holds `held` now should
    /// grow by: a chunk, or as much as it holds already (doubling, so a body is copied
    /// a few times at most), never past its end. `None` when the budget has no room
    /// for them now. `claim` is the room claimed for this connection when it was woken
    /// (0 if it was not): it is spent here either way.
    pub(crate) fn grow(&mut self, declared: usize, held: usize, claim: usize) -> Option<usize> {
        self.claimed = self.claimed.saturating_sub(claim);
        let want = self.chunk.max(held).min(declared.saturating_sub(held));
        if want == 0 {
            return None;
        }
        // Take what there is room for (at least one chunk, or the rest if smaller),
        // leaving what is claimed for others.
        let room = self
            .ceiling(declared)
            .saturating_sub(self.used + self.claimed);
        let take = want.min(room);
        if take < self.need(declared, held) {
            return None;
        }
        self.used += take;
        Some(take)
    }

    /// `n` bytes of bodies were freed (a body completed, or its connection closed),
    /// and `claim` of room claimed for a connection that will not use it (it closed):
    /// call [`wake`](Self::wake) next.
    pub(crate) fn release(&mut self, n: usize, claim: usize) {
        self.used = self.used.saturating_sub(n);
        self.claimed = self.claimed.saturating_sub(claim);
    }

    /// Bytes held by bodies being read now.
    pub(crate) fn used(&self) -> usize {
        self.used
    }

    /// `id`, a body of `declared` bytes holding `held`, found no room (once per wait).
    pub(crate) fn wait(&mut self, id: ConnId, declared: usize, held: usize) {
        let w = Waiter {
            id,
            need: self.need(declared, held),
            ceiling: self.ceiling(declared),
        };
        let kind = kind(self.limit, w.ceiling);
        self.least_need[kind] = self.least_need[kind].min(w.need);
        self.live += 1;
        self.waiters.push_back(w);
    }

    /// A connection in the queue left its wait without being woken (it closed): its
    /// entry is stale from now on.
    pub(crate) fn left(&mut self) {
        self.live = self.live.saturating_sub(1);
    }

    /// Wakes, oldest first, every waiter whose need fits the room left within its own
    /// ceiling once the room claimed for those woken before it is set aside, claiming
    /// its need for it; the others keep their place. So no waiter sleeps while there
    /// is room for it (a large body does not hold back a small one behind it when the
    /// room is the reserve, nor a chunk-sized need one whose rest is smaller).
    ///
    /// A pass looks at every entry (each waiting connection once, plus entries of
    /// connections gone since, dropped here), so it is skipped when it could wake
    /// nobody: when the room left is below the least need of both kinds of waiter.
    /// That is the common case under a flood of stalled large bodies, where every
    /// small request's release would otherwise cost a pass over thousands of them.
    /// A pass still runs when more than half the entries are stale, so the queue
    /// stays within twice the waiting connections and its cleaning costs O(1) per
    /// connection gone.
    pub(crate) fn wake(&mut self, mut visit: impl FnMut(ConnId, Visit) -> bool) {
        if self.live == 0 {
            self.waiters.clear();
            self.least_need = [usize::MAX; 2];
            return;
        }
        let (limit, used) = (self.limit, self.used);
        let busy = used + self.claimed;
        let room = [
            limit.saturating_sub(busy),
            (limit - self.reserve).saturating_sub(busy),
        ];
        let stale = self.waiters.len().saturating_sub(self.live);
        if room[0] < self.least_need[0] && room[1] < self.least_need[1] && stale <= self.live {
            return;
        }
        let mut claimed = self.claimed;
        let mut least_need = [usize::MAX; 2];
        self.waiters.retain(|w| {
            if !visit(w.id, Visit::StillWaiting) {
                return false;
            }
            if used + claimed >= limit || w.ceiling.saturating_sub(used + claimed) < w.need {
                let k = kind(limit, w.ceiling);
                least_need[k] = least_need[k].min(w.need);
                return true;
            }
            visit(w.id, Visit::Wake(w.need));
            claimed += w.need;
            false
        });
        self.claimed = claimed;
        // Every entry kept was looked at and is still waiting.
        self.live = self.waiters.len();
        self.least_need = least_need;
    }

    /// Connections waiting for room.
    pub(crate) fn waiting(&self) -> usize {
        self.live
    }
}

/// Which of `Budget::least_need`'s kinds a waiter of this ceiling is: 0 for a
/// small body (all of the budget), 1 for a large one.
fn kind(limit: usize, ceiling: usize) -> usize {
    usize::from(ceiling != limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_bodies_leave_the_reserve_to_small_ones() {
        // 100 bytes, the last 20 for bodies of at most 10 bytes, chunks of 10.
        let mut b = Budget::new(100, 20, 10, 10);
        assert!(b.could_fit(80) && !b.could_fit(81) && b.could_fit(10));
        // Large bodies take 80 and no more.
        assert_eq!(b.grow(80, 0, 0), Some(10));
        assert_eq!(b.grow(80, 10, 0), Some(10));
        assert_eq!(b.grow(80, 20, 0), Some(20));
        assert_eq!(b.grow(80, 40, 0), Some(40));
        assert_eq!(b.used(), 80);
        assert_eq!(b.grow(50, 0, 0), None, "a large body finds no room");
        // A small one still does.
        assert_eq!(b.grow(10, 0, 0), Some(10));
        assert_eq!(b.grow(10, 0, 0), Some(10));
        assert_eq!(b.grow(10, 0, 0), None, "the whole budget is spent");
        b.release(40, 0);
        assert_eq!(b.grow(50, 0, 0), Some(10));
    }

    #[test]
    fn growth_doubles_and_stops_at_the_declared_end() {
        let mut b = Budget::new(1 << 20, 0, 0, 4096);
        let mut held = 0;
        let mut steps = Vec::new();
        while let Some(n) = b.grow(65_000, held, 0) {
            held += n;
            steps.push(n);
        }
        assert_eq!(held, 65_000);
        assert_eq!(steps, [4096, 4096, 8192, 16384, 32232]);
    }

    fn id(index: u32) -> ConnId {
        ConnId {
            index,
            generation: 0,
        }
    }

    /// Wakes through a budget as the engine does: every entry is still waiting; the
    /// woken ones are returned with their claims.
    fn wake(b: &mut Budget) -> Vec<(u32, usize)> {
        let mut woken = Vec::new();
        b.wake(|id, visit| {
            if let Visit::Wake(claim) = visit {
                woken.push((id.index, claim));
            }
            true
        });
        woken
    }

    #[test]
    fn a_waiter_is_woken_for_less_than_a_chunk_when_that_is_all_it_needs() {
        // The simulator's seed 1694: the budget (100) is smaller than a chunk (152), and
        // a body of 60 needs only 60.
        let mut b = Budget::new(100, 0, 0, 152);
        assert_eq!(b.grow(100, 0, 0), Some(100));
        assert_eq!(b.grow(60, 0, 0), None);
        b.wait(id(1), 60, 0);
        b.release(100, 0);
        assert_eq!(wake(&mut b), [(1, 60)]);
        assert_eq!(b.grow(60, 0, 60), Some(60));
    }

    #[test]
    fn room_claimed_for_a_woken_waiter_that_closes_goes_to_the_next() {
        // The simulator's seed 2078: the woken one closes without reading.
        let mut b = Budget::new(100, 0, 0, 100);
        assert_eq!(b.grow(100, 0, 0), Some(100));
        b.wait(id(1), 100, 0);
        b.wait(id(2), 100, 0);
        b.release(100, 0);
        assert_eq!(wake(&mut b), [(1, 100)], "one chunk of room, one woken");
        // A newcomer cannot take the room claimed for the woken one.
        assert_eq!(b.grow(100, 0, 0), None);
        // The woken one closes holding nothing: its claim passes on.
        b.release(0, 100);
        assert_eq!(wake(&mut b), [(2, 100)]);
    }

    #[test]
    fn a_small_body_behind_a_large_one_is_woken_when_only_the_reserve_is_free() {
        // 100 bytes, the last 20 for bodies of at most 10 bytes, chunks of 10.
        let mut b = Budget::new(100, 20, 10, 10);
        assert_eq!(b.grow(80, 0, 0), Some(10));
        assert_eq!(b.grow(80, 10, 0), Some(10));
        assert_eq!(b.grow(80, 20, 0), Some(20));
        assert_eq!(b.grow(80, 40, 0), Some(40));
        assert_eq!(b.grow(10, 0, 0), Some(10));
        assert_eq!(b.grow(10, 0, 0), Some(10));
        b.wait(id(1), 50, 0);
        b.wait(id(2), 10, 0);
        // A small body completes: 10 bytes free, in the reserve.
        b.release(10, 0);
        assert_eq!(
            wake(&mut b),
            [(2, 10)],
            "the large one cannot use the reserve"
        );
        assert_eq!(b.waiting(), 1, "the large one keeps its place");
        // Large bodies complete: now there is room for it too.
        b.release(80, 0);
        assert_eq!(wake(&mut b), [(1, 10)]);
    }

    #[test]
    fn entries_of_connections_gone_are_dropped_once_they_are_half_the_queue() {
        let mut b = Budget::new(10, 0, 0, 10);
        assert_eq!(b.grow(10, 0, 0), Some(10));
        for i in 1..=3 {
            b.wait(id(i), 10, 0);
        }
        let gone = |id: ConnId, _| id.index == 3;
        // One gone of three: no room, and the stale entry may wait for a later pass.
        b.left();
        b.wake(gone);
        assert_eq!((b.waiting(), b.waiters.len()), (2, 3));
        // Two of three: the pass runs and drops both.
        b.left();
        b.wake(gone);
        assert_eq!((b.waiting(), b.waiters.len()), (1, 1));
    }

    #[test]
    fn a_release_that_can_wake_nobody_looks_at_no_waiter() {
        // A flood of stalled large bodies holds all but the reserve; small requests come
        // and go through the reserve. Their releases must not cost a pass over the flood
        // (found by scripts/endurance/budget.sh: 60% of the loop in this pass).
        let mut b = Budget::new(100, 20, 10, 10);
        for held in [0, 10, 20, 40] {
            assert!(b.grow(80, held, 0).is_some());
        }
        for i in 0..1000 {
            b.wait(id(i), 80, 0);
        }
        let mut visits = 0;
        for _ in 0..100 {
            assert_eq!(b.grow(10, 0, 0), Some(10), "a small body gets the reserve");
            b.release(10, 0);
            b.wake(|_, _| {
                visits += 1;
                true
            });
        }
        assert_eq!(visits, 0);
        assert_eq!(b.waiting(), 1000);
        // Room for the large ones: the oldest is woken.
        b.release(10, 0);
        assert_eq!(wake(&mut b), [(0, 10)]);
        assert_eq!(b.waiting(), 999);
    }
}
