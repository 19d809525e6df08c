//! Logging set-up. Log lines are sentences with typed fields; they never carry PHI (names,
//! identifiers, contacts, message bodies): sources log connector names, counts and reasons.
//! `tests/no_phi_in_logs.rs` proves it: an end-to-end scenario logged at `debug` through
//! [`fmt_layer`] (the formatting [`init`] installs), searched for every patient value it sent.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{LogConfig, LogFormat};

/// Installs the global subscriber; `RUST_LOG` wins over the configured level. Safe to call twice.
pub fn init(config: &LogConfig) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    use std::io::IsTerminal;
    // Colours only for a person at a terminal, never into a file or a log collector.
    let ansi = std::io::stderr().is_terminal();
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(fmt_layer(config.format, std::io::stderr, ansi))
        .try_init();
}

/// The hub's log formatting (text or JSON) writing to `writer`: what [`init`] installs, and
/// what tests capture to check the lines.
pub fn fmt_layer<S, W>(
    format: LogFormat,
    writer: W,
    ansi: bool,
) -> Box<dyn tracing_subscriber::Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let layer = tracing_subscriber::fmt::layer()
        .with_ansi(ansi)
        .with_writer(writer);
    match format {
        LogFormat::Json => Box::new(layer.json()),
        LogFormat::Text => Box::new(layer),
    }
}
