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
    /// Connections that found no room, oldest first, with what they need.
    waiters: VecDeque<Waiter>,
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
        self.waiters.push_back(Waiter {
            id,
            need: self.need(declared, held),
            ceiling: self.ceiling(declared),
        });
    }

    /// Wakes, oldest first, every waiter whose need fits the room left within its own
    /// ceiling once the room claimed for those woken before it is set aside, claiming
    /// its need for it; the others keep their place. So no waiter sleeps while there
    /// is room for it (a large body does not hold back a small one behind it when the
    /// room is the reserve, nor a chunk-sized need one whose rest is smaller).
    ///
    /// Every waiter is looked at (the queue holds each waiting connection once, plus
    /// entries of connections gone since, dropped here): the cost is one pass over
    /// the waiters per release while any wait.
    pub(crate) fn wake(&mut self, mut visit: impl FnMut(ConnId, Visit) -> bool) {
        let (limit, used) = (self.limit, self.used);
        let mut claimed = self.claimed;
        self.waiters.retain(|w| {
            if !visit(w.id, Visit::StillWaiting) {
                return false;
            }
            if used + claimed >= limit || w.ceiling.saturating_sub(used + claimed) < w.need {
                return true;
            }
            visit(w.id, Visit::Wake(w.need));
            claimed += w.need;
            false
        });
        self.claimed = claimed;
    }

    /// Connections waiting for room.
    pub(crate) fn waiting(&self) -> usize {
        self.waiters.len()
    }
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
    fn entries_of_connections_gone_are_dropped_at_the_next_wake() {
        let mut b = Budget::new(10, 0, 0, 10);
        assert_eq!(b.grow(10, 0, 0), Some(10));
        b.wait(id(1), 10, 0);
        b.wait(id(2), 10, 0);
        b.wake(|id, _| id.index != 1);
        assert_eq!(b.waiting(), 1);
    }
}
