-- The phones' inbox (provisioning and sign-in approval requests), shared by every server
-- instance, and the install tokens of the desktop-client download.

CREATE TABLE device_requests (
    id TEXT PRIMARY KEY,
    phone_id TEXT NOT NULL REFERENCES phones (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    device_key TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('provision', 'sign_in')),
    payload TEXT NOT NULL,
    workstation_id TEXT REFERENCES workstations (id) ON DELETE CASCADE,
    status TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'approved', 'denied', 'expired', 'cancelled')),
    response TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    delivered_at BIGINT,
    answered_at BIGINT
);
CREATE INDEX device_requests_inbox ON device_requests (device_key, status, created_at);
CREATE INDEX device_requests_by_expiry ON device_requests (status, expires_at);

CREATE TABLE install_tokens (
    id TEXT PRIMARY KEY,
    integration_id TEXT NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT,
    uses BIGINT NOT NULL DEFAULT 0,
    last_used_at BIGINT
);
CREATE UNIQUE INDEX install_tokens_token_hash_key ON install_tokens (token_hash);
