//! `PostgresStore` against the server in `APPROVAL_GATE_TEST_POSTGRES_URL`: the
//! conformance suite, races between connections, and restarts. Each test works in a
//! schema of its own (`ag_test_<uuid>`) and drops it at the end, also when it fails.
//! Without the variable every test says it was skipped and passes.
#![cfg(all(feature = "postgres", feature = "testing"))]

use std::sync::Arc;

use approval_gate::sqlx::postgres::PgConnection;
use approval_gate::sqlx::{Connection as _, Executor as _};
use approval_gate::store::RequestStore;
use approval_gate::testing::races as store_common;
use approval_gate::{ManualClock, PostgresStore, RequestQuery, StoreError};
use uuid::Uuid;

const URL_VAR: &str = "APPROVAL_GATE_TEST_POSTGRES_URL";

/// Runs `test` with the server's URL and a fresh schema name, then drops the schema,
/// whether the test passed or panicked. Without a server, says so and returns.
async fn in_schema<F, Fut>(test: F)
where
    F: FnOnce(String, String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(url) = std::env::var(URL_VAR).ok().filter(|u| !u.is_empty()) else {
        println!("skipped: {URL_VAR} is not set");
        return;
    };
    let schema = format!("ag_test_{}", Uuid::new_v4().simple());
    let outcome = tokio::spawn(test(url.clone(), schema.clone())).await;
    let mut conn = PgConnection::connect(&url).await.unwrap();
    let drop = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
    conn.execute(drop.as_str()).await.unwrap();
    conn.close().await.unwrap();
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// A store in `schema` whose pool keeps several connections, so that racing tasks write
/// through different connections.
async fn pooled(url: &str, schema: &str) -> PostgresStore {
    PostgresStore::connect_with(
        PostgresStore::options(url)
            .schema(schema)
            .max_connections(8),
    )
    .await
    .unwrap()
}

#[cfg(feature = "testing")]
mod conformance {
    use super::*;
    use approval_gate::testing;

    macro_rules! suite {
        ($($name:ident),* $(,)?) => {$(
            #[tokio::test]
            async fn $name() {
                in_schema(|url, schema| async move {
                    let store = PostgresStore::connect_with(PostgresStore::options(&url).schema(&schema)).await.unwrap();
                    testing::$name(&store, &ManualClock::default()).await;
                    store.close().await;
                })
                .await;
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
async fn schemas_keep_stores_apart() {
    in_schema(|url, schema| async move {
        let other = format!("{schema}_other");
        let a = PostgresStore::connect_with(PostgresStore::options(&url).schema(&schema))
            .await
            .unwrap();
        let b = PostgresStore::connect_with(PostgresStore::options(&url).schema(&other))
            .await
            .unwrap();
        let now = approval_gate::Clock::now(&ManualClock::default());
        let r = store_common::request("run-1", now);
        a.create(r.clone(), &store_common::rec(&r), now)
            .await
            .unwrap();
        assert!(a.get(r.id()).await.is_ok());
        assert!(matches!(
            b.get(r.id()).await,
            Err(StoreError::NotFound { .. })
        ));
        let drop = format!("DROP SCHEMA \"{other}\" CASCADE");
        b.pool().execute(drop.as_str()).await.unwrap();
        a.close().await;
        b.close().await;
    })
    .await;
}

#[tokio::test]
async fn migrate_is_idempotent_concurrent_and_refuses_a_newer_schema() {
    in_schema(|url, schema| async move {
        // Several workers start at once on an empty schema.
        let starts: Vec<_> = (0..4)
            .map(|_| {
                let (url, schema) = (url.clone(), schema.clone());
                tokio::spawn(async move {
                    PostgresStore::connect_with(PostgresStore::options(&url).schema(&schema)).await
                })
            })
            .collect();
        let mut stores = Vec::new();
        for start in starts {
            stores.push(start.await.unwrap().unwrap());
        }
        let store = &stores[0];
        store.migrate().await.unwrap();
        let versions: Vec<i64> =
            approval_gate::sqlx::query_scalar("SELECT version FROM approval_schema_version")
                .fetch_all(store.pool())
                .await
                .unwrap();
        assert_eq!(versions, [1, 2, 3, 4, 5]);

        approval_gate::sqlx::query("INSERT INTO approval_schema_version (version) VALUES (99)")
            .execute(store.pool())
            .await
            .unwrap();
        let err = store.migrate().await.unwrap_err();
        assert!(matches!(err, StoreError::Backend { .. }));
        let source = std::error::Error::source(&err).unwrap().to_string();
        assert!(source.contains("newer"), "{source}");
        for s in &stores {
            s.close().await;
        }
    })
    .await;
}

#[tokio::test]
async fn a_corrupt_row_is_a_backend_error_not_a_panic() {
    in_schema(|url, schema| async move {
        let store = PostgresStore::connect_with(PostgresStore::options(&url).schema(&schema))
            .await
            .unwrap();
        let now = approval_gate::Clock::now(&ManualClock::default());
        let r = store_common::request("run-1", now);
        store
            .create(r.clone(), &store_common::rec(&r), now)
            .await
            .unwrap();
        approval_gate::sqlx::query("UPDATE approval_requests SET body = '{\"id\": 3'")
            .execute(store.pool())
            .await
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
    })
    .await;
}

#[tokio::test]
async fn kill_switches_keep_their_order() {
    in_schema(|url, schema| async move {
        let store = PostgresStore::connect_with(PostgresStore::options(&url).schema(&schema))
            .await
            .unwrap();
        store_common::kill_switches_keep_their_order(&store).await;
        store.close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_updates_write_one_per_version() {
    in_schema(|url, schema| async move {
        let store = pooled(&url, &schema).await;
        store_common::racing_updates_write_one_per_version(Arc::new(store.clone())).await;
        store.close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_creates_file_one_request() {
    in_schema(|url, schema| async move {
        let store = pooled(&url, &schema).await;
        store_common::racing_creates_file_one_request(Arc::new(store.clone())).await;
        store.close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_grant_uses_stop_at_the_limit() {
    in_schema(|url, schema| async move {
        let store = pooled(&url, &schema).await;
        store_common::racing_grant_uses_stop_at_the_limit(Arc::new(store.clone())).await;
        store.close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_usage_adds_up() {
    in_schema(|url, schema| async move {
        let store = pooled(&url, &schema).await;
        store_common::racing_usage_adds_up(Arc::new(store.clone())).await;
        store.close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_resumes_run_the_tool_once() {
    in_schema(|url, schema| async move {
        let store = pooled(&url, &schema).await;
        store_common::racing_resumes_run_the_tool_once(store.clone()).await;
        store.close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mixed_races_leave_one_decision_and_at_most_one_run() {
    in_schema(|url, schema| async move {
        let store = pooled(&url, &schema).await;
        store_common::mixed_races_leave_one_decision_and_at_most_one_run(store.clone()).await;
        store.close().await;
    })
    .await;
}

#[tokio::test]
async fn a_decision_reaches_a_subscriber_in_another_process() {
    in_schema(|url, schema| async move {
        // Two stores with pools of their own: as two processes, or two hosts, would be.
        let worker = PostgresStore::connect_with(PostgresStore::options(&url).schema(&schema))
            .await
            .unwrap();
        let desk = PostgresStore::connect_with(PostgresStore::options(&url).schema(&schema))
            .await
            .unwrap();
        store_common::a_decision_reaches_another_store(&worker, &desk).await;
        // A store in another schema hears nothing of it.
        let elsewhere = format!("{schema}_other");
        let other = PostgresStore::connect_with(PostgresStore::options(&url).schema(&elsewhere))
            .await
            .unwrap();
        let probe = PostgresStore::connect_with(PostgresStore::options(&url).schema(&elsewhere))
            .await
            .unwrap();
        let mut quiet = other.subscribe().await.unwrap();
        store_common::a_decision_reaches_another_store(&worker, &desk).await;
        store_common::a_decision_reaches_another_store(&probe, &other).await;
        // The first notice `quiet` gets is of its own schema's request.
        let heard = quiet.next().await.unwrap();
        assert!(other.get(heard.request_id).await.is_ok());
        let drop = format!("DROP SCHEMA \"{elsewhere}\" CASCADE");
        other.pool().execute(drop.as_str()).await.unwrap();
        for s in [&worker, &desk, &other, &probe] {
            s.close().await;
        }
    })
    .await;
}

#[tokio::test]
async fn a_filing_reaches_a_subscriber_in_another_process() {
    in_schema(|url, schema| async move {
        let worker = PostgresStore::connect_with(PostgresStore::options(&url).schema(&schema))
            .await
            .unwrap();
        let desk = PostgresStore::connect_with(PostgresStore::options(&url).schema(&schema))
            .await
            .unwrap();
        store_common::a_filing_reaches_another_store(&worker, &desk).await;
        // A host's own pools on the same schema hear each other too.
        let (a, b) = (pooled(&url, &schema).await, pooled(&url, &schema).await);
        store_common::a_filing_reaches_another_store(&a, &b).await;
        for s in [&worker, &desk, &a, &b] {
            s.close().await;
        }
    })
    .await;
}

#[tokio::test]
async fn stores_from_pools_hear_only_their_own_schema() {
    in_schema(|url, schema| async move {
        let elsewhere = format!("{schema}_other");
        let (worker, desk) = (pooled(&url, &schema).await, pooled(&url, &schema).await);
        let (other, probe) = (
            pooled(&url, &elsewhere).await,
            pooled(&url, &elsewhere).await,
        );
        let mut quiet = other.subscribe().await.unwrap();
        // Same schema: heard.
        store_common::a_decision_reaches_another_store(&worker, &desk).await;
        store_common::a_filing_reaches_another_store(&worker, &desk).await;
        // Another schema: the first notice `quiet` gets is of its own schema's request.
        store_common::a_filing_reaches_another_store(&probe, &other).await;
        let heard = quiet.next().await.unwrap();
        assert!(other.get(heard.request_id).await.is_ok());
        let drop = format!("DROP SCHEMA \"{elsewhere}\" CASCADE");
        other.pool().execute(drop.as_str()).await.unwrap();
        for s in [&worker, &desk, &other, &probe] {
            s.close().await;
        }
    })
    .await;
}

#[tokio::test]
async fn restart_between_steps_runs_the_tool_once() {
    in_schema(|url, schema| async move {
        store_common::restart_between_steps_runs_the_tool_once(|| {
            let (url, schema) = (url.clone(), schema.clone());
            async move {
                PostgresStore::connect_with(PostgresStore::options(&url).schema(&schema))
                    .await
                    .unwrap()
            }
        })
        .await;
    })
    .await;
}

#[tokio::test]
async fn in_doubt_after_a_crash_is_not_run_again() {
    in_schema(|url, schema| async move {
        store_common::in_doubt_after_a_crash_is_not_run_again(|| {
            let (url, schema) = (url.clone(), schema.clone());
            async move {
                PostgresStore::connect_with(PostgresStore::options(&url).schema(&schema))
                    .await
                    .unwrap()
            }
        })
        .await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_leases_have_one_winner() {
    in_schema(|url, schema| async move {
        let store = pooled(&url, &schema).await;
        store_common::racing_leases_have_one_winner(Arc::new(store.clone())).await;
        store.close().await;
    })
    .await;
}
