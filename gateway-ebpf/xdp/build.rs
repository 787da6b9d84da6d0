//! Rebuild the XDP object when `bpf-linker` changes (aya-template).

fn main() {
    // Not an error when absent: gateway/build.rs reports a missing toolchain with the fix.
    if let Ok(path) = which::which("bpf-linker") {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}
