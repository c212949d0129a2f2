//! What the command's tests share: a scratch directory, running the binary (never
//! longer than [`DEADLINE`]), and a gate in the test process on the same store, as an
//! agent's host would hold it.

#![allow(dead_code)]

pub mod processes;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

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
    Run::of(output_within(command, None))
}

impl Run {
    /// What a finished process gave.
    pub fn of(output: Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

/// How long any process a test starts may run before it is killed and the test fails
/// with what it printed. A safety net against a stuck child hanging CI, not a timing
/// assertion: every child here finishes in seconds.
pub const DEADLINE: Duration = Duration::from_secs(120);

/// How often a waiting test looks whether its child finished, when nothing it printed
/// woke it first.
const POLL: Duration = Duration::from_millis(20);

/// What a child printed on one pipe so far, read on a thread of its own (so the child
/// never blocks on a full pipe).
type Printed = Arc<Mutex<Vec<u8>>>;

/// Reads `pipe` to its end into what it returns, and says on `done` when the pipe
/// closed.
fn drain(pipe: Option<impl std::io::Read + Send + 'static>, done: mpsc::Sender<()>) -> Printed {
    let printed = Printed::default();
    let into = printed.clone();
    std::thread::spawn(move || {
        if let Some(mut pipe) = pipe {
            let mut chunk = [0u8; 8192];
            while let Ok(n @ 1..) = pipe.read(&mut chunk) {
                into.lock().unwrap().extend_from_slice(&chunk[..n]);
            }
        }
        let _ = done.send(());
    });
    printed
}

/// Runs `command` to its end with `input` on its standard input (none: an empty one),
/// and returns what it printed, as [`Command::output`] does; but a child still running
/// after [`DEADLINE`] is killed and the test fails, showing what the child printed.
pub fn output_within(mut command: Command, input: Option<&[u8]>) -> Output {
    command
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
    if let (Some(mut stdin), Some(input)) = (child.stdin.take(), input) {
        let input = input.to_vec();
        // Written on a thread: a child that does not read must not block the test.
        std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
    }
    let (done, closed) = mpsc::channel();
    let stdout = drain(child.stdout.take(), done.clone());
    let stderr = drain(child.stderr.take(), done);
    let mut open = 2;
    let status = wait_within(&mut child, started, &closed, &mut open);
    // Both pipes read to their end (unless something the child started holds them
    // open past the deadline).
    while status.is_some() && open > 0 {
        let left = DEADLINE.saturating_sub(started.elapsed());
        if closed.recv_timeout(left).is_err() {
            break;
        }
        open -= 1;
    }
    let stdout = std::mem::take(&mut *stdout.lock().unwrap());
    let stderr = std::mem::take(&mut *stderr.lock().unwrap());
    match status {
        Some(status) => Output {
            status,
            stdout,
            stderr,
        },
        None => panic!(
            "{command:?} ran longer than {DEADLINE:?} and was killed\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr)
        ),
    }
}

/// Waits for `child` until [`DEADLINE`] after `started`, waking when one of its `open`
/// pipes closes (`closed`, counted down) or every [`POLL`]; kills it past the deadline
/// (`None`).
fn wait_within(
    child: &mut Child,
    started: Instant,
    closed: &mpsc::Receiver<()>,
    open: &mut usize,
) -> Option<ExitStatus> {
    loop {
        if let Some(status) = child.try_wait().expect("the child can be waited for") {
            return Some(status);
        }
        if started.elapsed() >= DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        if *open == 0 {
            // Both pipes closed: the child is ending; look again shortly.
            std::thread::park_timeout(POLL);
        } else if closed.recv_timeout(POLL).is_ok() {
            *open -= 1;
        }
    }
}

/// A long-running child (a server) that a watchdog kills once it has run for
/// [`DEADLINE`], so that a test blocked on it (reading what it prints, say) ends with
/// an error instead of hanging. Killed when dropped.
pub struct Watched {
    child: Arc<Mutex<Child>>,
    stop: Option<mpsc::Sender<()>>,
    watchdog: Option<JoinHandle<bool>>,
}

impl Watched {
    /// Starts `command` under a watchdog.
    pub fn spawn(mut command: Command) -> Watched {
        let started = Instant::now();
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
        let child = Arc::new(Mutex::new(child));
        let (stop, stopped) = mpsc::channel::<()>();
        let watched = child.clone();
        let watchdog = std::thread::spawn(move || {
            loop {
                if let Ok(Some(_)) = watched.lock().unwrap().try_wait() {
                    return false;
                }
                if started.elapsed() >= DEADLINE {
                    let mut child = watched.lock().unwrap();
                    let _ = child.kill();
                    let _ = child.wait();
                    return true;
                }
                match stopped.recv_timeout(POLL) {
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    // Told to stop, or the `Watched` is gone.
                    _ => return false,
                }
            }
        });
        Watched {
            child,
            stop: Some(stop),
            watchdog: Some(watchdog),
        }
    }

    /// The child's standard output, if it was piped and not taken yet.
    pub fn take_stdout(&self) -> Option<std::process::ChildStdout> {
        self.child.lock().unwrap().stdout.take()
    }

    /// Waits for the child to end on its own; `None` when the watchdog killed it for
    /// running past [`DEADLINE`].
    pub fn wait(&mut self) -> Option<ExitStatus> {
        let overran = self
            .watchdog
            .take()
            .is_some_and(|w| w.join().unwrap_or(false));
        let status = self.child.lock().unwrap().wait().ok()?;
        (!overran).then_some(status)
    }

    /// Kills the child, waits for it, and says whether the watchdog had killed it
    /// already for running past [`DEADLINE`].
    pub fn kill(&mut self) -> bool {
        drop(self.stop.take());
        let overran = self
            .watchdog
            .take()
            .is_some_and(|w| w.join().unwrap_or(false));
        let mut child = self.child.lock().unwrap();
        let _ = child.kill();
        let _ = child.wait();
        overran
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The first line `child` prints on its standard output; the test fails when the
/// watchdog killed it first.
pub fn first_line(child: &mut Watched) -> String {
    use std::io::BufRead as _;
    let mut line = String::new();
    let stdout = child.take_stdout().expect("the child's stdout is piped");
    let _ = std::io::BufReader::new(stdout).read_line(&mut line);
    if line.is_empty() && child.kill() {
        panic!("the child printed nothing within {DEADLINE:?} and was killed");
    }
    line
}

/// `approval-gate token-hash` of `token`.
pub fn token_hash(token: &str) -> String {
    let mut command = Command::new(env!("CARGO_BIN_EXE_approval-gate"));
    command.arg("token-hash");
    let out = Run::of(output_within(command, Some(token.as_bytes()))).ok();
    out.stdout.trim().to_owned()
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
    gate_on_shared(dir, Arc::new(store))
}

/// [`gate_on`] a store shared with other parts of the host.
pub fn gate_on_shared(dir: &Path, store: Arc<dyn approval_gate::ApprovalStore>) -> Gate {
    let policy =
        Policy::from_yaml_str(&std::fs::read_to_string(dir.join("policy.yaml")).unwrap()).unwrap();
    Gate::builder(policy, read_keys(&dir.join("signing.key")))
        .shared_store(store)
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
