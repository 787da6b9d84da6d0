//! `cargo xtask fuzz`: coverage-guided fuzzing of the parsers of untrusted bytes
//! (JSON-RPC envelope, session-id opener, JWT header/claims, config loader, the upstream
//! HTTP/1.1 response reader) on
//! stable Rust.
//!
//! The targets in `gateway/fuzz/` are libFuzzer targets (libfuzzer-sys). This
//! builds them with the sanitizer-coverage flags cargo-fuzz passes (all stable
//! `-C` options; no AddressSanitizer, which needs nightly), into
//! `target/fuzz/` so the normal build cache is untouched, then runs each for
//! `--seconds` with the committed seeds (`gateway/fuzz/seeds/<target>`) and a
//! working corpus in `target/fuzz/corpus/<target>`. A crash fails the command
//! and leaves its input in `target/fuzz/artifacts/<target>/`.
//!
//! Short CI run: `cargo xtask fuzz --seconds 20`. Longer runs: `cargo xtask fuzz
//! --seconds 3600 jwt`, or with nightly and ASan: `cd gateway/fuzz && cargo +nightly fuzz run jwt`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::run::{output, run};
use crate::step;
use crate::test::cargo;

/// The fuzz targets (binaries of `gateway/fuzz`).
pub const TARGETS: [&str; 5] = ["envelope", "session_id", "jwt", "config", "h1_response"];
/// Limit for building the instrumented targets.
const BUILD_LIMIT: Duration = Duration::from_secs(40 * 60);

/// The flags cargo-fuzz passes for coverage-guided fuzzing, minus the sanitizer.
const COVERAGE_FLAGS: &[&str] = &[
    "-Cpasses=sancov-module",
    "-Cllvm-args=-sanitizer-coverage-level=4",
    "-Cllvm-args=-sanitizer-coverage-inline-8bit-counters",
    "-Cllvm-args=-sanitizer-coverage-pc-table",
    "-Cllvm-args=-sanitizer-coverage-trace-compares",
    "-Cllvm-args=-sanitizer-coverage-stack-depth",
    "--cfg",
    "fuzzing",
];

/// Options of `cargo xtask fuzz`.
#[derive(Debug, clap::Args)]
pub struct FuzzArgs {
    /// Seconds to fuzz each target.
    #[arg(long, default_value_t = 30)]
    pub seconds: u64,
    /// Targets to run (default: all of envelope, session_id, jwt, config, h1_response).
    pub targets: Vec<String>,
}

/// The libFuzzer command line for one target.
pub fn fuzzer_args(seconds: u64, corpus: &Path, seeds: &Path, artifacts: &Path) -> Vec<String> {
    vec![
        format!("-max_total_time={seconds}"),
        "-timeout=10".to_owned(),
        "-rss_limit_mb=2048".to_owned(),
        "-max_len=65536".to_owned(),
        "-print_final_stats=1".to_owned(),
        format!("-artifact_prefix={}/", artifacts.display()),
        corpus.display().to_string(),
        seeds.display().to_string(),
    ]
}

/// Run `cargo xtask fuzz`.
pub fn fuzz(root: &Path, args: &FuzzArgs) -> anyhow::Result<()> {
    let targets: Vec<&str> = if args.targets.is_empty() {
        TARGETS.to_vec()
    } else {
        for t in &args.targets {
            if !TARGETS.contains(&t.as_str()) {
                bail!("unknown fuzz target {t:?}; targets: {}", TARGETS.join(", "));
            }
        }
        args.targets.iter().map(String::as_str).collect()
    };
    let host = output(Command::new("rustc").arg("-vV"), Duration::from_secs(30))
        .and_then(|v| v.lines().find_map(|l| l.strip_prefix("host: ").map(str::to_owned)))
        .context("cannot read the host triple from `rustc -vV`")?;
    let fuzz_dir = root.join("gateway").join("fuzz");
    let target_dir = root.join("target").join("fuzz");
    step!("building the fuzz targets with coverage instrumentation");
    // `--target` keeps the flags off build scripts and proc macros, as cargo-fuzz does.
    run(
        Command::new(cargo())
            .args(["build", "--release", "--bins", "--target", &host, "--manifest-path"])
            .arg(fuzz_dir.join("Cargo.toml"))
            .env("CARGO_TARGET_DIR", &target_dir)
            .env("RUSTFLAGS", COVERAGE_FLAGS.join(" ")),
        BUILD_LIMIT,
    )?;
    for t in targets {
        let corpus = target_dir.join("corpus").join(t);
        let artifacts = target_dir.join("artifacts").join(t);
        for dir in [&corpus, &artifacts] {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let bin = target_dir.join(&host).join("release").join(t);
        step!("fuzzing {t} for {} s", args.seconds);
        let limit = Duration::from_secs(args.seconds.saturating_add(120));
        let argv = fuzzer_args(args.seconds, &corpus, &fuzz_dir.join("seeds").join(t), &artifacts);
        run(Command::new(&bin).args(argv), limit)
            .with_context(|| format!("fuzz target {t} failed; the input is in {}", artifacts.display()))?;
    }
    step!("fuzzing passed");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_target_has_seeds_and_a_source() {
        let fuzz = crate::repo_root().join("gateway").join("fuzz");
        for t in TARGETS {
            assert!(fuzz.join("fuzz_targets").join(format!("{t}.rs")).is_file(), "{t}");
            let seeds = std::fs::read_dir(fuzz.join("seeds").join(t)).unwrap().count();
            assert!(seeds > 0, "{t} has no seeds");
        }
    }

    #[test]
    fn libfuzzer_arguments_are_bounded() {
        let args = fuzzer_args(5, Path::new("/c"), Path::new("/s"), Path::new("/a"));
        assert_eq!(args[0], "-max_total_time=5");
        assert!(args.contains(&"-artifact_prefix=/a/".to_owned()));
        assert_eq!(&args[args.len() - 2..], ["/c", "/s"]);
    }
}
