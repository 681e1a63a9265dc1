-- keybridge schema, version 1.
-- Conventions (shared with migrations/sqlite): ids and JSON are TEXT, instants are BIGINT
-- unix milliseconds, booleans are BIGINT 0/1, ciphertexts are BYTEA. Unique constraints are
-- named indexes `<table>_<field>_key` so that a violation can name the field.

CREATE TABLE integrations (
    id TEXT PRIMARY KEY,
    internal_id TEXT NOT NULL,
    name TEXT NOT NULL,
    tenant_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    credential_kind TEXT NOT NULL CHECK (credential_kind IN ('client_secret', 'certificate')),
    client_secret_enc BYTEA,
    certificate_pem TEXT,
    private_key_enc BYTEA,
    native_login_enabled BIGINT NOT NULL DEFAULT 0 CHECK (native_login_enabled IN (0, 1)),
    restrict_domains TEXT NOT NULL DEFAULT '[]',
    support_email TEXT,
    group_eligible_id TEXT,
    group_paired_keybridge_id TEXT,
    group_paired_entra_id TEXT,
    group_not_enrolled_id TEXT,
    delta_link TEXT,
    last_sync_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX integrations_name_key ON integrations (name);
CREATE UNIQUE INDEX integrations_internal_id_key ON integrations (internal_id);

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    integration_id TEXT NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    entra_object_id TEXT NOT NULL,
    upn TEXT NOT NULL,
    email TEXT,
    display_name TEXT NOT NULL,
    display_name_sort TEXT NOT NULL,
    search_text TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'paired_with_keybridge', 'paired_with_entra')),
    unpaired BIGINT NOT NULL DEFAULT 0 CHECK (unpaired IN (0, 1)),
    entra_status TEXT NOT NULL CHECK (entra_status IN ('active', 'disabled', 'not_found')),
    last_active_at BIGINT NOT NULL DEFAULT 0,
    status_checked_at BIGINT,
    provisioning_error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX users_entra_object_id_key ON users (integration_id, entra_object_id);
-- Keyset pagination: one index per (tab, sort) so a page is an index range scan.
CREATE INDEX users_by_state_upn ON users (integration_id, state, upn, id);
CREATE INDEX users_by_state_name ON users (integration_id, state, display_name_sort, id);
CREATE INDEX users_by_state_active ON users (integration_id, state, last_active_at, id);
CREATE INDEX users_by_upn ON users (integration_id, upn, id);
CREATE INDEX users_by_name ON users (integration_id, display_name_sort, id);
CREATE INDEX users_by_active ON users (integration_id, last_active_at, id);

CREATE TABLE phones (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    device_key TEXT NOT NULL,
    name TEXT NOT NULL,
    model TEXT NOT NULL,
    os TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT
);
CREATE UNIQUE INDEX phones_device_key_key ON phones (user_id, device_key);
CREATE INDEX phones_by_device_key ON phones (device_key);

CREATE TABLE credentials (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    phone_id TEXT NOT NULL REFERENCES phones (id) ON DELETE CASCADE,
    credential_id TEXT NOT NULL,
    rp_id TEXT NOT NULL,
    aaguid TEXT NOT NULL,
    display_name TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('created', 'registered', 'removed', 'failed')),
    entra_method_id TEXT,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    registered_at BIGINT,
    removed_at BIGINT,
    last_used_at BIGINT
);
CREATE UNIQUE INDEX credentials_credential_id_key ON credentials (credential_id);
CREATE INDEX credentials_by_user ON credentials (user_id);
CREATE INDEX credentials_by_phone ON credentials (phone_id);

CREATE TABLE workstations (
    id TEXT PRIMARY KEY,
    integration_id TEXT NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    public_key TEXT NOT NULL,
    phone_id TEXT REFERENCES phones (id) ON DELETE SET NULL,
    status TEXT NOT NULL CHECK (status IN ('active', 'revoked')),
    created_at BIGINT NOT NULL,
    paired_at BIGINT,
    revoked_at BIGINT,
    last_seen_at BIGINT
);
CREATE UNIQUE INDEX workstations_public_key_key ON workstations (public_key);
CREATE INDEX workstations_by_phone ON workstations (phone_id);

