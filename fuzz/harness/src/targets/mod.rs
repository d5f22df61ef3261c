//! The four harnesses, one per cargo-fuzz target. Each takes the bytes libFuzzer
//! generates and panics (an assertion) when the code under test breaks a rule of
//! PROTOCOL.md or of the engine's calling contract.

pub mod header;
pub mod request;
pub mod tcp_stream;
pub mod udp_datagram;

use raida_testkit::Driver;

use crate::world::RANDOM;

/// Gives the engine the fixed [`RANDOM`] bytes when it asks for some, as the driver
/// does with the OS generator's: responses it builds inline stay comparable.
fn feed_random(h: &mut Driver) {
    h.feed_random(&RANDOM.repeat(64));
}
