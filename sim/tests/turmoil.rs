//! The engine under turmoil's simulated network and clock, through a small async
//! driver with the loop shape of `io-epoll`: one loop owns the engine, feeds it every
//! input with the current (simulated) time, drains every output after every input,
//! lends reads exactly the bytes the engine asks for, and sleeps until
//! `poll_timeout()`. Workers are tokio tasks.
//!
//! turmoil's TCP has no retransmit: scenarios use loss only for UDP, and partitions
//! and holds for TCP. Time comes from `tokio::time::Instant` (paused and driven by
//! turmoil), never from `std::time::Instant::now`.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use raida_core::codec::RANDOM_LEN;
use raida_core::{
    Accept, CommandRegistry, Completion, ConnId, Engine, EngineConfig, Job, Output, Timestamp,
};
use raida_sim::request::{self, Req};
use raida_sim::rng::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};
use tokio::task::JoinHandle;
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

#[derive(Debug)]
enum Event {
    Read(ConnId, Vec<u8>),
    Error(ConnId),
    Sent(ConnId, usize),
    Done(Completion),
}

#[derive(Debug)]
enum WriteCmd {
    Bytes(Vec<u8>),
    Shutdown,
}

#[derive(Debug)]
struct ConnIo {
    read_tx: UnboundedSender<usize>,
    write_tx: UnboundedSender<WriteCmd>,
    reading: bool,
    writing: bool,
    tasks: [JoinHandle<()>; 2],
}

fn config() -> EngineConfig {
    EngineConfig {
        raida_id: request::RAIDA_ID,
        coin_id: request::COIN_ID,
        socket_timeout: TIMEOUT,
        mod_queue_size: 4,
        ..EngineConfig::default()
    }
}

fn now(epoch: Instant) -> Timestamp {
    // +1: nothing happens at the driver's epoch itself.
    Timestamp::from_micros(epoch.elapsed().as_micros() as u64 + 1)
}

