//! The transaction pool: transactions submitted by the app wait here for our next event.
//! Bounded in count and bytes; when full, a submission is refused (backpressure) instead of
//! growing without limit. With a store, every accepted transaction is written to it before
//! `SubmitTx` is answered, and removed in the same write that stores the event carrying it, so
//! a crash neither loses an accepted transaction nor commits it twice.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use crate::store::Store;

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
    /// The transaction could not be made durable.
    #[error("cannot store the transaction: {0}")]
    Store(String),
}

/// A bounded FIFO of transactions.
pub struct TxPool {
    inner: Mutex<Inner>,
    max_count: usize,
    max_bytes: usize,
    max_tx_bytes: usize,
    store: Option<Arc<dyn Store>>,
}

struct Inner {
    /// (durable sequence number, transaction)
    queue: VecDeque<(u64, Vec<u8>)>,
    bytes: usize,
    submitted: u64,
    next_seq: u64,
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
                next_seq: 0,
            }),
            max_count,
            max_bytes,
            max_tx_bytes,
            store: None,
        }
    }

    /// A pool whose transactions are kept in `store`, starting with the ones it still holds
    /// (accepted before a crash and not yet in an event).
    pub fn durable(
        max_count: usize,
        max_bytes: usize,
        max_tx_bytes: usize,
        store: Arc<dyn Store>,
    ) -> Result<TxPool, crate::store::StoreError> {
        let pending = store.pending_transactions()?;
        let mut pool = TxPool::new(max_count, max_bytes, max_tx_bytes);
        {
            let inner = pool.inner.get_mut().unwrap_or_else(|p| p.into_inner());
            for (seq, tx) in pending {
                inner.bytes += tx.len();
                inner.next_seq = inner.next_seq.max(seq + 1);
                inner.queue.push_back((seq, tx));
            }
        }
        pool.store = Some(store);
        Ok(pool)
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
        let seq = inner.next_seq;
        if let Some(store) = &self.store {
            // Under the lock, so that no event can take the transaction before it is stored.
            store
                .put_pending_transaction(seq, &tx)
                .map_err(|e| PoolError::Store(e.to_string()))?;
        }
        inner.next_seq += 1;
        inner.bytes += tx.len();
        inner.submitted += 1;
        inner.queue.push_back((seq, tx));
        Ok(())
    }

    /// Puts back the transactions of our event `event`, which went stale (it will never be
    /// ordered), whatever the limits: they were promised to the app already. Only once per
    /// event, across restarts too (a replay finds the same event stale again); returns whether
    /// they were added now.
    pub fn resubmit(&self, event: &hashgraph::Hash, txs: Vec<Vec<u8>>) -> Result<bool, PoolError> {
        let mut inner = self.lock();
        let numbered: Vec<(u64, Vec<u8>)> = txs
            .into_iter()
            .enumerate()
            .map(|(i, tx)| (inner.next_seq + i as u64, tx))
            .collect();
        if let Some(store) = &self.store {
            let fresh = store
                .put_resubmitted(event, &numbered)
                .map_err(|e| PoolError::Store(e.to_string()))?;
            if !fresh {
                return Ok(false);
            }
        }
        inner.next_seq += numbered.len() as u64;
        for (seq, tx) in numbered {
            inner.bytes += tx.len();
            inner.queue.push_back((seq, tx));
        }
        Ok(true)
    }

    /// Takes transactions in submission order, up to `max_bytes` in total, with their
    /// sequence numbers (to remove them from the store with the event that carries them).
    pub fn take(&self, max_bytes: usize) -> Vec<(u64, Vec<u8>)> {
        let mut inner = self.lock();
        let mut out = Vec::new();
        let mut size = 0;
        while let Some((_, front)) = inner.queue.front() {
            if size + front.len() > max_bytes && !out.is_empty() {
                break;
            }
            size += front.len();
            let (seq, tx) = inner.queue.pop_front().expect("front exists");
            inner.bytes -= tx.len();
            out.push((seq, tx));
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
        assert_eq!(
            pool.take(6),
            vec![(0, b"aa".to_vec()), (1, b"bbbb".to_vec())]
        );
        assert_eq!(pool.len(), 1);
        pool.submit(b"dddddd".to_vec()).unwrap();
        // A transaction larger than the byte budget still goes alone rather than never.
        assert_eq!(pool.take(1), vec![(2, b"cc".to_vec())]);
        assert_eq!(pool.take(100), vec![(3, b"dddddd".to_vec())]);
        assert!(pool.is_empty());
        assert_eq!(pool.submitted(), 4);
    }
}
