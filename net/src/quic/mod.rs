//! The QUIC transport: one long-lived, mutually authenticated connection per peer, one
//! bidirectional stream per RPC.
//!
//! # Authentication
//!
//! TLS runs with throw-away self-signed certificates, and clients accept any certificate (while
//! still checking the TLS handshake signatures). A node's identity is its secp256k1 key, proven
//! by a handshake on the first bidirectional stream of each connection: each side signs 32
//! bytes exported from *this* TLS session (label `"hearsay handshake v1"`) tagged with its role,
//! so a man in the middle, who would hold two different sessions, cannot relay the proof. The
//! server asks the transport's [`Authorizer`] whether the client's key is in the peer set; the
//! client checks the server proves the key it meant to dial. A connection that fails the
//! handshake, or does not finish it within [`TransportConfig::timeout`], is closed with one of
//! the [`codes`] and a reason; no request is read from a connection before its handshake
//! succeeded.
//!
//! # Limits
//!
//! Frames are bounded by [`TransportConfig::max_frame_bytes`] and buffered only as their bytes
//! arrive; a peer may keep [`TransportConfig::max_streams_per_connection`] requests open at
//! once, so the worst-case buffering per authenticated peer is their product. Unauthenticated
//! connections hold no request state and are dropped at the handshake deadline.
//!
//! # RPCs
//!
//! [`QuicTransport::request`] sends one [`Request`] frame on a new stream of the peer's pooled
//! connection and reads one [`Response`] frame back. Inbound requests reach the host through
//! [`Inbound`], a bounded queue: when the host falls behind, streams wait (and QUIC flow control
//! pushes back on the peers) instead of memory growing. A malformed or oversized request gets
//! its stream stopped and a [`Response::Error`], and is logged with `warn!` (at most once a
//! minute per peer, as failed handshakes are once a minute in all: see [`crate::limit`]); the
//! connection and everyone else are served on.

mod frame;
pub(crate) mod handshake;
mod tls;

#[cfg(test)]
mod tests;

use crate::error::NetError;
use crate::limit::{WarnLimiter, WARN_PERIOD};
use crate::wire::{
    encode_frame, Request, Response, WireError, FRAME_HEADER_BYTES, MAX_FRAME_BYTES,
};
use frame::read_frame;
use hashgraph::{PublicKey, SecretKey};
use quinn::{Connection, Endpoint, IdleTimeout, RecvStream, SendStream, VarInt};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::time::timeout;
use tracing::{debug, info, warn};

/// How long [`QuicTransport::close`] waits for peers to acknowledge the close.
const CLOSE_GRACE: Duration = Duration::from_millis(300);

/// Application error codes used when closing a connection or resetting a stream.
pub mod codes {
    /// Connection closed normally (shutdown, peer forgotten, address changed).
    pub const NORMAL: u32 = 0;
    /// The handshake was malformed or a signature did not verify.
    pub const HANDSHAKE_FAILED: u32 = 1;
    /// The client's key is not allowed by the server's authorizer.
    pub const UNAUTHORIZED: u32 = 2;
    /// The handshake did not finish before the deadline.
    pub const HANDSHAKE_TIMEOUT: u32 = 3;
    /// The server proved a different key than the client meant to dial.
    pub const WRONG_PEER: u32 = 4;
    /// A request on this connection went unanswered past the deadline: the client dials a
    /// fresh connection for the next one.
    pub const REQUEST_TIMEOUT: u32 = 5;
    /// Stream code: the request frame was malformed or too large.
    pub const BAD_FRAME: u32 = 16;
    /// Stream code: the request was not answered before the deadline.
    pub const STREAM_TIMEOUT: u32 = 17;
}

/// Decides whether a proven key may talk to this node (typically: is it in the peer set?).
pub type Authorizer = Arc<dyn Fn(&PublicKey) -> bool + Send + Sync>;

