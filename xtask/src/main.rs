//! `cargo xtask`: the project's task runner.
//!
//! - `setup`: install the end-to-end test peers (Python venv with the MCP SDK, the
//!   TypeScript SDK via `npm ci`); idempotent and fast when nothing changed.
//! - `test`: setup, build the gateway binaries, run the unit and end-to-end tests.
//! - `demo`: build (release) and run the demo MCP server behind the gateway until Ctrl-C.
//! - `fuzz`: coverage-guided fuzzing of the parsers of untrusted bytes (bounded; `--seconds`).
//! - `bench`: the benchmark against nginx, HAProxy and direct (`--gate`: the callgrind CI gate).

mod bench;
mod demo;
#[cfg(test)]
mod deploy;
mod ebpf;
mod fuzz;
mod netns;
mod run;
mod setup;
mod test;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Command line of `cargo xtask`.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "mcp-gateway development tasks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Install the e2e test peers (Python venv + mcp SDK, TypeScript SDK).
    Setup,
    /// Setup, build the gateway binaries, run unit and e2e tests.
    Test(test::TestArgs),
    /// Run the demo MCP server behind the gateway until Ctrl-C / SIGTERM.
    Demo(demo::DemoArgs),
    /// Root only: the XDP data plane on veth in network namespaces (blocked pings counted exactly).
    Netns,
    /// Coverage-guided fuzzing of the untrusted-input parsers (stable; `--seconds` per target).
    Fuzz(fuzz::FuzzArgs),
    /// Benchmark against nginx, HAProxy and direct; write bench/report.md and report.png.
    Bench(bench::BenchArgs),
}

/// The workspace root (parent of this crate's directory).
pub fn repo_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map_or(manifest.clone(), PathBuf::from)
}

/// Print a progress line (xtask's output is for humans and CI logs).
#[macro_export]
macro_rules! step {
    ($($arg:tt)*) => {
        $crate::report(format_args!($($arg)*))
    };
}

/// Print one `[xtask]` progress line on stdout, flushed at once.
#[expect(clippy::print_stdout, reason = "xtask reports progress on stdout")]
pub fn report(args: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    println!("[xtask] {args}");
    let _ = std::io::stdout().flush();
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let root = repo_root();
    match cli.command {
        Command::Setup => setup::setup(&root).map(|_| ()),
        Command::Test(args) => test::test(&root, &args),
        Command::Demo(args) => demo::demo(&root, &args),
        Command::Netns => netns::run(&root),
        Command::Fuzz(args) => fuzz::fuzz(&root, &args),
        Command::Bench(args) => bench::bench(&root, &args),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn test_forwards_trailing_args() {
        let cli = Cli::try_parse_from(["xtask", "test", "--", "sessions", "--nocapture"]).unwrap();
        let Command::Test(args) = cli.command else { panic!("not test") };
        assert_eq!(args.cargo_test_args, ["sessions", "--nocapture"]);
    }

    #[test]
    fn repo_root_is_the_workspace() {
        assert!(repo_root().join("Cargo.toml").exists());
        assert!(repo_root().join("xtask").is_dir());
    }

    /// The README's configuration reference is the embedded default config, verbatim, so the
    /// documentation cannot drift from what `mcp-gateway` runs without `--config`.
    #[test]
    fn readme_config_reference_is_the_embedded_default() {
        let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
        let default = std::fs::read_to_string(repo_root().join("gateway/src/config/default.yaml")).unwrap();
        let section = &readme[readme.find("## Configuration reference").expect("section")..];
        let start = section.find("```yaml\n").expect("yaml block") + "```yaml\n".len();
        let end = start + section[start..].find("```\n").expect("block end");
        assert!(
            section[start..end] == default,
            "README.md's configuration reference differs from gateway/src/config/default.yaml; copy the file in"
        );
    }
}
