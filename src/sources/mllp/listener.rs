//! The MLLP listener: accepts connections, frames messages, answers each with an ACK that is
//! sent only after the message and its effects are committed.
//!
//! Several messages may arrive on one connection, back to back or split over many reads; each
//! gets its own ACK, in order. A frame over `max_frame_bytes` is answered AR and skipped. A
//! connection dropped mid-frame stores and acknowledges nothing. On shutdown the listener stops
//! accepting, each connection finishes the frames it already has, and then closes.
//!
//! Who may hold a connection (docs/hl7.md, "Connection hygiene"): a peer outside `allow_from`
//! is closed before anything is read; with `tls:` the handshake (and a client certificate, when
//! asked for) comes first. A connection that has not sent a whole first frame within
//! `first_frame_timeout_secs` of its accept is closed. At `max_connections` — or at
//! `max_connections_per_peer` for one address — the newcomer is accepted and the connection idle
//! the longest is closed to make room; only when none is idle is the newcomer refused. Idle
//! means: no partial frame buffered and no frame waiting for its commit and ACK, so closing it
//! loses nothing. Every refusal and close is logged with the peer address and the reason, never
//! with the bytes received.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use super::config::MllpConfig;
use crate::hl7::{self, AckCode, AckError, MllpDecoder};
use crate::net::{AllowList, TlsError};
use crate::pipeline::{ConnectorContext, Ingest, Outcome};

static ACK_COUNTER: AtomicU64 = AtomicU64::new(1);

/// Frames of one connection handed to the pipeline together, at most.
const MAX_FRAMES_AT_ONCE: usize = 64;

/// The TLS acceptor of a connector with `tls:`, built from its PEM files (the I/O step of
/// the config check); `None` for plain MLLP.
pub fn tls_acceptor(config: &MllpConfig) -> Result<Option<TlsAcceptor>, TlsError> {
    match &config.tls {
        Some(tls) => Ok(Some(TlsAcceptor::from(tls.server_config()?))),
        None => Ok(None),
    }
}

/// Serves MLLP on `listener` until `shutdown` turns true; over TLS when `tls` is given.
pub async fn serve(
    listener: TcpListener,
    config: MllpConfig,
    tls: Option<TlsAcceptor>,
    ctx: ConnectorContext,
    ingest: Ingest,
    mut shutdown: watch::Receiver<bool>,
) {
    let allow = AllowList::new(&config.allow_from);
    let seats = Arc::new(Seats::new(
        config.max_connections,
        config.max_connections_per_peer,
    ));
    let config = Arc::new(config);
    let ctx = Arc::new(ctx);
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(connector = %ctx.name, error = %e, "accepting an MLLP connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let accepted_at = Instant::now();
        while connections.try_join_next().is_some() {}
        if !allow.allows(peer.ip()) {
            tracing::warn!(connector = %ctx.name, %peer, reason = "not in allow_from", "refused an MLLP connection");
            continue;
        }
        let (admitted, evicted) = match seats.admit(peer) {
            Ok(admitted) => admitted,
            Err(reason) => {
                tracing::warn!(connector = %ctx.name, %peer, reason, "refused an MLLP connection");
                continue;
            }
        };
        if let Some((victim, reason)) = admitted.made_room {
            tracing::info!(connector = %ctx.name, peer = %victim, reason, newcomer = %peer, "closed the longest-idle MLLP connection to make room");
        }
        let _ = stream.set_nodelay(true);
        let (config, ctx, ingest, tls, shutdown) = (
            config.clone(),
            ctx.clone(),
            ingest.clone(),
            tls.clone(),
            shutdown.clone(),
        );
        connections.spawn(async move {
            tracing::debug!(connector = %ctx.name, %peer, "MLLP connection opened");
            let deadline = accepted_at + Duration::from_secs(config.first_frame_timeout_secs);
            let mut evicted = evicted;
            let mut shutdown = shutdown;
            let seat = admitted.seat;
            let Some(tls) = tls else {
                let conn = Conn { peer, seat, evicted, deadline };
                return connection(stream, conn, &config, &ctx, &ingest, shutdown).await;
            };
            let handshake = tokio::select! {
                r = tokio::time::timeout_at(deadline, tls.accept(stream)) => r,
                _ = &mut evicted => return,
                _ = shutdown.changed() => return,
            };
            match handshake {
                Ok(Ok(stream)) => {
                    let conn = Conn { peer, seat, evicted, deadline };
                    connection(stream, conn, &config, &ctx, &ingest, shutdown).await
                }
                Ok(Err(e)) => {
                    tracing::warn!(connector = %ctx.name, %peer, reason = %e, "refused an MLLP connection: TLS handshake failed");
                }
                Err(_) => {
                    tracing::info!(connector = %ctx.name, %peer, reason = "no TLS handshake within first_frame_timeout_secs", "closed an MLLP connection");
                }
            }
        });
    }
    drop(listener);
    tracing::info!(connector = %ctx.name, open = connections.len(), "MLLP listener stopped accepting; finishing open connections");
    while connections.join_next().await.is_some() {}
}

