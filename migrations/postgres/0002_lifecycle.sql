-- Lifecycle: orders that survive a crash, what they presented, and failure back-off.

-- An order in progress, one per identity. Written before the order is created at the CA, so a
-- crash at any later step is resumed (by order_url) or cleaned up at the next start.
CREATE TABLE orders (
    names      TEXT   NOT NULL,
    key_type   TEXT   NOT NULL,
    order_url  TEXT,                         -- NULL until the CA has answered
    key_pem    TEXT,                         -- sealed; stored before finalize, so a certificate the
                                             -- CA issued during a crash can still be paired with it
    started_at BIGINT NOT NULL,
    PRIMARY KEY (names, key_type)
);

-- Challenge responses made visible for an order, recorded before they are made visible.
CREATE TABLE presented (
    names          TEXT NOT NULL,
    key_type       TEXT NOT NULL,
    challenge_type TEXT NOT NULL,            -- http-01, dns-01
    name           TEXT NOT NULL,            -- the name being validated
    handle         TEXT NOT NULL,            -- the solver's handle (HTTP-01 token, DNS record)
    PRIMARY KEY (names, key_type, handle)
);

-- Failure back-off per identity: no new order before next_attempt.
CREATE TABLE failures (
    names        TEXT   NOT NULL,
    key_type     TEXT   NOT NULL,
    count        BIGINT NOT NULL,
    next_attempt BIGINT NOT NULL,
    code         TEXT   NOT NULL,            -- the API error code of the last failure
    message      TEXT   NOT NULL,            -- its message (never a secret)
    PRIMARY KEY (names, key_type)
);
