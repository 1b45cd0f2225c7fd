-- certfleet's own TLS: the self-signed fallback certificate, generated once and kept so that
-- its fingerprint is stable across restarts and replicas, and can be pinned.
CREATE TABLE server_identity (
    name       TEXT   PRIMARY KEY,           -- 'fallback'
    cert_pem   TEXT   NOT NULL,
    key_pem    TEXT   NOT NULL,              -- sealed
    created_at BIGINT NOT NULL
);
