//! No input makes the core panic: arbitrary bytes, and valid events with bytes flipped, are
//! either refused with an error or inserted.

mod common;

use common::{all_events, gossip, network};
use hashgraph::{Config, Event, Hashgraph};
use proptest::prelude::*;

fn sample_events() -> Vec<Event> {
    let mut members = network(4, Config::default());
    gossip(&mut members, 40, 9, &[]);
    all_events(&members)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_are_refused_without_panicking(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(event) = Event::from_bytes(&bytes) {
            let mut hg = Hashgraph::new(Config::default(), common::peer_set(&common::keys(4)));
            let _ = hg.insert_event(event);
            hg.run_consensus();
        }
    }

    #[test]
    fn flipped_bytes_in_real_events_never_panic(which in 0usize..40, position in any::<prop::sample::Index>(), value in any::<u8>()) {
        let events = sample_events();
        let target = &events[which % events.len()];
        let mut bytes = target.to_bytes();
        let i = position.index(bytes.len());
        bytes[i] = value;
        let mut hg = Hashgraph::new(Config::default(), common::peer_set(&common::keys(4)));
        for e in &events {
            if e.id() == target.id() {
                if let Ok(mutated) = Event::from_bytes(&bytes) {
                    let changed = mutated.id() != target.id() || mutated.signature() != target.signature();
                    let result = hg.insert_event(mutated);
                    // A changed body cannot carry the original signature.
                    prop_assert!(!changed || result.is_err() || bytes == target.to_bytes());
                }
            } else {
                let _ = hg.insert_event(e.clone());
            }
            hg.run_consensus();
        }
    }
}
