//! The store conformance suite on `MemoryStore`.
#![cfg(feature = "testing")]

use approval_gate::{ManualClock, MemoryStore, testing};

#[tokio::test]
async fn memory_store_passes_the_conformance_suite() {
    testing::run_all(&MemoryStore::new(), &ManualClock::default()).await;
}
