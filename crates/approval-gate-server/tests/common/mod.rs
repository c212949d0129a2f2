//! What the tests that check a wire format with a real part in Python share: the
//! interpreter from `APPROVAL_GATE_TEST_PYTHON` (a venv `.ci/run` makes with the pinned
//! packages) and running one of the test's scripts.

use std::path::{Path, PathBuf};

/// The interpreter `APPROVAL_GATE_TEST_PYTHON` names, if it can import `module`.
pub fn python_with(module: &str) -> Option<PathBuf> {
    let python = PathBuf::from(std::env::var_os("APPROVAL_GATE_TEST_PYTHON")?);
    let has = std::process::Command::new(&python)
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success());
    has.then_some(python)
}

/// Runs the script `tests/{path}` under `python` with `args`, `input` on its standard
/// input; its standard output, once it succeeded.
pub fn run_script(python: &Path, path: &str, args: &[&str], input: &str) -> String {
    use std::io::Write as _;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(path);
    let mut child = std::process::Command::new(python)
        .arg(&script)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{} failed", script.display());
    String::from_utf8(out.stdout).unwrap()
}
