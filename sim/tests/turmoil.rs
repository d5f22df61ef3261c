//! The engine under turmoil's simulated network and clock, through a small async
//! driver with the loop shape of `io-epoll`: one task owns the engine and every socket,
//! services a connection through the engine's own service loop (non-blocking reads and
//! writes by `poll_read` / `poll_write`, whose wakers stand in for epoll's readiness
//! edges), drains every output after every input, and sleeps until `poll_timeout()`.
//! Workers are tokio tasks.
//!
//! turmoil's TCP has no retransmit: scenarios use loss only for UDP, and partitions
//! and holds for TCP. Time comes from `tokio::time::Instant` (paused and driven by
//! turmoil), never from `std::time::Instant::now`.

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use raida_core::codec::{Arrival, RANDOM_LEN};
use raida_core::{
    Accept, CommandRegistry, Completion, ConnId, ConnSocket, Engine, EngineConfig, Io, Job, Output,
    Timestamp, Transport,
};
use raida_sim::oracle::Oracle;
use raida_sim::request::{self, ClientRequest};
use raida_sim::rng::Rng;
use raida_sim::server;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};
use tokio::sync::Notify;
use tokio::time::Instant;
use turmoil::net::{TcpListener, TcpStream, UdpSocket};

const PORT: u16 = 50_007;
/// The random bytes every job of this driver gets (responses stay comparable).
const RANDOM: [u8; RANDOM_LEN] = [0xA5; RANDOM_LEN];
const TIMEOUT: Duration = Duration::from_millis(2000);

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// What the server host reports to the test, updated after every loop turn.
#[derive(Debug, Default, Clone)]
struct Report {
    connections: usize,
    /// Connections accepted by the engine.
    accepted: u64,
    /// Every connection the engine closed, in order: (its place in accept order,
    /// whether its whole response was written).
    closed: Vec<(u32, bool)>,
    /// Sockets the driver still holds (it drops one on the engine's `Close`).
    sockets: usize,
    in_flight: usize,
    timed_out: u64,
    reset: u64,
    abandoned: u64,
    tcp_responses: u64,
    udp_responses: u64,
    late_dropped: u64,
    max_in_flight: usize,
    idle: bool,
    starts: u32,
}

/// Completions from the worker tasks.
#[derive(Debug)]
struct Done(Completion);

/// Connections whose socket became ready (their waker fired), and the server task's
/// wake-up.
#[derive(Debug, Default)]
struct ReadySet {
    ids: Mutex<VecDeque<ConnId>>,
    notify: Notify,
}

/// A connection's waker: readiness of its socket queues its id and wakes the loop,
/// like an edge-triggered epoll event.
#[derive(Debug)]
struct ConnWaker {
    id: ConnId,
    ready: Arc<ReadySet>,
}

impl Wake for ConnWaker {
    fn wake(self: Arc<Self>) {
        if let Ok(mut ids) = self.ready.ids.lock() {
            ids.push_back(self.id);
        }
        self.ready.notify.notify_one();
    }
}

/// One connection: its stream and its waker.
#[derive(Debug)]
struct Conn {
    stream: TcpStream,
    waker: Waker,
    /// Its place in accept order (0: the first accepted).
    nth: u32,
    /// The engine wrote its whole response and shut down the write side.
    answered: bool,
}

/// A turmoil stream as the engine's service loop sees it: non-blocking reads and
/// writes through `poll_read` / `poll_write` with the connection's waker (Pending is
/// would-block; the waker reports readiness later).
struct TurmoilSocket<'a> {
    conn: &'a mut Conn,
}

