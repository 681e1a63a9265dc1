//! The encrypted file store: persistence, failure modes, and crashes in a second process.
//!
//! Crash tests re-run this test binary as a child (`store::child_process` with
//! `KEYBRIDGE_IT_CHILD=<mode>`), then kill it or let an armed crash point abort it.

use std::fs;
use std::io::{BufReader, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use keybridge_authenticator::{
    AccountSelector, Authenticator, CredentialStore, FileStore, KdfParams, LOCK_FILE_NAME,
    MakeCredentialSettings, RequestOptions, STORE_FILE_NAME, StoreError, b64url,
};

use crate::support::*;

const CHILD_ENV: &str = "KEYBRIDGE_IT_CHILD";
const STORE_ENV: &str = "KEYBRIDGE_IT_STORE";

fn request() -> RequestOptions {
    RequestOptions::from_json(&request_options(&b64url(&rand_bytes(32)), &[]).to_string())
        .expect("options")
}

/// A store in a fresh temp dir holding one account for ana; returns (tempdir, store dir).
fn store_with_one_account() -> (tempfile::TempDir, PathBuf) {
    let temp = tempfile::tempdir().expect("tempdir");
    let dir = temp.path().join("device");
    let store = create_file_store(&dir, Some(organisation().into_identity()));
    let mut phone = Authenticator::new(store, verified as Approver);
    let (options, _) = graph_options("ana@contoso.com", &rand_bytes(48));
    phone
        .make_credential(
            &parse_creation(&options),
            ORIGIN,
            &MakeCredentialSettings::default(),
        )
        .expect("created");
    (temp, dir)
}

fn open(dir: &Path) -> Authenticator<FileStore, Approver> {
    Authenticator::new(
        FileStore::open(dir, PIN).expect("store opens"),
        verified as Approver,
    )
}

fn counter(dir: &Path) -> u32 {
    FileStore::open(dir, PIN)
        .expect("store opens")
        .credentials()[0]
        .sign_count
}

/// The body of the child processes the tests below start; without `KEYBRIDGE_IT_CHILD` (a
/// normal test run) it returns at once.
#[test]
fn child_process() {
    let Ok(mode) = std::env::var(CHILD_ENV) else {
        return;
    };
    let dir = PathBuf::from(std::env::var(STORE_ENV).expect("store dir"));
    let mut out = std::io::stdout();
    match mode.as_str() {
        "hold-lock" => {
            let _store = FileStore::open(&dir, PIN).expect("child opens");
            writeln!(out, "CHILD locked")
                .and_then(|()| out.flush())
                .expect("stdout");
            std::thread::sleep(Duration::from_secs(60));
        }
        "assert-then-hang" => {
            let mut phone = open(&dir);
            let assertion = phone
                .get_assertion(&request(), ORIGIN, None)
                .expect("assertion");
            // The counter is on disk; the assertion is never printed: the parent kills us now.
            writeln!(out, "CHILD persisted {}", assertion.sign_count)
                .and_then(|()| out.flush())
                .expect("stdout");
            std::thread::sleep(Duration::from_secs(60));
        }
        "assert-loop" => {
            let mut phone = open(&dir);
            loop {
                let assertion = phone
                    .get_assertion(&request(), ORIGIN, None)
                    .expect("assertion");
                writeln!(out, "CHILD signed {}", assertion.sign_count)
                    .and_then(|()| out.flush())
                    .expect("stdout");
            }
        }
        "crash-mid-write" => {
            let mut phone = open(&dir);
            // The armed crash point aborts inside the store write.
            let _ = phone.get_assertion(&request(), ORIGIN, None);
            writeln!(out, "CHILD survived")
                .and_then(|()| out.flush())
                .expect("stdout");
        }
        other => panic!("unknown child mode {other}"),
    }
}

fn spawn_child(mode: &str, dir: &Path, fault: Option<&str>) -> Child {
    let mut command = Command::new(std::env::current_exe().expect("test binary"));
    command
        .args([
            "--exact",
            "store::child_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, mode)
        .env(STORE_ENV, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(fault) = fault {
        command.env(keybridge_authenticator::fault::FAULT_ENV, fault);
    }
    command.spawn().expect("child starts")
}

/// Reads the child's stdout until a line containing `prefix`; returns what follows it.
fn wait_for(reader: &mut impl std::io::BufRead, prefix: &str) -> String {
    let mut line = String::new();
    loop {
        line.clear();
        let read = reader.read_line(&mut line).expect("child stdout");
        assert!(read > 0, "the child ended before printing {prefix:?}");
        // libtest's own "test ... " text may share the line, so look anywhere in it.
        if let Some(at) = line.find(prefix) {
            return line[at + prefix.len()..].trim().to_owned();
        }
    }
}

fn mode_of(path: &Path) -> u32 {
    fs::metadata(path).expect("metadata").permissions().mode() & 0o777
}

#[test]
fn accounts_and_counters_survive_reopening_with_private_permissions() {
    let temp = tempfile::tempdir().expect("tempdir");
    let dir = temp.path().join("nested/device");
    let store = create_file_store(&dir, Some(organisation().into_identity()));
    let mut phone = Authenticator::new(store, verified as Approver);
    let mut ids = Vec::new();
    for (user, tenant) in [
        ("ana@contoso.com", "contoso"),
        ("ana@fabrikam.com", "fabrikam"),
    ] {
        let (options, _) = graph_options(user, &rand_bytes(48));
        let settings = MakeCredentialSettings {
            tenant: Some(tenant.into()),
            ..Default::default()
        };
        ids.push(
            phone
                .make_credential(&parse_creation(&options), ORIGIN, &settings)
                .expect("created")
                .credential_id,
        );
    }
    let contoso = AccountSelector::parse("ana@contoso.com");
    for expected in 1..=3 {
        assert_eq!(
            phone
                .get_assertion(&request(), ORIGIN, Some(&contoso))
                .expect("signed")
                .sign_count,
            expected
        );
    }
    drop(phone);

    assert_eq!(mode_of(&dir), 0o700);
    assert_eq!(mode_of(&dir.join(STORE_FILE_NAME)), 0o600);
    assert_eq!(mode_of(&dir.join(LOCK_FILE_NAME)), 0o600);
    let leftovers: Vec<_> = fs::read_dir(&dir)
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(
        leftovers.len(),
        2,
        "only the store and lock files: {leftovers:?}"
    );

    let store = FileStore::open(&dir, PIN).expect("reopens");
    let summaries: Vec<_> = store.credentials().iter().map(|c| c.summary()).collect();
    assert_eq!(summaries.len(), 2);
    assert_eq!(summaries[0].credential_id, b64url(&ids[0]));
    assert_eq!(summaries[0].tenant.as_deref(), Some("contoso"));
    assert_eq!(summaries[0].sign_count, 3);
    assert_eq!(summaries[1].tenant.as_deref(), Some("fabrikam"));
    assert_eq!(summaries[1].sign_count, 0);
    assert!(summaries[0].hmac_secret);
    assert!(store.attestation().is_some());
    let mut phone = Authenticator::new(store, verified as Approver);
    assert_eq!(
        phone
            .get_assertion(&request(), ORIGIN, Some(&contoso))
            .expect("signed")
            .sign_count,
        4
    );

    // No secret appears in the store's or a credential's Debug output.
    let shown = format!("{:?} {:?}", phone.store(), phone.store().credentials());
    assert!(
        shown.contains("<redacted>") && !shown.contains("scalar"),
        "{shown}"
    );
}

#[test]
fn wrong_pin_is_reported_as_such_and_changes_nothing() {
    let (_temp, dir) = store_with_one_account();
    let before = fs::read(dir.join(STORE_FILE_NAME)).expect("read");
    let error = FileStore::open(&dir, "000000").expect_err("wrong PIN");
    assert!(matches!(error, StoreError::WrongPin { .. }), "{error}");
    assert!(error.to_string().contains("wrong PIN"), "{error}");
    assert_eq!(fs::read(dir.join(STORE_FILE_NAME)).expect("read"), before);
    assert_eq!(counter(&dir), 0);
}

#[test]
fn damaged_files_are_reported_as_damage_not_as_a_wrong_pin() {
    let (_temp, dir) = store_with_one_account();
    let path = dir.join(STORE_FILE_NAME);
    let original = fs::read(&path).expect("read");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "flipped byte in the contents",
            {
                let mut bytes = original.clone();
                let middle = bytes.len() / 2 + 60;
                bytes[middle] ^= 0x01;
                bytes
            },
            "authentication check",
        ),
        (
            "flipped byte in the header",
            {
                let mut bytes = original.clone();
                bytes[30] ^= 0x01;
                bytes
            },
            "header checksum",
        ),
        (
            "truncated contents",
            original[..original.len() - 10].to_vec(),
            "truncated",
        ),
        ("truncated header", original[..50].to_vec(), "truncated"),
        (
            "bad magic",
            {
                let mut bytes = original.clone();
                bytes[0] = b'X';
                bytes
            },
            "bad magic",
        ),
        ("empty file", Vec::new(), "bad magic"),
    ];
    for (name, bytes, needle) in cases {
        fs::write(&path, &bytes).expect("write damaged file");
        let error = FileStore::open(&dir, PIN).expect_err(name);
        match &error {
            StoreError::Corrupt { reason, .. } => {
                assert!(reason.contains(needle), "{name}: {reason}")
            }
            other => panic!("{name}: {other}"),
        }
        assert!(error.to_string().contains("damaged"), "{error}");
        assert_eq!(
            fs::read(&path).expect("read"),
            bytes,
            "{name}: the damaged file is left as it was"
        );
    }
    // Putting the original back loses nothing.
    fs::write(&path, &original).expect("restore");
    let store = FileStore::open(&dir, PIN).expect("opens again");
    assert_eq!(store.credentials().len(), 1);
}

#[test]
fn a_second_process_is_locked_out_with_its_pid() {
    let (_temp, dir) = store_with_one_account();
    let mut child = spawn_child("hold-lock", &dir, None);
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    wait_for(&mut stdout, "CHILD locked");
    let error = FileStore::open(&dir, PIN).expect_err("locked");
    match &error {
        StoreError::InUse { pid, .. } => assert_eq!(*pid, Some(child.id())),
        other => panic!("{other}"),
    }
    assert!(
        error.to_string().contains(&format!(
            "is in use by another process (pid {})",
            child.id()
        )),
        "{error}"
    );
    child.kill().expect("kill");
    child.wait().expect("reaped");
    // The kernel drops the lock with the process; nothing was lost.
    assert_eq!(counter(&dir), 0);
}

#[test]
fn counter_never_goes_back_after_a_kill_between_persisting_and_printing() {
    let (_temp, dir) = store_with_one_account();
    let mut child = spawn_child("assert-then-hang", &dir, None);
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let persisted: u32 = wait_for(&mut stdout, "CHILD persisted")
        .parse()
        .expect("a number");
    assert_eq!(persisted, 1);
    child.kill().expect("kill");
    child.wait().expect("reaped");

    // The unreleased assertion used 1; the next one must not reuse it.
    assert_eq!(counter(&dir), 1);
    let mut phone = open(&dir);
    assert_eq!(
        phone
            .get_assertion(&request(), ORIGIN, None)
            .expect("signed")
            .sign_count,
        2
    );
}

#[test]
fn a_crash_half_way_through_a_write_leaves_a_working_store() {
    let (_temp, dir) = store_with_one_account();
    {
        let mut phone = open(&dir);
        for _ in 0..2 {
            phone
                .get_assertion(&request(), ORIGIN, None)
                .expect("signed");
        }
    }
    let before = fs::read(dir.join(STORE_FILE_NAME)).expect("read");
    let child = spawn_child("crash-mid-write", &dir, Some("partial-write"));
    let output = child.wait_with_output().expect("child ends");
    assert!(
        !output.status.success(),
        "the crash point must abort the child"
    );
    assert!(!String::from_utf8_lossy(&output.stdout).contains("CHILD survived"));
    let temp_files: Vec<_> = fs::read_dir(&dir)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("keystore.kbs.tmp-"))
        .collect();
    assert_eq!(
        temp_files.len(),
        1,
        "the half-written temp file is left behind"
    );
    assert_eq!(
        fs::read(dir.join(STORE_FILE_NAME)).expect("read"),
        before,
        "the store file is untouched"
    );

    // The store opens, cleans up, and the counter continues above every released value (2).
    let mut phone = open(&dir);
    assert_eq!(phone.store().credentials()[0].sign_count, 2);
    assert_eq!(
        phone
            .get_assertion(&request(), ORIGIN, None)
            .expect("signed")
            .sign_count,
        3
    );
    let remaining = fs::read_dir(&dir).expect("list").count();
    assert_eq!(remaining, 2, "temp file removed");
}

#[test]
fn kills_at_arbitrary_moments_never_move_the_counter_back() {
    let (_temp, dir) = store_with_one_account();
    let mut highest_released = 0u32;
    for round in 0..6u32 {
        let mut child = spawn_child("assert-loop", &dir, None);
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        for _ in 0..=round % 3 {
            let count: u32 = wait_for(&mut stdout, "CHILD signed")
                .parse()
                .expect("a number");
            assert!(
                count > highest_released,
                "counter went back: {count} after {highest_released}"
            );
            highest_released = count;
        }
        child.kill().expect("kill");
        child.wait().expect("reaped");
        let stored = counter(&dir);
        assert!(
            stored >= highest_released,
            "stored {stored} < released {highest_released}"
        );
        let mut phone = open(&dir);
        let next = phone
            .get_assertion(&request(), ORIGIN, None)
            .expect("signed")
            .sign_count;
        assert!(next > highest_released);
        highest_released = next;
    }
}

#[test]
fn creation_and_opening_errors_say_what_to_do() {
    let temp = tempfile::tempdir().expect("tempdir");
    let dir = temp.path().join("device");
    let error = FileStore::create(&dir, "12345", None, KdfParams::insecure_for_tests())
        .expect_err("short PIN");
    assert!(
        matches!(error, StoreError::PinTooShort { min: 6, len: 5 }),
        "{error}"
    );
    let error = FileStore::open(&dir, PIN).expect_err("no store");
    assert!(matches!(error, StoreError::NotFound { .. }));
    assert!(
        error.to_string().contains("keybridge device init --store"),
        "{error}"
    );

    drop(create_file_store(&dir, None));
    let error =
        FileStore::create(&dir, PIN, None, KdfParams::insecure_for_tests()).expect_err("exists");
    assert!(matches!(error, StoreError::AlreadyExists { .. }), "{error}");
    assert!(
        FileStore::open(&dir, PIN)
            .expect("still opens")
            .credentials()
            .is_empty()
    );

    fs::set_permissions(dir.join(STORE_FILE_NAME), fs::Permissions::from_mode(0o644))
        .expect("chmod");
    let error = FileStore::open(&dir, PIN).expect_err("readable by others");
    assert!(
        matches!(error, StoreError::InsecurePermissions { mode: 0o644, .. }),
        "{error}"
    );
    assert!(error.to_string().contains("chmod go-rwx"), "{error}");
}

/// A store directory others can write to lets them replace `keystore.lock` (two processes
/// then both "hold" the lock and hand out the same counter) or swap store files, so it is
/// refused like a store file others can read.
#[test]
fn a_store_directory_opened_up_to_others_is_refused() {
    let (_temp, dir) = store_with_one_account();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).expect("chmod");
    let error = FileStore::open(&dir, PIN).expect_err("directory writable by others");
    assert!(
        matches!(&error, StoreError::InsecurePermissions { path, mode: 0o777 } if *path == dir),
        "{error}"
    );
    assert!(error.to_string().contains("chmod go-rwx"), "{error}");
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).expect("chmod back");
    assert_eq!(
        counter(&dir),
        0,
        "the store opens again once the directory is private"
    );
}
