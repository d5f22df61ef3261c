//! Page loads: requests whose key's page is not in memory, and the loads that bring
//! the pages in.
//!
//! The header-time key lookup runs on the event-loop thread and never blocks on the
//! disk, so a request whose coin's page is not in memory is parked here and its page
//! is loaded by a job on the workers. One load per page however many requests wait
//! for it; when it ends, its waiters resume in the order they came. A TCP request
//! waits in its connection (its state says so); a datagram has no connection, so a
//! copy of it waits here, at most `max_parked_datagrams` of them, the bound that keeps
//! a flood of datagrams naming absent pages from holding unbounded memory.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use raida_wire::Timestamp;
use slab::Slab;

use super::ConnId;
use crate::keys::PageId;

/// A request waiting for its key's page.
#[derive(Clone, Copy, Debug)]
pub(super) enum Waiter {
    /// A connection in the parked state.
    Tcp(ConnId),
    /// A datagram held here ([`PageLoads::take_datagram`]).
    Udp(usize),
}

/// A datagram whose key's page is being loaded.
#[derive(Debug)]
pub(super) struct ParkedDatagram {
    /// Its sender.
    pub(super) peer: SocketAddr,
    /// The datagram as kept.
    pub(super) bytes: Vec<u8>,
    /// When it was received (its response's clock starts then).
    pub(super) arrived: Timestamp,
    /// Page loads it has waited for, this one included.
    pub(super) loads: u8,
}

/// A page being loaded: since when, and who waits for it.
#[derive(Debug)]
pub(super) struct PageLoad {
    /// When the first request that needed the page parked.
    pub(super) started: Timestamp,
    /// The requests waiting, in the order they came.
    pub(super) waiters: Vec<Waiter>,
}

/// The pages being loaded and the requests waiting for them.
#[derive(Debug)]
pub(super) struct PageLoads {
    /// Pages being loaded, and the requests waiting for each (one load per page).
    loads: BTreeMap<PageId, PageLoad>,
    /// Datagrams waiting for their key's page.
    datagrams: Slab<ParkedDatagram>,
    /// At most this many datagrams wait (`max_parked_datagrams`).
    max_datagrams: usize,
}

impl PageLoads {
    /// Nothing loading; at most `max_datagrams` datagrams may wait.
    pub(super) fn new(max_datagrams: usize) -> PageLoads {
        PageLoads {
            loads: BTreeMap::new(),
            datagrams: Slab::new(),
            max_datagrams,
        }
    }

    /// Holds a copy of a datagram until its page is loaded; the returned waiter is
    /// what [`park`](Self::park) takes. The caller checks
    /// [`datagram_room`](Self::datagram_room) first (the engine reads no datagram
    /// beyond it).
    pub(super) fn hold_datagram(&mut self, datagram: ParkedDatagram) -> Waiter {
        Waiter::Udp(self.datagrams.insert(datagram))
    }

    /// The datagram `slot` names, no longer held; `None` if it is gone.
    pub(super) fn take_datagram(&mut self, slot: usize) -> Option<ParkedDatagram> {
        self.datagrams
            .contains(slot)
            .then(|| self.datagrams.remove(slot))
    }

    /// `waiter` waits for `page`. Returns true when it is the first (the caller
    /// starts the page's load); later waiters join the load already running.
    pub(super) fn park(&mut self, page: PageId, waiter: Waiter, now: Timestamp) -> bool {
        if let Some(load) = self.loads.get_mut(&page) {
            load.waiters.push(waiter);
            return false;
        }
        self.loads.insert(
            page,
            PageLoad {
                started: now,
                waiters: vec![waiter],
            },
        );
        true
    }

    /// `page`'s load ended: its record, waiters included (`None` if no load of it was
    /// running).
    pub(super) fn finish(&mut self, page: PageId) -> Option<PageLoad> {
        self.loads.remove(&page)
    }

    /// How many more datagrams may wait now.
    pub(super) fn datagram_room(&self) -> usize {
        self.max_datagrams.saturating_sub(self.datagrams.len())
    }

    /// Pages being loaded.
    pub(super) fn in_flight(&self) -> usize {
        self.loads.len()
    }

    /// Requests waiting for a page (connections and datagrams).
    pub(super) fn parked(&self) -> usize {
        self.loads.values().map(|l| l.waiters.len()).sum()
    }

    /// No load running and no datagram held.
    pub(super) fn is_empty(&self) -> bool {
        self.loads.is_empty() && self.datagrams.is_empty()
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

    fn datagram(tag: u8) -> ParkedDatagram {
        ParkedDatagram {
            peer: SocketAddr::from(([192, 0, 2, 1], 7)),
            bytes: vec![tag],
            arrived: Timestamp::from_micros(u64::from(tag)),
            loads: 1,
        }
    }

    #[test]
    fn one_load_per_page_and_its_waiters_resume_in_arrival_order() {
        let mut l = PageLoads::new(4);
        let t = Timestamp::from_micros(5);
        let first = l.hold_datagram(datagram(1));
        assert!(
            l.park(page(1), first, t),
            "the first waiter starts the load"
        );
        let second = l.hold_datagram(datagram(2));
        assert!(!l.park(page(1), second, t), "the second joins it");
        assert!(l.park(page(2), first, t), "another page, another load");
        assert_eq!((l.in_flight(), l.parked()), (2, 3));
        let load = l.finish(page(1)).expect("page 1 was loading");
        assert_eq!(load.started, t);
        let tags: Vec<u8> = load
            .waiters
            .iter()
            .filter_map(|w| match *w {
                Waiter::Udp(slot) => l.take_datagram(slot).map(|d| d.bytes[0]),
                Waiter::Tcp(_) => None,
            })
            .collect();
        assert_eq!(tags, [1, 2]);
        assert!(l.finish(page(1)).is_none(), "a load ends once");
        assert_eq!((l.in_flight(), l.parked()), (1, 1));
    }

    #[test]
    fn held_datagrams_are_bounded_and_taken_once() {
        let mut l = PageLoads::new(2);
        let Waiter::Udp(slot) = l.hold_datagram(datagram(1)) else {
            panic!("a datagram's waiter");
        };
        assert_eq!(l.datagram_room(), 1);
        let _ = l.hold_datagram(datagram(2));
        assert_eq!(l.datagram_room(), 0);
        assert!(!l.is_empty(), "a held datagram is outstanding work");
        assert_eq!(l.take_datagram(slot).map(|d| d.bytes), Some(vec![1]));
        assert!(l.take_datagram(slot).is_none(), "taken once");
        assert_eq!(l.datagram_room(), 1);
    }
}
