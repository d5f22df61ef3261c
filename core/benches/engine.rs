//! The engine's own cost per request: one TCP connection from accept to close through
//! the engine's accept and service loops, driven by `raida_testkit::Driver`: the request
//! read as the engine lends (32 header bytes, the rest of the header, the body), the job
//! run on the same thread (inline for type 0, `Job::run` for type 4), the response
//! written in one piece, and the peer's end of stream. No sockets: this is the work
//! core adds on top of the syscalls (and the in-memory driver's small bookkeeping).

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Duration;

use criterion::{criterion_main, Criterion, Throughput};
use raida_client::crypto;
use raida_core::codec::RANDOM_LEN;
use raida_core::keys::MemoryKeyStore;
use raida_core::{Accept, CommandRegistry, Engine, EngineConfig, Timestamp};
use raida_testkit::{Driver, MemConn};

const AN: [u8; 16] = *b"0123456789abcdef";

fn engine() -> Engine {
    let keys = MemoryKeyStore::new();
    keys.insert_coin(1, 1, AN);
    let mut config = EngineConfig::default();
    config.raida_id = 7;
    config.coin_id = 6;
    Engine::new(
        config,
        CommandRegistry::with_builtins(),
        std::sync::Arc::new(keys),
    )
}

fn echo_type_0() -> Vec<u8> {
    let mut r = vec![0u8; 32];
    r[0] = 1;
    r[2] = 7;
    r[7] = 6;
    r[23] = 18;
    r[30] = 0xAB;
    r[31] = 0xCD;
    let mut challenge = [0x42u8; 16];
    let crc = crypto::crc32(&challenge[..12]).to_be_bytes();
    challenge[12..].copy_from_slice(&crc);
    r.extend_from_slice(&challenge);
    r.extend_from_slice(&[0x3E, 0x3E]);
    r
}

fn echo_type_4() -> Vec<u8> {
    let mut r = vec![0u8; 48];
    r[0] = 1;
    r[2] = 7;
    r[7] = 6;
    r[16] = 4;
    r[18] = 34 + 8; // 8 bytes of payload, HMAC, trailer
    r[19] = 1;
    r[23] = 1;
    for (i, b) in r[24..48].iter_mut().enumerate() {
        *b = i as u8;
    }
    let key = crypto::sha256(&[&AN]);
    let mut iv = [0u8; 16];
    iv.copy_from_slice(&r[24..40]);
    let mut ct = *b"payload!";
    crypto::aes256_ctr(&key, &iv, &mut ct);
    let mac = crypto::hmac_sha256(&key, &ct);
    r.extend_from_slice(&ct);
    r.extend_from_slice(&mac);
    r.extend_from_slice(&[0x3E, 0x3E]);
    r
}

/// One request through the engine's service loop, on a fresh connection holding the
/// request and then the peer's end of stream; returns the response length.
fn one_request(h: &mut Driver, request: &[u8]) -> usize {
    let peer = SocketAddr::from(([127, 0, 0, 1], 9));
    let mut conn = MemConn::new();
    conn.push_inbound(request);
    conn.hang_up();
    let Accept::Accepted(id) = h.accept_conn(peer, conn) else {
        panic!("refused");
    };
    let Some(conn) = h.remove(id) else {
        panic!("the connection outlived its request and end of stream");
    };
    // The driver's record of closes would grow with every iteration.
    h.closes.clear();
    conn.outbound().len()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("engine_tcp_request");
    g.throughput(Throughput::Elements(1));
    for (name, request) in [
        ("echo_type_0", echo_type_0()),
        ("echo_type_4", echo_type_4()),
    ] {
        g.bench_function(name, |b| {
            let mut h = Driver::new(engine(), Timestamp::ZERO, [7; RANDOM_LEN]);
            b.iter(|| {
                h.advance(Duration::from_micros(1));
                let n = one_request(&mut h, black_box(&request));
                assert!(n >= 32);
                black_box(n)
            });
            h.assert_no_leaks();
        });
    }
    g.finish();
}

// criterion_group! generates an undocumented public function.
#[allow(missing_docs)]
mod group {
    criterion::criterion_group!(benches, super::bench);
}
use group::benches;
criterion_main!(benches);
