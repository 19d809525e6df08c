//! Acknowledgements of one subscription, gathered into `multiple` acks.
//!
//! The broker's work per acknowledgement is most of its work per consumed message: measured on
//! a quorum queue, one `basic.ack` per delivery cost it 66 µs a message, one ack with
//! `multiple = true` per 64 deliveries 12 µs. An ack with `multiple` settles every outstanding
//! delivery up to its tag, so one may only be sent for a run of deliveries that are all done:
//! the book keeps the subscription's held deliveries in tag order, and the flusher acks the
//! settled run at its front. A delivery that takes long (a slow provider call) would hold back
//! the acks behind it and, with them, the prefetch window: once it has been held for
//! [`HEAD_PATIENCE`], or half the window waits behind it, those behind it are acked one by one.
//!
//! Settling a delivery only marks it in the book; the flusher sends the acks as fast as the
//! link takes them, so while one ack is on its way the next ones gather (no timer to wait for).
//! A requeued delivery (`basic.reject`) counts as done only once its reject is on the wire, so
//! no `multiple` ack can overtake it, and no ack ever names its tag. When the link drops, unsent
//! acks are lost with it and the broker delivers those messages again: at least once, as before.
//!
//! Acks and rejects go through the channel by tag (not lapin's per-delivery `Acker`, which is
//! single-use and silently ignores a second use): every tag is acked or rejected at most once,
//! because the book hands each out once.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lapin::Channel;
use lapin::options::{BasicAckOptions, BasicRejectOptions};
use tokio::sync::Notify;

/// How long the oldest held delivery may hold back the acks of settled ones behind it.
pub(super) const HEAD_PATIENCE: Duration = Duration::from_millis(100);

/// The acknowledgement book of one subscription (one channel of one connection).
pub(super) struct Acks {
    channel: Channel,
    book: Mutex<Book>,
    wake: Notify,
    /// Settled deliveries that may wait behind an unsettled one before they are acked one by
    /// one: half the prefetch window.
    behind_limit: usize,
}

/// Where a held delivery stands.
#[derive(Clone, Copy, Debug, PartialEq)]
enum State {
    /// Being handled.
    Held,
    /// Settled: to be acked.
    Settled,
    /// Being returned to the queue: its reject is not sent yet.
    Rejecting,
    /// Returned to the queue: done, nothing to ack.
    Rejected,
}

/// Held deliveries by tag, in tag order (the broker's order on a channel).
struct Book {
    held: VecDeque<(u64, State, Instant)>,
    /// The subscription ended: the flusher sends what is settled and stops.
    closed: bool,
}

/// What the flusher sends in one round.
#[derive(Debug, PartialEq)]
struct Round {
    /// The last settled delivery of the run of done ones at the front: one ack with `multiple`.
    run_end: Option<u64>,
    /// Settled deliveries behind an unsettled one that waited too long: acked one by one.
    single: Vec<u64>,
}

impl Book {
    fn new() -> Book {
        Book {
            held: VecDeque::new(),
            closed: false,
        }
    }

    /// Holds a delivery; true when the book was empty (the flusher then starts looking at the
    /// time again).
    fn hold(&mut self, tag: u64, now: Instant) -> bool {
        let was_empty = self.held.is_empty();
        self.held.push_back((tag, State::Held, now));
        was_empty
    }

    /// Moves a held delivery to `to` (only from `from`); whether it did.
    fn mark(&mut self, tag: u64, from: State, to: State) -> bool {
        match self.held.binary_search_by_key(&tag, |h| h.0) {
            Ok(i) if self.held[i].1 == from => {
                self.held[i].1 = to;
                true
            }
            _ => false,
        }
    }

    /// Marks one settled; true when the flusher has something to send at once: the front is
    /// done (a run), or `behind_limit` settled ones wait behind it.
    fn settle(&mut self, tag: u64, behind_limit: usize) -> bool {
        if !self.mark(tag, State::Held, State::Settled) {
            return false;
        }
        self.front_done() || self.settled_count() >= behind_limit
    }

    fn front_done(&self) -> bool {
        self.held
            .front()
            .is_some_and(|h| matches!(h.1, State::Settled | State::Rejected))
    }

    fn settled_count(&self) -> usize {
        self.held.iter().filter(|h| h.1 == State::Settled).count()
    }

    /// Takes the acks to send now: the run of done deliveries at the front (acked up to its
    /// last settled one), and the settled ones behind an unsettled front once `behind_limit` of
    /// them wait or the front has been held for [`HEAD_PATIENCE`] (all of them once closed).
    /// `None` once closed and nothing is left to send.
    fn take_round(&mut self, now: Instant, behind_limit: usize) -> Option<Round> {
        let mut round = Round {
            run_end: None,
            single: Vec::new(),
        };
        while self.front_done() {
            if let Some((tag, State::Settled, _)) = self.held.pop_front() {
                round.run_end = Some(tag);
            }
        }
        if let Some(&(_, _, since)) = self.held.front() {
            let behind = self.settled_count();
            let waited = now.duration_since(since) >= HEAD_PATIENCE;
            if behind > 0 && (self.closed || behind >= behind_limit || waited) {
                round.single = self
                    .held
                    .iter()
                    .filter(|h| h.1 == State::Settled)
                    .map(|h| h.0)
                    .collect();
                // Acked one by one now, or returned to the queue already: nothing more to do.
                self.held
                    .retain(|h| matches!(h.1, State::Held | State::Rejecting));
            }
        }
        if self.closed && round.run_end.is_none() && round.single.is_empty() {
            return None;
        }
        Some(round)
    }
}

