-- CSR mode (docs/key-custody.md): certificates whose private key only the client holds. Such an
-- identity's key_type, in every table, is `spki:` and the base64url SHA-256 of the client's
-- public key (its DER SubjectPublicKeyInfo). Its certificates row has key_pem '' (no key is ever
-- stored, sealed or not); its CSR is kept here, for the first order and every renewal.
CREATE TABLE client_csrs (
    names      TEXT    NOT NULL,
    key_type   TEXT    NOT NULL,            -- spki:...
    csr_pem    TEXT    NOT NULL,            -- the client's PKCS #10 request: public, not sealed
    replaces   TEXT,                        -- the key_type of the same names' identity this key
                                            -- rotates out, until that one is retired
    created_at INTEGER NOT NULL,
    PRIMARY KEY (names, key_type)
) WITHOUT ROWID;
