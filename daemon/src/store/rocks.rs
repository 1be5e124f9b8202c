//! The RocksDB store, in two column families. `bodies` holds what is written once and never
//! changed, the bulk of the bytes: `e`+id → event, `B`+index → block body, `f`+index → frame.
//! Its values from 512 bytes go to blob files, written once at flush, so that leveled
//! compaction moves keys instead of rewriting every body at every level. The default family
//! holds the rest, small or rewritten values with one-byte key prefixes:
//! `m` metadata (format version, event count, app mark), `o`+position → id
//! (acceptance order), `s`+index → id (our own events), `b`+index → a block's seal (state
//! hash, receipts, signatures: rewritten on the app's answer and on each signature),
//! `p`+round → validator set, `t`+sequence → transaction accepted and not yet in an event,
//! `q`+creator → index below which its events were pruned, `r`+event id → marker that a
//! stale event of ours had its transactions put back,
//! `i`+creator (compressed key)+index → position of the first event held there, and the
//! metadata key `mcheckpoint` → events covered + the last checkpoint of the consensus state.
//! Integers in keys are big-endian so that keys sort numerically.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use hashgraph::{
    Block, BlockBody, Event, Frame, Hash, InternalTransactionReceipt, PeerSet, PublicKey, Signature,
};
use rocksdb::{
    ColumnFamily, ColumnFamilyDescriptor, Direction, IteratorMode, Options, WriteBatch,
    WriteOptions, DB,
};
use serde::{Deserialize, Serialize};

use super::{decode, decode_event, encode, Store, StoreError};

/// The on-disk format this version writes and reads.
pub const FORMAT: u32 = 3;

/// The column family of values written once (see the module docs).
const BODIES: &str = "bodies";
/// Most files the database keeps open (file descriptors, and a table reader each).
const MAX_OPEN_FILES: i32 = 512;

const META_FORMAT: &[u8] = b"mformat";
const META_COUNT: &[u8] = b"mcount";
const META_ACK: &[u8] = b"mack";
const META_CHECKPOINT: &[u8] = b"mcheckpoint";

fn pruned_key(creator: &hashgraph::PublicKey) -> Vec<u8> {
    key(b'q', &creator.to_compressed())
}

/// A creator's key and one of its indices, as the keys of the kinds below end.
fn creator_index(creator: &hashgraph::PublicKey, index: u64) -> Vec<u8> {
    let mut rest = creator.to_compressed().to_vec();
    rest.extend_from_slice(&index.to_be_bytes());
    rest
}

fn creator_key(creator: &hashgraph::PublicKey, index: u64) -> Vec<u8> {
    key(b'i', &creator_index(creator, index))
}

/// An event held at `index` after another one took the index (a fork branch, or our own
/// abandoned event), stored at `position`: what lets pruning find it.
fn branch_key(creator: &hashgraph::PublicKey, index: u64, position: u64) -> Vec<u8> {
    let mut rest = creator_index(creator, index);
    rest.extend_from_slice(&position.to_be_bytes());
    key(b'k', &rest)
}

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

/// The parts of a block that change after it is made, stored apart from its body.
#[derive(Serialize, Deserialize)]
struct Seal {
    state_hash: Vec<u8>,
    receipts: Vec<InternalTransactionReceipt>,
    signatures: BTreeMap<PublicKey, Signature>,
}

/// [`Store`] on RocksDB.
pub struct RocksStore {
    db: DB,
    path: PathBuf,
    /// Number of events stored; serialises event writes so that positions are dense.
    count: Mutex<u64>,
    /// The block bodies stored are those below this index: a block written again (a new
    /// signature, the app's answer) leaves its body alone.
    bodies_below: Mutex<u64>,
}

impl RocksStore {
    /// Opens (or creates) the database in `path`, for a node that keeps its whole history.
    pub fn open(path: &Path) -> Result<RocksStore, StoreError> {
        RocksStore::open_with(path, false)
    }

