//! The notification side of [`Store`]: the outbox relay, workers, consent, preferences,
//! interactions, reports, the scheduler's facts and the embedded queue (queries in `sql_notify.rs`,
//! `sql_schedule.rs` and `sql_queue.rs`).

use super::*;

impl Store {
    /// Pending notifications whose time has come, oldest first.
    pub async fn due_notifications(
        &self,
        now_ms: i64,
        limit: i64,
    ) -> Result<Vec<DueNotification>, StoreError> {
        on_backend!(self, s => s.due_notifications(now_ms, limit).await)
    }

    /// Channels a notification's provider refused for good (the relay skips them).
    pub async fn rejected_channels(&self, id: &str) -> Result<Vec<String>, StoreError> {
        on_backend!(self, s => s.rejected_channels(id).await)
    }

    /// Writes the sends as they will be queued (still `pending`: a crash before the queue
    /// confirms leaves them to the next relay pass). `published_at` is set here: a worker
    /// may take a send before the relay marks it queued, and caps count from it.
    pub async fn stage_sends(&self, sends: &[Resolved]) -> Result<(), StoreError> {
        on_backend!(self, s => s.stage_sends(sends).await)
    }

    /// The embedded queue's publish: stages each send, queues its message (`rows`, as
    /// [`Self::queue_push`] takes them, one per send in the same order) and marks it `queued`,
    /// in one transaction on SQLite. Each send comes with the provider calls its row had when
    /// the relay read it; a row changed since (cancelled, taken back) is neither staged nor
    /// queued.
    pub async fn stage_and_enqueue(
        &self,
        sends: &[(Resolved, i64)],
        rows: &[(String, String, String, i64)],
    ) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.stage_and_enqueue(sends, rows).await,
            Backend::Postgres(s) => {
                let staged: Vec<Resolved> = sends.iter().map(|(r, _)| r.clone()).collect();
                s.stage_sends(&staged).await?;
                s.queue_push(rows).await?;
                let ids: Vec<(String, i64)> = sends.iter().map(|(r, a)| (r.id.clone(), *a)).collect();
                s.mark_published(&ids).await
            }
        }
    }

    /// Whether this store groups the workers' claims and outcomes itself (SQLite's outbox
    /// writer does; on PostgreSQL the workers group theirs, see `delivery/ledger.rs`).
    pub fn groups_send_writes(&self) -> bool {
        matches!(self.backend, Backend::Sqlite(_))
    }

    /// Marks staged sends `queued`: the queue confirmed them.
    /// Each id comes with the provider calls the row had when staged: a row a worker
    /// already took (and perhaps sent back to the relay) is left alone.
    pub async fn mark_published(&self, ids: &[(String, i64)]) -> Result<(), StoreError> {
        on_backend!(self, s => s.mark_published(ids).await)
    }

    /// Settles a pending notification without a send: `suppressed` or `cancelled` with the
    /// reason, or still `pending` with a later `due_at` (deferred by quiet hours).
    pub async fn settle_pending(
        &self,
        id: &str,
        status: &str,
        due_at: Option<i64>,
        detail: &str,
    ) -> Result<(), StoreError> {
        on_backend!(self, s => s.settle_pending(id, status, due_at, detail).await)
    }

    /// A worker takes a send for `lease_ms`. Only a send staged for this channel, not
    /// settled, and not held by another worker is handed out.
    pub async fn claim_send(
        &self,
        id: &str,
        channel: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<Claim, StoreError> {
        let claim = SendClaim {
            id: id.to_string(),
            channel: channel.to_string(),
            now_ms,
            lease_ms,
        };
        let mut claims = self.send_ops(std::slice::from_ref(&claim), &[]).await?;
        Ok(claims.pop().unwrap_or(Claim::Missing))
    }

    /// Records a provider call and its effect on the notification, in one transaction.
    pub async fn record_attempt(&self, o: &AttemptOutcome) -> Result<(), StoreError> {
        self.send_ops(&[], std::slice::from_ref(o)).await.map(|_| ())
    }

    /// Outcomes to record and sends to claim, in one transaction (the workers' group
    /// commit): outcomes first, then the claims, whose answers come back in order.
    pub async fn send_ops(
        &self,
        claims: &[SendClaim],
        outcomes: &[AttemptOutcome],
    ) -> Result<Vec<Claim>, StoreError> {
        on_backend!(self, s => s.send_ops(claims, outcomes).await)
    }

    /// A delivery receipt from a provider webhook. Returns whether a send matched.
    pub async fn delivery_receipt(
        &self,
        channel: &str,
        provider_id: &str,
        status: &str,
        detail: Option<&str>,
    ) -> Result<bool, StoreError> {
        on_backend!(self, s => s.delivery_receipt(channel, provider_id, status, detail).await)
    }

    /// The persons a channel has sent to at this address (who a STOP reply comes from).
    pub async fn persons_at_address(&self, channel: &str, address: &str) -> Result<Vec<String>, StoreError> {
        on_backend!(self, s => s.persons_at_address(channel, address).await)
    }

    /// Removes a refusal (a START after a STOP): what held before it holds again.
    pub async fn clear_denial(
        &self,
        person: &str,
        category: &str,
        channel: &str,
    ) -> Result<bool, StoreError> {
        on_backend!(self, s => s.clear_denial(person, category, channel).await)
    }

    /// Records a consent decision; with `deny`, cancels the person's pending sends it covers.
    pub async fn set_consent(&self, person: &str, c: &ConsentView) -> Result<u64, StoreError> {
        on_backend!(self, s => s.set_consent(person, c).await)
    }

    pub async fn consents(&self, person: &str) -> Result<Vec<ConsentView>, StoreError> {
        on_backend!(self, s => s.consents(person).await)
    }

    pub async fn preferences(&self, person: &str) -> Result<Preferences, StoreError> {
        on_backend!(self, s => s.preferences(person).await)
    }

    pub async fn set_preferences(&self, person: &str, p: &Preferences) -> Result<(), StoreError> {
        on_backend!(self, s => s.set_preferences(person, p).await)
    }

    /// The person a notification reaches after merges, with what the relay checks.
    /// `history`: also read the last visit and the diagnoses (only segments need them).
    pub async fn person_facts(&self, person: &str, history: bool) -> Result<Option<PersonFacts>, StoreError> {
        on_backend!(self, s => s.person_facts(person, history).await)
    }

    /// The facts (without visits and diagnoses) of several persons at once, in three
    /// set-based queries; persons merged away or unknown are left out (the relay reads
    /// those one by one).
    pub async fn persons_facts(&self, ids: &[String]) -> Result<Vec<PersonFacts>, StoreError> {
        on_backend!(self, s => s.persons_facts(ids).await)
    }

    /// Sends of a rule (or, with `rule` None, of a category) to a person since `since`.
    pub async fn recent_sends(
        &self,
        person: &str,
        rule: Option<&str>,
        category: &str,
        since: &str,
    ) -> Result<i64, StoreError> {
        on_backend!(self, s => s.recent_sends(person, rule, category, since).await)
    }

    /// A person's notifications (and those of persons merged into them), newest first.
    pub async fn interactions(&self, person: &str, limit: i64) -> Result<Vec<InteractionView>, StoreError> {
        on_backend!(self, s => s.interactions(person, limit).await)
    }

    /// Notifications created in [from, to) by channel, rule and status.
    pub async fn channel_report(&self, from: &str, to: &str) -> Result<Vec<ChannelReportLine>, StoreError> {
        on_backend!(self, s => s.channel_report(from, to).await)
    }

    /// Sends left behind go back to the relay: `sending` whose worker's hold ran out long
    /// ago (the worker died), `queued` published longer ago than `queued_ms` (its queue
    /// message was lost or dead-lettered). A resend is claimed once, as always.
    pub async fn requeue_stranded(
        &self,
        now_ms: i64,
        grace_ms: i64,
        queued_before: &str,
    ) -> Result<u64, StoreError> {
        on_backend!(self, s => s.requeue_stranded(now_ms, grace_ms, queued_before).await)
    }

    /// Notifications by status (ops: the outbox's depth).
    pub async fn notification_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        on_backend!(self, s => s.notification_counts().await)
    }

    /// Notifications the scheduler makes, each once (a known de-duplication key is skipped).
    pub async fn insert_notifications(
        &self,
        rows: &[crate::rules::NotificationRow],
    ) -> Result<u64, StoreError> {
        on_backend!(self, s => s.insert_notifications(rows).await)
    }

    /// Booked appointments starting in [from, to) (UTC sort keys).
    pub async fn upcoming_appointments(
        &self,
        from: &str,
        to: &str,
    ) -> Result<Vec<ScheduledFact>, StoreError> {
        on_backend!(self, s => s.upcoming_appointments(from, to).await)
    }

    /// Whether a person has a booked appointment at or after `from`.
    pub async fn has_booked_appointment(&self, person: &str, from: &str) -> Result<bool, StoreError> {
        on_backend!(self, s => s.has_booked_appointment(person, from).await)
    }

    /// Persons (not merged away) born on this month and day (`MM-DD`).
    pub async fn birthdays(&self, month_day: &str) -> Result<Vec<ScheduledFact>, StoreError> {
        on_backend!(self, s => s.birthdays(month_day).await)
    }

    /// Persons whose latest visit falls in [from, to) (UTC sort keys).
    pub async fn last_visits_between(&self, from: &str, to: &str) -> Result<Vec<ScheduledFact>, StoreError> {
        on_backend!(self, s => s.last_visits_between(from, to).await)
    }

    /// When a scheduled rule last ran.
    pub async fn rule_last_run(&self, rule: &str) -> Result<Option<String>, StoreError> {
        on_backend!(self, s => s.rule_last_run(rule).await)
    }

    pub async fn set_rule_run(&self, rule: &str, at: &str, created: i64) -> Result<(), StoreError> {
        on_backend!(self, s => s.set_rule_run(rule, at, created).await)
    }

    pub async fn queue_push(&self, queue_rows: &[(String, String, String, i64)]) -> Result<(), StoreError> {
        on_backend!(self, s => s.queue_push(queue_rows).await)
    }

    /// Takes up to `limit` ready messages of a queue, hidden from others until `lock_until`.
    pub async fn queue_claim(
        &self,
        queue: &str,
        now_ms: i64,
        lock_until: i64,
        limit: i64,
    ) -> Result<Vec<QueueRow>, StoreError> {
        on_backend!(self, s => s.queue_claim(queue, now_ms, lock_until, limit).await)
    }

    pub async fn queue_ack(&self, ids: &[i64]) -> Result<(), StoreError> {
        on_backend!(self, s => s.queue_ack(ids).await)
    }

    pub async fn queue_retry(&self, id: i64, payload: &str, available_at: i64) -> Result<(), StoreError> {
        on_backend!(self, s => s.queue_retry(id, payload, available_at).await)
    }

    pub async fn queue_dead(&self, id: i64, reason: &str) -> Result<(), StoreError> {
        on_backend!(self, s => s.queue_dead(id, reason).await)
    }

    /// Messages waiting (ready or delayed, not dead) in a queue.
    pub async fn queue_depth(&self, queue: &str) -> Result<i64, StoreError> {
        on_backend!(self, s => s.queue_depth(queue).await)
    }

    pub async fn queue_dead_letters(&self, queue: &str) -> Result<Vec<(String, String)>, StoreError> {
        on_backend!(self, s => s.queue_dead_letters(queue).await)
    }
}
