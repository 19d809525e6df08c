//! The clinical rows a batch writes (`batch.rs`): records to upsert, deletions, and how a
//! later message's record is laid over an earlier one.

/// `newer`'s fields over `older`'s (both JSON objects): what a later message about a record
/// leaves out, it does not erase (a status-only update keeps the value).
pub fn merge_json(older: &str, newer: &str) -> Result<String, serde_json::Error> {
    let mut base: serde_json::Map<String, serde_json::Value> = serde_json::from_str(older)?;
    let top: serde_json::Map<String, serde_json::Value> = serde_json::from_str(newer)?;
    base.extend(top);
    serde_json::to_string(&base)
}

/// A resource its source deleted: the clinical records last stated by its messages (control
/// ids `Type/id` and `Type/id/_history/…` from this sender) become `entered-in-error`.
pub struct DeletionRow {
    pub sender: String,
    /// `Type/id`.
    pub resource: String,
    pub message_id: i64,
    pub at: String,
}

impl DeletionRow {
    /// The control-id range of the resource's messages: `Type/id` itself and `Type/id/…`.
    pub fn range(&self) -> (String, String, String) {
        (
            self.resource.clone(),
            format!("{}/", self.resource),
            // '/' + 1 = '0': every id that continues with '/' sorts below this.
            format!("{}0", self.resource),
        )
    }
}

/// A clinical record to insert, or to update the one with the same kind, system and key (its
/// fields over the stored ones).
pub struct ClinicalRow {
    pub kind: &'static str,
    pub source_system: String,
    pub key: String,
    pub person_id: Option<String>,
    pub status: Option<&'static str>,
    pub at: Option<String>,
    pub sort_at: Option<String>,
    pub code: Option<String>,
    /// The record, JSON.
    pub data: String,
    pub message_id: i64,
    pub received_at: String,
}
