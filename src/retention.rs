//! Retention of raw message bodies: from the configuration to a prune plan, the daily job
//! that runs it, and the table `carehub prune` prints (docs/operations.md).
//!
//! The store does the work (`Store::prune_bodies`); this room decides *when* and *what*: each
//! connector's `retention:` over the hub's, cut-offs computed from an injected `now` (tests
//! and `carehub prune --now` set it; the job uses the clock). Logs carry counts and connector
//! names only.

use std::fmt::Write as _;

use crate::config::Settings;
use crate::store::{PrunePlan, PruneReport, Store, StoreError};

/// The prune plan at `now`: each configured connector's policy over the hub's; connectors no
/// longer configured follow the hub's.
pub fn plan(settings: &Settings, now: jiff::Timestamp, dry_run: bool) -> PrunePlan {
    let default = settings.hub.retention.policy();
    PrunePlan {
        now: now.to_string(),
        connectors: settings
            .connectors
            .iter()
            .map(|c| (c.name().to_string(), c.retention().over(&default).cutoffs(now)))
            .collect(),
        others: default.cutoffs(now),
        dry_run,
    }
}

/// One prune at `now`.
pub async fn prune(
    store: &Store,
    settings: &Settings,
    now: jiff::Timestamp,
    dry_run: bool,
) -> Result<PruneReport, StoreError> {
    store.prune_bodies(&plan(settings, now, dry_run)).await
}

/// Whether any connector (or the hub's default) lets bodies go at all.
pub fn any_limit(settings: &Settings) -> bool {
    let default = settings.hub.retention.policy();
    let limited = |p: &crate::config::RetentionPolicy| {
        let c = p.over(&default).cutoffs(jiff::Timestamp::UNIX_EPOCH);
        c.processed.is_some() || c.error.is_some()
    };
    limited(&default) || settings.connectors.iter().any(|c| limited(c.retention()))
}

/// Runs the prune on `retention.schedule` (in the clinic's time zone) until `shutdown`.
/// Started by the app only when some limit is set.
pub async fn run_schedule(
    store: Store,
    settings: Settings,
    tz: jiff::tz::TimeZone,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    // Checked by `carehub validate` / config loading; a bad expression cannot reach here.
    let Ok(cron) = crate::sources::fhir::schedule::parse(&settings.hub.retention.schedule) else {
        return;
    };
    loop {
        let Some(next) = crate::sources::fhir::schedule::next_after(&cron, jiff::Timestamp::now(), &tz)
        else {
            tracing::error!("the retention schedule names no future time; the prune job stops");
            return;
        };
        let wait = next.timestamp().duration_since(jiff::Timestamp::now());
        let wait = std::time::Duration::try_from(wait).unwrap_or_default();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        // A stop between two batches leaves what was pruned pruned: each batch commits alone.
        tokio::select! {
            r = prune(&store, &settings, jiff::Timestamp::now(), false) => match r {
                Ok(report) => {
                    let total = report.total();
                    tracing::info!(
                        messages = total.messages,
                        bytes = total.bytes,
                        "retention: raw bodies pruned"
                    );
                    for ((connector, status), c) in &report.counts {
                        tracing::debug!(%connector, %status, messages = c.messages, bytes = c.bytes, "retention: pruned");
                    }
                }
                Err(e) => tracing::error!(error = %e, "retention: the prune failed; it runs again at the next time"),
            },
            _ = shutdown.wait_for(|s| *s) => return,
        }
    }
}

/// The table `carehub prune` prints: one line per connector and status, then the total.
pub fn render(report: &PruneReport) -> String {
    let verb = if report.dry_run { "would prune" } else { "pruned" };
    let mut out = String::new();
    if report.counts.is_empty() {
        let _ = writeln!(out, "nothing to prune ({verb} 0 message bodies)");
        return out;
    }
    let _ = writeln!(
        out,
        "{:<24} {:<10} {:>10} {:>14}",
        "connector", "status", "messages", "bytes"
    );
    for ((connector, status), c) in &report.counts {
        let _ = writeln!(
            out,
            "{connector:<24} {status:<10} {:>10} {:>14}",
            c.messages, c.bytes
        );
    }
    let total = report.total();
    let _ = writeln!(
        out,
        "{verb} {} message bod{} ({} bytes)",
        total.messages,
        if total.messages == 1 { "y" } else { "ies" },
        total.bytes
    );
    out
}
