//! The independent implementations the tests compare keybridge against: Python packages
//! from PyPI (`tests/interop/requirements.txt`) in a virtualenv that `scripts/test` creates,
//! and the scripts in `tests/interop/` that drive them.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The repository root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The interop virtualenv's Python: `KEYBRIDGE_INTEROP_PYTHON`, else
/// `target/interop-venv/bin/python`. Panics (the test fails, never skips) with the command
/// that creates it when it is missing.
pub fn python() -> PathBuf {
    if let Some(path) = std::env::var_os("KEYBRIDGE_INTEROP_PYTHON") {
        return PathBuf::from(path);
    }
    let path = workspace_root().join("target/interop-venv/bin/python");
    assert!(
        path.exists(),
        "the interop Python is missing at {}: run scripts/test (it creates target/interop-venv \
         from tests/interop/requirements.txt), or set KEYBRIDGE_INTEROP_PYTHON",
        path.display()
    );
    path
}

/// The path of `tests/interop/<name>`.
pub fn script(name: &str) -> PathBuf {
    workspace_root().join("tests/interop").join(name)
}

/// Runs `tests/interop/<name> ARGS...` with `stdin` on standard input and waits for it.
pub fn run_script(name: &str, args: &[&str], stdin: &[u8]) -> Output {
    let path = script(name);
    let mut child = Command::new(python())
        .arg(&path)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()));
    if let Some(mut input) = child.stdin.take() {
        input
            .write_all(stdin)
            .unwrap_or_else(|e| panic!("cannot write to {}: {e}", path.display()));
    }
    child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("{} did not finish: {e}", path.display()))
}
