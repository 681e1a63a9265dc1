-- One row per user a bulk invitation job handled: written in the transaction that issues the
-- invite, so a job run again after a crash skips the users it already handled. The link is
-- sealed (secrets at rest) because only its hash is kept in `invites`.
CREATE TABLE bulk_invite_results (
    job_id TEXT NOT NULL,
    subject TEXT NOT NULL,
    address TEXT NOT NULL,
    position INTEGER NOT NULL,
    user_id TEXT,
    invite_id TEXT,
    outcome TEXT NOT NULL,
    reason TEXT,
    link_enc BLOB,
    expires_at INTEGER,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (job_id, subject)
);