/// Tuning of the QUIC transport.
#[derive(Clone, Debug)]
pub struct TransportConfig {
    /// Deadline of one RPC (dial and handshake included, permit wait included), of a connection
    /// handshake, and of serving one inbound request. Default 1 s.
    pub timeout: Duration,
    /// The most RPCs in flight to one peer at once. Default 2.
    pub max_pool: usize,
    /// The largest frame body read or written, capped at [`MAX_FRAME_BYTES`]. Default 32 MiB.
    pub max_frame_bytes: usize,
    /// A connection silent for this long is closed. Default 30 s.
    pub idle_timeout: Duration,
    /// How often an idle connection is pinged to keep it (and NAT bindings) alive. Default 5 s.
    pub keep_alive_interval: Duration,
    /// The most request streams a peer may have open on one connection. Default 64.
    pub max_streams_per_connection: u32,
    /// Capacity of the [`Inbound`] queue. Default 256.
    pub inbound_queue: usize,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            timeout: Duration::from_secs(1),
            max_pool: 2,
            max_frame_bytes: MAX_FRAME_BYTES,
            idle_timeout: Duration::from_secs(30),
            keep_alive_interval: Duration::from_secs(5),
            max_streams_per_connection: 64,
            inbound_queue: 256,
        }
    }
}

/// A request received from an authenticated peer, waiting for the host's answer.
#[derive(Debug)]
pub struct InboundRequest {
    /// The key the sender proved in the handshake.
    pub from: PublicKey,
    /// The sender's socket address.
    pub remote: SocketAddr,
    /// The request.
    pub request: Request,
    reply: oneshot::Sender<Response>,
}

impl InboundRequest {
    /// Sends `response` back to the requester. Dropping the request unanswered sends a
    /// [`Response::Error`] instead; answering after the deadline is silently ignored.
    pub fn respond(self, response: Response) {
        Responder { reply: self.reply }.respond(response);
    }

    /// The request and the means to answer it, apart: the request's contents (a push's
    /// events) can then be moved out instead of copied.
    pub fn into_parts(self) -> (Request, Responder) {
        (self.request, Responder { reply: self.reply })
    }
}

/// Answers one [`InboundRequest`] taken apart by [`InboundRequest::into_parts`].
#[derive(Debug)]
pub struct Responder {
    reply: oneshot::Sender<Response>,
}

impl Responder {
    /// Sends `response` back to the requester, as [`InboundRequest::respond`].
    pub fn respond(self, response: Response) {
        // The stream task may have timed out and gone; nothing to do then.
        let _ = self.reply.send(response);
    }
}

/// The stream of authenticated inbound requests; the host answers each one.
#[derive(Debug)]
pub struct Inbound {
    rx: mpsc::Receiver<InboundRequest>,
}

impl Inbound {
    /// The next request, or `None` once the transport is closed and every connection is gone.
    pub async fn recv(&mut self) -> Option<InboundRequest> {
        self.rx.recv().await
    }
}

/// A QUIC endpoint that both serves and dials peers. Cheap to clone; the endpoint closes when
/// the last clone is dropped or [`QuicTransport::close`] is called.
#[derive(Clone)]
pub struct QuicTransport {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for QuicTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuicTransport")
            .field("key", &self.inner.shared.public)
            .field("local_addr", &self.inner.local_addr)
            .finish_non_exhaustive()
    }
}

struct Inner {
    endpoint: Endpoint,
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    peers: Mutex<HashMap<PublicKey, Arc<PeerSlot>>>,
    opened: AtomicU64,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.endpoint.close(codes::NORMAL.into(), b"shutdown");
    }
}

/// What the accept loop and its tasks share.
struct Shared {
    key: SecretKey,
    public: PublicKey,
    authorizer: Authorizer,
    config: TransportConfig,
    accepted: AtomicU64,
    /// Failed handshakes, which anyone who reaches the port can cause: one warning a minute.
    handshake_warnings: WarnLimiter<()>,
    /// Bad request frames, per peer: one warning a minute each.
    frame_warnings: WarnLimiter<PublicKey>,
}

/// One peer's outbound state: its pooled connection and the RPC permits.
struct PeerSlot {
    permits: Semaphore,
    conn: tokio::sync::Mutex<Option<Connection>>,
}

