//! # keybridge-testkit
//!
//! Test harness for keybridge, used only as a dev-dependency: it must never ship in the
//! `keybridge` binary.
//!
//! What it gives a test:
//! - [`TestDatabase`]: a fresh, empty database on either backend. SQLite is a file in a
//!   temporary directory; PostgreSQL is `CREATE DATABASE t_<uuid>` on one throwaway cluster
//!   shared by every test process of the run, dropped again when the handle is dropped.
//! - [`postgres_admin_url`]: the shared cluster itself. It lives under
//!   `<target dir>/keybridge-test-pg/`, is started on first use under an exclusive file lock
//!   (so that nextest's one-process-per-test model starts it once), and is reused while it
//!   is alive. Set `KEYBRIDGE_TEST_DATABASE_URL` to use another server instead.
//! - [`run`] and the [`both_databases!`] macro: run one async test body on a backend, or
//!   generate a `sqlite` and a `postgres` test for each body.
//!
//! - [`loopback_server_config`]: the configuration of a test server on loopback.
//! - [`browser`]: headless Chromium over CDP for console tests, with a virtual WebAuthn
//!   authenticator and screenshots under `<target dir>/console-screenshots/`.
//!
//! A missing PostgreSQL installation fails the test with the package to install; tests are
//! never skipped.
//!
//! The cluster is left running after the run so the next run starts fast; stop it with
//! `pg_ctl -D target/keybridge-test-pg/data stop` (as the `postgres` user when root).

pub mod browser;
pub mod interop;
mod server_config;
pub mod smtp;

pub use server_config::loopback_server_config;

use std::fs::{self, File};
use std::future::Future;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use sqlx::Connection;

/// Environment variable naming an existing PostgreSQL server (an admin URL, e.g.
/// `postgres://postgres@127.0.0.1:5432/postgres`) to use instead of the throwaway cluster.
pub const DATABASE_URL_ENV: &str = "KEYBRIDGE_TEST_DATABASE_URL";

/// Which database engine a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file in a temporary directory.
    Sqlite,
    /// A fresh database on the shared throwaway PostgreSQL cluster.
    Postgres,
}

/// Something went wrong while preparing a test database. Test helpers turn it into a panic
/// with this message, which says what to install or check.
#[derive(Debug, thiserror::Error)]
pub enum TestkitError {
    /// No PostgreSQL server binaries on this machine.
    #[error(
        "PostgreSQL server binaries (initdb, pg_ctl) were not found (looked at `pg_config --bindir` \
         and /usr/lib/postgresql/*/bin): install the Debian package `postgresql` \
         (apt-get install postgresql), or set {DATABASE_URL_ENV} to an existing server"
    )]
    PostgresNotInstalled,
    /// A PostgreSQL tool failed.
    #[error("`{command}` failed: {output}")]
    Command {
        /// The command line that was run.
        command: String,
        /// What it printed.
        output: String,
    },
    /// File system trouble in the cluster directory.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The server did not accept an administrative statement.
    #[error("PostgreSQL at {url} refused `{statement}`: {source}")]
    Sql {
        /// The admin URL (no password in it: the cluster uses trust authentication).
        url: String,
        /// The statement.
        statement: String,
        /// The driver's error.
        source: sqlx::Error,
    },
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> TestkitError {
    let path = path.to_path_buf();
    move |source| TestkitError::Io {
        action,
        path,
        source,
    }
}

/// A fresh, empty database for one test. Dropping it removes the database.
#[derive(Debug)]
pub struct TestDatabase {
    backend: Backend,
    url: String,
    guard: Guard,
}

#[derive(Debug)]
enum Guard {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

impl TestDatabase {
    /// A new database on `backend`. Panics with an explanation when it cannot be made (for
    /// PostgreSQL: the package to install).
    pub fn new(backend: Backend) -> TestDatabase {
        match backend {
            Backend::Sqlite => TestDatabase::sqlite(),
            Backend::Postgres => TestDatabase::postgres(),
        }
    }

    /// A SQLite file `test.db` in a new temporary directory (removed on drop). A file, not
    /// `sqlite::memory:`, because each pooled in-memory connection would get its own database.
    pub fn sqlite() -> TestDatabase {
        let dir = tempfile::Builder::new()
            .prefix("keybridge-test-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temporary directory for SQLite: {e}"));
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display());
        TestDatabase {
            backend: Backend::Sqlite,
            url,
            guard: Guard::Sqlite(dir),
        }
    }

    /// `CREATE DATABASE t_<uuid>` on the shared cluster (started if needed).
    pub fn postgres() -> TestDatabase {
        TestDatabase::try_postgres().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`TestDatabase::postgres`], returning the error instead of panicking.
    pub fn try_postgres() -> Result<TestDatabase, TestkitError> {
        let admin_url = postgres_admin_url()?;
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        admin_sql(&admin_url, &format!("CREATE DATABASE {name}"))?;
        Ok(TestDatabase {
            backend: Backend::Postgres,
            url: replace_database(&admin_url, &name),
            guard: Guard::Postgres { admin_url, name },
        })
    }

    /// The connection URL: `sqlite://…?mode=rwc` or `postgres://…/t_<uuid>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The engine behind this database.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// For SQLite, the database file.
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        match &self.guard {
            Guard::Sqlite(dir) => Some(dir.path().join("test.db")),
            Guard::Postgres { .. } => None,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Guard::Postgres { admin_url, name } = &self.guard {
            // FORCE: a pool the test forgot to close must not keep the database alive.
            if let Err(e) = admin_sql(
                admin_url,
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            ) {
                eprintln!("keybridge-testkit: could not drop test database {name}: {e}");
            }
        }
    }
}

