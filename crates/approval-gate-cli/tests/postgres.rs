//! The core flow against PostgreSQL, when `APPROVAL_GATE_TEST_POSTGRES_URL` names a
//! server: each test in a schema of its own, dropped at the end. Without the variable the
//! test says it was skipped and passes.

mod common;

use std::sync::atomic::Ordering;

use approval_gate::PostgresStore;
use common::processes::{self, Setup, child, executions};
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

child_tests!();

/// One request, three processes, on PostgreSQL: filed by a host process, approved by
/// the command, resumed by another host process; the tool runs once (see
/// `common::processes`). The schema is dropped even when a step fails.
#[tokio::test(flavor = "current_thread")]
async fn filed_by_one_process_approved_by_the_command_resumed_by_a_third_on_postgres() {
    if processes::role().is_some() {
        return;
    }
    let Ok(url) = std::env::var("APPROVAL_GATE_TEST_POSTGRES_URL") else {
        eprintln!("skipped: APPROVAL_GATE_TEST_POSTGRES_URL is not set");
        return;
    };
    let schema = format!("ag_cli_three_{}", std::process::id());
    // The schema is made here, once, and dropped at the end.
    let store = PostgresStore::connect_with(PostgresStore::options(&url).schema(&schema))
        .await
        .unwrap();
    let pool = store.pool().clone();
    drop(store);
    let steps = tokio::spawn(three_processes(url, schema.clone())).await;
    approval_gate::sqlx::query(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .execute(&pool)
        .await
        .unwrap();
    if let Err(failed) = steps {
        std::panic::resume_unwind(failed.into_panic());
    }
}

async fn three_processes(url: String, schema: String) {
    let scratch = Scratch::new("pg-three");
    let dir = scratch.path("deploy");
    run(&["init", dir.to_str().unwrap()]).ok();
    let setup = Setup {
        store: url.clone(),
        schema: Some(schema.clone()),
        deploy: dir.clone(),
        counter: scratch.path("executions"),
    };
    let policy = dir.join("policy.yaml").display().to_string();
    let key = dir.join("signing.key").display().to_string();
    let cli = |args: &[&str]| {
        let mut all = vec![
            "--store",
            url.as_str(),
            "--schema",
            schema.as_str(),
            "--policy",
            policy.as_str(),
            "--key-file",
            key.as_str(),
        ];
        all.extend_from_slice(args);
        run(&all)
    };

    let filed = child("child_files_the_request", "file", &setup, None);
    let id = filed.value("REQUEST_ID");
    cli(&["approve", &id, "--as", "ann"]).ok();
    assert_eq!(executions(&setup.counter), 0);

    let resumed = child("child_resumes_the_request", "resume", &setup, Some(&id));
    assert_eq!(resumed.value("OUTCOME"), "executed");
    assert_eq!(resumed.value("EXECUTED"), "1");
    let again = child("child_resumes_the_request", "resume", &setup, Some(&id));
    assert_eq!(again.value("OUTCOME"), "stopped");
    assert_eq!(again.value("STOP"), "approval_used");
    assert_eq!(executions(&setup.counter), 1);
    cli(&["audit", "verify"]).ok();
}
