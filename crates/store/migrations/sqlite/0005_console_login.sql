-- Console passkey login: the backup-eligibility flag a console passkey was registered with
-- (every assertion must carry the same one), and the WebAuthn challenges the console issued,
-- each usable once before it expires whichever server instance answers.

ALTER TABLE admin_passkeys ADD COLUMN backup_eligible INTEGER NOT NULL DEFAULT 0
    CHECK (backup_eligible IN (0, 1));

CREATE TABLE console_challenges (
    id_hash TEXT PRIMARY KEY,
    purpose TEXT NOT NULL CHECK (purpose IN ('login', 'enrol')),
    admin_id TEXT REFERENCES admins (id) ON DELETE CASCADE,
    challenge TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX console_challenges_by_expiry ON console_challenges (expires_at);
