//! Stored messages read again (`carehub reprocess`): the same reading, mapping and writer as a
//! message arriving, except that the record rewrites its own message-log row.
//!
//! A stored HL7 v2 message goes through [`Ingest::prepare`] again, a stored FHIR resource
//! through the same mapping of one resource as a push or a pull; the record keeps the row's
//! id, bytes, origin and receive time, and the writer applies it with the same dedupe,
//! identity matching and events as any other (`store::batch`). Nothing here decides which
//! messages to read again: that is `reprocess/`.

use sha2::{Digest, Sha256};

use super::{ConnectorContext, Ingest, hex_digest};
use crate::mapping::{fhir_entries, map_entries};
use crate::store::{Applied, Disposition, MessageStatus, NewRecord, Reprocess, StoreError, StoredMessage};

/// Why a stored message cannot be read again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotReread {
    /// Retention emptied its body.
    Pruned,
    /// A FHIR document kept whole (it could not be split into resources when it came): it
    /// has no single resource to map.
    FhirDocument,
}

impl Ingest {
    /// The record a stored message makes under this handle's mappings, ready for
    /// [`Self::resubmit`]; `fhir` when its connector receives FHIR.
    pub fn prepare_stored(
        &self,
        ctx: &ConnectorContext,
        stored: &StoredMessage,
        fhir: bool,
    ) -> Result<NewRecord, NotReread> {
        if stored.body_pruned_at.is_some() {
            return Err(NotReread::Pruned);
        }
        let mut record = if fhir {
            self.prepare_stored_fhir(ctx, stored)?
        } else {
            self.prepare_guarded(ctx, stored.raw.clone(), stored.origin.clone())
                .0
        };
        // The row as it was received: its bytes, their hash, where and when they came from.
        record.raw.clone_from(&stored.raw);
        record.content_hash = hex_digest(&Sha256::digest(&stored.raw));
        record.origin.clone_from(&stored.origin);
        record.received_at.clone_from(&stored.received_at);
        record.reprocess = Some(Reprocess {
            id: stored.id,
            previous: stored.status,
        });
        Ok(record)
    }

    /// One stored FHIR resource mapped as a push maps it (references to other resources of
    /// the document it came in are not followed: they were resolved when it came).
    fn prepare_stored_fhir(
        &self,
        ctx: &ConnectorContext,
        stored: &StoredMessage,
    ) -> Result<NewRecord, NotReread> {
        let text = std::str::from_utf8(&stored.raw).map_err(|_| NotReread::FhirDocument)?;
        let (entries, _) = fhir_entries(text).map_err(|_| NotReread::FhirDocument)?;
        if entries.len() != 1 {
            return Err(NotReread::FhirDocument);
        }
        let fixed = ctx.mapping.as_deref().and_then(|name| self.mappings.get(name));
        let mapped = map_entries(&entries, &self.mappings, fixed, &ctx.transform_env);
        let (mut record, _, _, _) = self.fhir_record(ctx, &entries[0], mapped.first(), None, None);
        if let (Err(problem), Disposition::Apply { warnings, .. }) = (
            carehub_fhir_model::check_resource(&entries[0].resource),
            &mut record.disposition,
        ) {
            warnings.push(format!("FHIR R4B model: {problem}"));
        }
        Ok(record)
    }

    /// Hands prepared records to the writer and waits for each one's commit, in order; a
    /// merge instruction a record now carries is carried out after its commit, as at ingest.
    pub async fn resubmit(
        &self,
        records: Vec<(&ConnectorContext, NewRecord)>,
    ) -> Vec<Result<Applied, StoreError>> {
        let mut pending = Vec::with_capacity(records.len());
        for (ctx, record) in records {
            let merge = match &record.disposition {
                Disposition::Apply { merge: Some(m), .. } => Some(m.clone()),
                _ => None,
            };
            pending.push((ctx, self.enqueue(record).await, merge));
        }
        let mut out = Vec::with_capacity(pending.len());
        for (ctx, reply, merge) in pending {
            let committed = match reply {
                Some(rx) => rx.await.unwrap_or(Err(StoreError::WriterGone)),
                None => Err(StoreError::WriterGone),
            };
            if let (Ok(applied), Some(merge)) = (&committed, merge)
                && applied.status == MessageStatus::Processed
            {
                self.carry_out_merge(ctx, applied, &merge).await;
            }
            out.push(committed);
        }
        out
    }
}
