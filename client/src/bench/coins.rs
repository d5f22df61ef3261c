//! Loads of the authentication commands over a store's coins: [`StoreCoins`] reads
//! every complete page of a key store directory (PROTOCOL.md section 10) once, and
//! [`CoinLoad`] is the [`RequestSource`] that names those coins, with their ANs, in
//! detect or pown requests.
//!
//! Draws come from the seed alone (request number `k` always names the same coins for
//! the same seed and store), never from the order in which threads ask, so a run's
//! coins can be repeated. detect draws each coin uniformly, with replacement, from the
//! whole store. pown walks a seeded permutation of the store, so every coin is named at
//! most once in a run; when fewer coins than a request needs are left, the source
//! stops.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use raida_wire::{An, Status, StatusByte, PAGE_BYTES, RECORDS_PER_PAGE, RECORD_BYTES};

use super::{Next, RequestSource};
use crate::auth::{AuthCommand, AN_LEN, COIN_REF_LEN, GROUP};
use crate::crypto;
use crate::error::{BuildError, RandomError};
use crate::request::{BuiltRequest, Coin, Request, CHALLENGE_RANDOM_LEN, NONCE_LEN};

/// Denominations a RAIDA knows (PROTOCOL.md 8a): pages of others are never served.
const DENOMINATIONS: std::ops::RangeInclusive<i8> = -8..=6;

/// Why [`StoreCoins::read`] found no store.
#[derive(Debug, thiserror::Error)]
pub enum StoreReadError {
    /// `<root>/Data` is missing, not a directory, or cannot be listed.
    #[error("key store: expected a directory {} (PROTOCOL.md section 10), got: {source}", .path.display())]
    Data {
        /// The `Data` directory looked for.
        path: PathBuf,
        /// What the file system said.
        source: io::Error,
    },
    /// A directory inside `Data` could not be listed.
    #[error("key store: expected to list {}, got: {source}", .path.display())]
    List {
        /// The directory.
        path: PathBuf,
        /// What the file system said.
        source: io::Error,
    },
}

/// A file or directory under `Data/` that [`StoreCoins::read`] did not take coins
/// from, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// Where it is.
    pub path: PathBuf,
    /// Why it holds no coins a RAIDA serves.
    pub reason: &'static str,
}

/// Every coin of a key store directory, with its AN as the page files held it when
/// read: all 1,024 records of every complete page (a coin is known when its page file
/// is, PROTOCOL.md section 10). 16 bytes per coin: a full store of 15,000 pages takes
/// about 250 MB.
pub struct StoreCoins {
    /// (denomination, page number) of each page, sorted.
    pages: Vec<(i8, u16)>,
    /// `RECORDS_PER_PAGE` ANs per page, in page order.
    ans: Vec<An>,
    skipped: Vec<Skipped>,
}

/// Counts only: never prints an AN.
impl std::fmt::Debug for StoreCoins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreCoins")
            .field("pages", &self.pages.len())
            .field("skipped", &self.skipped.len())
            .finish_non_exhaustive()
    }
}

