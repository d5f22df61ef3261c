//! The crash test, in the manner of SQLite's `crash.test`: a child process
//! (`raida-store-crash-writer`) writes through the store API from several threads and
//! prints every write it tries and every one acknowledged; it is killed with SIGKILL at
//! a random moment; the store is reopened (recovery) and checked:
//!
//! - every acknowledged write is there: each coin holds its last acknowledged AN, or
//!   the AN of a write tried after it (in flight at the kill, so it may or may not have
//!   happened);
//! - no record holds bytes nobody wrote: every other record of the pages is exactly as
//!   the test wrote it, and a written record's status byte goes with its AN;
//! - a write of several coins happened for all of them or for none;
//! - every page file is 17,408 bytes.
//!
//! Some rounds leave the crash unchecked, so that the next writer recovers it itself,
//! and some kill that writer within its first milliseconds, during its recovery.
//!
//! Seeded: the seed is printed first; `RAIDA_CRASH_SEED=<seed>` replays its choices
//! (kill times are real time, so a replay is close, not exact). `RAIDA_CRASH_ROUNDS`
//! changes the number of rounds (default 150). `RAIDA_CRASH_MUTANT=ack-before-sync`
//! runs the writer with that planted bug on (a `--cfg raida_mutants` build): the test
//! must then fail.
//!
//! What SIGKILL can and cannot break: the kernel's page cache outlives the process,
//! so a write the process handed to the kernel survives the kill even unsynced. What a
//! kill does lose is what was still in the process: entries queued for the next group
//! commit, in-place writes not yet issued, a recovery half done. A power loss (unsynced
//! writes lost, writes torn) is the simulator's to model (and `MemDisk::crash` in
//! tests/mem_store.rs).

// Drives the store from real threads and clocks (store/clippy.toml bans them in the store).
#![allow(clippy::disallowed_methods)]

/// The pages, the status byte and the random numbers the writer uses.
#[path = "../src/bin/crash_writer/plan.rs"]
mod plan;
mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use plan::{Rng, PAGES, WRITTEN_STATUS};
use raida_core::keys::{CoinId, KeyStore};
use raida_store::{DiskStore, StoreConfig};
use support::{page_bytes, page_path, write_page, T0};

const THREADS: u32 = 8;
/// The status byte the test's pages hold before any write.
const INITIAL_STATUS: u8 = 0xA5;

type An = [u8; 16];

/// What the test knows of the coins the writer wrote.
#[derive(Default)]
struct Model {
    /// Per coin: its last acknowledged AN (or the initial one), then the ANs of every
    /// write tried since and not acknowledged. The record must hold one of them.
    candidates: BTreeMap<CoinId, Vec<An>>,
    /// Tries by id (`round.thread.n`): their coins and ANs.
    tries: BTreeMap<String, Vec<(CoinId, An)>>,
    /// Per coin, the id of the last write that tried it.
    last_try: BTreeMap<CoinId, String>,
    acked: u64,
    tried: u64,
}

fn parse_an(hex: &str) -> Option<An> {
    let mut an = [0u8; 16];
    if hex.len() != 32 {
        return None;
    }
    for (i, b) in an.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(an)
}

