//! `carehub linkage-eval`: how well the matching path links a labelled set of person records.
//!
//! The CSV's rows go, as mapped records, through the same store code as ingest (batch planning,
//! blocking-key look-ups, the configured model) into a scratch SQLite store; the persons they
//! end up in are compared with the ground-truth column, pair by pair. Review decisions count as
//! "not linked" (a person is created and a review item opened), as they would until a human
//! confirms them.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};

use crate::config::{SqliteSync, StoreConfig};
use crate::identity::{IdentityConfig, Matcher};
use crate::model::{
    Address, BirthDate, ContactPoint, ContactSystem, HumanName, Identifier, ProfilePatch, Sex,
};
use crate::store::{Disposition, NewRecord, Store};

/// The fields the tool understands, as `--field NAME=COLUMN` (or `NAME=COL1+COL2`, joined by a space).
pub const FIELDS: [&str; 11] = [
    "given",
    "family",
    "birth_date",
    "sex",
    "phone",
    "email",
    "street",
    "city",
    "postcode",
    "state",
    "identifier",
];

/// The figures printed as one JSON line.
#[derive(Debug, serde::Serialize)]
pub struct Figures {
    pub records: usize,
    pub true_pairs: u64,
    pub predicted_pairs: u64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Records whose best look-alike fell in the review band (left unlinked).
    pub reviews: u64,
    pub seconds: f64,
}

