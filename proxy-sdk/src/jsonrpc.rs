//! JSON-RPC 1.0 framing as Go's `net/rpc/jsonrpc` speaks it.
//!
//! A stream carries JSON objects one after another. The writer appends `"\n"` to each; the
//! reader does not need it: objects may arrive back to back, split across reads, or separated by
//! any JSON whitespace.
//!
//! The reader is bounded. [`FrameDecoder`] finds where an object ends with a small lexical scan
//! (brace depth, strings and escapes) before parsing it, so it never buffers more than the
//! configured maximum message size plus one read, and never recurses: nesting beyond
//! `serde_json`'s limit (128) is rejected as invalid JSON when the complete frame is parsed.

use std::io;

use serde::Serialize;
use serde_json::{Map, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Default bound on one message, in bytes (16 MiB).
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// How many bytes [`MessageReader`] asks the socket for at a time.
const READ_CHUNK: usize = 8 * 1024;

/// A JSON object, the unit of the protocol.
pub type Object = Map<String, Value>;

/// Why a message could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The message grew beyond the size limit before it ended. The stream is out of sync.
    #[error("message exceeds the limit of {max} bytes")]
    TooLarge {
        /// The limit in force.
        max: usize,
    },
    /// The next message does not start with `{`. The stream is out of sync.
    #[error("message is not a JSON object (it starts with byte {byte:#04x})")]
    NotAnObject {
        /// The first byte of the offending message.
        byte: u8,
    },
    /// A complete frame was found but is not valid JSON (or nests too deeply). The frame has
    /// been consumed, so the stream is still in sync.
    #[error("invalid JSON: {reason}")]
    InvalidJson {
        /// serde_json's description of the problem.
        reason: String,
    },
    /// The stream ended in the middle of a message.
    #[error("connection closed in the middle of a message")]
    UnexpectedEof,
    /// A message could not be serialized.
    #[error("cannot serialize message: {reason}")]
    Serialize {
        /// serde_json's description of the problem.
        reason: String,
    },
    /// Reading or writing the underlying stream failed.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
}

impl CodecError {
    /// Whether the stream can no longer be read: everything but [`CodecError::InvalidJson`] and
    /// [`CodecError::Serialize`].
    pub fn is_fatal(&self) -> bool {
        !matches!(
            self,
            CodecError::InvalidJson { .. } | CodecError::Serialize { .. }
        )
    }
}

/// Incremental, bounded splitter of a byte stream into JSON objects.
///
/// Feed it a buffer that grows at the end; [`FrameDecoder::decode`] removes each complete
/// message (and the whitespace before it) from the front. After a fatal error
/// ([`CodecError::is_fatal`]) the stream is out of sync and the caller should stop.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    max: usize,
    /// A message has started at `buf[0]` (leading whitespace already removed).
    started: bool,
    /// Next byte of the buffer to scan.
    scanned: usize,
    depth: usize,
    in_string: bool,
    escaped: bool,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new(MAX_MESSAGE_BYTES)
    }
}

impl FrameDecoder {
    /// A decoder accepting messages of at most `max_message_bytes` bytes.
    pub fn new(max_message_bytes: usize) -> Self {
        Self {
            max: max_message_bytes,
            started: false,
            scanned: 0,
            depth: 0,
            in_string: false,
            escaped: false,
        }
    }

    /// The size limit in force.
    pub fn max_message_bytes(&self) -> usize {
        self.max
    }

    fn reset(&mut self) {
        self.started = false;
        self.scanned = 0;
        self.depth = 0;
        self.in_string = false;
        self.escaped = false;
    }

    /// Takes the next complete message off the front of `buf`, if there is one.
    ///
    /// `Ok(None)` means more bytes are needed. Leading whitespace is removed from `buf` even
    /// then, so a stream of blanks never accumulates.
    pub fn decode(&mut self, buf: &mut Vec<u8>) -> Result<Option<Object>, CodecError> {
        let (consumed, result) = self.decode_front(buf);
        buf.drain(..consumed);
        result
    }

