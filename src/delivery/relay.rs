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
use crate::store::{DueNotification, Resolved};

/// What the relay made of a due notification.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Send(Resolved),
    /// Not sent, with the reason (consent, segment, cap, no reachable channel…).
    Suppress(String),
    /// Not sent, and never will be: the rule is gone.
    Cancel(String),
    /// Later: quiet hours.
    Defer(Timestamp, String),
}

/// Runs passes until shutdown.
pub async fn run(services: Arc<Services>, mut shutdown: watch::Receiver<bool>) {
    let interval = Duration::from_millis(services.config.relay_interval_ms.max(10));
    loop {
        let idle = match pass(&services).await {
            Ok(n) if n as i64 >= services.config.relay_batch => Duration::ZERO,
            Ok(_) => interval,
            Err(e) => {
                tracing::warn!(error = %e, "the outbox relay could not publish; retrying");
                interval.max(Duration::from_secs(2))
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(idle) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
    }
}

/// Notifications checked at once in a pass (each check reads the person's facts).
const CHECKS_AT_ONCE: usize = 16;

/// One pass: returns how many due notifications it handled.
pub async fn pass(s: &Arc<Services>) -> anyhow::Result<usize> {
    let now = Timestamp::now();
    let due = s
        .store
        .due_notifications(now.as_millisecond(), s.config.relay_batch)
        .await?;
    let count = due.len();
    // Checked concurrently, handled in due order.
    let mut checks = tokio::task::JoinSet::new();
    let mut decisions: Vec<Option<anyhow::Result<Decision>>> = (0..count).map(|_| None).collect();
    let mut waiting = due.iter().cloned().enumerate();
    loop {
        while checks.len() < CHECKS_AT_ONCE {
            let Some((i, n)) = waiting.next() else { break };
            let s = s.clone();
            checks.spawn(async move { (i, decide(&s, &n, now).await) });
        }
        match checks.join_next().await {
            Some(Ok((i, d))) => decisions[i] = Some(d),
            Some(Err(e)) => anyhow::bail!("a relay check failed: {e}"),
            None => break,
        }
    }
    let mut sends = Vec::new();
    for (n, decision) in due.iter().zip(decisions) {
        let decision = decision.unwrap_or_else(|| Err(anyhow::anyhow!("not checked")));
        match decision? {
            Decision::Send(r) => sends.push(r),
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
    if !sends.is_empty() {
        s.store.stage_sends(&sends).await?;
        let messages: Vec<QueueMessage> = sends
            .iter()
            .map(|r| QueueMessage {
                notification: r.id.clone(),
                channel: r.channel.clone(),
                attempt: 0,
            })
            .collect();
        s.queue.publish(&messages).await?;
        let ids: Vec<String> = sends.into_iter().map(|r| r.id).collect();
        s.store.mark_published(&ids).await?;
    }
    Ok(count)
}

/// Checks one due notification and, when it goes, renders it for its channel.
pub async fn decide(s: &Services, n: &DueNotification, now: Timestamp) -> anyhow::Result<Decision> {
    let Some(rule) = s.rules.rule(&n.rule) else {
        return Ok(Decision::Cancel(format!("rule {} is no longer enabled", n.rule)));
    };
    let Some(facts) = s.store.person_facts(&n.person_id).await? else {
        return Ok(Decision::Suppress("person not found".into()));
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
    if let Some((max, per)) = rule.cap {
        let since = per.before(now, &tz).to_string();
        if s.store
            .recent_sends(&facts.person_id, Some(&n.rule), &n.category, &since)
            .await?
            >= i64::from(max)
        {
            return Ok(Decision::Suppress(format!(
                "frequency cap: {max} per {}",
                rule.config.cap.as_ref().map_or("", |c| c.per.as_str())
            )));
        }
    }
    if let Some(cap) = s.config.caps.get(&n.category)
        && let Ok(per) = crate::rules::Span::parse(&cap.per)
    {
        let since = per.before(now, &tz).to_string();
        if s.store
            .recent_sends(&facts.person_id, None, &n.category, &since)
            .await?
            >= i64::from(cap.max)
        {
            return Ok(Decision::Suppress(format!(
                "{} frequency cap: {} per {}",
                n.category, cap.max, cap.per
            )));
        }
    }
    if rule.config.quiet_hours
        && let Some(q) = &s.config.quiet_hours
        && let Some(until) = checks::quiet_until(q, now, &tz)
    {
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
        return Ok(Decision::Send(Resolved {
            id: n.id.clone(),
            channel: name.clone(),
            address,
            language: rendered.language,
            title: rendered.title,
            body: rendered.body,
        }));
    }
    Ok(Decision::Suppress(format!(
        "no reachable channel ({})",
        why_not.join("; ")
    )))
}