/// Loads `csv` through the matching path and scores the result against `truth`.
pub async fn evaluate(
    csv: &Path,
    truth: &str,
    fields: &[(String, String)],
    identity: &IdentityConfig,
    name_frequencies: bool,
) -> anyhow::Result<Figures> {
    for (name, _) in fields {
        if !FIELDS.contains(&name.as_str()) {
            bail!("unknown field {name} (known: {})", FIELDS.join(", "));
        }
    }
    let text = std::fs::read_to_string(csv).with_context(|| format!("reading {}", csv.display()))?;
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header = split_csv(lines.next().context("the CSV is empty")?);
    let column = |name: &str| {
        header
            .iter()
            .position(|h| h.trim() == name)
            .with_context(|| format!("no column {name} in the CSV header"))
    };
    let truth_col = column(truth)?;
    let mut mapped: Vec<(&str, Vec<usize>)> = Vec::new();
    for (field, cols) in fields {
        let idx = cols.split('+').map(column).collect::<anyhow::Result<Vec<_>>>()?;
        mapped.push((field.as_str(), idx));
    }

    let dir = std::env::temp_dir().join(format!("carehub-linkage-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir)?;
    let store_config = StoreConfig {
        url: format!("sqlite://{}", dir.join("scratch.db").display()),
        sqlite_synchronous: SqliteSync::Normal,
        ..StoreConfig::default()
    };
    let result = run(
        &store_config,
        identity,
        name_frequencies,
        lines,
        &mapped,
        truth_col,
    )
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn run<'a>(
    store_config: &StoreConfig,
    identity: &IdentityConfig,
    name_frequencies: bool,
    lines: impl Iterator<Item = &'a str>,
    mapped: &[(&str, Vec<usize>)],
    truth_col: usize,
) -> anyhow::Result<Figures> {
    let mut records = Vec::new();
    let mut truths = Vec::new();
    for (n, line) in lines.enumerate() {
        let cells = split_csv(line);
        let cell = |cols: &[usize]| {
            let v = cols
                .iter()
                .filter_map(|&c| cells.get(c).map(|s| s.trim()))
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
            (!v.is_empty()).then_some(v)
        };
        truths.push(
            cells
                .get(truth_col)
                .map(|s| s.trim().to_string())
                // A row without a label is its own entity: it must not pair with every other.
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| format!("\u{0}row{n}")),
        );
        let mut patch = ProfilePatch::default();
        let mut name = HumanName::default();
        let mut address = Address::default();
        for (field, cols) in mapped {
            let Some(v) = cell(cols) else { continue };
            match *field {
                "given" => name.given = vec![v],
                "family" => name.family = Some(v),
                "birth_date" => patch.birth_date = birth_date(&v),
                "sex" => patch.sex = sex(&v),
                "phone" => patch.telecom.push(contact(ContactSystem::Phone, v)),
                "email" => patch.telecom.push(contact(ContactSystem::Email, v)),
                "street" => address.lines = vec![v],
                "city" => address.city = Some(v),
                "postcode" => address.postal_code = Some(v),
                "state" => address.state = Some(v),
                "identifier" => patch.identifiers.push(Identifier {
                    system: "linkage-eval".into(),
                    value: v,
                    kind: None,
                }),
                _ => {}
            }
        }
        if name != HumanName::default() {
            patch.names.push(name);
        }
        if address != Address::default() {
            patch.addresses.push(address);
        }
        records.push(NewRecord {
            connector: "linkage-eval".into(),
            origin: None,
            received_at: jiff::Timestamp::now().to_string(),
            sender: Some("linkage-eval".into()),
            control_id: Some(n.to_string()),
            message_type: None,
            charset: None,
            content_hash: crate::pipeline::hex_digest(&Sha256::digest(format!("{n}|{line}").as_bytes())),
            raw: line.as_bytes().to_vec(),
            disposition: Disposition::Apply {
                mapping: "linkage-eval".into(),
                source_system: "csv".into(),
                patch: (!patch.is_empty()).then_some(patch),
                records: Vec::new(),
                merge: None,
                warnings: Vec::new(),
            },
            cursor: None,
            match_input: None,
            reprocess: None,
        });
    }

    let mut matcher = Matcher::new(identity).map_err(|e| anyhow::anyhow!("identity.model: {e}"))?;
    if name_frequencies {
        // As a hub restarted over a store holding these records would count them.
        let patches = records.iter().filter_map(|r| match &r.disposition {
            Disposition::Apply { patch, .. } => patch.as_ref(),
            _ => None,
        });
        matcher = matcher.with_name_frequencies(patches);
    }
    let store = Store::open(store_config).await?.with_matcher(matcher);
    let started = Instant::now();
    let mut persons = Vec::with_capacity(records.len());
    for chunk in records.chunks(100) {
        for applied in store.apply_batch(chunk).await? {
            persons.push(
                applied
                    .person_id
                    .unwrap_or_else(|| format!("none-{}", applied.message_id)),
            );
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let reviews = store.review_count().await?;
    Ok(score(&persons, &truths, reviews, seconds))
}

/// Pairwise precision and recall of a clustering against the truth.
pub fn score(predicted: &[String], truth: &[String], reviews: u64, seconds: f64) -> Figures {
    fn pairs(n: u64) -> u64 {
        n * n.saturating_sub(1) / 2
    }
    let mut by_pred: HashMap<&str, u64> = HashMap::new();
    let mut by_truth: HashMap<&str, u64> = HashMap::new();
    let mut by_both: HashMap<(&str, &str), u64> = HashMap::new();
    for (p, t) in predicted.iter().zip(truth) {
        *by_pred.entry(p).or_default() += 1;
        *by_truth.entry(t).or_default() += 1;
        *by_both.entry((p, t)).or_default() += 1;
    }
    let predicted_pairs: u64 = by_pred.values().map(|&n| pairs(n)).sum();
    let true_pairs: u64 = by_truth.values().map(|&n| pairs(n)).sum();
    let hits: u64 = by_both.values().map(|&n| pairs(n)).sum();
    let ratio = |a: u64, b: u64| if b == 0 { 1.0 } else { a as f64 / b as f64 };
    let precision = ratio(hits, predicted_pairs);
    let recall = ratio(hits, true_pairs);
    let f1 = if precision + recall == 0.0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    };
    Figures {
        records: predicted.len(),
        true_pairs,
        predicted_pairs,
        precision,
        recall,
        f1,
        reviews,
        seconds,
    }
}

fn birth_date(v: &str) -> Option<BirthDate> {
    let digits: String = v.chars().filter(char::is_ascii_digit).collect();
    let iso = if digits.len() == 8 && !v.contains('-') {
        format!("{}-{}-{}", &digits[..4], &digits[4..6], &digits[6..])
    } else {
        v.to_string()
    };
    BirthDate::try_from(iso).ok()
}

fn sex(v: &str) -> Option<Sex> {
    match v.to_ascii_lowercase().as_str() {
        "m" | "male" => Some(Sex::Male),
        "f" | "female" => Some(Sex::Female),
        "o" | "other" => Some(Sex::Other),
        _ => None,
    }
}

fn contact(system: ContactSystem, value: String) -> ContactPoint {
    ContactPoint {
        system,
        value,
        contact_use: None,
        rank: None,
    }
}

/// One CSV line's cells: commas, double quotes around a cell, `""` for a quote inside one.
pub fn split_csv(line: &str) -> Vec<String> {
    let mut cells = Vec::new();
    let mut cell = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cell.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => cells.push(std::mem::take(&mut cell)),
            _ => cell.push(c),
        }
    }
    cells.push(cell);
    cells
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_with_quotes_and_commas() {
        assert_eq!(
            split_csv(r#"1,"Lê, Văn",,"say ""hi""""#),
            vec!["1", "Lê, Văn", "", r#"say "hi""#]
        );
    }

    #[test]
    fn pairwise_scores_count_pairs_not_records() {
        let pred: Vec<String> = ["a", "a", "a", "b"].iter().map(|s| s.to_string()).collect();
        let truth: Vec<String> = ["1", "1", "2", "2"].iter().map(|s| s.to_string()).collect();
        let f = score(&pred, &truth, 0, 0.0);
        assert_eq!((f.predicted_pairs, f.true_pairs), (3, 2));
        assert!((f.precision - 1.0 / 3.0).abs() < 1e-9);
        assert!((f.recall - 0.5).abs() < 1e-9);
    }

    #[test]
    fn febrl_style_birth_dates_are_read() {
        assert_eq!(
            birth_date("19560409").map(String::from).as_deref(),
            Some("1956-04-09")
        );
        assert_eq!(
            birth_date("1971-06-24").map(String::from).as_deref(),
            Some("1971-06-24")
        );
        assert!(birth_date("19561309").is_none());
    }
}
