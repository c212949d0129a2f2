//! `SqliteStore` on temporary files: the conformance suite, races between connections,
//! and restarts.
#![cfg(all(feature = "sqlite", feature = "testing"))]

use std::path::PathBuf;
use std::sync::Arc;

use approval_gate::rusqlite::Connection;
use std::sync::atomic::{AtomicUsize, Ordering};

use approval_gate::testing::races as store_common;
use approval_gate::time::OffsetDateTime;
use approval_gate::{
    ApprovalRequest, KillScope, ManualClock, RequestId, RequestQuery, SqliteStore, StoreError,
    desk::{Grant, GrantId},
    store::{
        ControlStore, CursorStore, Expired, Filed, GrantStore, RequestStore, RunUsage,
        Subscription, Switches, TrailCursor, TrailReader, TrailWriter, UsageDelta,
    },
    trail::{AuditQuery, AuditRecord},
};
use async_trait::async_trait;
use uuid::Uuid;

/// A temporary directory, removed when dropped (also when a test panics).
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("approval-gate-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn db(&self) -> String {
        self.0.join("approvals.db").to_str().unwrap().to_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A store on `path` that keeps several read connections, so that racing tasks read
/// through different connections while their writes take turns.
async fn pooled(path: &str) -> SqliteStore {
    SqliteStore::connect_with(SqliteStore::options(path).read_connections(8))
        .await
        .unwrap()
}

/// Two stores on one file, as two processes would open it, taking turns: racing tasks
/// write through two writer connections, which meet SQLite's lock.
#[derive(Clone)]
struct TwoWriters {
    stores: [SqliteStore; 2],
    turn: Arc<AtomicUsize>,
}

impl TwoWriters {
    async fn open(path: &str) -> TwoWriters {
        TwoWriters {
            stores: [pooled(path).await, pooled(path).await],
            turn: Arc::default(),
        }
    }

    fn next(&self) -> &SqliteStore {
        &self.stores[self.turn.fetch_add(1, Ordering::Relaxed) % 2]
    }

    async fn close(&self) {
        for store in &self.stores {
            store.close().await;
        }
    }
}

#[async_trait]
impl RequestStore for TwoWriters {
    async fn create(
        &self,
        request: ApprovalRequest,
        record: &AuditRecord,
        now: OffsetDateTime,
    ) -> Result<Filed, StoreError> {
        self.next().create(request, record, now).await
    }
    async fn get(&self, id: RequestId) -> Result<ApprovalRequest, StoreError> {
        self.next().get(id).await
    }
    async fn update(
        &self,
        next: &ApprovalRequest,
        record: &AuditRecord,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        self.next().update(next, record).await
    }
    async fn list(
        &self,
        query: &RequestQuery,
        now: OffsetDateTime,
    ) -> Result<Vec<ApprovalRequest>, StoreError> {
        self.next().list(query, now).await
    }
    async fn sweep_expired(
        &self,
        now: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<Expired>, StoreError> {
        self.next().sweep_expired(now, limit).await
    }
    async fn subscribe(&self) -> Result<Subscription, StoreError> {
        self.stores[0].subscribe().await
    }
}

#[async_trait]
impl GrantStore for TwoWriters {
    async fn put_grant(&self, grant: &Grant, record: &AuditRecord) -> Result<(), StoreError> {
        self.next().put_grant(grant, record).await
    }
    async fn grant(&self, id: GrantId) -> Result<Grant, StoreError> {
        self.next().grant(id).await
    }
    async fn grants(&self, now: OffsetDateTime) -> Result<Vec<Grant>, StoreError> {
        self.next().grants(now).await
    }
    async fn update_grant(&self, next: &Grant, record: &AuditRecord) -> Result<(), StoreError> {
        self.next().update_grant(next, record).await
    }
}

#[async_trait]
impl ControlStore for TwoWriters {
    async fn switches(&self) -> Result<Switches, StoreError> {
        self.next().switches().await
    }
    async fn set_kill_switch(
        &self,
        scope: KillScope,
        engaged: bool,
        record: &AuditRecord,
    ) -> Result<(), StoreError> {
        self.next().set_kill_switch(scope, engaged, record).await
    }
    async fn set_read_only(&self, on: bool, record: &AuditRecord) -> Result<(), StoreError> {
        self.next().set_read_only(on, record).await
    }
    async fn add_usage(
        &self,
        run_id: &str,
        delta: UsageDelta,
        now: OffsetDateTime,
    ) -> Result<RunUsage, StoreError> {
        self.next().add_usage(run_id, delta, now).await
    }
    async fn usage(&self, run_id: &str) -> Result<RunUsage, StoreError> {
        self.next().usage(run_id).await
    }
}

#[async_trait]
impl TrailWriter for TwoWriters {
    async fn append_audit(&self, record: &AuditRecord) -> Result<(), StoreError> {
        self.next().append_audit(record).await
    }
}

#[async_trait]
impl TrailReader for TwoWriters {
    async fn audit_records(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        self.next().audit_records(query).await
    }
}

#[async_trait]
impl CursorStore for TwoWriters {
    async fn lease_cursor(
        &self,
        name: &str,
        holder: &str,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<Option<TrailCursor>, StoreError> {
        self.next().lease_cursor(name, holder, now, until).await
    }

    async fn advance_cursor(
        &self,
        name: &str,
        holder: &str,
        after_seq: u64,
        until: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        self.next()
            .advance_cursor(name, holder, after_seq, until)
            .await
    }

    async fn release_cursor(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        self.next().release_cursor(name, holder).await
    }

    async fn cursors(&self) -> Result<Vec<TrailCursor>, StoreError> {
        self.next().cursors().await
    }
}

/// A connection of the test's own to the store's file, as another program would open it.
fn own_connection(store: &SqliteStore) -> Connection {
    let conn = Connection::open(store.path()).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .unwrap();
    conn
}

#[cfg(feature = "testing")]
mod conformance {
    use super::*;
    use approval_gate::testing;

    macro_rules! suite {
        ($($name:ident),* $(,)?) => {$(
            #[tokio::test]
            async fn $name() {
                let dir = TempDir::new();
                let store = SqliteStore::connect(&dir.db()).await.unwrap();
                testing::$name(&store, &ManualClock::default()).await;
                store.close().await;
            }
        )*};
    }

    suite!(
        create_then_get_round_trips,
        create_dedupes_an_identical_pending_call,
        create_merges_only_the_same_callers_calls,
        cancelling_ends_the_requests_grants,
        update_is_compare_and_set,
        a_claim_wins_once,
        list_filters_and_orders,
        sweep_expires_what_is_due,
        switches_round_trip,
        usage_adds_up_per_run,
        switches_then_add_usage_counts_unless_stopped,
        grants_cover_count_and_revoke,
        quorum_votes_are_kept,
        ttl_edges_hold_to_the_nanosecond,
        changes_write_their_records,
        subscribers_hear_of_changes,
        cursors_lease_one_holder_at_a_time,
        run_all,
    );
}

#[tokio::test]
async fn connect_creates_the_file_in_wal_mode_and_reads_urls() {
    let dir = TempDir::new();
    let path = dir.db();
    assert!(!std::path::Path::new(&path).exists());
    let store = SqliteStore::connect(&path).await.unwrap();
    assert!(std::path::Path::new(&path).exists());
    // WAL is kept in the file, so another connection sees it (`synchronous` is set on
    // each of the store's own connections; the crate's unit tests check it).
    let mode: String = own_connection(&store)
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    store.close().await;

    // A `sqlite:` URL opens the same file.
    let store = SqliteStore::connect(&format!("sqlite://{path}"))
        .await
        .unwrap();
    store
        .set_read_only(true, &store_common::read_only_changed(true))
        .await
        .unwrap();
    store.close().await;
    let store = SqliteStore::connect(&path).await.unwrap();
    assert!(store.switches().await.unwrap().read_only);
    store.close().await;
}

#[tokio::test]
async fn migrate_is_idempotent_and_refuses_a_newer_schema() {
    let dir = TempDir::new();
    let store = SqliteStore::connect(&dir.db()).await.unwrap();
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    let conn = own_connection(&store);
    let versions: Vec<i64> = conn
        .prepare("SELECT version FROM approval_schema_version ORDER BY version")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(versions, [1, 2, 3, 4, 5, 6]);

    conn.execute(
        "INSERT INTO approval_schema_version (version) VALUES (99)",
        [],
    )
    .unwrap();
    let err = store.migrate().await.unwrap_err();
    assert!(matches!(err, StoreError::Backend { .. }));
    let source = std::error::Error::source(&err).unwrap().to_string();
    assert!(source.contains("newer"), "{source}");
    store.close().await;
}

/// A database written by an earlier version of this crate (schema version 2, whose
/// indexes held every request's state) is brought to the current version on connect, and its
/// requests are found by the dedupe lookup and the sweep as before.
#[tokio::test]
async fn a_version_2_database_migrates_and_keeps_its_requests() {
    let dir = TempDir::new();
    let clock = ManualClock::default();
    let now = approval_gate::Clock::now(&clock);
    let store = SqliteStore::connect(&dir.db()).await.unwrap();
    let filed = store_common::request("run-1", now);
    store
        .create(filed.clone(), &store_common::rec(&filed), now)
        .await
        .unwrap();
    store.close().await;
    // Put the schema back as version 2 left it.
    let conn = Connection::open(dir.db()).unwrap();
    conn.execute_batch(
        "DROP INDEX approval_requests_call; DROP INDEX approval_requests_pending_expiry; \
         DROP INDEX approval_requests_approved_expiry; DROP INDEX approval_audit_request; \
         DROP INDEX approval_audit_actor; DROP INDEX approval_requests_pending_queue; \
         CREATE INDEX approval_requests_dedupe ON approval_requests (run_id, tool, args_hash, state); \
         CREATE INDEX approval_requests_expiry ON approval_requests (state, expires_at); \
         CREATE INDEX approval_requests_approval_expiry ON approval_requests (state, approval_expires_at); \
         CREATE INDEX approval_audit_request ON approval_audit (request_id, seq); \
         CREATE INDEX approval_audit_actor ON approval_audit (actor, seq); \
         ALTER TABLE approval_grants DROP COLUMN version; \
         DROP TABLE approval_cursors; \
         DELETE FROM approval_schema_version WHERE version IN (3, 4, 5, 6);",
    )
    .unwrap();
    drop(conn);

    let store = SqliteStore::connect(&dir.db()).await.unwrap();
    let conn = own_connection(&store);
    let indexes: Vec<String> = conn
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'index' \
             AND name LIKE 'approval_requests_%' ORDER BY name",
        )
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        indexes,
        [
            "approval_requests_approved_expiry",
            "approval_requests_call",
            "approval_requests_created",
            "approval_requests_pending_expiry",
            "approval_requests_pending_queue",
        ]
    );
    // The same call again finds the request filed under version 2.
    let twin = store_common::request("run-1", now);
    let again = store
        .create(twin.clone(), &store_common::rec(&twin), now)
        .await
        .unwrap();
    assert!(!again.created);
    assert_eq!(again.request.id(), filed.id());
    // And the sweep finds it once it is due.
    let due = store.sweep_expired(filed.expires_at(), 10).await.unwrap();
    assert_eq!(
        due.iter().map(|e| e.request.id()).collect::<Vec<_>>(),
        [filed.id()]
    );
    store.close().await;
}

#[tokio::test]
async fn a_corrupt_row_is_a_backend_error_not_a_panic() {
    let dir = TempDir::new();
    let store = SqliteStore::connect(&dir.db()).await.unwrap();
    let clock = ManualClock::default();
    let now = approval_gate::Clock::now(&clock);
    let r = store_common::request("run-1", now);
    store
        .create(r.clone(), &store_common::rec(&r), now)
        .await
        .unwrap();
    own_connection(&store)
        .execute("UPDATE approval_requests SET body = '{\"id\": 3'", [])
        .unwrap();
    assert!(matches!(
        store.get(r.id()).await,
        Err(StoreError::Backend { .. })
    ));
    assert!(matches!(
        store.list(&RequestQuery::default(), now).await,
        Err(StoreError::Backend { .. })
    ));
    store.close().await;
}

#[tokio::test]
async fn two_processes_appending_in_turn_keep_one_chain() {
    let dir = TempDir::new();
    // Two stores on one file: two processes, each with its own idea of the trail's end.
    let a = SqliteStore::connect(&dir.db()).await.unwrap();
    let b = SqliteStore::connect(&dir.db()).await.unwrap();
    let record = |n: u32| {
        let call = approval_gate::ToolCall::new(
            "run-1",
            format!("c{n}"),
            "crm.read",
            serde_json::json!({}),
        );
        let event = approval_gate::trail::AuditEvent::Allow {
            rule_ids: Vec::new(),
        };
        approval_gate::trail::AuditRecord::new(
            approval_gate::Clock::now(&ManualClock::default()),
            &call,
            None,
            "v",
            event,
        )
    };
    for n in 0..6 {
        let store = if n % 3 == 0 { &b } else { &a };
        store.append_audit(&record(n)).await.unwrap();
    }
    let trail = a
        .audit_records(&approval_gate::trail::AuditQuery::default())
        .await
        .unwrap();
    let calls: Vec<&str> = trail.iter().map(|r| r.call_id.as_str()).collect();
    assert_eq!(calls, ["c0", "c1", "c2", "c3", "c4", "c5"]);
    let head = approval_gate::trail::verify_chain(&trail, None).unwrap();
    assert_eq!(head.seq, 6);
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn kill_switches_keep_their_order() {
    let dir = TempDir::new();
    let store = SqliteStore::connect(&dir.db()).await.unwrap();
    store_common::kill_switches_keep_their_order(&store).await;
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_updates_write_one_per_version() {
    let dir = TempDir::new();
    let store = pooled(&dir.db()).await;
    store_common::racing_updates_write_one_per_version(Arc::new(store.clone())).await;
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_creates_file_one_request() {
    let dir = TempDir::new();
    let store = pooled(&dir.db()).await;
    store_common::racing_creates_file_one_request(Arc::new(store.clone())).await;
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_grant_uses_stop_at_the_limit() {
    let dir = TempDir::new();
    let store = pooled(&dir.db()).await;
    store_common::racing_grant_uses_stop_at_the_limit(Arc::new(store.clone())).await;
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_usage_adds_up() {
    let dir = TempDir::new();
    let store = pooled(&dir.db()).await;
    store_common::racing_usage_adds_up(Arc::new(store.clone())).await;
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_resumes_run_the_tool_once() {
    let dir = TempDir::new();
    let store = pooled(&dir.db()).await;
    store_common::racing_resumes_run_the_tool_once(store.clone()).await;
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mixed_races_leave_one_decision_and_at_most_one_run() {
    let dir = TempDir::new();
    let store = pooled(&dir.db()).await;
    store_common::mixed_races_leave_one_decision_and_at_most_one_run(store.clone()).await;
    store.close().await;
}

#[tokio::test]
async fn restart_between_steps_runs_the_tool_once() {
    let dir = TempDir::new();
    let path = dir.db();
    store_common::restart_between_steps_runs_the_tool_once(|| {
        let path = path.clone();
        async move { SqliteStore::connect(&path).await.unwrap() }
    })
    .await;
}

#[tokio::test]
async fn in_doubt_after_a_crash_is_not_run_again() {
    let dir = TempDir::new();
    let path = dir.db();
    store_common::in_doubt_after_a_crash_is_not_run_again(|| {
        let path = path.clone();
        async move { SqliteStore::connect(&path).await.unwrap() }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_updates_through_two_writers_write_one_per_version() {
    let dir = TempDir::new();
    let store = TwoWriters::open(&dir.db()).await;
    store_common::racing_updates_write_one_per_version(Arc::new(store.clone())).await;
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_creates_through_two_writers_file_one_request() {
    let dir = TempDir::new();
    let store = TwoWriters::open(&dir.db()).await;
    store_common::racing_creates_file_one_request(Arc::new(store.clone())).await;
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_grant_uses_through_two_writers_stop_at_the_limit() {
    let dir = TempDir::new();
    let store = TwoWriters::open(&dir.db()).await;
    store_common::racing_grant_uses_stop_at_the_limit(Arc::new(store.clone())).await;
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mixed_races_through_two_writers_leave_one_decision_and_at_most_one_run() {
    let dir = TempDir::new();
    let store = TwoWriters::open(&dir.db()).await;
    store_common::mixed_races_leave_one_decision_and_at_most_one_run(store.clone()).await;
    let trail = store.audit_records(&AuditQuery::default()).await.unwrap();
    approval_gate::trail::verify_chain(&trail, None).unwrap();
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_leases_have_one_winner() {
    let dir = TempDir::new();
    let store = pooled(&dir.db()).await;
    store_common::racing_leases_have_one_winner(Arc::new(store.clone())).await;
    store.close().await;
}
