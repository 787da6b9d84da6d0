//! The eBPF build toolchain and kernel prerequisites: nightly `rust-src`, LLVM 22 and
//! `bpf-linker`, and a mounted bpffs.
//!
//! Every step checks first and does nothing when its tool is already there, so
//! `cargo xtask setup` stays quick on a prepared machine. What was checked to work on
//! this kind of machine (versions, the `LLVM_PREFIX` pitfall) is recorded in
//! `shared/ebpf-on-this-machine.md`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::run::{output, run};
use crate::step;

/// The nightly toolchain `aya-build` builds the eBPF crate with (`-Z build-std=core`).
pub const NIGHTLY: &str = "nightly";
/// Debian packages `bpf-linker` links against (LLVM 22, from bookworm-security).
pub const LLVM_PACKAGES: [&str; 4] = ["llvm-22-dev", "libpolly-22-dev", "libzstd-dev", "zlib1g-dev"];
/// Debian packages the network-namespace test drives (`ip`, `ping`, `curl`).
pub const NETNS_PACKAGES: [&str; 3] = ["iproute2", "iputils-ping", "curl"];
/// Where the LLVM 22 packages install; `bpf-linker`'s build needs it as `LLVM_PREFIX`
/// because `/usr/bin/llvm-config` may point at an older LLVM.
pub const LLVM_PREFIX: &str = "/usr/lib/llvm-22";
/// The `bpf-linker` release that was checked to work with LLVM 22 and aya 0.14.
pub const BPF_LINKER_VERSION: &str = "0.13.0";
/// Where bpffs is mounted for pinned maps.
pub const BPFFS: &str = "/sys/fs/bpf";

/// Limit for `rustup component add`.
const RUSTUP_LIMIT: Duration = Duration::from_secs(10 * 60);
/// Limit for `apt-get update` / `apt-get install`.
const APT_LIMIT: Duration = Duration::from_secs(20 * 60);
/// Limit for `cargo install bpf-linker` (about 50 s on 2 idle cores).
const INSTALL_LIMIT: Duration = Duration::from_secs(30 * 60);
/// Limit for quick probes.
const PROBE_LIMIT: Duration = Duration::from_secs(60);

/// Install everything `gateway/build.rs` needs to build the XDP program, and mount bpffs.
pub fn setup(root: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    rust_src()?;
    apt(&LLVM_PACKAGES)?;
    apt(&NETNS_PACKAGES)?;
    bpf_linker(root)?;
    bpffs()?;
    step!("ebpf: toolchain ready ({:.1} s)", started.elapsed().as_secs_f64());
    Ok(())
}

/// True when `rust-src` is among the installed components listed by rustup.
pub fn has_rust_src(installed: &str) -> bool {
    installed.lines().any(|line| line.trim().starts_with("rust-src"))
}

fn rust_src() -> anyhow::Result<()> {
    let mut list = Command::new("rustup");
    list.args(["component", "list", "--toolchain", NIGHTLY, "--installed"]);
    if output(&mut list, PROBE_LIMIT).is_some_and(|text| has_rust_src(&text)) {
        step!("ebpf: {NIGHTLY} rust-src present");
        return Ok(());
    }
    let started = Instant::now();
    run(Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", NIGHTLY]), RUSTUP_LIMIT)
        .context("installing rust-src for the nightly toolchain (the eBPF build uses -Z build-std=core)")?;
    step!("ebpf: rust-src installed ({:.1} s)", started.elapsed().as_secs_f64());
    Ok(())
}

/// Packages of `wanted` that `dpkg-query` output (`name status` lines) does not show installed.
pub fn missing_packages<'a>(status: &str, wanted: &[&'a str]) -> Vec<&'a str> {
    wanted
        .iter()
        .filter(|name| {
            !status.lines().any(|line| {
                let mut fields = line.split_whitespace();
                let installed = line.trim_end().ends_with("install ok installed");
                fields.next().is_some_and(|n| n.split(':').next() == Some(**name)) && installed
            })
        })
        .copied()
        .collect()
}