impl QuicTransport {
    /// Binds a UDP socket on `listen` and starts serving. Must be called inside a Tokio runtime.
    /// Returns the transport (to dial peers) and the queue of inbound requests (to answer them).
    pub fn bind(
        listen: SocketAddr,
        key: SecretKey,
        authorizer: Authorizer,
        config: TransportConfig,
    ) -> Result<(QuicTransport, Inbound), NetError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(NetError::NoRuntime);
        }
        let mut config = config;
        config.max_frame_bytes = config.max_frame_bytes.min(MAX_FRAME_BYTES);
        config.max_pool = config.max_pool.max(1);
        config.inbound_queue = config.inbound_queue.max(1);

        let mut server = quinn::ServerConfig::with_crypto(Arc::new(tls::server_crypto()?));
        server.transport_config(Arc::new(transport_config(
            &config,
            config.max_streams_per_connection,
        )?));
        let mut client = quinn::ClientConfig::new(Arc::new(tls::client_crypto()?));
        // A dialled server never opens streams towards us.
        client.transport_config(Arc::new(transport_config(&config, 0)?));

        let socket = gossip_socket(listen)?;
        let runtime = quinn::default_runtime().ok_or(NetError::NoRuntime)?;
        let mut endpoint = Endpoint::new(
            quinn::EndpointConfig::default(),
            Some(server),
            socket,
            runtime,
        )?;
        endpoint.set_default_client_config(client);
        let local_addr = endpoint.local_addr()?;

        let (tx, rx) = mpsc::channel(config.inbound_queue);
        let shared = Arc::new(Shared {
            public: key.public_key(),
            key,
            authorizer,
            config,
            accepted: AtomicU64::new(0),
            handshake_warnings: WarnLimiter::new(WARN_PERIOD),
            frame_warnings: WarnLimiter::new(WARN_PERIOD),
        });
        tokio::spawn(accept_loop(endpoint.clone(), shared.clone(), tx));
        let inner = Arc::new(Inner {
            endpoint,
            local_addr,
            shared,
            peers: Mutex::new(HashMap::new()),
            opened: AtomicU64::new(0),
        });
        Ok((QuicTransport { inner }, Inbound { rx }))
    }

    /// The socket address the endpoint is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// This node's public key.
    pub fn public_key(&self) -> PublicKey {
        self.inner.shared.public
    }

    /// How many outbound connections were dialled and authenticated so far.
    pub fn connections_opened(&self) -> u64 {
        self.inner.opened.load(Ordering::Relaxed)
    }

    /// How many inbound connections passed the handshake so far.
    pub fn connections_accepted(&self) -> u64 {
        self.inner.shared.accepted.load(Ordering::Relaxed)
    }

    /// Sends `req` to `peer` at `addr` and waits for its response, within
    /// [`TransportConfig::timeout`]. Reuses the pooled connection to `peer` (dialling it if
    /// there is none, it died, `addr` changed, or its last request timed out) and allows at most
    /// [`TransportConfig::max_pool`] RPCs in flight to one peer. A refusal by the peer arrives
    /// as `Ok(Response::Error(..))`.
    pub async fn request(
        &self,
        peer: PublicKey,
        addr: SocketAddr,
        req: Request,
    ) -> Result<Response, NetError> {
        let config = &self.inner.shared.config;
        let frame = encode_frame(&req)?;
        let body_len = frame.len().saturating_sub(FRAME_HEADER_BYTES);
        if body_len > config.max_frame_bytes {
            return Err(WireError::FrameTooLarge {
                len: body_len,
                max: config.max_frame_bytes,
            }
            .into());
        }
        let slot = self.slot(peer);
        let mut used = None;
        let answer = timeout(config.timeout, async {
            let _permit = slot.permits.acquire().await.map_err(|_| NetError::Closed)?;
            let (conn, fresh) = self.connection(&slot, peer, addr).await?;
            used = Some((conn.clone(), conn.stats().udp_rx.datagrams));
            match self.rpc(&conn, &frame).await {
                // A pooled connection that died while idle: dial again once.
                Err(_) if !fresh && conn.close_reason().is_some() => {
                    let (conn, _) = self.connection(&slot, peer, addr).await?;
                    used = Some((conn.clone(), conn.stats().udp_rx.datagrams));
                    self.rpc(&conn, &frame).await
                }
                result => result,
            }
        })
        .await;
        match answer {
            Ok(result) => result,
            Err(_) => {
                // No answer in time, and not a datagram from the peer meanwhile: it may have
                // died without closing (killed, or its host gone), which QUIC notices only at
                // the idle timeout. Drop the connection so that the next request dials afresh
                // and reaches a restarted peer at once. A peer that is only slow (busy) still
                // acknowledges our packets, and keeps its connection and the requests on it.
                let silent = used
                    .as_ref()
                    .is_some_and(|(conn, rx)| conn.stats().udp_rx.datagrams == *rx);
                if let Some((conn, _)) = used.filter(|_| silent) {
                    let mut pooled = slot.conn.lock().await;
                    if pooled
                        .as_ref()
                        .is_some_and(|p| p.stable_id() == conn.stable_id())
                    {
                        *pooled = None;
                    }
                    conn.close(codes::REQUEST_TIMEOUT.into(), b"request timed out");
                }
                Err(NetError::Timeout)
            }
        }
    }

    /// Closes the pooled connection to `peer`, if any (e.g. when it leaves the peer set).
    pub async fn disconnect(&self, peer: &PublicKey) {
        let slot = self.lock_peers().remove(peer);
        if let Some(slot) = slot {
            if let Some(conn) = slot.conn.lock().await.take() {
                conn.close(codes::NORMAL.into(), b"disconnect");
            }
        }
    }

    /// Closes every connection and the endpoint, and waits (at most [`CLOSE_GRACE`]) for the
    /// peers to acknowledge.
    /// Pending and later requests fail; [`Inbound::recv`] returns `None` once drained.
    pub async fn close(&self) {
        self.inner.endpoint.close(codes::NORMAL.into(), b"shutdown");
        // Peers that are up acknowledge the close at once; a peer that is down never does,
        // and waiting for its timeout would hold a shutdown for seconds.
        let _ = tokio::time::timeout(CLOSE_GRACE, self.inner.endpoint.wait_idle()).await;
    }

    fn lock_peers(&self) -> std::sync::MutexGuard<'_, HashMap<PublicKey, Arc<PeerSlot>>> {
        // The map holds no invariant a panicking holder could break; recover from poisoning.
        self.inner
            .peers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn slot(&self, peer: PublicKey) -> Arc<PeerSlot> {
        let max_pool = self.inner.shared.config.max_pool;
        self.lock_peers()
            .entry(peer)
            .or_insert_with(|| {
                Arc::new(PeerSlot {
                    permits: Semaphore::new(max_pool),
                    conn: tokio::sync::Mutex::new(None),
                })
            })
            .clone()
    }

    /// The pooled, authenticated connection to `peer`, dialled if needed. The flag is true when
    /// it was dialled just now.
    async fn connection(
        &self,
        slot: &PeerSlot,
        peer: PublicKey,
        addr: SocketAddr,
    ) -> Result<(Connection, bool), NetError> {
        let mut pooled = slot.conn.lock().await;
        if let Some(conn) = pooled.as_ref() {
            if conn.close_reason().is_none() && conn.remote_address() == addr {
                return Ok((conn.clone(), false));
            }
            conn.close(codes::NORMAL.into(), b"replaced");
        }
        *pooled = None;
        let conn = self.dial(peer, addr).await?;
        *pooled = Some(conn.clone());
        Ok((conn, true))
    }

    async fn dial(&self, peer: PublicKey, addr: SocketAddr) -> Result<Connection, NetError> {
        let conn = self.inner.endpoint.connect(addr, tls::SERVER_NAME)?.await?;
        handshake::client(&conn, &self.inner.shared.key, &peer).await?;
        self.inner.opened.fetch_add(1, Ordering::Relaxed);
        debug!(target: "net::quic", %peer, %addr, "connected");
        Ok(conn)
    }

    async fn rpc(&self, conn: &Connection, frame: &[u8]) -> Result<Response, NetError> {
        let (mut send, mut recv) = conn.open_bi().await?;
        send.write_all(frame).await?;
        send.finish()?;
        read_frame(&mut recv, self.inner.shared.config.max_frame_bytes).await
    }
}