    /// [`FrameDecoder::decode`] without removing anything: also returns how many bytes at the
    /// front of `buf` are done with (leading blanks, and the message if one was taken). The
    /// caller drops them before the next call. A reader holding many pipelined messages
    /// moves its buffer once per read this way, not once per message.
    fn decode_front(&mut self, buf: &[u8]) -> (usize, Result<Option<Object>, CodecError>) {
        let mut blanks = 0;
        if !self.started {
            blanks = buf.iter().take_while(|b| is_json_space(**b)).count();
            let Some(&first) = buf.get(blanks) else {
                return (blanks, Ok(None));
            };
            if first != b'{' {
                return (blanks, Err(CodecError::NotAnObject { byte: first }));
            }
            self.started = true;
            self.depth = 1;
            self.scanned = 1;
        }
        let buf = &buf[blanks..];
        let mut end = None;
        let mut offset = self.scanned;
        while offset < buf.len() {
            if self.in_string && !self.escaped {
                // Strings are most of a block (its transactions in base64): jump to the next
                // byte that can end the string or escape, instead of looking at every byte.
                match memchr::memchr2(b'"', b'\\', &buf[offset..]) {
                    Some(skip) => offset += skip,
                    None => break,
                }
            }
            let byte = buf[offset];
            offset += 1;
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if byte == b'\\' {
                    self.escaped = true;
                } else if byte == b'"' {
                    self.in_string = false;
                }
            } else {
                match byte {
                    b'"' => self.in_string = true,
                    b'{' | b'[' => self.depth += 1,
                    b'}' | b']' => {
                        self.depth -= 1;
                        if self.depth == 0 {
                            end = Some(offset);
                            break;
                        }
                    }
                    _ => {}
                }
            }
        }
        match end {
            Some(end) if end > self.max => (blanks, Err(CodecError::TooLarge { max: self.max })),
            Some(end) => {
                let parsed = serde_json::from_slice::<Object>(&buf[..end]);
                self.reset();
                let parsed = parsed.map(Some).map_err(|e| CodecError::InvalidJson {
                    reason: e.to_string(),
                });
                (blanks + end, parsed)
            }
            None => {
                self.scanned = buf.len();
                if buf.len() > self.max {
                    (blanks, Err(CodecError::TooLarge { max: self.max }))
                } else {
                    (blanks, Ok(None))
                }
            }
        }
    }

    /// Like [`FrameDecoder::decode`] once the stream has ended: `Ok(None)` only if nothing but
    /// whitespace is left, [`CodecError::UnexpectedEof`] for a partial message.
    pub fn decode_eof(&mut self, buf: &mut Vec<u8>) -> Result<Option<Object>, CodecError> {
        match self.decode(buf)? {
            Some(obj) => Ok(Some(obj)),
            None if buf.is_empty() => Ok(None),
            None => Err(CodecError::UnexpectedEof),
        }
    }
}

fn is_json_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// Reads JSON objects from an async byte stream, with bounded buffering.
#[derive(Debug)]
pub struct MessageReader<R> {
    inner: R,
    buf: Vec<u8>,
    /// Bytes at the front of `buf` already taken; dropped before the next read.
    taken: usize,
    decoder: FrameDecoder,
}

impl<R: AsyncRead + Unpin> MessageReader<R> {
    /// A reader with the default limit, [`MAX_MESSAGE_BYTES`].
    pub fn new(inner: R) -> Self {
        Self::with_max_message_bytes(inner, MAX_MESSAGE_BYTES)
    }

    /// A reader accepting messages of at most `max_message_bytes` bytes.
    pub fn with_max_message_bytes(inner: R, max_message_bytes: usize) -> Self {
        Self {
            inner,
            buf: Vec::new(),
            taken: 0,
            decoder: FrameDecoder::new(max_message_bytes),
        }
    }

    /// The next object, or `Ok(None)` when the stream ends cleanly between messages.
    ///
    /// Cancel-safe: dropping the future loses no bytes.
    pub async fn read_object(&mut self) -> Result<Option<Object>, CodecError> {
        loop {
            if let Some(obj) = self.buffered_object()? {
                return Ok(Some(obj));
            }
            self.buf.drain(..self.taken);
            self.taken = 0;
            self.buf.reserve(READ_CHUNK);
            let read = (&mut self.inner)
                .take(READ_CHUNK as u64)
                .read_buf(&mut self.buf)
                .await?;
            if read == 0 {
                return self.decoder.decode_eof(&mut self.buf);
            }
        }
    }

