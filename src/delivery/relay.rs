//! The outbox relay: takes due notifications, checks them against the person's current wishes
//! and facts, renders the send in their language, publishes it to the queue, and marks it
//! queued only once the queue confirmed. A crash anywhere leaves the row pending: the next
//! pass publishes it again, and the worker's claim sends it once.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::watch;

use super::Services;
use super::checks;
use crate::queue::QueueMessage;
use std::collections::{HashMap, HashSet};

use crate::store::{DueNotification, Resolved, StoreError};

/// What the relay made of a due notification.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Goes out, with the caps it counts against.
    Send(Resolved, CapUse),
    /// Every channel's provider refused it for good.
    Fail(String),
    /// Not sent, with the reason (consent, segment, cap, no reachable channel…).
    Suppress(String),
    /// Not sent, and never will be: the rule is gone.
    Cancel(String),
    /// Later: quiet hours.
    Defer(Timestamp, String),
}

/// The frequency caps a send counts against: (sends already in the window, the cap).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CapUse {
    /// The person they are counted for (merges resolved).
    pub person: String,
    pub rule: Option<(i64, u32)>,
    pub category: Option<(i64, u32)>,
}

/// How often the relay looks for sends no worker settled.
const SWEEP_EVERY: Duration = Duration::from_secs(30);

/// Runs passes until shutdown. A broker's confirms take a while (tens of milliseconds for a
/// batch): while one pass waits for them, the next one reads and checks its notifications,
/// but for the persons with a send in flight (see [`InFlight`]).
pub async fn run(services: Arc<Services>, mut shutdown: watch::Receiver<bool>) {
    let interval = Duration::from_millis(services.config.relay_interval_ms.max(10));
    let mut swept = std::time::Instant::now();
    let mut publishing: Option<(InFlight, tokio::task::JoinHandle<anyhow::Result<()>>)> = None;
    loop {
        if swept.elapsed() >= SWEEP_EVERY {
            swept = std::time::Instant::now();
            if let Err(e) = sweep(&services).await {
                tracing::warn!(error = %e, "the outbox sweep failed");
            }
        }
        let in_flight = publishing.as_ref().map(|(f, _)| f.clone()).unwrap_or_default();
        let prepared = prepare(&services, &in_flight).await;
        let mut idle = interval;
        if let Some((_, publish)) = publishing.take() {
            match publish.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "the outbox relay could not publish; retrying");
                    idle = interval.max(Duration::from_secs(2));
                }
                Err(e) => tracing::warn!(error = %e, "the outbox relay's publish stopped"),
            }
        }
        match prepared {
            Ok(batch) => {
                if batch.due as i64 >= services.config.relay_batch && idle == interval {
                    idle = Duration::ZERO;
                }
                if !batch.sends.is_empty() {
                    let in_flight = InFlight {
                        sends: batch.sends.len(),
                        persons: batch.persons,
                    };
                    publishing = Some((in_flight, tokio::spawn(publish(services.clone(), batch.sends))));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "the outbox relay could not publish; retrying");
                idle = interval.max(Duration::from_secs(2));
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(idle) => {}
            _ = shutdown.wait_for(|s| *s) => break,
        }
    }
    // A publish under way finishes (or its rows stay pending for the next start).
    if let Some((_, publish)) = publishing {
        let _ = publish.await;
    }
}

/// Hands stranded sends back to the relay (see `Store::requeue_stranded`).
pub async fn sweep(s: &Services) -> anyhow::Result<u64> {
    let now = Timestamp::now();
    let grace = (s.config.lease_secs.max(1) as i64) * 2000;
    // Longer than any retry schedule: a send queued longer than that lost its queue message.
    let queued_for = s.queue_config.retry_max_secs.max(60) as i64
        * 2
        * i64::from(s.queue_config.max_attempts.clamp(1, 50));
    let before = now - jiff::SignedDuration::from_secs(queued_for);
    let n = s
        .store
        .requeue_stranded(now.as_millisecond(), grace, &before.to_string())
        .await?;
    if n > 0 {
        tracing::warn!(sends = n, "sends no worker settled were handed back to the relay");
    }
    Ok(n)
}

/// Notifications checked at once in a pass (each check reads the person's facts).
const CHECKS_AT_ONCE: usize = 16;