/// What the gossip socket's receive and send buffers are asked to hold. A node answering
/// pulls and taking pushes from every peer at once receives bursts of full datagrams; with
/// Linux's default of 208 KiB, 9% of all datagrams were dropped at 50,000 tx/s on loopback
/// (`/proc/net/snmp` RcvbufErrors), each a loss for QUIC to detect, resend and slow down for.
/// The kernel grants at most `net.core.rmem_max` (`wmem_max` for sending).
const SOCKET_BUFFER_BYTES: usize = 4 << 20;

/// Binds the gossip UDP socket on `listen`, with buffers of [`SOCKET_BUFFER_BYTES`] or as
/// near as the kernel allows.
fn gossip_socket(listen: SocketAddr) -> Result<std::net::UdpSocket, NetError> {
    let socket = std::net::UdpSocket::bind(listen)?;
    let sock = socket2::SockRef::from(&socket);
    // Best effort: a smaller buffer still works, as before.
    let _ = sock.set_recv_buffer_size(SOCKET_BUFFER_BYTES);
    let _ = sock.set_send_buffer_size(SOCKET_BUFFER_BYTES);
    let granted = recv_buffer_granted(&socket);
    if granted < SOCKET_BUFFER_BYTES {
        info!(
            target: "net::quic",
            granted,
            wanted = SOCKET_BUFFER_BYTES,
            "the gossip socket's receive buffer is smaller than wanted: raise net.core.rmem_max \
             to avoid dropped datagrams under load"
        );
    }
    Ok(socket)
}

