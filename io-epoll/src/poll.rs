//! The event loop's poller: the `polling` crate in edge-triggered mode, plus a bounded
//! busy-poll window before a wait blocks.
//!
//! Why a busy-poll window: on a loaded server most waits would sleep for a few
//! microseconds only, and a sleep costs a context switch on each side (the wake-up and
//! the return). Polling without blocking for `busy_poll_us` first catches the next
//! readiness or completion while the thread is still on its core. Idle, it costs at most
//! one window per wait: with the default 20 µs and a wait per millisecond, 2% of a core.
//!
//! What `polling` costs: each `wait` also re-arms its timerfd and its notifier (four
//! syscalls beside `epoll_wait`). The loop therefore waits once per batch of events,
//! never per event, and does all the I/O each event allows before waiting again.
//!
//! Contract, as `polling` documents it: readiness is reported when it changes (read and
//! write until would-block); [`Poller::notify`] wakes a wait but delivers no event, and
//! notifies merge, so the caller drains its channels after every wait; a source must be
//! deleted from the poller before it is closed.
use std::io;
use std::num::NonZeroUsize;
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use polling::PollMode;

/// Readiness of one registered source, as a wait reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Event {
    /// The key it was registered with.
    pub key: usize,
    /// Readable (or end of stream, or an error to collect by reading).
    pub readable: bool,
    /// Writable (or an error).
    pub writable: bool,
}

/// The events of one wait.
#[derive(Debug)]
pub(crate) struct Events {
    inner: polling::Events,
}

impl Events {
    /// Room for `capacity` events per wait (at least 1).
    pub(crate) fn with_capacity(capacity: usize) -> Events {
        Events {
            inner: polling::Events::with_capacity(
                NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN),
            ),
        }
    }

    /// The events of the last wait.
    pub(crate) fn iter(&self) -> impl Iterator<Item = Event> + '_ {
        self.inner.iter().map(|e| Event {
            key: e.key,
            readable: e.readable,
            writable: e.writable,
        })
    }

    /// Whether the last wait returned no event.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }
}

/// An edge-triggered poller that other threads can wake.
#[derive(Debug)]
pub(crate) struct Poller {
    inner: polling::Poller,
    /// Set by [`Poller::notify`], cleared when a wait returns: lets the busy-poll window
    /// end on a notification, which `polling` reports as a wait with no event.
    notified: AtomicBool,
    /// Poll without blocking this long (microseconds) before a wait blocks.
    busy_poll_us: AtomicU64,
}

impl Poller {
    /// A new poller (busy-poll window 0: every wait blocks at once).
    pub(crate) fn new() -> io::Result<Poller> {
        Ok(Poller {
            inner: polling::Poller::new()?,
            notified: AtomicBool::new(false),
            busy_poll_us: AtomicU64::new(0),
        })
    }

    /// Sets the busy-poll window (0: off).
    pub(crate) fn set_busy_poll(&self, window: Duration) {
        let us = u64::try_from(window.as_micros()).unwrap_or(u64::MAX);
        self.busy_poll_us.store(us, Ordering::Relaxed);
    }

    /// Registers `source` under `key`, edge-triggered, for the readiness asked.
    ///
    /// # Safety
    ///
    /// `source` must be [`delete`](Self::delete)d from this poller before it is closed
    /// (the contract of `polling::Poller::add`).
    pub(crate) unsafe fn add(
        &self,
        source: &impl AsRawFd,
        key: usize,
        readable: bool,
        writable: bool,
    ) -> io::Result<()> {
        let mut interest = polling::Event::none(key);
        interest.readable = readable;
        interest.writable = writable;
        // SAFETY: forwarded to the caller.
        unsafe { self.inner.add_with_mode(source, interest, PollMode::Edge) }
    }

    /// Removes `source` from the poller.
    pub(crate) fn delete(&self, source: impl AsFd) -> io::Result<()> {
        self.inner.delete(source)
    }

    /// Waits until an event, a notification or `deadline` (none: for ever), polling
    /// without blocking during the busy-poll window first. `EINTR` is retried.
    pub(crate) fn wait_deadline(
        &self,
        events: &mut Events,
        deadline: Option<Instant>,
    ) -> io::Result<()> {
        events.inner.clear();
        let window = self.busy_poll_us.load(Ordering::Relaxed);
        if window > 0 {
            let start = crate::clock::now();
            let mut until = start + Duration::from_micros(window);
            if let Some(d) = deadline {
                until = until.min(d);
            }
            loop {
                self.inner.wait(&mut events.inner, Some(Duration::ZERO))?;
                if !events.inner.is_empty() || self.notified.swap(false, Ordering::SeqCst) {
                    return Ok(());
                }
                if crate::clock::now() >= until {
                    break;
                }
            }
        }
        let timeout = deadline.map(|d| d.saturating_duration_since(crate::clock::now()));
        self.inner.wait(&mut events.inner, timeout)?;
        self.notified.store(false, Ordering::SeqCst);
        Ok(())
    }

