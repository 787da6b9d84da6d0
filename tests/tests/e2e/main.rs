//! End-to-end tests: official MCP SDK peers (Python 2.x servers and clients, the
//! TypeScript SDK client, and `mcp-remote`) talking through in-process mcp-gateway replicas.
//!
//! Peers come from `cargo xtask setup`; run everything with `cargo xtask test`.

mod auth_tls;
mod common;
mod control;
mod legacy_sse;
mod mcp_remote;
mod modern;
mod payloads;
mod sessions;
mod typescript;
