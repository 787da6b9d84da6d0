//! Client-facing HTTP: listeners, TLS, the connection loop, the admin endpoints.

pub mod admin;
pub mod listener;
pub mod server;
pub mod tls;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;

pub use crate::proxy::forward::BoxError;

/// Every response body the gateway sends.
pub type GwBody = UnsyncBoxBody<Bytes, BoxError>;

/// A whole body from bytes.
pub fn full(bytes: impl Into<Bytes>) -> GwBody {
    use http_body_util::BodyExt;
    http_body_util::Full::new(bytes.into()).map_err(|never| match never {}).boxed_unsync()
}

/// An empty body.
pub fn empty() -> GwBody {
    full(Bytes::new())
}