impl ConnSocket for TurmoilSocket<'_> {
    fn read(&mut self, buf: &mut [u8]) -> Io {
        let mut cx = Context::from_waker(&self.conn.waker);
        let mut rb = ReadBuf::new(buf);
        match Pin::new(&mut self.conn.stream).poll_read(&mut cx, &mut rb) {
            Poll::Ready(Ok(())) if rb.filled().is_empty() => Io::Eof,
            Poll::Ready(Ok(())) => Io::Done(rb.filled().len()),
            Poll::Ready(Err(_)) => Io::Failed,
            Poll::Pending => Io::WouldBlock,
        }
    }

    fn write(&mut self, bytes: &[u8]) -> Io {
        let mut cx = Context::from_waker(&self.conn.waker);
        match Pin::new(&mut self.conn.stream).poll_write(&mut cx, bytes) {
            Poll::Ready(Ok(n)) => Io::of_write(Ok(n)),
            Poll::Ready(Err(_)) => Io::Failed,
            Poll::Pending => Io::WouldBlock,
        }
    }

    fn shutdown_write(&mut self) {
        self.conn.answered = true;
        let mut cx = Context::from_waker(&self.conn.waker);
        let _ = Pin::new(&mut self.conn.stream).poll_shutdown(&mut cx);
    }
}

fn config() -> EngineConfig {
    let mut config = EngineConfig::default();
    config.raida_id = server::RAIDA_ID;
    config.coin_id = server::COIN_ID;
    config.socket_timeout = TIMEOUT;
    config.mod_queue_size = 4;
    config
}

fn now(epoch: Instant) -> Timestamp {
    // +1: nothing happens at the driver's epoch itself.
    Timestamp::from_micros(epoch.elapsed().as_micros() as u64 + 1)
}

/// The server: the driver loop around one engine, servicing connections through the
/// engine's own service loop.
async fn serve(report: Arc<Mutex<Report>>, worker_delay: Duration) -> TestResult {
    if let Ok(mut r) = report.lock() {
        r.starts += 1;
    }
    let any = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    let listener = TcpListener::bind((any, PORT)).await?;
    let udp = UdpSocket::bind((any, PORT)).await?;
    let mut engine = Engine::new(
        config(),
        CommandRegistry::with_builtins(),
        Arc::new(server::key_store()),
    );
    let epoch = Instant::now();
    let (done_tx, mut done_rx) = unbounded_channel::<Done>();
    let ready = Arc::new(ReadySet::default());
    let mut conns: BTreeMap<ConnId, Conn> = BTreeMap::new();
    let mut next_nth = 0u32;
    let mut closed: Vec<(u32, bool)> = Vec::new();
    let mut udp_buf = vec![0u8; 2048];
    loop {
        let deadline = engine
            .poll_timeout()
            .map(|t| epoch + Duration::from_micros(t.as_micros().saturating_sub(1)));
        let mut wakes: VecDeque<ConnId> = VecDeque::new();
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = accepted?;
                match engine.handle_accept(peer, now(epoch)) {
                    Accept::Accepted(id) => {
                        let waker = Waker::from(Arc::new(ConnWaker { id, ready: Arc::clone(&ready) }));
                        conns.insert(id, Conn { stream, waker, nth: next_nth, answered: false });
                        next_nth += 1;
                        // Try the read right after accepting.
                        wakes.push_back(id);
                    }
                    Accept::Refused(bytes) => {
                        tokio::spawn(async move {
                            let mut stream = stream;
                            let _ = stream.write_all(&bytes).await;
                        });
                    }
                }
            }
            got = udp.recv_from(&mut udp_buf), if engine.wants_datagrams() => {
                let (n, peer) = got?;
                engine.handle_datagram(peer, &udp_buf[..n], now(epoch));
            }
            () = ready.notify.notified() => {
                if let Ok(mut ids) = ready.ids.lock() {
                    wakes.extend(ids.drain(..));
                }
            }
            Some(Done(completion)) = done_rx.recv() => engine.handle_completion(completion, now(epoch)),
            () = sleep_until(deadline) => engine.handle_timeout(now(epoch)),
        }
        // Drain every output, then service every woken connection, until quiet.
        loop {
            while let Some(out) = engine.poll_output() {
                match out {
                    Output::Job(job) => spawn_worker(job, worker_delay, epoch, done_tx.clone()),
                    Output::Wake(id) => wakes.push_back(id),
                    Output::Close(id) => {
                        if let Some(conn) = conns.remove(&id) {
                            closed.push((conn.nth, conn.answered));
                        }
                    }
                    Output::Datagram { peer, bytes } => {
                        let _ = udp.send_to(&bytes, peer).await;
                    }
                    // The select guard reads `wants_datagrams()` again on the next turn;
                    // this driver accepts without the engine's accept loop.
                    Output::ResumeDatagrams | Output::ResumeAccepting => {}
                    Output::StopListening => {}
                    // No peer calls in this world: every connect is refused.
                    Output::Connect { id, .. } => engine.handle_connect_failed(id, now(epoch)),
                    Output::WakePeer(_) | Output::ClosePeer(_) => {}
                    // The store is in memory: nothing waits for a sync.
                    Output::Sync => engine.handle_commit(now(epoch)),
                }
            }
            let Some(id) = wakes.pop_front() else { break };
            if let Some(conn) = conns.get_mut(&id) {
                let _ = engine.service(id, &mut TurmoilSocket { conn }, now(epoch));
            }
        }
        if let Ok(mut r) = report.lock() {
            let c = engine.counters();
            r.connections = engine.connection_count();
            r.accepted = c.accepted;
            r.closed.clone_from(&closed);
            r.sockets = conns.len();
            r.in_flight = engine.in_flight();
            r.max_in_flight = r.max_in_flight.max(engine.in_flight());
            r.timed_out = c.timed_out;
            r.reset = c.reset;
            r.abandoned = c.abandoned;
            r.tcp_responses = c.tcp_responses;
            r.udp_responses = c.udp_responses;
            r.late_dropped = c.late_completions_dropped;
            r.idle = engine.is_idle();
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

fn spawn_worker(job: Job, delay: Duration, epoch: Instant, done: UnboundedSender<Done>) {
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        let mut scratch = Vec::new();
        let completion = job.run(now(epoch), &RANDOM, &mut scratch);
        let _ = done.send(Done(completion));
    });
}