    /// Opens (or creates) the database in `path`; `pruning` says whether old history will be
    /// deleted, which makes reclaiming the space of deleted bodies worth its cost.
    pub fn open_with(path: &Path, pruning: bool) -> Result<RocksStore, StoreError> {
        let display = path.display().to_string();
        let mut options = Options::default();
        options.create_if_missing(true);
        // Debian's librocksdb is built with assertions on: after a failed write (a full disk)
        // RocksDB logs the error to its own LOG file in the same folder, whose writer asserts
        // and aborts the process before the error reaches us. With only fatal messages logged
        // the error comes back as a status and the node reports it.
        options.set_log_level(rocksdb::LogLevel::Fatal);
        options.create_missing_column_families(true);
        // A fixed memory budget, so that the node's resident memory does not grow with the
        // database: small memtables per column family (RocksDB's default is two of 64 MiB,
        // which a node under load fills over minutes; each fills and is freed in turn, so
        // its size is also the swing of the resident memory), and index and filter blocks
        // kept in one bounded block cache instead of one table reader per file held for good.
        let mut table = rocksdb::BlockBasedOptions::default();
        // 8 MiB: filled within the first minutes of a soak, where 16 MiB took ten, and the
        // index and filter blocks of a node's tables take a fraction of it.
        let cache = rocksdb::Cache::new_lru_cache(8 << 20).map_err(|e| classify(&display, e))?;
        table.set_block_cache(&cache);
        table.set_cache_index_and_filter_blocks(true);
        table.set_pin_l0_filter_and_index_blocks_in_cache(true);
        // Every accepted event is first looked up ("stored already?"), and nearly always is
        // not: without a filter each such miss reads a data block of every level, a cost
        // that grows with the database (a soak saw consensus slow down over minutes). A
        // 10-bit-per-key Bloom filter answers most misses from memory.
        table.set_bloom_filter(10.0, false);
        options.set_block_based_table_factory(&table);
        // The same question asked of the memtables searched their skip lists for every
        // miss (4% of the CPU at a sync per millisecond); a filter of 10% of their size
        // answers most misses.
        options.set_memtable_prefix_bloom_ratio(0.1);
        options.set_memtable_whole_key_filtering(true);
        // Sorted tables of 4 MiB, and a first level of at most 32 MiB. With RocksDB's
        // defaults (64 MiB tables, 256 MiB for the first level) every flush's tables were
        // merged into one growing table of the first level, rewritten whole each time: in a
        // 30-minute soak the compaction thread's share of a node's CPU reached 16% and
        // consensus slowed by a third, its memory growing with what was in flight.
        options.set_target_file_size_base(4 << 20);
        options.set_max_bytes_for_level_base(32 << 20);
        // Small values: two 2 MiB memtables. A memtable is freed whole once flushed, so its
        // size is a swing of the resident memory: a soak with 4 and 8 MiB memtables saw the
        // database's memory swing by 11 MiB of a node's 78.
        options.set_write_buffer_size(2 << 20);
        options.set_max_write_buffer_number(2);
        // Open files (tables and blob files, one blob file per flush) are kept in a bounded
        // cache: with the whole history kept their number grows without end.
        options.set_max_open_files(MAX_OPEN_FILES);
        let mut bodies = options.clone();
        // Most bytes: two 4 MiB memtables. Leveled compaction rewrote every event and block
        // body at every level: in a soak the compaction thread's share of a node's CPU grew
        // from 11% to 31% in 7 minutes, and consensus slowed with it. Here values from 512
        // bytes go to blob files, written once. (Blob files for rewritten values were tried
        // and left every old version on disk.) Blob garbage collection copies the live
        // bodies out of the oldest quarter of the blob files at each compaction: with the
        // whole history kept nothing there is garbage, and the copying grew with the
        // database (the compaction thread's share of a node's CPU went from 5% to 28% in 13
        // minutes of a soak). It runs only when pruning makes the oldest files garbage.
        bodies.set_write_buffer_size(4 << 20);
        bodies.set_enable_blob_files(true);
        bodies.set_min_blob_size(512);
        bodies.set_blob_file_size(64 << 20);
        bodies.set_enable_blob_gc(pruning);
        if let Ok(families) = DB::list_cf(&options, path) {
            if !families.iter().any(|f| f == BODIES) {
                return Err(older_format(path, &display));
            }
        }
        // The default family is named with its options: left out, the crate opens it with
        // RocksDB's defaults (64 MiB memtables, no filter, its own cache), which a soak showed
        // as 60 MiB of memtables filling and being freed every 2.5 minutes.
        let db = DB::open_cf_descriptors(
            &options,
            path,
            [
                ColumnFamilyDescriptor::new(rocksdb::DEFAULT_COLUMN_FAMILY_NAME, options.clone()),
                ColumnFamilyDescriptor::new(BODIES, bodies),
            ],
        )
        .map_err(|e| classify(&display, e))?;
        let store = RocksStore {
            db,
            path: path.to_path_buf(),
            count: Mutex::new(0),
            bodies_below: Mutex::new(0),
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
        let bodies_below = store
            .last_in(store.bodies(), b'B')?
            .map(|(k, _)| u64_of(&k))
            .transpose()?
            .map_or(0, |last| last + 1);
        *store.bodies_below.lock().unwrap_or_else(|p| p.into_inner()) = bodies_below;
        Ok(store)
    }

    fn bodies(&self) -> &ColumnFamily {
        self.db
            .cf_handle(BODIES)
            .expect("opened with the bodies column family")
    }

    fn get_body(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.db.get_cf(self.bodies(), key).map_err(|e| self.err(e))
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
        self.put_one(key, value, true)
    }

    fn put_one(&self, key: &[u8], value: &[u8], sync: bool) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        batch.put(key, value);
        self.write(batch, sync)
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
        let mut seen_at = std::collections::HashSet::new();
        for event in events {
            let id = event.id();
            let event_key = key(b'e', &id.0);
            if own {
                batch.put(num_key(b's', event.index()), id.0);
            }
            if !seen.insert(id) || self.get_body(&event_key)?.is_some() {
                continue;
            }
            batch.put_cf(self.bodies(), &event_key, event.to_bytes());
            batch.put(num_key(b'o', next), id.0);
            let by_creator = creator_key(event.creator(), event.index());
            // The first event held at an index keeps it; a fork branch is reachable by id, and
            // listed for pruning.
            if seen_at.insert((*event.creator(), event.index())) && self.get(&by_creator)?.is_none()
            {
                batch.put(by_creator, next.to_be_bytes());
            } else {
                batch.put(branch_key(event.creator(), event.index(), next), []);
            }
            next += 1;
        }
        if next == *count && consumed.is_empty() && !own {
            // Nothing new (our own event comes back from consensus already stored): a write
            // would only append the same count to the log.
            return Ok(());
        }
        batch.put(META_COUNT, next.to_be_bytes());
        self.write(batch, false)?;
        *count = next;
        Ok(())
    }

