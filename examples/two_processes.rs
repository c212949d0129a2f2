//! Three processes share one approval: the first files the request and exits, the second
//! approves it from the command line, the third resumes and runs the tool.
//!
//! ```sh
//! # All three steps, each as its own process, on a fresh SQLite file:
//! cargo run --features sqlite,postgres --example two_processes
//! # Or by hand, on a SQLite file or a PostgreSQL URL:
//! cargo run --features sqlite,postgres --example two_processes -- file    approvals.db
//! cargo run --features sqlite,postgres --example two_processes -- approve approvals.db REQUEST_ID ann
//! cargo run --features sqlite,postgres --example two_processes -- resume  approvals.db REQUEST_ID
//! ```

use std::process::{Command, ExitCode};

use approval_gate::{
    ApprovalStore, Approver, Execution, Gate, GateOutcome, Key, Keyring, Policy, PostgresStore,
    RequestId, SqliteStore, ToolCall, trail::AuditQuery,
};
use serde_json::{Value, json};

type Error = Box<dyn std::error::Error>;

const POLICY: &str = "\
approvals:
  required_for: [email.send]
  ttl_seconds: 300
";

/// Every process must sign and verify with the same key; a real host reads it from its
/// secret store. With `APPROVAL_GATE_KEY_FILE` set (the key file `approval-gate init`
/// wrote), the processes use that file's keys, so that approvals made with the
/// `approval-gate` command or its console verify here.
const DEMO_SECRET: &[u8] = b"demo secret shared by all three processes";

/// The keys every process signs and verifies with.
fn keys() -> Result<Keyring, Error> {
    match std::env::var_os("APPROVAL_GATE_KEY_FILE") {
        Some(path) => Ok(Keyring::read_key_file(path)?),
        None => Ok(Keyring::new(Key::new("demo", DEMO_SECRET.to_vec())?)),
    }
}

/// Each process rebuilds the same call from what the agent runtime persisted.
fn the_call() -> ToolCall {
    ToolCall::new(
        "run-42",
        "call-1",
        "email.send",
        json!({"to": "bob@example.com", "subject": "Your refund"}),
    )
    .with_requester("support-agent")
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        [] => orchestrate(),
        ["file", db] => file(db).await,
        ["approve", db, id, who] => approve(db, id, who).await,
        ["resume", db, id] => resume(db, id).await,
        _ => Err("usage: two_processes [file DB | approve DB ID WHO | resume DB ID]".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn gate(db: &str) -> Result<Gate, Error> {
    let store: Box<dyn ApprovalStore> = if db.starts_with("postgres://") {
        Box::new(PostgresStore::connect(db).await?)
    } else {
        Box::new(SqliteStore::connect(db).await?)
    };
    Ok(Gate::builder(Policy::from_yaml_str(POLICY)?, keys()?)
        .shared_store(store.into())
        .build())
}

/// Process 1: the agent calls the tool; a person must approve, so it records the request
/// and exits. The last line of output is the request id.
async fn file(db: &str) -> Result<(), Error> {
    let gate = gate(db).await?;
    let tools = gate.wrap(|_: Execution| async { Ok::<Value, std::io::Error>(json!(null)) });
    match tools.call(the_call()).await? {
        GateOutcome::Pending(p) => {
            println!("[file] pending until {}; exiting", p.expires_at);
            println!("{}", p.request_id);
            Ok(())
        }
        other => Err(format!("expected pending, got {}", other.name()).into()),
    }
}

/// Process 2: a person approves from the command line.
async fn approve(db: &str, id: &str, who: &str) -> Result<(), Error> {
    let gate = gate(db).await?;
    let id: RequestId = id.parse()?;
    let request = gate.desk().show(id).await?;
    println!(
        "[approve] {} asks for {} {}",
        request.call().requester().unwrap_or("someone"),
        request.call().tool(),
        request.shown_args()
    );
    let approved = gate.desk().approve(id, &Approver::new(who)).await?;
    println!("[approve] {who}: {}", approved.stored_state());
    Ok(())
}

/// Process 3: the agent runtime resumes; the tool runs at most once.
async fn resume(db: &str, id: &str) -> Result<(), Error> {
    let gate = gate(db).await?;
    let tools = gate.wrap(|exec: Execution| async move {
        println!(
            "[resume] sending {} (idempotency key {:?})",
            exec.args(),
            exec.idempotency_key()
        );
        Ok::<Value, std::io::Error>(json!({"sent": true}))
    });
    match tools.resume(id.parse()?, the_call()).await? {
        GateOutcome::Executed(done) => println!("[resume] executed: {:?}", done.result),
        GateOutcome::Pending(_) => println!("[resume] still pending"),
        GateOutcome::Stopped(stop) => println!(
            "[resume] stopped ({}): {}",
            stop.reason.name(),
            stop.message()
        ),
    }
    // Every process wrote its steps into the same trail, in the store.
    let trail = gate
        .store()
        .audit_records(&AuditQuery::request(id.parse()?))
        .await?;
    let events: Vec<&str> = trail.iter().map(|r| r.event_name()).collect();
    println!("[resume] the request's trail: {}", events.join(", "));
    Ok(())
}

/// Without arguments: run the three steps as three child processes on a fresh SQLite
/// file, then resume once more to show the approval is used up.
fn orchestrate() -> Result<(), Error> {
    let dir = std::env::temp_dir().join(format!("approval-gate-{}", uuid_like()));
    std::fs::create_dir_all(&dir)?;
    let db = dir.join("approvals.db");
    let db = db.to_str().ok_or("temp path is not UTF-8")?;
    let result = (|| -> Result<(), Error> {
        let out = step(&["file", db])?;
        let id = out.lines().last().ok_or("no request id")?.trim().to_owned();
        step(&["approve", db, &id, "ann"])?;
        let first = step(&["resume", db, &id])?;
        let second = step(&["resume", db, &id])?;
        if !first.contains("executed") || !second.contains("approval_used") {
            return Err("the tool should run exactly once".into());
        }
        Ok(())
    })();
    std::fs::remove_dir_all(&dir)?;
    result
}

/// Runs this example again as a child process with `args`, echoing its output.
fn step(args: &[&str]) -> Result<String, Error> {
    let out = Command::new(std::env::current_exe()?).args(args).output()?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    print!("{stdout}");
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    if !out.status.success() {
        return Err(format!("step `{}` failed", args[0]).into());
    }
    Ok(stdout)
}

fn uuid_like() -> String {
    RequestId::new().to_string()
}
