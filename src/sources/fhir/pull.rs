//! One pull run, and the schedule that starts them.
//!
//! For each configured resource type, in order: search with `_lastUpdated=ge<cursor>` (the
//! resources at exactly the cursor's instant are read again and recognised as duplicates, so a
//! page boundary between two resources of the same instant loses nothing), `_sort=_lastUpdated`
//! and `_count`, then follow the Bundle's `next` links (relative or absolute). Each page goes
//! through the pipeline and its new cursor — the latest `meta.lastUpdated` read — is committed
//! with the page's last record: a crash re-reads at most one page and changes nothing.
//! Runs of one connector never overlap: the schedule waits for a run to end.

use std::collections::BTreeMap;

use serde_json::Value;

use super::client::{FhirClient, PullError, shown};
use super::config::FhirConfig;
use crate::mapping::FhirEntry;
use crate::pipeline::{ConnectorContext, Ingest, PageCounts, PreparedPage, SubmittedPage};
use crate::store::{CursorUpdate, Store, StoreError};

/// A page in the writer's hands, with the cursor it moves its type to.
type InFlight = (SubmittedPage, Option<String>);

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunSummary {
    pub pages: u64,
    pub resources: u64,
    pub processed: u64,
    pub duplicates: u64,
    pub unmapped: u64,
    pub errors: u64,
    /// Resource type → cursor, before and after.
    pub cursors_before: BTreeMap<String, String>,
    pub cursors_after: BTreeMap<String, String>,
    /// Why the run stopped early, when it did.
    pub failure: Option<String>,
}

