-- Nonces of signed device and workstation requests, remembered until the request's
-- timestamp window closes: the replay cache every server instance shares.

CREATE TABLE request_nonces (
    nonce_key TEXT PRIMARY KEY,
    expires_at INTEGER NOT NULL
);
CREATE INDEX request_nonces_by_expiry ON request_nonces (expires_at);
