//! FHIR R4 documents into the pipeline: a resource, a Bundle or NDJSON becomes one message-log
//! row per resource, mapped by resource type with the references between entries resolved,
//! and committed before the caller answers.
//!
//! A `transaction` Bundle is all or nothing: when one entry cannot be mapped, every entry is
//! kept as refused (nothing is applied) and the answer says which entry failed. Other Bundles
//! are taken entry by entry.

use serde_json::Value;

use super::{ConnectorContext, Ingest, refused_record};
use crate::mapping::{FhirEntry, MappedEntry, fhir_entries, map_entries};
use crate::store::{Applied, Disposition, MessageStatus, NewRecord, StoreError};

/// What became of one resource of a document.
#[derive(Debug)]
pub struct FhirEntryOutcome {
    /// Its position in the document.
    pub index: usize,
    pub resource_type: String,
    /// `processed`, `duplicate`, `unmapped` or `error`, once stored.
    pub applied: Option<Applied>,
    /// Why it was refused (mapping failure, or a failed sibling in a transaction).
    pub error: Option<String>,
    /// Warnings of its mapping.
    pub warnings: Vec<String>,
}

/// A resource its source deleted (a history entry without a resource).
#[derive(Debug, Clone)]
pub struct Deletion {
    /// `Type/id`.
    pub resource: String,
    /// When it was deleted, as the source says (`response.lastModified`), for its control id.
    pub at: String,
    /// The history entry, kept as the message's bytes.
    pub entry: Value,
}

/// A pull page mapped into records (see [`Ingest::prepare_page`]).
pub struct PreparedPage {
    records: Vec<NewRecord>,
    merges: Vec<Option<crate::model::MergeInstruction>>,
}

impl PreparedPage {
    /// Whether the page's resources ask for merges. Those are carried out once the page is
    /// stored; a puller waits for that before it submits the next page, whose records may
    /// link to the persons they change.
    pub fn has_merges(&self) -> bool {
        self.merges.iter().any(Option::is_some)
    }
}

/// The pages of one pull, written in order (see [`Ingest::submit_page`]).
pub type PageChain = super::writer::Chain;

/// A page in the writer's hands.
pub struct SubmittedPage {
    reply: PageReply,
    merges: Vec<Option<crate::model::MergeInstruction>>,
}

impl SubmittedPage {
    /// Waits until the page is stored (on disk), counts its outcomes and carries out the
    /// merges its resources asked for.
    pub async fn finish(self, ingest: &Ingest, ctx: &ConnectorContext) -> Result<PageCounts, StoreError> {
        let mut counts = PageCounts::default();
        let applied = match self.reply {
            PageReply::Empty => return Ok(counts),
            PageReply::Waiting(rx) => rx.await.unwrap_or(Err(StoreError::WriterGone))?,
            PageReply::Gone => return Err(StoreError::WriterGone),
        };
        for (applied, merge) in applied.iter().zip(self.merges) {
            match applied.status {
                MessageStatus::Processed => counts.processed += 1,
                MessageStatus::Duplicate => counts.duplicates += 1,
                MessageStatus::Unmapped => counts.unmapped += 1,
                _ => counts.errors += 1,
            }
            if let Some(merge) = merge
                && applied.status == MessageStatus::Processed
            {
                ingest.carry_out_merge(ctx, applied, &merge).await;
            }
        }
        Ok(counts)
    }
}

enum PageReply {
    /// The page had no records.
    Empty,
    /// The writer is gone.
    Gone,
    Waiting(tokio::sync::oneshot::Receiver<Result<Vec<crate::store::Applied>, StoreError>>),
}

/// What became of the resources of a pulled page.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PageCounts {
    pub processed: u64,
    pub duplicates: u64,
    pub unmapped: u64,
    pub errors: u64,
}

