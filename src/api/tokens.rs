//! carehub's own API tokens: made, stored as a hash, revoked; and the first admin token.
//!
//! A token is `chk_` followed by 43 characters (32 random bytes, base64url). Only its SHA-256
//! is stored, so a copy of the store lets nobody in; the token is shown once, when made. On a
//! first start with no admin token, one is made and written to `api.auth.admin_token_file`
//! (mode 0600) — the token itself never reaches a log.

use std::path::Path;

use base64::Engine;
use sha2::{Digest, Sha256};

use super::access::Role;
use crate::store::{Store, StoreError, TokenRecord};

/// The prefix every carehub token starts with (secret scanners can look for it).
pub const PREFIX: &str = "chk_";

/// The SHA-256 of a token, hex: what the store keeps.
pub fn hash(token: &str) -> String {
    use std::fmt::Write;
    Sha256::digest(token.as_bytes())
        .iter()
        .fold(String::with_capacity(64), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// A new random token.
pub fn generate() -> String {
    let mut bytes = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .expect("the system's random source works");
    format!(
        "{PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// The largest number a lifetime may have (`9999w` is about 190 years).
pub const MAX_LIFETIME_UNITS: i64 = 9999;

/// `90d`, `12h`, `30m`, `2w` or `never` as a lifetime (`None`: never expires); at most
/// [`MAX_LIFETIME_UNITS`] of a unit.
pub fn parse_lifetime(text: &str) -> Result<Option<jiff::SignedDuration>, String> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("never") {
        return Ok(None);
    }
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: i64 = n
        .parse()
        .map_err(|_| format!("expected a lifetime such as 90d, 12h or never, got \"{t}\""))?;
    if n <= 0 {
        return Err(format!("lifetime \"{t}\" must be more than zero"));
    }
    // Bounded so that the expiry is a real date (a lifetime past the calendar's end was
    // silently "never", and a large number overflowed into a panic).
    if n > MAX_LIFETIME_UNITS {
        return Err(format!(
            "lifetime \"{t}\": at most {MAX_LIFETIME_UNITS} of a unit"
        ));
    }
    let minutes = match unit {
        "m" => n,
        "h" => n * 60,
        "d" => n * 60 * 24,
        "w" => n * 60 * 24 * 7,
        _ => return Err(format!("unit of \"{t}\" must be m, h, d or w")),
    };
    Ok(Some(jiff::SignedDuration::from_mins(minutes)))
}

/// Makes and stores a token; returns its record and the token, to be shown once.
pub async fn create(
    store: &Store,
    name: &str,
    role: Role,
    lifetime: Option<jiff::SignedDuration>,
) -> Result<(TokenRecord, String), StoreError> {
    let token = generate();
    let now = jiff::Timestamp::now();
    let record = TokenRecord {
        id: format!("tok_{}", &uuid::Uuid::now_v7().simple().to_string()[20..]),
        name: name.to_string(),
        role: role.as_str().to_string(),
        created_at: now.to_string(),
        expires_at: lifetime
            .and_then(|d| now.checked_add(d).ok())
            .map(|t| t.to_string()),
        revoked_at: None,
    };
    store.create_token(&record, &hash(&token)).await?;
    Ok((record, token))
}

/// What the start did about an admin token.
#[derive(Debug, PartialEq, Eq)]
pub enum Bootstrap {
    /// An active admin token exists already.
    Present,
    /// The one given from the environment was stored.
    FromEnvironment,
    /// One was made and written to this file.
    Written(std::path::PathBuf),
}

/// Makes sure an admin can get in: the token configured from the environment is stored when
/// new; otherwise, with no active admin token at all, one is made and written to `file`.
pub async fn ensure_admin(store: &Store, from_env: Option<&str>, file: &Path) -> anyhow::Result<Bootstrap> {
    let now = jiff::Timestamp::now();
    if let Some(token) = from_env {
        match store.token_by_hash(&hash(token)).await? {
            Some(t) if t.is_active(&now) => return Ok(Bootstrap::Present),
            // Revoked or expired: it stays so; an admin gets in as on a first start.
            Some(_) => return write_if_no_admin(store, file, &now).await,
            None => {}
        }
        anyhow::ensure!(
            token.len() >= 32,
            "api.auth.admin_token must be at least 32 characters (make one with `openssl rand -base64 32`)"
        );
        let record = TokenRecord {
            id: format!("tok_{}", &uuid::Uuid::now_v7().simple().to_string()[20..]),
            name: "admin (from the environment)".into(),
            role: Role::Admin.as_str().into(),
            created_at: jiff::Timestamp::now().to_string(),
            expires_at: None,
            revoked_at: None,
        };
        store.create_token(&record, &hash(token)).await?;
        return Ok(Bootstrap::FromEnvironment);
    }
    write_if_no_admin(store, file, &now).await
}

/// With no active admin token in the store, makes one and writes it to `file`.
async fn write_if_no_admin(store: &Store, file: &Path, now: &jiff::Timestamp) -> anyhow::Result<Bootstrap> {
    use anyhow::Context;
    let admins = store.tokens().await?;
    if admins
        .iter()
        .any(|t| t.role == Role::Admin.as_str() && t.is_active(now))
    {
        return Ok(Bootstrap::Present);
    }
    if let Some(parent) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating the folder of {}", file.display()))?;
    }
    let (_, token) = create(store, "admin (first start)", Role::Admin, None).await?;
    write_private(file, &format!("{token}\n"))
        .with_context(|| format!("writing the admin token to {}", file.display()))?;
    Ok(Bootstrap::Written(file.to_path_buf()))
}

/// Writes `text` to a file only its owner can read (0600), replacing it.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_prefixed() {
        let (a, b) = (generate(), generate());
        assert_ne!(a, b);
        assert!(a.starts_with(PREFIX) && a.len() == PREFIX.len() + 43, "{a}");
        assert_eq!(hash(&a).len(), 64);
        assert_ne!(hash(&a), hash(&b));
    }

    #[test]
    fn lifetimes_read() {
        assert_eq!(
            parse_lifetime("90d").unwrap(),
            Some(jiff::SignedDuration::from_hours(90 * 24))
        );
        assert_eq!(parse_lifetime("never").unwrap(), None);
        assert_eq!(
            parse_lifetime("12h").unwrap(),
            Some(jiff::SignedDuration::from_hours(12))
        );
        assert!(parse_lifetime("90").is_err());
        assert!(parse_lifetime("0d").is_err());
        assert!(parse_lifetime("soon").is_err());
        assert!(parse_lifetime(" 9999w ").is_ok());
        // Past the bound: refused, never an overflow (a panic) nor a silent "never".
        for long in ["10000d", "9223372036854775807w", "2562047788015215w"] {
            let e = parse_lifetime(long).unwrap_err();
            assert!(e.contains("at most 9999"), "{long}: {e}");
        }
    }
}
