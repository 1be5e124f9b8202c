//! The transaction pool: transactions submitted by the app wait here for our next event.
//! Bounded in count and bytes, counting both the transactions waiting and those in our events
//! that consensus has not ordered yet; when full, a submission is refused (backpressure)
//! instead of growing without limit. Counting only the waiting ones bounded nothing under
//! overload: each heartbeat moves the queue into an event, so the backlog grew in undecided
//! events (and every node's memory) while the pool looked empty.
//!
//! The limits are a budget for the whole network, shared evenly by the validators: every node
//! keeps to its share, so all the transactions not yet ordered, anywhere, fit the budget, and
//! so does a block (one round's newly ordered transactions).
//!
//! With a store, every accepted transaction is written to it before `SubmitTx` is answered,
//! and removed in the same write that stores the event carrying it, so a crash neither loses
//! an accepted transaction nor commits it twice.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::store::Store;

/// Why a transaction was refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum PoolError {
    /// The pool holds its maximum; the app should retry later.
    #[error(
        "transaction pool full ({count} transactions, {bytes} bytes waiting or not yet ordered): retry later"
    )]
    Full {
        /// Transactions waiting or in our unordered events.
        count: usize,
        /// Their bytes.
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
    /// Validators sharing the budget. Outside the lock: the core sets it after every
    /// consensus step, and that should not contend with submissions.
    validators: AtomicUsize,
    store: Option<Arc<dyn Store>>,
}

struct Inner {
    /// (durable sequence number, transaction)
    queue: VecDeque<(u64, Vec<u8>)>,
    bytes: usize,
    /// Transactions taken into our events that consensus has not ordered yet, and their bytes.
    in_flight: usize,
    in_flight_bytes: usize,
    submitted: u64,
    next_seq: u64,
}

impl TxPool {
    /// A pool whose validators share a budget of `max_count` transactions and `max_bytes`
    /// bytes (one validator until [`TxPool::set_validators`]), each transaction at
    /// most `max_tx_bytes`.
    pub fn new(max_count: usize, max_bytes: usize, max_tx_bytes: usize) -> TxPool {
        TxPool {
            inner: Mutex::new(Inner {
                queue: VecDeque::new(),
                bytes: 0,
                in_flight: 0,
                in_flight_bytes: 0,
                submitted: 0,
                next_seq: 0,
            }),
            max_count,
            max_bytes,
            max_tx_bytes,
            validators: AtomicUsize::new(1),
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
        self.submit_all(vec![tx])
            .pop()
            .unwrap_or(Err(PoolError::Empty))
    }

    /// Adds transactions submitted together, in order, or refuses each that does not fit;
    /// one verdict per transaction. The accepted ones are stored in one write (a write per
    /// transaction was a twelfth of a node's time at 45,000 tx/s).
    pub fn submit_all(&self, txs: Vec<Vec<u8>>) -> Vec<Result<(), PoolError>> {
        let mut verdicts = Vec::with_capacity(txs.len());
        let mut accepted = Vec::with_capacity(txs.len());
        let mut inner = self.lock();
        let (max_count, max_bytes) = self.share(self.validators.load(Ordering::Relaxed));
        let mut count = inner.queue.len() + inner.in_flight;
        let mut bytes = inner.bytes + inner.in_flight_bytes;
        for tx in txs {
            let verdict = if tx.is_empty() {
                Err(PoolError::Empty)
            } else if tx.len() > self.max_tx_bytes {
                Err(PoolError::TooLarge {
                    size: tx.len(),
                    limit: self.max_tx_bytes,
                })
            } else if count >= max_count || bytes + tx.len() > max_bytes {
                Err(PoolError::Full { count, bytes })
            } else {
                count += 1;
                bytes += tx.len();
                accepted.push(tx);
                Ok(())
            };
            verdicts.push(verdict);
        }
        if accepted.is_empty() {
            return verdicts;
        }
        if let Some(store) = &self.store {
            // Under the lock, so that no event can take the transactions before they are
            // stored, and sequence numbers are stored in order.
            if let Err(e) = store.put_pending_transactions(inner.next_seq, &accepted) {
                let error = PoolError::Store(e.to_string());
                for verdict in verdicts.iter_mut().filter(|v| v.is_ok()) {
                    *verdict = Err(error.clone());
                }
                return verdicts;
            }
        }
        for tx in accepted {
            let seq = inner.next_seq;
            inner.next_seq += 1;
            inner.bytes += tx.len();
            inner.submitted += 1;
            inner.queue.push_back((seq, tx));
        }
        verdicts
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

    /// This node's share of the budget among `validators`: never less than one transaction of
    /// the largest size, or such a transaction could never be accepted.
    fn share(&self, validators: usize) -> (usize, usize) {
        let validators = validators.max(1);
        (
            (self.max_count / validators).max(1),
            (self.max_bytes / validators).max(self.max_tx_bytes),
        )
    }

    /// Sets how many validators share the budget (the size of the current validator set).
    pub fn set_validators(&self, validators: usize) {
        self.validators.store(validators.max(1), Ordering::Relaxed);
    }

    /// Takes transactions in submission order, up to `max_bytes` in total, with their
    /// sequence numbers (to remove them from the store with the event that carries them).
    /// They count against the limits until [`TxPool::ordered`] says so.
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
            inner.in_flight += 1;
            inner.in_flight_bytes += tx.len();
            out.push((seq, tx));
        }
        out
    }

