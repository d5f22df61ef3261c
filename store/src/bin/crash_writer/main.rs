//! The crash test's writer (store/tests/crash.rs): opens the store under a directory
//! (recovering whatever the last run left), then writes through the store API from
//! several threads until it is killed, printing what it does on stdout, one line per
//! `write`:
//!
//! - `READY` once the store is open (recovery done);
//! - `TRY <id> <den>:<serial>:<an hex> ...` before a `modify` of those coins;
//! - `ACK <id>` as soon as that `modify` returned `Ok` (the write is acknowledged);
//! - `ERR <id> <error>` when it returned an error.
//!
//! Each thread writes only coins of its own (thread `t` owns record indices
//! `t * 32 ..= t * 32 + 31` of each page of [`PAGES`]), so per coin the order of its
//! lines is the order of its writes. A background thread calls the store's
//! `maintain` step as the server's `raida-store-watch` thread does. Log segments are
//! small, so segments roll over and checkpoints run while the test kills.
//!
//! Usage: `raida-store-crash-writer <root> <seed> <threads> [--mutant NAME]`. It exits
//! by itself after 60 s, should nobody kill it.

// Drives the store from real threads and clocks (store/clippy.toml bans them in the store).
#![allow(clippy::disallowed_methods)]

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use raida_core::keys::{CoinId, KeyStore, Record};
use raida_core::Timestamp;
use raida_store::{DiskStore, StoreConfig};

use plan::{Rng, PAGES, WRITTEN_STATUS};

mod plan;

/// Coins each thread owns on each page.
const COINS_PER_PAGE: u32 = 32;
/// Small segments: rollovers and checkpoints happen during the test.
const SEGMENT_BYTES: u64 = 256;

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    // One write per line: a kill never leaves half a line (a pipe write below
    // PIPE_BUF is atomic), and the test ignores an unterminated last line anyway.
    let _ = out.write_all(line.as_bytes());
    let _ = out.flush();
}

fn writer(store: &DiskStore, thread: u32, seed: u64, epoch: Instant) {
    let mut rng = Rng(seed ^ (u64::from(thread) << 32));
    let own: Vec<CoinId> = PAGES
        .iter()
        .flat_map(|&(den, page)| {
            (0..COINS_PER_PAGE)
                .map(move |k| CoinId::new(den, page * 1024 + thread * COINS_PER_PAGE + k))
        })
        .collect();
    for n in 0u64.. {
        let count = 1 + rng.below(3) as usize;
        let mut coins: Vec<CoinId> = Vec::with_capacity(count);
        while coins.len() < count {
            let coin = own[rng.below(own.len() as u64) as usize];
            if !coins.contains(&coin) {
                coins.push(coin);
            }
        }
        let ans: Vec<[u8; 16]> = coins
            .iter()
            .map(|_| {
                let (a, b) = (rng.next(), rng.next());
                let mut an = [0u8; 16];
                an[..8].copy_from_slice(&a.to_le_bytes());
                an[8..].copy_from_slice(&b.to_le_bytes());
                an
            })
            .collect();
        let id = format!("{thread}.{n}");
        let mut line = format!("TRY {id}");
        for (coin, an) in coins.iter().zip(&ans) {
            let _ = write!(line, " {}:{}:", coin.denomination, coin.serial);
            for b in an {
                let _ = write!(line, "{b:02x}");
            }
        }
        line.push('\n');
        say(&line);
        let now = Timestamp::from_micros(epoch.elapsed().as_micros() as u64);
        let result = store.modify(&coins, now, &mut |current, new| {
            for i in 0..current.len() {
                if current[i].is_some() {
                    new[i] = Some(Record {
                        an: ans[i],
                        status: WRITTEN_STATUS,
                    });
                }
            }
        });
        match result {
            Ok(()) => say(&format!("ACK {id}\n")),
            Err(e) => say(&format!("ERR {id} {e}\n")),
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(root), Some(seed), Some(threads)) = (
        args.first().map(PathBuf::from),
        args.get(1).and_then(|s| s.parse::<u64>().ok()),
        args.get(2).and_then(|s| s.parse::<u32>().ok()),
    ) else {
        eprintln!("usage: raida-store-crash-writer <root> <seed> <threads> [--mutant NAME]");
        return ExitCode::from(2);
    };
    if let Some(name) = args
        .iter()
        .position(|a| a == "--mutant")
        .and_then(|i| args.get(i + 1))
    {
        #[cfg(raida_mutants)]
        match raida_core::mutants::Mutant::from_name(name) {
            Some(m) => raida_core::mutants::activate(Some(m)),
            None => {
                eprintln!("no planted bug named {name:?}");
                return ExitCode::from(2);
            }
        }
        #[cfg(not(raida_mutants))]
        {
            eprintln!("--mutant {name}: this build has no planted bugs (--cfg raida_mutants)");
            return ExitCode::from(2);
        }
    }
    let mut config = StoreConfig::default();
    config.segment_bytes = SEGMENT_BYTES;
    let store = match DiskStore::open(&root, config) {
        Ok(store) => Arc::new(store),
        Err(e) => {
            eprintln!("open {}: {e}", root.display());
            return ExitCode::from(1);
        }
    };
    say("READY\n");
    let epoch = Instant::now();
    for thread in 0..threads {
        let store = Arc::clone(&store);
        std::thread::spawn(move || writer(&store, thread, seed, epoch));
    }
    let store_bg = Arc::clone(&store);
    std::thread::spawn(move || loop {
        let now = Timestamp::from_micros(epoch.elapsed().as_micros() as u64);
        store_bg.maintain(now);
        std::thread::sleep(Duration::from_millis(2));
    });
    std::thread::sleep(Duration::from_secs(60));
    ExitCode::SUCCESS
}
