//! Time-based rules: reminders before an appointment, birthdays, recalls. Each rule is checked
//! on its cron schedule (every 5 minutes by default); the notifications it finds are inserted
//! with their de-duplication key, so a check that runs again — or on two replicas — makes
//! nothing twice.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use serde_json::json;
use tokio::sync::watch;

use super::Services;
use crate::rules::{Rule, Span, parse_clock};

const DEFAULT_SCHEDULE: &str = "*/5 * * * *";

/// Runs every scheduled rule on its schedule until shutdown.
pub async fn run(s: Arc<Services>, mut shutdown: watch::Receiver<bool>) {
    let rules: Vec<Rule> = s
        .rules
        .rules
        .iter()
        .filter(|r| r.config.trigger.event.is_none())
        .cloned()
        .collect();
    if rules.is_empty() {
        return;
    }
    // Once at start (a hub that was down catches up), then on each rule's schedule.
    let mut next: Vec<Timestamp> = vec![Timestamp::now(); rules.len()];
    loop {
        let now = Timestamp::now();
        for (i, rule) in rules.iter().enumerate() {
            if next[i] > now {
                continue;
            }
            match check(&s, rule, now).await {
                Ok(n) if n > 0 => tracing::info!(rule = rule.name(), created = n, "scheduled rule"),
                Ok(_) => {}
                Err(e) => tracing::warn!(rule = rule.name(), error = %e, "scheduled rule failed"),
            }
            let expr = rule
                .config
                .trigger
                .schedule
                .as_deref()
                .unwrap_or(DEFAULT_SCHEDULE);
            next[i] = crate::sources::fhir::schedule::parse(expr)
                .ok()
                .and_then(|c| crate::sources::fhir::schedule::next_after(&c, now, &s.rules.timezone))
                .map(|z| z.timestamp())
                .unwrap_or(now + jiff::SignedDuration::from_mins(5));
        }
        let soonest = next.iter().min().copied().unwrap_or(now);
        let wait = (soonest.as_millisecond() - Timestamp::now().as_millisecond()).clamp(100, 60_000);
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(wait as u64)) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
    }
}

/// Checks one scheduled rule now; returns how many notifications it created.
pub async fn check(s: &Services, rule: &Rule, now: Timestamp) -> anyhow::Result<u64> {
    let c = &rule.config;
    let tz = &s.rules.timezone;
    let sort_key = |t: Timestamp| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    // Scheduled sends go out at `at` (local time) when given, otherwise at once.
    let due_today = || -> Timestamp {
        let Some(minutes) = c.trigger.at.as_deref().and_then(|a| parse_clock(a).ok()) else {
            return now;
        };
        let time =
            jiff::civil::Time::new((minutes / 60) as i8, (minutes % 60) as i8, 0, 0).unwrap_or_default();
        now.to_zoned(tz.clone())
            .date()
            .to_datetime(time)
            .to_zoned(tz.clone())
            .map(|z| z.timestamp())
            .unwrap_or(now)
            .max(now)
    };
    // A notification of this rule about one fact, under its de-duplication key.
    let owed = |fact: &crate::store::ScheduledFact, context, cause, due| {
        let key = s
            .rules
            .dedupe_key(rule, &fact.person_id, fact.subject.as_deref(), &fact.data, now);
        s.rules.row(
            rule,
            &fact.person_id,
            fact.subject.clone(),
            key,
            context,
            cause,
            due,
            now,
        )
    };
    let mut rows = Vec::new();
    if let (Some(_), Some(offset)) = (&c.trigger.before, &c.trigger.offset) {
        let offset = Span::parse(offset).map_err(anyhow::Error::msg)?;
        let window = match &c.trigger.window {
            Some(w) => Span::parse(w).map_err(anyhow::Error::msg)?,
            None => Span::Seconds(offset.approx_secs() / 2),
        };
        // Remind when now is within [start - offset, start - offset + window).
        let latest = now + jiff::SignedDuration::from_secs(offset.approx_secs());
        let earliest = latest - jiff::SignedDuration::from_secs(window.approx_secs());
        for fact in s
            .store
            .upcoming_appointments(&sort_key(earliest), &sort_key(latest))
            .await?
        {
            if fact
                .sort_at
                .as_deref()
                .and_then(crate::rules::parse_sort_key)
                .is_some_and(|t| t <= now)
            {
                continue;
            }
            let cause = format!(
                "{} before appointment.start",
                c.trigger.offset.as_deref().unwrap_or("")
            );
            let context = json!({"event": "appointment.upcoming", "record": fact.data});
            rows.push(owed(&fact, context, cause, now));
        }
    } else if c.trigger.birthday == Some(true) {
        let today = now.to_zoned(tz.clone());
        let month_day = format!("{:02}-{:02}", today.month(), today.day());
        let due = due_today();
        for fact in s.store.birthdays(&month_day).await? {
            rows.push(owed(&fact, json!({"event": "birthday"}), "birthday".into(), due));
        }
    } else if let Some(recall) = &c.trigger.recall {
        let (from, to) = (
            Span::parse(&recall.from).map_err(anyhow::Error::msg)?,
            Span::parse(&recall.to).map_err(anyhow::Error::msg)?,
        );
        // The last visit between `to` and `from` ago.
        let (oldest, newest) = (to.before(now, tz), from.before(now, tz));
        let due = due_today();
        for fact in s
            .store
            .last_visits_between(&sort_key(oldest), &sort_key(newest))
            .await?
        {
            if recall.unless_booked
                && s.store
                    .has_booked_appointment(&fact.person_id, &sort_key(now))
                    .await?
            {
                continue;
            }
            let cause = format!("recall {}–{} after the last visit", recall.from, recall.to);
            rows.push(owed(
                &fact,
                json!({"event": "recall", "last_visit": fact.sort_at}),
                cause,
                due,
            ));
        }
    }
    let created = if rows.is_empty() {
        0
    } else {
        s.store.insert_notifications(&rows).await?
    };
    s.store
        .set_rule_run(rule.name(), &now.to_string(), created as i64)
        .await?;
    Ok(created)
}
