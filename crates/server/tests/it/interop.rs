//! Runs `tests/interop/server_verify.py` (Python's `cryptography` and `zipfile`): an
//! independent reading of the TLS pin and of the desktop-client zip.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value;

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

/// The interop venv's interpreter; fails (never skips) when it is missing.
fn python() -> PathBuf {
    if let Some(path) = std::env::var_os("KEYBRIDGE_INTEROP_PYTHON") {
        return PathBuf::from(path);
    }
    let path = workspace_root().join("target/interop-venv/bin/python");
    assert!(
        path.exists(),
        "the interop Python environment is missing at {}; run `scripts/test` (or create it: \
         python3 -m venv target/interop-venv && target/interop-venv/bin/pip install -r tests/interop/requirements.txt), \
         or set KEYBRIDGE_INTEROP_PYTHON",
        path.display()
    );
    path
}

/// Runs one command of the script with `input` on stdin.
pub fn run(command: &str, input: &Value) -> Value {
    let script = workspace_root().join("tests/interop/server_verify.py");
    let mut child = Command::new(python())
        .arg(&script)
        .arg(command)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python starts");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.to_string().as_bytes())
        .expect("input written");
    let output = child.wait_with_output().expect("python ran");
    assert!(
        output.status.success(),
        "server_verify.py {command} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON answer")
}
