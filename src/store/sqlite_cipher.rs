//! The SQLite store at rest: SQLCipher keys on every connection, a clear answer when the key
//! does not fit, and the file-level tools built on SQLCipher's `sqlcipher_export` — online
//! backup, restore into an empty place, and rekeying (docs/operations.md).
//!
//! carehub links SQLCipher in place of SQLite (libsqlite3-sys `bundled-sqlcipher`, for sqlx and
//! rusqlite alike). Without a key it reads and writes plain SQLite files, byte for byte as
//! before; with one every page of the database and of its write-ahead log is AES-256 encrypted
//! and authenticated (HMAC-SHA256) by SQLCipher, through carehub's page provider
//! (`sqlite_pages.rs`: the same format, less work per page).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};

use super::StoreError;
use super::cipher::StoreKey;

/// The first 16 bytes of every plain SQLite database.
const PLAIN_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// SQLCipher's page authentication for every database this process encrypts: HMAC-SHA256
/// instead of SQLCipher 4's default HMAC-SHA512, because SHA-256 runs on the CPU's SHA
/// extensions (x86 SHA-NI, ARMv8) and SHA-512 does not — the HMAC is the largest part of the
/// per-page cost (docs/security.md#encryption-at-rest-key-rotation-backup-and-restore). It is part of the file format: set as the
/// process-wide default once, before any key, it covers the pool's, the writers' and
/// `ATTACH`ed connections alike.
pub const HMAC: &str = "HMAC_SHA256";

fn set_defaults() -> Result<(), StoreError> {
    static DONE: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    DONE.get_or_init(|| {
        // Before any keyed connection: each keeps the provider it was opened with.
        super::sqlite_pages::install().map_err(|e| e.to_string())?;
        Connection::open_in_memory()
            .and_then(|c| c.execute_batch(&format!("PRAGMA cipher_default_hmac_algorithm = {HMAC};")))
            .map_err(|e| e.to_string())
    })
    .clone()
    .map_err(|e| StoreError::Failed(format!("cannot set SQLCipher's defaults: {e}")))
}

/// Sets the key on a fresh connection: must be its first statement.
pub fn apply_key(conn: &Connection, key: Option<&StoreKey>) -> Result<(), StoreError> {
    set_defaults()?;
    if let Some(k) = key {
        conn.execute_batch(&format!("PRAGMA key = {};", k.sqlcipher_literal()))?;
    }
    Ok(())
}

/// Whether a database file is plain SQLite (`Some(true)`), something else — an encrypted store
/// (`Some(false)`) — or absent or still empty (`None`).
fn is_plain(path: &Path) -> Result<Option<bool>, StoreError> {
    use std::io::Read;
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StoreError::Folder(e)),
    };
    let mut header = [0u8; 16];
    match file.read_exact(&mut header) {
        Ok(()) => Ok(Some(&header == PLAIN_HEADER)),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(StoreError::Folder(e)),
    }
}

/// Checks, before a pool opens it, that an existing store file and the configured key fit:
/// each mismatch gets an error of its own instead of SQLite's "file is not a database".
pub fn check_key(path: &str, key: Option<&StoreKey>) -> Result<(), StoreError> {
    // Before the pool's first connection (it keys itself, through sqlx).
    set_defaults()?;
    if path.starts_with(':') {
        return Ok(());
    }
    match (is_plain(Path::new(path))?, key) {
        (None, _) | (Some(true), None) => Ok(()),
        (Some(true), Some(_)) => Err(StoreError::KeyMismatch(format!(
            "the store at {path} is not encrypted but store.encryption_key is set: \
             encrypt it with `carehub rekey` (hub stopped), or remove the key"
        ))),
        (Some(false), None) => Err(StoreError::KeyMismatch(format!(
            "the store at {path} is encrypted (or not an SQLite file) and no store.encryption_key is set"
        ))),
        (Some(false), Some(k)) => {
            let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
            // SQLCipher would also print its own complaint on stderr (process-wide, outside
            // carehub's log): the error below says it better.
            conn.execute_batch("PRAGMA cipher_log_level = NONE;")?;
            apply_key(&conn, Some(k))?;
            readable(&conn).map_err(|_| {
                StoreError::KeyMismatch(format!(
                    "the store at {path} is encrypted and this key does not open it"
                ))
            })
        }
    }
}

/// Reads the schema: the first read that needs the key.
fn readable(conn: &Connection) -> rusqlite::Result<()> {
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get::<_, i64>(0))
        .map(|_| ())
}

