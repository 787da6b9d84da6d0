//! Where the test peers live: environment overrides and the repo-relative defaults.
//!
//! `cargo xtask test` sets every `ENV_*` variable; a plain `cargo test` falls back to
//! the paths `cargo xtask setup` creates. A missing peer is an error that names the
//! command to run, never a silently skipped test.

use std::path::{Path, PathBuf};

/// Python interpreter with the `mcp` SDK installed (default: `<repo>/.venv/bin/python`).
pub const ENV_PYTHON: &str = "MCP_E2E_PYTHON";
/// Directory holding `client.mjs` and its `node_modules` (default: `<repo>/tests/js`).
pub const ENV_NODE_DIR: &str = "MCP_E2E_NODE_DIR";
/// The `node` executable (default: `node` on `PATH`).
pub const ENV_NODE: &str = "MCP_E2E_NODE";
/// The built `mcp-gateway` binary (set by `cargo xtask test`).
pub const ENV_GATEWAY_BIN: &str = "MCP_GATEWAY_BIN";
/// The built `mcp-demo-server` binary (set by `cargo xtask test`).
pub const ENV_DEMO_SERVER_BIN: &str = "MCP_DEMO_SERVER_BIN";

/// Errors locating a peer.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    /// The Python interpreter or the SDK scripts are missing.
    #[error("Python peer not available: {path} does not exist (set {ENV_PYTHON} or run `cargo xtask setup`)")]
    PythonMissing {
        /// The interpreter path that was tried.
        path: PathBuf,
    },
    /// The TypeScript SDK is not installed.
    #[error("TypeScript peer not available: {path} does not exist (set {ENV_NODE_DIR} or run `cargo xtask setup`)")]
    NodeModulesMissing {
        /// The `node_modules/@modelcontextprotocol/sdk` path that was tried.
        path: PathBuf,
    },
}

/// The repository root (parent of the `tests` crate).
pub fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The directory holding `backend.py` and `client.py`.
pub fn py_dir() -> PathBuf {
    repo_root().join("tests").join("py")
}

/// The Python interpreter for the peers; errors when it does not exist.
pub fn python() -> Result<PathBuf, EnvError> {
    let path = std::env::var_os(ENV_PYTHON)
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv").join("bin").join("python"));
    if path.exists() { Ok(path) } else { Err(EnvError::PythonMissing { path }) }
}

/// The directory with `client.mjs`; errors when the TypeScript SDK is not installed there.
pub fn node_dir() -> Result<PathBuf, EnvError> {
    let dir = std::env::var_os(ENV_NODE_DIR).map(PathBuf::from).unwrap_or_else(|| repo_root().join("tests").join("js"));
    let sdk = dir.join("node_modules").join("@modelcontextprotocol").join("sdk");
    if sdk.exists() { Ok(dir) } else { Err(EnvError::NodeModulesMissing { path: sdk }) }
}

/// The `node` executable to run `client.mjs` with.
pub fn node() -> PathBuf {
    std::env::var_os(ENV_NODE).map_or_else(|| PathBuf::from("node"), PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_root_holds_the_workspace_manifest() {
        assert!(repo_root().join("Cargo.toml").exists());
        assert!(py_dir().join("backend.py").exists());
        assert!(py_dir().join("client.py").exists());
    }

    #[test]
    fn missing_python_names_the_fix() {
        let err = EnvError::PythonMissing { path: PathBuf::from("/nonexistent/python") };
        let text = err.to_string();
        assert!(text.contains("cargo xtask setup"), "{text}");
        assert!(text.contains(ENV_PYTHON), "{text}");
    }
}
