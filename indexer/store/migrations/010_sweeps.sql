-- 010: the books of sweeps (docs/collecting-funds.md). One row per amount a forwarder deposit
-- address sent to its store's treasury: an ERC20 Transfer (deposit address -> treasury) of a
-- configured token, or a DepositForwarder's NativeSwept event (native coin moved by
-- selfdestruct, which no Transfer log shows). Rows of blocks that left the canonical chain
-- stay, with orphaned = true, exactly like transfers; a block applied again replaces its rows.
CREATE TABLE sweeps (
    network       VARCHAR NOT NULL,
    block_number  BIGINT NOT NULL,
    block_hash    VARCHAR NOT NULL,
    block_time    TIMESTAMPTZ NOT NULL,
    tx_hash       VARCHAR NOT NULL,
    log_index     INTEGER NOT NULL,           -- the Transfer's or the NativeSwept event's log
    address       VARCHAR NOT NULL,           -- the deposit address, lowercase 0x hex
    treasury      VARCHAR NOT NULL,           -- lowercase 0x hex
    asset         VARCHAR NOT NULL,           -- the configured symbol
    token         VARCHAR,                    -- token contract; NULL for native coin
    amount        BIGNUM NOT NULL,            -- base units
    orphaned      BOOLEAN NOT NULL DEFAULT false
);
-- A payment's swept_by looks up the sweeps of its address.
CREATE INDEX sweeps_address ON sweeps (address);