// ----- the client side --------------------------------------------------------------

/// The codec's answer to `request`, with the elapsed field the server put in
/// `response` (elapsed depends on the simulated schedule; everything else must match).
fn expected(request: &[u8], response: &[u8]) -> Vec<u8> {
    let long = request.get(16).is_some_and(|&b| b > 2);
    let at = if long { 4 } else { 12 };
    let elapsed = response
        .get(at..at + 4)
        .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    // Echo and version do not read the arrival.
    let arrival = Arrival {
        peer: SocketAddr::from(([0, 0, 0, 0], 0)),
        transport: Transport::Tcp,
        at: Timestamp::ZERO,
    };
    Oracle::new(65_536)
        .answer(request, &arrival, elapsed, &RANDOM)
        .unwrap_or_default()
}

/// Echo or version, of every encryption type in turn, told apart by echo and nonce
/// bytes, with a payload of 0 to 6 bytes.
fn request(i: u32) -> Vec<u8> {
    let mut r = request::for_command(0, (i % 2) as u8, [0u8, 1, 2, 4, 5][i as usize % 5]);
    r.echo = [i as u8, (i >> 8) as u8];
    r.nonce[7] = i as u8;
    r.payload = vec![i as u8; (i % 7) as usize];
    ClientRequest::new(r).bytes().to_vec()
}

async fn tcp_exchange(req: &[u8]) -> Result<Vec<u8>, std::io::Error> {
    let mut s = TcpStream::connect(("server", PORT)).await?;
    s.write_all(req).await?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).await?;
    Ok(out)
}

/// turmoil's own randomness (latencies, loss), from the simulator's SplitMix64 and
/// `SIM_SEED` (default 0): never from the machine's entropy.
#[derive(Debug)]
struct SeededRng(Rng);

impl rand_core::RngCore for SeededRng {
    fn next_u32(&mut self) -> u32 {
        (self.0.next_u64() >> 32) as u32
    }
    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.0.fill(dest);
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.0.fill(dest);
        Ok(())
    }
}

