//! `carehub token …` and `carehub audit verify`: access control from the command line.
//!
//! Run beside a running hub or without one: both talk to the store only. A token is printed
//! once, on stdout, and never again; actions are written to the audit log as `cli:<user>`.

use std::process::ExitCode;

use clap::Subcommand;

use crate::api::Role;
use crate::api::tokens;
use crate::audit::AuditEntry;
use crate::store::Store;

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Make a token and print it (once: only its hash is kept).
    Create {
        /// Who or what holds it (a person, a system): shown in `token list` and the audit log.
        #[arg(long)]
        name: String,
        /// admin, ops, clinician, sender or auditor (docs/security.md).
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// Lifetime: 90d, 12h, 2w, or never.
        #[arg(long, default_value = "never")]
        expires: String,
    },
    /// List every token: id, name, role, created, expires, revoked.
    List,
    /// Revoke a token by its id (tok_…) or its name.
    Revoke { id_or_name: String },
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Check the audit log's hash chain: every row unchanged, none removed or moved.
    Verify,
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).ok_or_else(|| format!("{s} is not a role (admin, ops, clinician, sender, auditor)"))
}

/// Who runs the command, for the audit log.
fn cli_subject() -> String {
    let user = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "unknown".into());
    format!("cli:{user}")
}

/// Writes an admin action of the command line to the audit log.
pub(super) async fn audit_action(store: &Store, action: &str) -> anyhow::Result<()> {
    store
        .append_audit_offline(&[AuditEntry {
            at: jiff::Timestamp::now().to_string(),
            subject: cli_subject(),
            role: Role::Admin.as_str().into(),
            action: action.into(),
            status: 0,
            ..Default::default()
        }])
        .await?;
    Ok(())
}

pub async fn token(store: &Store, command: TokenCommand) -> anyhow::Result<ExitCode> {
    match command {
        TokenCommand::Create { name, role, expires } => {
            let lifetime = tokens::parse_lifetime(&expires).map_err(|e| anyhow::anyhow!("--expires: {e}"))?;
            let (record, token) = tokens::create(store, &name, role, lifetime).await?;
            audit_action(store, &format!("token create {} ({role})", record.id)).await?;
            eprintln!(
                "token {} for {:?} with role {}, expires {}; shown once, keep it safe:",
                record.id,
                record.name,
                record.role,
                record.expires_at.as_deref().unwrap_or("never")
            );
            println!("{token}");
        }
        TokenCommand::List => {
            let now = jiff::Timestamp::now();
            println!(
                "{:<30} {:<10} {:<8} {:<26} {:<26} name",
                "id", "role", "state", "created", "expires"
            );
            for t in store.tokens().await? {
                let state = if t.revoked_at.is_some() {
                    "revoked"
                } else if t.is_active(&now) {
                    "active"
                } else {
                    "expired"
                };
                println!(
                    "{:<30} {:<10} {:<8} {:<26} {:<26} {}",
                    t.id,
                    t.role,
                    state,
                    t.created_at,
                    t.expires_at.as_deref().unwrap_or("never"),
                    t.name
                );
            }
        }
        TokenCommand::Revoke { id_or_name } => {
            let n = store.revoke_token(&id_or_name).await?;
            if n == 0 {
                eprintln!("no active token has the id or name {id_or_name:?}");
                return Ok(ExitCode::from(1));
            }
            audit_action(store, &format!("token revoke {id_or_name}")).await?;
            println!("revoked {n} token{}", if n == 1 { "" } else { "s" });
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn audit(store: &Store, command: AuditCommand) -> anyhow::Result<ExitCode> {
    match command {
        AuditCommand::Verify => {
            let v = store.verify_audit().await?;
            let code = if v.breaks.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            };
            let (head_id, head_hash) = v.head();
            if v.breaks.is_empty() {
                println!(
                    "audit log intact: {} rows; head row {head_id} hash {head_hash} (keep this line elsewhere to detect a cut-off end)",
                    v.rows
                );
            } else {
                for b in &v.breaks {
                    println!("BROKEN: {b}");
                }
                println!(
                    "audit log NOT intact: {} breaks in {} rows",
                    v.breaks.len(),
                    v.rows
                );
            }
            Ok(code)
        }
    }
}
