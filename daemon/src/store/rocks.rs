//! The RocksDB store. One key space with one-byte prefixes:
//! `m` metadata (format version, event count, app mark), `e`+id → event, `o`+position → id
//! (acceptance order), `s`+index → id (our own events), `b`+index → block, `f`+index → frame,
//! `p`+round → validator set, `t`+sequence → transaction accepted and not yet in an event.
//! Integers in keys are big-endian so that keys sort numerically.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use hashgraph::{Block, Event, Frame, Hash, PeerSet};
use rocksdb::{Direction, IteratorMode, Options, WriteBatch, WriteOptions, DB};

use super::{decode, decode_event, encode, Store, StoreError};

/// The on-disk format this version writes and reads.
pub const FORMAT: u32 = 1;

const META_FORMAT: &[u8] = b"mformat";
const META_COUNT: &[u8] = b"mcount";
const META_ACK: &[u8] = b"mack";

fn key(prefix: u8, rest: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + rest.len());
    k.push(prefix);
    k.extend_from_slice(rest);
    k
}

fn num_key(prefix: u8, n: u64) -> Vec<u8> {
    key(prefix, &n.to_be_bytes())
}

fn u64_of(bytes: &[u8]) -> Result<u64, StoreError> {
    bytes
        .try_into()
        .map(u64::from_be_bytes)
        .map_err(|_| StoreError::Decode {
            what: "counter",
            detail: format!("{} bytes instead of 8", bytes.len()),
        })
}

/// A key without its prefix, and its value.
type Entry = (Vec<u8>, Vec<u8>);

/// [`Store`] on RocksDB.
pub struct RocksStore {
    db: DB,
    path: PathBuf,
    /// Number of events stored; serialises event writes so that positions are dense.
    count: Mutex<u64>,
}

impl RocksStore {
    /// Opens (or creates) the database in `path`.
    pub fn open(path: &Path) -> Result<RocksStore, StoreError> {
        let display = path.display().to_string();
        let mut options = Options::default();
        options.create_if_missing(true);
        let db = DB::open(&options, path).map_err(|e| classify(&display, e))?;
        let store = RocksStore {
            db,
            path: path.to_path_buf(),
            count: Mutex::new(0),
        };
        match store.get(META_FORMAT)? {
            None => {
                let empty = store.get(META_COUNT)?.is_none();
                if !empty {
                    return Err(StoreError::Corrupt {
                        path: display,
                        detail: "data without a format marker".into(),
                    });
                }
                store.put_sync(META_FORMAT, &FORMAT.to_be_bytes())?;
            }
            Some(bytes) => {
                let found = bytes
                    .as_slice()
                    .try_into()
                    .map(u32::from_be_bytes)
                    .unwrap_or(u32::MAX);
                if found != FORMAT {
                    return Err(StoreError::Incompatible {
                        path: display,
                        found,
                        expected: FORMAT,
                    });
                }
            }
        }
        let count = match store.get(META_COUNT)? {
            Some(bytes) => u64_of(&bytes)?,
            None => 0,
        };
        *store.count.lock().unwrap_or_else(|p| p.into_inner()) = count;
        Ok(store)
    }

    fn err(&self, e: rocksdb::Error) -> StoreError {
        classify(&self.path.display().to_string(), e)
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.db.get(key).map_err(|e| self.err(e))
    }

    fn write(&self, batch: WriteBatch, sync: bool) -> Result<(), StoreError> {
        let mut options = WriteOptions::default();
        options.set_sync(sync);
        self.db.write_opt(batch, &options).map_err(|e| self.err(e))
    }

    fn put_sync(&self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        batch.put(key, value);
        self.write(batch, true)
    }

    /// Adds events not stored yet, and (for ours) the index entry, removing the pending
    /// transactions `consumed`, in one atomic write.
    fn add_events(&self, events: &[Event], own: bool, consumed: &[u64]) -> Result<(), StoreError> {
        let mut count = self.count.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = *count;
        let mut batch = WriteBatch::default();
        for seq in consumed {
            batch.delete(num_key(b't', *seq));
        }
        let mut seen = std::collections::HashSet::new();
        for event in events {
            let id = event.id();
            let event_key = key(b'e', &id.0);
            if own {
                batch.put(num_key(b's', event.index()), id.0);
            }
            if !seen.insert(id) || self.get(&event_key)?.is_some() {
                continue;
            }
            batch.put(&event_key, event.to_bytes());
            batch.put(num_key(b'o', next), id.0);
            next += 1;
        }
        batch.put(META_COUNT, next.to_be_bytes());
        self.write(batch, own)?;
        *count = next;
        Ok(())
    }

