//! The state snapshot: the tenant lives in memory and is written to `state.json` in the data
//! directory (temporary file, fsync, rename: a crash never leaves a torn file) shortly after each
//! change and on shutdown. A `kill -9` loses at most the changes of the last debounce interval
//! (300 ms, or three times the last save's duration when that is longer).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::error::StartError;
use crate::model::Tenant;
use crate::sim::Sim;

/// Name of the snapshot file.
pub(crate) const STATE_FILE: &str = "state.json";
/// How long after a change the snapshot is written (changes in between are coalesced).
pub(crate) const DEBOUNCE: Duration = Duration::from_millis(300);

/// Reads the snapshot, if there is one.
pub(crate) fn load(dir: &Path) -> Result<Option<Tenant>, StartError> {
    let path = dir.join(STATE_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(StartError::DataDir { path, source }),
    };
    let mut tenant: Tenant = serde_json::from_slice(&bytes).map_err(|e| StartError::State {
        path: path.clone(),
        detail: e.to_string(),
    })?;
    tenant.reindex();
    Ok(Some(tenant))
}

/// Writes serialised state atomically.
pub(crate) fn save_bytes(dir: &Path, bytes: &[u8]) -> Result<(), StartError> {
    use std::io::Write as _;
    let path = dir.join(STATE_FILE);
    // Unique per process and write, so another entra-sim on the same directory (a mistake,
    // but a possible one) cannot rename this one's half-written file.
    let tmp: PathBuf = dir.join(format!(
        "{STATE_FILE}.{}.{}.tmp",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    let io = |source| StartError::DataDir {
        path: tmp.clone(),
        source,
    };
    // The state holds the control token and the app's client secrets: owner-only from the
    // moment the file exists (the rename keeps the mode).
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp).map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)?;
    drop(file);
    std::fs::rename(&tmp, &path).map_err(|source| {
        let _ = std::fs::remove_file(&tmp);
        StartError::DataDir { path, source }
    })
}

/// One save at a time: the debounced writer and the shutdown save would otherwise race on
/// the temporary file, and an older snapshot could be renamed over a newer one. Taking the
/// lock before reading the tenant makes the last save to start also the newest.
static SAVE_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Serialises the tenant under a read lock (no copy of 100k users) and writes it.
pub(crate) fn save_now(sim: &Sim) -> Result<(), StartError> {
    let _one_at_a_time = SAVE_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let bytes = {
        let tenant = sim.tenant.read().unwrap_or_else(|p| p.into_inner());
        serde_json::to_vec(&*tenant).map_err(|e| StartError::State {
            path: sim.data_dir.join(STATE_FILE),
            detail: e.to_string(),
        })?
    };
    save_bytes(&sim.data_dir, &bytes)
}

/// Writes the snapshot after changes, debounced, until the sim shuts down.
pub(crate) async fn writer(sim: Arc<Sim>) {
    let mut pause = Duration::ZERO;
    loop {
        sim.dirty.notified().await;
        // A large tenant takes a while to serialise (about 0.3 s for 100,000 users), and
        // writers wait meanwhile: keep saving to at most a quarter of the time.
        tokio::time::sleep(DEBOUNCE.max(pause)).await;
        let sim2 = Arc::clone(&sim);
        let started = std::time::Instant::now();
        let result = tokio::task::spawn_blocking(move || save_now(&sim2)).await;
        pause = started.elapsed() * 3;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!("entra-sim could not save its state: {e}"),
            Err(e) => tracing::error!("entra-sim's state writer stopped: {e}"),
        }
    }
}
