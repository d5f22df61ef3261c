//! A full-size store: writes `P` page files (default 15,000: 15 denominations × 1,000
//! pages, 261 MB), loads them all, then measures one freshness pass over every cached
//! page (its metadata only) and header-time lookups per second from memory, with 1 and
//! with `T` threads.
//!
//! `cargo run --release -p raida-store --example full_store -- [P] [T] [DIR] [L]` (DIR
//! must be on the disk to measure; a temporary directory by default, removed at the
//! end; `-` for the default). L: every L-th record of every page holds a locker key
//! (one of 1,000 keys), so that the open's locker index scan has entries to build; the
//! open's time and the process's resident memory before and after it are printed.

// Drives the store from real threads and clocks (store/clippy.toml bans them in the store).
#![allow(clippy::disallowed_methods)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use raida_core::keys::{CoinId, KeyStore, Lookup, PageId};
use raida_core::Timestamp;
use raida_store::{page_path, DiskStore, StoreConfig};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let pages: u32 = args.first().and_then(|s| s.parse().ok()).unwrap_or(15_000);
    let threads: u32 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(2);
    let tmp = tempfile::tempdir().expect("temp dir");
    let root = args
        .get(2)
        .filter(|d| d.as_str() != "-")
        .map_or_else(|| tmp.path().to_path_buf(), PathBuf::from);
    let locker_every: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(0);
    let page_of = |i: u32| PageId {
        denomination: (i % 15) as i8 - 8,
        number: (i / 15) as u16,
    };
    let started = Instant::now();
    let mut in_lockers = 0u64;
    for i in 0..pages {
        let mut bytes = vec![0x5au8; 17 * 1024];
        if locker_every > 0 {
            for (r, record) in bytes.chunks_exact_mut(17).enumerate() {
                if r % locker_every == 0 {
                    // Key k: its first 4 bytes, then 0x5a, bytes 12..15 FF.
                    let k = (i as usize * 1024 + r) % 1000;
                    record[..4].copy_from_slice(&(k as u32).to_be_bytes());
                    record[12..16].copy_from_slice(&[0xFF; 4]);
                    in_lockers += 1;
                }
            }
        }
        let path = page_path(&root, page_of(i));
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, &bytes).expect("write page");
    }
    println!(
        "wrote {pages} pages in {:?} ({in_lockers} records in 1,000 lockers)",
        started.elapsed()
    );
    let rss_before = resident_kb();
    let t = Instant::now();
    let store = Arc::new(DiskStore::open(&root, StoreConfig::default()).expect("open"));
    // Opening reads every page file once to build the locker index.
    let opened = t.elapsed();
    let rss_after = resident_kb();
    // A copy of the index (measured before it is made).
    let entries = store.locker_index().entries();
    println!(
        "opened (locker index built: {entries} entries) in {opened:?}; resident memory \
         {rss_before} kB before, {rss_after} kB after"
    );
    let t = Instant::now();
    for i in 0..pages {
        store.load(page_of(i), Timestamp::ZERO).expect("load");
    }
    println!("loaded {} pages in {:?}", store.cached_pages(), t.elapsed());
    for pass in 1..=3u64 {
        let t = Instant::now();
        let done = store.refresh(Timestamp::from_micros(pass * 2_000_000));
        println!(
            "refresh pass {pass}: {} files checked, {} reloaded, in {:?}",
            done.checked,
            done.reloaded,
            t.elapsed()
        );
    }
    for n in [1, threads] {
        let t = Instant::now();
        let workers: Vec<_> = (0..n)
            .map(|w| {
                let store = Arc::clone(&store);
                std::thread::spawn(move || {
                    let mut x = u64::from(w) * 0x9E37_79B9_7F4A_7C15 + 1;
                    let mut found = 0u64;
                    let end = Instant::now() + Duration::from_secs(1);
                    while Instant::now() < end {
                        for _ in 0..1000 {
                            x ^= x << 13;
                            x ^= x >> 7;
                            x ^= x << 17;
                            let page = page_of((x % u64::from(pages)) as u32);
                            let serial = u32::from(page.number) * 1024 + (x >> 40) as u32 % 1024;
                            let coin = CoinId::new(page.denomination, serial);
                            if let Lookup::Found(_) = store.lookup(coin, Timestamp::ZERO) {
                                found += 1;
                            }
                        }
                    }
                    found
                })
            })
            .collect();
        let found: u64 = workers.into_iter().map(|w| w.join().expect("thread")).sum();
        println!(
            "{n} thread(s): {:.1} M lookups/s over the whole store (all found)",
            found as f64 / t.elapsed().as_secs_f64() / 1e6
        );
    }
}

/// The process's resident memory (VmRSS) in kB, 0 when /proc does not say.
fn resident_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}
