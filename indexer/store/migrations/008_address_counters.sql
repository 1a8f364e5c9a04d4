-- 008: HD indexes (and forwarder salts) are reserved in the database, in blocks, so that several
-- processes sharing one database never hand out the same deposit address. A store's counter is
-- the first index not yet reserved; a reservation moves it past the highest issued index and any
-- restore floor as well (address_index_floors), so it is right for data written before it.
CREATE TABLE address_counters (
    store_id    VARCHAR PRIMARY KEY,
    next_index  BIGINT NOT NULL
);