CREATE TABLE workstation_recovery (
    workstation_id TEXT NOT NULL REFERENCES workstations (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    pin_enc BYTEA NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (workstation_id, user_id)
);

CREATE TABLE invites (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT,
    revoked_at BIGINT
);
CREATE UNIQUE INDEX invites_token_hash_key ON invites (token_hash);
CREATE INDEX invites_by_user ON invites (user_id);

CREATE TABLE pairing_sessions (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('phone', 'workstation')),
    user_id TEXT REFERENCES users (id) ON DELETE CASCADE,
    invite_id TEXT REFERENCES invites (id) ON DELETE CASCADE,
    workstation_id TEXT REFERENCES workstations (id) ON DELETE CASCADE,
    secret_hash TEXT NOT NULL,
    short_code TEXT NOT NULL,
    failed_attempts BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    completed_at BIGINT,
    phone_id TEXT REFERENCES phones (id) ON DELETE SET NULL
);
CREATE INDEX pairing_sessions_by_code ON pairing_sessions (short_code);

CREATE TABLE admins (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL,
    display_name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('admin', 'helpdesk', 'auditor')),
    disabled BIGINT NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX admins_username_key ON admins (username);

CREATE TABLE admin_passkeys (
    id TEXT PRIMARY KEY,
    admin_id TEXT NOT NULL REFERENCES admins (id) ON DELETE CASCADE,
    credential_id TEXT NOT NULL,
    public_key BYTEA NOT NULL,
    sign_count BIGINT NOT NULL DEFAULT 0,
    aaguid TEXT NOT NULL,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT
);
CREATE UNIQUE INDEX admin_passkeys_credential_id_key ON admin_passkeys (credential_id);
CREATE INDEX admin_passkeys_by_admin ON admin_passkeys (admin_id);

CREATE TABLE admin_login_links (
    token_hash TEXT PRIMARY KEY,
    admin_id TEXT REFERENCES admins (id) ON DELETE CASCADE,
    role TEXT CHECK (role IN ('admin', 'helpdesk', 'auditor')),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);

CREATE TABLE admin_sessions (
    id_hash TEXT PRIMARY KEY,
    admin_id TEXT NOT NULL REFERENCES admins (id) ON DELETE CASCADE,
    csrf_token TEXT NOT NULL,
    source_addr TEXT,
    user_agent TEXT,
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    idle_expires_at BIGINT NOT NULL,
    absolute_expires_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX admin_sessions_by_admin ON admin_sessions (admin_id);

CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL,
    prefix TEXT NOT NULL,
    role TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    revoked_at BIGINT,
    last_used_at BIGINT
);
CREATE UNIQUE INDEX api_tokens_token_hash_key ON api_tokens (token_hash);

CREATE TABLE audit_events (
    seq BIGINT PRIMARY KEY,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT,
    source_addr TEXT,
    request_id TEXT,
    details TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX audit_events_by_at ON audit_events (at);
CREATE INDEX audit_events_by_action ON audit_events (action, seq);

-- One row: the chain's head. Every append updates it first, which serialises appends
-- (SQLite's write lock, PostgreSQL's row lock).
CREATE TABLE audit_head (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    last_seq BIGINT NOT NULL,
    last_hash TEXT NOT NULL
);
INSERT INTO audit_head (id, last_seq, last_hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    queue TEXT NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    dedupe_key TEXT,
    state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'dead', 'cancelled')),
    attempts BIGINT NOT NULL DEFAULT 0,
    max_attempts BIGINT NOT NULL,
    -- queued: run after this instant; running: the lease ends at this instant.
    available_at BIGINT NOT NULL,
    lease_owner TEXT,
    last_error TEXT,
    progress_done BIGINT NOT NULL DEFAULT 0,
    progress_failed BIGINT NOT NULL DEFAULT 0,
    progress_total BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    started_at BIGINT,
    finished_at BIGINT
);
CREATE UNIQUE INDEX jobs_dedupe_key_key ON jobs (dedupe_key)
    WHERE dedupe_key IS NOT NULL AND state IN ('queued', 'running');
CREATE INDEX jobs_claimable ON jobs (queue, available_at) WHERE state IN ('queued', 'running');
CREATE INDEX jobs_by_created ON jobs (created_at, id);
