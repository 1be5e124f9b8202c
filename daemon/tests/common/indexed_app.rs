//! An in-test app that records blocks by index, shared by the crash and disk-full tests.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;

use hearsay_proxy::{AppHandler, Block, CommitResponse};

/// An app that keeps blocks by index: a block delivered again (after a crash or a restart,
/// delivered before but its acknowledgement not stored) must be identical, and is answered
/// with the same state hash.
#[derive(Default)]
pub struct IndexedApp {
    pub blocks: Mutex<BTreeMap<u64, Block>>,
    pub mismatches: Mutex<Vec<u64>>,
    pub redelivered: Mutex<usize>,
}

impl AppHandler for IndexedApp {
    fn commit_block(&self, block: &Block) -> Result<CommitResponse, String> {
        let mut blocks = self.blocks.lock().unwrap();
        let index = block.body.index;
        if let Some(known) = blocks.get(&index) {
            *self.redelivered.lock().unwrap() += 1;
            if known.body != block.body {
                self.mismatches.lock().unwrap().push(index);
            }
        } else {
            blocks.insert(index, block.clone());
        }
        let mut hash = vec![0u8; 32];
        hash[..8].copy_from_slice(&index.to_be_bytes());
        Ok(CommitResponse::accept_all(hash, block))
    }
    fn get_snapshot(&self, _index: u64) -> Result<Vec<u8>, String> {
        Ok(Vec::new())
    }
    fn restore(&self, _snapshot: &[u8]) -> Result<Vec<u8>, String> {
        Ok(Vec::new())
    }
}

impl IndexedApp {
    pub fn block_count(&self) -> usize {
        self.blocks.lock().unwrap().len()
    }

    pub fn transactions(&self) -> Vec<String> {
        self.blocks
            .lock()
            .unwrap()
            .values()
            .flat_map(|b| b.body.transactions.iter())
            .map(|t| String::from_utf8_lossy(t).into_owned())
            .collect()
    }

    pub fn has_all<'a>(&self, wanted: impl IntoIterator<Item = &'a String>) -> bool {
        let got: HashSet<String> = self.transactions().into_iter().collect();
        wanted.into_iter().all(|t| got.contains(t))
    }
}