/// Runs `body` on a fresh database of `backend` inside a multi-threaded tokio runtime and
/// drops the database afterwards.
pub fn run<F, Fut>(backend: Backend, body: F)
where
    F: FnOnce(TestDatabase) -> Fut,
    Fut: Future<Output = ()>,
{
    let db = TestDatabase::new(backend);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("cannot start a tokio runtime: {e}"));
    runtime.block_on(body(db));
}

/// Generates, for each `name => body`, a module `name` with two tests, `sqlite` and
/// `postgres`, each calling `body(TestDatabase)` on a fresh database of that backend.
///
/// ```text
/// async fn creates_user(db: keybridge_testkit::TestDatabase) { /* ... */ }
/// keybridge_testkit::both_databases! { creates_user => creates_user; }
/// ```
#[macro_export]
macro_rules! both_databases {
    ($($name:ident => $body:ident;)*) => {$(
        mod $name {
            #[test]
            fn sqlite() {
                $crate::run($crate::Backend::Sqlite, super::$body)
            }
            #[test]
            fn postgres() {
                $crate::run($crate::Backend::Postgres, super::$body)
            }
        }
    )*};
}

/// The admin URL (database `postgres`) of the shared test cluster, starting it when no live
/// one exists, or the URL in `KEYBRIDGE_TEST_DATABASE_URL`.
pub fn postgres_admin_url() -> Result<String, TestkitError> {
    static URL: OnceLock<String> = OnceLock::new();
    if let Some(url) = URL.get() {
        return Ok(url.clone());
    }
    let url = match std::env::var(DATABASE_URL_ENV) {
        Ok(url) if !url.is_empty() => url,
        _ => start_or_reuse_cluster()?,
    };
    Ok(URL.get_or_init(|| url).clone())
}

/// The workspace's cargo target directory: `CARGO_TARGET_DIR`, else the ancestor of the running
/// test binary that holds `CACHEDIR.TAG`, else `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1) {
            if dir.join("CACHEDIR.TAG").is_file() {
                return dir.to_path_buf();
            }
        }
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target")
}

fn replace_database(admin_url: &str, name: &str) -> String {
    // The admin URL is ours or the user's; keep everything but the path.
    let (base, query) = match admin_url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (admin_url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_part = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{host_part}/{name}?{q}"),
        None => format!("{host_part}/{name}"),
    }
}

/// Runs one statement on the admin database. Uses its own thread and runtime so that it works
/// from synchronous code and from `Drop` inside an async test.
fn admin_sql(admin_url: &str, statement: &str) -> Result<(), TestkitError> {
    let url = admin_url.to_string();
    let sql = statement.to_string();
    let result = std::thread::spawn(move || -> Result<(), sqlx::Error> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(sqlx::Error::Io)?;
        runtime.block_on(async {
            let mut conn = sqlx::PgConnection::connect(&url).await?;
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut conn)
                .await?;
            conn.close().await
        })
    })
    .join()
    .unwrap_or_else(|_| Err(sqlx::Error::PoolClosed));
    result.map_err(|source| TestkitError::Sql {
        url: admin_url.to_string(),
        statement: statement.to_string(),
        source,
    })
}

fn running_as_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// The directory holding `initdb` and `pg_ctl`.
pub fn postgres_bin_dir() -> Result<PathBuf, TestkitError> {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").is_file() && dir.join("pg_ctl").is_file() {
            return Ok(dir);
        }
    }
    let mut candidates: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    candidates.sort();
    candidates
        .pop()
        .map(|(_, bin)| bin)
        .ok_or(TestkitError::PostgresNotInstalled)
}

/// Runs a PostgreSQL tool, as the `postgres` user when we are root (initdb and pg_ctl refuse
/// to run as root).
fn pg_tool(bin: &Path, tool: &str, args: &[&str], as_root: bool) -> Result<(), TestkitError> {
    let program = bin.join(tool);
    let mut command = if as_root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(&program);
        c
    } else {
        Command::new(&program)
    };
    command.args(args);
    let line = format!("{} {}", program.display(), args.join(" "));
    // `-l LOG` keeps the server off our stdout, so `output()` returns.
    let out = command.output().map_err(|e| TestkitError::Command {
        command: line.clone(),
        output: e.to_string(),
    })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(TestkitError::Command {
            command: line,
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        })
    }
}

