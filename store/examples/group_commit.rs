//! Group commit under concurrent writers: `W` threads each write one coin at a time
//! (a compare-and-set, like pown) on random pages of a store of `P` pages, for `S`
//! seconds; prints writes per second, syncs per second, records per sync and the
//! write latency.
//!
//! `cargo run --release -p raida-store --example group_commit -- [W] [S] [P] [DIR]`
//! (defaults 64 writers, 5 s, 256 pages, a temporary directory; DIR must be on the disk
//! to measure, not a tmpfs).

// Drives the store from real threads and clocks (store/clippy.toml bans them in the store).
#![allow(clippy::disallowed_methods)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use raida_core::keys::{CoinId, KeyStore, Record, StoreStats};
use raida_core::Timestamp;
use raida_store::{DiskStore, StoreConfig};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let writers: u32 = args.first().and_then(|s| s.parse().ok()).unwrap_or(64);
    let seconds: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(5);
    let pages: u32 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(256);
    let tmp = tempfile::tempdir().expect("temp dir");
    let root = args
        .get(3)
        .map_or_else(|| tmp.path().to_path_buf(), PathBuf::from);
    for page in 0..pages {
        let dir = root.join(format!("Data/00/{:02x}", page >> 8));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let mut bytes = vec![0u8; 17 * 1024];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = (i as u32 ^ page) as u8;
        }
        std::fs::write(dir.join(format!("{page:04x}.bin")), bytes).expect("write page");
    }
    let store = Arc::new(DiskStore::open(&root, StoreConfig::default()).expect("open"));
    let stop = Arc::new(AtomicBool::new(false));
    let epoch = Instant::now();
    let threads: Vec<_> = (0..writers)
        .map(|t| {
            let store = Arc::clone(&store);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut x = u64::from(t) * 0x9E37_79B9_7F4A_7C15 + 1;
                let mut latencies = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let serial = (x % u64::from(pages * 1024)) as u32;
                    let coin = CoinId::new(0, serial);
                    let started = Instant::now();
                    let now = Timestamp::from_micros(epoch.elapsed().as_micros() as u64);
                    store
                        .modify(&[coin], now, &mut |current, new| {
                            if let Some(r) = current[0] {
                                let mut an = r.an;
                                an[0] = an[0].wrapping_add(1);
                                new[0] = Some(Record { an, status: 1 });
                            }
                        })
                        .expect("write");
                    latencies.push(started.elapsed());
                }
                latencies
            })
        })
        .collect();
    let before: StoreStats = store.stats().expect("stats");
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    let mut latencies: Vec<Duration> = threads
        .into_iter()
        .flat_map(|t| t.join().expect("writer"))
        .collect();
    let elapsed = epoch.elapsed().as_secs_f64();
    let after = store.stats().expect("stats");
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p) as usize];
    let records = after.records_written - before.records_written;
    let syncs = after.syncs - before.syncs;
    println!(
        "{writers} writers, {pages} pages, {elapsed:.1} s: {:.0} writes/s, {:.0} syncs/s, \
         {:.1} records per sync; latency p50 {:?} p99 {:?} max {:?}",
        records as f64 / elapsed,
        syncs as f64 / elapsed,
        records as f64 / syncs.max(1) as f64,
        pct(0.5),
        pct(0.99),
        pct(1.0),
    );
}
