//! The composition root: the only place that knows every concrete type.
//!
//! `start` opens the store, starts the group-commit writer, binds every enabled connector and
//! the API, and returns a [`Hub`] holding their addresses (tests bind port 0 and read them
//! back). `Hub::shutdown` stops accepting, lets in-flight messages finish and commit, and
//! waits for every task.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::Settings;
use crate::hl7::Charset;
use crate::mapping::TransformEnv;
use crate::pipeline::{ConnectorContext, Ingest, spawn_writer};
use crate::sources::{ConnectorConfig, file, mllp};
use crate::store::Store;

/// A running hub.
pub struct Hub {
    /// Where the API listens, when enabled.
    pub api_addr: Option<SocketAddr>,
    /// Every route the API serves, with its access rule.
    pub api_routes: Vec<(axum::http::Method, String, &'static crate::api::RouteRule)>,
    /// Where each MLLP connector listens, by connector name.
    pub mllp_addrs: Vec<(String, SocketAddr)>,
    pub store: Store,
    /// The alert evaluator, when `alerts.yaml` declares alerts (tests drive it with their clock).
    pub alerter: Option<Arc<crate::alerts::Alerter>>,
    /// Which enabled connectors started (what `/readyz` answers).
    pub readiness: Arc<crate::api::Readiness>,
    shutdown: watch::Sender<bool>,
    sources: JoinSet<()>,
    /// The outbox relay, channel workers and scheduler; the retention job.
    delivery: JoinSet<()>,
    api: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    writer: tokio::task::JoinHandle<()>,
    ingest: Option<Ingest>,
}

impl Hub {
    /// The ingest handle, for tools that feed the pipeline directly.
    pub fn ingest(&self) -> Option<&Ingest> {
        self.ingest.as_ref()
    }

    /// The MLLP address of a connector.
    pub fn mllp_addr(&self, name: &str) -> Option<SocketAddr> {
        self.mllp_addrs.iter().find(|(n, _)| n == name).map(|(_, a)| *a)
    }

    /// Graceful shutdown: stop accepting, finish what is in flight, commit, exit.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        while self.sources.join_next().await.is_some() {}
        self.ingest = None; // the writer ends once every handle is gone
        let _ = self.writer.await;
        // Sends in flight finish and record their outcome; what is pending stays in the outbox.
        while self.delivery.join_next().await.is_some() {}
        if let Some(api) = self.api.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), api).await;
        }
        for c in self.store.connectors().await.unwrap_or_default() {
            let _ = self
                .store
                .set_connector_state(&c.name, &c.kind, "stopped", None)
                .await;
        }
    }
}

/// The per-connector context the pipeline needs.
pub fn connector_context(settings: &Settings, c: &ConnectorConfig) -> anyhow::Result<ConnectorContext> {
    let timezone =
        jiff::tz::TimeZone::get(c.timezone().unwrap_or(&settings.hub.timezone)).context("time zone")?;
    Ok(ConnectorContext {
        name: c.name().to_string(),
        mapping: c.mapping().map(str::to_string),
        source_system: c.source_system().map(str::to_string),
        default_charset: Charset::from_hl7(c.default_charset()).unwrap_or(Charset::Latin1),
        transform_env: TransformEnv {
            phone_region: c
                .phone_region()
                .unwrap_or(&settings.hub.phone_region)
                .to_uppercase(),
            timezone,
            connector: Some(c.source_system().unwrap_or(c.name()).to_string()),
        },
    })
}

