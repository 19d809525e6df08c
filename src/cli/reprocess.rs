//! `carehub reprocess`: the mapping files as they are now, applied to stored messages.
//!
//! Exit codes as every command: 0 done (or counted, with `--dry-run`); 1 the store failed;
//! 2 a mapping file or an argument has a problem (nothing was reprocessed).

use std::process::ExitCode;

use anyhow::Context;

use super::{print_problems, runtime};
use crate::config::Settings;
use crate::reprocess::{ReprocessError, Selection};
use crate::store::MessageStatus;

/// The choice of messages, as given on the command line.
pub struct ReprocessArgs {
    pub ids: Vec<i64>,
    pub connector: Option<String>,
    pub status: Vec<String>,
    pub message_type: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
}

/// Reads the arguments, runs the reprocess, prints its report.
pub fn command(settings: &Settings, args: ReprocessArgs, dry_run: bool) -> anyhow::Result<ExitCode> {
    let selection = match selection(settings, args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(2));
        }
    };
    runtime()?.block_on(async {
        let store = crate::app::open_for_ingest(settings).await?;
        let outcome = crate::app::reprocess(settings, &store, &selection, dry_run).await;
        let code = match outcome {
            Ok(Ok(report)) => {
                if !dry_run {
                    super::access::audit_action(
                        &store,
                        &format!("reprocess {} messages", report.reprocessed),
                    )
                    .await?;
                }
                print!("{report}");
                ExitCode::SUCCESS
            }
            Ok(Err(ReprocessError::Mappings(problems))) => {
                eprintln!("the mapping files have problems; nothing was reprocessed");
                print_problems(&problems)
            }
            Ok(Err(e @ ReprocessError::Selection(_))) => {
                eprintln!("{e}");
                ExitCode::from(2)
            }
            Ok(Err(e)) => {
                eprintln!("error: {e}");
                ExitCode::from(1)
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(1)
            }
        };
        store.close().await;
        anyhow::Ok(code)
    })
}

fn selection(settings: &Settings, args: ReprocessArgs) -> anyhow::Result<Selection> {
    let tz = jiff::tz::TimeZone::get(&settings.hub.timezone).context("time zone")?;
    let time = |name: &str, text: Option<String>| -> anyhow::Result<Option<jiff::Timestamp>> {
        text.map(|t| crate::replay::parse_since(&t, &tz).map_err(|e| anyhow::anyhow!("--{name}: {e}")))
            .transpose()
    };
    let statuses = args
        .status
        .iter()
        .map(|s| {
            MessageStatus::parse(s.trim())
                .ok_or_else(|| anyhow::anyhow!("--status {s}: expected error, unmapped or processed"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let selection = Selection {
        ids: args.ids,
        connector: args.connector,
        statuses,
        message_type: args.message_type,
        received_from: time("since", args.since)?,
        received_to: time("until", args.until)?,
    };
    selection.check().map_err(anyhow::Error::msg)?;
    Ok(selection)
}