impl StoreCoins {
    /// Reads `<root>/Data/<dd>/<pp>/<pppp>.bin`: every file whose name is a page of a
    /// denomination in -8..=6, under the `pp` directory of its page number's high byte,
    /// at least 17,408 bytes long (the first 17,408 are read, as a server does).
    /// Anything else under `Data/` is listed in [`skipped`](Self::skipped). Reads the
    /// page files directly, page after page.
    pub fn read(root: &Path) -> Result<StoreCoins, StoreReadError> {
        let data = root.join("Data");
        let mut pages: Vec<((i8, u16), Vec<An>)> = Vec::new();
        let mut skipped = Vec::new();
        let dens = fs::read_dir(&data).map_err(|source| StoreReadError::Data {
            path: data.clone(),
            source,
        })?;
        for den_dir in dens {
            let den_dir = den_dir.map_err(|source| StoreReadError::List {
                path: data.clone(),
                source,
            })?;
            let path = den_dir.path();
            let den = hex_name(&den_dir.file_name(), 2)
                .filter(|_| path.is_dir())
                .map(|d| i8::from_ne_bytes([d as u8]));
            let reason = match den {
                None => "not a denomination directory (two lowercase hex digits)",
                Some(d) if !DENOMINATIONS.contains(&d) => "denomination outside -8..=6",
                Some(_) => "",
            };
            let Some(den) = den.filter(|_| reason.is_empty()) else {
                skipped.push(Skipped { path, reason });
                continue;
            };
            for pp_dir in list(&path)? {
                let pp_path = pp_dir.path();
                let Some(pp) = hex_name(&pp_dir.file_name(), 2).filter(|_| pp_path.is_dir()) else {
                    skipped.push(Skipped {
                        path: pp_path,
                        reason: "not a page directory (two lowercase hex digits)",
                    });
                    continue;
                };
                for file in list(&pp_path)? {
                    let file_path = file.path();
                    let name = file.file_name();
                    let page = name
                        .to_str()
                        .and_then(|n| n.strip_suffix(".bin"))
                        .and_then(|n| hex_name(n.as_ref(), 4));
                    let Some(page) = page else {
                        skipped.push(Skipped {
                            path: file_path,
                            reason: "not a page file (four lowercase hex digits, .bin)",
                        });
                        continue;
                    };
                    if page >> 8 != pp {
                        skipped.push(Skipped {
                            path: file_path,
                            reason: "under another page number's directory",
                        });
                        continue;
                    }
                    match read_page(&file_path) {
                        Ok(Some(ans)) => pages.push(((den, page as u16), ans)),
                        Ok(None) => skipped.push(Skipped {
                            path: file_path,
                            reason: "shorter than a page (17408 bytes)",
                        }),
                        Err(_) => skipped.push(Skipped {
                            path: file_path,
                            reason: "unreadable",
                        }),
                    }
                }
            }
        }
        // Directory order is the file system's: sort, so a seed names the same coins
        // on every copy of a store.
        pages.sort_by_key(|(id, _)| *id);
        skipped.sort_by(|a, b| a.path.cmp(&b.path));
        let ids = pages.iter().map(|(id, _)| *id).collect();
        let ans = pages.into_iter().flat_map(|(_, ans)| ans).collect();
        Ok(StoreCoins {
            pages: ids,
            ans,
            skipped,
        })
    }

    /// How many coins: 1,024 per page.
    pub fn len(&self) -> u64 {
        self.ans.len() as u64
    }

    /// Whether there is no coin at all.
    pub fn is_empty(&self) -> bool {
        self.ans.is_empty()
    }

    /// How many pages the coins came from.
    pub fn pages(&self) -> usize {
        self.pages.len()
    }

    /// What was found under `Data/` but not read, sorted by path.
    pub fn skipped(&self) -> &[Skipped] {
        &self.skipped
    }

    /// Coin number `index` (0..[`len`](Self::len): pages in (denomination, page) order,
    /// records in serial order) and its AN.
    pub fn coin(&self, index: u64) -> Option<(Coin, An)> {
        let i = usize::try_from(index).ok()?;
        let an = *self.ans.get(i)?;
        let per_page = RECORDS_PER_PAGE as usize;
        let (den, page) = *self.pages.get(i / per_page)?;
        let serial = u32::from(page) * RECORDS_PER_PAGE + (i % per_page) as u32;
        Some((Coin::new(den, serial), an))
    }
}

fn list(dir: &Path) -> Result<Vec<fs::DirEntry>, StoreReadError> {
    let err = |source| StoreReadError::List {
        path: dir.to_path_buf(),
        source,
    };
    fs::read_dir(dir)
        .map_err(err)?
        .collect::<io::Result<Vec<_>>>()
        .map_err(err)
}

