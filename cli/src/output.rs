//! How `raida` writes its results.

/// `println!` that ignores a closed stdout (e.g. `raida bench | head`) instead of
/// panicking.
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

pub(crate) use out;

use std::net::SocketAddr;

use raida_client::{status_name, Reply, Transport};
use serde_json::{json, Map, Value};

/// A reply's round trip in microseconds, as both output forms give it.
pub(crate) fn round_trip_us(reply: &Reply) -> u64 {
    u64::try_from(reply.round_trip.as_micros()).unwrap_or(u64::MAX)
}

/// The JSON fields every answered call has: `status`, `status_name`,
/// `round_trip_us`, `server_us`.
pub(crate) fn insert_reply(o: &mut Map<String, Value>, reply: &Reply) {
    let h = &reply.response.header;
    o.insert("status".into(), json!(h.status.0));
    o.insert("status_name".into(), json!(status_name(h.status)));
    o.insert("round_trip_us".into(), json!(round_trip_us(reply)));
    o.insert("server_us".into(), json!(h.server_micros));
}

/// The text lines every answered call begins with: the status by name and number,
/// then the round trip, the transport, the address and the server's own time.
pub(crate) fn print_reply(reply: &Reply, transport: Transport, addr: SocketAddr) {
    let h = &reply.response.header;
    out!("status:     {} ({})", status_name(h.status), h.status.0);
    out!(
        "round trip: {:.3} ms over {} to {addr} (server: {} us)",
        round_trip_us(reply) as f64 / 1000.0,
        transport.name(),
        h.server_micros
    );
}

/// Lowercase hex, as ANs and bodies are printed.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
