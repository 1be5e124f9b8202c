//! Our own events reach the disk before any peer can see them. A node that sent an event and
//! then lost it in a crash of the machine would sign another at the same index after the
//! restart: a fork, which the others hold against it. The core stores our events without
//! waiting for the disk (an fdatasync on its path took 0.3 ms of every 2.4 ms sync at a 1 ms
//! heartbeat, a time in which it answered no peer); a thread of its own syncs the log, and
//! whatever sends events to a peer first waits until every own event stored before is synced.
//! Events stored while a sync runs share the next one.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use tokio::sync::watch;

use crate::store::StoreError;

/// Makes every write to the store so far durable ([`crate::store::Store::sync_log`]).
pub type SyncLog = Box<dyn FnMut() -> Result<(), StoreError> + Send>;

/// What the core has stored and whether it has stopped storing.
#[derive(Default)]
struct Progress {
    /// Own events stored (a count of writes, not an event index: indices restart after a
    /// fast-sync, this never goes back).
    stored: u64,
    /// The core is gone: the thread syncs what is left and ends.
    closed: bool,
}

struct Inner {
    progress: Mutex<Progress>,
    stored_more: Condvar,
    /// Own events synced, in the count of [`Progress::stored`].
    synced: watch::Sender<u64>,
}

impl Inner {
    fn progress(&self) -> MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The core's side: it says when it has stored one of our events. Dropping it (the core has
/// ended) lets the sync thread end once all is synced.
pub struct OwnEventsStored {
    inner: Arc<Inner>,
}

impl OwnEventsStored {
    /// One more of our events is in the store, not synced yet.
    pub fn stored(&self) {
        self.inner.progress().stored += 1;
        self.inner.stored_more.notify_one();
    }
}

impl Drop for OwnEventsStored {
    fn drop(&mut self) {
        self.inner.progress().closed = true;
        self.inner.stored_more.notify_one();
    }
}

/// The senders' side: waits until the own events stored so far are durable.
#[derive(Clone)]
pub struct OwnEventsSynced {
    inner: Arc<Inner>,
}

impl OwnEventsSynced {
    /// Returns once every own event stored before the call is synced to disk. Whatever sends
    /// events to a peer calls it after taking them from the core and before sending them.
    pub fn all_stored(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let stored = self.inner.progress().stored;
        let inner = Arc::clone(&self.inner);
        async move {
            if *inner.synced.borrow() >= stored {
                return;
            }
            let mut synced = inner.synced.subscribe();
            // The sender lives in `inner`, which we hold: the wait ends only by the count.
            let _ = synced.wait_for(|synced| *synced >= stored).await;
        }
    }
}

/// The two sides around a thread that runs `sync_log` whenever own events were stored since
/// its last run, and ends after the last sync once the [`OwnEventsStored`] side is dropped.
/// A failed sync stops the process, as a failed write does (the core's rule: nothing is
/// signed twice after a restart).
pub fn own_events(
    sync_log: SyncLog,
) -> std::io::Result<(
    OwnEventsStored,
    OwnEventsSynced,
    std::thread::JoinHandle<()>,
)> {
    let inner = Arc::new(Inner {
        progress: Mutex::new(Progress::default()),
        stored_more: Condvar::new(),
        synced: watch::Sender::new(0),
    });
    let thread = std::thread::Builder::new()
        .name("hearsay-log-sync".into())
        .spawn({
            let inner = Arc::clone(&inner);
            move || sync_loop(&inner, sync_log)
        })?;
    Ok((
        OwnEventsStored {
            inner: Arc::clone(&inner),
        },
        OwnEventsSynced { inner },
        thread,
    ))
}

fn sync_loop(inner: &Inner, mut sync_log: SyncLog) {
    let mut synced = 0;
    loop {
        let target = {
            let mut progress = inner.progress();
            while progress.stored == synced && !progress.closed {
                progress = inner
                    .stored_more
                    .wait(progress)
                    .unwrap_or_else(|p| p.into_inner());
            }
            if progress.stored == synced {
                return;
            }
            progress.stored
        };
        if let Err(e) = sync_log() {
            super::core::fatal_store_error(&e, "our own event");
        }
        synced = target;
        inner.synced.send_replace(synced);
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::pin;
    use std::sync::mpsc;
    use std::task::{Context, Poll};

    use super::*;

    /// Polls `future` once: whether it has finished.
    fn finished(future: std::pin::Pin<&mut impl Future<Output = ()>>) -> bool {
        let waker = std::task::Waker::noop();
        future.poll(&mut Context::from_waker(waker)) == Poll::Ready(())
    }

    /// Longest wait for the sync thread to start a sync the test expects.
    const DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

    /// Waits for the next sync to start.
    fn sync_starts(started: &mpsc::Receiver<()>, what: &str) {
        if started.recv_timeout(DEADLINE).is_err() {
            panic!("no sync started within {DEADLINE:?}: {what}");
        }
    }

    /// A sync that says when it starts and waits for the test's go before it returns.
    fn gated_sync() -> (SyncLog, mpsc::Receiver<()>, mpsc::Sender<()>) {
        let (started_tx, started) = mpsc::channel();
        let (go, go_rx) = mpsc::channel::<()>();
        let sync: SyncLog = Box::new(move || {
            started_tx.send(()).expect("the test waits for the sync");
            go_rx.recv().expect("the test lets the sync finish");
            Ok(())
        });
        (sync, started, go)
    }

    #[tokio::test]
    async fn senders_wait_for_the_sync_of_what_was_stored_before_and_later_events_share_one() {
        let (sync, started, go) = gated_sync();
        let (stored, synced, thread) = own_events(sync).unwrap();

        let mut nothing_stored = pin!(synced.all_stored());
        assert!(finished(nothing_stored.as_mut()), "nothing stored: no wait");

        stored.stored();
        sync_starts(&started, "for the first event");
        let mut first = pin!(synced.all_stored());
        assert!(!finished(first.as_mut()), "sent before its sync finished");

        // Stored while the first sync runs: that sync does not cover them.
        stored.stored();
        stored.stored();
        let mut later = pin!(synced.all_stored());
        go.send(()).unwrap();
        tokio::time::timeout(DEADLINE, first.as_mut())
            .await
            .expect("the first event's sync finished, but its sender still waits");
        sync_starts(&started, "for the events stored during the first sync");
        assert!(
            !finished(later.as_mut()),
            "events stored during a sync were taken as synced by it"
        );
        go.send(()).unwrap();
        tokio::time::timeout(DEADLINE, later)
            .await
            .expect("the second sync finished, but the sender still waits");

        // The two stored during the first sync needed one sync, not two; the thread ends
        // when the core's side goes.
        drop(stored);
        thread.join().unwrap();
        assert!(
            started.try_recv().is_err(),
            "a third sync ran for events already synced"
        );
    }

    #[test]
    fn the_thread_syncs_what_is_left_when_the_core_goes() {
        let (sync, started, go) = gated_sync();
        let (stored, synced, thread) = own_events(sync).unwrap();
        stored.stored();
        drop(stored);
        sync_starts(&started, "for the event stored before the core went");
        go.send(()).unwrap();
        thread.join().unwrap();
        let mut after = pin!(synced.all_stored());
        assert!(finished(after.as_mut()));
    }
}
