-- CA limits known in advance (service/limits.rs): what certfleet asked of each ACME directory,
-- counted before the next request. One row per event and counted dimension: an order is a row
-- for its account (subject ''), one per registered domain of its names, one for its exact name
-- set and one for the credential that asked; a failed authorization is a row per name. One
-- index answers every count (dimension, subject and directory, since a time); rows older than
-- the longest window are pruned.
CREATE TABLE ca_usage (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    directory TEXT    NOT NULL,
    dimension TEXT    NOT NULL, -- account | domain | set | credential | failed
    subject   TEXT    NOT NULL,
    renewal   INTEGER NOT NULL, -- 1: a renewal (it may use the reserve), 0: a new certificate
    at        INTEGER NOT NULL
);
CREATE INDEX ca_usage_count ON ca_usage (dimension, subject, directory, at);
CREATE INDEX ca_usage_at ON ca_usage (at);
