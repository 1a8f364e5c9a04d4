-- 005: fiat-priced invoices (the locked quote) and the underpayment tolerance.
-- price_* are NULL for an invoice created in the asset's own units. Money stays exact: the
-- price in the currency's minor units (cents), the rate as an exact decimal string (fiat per
-- whole asset unit), each feed's round id and answer as decimal strings inside price_legs.
-- DuckDB refuses ALTER TABLE on a table an index depends on: the index is dropped and rebuilt
-- in the same transaction.
DROP INDEX invoices_store_created;
ALTER TABLE invoices ADD COLUMN price_amount BIGINT;           -- minor units of price_currency
ALTER TABLE invoices ADD COLUMN price_currency VARCHAR;        -- ISO 4217, e.g. USD
ALTER TABLE invoices ADD COLUMN price_rate VARCHAR;            -- exact decimal: fiat per asset unit
ALTER TABLE invoices ADD COLUMN price_source VARCHAR;          -- feed | cross | peg
ALTER TABLE invoices ADD COLUMN price_legs JSON;               -- feeds read (address, round, answer, updatedAt, block) or pegs
ALTER TABLE invoices ADD COLUMN priced_at TIMESTAMPTZ;         -- when the rate was quoted
ALTER TABLE invoices ADD COLUMN paid_tolerance_ppm INTEGER NOT NULL DEFAULT 0;  -- millionths of amount
CREATE INDEX invoices_store_created ON invoices (store_id, created_at);
