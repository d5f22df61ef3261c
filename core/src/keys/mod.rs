//! Where the network layer finds the keys that encrypted requests name
//! (PROTOCOL.md sections 2, 3 and 10).

use crate::Timestamp;

/// An authenticity number: the 16-byte secret of one coin or locker.
pub type An = [u8; 16];

/// The key lookups header validation needs. Lookups run on the event-loop thread when
/// a header is complete, so an implementation answers from memory in the common case.
///
/// `now` lets a caching store decide when a cached page is too old to trust; it never
/// goes backwards between calls.
pub trait KeyStore: Send + std::fmt::Debug {
    /// The AN of coin (`denomination`, `serial`), or `None` when the coin is unknown.
    fn coin_an(&mut self, denomination: i8, serial: u32, now: Timestamp) -> Option<An>;

    /// The AN of the locker whose AN starts with `prefix`, or `None`.
    fn locker_an(&mut self, prefix: &[u8; 5], now: Timestamp) -> Option<An>;
}
