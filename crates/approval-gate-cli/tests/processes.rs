//! One request, three processes, on an SQLite file: an agent's host files it, a person
//! approves it with the real `approval-gate` command, and another host process resumes
//! it; the tool runs exactly once. The hosts are this test binary run again (see
//! `common::processes`): the `child_…` tests do their part only when asked to, and
//! pass at once otherwise.

mod common;

use common::processes::{self, Setup, child, executions};
use common::{Scratch, run};

child_tests!();

#[test]
fn filed_by_one_process_approved_by_the_command_resumed_by_a_third_runs_once() {
    if processes::role().is_some() {
        return;
    }
    let scratch = Scratch::new("three");
    let dir = scratch.path("deploy");
    run(&["init", dir.to_str().unwrap()]).ok();
    let setup = Setup {
        store: dir.join("approvals.db").display().to_string(),
        schema: None,
        deploy: dir.clone(),
        counter: scratch.path("executions"),
    };
    let config = dir.join("approval-gate.yaml").display().to_string();

    // The first process files the request and ends; nothing has run.
    let filed = child("child_files_the_request", "file", &setup, None);
    let id = filed.value("REQUEST_ID");
    assert_eq!(executions(&setup.counter), 0);

    // A person approves it with the command, a process of its own.
    let pending = run(&[
        "--config", &config, "pending", "--as", "ann", "--format", "json",
    ])
    .ok()
    .json_lines();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0]["id"], id.as_str());
    run(&["--config", &config, "approve", &id, "--as", "ann"]).ok();
    assert_eq!(executions(&setup.counter), 0);

    // A third process resumes it: the tool runs once, keyed by the request id.
    let resumed = child("child_resumes_the_request", "resume", &setup, Some(&id));
    assert_eq!(resumed.value("OUTCOME"), "executed");
    assert_eq!(resumed.value("EXECUTED"), "1");
    let keys = std::fs::read_to_string(&setup.counter).unwrap();
    assert_eq!(keys.lines().collect::<Vec<_>>(), [id.as_str()]);

    // Resuming again, from yet another process, does not run it again.
    let again = child("child_resumes_the_request", "resume", &setup, Some(&id));
    assert_eq!(again.value("OUTCOME"), "stopped");
    assert_eq!(again.value("STOP"), "approval_used");
    assert_eq!(executions(&setup.counter), 1);

    // The trail holds each step, from each process, and verifies.
    let history = run(&[
        "--config", &config, "audit", "history", &id, "--format", "json",
    ])
    .ok()
    .json_lines();
    let events: Vec<&str> = history
        .iter()
        .map(|r| r["event"].as_str().unwrap_or_default())
        .collect();
    for step in [
        "approval_required",
        "approval_granted",
        "execution_started",
        "executed",
    ] {
        assert_eq!(
            events.iter().filter(|e| **e == step).count(),
            1,
            "{step} in {events:?}"
        );
    }
    run(&["--config", &config, "audit", "verify"]).ok();
}
