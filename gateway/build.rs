//! Builds the XDP program (`gateway-ebpf/xdp`) for `bpfel-unknown-none` with
//! `aya_build` (nightly, `-Z build-std=core`, bpf-linker) when the `ebpf` feature
//! is on; `src/ebpf/` embeds the object from `OUT_DIR` with `include_bytes_aligned!`.
//!
//! Without the feature nothing is built and the gateway is userspace-only. With it
//! but without the toolchain the build fails and says how to fix that.
//! `AYA_BUILD_SKIP=1` skips the eBPF build (an empty object is embedded, which the
//! loader reports as "not built"), e.g. for linting on a host without bpf-linker.

fn main() -> anyhow::Result<()> {
    #[cfg(feature = "ebpf")]
    ebpf::build()?;
    Ok(())
}

#[cfg(feature = "ebpf")]
mod ebpf {
    use std::path::PathBuf;
    use std::process::Command;

    use anyhow::{Context, bail};

    /// Package and binary name of the XDP program.
    const PACKAGE: &str = "gateway-ebpf";
    const BINARY: &str = "gateway-xdp";
    /// The nightly toolchain the nested build runs under (`rustup run`).
    const ENV_TOOLCHAIN: &str = "MCP_GATEWAY_EBPF_TOOLCHAIN";
    const FIX: &str = "run `cargo xtask setup` (installs nightly rust-src, llvm-22 and bpf-linker), \
                       or build a userspace-only gateway with `--no-default-features`";

    pub fn build() -> anyhow::Result<()> {
        let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").context("CARGO_MANIFEST_DIR not set")?);
        let root = manifest_dir.join("..").join("gateway-ebpf").join("xdp");
        let root = root.canonicalize().with_context(|| format!("{} is missing", root.display()))?;
        let root = root.to_str().context("gateway-ebpf path is not UTF-8")?.to_owned();
        let out = PathBuf::from(std::env::var_os("OUT_DIR").context("OUT_DIR not set")?).join(BINARY);
        println!("cargo:rerun-if-env-changed={ENV_TOOLCHAIN}");
        println!("cargo:rerun-if-env-changed=AYA_BUILD_SKIP");
        let skip = std::env::var("AYA_BUILD_SKIP").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
        if skip {
            std::fs::write(&out, b"").with_context(|| format!("writing {}", out.display()))?;
            return Ok(());
        }
        let toolchain_name = std::env::var(ENV_TOOLCHAIN).unwrap_or_else(|_| "nightly".to_owned());
        check_toolchain(&toolchain_name)?;
        let toolchain = match toolchain_name.as_str() {
            "nightly" => aya_build::Toolchain::Nightly,
            other => aya_build::Toolchain::Custom(other),
        };
        let package = aya_build::Package { name: PACKAGE, root_dir: &root, ..Default::default() };
        aya_build::build_ebpf([package], toolchain).with_context(|| {
            format!("building the XDP program ({PACKAGE}) failed; if the toolchain is missing, {FIX}")
        })?;
        if !out.exists() {
            bail!("aya-build did not produce {}", out.display());
        }
        Ok(())
    }

    /// Fails with the fix when bpf-linker or the toolchain's rust-src is missing.
    fn check_toolchain(toolchain: &str) -> anyhow::Result<()> {
        let linker = Command::new("bpf-linker").arg("--version").output();
        if !linker.is_ok_and(|o| o.status.success()) {
            bail!("the `ebpf` feature (on by default) needs bpf-linker, which is not on PATH: {FIX}");
        }
        let components =
            Command::new("rustup").args(["component", "list", "--installed", "--toolchain", toolchain]).output();
        // Without rustup (a distro toolchain) aya-build uses the current toolchain; let it try.
        if let Ok(listing) = components {
            let text = String::from_utf8_lossy(&listing.stdout);
            if !listing.status.success() || !text.lines().any(|l| l.starts_with("rust-src")) {
                bail!("the `ebpf` feature (on by default) needs the {toolchain} toolchain with rust-src: {FIX}");
            }
        }
        Ok(())
    }
}
