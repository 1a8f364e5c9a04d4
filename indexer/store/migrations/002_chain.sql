-- 002: what the indexer knows of each chain: its cursor, recent canonical blocks, transfers.
-- Addresses and hashes are lowercase 0x-hex. Amounts are BIGNUM base units (uint256-safe).

CREATE TABLE chain_cursors (
    network       VARCHAR PRIMARY KEY,
    block_number  BIGINT NOT NULL,            -- the highest block fully processed and committed
    block_hash    VARCHAR NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);

-- Recent canonical blocks per network (at least 128 kept), to detect reorgs by parent hash.
CREATE TABLE blocks (
    network       VARCHAR NOT NULL,
    number        BIGINT NOT NULL,
    hash          VARCHAR NOT NULL,
    parent_hash   VARCHAR NOT NULL,
    timestamp     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (network, number)
);

-- Every Transfer log of the configured token contracts, and native coin to issued addresses.
-- Rows of blocks that left the canonical chain stay, with orphaned = true.
CREATE TABLE transfers (
    network       VARCHAR NOT NULL,
    block_number  BIGINT NOT NULL,
    block_hash    VARCHAR NOT NULL,
    block_time    TIMESTAMPTZ NOT NULL,
    tx_hash       VARCHAR NOT NULL,
    log_index     INTEGER NOT NULL,           -- -1: a transaction's own value; >= 1000000: internal
    kind          VARCHAR NOT NULL,           -- erc20 | native | internal
    asset         VARCHAR NOT NULL,           -- the configured symbol
    token         VARCHAR,                    -- token contract; NULL for native coin
    from_address  VARCHAR NOT NULL,
    to_address    VARCHAR NOT NULL,
    amount        BIGNUM NOT NULL,
    orphaned      BOOLEAN NOT NULL DEFAULT false
);
-- No index: rows arrive in block order, so DuckDB's per-segment min/max prunes block ranges, and
-- an ART index would slow the bulk appends that dominate this table.
