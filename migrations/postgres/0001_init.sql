-- certfleet schema, PostgreSQL. Times are integer Unix seconds (BIGINT); PEM and JSON are text.
-- The same tables and keys as migrations/sqlite, so the two backends answer alike.

-- One row per certificate identity (name set + key type): the newest issued certificate.
CREATE TABLE certificates (
    names       TEXT   NOT NULL,             -- normalised, sorted, comma-joined
    key_type    TEXT   NOT NULL,             -- ecdsa-p256, rsa-2048, ...
    cert_pem    TEXT   NOT NULL,             -- leaf followed by its chain
    key_pem     TEXT   NOT NULL,             -- the certificate's private key, sealed
    issuer_pem  TEXT   NOT NULL,             -- the chain without the leaf
    serial      TEXT   NOT NULL,             -- hex
    not_before  BIGINT NOT NULL,
    not_after   BIGINT NOT NULL,
    renew_after BIGINT NOT NULL,
    issued_at   BIGINT NOT NULL,
    PRIMARY KEY (names, key_type)
);

-- The renewal scan reads certificates in renew_after order.
CREATE INDEX certificates_renew_after ON certificates (renew_after);

-- HTTP-01 key authorizations being presented (RFC 8555 section 8.3), by token. Shared by every
-- replica, so whichever one the CA's validator reaches answers.
CREATE TABLE http01_tokens (
    token             TEXT   PRIMARY KEY,
    key_authorization TEXT   NOT NULL,
    created_at        BIGINT NOT NULL
);

-- ACME account credentials, one per directory URL (created once, never per order).
CREATE TABLE acme_accounts (
    directory_url TEXT   PRIMARY KEY,
    credentials   TEXT   NOT NULL,           -- instant-acme AccountCredentials as JSON, sealed
    created_at    BIGINT NOT NULL
);

-- When a forced renewal (POST /api/certificate/renew) last ran for an identity.
CREATE TABLE forced_renewals (
    names      TEXT   NOT NULL,
    key_type   TEXT   NOT NULL,
    renewed_at BIGINT NOT NULL,
    PRIMARY KEY (names, key_type)
);