/// What a connection task knows about its place among the others.
struct Conn {
    peer: SocketAddr,
    seat: Seat,
    /// Fires when the accept loop closes this connection to make room.
    evicted: oneshot::Receiver<()>,
    /// A whole first frame must have arrived by then.
    deadline: Instant,
}

async fn connection<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    mut conn: Conn,
    config: &MllpConfig,
    ctx: &ConnectorContext,
    ingest: &Ingest,
    mut shutdown: watch::Receiver<bool>,
) {
    let peer = conn.peer.to_string();
    let mut decoder = MllpDecoder::new(config.max_frame_bytes);
    let mut buf = vec![0u8; 64 * 1024];
    let idle = Duration::from_secs(config.idle_timeout_secs);
    let tz = &ctx.transform_env.timezone;
    let mut framed = false;
    let mut busy = false;
    loop {
        // Answer every complete frame already buffered before reading more. Frames a sender
        // pipelined are handed in together, in order, and their ACKs go back in order.
        let mut frames = Vec::new();
        let mut refused = None;
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => {
                    frames.push((frame, Some(peer.clone())));
                    if frames.len() >= MAX_FRAMES_AT_ONCE {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    refused = Some(e);
                    break;
                }
            }
        }
        framed |= !frames.is_empty() || refused.is_some();
        let more_buffered = frames.len() >= MAX_FRAMES_AT_ONCE || refused.is_some();
        if !frames.is_empty() {
            let framed_at = Instant::now();
            let mut acks = Vec::new();
            let mut answered = 0;
            for outcome in ingest.submit_many(ctx, frames).await {
                acks.extend(hl7::encode_frame(&ack_bytes(&outcome, tz)));
                answered += 1;
            }
            if stream.write_all(&acks).await.is_err() {
                return;
            }
            let elapsed = framed_at.elapsed();
            for _ in 0..answered {
                ingest.metrics().ack_sent(&ctx.name, elapsed);
            }
        }
        if let Some(e) = refused {
            tracing::warn!(connector = %ctx.name, error = %e, "refused an MLLP frame");
            let hl7::FrameError::TooLarge { limit, head } = e;
            let reason = format!(
                "frame refused: larger than max_frame_bytes ({limit}); its first {} bytes are kept",
                head.len()
            );
            // A trace of the frame stays in the message log; the AR names its MSH-10 when the
            // head holds it, so that the sender can match it.
            let head_text = String::from_utf8_lossy(&head).into_owned();
            let ack_id = match ingest
                .record_rejected(ctx, head, Some(peer.clone()), reason.clone())
                .await
            {
                Ok(applied) => format!("CH{}", applied.message_id),
                Err(_) => next_ack_id(),
            };
            let err = AckError::new(207, reason);
            let text = hl7::build_reject_for_raw(&head_text, &err, &ack_id, &timestamp(tz));
            if stream
                .write_all(&hl7::encode_frame(text.as_bytes()))
                .await
                .is_err()
            {
                return;
            }
        }
        if more_buffered {
            continue;
        }
        if *shutdown.borrow() {
            return;
        }
        if busy && !decoder.has_partial() {
            busy = false;
            conn.seat.set_idle();
        }
        // Until its first whole frame, a connection also has `first_frame_timeout_secs`.
        let until = if framed {
            Instant::now() + idle
        } else {
            conn.deadline.min(Instant::now() + idle)
        };
        let read = tokio::select! {
            r = tokio::time::timeout_at(until, stream.read(&mut buf)) => r,
            _ = &mut conn.evicted => return,
            _ = shutdown.changed() => return,
        };
        match read {
            Ok(Ok(0)) => {
                if decoder.has_partial() {
                    tracing::warn!(connector = %ctx.name, peer = %conn.peer, "MLLP connection closed in the middle of a frame; the partial message was not stored or acknowledged");
                }
                return;
            }
            Ok(Ok(n)) => {
                if !busy {
                    busy = true;
                    if !conn.seat.set_busy() {
                        // Closed to make room an instant ago: nothing of this was acknowledged.
                        return;
                    }
                }
                decoder.extend(&buf[..n]);
            }
            Ok(Err(e)) => {
                tracing::debug!(connector = %ctx.name, peer = %conn.peer, error = %e, "MLLP read failed");
                return;
            }
            Err(_) if !framed => {
                tracing::info!(connector = %ctx.name, peer = %conn.peer, reason = "no whole frame within first_frame_timeout_secs", "closed an MLLP connection");
                return;
            }
            Err(_) => {
                tracing::debug!(connector = %ctx.name, peer = %conn.peer, "MLLP connection idle too long; closed");
                return;
            }
        }
    }
}

