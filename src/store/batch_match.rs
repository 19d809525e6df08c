//! Matching without storing (`Store::match_patch`): a record planned as an ingest batch of
//! one, and the plan's decision read back. Pure: the backend looks up and rolls back.

use super::Plan;
use crate::model::ProfilePatch;
use crate::store::types::{Disposition, MatchResult, NewRecord};

/// A record to decide about without storing it ([`super::Store::match_patch`]): the backend
/// looks up and plans it as an ingest batch of one, reads the decision with [`match_result`],
/// and rolls back.
pub fn probe(patch: &ProfilePatch) -> NewRecord {
    NewRecord {
        connector: "match".into(),
        origin: None,
        received_at: jiff::Timestamp::now().to_string(),
        sender: None,
        control_id: None,
        message_type: None,
        charset: None,
        content_hash: String::new(),
        raw: Vec::new(),
        disposition: Disposition::Apply {
            mapping: "match".into(),
            source_system: "match".into(),
            patch: Some(patch.clone()),
            records: Vec::new(),
            merge: None,
            warnings: Vec::new(),
        },
        cursor: None,
        match_input: None,
        reprocess: None,
    }
}

/// What ingest would have done with a [`probe`].
pub fn match_result(plan: &Plan<'_>) -> Result<MatchResult, serde_json::Error> {
    let Some(s) = plan.source_records.first() else {
        return Ok(MatchResult {
            decision: "new",
            ..MatchResult::default()
        });
    };
    let breakdown = match &s.link_detail {
        Some(detail) => Some(serde_json::from_str(detail)?),
        None => None,
    };
    Ok(MatchResult {
        decision: s.link_method,
        person_id: matches!(s.link_method, "identifier" | "match").then(|| s.person_id.clone()),
        candidate_id: plan.reviews.first().map(|r| r.candidate_id.clone()),
        score: s.link_score,
        breakdown,
    })
}