/// The value of a name of exactly `digits` lowercase hex digits (how a server writes
/// them: it would not find `FF` for `ff`).
fn hex_name(name: &std::ffi::OsStr, digits: usize) -> Option<u32> {
    let s = name.to_str()?;
    if s.len() != digits || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    u32::from_str_radix(s, 16).ok()
}

/// The 1,024 ANs of a page file; `None` when it is shorter than a page.
fn read_page(path: &Path) -> io::Result<Option<Vec<An>>> {
    let mut buf = Vec::with_capacity(PAGE_BYTES);
    File::open(path)?
        .take(PAGE_BYTES as u64)
        .read_to_end(&mut buf)?;
    if buf.len() < PAGE_BYTES {
        return Ok(None);
    }
    Ok(Some(
        buf.chunks_exact(RECORD_BYTES)
            .map(|record| {
                let mut an = [0u8; AN_LEN];
                an.copy_from_slice(&record[..AN_LEN]);
                an
            })
            .collect(),
    ))
}

/// The command of a [`CoinLoad`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CoinCommand {
    /// detect (1/10): coins drawn uniformly with replacement, with their ANs.
    Detect,
    /// pown (1/20): every coin at most once, each with a fresh random PAN. This
    /// rewrites the server's ANs, and the PANs are not kept: run it on a copy of a
    /// store.
    Pown,
}

impl CoinCommand {
    /// The 8a command.
    pub fn auth(self) -> AuthCommand {
        match self {
            CoinCommand::Detect => AuthCommand::Detect,
            CoinCommand::Pown => AuthCommand::Pown,
        }
    }
}

/// Why a [`CoinLoad`] cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum CoinLoadError {
    /// The store has no coin.
    #[error("coins: expected at least one complete page, got none")]
    NoCoins,
    /// Zero coins per request.
    #[error("coins per request: expected at least 1, got 0")]
    ZeroPerRequest,
    /// pown needs more coins per request than the store has.
    #[error("coins per request: pown uses each coin once, expected at most {have} (the store's coins), got {want}")]
    NotEnoughCoins {
        /// The store's coins.
        have: u64,
        /// Coins per request.
        want: u64,
    },
    /// The requests would not fit the 2-byte body length.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// The OS random source failed.
    #[error(transparent)]
    Random(#[from] RandomError),
}

/// A [`RequestSource`] of detect or pown requests over a store's coins: each request
/// names `per_request` coins with their ANs (as read at start), and gets fresh nonce,
/// challenge and (pown) PANs from a keystream keyed by the OS random source. Its
/// success is 241 ALL_PASS.
///
/// Request number `k` (counted over every slot and thread) names coins
/// `k * per_request ..` of the seed's sequence: for detect, uniform draws; for pown,
/// a permutation of the store, so that no coin is named twice, until the store runs
/// out ([`Next::Stop`]).
pub struct CoinLoad {
    template: Request,
    command: CoinCommand,
    coins: StoreCoins,
    per_request: u64,
    seed: u64,
    permutation: Permutation,
    issued: AtomicU64,
    /// AES-128 key of the keystream that supplies nonces, challenges and PANs.
    stream_key: [u8; 16],
}

/// Never prints key material.
impl std::fmt::Debug for CoinLoad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoinLoad")
            .field("command", &self.command)
            .field("coins", &self.coins)
            .field("per_request", &self.per_request)
            .field("seed", &self.seed)
            .finish_non_exhaustive()
    }
}

