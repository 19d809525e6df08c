//! The `carehub` command: `run`, `validate`, `map`, `test-mappings`, `replay`, `reprocess`
//! (`reprocess.rs`), `status`, `prune`,
//! `migrate`, `token`, `audit` (`access.rs`), `backup`, `restore`, `rekey`.
//!
//! Exit codes: 0 success; 1 a runtime failure (printed with its cause chain); 2 a configuration
//! or input problem (each printed as `file:line: field: problem`).

mod access;
mod map;
mod reprocess;
mod store_files;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::config::{self, Document, Problem};
use crate::hl7;
use crate::mapping;
use reprocess::ReprocessArgs;

#[derive(Parser, Debug)]
#[command(
    name = "carehub",
    version,
    about = "Integration hub for clinics: HL7 v2 and FHIR R4 in, one patient profile, notifications out"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the hub: connectors, the ingest pipeline and the API.
    Run {
        /// The hub configuration file.
        #[arg(long, default_value = config::DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Check every configuration, connector and mapping file and list every problem.
    Validate {
        #[arg(long, default_value = config::DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Map a message file and print the result as JSON, without touching the store.
    Map {
        /// A mapping file; by default the configured mapping for the message's type.
        #[arg(long)]
        mapping: Option<PathBuf>,
        #[arg(long, default_value = config::DEFAULT_CONFIG)]
        config: PathBuf,
        /// An HL7 v2 file (one message, several, or a batch).
        input: PathBuf,
    },
    /// Run the golden mapping tests (`mappings/tests/<case>/input.* + expected.yaml`).
    TestMappings {
        #[arg(long, default_value = config::DEFAULT_CONFIG)]
        config: PathBuf,
        /// The folder of cases; default `<mappings_dir>/tests`.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Shadow replay: map the stored messages with a changed mapping file and with today's
    /// mapping, and count what would change, field by field. Writes nothing.
    Replay {
        /// The changed mapping file.
        #[arg(long)]
        mapping: PathBuf,
        /// Only messages received from this time on: RFC 3339 (2026-01-20T08:30:00+07:00), or a
        /// local time or date (2026-01-20) in the hub's time zone.
        #[arg(long)]
        since: Option<String>,
        /// Only messages of this connector.
        #[arg(long)]
        connector: Option<String>,
        #[arg(long, default_value = config::DEFAULT_CONFIG)]
        config: PathBuf,
        /// Example message ids shown per differing field and per error.
        #[arg(long, default_value_t = 5)]
        limit: usize,
        /// Also print each example's value before and after. Values are patient data.
        #[arg(long)]
        show_values: bool,
    },
    /// Apply the mapping files as they are now to stored messages chosen by id or by a filter
    /// (by default those in error or unmapped), through the normal writer: same dedupe,
    /// identity and notifications; each message's row is updated in place.
    Reprocess {
        /// Message ids (repeat the option, or separate with commas).
        #[arg(long = "id", value_delimiter = ',')]
        ids: Vec<i64>,
        /// Only messages of this connector.
        #[arg(long)]
        connector: Option<String>,
        /// Only messages with this status: error, unmapped, processed (repeatable; default
        /// error and unmapped unless ids are given).
        #[arg(long, value_delimiter = ',')]
        status: Vec<String>,
        /// Only messages of this type: ORU^R01, or ORU for every ORU event.
        #[arg(long = "type")]
        message_type: Option<String>,
        /// Only messages received from this time on (RFC 3339, or a date or local time in the
        /// hub's time zone).
        #[arg(long)]
        since: Option<String>,
        /// Only messages received before this time (same forms).
        #[arg(long)]
        until: Option<String>,
        /// Count what would change (processed, still error, still unmapped); write nothing.
        #[arg(long)]
        dry_run: bool,
        #[arg(long, default_value = config::DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Show each connector's state, counts and last message, read from the store.
    Status {
        #[arg(long, default_value = config::DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Run a FHIR pull connector once, now, and print what it read (for ops and scripts).
    Pull {
        /// The connector's name.
        connector: String,
        /// One run, then exit (the only mode: the schedule runs inside `carehub run`).
        #[arg(long)]
        once: bool,
        #[arg(long, default_value = config::DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// API tokens: create (printed once), list, revoke (docs/security.md).
    Token {
        #[command(subcommand)]
        command: access::TokenCommand,
        #[arg(long, default_value = config::DEFAULT_CONFIG, global = true)]
        config: PathBuf,
    },
    /// The audit log: `verify` checks its hash chain.
    Audit {
        #[command(subcommand)]
        command: access::AuditCommand,
        #[arg(long, default_value = config::DEFAULT_CONFIG, global = true)]
        config: PathBuf,
    },
    /// Empty the raw bodies of logged messages past their connector's retention (metadata and
    /// content hash stay), and print per connector and status what went (or would go).
    Prune {
        /// Count only; change nothing.
        #[arg(long)]
        dry_run: bool,
        #[arg(long, default_value = config::DEFAULT_CONFIG)]
        config: PathBuf,
        /// Prune as if it were this time (RFC 3339, e.g. 2027-01-01T00:00:00Z); default: now.
        #[arg(long)]
        now: Option<String>,
    },
    /// Create or upgrade the store's schema.
    Migrate {
        #[arg(long, default_value = config::DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// A consistent snapshot of the SQLite store into a new file, while the hub runs
    /// (encrypted with the store's key when one is set). PostgreSQL: use pg_dump.
    Backup {
        /// The snapshot file to write (must not exist).
        #[arg(long)]
        to: PathBuf,
        #[arg(long, default_value = config::DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Restore an SQLite snapshot (from `carehub backup`) to where the configuration's store
    /// URL points, which must hold no store yet; checks the result.
    Restore {
        /// The snapshot file.
        file: PathBuf,
        #[arg(long, default_value = config::DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Encrypt the store under a new key (or for the first time), with the hub stopped: the
    /// current key is the configured `store.encryption_key`, the new one is read from the
    /// environment variable named by --new-key-env.
    Rekey {
        #[arg(long, default_value = config::DEFAULT_CONFIG)]
        config: PathBuf,
        /// The environment variable holding the new key.
        #[arg(long, default_value = "CAREHUB_STORE_NEW_KEY")]
        new_key_env: String,
    },
    /// Estimate the matching model's m/u probabilities from the store's own records (EM, no
    /// labels needed) and print them as the `identity.model` YAML to review and adopt.
    EstimateModel {
        #[arg(long, default_value = config::DEFAULT_CONFIG)]
        config: PathBuf,
        /// How many of the newest stored person records to learn from.
        #[arg(long, default_value_t = 50_000)]
        records: i64,
    },
    /// Link a labelled CSV of person records through the matching path (in a scratch store)
    /// and print precision, recall and F1 against its ground-truth column as one JSON line.
    LinkageEval {
        /// The CSV file (header row first).
        csv: PathBuf,
        /// The column holding the true entity id (same value = same person).
        #[arg(long)]
        truth: String,
        /// NAME=COLUMN (or NAME=COL1+COL2, joined by a space); NAME is one of given, family,
        /// birth_date, sex, phone, email, street, city, postcode, state, identifier.
        #[arg(long = "field", value_parser = parse_field)]
        fields: Vec<(String, String)>,
        /// A YAML file whose `identity:` section (model, thresholds, veto) is used: the hub's
        /// configuration, or a file with that section only.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Count the file's names first, as a hub started over a store holding these records
        /// would (the term-frequency adjustment: common names weigh less).
        #[arg(long)]
        name_frequencies: bool,
    },
}

fn parse_field(s: &str) -> Result<(String, String), String> {
    let (name, column) = s
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=COLUMN, got {s}"))?;
    Ok((name.trim().to_string(), column.trim().to_string()))
}

/// Entry point used by `main`.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn print_problems(problems: &[Problem]) -> ExitCode {
    for p in problems {
        eprintln!("{p}");
    }
    eprintln!(
        "{} problem{} found",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    );
    ExitCode::from(2)
}

/// The configuration at `path`, or — from the calling command — exit 2 after printing every
/// problem as `file:line: field: problem`.
macro_rules! settings_or_exit {
    ($path:expr) => {
        match config::load(&$path) {
            Ok(s) => s,
            Err(problems) => return Ok(print_problems(&problems)),
        }
    };
}

fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Validate { config } => match config::load(&config) {
            Ok(s) => {
                let enabled = s.connectors.iter().filter(|c| c.enabled()).count();
                println!(
                    "{}: OK — {} connector(s) ({} enabled), {} mapping(s)",
                    config.display(),
                    s.connectors.len(),
                    enabled,
                    s.mappings.iter().count()
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(problems) => Ok(print_problems(&problems)),
        },
        Command::Run { config } => {
            let settings = settings_or_exit!(config);
            crate::telemetry::init(&settings.hub.log);
            runtime()?.block_on(crate::app::run(settings))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::LinkageEval {
            csv,
            truth,
            fields,
            config,
            name_frequencies,
        } => {
            // Only the `identity:` section is read: a hub configuration or a file holding just that.
            #[derive(serde::Deserialize)]
            struct IdentityOnly {
                #[serde(default)]
                identity: crate::identity::IdentityConfig,
            }
            let identity = match config {
                Some(path) => {
                    let text = std::fs::read_to_string(&path)
                        .with_context(|| format!("reading {}", path.display()))?;
                    serde_saphyr::from_str::<IdentityOnly>(&text)
                        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
                        .identity
                }
                None => crate::identity::IdentityConfig::default(),
            };
            let figures = runtime()?.block_on(crate::linkage::evaluate(
                &csv,
                &truth,
                &fields,
                &identity,
                name_frequencies,
            ))?;
            println!("{}", serde_json::to_string(&figures)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::EstimateModel { config, records } => {
            let settings = settings_or_exit!(config);
            let text = runtime()?.block_on(async {
                let store = crate::store::Store::open_existing(&settings.hub.store).await?;
                crate::estimate::estimate(&store, &settings.hub.identity, records.max(2)).await
            })?;
            print!("{text}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Prune { dry_run, config, now } => {
            let settings = settings_or_exit!(config);
            let now = match now.as_deref().map(str::parse::<jiff::Timestamp>) {
                None => jiff::Timestamp::now(),
                Some(Ok(t)) => t,
                Some(Err(e)) => {
                    eprintln!("--now: expected an RFC 3339 time such as 2027-01-01T00:00:00Z: {e}");
                    return Ok(ExitCode::from(2));
                }
            };
            let report = runtime()?.block_on(async {
                let store = crate::store::Store::open_existing(&settings.hub.store).await?;
                // A store from before retention lacks the column: bring it up to date first.
                store.migrate().await?;
                let report = crate::retention::prune(&store, &settings, now, dry_run).await?;
                if !dry_run {
                    access::audit_action(&store, "prune message bodies").await?;
                }
                store.close().await;
                anyhow::Ok(report)
            })?;
            print!("{}", crate::retention::render(&report));
            Ok(ExitCode::SUCCESS)
        }
        Command::Token { command, config } => {
            let settings = settings_or_exit!(config);
            runtime()?.block_on(async {
                let store = crate::store::Store::open(&settings.hub.store).await?;
                let code = access::token(&store, command).await;
                store.close().await;
                code
            })
        }
        Command::Audit { command, config } => {
            let settings = settings_or_exit!(config);
            runtime()?.block_on(async {
                let store = crate::store::Store::open_existing(&settings.hub.store).await?;
                let code = access::audit(&store, command).await;
                store.close().await;
                code
            })
        }
        Command::Backup { to, config } => {
            let settings = settings_or_exit!(config);
            store_files::backup(&settings, &to)
        }
        Command::Restore { file, config } => {
            let settings = settings_or_exit!(config);
            store_files::restore(&settings, &file)
        }
        Command::Rekey { config, new_key_env } => {
            let settings = settings_or_exit!(config);
            store_files::rekey(&settings, &new_key_env)
        }
        Command::Migrate { config } => {
            let settings = settings_or_exit!(config);
            runtime()?.block_on(async {
                let store = crate::store::Store::open(&settings.hub.store).await?;
                store.migrate().await?;
                println!(
                    "store at {} is up to date",
                    config::redact_url(&settings.hub.store.url)
                );
                anyhow::Ok(())
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Map {
            mapping,
            config,
            input,
        } => map::map_command(mapping.as_deref(), &config, &input),
        Command::Reprocess {
            ids,
            connector,
            status,
            message_type,
            since,
            until,
            dry_run,
            config,
        } => {
            let settings = settings_or_exit!(config);
            let args = ReprocessArgs {
                ids,
                connector,
                status,
                message_type,
                since,
                until,
            };
            reprocess::command(&settings, args, dry_run)
        }
        Command::Replay {
            mapping,
            since,
            connector,
            config,
            limit,
            show_values,
        } => replay_command(
            &mapping,
            &config,
            crate::replay::ReplayOptions {
                since: None,
                connector,
                examples: limit,
                show_values,
            },
            since.as_deref(),
        ),
        Command::Pull {
            connector,
            once,
            config,
        } => {
            if !once {
                eprintln!(
                    "carehub pull runs one pull and exits: add --once (the schedule runs in carehub run)"
                );
                return Ok(ExitCode::from(2));
            }
            let settings = settings_or_exit!(config);
            let summary = runtime()?.block_on(crate::app::pull_once(settings, &connector))?;
            println!(
                "{connector}: {} pages, {} resources: {} applied, {} already had, {} without mapping, {} refused",
                summary.pages,
                summary.resources,
                summary.processed,
                summary.duplicates,
                summary.unmapped,
                summary.errors
            );
            for (t, c) in &summary.cursors_after {
                let before = summary.cursors_before.get(t).map(String::as_str).unwrap_or("-");
                println!("  {t:<20} cursor {before} -> {c}");
            }
            Ok(match summary.failure {
                Some(why) => {
                    eprintln!("the run failed: {why}");
                    ExitCode::from(1)
                }
                None => ExitCode::SUCCESS,
            })
        }
        Command::Status { config } => {
            let settings = settings_or_exit!(config);
            let (connectors, outbox) = runtime()?.block_on(async {
                let store = crate::store::Store::open_existing(&settings.hub.store).await?;
                // A store from before notifications has no outbox yet: nothing to show.
                let outbox = store.notification_counts().await.unwrap_or_default();
                anyhow::Ok((store.connectors().await?, outbox))
            })?;
            println!(
                "{:<20} {:<6} {:<9} {:>9} {:>9} {:>7} {:>5} {:>8}  last message",
                "connector", "type", "state", "received", "processed", "errors", "dups", "unmapped"
            );
            for c in connectors {
                println!(
                    "{:<20} {:<6} {:<9} {:>9} {:>9} {:>7} {:>5} {:>8}  {}",
                    c.name,
                    c.kind,
                    c.state,
                    c.received,
                    c.processed,
                    c.errors,
                    c.duplicates,
                    c.unmapped,
                    c.last_message_at.as_deref().unwrap_or("-")
                );
                if let Some(detail) = c.detail.filter(|d| c.state == "degraded" || !d.is_empty()) {
                    println!("{:<20} {detail}", "");
                }
                if let Some(r) = c.last_run {
                    println!(
                        "{:<20} last run {} {}: {} pages, {} resources, {} errors{}",
                        "",
                        r.started_at,
                        r.outcome,
                        r.pages,
                        r.resources,
                        r.errors,
                        r.detail.map(|d| format!(" ({d})")).unwrap_or_default()
                    );
                }
            }
            if !outbox.is_empty() {
                let counts: Vec<String> = outbox.iter().map(|(status, n)| format!("{n} {status}")).collect();
                println!("\nnotifications: {}", counts.join(", "));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::TestMappings { config, dir } => {
            let settings = settings_or_exit!(config);
            let dir = dir.unwrap_or_else(|| Path::new(&settings.hub.mappings_dir).join("tests"));
            let env = mapping::TransformEnv {
                phone_region: settings.hub.phone_region.to_uppercase(),
                timezone: jiff::tz::TimeZone::get(&settings.hub.timezone).unwrap_or(jiff::tz::TimeZone::UTC),
                connector: None,
            };
            let results = mapping::golden::run_dir(&dir, &settings.mappings, &env)
                .with_context(|| format!("reading {}", dir.display()))?;
            let failed = results.iter().filter(|r| !r.passed()).count();
            for r in &results {
                if r.passed() {
                    println!("ok    {}", r.name);
                } else {
                    println!("FAIL  {}", r.name);
                    for d in &r.differences {
                        println!("        {d}");
                    }
                }
            }
            println!("{} passed, {} failed", results.len() - failed, failed);
            Ok(if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}

/// Compiles NEW, replays the stored messages through it and today's mapping, prints the report.
fn replay_command(
    mapping_file: &Path,
    config_path: &Path,
    mut options: crate::replay::ReplayOptions,
    since: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let settings = match config::load(config_path) {
        Ok(s) => s,
        Err(problems) => return Ok(print_problems(&problems)),
    };
    let shown = mapping_file.display().to_string();
    let text = std::fs::read_to_string(mapping_file).with_context(|| format!("reading {shown}"))?;
    // Compiled as the hub compiles it, with `person: {from: NAME}` resolved against the
    // configured mappings.
    let sources = &settings.mappings;
    let tried = match Document::parse(&shown, &text)
        .map_err(|p| vec![p])
        .and_then(|d| mapping::compile(&d))
        .and_then(|m| sources.with_mapping(m))
    {
        Ok(set) => set,
        Err(problems) => return Ok(print_problems(&problems)),
    };
    let new = tried.iter().next().context("the compiled mapping")?;
    let timezone = jiff::tz::TimeZone::get(&settings.hub.timezone).context("time zone")?;
    if let Some(text) = since {
        match crate::replay::parse_since(text, &timezone) {
            Ok(t) => options.since = Some(t),
            Err(e) => {
                eprintln!("--since: {e}");
                return Ok(ExitCode::from(2));
            }
        }
    }
    let contexts = settings
        .connectors
        .iter()
        .map(|c| crate::app::connector_context(&settings, c))
        .collect::<anyhow::Result<Vec<_>>>()?;
    // Messages of a connector no longer configured are read with the hub's defaults.
    let fallback = crate::pipeline::ConnectorContext {
        name: String::new(),
        mapping: None,
        source_system: None,
        default_charset: hl7::Charset::Latin1,
        transform_env: mapping::TransformEnv {
            phone_region: settings.hub.phone_region.to_uppercase(),
            timezone,
            connector: None,
        },
    };
    let replay = crate::replay::Replay::new(new, &settings.mappings, contexts, fallback, options);
    let report = runtime()?.block_on(async {
        let store = crate::store::Store::open_existing(&settings.hub.store).await?;
        anyhow::Ok(replay.run(&store).await?)
    })?;
    print!("{report}");
    Ok(ExitCode::SUCCESS)
}
