//! mcp-gateway: an edge gateway for MCP servers.
//!
//! The request pipeline, in order (each step is a module):
//! accept ([`http::listener`]) → TLS ([`http::tls`]) → HTTP/1.1 or HTTP/2 ([`http::server`])
//! → edge guard: limits, Origin, rate limits, JWT / API key ([`auth`])
//! → MCP framing and envelope ([`mcp::envelope`]) → per-tool policy ([`auth::policy`])
//! → session routing, bound to the caller ([`session`])
//! → backend choice ([`proxy::balancer`]) → upstream exchange ([`proxy::forward`])
//! → response streaming ([`mcp::sse`]) → access log and metrics ([`telemetry`]).

pub mod auth;
pub mod config;
pub mod doctor;
pub mod drain;
pub mod ebpf;
pub mod http;
pub mod mcp;
pub mod notify;
pub mod proxy;
pub mod session;
pub mod telemetry;

mod gateway;

pub use gateway::{RunningGateway, StartError, start};

/// The version string `--version` prints, with the build's data-plane mode.
#[cfg(feature = "ebpf")]
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (eBPF/XDP data plane built in)");
/// The version string `--version` prints, with the build's data-plane mode.
#[cfg(not(feature = "ebpf"))]
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (userspace-only: eBPF data plane not built)");
