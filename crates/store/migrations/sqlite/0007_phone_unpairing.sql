-- When an unpairing of the phone was requested: from then on keybridge registers no passkey
-- for it, and the unpair job deletes its Entra passkey before the row goes.
ALTER TABLE phones ADD COLUMN unpairing_at INTEGER;