impl CoinLoad {
    /// Requests like `template` (its raida id, coin id, shard and keys; group and
    /// command are set here) for `command`, `per_request` coins each from `coins`, drawn
    /// from `seed`.
    pub fn new(
        template: &Request,
        command: CoinCommand,
        coins: StoreCoins,
        per_request: usize,
        seed: u64,
    ) -> Result<CoinLoad, CoinLoadError> {
        if coins.is_empty() {
            return Err(CoinLoadError::NoCoins);
        }
        let n = per_request as u64;
        if n == 0 {
            return Err(CoinLoadError::ZeroPerRequest);
        }
        if command == CoinCommand::Pown && n > coins.len() {
            return Err(CoinLoadError::NotEnoughCoins {
                have: coins.len(),
                want: n,
            });
        }
        let mut template = template.clone();
        template.group = GROUP;
        template.command = command.auth().code();
        template.payload = vec![0; per_request * entry_len(command)];
        // Every request has this size: if one builds, all do.
        template.build()?;
        template.payload.clear();
        let mut stream_key = [0u8; 16];
        getrandom::getrandom(&mut stream_key).map_err(RandomError)?;
        Ok(CoinLoad {
            template,
            command,
            permutation: Permutation::new(coins.len(), seed),
            coins,
            per_request: n,
            seed,
            issued: AtomicU64::new(0),
            stream_key,
        })
    }

    /// The store's coins.
    pub fn coins(&self) -> &StoreCoins {
        &self.coins
    }

    /// Coins per request.
    pub fn per_request(&self) -> u64 {
        self.per_request
    }

    /// The seed of the draws.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The request every one of this load's requests is made from (empty payload),
    /// for [`super::BenchConfig::request`].
    pub fn template(&self) -> &Request {
        &self.template
    }

    /// Requests made so far (pown: each named `per_request` coins never named before).
    pub fn requests_made(&self) -> u64 {
        let issued = self.issued.load(Ordering::Relaxed);
        match self.command {
            CoinCommand::Detect => issued,
            CoinCommand::Pown => issued.min(self.coins.len() / self.per_request),
        }
    }

    /// Coin number `i` of the seed's sequence.
    fn coin_index(&self, i: u64) -> u64 {
        match self.command {
            CoinCommand::Detect => {
                splitmix64(self.seed ^ 0xD1B5_4A32_D192_ED03, i) % self.coins.len()
            }
            CoinCommand::Pown => self.permutation.apply(i),
        }
    }

    /// `len` keystream bytes for request `k`: blocks of its own, so no two requests
    /// share any.
    fn random_for(&self, k: u64, len: usize) -> Vec<u8> {
        let blocks = len.div_ceil(16) as u128;
        let iv = (u128::from(k) * blocks).to_be_bytes();
        let mut buf = vec![0u8; len];
        crypto::aes128_ctr(&self.stream_key, &iv, &mut buf);
        buf
    }
}

/// Bytes of one coin's entry in the payload.
fn entry_len(command: CoinCommand) -> usize {
    match command {
        CoinCommand::Detect => COIN_REF_LEN + AN_LEN,
        CoinCommand::Pown => COIN_REF_LEN + 2 * AN_LEN,
    }
}

impl RequestSource for CoinLoad {
    fn next(&self, request: &mut BuiltRequest, seq: u64) -> Next {
        let k = self.issued.fetch_add(1, Ordering::Relaxed);
        let n = self.per_request;
        let Some(first) = k.checked_mul(n) else {
            return Next::Stop;
        };
        if self.command == CoinCommand::Pown && first.saturating_add(n) > self.coins.len() {
            return Next::Stop;
        }
        let pans = if self.command == CoinCommand::Pown {
            AN_LEN
        } else {
            0
        };
        let fixed = NONCE_LEN + CHALLENGE_RANDOM_LEN;
        let random = self.random_for(k, fixed + pans * n as usize);
        let mut r = self.template.clone();
        r.nonce.copy_from_slice(&random[..NONCE_LEN]);
        r.challenge.copy_from_slice(&random[NONCE_LEN..fixed]);
        // Over UDP a late reply to an earlier request of the slot then fails the echo
        // check and counts as stale.
        r.echo = (seq as u16).to_be_bytes();
        r.payload.reserve(n as usize * entry_len(self.command));
        let mut pans = random[fixed..].chunks_exact(AN_LEN);
        for j in 0..n {
            let Some((coin, an)) = self.coins.coin(self.coin_index(first + j)) else {
                // Indices are below `coins.len()` by construction.
                return Next::Stop;
            };
            r.payload.extend_from_slice(&coin.to_bytes());
            r.payload.extend_from_slice(&an);
            if let Some(pan) = pans.next() {
                r.payload.extend_from_slice(pan);
            }
        }
        match r.build() {
            Ok(built) => {
                *request = built;
                Next::Send
            }
            // `new` built a request of this size; this arm is unreachable.
            Err(_) => Next::Stop,
        }
    }

