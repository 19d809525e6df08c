//! What goes into the store and what comes out of it.

use std::sync::Arc;

use serde::Serialize;

use crate::model::{ClinicalRecord, MergeInstruction, ProfilePatch};

/// Status of a message in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageStatus {
    /// Stored, not yet processed (reserved for asynchronous processing).
    Received,
    /// Mapped and applied.
    Processed,
    /// Refused: unreadable, unparseable or unmappable; the reason is kept.
    Error,
    /// The same message (sender, control id, content) was already processed; not applied again.
    Duplicate,
    /// Well-formed, kept, but no mapping handles its type.
    Unmapped,
}

impl MessageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Received => "received",
            MessageStatus::Processed => "processed",
            MessageStatus::Error => "error",
            MessageStatus::Duplicate => "duplicate",
            MessageStatus::Unmapped => "unmapped",
        }
    }

    pub fn parse(s: &str) -> Option<MessageStatus> {
        Some(match s {
            "received" => MessageStatus::Received,
            "processed" => MessageStatus::Processed,
            "error" => MessageStatus::Error,
            "duplicate" => MessageStatus::Duplicate,
            "unmapped" => MessageStatus::Unmapped,
            _ => return None,
        })
    }
}

/// One inbound record, ready to be written.
#[derive(Debug, Clone)]
pub struct NewRecord {
    pub connector: String,
    /// Peer address or file name.
    pub origin: Option<String>,
    /// RFC 3339 UTC.
    pub received_at: String,
    pub sender: Option<String>,
    pub control_id: Option<String>,
    pub message_type: Option<String>,
    pub charset: Option<String>,
    /// SHA-256 of `raw`, hex.
    pub content_hash: String,
    pub raw: Vec<u8>,
    pub disposition: Disposition,
    /// A pull connector's position, committed with this record (the last of its page): a crash
    /// re-reads at most the page, whose records are then duplicates.
    pub cursor: Option<CursorUpdate>,
    /// The patch prepared for matching, when the sender prepared it ahead (off the writer's
    /// thread, see [`NewRecord::prepare_match`]); otherwise the writer prepares it.
    pub match_input: Option<Arc<crate::identity::MatchInput>>,
    /// Set when this record is a stored message read again (`carehub reprocess`): its row is
    /// rewritten in place rather than a new one logged.
    pub reprocess: Option<Reprocess>,
}

/// The stored message a reprocessed record rewrites.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reprocess {
    /// Its message-log id (kept).
    pub id: i64,
    /// Its status before: the connector's counters move from it to the new one.
    pub previous: MessageStatus,
}

impl NewRecord {
    /// Prepares the patch for matching here rather than on the writer's thread, which every
    /// record waits for: normalising names, phonetic codes and blocking keys.
    pub fn prepare_match(&mut self) {
        if self.match_input.is_some() {
            return;
        }
        if let Disposition::Apply { patch: Some(p), .. } = &self.disposition {
            self.match_input = Some(Arc::new(crate::identity::MatchInput::of(p)));
        }
    }
}

/// Where a pull connector stands for one resource type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CursorUpdate {
    pub connector: String,
    pub resource_type: String,
    /// The `meta.lastUpdated` up to which everything has been read.
    pub value: String,
}

/// What to do with a record besides logging it.
#[derive(Debug, Clone)]
// `Apply` is what nearly every record carries: boxing it would add an allocation per message.
#[allow(clippy::large_enum_variant)]
pub enum Disposition {
    /// Apply the mapped patch to the person it identifies.
    Apply {
        mapping: String,
        source_system: String,
        patch: Option<ProfilePatch>,
        /// Clinical records, filed under the patch's person.
        records: Vec<ClinicalRecord>,
        /// Persons to merge into the patch's person once the record is stored (ADT^A40).
        merge: Option<MergeInstruction>,
        warnings: Vec<String>,
    },
    /// The source deleted this resource (`Type/id`): the records it stated are marked
    /// `entered-in-error` (kept, not erased).
    Delete { resource: String },
    /// Keep it; nothing maps it.
    Unmapped { reason: String },
    /// Keep it as refused, with the reason.
    Error { reason: String },
}

