//! The command as its users meet it: the real binary, run as a process, against an
//! SQLite file that a gate in this test process (the agent's host) shares.

mod common;

use std::sync::atomic::Ordering;

use approval_gate::{GateOutcome, SqliteStore, StopReason};
use common::{Scratch, Watched, first_line, gate_on, mail, mail_tool, run, token_hash};

/// `init DIR`, then the config file it wrote.
fn init(scratch: &Scratch) -> String {
    let dir = scratch.path("deploy");
    let out = run(&["init", dir.to_str().unwrap()]).ok();
    assert!(out.stdout.contains("next:"), "{}", out.stdout);
    dir.join("approval-gate.yaml").display().to_string()
}

/// Runs the command with `--config CONFIG` before `args`.
fn with_config(config: &str, args: &[&str]) -> common::Run {
    let mut all = vec!["--config", config];
    all.extend_from_slice(args);
    run(&all)
}

async fn host(scratch: &Scratch) -> approval_gate::Gate {
    let dir = scratch.path("deploy");
    let store = SqliteStore::connect_with(SqliteStore::options(
        dir.join("approvals.db").to_str().unwrap(),
    ))
    .await
    .unwrap();
    gate_on(&dir, store)
}

#[test]
fn init_writes_a_deployment_that_loads() {
    let scratch = Scratch::new("init");
    let config = init(&scratch);
    let dir = scratch.path("deploy");
    for file in [
        "approval-gate.yaml",
        "policy.yaml",
        "signing.key",
        "approvals.db",
    ] {
        assert!(dir.join(file).exists(), "{file} is missing");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.join("signing.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    run(&["--config", &config, "pending"]).ok();
    run(&["policy", "check", dir.join("policy.yaml").to_str().unwrap()]).ok();
    // A second init in the same place overwrites nothing.
    run(&["init", dir.to_str().unwrap()]).code(2);
}

#[test]
fn policy_check_names_the_file_line_and_field() {
    let scratch = Scratch::new("check");
    let good = scratch.write(
        "good.yaml",
        "approvals:\n  required_for: [email.send]\n  ttl_seconds: 300\n",
    );
    let out = run(&["policy", "check", good.to_str().unwrap()]).ok();
    assert!(out.stdout.starts_with("ok: "), "{}", out.stdout);

    let bad = scratch.write(
        "bad.yaml",
        "rules:\n  - id: r\n    tool: db.write\n    effect: approval_required\n    tier: critcal\n",
    );
    let out = run(&[
        "policy",
        "check",
        good.to_str().unwrap(),
        bad.to_str().unwrap(),
    ])
    .code(5);
    let shown = format!("{}:5:", bad.display());
    assert!(out.stdout.contains(&shown), "{}", out.stdout);
    assert!(out.stdout.contains("rules[0].tier"), "{}", out.stdout);
    assert!(out.stdout.contains("critcal"), "{}", out.stdout);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);

    let json = run(&["policy", "check", bad.to_str().unwrap(), "--format", "json"]).code(5);
    let lines = json.json_lines();
    assert_eq!(lines[0]["line"], 5);
    assert_eq!(lines[0]["field"], "rules[0].tier");
}

const POLICY: &str = "\
approvals:
  required_for: [email.send]
tiers:
  high: {}
rules:
  - id: reads
    tools: ['*.read']
    effect: allow
  - id: refunds-large
    tool: payments.refund
    effect: approval_required
    tier: high
    when: { field: args.amount, gt: 100 }
  - id: refunds
    tool: payments.refund
    effect: allow
";

#[test]
fn policy_test_passes_and_fails_like_opa_test() {
    let scratch = Scratch::new("ptest");
    let policy = scratch.write("policy.yaml", POLICY);
    let passing = scratch.write(
        "pass.yaml",
        "\
- tool: crm.read
  expect: { effect: allow, rules: [reads] }
- name: a large refund waits for a person
  tool: payments.refund
  args: { amount: 500 }
  requester: bob
  roles: [support]
  expect: { effect: approval_required, rules: [refunds-large], tier: high }
- tool: payments.refund
  args: { amount: 5 }
  expect: { effect: allow, tier: none }
- tool: db.drop
  expect: { effect: deny }
",
    );
    let out = run(&[
        "policy",
        "test",
        policy.to_str().unwrap(),
        passing.to_str().unwrap(),
    ])
    .ok();
    assert!(out.stdout.contains("PASS: 4/4"), "{}", out.stdout);

    let failing = scratch.write(
        "fail.yaml",
        "\
- tool: crm.read
  expect: { effect: allow }
- name: mail goes out unasked
  tool: email.send
  args: { to: bob@example.com }
  expect: { effect: allow }
- tool: payments.refund
  args: { amount: 500 }
  expect: { effect: approval_required, tier: low }
",
    );
    let out = run(&[
        "policy",
        "test",
        policy.to_str().unwrap(),
        failing.to_str().unwrap(),
    ])
    .code(1);
    assert!(
        out.stdout
            .contains("FAIL mail goes out unasked: expected effect allow, got approval_required"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("expected tier low, got high"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("PASS: 1/3"), "{}", out.stdout);

    let json = run(&[
        "policy",
        "test",
        policy.to_str().unwrap(),
        failing.to_str().unwrap(),
        "--format",
        "json",
    ])
    .code(1);
    let results = json.json_lines();
    assert_eq!(results.len(), 3);
    assert_eq!(results[1]["passed"], false);
    assert_eq!(results[1]["effect"], "approval_required");
}

#[tokio::test(flavor = "current_thread")]
async fn a_person_decides_from_the_terminal_and_the_host_resumes() {
    let scratch = Scratch::new("desk");
    let config = init(&scratch);
    let gate = host(&scratch).await;
    let (tool, runs) = mail_tool(&gate);
    let cli = |args: &[&str]| with_config(&config, args);

    // The agent asks; the gate files a request and returns at once.
    let call = mail("call-1", "bob@example.com");
    let outcome = tool.call(call.clone()).await.unwrap();
    let id = outcome
        .pending()
        .expect("email.send needs approval")
        .request_id
        .to_string();

    // `pending` lists it, in both forms.
    let table = cli(&["pending", "--as", "ann"]).ok();
    assert!(table.stdout.contains(&id), "{}", table.stdout);
    assert!(table.stdout.contains("email.send"), "{}", table.stdout);
    let listed = cli(&["pending", "--as", "ann", "--format", "json"])
        .ok()
        .json_lines();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["requester"], "alice");
    assert_eq!(listed[0]["shown_args"]["to"], "bob@example.com");

    // `show` shows it, with its history.
    let shown = cli(&["show", &id, "--as", "ann"]).ok();
    assert!(shown.stdout.contains("bob@example.com"), "{}", shown.stdout);
    assert!(
        shown.stdout.contains("approval_required"),
        "{}",
        shown.stdout
    );
    let shown = cli(&["show", &id, "--as", "ann", "--format", "json"])
        .ok()
        .json_lines();
    assert_eq!(shown[0]["state"], "pending");
    assert_eq!(shown[0]["history"][0]["event"], "approval_required");

    // alice asked: she may not approve her own call.
    let refused = cli(&["approve", &id, "--as", "alice"]).code(4);
    assert_eq!(refused.stderr.lines().count(), 1, "{}", refused.stderr);
    assert!(refused.stderr.starts_with("error: "), "{}", refused.stderr);

    // ann approves; a second vote on the decided request is refused.
    let approved = cli(&["approve", &id, "--as", "ann"]).ok();
    assert!(approved.stdout.contains("approved"), "{}", approved.stdout);
    let again = cli(&["approve", &id, "--as", "bob"]).code(4);
    assert!(again.stderr.contains("already"), "{}", again.stderr);
    cli(&["deny", &id, "--as", "bob", "--feedback", "too late"]).code(4);

    // The host resumes: the tool runs once.
    let resumed = tool
        .resume(outcome.pending().unwrap().request_id, call)
        .await
        .unwrap();
    assert!(resumed.executed().is_some(), "{}", resumed.name());
    assert_eq!(runs.load(Ordering::SeqCst), 1);

    // An id nobody filed is not found; a malformed one is a usage error.
    let missing = approval_gate::RequestId::new().to_string();
    cli(&["show", &missing, "--as", "ann"]).code(3);
    cli(&["approve", &missing, "--as", "ann"]).code(3);
    cli(&["show", "not-an-id"]).code(2);

    // The trail the command wrote verifies, and holds the decision.
    let verified = cli(&["audit", "verify"]).ok();
    assert!(verified.stdout.starts_with("ok: "), "{}", verified.stdout);
    let history = cli(&["audit", "history", &id]).ok();
    assert!(
        history.stdout.contains("approval_granted"),
        "{}",
        history.stdout
    );
    assert!(
        history.stdout.contains("approver=ann"),
        "{}",
        history.stdout
    );

    // Exported as JSON lines, the trail verifies as a file, as `approval-gate-audit` did.
    let file = scratch.path("trail.jsonl");
    let file = file.to_str().unwrap();
    cli(&["audit", "export", "--out", file]).ok();
    let verified = run(&["audit", "verify", file]).ok();
    assert!(verified.stdout.starts_with("ok: "), "{}", verified.stdout);
    assert!(verified.stdout.contains("in 1 file"), "{}", verified.stdout);
    let history = run(&["audit", "history", file, &id]).ok();
    assert!(
        history.stdout.contains("approval_granted"),
        "{}",
        history.stdout
    );
    let runs_history = run(&["audit", "run", file, "run-1", "--format", "json"]).ok();
    assert!(runs_history.json_lines().len() >= 4);
    run(&["audit", "history", file, &missing]).code(3);
    // A record changed after the fact breaks the chain: the check fails (exit 1).
    let text = std::fs::read_to_string(file).unwrap();
    let forged = text.replacen("\"approver\":\"ann\"", "\"approver\":\"eve\"", 1);
    assert_ne!(forged, text);
    std::fs::write(file, forged).unwrap();
    let broken = run(&["audit", "verify", file]).code(1);
    assert!(broken.stderr.contains("line"), "{}", broken.stderr);
}

#[tokio::test(flavor = "current_thread")]
async fn a_denial_reaches_the_agent_with_its_feedback() {
    let scratch = Scratch::new("deny");
    let config = init(&scratch);
    let gate = host(&scratch).await;
    let (tool, runs) = mail_tool(&gate);

    let call = mail("call-2", "eve@example.net");
    let outcome = tool.call(call.clone()).await.unwrap();
    let id = outcome.pending().unwrap().request_id;
    let denied = run(&[
        "--config",
        &config,
        "deny",
        &id.to_string(),
        "--as",
        "ann",
        "--feedback",
        "use the customer template",
        "--format",
        "json",
    ])
    .ok()
    .json_lines();
    assert_eq!(denied[0]["state"], "denied");

    match tool.resume(id, call).await.unwrap() {
        GateOutcome::Stopped(stop) => match &stop.reason {
            StopReason::ApprovalDenied { feedback, .. } => {
                assert_eq!(feedback.as_deref(), Some("use the customer template"))
            }
            other => panic!("stopped for another reason: {}", other.name()),
        },
        other => panic!("not stopped: {}", other.name()),
    }
    assert_eq!(runs.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "current_thread")]
async fn the_kill_switch_stops_the_next_call() {
    let scratch = Scratch::new("kill");
    let config = init(&scratch);
    let gate = host(&scratch).await;
    let (tool, runs) = mail_tool(&gate);

    run(&[
        "--config",
        &config,
        "kill-switch",
        "on",
        "--tool",
        "email.send",
        "--as",
        "ops",
    ])
    .ok();
    let controls = run(&["--config", &config, "controls", "--format", "json"])
        .ok()
        .json_lines();
    assert_eq!(controls[0]["killed"][0]["name"], "email.send");

    let outcome = tool.call(mail("call-3", "bob@example.com")).await.unwrap();
    match outcome {
        GateOutcome::Stopped(stop) => {
            assert!(
                matches!(stop.reason, StopReason::KillSwitch { .. }),
                "{}",
                stop.reason.name()
            )
        }
        other => panic!("not stopped: {}", other.name()),
    }
    assert_eq!(runs.load(Ordering::SeqCst), 0);

    run(&[
        "--config",
        &config,
        "kill-switch",
        "off",
        "--tool",
        "email.send",
        "--as",
        "ops",
    ])
    .ok();
    let outcome = tool.call(mail("call-4", "bob@example.com")).await.unwrap();
    assert!(outcome.pending().is_some(), "{}", outcome.name());

    let usage = run(&["--config", &config, "usage", "run-1", "--format", "json"])
        .ok()
        .json_lines();
    // The call the kill switch stopped was not counted: the switch comes first.
    assert_eq!(usage[0]["tool_calls"], 1);
    let stats = run(&[
        "--config", &config, "stats", "--window", "1h", "--format", "json",
    ])
    .ok()
    .json_lines();
    assert_eq!(stats[0]["pending"], 1);
}

#[test]
fn missing_settings_are_usage_errors_that_say_what_to_do() {
    let scratch = Scratch::new("usage");
    let out = run(&["pending"]).code(2);
    assert!(out.stderr.contains("--store"), "{}", out.stderr);
    let out = run(&["--store", "mysql://x", "pending"]).code(2);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    let missing = format!("sqlite:{}", scratch.path("nothing.db").display());
    let out = run(&["--store", &missing, "pending"]).code(3);
    assert!(out.stderr.contains("init"), "{}", out.stderr);
    run(&["no-such-command"]).code(2);
}

#[tokio::test(flavor = "current_thread")]
async fn an_edited_approval_runs_the_edited_arguments_and_a_grant_can_be_revoked() {
    let scratch = Scratch::new("edit");
    let config = init(&scratch);
    let gate = host(&scratch).await;
    let (tool, runs) = mail_tool(&gate);
    let cli = |args: &[&str]| with_config(&config, args);

    let call = mail("call-5", "bob@example.com");
    let id = tool
        .call(call.clone())
        .await
        .unwrap()
        .pending()
        .unwrap()
        .request_id;
    let edited = r#"{"to": "carol@example.com", "subject": "Hi"}"#;
    cli(&[
        "approve",
        &id.to_string(),
        "--as",
        "ann",
        "--edit",
        "{not json",
    ])
    .code(2);
    let approved = cli(&[
        "approve",
        &id.to_string(),
        "--as",
        "ann",
        "--edit",
        edited,
        "--format",
        "json",
    ])
    .ok()
    .json_lines();
    assert_eq!(approved[0]["state"], "approved");
    assert_eq!(approved[0]["changed_fields"][0], "args.to");
    let done = tool.resume(id, call).await.unwrap();
    let executed = done.executed().expect("the edited call runs");
    assert_eq!(
        executed.result.as_ref().unwrap()["sent_to"],
        "carol@example.com"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1);

    // A standing grant, listed and revoked.
    let call = mail("call-6", "dave@example.com");
    let id = tool.call(call).await.unwrap().pending().unwrap().request_id;
    let approved = cli(&[
        "approve",
        &id.to_string(),
        "--as",
        "ann",
        "--grant",
        "run",
        "--grant-for",
        "1h",
        "--format",
        "json",
    ])
    .ok()
    .json_lines();
    let grant = approved[0]["grant"]["id"].as_str().unwrap().to_owned();
    let listed = cli(&["grants", "--as", "ann", "--format", "json"])
        .ok()
        .json_lines();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], grant.as_str());
    cli(&["revoke", &grant, "--as", "ann"]).ok();
    cli(&["revoke", &grant, "--as", "ann"]).code(3);
    let listed = cli(&["grants", "--as", "ann", "--format", "json"])
        .ok()
        .json_lines();
    assert!(listed.is_empty());
}

