//! The audit log's rows and their hash chain (pure: no I/O).
//!
//! Every answer of the API that carries patient data, and every admin action, is recorded as
//! one [`AuditEntry`] before the answer leaves (see `api/auth.rs`). Rows are chained: each
//! stores the SHA-256 of the previous row's hash and its own content, and ids follow one
//! another without gaps, so that [`Verifier`] finds a row that was changed, removed or moved.
//! What the chain cannot show alone — the newest rows cut off the end — is why `carehub audit
//! verify` prints the head (id and hash) for an operator to keep elsewhere (docs/security.md).
//!
//! This room must not import the store or HTTP: the store calls [`chain_hash`] when it appends.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The hash the first row chains to.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What is recorded about one request or action.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditEntry {
    /// When, RFC 3339 UTC.
    pub at: String,
    /// Who: `token:<id>`, `oidc:<issuer subject>`, or `cli:<user>` for the command line.
    pub subject: String,
    /// The role the request was allowed under.
    pub role: String,
    /// What: `GET /api/v1/patients/{id}` (the route, never its values), or a CLI action.
    pub action: String,
    /// The HTTP status answered (0 for actions outside HTTP).
    pub status: i64,
    /// The persons whose data the answer carried or the action touched.
    pub persons: Vec<String>,
    /// How many records of patient data the answer carried (at least `persons.len()`).
    pub person_count: i64,
    /// `X-Purpose-Of-Use` as sent (treatment, payment, operations, …).
    pub purpose: Option<String>,
    /// The client's address.
    pub client: Option<String>,
}

/// A stored row: its entry with its place in the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditRow {
    pub id: i64,
    #[serde(flatten)]
    pub entry: AuditEntry,
    pub prev_hash: String,
    pub hash: String,
}

/// The hash of row `id` with `entry`, chained to `prev_hash`. Fields are length-prefixed so
/// that no two different rows serialise alike.
pub fn chain_hash(prev_hash: &str, id: i64, entry: &AuditEntry) -> String {
    let mut h = Sha256::new();
    let mut field = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_be_bytes());
        h.update(bytes);
    };
    field(prev_hash.as_bytes());
    field(&id.to_be_bytes());
    field(entry.at.as_bytes());
    field(entry.subject.as_bytes());
    field(entry.role.as_bytes());
    field(entry.action.as_bytes());
    field(&entry.status.to_be_bytes());
    field(&(entry.persons.len() as u64).to_be_bytes());
    for p in &entry.persons {
        field(p.as_bytes());
    }
    field(&entry.person_count.to_be_bytes());
    field(entry.purpose.as_deref().unwrap_or("\u{0}none").as_bytes());
    field(entry.client.as_deref().unwrap_or("\u{0}none").as_bytes());
    hex(&h.finalize())
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// A break in the chain, as `carehub audit verify` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainBreak {
    /// Row ids do not follow one another: rows were removed or moved.
    Gap { expected: i64, found: i64 },
    /// The row does not chain to the row before it.
    Link { id: i64 },
    /// The row's content does not match its hash: it was changed.
    Content { id: i64 },
}

impl std::fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChainBreak::Gap { expected, found } => write!(
                f,
                "row {expected} is missing or out of place (found row {found} where it belongs): rows were removed or reordered"
            ),
            ChainBreak::Link { id } => write!(
                f,
                "row {id} does not chain to the row before it: a row before it was changed, removed or reordered"
            ),
            ChainBreak::Content { id } => {
                write!(f, "row {id} does not match its hash: it was changed")
            }
        }
    }
}

/// Checks rows in id order, page after page, without holding them all.
#[derive(Debug, Clone)]
pub struct Verifier {
    next_id: i64,
    prev_hash: String,
    /// Rows checked so far.
    pub rows: u64,
    /// Every break found (the check goes on after one, to say how far the damage reaches).
    pub breaks: Vec<ChainBreak>,
}

impl Default for Verifier {
    fn default() -> Self {
        Verifier {
            next_id: 1,
            prev_hash: GENESIS.to_string(),
            rows: 0,
            breaks: Vec::new(),
        }
    }
}

impl Verifier {
    /// Checks the next row of the log.
    pub fn check(&mut self, row: &AuditRow) {
        self.rows += 1;
        if row.id != self.next_id {
            self.breaks.push(ChainBreak::Gap {
                expected: self.next_id,
                found: row.id,
            });
        }
        if row.prev_hash != self.prev_hash {
            self.breaks.push(ChainBreak::Link { id: row.id });
        }
        if chain_hash(&row.prev_hash, row.id, &row.entry) != row.hash {
            self.breaks.push(ChainBreak::Content { id: row.id });
        }
        self.next_id = row.id + 1;
        self.prev_hash = row.hash.clone();
    }

    /// The last row checked: its id and hash (the head to keep elsewhere).
    pub fn head(&self) -> (i64, &str) {
        (self.next_id - 1, &self.prev_hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: i64) -> AuditEntry {
        AuditEntry {
            at: format!("2026-12-07T10:00:{n:02}Z"),
            subject: "token:tok_1".into(),
            role: "clinician".into(),
            action: "GET /api/v1/patients/{id}".into(),
            status: 200,
            persons: vec![format!("p{n}")],
            person_count: 1,
            purpose: Some("treatment".into()),
            client: Some("127.0.0.1:5000".into()),
        }
    }

    fn chain(n: i64) -> Vec<AuditRow> {
        let mut prev = GENESIS.to_string();
        (1..=n)
            .map(|id| {
                let e = entry(id);
                let hash = chain_hash(&prev, id, &e);
                let row = AuditRow {
                    id,
                    entry: e,
                    prev_hash: prev.clone(),
                    hash: hash.clone(),
                };
                prev = hash;
                row
            })
            .collect()
    }

    fn verify(rows: &[AuditRow]) -> Vec<ChainBreak> {
        let mut v = Verifier::default();
        rows.iter().for_each(|r| v.check(r));
        v.breaks
    }

    #[test]
    fn an_intact_chain_verifies() {
        assert!(verify(&chain(5)).is_empty());
    }

    #[test]
    fn a_changed_row_is_found() {
        let mut rows = chain(5);
        rows[2].entry.persons = vec!["someone-else".into()];
        assert_eq!(verify(&rows), vec![ChainBreak::Content { id: 3 }]);
    }

    #[test]
    fn a_changed_row_with_its_hash_recomputed_breaks_the_next_link() {
        let mut rows = chain(5);
        rows[2].entry.purpose = None;
        rows[2].hash = chain_hash(&rows[2].prev_hash, 3, &rows[2].entry);
        assert_eq!(verify(&rows), vec![ChainBreak::Link { id: 4 }]);
    }

    #[test]
    fn a_removed_row_is_found() {
        let mut rows = chain(5);
        rows.remove(1);
        let breaks = verify(&rows);
        assert!(breaks.contains(&ChainBreak::Gap {
            expected: 2,
            found: 3
        }));
        assert!(breaks.contains(&ChainBreak::Link { id: 3 }));
    }

    #[test]
    fn reordered_rows_are_found() {
        let mut rows = chain(5);
        rows.swap(1, 2);
        assert!(!verify(&rows).is_empty());
    }

    #[test]
    fn fields_cannot_run_into_each_other() {
        let mut a = entry(1);
        let mut b = entry(1);
        a.subject = "ab".into();
        a.role = "c".into();
        b.subject = "a".into();
        b.role = "bc".into();
        assert_ne!(chain_hash(GENESIS, 1, &a), chain_hash(GENESIS, 1, &b));
    }
}
