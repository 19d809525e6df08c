//! Acknowledgements of one subscription, gathered into `multiple` acks.
//!
//! The broker's work per acknowledgement is most of its work per consumed message: measured on
//! a quorum queue, one `basic.ack` per delivery cost it 66 µs a message, one ack with
//! `multiple = true` per 64 deliveries 12 µs. An ack with `multiple` settles every outstanding
//! delivery up to its tag, so one may only be sent for a run of deliveries that are all settled:
//! the book keeps the subscription's held deliveries in tag order, and the flusher acks the
//! settled run at its front. A delivery that takes long (a slow provider call) would hold back
//! the acks behind it and, with them, the prefetch window: once it has been outstanding for
//! [`HEAD_PATIENCE`], or half the window waits behind it, those behind it are acked one by one.
//!
//! Settling a delivery only marks it in the book; the flusher sends the acks as fast as the
//! link takes them, so while one ack is on its way the next ones gather (no timer to wait for).
//! A delivery requeued (`reject`) is marked only once the reject is sent, so no `multiple` ack
//! can overtake it. When the link drops, unsent acks are lost with it and the broker delivers
//! those messages again: at least once, as before.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lapin::Acker;
use lapin::options::{BasicAckOptions, BasicRejectOptions};
use tokio::sync::Notify;

/// How long the oldest held delivery may hold back the acks of settled ones behind it.
pub(super) const HEAD_PATIENCE: Duration = Duration::from_millis(100);

/// The acknowledgement book of one subscription (one channel of one connection).
pub(super) struct Acks {
    book: Mutex<Book<Acker>>,
    wake: Notify,
    /// Settled deliveries that may wait behind an unsettled one before they are acked one by
    /// one: half the prefetch window.
    behind_limit: usize,
}

/// Held deliveries, each with what acknowledges it (`A`: lapin's acker; a tag in the tests).
struct Book<A> {
    /// In tag order (the broker's order on a channel).
    held: VecDeque<Held<A>>,
    /// The subscription ended: the flusher sends what is settled and stops.
    closed: bool,
}

struct Held<A> {
    tag: u64,
    acker: A,
    settled: bool,
    since: Instant,
}

/// What the flusher sends in one round.
#[derive(Debug, PartialEq)]
struct Round<A> {
    /// The last delivery of the settled run at the front: one ack with `multiple`.
    run_end: Option<A>,
    /// Settled deliveries behind an unsettled one that waited too long: acked one by one.
    single: Vec<A>,
}

impl<A> Book<A> {
    fn new() -> Book<A> {
        Book {
            held: VecDeque::new(),
            closed: false,
        }
    }

    fn hold(&mut self, tag: u64, acker: A, now: Instant) {
        self.held.push_back(Held {
            tag,
            acker,
            settled: false,
            since: now,
        });
    }

    /// Marks one settled; true when the flusher has something to send at once: the front
    /// settled (a run), or `behind_limit` settled ones wait behind it.
    fn settle(&mut self, tag: u64, behind_limit: usize) -> bool {
        let Ok(i) = self.held.binary_search_by_key(&tag, |h| h.tag) else {
            return false;
        };
        self.held[i].settled = true;
        i == 0 || self.held.iter().filter(|h| h.settled).count() >= behind_limit
    }

    /// Takes the acks to send now: the settled run at the front, and the settled ones behind
    /// an unsettled front once `behind_limit` of them wait or the front has been held for
    /// [`HEAD_PATIENCE`] (all of them once closed). `None` once closed and nothing is left.
    fn take_round(&mut self, now: Instant, behind_limit: usize) -> Option<Round<A>> {
        let mut round = Round {
            run_end: None,
            single: Vec::new(),
        };
        while self.held.front().is_some_and(|h| h.settled) {
            round.run_end = self.held.pop_front().map(|h| h.acker);
        }
        if let Some(front) = self.held.front() {
            let behind = self.held.iter().filter(|h| h.settled).count();
            let waited = now.duration_since(front.since) >= HEAD_PATIENCE;
            if behind > 0 && (self.closed || behind >= behind_limit || waited) {
                let held = std::mem::take(&mut self.held);
                let (settled, waiting): (VecDeque<Held<A>>, VecDeque<Held<A>>) =
                    held.into_iter().partition(|h| h.settled);
                self.held = waiting;
                round.single = settled.into_iter().map(|h| h.acker).collect();
            }
        }
        if self.closed && round.run_end.is_none() && round.single.is_empty() {
            return None;
        }
        Some(round)
    }
}

impl Acks {
    pub(super) fn new(prefetch: u16) -> Arc<Acks> {
        Arc::new(Acks {
            book: Mutex::new(Book::new()),
            wake: Notify::new(),
            behind_limit: (usize::from(prefetch) / 2).max(1),
        })
    }

    fn book(&self) -> std::sync::MutexGuard<'_, Book<Acker>> {
        // A panic while holding the lock leaves the book consistent (every change is one step).
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a delivery as held; called in delivery order, before it is handed out.
    pub(super) fn hold(&self, tag: u64, acker: Acker) {
        self.book().hold(tag, acker, Instant::now());
    }