/// Installs whichever of `packages` dpkg does not show installed.
fn apt(packages: &[&str]) -> anyhow::Result<()> {
    // One query per package: dpkg-query fails as a whole when any one is unknown.
    let status: String = packages
        .iter()
        .filter_map(|p| output(Command::new("dpkg-query").args(["-W", "-f=${Package} ${Status}\n", p]), PROBE_LIMIT))
        .map(|line| line + "\n")
        .collect();
    let missing = missing_packages(&status, packages);
    if missing.is_empty() {
        step!("ebpf: {} present", packages.join(", "));
        return Ok(());
    }
    let started = Instant::now();
    let install = || {
        let mut cmd = Command::new("apt-get");
        cmd.args(["install", "-y", "--no-install-recommends"]).args(&missing).env("DEBIAN_FRONTEND", "noninteractive");
        run(&mut cmd, APT_LIMIT)
    };
    if install().is_err() {
        step!("ebpf: apt-get install failed; refreshing the package lists and retrying");
        run(Command::new("apt-get").args(["update", "-q"]).env("DEBIAN_FRONTEND", "noninteractive"), APT_LIMIT)?;
        install().with_context(|| format!("apt-get install {} (needs root)", missing.join(" ")))?;
    }
    step!("ebpf: installed {} ({:.1} s)", missing.join(", "), started.elapsed().as_secs_f64());
    Ok(())
}

fn bpf_linker(root: &Path) -> anyhow::Result<()> {
    if let Some(version) = output(Command::new("bpf-linker").arg("--version"), PROBE_LIMIT) {
        step!("ebpf: {version} present");
        return Ok(());
    }
    let started = Instant::now();
    let package = format!("bpf-linker@{BPF_LINKER_VERSION}");
    run(
        Command::new(crate::test::cargo())
            .args(["install", &package, "--locked", "--no-default-features", "--features", "llvm-22"])
            .env("LLVM_PREFIX", LLVM_PREFIX)
            // Outside the workspace, so its .cargo/config and toolchain don't apply.
            .current_dir(root.parent().unwrap_or(root)),
        INSTALL_LIMIT,
    )
    .context("cargo install bpf-linker")?;
    if output(Command::new("bpf-linker").arg("--version"), PROBE_LIMIT).is_none() {
        bail!("bpf-linker was installed but is not on PATH (add ~/.cargo/bin to PATH)");
    }
    step!("ebpf: bpf-linker {BPF_LINKER_VERSION} installed ({:.1} s)", started.elapsed().as_secs_f64());
    Ok(())
}

/// True when `mounts` (the text of `/proc/mounts`) has a bpf filesystem at `dir`.
pub fn bpffs_mounted(mounts: &str, dir: &str) -> bool {
    mounts.lines().any(|line| {
        let mut fields = line.split_whitespace();
        let (_, at, kind) = (fields.next(), fields.next(), fields.next());
        at == Some(dir) && kind == Some("bpf")
    })
}

/// Mount bpffs at [`BPFFS`] for pinned maps; only a note when that is not possible
/// (not root, or inside a container without the mount capability).
fn bpffs() -> anyhow::Result<()> {
    let mounts = std::fs::read_to_string("/proc/mounts").context("reading /proc/mounts")?;
    if bpffs_mounted(&mounts, BPFFS) {
        step!("ebpf: bpffs mounted at {BPFFS}");
        return Ok(());
    }
    match run(Command::new("mount").args(["-t", "bpf", "bpf", BPFFS]), PROBE_LIMIT) {
        Ok(()) => step!("ebpf: mounted bpffs at {BPFFS}"),
        Err(e) => step!("ebpf: could not mount bpffs at {BPFFS} ({e:#}); xdp.pin_path will not work"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_src_is_found_in_the_component_list() {
        assert!(has_rust_src("cargo-x86_64-unknown-linux-gnu\nrust-src\nrustc-x86_64-unknown-linux-gnu\n"));
        assert!(!has_rust_src("cargo-x86_64-unknown-linux-gnu\nrust-std-x86_64-unknown-linux-gnu\n"));
    }

    #[test]
    fn missing_packages_reads_dpkg_query_status() {
        let status = "llvm-22-dev install ok installed\nlibzstd-dev:amd64 install ok installed\n\
                      libpolly-22-dev deinstall ok config-files\n";
        assert_eq!(missing_packages(status, &LLVM_PACKAGES), ["libpolly-22-dev", "zlib1g-dev"]);
        assert!(missing_packages("", &[]).is_empty());
    }

    #[test]
    fn bpffs_mount_is_found_by_type_and_place() {
        let mounts = "proc /proc proc rw 0 0\nbpf /sys/fs/bpf bpf rw,relatime 0 0\n";
        assert!(bpffs_mounted(mounts, "/sys/fs/bpf"));
        assert!(!bpffs_mounted("tmpfs /sys/fs/bpf tmpfs rw 0 0\n", "/sys/fs/bpf"));
        assert!(!bpffs_mounted(mounts, "/sys/fs/bpf/x"));
    }
}