fn free_port() -> Result<u16, TestkitError> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .map_err(io_err("bind a free port on", Path::new("127.0.0.1")))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(io_err("read the port of", Path::new("127.0.0.1")))
}

fn port_accepts(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(500)).is_ok()
}

fn start_or_reuse_cluster() -> Result<String, TestkitError> {
    let root = target_dir().join("keybridge-test-pg");
    fs::create_dir_all(&root).map_err(io_err("create", &root))?;
    let lock_path = target_dir().join("keybridge-test-pg.lock");
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io_err("open", &lock_path))?;
    // Exclusive: only one test process checks and starts the cluster at a time.
    lock.lock().map_err(io_err("lock", &lock_path))?;

    let bin = postgres_bin_dir()?;
    let as_root = running_as_root();
    let data = root.join("data");
    let port_file = root.join("port");
    let data_s = data.display().to_string();

    if let Ok(text) = fs::read_to_string(&port_file)
        && let Ok(port) = text.trim().parse::<u16>()
        && data.join("postmaster.pid").is_file()
        && pg_tool(&bin, "pg_ctl", &["-D", &data_s, "status"], as_root).is_ok()
        && port_accepts(port)
    {
        return Ok(admin_url(port));
    }

    if as_root {
        let out = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&root)
            .output()
            .map_err(io_err("chown", &root))?;
        if !out.status.success() {
            return Err(TestkitError::Command {
                command: format!("chown -R postgres:postgres {}", root.display()),
                output: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
    }
    let init = || -> Result<(), TestkitError> {
        if data.exists() {
            fs::remove_dir_all(&data).map_err(io_err("remove the old cluster at", &data))?;
        }
        pg_tool(
            &bin,
            "initdb",
            &[
                "-D",
                &data_s,
                "-A",
                "trust",
                "--no-sync",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
            ],
            as_root,
        )
    };
    let start = |port: u16| -> Result<(), TestkitError> {
        let log = root.join("log").display().to_string();
        let server_options = format!(
            "-F -p {port} -k {} -c listen_addresses=127.0.0.1 -c max_connections=400",
            root.display()
        );
        pg_tool(
            &bin,
            "pg_ctl",
            &[
                "-D",
                &data_s,
                "-l",
                &log,
                "-w",
                "-o",
                &server_options,
                "start",
            ],
            as_root,
        )
    };
    if !data.join("PG_VERSION").is_file() {
        init()?;
    }
    // A stale server (e.g. its port was taken) is stopped before starting on a new port.
    let _ = pg_tool(
        &bin,
        "pg_ctl",
        &["-D", &data_s, "-m", "immediate", "-w", "stop"],
        as_root,
    );
    let port = free_port()?;
    if start(port).is_err() {
        // A cluster from another PostgreSQL version or a damaged one: it only ever holds
        // throwaway test databases, so make a new one.
        init()?;
        start(port)?;
    }
    let mut f = File::create(&port_file).map_err(io_err("write", &port_file))?;
    writeln!(f, "{port}").map_err(io_err("write", &port_file))?;
    Ok(admin_url(port))
}

fn admin_url(port: u16) -> String {
    format!("postgres://postgres@127.0.0.1:{port}/postgres")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_name_replaces_the_path_only() {
        assert_eq!(
            replace_database("postgres://postgres@127.0.0.1:5/postgres", "t_1"),
            "postgres://postgres@127.0.0.1:5/t_1"
        );
        assert_eq!(
            replace_database("postgres://u:p@h/db?sslmode=disable", "t_2"),
            "postgres://u:p@h/t_2?sslmode=disable"
        );
        assert_eq!(
            replace_database("postgres://h:1", "t_3"),
            "postgres://h:1/t_3"
        );
    }

    #[test]
    fn a_missing_postgres_names_the_package_to_install() {
        let message = TestkitError::PostgresNotInstalled.to_string();
        assert!(message.contains("apt-get install postgresql"), "{message}");
        assert!(message.contains(DATABASE_URL_ENV), "{message}");
    }

    #[test]
    fn sqlite_databases_are_files_that_vanish_on_drop() {
        let db = TestDatabase::sqlite();
        let path = db.sqlite_path().unwrap();
        assert!(db.url().starts_with("sqlite://") && db.url().ends_with("test.db?mode=rwc"));
        assert_eq!(db.backend(), Backend::Sqlite);
        let dir = path.parent().unwrap().to_path_buf();
        assert!(dir.is_dir());
        drop(db);
        assert!(!dir.exists());
    }
}
