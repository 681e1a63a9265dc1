//! Wake-ups between server instances: a new job, a new request in a phone's inbox, a phone's
//! answer that a workstation waits for.
//!
//! On PostgreSQL this is `LISTEN`/`NOTIFY`, so an instance learns at once about work another
//! instance created (a notification sent inside a transaction is delivered at commit). On
//! SQLite, where one process owns the database, it is an in-process broadcast.
//!
//! On both, a notification sent inside a transaction is delivered when it commits (and not at
//! all when it rolls back), so a woken listener finds the row.
//!
//! A notification is only a hint to look again: listeners must re-read the database, and
//! must still poll now and then, because notifications can be lost (a reconnect, a lagging
//! receiver).

use tokio::sync::broadcast;

use crate::db::{Dialect, Store};
use crate::error::Result;

/// What a notification is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// A job was enqueued; the payload is its queue.
    Jobs,
    /// A request was put in a device's inbox; the payload is the device key.
    DeviceInbox,
    /// A device answered a request (or it was cancelled); the payload is the request id.
    DeviceAnswer,
}

impl Channel {
    /// The PostgreSQL channel name.
    pub fn name(self) -> &'static str {
        match self {
            Channel::Jobs => "keybridge_jobs",
            Channel::DeviceInbox => "keybridge_device_inbox",
            Channel::DeviceAnswer => "keybridge_device_answer",
        }
    }

    fn from_name(name: &str) -> Option<Channel> {
        match name {
            "keybridge_jobs" => Some(Channel::Jobs),
            "keybridge_device_inbox" => Some(Channel::DeviceInbox),
            "keybridge_device_answer" => Some(Channel::DeviceAnswer),
            _ => None,
        }
    }
}

/// One wake-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// The channel.
    pub channel: Channel,
    /// The payload; empty when the listener only knows that it may have missed something
    /// (reconnect, lag): look at everything again.
    pub payload: String,
}

/// Receives notifications on the channels it was opened for.
pub struct Listener {
    inner: ListenerInner,
}

enum ListenerInner {
    Postgres {
        listener: Box<sqlx::postgres::PgListener>,
        channels: Vec<Channel>,
    },
    Local {
        rx: broadcast::Receiver<Notification>,
        channels: Vec<Channel>,
    },
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener").finish_non_exhaustive()
    }
}

impl Listener {
    /// Waits for the next notification.
    pub async fn recv(&mut self) -> Result<Notification> {
        match &mut self.inner {
            ListenerInner::Postgres { listener, channels } => loop {
                match listener.try_recv().await? {
                    Some(n) => {
                        if let Some(channel) = Channel::from_name(n.channel()) {
                            return Ok(Notification {
                                channel,
                                payload: n.payload().to_string(),
                            });
                        }
                    }
                    // The connection dropped and was re-established: anything may have
                    // happened meanwhile.
                    None => {
                        return Ok(Notification {
                            channel: channels[0],
                            payload: String::new(),
                        });
                    }
                }
            },
            ListenerInner::Local { rx, channels } => loop {
                match rx.recv().await {
                    Ok(n) if channels.contains(&n.channel) => return Ok(n),
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        return Ok(Notification {
                            channel: channels[0],
                            payload: String::new(),
                        });
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        return Err(sqlx::Error::PoolClosed.into());
                    }
                }
            },
        }
    }
}

impl Store {
    /// Sends a notification (see the module doc).
    pub async fn notify(&self, channel: Channel, payload: &str) -> Result<()> {
        notify_on(&mut self.db(), channel, payload).await
    }

    /// Opens a listener for `channels` (at least one).
    pub async fn listen(&self, channels: &[Channel]) -> Result<Listener> {
        let channels = if channels.is_empty() {
            vec![Channel::Jobs]
        } else {
            channels.to_vec()
        };
        let inner = match self.dialect() {
            Dialect::Postgres => {
                let mut listener = sqlx::postgres::PgListener::connect(self.connect_url()).await?;
                listener
                    .listen_all(channels.iter().map(|c| c.name()))
                    .await?;
                ListenerInner::Postgres {
                    listener: Box::new(listener),
                    channels,
                }
            }
            Dialect::Sqlite => ListenerInner::Local {
                rx: self.local_notifications().subscribe(),
                channels,
            },
        };
        Ok(Listener { inner })
    }
}

/// Sends through the repository's connection, so that a notification sent in a transaction is
/// delivered when it commits: by PostgreSQL, or by [`crate::StoreTx::commit`] on SQLite.
pub(crate) async fn notify_on(
    db: &mut crate::db::Db<'_>,
    channel: Channel,
    payload: &str,
) -> Result<()> {
    match db.dialect() {
        Dialect::Postgres => {
            let mut conn = db.conn().await?;
            // Wrapped so that the row has a type `Any` decodes (pg_notify returns void).
            sqlx::query("SELECT 1 AS sent FROM (SELECT pg_notify($1, $2)) AS n")
                .bind(channel.name())
                .bind(payload)
                .execute(&mut *conn)
                .await?;
        }
        Dialect::Sqlite => {
            let notification = Notification {
                channel,
                payload: payload.to_string(),
            };
            match db.pending_notifications() {
                Some(pending) => pending.push(notification),
                // No receiver is not an error: nobody is listening.
                None => {
                    let _ = db.store.local_notifications().send(notification);
                }
            }
        }
    }
    Ok(())
}
