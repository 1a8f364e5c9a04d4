-- 001: stores, API keys, invoices, payments, the event outbox and idempotency keys.
-- Amounts are BIGNUM: arbitrary-precision integers in base units, so uint256 is never truncated.
-- Addresses and hashes are lowercase 0x-hex except invoices.address (EIP-55, as shown to people).

CREATE TABLE stores (
    id            VARCHAR PRIMARY KEY,        -- st_…
    name          VARCHAR NOT NULL,
    evm_xpub      VARCHAR NOT NULL,           -- as registered (account or external-chain key)
    xpub_chain    VARCHAR NOT NULL UNIQUE,    -- normalised external-chain key: one store per wallet
    created_at    TIMESTAMPTZ NOT NULL
);

CREATE TABLE api_keys (
    id            VARCHAR PRIMARY KEY,        -- key_…
    store_id      VARCHAR NOT NULL,
    key_hash      VARCHAR NOT NULL UNIQUE,    -- sha256 hex of the secret; the secret is never stored
    prefix        VARCHAR NOT NULL,           -- first characters, to tell keys apart in listings
    created_at    TIMESTAMPTZ NOT NULL,
    revoked_at    TIMESTAMPTZ
);

CREATE TABLE invoices (
    id                VARCHAR PRIMARY KEY,    -- inv_… (128 random bits: unguessable)
    store_id          VARCHAR NOT NULL,
    network           VARCHAR NOT NULL,
    asset             VARCHAR NOT NULL,
    amount            BIGNUM NOT NULL,
    address           VARCHAR NOT NULL UNIQUE,
    address_index     BIGINT NOT NULL,
    status            VARCHAR NOT NULL,       -- new | pending | paid | expired
    exception         VARCHAR,                -- underpaid | overpaid | paid_late
    amount_received   BIGNUM NOT NULL,
    amount_confirmed  BIGNUM NOT NULL,
    reorg_flagged     BOOLEAN NOT NULL DEFAULT false,
    order_id          VARCHAR,
    metadata          JSON,
    redirect_url      VARCHAR,
    expires_at        TIMESTAMPTZ NOT NULL,
    monitoring_until  TIMESTAMPTZ NOT NULL,
    created_at        TIMESTAMPTZ NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL,
    paid_at           TIMESTAMPTZ,
    UNIQUE (store_id, address_index)
);
CREATE INDEX invoices_store_created ON invoices (store_id, created_at);

CREATE TABLE payments (
    network        VARCHAR NOT NULL,
    tx_hash        VARCHAR NOT NULL,
    log_index      INTEGER NOT NULL,          -- -1: a transaction's own value; >= 1000000: internal transfer
    invoice_id     VARCHAR NOT NULL,
    store_id       VARCHAR NOT NULL,
    address        VARCHAR NOT NULL,          -- lowercase recipient
    asset          VARCHAR NOT NULL,
    amount         BIGNUM NOT NULL,
    counted        BOOLEAN NOT NULL,          -- right asset for the invoice (wrong assets are kept, not counted)
    block_number   BIGINT NOT NULL,
    block_hash     VARCHAR NOT NULL,
    block_time     TIMESTAMPTZ NOT NULL,
    confirmations  INTEGER NOT NULL,
    state          VARCHAR NOT NULL,          -- pending | confirmed | orphaned
    first_seen_at  TIMESTAMPTZ NOT NULL,
    confirmed_at   TIMESTAMPTZ,
    updated_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (network, tx_hash, log_index)
);
CREATE INDEX payments_invoice ON payments (invoice_id);

CREATE SEQUENCE event_seq START 1;
CREATE TABLE events (
    seq          BIGINT PRIMARY KEY DEFAULT nextval('event_seq'),  -- total order of creation
    id           VARCHAR NOT NULL UNIQUE,     -- evt_…
    store_id     VARCHAR NOT NULL,
    type         VARCHAR NOT NULL,
    invoice_id   VARCHAR,
    payload      JSON NOT NULL,               -- the exact body sent to endpoints
    created_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX events_store ON events (store_id, seq);

CREATE TABLE idempotency_keys (
    store_id      VARCHAR NOT NULL,
    key           VARCHAR NOT NULL,
    request_hash  VARCHAR NOT NULL,
    status        INTEGER NOT NULL,
    response      JSON NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (store_id, key)
);
