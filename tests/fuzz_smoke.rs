//! The short form of the fuzz targets, part of `cargo test`: each target's invariants
//! (`fuzz/src`, the same code libFuzzer runs under `make fuzz`) on its checked-in seeds
//! (`fuzz/corpus/<target>`) and on a fixed number of inputs mutated from them with a seeded
//! generator, so every run checks the same inputs and a failure names one that can be replayed
//! (`cargo +nightly fuzz run <target> <file>`, after writing it out).
//!
//! Running on stable in the workspace spares `make test` a nightly toolchain, cargo-fuzz and a
//! second build of every dependency. It is no coverage-guided search: that is `make fuzz`.
//! The mutator is written here because it is a dozen lines of libFuzzer's basic mutations
//! (byte flips, inserts, erases, copies, dictionary words, splices), and pulling a fuzzing
//! framework into the test build for that would cost more than it gives.

mod common;
#[allow(dead_code)]
#[path = "../fuzz/src/config.rs"]
mod config;
#[allow(dead_code)]
#[path = "../fuzz/src/json_mutate.rs"]
mod json_mutate;
#[allow(dead_code)]
#[path = "../fuzz/src/jwks.rs"]
mod jwks;
#[allow(dead_code)]
#[path = "../fuzz/src/paths.rs"]
mod paths;
#[allow(dead_code)]
#[path = "../fuzz/src/token.rs"]
mod token;

use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The checked-in seeds of a target, in name order.
fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = fuzz_dir().join("corpus").join(target);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a corpus entry").path())
        .collect();
    files.sort();
    let seeds: Vec<Vec<u8>> = files.iter().map(|f| fs::read(f).expect("a seed file")).collect();
    assert!(!seeds.is_empty(), "no seeds in {}", dir.display());
    seeds
}

/// The words of a libFuzzer dictionary (`"word"` lines with `\\`, `\"` and `\xNN` escapes).
fn dictionary(name: &str) -> Vec<Vec<u8>> {
    let file = fuzz_dir().join("dict").join(name);
    let text = fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    text.lines()
        .filter_map(|line| {
            let quoted = line.trim().strip_prefix('"')?.strip_suffix('"')?;
            let mut word = Vec::new();
            let mut bytes = quoted.bytes();
            while let Some(b) = bytes.next() {
                match (b, b == b'\\') {
                    (_, false) => word.push(b),
                    (_, true) => match bytes.next() {
                        Some(b'x') => {
                            let hex: Vec<u8> = bytes.by_ref().take(2).collect();
                            let hex = std::str::from_utf8(&hex).expect("a hex escape");
                            word.push(u8::from_str_radix(hex, 16).expect("a hex escape"));
                        }
                        Some(other) => word.push(other),
                        None => panic!("{}: a trailing backslash in {line}", file.display()),
                    },
                }
            }
            Some(word)
        })
        .collect()
}

/// SplitMix64: small, seeded, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One to four of libFuzzer's basic mutations, stacked.
fn mutate(rng: &mut Rng, input: &[u8], seeds: &[Vec<u8>], dict: &[Vec<u8>]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(8) {
            0 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] ^= 1 << rng.below(8);
            }
            1 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] = rng.next() as u8;
            }
            2 => out.insert(at, rng.next() as u8),
            3 if !out.is_empty() => {
                let start = rng.below(out.len());
                let end = (start + 1 + rng.below(16)).min(out.len());
                out.drain(start..end);
            }
            4 if !out.is_empty() => {
                let start = rng.below(out.len());
                let end = (start + 1 + rng.below(32)).min(out.len());
                let copy = out[start..end].to_vec();
                out.splice(at..at, copy);
            }
            5 if !dict.is_empty() => {
                let word = dict[rng.below(dict.len())].clone();
                out.splice(at..at, word);
            }
            6 => {
                let other = &seeds[rng.below(seeds.len())];
                let from = rng.below(other.len() + 1);
                out.truncate(at);
                out.extend_from_slice(&other[from..]);
            }
            _ => out.truncate(at),
        }
    }
    out
}

/// The seeds, then `runs` mutants (each of a seed or of an earlier mutant), through `check`.
fn smoke(target: &str, dict: Option<&str>, runs: usize, check: impl Fn(&[u8])) {
    let seeds = seeds(target);
    let dict = dict.map(dictionary).unwrap_or_default();
    let mut rng = Rng(0x5EED ^ target.len() as u64);
    let mut pool = seeds.clone();
    let run = |input: &[u8]| {
        if let Err(cause) = panic::catch_unwind(AssertUnwindSafe(|| check(input))) {
            eprintln!("fuzz smoke {target}: the invariant failed on the input {input:?}");
            panic::resume_unwind(cause);
        }
    };
    for seed in &seeds {
        run(seed);
    }
    for _ in 0..runs {
        let parent = pool[rng.below(pool.len())].clone();
        let input = mutate(&mut rng, &parent, &seeds, &dict);
        run(&input);
        if pool.len() < 256 {
            pool.push(input);
        }
    }
}

#[test]
fn config_parse() {
    config::self_check();
    smoke("config_parse", Some("json.dict"), 2_000, config::check);
}

#[test]
fn jwks_parse() {
    jwks::self_check();
    smoke("jwks_parse", Some("json.dict"), 2_000, jwks::check);
}

#[test]
fn token_decide() {
    smoke("token_decide", None, 3_000, token::check);
}

#[test]
fn path_policy() {
    smoke("path_policy", Some("path.dict"), 20_000, paths::check);
}