impl Acks {
    pub(super) fn new(channel: Channel, prefetch: u16) -> Arc<Acks> {
        Arc::new(Acks {
            channel,
            book: Mutex::new(Book::new()),
            wake: Notify::new(),
            behind_limit: (usize::from(prefetch) / 2).max(1),
        })
    }

    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        // A panic while holding the lock leaves the book consistent (every change is one step).
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a delivery as held; called in delivery order, before it is handed out.
    pub(super) fn hold(self: &Arc<Self>, tag: u64) -> Hold {
        if self.book().hold(tag, Instant::now()) {
            self.wake.notify_one();
        }
        Hold {
            acks: self.clone(),
            tag,
            done: false,
        }
    }

    fn settled(&self, tag: u64) {
        // Otherwise the flusher's next look, at most HEAD_PATIENCE away, finds it.
        if self.book().settle(tag, self.behind_limit) {
            self.wake.notify_one();
        }
    }

    /// Returns a delivery to the queue (`basic.reject`, requeue) from a task of its own, so a
    /// cancelled caller cannot leave it half done; then lets the acks behind it go. If the link
    /// is down, the broker returns it anyway.
    fn requeue(self: &Arc<Self>, tag: u64) {
        if !self.book().mark(tag, State::Held, State::Rejecting) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // No runtime (the process is ending): the connection's close returns it.
            return;
        };
        let acks = self.clone();
        runtime.spawn(async move {
            let _ = acks
                .channel
                .basic_reject(tag, BasicRejectOptions { requeue: true })
                .await;
            acks.book().mark(tag, State::Rejecting, State::Rejected);
            acks.wake.notify_one();
        });
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
            if let Some(tag) = round.run_end
                && let Err(e) = self
                    .channel
                    .basic_ack(tag, BasicAckOptions { multiple: true })
                    .await
            {
                tracing::debug!(error = %e, "acks not sent (the link dropped; the broker delivers those messages again)");
                return;
            }
            for tag in round.single {
                if self
                    .channel
                    .basic_ack(tag, BasicAckOptions::default())
                    .await
                    .is_err()
                {
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
                // The first delivery held wakes it.
                self.wake.notified().await;
            }
        }
    }
}

/// A delivery's place in the book, settled exactly once: acked ([`Hold::settle`]) or returned
/// to the queue ([`Hold::requeue`]); dropped without either (its task failed or was cancelled),
/// it is returned to the queue.
pub(super) struct Hold {
    acks: Arc<Acks>,
    tag: u64,
    done: bool,
}

impl Hold {
    /// To be acked (gathered with others).
    pub(super) fn settle(mut self) {
        self.done = true;
        self.acks.settled(self.tag);
    }

    /// Back to the queue now.
    pub(super) fn requeue(mut self) {
        self.done = true;
        self.acks.requeue(self.tag);
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        if !self.done {
            self.acks.requeue(self.tag);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book(tags: std::ops::RangeInclusive<u64>, at: Instant) -> Book {
        let mut b = Book::new();
        for tag in tags {
            b.hold(tag, at);
        }
        b
    }

    fn round(run_end: Option<u64>, single: &[u64]) -> Option<Round> {
        Some(Round {
            run_end,
            single: single.to_vec(),
        })
    }

    fn tags(b: &Book) -> Vec<u64> {
        b.held.iter().map(|h| h.0).collect()
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
        assert_eq!(tags(&b), [6]);
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
        assert_eq!(tags(&b), [1, 3, 5]);
        b.settle(3, 2);
        assert!(b.settle(5, 2), "two wait behind the front: the limit");
        assert_eq!(b.take_round(t0, 2), round(None, &[3, 5]));
        b.settle(1, 2);
        assert_eq!(b.take_round(t0, 2), round(Some(1), &[]));
        assert!(b.held.is_empty());
    }

    #[test]
    fn a_requeued_delivery_is_never_acked_and_holds_the_run_until_its_reject_is_sent() {
        let t0 = Instant::now();
        let mut b = book(1..=4, t0);
        b.settle(2, 32);
        assert!(b.mark(3, State::Held, State::Rejecting));
        assert!(!b.mark(3, State::Held, State::Rejecting), "returned once only");
        assert!(!b.settle(3, 32), "a requeued delivery cannot be settled too");
        b.settle(1, 32);
        // 3's reject is not sent yet: an ack up to 2 only.
        assert_eq!(b.take_round(t0, 32), round(Some(2), &[]));
        b.settle(4, 32);
        assert_eq!(b.take_round(t0, 32), round(None, &[]));
        b.mark(3, State::Rejecting, State::Rejected);
        // The run 3–4 is acked up to 4, never naming 3.
        assert_eq!(b.take_round(t0, 32), round(Some(4), &[]));
        assert!(b.held.is_empty());

        // A run that ends with a requeued delivery is acked up to its last settled one.
        let mut b = book(1..=3, t0);
        b.settle(1, 32);
        b.settle(2, 32);
        b.mark(3, State::Held, State::Rejecting);
        b.mark(3, State::Rejecting, State::Rejected);
        assert_eq!(b.take_round(t0, 32), round(Some(2), &[]));
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
    fn holding_in_an_empty_book_wakes_the_flusher_and_unknown_tags_change_nothing() {
        let t0 = Instant::now();
        let mut b = Book::new();
        assert!(
            b.hold(1, t0),
            "the first held wakes the flusher (it then looks at the time)"
        );
        assert!(!b.hold(2, t0));
        assert!(!b.settle(7, 1));
        assert_eq!(b.take_round(t0, 1), round(None, &[]));
    }
}
