//! Upstream side: backends, their health, choosing one, and the exchange.

pub mod backend;
pub mod balancer;
pub mod client;
pub mod error;
pub mod forward;
pub mod h1;
pub mod health;
pub mod pool;
pub mod upstream_tls;

pub use backend::{Backend, Backends};
pub use error::GatewayError;