/// The open connections of one listener, for the caps: who is idle, since when, from where.
struct Seats {
    max_total: usize,
    max_per_peer: usize,
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Occupant>>,
}

struct Occupant {
    peer: SocketAddr,
    /// Idle since this instant; `None` while inside a frame or awaiting its ACK.
    idle_since: Option<Instant>,
    /// Closes the connection (its task is waiting on the other end while idle).
    close: oneshot::Sender<()>,
}

/// A connection's place; leaving it (drop) frees it.
struct Seat {
    seats: Arc<Seats>,
    id: u64,
}

/// A newcomer let in: its seat, and the connection closed to make room for it, if any.
struct Admitted {
    seat: Seat,
    made_room: Option<(SocketAddr, &'static str)>,
}

impl Seats {
    fn new(max_total: usize, max_per_peer: usize) -> Seats {
        Seats {
            max_total,
            max_per_peer,
            next_id: AtomicU64::new(0),
            open: Mutex::new(HashMap::new()),
        }
    }

    /// Lets `peer` in, closing the longest-idle connection when a cap is reached; refuses it
    /// (with the reason) when none under that cap is idle.
    fn admit(self: &Arc<Self>, peer: SocketAddr) -> Result<(Admitted, oneshot::Receiver<()>), &'static str> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let ip = peer.ip().to_canonical();
        let same_peer = |o: &Occupant| o.peer.ip().to_canonical() == ip;
        let mut made_room = None;
        if open.values().filter(|o| same_peer(o)).count() >= self.max_per_peer {
            let victim = longest_idle(&open, same_peer)
                .ok_or("max_connections_per_peer reached and none of this peer's connections is idle")?;
            made_room = Some((victim, "max_connections_per_peer reached"));
        } else if open.len() >= self.max_total {
            let victim =
                longest_idle(&open, |_| true).ok_or("max_connections reached and no connection is idle")?;
            made_room = Some((victim, "max_connections reached"));
        }
        let made_room = made_room.and_then(|(id, reason)| {
            let victim = open.remove(&id)?;
            let _ = victim.close.send(());
            Some((victim.peer, reason))
        });
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (close, closed) = oneshot::channel();
        open.insert(
            id,
            Occupant {
                peer,
                idle_since: Some(Instant::now()),
                close,
            },
        );
        let seat = Seat {
            seats: self.clone(),
            id,
        };
        Ok((Admitted { seat, made_room }, closed))
    }
}

/// The connection idle the longest among those `pick` selects.
fn longest_idle(open: &HashMap<u64, Occupant>, pick: impl Fn(&Occupant) -> bool) -> Option<u64> {
    open.iter()
        .filter(|(_, o)| pick(o))
        .filter_map(|(id, o)| o.idle_since.map(|since| (since, *id)))
        .min()
        .map(|(_, id)| id)
}

impl Seat {
    /// Marks the connection busy; false when it was closed to make room meanwhile.
    fn set_busy(&self) -> bool {
        let mut open = self.seats.open.lock().unwrap_or_else(|e| e.into_inner());
        match open.get_mut(&self.id) {
            Some(o) => {
                o.idle_since = None;
                true
            }
            None => false,
        }
    }

    fn set_idle(&self) {
        let mut open = self.seats.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(o) = open.get_mut(&self.id) {
            o.idle_since = Some(Instant::now());
        }
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        let mut open = self.seats.open.lock().unwrap_or_else(|e| e.into_inner());
        open.remove(&self.id);
    }
}

fn next_ack_id() -> String {
    format!(
        "CH{}{:06}",
        jiff::Timestamp::now().as_second(),
        ACK_COUNTER.fetch_add(1, Ordering::Relaxed) % 1_000_000
    )
}

/// MSH-7 of an ACK, in the clinic's time zone.
fn timestamp(tz: &jiff::tz::TimeZone) -> String {
    jiff::Timestamp::now()
        .to_zoned(tz.clone())
        .strftime("%Y%m%d%H%M%S%z")
        .to_string()
}

/// The ACK for an outcome, in the message's own charset.
pub fn ack_bytes(outcome: &Outcome, tz: &jiff::tz::TimeZone) -> Vec<u8> {
    let id = match &outcome.applied {
        Some(a) => format!("CH{}", a.message_id),
        None => next_ack_id(),
    };
    let text = match &outcome.message {
        Some(msg) => hl7::build_ack(msg, outcome.ack, outcome.error.as_ref(), &id, &timestamp(tz)),
        None => {
            let fallback = AckError::new(100, "not a valid HL7 v2 message");
            let err = outcome.error.as_ref().unwrap_or(&fallback);
            hl7::build_reject_for_raw(&outcome.head, err, &id, &timestamp(tz))
        }
    };
    debug_assert!(outcome.ack != AckCode::AA || outcome.applied.is_some());
    hl7::encode(&text, outcome.charset)
}
