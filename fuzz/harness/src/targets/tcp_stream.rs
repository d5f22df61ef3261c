//! The `tcp_stream` target: one engine connection, serviced as production drivers
//! service it (`Engine::service` over a `ConnSocket`, through `raida_testkit::Driver`),
//! fed a byte stream.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use raida_core::codec::{
    answer_datagram, header_len, LONG_HEADER_LEN, PREFIX_LEN, SHORT_HEADER_LEN,
};
use raida_core::{Accept, ConnId, Engine, Timestamp};
use raida_testkit::{Driver, MemConn};

use crate::model;
use crate::targets::feed_random;
use crate::world::{commands, engine_config, keys, rules, RANDOM};

/// One engine connection fed a byte stream. Layout: a 2-byte big-endian stream length,
/// the stream, then operations, two bytes each (`kind`, `arg`):
///
/// - kind % 8 in 0..=3: `arg + 1` more stream bytes arrive in the socket;
/// - 4: time advances `arg * 10 ms` (the socket timeout is 2 s);
/// - 5: the socket takes `arg` more bytes of writes;
/// - 6: time advances `arg` microseconds, and `handle_timeout` is called (extra calls are
///   harmless);
/// - 7: `arg % 4 == 0`: the client shuts its write side (no more stream arrives);
///   `arg % 4 == 1`: the socket errors (reset); `arg % 4 == 2`: the driver hands the
///   engine random bytes (cheap encrypted requests are answered inline from then on);
///   otherwise nothing.
///
/// After every operation the connection is serviced as the contract says, by the
/// testkit's driver (read while the engine lends and bytes are there, write while it
/// has bytes and the socket has room, outputs drained after every input, serviced
/// again on `Output::Wake`; jobs run inline at once). At the end the
/// rest of the stream arrives, writes are unlimited, the client shuts its side and time
/// runs on: the connection must then be closed and the engine idle.
///
/// Invariants: every lent buffer is non-empty and never reaches past the end of the
/// request; at most one response, written once, then shut down once; closed exactly
/// once, after which the id lends and sends nothing; the response equals
/// [`answer_datagram`] on the request's bytes (with the microseconds field equal to the
/// time since accept), and is there whenever the request was complete and neither a
/// timeout nor a reset cut the connection first.
pub fn tcp_stream(data: &[u8]) {
    let (stream, ops) = match data {
        [a, b, rest @ ..] => {
            let len = usize::from(u16::from_be_bytes([*a, *b])).min(rest.len());
            rest.split_at(len)
        }
        _ => (data, &[][..]),
    };
    let mut run = TcpRun::new(stream);
    for op in ops.chunks(2) {
        let kind = op[0];
        let arg = op.get(1).copied().unwrap_or(0);
        run.op(kind, arg);
    }
    run.finish();
}

struct TcpRun<'a> {
    h: Driver,
    id: ConnId,
    accepted: Timestamp,
    stream: &'a [u8],
    /// Bytes of `stream` that can arrive (shortened by the client's shutdown).
    end: usize,
    /// Bytes that arrived in the socket.
    arrived: usize,
    reset: bool,
    /// Where the request ends in the stream per the model (when the stream holds its
    /// whole header).
    request_end: Option<usize>,
    /// The socket's lent buffers checked so far.
    lends_checked: usize,
}