/// Reprocess over the hub's writer: every configured connector's context (enabled or not:
/// their stored messages are read as they were), the hub's defaults for connectors no longer
/// configured, and the mapping folder it reads at each run.
pub fn reprocessor(settings: &Settings, ingest: Ingest) -> anyhow::Result<crate::reprocess::Reprocessor> {
    let connectors = settings
        .connectors
        .iter()
        .map(|c| {
            let fhir = matches!(c, ConnectorConfig::Fhir(_) | ConnectorConfig::FhirPush(_));
            Ok((connector_context(settings, c)?, fhir))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(crate::reprocess::Reprocessor::new(
        ingest,
        std::path::PathBuf::from(&settings.hub.mappings_dir),
        connectors,
        default_context(settings)?,
    ))
}

/// How messages of a connector no longer configured are read: the hub's defaults.
pub fn default_context(settings: &Settings) -> anyhow::Result<ConnectorContext> {
    Ok(ConnectorContext {
        name: String::new(),
        mapping: None,
        source_system: None,
        default_charset: Charset::Latin1,
        transform_env: TransformEnv {
            phone_region: settings.hub.phone_region.to_uppercase(),
            timezone: jiff::tz::TimeZone::get(&settings.hub.timezone).context("time zone")?,
            connector: None,
        },
    })
}

/// The store as ingest writes it: the matcher fitted to the store's contents and the
/// notification rules (changes made outside `carehub run` owe their notifications too: the
/// next `carehub run` sends them).
pub async fn open_for_ingest(settings: &Settings) -> anyhow::Result<Store> {
    let matcher = crate::identity::Matcher::new(&settings.hub.identity)
        .map_err(|e| anyhow::anyhow!("identity.model: {e}"))?;
    let rules = match settings.hub.notifications.enabled {
        true => crate::rules::RuleSet::new(
            &settings.rules,
            jiff::tz::TimeZone::get(&settings.hub.timezone).context("time zone")?,
        ),
        false => crate::rules::RuleSet::default(),
    };
    let store = Store::open(&settings.hub.store)
        .await
        .context("opening the store")?;
    let matcher = fitted_to_store(&store, matcher, &settings.hub.identity).await?;
    let store = store.with_matcher(matcher).with_rules(rules);
    // Changes made here are announced to subscribers by the next `carehub run`.
    store
        .refresh_change_feed()
        .await
        .context("reading subscriptions")?;
    Ok(store)
}

/// `carehub reprocess`: the chosen messages read again with the mapping files on disk, through
/// a writer of this process (beside a running hub too: each batch takes the store's write
/// lock, and ids are read under it).
/// `store` as [`open_for_ingest`] opens it.
pub async fn reprocess(
    settings: &Settings,
    store: &Store,
    selection: &crate::reprocess::Selection,
    dry_run: bool,
) -> anyhow::Result<Result<crate::reprocess::Report, crate::reprocess::ReprocessError>> {
    let (tx, writer) = spawn_writer(
        store.clone(),
        settings.hub.pipeline.max_batch,
        settings.hub.pipeline.queue_depth,
    );
    let ingest = Ingest::new(tx, Arc::new(settings.mappings.clone()))
        .with_store(store.clone())
        .with_matching(settings.hub.identity.matching);
    let reprocessor = reprocessor(settings, ingest)?;
    let outcome = reprocessor.run(store, selection, dry_run).await;
    drop(reprocessor); // the writer ends once every handle is gone
    let _ = writer.await;
    Ok(outcome)
}

/// Builds the enabled channels, opens the queue and starts the relay, the channel workers and
/// the scheduler. Returns what the API's notification routes need.
async fn start_delivery(
    settings: &Settings,
    store: &Store,
    rules: crate::rules::RuleSet,
    shutdown: &watch::Receiver<bool>,
    tasks: &mut JoinSet<()>,
) -> anyhow::Result<crate::api::NotifyApi> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("carehub/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("HTTP client for channels")?;
    let mut channels = std::collections::BTreeMap::new();
    for (name, config) in settings.channels.iter().filter(|(_, c)| c.enabled()) {
        let channel = crate::channels::Channel::build(name, config, http.clone())
            .map_err(|e| anyhow::anyhow!("channel {name}: {e}"))?;
        channels.insert(name.clone(), Arc::new(channel));
    }
    let names: Vec<String> = channels.keys().cloned().collect();
    let queue = crate::queue::Queue::open(&settings.hub.queue, store, &names)
        .await
        .context("opening the notification queue")?;
    tracing::info!(
        queue = queue.kind(),
        channels = names.len(),
        rules = rules.rules.len(),
        "notifications started"
    );
    let channels = Arc::new(channels);
    let services = Arc::new(crate::delivery::Services {
        store: store.clone(),
        queue: queue.clone(),
        rules: Arc::new(rules),
        templates: Arc::new(settings.templates.clone()),
        channels: (*channels).clone(),
        config: settings.hub.notifications.clone(),
        queue_config: settings.hub.queue.clone(),
    });
    crate::delivery::spawn(services, shutdown, tasks);
    Ok(crate::api::NotifyApi {
        queue: Some(queue),
        channels,
    })
}

/// The matcher with the names of the store's newest records counted (when matching and the
/// term-frequency adjustment are on and the store holds records).
async fn with_name_frequencies(
    store: &Store,
    matcher: crate::identity::Matcher,
    identity: &crate::identity::IdentityConfig,
) -> anyhow::Result<crate::identity::Matcher> {
    let tf = &identity.model.term_frequency;
    if !identity.matching || !tf.enabled || tf.sample == 0 {
        return Ok(matcher);
    }
    let sample = store
        .sample_patches(i64::try_from(tf.sample).unwrap_or(i64::MAX))
        .await
        .context("counting name frequencies")?;
    if sample.is_empty() {
        return Ok(matcher);
    }
    tracing::info!(records = sample.len(), "name frequencies counted for matching");
    Ok(matcher.with_name_frequencies(&sample))
}

/// The matcher as the store's contents make it: name frequencies counted from the stored
/// records, thresholds raised for the store's size. `carehub run` and `carehub pull --once`
/// both take it, so a record links the same way whichever of them reads it.
async fn fitted_to_store(
    store: &Store,
    matcher: crate::identity::Matcher,
    identity: &crate::identity::IdentityConfig,
) -> anyhow::Result<crate::identity::Matcher> {
    let matcher = with_name_frequencies(store, matcher, identity).await?;
    let persons = store.person_count().await.context("counting persons")?;
    let (matcher, shift) = matcher.with_store_size(u64::try_from(persons).unwrap_or(0));
    if shift > 0.0 {
        let t = matcher.model.thresholds();
        tracing::info!(
            persons,
            link = t.link,
            review = t.review,
            "match thresholds raised for the store's size"
        );
    }
    Ok(matcher)
}

/// Starts everything the settings describe.
pub async fn start(settings: Settings) -> anyhow::Result<Hub> {
    let matcher = crate::identity::Matcher::new(&settings.hub.identity)
        .map_err(|e| anyhow::anyhow!("identity.model: {e}"))?;
    let clinic_tz = jiff::tz::TimeZone::get(&settings.hub.timezone).context("time zone")?;
    let notifying = settings.hub.notifications.enabled;
    let rules = if notifying {
        crate::rules::RuleSet::new(&settings.rules, clinic_tz.clone())
    } else {
        crate::rules::RuleSet::default()
    };
    let store = Store::open(&settings.hub.store)
        .await
        .context("opening the store")?;
    let matcher = fitted_to_store(&store, matcher, &settings.hub.identity).await?;
    let store = store.with_matcher(matcher).with_rules(rules.clone());
    // Before any source starts: golden records follow the survivorship rules as configured now.
    let rederived = store
        .rederive_golden_records()
        .await
        .context("deriving golden records under new survivorship rules")?;
    if rederived > 0 {
        tracing::info!(
            persons = rederived,
            "golden records derived again under changed survivorship rules"
        );
    }
    if settings.hub.identity.matching {
        // Before any source starts: records stored while matching was off (or before it
        // existed) become findable. Idempotent, resumable, a thousand records per transaction.
        let n = store
            .backfill_match_keys()
            .await
            .context("indexing stored records for matching")?;
        if n > 0 {
            tracing::info!(
                records = n,
                "blocking keys computed for records stored without them"
            );
        }
    }
    let (tx, writer) = spawn_writer(
        store.clone(),
        settings.hub.pipeline.max_batch,
        settings.hub.pipeline.queue_depth,
    );
    let ingest = Ingest::new(tx, Arc::new(settings.mappings.clone()))
        .with_store(store.clone())
        .with_matching(settings.hub.identity.matching);
    let (shutdown, shutdown_rx) = watch::channel(false);
    let mut sources = JoinSet::new();
    let mut mllp_addrs = Vec::new();
    let mut fhir_endpoints = Vec::new();
    let readiness = Arc::new(crate::api::Readiness::default());

    for c in settings.connectors.iter().filter(|c| c.enabled()) {
        let ctx = connector_context(&settings, c)?;
        match c {
            ConnectorConfig::Mllp(cfg) => {
                let tls = mllp::tls_acceptor(cfg).with_context(|| format!("connector {}: tls", cfg.name))?;
                let listener = match TcpListener::bind(&cfg.listen).await {
                    Ok(listener) => listener,
                    Err(e) => {
                        // The rest of the hub runs; /readyz says why this one does not, and
                        // the listener is tried again until the port is free.
                        let reason = format!("cannot listen on {}: {e}", cfg.listen);
                        tracing::error!(connector = %cfg.name, %reason, "an MLLP connector could not start; retrying every 5 s");
                        readiness.failed(&cfg.name, reason.clone());
                        store
                            .set_connector_state(&cfg.name, "mllp", "failed", Some(&reason))
                            .await?;
                        sources.spawn(mllp_when_bound(
                            cfg.clone(),
                            tls,
                            ctx,
                            ingest.clone(),
                            store.clone(),
                            readiness.clone(),
                            shutdown_rx.clone(),
                        ));
                        continue;
                    }
                };
                let addr = listener.local_addr()?;
                readiness.started(&cfg.name);
                mllp_addrs.push((cfg.name.clone(), addr));
                store
                    .set_connector_state(
                        &cfg.name,
                        "mllp",
                        "running",
                        Some(&format!("listening on {addr}")),
                    )
                    .await?;
                tracing::info!(connector = %cfg.name, %addr, tls = cfg.tls.is_some(), "MLLP listener started");
                sources.spawn(mllp::serve(
                    listener,
                    cfg.clone(),
                    tls,
                    ctx,
                    ingest.clone(),
                    shutdown_rx.clone(),
                ));
            }
            ConnectorConfig::Fhir(cfg) => {
                let tz = ctx.transform_env.timezone.clone();
                let puller =
                    crate::sources::fhir::Puller::new(cfg.clone(), ctx, ingest.clone(), store.clone())
                        .with_context(|| format!("connector {}: HTTP client", cfg.name))?;
                store
                    .set_connector_state(
                        &cfg.name,
                        "fhir",
                        "running",
                        Some(&format!("schedule {}", cfg.schedule)),
                    )
                    .await?;
                tracing::info!(connector = %cfg.name, schedule = %cfg.schedule, "FHIR pull connector started");
                readiness.started(&cfg.name);
                sources.spawn(crate::sources::fhir::serve(puller, tz, shutdown_rx.clone()));
            }
            ConnectorConfig::FhirPush(cfg) => {
                if !settings.hub.api.enabled {
                    anyhow::bail!(
                        "connector {}: a FHIR push endpoint needs the API (api.enabled)",
                        cfg.name
                    );
                }
                store
                    .set_connector_state(
                        &cfg.name,
                        "fhir_push",
                        "running",
                        Some(&format!("POST {} on the API", cfg.path)),
                    )
                    .await?;
                tracing::info!(connector = %cfg.name, path = %cfg.path, "FHIR push endpoint");
                readiness.started(&cfg.name);
                fhir_endpoints.push(crate::api::FhirEndpoint {
                    path: cfg.path.clone(),
                    ctx,
                    ingest: ingest.clone(),
                    max_resources: cfg.max_resources,
                });
            }
            ConnectorConfig::File(cfg) => {
                file::prepare_dirs(cfg)
                    .with_context(|| format!("connector {}: preparing {}", cfg.name, cfg.dir))?;
                store
                    .set_connector_state(
                        &cfg.name,
                        "file",
                        "running",
                        Some(&format!("polling {}", cfg.dir)),
                    )
                    .await?;
                tracing::info!(connector = %cfg.name, dir = %cfg.dir, "file connector started");
                readiness.started(&cfg.name);
                sources.spawn(file::serve(
                    cfg.clone(),
                    ctx,
                    ingest.clone(),
                    store.clone(),
                    shutdown_rx.clone(),
                ));
            }
        }
    }

    let mut delivery = JoinSet::new();
    if crate::retention::any_limit(&settings) {
        tracing::info!(schedule = %settings.hub.retention.schedule, "retention: raw bodies pruned on schedule");
        delivery.spawn(crate::retention::run_schedule(
            store.clone(),
            settings.clone(),
            clinic_tz.clone(),
            shutdown_rx.clone(),
        ));
    }
    let notify_api = if notifying {
        start_delivery(&settings, &store, rules, &shutdown_rx, &mut delivery).await?
    } else {
        crate::api::NotifyApi::default()
    };
    crate::subscriptions::start(
        &settings.hub.subscriptions,
        &settings.hub.queue,
        &store,
        &shutdown_rx,
        &mut delivery,
    )
    .await
    .map_err(|e| anyhow::anyhow!("subscriptions: {e}"))?;
    let alerter = start_alerts(&settings, &store, &shutdown_rx, &mut delivery)?;

    let mut api_routes = Vec::new();
    let (api_addr, api) = if settings.hub.api.enabled {
        let tls = match &settings.hub.api.tls {
            Some(tls) => Some(tokio_rustls::TlsAcceptor::from(
                tls.server_config().context("api.tls")?,
            )),
            None => None,
        };
        let https = tls.is_some();
        let listener = TcpListener::bind(&settings.hub.api.listen)
            .await
            .with_context(|| format!("the API cannot listen on {}", settings.hub.api.listen))?;
        let addr = listener.local_addr()?;
        bootstrap_admin(&store, &settings.hub.api.auth).await?;
        let oidc = match &settings.hub.api.auth.oidc {
            Some(config) => {
                let _ = rustls::crypto::ring::default_provider().install_default();
                let http = reqwest::Client::builder()
                    .timeout(Duration::from_secs(config.http_timeout_secs))
                    .user_agent(concat!("carehub/", env!("CARGO_PKG_VERSION")))
                    .build()
                    .context("HTTP client for the identity provider")?;
                tracing::info!(issuer = %config.issuer, "bearer tokens from the identity provider accepted");
                Some(Arc::new(crate::api::oidc::OidcVerifier::new(
                    config.clone(),
                    http,
                )))
            }
            None => None,
        };
        let messages_api = crate::api::MessagesApi {
            reprocessor: Some(Arc::new(reprocessor(&settings, ingest.clone())?)),
            timezone: clinic_tz.clone(),
        };
        let api = crate::api::router(
            store.clone(),
            Duration::from_secs(settings.hub.api.request_timeout_secs),
            settings.hub.api.max_body_bytes,
            fhir_endpoints,
            notify_api,
            messages_api,
            crate::api::OpsApi {
                readiness: readiness.clone(),
            },
            oidc,
            crate::console::ConsoleConfig {
                secure_cookie: https,
                session_hours: settings.hub.api.auth.session_hours,
                fhir_schedules: settings
                    .connectors
                    .iter()
                    .filter(|c| c.enabled())
                    .filter_map(|c| match c {
                        ConnectorConfig::Fhir(f) => Some((f.name.clone(), f.schedule.clone())),
                        _ => None,
                    })
                    .collect(),
                timezone: Some(settings.hub.timezone.clone()),
                alerts_configured: settings.alerts.as_ref().is_some_and(|a| !a.alerts.is_empty()),
            },
        );
        api_routes = api.routes;
        tracing::info!(%addr, https, "API listening");
        (
            Some(addr),
            Some(tokio::spawn(crate::api::serve(
                listener,
                api.router,
                tls,
                shutdown_rx.clone(),
            ))),
        )
    } else {
        (None, None)
    };

    Ok(Hub {
        api_addr,
        api_routes,
        mllp_addrs,
        store,
        alerter,
        readiness,
        shutdown,
        sources,
        delivery,
        api,
        writer,
        ingest: Some(ingest),
    })
}

/// An MLLP connector whose port was taken at start: tries to bind every 5 s until it can (or
/// the hub stops), then serves as usual.
async fn mllp_when_bound(
    cfg: crate::sources::mllp::MllpConfig,
    tls: Option<tokio_rustls::TlsAcceptor>,
    ctx: ConnectorContext,
    ingest: Ingest,
    store: Store,
    readiness: Arc<crate::api::Readiness>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        let Ok(listener) = TcpListener::bind(&cfg.listen).await else {
            continue;
        };
        let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
        let detail = format!("listening on {addr}");
        let _ = store
            .set_connector_state(&cfg.name, "mllp", "running", Some(&detail))
            .await;
        readiness.started(&cfg.name);
        tracing::info!(connector = %cfg.name, %addr, "MLLP listener started (its port is free now)");
        mllp::serve(listener, cfg, tls, ctx, ingest, shutdown).await;
        return;
    }
}

/// Builds the alert evaluator when `alerts.yaml` declares alerts, and starts its schedule.
fn start_alerts(
    settings: &Settings,
    store: &Store,
    shutdown: &watch::Receiver<bool>,
    tasks: &mut JoinSet<()>,
) -> anyhow::Result<Option<Arc<crate::alerts::Alerter>>> {
    let Some(alerter) = crate::alerts::alerter_for(settings, store).map_err(anyhow::Error::msg)? else {
        return Ok(None);
    };
    let alerter = Arc::new(alerter);
    tasks.spawn(alerter.clone().run(shutdown.clone()));
    Ok(Some(alerter))
}

/// Makes sure an admin can get in (see `api::tokens::ensure_admin`), saying where the first
/// admin token was written — never the token.
async fn bootstrap_admin(store: &Store, auth: &crate::config::AuthConfig) -> anyhow::Result<()> {
    let from_env = auth
        .admin_token
        .as_ref()
        .map(|t| t.expose())
        .filter(|t| !t.is_empty());
    let file = std::path::Path::new(&auth.admin_token_file);
    match crate::api::tokens::ensure_admin(store, from_env, file).await? {
        crate::api::tokens::Bootstrap::Written(path) => tracing::warn!(
            file = %path.display(),
            "no admin token existed: one was made and written to this file (readable by its owner only); \
             use it to make the tokens people and systems need (carehub token create), then keep it safe or revoke it"
        ),
        crate::api::tokens::Bootstrap::FromEnvironment => {
            tracing::info!("the admin token given by api.auth.admin_token was stored")
        }
        crate::api::tokens::Bootstrap::Present => {}
    }
    Ok(())
}

/// Runs until SIGINT or SIGTERM, then shuts down gracefully.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let hub = start(settings).await?;
    wait_for_signal().await;
    tracing::info!("shutting down: no new connections; finishing messages in flight");
    hub.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// `carehub pull NAME --once`: one run of a FHIR pull connector now, through the same store,
/// pipeline and run history as the hub's schedule (do not run it beside a hub using the same
/// connector: runs of one connector must not overlap).
pub async fn pull_once(settings: Settings, name: &str) -> anyhow::Result<crate::sources::fhir::RunSummary> {
    let Some(ConnectorConfig::Fhir(cfg)) = settings.connectors.iter().find(|c| c.name() == name) else {
        let pulls: Vec<&str> = settings
            .connectors
            .iter()
            .filter(|c| matches!(c, ConnectorConfig::Fhir(_)))
            .map(|c| c.name())
            .collect();
        anyhow::bail!(
            "no FHIR pull connector named {name} (configured: {})",
            if pulls.is_empty() {
                "none".to_string()
            } else {
                pulls.join(", ")
            }
        );
    };
    let store = open_for_ingest(&settings).await?;
    let ctx = connector_context(&settings, &ConnectorConfig::Fhir(cfg.clone()))?;
    let (tx, writer) = spawn_writer(
        store.clone(),
        settings.hub.pipeline.max_batch,
        settings.hub.pipeline.queue_depth,
    );
    let ingest = Ingest::new(tx, Arc::new(settings.mappings.clone()))
        .with_store(store.clone())
        .with_matching(settings.hub.identity.matching);
    let puller = crate::sources::fhir::Puller::new(cfg.clone(), ctx, ingest, store)?;
    let summary = puller.run_once().await;
    drop(puller); // the writer ends once every handle is gone
    let _ = writer.await;
    Ok(summary?)
}