    /// Values of the keys with `prefix`, from `start` (the part after the prefix), ascending.
    fn scan(&self, prefix: u8, start: &[u8], limit: usize) -> Result<Vec<Entry>, StoreError> {
        let from = key(prefix, start);
        let mut out = Vec::new();
        for item in self
            .db
            .iterator(IteratorMode::From(&from, Direction::Forward))
        {
            let (k, v) = item.map_err(|e| self.err(e))?;
            if k.first() != Some(&prefix) || out.len() >= limit {
                break;
            }
            out.push((k[1..].to_vec(), v.to_vec()));
        }
        Ok(out)
    }

    fn last(&self, prefix: u8) -> Result<Option<Entry>, StoreError> {
        let end = [prefix + 1];
        let mut iter = self
            .db
            .iterator(IteratorMode::From(&end, Direction::Reverse));
        match iter.next() {
            Some(item) => {
                let (k, v) = item.map_err(|e| self.err(e))?;
                Ok((k.first() == Some(&prefix)).then(|| (k[1..].to_vec(), v.to_vec())))
            }
            None => Ok(None),
        }
    }

    fn event_by_id_bytes(&self, id: &[u8]) -> Result<Option<Event>, StoreError> {
        match self.get(&key(b'e', id))? {
            Some(bytes) => decode_event(&bytes).map(Some),
            None => Ok(None),
        }
    }
}

/// Maps RocksDB's errors onto what an operator can act on.
fn classify(path: &str, e: rocksdb::Error) -> StoreError {
    let detail = e.into_string();
    let lower = detail.to_lowercase();
    let path = path.to_string();
    if lower.contains("lock") {
        StoreError::Locked { path }
    } else if lower.contains("corruption") || lower.contains("corrupt") {
        StoreError::Corrupt { path, detail }
    } else if lower.contains("no space") {
        StoreError::DiskFull { path }
    } else {
        StoreError::Io { path, detail }
    }
}

impl Store for RocksStore {
    fn put_events(&self, events: &[Event]) -> Result<(), StoreError> {
        self.add_events(events, false, &[])
    }

    fn put_self_event(&self, event: &Event, consumed: &[u64]) -> Result<(), StoreError> {
        self.add_events(std::slice::from_ref(event), true, consumed)
    }

