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
    /// Connections that found the budget spent, oldest first (woken as room frees).
    waiters: VecDeque<ConnId>,
}

impl Budget {
    pub(crate) fn new(limit: usize, reserve: usize, small_body: usize, chunk: usize) -> Budget {
        Budget {
            limit,
            reserve: reserve.min(limit),
            small_body,
            chunk: chunk.max(1),
            used: 0,
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

    /// Whether a body of `declared` bytes could ever fit (else it is answered 16 before
    /// anything is allocated).
    pub(crate) fn could_fit(&self, declared: usize) -> bool {
        declared <= self.ceiling(declared)
    }

    /// How many more bytes a body of `declared` bytes that holds `held` now should
    /// grow by: a chunk, or as much as it holds already (doubling, so a body is copied
    /// a few times at most), never past its end. `None` when the budget has no room
    /// for them now.
    pub(crate) fn grow(&mut self, declared: usize, held: usize) -> Option<usize> {
        let want = self.chunk.max(held).min(declared.saturating_sub(held));
        if want == 0 {
            return None;
        }
        // Take what there is room for (at least one chunk, or the rest if smaller).
        let room = self.ceiling(declared).saturating_sub(self.used);
        let take = want.min(room);
        if take < want.min(self.chunk) {
            return None;
        }
        self.used += take;
        Some(take)
    }

    /// `n` bytes of bodies were freed (a body completed, or its connection closed).
    pub(crate) fn release(&mut self, n: usize) {
        self.used = self.used.saturating_sub(n);
    }

    /// Bytes held by bodies being read now.
    pub(crate) fn used(&self) -> usize {
        self.used
    }

    /// `id` found the budget spent (once per wait).
    pub(crate) fn wait(&mut self, id: ConnId) {
        self.waiters.push_back(id);
    }

    /// The connections to wake now that room freed: as many as a chunk each fits,
    /// oldest first (a woken one that still finds no room waits again).
    pub(crate) fn wake(&mut self, mut woken: impl FnMut(ConnId) -> bool) {
        let mut room = self.limit.saturating_sub(self.used);
        while room >= self.chunk {
            let Some(id) = self.waiters.pop_front() else {
                return;
            };
            if woken(id) {
                room -= self.chunk;
            }
        }
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
        assert_eq!(b.grow(80, 0), Some(10));
        assert_eq!(b.grow(80, 10), Some(10));
        assert_eq!(b.grow(80, 20), Some(20));
        assert_eq!(b.grow(80, 40), Some(40));
        assert_eq!(b.used(), 80);
        assert_eq!(b.grow(50, 0), None, "a large body finds no room");
        // A small one still does.
        assert_eq!(b.grow(10, 0), Some(10));
        assert_eq!(b.grow(10, 0), Some(10));
        assert_eq!(b.grow(10, 0), None, "the whole budget is spent");
        b.release(40);
        assert_eq!(b.grow(50, 0), Some(10));
    }

    #[test]
    fn growth_doubles_and_stops_at_the_declared_end() {
        let mut b = Budget::new(1 << 20, 0, 0, 4096);
        let mut held = 0;
        let mut steps = Vec::new();
        while let Some(n) = b.grow(65_000, held) {
            held += n;
            steps.push(n);
        }
        assert_eq!(held, 65_000);
        assert_eq!(steps, [4096, 4096, 8192, 16384, 32232]);
    }
}
