-- 006: forwarder stores (docs/collecting-funds.md). A store's address mode is `xpub` (BIP32
-- addresses from evm_xpub) or `forwarder` (CREATE2 addresses of a DepositForwarder that can only
-- pay the store's treasury on that network). A forwarder store has no xpub; its deposit salts are
-- keccak256(domain ++ salt_secret ++ address_index), so the table below and the invoices'
-- address_index re-derive every address it ever issued (and those past it, after a restore).
ALTER TABLE stores ALTER COLUMN evm_xpub DROP NOT NULL;
ALTER TABLE stores ALTER COLUMN xpub_chain DROP NOT NULL;
ALTER TABLE stores ADD COLUMN address_mode VARCHAR NOT NULL DEFAULT 'xpub';  -- xpub | forwarder
ALTER TABLE stores ADD COLUMN salt_secret VARCHAR;  -- forwarder: 32 random bytes as hex; never shown

-- A forwarder store's treasury per network, with the factory its addresses were derived under.
-- Both are fixed once written: every address issued on the network depends on them.
CREATE TABLE store_treasuries (
    store_id    VARCHAR NOT NULL,
    network     VARCHAR NOT NULL,
    treasury    VARCHAR NOT NULL,   -- EIP-55, as the merchant gave it
    factory     VARCHAR NOT NULL,   -- EIP-55 ForwarderFactory address
    created_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (store_id, network)
);
