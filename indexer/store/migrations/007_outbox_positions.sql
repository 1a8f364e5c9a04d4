-- 007: the outbox position becomes (transaction, seq), so events committed out of their seq
-- order are never skipped. DuckDB has one writer, so `tx` stays 0 there and the position is the
-- seq alone; PostgreSQL sets `tx` to the inserting transaction's id (see
-- indexer/store/postgres/database.py, POSTGRES_ONLY), and fan-out takes only events of
-- transactions older than every running one.
ALTER TABLE events ADD COLUMN tx BIGINT DEFAULT 0;
ALTER TABLE outbox_cursor ADD COLUMN last_tx BIGINT DEFAULT 0;
UPDATE outbox_cursor SET last_tx = 0;
