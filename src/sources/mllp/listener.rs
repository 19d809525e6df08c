//! The MLLP listener: accepts connections, frames messages, answers each with an ACK that is
//! sent only after the message and its effects are committed.
//!
//! Several messages may arrive on one connection, back to back or split over many reads; each
//! gets its own ACK, in order. A frame over `max_frame_bytes` is answered AR and skipped. A
//! connection dropped mid-frame stores and acknowledges nothing. On shutdown the listener stops
//! accepting, each connection finishes the frames it already has, and then closes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use super::config::MllpConfig;
use crate::hl7::{self, AckCode, AckError, MllpDecoder};
use crate::pipeline::{ConnectorContext, Ingest, Outcome};

static ACK_COUNTER: AtomicU64 = AtomicU64::new(1);

/// Frames of one connection handed to the pipeline together, at most.
const MAX_FRAMES_AT_ONCE: usize = 64;

/// Serves MLLP on `listener` until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    config: MllpConfig,
    ctx: ConnectorContext,
    ingest: Ingest,
    mut shutdown: watch::Receiver<bool>,
) {
    let limit = Arc::new(Semaphore::new(config.max_connections));
    let config = Arc::new(config);
    let ctx = Arc::new(ctx);
    let mut connections = JoinSet::new();
    loop {
        let permit = tokio::select! {
            p = limit.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = shutdown.changed() => break,
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => break,
        };
        match accepted {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                let (config, ctx, ingest, shutdown) =
                    (config.clone(), ctx.clone(), ingest.clone(), shutdown.clone());
                connections.spawn(async move {
                    let _permit = permit;
                    tracing::debug!(connector = %ctx.name, %peer, "MLLP connection opened");
                    connection(stream, peer.to_string(), &config, &ctx, &ingest, shutdown).await;
                });
            }
            Err(e) => {
                tracing::warn!(connector = %ctx.name, error = %e, "accepting an MLLP connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    tracing::info!(connector = %ctx.name, open = connections.len(), "MLLP listener stopped accepting; finishing open connections");
    while connections.join_next().await.is_some() {}
}

async fn connection(
    mut stream: TcpStream,
    peer: String,
    config: &MllpConfig,
    ctx: &ConnectorContext,
    ingest: &Ingest,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut decoder = MllpDecoder::new(config.max_frame_bytes);
    let mut buf = vec![0u8; 64 * 1024];
    let idle = Duration::from_secs(config.idle_timeout_secs);
    let tz = &ctx.transform_env.timezone;
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
        let more_buffered = frames.len() >= MAX_FRAMES_AT_ONCE || refused.is_some();
        if !frames.is_empty() {
            let mut acks = Vec::new();
            for outcome in ingest.submit_many(ctx, frames).await {
                acks.extend(hl7::encode_frame(&ack_bytes(&outcome, tz)));
            }
            if stream.write_all(&acks).await.is_err() {
                return;
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
        let read = tokio::select! {
            r = tokio::time::timeout(idle, stream.read(&mut buf)) => r,
            _ = shutdown.changed() => return,
        };
        match read {
            Ok(Ok(0)) => {
                if decoder.has_partial() {
                    tracing::warn!(connector = %ctx.name, "MLLP connection closed in the middle of a frame; the partial message was not stored or acknowledged");
                }
                return;
            }
            Ok(Ok(n)) => decoder.extend(&buf[..n]),
            Ok(Err(e)) => {
                tracing::debug!(connector = %ctx.name, error = %e, "MLLP read failed");
                return;
            }
            Err(_) => {
                tracing::debug!(connector = %ctx.name, "MLLP connection idle too long; closed");
                return;
            }
        }
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
