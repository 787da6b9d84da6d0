//! Integration tests of the gateway package: in-process gateways (from YAML)
//! and the `mcp-gateway` binary in front of real `mcp-demo-server` processes.

mod admin;
mod auth_edge;
mod auth_jwt;
mod auth_perf;
mod auth_policy;
mod auth_support;
mod auth_tls;
mod cli;
mod common;
mod edge;
mod pool;
mod protocol;
mod sessions;
mod streaming;
mod tls;