    /// The next object if it is already received whole, without reading: `Ok(None)` when
    /// more bytes are needed. A server answers what a client pipelined together at once.
    pub fn buffered_object(&mut self) -> Result<Option<Object>, CodecError> {
        let (consumed, result) = self.decoder.decode_front(&self.buf[self.taken..]);
        self.taken += consumed;
        result
    }

    /// The underlying stream.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }
}

/// Serializes `msg` as one message: compact JSON followed by `"\n"`.
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, CodecError> {
    let mut bytes = serde_json::to_vec(msg).map_err(|e| CodecError::Serialize {
        reason: e.to_string(),
    })?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Writes `msg` as one message (see [`encode`]) and flushes.
pub async fn write_message<W, T>(writer: &mut W, msg: &T) -> Result<(), CodecError>
where
    W: AsyncWrite + Unpin,
    T: Serialize,
{
    let bytes = encode(msg)?;
    writer.write_all(&bytes).await?;
    writer.flush().await?;
    Ok(())
}

/// A request whose parameters are already JSON texts, so that their key order (Babble's, not
/// `serde_json::Value`'s sorted one) is kept: `{"method":…,"params":[…],"id":…}` and `"\n"`.
pub(crate) fn encode_request_raw(method: &str, params: &[String], id: &Value) -> Vec<u8> {
    let params_len = params.iter().map(String::len).sum::<usize>() + params.len();
    let written = encode_request_with(method, id, params_len, |out| {
        for (i, param) in params.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(param.as_bytes());
        }
        Ok::<(), std::convert::Infallible>(())
    });
    match written {
        Ok(request) => request,
        Err(never) => match never {},
    }
}

/// A request with one parameter serialized straight into it (a struct keeps its fields'
/// order), in a buffer sized for `param_len_hint` bytes of it.
pub(crate) fn encode_request_one<P: Serialize>(
    method: &str,
    param: &P,
    id: &Value,
    param_len_hint: usize,
) -> Result<Vec<u8>, CodecError> {
    encode_request_with(method, id, param_len_hint, |out| {
        serde_json::to_writer(out, param).map_err(|e| CodecError::Serialize {
            reason: e.to_string(),
        })
    })
}

/// `{"method":…,"params":[`, what `write_params` writes, `],"id":…}` and `"\n"`, in one buffer
/// of about the final size: a block's request runs to megabytes at high load, and building it
/// in buffers grown by doubling (a `format!` over joined parameters, themselves serialized into
/// a growing string) copied it several times into fresh pages the kernel had to zero (4% of a
/// whole machine's time in a slow stretch at 50,000 tx/s, README "Benchmark").
fn encode_request_with<E>(
    method: &str,
    id: &Value,
    params_len_hint: usize,
    write_params: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
) -> Result<Vec<u8>, E> {
    let method = Value::String(method.to_owned()).to_string();
    let id = id.to_string();
    let mut out = Vec::with_capacity(32 + method.len() + id.len() + params_len_hint);
    out.extend_from_slice(b"{\"method\":");
    out.extend_from_slice(method.as_bytes());
    out.extend_from_slice(b",\"params\":[");
    write_params(&mut out)?;
    out.extend_from_slice(b"],\"id\":");
    out.extend_from_slice(id.as_bytes());
    out.extend_from_slice(b"}\n");
    Ok(out)
}

/// A successful answer whose result is already a JSON text (see [`encode_request_raw`]).
pub(crate) fn encode_ok_raw(id: &Value, result: &str) -> Vec<u8> {
    format!("{{\"id\":{id},\"result\":{result},\"error\":null}}\n").into_bytes()
}

/// A call, serialized as Go's client does: `{"method":…,"params":[…],"id":…}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Request {
    /// `Service.Method`, e.g. `Babble.SubmitTx`.
    pub method: String,
    /// Positional parameters; Babble's calls take exactly one.
    pub params: Vec<Value>,
    /// Echoed in the answer.
    pub id: Value,
}

/// A message that is a JSON object but not a well-formed request.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{reason}")]
pub struct BadRequest {
    /// The request's `id`, or null if it had none.
    pub id: Value,
    /// What is wrong with it.
    pub reason: String,
}

