//! `type: mllp`: an HL7 v2 listener over TCP with MLLP framing.

mod config;
mod listener;

pub use config::MllpConfig;
pub(crate) use config::default_charset;
pub use listener::{serve, tls_acceptor};