/// Opens an existing store file with the key, checked. The connection may create files:
/// `ATTACH` (the snapshot [`export`] writes) takes its flags from it.
fn open_keyed(path: &str, key: Option<&StoreKey>) -> Result<Connection, StoreError> {
    if !Path::new(path).is_file() {
        return Err(StoreError::Missing(path.to_string()));
    }
    check_key(path, key)?;
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
    )?;
    apply_key(&conn, key)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    readable(&conn)?;
    Ok(conn)
}

/// Copies the whole database `conn` has open as `main` into a new file at `to`, encrypted with
/// `key` (plain without one), in one read transaction: a consistent snapshot while others
/// write (WAL). The target is written as `to` + `.partial` and renamed when complete; its size
/// is printed every few seconds when `progress` is set.
fn export(conn: &Connection, to: &Path, key: Option<&StoreKey>, progress: bool) -> Result<u64, StoreError> {
    let partial = partial_path(to);
    let _ = std::fs::remove_file(&partial);
    let literal = key
        .map(StoreKey::sqlcipher_literal)
        .unwrap_or_else(|| "''".into());
    conn.execute(
        &format!("ATTACH DATABASE ?1 AS snapshot KEY {literal}"),
        [partial.to_string_lossy()],
    )?;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reporter = progress.then(|| {
        let (done, partial) = (done.clone(), partial.clone());
        std::thread::spawn(move || {
            let start = Instant::now();
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
                if start.elapsed().as_millis() % 5000 < 200
                    && let Ok(m) = std::fs::metadata(&partial)
                {
                    eprintln!("  … {} written", megabytes(m.len()));
                }
            }
        })
    });
    let result = conn
        .execute_batch("BEGIN; SELECT sqlcipher_export('snapshot'); COMMIT;")
        .inspect_err(|_| {
            let _ = conn.execute_batch("ROLLBACK");
        });
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    if let Some(r) = reporter {
        let _ = r.join();
    }
    let _ = conn.execute_batch("DETACH DATABASE snapshot");
    if let Err(e) = result {
        let _ = std::fs::remove_file(&partial);
        return Err(e.into());
    }
    std::fs::rename(&partial, to).map_err(StoreError::Folder)?;
    Ok(std::fs::metadata(to).map(|m| m.len()).unwrap_or(0))
}

fn partial_path(to: &Path) -> PathBuf {
    let mut p = to.as_os_str().to_owned();
    p.push(".partial");
    p.into()
}

pub fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1_000_000.0)
}

/// `carehub backup` on SQLite: a snapshot of the live store into `to` (which must not exist),
/// encrypted with the store's key when it has one. Safe while a hub writes.
pub fn backup(path: &str, key: Option<&StoreKey>, to: &Path) -> Result<u64, StoreError> {
    if to.exists() {
        return Err(StoreError::Conflict(format!(
            "{} exists: choose a new file",
            to.display()
        )));
    }
    let conn = open_keyed(path, key)?;
    export(&conn, to, key, true)
}

/// What `integrity_check` said: `ok`, or its first complaints.
pub fn integrity(conn: &Connection) -> Result<String, StoreError> {
    let mut stmt = conn.prepare("PRAGMA integrity_check(20)")?;
    let lines: Vec<String> = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<Result<_, _>>()?;
    Ok(lines.join("; "))
}

/// The highest schema version applied (sqlx's migration table).
pub fn schema_version(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations WHERE success",
        [],
        |r| r.get(0),
    )?)
}

/// `carehub restore` on SQLite: checks the backup `from` with `key`, copies it to `path` (which
/// must not exist, nor its write-ahead log), and checks the copy. Answers the copy's message
/// count and schema version.
pub fn restore(from: &Path, path: &str, key: Option<&StoreKey>) -> Result<(i64, i64), StoreError> {
    let from_str = from.to_string_lossy().into_owned();
    if !from.is_file() {
        return Err(StoreError::Missing(from_str));
    }
    for p in [path.to_string(), format!("{path}-wal")] {
        if Path::new(&p).exists() {
            return Err(StoreError::Conflict(format!(
                "{p} exists: restore writes only into an empty place (move the old store away first)"
            )));
        }
    }
    {
        let source = open_keyed(&from_str, key)?;
        let verdict = integrity(&source)?;
        if verdict != "ok" {
            return Err(StoreError::Failed(format!(
                "the backup fails its integrity check: {verdict}"
            )));
        }
    }
    if let Some(parent) = Path::new(path).parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent).map_err(StoreError::Folder)?;
    }
    let partial = partial_path(Path::new(path));
    std::fs::copy(from, &partial).map_err(StoreError::Folder)?;
    std::fs::File::open(&partial)
        .and_then(|f| f.sync_all())
        .map_err(StoreError::Folder)?;
    std::fs::rename(&partial, path).map_err(StoreError::Folder)?;
    let conn = open_keyed(path, key)?;
    let verdict = integrity(&conn)?;
    if verdict != "ok" {
        return Err(StoreError::Failed(format!(
            "the restored store fails its integrity check: {verdict}"
        )));
    }
    let messages = conn.query_row("SELECT count(*) FROM messages", [], |r| r.get(0))?;
    Ok((messages, schema_version(&conn)?))
}

