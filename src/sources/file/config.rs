//! `type: file` connector settings.

use serde::Deserialize;

use crate::config::{Document, Problem};

/// A folder polled for HL7 v2 files (one message, several, or FHS/BHS batches per file).
#[derive(Debug, Clone, Deserialize)]
pub struct FileConfig {
    /// Unique connector name.
    pub name: String,
    /// A disabled connector is validated but not started.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The folder to read; created if missing.
    pub dir: String,
    /// When `dir` does not exist yet, copy these files into it first (a working copy of a sample
    /// inbox: the hub never consumes the originals).
    #[serde(default)]
    pub seed_from: Option<String>,
    /// How often the folder is read.
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: u64,
    /// A file changed more recently than this is left for the next poll (it may still be written).
    #[serde(default = "default_min_file_age_ms")]
    pub min_file_age_ms: u64,
    /// Only files with these extensions (without the dot); all files when empty.
    #[serde(default)]
    pub extensions: Vec<String>,
    /// Where processed files go; default `<dir>/done`.
    #[serde(default)]
    pub done_dir: Option<String>,
    /// Where failed files go, each with a `<name>.error.txt` reason; default `<dir>/error`.
    #[serde(default)]
    pub error_dir: Option<String>,
    /// `move` processed files to `done_dir`, or `delete` them.
    #[serde(default)]
    pub after_success: AfterSuccess,
    /// A larger file is refused whole.
    #[serde(default = "default_max_file_bytes")]
    pub max_file_bytes: u64,
    /// Mapping to apply; by default chosen by message type.
    #[serde(default)]
    pub mapping: Option<String>,
    /// Name of the sending system in provenance; by default MSH-3^MSH-4 of each message.
    #[serde(default)]
    pub source_system: Option<String>,
    /// Phone region for numbers without a country code; by default the hub's `phone_region`.
    #[serde(default)]
    pub phone_region: Option<String>,
    /// IANA time zone for times written without an offset; by default the hub's `timezone`.
    #[serde(default)]
    pub timezone: Option<String>,
    /// Character set assumed when MSH-18 is empty and the bytes are not UTF-8.
    #[serde(default = "crate::sources::mllp::default_charset")]
    pub default_charset: String,
    /// How long this connector's raw message bodies are kept; each field absent takes the
    /// hub's `retention:` value (docs/operations.md).
    #[serde(default)]
    pub retention: crate::config::RetentionPolicy,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AfterSuccess {
    #[default]
    Move,
    Delete,
}

fn yes() -> bool {
    true
}
fn default_poll_interval_ms() -> u64 {
    1000
}
fn default_min_file_age_ms() -> u64 {
    500
}
fn default_max_file_bytes() -> u64 {
    64 * 1024 * 1024
}

impl FileConfig {
    pub fn done_dir(&self) -> std::path::PathBuf {
        self.done_dir
            .as_ref()
            .map(Into::into)
            .unwrap_or_else(|| std::path::Path::new(&self.dir).join("done"))
    }

    pub fn error_dir(&self) -> std::path::PathBuf {
        self.error_dir
            .as_ref()
            .map(Into::into)
            .unwrap_or_else(|| std::path::Path::new(&self.dir).join("error"))
    }

    pub fn check(&self, doc: &Document) -> Vec<Problem> {
        let mut problems = Vec::new();
        if self.dir.trim().is_empty() {
            problems.push(doc.problem("dir", "must name a folder"));
        }
        if self.poll_interval_ms < 10 {
            problems.push(doc.problem("poll_interval_ms", "must be at least 10"));
        }
        if let Some(seed) = &self.seed_from
            && !std::path::Path::new(seed).is_dir()
        {
            problems.push(doc.problem("seed_from", format!("{seed} is not a folder")));
        }
        for (i, ext) in self.extensions.iter().enumerate() {
            if ext.starts_with('.') || ext.is_empty() {
                problems.push(doc.problem(
                    &format!("extensions.{i}"),
                    "write extensions without the dot, such as hl7",
                ));
            }
        }
        problems
    }
}
