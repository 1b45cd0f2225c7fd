-- certfleet schema, SQLite. Times are integer Unix seconds; PEM and JSON are text.

-- One row per certificate identity (name set + key type): the newest issued certificate.
CREATE TABLE certificates (
    names       TEXT    NOT NULL,            -- normalised, sorted, comma-joined
    key_type    TEXT    NOT NULL,            -- ecdsa-p256, rsa-2048, ...
    cert_pem    TEXT    NOT NULL,            -- leaf followed by its chain
    key_pem     TEXT    NOT NULL,            -- the certificate's private key (PKCS#8 PEM)
    issuer_pem  TEXT    NOT NULL,            -- the chain without the leaf
    serial      TEXT    NOT NULL,            -- hex
    not_before  INTEGER NOT NULL,
    not_after   INTEGER NOT NULL,
    renew_after INTEGER NOT NULL,
    issued_at   INTEGER NOT NULL,
    PRIMARY KEY (names, key_type)
) WITHOUT ROWID;

-- The renewal scan reads certificates in renew_after order.
CREATE INDEX certificates_renew_after ON certificates (renew_after);

-- HTTP-01 key authorizations being presented (RFC 8555 section 8.3), by token.
CREATE TABLE http01_tokens (
    token             TEXT    PRIMARY KEY,
    key_authorization TEXT    NOT NULL,
    created_at        INTEGER NOT NULL
) WITHOUT ROWID;

-- ACME account credentials, one per directory URL (created once, never per order).
CREATE TABLE acme_accounts (
    directory_url TEXT    PRIMARY KEY,
    credentials   TEXT    NOT NULL,          -- instant-acme AccountCredentials as JSON
    created_at    INTEGER NOT NULL
) WITHOUT ROWID;

-- When a forced renewal (POST /api/certificate/renew) last ran for an identity.
CREATE TABLE forced_renewals (
    names      TEXT    NOT NULL,
    key_type   TEXT    NOT NULL,
    renewed_at INTEGER NOT NULL,
    PRIMARY KEY (names, key_type)
) WITHOUT ROWID;