/// What the store did with a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub message_id: i64,
    pub status: MessageStatus,
    pub person_id: Option<String>,
}

/// What ingest would do with a record, found without storing it (`POST /api/v1/match`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MatchResult {
    /// `identifier` (an identifier already held), `match` (linked by score), `review` (a new
    /// person, sent to review beside `candidate_id`) or `new`.
    pub decision: &'static str,
    /// The stored person the record belongs to (`identifier`, `match`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub person_id: Option<String>,
    /// The look-alike a reviewer would compare it with (`review`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub candidate_id: Option<String>,
    /// The best candidate's match weight, when one was compared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// Field by field, what the score is made of (`match`, `review`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub breakdown: Option<serde_json::Value>,
}

/// A person as the API shows it: golden record, identifiers, and where each field came from.
#[derive(Debug, Clone, Serialize)]
pub struct PersonView {
    pub id: String,
    /// Set when this person was merged into another (its records now belong there).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merged_into: Option<String>,
    pub profile: serde_json::Value,
    pub identifiers: Vec<IdentifierView>,
    pub provenance: Vec<FieldProvenance>,
    pub source_records: Vec<SourceRecordView>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct IdentifierView {
    pub system: String,
    pub value: String,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FieldProvenance {
    pub field: String,
    pub value: serde_json::Value,
    pub source_system: String,
    pub source_record_id: i64,
    pub message_id: Option<i64>,
    pub observed_at: String,
    /// This source's value is (part of) the golden record's, by the survivorship rules.
    pub chosen: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct SourceRecordView {
    pub id: i64,
    pub source_system: String,
    pub source_key: String,
    pub last_message_id: Option<i64>,
    pub updated_at: String,
    /// How this record came to its person: `identifier`, `match`, `review`, `new`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link_method: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link_score: Option<f64>,
    /// For a match or a review: the score, field by field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link_detail: Option<serde_json::Value>,
}

/// A possible duplicate waiting for (or decided by) a human.
#[derive(Debug, Clone, Serialize)]
pub struct ReviewItem {
    pub id: i64,
    /// The person the incoming record became.
    pub person_id: String,
    /// The existing person it resembles.
    pub candidate_id: String,
    pub message_id: Option<i64>,
    pub score: f64,
    pub breakdown: serde_json::Value,
    pub status: String,
    pub created_at: String,
    pub decided_at: Option<String>,
}

/// One clinical record on a person's timeline.
#[derive(Debug, Clone, Serialize)]
pub struct TimelineEntry {
    pub id: i64,
    /// `encounter`, `appointment`, `order`, `result`, `diagnosis`.
    pub kind: String,
    pub source_system: String,
    /// What recognises the record across messages (visit number, appointment id…).
    pub key: String,
    /// The person it is filed under (another id when it came from a merged person).
    pub person_id: Option<String>,
    pub status: Option<String>,
    /// The record's time, as the source gave it.
    pub at: Option<String>,
    pub record: serde_json::Value,
    pub first_message_id: i64,
    pub last_message_id: i64,
    pub created_at: String,
    pub updated_at: String,
}

/// A merge, as recorded (and undone by an unmerge).
#[derive(Debug, Clone, Serialize)]
pub struct MergeView {
    pub id: i64,
    pub survivor_id: String,
    pub merged_id: String,
    pub source_record_ids: Vec<i64>,
    pub reason: String,
    pub created_at: String,
    pub undone_at: Option<String>,
}

/// Filter for the message log (`GET /api/v1/messages`), newest first. Every filter walks one
/// index and stops after a page (see `migrations/*/…_message_search.sql`).
#[derive(Debug, Clone, Default)]
pub struct MessageFilter {
    pub status: Option<MessageStatus>,
    pub connector: Option<String>,
    /// A message type: `ADT^A01` (whole) or `ADT` (its code: every ADT event), or a FHIR
    /// resource type.
    pub message_type: Option<String>,
    /// MSH-10, or a FHIR resource's `Type/id[/_history/v]`.
    pub control_id: Option<String>,
    /// Only messages of these persons (a patient identifier resolved by the caller).
    pub person_ids: Option<Vec<String>>,
    /// Received at or after this time: RFC 3339 text in UTC to the second
    /// (`2026-01-20T08:30:00`), compared as text with the stored times.
    pub received_from: Option<String>,
    /// Received before this time (same form).
    pub received_to: Option<String>,
    /// Only messages after this one in the order of the answer (the last id of the previous
    /// page). With a time range the order is (received_at, id), else id.
    pub before_id: Option<i64>,
    pub limit: i64,
}

impl MessageFilter {
    /// Whether the answer is ordered by receive time (a time range is given) rather than id.
    pub fn by_time(&self) -> bool {
        self.received_from.is_some() || self.received_to.is_some()
    }
}

/// Which stored messages [`super::Store::scan_messages`] reads: oldest first, one page at a
/// time, so that a walk over millions of rows holds one page in memory.
#[derive(Debug, Clone, Default)]
pub struct MessageScan {
    /// Only ids above this one (the last id of the previous page; 0 for the first).
    pub after_id: i64,
    /// Only messages received at or after this time, compared as RFC 3339 text: a prefix
    /// (`2026-01-20T08:30:00`) keeps everything from that second on.
    pub received_from: Option<String>,
    /// Only messages received before this time (same form as `received_from`).
    pub received_to: Option<String>,
    pub connector: Option<String>,
    /// Only messages of these types; `None` for every type.
    pub types: Option<TypeFilter>,
    /// Only messages with one of these statuses; empty for every status.
    pub statuses: Vec<MessageStatus>,
    /// Only these message ids; empty for every id.
    pub ids: Vec<i64>,
    /// Leave out messages logged as `duplicate`.
    pub skip_duplicates: bool,
    /// Rows per page.
    pub limit: i64,
}

/// The message types a scan keeps, compared in upper case. A message passes when its type
/// equals one of `equal`, starts with one of `prefixes`, or it came through one of
/// `connectors` (whatever its type).
#[derive(Debug, Clone, Default)]
pub struct TypeFilter {
    /// Whole types: `ADT^A04`.
    pub equal: Vec<String>,
    /// Beginnings of types: `ADT^` for every ADT event.
    pub prefixes: Vec<String>,
    /// Connectors whose messages pass whatever their type.
    pub connectors: Vec<String>,
}

/// A message-log row with its bytes, as a scan reads it.
#[derive(Debug, Clone)]
pub struct StoredMessage {
    pub id: i64,
    pub connector: String,
    /// Peer address or file name.
    pub origin: Option<String>,
    pub received_at: String,
    pub message_type: Option<String>,
    pub status: MessageStatus,
    /// The mapping that processed it, when one did.
    pub mapping: Option<String>,
    pub raw: Vec<u8>,
    /// When retention emptied `raw` (RFC 3339); `None` while the body is kept.
    pub body_pruned_at: Option<String>,
}

/// A message-log row without its bytes.
#[derive(Debug, Clone, Serialize)]
pub struct MessageSummary {
    pub id: i64,
    pub connector: String,
    pub origin: Option<String>,
    pub received_at: String,
    pub sender: Option<String>,
    pub control_id: Option<String>,
    pub message_type: Option<String>,
    pub status: String,
    pub error: Option<String>,
    pub warnings: Vec<String>,
    pub mapping: Option<String>,
    pub person_id: Option<String>,
    pub duplicate_of: Option<i64>,
    pub size_bytes: i64,
    /// When retention emptied the raw body (RFC 3339); absent while the body is kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_pruned_at: Option<String>,
    /// When it was last reprocessed (RFC 3339); absent when never.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reprocessed_at: Option<String>,
    /// How many times it was reprocessed.
    pub reprocess_count: i64,
}

/// A message-log row with its raw bytes.
#[derive(Debug, Clone, Serialize)]
pub struct MessageDetail {
    #[serde(flatten)]
    pub summary: MessageSummary,
    pub charset: Option<String>,
    pub content_hash: String,
    #[serde(skip)]
    pub raw: Vec<u8>,
}

/// A connector's state and counters.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectorStatus {
    pub name: String,
    pub kind: String,
    pub state: String,
    pub detail: Option<String>,
    pub received: i64,
    pub processed: i64,
    pub errors: i64,
    pub duplicates: i64,
    pub unmapped: i64,
    pub last_message_at: Option<String>,
    pub updated_at: String,
    /// A pull connector's latest run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_run: Option<RunView>,
}

/// One run of a pull connector.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RunView {
    pub id: i64,
    pub connector: String,
    pub started_at: String,
    pub ended_at: Option<String>,
    /// `running`, `ok`, `failed`, `interrupted`.
    pub outcome: String,
    pub pages: i64,
    pub resources: i64,
    pub errors: i64,
    /// Cursors per resource type before and after the run, JSON objects.
    pub cursor_before: Option<serde_json::Value>,
    pub cursor_after: Option<serde_json::Value>,
    /// Why it failed (no patient data).
    pub detail: Option<String>,
}

/// What happened to one dropped file.
#[derive(Debug, Clone, Serialize)]
pub struct FileOutcome {
    pub connector: String,
    pub file_name: String,
    pub size_bytes: i64,
    pub content_hash: String,
    pub messages: i64,
    pub failed: i64,
    /// `done` or `error`.
    pub outcome: String,
    pub reason: Option<String>,
    pub moved_to: Option<String>,
    pub processed_at: String,
}

/// A notification the relay found due.
#[derive(Debug, Clone)]
pub struct DueNotification {
    pub id: String,
    pub rule: String,
    pub category: String,
    pub person_id: String,
    pub subject: Option<String>,
    pub template: String,
    /// The rule's channel order.
    pub channels: Vec<String>,
    pub context: serde_json::Value,
    pub cause: String,
    pub due_at: i64,
    pub attempts: i64,
}

/// How the relay resolved a due notification: the send exactly as it will be queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub id: String,
    pub channel: String,
    pub address: String,
    pub language: String,
    /// The person's time zone (IANA), for quiet hours when a worker sends it later.
    pub timezone: Option<String>,
    pub title: Option<String>,
    pub body: String,
}

