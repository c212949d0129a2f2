//! What the command's tests share: a scratch directory, running the binary, and a gate
//! in the test process on the same store, as an agent's host would hold it.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use approval_gate::serde_json::{Value, json};
use approval_gate::{Execution, Gate, Gated, Key, Keyring, Policy, ToolCall, ToolExecutor};
use base64::Engine as _;

/// A directory of its own for one test, removed when dropped.
pub struct Scratch {
    pub dir: PathBuf,
}

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "approval-gate-cli-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What a run of the command gave.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The JSON values printed, one a line.
    pub fn json_lines(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                approval_gate::serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("not JSON: {l}: {e}"))
            })
            .collect()
    }

    #[track_caller]
    pub fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "stdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn code(self, code: i32) -> Run {
        assert_eq!(
            self.code, code,
            "stdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }
}

/// Runs `approval-gate ARGS` with a clean environment of its own.
pub fn run(args: &[&str]) -> Run {
    run_in(args, &[])
}

/// Runs `approval-gate ARGS` with these environment variables.
pub fn run_in(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_approval-gate"));
    command.args(args);
    for name in [
        "APPROVAL_GATE_CONFIG",
        "APPROVAL_GATE_STORE",
        "APPROVAL_GATE_SCHEMA",
        "APPROVAL_GATE_POLICY",
        "APPROVAL_GATE_KEY_FILE",
        "APPROVAL_GATE_AS",
        "APPROVAL_GATE_TENANT",
    ] {
        command.env_remove(name);
    }
    command.env("USER", "cli-user");
    for (name, value) in env {
        command.env(name, value);
    }
    let Output {
        status,
        stdout,
        stderr,
    } = command.output().unwrap();
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// Reads a key file as `init` writes it: `KEY-ID:BASE64-SECRET` lines, the last signs.
pub fn read_keys(path: &Path) -> Keyring {
    let text = std::fs::read_to_string(path).unwrap();
    let mut ring: Option<Keyring> = None;
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (id, secret) = line.split_once(':').unwrap();
        let secret = base64::engine::general_purpose::STANDARD
            .decode(secret)
            .unwrap();
        let key = Key::new(id, secret).unwrap();
        match &mut ring {
            Some(r) => r.rotate(key),
            None => ring = Some(Keyring::new(key)),
        }
    }
    ring.unwrap()
}

/// The host's gate on `store`, with the policy and key `init` wrote in `dir`.
pub fn gate_on(dir: &Path, store: impl approval_gate::ApprovalStore + 'static) -> Gate {
    let policy =
        Policy::from_yaml_str(&std::fs::read_to_string(dir.join("policy.yaml")).unwrap()).unwrap();
    Gate::builder(policy, read_keys(&dir.join("signing.key")))
        .store(store)
        .build()
}

/// The mail tool behind the gate, counting how often it runs.
pub fn mail_tool(
    gate: &Gate,
) -> (
    Gated<impl ToolExecutor<Output = Value, Error = std::io::Error> + use<>>,
    Arc<AtomicUsize>,
) {
    let runs = Arc::new(AtomicUsize::new(0));
    let counted = runs.clone();
    let tool = gate.wrap(move |exec: Execution| {
        let counted = counted.clone();
        async move {
            counted.fetch_add(1, Ordering::SeqCst);
            Ok::<Value, std::io::Error>(json!({"sent_to": exec.args()["to"]}))
        }
    });
    (tool, runs)
}

/// An `email.send` call asked for by alice.
pub fn mail(call_id: &str, to: &str) -> ToolCall {
    ToolCall::new(
        "run-1",
        call_id,
        "email.send",
        json!({"to": to, "subject": "Hi"}),
    )
    .with_requester("alice")
}