/// One pass: returns how many due notifications it handled.
pub async fn pass(s: &Arc<Services>) -> anyhow::Result<usize> {
    let batch = prepare(s, &InFlight::default()).await?;
    publish(s.clone(), batch.sends).await?;
    Ok(batch.due)
}

/// A pass's work up to the queue: how many notifications were due, and the sends staged, each
/// with the provider calls its row had when read, and the persons they go to.
pub struct Prepared {
    pub due: usize,
    pub sends: Vec<(Resolved, i64)>,
    pub persons: HashSet<String>,
}

/// Sends whose publish is under way while the next pass prepares.
#[derive(Debug, Clone, Default)]
pub struct InFlight {
    pub sends: usize,
    /// Their persons (as the rows name them, and as merges resolved them). Caps count staged
    /// sends only once they are marked queued, so a person with a send in flight waits for
    /// the next pass: their caps then count it.
    pub persons: HashSet<String>,
}

/// Reads the due notifications (but those of persons with a send in flight), checks them,
/// settles those that do not go, and stages those that do. On the embedded queue staging also
/// queues them (one transaction): nothing is left to publish.
pub async fn prepare(s: &Arc<Services>, in_flight: &InFlight) -> anyhow::Result<Prepared> {
    let now = Timestamp::now();
    let mut due = s
        .store
        .due_notifications(
            now.as_millisecond(),
            s.config.relay_batch + in_flight.sends as i64,
        )
        .await?;
    // How many were due, for the pace of the passes (those held back come in the next one).
    let count = due.len().min(s.config.relay_batch.max(1) as usize);
    due.retain(|n| !in_flight.persons.contains(&n.person_id));
    due.truncate(s.config.relay_batch.max(1) as usize);
    // The persons' facts in three set-based queries (rules whose segments need visits or
    // diagnoses read theirs one by one).
    let plain: Vec<String> = due
        .iter()
        .filter(|n| s.rules.rule(&n.rule).is_some_and(|r| !needs_history(r)))
        .map(|n| n.person_id.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut facts: HashMap<String, Arc<crate::store::PersonFacts>> = HashMap::new();
    if !plain.is_empty() {
        for f in s.store.persons_facts(&plain).await? {
            facts.insert(f.person_id.clone(), Arc::new(f));
        }
    }
    // Checked concurrently, handled in due order.
    let mut checks = tokio::task::JoinSet::new();
    let mut decisions: Vec<Option<anyhow::Result<Decision>>> = (0..count).map(|_| None).collect();
    let mut waiting = due.iter().cloned().enumerate();
    loop {
        while checks.len() < CHECKS_AT_ONCE {
            let Some((i, n)) = waiting.next() else { break };
            let s = s.clone();
            let known = facts.get(&n.person_id).cloned();
            checks.spawn(async move { (i, decide(&s, &n, now, known).await) });
        }
        match checks.join_next().await {
            Some(Ok((i, d))) => decisions[i] = Some(d),
            Some(Err(e)) => anyhow::bail!("a relay check failed: {e}"),
            None => break,
        }
    }
    let mut sends = Vec::new();
    let mut persons = HashSet::new();
    // Sends this pass already made, per (person, rule) and (person, category): a cap holds
    // within a pass too.
    let mut by_rule: HashMap<(String, String), i64> = HashMap::new();
    let mut by_category: HashMap<(String, String), i64> = HashMap::new();
    for (n, decision) in due.iter().zip(decisions) {
        let decision = match decision.unwrap_or_else(|| Err(anyhow::anyhow!("not checked"))) {
            Ok(d) => d,
            // One unreadable record holds up nothing else (and its content is never logged).
            Err(e) if matches!(e.downcast_ref::<StoreError>(), Some(StoreError::Json(_))) => {
                tracing::warn!(notification = %n.id, "a record the notification needs is unreadable");
                Decision::Suppress("a stored record could not be read".into())
            }
            Err(e) => return Err(e),
        };
        let decision = match decision {
            // Merged into a person with a send in flight: the next pass, when caps count it.
            Decision::Send(_, caps) if in_flight.persons.contains(&caps.person) => continue,
            Decision::Send(r, caps) => {
                let rule_key = (n.person_id.clone(), n.rule.clone());
                let cat_key = (n.person_id.clone(), n.category.clone());
                let over = |cap: Option<(i64, u32)>, done: Option<&i64>| {
                    cap.is_some_and(|(sent, max)| sent + done.copied().unwrap_or(0) >= i64::from(max))
                };
                if over(caps.rule, by_rule.get(&rule_key)) || over(caps.category, by_category.get(&cat_key)) {
                    Decision::Suppress("frequency cap".into())
                } else {
                    *by_rule.entry(rule_key).or_default() += 1;
                    *by_category.entry(cat_key).or_default() += 1;
                    Decision::Send(r, caps)
                }
            }
            other => other,
        };
        match decision {
            Decision::Send(r, caps) => {
                persons.insert(n.person_id.clone());
                persons.insert(caps.person);
                sends.push((r, n.attempts));
            }
            Decision::Fail(why) => s.store.settle_pending(&n.id, "failed", None, &why).await?,
            Decision::Suppress(why) => {
                tracing::info!(notification = %n.id, rule = %n.rule, reason = %why, "notification suppressed");
                s.store.settle_pending(&n.id, "suppressed", None, &why).await?;
            }
            Decision::Cancel(why) => s.store.settle_pending(&n.id, "cancelled", None, &why).await?,
            Decision::Defer(until, why) => {
                s.store
                    .settle_pending(&n.id, "pending", Some(until.as_millisecond()), &why)
                    .await?
            }
        }
    }
    if sends.is_empty() {
        return Ok(Prepared {
            due: count,
            sends,
            persons,
        });
    }
    if let crate::queue::Queue::Embedded(queue) = &s.queue {
        // The queue is in the store: staged, queued and marked in one transaction.
        queue.stage_and_publish(&sends, &messages(&sends)).await?;
        return Ok(Prepared {
            due: count,
            sends: Vec::new(),
            persons: HashSet::new(),
        });
    }
    let staged: Vec<Resolved> = sends.iter().map(|(r, _)| r.clone()).collect();
    s.store.stage_sends(&staged).await?;
    Ok(Prepared {
        due: count,
        sends,
        persons,
    })
}

/// Publishes staged sends to the broker and marks them queued once it confirmed them.
pub async fn publish(s: Arc<Services>, sends: Vec<(Resolved, i64)>) -> anyhow::Result<()> {
    if sends.is_empty() {
        return Ok(());
    }
    s.queue.publish(&messages(&sends)).await?;
    let ids: Vec<(String, i64)> = sends.into_iter().map(|(r, attempts)| (r.id, attempts)).collect();
    s.store.mark_published(&ids).await?;
    Ok(())
}

/// The queue messages of staged sends (first deliveries), in their order.
fn messages(sends: &[(Resolved, i64)]) -> Vec<QueueMessage> {
    sends
        .iter()
        .map(|(r, _)| QueueMessage {
            notification: r.id.clone(),
            channel: r.channel.clone(),
            attempt: 0,
        })
        .collect()
}

/// Whether a rule's segment reads the person's visits or diagnoses.
fn needs_history(rule: &crate::rules::Rule) -> bool {
    let seg = &rule.config.segment;
    !seg.diagnosis.is_empty() || seg.last_visit.is_some()
}

/// Checks one due notification and, when it goes, renders it for its channel. `known`: the
/// person's facts when the pass read them already.
pub async fn decide(
    s: &Services,
    n: &DueNotification,
    now: Timestamp,
    known: Option<Arc<crate::store::PersonFacts>>,
) -> anyhow::Result<Decision> {
    let Some(rule) = s.rules.rule(&n.rule) else {
        return Ok(Decision::Cancel(format!("rule {} is no longer enabled", n.rule)));
    };
    let facts = match known {
        Some(f) => f,
        None => match s.store.person_facts(&n.person_id, needs_history(rule)).await? {
            Some(f) => Arc::new(f),
            None => return Ok(Decision::Suppress("person not found".into())),
        },
    };
    if facts.profile.deceased == Some(true) {
        return Ok(Decision::Suppress("the person is deceased".into()));
    }
    let tz = facts
        .preferences
        .timezone
        .as_deref()
        .and_then(|t| jiff::tz::TimeZone::get(t).ok())
        .unwrap_or_else(|| s.rules.timezone.clone());
    let chain = checks::language_chain(&facts, &s.config.default_language);
    let language = chain.first().map(String::as_str);
    if let Err(why) = checks::segment(&rule.config.segment, &facts, language, now, &tz) {
        return Ok(Decision::Suppress(why));
    }
    let mut caps = CapUse {
        person: facts.person_id.clone(),
        ..CapUse::default()
    };
    if let Some((max, per)) = rule.cap {
        let since = per.before(now, &tz).to_string();
        let sent = s
            .store
            .recent_sends(&facts.person_id, Some(&n.rule), &n.category, &since)
            .await?;
        if sent >= i64::from(max) {
            let per = rule.config.cap.as_ref().map_or("", |c| c.per.as_str());
            return Ok(Decision::Suppress(format!("frequency cap: {max} per {per}")));
        }
        caps.rule = Some((sent, max));
    }
    if let Some(cap) = s.config.caps.get(&n.category)
        && let Ok(per) = crate::rules::Span::parse(&cap.per)
    {
        let since = per.before(now, &tz).to_string();
        let sent = s
            .store
            .recent_sends(&facts.person_id, None, &n.category, &since)
            .await?;
        if sent >= i64::from(cap.max) {
            return Ok(Decision::Suppress(format!(
                "{} frequency cap: {} per {}",
                n.category, cap.max, cap.per
            )));
        }
        caps.category = Some((sent, cap.max));
    }
    // A notice about an appointment that has begun (the hub was down, or quiet hours held it)
    // helps nobody; a no-show notice is about the past by nature.
    let start = n
        .context
        .pointer("/record/start")
        .and_then(|v| v.as_str())
        .and_then(|t| t.parse::<Timestamp>().ok());
    let about_appointment = n
        .context
        .get("event")
        .and_then(|e| e.as_str())
        .is_some_and(|e| e.starts_with("appointment.") && e != "appointment.noshow");
    if about_appointment && start.is_some_and(|t| t <= now) {
        return Ok(Decision::Cancel("the appointment has already begun".into()));
    }
    if rule.config.quiet_hours
        && let Some(q) = &s.config.quiet_hours
        && let Some(until) = checks::quiet_until(q, now, &tz)
    {
        if about_appointment && start.is_some_and(|t| t <= until) {
            return Ok(Decision::Cancel(
                "quiet hours last until the appointment begins".into(),
            ));
        }
        return Ok(Decision::Defer(until, "quiet hours".into()));
    }
    // The first channel of the rule's order that is configured, allowed and reachable.
    let rejected = if n.attempts > 0 {
        s.store.rejected_channels(&n.id).await?
    } else {
        Vec::new()
    };
    let mut why_not = Vec::new();
    for name in &n.channels {
        if rejected.contains(name) {
            why_not.push(format!("{name}: refused by the provider"));
            continue;
        }
        let Some(channel) = s.channels.get(name) else {
            why_not.push(format!("{name}: not configured"));
            continue;
        };
        if let Err(e) = checks::consent(&n.category, name, &facts.consents, &facts.profile) {
            why_not.push(format!("{name}: {e}"));
            continue;
        }
        let Some(address) = checks::address(channel.address(), &facts) else {
            why_not.push(format!("{name}: no address"));
            continue;
        };
        let Some(lang) = s.templates.pick(&n.template, &chain) else {
            return Ok(Decision::Suppress(format!("no template named {}", n.template)));
        };
        let link = s
            .config
            .links
            .get(&n.template)
            .map(String::as_str)
            .or(s.config.clinic.url.as_deref());
        let mut ctx = checks::context(&n.context, &facts, &lang, &s.config.clinic, link, &tz, now);
        if n.category == "marketing" {
            ctx["stop"] = checks::stop_hint(&lang).into();
        }
        let rendered = match s.templates.render_in(&n.template, &lang, &ctx) {
            Ok(r) => r,
            Err(e) => return Ok(Decision::Suppress(e)),
        };
        return Ok(Decision::Send(
            Resolved {
                id: n.id.clone(),
                channel: name.clone(),
                address,
                timezone: tz.iana_name().map(str::to_string),
                language: rendered.language,
                title: rendered.title,
                body: rendered.body,
            },
            caps,
        ));
    }
    if !rejected.is_empty()
        && n.channels
            .iter()
            .all(|c| rejected.contains(c) || !s.channels.contains_key(c))
    {
        return Ok(Decision::Fail(format!(
            "every channel refused it ({})",
            why_not.join("; ")
        )));
    }
    Ok(Decision::Suppress(format!(
        "no reachable channel ({})",
        why_not.join("; ")
    )))
}
