//! Job admission: how many jobs run at once, and who waits.
//!
//! Two lanes, each with its own bound: `mod_queue_size` jobs on the workers (every
//! request and every page load), and `long_jobs` on the long-running pool (commands
//! that declared [`Runs::Long`](crate::Runs::Long)), so that requests which hold a
//! thread for minutes never take the threads short requests need. A job beyond its
//! lane's bound waits, in arrival order, and nothing is dropped; because jobs in
//! flight never exceed the bounds, every completion fits the driver's channels.
//!
//! Admission also owns the datagram pause. A datagram that finds the workers' lane
//! full would make one more waiting job, and the engine has no connection to hold it
//! back with, so the engine asks the driver to stop reading datagrams and lets the
//! kernel's socket buffer hold the excess; the pause ends when a job completes and
//! makes room (or, for a pause caused by parked datagrams, when a page load ends).
//! Keeping the flag next to the counts it follows keeps the two from disagreeing.

use std::collections::VecDeque;

use super::job::{Job, Lane};
use super::Origin;

/// One lane: its bound, the jobs in flight and those waiting for room.
#[derive(Debug)]
struct Queue {
    bound: usize,
    in_flight: usize,
    waiting: VecDeque<Job>,
}

impl Queue {
    fn new(bound: usize) -> Queue {
        Queue {
            bound,
            in_flight: 0,
            waiting: VecDeque::new(),
        }
    }

    /// The oldest waiting job `wanted` keeps, counted in flight, while there is room;
    /// jobs it refuses are dropped.
    fn next(&mut self, wanted: &mut dyn FnMut(&Job) -> bool) -> Option<Job> {
        while self.in_flight < self.bound {
            let job = self.waiting.pop_front()?;
            if wanted(&job) {
                self.in_flight += 1;
                return Some(job);
            }
        }
        None
    }
}

/// The jobs in flight and waiting in both lanes, and whether datagrams are paused.
#[derive(Debug)]
pub(super) struct Admission {
    /// `mod_queue_size`: requests and page loads on the workers.
    short: Queue,
    /// `long_jobs`: long-running commands' requests.
    long: Queue,
    /// The driver was told to stop reading datagrams ([`Admission::pause_datagrams`]).
    datagrams_paused: bool,
}

impl Admission {
    /// No job yet; at most `mod_queue_size` short and `long_jobs` long jobs in flight.
    pub(super) fn new(mod_queue_size: usize, long_jobs: usize) -> Admission {
        Admission {
            short: Queue::new(mod_queue_size),
            long: Queue::new(long_jobs),
            datagrams_paused: false,
        }
    }

    /// Offers `job`: returns it when it may start now (it counts in flight until
    /// [`complete`](Self::complete)), or `None` when it waits for room. A datagram's
    /// job that waits, or any job that fills the workers' lane, pauses datagrams.
    pub(super) fn submit(&mut self, job: Job) -> Option<Job> {
        if job.lane == Lane::Long {
            if self.long.in_flight < self.long.bound {
                self.long.in_flight += 1;
                return Some(job);
            }
            self.long.waiting.push_back(job);
            return None;
        }
        #[allow(unused_mut)]
        let mut bound = self.short.bound;
        // Planted bug for the mutant runner (never in a normal build): admission past
        // the bound.
        #[cfg(raida_mutants)]
        if crate::mutants::active(crate::mutants::Mutant::AdmissionOverflow) {
            bound = usize::MAX;
        }
        let started = if self.short.in_flight < bound {
            self.short.in_flight += 1;
            Some(job)
        } else {
            if matches!(job.origin, Origin::Udp(_)) {
                self.datagrams_paused = true;
            }
            self.short.waiting.push_back(job);
            None
        };
        if self.short.in_flight >= self.short.bound {
            self.datagrams_paused = true;
        }
        started
    }

    /// A job of `lane` finished: its room is free.
    pub(super) fn complete(&mut self, lane: Lane) {
        let queue = match lane {
            Lane::Short => &mut self.short,
            Lane::Long => &mut self.long,
        };
        queue.in_flight = queue.in_flight.saturating_sub(1);
    }

    /// The next waiting job that may start now, counted in flight: the workers' lane
    /// first, oldest first, then the long lane. Jobs `wanted` refuses (their
    /// connection is gone) are dropped on the way. `None` when nothing can start.
    pub(super) fn next_admitted(&mut self, mut wanted: impl FnMut(&Job) -> bool) -> Option<Job> {
        self.short
            .next(&mut wanted)
            .or_else(|| self.long.next(&mut wanted))
    }

    /// Jobs of the workers' lane in flight.
    pub(super) fn in_flight(&self) -> usize {
        self.short.in_flight
    }

    /// Jobs of the long lane in flight.
    pub(super) fn long_in_flight(&self) -> usize {
        self.long.in_flight
    }

    /// Jobs waiting for room, both lanes.
    pub(super) fn waiting(&self) -> usize {
        self.short.waiting.len() + self.long.waiting.len()
    }

    /// How many more jobs the workers' lane takes now.
    pub(super) fn room(&self) -> usize {
        self.short.bound.saturating_sub(self.short.in_flight)
    }

