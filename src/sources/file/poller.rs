//! The file-drop poller: reads each file of a folder, hands its messages to the pipeline, and
//! moves it to `done/` or to `error/` with a `<name>.error.txt` saying why.
//!
//! A file may hold one message, several back to back, or an FHS/BHS batch; CR, LF or CRLF; a
//! UTF-8 BOM. A file whose batch structure is broken is refused whole (its bytes are kept in the
//! message log and the file in `error/`). When the store cannot be reached the file stays where
//! it is and is tried again on the next poll — already committed messages are recognised as
//! duplicates then, so nothing is applied twice.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use sha2::{Digest, Sha256};
use tokio::sync::watch;

use super::config::{AfterSuccess, FileConfig};
use crate::hl7::{self, AckCode};
use crate::pipeline::{ConnectorContext, Ingest};
use crate::store::{FileOutcome, Store};

/// What one poll did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PollSummary {
    pub files_done: usize,
    pub files_failed: usize,
    /// Files left for the next poll (too new, or the store was unavailable).
    pub files_deferred: usize,
    pub messages: usize,
}

/// Creates the folders (seeding a working copy when asked) before the first poll.
pub fn prepare_dirs(config: &FileConfig) -> std::io::Result<()> {
    let dir = Path::new(&config.dir);
    if !dir.exists() {
        std::fs::create_dir_all(dir)?;
        if let Some(seed) = &config.seed_from {
            for entry in std::fs::read_dir(seed)? {
                let entry = entry?;
                if entry.file_type()?.is_file() {
                    std::fs::copy(entry.path(), dir.join(entry.file_name()))?;
                }
            }
        }
    }
    std::fs::create_dir_all(config.done_dir())?;
    std::fs::create_dir_all(config.error_dir())?;
    Ok(())
}

