//! A real SMTP server for tests: `tests/interop/smtp_sink.py` (aiosmtpd from PyPI, in the
//! interop virtualenv) run as a child process on a free loopback port. Recipients whose
//! address starts with `refused` get a 550, those starting with `busy` a 451 the first time
//! (greylisting) and a 250 after that; every accepted message is kept as a file and
//! read back with [`SmtpSink::messages`]. The child ends when the sink is dropped.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// One message the sink accepted.
#[derive(Debug, Clone)]
pub struct ReceivedMail {
    /// The envelope sender.
    pub mail_from: String,
    /// The envelope recipients.
    pub rcpt_tos: Vec<String>,
    /// Whether the session was upgraded with STARTTLS.
    pub tls: bool,
    /// The message as received (headers and body).
    pub data: String,
}

/// A running SMTP sink.
pub struct SmtpSink {
    /// Its port on 127.0.0.1.
    pub port: u16,
    dir: tempfile::TempDir,
    child: Child,
    _stdin: ChildStdin,
}

impl SmtpSink {
    /// Starts a plain SMTP sink.
    pub fn start() -> SmtpSink {
        SmtpSink::spawn(free_port(), None)
    }

    /// Starts a plain SMTP sink on `port` (e.g. one a server was told about before the sink
    /// was up).
    pub fn start_on(port: u16) -> SmtpSink {
        SmtpSink::spawn(port, None)
    }

    /// Starts a sink that requires STARTTLS with this certificate chain and key (PEM files).
    pub fn start_tls(cert_chain: &Path, key: &Path) -> SmtpSink {
        SmtpSink::spawn(free_port(), Some((cert_chain, key)))
    }

    fn spawn(port: u16, tls: Option<(&Path, &Path)>) -> SmtpSink {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("sink dir: {e}"));
        let mut command = Command::new(crate::interop::python());
        command
            .arg(crate::interop::script("smtp_sink.py"))
            .arg("--port")
            .arg(port.to_string())
            .arg("--dir")
            .arg(dir.path());
        if let Some((cert, key)) = tls {
            command.arg("--cert").arg(cert).arg("--key").arg(key);
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("the SMTP sink starts (is aiosmtpd in the interop virtualenv?): {e}")
            });
        let stdin = child
            .stdin
            .take()
            .unwrap_or_else(|| panic!("the sink has no stdin"));
        let stdout = child
            .stdout
            .take()
            .unwrap_or_else(|| panic!("the sink has no stdout"));
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .unwrap_or_else(|e| panic!("sink output: {e}"));
        assert_eq!(line.trim(), "ready", "the SMTP sink did not start");
        SmtpSink {
            port,
            dir,
            child,
            _stdin: stdin,
        }
    }

    /// Every message accepted so far.
    pub fn messages(&self) -> Vec<ReceivedMail> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .unwrap_or_else(|e| panic!("sink dir: {e}"))
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|path| {
                let text =
                    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("message file: {e}"));
                let v: serde_json::Value =
                    serde_json::from_str(&text).unwrap_or_else(|e| panic!("message JSON: {e}"));
                ReceivedMail {
                    mail_from: v["mail_from"].as_str().unwrap_or_default().to_owned(),
                    rcpt_tos: v["rcpt_tos"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|r| r.as_str().map(str::to_owned))
                                .collect()
                        })
                        .unwrap_or_default(),
                    tls: v["tls"].as_bool().unwrap_or(false),
                    data: v["data"].as_str().unwrap_or_default().to_owned(),
                }
            })
            .collect()
    }

    /// Waits (up to 30 s) until at least `n` messages arrived; returns them.
    pub fn wait_for(&self, n: usize) -> Vec<ReceivedMail> {
        let start = Instant::now();
        loop {
            let got = self.messages();
            if got.len() >= n || start.elapsed() > Duration::from_secs(30) {
                return got;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .unwrap_or_else(|e| panic!("a free port: {e}"))
        .port()
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
