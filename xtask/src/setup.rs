//! `cargo xtask setup`: install what the end-to-end tests run against.
//!
//! - `.venv/` (repo root, git-ignored) with the pins of `tests/py/requirements.txt`;
//!   skipped when the installed versions already match the pins.
//! - `tests/js/node_modules` from the committed lockfile (`npm ci`); skipped when a
//!   stamp records the same lockfile hash and node version.
//! - the eBPF toolchain hook ([`setup_ebpf_toolchain`]).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::run::{output, run, sha256_hex, stamp_matches, write_stamp};
use crate::step;

/// Limit for `pip install`.
const PIP_LIMIT: Duration = Duration::from_secs(15 * 60);
/// Limit for `npm ci`.
const NPM_LIMIT: Duration = Duration::from_secs(10 * 60);
/// Limit for quick probes (`--version`, imports).
const PROBE_LIMIT: Duration = Duration::from_secs(60);
/// Stamp inside `node_modules` recording what `npm ci` installed from.
const NODE_STAMP: &str = ".xtask-lock.sha256";

/// Where the installed peers are.
#[derive(Debug, Clone)]
pub struct Peers {
    /// The venv's Python interpreter.
    pub python: PathBuf,
    /// `tests/js`, holding `client.mjs` and `node_modules`.
    pub node_dir: PathBuf,
}

/// Install every peer; fast when all are current.
pub fn setup(root: &Path) -> anyhow::Result<Peers> {
    let python = setup_python(root)?;
    let node_dir = setup_node(root)?;
    setup_ebpf_toolchain(root)?;
    step!("setup done");
    Ok(Peers { python, node_dir })
}

/// `name==version` pins of a requirements file (comments and other lines ignored).
pub fn parse_pins(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(|line| line.split('#').next().unwrap_or_default().trim())
        .filter_map(|line| line.split_once("=="))
        .map(|(name, version)| (name.trim().to_owned(), version.trim().to_owned()))
        .filter(|(name, version)| !name.is_empty() && !version.is_empty())
        .collect()
}

fn venv_python(root: &Path) -> PathBuf {
    root.join(".venv").join("bin").join("python")
}

/// Installed versions of `names` in the venv, or `None` if any is missing.
fn installed_versions(python: &Path, names: &[&str]) -> Option<Vec<String>> {
    let script = "import sys, importlib.metadata as m\nfor n in sys.argv[1:]: print(m.version(n))";
    let text = output(Command::new(python).arg("-c").arg(script).args(names), PROBE_LIMIT)?;
    let versions: Vec<String> = text.lines().map(str::to_owned).collect();
    (versions.len() == names.len()).then_some(versions)
}

/// The e2e venv with the pinned MCP SDK; returns its interpreter.
pub fn setup_python(root: &Path) -> anyhow::Result<PathBuf> {
    let requirements = root.join("tests").join("py").join("requirements.txt");
    let text = std::fs::read_to_string(&requirements).with_context(|| format!("reading {}", requirements.display()))?;
    let pins = parse_pins(&text);
    if pins.is_empty() {
        bail!("{} pins nothing (expected lines like `mcp==2.3.0`)", requirements.display());
    }
    let python = venv_python(root);
    let works = output(Command::new(&python).arg("--version"), PROBE_LIMIT).is_some();
    if !works {
        let venv = root.join(".venv");
        if venv.exists() {
            step!("python: {} is broken; recreating", venv.display());
            std::fs::remove_dir_all(&venv).with_context(|| format!("removing {}", venv.display()))?;
        }
        let base = std::env::var_os("PYTHON").unwrap_or_else(|| "python3".into());
        run(Command::new(&base).args(["-m", "venv"]).arg(&venv), PROBE_LIMIT)
            .context("creating the Python venv (on Debian: apt-get install python3-venv)")?;
    }
    let names: Vec<&str> = pins.iter().map(|(n, _)| n.as_str()).collect();
    let wanted: Vec<&str> = pins.iter().map(|(_, v)| v.as_str()).collect();
    if installed_versions(&python, &names).is_some_and(|have| have == wanted) {
        step!("python: {} up to date ({})", python.display(), describe_pins(&pins));
        return Ok(python);
    }
    step!("python: installing {}", describe_pins(&pins));
    run(
        Command::new(&python)
            .args(["-m", "pip", "install", "--disable-pip-version-check", "--no-input", "-q", "-r"])
            .arg(&requirements)
            .env("PIP_NO_INPUT", "1"),
        PIP_LIMIT,
    )?;
    match installed_versions(&python, &names) {
        Some(have) if have == wanted => {
            step!("python: installed {}", describe_pins(&pins));
            Ok(python)
        }
        other => bail!("after pip install the venv has {other:?}, expected {wanted:?}"),
    }
}

fn describe_pins(pins: &[(String, String)]) -> String {
    pins.iter().map(|(n, v)| format!("{n}=={v}")).collect::<Vec<_>>().join(", ")
}

fn setup_node(root: &Path) -> anyhow::Result<PathBuf> {
    let dir = root.join("tests").join("js");
    let lock = dir.join("package-lock.json");
    let lock_bytes = std::fs::read(&lock).with_context(|| format!("reading {}", lock.display()))?;
    let Some(node_version) = output(Command::new("node").arg("--version"), PROBE_LIMIT) else {
        bail!("`node` not found on PATH (Node.js 20+ is needed for the TypeScript-SDK e2e client)");
    };
    let expected = format!("{} node={node_version}", sha256_hex(&lock_bytes));
    let stamp = dir.join("node_modules").join(NODE_STAMP);
    if stamp_matches(&stamp, &expected) {
        step!("node: tests/js/node_modules up to date (lockfile {})", &expected[..12]);
        return Ok(dir);
    }
    step!("node: npm ci in tests/js (node {node_version})");
    run(
        Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&dir)
            .env("CI", "true"),
        NPM_LIMIT,
    )
    .context("npm ci in tests/js")?;
    write_stamp(&stamp, &expected)?;
    Ok(dir)
}

/// The eBPF build toolchain (nightly `rust-src`, LLVM 22, bpf-linker) and bpffs; see
/// [`crate::ebpf`]. Skipped when the `gateway-ebpf/` crate is absent.
pub fn setup_ebpf_toolchain(root: &Path) -> anyhow::Result<()> {
    if !root.join("gateway-ebpf").join("xdp").join("Cargo.toml").exists() {
        step!("ebpf: no gateway-ebpf crate; nothing to install");
        return Ok(());
    }
    crate::ebpf::setup(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_are_parsed_and_comments_skipped() {
        let text = "# header\nmcp==2.3.0  # the SDK\n\nhttpx>=1\n  other == 1.2 \n";
        assert_eq!(
            parse_pins(text),
            vec![("mcp".to_owned(), "2.3.0".to_owned()), ("other".to_owned(), "1.2".to_owned())]
        );
    }

    #[test]
    fn repo_requirements_pin_the_sdk() {
        let text = std::fs::read_to_string(crate::repo_root().join("tests/py/requirements.txt")).unwrap();
        let pins = parse_pins(&text);
        assert!(pins.iter().any(|(name, _)| name == "mcp"), "{pins:?}");
    }

    #[test]
    fn installed_versions_of_a_missing_interpreter_is_none() {
        assert_eq!(installed_versions(Path::new("/nonexistent/python"), &["mcp"]), None);
    }
}
