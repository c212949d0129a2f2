//! `MemoryStore`: the conformance suite, and races between tasks.
#![cfg(feature = "testing")]

use std::sync::Arc;

use approval_gate::MemoryStore;
use approval_gate::testing::races as store_common;

#[cfg(feature = "testing")]
#[tokio::test]
async fn memory_store_passes_the_conformance_suite() {
    use approval_gate::{ManualClock, testing};
    testing::run_all(&MemoryStore::new(), &ManualClock::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_updates_write_one_per_version() {
    store_common::racing_updates_write_one_per_version(Arc::new(MemoryStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_creates_file_one_request() {
    store_common::racing_creates_file_one_request(Arc::new(MemoryStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_grant_uses_stop_at_the_limit() {
    store_common::racing_grant_uses_stop_at_the_limit(Arc::new(MemoryStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_usage_adds_up() {
    store_common::racing_usage_adds_up(Arc::new(MemoryStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mixed_races_leave_one_decision_and_at_most_one_run() {
    store_common::mixed_races_leave_one_decision_and_at_most_one_run(MemoryStore::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_resumes_run_the_tool_once() {
    store_common::racing_resumes_run_the_tool_once(MemoryStore::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_leases_have_one_winner() {
    store_common::racing_leases_have_one_winner(Arc::new(MemoryStore::new())).await;
}