/// What a worker holds when it claims a send.
#[derive(Debug, Clone)]
pub enum Claim {
    /// Send this (attempt is the number of provider calls before this one).
    Send(Box<ClaimedSend>),
    /// Already settled (`sent`, `delivered`, `failed`, `cancelled`, `suppressed`), or moved to
    /// another channel: nothing to send.
    Settled(String),
    /// Another worker holds it right now.
    Busy,
    Missing,
}

#[derive(Debug, Clone)]
pub struct ClaimedSend {
    pub id: String,
    pub rule: String,
    /// The person's time zone when the relay staged it.
    pub timezone: Option<String>,
    pub person_id: String,
    pub category: String,
    pub channel: String,
    pub address: String,
    pub language: String,
    pub title: Option<String>,
    pub body: String,
    pub attempts: i64,
}

/// A worker's request to take a send (see `Store::send_ops`).
#[derive(Debug, Clone)]
pub struct SendClaim {
    pub id: String,
    pub channel: String,
    pub now_ms: i64,
    pub lease_ms: i64,
}

/// A provider call's outcome, as the worker records it.
#[derive(Debug, Clone)]
pub struct AttemptOutcome {
    pub id: String,
    pub channel: String,
    /// `sent`, `delivered`, `retry`, `unknown`, `rejected` (permanent; the next channel may be
    /// tried), `failed` (final).
    pub outcome: &'static str,
    pub provider_id: Option<String>,
    pub detail: Option<String>,
    /// The notification's status after it: `sent`, `delivered`, `queued` (to be retried),
    /// `pending` (back to the relay: quiet hours or the next channel) or `failed`.
    pub status: &'static str,
    /// With `pending`: when the relay should look at it again (epoch ms).
    pub due_at: Option<i64>,
}