impl Model {
    fn line(&mut self, round: usize, line: &str) {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("TRY"), Some(id)) => {
                let id = format!("{round}.{id}");
                let mut writes = Vec::new();
                for w in words {
                    let mut parts = w.split(':');
                    let (Some(den), Some(serial), Some(an)) =
                        (parts.next(), parts.next(), parts.next())
                    else {
                        panic!("bad TRY line {line:?}");
                    };
                    let coin = CoinId::new(
                        den.parse().expect("denomination"),
                        serial.parse().expect("serial"),
                    );
                    let an = parse_an(an).expect("AN");
                    self.candidates
                        .get_mut(&coin)
                        .unwrap_or_else(|| {
                            panic!("the writer wrote {coin:?}, not one of its coins")
                        })
                        .push(an);
                    self.last_try.insert(coin, id.clone());
                    writes.push((coin, an));
                }
                self.tried += 1;
                self.tries.insert(id, writes);
            }
            (Some("ACK"), Some(id)) => {
                let id = format!("{round}.{id}");
                let writes = self.tries.get(&id).expect("ACK of a TRY");
                for (coin, an) in writes {
                    self.candidates.insert(*coin, vec![*an]);
                }
                self.acked += 1;
            }
            (Some("ERR"), Some(_)) => {
                // Not acknowledged: its ANs stay candidates (a failed sync may still
                // have reached the disk), which is all the model says about it.
            }
            (Some("READY"), None) => {}
            _ => panic!("unexpected line from the writer: {line:?}"),
        }
    }
}

/// The initial bytes of a record of the test's pages.
fn initial_record(initial: &[u8], index: usize) -> &[u8] {
    &initial[index * 17..index * 17 + 17]
}

/// Checks the store at `root` after a crash (recovering it first); returns the
/// violations, and settles the model on what the store holds.
fn check(root: &Path, model: &mut Model) -> Vec<String> {
    let mut violations = Vec::new();
    let store = DiskStore::open(root, StoreConfig::default()).expect("reopen (recovery)");
    let mut holds: BTreeMap<CoinId, An> = BTreeMap::new();
    for &(den, page) in &PAGES {
        let path = page_path(root, den, page);
        let bytes = std::fs::read(&path).expect("read page");
        let initial_page = page_bytes(den, page, 1);
        if bytes.len() != 17408 {
            violations.push(format!("{} is {} bytes", path.display(), bytes.len()));
            continue;
        }
        for index in 0..1024usize {
            let coin = CoinId::new(den, page * 1024 + index as u32);
            let record = &bytes[index * 17..index * 17 + 17];
            let an: An = record[..16].try_into().expect("16 bytes");
            let through_store = store
                .record(coin, T0)
                .expect("read through the store")
                .map(|r| (r.an, r.status));
            if through_store != Some((an, record[16])) {
                violations.push(format!(
                    "{coin:?}: the store reads something else than the file"
                ));
            }
            let initial = initial_record(&initial_page, index);
            match model.candidates.get(&coin) {
                None => {
                    if record != initial {
                        violations.push(format!("{coin:?} (never written) changed"));
                    }
                }
                Some(candidates) => {
                    if !candidates.contains(&an) {
                        violations.push(format!(
                            "{coin:?}: lost an acknowledged write (holds an AN that is neither \
                             its last acknowledged one nor one tried after it)"
                        ));
                    }
                    let is_initial = an[..] == initial[..16];
                    let status_ok = if is_initial {
                        record[16] == INITIAL_STATUS
                    } else {
                        record[16] == WRITTEN_STATUS
                    };
                    if !status_ok {
                        violations
                            .push(format!("{coin:?}: status byte {} with its AN", record[16]));
                    }
                    holds.insert(coin, an);
                }
            }
        }
    }
    // All or nothing: a write still in flight at the kill, whose coins nobody tried
    // since, happened for every coin of it or for none.
    for (id, writes) in &model.tries {
        if writes.len() < 2
            || !writes
                .iter()
                .all(|(c, _)| model.last_try.get(c) == Some(id))
        {
            continue;
        }
        let applied = writes
            .iter()
            .filter(|(c, an)| holds.get(c) == Some(an))
            .count();
        if applied != 0 && applied != writes.len() {
            violations.push(format!(
                "write {id}: {applied} of its {} coins",
                writes.len()
            ));
        }
    }
    for (coin, an) in holds {
        model.candidates.insert(coin, vec![an]);
    }
    model.tries.clear();
    model.last_try.clear();
    violations
}

