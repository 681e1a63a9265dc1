-- PostgreSQL gets a trigram index for user search in this version; SQLite has no equivalent
-- and scans (fast enough in-process). Kept so that both engines share version numbers.
SELECT 1;
