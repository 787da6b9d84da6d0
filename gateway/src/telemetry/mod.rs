//! Logs, access logs and Prometheus metrics.

pub mod access;
pub mod log;
pub mod metrics;

pub use metrics::Metrics;
