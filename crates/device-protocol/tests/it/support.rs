//! Helpers: the document's vectors, the interop Python, fixed keys.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use keybridge_device_protocol::IdentityKey;
use serde_json::Value;

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn document() -> PathBuf {
    workspace_root().join("docs/device-protocol.md")
}

/// The fenced block after `<!-- vector:NAME -->` in docs/device-protocol.md, without the fences
/// and without the final newline.
pub fn doc_vector(name: &str) -> String {
    let text = std::fs::read_to_string(document()).expect("docs/device-protocol.md is readable");
    let marker = format!("<!-- vector:{name} -->\n```text\n");
    let start = text
        .find(&marker)
        .unwrap_or_else(|| panic!("vector {name} is in the document"))
        + marker.len();
    let end = start + text[start..].find("\n```").expect("the block is closed");
    text[start..end].to_owned()
}

pub fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

/// RFC 6979 appendix A.2.5's P-256 private key.
pub const RFC6979_KEY_HEX: &str =
    "c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721";

pub fn rfc6979_key() -> IdentityKey {
    IdentityKey::from_secret_bytes(&hex(RFC6979_KEY_HEX)).expect("valid key")
}

/// The Python interpreter of the interop venv; fails (never skips) when it is missing.
pub fn python() -> PathBuf {
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

/// Runs `tests/interop/device_protocol_verify.py COMMAND` with `input` on stdin.
pub fn run_python(command: &str, input: &Value) -> Value {
    let script = workspace_root().join("tests/interop/device_protocol_verify.py");
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
        .expect("stdin is piped")
        .write_all(input.to_string().as_bytes())
        .expect("input written");
    let output = child.wait_with_output().expect("python runs");
    assert!(
        output.status.success(),
        "device_protocol_verify.py {command} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("python prints JSON")
}
