//! The notification pages: the outbox by status, each channel's queue, the per-channel report
//! of the last 30 days with a chart, and the failed sends with the provider's answer. No
//! address and no text of a send is read here; a provider's answer can quote an address, so
//! for roles that do not see patient data its digits and e-mail addresses are masked.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::response::Response;
use serde_json::{Value, json};

use super::overview::queues_and_outbox;
use super::{ConsoleState, Viewer, chart, render, store_problem};
use crate::api::Role;

/// Failed sends listed at most.
const FAILED_ROWS: i64 = 100;

/// A provider's answer with what could be a contact masked: runs of five or more digits
/// (phone numbers) and words with an `@` (e-mail addresses).
pub fn mask_contacts(text: &str) -> String {
    let words: Vec<String> = text
        .split(' ')
        .map(|w| {
            if w.contains('@') {
                return "•••@•••".to_string();
            }
            let mut out = String::with_capacity(w.len());
            let mut digits = String::new();
            let flush = |digits: &mut String, out: &mut String| {
                if digits.chars().filter(char::is_ascii_digit).count() >= 5 {
                    out.push_str("•••");
                } else {
                    out.push_str(digits);
                }
                digits.clear();
            };
            for c in w.chars() {
                if c.is_ascii_digit()
                    || (!digits.is_empty() && matches!(c, '-' | '.' | '(' | ')'))
                    || (c == '+' && digits.is_empty())
                {
                    digits.push(c);
                } else {
                    flush(&mut digits, &mut out);
                    out.push(c);
                }
            }
            flush(&mut digits, &mut out);
            out
        })
        .collect();
    words.join(" ")
}

/// `GET /notifications`.
pub(super) async fn page(State(s): State<ConsoleState>, v: Viewer) -> Response {
    match build(&s, &v).await {
        Ok(page) => render(&s, &v, "notifications.html", page),
        Err(e) => store_problem(&s, &v, e),
    }
}

async fn build(s: &ConsoleState, v: &Viewer) -> Result<Value, crate::store::StoreError> {
    let now = jiff::Timestamp::now();
    let from = (now - jiff::SignedDuration::from_hours(24 * 30)).to_string();
    let to = (now + jiff::SignedDuration::from_secs(1)).to_string();
    let report = s.store.channel_report(&from, &to).await?;
    let mut per_channel: BTreeMap<String, [i64; 6]> = BTreeMap::new();
    for l in &report {
        let e = per_channel.entry(l.channel.clone()).or_default();
        for (slot, n) in [l.sent, l.delivered, l.failed, l.queued, l.cancelled, l.suppressed]
            .into_iter()
            .enumerate()
        {
            e[slot] += n;
        }
    }
    let rows: Vec<(String, Vec<(&'static str, i64)>)> = per_channel
        .into_iter()
        .map(|(name, n)| {
            let parts = ["sent", "delivered", "failed", "queued", "cancelled", "suppressed"]
                .into_iter()
                .zip(n)
                .collect();
            (name, parts)
        })
        .collect();
    let sees_patients = matches!(v.role, Some(Role::Admin | Role::Clinician));
    let failed: Vec<Value> = s
        .store
        .failed_sends(FAILED_ROWS)
        .await?
        .into_iter()
        .map(|mut f| {
            if !sees_patients {
                f.detail = f.detail.as_deref().map(mask_contacts);
            }
            json!(f)
        })
        .collect();
    let (channels, outbox) = queues_and_outbox(s).await?;
    Ok(json!({
        "outbox": outbox,
        "channels": channels,
        "report": report,
        "chart": chart::stacked(&rows, v.lang.strings()["channel_report"]),
        "failed": failed,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contacts_in_a_providers_answer_are_masked() {
        assert_eq!(
            mask_contacts("21211: The 'To' number +84903123456 is not a valid phone number"),
            "•••: The 'To' number ••• is not a valid phone number"
        );
        assert_eq!(
            mask_contacts("550 5.1.1 <lan@example.vn>: mailbox unavailable"),
            "550 5.1.1 •••@••• mailbox unavailable"
        );
        assert_eq!(
            mask_contacts("HTTP 429, retry after 30 s"),
            "HTTP 429, retry after 30 s"
        );
    }
}
