-- User search (`search_text LIKE '%…%'`) through an FTS5 trigram index: a search term of three
-- characters or more finds its candidate users in the index, and the LIKE then decides exactly
-- as before (the index only narrows). Shorter terms still scan.
--
-- The index is keyed by a stable integer per user (`user_search_keys`): `users` has a text
-- primary key, and its implicit rowid may change on VACUUM, so it cannot be the link. The
-- triggers keep both tables in step with `users` in the same transaction.
CREATE TABLE user_search_keys (
    key INTEGER PRIMARY KEY,
    user_id TEXT NOT NULL UNIQUE
);
CREATE VIRTUAL TABLE user_search USING fts5 (search_text, tokenize = 'trigram');

INSERT INTO user_search_keys (user_id) SELECT id FROM users;
INSERT INTO user_search (rowid, search_text)
SELECT k.key, u.search_text FROM user_search_keys k JOIN users u ON u.id = k.user_id;

CREATE TRIGGER user_search_insert AFTER INSERT ON users
BEGIN
    INSERT INTO user_search_keys (user_id) VALUES (NEW.id);
    INSERT INTO user_search (rowid, search_text)
    SELECT key, NEW.search_text FROM user_search_keys WHERE user_id = NEW.id;
END;

CREATE TRIGGER user_search_update AFTER UPDATE OF search_text ON users
WHEN OLD.search_text IS NOT NEW.search_text
BEGIN
    UPDATE user_search SET search_text = NEW.search_text
    WHERE rowid = (SELECT key FROM user_search_keys WHERE user_id = NEW.id);
END;

CREATE TRIGGER user_search_delete AFTER DELETE ON users
BEGIN
    DELETE FROM user_search WHERE rowid = (SELECT key FROM user_search_keys WHERE user_id = OLD.id);
    DELETE FROM user_search_keys WHERE user_id = OLD.id;
END;