/// One notification on a patient's profile, with its provider calls.
#[derive(Debug, Clone, Serialize)]
pub struct InteractionView {
    pub id: String,
    pub rule: String,
    pub category: String,
    pub template: String,
    pub cause: String,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<String>,
    pub attempts: Vec<AttemptView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AttemptView {
    pub attempt: i64,
    pub channel: String,
    pub outcome: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub at: String,
}

/// One line of the channel report: sends of a channel and rule by status.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ChannelReportLine {
    pub channel: String,
    pub rule: String,
    pub queued: i64,
    pub sent: i64,
    pub delivered: i64,
    pub failed: i64,
    pub cancelled: i64,
    pub suppressed: i64,
}

/// A consent decision.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct ConsentView {
    /// `transactional`, `marketing` or `*`.
    pub category: String,
    /// A channel name or `*`.
    pub channel: String,
    /// `permit` or `deny`.
    pub decision: String,
    pub source: String,
    pub at: String,
}

/// Communication preferences set through the API.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Preferences {
    /// Language for notifications (overrides the profile's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// IANA time zone for quiet hours (overrides the clinic's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// Messenger ids by channel kind: `{"telegram": "123456", "zalo": "8480…"}`.
    #[serde(default)]
    pub addresses: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// What the relay knows about a person when a send falls due.