    /// Wakes the current or the next wait. Notifies merge: one already pending costs no
    /// syscall.
    pub(crate) fn notify(&self) -> io::Result<()> {
        self.notified.store(true, Ordering::SeqCst);
        self.inner.notify()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{mpsc, Arc};

    fn poller(busy_us: u64) -> Poller {
        let p = Poller::new().expect("poller");
        p.set_busy_poll(Duration::from_micros(busy_us));
        p
    }

    #[test]
    fn notify_wakes_a_wait_without_an_event() {
        for busy_us in [0, 20, 5_000] {
            let p = poller(busy_us);
            let mut events = Events::with_capacity(8);
            p.notify().expect("notify");
            p.notify().expect("notify again (merged)");
            // Woken at once (a 60 s deadline would hang the test otherwise), no event.
            let start = crate::clock::now();
            p.wait_deadline(&mut events, Some(start + Duration::from_secs(60)))
                .expect("wait");
            assert!(events.is_empty());
            assert!(start.elapsed() < Duration::from_secs(30), "busy {busy_us}");
            // Consumed: the next wait ends at its deadline, still without an event.
            p.wait_deadline(
                &mut events,
                Some(crate::clock::now() + Duration::from_millis(1)),
            )
            .expect("wait");
            assert!(events.is_empty());
        }
    }

    #[test]
    fn a_readable_socket_is_reported_under_its_key() {
        for busy_us in [0, 20, 5_000] {
            let p = poller(busy_us);
            let (a, b) = std::os::unix::net::UnixDatagram::pair().expect("pair");
            b.set_nonblocking(true).expect("nonblocking");
            // SAFETY: deleted below, before `b` is dropped.
            unsafe { p.add(&b, 7, true, false) }.expect("add");
            a.send(b"x").expect("send");
            let mut events = Events::with_capacity(8);
            p.wait_deadline(
                &mut events,
                Some(crate::clock::now() + Duration::from_secs(5)),
            )
            .expect("wait");
            let got: Vec<Event> = events.iter().collect();
            assert_eq!(got.len(), 1, "busy {busy_us}");
            assert_eq!(got[0].key, 7);
            assert!(got[0].readable);
            p.delete(&b).expect("delete");
        }
    }

    /// Producers send messages, each followed by a notify, while the waiter drains
    /// after every wake-up with no deadline: every message is received, so no wake-up
    /// was lost (a lost one leaves the waiter asleep for ever, and the bound below
    /// fails the test). Run with the busy-poll window on and off: a notification the
    /// window's non-blocking waits consume must still end the window.
    #[test]
    fn no_notification_is_lost_under_contention() {
        const PRODUCERS: usize = 3;
        const EACH: usize = 20_000;
        for busy_us in [0, 20] {
            let poller = Arc::new(poller(busy_us));
            let (tx, rx) = mpsc::channel::<usize>();
            let (done_tx, done_rx) = mpsc::channel();
            let waiter = {
                let poller = Arc::clone(&poller);
                std::thread::spawn(move || {
                    let mut events = Events::with_capacity(4);
                    let mut got = 0;
                    while got < PRODUCERS * EACH {
                        poller.wait_deadline(&mut events, None).expect("wait");
                        while rx.try_recv().is_ok() {
                            got += 1;
                        }
                    }
                    let _ = done_tx.send(got);
                })
            };
            let producers: Vec<_> = (0..PRODUCERS)
                .map(|_| {
                    let (poller, tx) = (Arc::clone(&poller), tx.clone());
                    std::thread::spawn(move || {
                        for i in 0..EACH {
                            tx.send(i).expect("send");
                            poller.notify().expect("notify");
                        }
                    })
                })
                .collect();
            for p in producers {
                p.join().expect("producer");
            }
            let got = done_rx
                .recv_timeout(Duration::from_secs(120))
                .expect("the waiter received every message (no lost wake-up)");
            assert_eq!(got, PRODUCERS * EACH, "busy {busy_us}");
            waiter.join().expect("waiter");
        }
    }
}
