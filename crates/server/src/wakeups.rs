//! One listener per server instance for the store's notifications, fanned out in process to
//! the long polls waiting for them, by key: a phone's inbox poll waits for its device key, a
//! workstation's sign-in poll for its request id.
//!
//! Without it every waiting poll held its own listener: on PostgreSQL one `LISTEN` connection
//! per connected phone, and on either database every notification woke every poll. Here a
//! notification wakes only the polls for its key; a notification without a key (a reconnect or
//! a lagging receiver: something may have been missed) wakes them all, and so does (re)starting
//! the listener. A woken poll re-reads the database: notifications stay hints.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use keybridge_store::{Channel, Store};
use tokio::sync::Notify;

/// The channels fanned out.
const CHANNELS: [Channel; 2] = [Channel::DeviceInbox, Channel::DeviceAnswer];

type Waiters = Mutex<HashMap<(Channel, String), Weak<Notify>>>;

/// The instance's fan-out of store notifications.
#[derive(Debug)]
pub struct Wakeups {
    store: Store,
    waiters: Arc<Waiters>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// A registration for one key: wakes when a notification for it arrives.
#[derive(Debug)]
pub struct Watch {
    notify: Arc<Notify>,
}

impl Watch {
    /// The shared notifier; create its `notified()` future (and `enable` it) before reading
    /// the database, so that a notification in between is not missed.
    pub fn notify(&self) -> &Notify {
        &self.notify
    }
}

fn wake(waiters: &Waiters, channel: Channel, key: Option<&str>) {
    let mut map = waiters.lock().unwrap_or_else(|p| p.into_inner());
    match key {
        Some(key) => {
            if let Some(notify) = map.get(&(channel, key.to_owned())).and_then(Weak::upgrade) {
                notify.notify_waiters();
            }
        }
        None => {
            map.retain(|(c, _), weak| match weak.upgrade() {
                Some(notify) => {
                    if *c == channel {
                        notify.notify_waiters();
                    }
                    true
                }
                None => false,
            });
        }
    }
}

fn wake_all(waiters: &Waiters) {
    for channel in CHANNELS {
        wake(waiters, channel, None);
    }
}

async fn listen(store: Store, waiters: Arc<Waiters>) {
    loop {
        let mut listener = match store.listen(&CHANNELS).await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for inbox notifications; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        // Anything sent before the listener was up is unknown: every poll looks again.
        wake_all(&waiters);
        loop {
            match listener.recv().await {
                Ok(n) if n.payload.is_empty() => wake(&waiters, n.channel, None),
                Ok(n) => wake(&waiters, n.channel, Some(&n.payload)),
                Err(error) => {
                    tracing::warn!(%error, "the inbox notification listener failed; reconnecting");
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

impl Wakeups {
    /// The fan-out for `store`; its listener starts with the first [`Wakeups::watch`].
    pub fn new(store: Store) -> Wakeups {
        Wakeups {
            store,
            waiters: Arc::default(),
            task: Mutex::new(None),
        }
    }

    /// Registers interest in `key` on `channel` (polls for the same key share one notifier).
    /// Call inside the runtime.
    pub fn watch(&self, channel: Channel, key: &str) -> Watch {
        {
            let mut task = self.task.lock().unwrap_or_else(|p| p.into_inner());
            if task.as_ref().is_none_or(|t| t.is_finished()) {
                *task = Some(tokio::spawn(listen(
                    self.store.clone(),
                    self.waiters.clone(),
                )));
            }
        }
        let mut map = self.waiters.lock().unwrap_or_else(|p| p.into_inner());
        let slot = (channel, key.to_owned());
        if let Some(notify) = map.get(&slot).and_then(Weak::upgrade) {
            return Watch { notify };
        }
        // Keep the map small: drop registrations nobody holds any more.
        if map.len() > 1024 && map.len().is_power_of_two() {
            map.retain(|_, weak| weak.strong_count() > 0);
        }
        let notify = Arc::new(Notify::new());
        map.insert(slot, Arc::downgrade(&notify));
        Watch { notify }
    }
}

impl Drop for Wakeups {
    fn drop(&mut self) {
        if let Some(task) = self
            .task
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_wakes_only_its_watchers_and_a_lost_notification_wakes_all() {
        let waiters: Waiters = Mutex::default();
        let ana = Arc::new(Notify::new());
        let ben = Arc::new(Notify::new());
        waiters
            .lock()
            .expect("lock")
            .insert((Channel::DeviceInbox, "ana".into()), Arc::downgrade(&ana));
        waiters
            .lock()
            .expect("lock")
            .insert((Channel::DeviceInbox, "ben".into()), Arc::downgrade(&ben));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let ana_woken = ana.notified();
            let ben_woken = ben.notified();
            tokio::pin!(ana_woken, ben_woken);
            ana_woken.as_mut().enable();
            ben_woken.as_mut().enable();
            wake(&waiters, Channel::DeviceInbox, Some("ana"));
            // Ana's poll wakes; Ben's does not.
            tokio::time::timeout(Duration::from_millis(100), ana_woken)
                .await
                .expect("Ana woken");
            assert!(
                tokio::time::timeout(Duration::from_millis(50), ben_woken.as_mut())
                    .await
                    .is_err()
            );
            // Another channel with Ben's key does not wake him either; a keyless one does.
            wake(&waiters, Channel::DeviceAnswer, Some("ben"));
            assert!(
                tokio::time::timeout(Duration::from_millis(50), ben_woken.as_mut())
                    .await
                    .is_err()
            );
            wake(&waiters, Channel::DeviceInbox, None);
            tokio::time::timeout(Duration::from_millis(100), ben_woken)
                .await
                .expect("Ben woken");
        });
        drop(ana);
        wake_all(&waiters);
        assert_eq!(
            waiters.lock().expect("lock").len(),
            1,
            "the dropped registration was removed"
        );
    }
}
