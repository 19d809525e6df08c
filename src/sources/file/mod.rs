//! `type: file`: a folder polled for HL7 v2 files.

mod config;
mod poller;

pub use config::{AfterSuccess, FileConfig};
pub use poller::{poll_once, prepare_dirs, serve};
