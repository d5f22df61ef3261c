//! Replays every committed fuzz input on the stable toolchain, without cargo-fuzz.
//!
//! Each file under `fuzz/corpus/<target>/` and `fuzz/regressions/<target>/` goes through
//! the same function the cargo-fuzz target calls (`raida_fuzz_harness::<target>`); a
//! panic is the bug the fuzzer found, so a regression file that panics fails this test.
//! Every target must have replayed at least one file, so an emptied or misplaced corpus
//! cannot pass silently.

use std::fs;
use std::path::{Path, PathBuf};

use raida_fuzz_harness as harness;

type Target = fn(&[u8]);

const TARGETS: [(&str, Target); 4] = [
    ("header", harness::header),
    ("tcp_stream", harness::tcp_stream),
    ("udp_datagram", harness::udp_datagram),
    ("request", harness::request),
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// The files of `dir`, sorted (a missing directory holds none).
fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    out.sort();
    out
}

fn replay(kind: &str, min_files: usize) {
    for (name, target) in TARGETS {
        let dir = fuzz_dir().join(kind).join(name);
        assert!(dir.is_dir(), "{} is missing", dir.display());
        let inputs = files(&dir);
        assert!(
            inputs.len() >= min_files,
            "{}: {} files, expected at least {min_files}",
            dir.display(),
            inputs.len()
        );
        for path in &inputs {
            let data = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            eprintln!("replaying {} ({} bytes)", path.display(), data.len());
            target(&data);
        }
        eprintln!("{name}: replayed {} {kind} files", inputs.len());
    }
}

#[test]
fn every_seed_corpus_file_replays_clean() {
    replay("corpus", 1);
}

/// Inputs that crashed a target once (or were interesting enough to keep): a target
/// that never crashed has an empty directory (kept by `.gitkeep`).
#[test]
fn every_regression_file_replays_clean() {
    replay("regressions", 0);
}

/// The seeds written to the corpora are exactly what `raida_fuzz_harness::seeds`
/// generates, so a change to a target's input layout shows up here.
#[test]
fn the_committed_seeds_are_current() {
    for (target, name, bytes) in harness::seeds() {
        let path = fuzz_dir().join("corpus").join(target).join(&name);
        let committed = fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; rewrite with `cargo test -p raida-tests --test fuzz_replay -- --ignored write_seed_corpora`",
                path.display()
            )
        });
        assert_eq!(committed, bytes, "{} is stale", path.display());
    }
}

/// Writes the seed corpora (`fuzz/corpus/<target>/<name>`) from
/// `raida_fuzz_harness::seeds`.
#[test]
#[ignore = "writes files; run by hand when a target's input layout changes"]
fn write_seed_corpora() {
    for (target, name, bytes) in harness::seeds() {
        let dir = fuzz_dir().join("corpus").join(target);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let path = dir.join(name);
        fs::write(&path, bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}

/// Each seed through its target directly, so the seeds themselves are checked even
/// before they are written.
#[test]
fn every_generated_seed_passes_its_target() {
    let seeds = harness::seeds();
    for (name, target) in TARGETS {
        let mine: Vec<_> = seeds.iter().filter(|s| s.0 == name).collect();
        assert!(!mine.is_empty(), "no seed for {name}");
        for (_, seed, bytes) in mine {
            eprintln!("{name}/{seed}");
            target(bytes);
        }
    }
}
