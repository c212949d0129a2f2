//! `approval-gate mcp` as an agent meets it: a real MCP client in another language (the
//! official Python SDK, `tests/mcp/client.py`) talks over stdio to the gateway, the real
//! binary, in front of an upstream MCP server written with the same SDK
//! (`tests/mcp/upstream.py`), on an SQLite store made by `approval-gate init`; a person
//! approves with `approval-gate approve`, a process of its own, against the same file.
//!
//! The Python interpreter comes from `APPROVAL_GATE_TEST_PYTHON`, a virtual environment
//! with the pinned `mcp` package that `.ci/run` makes; without it the Python test says
//! it was skipped and passes. The client waits on its standard input where a person must
//! act, and prints what it saw as JSON lines: the test reads those, no sleeps.

mod common;

use std::ffi::OsString;
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use approval_gate::serde_json::Value;
use common::{Scratch, Watched, run};

/// The gateway crate's test policy, so both test the same rules.
const POLICY: &str = include_str!("../../approval-gate-mcp/tests/policy.yaml");

/// The virtual environment's Python with the `mcp` package, if the environment names one.
fn python() -> Option<PathBuf> {
    let python = PathBuf::from(std::env::var_os("APPROVAL_GATE_TEST_PYTHON")?);
    python.exists().then_some(python)
}

/// A deployment made by `init`, with the test's policy.
fn deployment(scratch: &Scratch) -> PathBuf {
    let dir = scratch.path("gate");
    run(&["init", dir.to_str().unwrap()]).ok();
    std::fs::write(dir.join("policy.yaml"), POLICY).unwrap();
    dir.join("approval-gate.yaml")
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/mcp")
        .join(name)
}

/// The lines of the outbox the upstream's `email.send` appends to.
fn sent(outbox: &Path) -> Vec<String> {
    std::fs::read_to_string(outbox)
        .map(|text| text.lines().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// The Python client, run under the watchdog, and what it printed so far.
struct Agent {
    child: Watched,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
    stdin: std::io::PipeWriter,
    stderr: PathBuf,
}

impl Agent {
    /// The next step the client reports; it must be `step`.
    #[track_caller]
    fn next(&mut self, step: &str) -> Value {
        let line = match self.lines.next() {
            Some(Ok(line)) => line,
            _ => {
                let overran = self.child.kill();
                panic!(
                    "the client ended before `{step}`{}\nstderr: {}",
                    if overran {
                        " (killed at the deadline)"
                    } else {
                        ""
                    },
                    std::fs::read_to_string(&self.stderr).unwrap_or_default()
                )
            }
        };
        let value: Value = approval_gate::serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("the client printed `{line}`, not JSON: {e}"));
        assert_eq!(value["step"], step, "{value}");
        value
    }

    /// Starts the Python client `script` (connect `mode`) in front of the gateway run
    /// with `gateway_args`, itself in front of `upstream.py`, whose writes go to
    /// `outbox` in `scratch`.
    fn start(
        python: &Path,
        script_name: &str,
        gateway_args: &[&str],
        scratch: &Scratch,
        mode: &str,
    ) -> Agent {
        let upstream = [python.as_os_str(), script("upstream.py").as_os_str()].map(OsString::from);
        Agent::start_at(python, script_name, gateway_args, &upstream, scratch, mode)
    }

    /// [`start`](Self::start), with the gateway's upstream given by `upstream`: the
    /// command after `--`, or nothing (then `gateway_args` names its URL).
    fn start_at(
        python: &Path,
        script_name: &str,
        gateway_args: &[&str],
        upstream: &[OsString],
        scratch: &Scratch,
        mode: &str,
    ) -> Agent {
        let stderr = scratch.path("client.stderr");
        let mut command = Command::new(python);
        command
            .arg(script(script_name))
            .arg("--")
            .arg(env!("CARGO_BIN_EXE_approval-gate"))
            .args(gateway_args);
        if !upstream.is_empty() {
            command.arg("--").args(upstream);
        }
        command
            .env("APPROVAL_GATE_TEST_OUTBOX", scratch.path("outbox"))
            .env("APPROVAL_GATE_TEST_MCP_MODE", mode);
        let (stdin_reader, stdin) = std::io::pipe().unwrap();
        command
            .stdin(stdin_reader)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap());
        // `spawn` drops the command, and with it this process's copy of the pipe's read
        // end.
        let child = Watched::spawn(command);
        let stdout = child.take_stdout().unwrap();
        Agent {
            child,
            lines: BufReader::new(stdout).lines(),
            stdin,
            stderr,
        }
    }

    /// Lets the client go on past a `waiting` step.
    fn go(&mut self) {
        self.stdin.write_all(b"go\n").unwrap();
        self.stdin.flush().unwrap();
    }
}