    /// Adds to `batch` the deletion of the event stored at `position` (its body and its place
    /// in the acceptance order); answers its id, if it was still there.
    fn delete_at(
        &self,
        batch: &mut WriteBatch,
        position: u64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let order_key = num_key(b'o', position);
        let id = self.get(&order_key)?;
        if let Some(id) = &id {
            batch.delete_cf(self.bodies(), key(b'e', id));
        }
        batch.delete(order_key);
        Ok(id)
    }

    /// The entries of the default family from `start` up to `end` (excluded) whose keys are
    /// as long as `end` (keys of one kind; both bounds of that kind).
    fn between(&self, start: &[u8], end: &[u8]) -> Result<Vec<Entry>, StoreError> {
        let mut out = Vec::new();
        for item in self
            .db
            .iterator(IteratorMode::From(start, Direction::Forward))
        {
            let (k, v) = item.map_err(|e| self.err(e))?;
            if k.as_ref() >= end || k.len() != end.len() {
                break;
            }
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
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
        self.last_in(
            self.db
                .cf_handle(rocksdb::DEFAULT_COLUMN_FAMILY_NAME)
                .expect("default family"),
            prefix,
        )
    }

    /// The last entry with `prefix` in column family `cf`.
    fn last_in(&self, cf: &ColumnFamily, prefix: u8) -> Result<Option<Entry>, StoreError> {
        let end = [prefix + 1];
        let mut iter = self
            .db
            .iterator_cf(cf, IteratorMode::From(&end, Direction::Reverse));
        match iter.next() {
            Some(item) => {
                let (k, v) = item.map_err(|e| self.err(e))?;
                Ok((k.first() == Some(&prefix)).then(|| (k[1..].to_vec(), v.to_vec())))
            }
            None => Ok(None),
        }
    }

    fn event_by_id_bytes(&self, id: &[u8]) -> Result<Option<Event>, StoreError> {
        match self.get_body(&key(b'e', id))? {
            Some(bytes) => decode_event(&bytes).map(Some),
            None => Ok(None),
        }
    }
}

/// The error for a database of a format before column families (2 or older), read without
/// changing it.
fn older_format(path: &Path, display: &str) -> StoreError {
    let found = DB::open_for_read_only(&Options::default(), path, false)
        .ok()
        .and_then(|db| db.get(META_FORMAT).ok().flatten())
        .and_then(|bytes| bytes.as_slice().try_into().ok().map(u32::from_be_bytes))
        .unwrap_or(0);
    StoreError::Incompatible {
        path: display.to_string(),
        found,
        expected: FORMAT,
    }
}

/// Maps RocksDB's errors onto what an operator can act on.
fn classify(path: &str, e: rocksdb::Error) -> StoreError {
    classify_message(path, e.into_string())
}

/// [`classify`] on RocksDB's message, such as `IO error: No space left on device: While
/// appending to file: <path>/000004.log: No space left on device`. Messages name files in the
/// database folder, so the folder's own name is left out of the judgement (a folder called
/// `blocks` must not make a full disk look locked), and the errno text of a full disk comes
/// first: whatever else the message says, freeing space is what the operator must do.
fn classify_message(path: &str, detail: String) -> StoreError {
    let lower = if path.is_empty() {
        detail.to_lowercase()
    } else {
        detail.replace(path, "").to_lowercase()
    };
    let path = path.to_string();
    // ENOSPC (RocksDB's NoSpace subcode says the same) and EDQUOT.
    if lower.contains("no space left on device") || lower.contains("disk quota exceeded") {
        StoreError::DiskFull { path }
    } else if lower.contains("lock hold by") || lower.contains("while lock file") {
        // The LOCK file is held, by this process (`lock hold by current process`) or
        // another (`While lock file: …/LOCK: Resource temporarily unavailable`).
        StoreError::Locked { path }
    } else if lower.contains("corruption") || lower.contains("corrupt") {
        StoreError::Corrupt { path, detail }
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

    fn sync_log(&self) -> Result<(), StoreError> {
        self.db.flush_wal(true).map_err(|e| self.err(e))
    }

    fn put_pending_transactions(&self, first_seq: u64, txs: &[Vec<u8>]) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        for (seq, tx) in (first_seq..).zip(txs) {
            batch.put(num_key(b't', seq), tx);
        }
        self.write(batch, false)
    }

    fn put_resubmitted(&self, event: &Hash, txs: &[(u64, Vec<u8>)]) -> Result<bool, StoreError> {
        let marker = key(b'r', &event.0);
        if self.get(&marker)?.is_some() {
            return Ok(false);
        }
        let mut batch = WriteBatch::default();
        batch.put(marker, []);
        for (seq, tx) in txs {
            batch.put(num_key(b't', *seq), tx);
        }
        self.write(batch, true)?;
        Ok(true)
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

    fn abandon_self_events(&self, index: u64) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        for (k, id) in self.scan(b's', &index.to_be_bytes(), usize::MAX)? {
            batch.delete(key(b's', &k));
            if let Some(event) = self.event_by_id_bytes(&id)? {
                let by_creator = creator_key(event.creator(), event.index());
                // The body stays reachable by id, and is listed for pruning like a fork branch.
                if let Some(position) = self.get(&by_creator)? {
                    let branch = branch_key(event.creator(), event.index(), u64_of(&position)?);
                    batch.put(branch, []);
                }
                batch.delete(by_creator);
            }
        }
        self.write(batch, true)
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

    fn creator_events(
        &self,
        creator: &hashgraph::PublicKey,
        from: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Event)>, StoreError> {
        let start = creator_key(creator, from);
        let prefix_len = start.len() - 8;
        let mut out = Vec::new();
        for item in self
            .db
            .iterator(IteratorMode::From(&start, Direction::Forward))
        {
            let (k, v) = item.map_err(|e| self.err(e))?;
            if out.len() >= limit
                || k.len() != start.len()
                || k[..prefix_len] != start[..prefix_len]
            {
                break;
            }
            let position = u64_of(&v)?;
            let Some(id) = self.get(&num_key(b'o', position))? else {
                return Err(StoreError::Corrupt {
                    path: self.path.display().to_string(),
                    detail: "an event listed by creator has no position".into(),
                });
            };
            match self.event_by_id_bytes(&id)? {
                Some(e) => out.push((position, e)),
                None => {
                    return Err(StoreError::Corrupt {
                        path: self.path.display().to_string(),
                        detail: "an event listed by creator is missing".into(),
                    })
                }
            }
        }
        Ok(out)
    }

    fn prune_below(&self, floors: &[(hashgraph::PublicKey, u64)]) -> Result<u64, StoreError> {
        let mut batch = WriteBatch::default();
        let mut pruned = 0;
        for (creator, floor) in floors {
            let done = self.pruned_below(creator)?;
            if *floor <= done {
                continue;
            }
            let held = self.between(&creator_key(creator, done), &creator_key(creator, *floor))?;
            for (k, v) in held {
                if let Some(id) = self.delete_at(&mut batch, u64_of(&v)?)? {
                    // Our own index goes with our own events.
                    let own_key = num_key(b's', u64_of(&k[k.len() - 8..])?);
                    if self.get(&own_key)?.as_deref() == Some(id.as_slice()) {
                        batch.delete(own_key);
                    }
                }
                batch.delete(k);
                pruned += 1;
            }
            // Fork branches and abandoned events below the floor go too (a forker's branches
            // would otherwise stay on disk for good).
            let branches = self.between(
                &branch_key(creator, done, 0),
                &branch_key(creator, *floor, 0),
            )?;
            for (k, _) in branches {
                self.delete_at(&mut batch, u64_of(&k[k.len() - 8..])?)?;
                batch.delete(k);
                pruned += 1;
            }
            batch.put(pruned_key(creator), floor.to_be_bytes());
        }
        self.write(batch, false)?;
        Ok(pruned)
    }

    fn memory_usage(&self) -> Vec<(&'static str, u64)> {
        let default = self
            .db
            .cf_handle(rocksdb::DEFAULT_COLUMN_FAMILY_NAME)
            .expect("default family");
        let families = [default, self.bodies()];
        // The block cache is shared: counted once.
        let per_family = [
            (
                "memtables",
                "rocksdb.cur-size-all-mem-tables",
                families.len(),
            ),
            ("block_cache", "rocksdb.block-cache-usage", 1),
            (
                "table_readers",
                "rocksdb.estimate-table-readers-mem",
                families.len(),
            ),
        ];
        per_family
            .into_iter()
            .filter_map(|(part, property, count)| {
                let values: Vec<u64> = families[..count]
                    .iter()
                    .filter_map(|cf| self.db.property_int_value_cf(*cf, property).ok().flatten())
                    .collect();
                (!values.is_empty()).then(|| (part, values.iter().sum()))
            })
            .collect()
    }

    fn pruned_below(&self, creator: &hashgraph::PublicKey) -> Result<u64, StoreError> {
        self.get(&pruned_key(creator))?
            .map_or(Ok(0), |v| u64_of(&v))
    }

    fn put_checkpoint(&self, checkpoint: &[u8], events: u64) -> Result<(), StoreError> {
        let mut value = events.to_be_bytes().to_vec();
        value.extend_from_slice(checkpoint);
        self.put_sync(META_CHECKPOINT, &value)
    }

    fn checkpoint(&self) -> Result<Option<(Vec<u8>, u64)>, StoreError> {
        match self.get(META_CHECKPOINT)? {
            Some(value) if value.len() >= 8 => {
                let events = u64_of(&value[..8])?;
                Ok(Some((value[8..].to_vec(), events)))
            }
            Some(_) => Err(StoreError::Decode {
                what: "checkpoint",
                detail: "shorter than its header".into(),
            }),
            None => Ok(None),
        }
    }

    fn put_block(&self, block: &Block) -> Result<(), StoreError> {
        let index = block.body.index;
        let mut bodies_below = self.bodies_below.lock().unwrap_or_else(|p| p.into_inner());
        let mut batch = WriteBatch::default();
        let new_body = index >= *bodies_below;
        if new_body {
            batch.put_cf(self.bodies(), num_key(b'B', index), encode(&block.body));
        }
        let seal = Seal {
            state_hash: block.state_hash.clone(),
            receipts: block.receipts.clone(),
            signatures: block.signatures.clone(),
        };
        batch.put(num_key(b'b', index), encode(&seal));
        self.write(batch, false)?;
        if new_body {
            *bodies_below = index + 1;
        }
        Ok(())
    }

    fn block(&self, index: u64) -> Result<Option<Block>, StoreError> {
        let Some(seal) = self.get(&num_key(b'b', index))? else {
            return Ok(None);
        };
        let seal: Seal = decode("block seal", &seal)?;
        let Some(body) = self.get_body(&num_key(b'B', index))? else {
            return Err(StoreError::Corrupt {
                path: self.path.display().to_string(),
                detail: format!("block {index} has no body"),
            });
        };
        let body: BlockBody = decode("block body", &body)?;
        Ok(Some(Block {
            body,
            state_hash: seal.state_hash,
            receipts: seal.receipts,
            signatures: seal.signatures,
        }))
    }

    fn last_block_index(&self) -> Result<Option<u64>, StoreError> {
        self.last(b'b')?.map(|(k, _)| u64_of(&k)).transpose()
    }

    fn put_frame(&self, block_index: u64, frame: &Frame) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        batch.put_cf(self.bodies(), num_key(b'f', block_index), encode(frame));
        self.write(batch, false)
    }

    fn frame(&self, block_index: u64) -> Result<Option<Frame>, StoreError> {
        self.get_body(&num_key(b'f', block_index))?
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
        // Not synced: a sync per block held the core for about 0.6 ms each time, a quarter of
        // the store's syncs at a 1 ms heartbeat. The next event of ours, which carries our
        // signature of the block, is synced (`sync_log`) and takes this write with it.
        self.put_one(META_ACK, &index.to_be_bytes(), false)
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
        // The suite stores four events, a fork branch and an own event that replaced an
        // abandoned one (which keeps its place in acceptance order), and prunes them all,
        // our head among them.
        assert_eq!(store.event_count().unwrap(), 6);
        assert!(store.events_from(0, 10).unwrap().is_empty());
        assert!(store.checkpoint().unwrap().is_some());
        assert_eq!(store.self_head().unwrap(), None);
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
        assert_eq!(store.events_from(6, 10).unwrap(), vec![e.clone()]);
        let by_creator = store.creator_events(&key.public_key(), 0, 10).unwrap();
        assert_eq!(by_creator, vec![(6, e)]);
    }

    #[test]
    fn memory_usage_reports_the_memtables_filling() {
        let dir = tempfile::tempdir().unwrap();
        let store = RocksStore::open(dir.path()).unwrap();
        let part = |name: &str| {
            store
                .memory_usage()
                .into_iter()
                .find(|(p, _)| *p == name)
                .map(|(_, bytes)| bytes)
                .unwrap_or_else(|| panic!("no {name} in {:?}", store.memory_usage()))
        };
        let before = part("memtables");
        for seq in 0..1_000 {
            store
                .put_pending_transactions(seq, &[vec![7u8; 1_000]])
                .unwrap();
        }
        let after = part("memtables");
        assert!(
            after >= before + 1_000_000,
            "memtables {before} -> {after} bytes"
        );
        part("block_cache");
        part("table_readers");
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
    fn a_full_disk_is_recognised_whatever_the_folder_is_called() {
        // The first message and the two LOCK ones are what RocksDB 7.8 said on a full tmpfs and
        // on a LOCK held by this process and by another; the others follow its format.
        for path in ["/srv/hearsay/db", "/srv/blocks/db", "/mnt/corrupt-lock"] {
            let full = [
                format!(
                    "IO error: No space left on device: While appending to file: \
                     {path}/000004.log: No space left on device"
                ),
                format!(
                    "IO error: No space left on device: While appending to file: \
                     {path}/000009.sst: No space left on device"
                ),
                format!(
                    "IO error: While appending to file: {path}/000004.log: Disk quota exceeded"
                ),
            ];
            for message in full {
                let err = classify_message(path, message.clone());
                assert!(
                    matches!(err, StoreError::DiskFull { .. }),
                    "{message}: {err:?}"
                );
                assert_eq!(
                    err.to_string(),
                    format!("the disk holding {path} is full: free space, then restart")
                );
            }
            let locked = [
                format!("IO error: While lock file: {path}/LOCK: Resource temporarily unavailable"),
                format!(
                    "IO error: lock hold by current process, acquire time 1700000000 acquiring \
                     thread 140000000000000: {path}/LOCK: No locks available"
                ),
            ];
            for message in locked {
                let err = classify_message(path, message.clone());
                assert!(
                    matches!(err, StoreError::Locked { .. }),
                    "{message}: {err:?}"
                );
            }
            let message = format!("Corruption: bad block contents in file {path}/000012.sst");
            let err = classify_message(path, message.clone());
            assert!(
                matches!(err, StoreError::Corrupt { .. }),
                "{message}: {err:?}"
            );
            let message = format!(
                "IO error: While open a file for appending: {path}/000004.log: Permission denied"
            );
            let err = classify_message(path, message.clone());
            assert!(matches!(err, StoreError::Io { .. }), "{message}: {err:?}");
        }
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

        // A database of format 2 (one column family) is refused with its format, unchanged.
        let older = tempfile::tempdir().unwrap();
        {
            let mut options = Options::default();
            options.create_if_missing(true);
            let db = DB::open(&options, older.path()).unwrap();
            db.put(META_FORMAT, 2u32.to_be_bytes()).unwrap();
        }
        let err = RocksStore::open(older.path()).err().expect("refused");
        assert!(
            matches!(err, StoreError::Incompatible { found: 2, .. }),
            "{err}"
        );
        let families = DB::list_cf(&Options::default(), older.path()).unwrap();
        assert_eq!(families, ["default"]);

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
