-- The accounts a workstation is paired with: one row per phone pairing (account) that proved
-- itself when the phone scanned the workstation's code. A phone holding several accounts
-- pairs them together, so the workstation can sign in any of them.

CREATE TABLE workstation_phones (
    workstation_id TEXT NOT NULL REFERENCES workstations (id) ON DELETE CASCADE,
    phone_id TEXT NOT NULL REFERENCES phones (id) ON DELETE CASCADE,
    paired_at INTEGER NOT NULL,
    PRIMARY KEY (workstation_id, phone_id)
);
CREATE INDEX workstation_phones_by_phone ON workstation_phones (phone_id);
