//! Data for the store benchmarks (bench/store.sh): a full-size key store and request
//! files for `shared/bench/loadgen.c`'s replay mode (`LOADGEN_REQS`: records of a
//! 2-byte big-endian length and that many request bytes).
//!
//! ```sh
//! store_bench store ROOT [PAGES_PER_DENOMINATION]      # default 1000: 15,000 pages, 261 MB
//! store_bench requests ROOT KIND COUNT OUT [PAGES]     # PAGES: draw keys from PAGES pages of
//!                                                      #   the store only (default: all of them)
//! ```
//!
//! KIND: `echo1` (type-1 echo keyed by a coin), `detect1`, `detect40` (detect of 1 or 40
//! coins, type 0, every AN right: 241), `pown1` (pown of 1 coin, type 0, each coin used
//! once with a fresh PAN: 241, so the file must hold no more requests than a run sends
//! on a fresh store); `put1`, `peek1`, `remove1` (the lockers of PROTOCOL.md 8c: request
//! i puts the i-th fresh coin into locker i, whose key is i (8 bytes), `LKR!`, `FF FF FF
//! FF`; peeks at locker i; removes that coin from it to a new AN: 241 when the puts ran
//! first, each remove once).
//!
//! Every coin's AN is a function of its denomination and serial (and nothing else), so
//! the request files and the store agree without reading the store back. The coins are
//! drawn uniformly (a seeded generator) from the pages asked for.

use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;

use raida_client::{Coin, Keys, Request};
use raida_core::keys::{RECORDS_PER_PAGE, RECORD_BYTES};

/// The denominations of a deployed RAIDA, -8..=6.
const DENOMINATIONS: std::ops::RangeInclusive<i8> = -8..=6;

