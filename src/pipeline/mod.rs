//! The ingest pipeline: from raw bytes to a committed message-log row and its effects.
//!
//! A source calls [`Ingest::submit`] with one message's bytes. The calling task decodes,
//! parses and maps (CPU work, spread over connections); a single writer task then commits
//! records from every connector in groups — one transaction per group (group commit) — and
//! answers each caller only after that commit. So an ACK never precedes the commit, and a
//! busy hub pays one fsync per group, not per message.

mod fhir;
mod reread;
mod writer;

use std::sync::Arc;

use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};

use crate::hl7::{self, AckCode, AckError, Charset, Message, MessageType};
use crate::mapping::{Mapping, MappingSet, TransformEnv};
use crate::model::MergeInstruction;
use crate::store::{Applied, Disposition, MessageStatus, NewRecord, StoreError};

pub use fhir::{Deletion, FhirEntryOutcome, FhirOutcome, PageChain, PageCounts, PreparedPage, SubmittedPage};
pub use reread::NotReread;
pub use writer::spawn_writer;

/// How a connector's records are read and mapped.
#[derive(Debug, Clone)]
pub struct ConnectorContext {
    pub name: String,
    /// A fixed mapping, or `None` to choose by message type.
    pub mapping: Option<String>,
    /// Provenance name; `None` for MSH-3^MSH-4.
    pub source_system: Option<String>,
    pub default_charset: Charset,
    pub transform_env: TransformEnv,
}

impl ConnectorContext {
    /// The mapping this connector's message of type `t` goes through: the connector's fixed
    /// mapping, else the one whose `message_types` cover `t` (see [`MappingSet::for_message_type`]).
    pub fn choose_mapping<'m>(&self, mappings: &'m MappingSet, t: &MessageType) -> Option<&'m Mapping> {
        match &self.mapping {
            Some(name) => mappings.get(name),
            None => mappings.for_message_type(t),
        }
    }
}

/// Why bytes could not be read as an HL7 v2 message.
#[derive(Debug, Clone)]
pub struct Unreadable {
    /// The charset the bytes were decoded in, when decoding got that far.
    pub charset: Option<Charset>,
    /// What the sender is told (an `AR`), without patient data.
    pub error: AckError,
}

/// Reads one message's bytes as the pipeline does: decoded in the charset MSH-18 names (else
/// UTF-8, else the connector's `default_charset`), then parsed. `carehub replay` reads stored
/// messages through this too, so that it sees them as the hub did.
pub fn read_hl7(raw: &[u8], default_charset: Charset) -> Result<(Message, Charset), Unreadable> {
    let (text, charset) = hl7::decode(raw, default_charset).map_err(|e| Unreadable {
        charset: None,
        error: AckError::new(203, format!("unreadable characters: {e}")),
    })?;
    let msg = Message::parse(&text).map_err(|e| Unreadable {
        charset: Some(charset),
        error: AckError::new(100, format!("not a valid HL7 v2 message: {e}")),
    })?;
    Ok((msg, charset))
}

/// What became of one submitted message.
#[derive(Debug)]
pub struct Outcome {
    pub ack: AckCode,
    pub error: Option<AckError>,
    /// The parsed message, when it parsed (to build the ACK from).
    pub message: Option<Message>,
    /// The charset the message was read in (the ACK is written in it).
    pub charset: Charset,
    /// What the store did, when it was reached.
    pub applied: Option<Applied>,
    /// The start of the raw text, to answer even a message that did not parse from its MSH.
    pub head: String,
}

/// The handle sources hold.
#[derive(Clone)]
pub struct Ingest {
    tx: mpsc::Sender<writer::Job>,
    mappings: Arc<MappingSet>,
    /// For what follows a commit: merge instructions (ADT^A40).
    store: Option<crate::store::Store>,
    /// Matching is on: records are prepared for it before they reach the writer.
    matching: bool,
}

