//! Alerts to ops: conditions declared in `config/alerts.yaml`, evaluated periodically from the
//! store, sent through the configured channels with a cool-down and a "resolved" message.
//!
//! Every replica evaluates the same rules from the same store. A change of an alert's state is
//! written with a compare-and-set on its row (`Store::alert_swap`); only the replica whose write
//! took sends the message, so an alert goes out once however many replicas run, and no lease is
//! needed. The clock is a parameter ([`Alerter::evaluate_at`]): tests move time, nothing sleeps.
//! Messages name alerts, connectors, counts and folders — never patient data.

pub mod config;
pub mod rules;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;

pub use config::{AlertKind, AlertsConfig};
pub use rules::{Finding, Notice};

use crate::channels::{Channel, Outbound};
use crate::store::{AlertRow, Store, StoreError};

/// One message that went to ops (what [`Alerter::evaluate_at`] sent).
#[derive(Debug, Clone, PartialEq)]
pub struct SentNotice {
    pub key: String,
    pub notice: Notice,
    pub summary: String,
}

/// The alert evaluator of one hub.
pub struct Alerter {
    config: AlertsConfig,
    store: Store,
    /// Each recipient's channel and address.
    recipients: Vec<(Arc<Channel>, String)>,
    /// Connectors this hub runs: what "every connector" means.
    enabled: Vec<String>,
    tz: TimeZone,
    /// The folder `disk_space` alerts watch by default.
    data_dir: PathBuf,
    history: Mutex<rules::History>,
}

impl Alerter {
    pub fn new(
        config: AlertsConfig,
        store: Store,
        recipients: Vec<(Arc<Channel>, String)>,
        enabled: Vec<String>,
        tz: TimeZone,
        data_dir: PathBuf,
    ) -> Alerter {
        Alerter {
            config,
            store,
            recipients,
            enabled,
            tz,
            data_dir,
            history: Mutex::new(rules::History::default()),
        }
    }

    /// Evaluates every alert as of `now`, writes the changes and sends what is owed; answers
    /// the messages this replica sent.
    pub async fn evaluate_at(&self, now: Timestamp) -> Result<Vec<SentNotice>, StoreError> {
        let snapshot = self.snapshot(now).await?;
        let findings = {
            let mut history = self.history.lock().unwrap_or_else(|e| e.into_inner());
            let findings = rules::evaluate(&self.config, &self.enabled, &snapshot, &history, now, &self.tz);
            let longest = self
                .config
                .alerts
                .values()
                .filter_map(|r| r.window_mins)
                .max()
                .unwrap_or(15);
            history.record(now, &snapshot, longest as i64 * 60);
            findings
        };
        let rows = self.store.alert_rows().await?;
        let mut sent = Vec::new();
        for f in &findings {
            let row = rows.iter().find(|r| r.key == f.key);
            let cooldown = self
                .config
                .alerts
                .get(&f.name)
                .and_then(|r| r.cooldown_mins)
                .unwrap_or(self.config.cooldown_mins);
            let Some((next, notice)) = rules::transition(row, f, now, cooldown as i64 * 60) else {
                continue;
            };
            // Another replica changed it first: it acts, this one does not.
            if !self.store.alert_swap(&next, row.map(|r| r.version)).await? {
                continue;
            }
            let Some(notice) = notice else { continue };
            let version = row.map_or(1, |r| r.version + 1);
            if self.send(&next, notice, version).await {
                sent.push(SentNotice {
                    key: next.key.clone(),
                    notice,
                    summary: next.summary.clone(),
                });
            } else if notice == Notice::Firing {
                // Nobody heard it: the next evaluation tries again.
                let mut retry = next.clone();
                retry.announced = false;
                retry.last_sent_at = row.and_then(|r| r.last_sent_at.clone());
                let _ = self.store.alert_swap(&retry, Some(version)).await;
            }
        }
        // An alert taken out of the file while firing is closed quietly: nobody watches it now.
        for row in rows
            .iter()
            .filter(|r| r.state == "firing" && !self.config.alerts.contains_key(&r.name))
        {
            let mut closed = row.clone();
            closed.state = "resolved".into();
            closed.resolved_at = Some(now.to_string());
            closed.announced = false;
            self.store.alert_swap(&closed, Some(row.version)).await?;
        }
        Ok(sent)
    }

    /// Sends one message to every recipient; true when at least one took it.
    async fn send(&self, row: &AlertRow, notice: Notice, version: i64) -> bool {
        let (word, id_word) = match notice {
            Notice::Firing => ("FIRING", "firing"),
            Notice::Resolved => ("RESOLVED", "resolved"),
        };
        let body = match notice {
            Notice::Firing => format!(
                "{word}: {name} ({kind})\n{summary}\nSince: {since}\n",
                name = row.name,
                kind = row.kind,
                summary = row.summary,
                since = row.fired_at
            ),
            Notice::Resolved => format!(
                "{word}: {name} ({kind})\nFiring since {since}, cleared at {at}.\nLast seen: {summary}\n",
                name = row.name,
                kind = row.kind,
                since = row.fired_at,
                at = row.resolved_at.as_deref().unwrap_or(""),
                summary = row.summary
            ),
        };
        let mut any = false;
        for (channel, to) in &self.recipients {
            let message = Outbound {
                id: format!("alert-{}-{version}-{id_word}", safe_id(&row.key)),
                to: to.clone(),
                subject: Some(format!("[carehub] {word}: {}", row.name)),
                body: body.clone(),
                language: "en".into(),
            };
            let ok = channel.send(&message).await.is_ok();
            self.store.metrics().alert_message(channel.name(), ok);
            if ok {
                tracing::info!(alert = %row.key, channel = channel.name(), state = id_word, "alert message sent to ops");
            } else {
                tracing::warn!(alert = %row.key, channel = channel.name(), state = id_word, "an alert message could not be sent");
            }
            any |= ok;
        }
        any
    }