fn build(b: &mut turmoil::Builder) -> turmoil::Sim<'static> {
    b.build_with_rng(Box::new(SeededRng(Rng::new(raida_sim::seed_from_env()))))
}

fn sim(seconds: u64) -> turmoil::Sim<'static> {
    build(
        turmoil::Builder::new()
            .simulation_duration(Duration::from_secs(seconds))
            .tick_duration(Duration::from_millis(1)),
    )
}

fn report(r: &Arc<Mutex<Report>>) -> Report {
    r.lock().map(|g| g.clone()).unwrap_or_default()
}

fn server(sim: &mut turmoil::Sim<'static>, delay: Duration) -> Arc<Mutex<Report>> {
    let rep = Arc::new(Mutex::new(Report::default()));
    let r = rep.clone();
    sim.host("server", move || serve(r.clone(), delay));
    rep
}

// ----- scenarios --------------------------------------------------------------------

#[test]
fn many_client_hosts_each_get_exactly_their_answer() -> TestResult {
    let mut sim = sim(30);
    let rep = server(&mut sim, Duration::from_millis(3));
    for h in 0..12u32 {
        sim.client(format!("client{h}"), async move {
            for k in 0..3u32 {
                let req = request(h * 3 + k);
                let out = tcp_exchange(&req).await?;
                assert_eq!(out, expected(&req, &out), "client {h} request {k}");
            }
            Ok(())
        });
    }
    sim.run()?;
    let r = report(&rep);
    assert_eq!(r.tcp_responses, 36);
    assert!(r.max_in_flight <= 4, "in-flight bound");
    Ok(())
}

#[test]
fn a_partition_mid_request_times_the_connection_out_and_the_next_one_works() -> TestResult {
    let mut sim = sim(30);
    let rep = server(&mut sim, Duration::ZERO);
    let req = request(4);
    let half = req.len() / 2;
    let r2 = req.clone();
    sim.client("client", async move {
        let mut s = TcpStream::connect(("server", PORT)).await?;
        s.write_all(&r2[..half]).await?;
        // The partition eats the rest; the server's socket timeout must close it.
        tokio::time::sleep(Duration::from_millis(100)).await;
        s.write_all(&r2[half..]).await?;
        tokio::time::sleep(TIMEOUT * 2).await;
        // Healed by now: a fresh connection is served.
        let out = tcp_exchange(&r2).await?;
        assert_eq!(out, expected(&r2, &out));
        Ok(())
    });
    // Let the first half through, then cut the link until well past the timeout.
    for _ in 0..50 {
        sim.step()?;
    }
    sim.partition("client", "server");
    for _ in 0..(TIMEOUT.as_millis() as usize + 500) {
        sim.step()?;
    }
    let mid = report(&rep);
    assert_eq!(mid.accepted, 1, "one connection so far");
    assert_eq!(mid.timed_out, 1, "closed by the socket timeout");
    assert_eq!(mid.closed, [(0, false)], "the first connection, unanswered");
    assert_eq!((mid.connections, mid.sockets), (0, 0), "(engine, driver)");
    assert_eq!(mid.tcp_responses, 0);
    sim.repair("client", "server");
    sim.run()?;
    // The client is done once it read the response; the server closes the second
    // connection when the client's FIN arrives (or at the linger deadline).
    for _ in 0..1_000 {
        if report(&rep).idle {
            break;
        }
        sim.step()?;
    }
    let r = report(&rep);
    assert_eq!(
        r.accepted, 2,
        "the partitioned connection and the fresh one"
    );
    assert_eq!(r.timed_out, 1, "only the partitioned connection timed out");
    assert_eq!(
        r.closed,
        [(0, false), (1, true)],
        "(accept order, answered)"
    );
    assert_eq!(r.tcp_responses, 1, "the fresh connection was answered");
    assert_eq!((r.abandoned, r.reset, r.late_dropped), (0, 0, 0));
    assert_eq!((r.connections, r.sockets, r.in_flight), (0, 0, 0));
    assert!(r.idle, "nothing left in the engine: {r:?}");
    Ok(())
}

