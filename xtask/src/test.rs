//! `cargo xtask test`: setup, build the gateway binaries, run unit and e2e tests.
//!
//! The e2e harness finds its peers and binaries through the environment set here
//! (`MCP_E2E_PYTHON`, `MCP_E2E_NODE_DIR`, `MCP_GATEWAY_BIN`, `MCP_DEMO_SERVER_BIN`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::run::run;
use crate::setup::setup;
use crate::step;

/// Limit for `cargo build`.
const BUILD_LIMIT: Duration = Duration::from_secs(40 * 60);
/// Packages whose tests `cargo xtask test` runs.
pub const TEST_PACKAGES: [&str; 4] = ["mcp-gateway", "mcp-gateway-alloc", "mcp-gateway-tests", "xtask"];

/// Options of `cargo xtask test`.
#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// Limit for the whole `cargo test` run, in minutes.
    #[arg(long, default_value_t = 60)]
    pub timeout_mins: u64,
    /// Seconds of coverage-guided fuzzing per fuzz target after the tests (0 skips it).
    #[arg(long, default_value_t = 15)]
    pub fuzz_seconds: u64,
    /// Skip the callgrind instructions-per-request gate (`cargo xtask bench --gate`).
    #[arg(long)]
    pub no_gate: bool,
    /// Arguments passed on to `cargo test` (write them after `--`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub cargo_test_args: Vec<String>,
}

/// The cargo that invoked us (`$CARGO`), else `cargo`.
pub fn cargo() -> PathBuf {
    std::env::var_os("CARGO").map_or_else(|| PathBuf::from("cargo"), PathBuf::from)
}

/// The target directory (`$CARGO_TARGET_DIR`, relative to the root, else `<root>/target`).
pub fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), |dir| root.join(dir))
}

/// `cargo test` command line for `extra` forwarded arguments.
pub fn cargo_test_args(extra: &[String]) -> Vec<String> {
    let mut args = vec!["test".to_owned()];
    for package in TEST_PACKAGES {
        args.extend(["-p".to_owned(), package.to_owned()]);
    }
    args.extend(extra.iter().cloned());
    args
}

/// GiB a cold `cargo xtask test` writes under the target directory (debug build and tests,
/// release build for the gate, fuzz build), with room to spare.
const COLD_TARGET_GIB: u64 = COLD_TARGET_MEASURED_GIB + 2;
/// Measured: `du -s target` after a cold `CI=true cargo xtask test` was 3.8 GiB (debug 1.7,
/// release 1.1, fuzz 1.1); with full debug info and incremental state it had been 13 GiB.
const COLD_TARGET_MEASURED_GIB: u64 = 4;
/// GiB a warm run may still write (changed crates, test binaries, logs).
const WARM_TARGET_GIB: u64 = 2;

/// Free GiB on the filesystem holding `dir` (or its nearest existing ancestor), from `df`.
fn free_gib(dir: &Path) -> Option<u64> {
    let existing = dir.ancestors().find(|p| p.exists())?;
    let text = crate::run::output(Command::new("df").arg("-Pk").arg(existing), Duration::from_secs(10))?;
    parse_df_available_kib(&text).map(|kib| kib / (1024 * 1024))
}

/// The "Available" column (KiB) of `df -Pk` output for one path.
fn parse_df_available_kib(text: &str) -> Option<u64> {
    text.lines().nth(1)?.split_whitespace().nth(3)?.parse().ok()
}

/// Fail at once, with what to do, when the build would fill the disk part-way through.
fn check_disk_space(root: &Path) -> anyhow::Result<()> {
    let target = target_dir(root);
    let cold = !target.join("debug").join("mcp-gateway").exists();
    let need = if cold { COLD_TARGET_GIB } else { WARM_TARGET_GIB };
    let Some(free) = free_gib(&target) else {
        step!("free disk space under {} unknown (df failed); going on", target.display());
        return Ok(());
    };
    if free < need {
        anyhow::bail!(
            "only {free} GiB free on the filesystem holding {}; a {} `cargo xtask test` needs about {need} GiB \
             (debug, release and fuzz builds). Free space (`cargo clean` in other checkouts) or point \
             CARGO_TARGET_DIR at a larger filesystem.",
            target.display(),
            if cold { "cold" } else { "warm" },
        );
    }
    step!("disk: {free} GiB free under {} (need ~{need} GiB)", target.display());
    Ok(())
}

