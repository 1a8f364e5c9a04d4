-- 003: webhook endpoints, deliveries and their attempts, and the outbox fan-out cursor.
-- The `events` table (001) is the outbox; the dispatcher turns each event into one delivery
-- per matching endpoint, in the same transaction that advances `outbox_cursor`.

CREATE TABLE webhook_endpoints (
    id                          VARCHAR PRIMARY KEY,   -- we_…
    store_id                    VARCHAR NOT NULL,
    url                         VARCHAR NOT NULL,
    description                 VARCHAR,
    events                      VARCHAR[],             -- subscribed event types; NULL: all
    secret                      VARCHAR NOT NULL,      -- whsec_…, needed in clear to sign
    previous_secret             VARCHAR,               -- still signed with during rotation
    previous_secret_expires_at  TIMESTAMPTZ,
    status                      VARCHAR NOT NULL,      -- enabled | disabled
    disabled_reason             VARCHAR,
    failing_since               TIMESTAMPTZ,           -- first failure since the last success
    created_at                  TIMESTAMPTZ NOT NULL,
    updated_at                  TIMESTAMPTZ NOT NULL,
    deleted_at                  TIMESTAMPTZ            -- soft delete: the delivery log stays
);
CREATE INDEX webhook_endpoints_store ON webhook_endpoints (store_id, created_at);

-- endpoint_id 'hook' is reserved for the in-process [hooks] on_event callable.
CREATE TABLE deliveries (
    id               VARCHAR PRIMARY KEY,              -- dlv_…
    event_id         VARCHAR NOT NULL,
    endpoint_id      VARCHAR NOT NULL,
    store_id         VARCHAR NOT NULL,
    status           VARCHAR NOT NULL,                 -- pending | delivered | failed | cancelled
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TIMESTAMPTZ,                      -- NULL unless pending
    last_attempt_at  TIMESTAMPTZ,
    delivered_at     TIMESTAMPTZ,
    created_at       TIMESTAMPTZ NOT NULL
);
CREATE INDEX deliveries_due ON deliveries (status, next_attempt_at);
CREATE INDEX deliveries_endpoint ON deliveries (endpoint_id, created_at);
CREATE INDEX deliveries_event ON deliveries (event_id);

CREATE TABLE delivery_attempts (
    id                VARCHAR PRIMARY KEY,             -- att_…
    delivery_id       VARCHAR NOT NULL,
    event_id          VARCHAR NOT NULL,
    endpoint_id       VARCHAR NOT NULL,
    attempted_at      TIMESTAMPTZ NOT NULL,
    status_code       INTEGER,                         -- NULL: no HTTP answer (or the hook)
    latency_ms        INTEGER NOT NULL,
    error             VARCHAR,                         -- stable short text, never a URL or secret
    response_excerpt  VARCHAR                          -- at most the first 4 KB of the answer
);
CREATE INDEX delivery_attempts_delivery ON delivery_attempts (delivery_id);

CREATE TABLE outbox_cursor (
    id        INTEGER PRIMARY KEY,                     -- always 1
    last_seq  BIGINT NOT NULL                          -- events up to here are fanned out
);
-- Events older than this migration had no endpoint to go to (and must not reach a hook).
INSERT INTO outbox_cursor SELECT 1, coalesce(max(seq), 0) FROM events;
