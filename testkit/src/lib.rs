//! raida-testkit: one in-memory driver around one [`Engine`](raida_core::Engine), for
//! core's integration tests, the fuzz harness and the criterion bench.
//!
//! A [`Driver`] owns what a real driver owns: a listener ([`MemListener`]), the
//! accepted connections' sockets ([`MemConn`]), a UDP socket ([`MemUdp`]), a worker
//! ([`Worker`]) and a clock. It moves them only through the engine's contract:
//! [`Engine::accept_from`](raida_core::Engine::accept_from) over the listener,
//! [`Engine::service`](raida_core::Engine::service) over a connection's socket on
//! readiness or [`Output::Wake`](raida_core::Output::Wake),
//! [`handle_datagram`](raida_core::Engine::handle_datagram) while the engine wants
//! datagrams, completions from the worker (page loads are jobs like any other), and
//! every output drained after every input.
//!
//! # Driving
//!
//! - [`Driver::step`] runs one round of every party (outputs, the listener, the UDP
//!   socket, every connection woken) and returns whether anything happened.
//! - [`Driver::drive`] steps until nothing happens; [`Driver::drive_bounded`] panics
//!   after a given number of steps, so a livelock fails a test instead of hanging it.
//!   Every scripted input below drives to idle before it returns.
//! - The clock is virtual and moves only when told: [`Driver::advance`] by a duration,
//!   [`Driver::advance_to_deadline`] to the engine's next deadline. Driving never moves
//!   it, so a test decides exactly when timeouts happen.
//! - [`Driver::assert_no_leaks`] is the leak check a test ends with: after driving, the
//!   engine's own [`is_idle`](raida_core::Engine::is_idle) holds and the worker holds
//!   no job.
//!
//! # Faults
//!
//! Scripted inline on a connection: partial reads ([`Driver::set_read_chunk`]),
//! partial and blocked writes ([`Driver::set_write_room`]), the peer's end of stream
//! ([`Driver::hang_up`]), a reset reported outside a read or a write
//! ([`Driver::reset`]), and socket calls that fail ([`Driver::fail_io`]).
//!
//! # Contract checks
//!
//! The in-memory sockets and the driver assert the engine's side of the calling
//! contract as it runs: no empty read buffer or write, one response per connection
//! offered as the rest of itself on every write and never after the write side is
//! shut, the write side shut once and only after the whole response, no output for a
//! connection the driver does not hold, no connection closed twice or woken after its
//! close.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod conn;
mod driver;
mod listener;
mod peer;
mod udp;
mod worker;

pub use conn::{Lend, MemConn};
pub use driver::{Driver, DEFAULT_STEP_BOUND};
pub use listener::MemListener;
pub use peer::{MemPeer, PeerScript};
pub use udp::MemUdp;
pub use worker::{JobPolicy, Worker};
