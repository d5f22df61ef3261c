//! Connection deadlines, cheaply.
//!
//! Every deadline the engine sets is `now` plus one of a few fixed durations (the
//! socket timeout, the linger), and `now` never goes backwards, so the deadlines of one
//! duration arrive in order: one FIFO queue per duration is a sorted list with O(1)
//! insertion and no allocation per entry, where an ordered set paid a tree search and
//! node churn on every insert and remove (the largest user-space cost per TCP
//! connection in the profile, bench/RESULTS.md).
//!
//! Entries are never removed from the middle: a connection's one true deadline is the
//! `deadline` field of its `Conn`; an entry that no longer matches it (replaced,
//! cleared, or its connection closed) is stale and skipped when it reaches the front.
//! The fronts are kept live ([`Timers::prune`]) so the earliest deadline is exact, and
//! the queues are compacted when stale entries outnumber live ones, so memory stays
//! proportional to the open connections.

use std::collections::VecDeque;

use raida_wire::Timestamp;

/// (deadline, slab index, generation).
pub(crate) type Entry = (Timestamp, u32, u64);

/// Which fixed duration a connection's deadline is `now` plus; deadlines of one kind
/// arrive in order, so each kind has one FIFO queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Deadline {
    /// `socket_timeout`: reading the request, or writing the response.
    SocketTimeout,
    /// `linger`: discarding after the response, before the close.
    Linger,
}

impl Deadline {
    /// How many kinds there are.
    const COUNT: usize = 2;

    /// The kind's queue.
    const fn index(self) -> usize {
        match self {
            Deadline::SocketTimeout => 0,
            Deadline::Linger => 1,
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Timers {
    queues: [VecDeque<Entry>; Deadline::COUNT],
    /// Live deadlines (connections whose `deadline` is set).
    live: usize,
}

impl Timers {
    /// Number of live deadlines.
    pub(crate) fn live(&self) -> usize {
        self.live
    }

    /// A deadline was set; `kind` is the fixed duration it was computed from.
    pub(crate) fn push(&mut self, kind: Deadline, entry: Entry) {
        self.live += 1;
        self.queues[kind.index()].push_back(entry);
    }

    /// A live deadline was cleared or replaced; its entry goes stale.
    pub(crate) fn forget(&mut self) {
        self.live = self.live.saturating_sub(1);
    }

    /// The earliest front (exact when the fronts are pruned).
    pub(crate) fn first(&self) -> Option<Entry> {
        self.queues
            .iter()
            .filter_map(|q| q.front().copied())
            .min_by_key(|e| e.0)
    }

    /// Removes and returns the earliest front if it is due at `now`.
    pub(crate) fn pop_due(&mut self, now: Timestamp) -> Option<Entry> {
        let (kind, _) = self
            .queues
            .iter()
            .enumerate()
            .filter_map(|(k, q)| q.front().map(|e| (k, e.0)))
            .filter(|&(_, when)| when <= now)
            .min_by_key(|&(_, when)| when)?;
        self.queues[kind].pop_front()
    }

    /// Drops stale entries from the fronts (`is_live` says whether an entry still
    /// matches its connection), and compacts every queue when most entries are stale.
    pub(crate) fn prune(&mut self, is_live: impl Fn(&Entry) -> bool) {
        for q in &mut self.queues {
            while q.front().is_some_and(|e| !is_live(e)) {
                q.pop_front();
            }
        }
        let total: usize = self.queues.iter().map(VecDeque::len).sum();
        if total > 2 * self.live + 1024 {
            for q in &mut self.queues {
                q.retain(|e| is_live(e));
                if q.capacity() > 4 * q.len() + 1024 {
                    q.shrink_to(2 * q.len() + 1024);
                }
            }
        }
    }

    /// Forgets everything (no connection is left).
    pub(crate) fn clear(&mut self) {
        for q in &mut self.queues {
            q.clear();
        }
        self.live = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: u64) -> Timestamp {
        Timestamp::from_micros(ms * 1000)
    }

    #[test]
    fn two_kinds_fire_in_deadline_order_and_stale_entries_are_skipped() {
        let mut timers = Timers::default();
        // Socket timeouts at 2000, 2001; lingers at 500, 2500.
        timers.push(Deadline::SocketTimeout, (t(2000), 1, 1));
        timers.push(Deadline::Linger, (t(500), 2, 2));
        timers.push(Deadline::SocketTimeout, (t(2001), 3, 3));
        timers.push(Deadline::Linger, (t(2500), 4, 4));
        // Connection 3's deadline is replaced: its entry goes stale.
        timers.forget();
        let live = |e: &Entry| e.1 != 3;
        timers.prune(live);
        assert_eq!(timers.first().map(|e| e.0), Some(t(500)));
        assert_eq!(timers.pop_due(t(499)), None);
        let mut fired = Vec::new();
        while let Some(e) = timers.pop_due(t(3000)) {
            if live(&e) {
                fired.push(e.1);
            }
            timers.prune(live);
        }
        assert_eq!(fired, vec![2, 1, 4]);
    }

    #[test]
    fn every_pushed_deadline_is_queued_and_counted_once() {
        let mut timers = Timers::default();
        for (i, kind) in [Deadline::SocketTimeout, Deadline::Linger]
            .into_iter()
            .enumerate()
        {
            timers.push(kind, (t(10 + i as u64), i as u32, 0));
        }
        assert_eq!(timers.live(), 2);
        let mut popped = 0;
        while timers.pop_due(t(100)).is_some() {
            popped += 1;
        }
        assert_eq!(popped, timers.live(), "every live deadline has its entry");
    }
}
