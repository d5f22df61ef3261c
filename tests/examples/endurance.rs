//! Endurance and limit runs against a running `raida-server` on 127.0.0.1: the client
//! side of the scripts in `scripts/endurance/` (which start the server with the right
//! flags, pass its PID, and stop it). Every run is bounded in count and time and ends
//! by itself; it prints `key=value` figures and exits 1 when a check fails.
//!
//! ```text
//! endurance many      --addr A --connections 10000 [--secs 60]
//! endurance idle      --addr A --pid P --connections 10000 [--settle-ms 1000]
//! endurance slowloris --addr A --slow 5000 --secs 20 [--load 64] [--timeout-ms 2000]
//! endurance flood     --addr A --pid P --secs 60 [--max-body 1024]
//! endurance limits    --addr A --max-connections 100 [--extra 50]
//! endurance fdlimit   --addr A --hold 300 [--waiting 50]
//! endurance bodies    --addr A --pid P --connections 10000 --budget BYTES [--source 127.0.0.2] [--secs 10]
//! endurance perip     --addr A --connections 1000 --limit 100 [--source 127.0.0.2] [--secs 5]
//! ```
//!
//! Requests are unencrypted echoes for raida id 0, coin id 0 (the embedded default).

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use polling::{Event, Events, PollMode, Poller};
use raida_client::{BuiltRequest, Keys, Request};
use socket2::{Domain, Protocol, Socket, Type};

type Res<T> = Result<T, String>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first().cloned() else {
        eprintln!("usage: endurance many|idle|slowloris|flood|limits|fdlimit --addr A ...");
        return ExitCode::from(2);
    };
    let opts = Opts::parse(&args[1..]);
    raida_tests::raise_nofile(1 << 20);
    let result = match cmd.as_str() {
        "many" => many(&opts),
        "idle" => idle(&opts),
        "slowloris" => slowloris(&opts),
        "flood" => flood(&opts),
        "limits" => limits(&opts),
        "fdlimit" => fdlimit(&opts),
        "bodies" => bodies(&opts),
        "perip" => perip(&opts),
        other => Err(format!("unknown run {other:?}")),
    };
    match result {
        Ok(()) => {
            println!("result=PASS");
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("result=FAIL {e}");
            ExitCode::from(1)
        }
    }
}

struct Opts(HashMap<String, String>);

impl Opts {
    fn parse(args: &[String]) -> Opts {
        let mut map = HashMap::new();
        let mut it = args.iter();
        while let Some(k) = it.next() {
            if let Some(k) = k.strip_prefix("--") {
                map.insert(k.to_string(), it.next().cloned().unwrap_or_default());
            }
        }
        Opts(map)
    }
    fn addr(&self) -> SocketAddr {
        self.0
            .get("addr")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 50000)))
    }
    fn num(&self, key: &str, default: u64) -> u64 {
        self.0
            .get(key)
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    }
}

fn echo_request(n: u16) -> BuiltRequest {
    let mut r = Request::echo(0, Keys::None);
    r.coin_id = 0;
    // Fixed challenge bytes: the run needs no secrecy, and this keeps it allocation-free.
    r.echo = n.to_be_bytes();
    match r.build() {
        Ok(b) => b,
        Err(e) => panic!("the echo request builds: {e}"),
    }
}

/// VmRSS of `pid` in KiB.
fn rss_kib(pid: u64) -> Res<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("reading /proc/{pid}/status: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| "no VmRSS".to_string())
}

// ----- a small multiplexed TCP client ------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    /// The server closed (FIN) after sending `got` bytes.
    Eof,
    /// A reset or another error.
    Error,
}

struct Conn {
    stream: TcpStream,
    out: Vec<u8>,
    sent: usize,
    got: Vec<u8>,
    opened: Instant,
    ended: Option<(End, Instant)>,
    writable_interest: bool,
}

/// Non-blocking TCP connections on one level-triggered poller.
struct Mux {
    poller: Poller,
    conns: Vec<Option<Conn>>,
    /// Slots freed by `close`, reused by `open`.
    free: Vec<usize>,
    events: Events,
}

impl Mux {
    fn new() -> Res<Mux> {
        Ok(Mux {
            poller: Poller::new().map_err(|e| format!("poller: {e}"))?,
            conns: Vec::new(),
            free: Vec::new(),
            events: Events::new(),
        })
    }

