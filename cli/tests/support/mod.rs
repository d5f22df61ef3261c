//! Shared test fixtures: a server-side codec setup (core's `answer_datagram` over a
//! memory key store, with the real authentication commands of raida-commands), and
//! tiny in-process TCP and UDP servers on 127.0.0.1 that use it; and small store
//! directories on disk. Every loop here is bounded in count and time.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use raida_client::{Coin, Keys};
use raida_core::codec::{
    answer_datagram, header_len, HeaderRules, LONG_HEADER_LEN, PREFIX_LEN, RANDOM_LEN,
    SHORT_HEADER_LEN,
};
use raida_core::keys::{CoinId, MemoryKeyStore, PAGE_BYTES, RECORDS_PER_PAGE, RECORD_BYTES};
use raida_core::Command;
use raida_core::{CommandRegistry, Status, StatusByte, Timestamp};
use raida_store::{coin_page_path, demo_coin_an, demo_locker_an};

pub(crate) const RAIDA_ID: u8 = 3;
pub(crate) const COIN_ID: u16 = 6;
pub(crate) const ELAPSED_MICROS: u32 = 4321;
pub(crate) const RANDOM: [u8; RANDOM_LEN] = [0x5A; RANDOM_LEN];
/// A command the tests register: it returns its payload as its output.
pub(crate) const PAYLOAD_ECHO: (u8, u8) = (1, 7);

#[derive(Debug)]
pub(crate) struct PayloadEcho;

impl Command for PayloadEcho {
    fn run(&self, ctx: &raida_core::RequestContext<'_>, output: &mut Vec<u8>) -> StatusByte {
        let payload = ctx.payload;
        output.extend_from_slice(payload);
        Status::Success.into()
    }
}

pub(crate) fn rules() -> HeaderRules {
    HeaderRules {
        raida_id: RAIDA_ID,
        coin_id: COIN_ID,
        max_body_size: 65536,
    }
}

/// The MFS byte the test servers' powns stamp.
pub(crate) const MFS: u8 = 46;

/// echo and version, [`PayloadEcho`], and detect, detect_sum, pown and pown_sum.
pub(crate) fn commands() -> CommandRegistry {
    let mut c = CommandRegistry::with_builtins();
    c.register(PAYLOAD_ECHO.0, PAYLOAD_ECHO.1, Arc::new(PayloadEcho))
        .expect("group 1 is in range");
    for (group, command, handler) in raida_commands::all(
        Arc::new(raida_commands::FixedClock(MFS)),
        raida_commands::HealingSetup::default(),
    ) {
        c.register(group, command, handler).expect("free");
    }
    c
}

/// Coins (1, 1), (1, 2), (-1, 16) with their demo ANs, and the demo locker.
pub(crate) fn keys() -> MemoryKeyStore {
    let k = MemoryKeyStore::new();
    for (d, s) in [(1, 1), (1, 2), (-1, 16)] {
        k.insert_coin(d, s, demo_coin_an(d, s));
    }
    k.insert_locker(demo_locker_an());
    k
}

/// The key material for each encryption type, all known to [`keys`].
pub(crate) fn keys_of_type(t: u8) -> Keys {
    match t {
        0 => Keys::None,
        1 => Keys::Coin {
            coin: Coin::new(-1, 16),
            an: demo_coin_an(-1, 16),
        },
        2 => Keys::Locker {
            an: demo_locker_an(),
        },
        4 => Keys::Coin256 {
            coin: Coin::new(1, 1),
            an: demo_coin_an(1, 1),
        },
        5 => Keys::TwoCoins256 {
            first: Coin::new(1, 1),
            first_an: demo_coin_an(1, 1),
            second: Coin::new(1, 2),
            second_an: demo_coin_an(1, 2),
        },
        _ => panic!("no such type in the tests"),
    }
}

pub(crate) const TYPES: [u8; 5] = [0, 1, 2, 4, 5];

/// What the server codec answers to `request` (as one datagram).
pub(crate) fn answer(request: &[u8]) -> Vec<u8> {
    let k = keys();
    answer_datagram(
        request,
        &rules(),
        &commands(),
        &k,
        Timestamp::from_micros(1_000_000),
        ELAPSED_MICROS,
        &RANDOM,
    )
    .expect("a whole request is answered")
}

/// How a test TCP server treats each connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TcpMode {
    /// Read the request, answer it, shut down writing, close.
    Answer,
    /// Read the request, write only the first `n` response bytes, close.
    Truncate(usize),
}

/// An in-process TCP server on 127.0.0.1 answering with core's codec, one connection
/// at a time, until stopped (or after `max_connections`).
pub(crate) struct TcpServer {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    pub served: Arc<AtomicUsize>,
    handle: Option<JoinHandle<()>>,
}

impl TcpServer {
    /// A server over [`keys`].
    pub(crate) fn start(mode: TcpMode, max_connections: usize) -> TcpServer {
        TcpServer::start_with_keys(mode, max_connections, Arc::new(keys()))
    }

