//! `carehub backup`, `restore` and `rekey`: the store's file as a whole — copied while the hub
//! runs, put back into an empty place, encrypted under a new key. Each is an admin action in
//! the audit log (`access.rs`).

use std::path::Path;
use std::process::ExitCode;

use super::{access, runtime};
use crate::config;

pub(super) fn backup(settings: &config::Settings, to: &Path) -> anyhow::Result<ExitCode> {
    let store = &settings.hub.store;
    if crate::store::sqlite_path(&store.url).is_none() {
        eprintln!(
            "carehub backup copies SQLite stores; back PostgreSQL up with its own tools \
             (pg_dump --format=custom, or base backups with WAL archiving: docs/operations.md)"
        );
        return Ok(ExitCode::from(2));
    }
    let started = std::time::Instant::now();
    eprintln!(
        "backing up {} to {} …",
        config::redact_url(&store.url),
        to.display()
    );
    // The backup is an export of every patient: recorded first, so that it is in itself.
    runtime()?.block_on(async {
        let s = crate::store::Store::open_existing(store).await?;
        access::audit_action(&s, &format!("backup to {}", to.display())).await?;
        s.close().await;
        anyhow::Ok(())
    })?;
    let size = crate::store::backup_sqlite(store, to)?;
    println!(
        "backup {} written: {} in {:.1} s ({})",
        to.display(),
        crate::store::megabytes(size),
        started.elapsed().as_secs_f64(),
        if store.encryption_key.is_some() {
            "encrypted with the store's key"
        } else {
            "not encrypted: no store.encryption_key"
        }
    );
    Ok(ExitCode::SUCCESS)
}

pub(super) fn restore(settings: &config::Settings, file: &Path) -> anyhow::Result<ExitCode> {
    let store = &settings.hub.store;
    if crate::store::sqlite_path(&store.url).is_none() {
        eprintln!(
            "carehub restore writes SQLite stores; restore PostgreSQL with pg_restore (docs/operations.md)"
        );
        return Ok(ExitCode::from(2));
    }
    let started = std::time::Instant::now();
    let (messages, version) = crate::store::restore_sqlite(store, file)?;
    let expected = crate::store::sqlite_schema_version();
    println!(
        "restored {} to {} in {:.1} s: integrity ok, {messages} messages, schema version {version}{}",
        file.display(),
        config::redact_url(&store.url),
        started.elapsed().as_secs_f64(),
        match version.cmp(&expected) {
            std::cmp::Ordering::Equal => " (current)".to_string(),
            std::cmp::Ordering::Less => format!(" (older than {expected}: carehub migrates it at start)"),
            std::cmp::Ordering::Greater =>
                format!(" (newer than this carehub's {expected}: run the carehub that wrote it)"),
        }
    );
    Ok(if version > expected {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

pub(super) fn rekey(settings: &config::Settings, new_key_env: &str) -> anyhow::Result<ExitCode> {
    let new = match std::env::var(new_key_env) {
        Ok(v) if v.chars().count() >= crate::store::MIN_KEY_CHARS => config::Secret::new(v),
        Ok(_) => {
            eprintln!(
                "{new_key_env}: too short: use at least {} characters of random text (openssl rand -base64 32)",
                crate::store::MIN_KEY_CHARS
            );
            return Ok(ExitCode::from(2));
        }
        Err(_) => {
            eprintln!(
                "{new_key_env} is not set: put the new key there (the current one stays in store.encryption_key)"
            );
            return Ok(ExitCode::from(2));
        }
    };
    let started = std::time::Instant::now();
    let store = &settings.hub.store;
    let done = runtime()?.block_on(crate::store::rekey(store, &new))?;
    let rekeyed = config::StoreConfig {
        encryption_key: Some(new.clone()),
        ..store.clone()
    };
    runtime()?.block_on(async {
        let s = crate::store::Store::open_existing(&rekeyed).await?;
        access::audit_action(&s, "rekey").await?;
        s.close().await;
        anyhow::Ok(())
    })?;
    match crate::store::sqlite_path(&store.url) {
        Some(_) => println!(
            "store re-encrypted under the new key ({}) in {:.1} s",
            crate::store::megabytes(done),
            started.elapsed().as_secs_f64()
        ),
        None => println!(
            "{done} rows sealed under the new key in {:.1} s",
            started.elapsed().as_secs_f64()
        ),
    }
    println!("now give the new key to store.encryption_key (e.g. CAREHUB_STORE_KEY) before starting carehub");
    Ok(ExitCode::SUCCESS)
}
