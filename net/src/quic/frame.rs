//! Reading and writing frames on QUIC streams, with the size limit applied before any body
//! byte is buffered.

use crate::error::NetError;
use crate::wire::{decode_body, encode_frame, parse_header, Message, FRAME_HEADER_BYTES};
use quinn::{ReadExactError, RecvStream, SendStream};

/// The most body bytes buffered up front; the rest grows only as bytes actually arrive.
const INITIAL_BUFFER: usize = 64 << 10;

/// Reads the one frame a stream carries, of at most `max` body bytes, then the stream's end,
/// and decodes the frame. A stream read to its end is closed quietly; one dropped before its
/// end makes QUIC tell the sender to stop (a STOP_SENDING frame), which after an answer went
/// out in a packet of its own: a third of the datagrams at a 1 ms heartbeat. The sender
/// finishes the stream as it writes the frame, so the end usually arrives with it. Bytes
/// after the frame are refused.
pub(crate) async fn read_frame<M: Message>(
    recv: &mut RecvStream,
    max: usize,
) -> Result<M, NetError> {
    let mut header = [0u8; FRAME_HEADER_BYTES];
    recv.read_exact(&mut header).await.map_err(|e| match e {
        ReadExactError::FinishedEarly(_) => NetError::UnexpectedEnd,
        ReadExactError::ReadError(e) => NetError::Read(e),
    })?;
    let len = parse_header(header, max)?;
    let mut body = Vec::with_capacity(len.min(INITIAL_BUFFER));
    while body.len() < len {
        match recv.read_chunk(len - body.len(), true).await? {
            Some(chunk) => body.extend_from_slice(&chunk.bytes),
            None => return Err(NetError::UnexpectedEnd),
        }
    }
    if recv.read_chunk(1, true).await?.is_some() {
        return Err(NetError::BytesAfterFrame);
    }
    Ok(decode_body(&body)?)
}

/// Encodes `msg` as one frame and writes it.
pub(crate) async fn write_frame<M: Message>(
    send: &mut SendStream,
    msg: &M,
) -> Result<(), NetError> {
    let frame = encode_frame(msg)?;
    send.write_all(&frame).await?;
    Ok(())
}