    /// Opens a connection that will send `out` (possibly nothing yet).
    fn open(&mut self, addr: SocketAddr, out: Vec<u8>) -> Res<usize> {
        self.open_from(None, addr, out)
    }

    /// [`Mux::open`] from source address `from` (any of 127.0.0.0/8 is local).
    fn open_from(&mut self, from: Option<IpAddr>, addr: SocketAddr, out: Vec<u8>) -> Res<usize> {
        let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))
            .map_err(|e| format!("socket: {e}"))?;
        if let Some(from) = from {
            socket
                .bind(&SocketAddr::new(from, 0).into())
                .map_err(|e| format!("bind {from}: {e}"))?;
        }
        socket
            .set_nonblocking(true)
            .map_err(|e| format!("nonblocking: {e}"))?;
        socket
            .set_nodelay(true)
            .map_err(|e| format!("nodelay: {e}"))?;
        match socket.connect(&addr.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => return Err(format!("connect: {e}")),
        }
        let stream = TcpStream::from(socket);
        let idx = self.free.pop().unwrap_or(self.conns.len());
        // SAFETY: deleted from the poller before the stream is dropped (`close`, Drop).
        unsafe {
            self.poller
                .add_with_mode(&stream, Event::all(idx), PollMode::Level)
                .map_err(|e| format!("poller add: {e}"))?;
        }
        let conn = Some(Conn {
            stream,
            out,
            sent: 0,
            got: Vec::new(),
            opened: Instant::now(),
            ended: None,
            writable_interest: true,
        });
        if idx == self.conns.len() {
            self.conns.push(conn);
        } else {
            self.conns[idx] = conn;
        }
        Ok(idx)
    }

    fn conn(&mut self, idx: usize) -> Option<&mut Conn> {
        self.conns.get_mut(idx).and_then(Option::as_mut)
    }

    /// Queues more bytes to send on `idx`.
    fn send(&mut self, idx: usize, bytes: &[u8]) {
        let Some(c) = self.conns.get_mut(idx).and_then(Option::as_mut) else {
            return;
        };
        if c.ended.is_some() {
            return;
        }
        c.out.extend_from_slice(bytes);
        if !c.writable_interest {
            c.writable_interest = true;
            let _ = self
                .poller
                .modify_with_mode(&c.stream, Event::all(idx), PollMode::Level);
        }
    }

    fn close(&mut self, idx: usize) {
        if let Some(c) = self.conns.get_mut(idx).and_then(Option::take) {
            let _ = self.poller.delete(&c.stream);
            self.free.push(idx);
        }
    }

    /// One wait (at most `timeout`) and the I/O it allows. Returns the indices that
    /// ended in this step.
    fn step(&mut self, timeout: Duration) -> Vec<usize> {
        self.events.clear();
        let _ = self.poller.wait(&mut self.events, Some(timeout));
        let keys: Vec<usize> = self.events.iter().map(|e| e.key).collect();
        let mut ended = Vec::new();
        for idx in keys {
            let Some(c) = self.conns.get_mut(idx).and_then(Option::as_mut) else {
                continue;
            };
            if c.ended.is_some() {
                continue;
            }
            while c.sent < c.out.len() {
                match c.stream.write(&c.out[c.sent..]) {
                    Ok(n) => c.sent += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => break,
                    Err(_) => {
                        c.ended = Some((End::Error, Instant::now()));
                        break;
                    }
                }
            }
            if c.ended.is_none() && c.sent == c.out.len() && c.writable_interest {
                c.writable_interest = false;
                let _ =
                    self.poller
                        .modify_with_mode(&c.stream, Event::readable(idx), PollMode::Level);
            }
            let mut buf = [0u8; 4096];
            while c.ended.is_none() {
                match c.stream.read(&mut buf) {
                    Ok(0) => c.ended = Some((End::Eof, Instant::now())),
                    Ok(n) => c.got.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => break,
                    Err(_) => c.ended = Some((End::Error, Instant::now())),
                }
            }
            if c.ended.is_some() {
                let _ = self.poller.delete(&c.stream);
                ended.push(idx);
            }
        }
        ended
    }
}

impl Drop for Mux {
    fn drop(&mut self) {
        for c in self.conns.iter().flatten() {
            let _ = self.poller.delete(&c.stream);
        }
    }
}