    /// What the alerts read, at `now`.
    async fn snapshot(&self, now: Timestamp) -> Result<rules::Snapshot, StoreError> {
        let counts = self.store.ops_counts(now.as_millisecond()).await?;
        let connectors = self
            .store
            .connectors()
            .await?
            .into_iter()
            .map(|c| rules::ConnectorView {
                last_activity: c
                    .last_message_at
                    .as_deref()
                    .or(Some(c.updated_at.as_str()))
                    .and_then(|t| t.parse().ok()),
                last_run_failed: c
                    .last_run
                    .as_ref()
                    .filter(|r| r.outcome == "failed")
                    .map(|r| r.ended_at.as_deref().and_then(|t| t.parse().ok()).unwrap_or(now)),
                name: c.name,
                kind: c.kind,
                state: c.state,
                received: c.received,
                errors: c.errors,
            })
            .collect();
        let mut disk = std::collections::BTreeMap::new();
        for rule in self
            .config
            .alerts
            .values()
            .filter(|r| r.kind == AlertKind::DiskSpace)
        {
            let key = rule.path.clone().unwrap_or_default();
            let folder = rule
                .path
                .as_ref()
                .map(PathBuf::from)
                .unwrap_or_else(|| self.data_dir.clone());
            if let Some(free) = free_percent(&folder) {
                disk.insert(key, free);
            }
        }
        Ok(rules::Snapshot {
            connectors,
            outbox_oldest_secs: counts
                .oldest_pending_due_ms
                .map(|ms| (now.as_millisecond() - ms).max(0) as f64 / 1000.0),
            queue_oldest_secs: age_secs(counts.oldest_queued_at.as_deref(), now),
            review_open: counts.review_open,
            disk_free_percent: disk,
        })
    }

    /// Evaluates every `evaluate_every_secs` until `shutdown` turns true.
    pub async fn run(self: Arc<Self>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let every = Duration::from_secs(self.config.evaluate_every_secs.max(1));
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
            if let Err(e) = self.evaluate_at(Timestamp::now()).await {
                tracing::warn!(error = %e, "alerts could not be evaluated; trying again at the next interval");
            }
        }
    }
}

/// The alert evaluator the settings describe (`None` when `alerts.yaml` declares none), with
/// its own instances of the channels it sends through. Every replica builds one.
pub fn alerter_for(settings: &crate::config::Settings, store: &Store) -> Result<Option<Alerter>, String> {
    let Some(config) = settings.alerts.clone().filter(|a| !a.alerts.is_empty()) else {
        return Ok(None);
    };
    let tz = jiff::tz::TimeZone::get(&settings.hub.timezone).map_err(|e| format!("time zone: {e}"))?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("carehub/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("HTTP client for alert channels: {e}"))?;
    let mut recipients = Vec::new();
    for r in &config.send_to {
        let Some((name, channel)) = settings.channels.iter().find(|(n, _)| *n == r.channel) else {
            return Err(format!("alerts: no channel named {}", r.channel));
        };
        let channel = crate::channels::Channel::build(name, channel, http.clone())
            .map_err(|e| format!("alerts: channel {name}: {e}"))?;
        recipients.push((Arc::new(channel), r.to.clone()));
    }
    let enabled = settings
        .connectors
        .iter()
        .filter(|c| c.enabled())
        .map(|c| c.name().to_string())
        .collect();
    let data_dir = crate::store::sqlite_path(&settings.hub.store.url)
        .and_then(|p| std::path::Path::new(p).parent())
        .filter(|p| !p.as_os_str().is_empty())
        .map(std::path::Path::to_path_buf)
        .unwrap_or_else(|| std::path::PathBuf::from("data"));
    tracing::info!(
        alerts = config.alerts.len(),
        every_secs = config.evaluate_every_secs,
        "alerts to ops evaluated on schedule"
    );
    Ok(Some(Alerter::new(
        config,
        store.clone(),
        recipients,
        enabled,
        tz,
        data_dir,
    )))
}

/// Seconds from an RFC 3339 time to `now` (`None` when absent or unreadable).
pub fn age_secs(at: Option<&str>, now: Timestamp) -> Option<f64> {
    let t: Timestamp = at?.parse().ok()?;
    Some(((now.as_millisecond() - t.as_millisecond()).max(0)) as f64 / 1000.0)
}

/// An alert key as a file-name-safe id.
fn safe_id(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The share of free space (for unprivileged users) of the file system holding `folder`.
#[cfg(unix)]
pub fn free_percent(folder: &std::path::Path) -> Option<f64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(folder.as_os_str().as_bytes()).ok()?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `path` is a valid NUL-terminated string and `stat` is writable memory of the
    // right type; statvfs fills it on success (return 0) and we read it only then.
    let rc = unsafe { libc::statvfs(path.as_ptr(), stat.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so it initialised the struct.
    let stat = unsafe { stat.assume_init() };
    let total = stat.f_blocks as f64;
    (total > 0.0).then(|| stat.f_bavail as f64 * 100.0 / total)
}

#[cfg(not(unix))]
pub fn free_percent(_folder: &std::path::Path) -> Option<f64> {
    None
}