/// The receive buffer the kernel granted `socket` (0 if it cannot say).
fn recv_buffer_granted(socket: &std::net::UdpSocket) -> usize {
    let reported = socket2::SockRef::from(socket)
        .recv_buffer_size()
        .unwrap_or(0);
    // Linux reports twice what was granted (the other half is its bookkeeping).
    if cfg!(target_os = "linux") {
        reported / 2
    } else {
        reported
    }
}

fn transport_config(
    config: &TransportConfig,
    incoming_streams: u32,
) -> Result<quinn::TransportConfig, NetError> {
    let idle = IdleTimeout::try_from(config.idle_timeout)
        .map_err(|e| NetError::Config(format!("idle timeout: {e}")))?;
    let mut transport = quinn::TransportConfig::default();
    transport
        .max_concurrent_bidi_streams(VarInt::from_u32(incoming_streams))
        .max_concurrent_uni_streams(VarInt::from_u32(0))
        .keep_alive_interval(Some(config.keep_alive_interval))
        .max_idle_timeout(Some(idle));
    // Gossip is request and answer, each side sending again within milliseconds: with an
    // acknowledgement after every second packet, a quarter of all packets carried nothing but
    // one (8.3 datagrams per sync of four messages at a 1 ms heartbeat, 6.3 with this). The
    // peer may now wait for nine packets (or the 25 ms delay) and the acknowledgement rides
    // on the next answer or request. Nine stays under QUIC's initial window of about twelve
    // packets, so a bulk transfer on a new connection is not held up waiting for one.
    let mut ack = quinn::AckFrequencyConfig::default();
    ack.ack_eliciting_threshold(VarInt::from_u32(8));
    transport.ack_frequency_config(Some(ack));
    Ok(transport)
}

async fn accept_loop(endpoint: Endpoint, shared: Arc<Shared>, tx: mpsc::Sender<InboundRequest>) {
    while let Some(incoming) = endpoint.accept().await {
        tokio::spawn(serve_connection(incoming, shared.clone(), tx.clone()));
    }
    debug!(target: "net::quic", "endpoint closed, accept loop done");
}