/// A `type: fhir` connector, ready to run.
pub struct Puller {
    pub cfg: FhirConfig,
    pub ctx: ConnectorContext,
    pub ingest: Ingest,
    pub store: Store,
    client: FhirClient,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Pull(#[from] PullError),
    #[error("the store: {0}")]
    Store(#[from] StoreError),
}

impl Puller {
    pub fn new(
        cfg: FhirConfig,
        ctx: ConnectorContext,
        ingest: Ingest,
        store: Store,
    ) -> Result<Puller, reqwest::Error> {
        let client = FhirClient::new(&cfg)?;
        Ok(Puller {
            cfg,
            ctx,
            ingest,
            store,
            client,
        })
    }

    /// One run: every resource type from its cursor to the end. The run, its counts and its
    /// cursors are recorded; a failure marks the connector degraded (the next run resumes from
    /// the cursor), a success marks it running.
    pub async fn run_once(&self) -> Result<RunSummary, StoreError> {
        let name = &self.cfg.name;
        let before: BTreeMap<String, String> = self.store.cursors(name).await?.into_iter().collect();
        let run = self
            .store
            .start_run(name, &serde_json::to_value(&before).unwrap_or_default())
            .await?;
        let mut summary = RunSummary {
            cursors_before: before.clone(),
            cursors_after: before,
            ..Default::default()
        };
        for query in &self.cfg.resources {
            if let Err(e) = self.pull_type(run, query, &mut summary).await {
                match e {
                    RunError::Store(e) => {
                        self.finish(run, &summary, "failed", Some(&format!("the store: {e}")))
                            .await?;
                        return Err(e);
                    }
                    RunError::Pull(e) => {
                        let why = format!("{}: {e}", query.resource_type);
                        tracing::warn!(connector = %name, reason = %why, "a pull run failed; the next run resumes from the cursor");
                        summary.failure = Some(why.clone());
                        self.finish(run, &summary, "failed", Some(&why)).await?;
                        self.store
                            .set_connector_state(
                                name,
                                "fhir",
                                "degraded",
                                Some(&format!("last run failed: {why}")),
                            )
                            .await?;
                        return Ok(summary);
                    }
                }
            }
        }
        self.finish(run, &summary, "ok", None).await?;
        let detail = format!(
            "last run ok: {} resources in {} pages ({} new, {} already had)",
            summary.resources, summary.pages, summary.processed, summary.duplicates
        );
        self.store
            .set_connector_state(name, "fhir", "running", Some(&detail))
            .await?;
        Ok(summary)
    }

    /// Waits until a page the writer holds is stored, and counts it.
    async fn finish_page(&self, t: &str, summary: &mut RunSummary, page: InFlight) -> Result<(), StoreError> {
        let (page, cursor) = page;
        let counts = page.finish(&self.ingest, &self.ctx).await?;
        self.count_page(t, summary, Some((counts, cursor)));
        Ok(())
    }

    /// [`Self::finish_page`] when the run is ending on an error: should the page fail too,
    /// that is logged, and the run's error stays the first.
    async fn settle_in_flight(&self, t: &str, summary: &mut RunSummary, page: Option<InFlight>) {
        let Some(page) = page else { return };
        if let Err(e) = self.finish_page(t, summary, page).await {
            tracing::warn!(connector = %self.cfg.name, resource_type = t, error = %e, "a page queued behind the failure was not stored");
        }
    }

    /// Counts a stored page into the run's summary, and moves the type's cursor to it.
    fn count_page(&self, t: &str, summary: &mut RunSummary, stored: Option<(PageCounts, Option<String>)>) {
        if let Some((counts, cursor)) = stored {
            summary.processed += counts.processed;
            summary.duplicates += counts.duplicates;
            summary.unmapped += counts.unmapped;
            summary.errors += counts.errors;
            if let Some(c) = cursor {
                summary.cursors_after.insert(t.to_string(), c);
            }
        }
    }

    async fn finish(
        &self,
        run: i64,
        s: &RunSummary,
        outcome: &str,
        detail: Option<&str>,
    ) -> Result<(), StoreError> {
        self.store
            .metrics()
            .pull_run(&self.cfg.name, outcome, s.pages, s.resources, s.errors);
        self.store
            .update_run(
                run,
                outcome,
                s.pages as i64,
                s.resources as i64,
                s.errors as i64,
                &serde_json::to_value(&s.cursors_after).unwrap_or_default(),
                detail,
            )
            .await
    }

    async fn pull_type(
        &self,
        run: i64,
        query: &super::config::ResourceQuery,
        summary: &mut RunSummary,
    ) -> Result<(), RunError> {
        let base = self.cfg.base_url.trim_end_matches('/');
        let t = &query.resource_type;
        let history = query.history;
        let mut url = if history {
            let mut u = format!("{base}/{t}/_history?_count={}", self.cfg.page_size);
            if let Some(c) = summary.cursors_after.get(t) {
                u.push_str(&format!("&_since={}", encode(c)));
            }
            u
        } else {
            let mut u = format!("{base}/{t}?_sort=_lastUpdated&_count={}", self.cfg.page_size);
            if let Some(c) = summary.cursors_after.get(t) {
                u.push_str(&format!("&_lastUpdated=ge{}", encode(c)));
            }
            u
        };
        if let Some(p) = &query.params {
            url.push('&');
            url.push_str(p);
        }
        let mut state = PageState {
            seen_pages: std::collections::HashSet::from([url.clone()]),
            history_max: None,
            newest_seen: std::collections::HashSet::new(),
            latest: summary
                .cursors_after
                .get(t)
                .and_then(|c| c.parse::<jiff::Timestamp>().ok()),
        };
        let bundle = self.client.get_bundle(&url).await?;
        let mut reported = std::time::Instant::now();
        let mut page = self.read_page(&mut state, summary, query, bundle, url)?;
        // The writer stores one page while the next is fetched, read and mapped: the server,
        // the mapping and the store work at the same time. The next page is handed over as soon
        // as it is ready and waits in the writer's queue, so that the writer goes on with it
        // while the disk syncs the one before. The pages form a chain: should one fail, the
        // writer refuses the later ones unwritten, so a cursor never passes records that failed.
        let chain = crate::pipeline::PageChain::default();
        let mut in_flight: Option<InFlight> = None;
        loop {
            let Page {
                next,
                cursor,
                prepared,
                ..
            } = page;
            let waits_for_merges = prepared.as_ref().is_some_and(PreparedPage::has_merges);
            let submitted = match prepared {
                Some(p) => Some(self.ingest.submit_page(p, Some(&chain)).await),
                None => None,
            };
            let earlier = in_flight.take();
            let stored = async {
                match earlier {
                    Some((page, cursor)) => page
                        .finish(&self.ingest, &self.ctx)
                        .await
                        .map(|c| Some((c, cursor))),
                    None => Ok(None),
                }
            };
            let upcoming = async {
                match &next {
                    Some(n) => {
                        let bundle = self.client.get_bundle(n).await?;
                        self.read_page(&mut state, summary, query, bundle, n.clone())
                            .map(Some)
                    }
                    None => Ok(None),
                }
            };
            let (stored, upcoming) = tokio::join!(stored, upcoming);
            let submitted = submitted.map(|s| (s, cursor));
            match stored {
                Ok(stored) => self.count_page(t, summary, stored),
                Err(e) => {
                    // The page after it is refused by the writer, or (when only the sync of
                    // the failed one went wrong) stored: either way its outcome is counted.
                    self.settle_in_flight(t, summary, submitted).await;
                    return Err(e.into());
                }
            }
            in_flight = submitted;
            if waits_for_merges && let Some(page) = in_flight.take() {
                self.finish_page(t, summary, page).await?;
            }
            // Progress for ops (`carehub status`, the API) about once a second, not per page:
            // the write would hold the next page back from the writer.
            if reported.elapsed() >= PROGRESS_EVERY {
                reported = std::time::Instant::now();
                if let Err(e) = self.finish(run, summary, "running", None).await {
                    self.settle_in_flight(t, summary, in_flight.take()).await;
                    return Err(e.into());
                }
            }
            let upcoming = match upcoming {
                Ok(upcoming) => upcoming,
                Err(e) => {
                    // The page in the writer's hands is stored all the same: the run's history
                    // counts it, and its cursor, before the run ends on the error.
                    self.settle_in_flight(t, summary, in_flight.take()).await;
                    return Err(e);
                }
            };
            match upcoming {
                Some(p) => page = p,
                None => break,
            }
        }
        if let Some(page) = in_flight {
            self.finish_page(t, summary, page).await?;
        }
        let history_max = state.history_max;
        if let Some((ts, text)) = history_max
            && summary
                .cursors_after
                .get(t)
                .and_then(|c| c.parse::<jiff::Timestamp>().ok())
                .is_none_or(|cur| ts > cur)
        {
            self.store
                .set_cursor(&CursorUpdate {
                    connector: self.cfg.name.clone(),
                    resource_type: t.clone(),
                    value: text.clone(),
                })
                .await?;
            summary.cursors_after.insert(t.clone(), text);
        }
        Ok(())
    }
}

/// Where a resource type's pages stand within a run.
struct PageState {
    seen_pages: std::collections::HashSet<String>,
    /// History: the newest change read (the cursor moves to it after the last page), and the
    /// resources whose newest version was already taken.
    history_max: Option<(jiff::Timestamp, String)>,
    newest_seen: std::collections::HashSet<String>,
    /// The latest cursor of the pages read so far (stored or on their way).
    latest: Option<jiff::Timestamp>,
}

/// A page read and mapped, with where it leads.
struct Page {
    next: Option<String>,
    /// The cursor its records commit with.
    cursor: Option<String>,
    prepared: Option<crate::pipeline::PreparedPage>,
}

impl Puller {
    /// Reads a fetched page: its resources and deletions (for history, only the newest version
    /// of each), its cursor, its next link (checked), and maps it for the writer.
    fn read_page(
        &self,
        state: &mut PageState,
        summary: &mut RunSummary,
        query: &super::config::ResourceQuery,
        bundle: Value,
        url: String,
    ) -> Result<Page, RunError> {
        let t = &query.resource_type;
        let history = query.history;
        let mut entries = page_entries(&bundle);
        let mut deletions = page_deletions(&bundle);
        if history {
            let when = |e: &FhirEntry| {
                e.resource["meta"]["lastUpdated"]
                    .as_str()
                    .and_then(|s| s.parse::<jiff::Timestamp>().ok())
            };
            entries.sort_by_key(|e| std::cmp::Reverse(when(e)));
            let key = |e: &FhirEntry| {
                format!(
                    "{}/{}",
                    e.resource_type(),
                    e.resource["id"].as_str().unwrap_or("")
                )
            };
            // Deletions and versions of one resource on one page: the later one wins.
            let mut page: Vec<(Option<jiff::Timestamp>, String, bool)> = entries
                .iter()
                .map(|e| (when(e), key(e), false))
                .chain(
                    deletions
                        .iter()
                        .map(|d| (d.at.parse().ok(), d.resource.clone(), true)),
                )
                .collect();
            page.sort_by_key(|(ts, _, _)| std::cmp::Reverse(*ts));
            let mut keep: std::collections::HashMap<String, bool> = std::collections::HashMap::new();
            for (_, k, is_deletion) in page {
                if !state.newest_seen.contains(&k) {
                    keep.entry(k).or_insert(is_deletion);
                }
            }
            let mut taken = std::collections::HashSet::new();
            entries.retain(|e| keep.get(&key(e)) == Some(&false) && taken.insert(key(e)));
            deletions.retain(|d| keep.get(&d.resource) == Some(&true) && taken.insert(d.resource.clone()));
            state.newest_seen.extend(keep.into_keys());
        }
        // Only the matches move the cursor: an included resource of the same type may be
        // later than matches still to come.
        let matches = match_times(&bundle, t);
        let page_max = matches
            .iter()
            .map(String::as_str)
            .chain(deletions.iter().map(|d| d.at.as_str()))
            .filter_map(|s| s.parse::<jiff::Timestamp>().ok().map(|ts| (ts, s.to_string())))
            .max_by_key(|(ts, _)| *ts);
        let page_max = if history {
            if page_max
                .as_ref()
                .is_some_and(|(ts, _)| state.history_max.as_ref().is_none_or(|(m, _)| ts > m))
            {
                state.history_max = page_max;
            }
            None
        } else {
            page_max
        };
        let cursor = match (page_max, state.latest) {
            (Some((ts, text)), Some(cur)) if ts > cur => Some((ts, text)),
            (Some(max), None) => Some(max),
            _ => None,
        };
        if let Some((ts, _)) = &cursor {
            state.latest = Some(*ts);
        }
        summary.pages += 1;
        summary.resources += (entries.len() + deletions.len()) as u64;
        let next = next_link(&bundle, &url);
        if let Some(n) = &next {
            // Credentials go to the server they were configured for, and nowhere else.
            let why = if !same_origin(n, &self.cfg.base_url) {
                Some("its next link points at another server")
            } else if !state.seen_pages.insert(n.clone()) {
                // A server that serves a page again, or pages without end: the run fails
                // (the connector shows degraded) rather than looping or stalling as "ok".
                Some("its next link repeats an earlier page")
            } else if entries.is_empty() && deletions.is_empty() {
                Some("an empty page has a next link")
            } else if state.seen_pages.len() > MAX_PAGES_PER_TYPE {
                Some("more pages than one run reads (100,000)")
            } else {
                None
            };
            if let Some(why) = why {
                return Err(RunError::Pull(PullError::Paging {
                    url: shown(&url),
                    reason: format!("{why}; the run stops there"),
                }));
            }
        }
        let cursor = cursor.map(|(_, text)| text);
        let prepared = (!entries.is_empty() || !deletions.is_empty()).then(|| {
            let update = cursor.clone().map(|value| CursorUpdate {
                connector: self.cfg.name.clone(),
                resource_type: t.clone(),
                value,
            });
            self.ingest
                .prepare_page(&self.ctx, entries, deletions, Some(shown(&url)), update)
        });
        Ok(Page {
            next,
            cursor,
            prepared,
        })
    }
}

/// How often a run in progress records how far it got.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Most pages one run reads for one resource type.
const MAX_PAGES_PER_TYPE: usize = 100_000;

/// Whether `url` is on the same scheme, host and port as `base`.
fn same_origin(url: &str, base: &str) -> bool {
    match (reqwest::Url::parse(url), reqwest::Url::parse(base)) {
        (Ok(a), Ok(b)) => {
            a.scheme() == b.scheme()
                && a.host_str() == b.host_str()
                && a.port_or_known_default() == b.port_or_known_default()
        }
        _ => false,
    }
}

/// A cursor in a URL: `+` of an offset must not become a space.
fn encode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}

/// The resources of a search page (matches and includes; an OperationOutcome the server adds
/// is not a record).
fn page_entries(bundle: &Value) -> Vec<FhirEntry> {
    bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["search"]["mode"] != "outcome")
        .filter_map(|e| {
            let resource = e.get("resource").filter(|r| r.is_object())?.clone();
            Some(FhirEntry {
                full_url: e["fullUrl"].as_str().map(str::to_string),
                resource,
            })
        })
        .collect()
}