/// Whether `got` is exactly one valid response to `req` (nothing before or after).
fn exactly_one(req: &BuiltRequest, got: &[u8]) -> bool {
    let mut body = Vec::new();
    req.expect().check_into(got, &mut body).is_ok()
}

// ----- runs -----------------------------------------------------------------------------

/// N connections open at once, then every one sends its request: each must be answered
/// exactly once (one complete, verified response, then end of stream).
fn many(o: &Opts) -> Res<()> {
    let addr = o.addr();
    let n = o.num("connections", 10_000) as usize;
    let secs = o.num("secs", 60);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let req = echo_request(0x0102);
    let mut mux = Mux::new()?;
    let t0 = Instant::now();
    for _ in 0..n {
        mux.open(addr, Vec::new())?;
        // Keep the accept queue moving while opening.
        mux.step(Duration::ZERO);
    }
    let opened = t0.elapsed();
    for idx in 0..n {
        mux.send(idx, req.bytes());
    }
    let mut ended = 0;
    while ended < n && Instant::now() < deadline {
        ended += mux.step(Duration::from_millis(50)).len();
    }
    let (mut ok, mut bad, mut errors, mut unanswered) = (0, 0, 0, 0);
    for c in mux.conns.iter().flatten() {
        match c.ended {
            Some((End::Eof, _)) if exactly_one(&req, &c.got) => ok += 1,
            Some((End::Eof, _)) => bad += 1,
            Some((End::Error, _)) => errors += 1,
            None => unanswered += 1,
        }
    }
    println!(
        "run=many connections={n} open_s={:.2} total_s={:.2} answered_once={ok} \
         wrong_or_extra={bad} errors={errors} unanswered={unanswered}",
        opened.as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );
    if ok == n {
        Ok(())
    } else {
        Err(format!("{} of {n} not answered exactly once", n - ok))
    }
}

/// RSS per idle connection: VmRSS of the server before, then with N connections open
/// that send nothing (the server must run with a socket timeout longer than the run).
fn idle(o: &Opts) -> Res<()> {
    let addr = o.addr();
    let pid = o.num("pid", 0);
    let n = o.num("connections", 10_000) as usize;
    let settle = Duration::from_millis(o.num("settle-ms", 1000));
    let before = rss_kib(pid)?;
    let fds_before = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0);
    let mut mux = Mux::new()?;
    for _ in 0..n {
        mux.open(addr, Vec::new())?;
        mux.step(Duration::ZERO);
    }
    // Wait until the server holds them all (connects refused by a full accept queue
    // are retried by the kernel after 1 s, 3 s, ...), at most 20 s, then settle.
    let fds = || {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    let base_fds = fds_before;
    let until = Instant::now() + Duration::from_secs(20);
    while Instant::now() < until && fds() < base_fds + n {
        mux.step(Duration::from_millis(20));
    }
    let until = Instant::now() + settle;
    while Instant::now() < until {
        mux.step(Duration::from_millis(20));
    }
    let after = rss_kib(pid)?;
    let server_fds = fds().saturating_sub(base_fds);
    let still_open = mux
        .conns
        .iter()
        .flatten()
        .filter(|c| c.ended.is_none())
        .count();
    let per = (after.saturating_sub(before) as f64 * 1024.0) / n as f64;
    println!(
        "run=idle connections={n} open_at_end={still_open} server_connection_fds={server_fds} \
         rss_before_kib={before} rss_after_kib={after} bytes_per_connection={per:.0}"
    );
    if server_fds < n {
        return Err(format!(
            "the server holds {server_fds} connections, fewer than {n}"
        ));
    }
    if still_open != n {
        return Err(format!("only {still_open} of {n} stayed open"));
    }
    if per > 4096.0 {
        return Err(format!("{per:.0} bytes per idle connection > 4096"));
    }
    Ok(())
}

/// A closed-loop TCP echo load: `conc` requests in flight until `stop`; returns the
/// number of verified responses and errors.
fn normal_load(addr: SocketAddr, conc: usize, until: Instant) -> Res<(u64, u64)> {
    let req = echo_request(0x0a0b);
    let mut mux = Mux::new()?;
    for _ in 0..conc {
        mux.open(addr, req.bytes().to_vec())?;
    }
    let (mut ok, mut err) = (0u64, 0u64);
    while Instant::now() < until {
        for idx in mux.step(Duration::from_millis(5)) {
            let good = mux.conn(idx).is_some_and(|c| {
                c.ended.map(|e| e.0) == Some(End::Eof) && exactly_one(&req, &c.got)
            });
            if good {
                ok += 1;
            } else {
                err += 1;
            }
            mux.close(idx);
            if Instant::now() < until {
                mux.open(addr, req.bytes().to_vec())?;
            }
        }
        // Slots are reused: the table stays at `conc`.
        if mux.conns.len() > conc {
            return Err("the normal load leaked connection slots".into());
        }
    }
    Ok((ok, err))
}