#[test]
fn serve_runs_the_console_for_the_bearer_tokens_of_the_config() {
    use std::io::{Read as _, Write as _};

    let scratch = Scratch::new("serve");
    let config = init(&scratch);
    // `init` admits one person with a token of its own; take its `serve` section out to
    // see that without a way to know people, the console does not start.
    let written = std::fs::read_to_string(&config).unwrap();
    let without_serve = written.split("\nserve:").next().unwrap().to_owned() + "\n";
    assert!(written.contains("\nserve:"), "{written}");
    std::fs::write(&config, &without_serve).unwrap();
    let refused = run(&["--config", &config, "serve", "--listen", "127.0.0.1:0"]).code(2);
    assert!(
        refused.stderr.contains("serve.tokens"),
        "{}",
        refused.stderr
    );

    let token = "a-bearer-token-of-at-least-32-characters";
    let sha256 = token_hash(token);
    assert_eq!(sha256.len(), 64);
    let mut text = without_serve;
    text.push_str(&format!(
        "serve:\n  tokens:\n    - sha256: {sha256}\n      as: ann\n      roles: [approver]\n"
    ));
    std::fs::write(&config, text).unwrap();

    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_approval-gate"));
    command
        .args(["--config", &config, "serve", "--listen", "127.0.0.1:0"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped());
    // Killed if it runs past the deadline, so that a console that never says where it
    // listens fails the test instead of hanging it.
    let mut server = Watched::spawn(command);
    // The first line says where it listens, once it does.
    let first = first_line(&mut server);
    let addr = first
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("no address in {first:?}"))
        .to_owned();
    let get = |auth: Option<&str>| {
        let mut stream = std::net::TcpStream::connect(&addr).unwrap();
        // A hang guard, not a timing assertion.
        stream.set_read_timeout(Some(common::DEADLINE)).unwrap();
        let auth = auth
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        write!(
            stream,
            "GET /api/v1/requests HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
    };
    let known = get(Some(token));
    let unknown = get(None);
    assert!(!server.kill(), "the console ran past the deadline");
    assert!(known.starts_with("HTTP/1.1 200"), "{known}");
    assert!(unknown.starts_with("HTTP/1.1 401"), "{unknown}");
}

/// `init` prints a console token once and keeps only its hash, in a `serve` section
/// that admits the person who ran it as the console's administrator.
#[test]
fn init_admits_its_user_to_the_console_by_a_token_shown_once() {
    let scratch = Scratch::new("init-token");
    let dir = scratch.path("deploy");
    let out = run(&["init", dir.to_str().unwrap()]).ok();
    let token = out.stdout.lines().last().unwrap().trim().to_owned();
    assert_eq!(token.len(), 64, "{}", out.stdout);
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
    let config = std::fs::read_to_string(dir.join("approval-gate.yaml")).unwrap();
    assert!(
        !config.contains(&token),
        "the config keeps the token itself"
    );

    let sha256 = token_hash(&token);
    assert!(config.contains(&format!("sha256: {sha256}")), "{config}");
    assert!(config.contains("roles: [approval-admin]"), "{config}");
}
