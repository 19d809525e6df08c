//! `type: file`: each send becomes one text file, `<dir>/<channel name>/<notification id>.txt`.
//! The embedded default for a first run, and a way to see what would go out.
//!
//! The file is written under a temporary name and renamed, so a reader never sees half of it;
//! the same notification id writes the same file again (a retried send does not duplicate).

use std::path::PathBuf;

use serde::Deserialize;

use super::{Outbound, SendError, Sent};

/// `type: file` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileChannelConfig {
    /// The outbox folder; each channel writes into `<dir>/<channel name>/`, created if missing.
    #[serde(default = "default_dir")]
    pub dir: String,
}

fn default_dir() -> String {
    "data/outbox".into()
}

pub struct FileChannel {
    /// `<dir>/<channel name>`.
    folder: PathBuf,
}

impl FileChannel {
    pub fn new(channel: &str, config: &FileChannelConfig) -> FileChannel {
        FileChannel {
            folder: PathBuf::from(&config.dir).join(channel),
        }
    }

    pub async fn send(&self, m: &Outbound) -> Result<Sent, SendError> {
        let name = format!("{}.txt", file_stem(&m.id));
        let failed = |what: &str, e: std::io::Error| SendError::Retry {
            reason: format!("cannot {what} in {}: {}", self.folder.display(), e.kind()),
            after: None,
        };
        tokio::fs::create_dir_all(&self.folder)
            .await
            .map_err(|e| failed("create the folder", e))?;
        let temp = self
            .folder
            .join(format!(".{name}.{}.tmp", uuid::Uuid::now_v7().simple()));
        tokio::fs::write(&temp, render(m))
            .await
            .map_err(|e| failed("write", e))?;
        if let Err(e) = tokio::fs::rename(&temp, self.folder.join(&name)).await {
            let _ = tokio::fs::remove_file(&temp).await;
            return Err(failed("rename", e));
        }
        Ok(Sent {
            provider_id: Some(name),
            delivered: true,
        })
    }
}

/// Headers To, Subject (when there is one), Language and Id, a blank line, then the body.
fn render(m: &Outbound) -> String {
    let line = |v: &str| v.replace(['\r', '\n'], " ");
    let mut out = format!("To: {}\n", line(&m.to));
    if let Some(subject) = &m.subject {
        out.push_str(&format!("Subject: {}\n", line(subject)));
    }
    out.push_str(&format!(
        "Language: {}\nId: {}\n\n{}",
        line(&m.language),
        line(&m.id),
        m.body
    ));
    if !m.body.ends_with('\n') {
        out.push('\n');
    }
    out
}

/// The id as a file name: letters, digits, `-`, `_` and `.` kept, anything else `_`; never
/// empty and never starting with a dot (no hidden files, no `..`).
fn file_stem(id: &str) -> String {
    let stem: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    match stem.strip_prefix('.') {
        _ if stem.is_empty() => "_".into(),
        Some(_) => format!("_{stem}"),
        None => stem,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_become_safe_file_names() {
        assert_eq!(file_stem("0191-abc_1.2"), "0191-abc_1.2");
        assert_eq!(file_stem("../../etc/passwd"), "_.._.._etc_passwd");
        assert_eq!(file_stem(".hidden"), "_.hidden");
        assert_eq!(file_stem(""), "_");
    }

    #[test]
    fn a_header_value_cannot_add_header_lines() {
        let m = Outbound {
            id: "n1".into(),
            to: "a@example.org\nId: forged".into(),
            subject: Some("Lịch hẹn".into()),
            body: "Xin chào".into(),
            language: "vi".into(),
        };
        assert_eq!(
            render(&m),
            "To: a@example.org Id: forged\nSubject: Lịch hẹn\nLanguage: vi\nId: n1\n\nXin chào\n"
        );
    }
}