impl Ingest {
    pub fn new(tx: mpsc::Sender<writer::Job>, mappings: Arc<MappingSet>) -> Ingest {
        Ingest {
            tx,
            mappings,
            store: None,
            matching: false,
        }
    }

    /// The same writer, with other mappings: `carehub reprocess` maps with the mapping files
    /// as they are on disk at its start.
    pub fn with_mappings(&self, mappings: Arc<MappingSet>) -> Ingest {
        Ingest {
            mappings,
            ..self.clone()
        }
    }

    /// Prepares each record for identity matching in the sender's task (see
    /// [`NewRecord::prepare_match`]): the writer, which every record waits for, does less.
    pub fn with_matching(mut self, matching: bool) -> Ingest {
        self.matching = matching;
        self
    }

    fn prepare_match(&self, records: &mut [NewRecord]) {
        if self.matching {
            records.iter_mut().for_each(NewRecord::prepare_match);
        }
    }

    /// Lets messages that carry a merge instruction carry it out (after their commit, before
    /// their ACK). Without a store such instructions are logged and kept, not done.
    pub fn with_store(mut self, store: crate::store::Store) -> Ingest {
        self.store = Some(store);
        self
    }

    /// Takes one message: decodes, parses, maps, and waits until its row is committed.
    pub async fn submit(&self, ctx: &ConnectorContext, raw: Vec<u8>, origin: Option<String>) -> Outcome {
        let mut outcomes = self.submit_many(ctx, vec![(raw, origin)]).await;
        outcomes
            .pop()
            .unwrap_or_else(|| store_unavailable(ctx, None, Charset::Utf8, String::new()))
    }

    /// Takes several messages of one sender, in order: they reach the writer in that order (so
    /// an update never overtakes its admit) and may share one commit. Outcomes come back in the
    /// same order, each after its commit.
    pub async fn submit_many(
        &self,
        ctx: &ConnectorContext,
        messages: Vec<(Vec<u8>, Option<String>)>,
    ) -> Vec<Outcome> {
        let mut pending = Vec::with_capacity(messages.len());
        for (raw, origin) in messages {
            let head = String::from_utf8_lossy(&raw[..raw.len().min(2048)]).into_owned();
            let (record, message, charset, ack, error) = self.prepare_guarded(ctx, raw, origin);
            let merge = match &record.disposition {
                Disposition::Apply { merge: Some(m), .. } => Some(m.clone()),
                _ => None,
            };
            let reply = self.enqueue(record).await;
            pending.push((reply, message, charset, ack, error, head, merge));
        }
        let mut outcomes = Vec::with_capacity(pending.len());
        for (reply, message, charset, ack, error, head, merge) in pending {
            let committed = match reply {
                Some(rx) => rx.await.unwrap_or(Err(StoreError::WriterGone)),
                None => Err(StoreError::WriterGone),
            };
            if let (Ok(applied), Some(merge)) = (&committed, merge)
                && applied.status == MessageStatus::Processed
            {
                self.carry_out_merge(ctx, applied, &merge).await;
            }
            outcomes.push(match committed {
                Ok(applied) => {
                    // A duplicate of an accepted message is accepted again, not applied again.
                    let (ack, error) =
                        if applied.status == MessageStatus::Duplicate { (AckCode::AA, None) } else { (ack, error) };
                    Outcome { ack, error, message, charset, applied: Some(applied), head }
                }
                Err(e) => {
                    tracing::error!(connector = %ctx.name, error = %e, "could not store a message; the sender is told to retry");
                    store_unavailable(ctx, message, charset, head)
                }
            });
        }
        outcomes
    }