/// Fails when another connection has the store open (a running hub): takes the file's lock
/// for itself. Every open WAL connection holds a shared lock on the database file.
fn alone(conn: &Connection) -> Result<(), StoreError> {
    conn.busy_timeout(Duration::ZERO)?;
    // Before the first read: the connection then takes the file's lock, not the log's.
    let taken = conn
        .execute_batch("PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE; COMMIT;")
        .is_ok();
    if !taken {
        return Err(StoreError::Conflict(
            "the store is in use: stop carehub (every process with the store open) and run this again".into(),
        ));
    }
    Ok(())
}

/// `carehub rekey` on SQLite, with the hub stopped: the store re-encrypted under `new` (or
/// encrypted for the first time, when `old` is `None`), through a complete copy that replaces
/// the file only once it checks clean.
pub fn rekey(path: &str, old: Option<&StoreKey>, new: &StoreKey) -> Result<u64, StoreError> {
    check_key(path, old)?;
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
    )?;
    apply_key(&conn, old)?;
    alone(&conn)?;
    // Everything in the database file itself, nothing left in a log.
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
    let fresh = PathBuf::from(format!("{path}.rekey"));
    let _ = std::fs::remove_file(&fresh);
    let size = export(&conn, &fresh, Some(new), true)?;
    {
        let check = Connection::open_with_flags(&fresh, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        apply_key(&check, Some(new))?;
        let verdict = integrity(&check)?;
        if verdict != "ok" {
            let _ = std::fs::remove_file(&fresh);
            return Err(StoreError::Failed(format!(
                "the re-encrypted copy fails its integrity check: {verdict}"
            )));
        }
        // The same WAL mode as the store had.
        check.execute_batch("PRAGMA journal_mode = WAL;")?;
    }
    std::fs::File::open(&fresh)
        .and_then(|f| f.sync_all())
        .map_err(StoreError::Folder)?;
    // Closed before the swap: closing it afterwards would tidy a log by the store's name.
    drop(conn);
    std::fs::rename(&fresh, path).map_err(StoreError::Folder)?;
    // The old file's log (if any was left) belongs to the old key.
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{path}{suffix}"));
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    #[test]
    fn keyed_files_use_sha256_pages_and_snapshots_keep_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db").to_string_lossy().into_owned();
        let key = StoreKey::new(&Secret::new("unit-test-key-0123456789-abcdefghijklmn"));
        let conn = Connection::open(&path).unwrap();
        apply_key(&conn, Some(&key)).unwrap();
        conn.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE messages (raw TEXT); INSERT INTO messages VALUES ('Thistlewood');")
            .unwrap();
        let algorithm: String = conn
            .query_row("PRAGMA cipher_hmac_algorithm", [], |r| r.get(0))
            .unwrap();
        assert_eq!(algorithm, HMAC);
        let to = dir.path().join("b.db");
        backup(&path, Some(&key), &to).unwrap();
        let bytes = std::fs::read(&to).unwrap();
        assert!(!bytes.windows(11).any(|w| w == b"Thistlewood"));
        let snap = open_keyed(&to.to_string_lossy(), Some(&key)).unwrap();
        assert_eq!(integrity(&snap).unwrap(), "ok");
        let raw: String = snap
            .query_row("SELECT raw FROM messages", [], |r| r.get(0))
            .unwrap();
        assert_eq!(raw, "Thistlewood");
        let other = StoreKey::new(&Secret::new("another-unit-test-key-0123456789-abcdefg"));
        let err = check_key(&to.to_string_lossy(), Some(&other))
            .unwrap_err()
            .to_string();
        assert!(err.contains("this key does not open it"), "{err}");
    }
}
