//! Integration tests of the gateway package: in-process gateways (from YAML)
//! and the `mcp-gateway` binary in front of real `mcp-demo-server` processes.

mod admin;
mod cli;
mod common;
mod edge;
mod protocol;
mod sessions;
mod streaming;
mod tls;