#[derive(Debug, Clone, Default)]
pub struct PersonFacts {
    /// The person the notification goes to after merges (their survivor).
    pub person_id: String,
    pub profile: crate::model::ProfilePatch,
    pub preferences: Preferences,
    pub consents: Vec<ConsentView>,
    /// Sort key of the latest encounter.
    pub last_visit: Option<String>,
    /// `system|code` of their diagnoses.
    pub diagnoses: Vec<String>,
}

/// A message of the embedded queue, claimed.
#[derive(Debug, Clone)]
pub struct QueueRow {
    pub id: i64,
    pub payload: String,
    pub deliveries: i64,
}

/// A fact a scheduled rule fires on.
#[derive(Debug, Clone)]
pub struct ScheduledFact {
    pub person_id: String,
    pub subject: Option<String>,
    pub sort_at: Option<String>,
    pub data: serde_json::Value,
}

/// A time as the message log compares receive times: UTC to the second, without a zone
/// (`2026-01-20T08:30:00`). Stored times (`2026-01-20T08:30:00.123Z`) sort after the text of
/// their own second and before the next: as a lower bound it keeps that whole second, as an
/// exclusive upper bound it ends before it. `up`: a time with a fraction is taken to its next
/// second (an upper bound that keeps at least everything before it).
pub fn time_text(t: jiff::Timestamp, up: bool) -> String {
    let mut second = t.as_second();
    if up && t.subsec_nanosecond() > 0 {
        second += 1;
    }
    jiff::Timestamp::from_second(second)
        .unwrap_or(t)
        .strftime("%Y-%m-%dT%H:%M:%S")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::time_text;

    #[test]
    fn a_time_bound_is_its_second_and_an_upper_one_rounds_up() {
        let t: jiff::Timestamp = "2026-01-20T08:30:15.250Z".parse().unwrap();
        assert_eq!(time_text(t, false), "2026-01-20T08:30:15");
        assert_eq!(time_text(t, true), "2026-01-20T08:30:16");
        let whole: jiff::Timestamp = "2026-01-20T08:30:15Z".parse().unwrap();
        assert_eq!(time_text(whole, true), "2026-01-20T08:30:15");
        // Stored times sort inside their second: after its bound, before the next one.
        let stored = "2026-01-20T08:30:15.250Z";
        assert!(stored > time_text(t, false).as_str() && stored < time_text(t, true).as_str());
    }
}