/// `slow` connections dribbling one byte of a valid request per second (re-opened as
/// the server closes them), while a normal load runs; the normal load alone first.
fn slowloris(o: &Opts) -> Res<()> {
    let addr = o.addr();
    let slow = o.num("slow", 5000) as usize;
    let secs = o.num("secs", 20);
    let conc = o.num("load", 64) as usize;
    let timeout = Duration::from_millis(o.num("timeout-ms", 2000));
    let phase = Duration::from_secs(secs);

    let (alone, alone_err) = normal_load(addr, conc, Instant::now() + phase)?;
    let alone_rps = alone as f64 / phase.as_secs_f64();

    let stop = Arc::new(AtomicBool::new(false));
    let closed = Arc::new(AtomicU64::new(0));
    let early = Arc::new(AtomicU64::new(0));
    let late = Arc::new(AtomicU64::new(0));
    let life_sum_ms = Arc::new(AtomicU64::new(0));
    let slow_thread = {
        let (stop, closed, early, late, life_sum_ms) = (
            Arc::clone(&stop),
            Arc::clone(&closed),
            Arc::clone(&early),
            Arc::clone(&late),
            Arc::clone(&life_sum_ms),
        );
        std::thread::spawn(move || -> Res<u64> {
            let req = echo_request(0x0c0d);
            let bytes = req.bytes().to_vec();
            let mut mux = Mux::new()?;
            // Bytes dribbled so far, by connection index (a closed connection's index
            // is reused by the one opened in its place).
            let mut dribbled: Vec<usize> = Vec::with_capacity(slow);
            for _ in 0..slow {
                let idx = mux.open(addr, Vec::new())?;
                if dribbled.len() <= idx {
                    dribbled.resize(idx + 1, 0);
                }
            }
            let mut opened = slow as u64;
            let mut next_tick = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                if Instant::now() >= next_tick {
                    next_tick += Duration::from_secs(1);
                    for (idx, pos) in dribbled.iter_mut().enumerate() {
                        if *pos < bytes.len() {
                            mux.send(idx, &bytes[*pos..*pos + 1]);
                            *pos += 1;
                        }
                    }
                }
                for idx in mux.step(Duration::from_millis(20)) {
                    if let Some(c) = mux.conn(idx) {
                        if let Some((_, at)) = c.ended {
                            let life = at.duration_since(c.opened);
                            closed.fetch_add(1, Ordering::Relaxed);
                            life_sum_ms.fetch_add(life.as_millis() as u64, Ordering::Relaxed);
                            // Closed at the socket timeout: not before it, and not much after.
                            if life + Duration::from_millis(50) < timeout {
                                early.fetch_add(1, Ordering::Relaxed);
                            } else if life > timeout + Duration::from_millis(1500) {
                                late.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    mux.close(idx);
                    let new = mux.open(addr, Vec::new())?;
                    if dribbled.len() <= new {
                        dribbled.resize(new + 1, 0);
                    }
                    dribbled[new] = 0;
                    opened += 1;
                }
            }
            Ok(opened)
        })
    };
    // Let the slow connections build up before measuring.
    std::thread::sleep(Duration::from_secs(2));
    let (with, with_err) = normal_load(addr, conc, Instant::now() + phase)?;
    stop.store(true, Ordering::Relaxed);
    let opened = slow_thread
        .join()
        .map_err(|_| "slow thread panicked".to_string())??;
    let with_rps = with as f64 / phase.as_secs_f64();
    let ratio = with_rps / alone_rps.max(1.0);
    let closed = closed.load(Ordering::Relaxed);
    let mean_life = life_sum_ms.load(Ordering::Relaxed) as f64 / closed.max(1) as f64;
    println!(
        "run=slowloris slow={slow} secs={secs} load={conc} alone_rps={alone_rps:.0} \
         alone_errors={alone_err} with_slow_rps={with_rps:.0} with_slow_errors={with_err} \
         ratio={ratio:.3} slow_opened={opened} slow_closed={closed} \
         mean_slow_life_ms={mean_life:.0} closed_early={} closed_late={}",
        early.load(Ordering::Relaxed),
        late.load(Ordering::Relaxed)
    );
    if ratio < 0.8 {
        return Err(format!(
            "normal load kept {ratio:.3} < 0.8 of its throughput"
        ));
    }
    if closed == 0 || early.load(Ordering::Relaxed) > 0 {
        return Err("slow connections not closed at the socket timeout".into());
    }
    Ok(())
}

/// A small xorshift generator: garbage needs no quality.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// Whether a fresh echo over TCP and over UDP is answered correctly.
fn still_answers(addr: SocketAddr) -> Res<()> {
    let req = echo_request(0x7777);
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| format!("connect after: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    s.write_all(req.bytes())
        .map_err(|e| format!("write after: {e}"))?;
    let got = raida_tests::read_to_eof(&mut s).map_err(|e| format!("read after: {e}"))?;
    if !exactly_one(&req, &got) {
        return Err("TCP answer after the run does not verify".into());
    }
    let u = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    u.set_read_timeout(Some(Duration::from_millis(500)))
        .map_err(|e| e.to_string())?;
    let mut buf = [0u8; 2048];
    for _ in 0..5 {
        u.send_to(req.bytes(), addr).map_err(|e| e.to_string())?;
        if let Ok((n, _)) = u.recv_from(&mut buf) {
            return if exactly_one(&req, &buf[..n]) {
                Ok(())
            } else {
                Err("UDP answer after the run does not verify".into())
            };
        }
    }
    Err("no UDP answer after the run".into())
}

/// A minute (by default) of garbage: random bytes over TCP and UDP, valid headers
/// declaring oversized bodies, half-open connections; RSS sampled every second.
fn flood(o: &Opts) -> Res<()> {
    let addr = o.addr();
    let pid = o.num("pid", 0);
    let secs = o.num("secs", 60);
    let until = Instant::now() + Duration::from_secs(secs);
    let stop = Arc::new(AtomicBool::new(false));
    let counts: Arc<[AtomicU64; 5]> = Arc::new(Default::default());
    let rss_start = rss_kib(pid)?;

    let mut threads = Vec::new();
    // TCP garbage: connect, write 1..4096 random bytes, half the time shut down the
    // write side, close after reading whatever comes (bounded).
    {
        let (stop, counts) = (Arc::clone(&stop), Arc::clone(&counts));
        threads.push(std::thread::spawn(move || {
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
            let mut buf = vec![0u8; 4096];
            while !stop.load(Ordering::Relaxed) {
                let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
                    continue;
                };
                let _ = s.set_read_timeout(Some(Duration::from_millis(300)));
                let len = 1 + (rng.next() % 4096) as usize;
                rng.fill(&mut buf[..len]);
                let _ = s.write_all(&buf[..len]);
                if rng.next() % 2 == 0 {
                    let _ = s.shutdown(Shutdown::Write);
                }
                let mut sink = [0u8; 512];
                let _ = s.read(&mut sink);
                counts[0].fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    // UDP garbage: random datagrams of 0..2000 bytes.
    {
        let (stop, counts) = (Arc::clone(&stop), Arc::clone(&counts));
        threads.push(std::thread::spawn(move || {
            let mut rng = Rng(0x2545_f491_4f6c_dd1d);
            let Ok(u) = UdpSocket::bind("127.0.0.1:0") else {
                return;
            };
            let _ = u.set_nonblocking(true);
            let mut buf = vec![0u8; 2000];
            let mut sink = [0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                let len = (rng.next() % 2000) as usize;
                rng.fill(&mut buf[..len]);
                // Some garbage with a plausible header start.
                if len > 24 && rng.next() % 4 == 0 {
                    buf[2] = 0;
                    buf[6] = 0;
                    buf[7] = 0;
                    buf[16] = (rng.next() % 6) as u8;
                }
                if u.send_to(&buf[..len], addr).is_ok() {
                    counts[1].fetch_add(1, Ordering::Relaxed);
                }
                while u.recv_from(&mut sink).is_ok() {}
                if counts[1].load(Ordering::Relaxed) % 256 == 0 {
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
        }));
    }
    // Oversized declared bodies: a valid echo header declaring 65535 body bytes (more
    // than the server's --max-body-size); the answer must come before any body is sent.
    {
        let (stop, counts) = (Arc::clone(&stop), Arc::clone(&counts));
        threads.push(std::thread::spawn(move || {
            let req = echo_request(0x4242);
            let mut header = req.bytes()[..32].to_vec();
            header[22] = 0xff;
            header[23] = 0xff;
            while !stop.load(Ordering::Relaxed) {
                let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
                    continue;
                };
                let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
                let _ = s.write_all(&header);
                let mut got = [0u8; 64];
                match s.read(&mut got) {
                    Ok(n) if n >= 3 && got[2] == 16 => {
                        counts[2].fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        counts[4].fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    // Half-open: connections that send part of a header and then nothing, up to 500 at
    // a time; the server closes them at its socket timeout.
    {
        let (stop, counts) = (Arc::clone(&stop), Arc::clone(&counts));
        threads.push(std::thread::spawn(move || {
            let req = echo_request(0x4343);
            let mut held: std::collections::VecDeque<TcpStream> = Default::default();
            while !stop.load(Ordering::Relaxed) {
                if held.len() >= 500 {
                    held.pop_front();
                }
                if let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
                    let _ = s.write_all(&req.bytes()[..20]);
                    held.push_back(s);
                    counts[3].fetch_add(1, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        }));
    }
    let mut rss_max = rss_start;
    let mut rss_min = rss_start;
    let mut samples = Vec::new();
    while Instant::now() < until {
        std::thread::sleep(Duration::from_secs(1));
        let r = rss_kib(pid)?;
        rss_max = rss_max.max(r);
        rss_min = rss_min.min(r);
        samples.push(r);
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    // Half-open connections are dropped; let the server close what is left.
    std::thread::sleep(Duration::from_millis(500));
    let after = still_answers(addr);
    let rss_end = rss_kib(pid)?;
    let c: Vec<u64> = counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    // Flat: the second half of the run grows no more than 10% (and 4 MiB) over the first.
    let half = samples.len() / 2;
    let first_max = samples[..half].iter().copied().max().unwrap_or(rss_start);
    let second_max = samples[half..].iter().copied().max().unwrap_or(rss_start);
    println!(
        "run=flood secs={secs} tcp_garbage_conns={} udp_garbage_datagrams={} \
         oversized_answered_16={} oversized_other={} half_open={} rss_start_kib={rss_start} \
         rss_min_kib={rss_min} rss_max_kib={rss_max} rss_first_half_max_kib={first_max} \
         rss_second_half_max_kib={second_max} rss_end_kib={rss_end} answers_after={}",
        c[0],
        c[1],
        c[2],
        c[4],
        c[3],
        if after.is_ok() { "ok" } else { "FAILED" }
    );
    after?;
    if second_max > first_max + (first_max / 10).max(4096) {
        return Err(format!("RSS grew from {first_max} to {second_max} KiB"));
    }
    if c[4] > c[2] / 100 {
        return Err(format!("{} oversized requests not answered 16", c[4]));
    }
    Ok(())
}

/// Hitting `max_connections`: `max` idle connections held, `extra` more each get an
/// explicit 160 and end of stream; once all close, requests are served again.
fn limits(o: &Opts) -> Res<()> {
    let addr = o.addr();
    let max = o.num("max-connections", 100) as usize;
    let extra = o.num("extra", 50) as usize;
    let mut mux = Mux::new()?;
    for _ in 0..max {
        mux.open(addr, Vec::new())?;
    }
    // Let the server accept them all.
    let until = Instant::now() + Duration::from_millis(500);
    while Instant::now() < until {
        mux.step(Duration::from_millis(10));
    }
    let mut refused = Vec::new();
    for _ in 0..extra {
        refused.push(mux.open(addr, Vec::new())?);
    }
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until
        && refused
            .iter()
            .any(|&i| mux.conns[i].as_ref().is_some_and(|c| c.ended.is_none()))
    {
        mux.step(Duration::from_millis(10));
    }
    let mut got_160 = 0;
    for &i in &refused {
        if let Some(c) = &mux.conns[i] {
            if c.ended.map(|e| e.0) == Some(End::Eof) && c.got.len() == 32 && c.got[2] == 160 {
                got_160 += 1;
            }
        }
    }
    let held_open = (0..max)
        .filter(|&i| mux.conns[i].as_ref().is_some_and(|c| c.ended.is_none()))
        .count();
    drop(mux);
    std::thread::sleep(Duration::from_millis(300));
    // Recovery: a burst of normal requests, all answered.
    let (ok, err) = normal_load(addr, 32, Instant::now() + Duration::from_secs(2))?;
    let after = still_answers(addr);
    println!(
        "run=limits max_connections={max} held_open={held_open} extra={extra} \
         refused_with_160={got_160} after_ok={ok} after_errors={err} answers_after={}",
        if after.is_ok() { "ok" } else { "FAILED" }
    );
    after?;
    if got_160 != extra {
        return Err(format!(
            "{got_160} of {extra} refusals were an explicit 160"
        ));
    }
    if err > 0 || ok == 0 {
        return Err("requests failed after the connections closed".into());
    }
    Ok(())
}

/// Hitting the server's file descriptor limit (run it with a low `ulimit -n`): `hold`
/// idle connections exhaust it; `waiting` more send a request and wait in the backlog;
/// once the held ones close, the waiting ones are answered and new ones are too.
fn fdlimit(o: &Opts) -> Res<()> {
    let addr = o.addr();
    let hold = o.num("hold", 300) as usize;
    let waiting = o.num("waiting", 50) as usize;
    let req = echo_request(0x5151);
    let mut mux = Mux::new()?;
    let mut held = Vec::new();
    for _ in 0..hold {
        held.push(mux.open(addr, Vec::new())?);
    }
    let until = Instant::now() + Duration::from_millis(500);
    while Instant::now() < until {
        mux.step(Duration::from_millis(10));
    }
    let mut waiters = Vec::new();
    for _ in 0..waiting {
        waiters.push(mux.open(addr, req.bytes().to_vec())?);
    }
    let until = Instant::now() + Duration::from_millis(1000);
    while Instant::now() < until {
        mux.step(Duration::from_millis(10));
    }
    let answered_while_full = waiters
        .iter()
        .filter(|&&i| mux.conns[i].as_ref().is_some_and(|c| c.ended.is_some()))
        .count();
    let t_release = Instant::now();
    for &i in &held {
        mux.close(i);
    }
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until
        && waiters
            .iter()
            .any(|&i| mux.conns[i].as_ref().is_some_and(|c| c.ended.is_none()))
    {
        mux.step(Duration::from_millis(10));
    }
    let recovered_ms = t_release.elapsed().as_millis();
    let ok_after = waiters
        .iter()
        .filter(|&&i| {
            mux.conns[i].as_ref().is_some_and(|c| {
                c.ended.map(|e| e.0) == Some(End::Eof) && exactly_one(&req, &c.got)
            })
        })
        .count();
    drop(mux);
    let after = still_answers(addr);
    println!(
        "run=fdlimit hold={hold} waiting={waiting} answered_while_full={answered_while_full} \
         answered_after_release={ok_after} recovered_ms={recovered_ms} answers_after={}",
        if after.is_ok() { "ok" } else { "FAILED" }
    );
    after?;
    if ok_after != waiting {
        return Err(format!(
            "{ok_after} of {waiting} waiting requests answered after release"
        ));
    }
    Ok(())
}

/// The source address of the attacking connections (`--source`, default 127.0.0.2).
fn source(o: &Opts) -> Res<IpAddr> {
    o.0.get("source")
        .map_or("127.0.0.2", String::as_str)
        .parse()
        .map_err(|e| format!("--source: {e}"))
}

/// Runs the normal echo load (from 127.0.0.1) on its own thread for `secs`.
fn normal_load_thread(
    addr: SocketAddr,
    conc: usize,
    secs: u64,
) -> std::thread::JoinHandle<Res<(u64, u64)>> {
    std::thread::spawn(move || normal_load(addr, conc, Instant::now() + Duration::from_secs(secs)))
}

/// The memory attack on the buffered-bytes budget: `connections` connections from `--source`, each a
/// type-0 header declaring 65,535 body bytes, then 65,000 of them, then nothing. The
/// server's RSS must stay within `--budget` (its max_buffered_bytes) + 64 MB, while a
/// normal echo load from 127.0.0.1 runs (its rate alone first, then under the attack).
fn bodies(o: &Opts) -> Res<()> {
    let addr = o.addr();
    let pid = o.num("pid", 0);
    let n = o.num("connections", 10_000) as usize;
    let budget_kib = o.num("budget", 64 << 20) / 1024;
    let secs = o.num("secs", 10);
    let load = o.num("load", 64) as usize;
    let from = source(o)?;
    let rss_before = rss_kib(pid)?;
    let (alone, alone_err) = normal_load_thread(addr, load, secs)
        .join()
        .map_err(|_| "the load thread panicked".to_string())??;
    // The attack: header declaring 65,535, then 65,000 body bytes.
    let mut header = echo_request(0x7777).bytes()[..32].to_vec();
    header[22..24].copy_from_slice(&65_535u16.to_be_bytes());
    let mut out = header;
    out.extend_from_slice(&[0x41u8; 65_000]);
    let mut mux = Mux::new()?;
    for _ in 0..n {
        mux.open_from(Some(from), addr, out.clone())?;
    }
    let under = normal_load_thread(addr, load, secs);
    let until = Instant::now() + Duration::from_secs(secs);
    let mut peak = rss_before;
    let mut ended = 0usize;
    while Instant::now() < until {
        ended += mux.step(Duration::from_millis(20)).len();
        peak = peak.max(rss_kib(pid)?);
    }
    let (with_attack, attack_err) = under
        .join()
        .map_err(|_| "the load thread panicked".to_string())??;
    let sent: usize = mux.conns.iter().flatten().map(|c| c.sent).sum();
    drop(mux);
    let ratio = with_attack as f64 / alone.max(1) as f64;
    println!(
        "run=bodies connections={n} source={from} body_bytes_sent={sent} closed_by_server={ended} \
         rss_before_kib={rss_before} rss_peak_kib={peak} budget_kib={budget_kib} \
         bound_kib={} echo_alone={alone} echo_under_attack={with_attack} ratio={ratio:.3} \
         errors_alone={alone_err} errors_under_attack={attack_err}",
        budget_kib + 64 * 1024,
    );
    still_answers(addr)?;
    if peak > budget_kib + 64 * 1024 {
        return Err(format!(
            "RSS peaked at {peak} KiB, over max_buffered_bytes + 64 MB ({} KiB)",
            budget_kib + 64 * 1024
        ));
    }
    Ok(())
}

/// The per-client fairness run: with `--limit` connections per client and no trusted
/// network, `connections` connections from `--source` get exactly `connections -
/// limit` refusals with 160, while a normal echo load from 127.0.0.1 goes on.
fn perip(o: &Opts) -> Res<()> {
    let addr = o.addr();
    let n = o.num("connections", 1000) as usize;
    let limit = o.num("limit", 100) as usize;
    let secs = o.num("secs", 5);
    let load = o.num("load", 64) as usize;
    let from = source(o)?;
    let (alone, alone_err) = normal_load_thread(addr, load, secs)
        .join()
        .map_err(|_| "the load thread panicked".to_string())??;
    let under = normal_load_thread(addr, load, secs);
    let mut mux = Mux::new()?;
    let idx: Vec<usize> = (0..n)
        .map(|_| mux.open_from(Some(from), addr, Vec::new()))
        .collect::<Res<_>>()?;
    let until = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < until {
        mux.step(Duration::from_millis(10));
    }
    let (with_attack, attack_err) = under
        .join()
        .map_err(|_| "the load thread panicked".to_string())??;
    let refused = idx
        .iter()
        .filter(|&&i| {
            mux.conns[i].as_ref().is_some_and(|c| {
                c.ended.map(|e| e.0) == Some(End::Eof) && c.got.len() == 32 && c.got[2] == 160
            })
        })
        .count();
    let open = idx
        .iter()
        .filter(|&&i| mux.conns[i].as_ref().is_some_and(|c| c.ended.is_none()))
        .count();
    drop(mux);
    let ratio = with_attack as f64 / alone.max(1) as f64;
    println!(
        "run=perip connections={n} source={from} limit={limit} refused_with_160={refused} \
         held_open={open} echo_alone={alone} echo_under_attack={with_attack} ratio={ratio:.3} \
         errors_alone={alone_err} errors_under_attack={attack_err}"
    );
    if refused != n - limit || open != limit {
        return Err(format!(
            "{refused} refusals with 160 and {open} open, for {n} connections at {limit} a client"
        ));
    }
    Ok(())
}