    fn success(&self) -> StatusByte {
        Status::AllPass.into()
    }
}

/// SplitMix64 of (`seed`, `i`): a well-mixed 64-bit value per index.
fn splitmix64(seed: u64, i: u64) -> u64 {
    let mut z = seed.wrapping_add(i.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A seeded permutation of `0..total`: a four-round Feistel network over the smallest
/// power of four at or above `total`, walking the cycle past values at or above
/// `total` (each step is a bijection of the larger domain, so the walk returns below
/// `total`, after fewer than four steps on average).
#[derive(Clone, Debug)]
struct Permutation {
    total: u64,
    half_bits: u32,
    keys: [u64; 4],
}

impl Permutation {
    fn new(total: u64, seed: u64) -> Permutation {
        let mut half_bits = 1;
        while half_bits < 32 && (1u64 << (2 * half_bits)) < total {
            half_bits += 1;
        }
        let keys = [0, 1, 2, 3].map(|r| splitmix64(seed ^ 0x5EED_F015_7E11_0000, r));
        Permutation {
            total,
            half_bits,
            keys,
        }
    }

    /// The image of `i` (`i < total`; others come back unchanged).
    fn apply(&self, i: u64) -> u64 {
        if i >= self.total {
            return i;
        }
        let mut x = i;
        loop {
            x = self.round_trip(x);
            if x < self.total {
                return x;
            }
        }
    }

    fn round_trip(&self, x: u64) -> u64 {
        let mask = (1u64 << self.half_bits) - 1;
        let (mut left, mut right) = (x >> self.half_bits, x & mask);
        for key in self.keys {
            let next = left ^ (splitmix64(key, right) & mask);
            left = right;
            right = next;
        }
        (left << self.half_bits) | right
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn the_permutation_is_a_bijection_for_every_small_size() {
        for total in (1..=70).chain([1023, 1024, 1025, 3 * 1024]) {
            let p = Permutation::new(total, 7);
            let images: BTreeSet<u64> = (0..total).map(|i| p.apply(i)).collect();
            assert_eq!(images.len() as u64, total, "total {total}");
            assert!(images.iter().all(|&x| x < total), "total {total}");
        }
    }

    #[test]
    fn the_permutation_depends_on_the_seed_and_shuffles() {
        let a: Vec<u64> = (0..64)
            .map(|i| Permutation::new(2048, 1).apply(i))
            .collect();
        let b: Vec<u64> = (0..64)
            .map(|i| Permutation::new(2048, 2).apply(i))
            .collect();
        assert_ne!(a, b);
        assert_ne!(a, (0..64).collect::<Vec<_>>());
        let again: Vec<u64> = (0..64)
            .map(|i| Permutation::new(2048, 1).apply(i))
            .collect();
        assert_eq!(a, again);
    }

    #[test]
    fn hex_names_are_exactly_lowercase_digits() {
        let h = |s: &str, d| hex_name(s.as_ref(), d);
        assert_eq!(h("ff", 2), Some(0xff));
        assert_eq!(h("0100", 4), Some(0x100));
        assert_eq!(h("FF", 2), None);
        assert_eq!(h("f", 2), None);
        assert_eq!(h("0x1", 3), None);
        assert_eq!(h("+f", 2), None);
    }
}
