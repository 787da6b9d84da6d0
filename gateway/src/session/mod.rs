//! Gateway-owned MCP sessions: sealed, self-describing session ids.

pub mod cache;
pub mod keys;
pub mod token;

pub use keys::{KeyFileError, SessionKeys};
pub use token::{OpenError, Principal, Sealer, SessionClaims, SessionTransport};
