//! Machinery shared by both sides: a reconnecting JSON-RPC client and a bounded server loop.

use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Mutex, Semaphore};
use tokio::task::JoinSet;
use tracing::{debug, warn};

use crate::jsonrpc::{
    encode, encode_ok_raw, encode_request_one, encode_request_raw, write_message, CodecError,
    MessageReader, Object, Request, Response,
};
use crate::MAX_MESSAGE_BYTES;

/// Limits of a server ([`crate::serve_proxy_with_config`], [`crate::serve_app_with_config`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerConfig {
    /// Connections served at once; more are answered with an error and closed.
    pub max_connections: usize,
    /// Largest message accepted; a larger one is answered with an error and the connection
    /// closed.
    pub max_message_bytes: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_connections: 256,
            max_message_bytes: MAX_MESSAGE_BYTES,
        }
    }
}

/// Settings of a client ([`crate::ProxyClient`], [`crate::AppClient`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientConfig {
    /// Deadline for one call: connecting (if needed), sending and receiving the answer.
    pub timeout: Duration,
    /// Largest answer accepted.
    pub max_message_bytes: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(1),
            max_message_bytes: MAX_MESSAGE_BYTES,
        }
    }
}

/// Why a call through [`crate::ProxyClient`] or [`crate::AppClient`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The peer could not be reached.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The address dialled.
        addr: String,
        /// Why it failed.
        source: io::Error,
    },
    /// Sending the request failed.
    #[error("connection lost: {0}")]
    Io(#[from] io::Error),
    /// The peer closed the connection before answering.
    #[error("connection closed before the answer arrived")]
    Closed,
    /// The peer's answer could not be read.
    #[error("unreadable answer: {0}")]
    Codec(#[from] CodecError),
    /// No answer within the deadline; the connection is dropped.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The peer answered with an error, e.g. the node's transaction pool is full
    /// (backpressure) or the app refused a call. The text is the peer's.
    #[error("{0}")]
    Remote(String),
    /// The peer answered, but not with the expected shape.
    #[error("unexpected answer: {0}")]
    BadResponse(String),
}

impl ClientError {
    /// The connection broke before an answer: worth one retry on a fresh connection.
    fn connection_lost(&self) -> bool {
        match self {
            ClientError::Io(_) | ClientError::Closed => true,
            ClientError::Codec(e) => {
                matches!(e, CodecError::Io(_) | CodecError::UnexpectedEof)
            }
            _ => false,
        }
    }
}

struct Connection {
    reader: MessageReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl Connection {
    async fn round_trip(&mut self, request: &[u8], id: &Value) -> Result<Response, ClientError> {
        self.writer.write_all(request).await?;
        self.writer.flush().await?;
        loop {
            let Some(obj) = self.reader.read_object().await? else {
                return Err(ClientError::Closed);
            };
            let response = Response::from_object(obj);
            if &response.id == id || (response.id.is_null() && response.error.is_some()) {
                return Ok(response);
            }
            // A late answer to an earlier, abandoned call: skip it.
        }
    }
}

/// A client keeping at most one connection, dialled lazily and replaced after any failure.
pub(crate) struct RpcClient {
    addr: String,
    config: ClientConfig,
    /// Retry once on a fresh connection when a reused one turns out to be dead.
    retry_stale: bool,
    next_id: AtomicU64,
    conn: Mutex<Option<Connection>>,
}

impl RpcClient {
    pub(crate) fn new(addr: String, config: ClientConfig, retry_stale: bool) -> Self {
        Self {
            addr,
            config,
            retry_stale,
            next_id: AtomicU64::new(0),
            conn: Mutex::new(None),
        }
    }

    pub(crate) fn addr(&self) -> &str {
        &self.addr
    }

    /// Calls `method` with parameters given as JSON texts and returns its result, or the
    /// peer's error as [`ClientError::Remote`].
    pub(crate) async fn call(&self, method: &str, params: &[String]) -> Result<Value, ClientError> {
        let id = self.next_id();
        let request = encode_request_raw(method, params, &id);
        self.send(&request, &id).await
    }

    /// Calls `method` with `param` serialized straight into the request (see
    /// [`encode_request_one`]), sized for `param_len_hint` bytes of it.
    pub(crate) async fn call_one<P: serde::Serialize>(
        &self,
        method: &str,
        param: &P,
        param_len_hint: usize,
    ) -> Result<Value, ClientError> {
        let id = self.next_id();
        let request = encode_request_one(method, param, &id, param_len_hint)?;
        self.send(&request, &id).await
    }

    fn next_id(&self) -> Value {
        Value::from(self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    /// Sends `request` (with `id`) and returns its result, or the peer's error.
    async fn send(&self, request: &[u8], id: &Value) -> Result<Value, ClientError> {
        let mut slot = self.conn.lock().await;
        let outcome =
            tokio::time::timeout(self.config.timeout, self.exchange(&mut slot, request, id)).await;
        let response = match outcome {
            Ok(Ok(response)) => response,
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                *slot = None;
                return Err(ClientError::Timeout(self.config.timeout));
            }
        };
        match response.error {
            Some(text) => Err(ClientError::Remote(text)),
            None => Ok(response.result),
        }
    }

    async fn exchange(
        &self,
        slot: &mut Option<Connection>,
        request: &[u8],
        id: &Value,
    ) -> Result<Response, ClientError> {
        let mut retried = false;
        loop {
            let reused = slot.is_some();
            let conn = match slot {
                Some(conn) => conn,
                None => slot.insert(self.connect().await?),
            };
            match conn.round_trip(request, id).await {
                Ok(response) => return Ok(response),
                Err(e) => {
                    *slot = None;
                    if reused && self.retry_stale && !retried && e.connection_lost() {
                        debug!(addr = %self.addr, error = %e, "reconnecting: connection was stale");
                        retried = true;
                        continue;
                    }
                    return Err(e);
                }
            }
        }
    }

    async fn connect(&self) -> Result<Connection, ClientError> {
        let stream =
            TcpStream::connect(&*self.addr)
                .await
                .map_err(|source| ClientError::Connect {
                    addr: self.addr.clone(),
                    source,
                })?;
        let _ = stream.set_nodelay(true);
        let (reader, writer) = stream.into_split();
        debug!(addr = %self.addr, "connected");
        Ok(Connection {
            reader: MessageReader::with_max_message_bytes(reader, self.config.max_message_bytes),
            writer,
        })
    }
}

/// Answers requests; the server writes the answers.
pub(crate) trait Dispatch: Send + Sync + 'static {
    /// The result of `request` as a JSON text, or an error text for the answer.
    fn call(&self, request: Request) -> impl Future<Output = Result<String, String>> + Send;

    /// The results of requests a client pipelined together, in order. One at a time unless
    /// the dispatcher can do better (the node stores submitted transactions in one write).
    fn call_batch(
        &self,
        requests: Vec<Request>,
    ) -> impl Future<Output = Vec<Result<String, String>>> + Send {
        async move {
            let mut answers = Vec::with_capacity(requests.len());
            for request in requests {
                answers.push(self.call(request).await);
            }
            answers
        }
    }
}

/// Most requests answered together: those already received whole when the first is read.
const MAX_BATCH: usize = 1024;

/// Accepts connections forever, serving each in its own task. Dropping the returned future
/// closes every connection it serves.
pub(crate) async fn serve<D: Dispatch>(
    listener: TcpListener,
    dispatch: Arc<D>,
    config: ServerConfig,
) {
    let permits = Arc::new(Semaphore::new(config.max_connections));
    let mut connections = JoinSet::new();
    // Any local process can open connections at will: the warnings go out once a minute.
    let mut over_limit = Throttle::default();
    let mut accept_failed = Throttle::default();
    loop {
        tokio::select! {
            biased;
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                        if let Some(held_back) = over_limit.check(Instant::now()) {
                            warn!(%peer, max = config.max_connections, held_back, "too many connections; refusing");
                        }
                        refuse(stream);
                        continue;
                    };
                    let dispatch = Arc::clone(&dispatch);
                    connections.spawn(async move {
                        serve_connection(stream, dispatch, config.max_message_bytes).await;
                        drop(permit);
                    });
                }
                Err(e) => {
                    // Typically out of file descriptors: back off instead of spinning.
                    if let Some(held_back) = accept_failed.check(Instant::now()) {
                        warn!(error = %e, held_back, "accept failed");
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

/// One warning a minute of a kind that repeats, with the count of those held back since.
#[derive(Default)]
struct Throttle {
    last: Option<Instant>,
    held_back: u64,
}

impl Throttle {
    const PERIOD: Duration = Duration::from_secs(60);

    /// `Some(held_back)` if a warning may go out at `now`.
    fn check(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.saturating_duration_since(last) < Self::PERIOD => {
                self.held_back += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.held_back))
            }
        }
    }
}

/// Best-effort error answer to a connection over the limit, without blocking the accept loop.
fn refuse(stream: TcpStream) {
    if let Ok(bytes) = encode(&Response::err(Value::Null, "too many connections")) {
        let _ = stream.try_write(&bytes);
    }
}

async fn serve_connection<D: Dispatch>(
    stream: TcpStream,
    dispatch: Arc<D>,
    max_message_bytes: usize,
) {
    let _ = stream.set_nodelay(true);
    let (reader, mut writer) = stream.into_split();
    let mut reader = MessageReader::with_max_message_bytes(reader, max_message_bytes);
    let mut out = Vec::new();
    loop {
        // The first message waits for the network; those the client pipelined behind it and
        // that arrived with it are answered together, in one write.
        let mut objects = Vec::new();
        let mut failure = match reader.read_object().await {
            Ok(None) => return,
            Ok(Some(obj)) => {
                objects.push(obj);
                None
            }
            Err(e) => Some(e),
        };
        while failure.is_none() && objects.len() < MAX_BATCH {
            match reader.buffered_object() {
                Ok(Some(obj)) => objects.push(obj),
                Ok(None) => break,
                Err(e) => failure = Some(e),
            }
        }
        out.clear();
        answer_all(dispatch.as_ref(), objects, &mut out).await;
        if !out.is_empty()
            && (writer.write_all(&out).await.is_err() || writer.flush().await.is_err())
        {
            return;
        }
        match failure {
            None => {}
            Some(CodecError::Io(_) | CodecError::UnexpectedEof) => return,
            Some(e) => {
                // No id to answer to, and for most of these the stream is out of sync: say why,
                // then close.
                debug!(error = %e, "closing connection after a malformed message");
                let _ =
                    write_message(&mut writer, &Response::err(Value::Null, e.to_string())).await;
                linger_close(reader, writer, max_message_bytes).await;
                return;
            }
        }
    }
}

/// Appends to `out` the answers to `objects`, in order: an error for each that is not a
/// request, the dispatcher's answer for the others (asked for together).
async fn answer_all<D: Dispatch>(dispatch: &D, objects: Vec<Object>, out: &mut Vec<u8>) {
    let mut parsed = Vec::with_capacity(objects.len());
    let mut requests = Vec::with_capacity(objects.len());
    for obj in objects {
        match Request::from_object(obj) {
            Ok(request) => {
                parsed.push(Ok(request.id.clone()));
                requests.push(request);
            }
            Err(bad) => parsed.push(Err(encode_error(bad.id, bad.reason))),
        }
    }
    let mut results = if requests.is_empty() {
        Vec::new()
    } else {
        dispatch.call_batch(requests).await
    }
    .into_iter();
    for slot in parsed {
        let answer = match slot {
            Ok(id) => match results.next() {
                Some(Ok(result)) => encode_ok_raw(&id, &result),
                Some(Err(text)) => encode_error(id, text),
                None => encode_error(id, "internal error: no answer".to_owned()),
            },
            Err(answer) => answer,
        };
        out.extend_from_slice(&answer);
    }
}

fn encode_error(id: Value, text: String) -> Vec<u8> {
    let response = Response::err(id, text);
    // Serializing a Value and a String cannot fail; fall back to a fixed answer regardless.
    encode(&response).unwrap_or_else(|_| {
        b"{\"id\":null,\"result\":null,\"error\":\"internal error\"}\n".to_vec()
    })
}

/// Closes our side, then discards what the peer is still sending (bounded in bytes and time),
/// so that the kernel does not reset the connection and destroy our last answer unread.
async fn linger_close(
    mut reader: MessageReader<OwnedReadHalf>,
    mut writer: OwnedWriteHalf,
    max_bytes: usize,
) {
    let _ = writer.shutdown().await;
    let drain = async {
        let mut sink = vec![0u8; 8 * 1024];
        let mut left = max_bytes;
        while left > 0 {
            match reader.get_mut().read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_warning_goes_out_once_a_minute_with_the_count_held_back() {
        let mut throttle = Throttle::default();
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        assert_eq!(throttle.check(at(0)), Some(0));
        assert_eq!(throttle.check(at(1)), None);
        assert_eq!(throttle.check(at(30)), None);
        assert_eq!(throttle.check(at(60)), Some(2));
        assert_eq!(throttle.check(at(61)), None);
        assert_eq!(throttle.check(at(500)), Some(1));
    }
}