/// The protocol versions the Python SDK speaks: the `initialize` handshake of 2025-11-25
/// and before (`legacy`), and 2026-07-28 (`server/discover`, no handshake).
#[test]
fn an_mcp_client_in_python_meets_the_gate_on_the_handshake_protocol() {
    meets_the_gate("legacy", "2025-11-25");
}

#[test]
fn an_mcp_client_in_python_meets_the_gate_on_protocol_2026_07_28() {
    meets_the_gate("2026-07-28", "2026-07-28");
}

/// The Python client, in connect `mode`, negotiates `version` with the gateway and goes
/// through a session's every step.
fn meets_the_gate(mode: &str, version: &str) {
    meets_the_gate_over(mode, version, false);
}

#[test]
fn the_gateway_reaches_an_upstream_over_streamable_http() {
    meets_the_gate_over("2026-07-28", "2026-07-28", true);
}

/// [`meets_the_gate`], with the upstream a child of the gateway on stdio, or (`http`) a
/// server of its own that the gateway reaches over streamable HTTP (`--upstream-url`).
fn meets_the_gate_over(mode: &str, version: &str, http: bool) {
    let Some(python) = python() else {
        eprintln!("skipped: APPROVAL_GATE_TEST_PYTHON is not set (`.ci/run` makes the venv)");
        return;
    };
    let scratch = Scratch::new("mcp");
    let config = deployment(&scratch);
    let config = config.to_str().unwrap();
    let outbox = scratch.path("outbox");
    let mut args = vec![
        "--config",
        config,
        "mcp",
        "--as-requester",
        "agent-alice",
        "--console-url",
        "https://gate.example.com",
    ];
    // Kept to the end of the test: dropping it kills the HTTP upstream.
    let (_http_upstream, url) = if http {
        let mut server = Command::new(&python);
        server
            .arg(script("http_upstream.py"))
            .env("APPROVAL_GATE_TEST_OUTBOX", &outbox)
            .stdout(Stdio::piped());
        let mut server = Watched::spawn(server);
        let line = common::first_line(&mut server);
        let port = line
            .strip_prefix("listening ")
            .unwrap_or_else(|| panic!("the HTTP upstream said `{line}`"))
            .trim()
            .to_owned();
        (Some(server), format!("http://127.0.0.1:{port}/mcp"))
    } else {
        (None, String::new())
    };
    let mut agent = if http {
        args.extend(["--upstream-url", url.as_str()]);
        Agent::start_at(&python, "client.py", &args, &[], &scratch, mode)
    } else {
        Agent::start(&python, "client.py", &args, &scratch, mode)
    };

    // The gateway's tools are the upstream's, on the protocol the client asked for.
    let tools = agent.next("tools");
    assert_eq!(tools["protocol_version"], version, "{tools}");
    assert_eq!(
        tools["names"],
        approval_gate::serde_json::json!(["db.drop", "email.send", "notes.read", "notes.write"])
    );

    // A read passes, with the upstream's result.
    let read = agent.next("read");
    assert_eq!(read["is_error"], false, "{read}");
    assert_eq!(read["text"], "note n1: buy milk");

    // A write waits for a person: nothing reached the upstream.
    let write = agent.next("write");
    assert_eq!(write["is_error"], true, "{write}");
    let pending = &write["structured"];
    assert_eq!(pending["status"], "approval_pending", "{write}");
    let id = pending["request_id"].as_str().unwrap().to_owned();
    assert!(pending["expires_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        pending["console_url"],
        format!("https://gate.example.com/requests/{id}").as_str()
    );
    let text = write["text"].as_str().unwrap();
    assert!(text.contains("again with the same arguments"), "{text}");
    agent.next("waiting");
    assert_eq!(sent(&outbox), Vec::<String>::new());

    // A person approves, with the command, in a process of its own. The requester is
    // the one the gateway was started as.
    let shown = run(&["--config", config, "show", &id, "--format", "json"])
        .ok()
        .json_lines();
    assert_eq!(shown[0]["requester"], "agent-alice", "{}", shown[0]);
    run(&["--config", config, "approve", &id, "--as", "ann"]).ok();
    assert_eq!(sent(&outbox), Vec::<String>::new());
    agent.go();

    // The identical call runs, once.
    let ran = agent.next("write_again");
    assert_eq!(ran["is_error"], false, "{ran}");
    assert_eq!(ran["text"], "sent to bob@example.com");
    assert_eq!(sent(&outbox), ["bob@example.com\tQ3 numbers"]);

    // The approval is used: the next identical call waits again, on a new request.
    let again = agent.next("write_once_more");
    assert_eq!(again["is_error"], true, "{again}");
    assert_eq!(again["structured"]["status"], "approval_pending");
    assert_ne!(again["structured"]["request_id"], id.as_str());
    assert_eq!(sent(&outbox).len(), 1);

    // A denial's reason reaches the model.
    let denied = agent.next("drop");
    assert_eq!(denied["is_error"], true, "{denied}");
    let text = denied["text"].as_str().unwrap();
    assert!(
        text.contains("dropping tables is not allowed, archive the table instead"),
        "{text}"
    );
    assert_eq!(denied["structured"]["reason"], "policy_denied");

    // A person denies a write, with feedback: the model's next identical call hears it.
    let blast = agent.next("blast");
    let blast_id = blast["structured"]["request_id"]
        .as_str()
        .unwrap()
        .to_owned();
    agent.next("waiting");
    run(&[
        "--config",
        config,
        "deny",
        &blast_id,
        "--as",
        "ann",
        "--feedback",
        "write to the team list instead",
    ])
    .ok();
    agent.go();
    let told = agent.next("blast_again");
    assert_eq!(told["is_error"], true, "{told}");
    let text = told["text"].as_str().unwrap();
    assert!(
        text.contains("ann denied this call: write to the team list instead"),
        "{text}"
    );
    assert_eq!(told["structured"]["reason"], "approval_denied");
    assert_eq!(sent(&outbox).len(), 1);

    // The client closes its session; the gateway and the upstream end with it.
    agent.next("done");
    assert!(agent.lines.next().is_none());
    assert!(!agent.child.kill(), "the client ran past the deadline");

    // The trail holds the request's whole story, and verifies.
    let history = run(&[
        "--config", config, "audit", "history", &id, "--format", "json",
    ])
    .ok()
    .json_lines();
    let events: Vec<&str> = history
        .iter()
        .map(|r| r["event"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        events,
        [
            "approval_required",
            "approval_granted",
            "execution_started",
            "executed"
        ],
        "{history:?}"
    );
    run(&["--config", config, "audit", "verify"]).ok();
}

#[test]
fn the_person_at_the_client_decides_in_the_client_on_the_handshake_protocol() {
    decides_in_the_client("legacy", "2025-11-25");
}

#[test]
fn the_person_at_the_client_decides_in_the_client_on_protocol_2026_07_28() {
    decides_in_the_client("2026-07-28", "2026-07-28");
}

/// In-client approval (`--approve-in-client`): the Python client, in connect `mode`,
/// is asked (elicitation: a request, or on 2026-07-28 an `input_required` result) and
/// approves one note, denies one with feedback and declines one.
fn decides_in_the_client(mode: &str, version: &str) {
    let Some(python) = python() else {
        eprintln!("skipped: APPROVAL_GATE_TEST_PYTHON is not set (`.ci/run` makes the venv)");
        return;
    };
    let scratch = Scratch::new("mcp-in-client");
    let config = deployment(&scratch);
    let config = config.to_str().unwrap();
    let outbox = scratch.path("outbox");
    let mut client = Agent::start(
        &python,
        "in_client.py",
        &[
            "--config",
            config,
            "mcp",
            "--as-requester",
            "agent-alice",
            "--approve-in-client",
            "notes",
            "--in-client-approver",
            "alice",
        ],
        &scratch,
        mode,
    );
    let connected = client.next("connected");
    assert_eq!(connected["protocol_version"], version, "{connected}");

    // Asked with what an approver sees; approves: the note is written, once.
    let asked = client.next("asked");
    let message = asked["message"].as_str().unwrap();
    assert!(message.contains("Approve `notes.write`?"), "{message}");
    assert!(message.contains("\"text\": \"call mum\""), "{message}");
    assert!(message.contains("Risk tier: notes"), "{message}");
    assert!(message.contains("Asked by: agent-alice"), "{message}");
    assert_eq!(
        asked["schema"]["properties"]["decision"]["enum"],
        approval_gate::serde_json::json!(["approve", "deny"]),
        "{asked}"
    );
    let n1 = client.next("n1");
    assert_eq!(n1["is_error"], false, "{n1}");
    assert_eq!(n1["text"], "noted n1");
    assert_eq!(sent(&outbox), ["note n1\tcall mum"]);

    // Denied with feedback: the model reads it; nothing was written.
    client.next("asked");
    let n2 = client.next("n2");
    assert_eq!(n2["is_error"], true, "{n2}");
    assert!(
        n2["text"]
            .as_str()
            .unwrap()
            .contains("not in the shared notebook"),
        "{n2}"
    );
    assert_eq!(n2["structured"]["reason"], "approval_denied", "{n2}");

    // Declined: denied too.
    client.next("asked");
    let n3 = client.next("n3");
    assert_eq!(n3["structured"]["reason"], "approval_denied", "{n3}");
    client.next("done");
    assert_eq!(sent(&outbox).len(), 1);

    // The decisions are alice's, on the trail.
    let decided = run(&["--config", config, "audit", "export"])
        .ok()
        .json_lines();
    let by_alice: Vec<&str> = decided
        .iter()
        .filter(|r| r["approver"] == "alice")
        .map(|r| r["event"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        by_alice,
        ["approval_granted", "approval_denied", "approval_denied"],
        "{decided:?}"
    );
}

#[test]
fn an_upstream_that_dies_mid_call_leaves_it_in_doubt_and_is_started_again() {
    let Some(python) = python() else {
        eprintln!("skipped: APPROVAL_GATE_TEST_PYTHON is not set (`.ci/run` makes the venv)");
        return;
    };
    let scratch = Scratch::new("mcp-exit");
    let config = deployment(&scratch);
    let stderr = scratch.path("gateway.stderr");
    let mut command = Command::new(env!("CARGO_BIN_EXE_approval-gate"));
    command
        .args(["--config", config.to_str().unwrap(), "mcp", "--"])
        .arg(&python)
        .arg(script("exiting_upstream.py"))
        .env("APPROVAL_GATE_TEST_MARKER", scratch.path("died"));
    let (stdin_reader, mut stdin) = std::io::pipe().unwrap();
    command
        .stdin(stdin_reader)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr).unwrap());
    let mut gateway = Watched::spawn(command);
    let mut replies = BufReader::new(gateway.take_stdout().unwrap()).lines();
    let mut send = |message: &str| {
        writeln!(stdin, "{message}").unwrap();
        stdin.flush().unwrap();
    };
    // Standard output is MCP's alone: every line a JSON-RPC message.
    let mut reply = |id: u64| -> Value {
        for line in replies.by_ref() {
            let line = line.unwrap();
            let message: Value = approval_gate::serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("the gateway printed `{line}`, not JSON-RPC: {e}"));
            assert_eq!(message["jsonrpc"], "2.0", "{message}");
            if message["id"] == id {
                return message;
            }
        }
        panic!(
            "the gateway ended before answering request {id}\nstderr: {}",
            std::fs::read_to_string(&stderr).unwrap_or_default()
        )
    };
    send(
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"test","version":"0"}}}"#,
    );
    reply(1);
    send(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
    let read = r#""method":"tools/call","params":{"name":"notes.read","arguments":{"id":"n1"}}}"#;

    // The upstream dies with the call: the client hears it may have run.
    send(&format!(r#"{{"jsonrpc":"2.0","id":2,{read}"#));
    let lost = reply(2);
    assert_eq!(lost["result"]["isError"], true, "{lost}");
    assert_eq!(
        lost["result"]["structuredContent"]["status"], "in_doubt",
        "{lost}"
    );
    // The session goes on, with the upstream started again.
    send(&format!(r#"{{"jsonrpc":"2.0","id":3,{read}"#));
    let answered = reply(3);
    assert_eq!(
        answered["result"]["content"][0]["text"], "note n1: buy milk",
        "{answered}"
    );

    // The client closes the session: the gateway ends, successfully.
    drop(stdin);
    let status = gateway
        .wait()
        .expect("the gateway ends within the deadline");
    assert!(
        status.success(),
        "{status}\nstderr: {}",
        std::fs::read_to_string(&stderr).unwrap_or_default()
    );
    // The trail: allowed, in doubt; allowed, executed.
    let history = run(&["--config", config.to_str().unwrap(), "audit", "export"])
        .ok()
        .json_lines();
    let events: Vec<&str> = history
        .iter()
        .map(|r| r["event"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        events,
        ["allow", "execution_in_doubt", "allow", "executed"],
        "{history:?}"
    );
}

#[test]
fn an_upstream_that_does_not_speak_mcp_is_a_clear_error() {
    let scratch = Scratch::new("mcp-upstream");
    let config = deployment(&scratch);
    let failed = run(&["--config", config.to_str().unwrap(), "mcp", "--", "true"]).code(5);
    assert!(
        failed.stdout.is_empty(),
        "stdout is MCP's: {}",
        failed.stdout
    );
    assert!(
        failed
            .stderr
            .contains("error: cannot start the upstream MCP server `true`"),
        "{}",
        failed.stderr
    );
}

#[test]
fn the_upstream_command_is_required() {
    let scratch = Scratch::new("mcp-usage");
    let config = deployment(&scratch);
    let failed = run(&["--config", config.to_str().unwrap(), "mcp"]).code(2);
    assert!(
        failed.stderr.contains("UPSTREAM-COMMAND"),
        "{}",
        failed.stderr
    );
}
