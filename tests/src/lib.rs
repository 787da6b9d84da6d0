//! Harness for the end-to-end tests: real MCP SDK peers (Python backends, Python and
//! TypeScript clients) around in-process mcp-gateway replicas.
//!
//! Everything here is bounded in time and cleans up after itself: child processes run
//! in their own process group and are killed on drop, temporary key files are removed
//! on drop, and every wait has a deadline. Peers come from `cargo xtask setup` (the
//! repo-root `.venv` and `tests/js/node_modules`); see [`env`] for the overrides.

pub mod backend;
pub mod client;
pub mod env;
pub mod gateway;
pub mod ports;
pub mod process;

pub use backend::{BackendOptions, PyBackend, PyTransport};
pub use client::{ClientOutput, PausedClient, node_client, node_script, py_client};
pub use gateway::{BackendSpec, GatewaySpec, SessionKey, TestGateway};

/// `unwrap` for harness results that panics with the error's `Display` text, which
/// carries the peer's stderr tail and, for a missing peer, the command that installs it.
pub trait OrFail<T> {
    /// The value, or a panic showing the error.
    fn or_fail(self) -> T;
}

impl<T, E: std::fmt::Display> OrFail<T> for Result<T, E> {
    #[track_caller]
    fn or_fail(self) -> T {
        match self {
            Ok(value) => value,
            Err(err) => panic!("{err}"),
        }
    }
}
