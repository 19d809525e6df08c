//! Network access control shared by the listeners: server TLS (with optional client
//! certificates) and allow-lists of peer addresses.
//!
//! This room builds `rustls` server configurations and answers "may this address connect?";
//! it does not accept connections, read frames or speak HTTP — the MLLP listener and the API
//! do that with what is built here.

pub mod peers;
pub mod tls;

pub use peers::AllowList;
pub use tls::{TlsConfig, TlsError};