    /// Marks a delivery settled; the flusher acks it once those before it are settled too.
    pub(super) fn settled(&self, tag: u64) {
        // Otherwise the flusher's next look, at most HEAD_PATIENCE away, finds it.
        if self.book().settle(tag, self.behind_limit) {
            self.wake.notify_one();
        }
    }

    /// Returns a delivery to the queue now (`reject` with requeue), then lets the acks behind
    /// it go. If the link is down the broker returns it anyway.
    pub(super) async fn requeue(&self, tag: u64) {
        let acker = {
            let book = self.book();
            match book.held.binary_search_by_key(&tag, |h| h.tag) {
                Ok(i) => book.held[i].acker.clone(),
                Err(_) => return,
            }
        };
        let _ = acker.reject(BasicRejectOptions { requeue: true }).await;
        // Sent (or the link is gone): a later `multiple` ack no longer covers it.
        self.settled(tag);
    }

    /// Ends the subscription's acks: the flusher sends what is settled, then stops.
    pub(super) fn close(&self) {
        self.book().closed = true;
        self.wake.notify_one();
    }

    /// Sends the acks until the subscription ends or the link fails.
    pub(super) async fn flush(self: Arc<Self>) {
        loop {
            let Some(round) = self.book().take_round(Instant::now(), self.behind_limit) else {
                return;
            };
            if let Some(acker) = round.run_end
                && let Err(e) = acker.ack(BasicAckOptions { multiple: true }).await
            {
                tracing::debug!(error = %e, "acks not sent (the link dropped; the broker delivers those messages again)");
                return;
            }
            for acker in round.single {
                if acker.ack(BasicAckOptions::default()).await.is_err() {
                    return;
                }
            }
            let (closed, holding) = {
                let book = self.book();
                (book.closed, !book.held.is_empty())
            };
            if closed {
                continue;
            }
            if holding {
                // Looks again in a while: settled ones behind a slow front are then acked.
                let _ = tokio::time::timeout(HEAD_PATIENCE, self.wake.notified()).await;
            } else {
                self.wake.notified().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book(tags: std::ops::RangeInclusive<u64>, at: Instant) -> Book<u64> {
        let mut b = Book::new();
        for tag in tags {
            b.hold(tag, tag, at);
        }
        b
    }

    fn round(run_end: Option<u64>, single: &[u64]) -> Option<Round<u64>> {
        Some(Round {
            run_end,
            single: single.to_vec(),
        })
    }

    #[test]
    fn settled_deliveries_at_the_front_go_as_one_ack_up_to_the_first_unsettled() {
        let t0 = Instant::now();
        let mut b = book(1..=6, t0);
        assert!(!b.settle(3, 32), "nothing to send while 1 is unsettled");
        assert!(!b.settle(2, 32));
        assert!(b.settle(1, 32), "the front settled");
        b.settle(5, 32);
        // 1–3 in one ack; 5 waits behind 4.
        assert_eq!(b.take_round(t0, 32), round(Some(3), &[]));
        assert_eq!(b.take_round(t0, 32), round(None, &[]));
        b.settle(4, 32);
        assert_eq!(b.take_round(t0, 32), round(Some(5), &[]));
        assert_eq!(b.held.iter().map(|h| h.tag).collect::<Vec<_>>(), [6]);
    }

    #[test]
    fn a_slow_front_lets_the_acks_behind_it_go_one_by_one_after_a_while_or_when_many_wait() {
        let t0 = Instant::now();
        let mut b = book(1..=5, t0);
        b.settle(2, 3);
        b.settle(4, 3);
        assert_eq!(b.take_round(t0, 3), round(None, &[]), "not yet");
        let later = t0 + HEAD_PATIENCE;
        assert_eq!(b.take_round(later, 3), round(None, &[2, 4]));
        // 1 is still held and still first; 3 and 5 wait as before.
        assert_eq!(b.held.iter().map(|h| h.tag).collect::<Vec<_>>(), [1, 3, 5]);
        b.settle(3, 2);
        assert!(b.settle(5, 2), "two wait behind the front: the limit");
        assert_eq!(b.take_round(t0, 2), round(None, &[3, 5]));
        b.settle(1, 2);
        assert_eq!(b.take_round(t0, 2), round(Some(1), &[]));
        assert!(b.held.is_empty());
    }

    #[test]
    fn a_closed_book_sends_every_settled_ack_then_ends() {
        let t0 = Instant::now();
        let mut b = book(1..=4, t0);
        b.settle(1, 32);
        b.settle(3, 32);
        b.closed = true;
        assert_eq!(b.take_round(t0, 32), round(Some(1), &[3]));
        // 2 and 4 were never settled: the broker returns them when the connection closes.
        assert_eq!(b.take_round(t0, 32), None);
    }

    #[test]
    fn settling_an_unknown_tag_changes_nothing() {
        let t0 = Instant::now();
        let mut b = book(1..=2, t0);
        assert!(!b.settle(7, 1));
        assert_eq!(b.take_round(t0, 1), round(None, &[]));
    }
}