/// What became of a posted document.
#[derive(Debug)]
pub enum FhirOutcome {
    /// The body was no FHIR document; it is kept as refused (its message id, when stored).
    Unreadable { reason: String, message_id: Option<i64> },
    /// More resources than the connector takes; nothing was read.
    TooLarge { resources: usize, limit: usize },
    /// Every resource, stored. `transaction_failed` names the entry that failed a transaction.
    Stored {
        bundle_type: Option<String>,
        entries: Vec<FhirEntryOutcome>,
        transaction_failed: Option<usize>,
    },
    /// The store did not answer; nothing can be promised (the sender should retry).
    StoreUnavailable,
}

impl Ingest {
    /// Takes a FHIR document posted by a sender: stores every resource, maps and applies it,
    /// and returns once all of them are committed.
    pub async fn submit_fhir(
        &self,
        ctx: &ConnectorContext,
        body: Vec<u8>,
        origin: Option<String>,
        max_resources: usize,
    ) -> FhirOutcome {
        let text = match std::str::from_utf8(&body) {
            Ok(t) => t.to_string(),
            Err(_) => {
                return self
                    .unreadable(ctx, body, origin, "the body is not UTF-8 text".into())
                    .await;
            }
        };
        let (entries, _single) = match fhir_entries(&text) {
            Ok(read) => read,
            Err(e) => {
                return self
                    .unreadable(ctx, body, origin, format!("not a FHIR JSON document: {e}"))
                    .await;
            }
        };
        if let Some(bad) = entries.iter().position(|e| e.resource_type().is_empty()) {
            let reason = format!("entry {} is not a FHIR resource (no resourceType)", bad + 1);
            return self.unreadable(ctx, body, origin, reason).await;
        }
        if entries.is_empty() {
            return self
                .unreadable(ctx, body, origin, "the document holds no resource".into())
                .await;
        }
        if entries.len() > max_resources {
            return FhirOutcome::TooLarge {
                resources: entries.len(),
                limit: max_resources,
            };
        }
        let document: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        // Every entry of a Bundle gets an answer in its place: one without a resource (a
        // DELETE, a GET, a conditional request) cannot be answered, so the document is refused
        // whole rather than answered out of step.
        if let Some(bad) = document["entry"]
            .as_array()
            .and_then(|es| es.iter().position(|e| !e["resource"].is_object()))
        {
            let reason = format!(
                "entry {} has no resource (DELETE, GET and conditional requests are not taken)",
                bad + 1
            );
            return self.unreadable(ctx, body, origin, reason).await;
        }
        let bundle_type = (document["resourceType"] == "Bundle")
            .then(|| document["type"].as_str().map(str::to_string))
            .flatten();
        let fixed = ctx.mapping.as_deref().and_then(|name| self.mappings.get(name));
        let mapped = map_entries(&entries, &self.mappings, fixed, &ctx.transform_env);
        let by_index = entry_index(&mapped, entries.len());
        let transaction_failed = (bundle_type.as_deref() == Some("transaction"))
            .then(|| mapped.iter().find(|m| m.result.is_err()).map(|m| m.index))
            .flatten();

        // The document is one unit: every resource of it commits in one transaction, or none
        // does. A store failure answers 503: send again (a commit whose sync failed is then
        // recognised as already received).
        let mut records = Vec::with_capacity(entries.len());
        let mut extras = Vec::with_capacity(entries.len());
        for (index, entry) in entries.iter().enumerate() {
            let found = by_index[index];
            let (mut record, error, mut warnings, merge) =
                self.fhir_record(ctx, entry, found, origin.clone(), transaction_failed);
            // What a sender pushes is also read as the typed FHIR model; what it finds is a
            // warning on the message and in the answer, not a refusal (the mapping decides).
            if let (Err(problem), Disposition::Apply { warnings: kept, .. }) = (
                carehub_fhir_model::check_resource(&entry.resource),
                &mut record.disposition,
            ) {
                let warning = format!("FHIR R4B model: {problem}");
                kept.push(warning.clone());
                warnings.push(warning);
            }
            records.push(record);
            extras.push((index, entry.resource_type().to_string(), error, warnings, merge));
        }
        let committed = match self.enqueue_unit(records, None).await {
            Some(rx) => rx.await.unwrap_or(Err(StoreError::WriterGone)),
            None => Err(StoreError::WriterGone),
        };
        let applied_all = match committed {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(connector = %ctx.name, error = %e, "could not store a FHIR document; the sender is told to retry");
                return FhirOutcome::StoreUnavailable;
            }
        };
        let mut out = Vec::with_capacity(extras.len());
        for ((index, resource_type, error, warnings, merge), applied) in extras.into_iter().zip(applied_all) {
            if let Some(merge) = merge
                && applied.status == MessageStatus::Processed
            {
                self.carry_out_merge(ctx, &applied, &merge).await;
            }
            out.push(FhirEntryOutcome {
                index,
                resource_type,
                applied: Some(applied),
                error,
                warnings,
            });
        }
        FhirOutcome::Stored {
            bundle_type,
            entries: out,
            transaction_failed,
        }
    }

    /// One page of a pull mapped into records (references within the page followed), ready
    /// for [`Self::store_page`]; `cursor` is committed with the page's last record. A puller
    /// maps the next page while the writer stores this one.
    pub fn prepare_page(
        &self,
        ctx: &ConnectorContext,
        entries: Vec<FhirEntry>,
        deletions: Vec<Deletion>,
        origin: Option<String>,
        cursor: Option<crate::store::CursorUpdate>,
    ) -> PreparedPage {
        let fixed = ctx.mapping.as_deref().and_then(|name| self.mappings.get(name));
        let mapped = map_entries(&entries, &self.mappings, fixed, &ctx.transform_env);
        let by_index = entry_index(&mapped, entries.len());
        let mut records = Vec::with_capacity(entries.len() + deletions.len());
        for (index, entry) in entries.iter().enumerate() {
            let found = by_index[index];
            let (record, _, _, merge) = self.fhir_record(ctx, entry, found, origin.clone(), None);
            records.push((record, merge));
        }
        for d in deletions {
            let raw = serde_json::to_vec(&d.entry).unwrap_or_default();
            let mut record = json_record(ctx, raw, origin.clone(), String::new());
            record.message_type = d.resource.split('/').next().map(str::to_string);
            record.sender = ctx.source_system.clone().or_else(|| Some(ctx.name.clone()));
            // The same deletion read again is a duplicate.
            record.control_id = Some(format!("{}/_deleted/{}", d.resource, d.at));
            record.disposition = Disposition::Delete { resource: d.resource };
            records.push((record, None));
        }
        // The page is one unit: its records and its cursor commit in one transaction, or none
        // of them does (the run fails and the next one reads the page again).
        let merges: Vec<Option<crate::model::MergeInstruction>> =
            records.iter_mut().map(|(_, m)| m.take()).collect();
        let mut records: Vec<NewRecord> = records.into_iter().map(|(r, _)| r).collect();
        if let Some(last) = records.last_mut() {
            last.cursor = cursor;
        }
        // Here, while the writer stores the page before (store_page would do it later).
        self.prepare_match(&mut records);
        PreparedPage { records, merges }
    }

    /// Stores a prepared page in one transaction (its records and its cursor, or none of
    /// them) and carries out the merges its resources asked for.
    pub async fn store_page(
        &self,
        ctx: &ConnectorContext,
        page: PreparedPage,
    ) -> Result<PageCounts, StoreError> {
        self.submit_page(page, None).await.finish(self, ctx).await
    }

    /// Hands a prepared page to the writer and returns without waiting for it, so that the
    /// next page can wait its turn in the writer's queue while this one is written. The pages
    /// of one `chain` are written in the order submitted; once one fails, the later ones are
    /// refused unwritten (their cursors never pass the failed records).
    pub async fn submit_page(&self, page: PreparedPage, chain: Option<&PageChain>) -> SubmittedPage {
        let PreparedPage { records, merges } = page;
        let reply = if records.is_empty() {
            PageReply::Empty
        } else {
            match self.enqueue_unit(records, chain.cloned()).await {
                Some(rx) => PageReply::Waiting(rx),
                None => PageReply::Gone,
            }
        };
        SubmittedPage { reply, merges }
    }

    /// A body that is no document: kept as refused, with the reason.
    async fn unreadable(
        &self,
        ctx: &ConnectorContext,
        body: Vec<u8>,
        origin: Option<String>,
        reason: String,
    ) -> FhirOutcome {
        tracing::warn!(connector = %ctx.name, "a posted FHIR document could not be read; it is kept as refused");
        let record = json_record(ctx, body, origin, reason.clone());
        match self.commit(record).await {
            Ok(applied) => FhirOutcome::Unreadable {
                reason,
                message_id: Some(applied.message_id),
            },
            Err(_) => FhirOutcome::StoreUnavailable,
        }
    }

    /// One resource as a record to store: applied with its mapping's output, unmapped, or
    /// refused with the reason.
    #[allow(clippy::type_complexity)]
    pub(super) fn fhir_record(
        &self,
        ctx: &ConnectorContext,
        entry: &FhirEntry,
        mapped: Option<&MappedEntry<'_>>,
        origin: Option<String>,
        transaction_failed: Option<usize>,
    ) -> (
        NewRecord,
        Option<String>,
        Vec<String>,
        Option<crate::model::MergeInstruction>,
    ) {
        let raw = serde_json::to_vec(&entry.resource).unwrap_or_default();
        let resource_type = entry.resource_type().to_string();
        let mut record = json_record(ctx, raw, origin, String::new());
        record.message_type = Some(resource_type.clone());
        record.sender = ctx.source_system.clone().or_else(|| Some(ctx.name.clone()));
        // A resource's identity in its sender: Type/id and its version, else its fullUrl. The
        // same version sent again is a duplicate; a new version is applied.
        record.control_id = match (
            entry.resource["id"].as_str(),
            entry.resource["meta"]["versionId"].as_str(),
        ) {
            (Some(id), Some(v)) => Some(format!("{resource_type}/{id}/_history/{v}")),
            (Some(id), None) => Some(format!("{resource_type}/{id}")),
            (None, _) => entry.full_url.clone(),
        };
        let source_system = ctx.source_system.clone().unwrap_or_else(|| ctx.name.clone());
        let Some(m) = mapped else {
            record.disposition = Disposition::Unmapped {
                reason: format!("no mapping for resource type {resource_type}"),
            };
            return (record, None, Vec::new(), None);
        };
        if let Some(failed) = transaction_failed {
            let reason = match &m.result {
                Err(e) => e.to_string(),
                Ok(_) => format!(
                    "not applied: entry {} of this transaction could not be mapped, and a transaction is all or nothing",
                    failed + 1
                ),
            };
            record.disposition = Disposition::Error {
                reason: reason.clone(),
            };
            return (record, Some(reason), Vec::new(), None);
        }
        match &m.result {
            Ok(out) => {
                record.disposition = Disposition::Apply {
                    mapping: m.mapping.name.clone(),
                    source_system,
                    patch: out.person.clone(),
                    records: out.records.clone(),
                    merge: out.merge.clone(),
                    warnings: out.warnings.clone(),
                };
                (record, None, out.warnings.clone(), out.merge.clone())
            }
            Err(e) => {
                tracing::warn!(connector = %ctx.name, mapping = %e.mapping, rule = %e.rule, "a FHIR resource could not be mapped");
                let reason = e.to_string();
                record.disposition = Disposition::Error {
                    reason: reason.clone(),
                };
                (record, Some(reason), Vec::new(), None)
            }
        }
    }
}

/// A FHIR JSON message of the log (kept as refused until it is given a disposition).
fn json_record(ctx: &ConnectorContext, raw: Vec<u8>, origin: Option<String>, reason: String) -> NewRecord {
    let mut record = refused_record(ctx, raw, origin, reason);
    record.charset = Some("UNICODE UTF-8".into());
    record
}

/// The mapped entries by their position in the document (`None`: no mapping read it).
fn entry_index<'a, 'm>(mapped: &'a [MappedEntry<'m>], entries: usize) -> Vec<Option<&'a MappedEntry<'m>>> {
    let mut by_index = vec![None; entries];
    for m in mapped {
        by_index[m.index] = Some(m);
    }
    by_index
}