/// `meta.lastUpdated` of the page's matches of type `t` (`search.mode` match, or none said).
fn match_times(bundle: &Value, t: &str) -> Vec<String> {
    bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["search"]["mode"].is_null() || e["search"]["mode"] == "match")
        .filter(|e| e["resource"]["resourceType"] == t)
        .filter_map(|e| e["resource"]["meta"]["lastUpdated"].as_str().map(str::to_string))
        .collect()
}

/// The deletions of a history page: entries without a resource whose request is a DELETE (or
/// whose response is 410 Gone), as `Type/id`.
fn page_deletions(bundle: &Value) -> Vec<crate::pipeline::Deletion> {
    bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| !e["resource"].is_object())
        .filter(|e| {
            e["request"]["method"] == "DELETE"
                || e["response"]["status"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("410"))
        })
        .filter_map(|e| {
            let url = e["request"]["url"].as_str()?;
            // `Type/id`, `Type/id/_history/3` or an absolute URL: the Type/id part.
            let path = url.split(['?', '#']).next()?;
            let path = path.split("/_history").next()?;
            let mut parts = path.rsplit('/');
            let (id, rtype) = (parts.next()?, parts.next()?);
            let at = e["response"]["lastModified"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| jiff::Timestamp::now().to_string());
            Some(crate::pipeline::Deletion {
                resource: format!("{rtype}/{id}"),
                at,
                entry: e.clone(),
            })
        })
        .collect()
}