#[test]
fn every_acknowledged_write_survives_sigkill() {
    let seed = std::env::var("RAIDA_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    let rounds: usize = std::env::var("RAIDA_CRASH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(150);
    let mutant = std::env::var("RAIDA_CRASH_MUTANT").ok();
    println!(
        "crash test seed {seed} ({rounds} rounds{}): replay with RAIDA_CRASH_SEED={seed} \
         cargo test -p raida-store --test crash",
        mutant
            .as_deref()
            .map(|m| format!(", planted bug {m}"))
            .unwrap_or_default()
    );
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    std::fs::create_dir(root.join("Data")).expect("mkdir Data");
    let mut model = Model::default();
    for &(den, page) in &PAGES {
        write_page(root, den, page, 1);
        let initial_page = page_bytes(den, page, 1);
        for t in 0..THREADS {
            for k in 0..32u32 {
                let index = (t * 32 + k) as usize;
                let an: An = initial_record(&initial_page, index)[..16]
                    .try_into()
                    .expect("16");
                model
                    .candidates
                    .insert(CoinId::new(den, page * 1024 + index as u32), vec![an]);
            }
        }
    }

    let started = Instant::now();
    let mut violations: Vec<String> = Vec::new();
    let mut checked = 0;
    let mut early_kills = 0;
    let mut kills = 0;
    for round in 0..rounds {
        let leave_for_the_writer = round % 5 == 1 && round + 1 < rounds;
        let kill_early = round % 5 == 2;
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_raida-store-crash-writer"));
        cmd.arg(root)
            .arg(rng.next().to_string())
            .arg(THREADS.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(m) = &mutant {
            cmd.args(["--mutant", m]);
        }
        let mut child = cmd.spawn().expect("start the writer");
        let stdout = child.stdout.take().expect("stdout");
        let (lines_tx, lines) = mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            let mut out = BufReader::new(stdout);
            let mut line = Vec::new();
            loop {
                line.clear();
                match out.read_until(b'\n', &mut line) {
                    // An unterminated last line was cut by the kill: never a whole write.
                    Ok(0) | Err(_) => break,
                    Ok(_) if line.ends_with(b"\n") => {
                        let text = String::from_utf8_lossy(&line).trim_end().to_string();
                        if lines_tx.send(text).is_err() {
                            break;
                        }
                    }
                    Ok(_) => break,
                }
            }
        });
        let mut got: Vec<String> = Vec::new();
        if kill_early {
            early_kills += 1;
            std::thread::sleep(Duration::from_micros(rng.below(4_000)));
        } else {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let line = lines
                    .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                    .expect("the writer says READY within 30 s");
                let ready = line == "READY";
                got.push(line);
                if ready {
                    break;
                }
            }
            std::thread::sleep(Duration::from_micros(1_000 + rng.below(30_000)));
        }
        // SIGKILL, by the child's own PID (std's `Child::kill` on Unix).
        child.kill().expect("SIGKILL the writer");
        let status = child.wait().expect("reap the writer");
        kills += 1;
        assert!(
            status.code().is_none(),
            "the writer died by itself: {status:?}"
        );
        reader.join().expect("reader");
        got.extend(lines.try_iter());
        for line in &got {
            model.line(round, line);
        }
        if leave_for_the_writer {
            continue;
        }
        checked += 1;
        let found = check(root, &mut model);
        for v in found {
            violations.push(format!("round {round}: {v}"));
        }
        if !violations.is_empty() {
            break;
        }
    }
    let elapsed = started.elapsed();
    println!(
        "{checked} checks after {kills} kills ({early_kills} in the writer's first 4 ms): \
         {} writes tried, {} acknowledged, in {:.1} s",
        model.tried,
        model.acked,
        elapsed.as_secs_f64()
    );
    assert!(
        violations.is_empty(),
        "seed {seed}: {} violation(s):\n{}",
        violations.len(),
        violations.join("\n")
    );
    assert!(model.acked > 0, "the writer acknowledged nothing");
    assert!(elapsed < Duration::from_secs(50), "took {elapsed:?}");
}
