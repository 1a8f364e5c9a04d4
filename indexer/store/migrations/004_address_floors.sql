-- 004: a per-store lower bound for the next HD address index.
-- After a restore from backup, invoices created after the backup are gone but their addresses
-- may have been handed to customers: new invoices must start past them, never reuse them.
-- IF NOT EXISTS: `chainpay restore` creates this table in backups older than 004.
CREATE TABLE IF NOT EXISTS address_index_floors (
    store_id   VARCHAR PRIMARY KEY,
    floor      BIGINT NOT NULL,
    reason     VARCHAR NOT NULL,
    set_at     TIMESTAMPTZ NOT NULL
);
