//! One request, three processes: an agent's host files it, a person approves it with the
//! command, and another host process resumes it and runs the tool, once.
//!
//! The hosts are this test binary run again (`current_exe`) with `--exact CHILD
//! --nocapture`, where CHILD is a `#[test]` of the same binary that does its part only
//! when [`ROLE`] says so, and passes at once otherwise. What a child learns it prints as
//! `NAME=VALUE` lines that the parent reads. The tool counts its runs by appending a line
//! to a file, so any process can count them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use approval_gate::serde_json::{Value, json};
use approval_gate::{ApprovalStore, Execution, GateOutcome, RequestId};

use super::{Run, gate_on_shared, mail, output_within};

/// What a child does: `file` or `resume`. Unset: the child test passes at once.
pub const ROLE: &str = "APPROVAL_GATE_TEST_CHILD";
/// The store: an SQLite file's path, or a PostgreSQL URL.
pub const STORE: &str = "APPROVAL_GATE_TEST_CHILD_STORE";
/// The PostgreSQL schema, with a PostgreSQL store.
pub const SCHEMA: &str = "APPROVAL_GATE_TEST_CHILD_SCHEMA";
/// The deployment directory `init` wrote: its `policy.yaml` and `signing.key`.
pub const DEPLOY: &str = "APPROVAL_GATE_TEST_CHILD_DEPLOY";
/// The file the tool appends a line to each time it runs.
pub const COUNTER: &str = "APPROVAL_GATE_TEST_CHILD_COUNTER";
/// The request to resume.
pub const REQUEST: &str = "APPROVAL_GATE_TEST_CHILD_REQUEST";

/// Where a child's store is and where it counts the tool's runs.
#[derive(Debug, Clone)]
pub struct Setup {
    /// An SQLite file's path, or a PostgreSQL URL.
    pub store: String,
    /// The PostgreSQL schema.
    pub schema: Option<String>,
    /// The deployment directory.
    pub deploy: PathBuf,
    /// The counter file.
    pub counter: PathBuf,
}

impl Setup {
    fn from_env() -> Setup {
        let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"));
        Setup {
            store: var(STORE),
            schema: std::env::var(SCHEMA).ok(),
            deploy: PathBuf::from(var(DEPLOY)),
            counter: PathBuf::from(var(COUNTER)),
        }
    }

    async fn store(&self) -> Arc<dyn ApprovalStore> {
        if self.store.starts_with("postgres") {
            let mut options = approval_gate::PostgresStore::options(&self.store);
            if let Some(schema) = &self.schema {
                options = options.schema(schema);
            }
            Arc::new(
                approval_gate::PostgresStore::connect_with(options)
                    .await
                    .unwrap(),
            )
        } else {
            Arc::new(
                approval_gate::SqliteStore::connect_with(approval_gate::SqliteStore::options(
                    &self.store,
                ))
                .await
                .unwrap(),
            )
        }
    }
}

/// The children's `#[test]`s, `child_files_the_request` and `child_resumes_the_request`,
/// for a test binary that runs [`child`]ren: each does its part when this process was
/// started to play it, and passes at once otherwise.
#[macro_export]
macro_rules! child_tests {
    () => {
        /// A host's part: file the request. Does nothing unless run as a child.
        #[tokio::test(flavor = "current_thread")]
        async fn child_files_the_request() {
            if common::processes::role().as_deref() == Some("file") {
                common::processes::act("file").await;
            }
        }

        /// A host's part: resume the request. Does nothing unless run as a child.
        #[tokio::test(flavor = "current_thread")]
        async fn child_resumes_the_request() {
            if common::processes::role().as_deref() == Some("resume") {
                common::processes::act("resume").await;
            }
        }
    };
}

/// The role this process plays, if it was started as a child.
pub fn role() -> Option<String> {
    std::env::var(ROLE).ok().filter(|r| !r.is_empty())
}

/// How many times the tool ran: the lines of the counter file.
pub fn executions(counter: &Path) -> usize {
    std::fs::read_to_string(counter)
        .map(|text| text.lines().count())
        .unwrap_or(0)
}

/// The child's part: files the request (`file`) or resumes it (`resume`), printing
/// what it learned. Call it from a `#[test]` named as the parent's [`child`] names it.
pub async fn act(role: &str) {
    let setup = Setup::from_env();
    let gate = gate_on_shared(&setup.deploy, setup.store().await);
    let counter = setup.counter.clone();
    let tool = gate.wrap(move |exec: Execution| {
        let counter = counter.clone();
        async move {
            use std::io::Write as _;
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&counter)?;
            let key = exec.idempotency_key().map(|id| id.to_string());
            writeln!(file, "{}", key.unwrap_or_default())?;
            Ok::<Value, std::io::Error>(json!({"sent_to": exec.args()["to"]}))
        }
    });
    let call = mail("call-1", "bob@example.com");
    match role {
        "file" => match tool.call(call).await.unwrap() {
            GateOutcome::Pending(p) => println!("REQUEST_ID={}", p.request_id),
            other => panic!("expected pending, got {}", other.name()),
        },
        "resume" => {
            let id: RequestId = std::env::var(REQUEST)
                .expect("the request to resume")
                .parse()
                .unwrap();
            let outcome = tool.resume(id, call).await.unwrap();
            println!("OUTCOME={}", outcome.name());
            if let Some(stop) = outcome.stopped() {
                println!("STOP={}", stop.reason.name());
            }
            println!("EXECUTED={}", executions(&setup.counter));
        }
        other => panic!("unknown child role `{other}`"),
    }
}

/// Runs this test binary again as a child: only the test `name`, as `role`.
pub fn child(name: &str, role: &str, setup: &Setup, request: Option<&str>) -> Run {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut command = Command::new(exe);
    command
        .args(["--exact", name, "--nocapture", "--test-threads", "1"])
        .env(ROLE, role)
        .env(STORE, &setup.store)
        .env(DEPLOY, &setup.deploy)
        .env(COUNTER, &setup.counter)
        .env_remove(SCHEMA)
        .env_remove(REQUEST);
    if let Some(schema) = &setup.schema {
        command.env(SCHEMA, schema);
    }
    if let Some(id) = request {
        command.env(REQUEST, id);
    }
    let run = Run::of(output_within(command, None)).ok();
    assert!(
        run.stdout.contains("1 passed"),
        "the child test `{name}` did not run: {}",
        run.stdout
    );
    run
}

impl Run {
    /// The value of `NAME=VALUE` as the child printed it (the test harness may print
    /// `test NAME ... ` before it on the same line, so it is looked for word by word).
    #[track_caller]
    pub fn value(&self, name: &str) -> String {
        let prefix = format!("{name}=");
        self.stdout
            .split_whitespace()
            .find_map(|word| word.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no {name}= in: {}\nstderr: {}", self.stdout, self.stderr))
            .trim()
            .to_owned()
    }
}
