//! The core flow against PostgreSQL, when `APPROVAL_GATE_TEST_POSTGRES_URL` names a
//! server: each test in a schema of its own, dropped at the end. Without the variable the
//! test says it was skipped and passes.

mod common;

use std::sync::atomic::Ordering;

use approval_gate::PostgresStore;
use common::{Scratch, gate_on, mail, mail_tool, run};

#[tokio::test(flavor = "current_thread")]
async fn the_desk_flow_on_postgres() {
    let Ok(url) = std::env::var("APPROVAL_GATE_TEST_POSTGRES_URL") else {
        eprintln!("skipped: APPROVAL_GATE_TEST_POSTGRES_URL is not set");
        return;
    };
    let schema = format!("ag_cli_{}", std::process::id());
    let scratch = Scratch::new("pg");
    let dir = scratch.path("deploy");
    run(&["init", dir.to_str().unwrap()]).ok();
    let store = PostgresStore::connect_with(PostgresStore::options(&url).schema(&schema))
        .await
        .unwrap();
    let pool = store.pool().clone();
    let gate = gate_on(&dir, store);
    let (tool, runs) = mail_tool(&gate);
    let policy = dir.join("policy.yaml").display().to_string();
    let key = dir.join("signing.key").display().to_string();
    // The schema once as `?schema=`, once as `--schema`.
    let in_url = format!(
        "{url}{}schema={schema}",
        if url.contains('?') { '&' } else { '?' }
    );
    let cli = |args: &[&str], by_flag: bool| {
        let mut all = vec!["--policy", policy.as_str(), "--key-file", key.as_str()];
        if by_flag {
            all.extend_from_slice(&["--store", url.as_str(), "--schema", schema.as_str()]);
        } else {
            all.extend_from_slice(&["--store", in_url.as_str()]);
        }
        all.extend_from_slice(args);
        run(&all)
    };

    let call = mail("call-1", "bob@example.com");
    let outcome = tool.call(call.clone()).await.unwrap();
    let request = outcome.pending().unwrap().request_id;
    let id = request.to_string();

    let listed = cli(&["pending", "--as", "ann", "--format", "json"], false)
        .ok()
        .json_lines();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], id.as_str());
    cli(&["show", &id, "--as", "ann"], true).ok();
    cli(&["approve", &id, "--as", "alice"], true).code(4);
    cli(&["approve", &id, "--as", "ann"], false).ok();
    cli(&["approve", &id, "--as", "bob"], true).code(4);
    cli(
        &["show", &approval_gate::RequestId::new().to_string()],
        true,
    )
    .code(3);
    assert!(
        tool.resume(request, call)
            .await
            .unwrap()
            .executed()
            .is_some()
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    cli(&["audit", "verify"], true).ok();

    approval_gate::sqlx::query(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .execute(&pool)
        .await
        .unwrap();
}