impl<'a> TcpRun<'a> {
    fn new(stream: &'a [u8]) -> TcpRun<'a> {
        let engine = Engine::new(engine_config(), commands(), Arc::new(keys()));
        let now = Timestamp::from_micros(1_000_000);
        let mut h = Driver::new(engine, now, RANDOM);
        let peer = SocketAddr::from(([10, 0, 0, 2], 4000));
        let mut conn = MemConn::new();
        conn.set_write_room(Some(0));
        let Accept::Accepted(id) = h.accept_conn(peer, conn) else {
            panic!("the first connection was refused");
        };
        let mut run = TcpRun {
            h,
            id,
            accepted: now,
            stream,
            end: stream.len(),
            arrived: 0,
            reset: false,
            request_end: model::request_end(stream),
            lends_checked: 0,
        };
        run.check();
        run
    }

    fn closed(&self) -> bool {
        self.h.conn(self.id).is_closed()
    }

    /// Stream bytes up to `to` (at most `end`) arrive in the socket; it is serviced.
    fn arrive(&mut self, to: usize) {
        let from = self.arrived;
        self.arrived = to.min(self.end).max(from);
        let bytes = &self.stream[from..self.arrived];
        self.h.with_conn(self.id, |c| c.push_inbound(bytes));
    }

    fn op(&mut self, kind: u8, arg: u8) {
        match kind % 8 {
            0..=3 => self.arrive(self.arrived + usize::from(arg) + 1),
            4 => {
                self.h.advance(Duration::from_millis(10 * u64::from(arg)));
                self.h.wake(self.id);
            }
            5 => self
                .h
                .with_conn(self.id, |c| c.add_write_room(usize::from(arg))),
            6 => {
                self.h.advance(Duration::from_micros(u64::from(arg)));
                self.h.fire_timers();
                self.h.wake(self.id);
            }
            _ => match arg % 4 {
                0 => {
                    self.end = self.arrived;
                    self.h.hang_up(self.id);
                }
                1 if !self.closed() => {
                    self.h.reset(self.id);
                    self.reset = true;
                    assert!(self.closed(), "a socket error closes the connection");
                }
                // The driver hands the engine random bytes: small encrypted requests
                // and 48-byte rejections are answered inline from then on.
                2 => {
                    feed_random(&mut self.h);
                    self.h.wake(self.id);
                }
                _ => self.h.wake(self.id),
            },
        }
        self.check();
    }

    /// The engine's side of the contract so far, beyond what the testkit's socket and
    /// driver assert as they run (one response, offered whole and written once, shut
    /// down once, closed once, no wake after the close): every lent buffer ends within
    /// the request; end of stream is only read while the engine reads (the request is
    /// incomplete, or the response is written), so it closes the connection; the
    /// engine's only job is the connection's, and it sends no datagram.
    fn check(&mut self) {
        let conn = self.h.conn(self.id);
        for lend in &conn.lends()[self.lends_checked..] {
            let limit = self.lend_limit(lend.at);
            assert!(
                lend.at + lend.len <= limit,
                "lent {} bytes at {}; the request ends at {limit}",
                lend.len,
                lend.at
            );
        }
        self.lends_checked = conn.lends().len();
        if conn.eof_delivered() {
            assert!(conn.is_closed(), "end of stream while reading left it open");
        }
        assert!(
            self.h.datagrams().is_empty(),
            "a TCP connection produced a datagram"
        );
        assert_eq!(self.h.engine.counters().page_loads, 0, "a page load job");
        assert_eq!(
            self.h.stopped_listening, 0,
            "the harness never shuts the engine down"
        );
    }

    /// Where the request in the stream ends, as far as the engine can know after
    /// `read` bytes: 32 (the shorter header: no request is shorter) until the 17-byte
    /// prefix is in, then the header length byte 16 announces, then the body (per the
    /// model of the header rules).
    fn lend_limit(&self, read: usize) -> usize {
        if read < PREFIX_LEN {
            return SHORT_HEADER_LEN;
        }
        let hlen = header_len(self.stream[PREFIX_LEN - 1]);
        if read < hlen {
            return hlen;
        }
        self.request_end.unwrap_or(hlen)
    }

    fn finish(mut self) {
        if !self.closed() {
            // The rest of the stream arrives and writes are unlimited, at once.
            let rest = &self.stream[self.arrived..self.end];
            self.arrived = self.end;
            self.h.with_conn(self.id, |c| {
                c.push_inbound(rest);
                c.set_write_room(None);
            });
            self.h.hang_up(self.id);
        }
        if !self.closed() {
            self.h.advance(Duration::from_secs(3600));
            self.h.fire_timers();
        }
        self.check();
        assert!(
            self.closed(),
            "the connection outlived end of stream and every timer"
        );
        self.h.assert_no_leaks();
        assert_eq!(self.h.engine.connection_count(), 0);

        // The request as the engine saw it: the stream up to the client's shutdown.
        let delivered = &self.stream[..self.end];
        let expected = expected_tcp(delivered);
        let conn = self.h.conn(self.id);
        match conn.response() {
            Some((response, at)) => {
                let Some((request, expected)) = expected else {
                    panic!("a response to an undecided request");
                };
                let elapsed =
                    u32::try_from(at.as_micros() - self.accepted.as_micros()).unwrap_or(u32::MAX);
                let mut want = expected;
                let field = if header_len(request[16]) == LONG_HEADER_LEN {
                    4
                } else {
                    12
                };
                want[field..field + 4].copy_from_slice(&elapsed.to_be_bytes());
                assert_eq!(response, &want, "the TCP response differs from the codec's");
                let written = conn.outbound();
                assert!(written.len() <= response.len());
                assert_eq!(written[..], response[..written.len()]);
                model::check(request, Some(response), elapsed, &RANDOM);
            }
            None => {
                let cut = self.reset || self.h.engine.counters().timed_out > 0;
                assert!(
                    expected.is_none() || cut,
                    "a complete request got no response and nothing cut the connection"
                );
            }
        }
    }
}

/// What a TCP connection must answer to a stream: `answer_datagram` on the request's
/// bytes once they decide it (a rejected header, or an admitted header and its body);
/// `None` while the request is incomplete. Returns the request's bytes too.
fn expected_tcp(stream: &[u8]) -> Option<(&[u8], Vec<u8>)> {
    let request = stream.get(..model::request_end(stream)?)?;
    let store = keys();
    let answer = answer_datagram(
        request,
        &rules(),
        &commands(),
        &store,
        Timestamp::ZERO,
        0,
        &RANDOM,
    )?;
    Some((request, answer))
}