/// Polls until `shutdown` turns true; a file being processed is finished first.
pub async fn serve(
    config: FileConfig,
    ctx: ConnectorContext,
    ingest: Ingest,
    store: Store,
    mut shutdown: watch::Receiver<bool>,
) {
    let interval = Duration::from_millis(config.poll_interval_ms);
    let mut state = PollState::default();
    loop {
        match poll_once(&config, &ctx, &ingest, &store, Some(&shutdown), &mut state).await {
            Ok(s) if s.files_done + s.files_failed > 0 => {
                tracing::info!(connector = %ctx.name, done = s.files_done, failed = s.files_failed, messages = s.messages, "files processed");
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(connector = %ctx.name, error = %e, "cannot read the inbox folder");
                let _ = store
                    .set_connector_state(
                        &ctx.name,
                        "file",
                        "degraded",
                        Some(&format!("cannot read the inbox folder: {e}")),
                    )
                    .await;
            }
        }
        if *shutdown.borrow() {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Reads the folder once and processes every file that is ready.
pub async fn poll_once(
    config: &FileConfig,
    ctx: &ConnectorContext,
    ingest: &Ingest,
    store: &Store,
    shutdown: Option<&watch::Receiver<bool>>,
    state: &mut PollState,
) -> std::io::Result<PollSummary> {
    let mut summary = PollSummary::default();
    state.stuck.retain(|p, _| p.exists());
    let ready = ready_files(config, &mut state.seen, &state.stuck)?;
    let attempts = &mut state.retries;
    attempts.retain(|p, _| ready.contains(p));
    for path in ready {
        if shutdown.is_some_and(|s| *s.borrow()) {
            break;
        }
        // Files are taken in name order; while one waits for the store, the ones after it wait
        // too, so that events from separate files (an admit, then its update) keep their order.
        if attempts.get(&path).is_some_and(|r| Instant::now() < r.next_try) {
            summary.files_deferred += 1;
            break;
        }
        match process_file(config, ctx, ingest, store, &path).await {
            Some(Finished {
                outcome,
                messages: n,
                moved,
            }) => {
                if !moved && let Ok(meta) = std::fs::metadata(&path) {
                    state
                        .stuck
                        .insert(path.clone(), (meta.len(), meta.modified().ok()));
                }
                summary.messages += n;
                if outcome == "done" {
                    summary.files_done += 1;
                } else {
                    summary.files_failed += 1;
                }
            }
            None => {
                // Left in place (the store is unavailable): try again later, backing off, so
                // that an outage delays the file and a stubborn one does not spin.
                let retry = attempts.entry(path.clone()).or_insert(Retry {
                    tries: 0,
                    next_try: Instant::now(),
                });
                retry.tries += 1;
                let wait = Duration::from_millis(config.poll_interval_ms)
                    .saturating_mul(1 << retry.tries.min(16))
                    .min(MAX_RETRY_WAIT);
                retry.next_try = Instant::now() + wait;
                summary.files_deferred += 1;
                break;
            }
        }
        attempts.remove(&path);
    }
    Ok(summary)
}

/// What a poll remembers for the next one.
#[derive(Debug, Default)]
pub struct PollState {
    /// Files left in place, and when to try them again.
    retries: HashMap<PathBuf, Retry>,
    /// Size and modification time of each file, and since when it has had them.
    seen: HashMap<PathBuf, Observation>,
    /// Files processed but that could not be moved out of the inbox, as they were then: they
    /// are not read again until they change (a person must move them).
    stuck: HashMap<PathBuf, (u64, Option<SystemTime>)>,
}

/// A file's size and modification time, and when the poller first saw it so.
#[derive(Debug, Clone, Copy)]
struct Observation {
    len: u64,
    modified: Option<SystemTime>,
    since: Instant,
}

/// Files ready to read: older than `min_file_age_ms` by modification time (a time in the future
/// counts as new) and — unless `min_file_age_ms` is 0 — unchanged in size and time for at
/// least `min_file_age_ms` of the poller's own clock, so that a copy that keeps the original's
/// time (SMB, `cp -p`, `mv` across disks) is not read while it is still being written.
fn ready_files(
    config: &FileConfig,
    seen: &mut HashMap<PathBuf, Observation>,
    stuck: &HashMap<PathBuf, (u64, Option<SystemTime>)>,
) -> std::io::Result<Vec<PathBuf>> {
    let min_age = Duration::from_millis(config.min_file_age_ms);
    let now = SystemTime::now();
    let mut files = Vec::new();
    let mut observed = HashMap::new();
    for entry in std::fs::read_dir(&config.dir)? {
        let Ok(entry) = entry else { continue };
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.')
            || name.ends_with(".tmp")
            || name.ends_with(".part")
            || name.ends_with(".error.txt")
        {
            continue;
        }
        if !config.extensions.is_empty() {
            let ext = Path::new(&name)
                .extension()
                .and_then(|e| e.to_str())
                .unwrap_or("");
            if !config.extensions.iter().any(|e| e.eq_ignore_ascii_case(ext)) {
                continue;
            }
        }
        let modified = meta.modified().ok();
        let fresh = match modified.map(|m| now.duration_since(m)) {
            Some(Ok(age)) => age < min_age,
            Some(Err(_)) => true, // modified in the future: clock skew, treat as new
            None => false,
        };
        let path = entry.path();
        let since = match seen.get(&path) {
            Some(o) if o.len == meta.len() && o.modified == modified => o.since,
            _ => Instant::now(),
        };
        observed.insert(
            path.clone(),
            Observation {
                len: meta.len(),
                modified,
                since,
            },
        );
        let stable = config.min_file_age_ms == 0 || (since.elapsed() >= min_age && seen.contains_key(&path));
        if fresh || !stable || stuck.get(&path) == Some(&(meta.len(), modified)) {
            continue;
        }
        files.push(path);
    }
    *seen = observed;
    files.sort();
    Ok(files)
}

/// What became of a file that was processed.
struct Finished {
    /// `done` or `error`.
    outcome: &'static str,
    messages: usize,
    /// False when it could not be moved out of the inbox.
    moved: bool,
}

/// Bytes of an oversize file kept in the message log.
const HEAD_BYTES: usize = 64 * 1024;

/// Longest wait before a file the store could not take is tried again.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(300);

/// A file left in place, and when to try it again.
#[derive(Debug, Clone)]
pub struct Retry {
    tries: u32,
    next_try: Instant,
}

fn read_head(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut head = Vec::with_capacity(HEAD_BYTES);
    std::fs::File::open(path)?
        .take(HEAD_BYTES as u64)
        .read_to_end(&mut head)?;
    Ok(head)
}

/// Processes one file; `None` when it was left in place for the next poll.
async fn process_file(
    config: &FileConfig,
    ctx: &ConnectorContext,
    ingest: &Ingest,
    store: &Store,
    path: &Path,
) -> Option<Finished> {
    let name = path.file_name()?.to_string_lossy().into_owned();
    let bytes = match std::fs::metadata(path) {
        Ok(m) if m.len() > config.max_file_bytes => {
            let reason = format!(
                "file is {} bytes, over max_file_bytes {}; its first {} bytes are in the message log, \
                 the whole file in the error folder",
                m.len(),
                config.max_file_bytes,
                HEAD_BYTES
            );
            let head = read_head(path).unwrap_or_default();
            return reject_whole(config, ctx, ingest, store, path, &name, head, reason).await;
        }
        _ => match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(connector = %ctx.name, error = %e, "cannot read a dropped file; will retry");
                return None;
            }
        },
    };

    let (text, charset) = match hl7::decode(&bytes, ctx.default_charset) {
        Ok(t) => t,
        Err(e) => {
            let reason = format!("unreadable characters: {e}");
            return reject_whole(config, ctx, ingest, store, path, &name, bytes, reason).await;
        }
    };
    let messages = match hl7::split_file(&text) {
        Ok(m) => m,
        Err(e) => {
            let reason = format!("not a valid HL7 v2 file: {e}");
            return reject_whole(config, ctx, ingest, store, path, &name, bytes, reason).await;
        }
    };

    let mut failures = Vec::new();
    for (i, msg) in messages.iter().enumerate() {
        let raw = hl7::encode(msg, charset);
        let outcome = ingest.submit(ctx, raw, Some(format!("{name}#{}", i + 1))).await;
        // The store is unavailable: leave the file for the next poll.
        outcome.applied.as_ref()?;
        if outcome.ack != AckCode::AA {
            let reason = outcome.error.map(|e| e.text).unwrap_or_else(|| "refused".into());
            failures.push(format!("message {} of {}: {reason}", i + 1, messages.len()));
        }
    }
    let n = messages.len();
    finish(config, ctx, store, path, &name, &bytes, n, failures).await
}

#[allow(clippy::too_many_arguments)]
async fn reject_whole(
    config: &FileConfig,
    ctx: &ConnectorContext,
    ingest: &Ingest,
    store: &Store,
    path: &Path,
    name: &str,
    bytes: Vec<u8>,
    reason: String,
) -> Option<Finished> {
    if ingest
        .record_rejected(ctx, bytes.clone(), Some(name.to_string()), reason.clone())
        .await
        .is_err()
    {
        return None;
    }
    finish(config, ctx, store, path, name, &bytes, 0, vec![reason]).await
}

#[allow(clippy::too_many_arguments)]
async fn finish(
    config: &FileConfig,
    ctx: &ConnectorContext,
    store: &Store,
    path: &Path,
    name: &str,
    bytes: &[u8],
    messages: usize,
    failures: Vec<String>,
) -> Option<Finished> {
    let failed = !failures.is_empty();
    // Where the file goes; its outcome is recorded first, so that whoever sees the file leave
    // the inbox also finds the record.
    let (outcome, target) = if failed {
        ("error", Some(free_name(&config.error_dir(), name)))
    } else if config.after_success == AfterSuccess::Delete {
        ("done", None)
    } else {
        ("done", Some(free_name(&config.done_dir(), name)))
    };
    let record = FileOutcome {
        connector: ctx.name.clone(),
        file_name: name.to_string(),
        size_bytes: bytes.len() as i64,
        content_hash: crate::pipeline::hex_digest(&Sha256::digest(bytes)),
        messages: messages as i64,
        failed: failures.len() as i64,
        outcome: outcome.to_string(),
        reason: failed.then(|| failures.join("\n")),
        moved_to: target.as_ref().map(|p| p.display().to_string()),
        processed_at: jiff::Timestamp::now().to_string(),
    };
    if let Err(e) = store.record_file(&record).await {
        // Without its record the file stays where it is and is tried again later.
        tracing::warn!(connector = %ctx.name, error = %e, "cannot record a file's outcome; will retry");
        return None;
    }
    let moved = match &target {
        Some(target) => {
            if failed {
                let reason_file =
                    target.with_file_name(format!("{}.error.txt", target.file_name()?.to_string_lossy()));
                let _ = std::fs::write(&reason_file, failures.join("\n") + "\n");
            }
            std::fs::rename(path, target)
        }
        None => std::fs::remove_file(path),
    };
    if let Err(e) = moved {
        tracing::error!(connector = %ctx.name, error = %e, "cannot move a processed file out of the inbox; it is left alone until it changes");
        let detail = format!("cannot move processed files out of the inbox: {e}");
        let _ = store
            .set_connector_state(&ctx.name, "file", "degraded", Some(&detail))
            .await;
        return Some(Finished {
            outcome,
            messages,
            moved: false,
        });
    }
    Some(Finished {
        outcome,
        messages,
        moved: true,
    })
}

/// `dir/name`, or `dir/name.2`, `dir/name.3`… when taken.
fn free_name(dir: &Path, name: &str) -> PathBuf {
    let first = dir.join(name);
    if !first.exists() {
        return first;
    }
    (2..)
        .map(|i| dir.join(format!("{name}.{i}")))
        .find(|p| !p.exists())
        .unwrap_or(first)
}