/// `cargo` with incremental compilation off under CI: a fresh clone never reuses it, and it
/// doubled the debug target's size.
fn cargo_command() -> Command {
    let mut command = Command::new(cargo());
    if std::env::var_os("CI").is_some() && std::env::var_os("CARGO_INCREMENTAL").is_none() {
        command.env("CARGO_INCREMENTAL", "0");
    }
    command
}

/// Run `cargo xtask test`.
pub fn test(root: &Path, args: &TestArgs) -> anyhow::Result<()> {
    check_disk_space(root)?;
    let peers = setup(root)?;
    step!("building the gateway binaries");
    run(cargo_command().args(["build", "-p", "mcp-gateway", "--bins"]).current_dir(root), BUILD_LIMIT)?;
    let bin_dir = target_dir(root).join("debug");
    let limit = Duration::from_secs(args.timeout_mins.saturating_mul(60));
    step!("running tests of {} (limit {} min)", TEST_PACKAGES.join(", "), args.timeout_mins);
    run(
        cargo_command()
            .args(cargo_test_args(&args.cargo_test_args))
            .current_dir(root)
            .env("MCP_E2E_PYTHON", &peers.python)
            .env("MCP_E2E_NODE_DIR", &peers.node_dir)
            .env("MCP_GATEWAY_BIN", bin_dir.join("mcp-gateway"))
            .env("MCP_DEMO_SERVER_BIN", bin_dir.join("mcp-demo-server")),
        limit,
    )?;
    // The slower whole-product checks run only for an unfiltered run: root-only packet tests
    // of the XDP data plane, a bounded fuzz run of every parser of untrusted bytes, and the
    // deterministic performance gate (instruction counts, not wall-clock time).
    if args.cargo_test_args.is_empty() {
        crate::netns::netns(&bin_dir, Some(&peers.python))?;
        if args.fuzz_seconds > 0 {
            crate::fuzz::fuzz(root, &crate::fuzz::FuzzArgs { seconds: args.fuzz_seconds, targets: Vec::new() })?;
        }
        if !args.no_gate {
            crate::bench::bench(root, &crate::bench::BenchArgs { gate: true, ..Default::default() })?;
        }
    }
    step!("all tests passed");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cargo_test_covers_the_packages_and_forwards_extra_args() {
        let args = cargo_test_args(&["e2e".to_owned(), "--".to_owned(), "--nocapture".to_owned()]);
        assert_eq!(
            args,
            [
                "test",
                "-p",
                "mcp-gateway",
                "-p",
                "mcp-gateway-alloc",
                "-p",
                "mcp-gateway-tests",
                "-p",
                "xtask",
                "e2e",
                "--",
                "--nocapture"
            ]
        );
    }

    #[test]
    fn df_available_column_is_parsed() {
        let text = "Filesystem     1024-blocks     Used Available Capacity Mounted on\n\
                    /dev/vda         264092060 14680064  81788928      15% /\n";
        assert_eq!(parse_df_available_kib(text), Some(81_788_928));
        assert_eq!(parse_df_available_kib("Filesystem\n"), None);
        assert_eq!(parse_df_available_kib("h\n/dev/x 1 2 many 3% /\n"), None);
        assert!(free_gib(Path::new("/")).is_some());
    }

    #[test]
    fn target_dir_defaults_under_the_root() {
        if std::env::var_os("CARGO_TARGET_DIR").is_none() {
            assert_eq!(target_dir(Path::new("/r")), PathBuf::from("/r/target"));
        }
    }
}
