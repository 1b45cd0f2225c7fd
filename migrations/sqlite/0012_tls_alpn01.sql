-- TLS-ALPN-01 (RFC 8737): the key authorizations being presented, by the identifier they
-- validate (the SNI name the CA sends, or the address for an IP identifier), so that any
-- process sharing the store answers the CA's acme-tls/1 handshake. One row per token: two
-- orders for one name at once keep both, and the newest is served.
CREATE TABLE tls_alpn01_challenges (
    name              TEXT    NOT NULL,
    token             TEXT    NOT NULL,
    key_authorization TEXT    NOT NULL,
    created_at        INTEGER NOT NULL,
    PRIMARY KEY (name, token)
) WITHOUT ROWID;
