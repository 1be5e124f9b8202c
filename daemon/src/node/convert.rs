//! Conversions between the core's blocks and Babble's JSON shapes (INTERFACES.md §4).

use base64::Engine;
use hashgraph::{InternalTransactionKind, Peer};
use hearsay_proxy::types as babble;

/// Babble's JSON for a block. The timestamp is in Unix seconds, as Babble's is; Hearsay adds
/// the previous block's hash (`PrevHash`) after Babble's fields.
pub fn block_json(block: &hashgraph::Block) -> babble::Block {
    let body = &block.body;
    babble::Block {
        body: babble::BlockBody {
            index: body.index,
            round_received: body.round_received,
            timestamp: body.timestamp.div_euclid(1_000_000_000),
            state_hash: block.state_hash.clone(),
            frame_hash: body.frame_hash.0.to_vec(),
            peers_hash: body.peers_hash.0.to_vec(),
            transactions: body.transactions.clone(),
            internal_transactions: body
                .internal_transactions
                .iter()
                .map(internal_transaction_json)
                .collect(),
            internal_transaction_receipts: block
                .receipts
                .iter()
                .map(|r| babble::InternalTransactionReceipt {
                    internal_transaction: internal_transaction_json(&r.internal_transaction),
                    accepted: r.accepted,
                })
                .collect(),
            prev_hash: Some(body.prev_hash.0.to_vec()),
        },
        signatures: block
            .signatures
            .iter()
            .map(|(k, s)| (k.to_hex(), hex::encode(s.0)))
            .collect(),
    }
}

/// Babble's JSON for a peer.
pub fn peer_json(peer: &Peer) -> babble::Peer {
    babble::Peer {
        net_addr: peer.net_addr.clone(),
        pub_key_hex: peer.pub_key.to_hex(),
        moniker: peer.moniker.clone(),
    }
}

fn internal_transaction_json(itx: &hashgraph::InternalTransaction) -> babble::InternalTransaction {
    babble::InternalTransaction {
        body: babble::InternalTransactionBody {
            kind: match itx.body.kind {
                InternalTransactionKind::PeerAdd => babble::InternalTransactionType::PeerAdd,
                InternalTransactionKind::PeerRemove => babble::InternalTransactionType::PeerRemove,
            },
            peer: peer_json(&itx.body.peer),
        },
        signature: base64::engine::general_purpose::STANDARD.encode(itx.signature.0),
    }
}

/// The app's receipts, matched to the block's internal transactions by position. A missing
/// receipt counts as refused: the app must accept a change explicitly.
pub fn receipts(
    block: &hashgraph::Block,
    answer: &babble::CommitResponse,
) -> Vec<hashgraph::InternalTransactionReceipt> {
    block
        .body
        .internal_transactions
        .iter()
        .enumerate()
        .map(|(i, itx)| hashgraph::InternalTransactionReceipt {
            internal_transaction: itx.clone(),
            accepted: answer
                .internal_transaction_receipts
                .get(i)
                .is_some_and(|r| r.accepted),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hashgraph::{BlockBody, Hash, SecretKey};

    #[test]
    fn a_block_becomes_babble_json() {
        let key = SecretKey::from_seed(b"convert");
        let mut block = hashgraph::Block::new(BlockBody {
            index: 3,
            round_received: 9,
            timestamp: 1_795_336_550_123_456_789,
            prev_hash: Hash([1; 32]),
            frame_hash: Hash([2; 32]),
            peers_hash: Hash([3; 32]),
            transactions: vec![b"hello".to_vec()],
            internal_transactions: vec![],
        });
        block.state_hash = vec![9, 9];
        block.sign(&key);
        let json = serde_json::to_string(&block_json(&block)).unwrap();
        let expected_prefix =
            "{\"Body\":{\"Index\":3,\"RoundReceived\":9,\"Timestamp\":1795336550,\
            \"StateHash\":\"CQk=\",\"FrameHash\":\"AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=\",\
            \"PeersHash\":\"AwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwM=\",\
            \"Transactions\":[\"aGVsbG8=\"],\"InternalTransactions\":[],\
            \"InternalTransactionReceipts\":[],\
            \"PrevHash\":\"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\"},\"Signatures\":{\"0X04";
        assert!(json.starts_with(expected_prefix), "{json}");
    }
}