#[test]
fn a_hold_during_the_request_delays_but_does_not_lose_it() -> TestResult {
    let mut sim = sim(30);
    let rep = server(&mut sim, Duration::from_millis(5));
    let req = request(9);
    let r2 = req.clone();
    sim.client("client", async move {
        let out = tcp_exchange(&r2).await?;
        assert_eq!(out, expected(&r2, &out));
        Ok(())
    });
    sim.step()?;
    sim.hold("client", "server");
    // Held for half the socket timeout: nothing is lost, nothing times out.
    for _ in 0..(TIMEOUT.as_millis() as usize / 2) {
        sim.step()?;
    }
    sim.release("client", "server");
    sim.run()?;
    let r = report(&rep);
    assert_eq!(r.tcp_responses, 1);
    assert_eq!(r.timed_out, 0);
    Ok(())
}

#[test]
fn udp_loss_is_survived_by_retries_and_every_answer_is_right() -> TestResult {
    let mut sim = build(
        turmoil::Builder::new()
            .simulation_duration(Duration::from_secs(60))
            .fail_rate(0.2)
            .repair_rate(0.5),
    );
    let rep = server(&mut sim, Duration::from_millis(1));
    for h in 0..4u32 {
        sim.client(format!("udp{h}"), async move {
            let sock = UdpSocket::bind((IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0)).await?;
            let server: SocketAddr = (turmoil::lookup("server"), PORT).into();
            let mut sent: Vec<Vec<u8>> = Vec::new();
            for k in 0..5u32 {
                let req = request(100 + h * 5 + k);
                sent.push(req.clone());
                let mut buf = vec![0u8; 2048];
                let mut answered = false;
                for _attempt in 0..200 {
                    sock.send_to(&req, server).await?;
                    let got =
                        tokio::time::timeout(Duration::from_millis(50), sock.recv_from(&mut buf))
                            .await;
                    if let Ok(Ok((n, _))) = got {
                        let out = &buf[..n];
                        // Every datagram answers one of this peer's own requests
                        // (a late answer to an earlier attempt or request may arrive).
                        assert!(
                            sent.iter().any(|r| out == &expected(r, out)[..]),
                            "udp {h}: an answer to no request of this peer"
                        );
                        if out == &expected(&req, out)[..] {
                            answered = true;
                            break;
                        }
                    }
                }
                assert!(answered, "udp {h} request {k} never answered");
            }
            Ok(())
        });
    }
    sim.run()?;
    assert!(report(&rep).udp_responses >= 20);
    Ok(())
}

#[test]
fn a_bounced_server_host_serves_again_and_the_old_connection_ends() -> TestResult {
    let mut sim = sim(30);
    // Slow jobs: the bounce lands while the first request's job runs.
    let rep = server(&mut sim, Duration::from_millis(500));
    let req = request(4);
    let r2 = req.clone();
    sim.client("client", async move {
        // The first attempt loses its server mid-job: the connection ends without the
        // full answer (turmoil resets it) or hangs until we give up.
        let first = tokio::time::timeout(Duration::from_secs(3), tcp_exchange(&r2)).await;
        if let Ok(Ok(out)) = &first {
            assert!(out.is_empty() || *out == expected(&r2, out));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let out = tcp_exchange(&r2).await?;
        assert_eq!(out, expected(&r2, &out));
        Ok(())
    });
    // Step until the job runs (message latencies come from the seed), bounded.
    for _ in 0..400 {
        if report(&rep).in_flight == 1 {
            break;
        }
        sim.step()?;
    }
    assert_eq!(report(&rep).in_flight, 1, "the job is running");
    sim.bounce("server");
    sim.run()?;
    let r = report(&rep);
    assert_eq!(r.starts, 2, "the server host started twice");
    assert_eq!(r.tcp_responses, 1, "the restarted engine answered once");
    Ok(())
}