/// The server: the driver loop around one engine.
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
        Box::new(request::key_store()),
    );
    let epoch = Instant::now();
    let (ev_tx, mut ev_rx) = unbounded_channel::<Event>();
    let mut conns: BTreeMap<ConnId, ConnIo> = BTreeMap::new();
    let mut udp_buf = vec![0u8; 2048];
    loop {
        let deadline = engine
            .poll_timeout()
            .map(|t| epoch + Duration::from_micros(t.as_micros().saturating_sub(1)));
        let mut wakes: Vec<ConnId> = Vec::new();
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = accepted?;
                match engine.handle_accept(peer, now(epoch)) {
                    Accept::Accepted(id) => {
                        conns.insert(id, spawn_conn(id, stream, ev_tx.clone()));
                        // Try the read right after accepting.
                        wakes.push(id);
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
            Some(ev) = ev_rx.recv() => match ev {
                Event::Read(id, bytes) => {
                    if let Some(c) = conns.get_mut(&id) {
                        c.reading = false;
                    }
                    if bytes.is_empty() {
                        engine.handle_eof(id, now(epoch));
                    } else if let Some(buf) = engine.recv_buf(id) {
                        // The read asked for exactly `buf.len()` bytes at most.
                        let n = bytes.len().min(buf.len());
                        buf[..n].copy_from_slice(&bytes[..n]);
                        engine.handle_received(id, n, now(epoch));
                    }
                    wakes.push(id);
                }
                Event::Error(id) => engine.handle_error(id, now(epoch)),
                Event::Sent(id, n) => {
                    if let Some(c) = conns.get_mut(&id) {
                        c.writing = false;
                    }
                    engine.handle_sent(id, n, now(epoch));
                    wakes.push(id);
                }
                Event::Done(completion) => engine.handle_completion(completion, now(epoch)),
            },
            () = sleep_until(deadline) => engine.handle_timeout(now(epoch)),
        }
        // Drain every output, then service every woken connection, until quiet.
        loop {
            while let Some(out) = engine.poll_output() {
                match out {
                    Output::Job(job) => spawn_worker(job, worker_delay, epoch, ev_tx.clone()),
                    Output::Wake(id) => wakes.push(id),
                    Output::ShutdownWrite(id) => {
                        if let Some(c) = conns.get(&id) {
                            let _ = c.write_tx.send(WriteCmd::Shutdown);
                        }
                    }
                    Output::Close(id) => {
                        if let Some(c) = conns.remove(&id) {
                            c.tasks.iter().for_each(JoinHandle::abort);
                        }
                    }
                    Output::Datagram { peer, bytes } => {
                        let _ = udp.send_to(&bytes, peer).await;
                    }
                    // The select guard reads `wants_datagrams()` again on the next turn.
                    Output::ResumeDatagrams => {}
                }
            }
            let Some(id) = wakes.pop() else { break };
            let Some(c) = conns.get_mut(&id) else {
                continue;
            };
            if !c.reading {
                if let Some(buf) = engine.recv_buf(id) {
                    c.reading = c.read_tx.send(buf.len()).is_ok();
                }
            }
            if !c.writing {
                if let Some(bytes) = engine.send_buf(id) {
                    c.writing = c.write_tx.send(WriteCmd::Bytes(bytes.to_vec())).is_ok();
                }
            }
        }
        if let Ok(mut r) = report.lock() {
            let c = engine.counters();
            r.connections = engine.connection_count();
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

fn spawn_conn(id: ConnId, stream: TcpStream, ev: UnboundedSender<Event>) -> ConnIo {
    let (mut rd, mut wr) = stream.into_split();
    let (read_tx, mut read_rx) = unbounded_channel::<usize>();
    let (write_tx, mut write_rx) = unbounded_channel::<WriteCmd>();
    let ev_r = ev.clone();
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; 1024];
        while let Some(want) = read_rx.recv().await {
            if buf.len() < want {
                buf.resize(want, 0);
            }
            match rd.read(&mut buf[..want]).await {
                Ok(n) => {
                    let _ = ev_r.send(Event::Read(id, buf[..n].to_vec()));
                    if n == 0 {
                        return;
                    }
                }
                Err(_) => {
                    let _ = ev_r.send(Event::Error(id));
                    return;
                }
            }
        }
    });
    let writer = tokio::spawn(async move {
        while let Some(cmd) = write_rx.recv().await {
            match cmd {
                WriteCmd::Bytes(b) => match wr.write_all(&b).await {
                    Ok(()) => {
                        let _ = ev.send(Event::Sent(id, b.len()));
                    }
                    Err(_) => {
                        let _ = ev.send(Event::Error(id));
                        return;
                    }
                },
                WriteCmd::Shutdown => {
                    let _ = wr.shutdown().await;
                }
            }
        }
    });
    ConnIo {
        read_tx,
        write_tx,
        reading: false,
        writing: false,
        tasks: [reader, writer],
    }
}

fn spawn_worker(job: Job, delay: Duration, epoch: Instant, ev: UnboundedSender<Event>) {
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        let mut scratch = Vec::new();
        let completion = job.run(now(epoch), &RANDOM, &mut scratch);
        let _ = ev.send(Event::Done(completion));
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
    request::expected_answer(request, 65_536, elapsed, &RANDOM).unwrap_or_default()
}

fn request(i: u32) -> Vec<u8> {
    let mut r = Req::echo([0u8, 1, 2, 4, 5][i as usize % 5]);
    r.command = (i % 2) as u8;
    r.echo = [i as u8, (i >> 8) as u8];
    r.nonce[7] = i as u8;
    r.payload = vec![i as u8; (i % 7) as usize];
    r.bytes()
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
    assert_eq!(mid.timed_out, 1, "closed by the socket timeout");
    assert_eq!(mid.connections, 0);
    sim.repair("client", "server");
    sim.run()?;
    let r = report(&rep);
    assert_eq!(r.tcp_responses, 1);
    assert!(r.idle || r.connections <= 1);
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
