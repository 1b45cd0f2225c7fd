-- Events and their notifications (docs/notifications.md): the outbox. An event is written in the
-- transaction of the change it reports, with one notification row per channel it goes to; the
-- delivery worker sends each and records every attempt. Events outlive the identity they name.

CREATE TABLE events (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, -- the order events happened in, never reused
    id         TEXT    NOT NULL UNIQUE,           -- evt_..., the receivers' deduplication key
    type       TEXT    NOT NULL,                  -- certificate.renewed, delivery.stale, ...
    names      TEXT    NOT NULL,
    key_type   TEXT    NOT NULL,
    body       TEXT    NOT NULL,                  -- the JSON a webhook receives, byte for byte
    created_at BIGINT  NOT NULL
);
CREATE INDEX events_identity ON events (names, key_type, seq);
CREATE INDEX events_created ON events (created_at);

-- One event on its way to one channel (a webhook's name, or "email").
CREATE TABLE notifications (
    event_seq     BIGINT  NOT NULL,
    channel       TEXT    NOT NULL,
    names         TEXT    NOT NULL,               -- the event's identity: deliveries keep its order
    key_type      TEXT    NOT NULL,
    state         TEXT    NOT NULL,               -- pending, delivered, failed (given up)
    attempts      BIGINT  NOT NULL,
    next_attempt  BIGINT  NOT NULL,
    claimed_by    TEXT,                           -- the process sending it now, until claimed_until
    claimed_until BIGINT ,
    last_error    TEXT,
    done_at       BIGINT ,
    PRIMARY KEY (event_seq, channel)
);
-- What is ready to send: one range of the pending rows by time.
CREATE INDEX notifications_ready ON notifications (next_attempt) WHERE state = 'pending';
-- The earlier pending event of the same identity on the same channel goes first.
CREATE INDEX notifications_order ON notifications (channel, names, key_type, event_seq)
    WHERE state = 'pending';

-- Every delivery attempt, as the inventory shows it.
CREATE TABLE notification_attempts (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_seq   BIGINT  NOT NULL,
    channel     TEXT    NOT NULL,
    at          BIGINT  NOT NULL,
    outcome     TEXT    NOT NULL,                 -- delivered, failed
    message     TEXT    NOT NULL,                 -- the receiver's answer or the error (no secret)
    duration_ms BIGINT  NOT NULL
);
CREATE INDEX notification_attempts_event ON notification_attempts (event_seq, channel, id);

-- certificate.expiring: how much life was left at the last threshold notified for the current
-- serial (a new certificate clears it); delivery.stale: the serial a credential was last told
-- about.
ALTER TABLE certificates ADD COLUMN expiring_notified BIGINT ;
ALTER TABLE deliveries ADD COLUMN stale_serial TEXT;

-- certificate.renewal_advanced: when the CA's renewal window (ARI) of a certificate not yet due
-- is asked again. The certificates stored before this version are first asked at a point of the
-- 6 hours after the upgrade, spread by when each was issued, so an upgrade does not ask for all
-- at once.
ALTER TABLE certificates ADD COLUMN ari_next_check BIGINT NOT NULL DEFAULT 0;
UPDATE certificates SET ari_next_check = CAST(EXTRACT(EPOCH FROM now()) AS BIGINT) + issued_at % 21600;
CREATE INDEX certificates_ari ON certificates (ari_next_check) WHERE revoked_at IS NULL;

-- The inventory's pages read only this index (an index-only scan): every column a page shows
-- of a certificate is in it, so a page never reads the rows and their PEMs.
DROP INDEX certificates_expiry;
CREATE INDEX certificates_expiry ON certificates (not_after, names, key_type)
    INCLUDE (renew_after, revoked_reason, serial, not_before, issued_at, revoked_at);

-- When an identity last failed (the inventory's lastError.at): the newest entry of one range of
-- this index, without reading the history's rows.
CREATE INDEX attempts_failed ON attempts (names, key_type, started_at, outcome)
    WHERE outcome <> 'success';