    fn put_pending_transaction(&self, seq: u64, tx: &[u8]) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        batch.put(num_key(b't', seq), tx);
        self.write(batch, false)
    }

    fn pending_transactions(&self) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.scan(b't', &[], usize::MAX)?
            .into_iter()
            .map(|(k, v)| Ok((u64_of(&k)?, v)))
            .collect()
    }

    fn event(&self, id: &Hash) -> Result<Option<Event>, StoreError> {
        self.event_by_id_bytes(&id.0)
    }

    fn self_head(&self) -> Result<Option<(u64, Hash)>, StoreError> {
        match self.last(b's')? {
            Some((k, v)) => {
                let index = u64_of(&k)?;
                let id: [u8; 32] = v.as_slice().try_into().map_err(|_| StoreError::Decode {
                    what: "event id",
                    detail: format!("{} bytes", v.len()),
                })?;
                Ok(Some((index, Hash(id))))
            }
            None => Ok(None),
        }
    }

    fn self_event(&self, index: u64) -> Result<Option<Event>, StoreError> {
        match self.get(&num_key(b's', index))? {
            Some(id) => self.event_by_id_bytes(&id),
            None => Ok(None),
        }
    }

    fn events_from(&self, from: u64, limit: usize) -> Result<Vec<Event>, StoreError> {
        let mut out = Vec::new();
        for (_, id) in self.scan(b'o', &from.to_be_bytes(), limit)? {
            match self.event_by_id_bytes(&id)? {
                Some(e) => out.push(e),
                None => {
                    return Err(StoreError::Corrupt {
                        path: self.path.display().to_string(),
                        detail: "an event listed in the acceptance order is missing".into(),
                    })
                }
            }
        }
        Ok(out)
    }

    fn event_count(&self) -> Result<u64, StoreError> {
        Ok(*self.count.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn put_block(&self, block: &Block) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        batch.put(num_key(b'b', block.body.index), encode(block));
        self.write(batch, false)
    }

    fn block(&self, index: u64) -> Result<Option<Block>, StoreError> {
        self.get(&num_key(b'b', index))?
            .map(|b| decode("block", &b))
            .transpose()
    }

    fn last_block_index(&self) -> Result<Option<u64>, StoreError> {
        self.last(b'b')?.map(|(k, _)| u64_of(&k)).transpose()
    }

    fn put_frame(&self, block_index: u64, frame: &Frame) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        batch.put(num_key(b'f', block_index), encode(frame));
        self.write(batch, false)
    }

    fn frame(&self, block_index: u64) -> Result<Option<Frame>, StoreError> {
        self.get(&num_key(b'f', block_index))?
            .map(|b| decode("frame", &b))
            .transpose()
    }

    fn put_peer_set(&self, round: u64, set: &PeerSet) -> Result<(), StoreError> {
        self.put_sync(&num_key(b'p', round), &encode(set))
    }

    fn peer_sets(&self) -> Result<Vec<(u64, PeerSet)>, StoreError> {
        self.scan(b'p', &[], usize::MAX)?
            .into_iter()
            .map(|(k, v)| Ok((u64_of(&k)?, decode("peer set", &v)?)))
            .collect()
    }

    fn set_app_acknowledged(&self, index: u64) -> Result<(), StoreError> {
        self.put_sync(META_ACK, &index.to_be_bytes())
    }

    fn app_acknowledged(&self) -> Result<Option<u64>, StoreError> {
        self.get(META_ACK)?.map(|b| u64_of(&b)).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_the_store_suite_and_keeps_everything_across_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let store = RocksStore::open(&path).unwrap();
            crate::store::suite::run(&store);
        }
        let store = RocksStore::open(&path).unwrap();
        assert_eq!(store.event_count().unwrap(), 4);
        assert_eq!(store.self_head().unwrap().map(|(i, _)| i), Some(1));
        assert_eq!(store.last_block_index().unwrap(), Some(0));
        assert_eq!(store.app_acknowledged().unwrap(), Some(0));
        assert_eq!(store.peer_sets().unwrap().len(), 2);
        // Positions stay dense after a reopen.
        let key = hashgraph::SecretKey::from_seed(b"after reopen");
        let e = hashgraph::EventBody {
            creator: key.public_key(),
            index: 0,
            self_parent: None,
            other_parent: None,
            timestamp: 0,
            transactions: vec![],
            internal_transactions: vec![],
            block_signatures: vec![],
        }
        .sign(&key);
        store.put_events(std::slice::from_ref(&e)).unwrap();
        assert_eq!(store.events_from(4, 10).unwrap(), vec![e]);
    }

    #[test]
    fn a_locked_database_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let _first = RocksStore::open(dir.path()).unwrap();
        let err = RocksStore::open(dir.path())
            .err()
            .expect("second open fails");
        assert!(matches!(err, StoreError::Locked { .. }), "{err}");
        assert!(err.to_string().contains("another `hearsay run`"), "{err}");
    }

    #[test]
    fn another_format_and_damage_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = RocksStore::open(dir.path()).unwrap();
            store.put_sync(META_FORMAT, &99u32.to_be_bytes()).unwrap();
        }
        let err = RocksStore::open(dir.path()).err().expect("refused");
        assert!(
            matches!(
                err,
                StoreError::Incompatible {
                    found: 99,
                    expected: FORMAT,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains(&dir.path().display().to_string()));

        // A database whose CURRENT file points nowhere cannot be opened, and says so.
        let broken = tempfile::tempdir().unwrap();
        drop(RocksStore::open(broken.path()).unwrap());
        std::fs::write(broken.path().join("CURRENT"), "MANIFEST-999999\n").unwrap();
        let err = RocksStore::open(broken.path()).err().expect("refused");
        assert!(
            matches!(err, StoreError::Corrupt { .. } | StoreError::Io { .. }),
            "{err}"
        );
        assert!(err
            .to_string()
            .contains(&broken.path().display().to_string()));
    }
}