/// The `next` link, made absolute against the page's own URL.
fn next_link(bundle: &Value, current: &str) -> Option<String> {
    let href = bundle["link"]
        .as_array()?
        .iter()
        .find(|l| l["relation"] == "next")?["url"]
        .as_str()?;
    let base = reqwest::Url::parse(current).ok()?;
    base.join(href).ok().map(|u| u.to_string())
}

/// Runs the connector on its schedule until `shutdown`.
pub async fn serve(puller: Puller, tz: jiff::tz::TimeZone, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let name = puller.cfg.name.clone();
    let Ok(cron) = super::schedule::parse(&puller.cfg.schedule) else {
        return;
    };
    loop {
        let Some(next) = super::schedule::next_after(&cron, jiff::Timestamp::now(), &tz) else {
            tracing::error!(connector = %name, "the schedule names no future time; the connector stops");
            return;
        };
        let wait = next.timestamp().duration_since(jiff::Timestamp::now());
        let wait = std::time::Duration::try_from(wait).unwrap_or_default();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        // A run is finished before the next one is considered: runs never overlap, and a stop
        // lets the current page commit (the run is recorded as interrupted at the next start).
        tokio::select! {
            r = puller.run_once() => {
                if let Err(e) = r {
                    tracing::error!(connector = %name, error = %e, "a pull run could not be recorded");
                }
            }
            _ = shutdown.wait_for(|s| *s) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn next_links_may_be_relative_or_absolute() {
        let page = "https://ehr.example.org/fhir/Patient?_count=2";
        let rel = json!({"link": [{"relation": "self", "url": "x"}, {"relation": "next", "url": "Patient?_page=2"}]});
        assert_eq!(
            next_link(&rel, page).as_deref(),
            Some("https://ehr.example.org/fhir/Patient?_page=2")
        );
        let abs = json!({"link": [{"relation": "next", "url": "https://other.example.org/fhir/p3"}]});
        assert_eq!(
            next_link(&abs, page).as_deref(),
            Some("https://other.example.org/fhir/p3")
        );
        assert_eq!(next_link(&json!({"link": []}), page), None);
        // A run refuses to follow a link to another server with its credentials.
        assert!(!same_origin(
            "https://other.example.org/fhir/p3",
            "https://ehr.example.org/fhir"
        ));
        assert!(!same_origin(
            "http://ehr.example.org/fhir/p3",
            "https://ehr.example.org/fhir"
        ));
        assert!(same_origin(
            "https://ehr.example.org:443/fhir/Patient?p=2",
            "https://ehr.example.org/fhir"
        ));
    }

    #[test]
    fn cursors_keep_their_offset_in_a_url() {
        assert_eq!(
            encode("2024-01-05T08:30:00+07:00"),
            "2024-01-05T08%3A30%3A00%2B07%3A00"
        );
    }
}