impl Request {
    /// Interprets an object as a request. A missing or null `params` is an empty list.
    pub fn from_object(mut obj: Object) -> Result<Self, BadRequest> {
        let id = obj.remove("id").unwrap_or(Value::Null);
        let method = match obj.remove("method") {
            Some(Value::String(method)) => method,
            _ => {
                return Err(BadRequest {
                    id,
                    reason: "request has no string \"method\"".into(),
                })
            }
        };
        let params = match obj.remove("params") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(params)) => params,
            Some(_) => {
                return Err(BadRequest {
                    id,
                    reason: "\"params\" must be an array".into(),
                })
            }
        };
        Ok(Self { method, params, id })
    }
}

/// An answer, serialized as Go's server does: `{"id":…,"result":…,"error":…}` with
/// `"error":null` on success and `"result":null` on failure.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Response {
    /// The request's id.
    pub id: Value,
    /// The result; null when `error` is set.
    pub result: Value,
    /// The error text, if the call failed.
    pub error: Option<String>,
}

impl Response {
    /// A successful answer.
    pub fn ok(id: Value, result: Value) -> Self {
        Self {
            id,
            result,
            error: None,
        }
    }

    /// A failed answer.
    pub fn err(id: Value, error: impl Into<String>) -> Self {
        Self {
            id,
            result: Value::Null,
            error: Some(error.into()),
        }
    }

    /// Interprets an object as an answer. A missing `result` is null; a non-string, non-null
    /// `error` is kept as its JSON text.
    pub fn from_object(mut obj: Object) -> Self {
        let id = obj.remove("id").unwrap_or(Value::Null);
        let result = obj.remove("result").unwrap_or(Value::Null);
        let error = match obj.remove("error") {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => Some(text),
            Some(other) => Some(other.to_string()),
        };
        Self { id, result, error }
    }
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use proptest::prelude::*;
    use serde_json::json;
    use tokio::io::ReadBuf;

    use super::*;

    #[test]
    fn a_raw_request_holds_its_parameter_texts_in_order_and_ends_the_line() {
        let params = ["{\"b\":1,\"a\":[2]}".to_owned(), "7".to_owned()];
        assert_eq!(
            String::from_utf8(encode_request_raw("State.CommitBlock", &params, &json!(3))).unwrap(),
            "{\"method\":\"State.CommitBlock\",\"params\":[{\"b\":1,\"a\":[2]},7],\"id\":3}\n"
        );
        assert_eq!(
            String::from_utf8(encode_request_raw("a\"b", &[], &json!("x"))).unwrap(),
            "{\"method\":\"a\\\"b\",\"params\":[],\"id\":\"x\"}\n"
        );
    }

    #[test]
    fn a_parameter_serialized_into_the_request_is_the_same_as_its_text() {
        let mut block = crate::types::Block::default();
        block.body.index = 9;
        block.body.transactions = vec![b"tx one".to_vec(), vec![0, 255]];
        let text = serde_json::to_string(&block).unwrap();
        for hint in [0, text.len(), 1 << 20] {
            assert_eq!(
                encode_request_one("State.CommitBlock", &block, &json!(4), hint).unwrap(),
                encode_request_raw("State.CommitBlock", std::slice::from_ref(&text), &json!(4)),
                "hint {hint}"
            );
        }
    }

    /// Hands out its bytes in chunks of the given sizes (cycled), one chunk per read.
    struct Chunked {
        data: Vec<u8>,
        pos: usize,
        sizes: Vec<usize>,
        turn: usize,
    }

    impl Chunked {
        fn new(data: &[u8], sizes: &[usize]) -> Self {
            Self {
                data: data.to_vec(),
                pos: 0,
                sizes: sizes.iter().map(|s| (*s).max(1)).collect(),
                turn: 0,
            }
        }
    }

