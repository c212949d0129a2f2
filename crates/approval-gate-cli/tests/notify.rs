//! `approval-gate notify` as an operator runs it: `notify run`, a process of its own,
//! delivers a request filed by an agent's host to a webhook receiver; `notify status`
//! shows each channel's place and the deliveries given up on.

mod common;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use approval_gate::serde_json::Value;
use approval_gate::{GateOutcome, SqliteStore};
use approval_gate_server::notify::{Notifier, NotifyConfig};
use common::{Scratch, Watched, gate_on, mail, mail_tool, run};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// A webhook receiver on a thread: answers each POST 200 and hands its body over.
fn receiver() -> (String, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tell, heard) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            let _ = tell.send(String::from_utf8(body).unwrap());
        }
    });
    (url, heard)
}

/// Adds a `notify` section to the config file `init` wrote.
fn with_notify(config: &Path, channels: &str) {
    let mut text = std::fs::read_to_string(config).unwrap();
    text.push_str(&format!(
        "notify:\n  retry: {{attempts: 1, backoff_ms: 0}}\n  channels:\n{channels}"
    ));
    std::fs::write(config, text).unwrap();
}

fn channel(name: &str, url: &str) -> String {
    format!(
        "    {name}:\n      kind: webhook\n      url: {url}\n      secret: {SECRET}\n      events: [approval_required]\n"
    )
}

#[test]
fn notify_run_delivers_a_filed_request_to_the_webhook() {
    let scratch = Scratch::new("notify-run");
    let dir = scratch.path("deploy");
    run(&["init", dir.to_str().unwrap()]).ok();
    let config = dir.join("approval-gate.yaml");
    let (url, heard) = receiver();
    with_notify(&config, &channel("ops", &url));

    let mut command = Command::new(env!("CARGO_BIN_EXE_approval-gate"));
    command
        .args(["--config", config.to_str().unwrap(), "notify", "run"])
        .stdout(Stdio::piped());
    let mut notifier = Watched::spawn(command);
    let started = common::first_line(&mut notifier);
    assert!(started.contains("delivering"), "{started}");

    // An agent's host, another process, files a request on the same file.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let id = rt.block_on(async {
        let store = SqliteStore::connect(dir.join("approvals.db").to_str().unwrap())
            .await
            .unwrap();
        let gate = gate_on(&dir, store);
        let (tool, _) = mail_tool(&gate);
        match tool.call(mail("c1", "bob@example.com")).await.unwrap() {
            GateOutcome::Pending(p) => p.request_id,
            other => panic!("expected pending, got {}", other.name()),
        }
    });
    let body = heard
        .recv_timeout(Duration::from_secs(60))
        .expect("a webhook");
    let payload: Value = approval_gate::serde_json::from_str(&body).unwrap();
    assert_eq!(payload["type"], "approval_required");
    assert_eq!(payload["data"]["request"]["id"], id.to_string());
    notifier.kill();

    let status = run(&[
        "--config",
        config.to_str().unwrap(),
        "notify",
        "status",
        "--format",
        "json",
    ])
    .ok()
    .json_lines();
    assert_eq!(status.len(), 1, "{status:?}");
    assert_eq!(status[0]["channel"], "ops");
}

#[test]
fn notify_status_shows_a_delivery_given_up_on() {
    let scratch = Scratch::new("notify-status");
    let dir = scratch.path("deploy");
    run(&["init", dir.to_str().unwrap()]).ok();
    let config_path = dir.join("approval-gate.yaml");
    // Nothing listens on port 9 of this host: every attempt is refused.
    with_notify(&config_path, &channel("pager", "http://127.0.0.1:9/hook"));
    let text = std::fs::read_to_string(&config_path).unwrap();
    let section = text.split_once("notify:\n").unwrap().1;
    let unindented: String = section
        .lines()
        .map(|l| format!("{}\n", l.strip_prefix("  ").unwrap_or(l)))
        .collect();
    let config = NotifyConfig::from_yaml_str(&unindented).unwrap();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = SqliteStore::connect(dir.join("approvals.db").to_str().unwrap())
            .await
            .unwrap();
        let gate = gate_on(&dir, store);
        let notifier = Notifier::new(gate.clone(), &config).unwrap();
        notifier.step().await.unwrap();
        let (tool, _) = mail_tool(&gate);
        tool.call(mail("c1", "bob@example.com")).await.unwrap();
        let step = notifier.step().await.unwrap();
        assert_eq!(step.failed, 1);
        notifier.release().await;
    });

    let table = run(&[
        "--config",
        config_path.to_str().unwrap(),
        "notify",
        "status",
    ])
    .ok();
    let text = table.stdout.clone();
    assert!(text.contains("pager"), "{text}");
    assert!(text.contains("1 deliveries given up on"), "{text}");
    assert!(text.contains("approval_required"), "{text}");
    let json = run(&[
        "--config",
        config_path.to_str().unwrap(),
        "notify",
        "status",
        "--format",
        "json",
    ])
    .ok()
    .json_lines();
    let failed: Vec<_> = json
        .iter()
        .filter_map(|l| l.get("failed_delivery"))
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["channel"], "pager");
    assert_eq!(failed[0]["attempts"], 1);
}

#[test]
fn notify_run_without_channels_is_a_usage_error() {
    let scratch = Scratch::new("notify-none");
    let dir = scratch.path("deploy");
    run(&["init", dir.to_str().unwrap()]).ok();
    let config = dir.join("approval-gate.yaml");
    let out = run(&["--config", config.to_str().unwrap(), "notify", "run"]).code(2);
    assert!(
        out.stderr.contains("names no notify channels"),
        "{}",
        out.stderr
    );
}
