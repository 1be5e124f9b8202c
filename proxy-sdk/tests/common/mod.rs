//! Helpers shared by the integration tests: raw TCP clients speaking hand-written JSON.

#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

/// Every wait in the tests is bounded by this.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// Awaits `fut`, failing the test if it takes longer than [`DEADLINE`].
pub async fn within<T>(fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, fut)
        .await
        .expect("deadline passed")
}

/// A raw client: writes bytes, reads answer lines.
pub struct Raw {
    pub reader: BufReader<OwnedReadHalf>,
    pub writer: OwnedWriteHalf,
}

impl Raw {
    pub async fn connect(addr: SocketAddr) -> Self {
        let stream = within(TcpStream::connect(addr)).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        let (reader, writer) = stream.into_split();
        Self {
            reader: BufReader::new(reader),
            writer,
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        within(self.writer.write_all(bytes)).await.expect("write");
    }

    /// The next line without its "\n", or `None` at end of stream (or reset).
    pub async fn line(&mut self) -> Option<String> {
        let mut line = String::new();
        match within(self.reader.read_line(&mut line)).await {
            Ok(0) | Err(_) => None,
            Ok(_) => {
                assert!(
                    line.ends_with('\n'),
                    "answer not newline-terminated: {line:?}"
                );
                line.pop();
                Some(line)
            }
        }
    }

    /// Sends `request` and returns the answer line.
    pub async fn call(&mut self, request: &str) -> String {
        self.send(request.as_bytes()).await;
        self.line().await.expect("an answer")
    }
}