    impl AsyncRead for Chunked {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let size = self.sizes[self.turn % self.sizes.len()];
            self.turn += 1;
            let end = (self.pos + size)
                .min(self.data.len())
                .min(self.pos + buf.remaining());
            let chunk = self.data[self.pos..end].to_vec();
            buf.put_slice(&chunk);
            self.pos = end;
            Poll::Ready(Ok(()))
        }
    }

    async fn read_all(data: &[u8], sizes: &[usize], max: usize) -> Vec<Result<Object, String>> {
        let mut reader = MessageReader::with_max_message_bytes(Chunked::new(data, sizes), max);
        let mut out = Vec::new();
        loop {
            match reader.read_object().await {
                Ok(Some(obj)) => out.push(Ok(obj)),
                Ok(None) => break,
                Err(e) => {
                    let fatal = e.is_fatal();
                    out.push(Err(e.to_string()));
                    if fatal {
                        break;
                    }
                }
            }
        }
        out
    }

    fn decode_all_sync(data: &[u8], chunk: usize, max: usize) -> Vec<Result<Object, String>> {
        let mut decoder = FrameDecoder::new(max);
        let mut buf = Vec::new();
        let mut out = Vec::new();
        let mut chunks = data.chunks(chunk.max(1));
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(obj)) => out.push(Ok(obj)),
                Ok(None) => match chunks.next() {
                    Some(c) => buf.extend_from_slice(c),
                    None => {
                        match decoder.decode_eof(&mut buf) {
                            Ok(Some(obj)) => {
                                out.push(Ok(obj));
                                continue;
                            }
                            Ok(None) => {}
                            Err(e) => out.push(Err(e.to_string())),
                        }
                        return out;
                    }
                },
                Err(e) => {
                    let fatal = e.is_fatal();
                    out.push(Err(e.to_string()));
                    if fatal {
                        return out;
                    }
                }
            }
            assert!(
                buf.len() <= max + chunk.max(1),
                "buffer grew past the bound"
            );
        }
    }

    fn obj(v: Value) -> Object {
        match v {
            Value::Object(m) => m,
            _ => unreachable!("test fixture is an object"),
        }
    }

    #[test]
    fn request_encodes_exactly_like_go_client() {
        let req = Request {
            method: "Babble.SubmitTx".into(),
            params: vec![json!("aGVsbG8=")],
            id: json!(7),
        };
        assert_eq!(
            encode(&req).unwrap(),
            b"{\"method\":\"Babble.SubmitTx\",\"params\":[\"aGVsbG8=\"],\"id\":7}\n"
        );
    }

    #[test]
    fn responses_encode_exactly_like_go_server() {
        assert_eq!(
            encode(&Response::ok(json!(7), json!(true))).unwrap(),
            b"{\"id\":7,\"result\":true,\"error\":null}\n"
        );
        assert_eq!(
            encode(&Response::err(json!(7), "tx pool full")).unwrap(),
            b"{\"id\":7,\"result\":null,\"error\":\"tx pool full\"}\n"
        );
    }

    #[test]
    fn go_style_request_and_response_parse() {
        let go_req = br#"{"method":"Babble.SubmitTx","params":["aGVsbG8="],"id":7}"#;
        let mut buf = go_req.to_vec();
        let parsed = FrameDecoder::default().decode(&mut buf).unwrap().unwrap();
        assert_eq!(
            Request::from_object(parsed).unwrap(),
            Request {
                method: "Babble.SubmitTx".into(),
                params: vec![json!("aGVsbG8=")],
                id: json!(7)
            }
        );
        let go_resp = br#"{"id":7,"result":null,"error":"boom"}"#;
        let mut buf = go_resp.to_vec();
        let parsed = FrameDecoder::default().decode(&mut buf).unwrap().unwrap();
        assert_eq!(
            Response::from_object(parsed),
            Response::err(json!(7), "boom")
        );
    }

    #[test]
    fn bad_requests_keep_their_id() {
        let err = Request::from_object(obj(json!({"id": 3, "params": []}))).unwrap_err();
        assert_eq!(err.id, json!(3));
        let err =
            Request::from_object(obj(json!({"id": "x", "method": "M", "params": {}}))).unwrap_err();
        assert_eq!(err.id, json!("x"));
        let ok = Request::from_object(obj(json!({"method": "M"}))).unwrap();
        assert!(ok.params.is_empty());
        assert_eq!(ok.id, Value::Null);
    }

    #[tokio::test]
    async fn back_to_back_and_split_at_every_byte() {
        let stream = b" {\"id\":1,\"s\":\"}{\\\"\"}{\"id\":2}\n\n\t{\"id\":3,\"a\":[{},[]]}\r\n";
        let expected = vec![
            Ok(obj(json!({"id": 1, "s": "}{\""}))),
            Ok(obj(json!({"id": 2}))),
            Ok(obj(json!({"id": 3, "a": [{}, []]}))),
        ];
        for size in 1..stream.len() + 1 {
            assert_eq!(
                read_all(stream, &[size], 1024).await,
                expected,
                "chunk {size}"
            );
        }
        assert_eq!(read_all(stream, &[1, 7, 2, 30], 1024).await, expected);
    }

    #[tokio::test]
    async fn empty_and_blank_streams_end_cleanly() {
        assert!(read_all(b"", &[4], 64).await.is_empty());
        assert!(read_all(b" \n\r\t \n", &[1], 64).await.is_empty());
    }

    #[tokio::test]
    async fn oversized_message_is_refused_without_buffering_it() {
        let mut big = b"{\"pad\":\"".to_vec();
        big.extend(std::iter::repeat_n(b'a', 10_000));
        big.extend_from_slice(b"\"}");
        let out = read_all(&big, &[100], 1000).await;
        assert_eq!(
            out,
            vec![Err("message exceeds the limit of 1000 bytes".into())]
        );
        // Exactly at the limit is fine.
        let exact = br#"{"a":1}"#;
        assert_eq!(read_all(exact, &[3], exact.len()).await.len(), 1);
        assert!(read_all(exact, &[3], exact.len() - 1).await[0].is_err());
        let sync = decode_all_sync(&big, 64, 1000);
        assert_eq!(sync.len(), 1);
    }

    #[tokio::test]
    async fn non_objects_are_fatal() {
        for bad in [&b"[1,2]"[..], b"\"str\"", b"12", b"null", b"}"] {
            let out = read_all(bad, &[2], 64).await;
            assert_eq!(out.len(), 1);
            assert!(out[0]
                .as_ref()
                .unwrap_err()
                .starts_with("message is not a JSON object"));
        }
    }

    #[tokio::test]
    async fn invalid_json_frame_is_skipped_and_stream_stays_in_sync() {
        let out = read_all(br#"{"id":1,"method":}{"id":2}"#, &[5], 64).await;
        assert_eq!(out.len(), 2);
        assert!(out[0].as_ref().unwrap_err().starts_with("invalid JSON"));
        assert_eq!(out[1], Ok(obj(json!({"id": 2}))));
    }

    #[tokio::test]
    async fn truncated_message_is_unexpected_eof() {
        let out = read_all(br#"{"id":1}{"id":"#, &[3], 64).await;
        assert_eq!(
            out,
            vec![
                Ok(obj(json!({"id": 1}))),
                Err("connection closed in the middle of a message".into())
            ]
        );
    }

    #[tokio::test]
    async fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let mut deep = b"{\"a\":".to_vec();
        deep.extend(std::iter::repeat_n(b'[', 100_000));
        deep.extend(std::iter::repeat_n(b']', 100_000));
        deep.push(b'}');
        let out = read_all(&deep, &[4096], 1 << 20).await;
        assert_eq!(out.len(), 1);
        assert!(out[0].as_ref().unwrap_err().contains("recursion limit"));
    }

    /// Braces, brackets and escaped quotes inside strings do not end a message, at any split.
    #[test]
    fn strings_hide_their_brackets_and_escaped_quotes_at_every_split() {
        let data = br#"{"a":"x\"}{\\","b":["}]\\\""]} {"c":"\\"}"#;
        for chunk in 1..=data.len() {
            let out = decode_all_sync(data, chunk, 1 << 10);
            assert_eq!(out.len(), 2, "chunk {chunk}: {out:?}");
            let first = out[0].as_ref().unwrap();
            assert_eq!(first["a"], r#"x"}{\"#, "chunk {chunk}");
            assert_eq!(first["b"][0], r#"}]\""#, "chunk {chunk}");
            assert_eq!(out[1].as_ref().unwrap()["c"], "\\", "chunk {chunk}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Arbitrary bytes never panic, the buffer stays bounded, and the result does not
        /// depend on how the bytes are split.
        #[test]
        fn decoder_never_panics_and_ignores_splits(
            data in proptest::collection::vec(
                prop_oneof![
                    any::<u8>(),
                    Just(b'{'), Just(b'}'), Just(b'"'), Just(b'\\'), Just(b'['), Just(b']'),
                    Just(b' '), Just(b':'), Just(b'1'),
                ],
                0..400,
            ),
            chunk in 1usize..64,
            max in 1usize..200,
        ) {
            let whole = decode_all_sync(&data, data.len().max(1), max);
            let split = decode_all_sync(&data, chunk, max);
            prop_assert_eq!(whole, split);
        }
    }
}
