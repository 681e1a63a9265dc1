-- The tab counts (users per state and integration) kept by triggers in the transaction of every
-- change to `users`, so that the user list reads three numbers instead of counting 100,000 rows
-- on each request. Triggers cover every path at once: the repository's statements, cascades
-- from a deleted integration, and any statement added later.
--
-- SQLite has one writer at a time, so a single row per integration updated in place cannot
-- deadlock; the row is made with the integration.
CREATE TABLE user_counts (
    integration_id TEXT PRIMARY KEY REFERENCES integrations (id) ON DELETE CASCADE,
    pending INTEGER NOT NULL DEFAULT 0,
    paired_with_keybridge INTEGER NOT NULL DEFAULT 0,
    paired_with_entra INTEGER NOT NULL DEFAULT 0
);

INSERT INTO user_counts (integration_id, pending, paired_with_keybridge, paired_with_entra)
SELECT i.id,
       (SELECT COUNT(*) FROM users u WHERE u.integration_id = i.id AND u.state = 'pending'),
       (SELECT COUNT(*) FROM users u WHERE u.integration_id = i.id AND u.state = 'paired_with_keybridge'),
       (SELECT COUNT(*) FROM users u WHERE u.integration_id = i.id AND u.state = 'paired_with_entra')
FROM integrations i;

CREATE TRIGGER user_counts_new_integration AFTER INSERT ON integrations
BEGIN
    INSERT INTO user_counts (integration_id) VALUES (NEW.id);
END;

CREATE TRIGGER user_counts_insert AFTER INSERT ON users
BEGIN
    UPDATE user_counts
    SET pending = pending + (NEW.state = 'pending'),
        paired_with_keybridge = paired_with_keybridge + (NEW.state = 'paired_with_keybridge'),
        paired_with_entra = paired_with_entra + (NEW.state = 'paired_with_entra')
    WHERE integration_id = NEW.integration_id;
END;

-- Also fired by the cascade from a deleted integration, whose row may already be gone: the
-- UPDATE then changes nothing.
CREATE TRIGGER user_counts_delete AFTER DELETE ON users
BEGIN
    UPDATE user_counts
    SET pending = pending - (OLD.state = 'pending'),
        paired_with_keybridge = paired_with_keybridge - (OLD.state = 'paired_with_keybridge'),
        paired_with_entra = paired_with_entra - (OLD.state = 'paired_with_entra')
    WHERE integration_id = OLD.integration_id;
END;

CREATE TRIGGER user_counts_update AFTER UPDATE OF state, integration_id ON users
WHEN OLD.state <> NEW.state OR OLD.integration_id <> NEW.integration_id
BEGIN
    UPDATE user_counts
    SET pending = pending - (OLD.state = 'pending'),
        paired_with_keybridge = paired_with_keybridge - (OLD.state = 'paired_with_keybridge'),
        paired_with_entra = paired_with_entra - (OLD.state = 'paired_with_entra')
    WHERE integration_id = OLD.integration_id;
    UPDATE user_counts
    SET pending = pending + (NEW.state = 'pending'),
        paired_with_keybridge = paired_with_keybridge + (NEW.state = 'paired_with_keybridge'),
        paired_with_entra = paired_with_entra + (NEW.state = 'paired_with_entra')
    WHERE integration_id = NEW.integration_id;
END;