fn splitmix(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The bench AN of coin (`denomination`, `serial`).
fn an_of(denomination: i8, serial: u32) -> [u8; 16] {
    let mut s = (u64::from(denomination as u8) << 32) | u64::from(serial);
    let mut an = [0u8; 16];
    an[..8].copy_from_slice(&splitmix(&mut s).to_le_bytes());
    an[8..].copy_from_slice(&splitmix(&mut s).to_le_bytes());
    an
}

/// `<root>/Data/<dd>/<pp>/<pppp>.bin` (PROTOCOL.md section 10).
fn page_path(root: &Path, denomination: i8, page: u32) -> std::path::PathBuf {
    root.join("Data")
        .join(format!("{:02x}", denomination as u8))
        .join(format!("{:02x}", page >> 8))
        .join(format!("{page:04x}.bin"))
}

fn write_store(root: &Path, pages: u32) -> io::Result<()> {
    let mut bytes = Vec::with_capacity(RECORD_BYTES * RECORDS_PER_PAGE as usize);
    for denomination in DENOMINATIONS {
        for page in 0..pages {
            bytes.clear();
            for record in 0..RECORDS_PER_PAGE {
                bytes.extend_from_slice(&an_of(denomination, page * RECORDS_PER_PAGE + record));
                bytes.push(0);
            }
            let path = page_path(root, denomination, page);
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(&path, &bytes)?;
        }
    }
    Ok(())
}

/// Pages per denomination in the store under `root` (denomination 1's page files).
fn pages_in(root: &Path) -> u32 {
    let mut n = 0;
    while page_path(root, 1, n).exists() {
        n += 1;
    }
    n
}

fn coin_ref(coin: Coin) -> [u8; 5] {
    let s = coin.serial.to_be_bytes();
    [coin.denomination as u8, s[0], s[1], s[2], s[3]]
}

fn write_requests(
    root: &Path,
    kind: &str,
    count: usize,
    out: &Path,
    limit: Option<usize>,
) -> io::Result<()> {
    // Every page of the store, page 0 of each denomination first, then page 1, ...;
    // keys come from the first `limit` of them (all by default).
    let per_denomination = pages_in(root);
    let mut pages: Vec<(i8, u32)> = (0..per_denomination)
        .flat_map(|page| DENOMINATIONS.map(move |d| (d, page)))
        .collect();
    if let Some(limit) = limit {
        pages.truncate(limit);
    }
    if pages.is_empty() {
        return Err(io::Error::other(format!(
            "no store under {}",
            root.display()
        )));
    }
    let mut seed = 0x5EED_u64;
    let mut used = std::collections::BTreeSet::new();
    let mut draw = |fresh: bool| loop {
        let r = splitmix(&mut seed);
        let (denomination, page) = pages[(r % pages.len() as u64) as usize];
        let record = ((r >> 32) % u64::from(RECORDS_PER_PAGE)) as u32;
        let serial = page * RECORDS_PER_PAGE + record;
        if !fresh || used.insert((denomination, serial)) {
            return Coin::new(denomination, serial);
        }
    };
    let mut file = io::BufWriter::new(std::fs::File::create(out)?);
    for i in 0..count {
        let mut req = match kind {
            "echo1" => {
                let coin = draw(false);
                Request::echo(
                    0,
                    Keys::Coin {
                        coin,
                        an: an_of(coin.denomination, coin.serial),
                    },
                )
            }
            "detect1" | "detect40" => {
                let n = if kind == "detect1" { 1 } else { 40 };
                let mut req = Request::new(0, 1, 10, Keys::None);
                for _ in 0..n {
                    let coin = draw(false);
                    req.payload.extend_from_slice(&coin_ref(coin));
                    req.payload
                        .extend_from_slice(&an_of(coin.denomination, coin.serial));
                }
                req
            }
            "pown1" => {
                let coin = draw(true);
                let mut req = Request::new(0, 1, 20, Keys::None);
                req.payload.extend_from_slice(&coin_ref(coin));
                req.payload
                    .extend_from_slice(&an_of(coin.denomination, coin.serial));
                let mut s = i as u64 ^ 0xFEED;
                req.payload
                    .extend_from_slice(&splitmix(&mut s).to_le_bytes());
                req.payload
                    .extend_from_slice(&splitmix(&mut s).to_le_bytes());
                req
            }
            "put1" | "peek1" | "remove1" => {
                // Request i's locker holds the i-th fresh coin (the same draws for the
                // three kinds): put it there, peek at it, remove it to a new AN.
                let coin = draw(true);
                let mut key = [0xFFu8; 16];
                key[..8].copy_from_slice(&(i as u64).to_be_bytes());
                key[8..12].copy_from_slice(&[0x4C, 0x4B, 0x52, 0x21]);
                let (command, payload) = match kind {
                    "put1" => {
                        let mut p = coin_ref(coin).to_vec();
                        p.extend_from_slice(&an_of(coin.denomination, coin.serial));
                        p.extend_from_slice(&key);
                        (82, p)
                    }
                    "peek1" => (83, key.to_vec()),
                    _ => {
                        let mut p = key.to_vec();
                        p.extend_from_slice(&coin_ref(coin));
                        let mut s = i as u64 ^ 0xBEEF;
                        p.extend_from_slice(&splitmix(&mut s).to_le_bytes());
                        p.extend_from_slice(&splitmix(&mut s).to_le_bytes());
                        (84, p)
                    }
                };
                let mut req = Request::new(0, 8, command, Keys::None);
                req.payload = payload;
                req
            }
            other => return Err(io::Error::other(format!("unknown kind {other}"))),
        };
        req.echo = [(i >> 8) as u8, i as u8];
        let mut s = i as u64;
        req.challenge[..8].copy_from_slice(&splitmix(&mut s).to_le_bytes());
        req.nonce[..8].copy_from_slice(&splitmix(&mut s).to_le_bytes());
        let built = req.build().map_err(io::Error::other)?;
        let bytes = built.bytes();
        let len = u16::try_from(bytes.len()).map_err(io::Error::other)?;
        file.write_all(&len.to_be_bytes())?;
        file.write_all(bytes)?;
    }
    file.flush()
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["store", root] => write_store(Path::new(root), 1000),
        ["store", root, pages] => match pages.parse() {
            Ok(p) => write_store(Path::new(root), p),
            Err(e) => Err(io::Error::other(e)),
        },
        ["requests", root, kind, count, out, rest @ ..] => {
            let count = count.parse().map_err(io::Error::other);
            let limit = rest
                .first()
                .map(|p| p.parse().map_err(io::Error::other))
                .transpose();
            match (count, limit) {
                (Ok(c), Ok(l)) => write_requests(Path::new(root), kind, c, Path::new(out), l),
                (Err(e), _) | (_, Err(e)) => Err(e),
            }
        }
        _ => {
            eprintln!(
                "usage: store_bench store ROOT [PAGES] | requests ROOT KIND COUNT OUT [PAGES]"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("store_bench: {e}");
            ExitCode::FAILURE
        }
    }
}
