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
pub const TEST_PACKAGES: [&str; 3] = ["mcp-gateway", "mcp-gateway-tests", "xtask"];

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

/// Run `cargo xtask test`.
pub fn test(root: &Path, args: &TestArgs) -> anyhow::Result<()> {
    let peers = setup(root)?;
    step!("building the gateway binaries");
    run(Command::new(cargo()).args(["build", "-p", "mcp-gateway", "--bins"]).current_dir(root), BUILD_LIMIT)?;
    let bin_dir = target_dir(root).join("debug");
    let limit = Duration::from_secs(args.timeout_mins.saturating_mul(60));
    step!("running tests of {} (limit {} min)", TEST_PACKAGES.join(", "), args.timeout_mins);
    run(
        Command::new(cargo())
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
    fn cargo_test_covers_the_three_packages_and_forwards_extra_args() {
        let args = cargo_test_args(&["e2e".to_owned(), "--".to_owned(), "--nocapture".to_owned()]);
        assert_eq!(
            args,
            ["test", "-p", "mcp-gateway", "-p", "mcp-gateway-tests", "-p", "xtask", "e2e", "--", "--nocapture"]
        );
    }

    #[test]
    fn target_dir_defaults_under_the_root() {
        if std::env::var_os("CARGO_TARGET_DIR").is_none() {
            assert_eq!(target_dir(Path::new("/r")), PathBuf::from("/r/target"));
        }
    }
}
