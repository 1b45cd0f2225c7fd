-- Akash provider-API tokens (auth.akash, keySource chain): the public keys found on chain, by
-- account address. A Cosmos account's key never changes once set, so a row is never expired;
-- AEP-64 asks that the cache survive restarts. Each key is checked to derive to its address
-- whenever it is read.
CREATE TABLE akash_pubkeys (
    address TEXT PRIMARY KEY,                -- akash1..., bech32, lowercase
    pubkey  TEXT NOT NULL                    -- the 33-byte compressed secp256k1 key, base64 (as on chain)
);
