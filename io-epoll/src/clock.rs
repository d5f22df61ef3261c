//! The driver's one clock. Every reading of the time in this crate goes through here
//! (io-epoll's `clippy.toml` bans `Instant::now` and `SystemTime::now` everywhere
//! else), so where the driver's time comes from is one place to read, and the engine's
//! `Timestamp`s all derive from the same monotonic source.
#![allow(clippy::disallowed_methods)]

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Now, on the monotonic clock the event loops, the poller and the workers share.
pub(crate) fn now() -> Instant {
    Instant::now()
}

/// Nanoseconds since the Unix epoch on the wall clock (0 if the clock is before it).
/// Only mixed into the bytes derived when the OS random generator fails, where any
/// value that differs between calls will do.
pub(crate) fn wall_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}
