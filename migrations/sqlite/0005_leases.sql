-- Leases for cluster-wide work (an issuance, a renewal): one owner at a time, until it expires.
-- A process that dies releases its leases by expiry; the owner renews them while it works.
CREATE TABLE leases (
    name       TEXT    PRIMARY KEY,
    owner      TEXT    NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