    /// A server over `store` (the test can look at it afterwards).
    pub(crate) fn start_with_keys(
        mode: TcpMode,
        max_connections: usize,
        store: Arc<MemoryKeyStore>,
    ) -> TcpServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(AtomicUsize::new(0));
        let (stop2, served2) = (Arc::clone(&stop), Arc::clone(&served));
        let handle = std::thread::spawn(move || {
            let rules = rules();
            let commands = commands();
            for _ in 0..max_connections {
                let Ok((stream, _)) = listener.accept() else {
                    break;
                };
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                serve_one(stream, mode, &rules, &commands, &store);
                served2.fetch_add(1, Ordering::SeqCst);
            }
        });
        TcpServer {
            addr,
            stop,
            served,
            handle: Some(handle),
        }
    }
}

impl Drop for TcpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept call; it sees the flag and returns.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn serve_one(
    mut stream: TcpStream,
    mode: TcpMode,
    rules: &HeaderRules,
    commands: &CommandRegistry,
    keys: &MemoryKeyStore,
) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
    let mut buf = vec![0u8; LONG_HEADER_LEN];
    if stream.read_exact(&mut buf[..PREFIX_LEN]).is_err() {
        return;
    }
    let hlen = header_len(buf[PREFIX_LEN - 1]);
    if stream.read_exact(&mut buf[PREFIX_LEN..hlen]).is_err() {
        return;
    }
    buf.truncate(hlen);
    let at = if hlen == SHORT_HEADER_LEN { 22 } else { 17 };
    let body_len = usize::from(u16::from_be_bytes([buf[at], buf[at + 1]]));
    buf.resize(hlen + body_len, 0);
    if stream.read_exact(&mut buf[hlen..]).is_err() {
        return;
    }
    let Some(out) = answer_datagram(
        &buf,
        rules,
        commands,
        keys,
        Timestamp::from_micros(1_000_000),
        ELAPSED_MICROS,
        &RANDOM,
    ) else {
        return;
    };
    let n = match mode {
        TcpMode::Answer => out.len(),
        TcpMode::Truncate(n) => n.min(out.len()),
    };
    let _ = stream.write_all(&out[..n]);
    let _ = stream.shutdown(Shutdown::Write);
}

/// An in-process UDP server on 127.0.0.1 answering every datagram with core's codec,
/// until stopped.
pub(crate) struct UdpServer {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl UdpServer {
    /// A server over [`keys`].
    pub(crate) fn start() -> UdpServer {
        UdpServer::start_with_keys(Arc::new(keys()))
    }

    /// A server over `store` (the test can look at it afterwards).
    pub(crate) fn start_with_keys(store: Arc<MemoryKeyStore>) -> UdpServer {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        socket
            .set_read_timeout(Some(Duration::from_millis(20)))
            .expect("timeout");
        let addr = socket.local_addr().expect("local addr");
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let handle = std::thread::spawn(move || {
            let rules = rules();
            let commands = commands();
            let k = store;
            let mut buf = vec![0u8; 4096];
            // Bounded: 60 s at most, and the flag ends it sooner.
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok((n, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                if let Some(out) = answer_datagram(
                    &buf[..n],
                    &rules,
                    &commands,
                    &*k,
                    Timestamp::from_micros(1_000_000),
                    ELAPSED_MICROS,
                    &RANDOM,
                ) {
                    let _ = socket.send_to(&out, from);
                }
            }
        });
        UdpServer {
            addr,
            stop,
            handle: Some(handle),
        }
    }
}

impl Drop for UdpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// The AN a test store gives coin (`denomination`, `serial`): its demo AN, so a
/// store's pages and a memory store agree without sharing state.
pub(crate) fn store_an(denomination: i8, serial: u32) -> [u8; 16] {
    demo_coin_an(denomination, serial)
}

/// Writes complete pages (denomination, page number) under `root/Data` in the layout
/// of PROTOCOL.md section 10, every record holding [`store_an`] and status byte 0,
/// and returns a memory store that knows the same coins, and the key coins and locker
/// of [`keys`] (so every encryption type works).
pub(crate) fn write_store(root: &Path, pages: &[(i8, u32)]) -> Arc<MemoryKeyStore> {
    let store = keys();
    for &(den, page) in pages {
        let first = page * RECORDS_PER_PAGE;
        let path = coin_page_path(root, CoinId::new(den, first)).expect("page in range");
        std::fs::create_dir_all(path.parent().expect("page dir")).expect("mkdir");
        let mut bytes = Vec::with_capacity(PAGE_BYTES);
        for serial in first..first + RECORDS_PER_PAGE {
            let an = store_an(den, serial);
            bytes.extend_from_slice(&an);
            bytes.push(0);
            store.insert_coin(den, serial, an);
        }
        assert_eq!(bytes.len(), RECORDS_PER_PAGE as usize * RECORD_BYTES);
        std::fs::write(&path, bytes).expect("write page");
    }
    Arc::new(store)
}
