//! Integration tests of the gateway package: in-process gateways (from YAML)
//! and the `mcp-gateway` binary in front of real `mcp-demo-server` processes.

mod admin;
mod auth_backend;
mod auth_edge;
mod auth_jwt;
mod auth_mtls;
mod auth_policy;
mod auth_support;
mod auth_tls;
mod cli;
mod common;
mod edge;
mod h2_floods;
mod pool;
mod protocol;
mod sessions;
mod streaming;
mod tls;
