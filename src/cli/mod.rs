//! The `carehub` command: `run`, `validate`, `map`, `test-mappings`, `replay`, `status`, `prune`,
//! `migrate`, `token`, `audit` (`access.rs`), `backup`, `restore`, `rekey`.
//!
//! Exit codes: 0 success; 1 a runtime failure (printed with its cause chain); 2 a configuration
//! or input problem (each printed as `file:line: field: problem`).

mod access;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::config::{self, Document, Problem};
use crate::hl7;
use crate::mapping::{self, MappingSet};

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
            let size = crate::store::backup_sqlite(store, &to)?;
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
        Command::Restore { file, config } => {
            let settings = settings_or_exit!(config);
            let store = &settings.hub.store;
            if crate::store::sqlite_path(&store.url).is_none() {
                eprintln!(
                    "carehub restore writes SQLite stores; restore PostgreSQL with pg_restore (docs/operations.md)"
                );
                return Ok(ExitCode::from(2));
            }
            let started = std::time::Instant::now();
            let (messages, version) = crate::store::restore_sqlite(store, &file)?;
            let expected = crate::store::sqlite_schema_version();
            println!(
                "restored {} to {} in {:.1} s: integrity ok, {messages} messages, schema version {version}{}",
                file.display(),
                config::redact_url(&store.url),
                started.elapsed().as_secs_f64(),
                match version.cmp(&expected) {
                    std::cmp::Ordering::Equal => " (current)".to_string(),
                    std::cmp::Ordering::Less =>
                        format!(" (older than {expected}: carehub migrates it at start)"),
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
        Command::Rekey { config, new_key_env } => {
            let settings = settings_or_exit!(config);
            let new = match std::env::var(&new_key_env) {
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
            println!(
                "now give the new key to store.encryption_key (e.g. CAREHUB_STORE_KEY) before starting carehub"
            );
            Ok(ExitCode::SUCCESS)
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
        } => map_command(mapping.as_deref(), &config, &input),
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

fn map_command(mapping_file: Option<&Path>, config_path: &Path, input: &Path) -> anyhow::Result<ExitCode> {
    let (mappings, hub) = match mapping_file {
        Some(file) => {
            let shown = file.display().to_string();
            let text = std::fs::read_to_string(file).with_context(|| format!("reading {shown}"))?;
            let compiled = Document::parse(&shown, &text)
                .map_err(|p| vec![p])
                .and_then(|d| mapping::compile(&d));
            let settings = config::load(config_path).ok();
            // The file may take its person output from a configured mapping (`person: {from:}`).
            let configured = settings.as_ref().map(|s| s.mappings.clone()).unwrap_or_default();
            match compiled.and_then(|m| configured.with_mapping(m)) {
                Ok(set) => (set, settings.map(|s| s.hub)),
                Err(problems) => return Ok(print_problems(&problems)),
            }
        }
        None => match config::load(config_path) {
            Ok(s) => (s.mappings, Some(s.hub)),
            Err(problems) => return Ok(print_problems(&problems)),
        },
    };
    let hub = hub.unwrap_or_default();
    let env = mapping::TransformEnv {
        phone_region: hub.phone_region.to_uppercase(),
        timezone: jiff::tz::TimeZone::get(&hub.timezone).unwrap_or(jiff::tz::TimeZone::UTC),
        connector: None,
    };
    let bytes = std::fs::read(input).with_context(|| format!("reading {}", input.display()))?;
    let mut results = Vec::new();
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace()).copied();
    let failed = if matches!(first, Some(b'{') | Some(b'[')) {
        map_fhir(
            &bytes,
            input,
            mapping_file.is_some(),
            &mappings,
            &env,
            &mut results,
        )?
    } else {
        map_hl7(
            &bytes,
            input,
            mapping_file.is_some(),
            &mappings,
            &env,
            &mut results,
        )?
    };
    let out = if results.len() == 1 {
        results.remove(0)
    } else {
        serde_json::Value::Array(results)
    };
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(if failed {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

/// Maps each message of an HL7 v2 file; true when one failed.
fn map_hl7(
    bytes: &[u8],
    input: &Path,
    fixed: bool,
    mappings: &MappingSet,
    env: &mapping::TransformEnv,
    results: &mut Vec<serde_json::Value>,
) -> anyhow::Result<bool> {
    let (text, _) =
        hl7::decode(bytes, hl7::Charset::Latin1).map_err(|e| anyhow::anyhow!("{}: {e}", input.display()))?;
    let messages = hl7::split_file(&text).map_err(|e| anyhow::anyhow!("{}: {e}", input.display()))?;
    let mut failed = false;
    for (i, text) in messages.iter().enumerate() {
        let n = i + 1;
        let msg = match hl7::Message::parse(text) {
            Ok(m) => m,
            Err(e) => {
                failed = true;
                results.push(
                    serde_json::json!({"message": n, "error": format!("not a valid HL7 v2 message: {e}")}),
                );
                continue;
            }
        };
        let mtype = msg.message_type();
        let chosen = match (fixed, &mtype) {
            (true, _) => mappings.iter().next(),
            (false, Some(t)) => mappings.for_message_type(t),
            (false, None) => None,
        };
        let mut entry = serde_json::json!({
            "message": n,
            "message_type": mtype.as_ref().map(ToString::to_string),
            "control_id": msg.control_id(),
        });
        match chosen {
            None => {
                entry["error"] = serde_json::json!(format!(
                    "no mapping for message type {}",
                    mtype
                        .map(|t| t.to_string())
                        .unwrap_or_else(|| "(empty MSH-9)".into())
                ));
                failed = true;
            }
            Some(m) if m.input != mapping::Input::Hl7v2 => {
                entry["error"] = serde_json::json!(format!("mapping {} reads FHIR, not HL7 v2", m.name));
                failed = true;
            }
            Some(m) => {
                entry["mapping"] = serde_json::json!(m.name);
                match m.apply(&msg, env) {
                    Ok(out) => {
                        if let serde_json::Value::Object(fields) = out.to_json() {
                            for (k, v) in fields {
                                entry[k] = v;
                            }
                        }
                    }
                    Err(e) => {
                        failed = true;
                        entry["error"] = serde_json::json!(e.to_string());
                    }
                }
            }
        }
        results.push(entry);
    }
    Ok(failed)
}

/// Maps a FHIR resource, a Bundle's resources, or NDJSON lines; true when one failed.
fn map_fhir(
    bytes: &[u8],
    input: &Path,
    fixed: bool,
    mappings: &MappingSet,
    env: &mapping::TransformEnv,
    results: &mut Vec<serde_json::Value>,
) -> anyhow::Result<bool> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| anyhow::anyhow!("{}: not UTF-8 JSON: {e}", input.display()))?;
    let (entries, single) =
        mapping::fhir_entries(text).map_err(|e| anyhow::anyhow!("{}: {e}", input.display()))?;
    let mut failed = false;
    let fixed_mapping = if fixed { mappings.iter().next() } else { None };
    if let Some(m) = fixed_mapping.filter(|m| m.input != mapping::Input::Fhir) {
        anyhow::bail!("mapping {} reads HL7 v2, not FHIR", m.name);
    }
    let mapped = mapping::map_entries(&entries, mappings, fixed_mapping, env);
    // In a Bundle or NDJSON, resources no mapping handles are counted, not failures.
    let mut skipped: std::collections::BTreeMap<String, usize> = Default::default();
    for (i, e) in entries.iter().enumerate() {
        if !mapped.iter().any(|m| m.index == i) {
            *skipped.entry(e.resource_type().to_string()).or_default() += 1;
        }
    }
    if single && mapped.is_empty() {
        failed = true;
        let rtype = entries.first().map(|e| e.resource_type()).unwrap_or("");
        results.push(serde_json::json!({"resource": 1, "resource_type": rtype,
            "error": format!("no mapping for resource type {rtype}")}));
        skipped.clear();
    }
    for m in mapped {
        let resource = &entries[m.index].resource;
        let mut entry = serde_json::json!({"resource": m.index + 1, "resource_type": resource["resourceType"],
            "id": resource["id"], "mapping": m.mapping.name});
        match m.result {
            Ok(out) => {
                if let serde_json::Value::Object(fields) = out.to_json() {
                    for (k, v) in fields {
                        entry[k] = v;
                    }
                }
            }
            Err(e) => {
                failed = true;
                entry["error"] = serde_json::json!(e.to_string());
            }
        }
        results.push(entry);
    }
    if !skipped.is_empty() {
        results.push(serde_json::json!({ "skipped_without_mapping": skipped }));
    }
    Ok(failed)
}
