-- The operator's inventory: what was attempted for each identity, who received which serial,
-- and revocation. History rows outlive the certificate they describe (deletion keeps them).

-- Every issuance attempt that reached the CA (or was refused before it), newest last.
CREATE TABLE attempts (
    id          INTEGER PRIMARY KEY,          -- SQLite's rowid: increasing
    names       TEXT    NOT NULL,
    key_type    TEXT    NOT NULL,
    cause       TEXT    NOT NULL,             -- request, renewal, forced, resume
    outcome     TEXT    NOT NULL,             -- success, or the API error code of the failure
    message     TEXT,                         -- the failure's message (never a secret)
    serial      TEXT,                         -- the certificate issued, on success
    started_at  INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL
);
CREATE INDEX attempts_identity ON attempts (names, key_type, id);

-- Per identity and credential: the last serial that credential received, and when.
CREATE TABLE deliveries (
    names        TEXT    NOT NULL,
    key_type     TEXT    NOT NULL,
    principal    TEXT    NOT NULL,            -- method:name, as the audit line names it
    serial       TEXT    NOT NULL,
    delivered_at INTEGER NOT NULL,
    PRIMARY KEY (names, key_type, principal)
) WITHOUT ROWID;

-- A revoked certificate is never served again; a new certificate for the identity clears both.
ALTER TABLE certificates ADD COLUMN revoked_at INTEGER;
ALTER TABLE certificates ADD COLUMN revoked_reason TEXT;

-- The inventory lists by expiry, then identity: a page is one range of this index.
-- renew_after makes it cover the census and the renewal scan too: without table
-- statistics SQLite may pick this index for them, and must then not read the rows.
CREATE INDEX certificates_expiry ON certificates (not_after, names, key_type, renew_after);