    /// A merge instruction, after its message is stored. Its outcome is kept in the store
    /// (`merge_requests`); a failure is logged, and the message stays accepted: the instruction
    /// is on record for a person to finish, and resending it would not change the outcome.
    async fn carry_out_merge(
        &self,
        ctx: &ConnectorContext,
        applied: &crate::store::Applied,
        merge: &MergeInstruction,
    ) {
        let (Some(store), Some(survivor)) = (&self.store, &applied.person_id) else {
            tracing::warn!(connector = %ctx.name, message_id = applied.message_id, "a merge instruction was kept but not carried out (no person or no store)");
            return;
        };
        match store
            .merge_request(applied.message_id, survivor, &merge.retired)
            .await
        {
            Ok(outcome) => {
                tracing::info!(connector = %ctx.name, message_id = applied.message_id, %outcome, "merge instruction")
            }
            Err(e) => {
                tracing::error!(connector = %ctx.name, message_id = applied.message_id, error = %e, "a merge instruction failed")
            }
        }
    }

    /// Keeps bytes that could not even be split into messages (a broken batch file), as refused.
    pub async fn record_rejected(
        &self,
        ctx: &ConnectorContext,
        raw: Vec<u8>,
        origin: Option<String>,
        reason: String,
    ) -> Result<Applied, StoreError> {
        let record = refused_record(ctx, raw, origin, reason);
        self.commit(record).await
    }

    async fn commit(&self, record: NewRecord) -> Result<Applied, StoreError> {
        match self.enqueue(record).await {
            Some(rx) => rx.await.unwrap_or(Err(StoreError::WriterGone)),
            None => Err(StoreError::WriterGone),
        }
    }

    /// Hands a record to the writer; `None` when the writer is gone.
    async fn enqueue(&self, mut record: NewRecord) -> Option<oneshot::Receiver<Result<Applied, StoreError>>> {
        self.prepare_match(std::slice::from_mut(&mut record));
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(writer::Job {
                records: vec![record],
                reply: writer::Reply::One(reply),
                chain: None,
            })
            .await
            .ok()?;
        Some(rx)
    }

    /// Hands records to the writer to be committed together or not at all.
    async fn enqueue_unit(
        &self,
        mut records: Vec<NewRecord>,
        chain: Option<writer::Chain>,
    ) -> Option<oneshot::Receiver<Result<Vec<Applied>, StoreError>>> {
        self.prepare_match(&mut records);
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(writer::Job {
                records,
                reply: writer::Reply::Unit(reply),
                chain,
            })
            .await
            .ok()?;
        Some(rx)
    }

