//! The `tcp_stream` target: one engine connection, serviced as production drivers
//! service it (`Engine::service` over a `ConnSocket`), fed a byte stream.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use raida_core::codec::{
    answer_datagram, header_len, LONG_HEADER_LEN, PREFIX_LEN, SHORT_HEADER_LEN,
};
use raida_core::{Accept, ConnId, ConnSocket, Engine, Io, Origin, Output, Serviced, Timestamp};

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
/// After every operation the connection is serviced as the contract says (read while
/// the engine lends and bytes are there, write while it has bytes and the socket has
/// room, outputs drained after every input, serviced again on `Output::Wake`; jobs run
/// inline at once). At the end the
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
    engine: Engine,
    id: ConnId,
    now: Timestamp,
    accepted: Timestamp,
    sock: TcpSock<'a>,
    closed: bool,
    scratch: Vec<u8>,
}

/// The connection's socket as the engine's service loop sees it, with the checks of
/// the engine's contract on every call.
struct TcpSock<'a> {
    stream: &'a [u8],
    now: Timestamp,
    /// Bytes of `stream` that can arrive (shortened by the client's shutdown).
    end: usize,
    /// Bytes that arrived in the socket.
    arrived: usize,
    /// Bytes the engine read.
    read: usize,
    client_eof: bool,
    eof_delivered: bool,
    reset: bool,
    room: usize,
    /// Where the request ends in the stream per the model (when the stream holds its
    /// whole header).
    request_end: Option<usize>,
    /// The response as first offered, and when.
    response: Option<(Vec<u8>, Timestamp)>,
    written: Vec<u8>,
    shutdown: bool,
}

impl TcpSock<'_> {
    /// Where the request in the stream ends, as far as the engine can know after
    /// `read` bytes: 32 (the shorter header: no request is shorter) until the 17-byte
    /// prefix is in, then the header length byte 16 announces, then the body (per the
    /// model of the header rules).
    fn lend_limit(&self) -> usize {
        if self.read < PREFIX_LEN {
            return SHORT_HEADER_LEN;
        }
        let hlen = header_len(self.stream[PREFIX_LEN - 1]);
        if self.read < hlen {
            return hlen;
        }
        self.request_end.unwrap_or(hlen)
    }
}

impl ConnSocket for TcpSock<'_> {
    fn read(&mut self, buf: &mut [u8]) -> Io {
        assert!(!buf.is_empty(), "an empty read buffer");
        if !self.shutdown {
            let limit = self.lend_limit();
            assert!(
                self.read + buf.len() <= limit,
                "lent {} bytes at {}; the request ends at {limit}",
                buf.len(),
                self.read
            );
        }
        let n = buf.len().min(self.arrived - self.read);
        if n > 0 {
            buf[..n].copy_from_slice(&self.stream[self.read..self.read + n]);
            self.read += n;
            Io::Done(n)
        } else if self.client_eof && self.arrived == self.end {
            self.eof_delivered = true;
            Io::Eof
        } else {
            Io::WouldBlock
        }
    }

    fn write(&mut self, bytes: &[u8]) -> Io {
        assert!(!bytes.is_empty(), "an empty write");
        assert!(!self.shutdown, "bytes to send after shutdown");
        if self.response.is_none() {
            assert!(self.written.is_empty());
            self.response = Some((bytes.to_vec(), self.now));
        }
        if let Some((response, _)) = &self.response {
            assert_eq!(
                bytes,
                &response[self.written.len()..],
                "the bytes to send are the rest of the one response"
            );
        }
        let n = bytes.len().min(self.room);
        if n == 0 {
            return Io::WouldBlock;
        }
        self.written.extend_from_slice(&bytes[..n]);
        self.room -= n;
        Io::Done(n)
    }

    fn shutdown_write(&mut self) {
        assert!(!self.shutdown, "write side shut down twice");
        let Some((response, _)) = &self.response else {
            panic!("shut down without a response");
        };
        assert_eq!(
            &self.written, response,
            "shut down before the whole response"
        );
        self.shutdown = true;
    }
}