    /// `count` taken transactions of `bytes` bytes left our care: consensus ordered the event
    /// carrying them, or they were put back with [`TxPool::resubmit`].
    pub fn ordered(&self, count: usize, bytes: usize) {
        let mut inner = self.lock();
        inner.in_flight = inner.in_flight.saturating_sub(count);
        inner.in_flight_bytes = inner.in_flight_bytes.saturating_sub(bytes);
    }

    /// Forgets every taken transaction, when the events carrying them were replaced (a
    /// fast-sync puts back what will not be ordered).
    pub fn forget_in_flight(&self) {
        let mut inner = self.lock();
        inner.in_flight = 0;
        inner.in_flight_bytes = 0;
    }

    /// Transactions taken into our events and not ordered yet.
    pub fn in_flight(&self) -> usize {
        self.lock().in_flight
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
        // Room again once the event carrying them is ordered.
        pool.ordered(2, 6);
        pool.submit(b"dddddd".to_vec()).unwrap();
        // A transaction larger than the byte budget still goes alone rather than never.
        assert_eq!(pool.take(1), vec![(2, b"cc".to_vec())]);
        assert_eq!(pool.take(100), vec![(3, b"dddddd".to_vec())]);
        assert!(pool.is_empty());
        assert_eq!(pool.submitted(), 4);
    }

    /// Transactions submitted together get one verdict each, in order, and only the
    /// accepted ones are stored, with consecutive sequence numbers.
    #[test]
    fn a_batch_is_judged_one_by_one_and_stored_together() {
        let store: Arc<dyn Store> = Arc::new(crate::store::memory::MemoryStore::default());
        let pool = TxPool::durable(3, 100, 5, Arc::clone(&store)).unwrap();
        let verdicts = pool.submit_all(vec![
            b"a".to_vec(),
            Vec::new(),
            b"toolarge".to_vec(),
            b"b".to_vec(),
            b"c".to_vec(),
            b"d".to_vec(),
        ]);
        assert_eq!(
            verdicts,
            vec![
                Ok(()),
                Err(PoolError::Empty),
                Err(PoolError::TooLarge { size: 8, limit: 5 }),
                Ok(()),
                Ok(()),
                Err(PoolError::Full { count: 3, bytes: 3 }),
            ]
        );
        assert_eq!(
            store.pending_transactions().unwrap(),
            vec![(0, b"a".to_vec()), (1, b"b".to_vec()), (2, b"c".to_vec())]
        );
        assert_eq!(pool.len(), 3);
        assert_eq!(pool.submitted(), 3);
    }

    /// Taken transactions still count until ordered: an empty queue does not mean room.
    #[test]
    fn transactions_in_unordered_events_count_against_the_limits() {
        let pool = TxPool::new(3, 100, 10);
        for tx in [b"a".to_vec(), b"bb".to_vec(), b"ccc".to_vec()] {
            pool.submit(tx).unwrap();
        }
        assert_eq!(pool.take(100).len(), 3);
        assert!(pool.is_empty());
        assert_eq!(pool.in_flight(), 3);
        assert_eq!(
            pool.submit(b"d".to_vec()),
            Err(PoolError::Full { count: 3, bytes: 6 })
        );
        // The event with the first two is ordered: room for two more, not three.
        pool.ordered(2, 3);
        pool.submit(b"d".to_vec()).unwrap();
        pool.submit(b"e".to_vec()).unwrap();
        assert!(matches!(
            pool.submit(b"f".to_vec()),
            Err(PoolError::Full { count: 3, .. })
        ));
        // The byte limit counts both too: 4 bytes in flight and 2 waiting leave no room for 3.
        let small = TxPool::new(100, 8, 8);
        small.submit(b"1234".to_vec()).unwrap();
        small.take(100);
        small.submit(b"12".to_vec()).unwrap();
        assert_eq!(
            small.submit(b"123".to_vec()),
            Err(PoolError::Full { count: 2, bytes: 6 })
        );
        small.forget_in_flight();
        small.submit(b"123".to_vec()).unwrap();
        assert_eq!(small.in_flight(), 0);
    }

    /// Each validator keeps to its share of the budget, but always has room for one
    /// transaction of the largest size.
    #[test]
    fn validators_share_the_budget() {
        let pool = TxPool::new(8, 40, 6);
        pool.set_validators(4);
        pool.submit(b"a".to_vec()).unwrap();
        pool.submit(b"b".to_vec()).unwrap();
        assert_eq!(
            pool.submit(b"c".to_vec()),
            Err(PoolError::Full { count: 2, bytes: 2 })
        );
        let bytes = TxPool::new(100, 40, 6);
        bytes.set_validators(4);
        bytes.submit(vec![1; 6]).unwrap();
        bytes.submit(vec![2; 4]).unwrap();
        assert!(
            bytes.submit(vec![3; 1]).is_err(),
            "10 bytes is a quarter of 40"
        );
        // With 20 validators a share (2 bytes) is below the largest transaction: one fits.
        let many = TxPool::new(100, 40, 6);
        many.set_validators(20);
        many.submit(vec![1; 6]).unwrap();
        assert!(many.submit(vec![2; 1]).is_err());
    }
}