async fn serve_connection(
    incoming: quinn::Incoming,
    shared: Arc<Shared>,
    tx: mpsc::Sender<InboundRequest>,
) {
    let remote = incoming.remote_address();
    let deadline = shared.config.timeout;
    let conn = match timeout(deadline, incoming).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => {
            debug!(target: "net::quic", %remote, error = %e, "incoming connection failed");
            return;
        }
        Err(_) => {
            debug!(target: "net::quic", %remote, "incoming connection timed out");
            return;
        }
    };
    let authorize = shared.authorizer.as_ref();
    let peer = match timeout(deadline, handshake::server(&conn, &shared.key, authorize)).await {
        Ok(Ok(peer)) => peer,
        Ok(Err(refusal)) => {
            if let Some(held_back) = shared.handshake_warnings.check(&()) {
                warn!(target: "net::quic", %remote, reason = %refusal.reason, held_back, "handshake refused");
            }
            conn.close(refusal.code.into(), refusal.reason.as_bytes());
            return;
        }
        Err(_) => {
            if let Some(held_back) = shared.handshake_warnings.check(&()) {
                warn!(target: "net::quic", %remote, held_back, "handshake timed out");
            }
            conn.close(codes::HANDSHAKE_TIMEOUT.into(), b"handshake timeout");
            return;
        }
    };
    shared.accepted.fetch_add(1, Ordering::Relaxed);
    debug!(target: "net::quic", %peer, %remote, "peer authenticated");
    loop {
        match conn.accept_bi().await {
            Ok((send, recv)) => {
                let stream = InboundStream {
                    shared: shared.clone(),
                    from: peer,
                    remote,
                    tx: tx.clone(),
                };
                tokio::spawn(stream.serve(send, recv));
            }
            Err(e) => {
                debug!(target: "net::quic", %peer, error = %e, "connection ended");
                return;
            }
        }
    }
}

/// One inbound request stream of an authenticated peer.
struct InboundStream {
    shared: Arc<Shared>,
    from: PublicKey,
    remote: SocketAddr,
    tx: mpsc::Sender<InboundRequest>,
}

impl InboundStream {
    async fn serve(self, mut send: SendStream, mut recv: RecvStream) {
        let deadline = self.shared.config.timeout;
        match timeout(deadline, self.answer(&mut send, &mut recv)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                debug!(target: "net::quic", peer = %self.from, error = %e, "request stream failed");
            }
            Err(_) => {
                debug!(target: "net::quic", peer = %self.from, "request not answered in time");
                let _ = send.reset(codes::STREAM_TIMEOUT.into());
            }
        }
    }

    async fn answer(&self, send: &mut SendStream, recv: &mut RecvStream) -> Result<(), NetError> {
        let max = self.shared.config.max_frame_bytes;
        let request = match read_frame::<Request>(recv, max).await {
            Ok(request) => request,
            Err(e @ (NetError::Wire(_) | NetError::UnexpectedEnd | NetError::BytesAfterFrame)) => {
                let peer = self.from;
                if let Some(held_back) = self.shared.frame_warnings.check(&peer) {
                    warn!(target: "net::quic", %peer, error = %e, held_back, "refused a bad request frame");
                }
                let _ = recv.stop(codes::BAD_FRAME.into());
                return respond(send, &Response::Error(format!("bad request: {e}")), max).await;
            }
            Err(e) => return Err(e),
        };
        let (reply, answer) = oneshot::channel();
        let inbound = InboundRequest {
            from: self.from,
            remote: self.remote,
            request,
            reply,
        };
        if self.tx.send(inbound).await.is_err() {
            return respond(send, &Response::Error("node shutting down".into()), max).await;
        }
        let response = answer
            .await
            .unwrap_or_else(|_| Response::Error("request dropped unanswered".into()));
        respond(send, &response, max).await
    }
}

/// Writes `response` and finishes the stream. A response that cannot be framed within `max`
/// body bytes is replaced by a [`Response::Error`] (the host should have split it).
async fn respond(send: &mut SendStream, response: &Response, max: usize) -> Result<(), NetError> {
    let frame = match encode_frame(response) {
        Ok(frame) if frame.len() - FRAME_HEADER_BYTES <= max => frame,
        Ok(frame) => {
            let len = frame.len() - FRAME_HEADER_BYTES;
            warn!(target: "net::quic", len, max, "response exceeds the frame limit");
            encode_frame(&Response::Error(format!(
                "response of {len} bytes exceeds {max}"
            )))?
        }
        Err(e) => {
            warn!(target: "net::quic", error = %e, "response could not be framed");
            encode_frame(&Response::Error(format!("response refused: {e}")))?
        }
    };
    send.write_all(&frame).await?;
    send.finish()?;
    Ok(())
}