    /// [`Self::prepare`], with a net under it: should reading a message ever panic (a bug, not
    /// the sender's fault), the message is still stored, as refused, and the connection lives on.
    #[allow(clippy::type_complexity)]
    fn prepare_guarded(
        &self,
        ctx: &ConnectorContext,
        raw: Vec<u8>,
        origin: Option<String>,
    ) -> (NewRecord, Option<Message>, Charset, AckCode, Option<AckError>) {
        let kept = raw.clone();
        let attempt = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.prepare(ctx, raw, origin.clone())
        }));
        attempt.unwrap_or_else(|_| {
            tracing::error!(connector = %ctx.name, "reading a message failed unexpectedly; it is kept as refused");
            let reason = "the hub failed unexpectedly while reading this message (kept for review)".to_string();
            let record = refused_record(ctx, kept, origin, reason.clone());
            (record, None, ctx.default_charset, AckCode::AR, Some(AckError::new(207, reason)))
        })
    }

    /// The pure part: bytes → record to store, and the ACK it deserves.
    #[allow(clippy::type_complexity)]
    fn prepare(
        &self,
        ctx: &ConnectorContext,
        raw: Vec<u8>,
        origin: Option<String>,
    ) -> (NewRecord, Option<Message>, Charset, AckCode, Option<AckError>) {
        let content_hash = hex_digest(&Sha256::digest(&raw));
        // Filled in as the message is read; until then it is a refusal with no reason.
        let mut record = refused_record(ctx, Vec::new(), origin, String::new());
        record.content_hash = content_hash;
        let reject = |mut record: NewRecord,
                      raw: Vec<u8>,
                      charset: Charset,
                      code: AckCode,
                      err: AckError,
                      msg: Option<Message>| {
            record.raw = raw;
            record.disposition = Disposition::Error {
                reason: err.text.clone(),
            };
            (record, msg, charset, code, Some(err))
        };

        let (msg, charset) = match read_hl7(&raw, ctx.default_charset) {
            Ok(read) => read,
            Err(Unreadable { charset, error }) => {
                record.charset = charset.map(|c| c.hl7_name().to_string());
                let charset = charset.unwrap_or(ctx.default_charset);
                return reject(record, raw, charset, AckCode::AR, error, None);
            }
        };
        record.charset = Some(charset.hl7_name().to_string());
        record.sender = Some(format!(
            "{}^{}",
            msg.sending_application(),
            msg.sending_facility()
        ));
        record.control_id = msg.control_id();
        let mtype = msg.message_type();
        record.message_type = mtype.as_ref().map(ToString::to_string);
        if record.control_id.is_none() {
            let err = AckError {
                hl7_code: 101,
                text: "MSH-10 (message control id) is empty".into(),
                segment: Some("MSH".into()),
                field: Some(10),
            };
            return reject(record, raw, charset, AckCode::AR, err, Some(msg));
        }
        let Some(mtype) = mtype else {
            let err = AckError {
                hl7_code: 101,
                text: "MSH-9 (message type) is empty".into(),
                segment: Some("MSH".into()),
                field: Some(9),
            };
            return reject(record, raw, charset, AckCode::AR, err, Some(msg));
        };
        let Some(mapping) = ctx.choose_mapping(&self.mappings, &mtype) else {
            record.raw = raw;
            record.disposition = Disposition::Unmapped {
                reason: format!("no mapping for message type {mtype}"),
            };
            return (record, Some(msg), charset, AckCode::AA, None);
        };
        match mapping.apply(&msg, &ctx.transform_env) {
            Ok(out) => {
                let source_system = ctx.source_system.clone().unwrap_or_else(|| {
                    let app = first_component(&msg.sending_application());
                    let fac = first_component(&msg.sending_facility());
                    match (app.is_empty(), fac.is_empty()) {
                        (false, false) => format!("{app}^{fac}"),
                        (false, true) => app,
                        (true, false) => fac,
                        (true, true) => ctx.name.clone(),
                    }
                });
                record.raw = raw;
                record.disposition = Disposition::Apply {
                    mapping: mapping.name.clone(),
                    source_system,
                    patch: out.person,
                    records: out.records,
                    merge: out.merge,
                    warnings: out.warnings,
                };
                (record, Some(msg), charset, AckCode::AA, None)
            }
            Err(e) => {
                tracing::warn!(connector = %ctx.name, mapping = %e.mapping, rule = %e.rule, "a message could not be mapped");
                let err = AckError::new(207, e.to_string());
                reject(record, raw, charset, AckCode::AE, err, Some(msg))
            }
        }
    }
}

/// A record kept as refused, with what little is known of it: bytes, origin, reason.
fn refused_record(ctx: &ConnectorContext, raw: Vec<u8>, origin: Option<String>, reason: String) -> NewRecord {
    NewRecord {
        connector: ctx.name.clone(),
        origin,
        received_at: jiff::Timestamp::now().to_string(),
        sender: None,
        control_id: None,
        message_type: None,
        charset: None,
        content_hash: hex_digest(&Sha256::digest(&raw)),
        raw,
        disposition: Disposition::Error { reason },
        cursor: None,
        match_input: None,
        reprocess: None,
    }
}

/// The outcome when the store could not take a message: the sender is told to send it again.
fn store_unavailable(
    _ctx: &ConnectorContext,
    message: Option<Message>,
    charset: Charset,
    head: String,
) -> Outcome {
    Outcome {
        ack: AckCode::AR,
        error: Some(AckError::new(
            207,
            "the hub could not store the message; send it again later",
        )),
        message,
        charset,
        applied: None,
        head,
    }
}

fn first_component(field: &str) -> String {
    field.split('^').next().unwrap_or("").trim().to_string()
}

pub fn hex_digest(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}
