//! The API over HTTPS: `axum::serve` on a listener whose connections are TLS streams.
//!
//! Handshakes run in tasks of their own, so that a slow or silent client cannot hold up the
//! accept loop, and each is bounded by [`HANDSHAKE_TIMEOUT`]. A failed handshake (plain HTTP
//! to the TLS port, an unknown client certificate) is logged with the peer address and the
//! reason, at debug level: it carries no request data. The listener is wrapped in
//! `tap_io` so that axum's `ConnectInfo<SocketAddr>` works unchanged for the handlers.
//!
//! Why not `axum-server`: this is some 60 lines on `tokio-rustls`, which is already in the
//! tree, and keeps `axum::serve`'s graceful shutdown; `axum-server` would add a second server
//! loop and its own rustls feature set.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::serve::ListenerExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// A client that has not finished its TLS handshake this long after connecting is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `router` over HTTPS on `listener` until `shutdown` turns true.
pub(super) async fn serve(
    listener: TcpListener,
    router: Router,
    tls: TlsAcceptor,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let listener = TlsListener {
        tcp: listener,
        tls,
        handshakes: JoinSet::new(),
    }
    .tap_io(|_| {});
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        let _ = shutdown.wait_for(|s| *s).await;
    })
    .await
}

type Handshake = (
    SocketAddr,
    Result<std::io::Result<TlsStream<TcpStream>>, tokio::time::error::Elapsed>,
);

struct TlsListener {
    tcp: TcpListener,
    tls: TlsAcceptor,
    handshakes: JoinSet<Handshake>,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            tokio::select! {
                accepted = self.tcp.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let _ = stream.set_nodelay(true);
                        let tls = self.tls.clone();
                        self.handshakes.spawn(async move {
                            (peer, tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(stream)).await)
                        });
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "accepting an API connection failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                Some(done) = self.handshakes.join_next(), if !self.handshakes.is_empty() => match done {
                    Ok((peer, Ok(Ok(stream)))) => return (stream, peer),
                    Ok((peer, Ok(Err(e)))) => {
                        tracing::debug!(%peer, reason = %e, "API TLS handshake failed; connection closed");
                    }
                    Ok((peer, Err(_))) => {
                        tracing::debug!(%peer, "API TLS handshake not finished in time; connection closed");
                    }
                    Err(_) => {}
                },
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}
