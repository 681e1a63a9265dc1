-- SQLite gets its trigram index for user search in this version; PostgreSQL has had one since
-- 0002 (pg_trgm). Kept so that both engines share version numbers.
SELECT 1;