impl<'a> TcpRun<'a> {
    fn new(stream: &'a [u8]) -> TcpRun<'a> {
        let mut engine = Engine::new(engine_config(), commands(), Arc::new(keys()));
        let now = Timestamp::from_micros(1_000_000);
        let peer = SocketAddr::from(([10, 0, 0, 2], 4000));
        let Accept::Accepted(id) = engine.handle_accept(peer, now) else {
            panic!("the first connection was refused");
        };
        let mut run = TcpRun {
            engine,
            id,
            now,
            accepted: now,
            sock: TcpSock {
                stream,
                now,
                end: stream.len(),
                arrived: 0,
                read: 0,
                client_eof: false,
                eof_delivered: false,
                reset: false,
                room: 0,
                request_end: model::request_end(stream),
                response: None,
                written: Vec::new(),
                shutdown: false,
            },
            closed: false,
            scratch: Vec::new(),
        };
        run.drain();
        run.service();
        run
    }

    fn op(&mut self, kind: u8, arg: u8) {
        let sock = &mut self.sock;
        match kind % 8 {
            0..=3 => sock.arrived = (sock.arrived + usize::from(arg) + 1).min(sock.end),
            4 => self.advance(Duration::from_millis(10 * u64::from(arg)), false),
            5 => sock.room = sock.room.saturating_add(usize::from(arg)),
            6 => self.advance(Duration::from_micros(u64::from(arg)), true),
            _ => match arg % 4 {
                0 => {
                    sock.client_eof = true;
                    sock.end = sock.arrived;
                }
                1 if !self.closed => {
                    self.engine.handle_error(self.id, self.now);
                    self.sock.reset = true;
                    self.drain();
                    assert!(self.closed, "a socket error closes the connection");
                }
                // The driver hands the engine random bytes: small encrypted requests
                // and 48-byte rejections are answered inline from then on.
                2 => feed_random(&mut self.engine),
                _ => {}
            },
        }
        self.service();
    }

    fn advance(&mut self, d: Duration, always: bool) {
        self.now = self.now.saturating_add(d);
        let due = self.engine.poll_timeout().is_some_and(|t| t <= self.now);
        if due || always {
            self.engine.handle_timeout(self.now);
            self.drain();
        }
    }

    /// Every output; whether one was a [`Output::Wake`] (the connection wants service).
    fn drain(&mut self) -> bool {
        let mut woken = false;
        while let Some(o) = self.engine.poll_output() {
            match o {
                Output::Job(job) => {
                    assert_eq!(job.origin(), Origin::Tcp(self.id));
                    let c = job.run(self.now, &RANDOM, &mut self.scratch);
                    self.engine.handle_completion(c, self.now);
                }
                Output::Wake(id) => {
                    assert_eq!(id, self.id);
                    assert!(!self.closed, "woke a closed connection");
                    woken = true;
                }
                Output::Close(id) => {
                    assert_eq!(id, self.id);
                    assert!(!self.closed, "closed twice");
                    self.closed = true;
                }
                Output::Datagram { .. } => panic!("a TCP connection produced a datagram"),
                Output::ResumeDatagrams | Output::ResumeAccepting => {}
                Output::StopListening => panic!("the harness never shuts the engine down"),
            }
        }
        woken
    }

    /// The engine's own service loop, then every output; again while the engine asks
    /// (a used-up budget, or an [`Output::Wake`]: a job's response is ready to write),
    /// as a driver does.
    fn service(&mut self) {
        loop {
            if self.closed {
                return;
            }
            self.sock.now = self.now;
            let serviced = self.engine.service(self.id, &mut self.sock, self.now);
            let woken = self.drain();
            if self.sock.eof_delivered {
                // End of stream is only read while the engine reads: the request is
                // incomplete, or the response is written.
                assert!(self.closed, "end of stream while reading left it open");
            }
            if serviced != Serviced::Budget && !woken {
                return;
            }
        }
    }

    fn finish(mut self) {
        if !self.closed {
            self.sock.arrived = self.sock.end;
            self.sock.room = usize::MAX;
            self.service();
            self.sock.client_eof = true;
            self.sock.end = self.sock.arrived;
            self.service();
        }
        if !self.closed {
            self.advance(Duration::from_secs(3600), true);
        }
        assert!(
            self.closed,
            "the connection outlived end of stream and every timer"
        );
        assert!(
            self.engine.is_idle(),
            "the engine holds something after the close"
        );
        assert_eq!(self.engine.connection_count(), 0);

        // The request as the engine saw it: the stream up to the client's shutdown.
        let delivered = &self.sock.stream[..self.sock.end];
        let expected = expected_tcp(delivered);
        match &self.sock.response {
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
                let written = &self.sock.written;
                assert!(written.len() <= response.len());
                assert_eq!(written[..], response[..written.len()]);
                model::check(request, Some(response), elapsed, &RANDOM);
            }
            None => {
                let cut = self.sock.reset || self.engine.counters().timed_out > 0;
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