    /// As many long jobs wait as run: a long request that has no connection to hold
    /// it (a datagram) is refused rather than queued.
    pub(super) fn long_backlog_full(&self) -> bool {
        self.long.in_flight >= self.long.bound && self.long.waiting.len() >= self.long.bound
    }

    /// No job in flight or waiting in either lane.
    pub(super) fn is_empty(&self) -> bool {
        self.short.in_flight == 0
            && self.short.waiting.is_empty()
            && self.long.in_flight == 0
            && self.long.waiting.is_empty()
    }

    /// Datagrams are paused for another reason than admission (parked datagrams at
    /// their bound).
    pub(super) fn pause_datagrams(&mut self) {
        self.datagrams_paused = true;
    }

    /// Whether the driver was told to stop reading datagrams and not yet to resume.
    pub(super) fn datagrams_paused(&self) -> bool {
        self.datagrams_paused
    }

    /// Ends a datagram pause; returns whether there was one (the driver is told to
    /// resume exactly once per pause).
    pub(super) fn resume_datagrams(&mut self) -> bool {
        std::mem::replace(&mut self.datagrams_paused, false)
    }

    /// Ends a datagram pause when the workers' lane has room again; returns whether it
    /// ended.
    pub(super) fn resume_datagrams_if_room(&mut self) -> bool {
        self.datagrams_paused && self.room() > 0 && self.resume_datagrams()
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::Arc;

    use raida_wire::Timestamp;

    use super::*;
    use crate::engine::job::Work;
    use crate::keys::{MemoryKeyStore, PageId};

    /// A job of `lane` from `origin`; `n` tells jobs apart (its page number).
    fn job(lane: Lane, origin: Origin, n: u16) -> Job {
        let page = PageId {
            denomination: 1,
            number: n,
        };
        Job {
            origin,
            lane,
            raida_id: 0,
            started: Timestamp::ZERO,
            work: Work::Load {
                page,
                store: Arc::new(MemoryKeyStore::new()),
            },
            out: Vec::new(),
            access: crate::keys::Access::Blocking,
        }
    }

    fn number(job: &Job) -> u16 {
        match job.work {
            Work::Load { page, .. } => page.number,
            _ => u16::MAX,
        }
    }

    fn load(n: u16) -> Origin {
        Origin::Load(PageId {
            denomination: 1,
            number: n,
        })
    }

    fn udp() -> Origin {
        Origin::Udp(SocketAddr::from(([192, 0, 2, 1], 7)))
    }

    #[test]
    fn jobs_beyond_the_bound_wait_and_start_oldest_first_as_room_frees() {
        let mut a = Admission::new(2, 1);
        for n in 0..5 {
            let started = a.submit(job(Lane::Short, load(n), n)).is_some();
            assert_eq!(started, n < 2, "job {n}");
        }
        assert_eq!((a.in_flight(), a.waiting(), a.room()), (2, 3, 0));
        assert!(
            a.next_admitted(|_| true).is_none(),
            "no room, nothing starts"
        );
        a.complete(Lane::Short);
        let next = a.next_admitted(|_| true).expect("room for one");
        assert_eq!(number(&next), 2, "the oldest waiting job");
        assert!(a.next_admitted(|_| true).is_none());
        assert_eq!((a.in_flight(), a.waiting()), (2, 2));
    }

    #[test]
    fn the_lanes_have_bounds_of_their_own() {
        let mut a = Admission::new(1, 1);
        assert!(a.submit(job(Lane::Short, load(0), 0)).is_some());
        assert!(
            a.submit(job(Lane::Long, load(1), 1)).is_some(),
            "long lane free"
        );
        assert!(!a.long_backlog_full(), "one runs, none waits");
        assert!(a.submit(job(Lane::Long, load(2), 2)).is_none());
        assert!(a.long_backlog_full(), "as many wait as run");
        a.complete(Lane::Short);
        assert!(
            a.next_admitted(|_| true).is_none(),
            "short room frees no long job"
        );
        a.complete(Lane::Long);
        let next = a.next_admitted(|_| true).expect("long room");
        assert_eq!((number(&next), a.long_in_flight()), (2, 1));
    }

    #[test]
    fn unwanted_jobs_are_dropped_and_the_next_one_starts() {
        let mut a = Admission::new(1, 1);
        for n in 0..4 {
            let _ = a.submit(job(Lane::Short, load(n), n));
        }
        a.complete(Lane::Short);
        let next = a
            .next_admitted(|j| number(j) == 3)
            .expect("job 3 is wanted");
        assert_eq!(number(&next), 3);
        assert_eq!((a.in_flight(), a.waiting()), (1, 0));
        a.complete(Lane::Short);
        assert!(a.is_empty());
    }

    #[test]
    fn datagrams_pause_when_the_workers_lane_fills_and_resume_once_with_room() {
        let mut a = Admission::new(1, 1);
        assert!(!a.datagrams_paused());
        assert!(a.submit(job(Lane::Short, udp(), 0)).is_some());
        assert!(a.datagrams_paused(), "the lane is full");
        assert!(!a.resume_datagrams_if_room(), "no room yet");
        a.complete(Lane::Short);
        assert!(a.resume_datagrams_if_room());
        assert!(!a.resume_datagrams_if_room(), "the driver is told once");
        assert!(!a.datagrams_paused());
    }
}
