-- The tab counts (users per state and integration) kept by triggers in the transaction of every
-- change to `users`, so that the user list reads a few numbers instead of counting 100,000 rows
-- on each request. Triggers cover every path at once: the repository's statements, cascades
-- from a deleted integration, and any statement added later.
--
-- Several transactions (and keybridge instances) change users at once here, so a statement does
-- not update a shared row in place: a long directory-sync transaction holding that row's lock
-- would block every pairing and could deadlock with one. Each statement appends one row of
-- differences per integration instead (inserts never wait for each other), and the count is the
-- sum of an integration's rows; reading folds them back into one row now and then.
CREATE TABLE user_counts (
    integration_id TEXT NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    pending BIGINT NOT NULL,
    paired_with_keybridge BIGINT NOT NULL,
    paired_with_entra BIGINT NOT NULL
);
CREATE INDEX user_counts_by_integration ON user_counts (integration_id);

INSERT INTO user_counts (integration_id, pending, paired_with_keybridge, paired_with_entra)
SELECT i.id,
       COUNT(u.id) FILTER (WHERE u.state = 'pending'),
       COUNT(u.id) FILTER (WHERE u.state = 'paired_with_keybridge'),
       COUNT(u.id) FILTER (WHERE u.state = 'paired_with_entra')
FROM integrations i LEFT JOIN users u ON u.integration_id = i.id
GROUP BY i.id;

-- Statement-level with transition tables: one row per integration and statement, however many
-- users the statement touched (a directory sync writes 500 per statement). An update that left
-- every state as it was adds nothing. Changes to an integration deleted in this transaction (the
-- cascade) are skipped: its counts go with it.
CREATE TYPE user_count_change AS (integration_id TEXT, state TEXT, sign BIGINT);

CREATE FUNCTION user_counts_record() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changes user_count_change[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        changes := ARRAY(SELECT ROW(integration_id, state, 1)::user_count_change FROM new_rows);
    ELSIF TG_OP = 'DELETE' THEN
        changes := ARRAY(SELECT ROW(integration_id, state, -1)::user_count_change FROM old_rows);
    ELSE
        changes := ARRAY(
            SELECT ROW(integration_id, state, 1)::user_count_change FROM new_rows
            UNION ALL
            SELECT ROW(integration_id, state, -1)::user_count_change FROM old_rows
        );
    END IF;
    INSERT INTO user_counts (integration_id, pending, paired_with_keybridge, paired_with_entra)
    SELECT d.integration_id, d.pending, d.paired_with_keybridge, d.paired_with_entra
    FROM (
        SELECT c.integration_id,
               COALESCE(SUM(c.sign) FILTER (WHERE c.state = 'pending'), 0) AS pending,
               COALESCE(SUM(c.sign) FILTER (WHERE c.state = 'paired_with_keybridge'), 0)
                   AS paired_with_keybridge,
               COALESCE(SUM(c.sign) FILTER (WHERE c.state = 'paired_with_entra'), 0)
                   AS paired_with_entra
        FROM unnest(changes) AS c
        GROUP BY c.integration_id
    ) d
    WHERE (d.pending, d.paired_with_keybridge, d.paired_with_entra) <> (0, 0, 0)
      AND EXISTS (SELECT 1 FROM integrations i WHERE i.id = d.integration_id);
    RETURN NULL;
END
$$;

CREATE TRIGGER user_counts_insert AFTER INSERT ON users
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION user_counts_record();
CREATE TRIGGER user_counts_delete AFTER DELETE ON users
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION user_counts_record();
CREATE TRIGGER user_counts_update AFTER UPDATE ON users
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION user_counts_record();
