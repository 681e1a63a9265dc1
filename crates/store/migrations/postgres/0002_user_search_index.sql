-- User search (`search_text LIKE '%…%'`) through a trigram index where the pg_trgm extension
-- is available (it ships with the PostgreSQL server package and is a trusted extension, so the
-- database owner may create it). Without it the search stays correct and scans the users of
-- the integration instead.
DO $$
BEGIN
    CREATE EXTENSION IF NOT EXISTS pg_trgm;
    CREATE INDEX IF NOT EXISTS users_search_trgm ON users USING gin (search_text gin_trgm_ops);
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'pg_trgm is not available (%): user search will scan', SQLERRM;
END
$$;
