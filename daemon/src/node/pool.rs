//! The transaction pool: transactions submitted by the app wait here for our next event.
//! Bounded in count and bytes; when full, a submission is refused (backpressure) instead of
//! growing without limit.

use std::collections::VecDeque;
use std::sync::Mutex;

/// Why a transaction was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PoolError {
    /// The pool holds its maximum; the app should retry later.
    #[error("transaction pool full ({count} transactions, {bytes} bytes): retry later")]
    Full {
        /// Transactions waiting.
        count: usize,
        /// Bytes waiting.
        bytes: usize,
    },
    /// A single transaction larger than an event can carry.
    #[error("transaction of {size} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Empty transactions are refused.
    #[error("empty transaction")]
    Empty,
}

/// A bounded FIFO of transactions.
pub struct TxPool {
    inner: Mutex<Inner>,
    max_count: usize,
    max_bytes: usize,
    max_tx_bytes: usize,
}

struct Inner {
    queue: VecDeque<Vec<u8>>,
    bytes: usize,
    submitted: u64,
}

impl TxPool {
    /// A pool of at most `max_count` transactions and `max_bytes` bytes, each transaction at
    /// most `max_tx_bytes`.
    pub fn new(max_count: usize, max_bytes: usize, max_tx_bytes: usize) -> TxPool {
        TxPool {
            inner: Mutex::new(Inner {
                queue: VecDeque::new(),
                bytes: 0,
                submitted: 0,
            }),
            max_count,
            max_bytes,
            max_tx_bytes,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the queue inconsistent (each update is
        // a single push or pop), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a transaction, or refuses it.
    pub fn submit(&self, tx: Vec<u8>) -> Result<(), PoolError> {
        if tx.is_empty() {
            return Err(PoolError::Empty);
        }
        if tx.len() > self.max_tx_bytes {
            return Err(PoolError::TooLarge {
                size: tx.len(),
                limit: self.max_tx_bytes,
            });
        }
        let mut inner = self.lock();
        if inner.queue.len() >= self.max_count || inner.bytes + tx.len() > self.max_bytes {
            return Err(PoolError::Full {
                count: inner.queue.len(),
                bytes: inner.bytes,
            });
        }
        inner.bytes += tx.len();
        inner.submitted += 1;
        inner.queue.push_back(tx);
        Ok(())
    }

    /// Takes transactions in submission order, up to `max_bytes` in total.
    pub fn take(&self, max_bytes: usize) -> Vec<Vec<u8>> {
        let mut inner = self.lock();
        let mut out = Vec::new();
        let mut size = 0;
        while let Some(front) = inner.queue.front() {
            if size + front.len() > max_bytes && !out.is_empty() {
                break;
            }
            size += front.len();
            let tx = inner.queue.pop_front().expect("front exists");
            inner.bytes -= tx.len();
            out.push(tx);
        }
        out
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.lock().queue.is_empty()
    }

    /// Transactions waiting.
    pub fn len(&self) -> usize {
        self.lock().queue.len()
    }

    /// Transactions accepted since start.
    pub fn submitted(&self) -> u64 {
        self.lock().submitted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_in_count_and_bytes_and_fifo() {
        let pool = TxPool::new(3, 10, 6);
        pool.submit(b"aa".to_vec()).unwrap();
        pool.submit(b"bbbb".to_vec()).unwrap();
        assert_eq!(
            pool.submit(b"ccccc".to_vec()),
            Err(PoolError::Full { count: 2, bytes: 6 })
        );
        pool.submit(b"cc".to_vec()).unwrap();
        assert!(matches!(
            pool.submit(b"d".to_vec()),
            Err(PoolError::Full { count: 3, .. })
        ));
        assert!(matches!(
            pool.submit(vec![0; 7]),
            Err(PoolError::TooLarge { .. })
        ));
        assert_eq!(pool.submit(Vec::new()), Err(PoolError::Empty));
        assert_eq!(pool.take(6), vec![b"aa".to_vec(), b"bbbb".to_vec()]);
        assert_eq!(pool.len(), 1);
        pool.submit(b"dddddd".to_vec()).unwrap();
        // A transaction larger than the byte budget still goes alone rather than never.
        assert_eq!(pool.take(1), vec![b"cc".to_vec()]);
        assert_eq!(pool.take(100), vec![b"dddddd".to_vec()]);
        assert!(pool.is_empty());
        assert_eq!(pool.submitted(), 4);
    }
}
