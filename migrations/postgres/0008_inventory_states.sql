-- The inventory lists identities that failed before any certificate first. Finding them by a
-- lookup of every failure in certificates read the whole failures table (10,000 rows when a
-- tenth of a large fleet fails to renew): a flag, kept by record_failure, and a partial index
-- make them one short range. The query still checks that no certificate exists, so a flag left
-- behind by a certificate saved before its failure was cleared costs nothing but a lookup.
ALTER TABLE failures ADD COLUMN certless BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE failures SET certless = NOT EXISTS (
    SELECT 1 FROM certificates c WHERE c.names = failures.names AND c.key_type = failures.key_type
);
CREATE INDEX failures_certless ON failures (names, key_type) WHERE certless;

-- A revoked certificate stays listed (the inventory shows it) but is never served, and is
-- renewed only when its revocation asked for a replacement (keyCompromise, superseded). The
-- renewal scan reads revoked_reason from its index, which covers it again.
DROP INDEX certificates_renewal;
CREATE INDEX certificates_renewal ON certificates (renew_after, not_after, names, key_type, revoked_reason);

-- Revocations and deletions in the history, which every process polls to drop what it caches.
CREATE INDEX attempts_retired ON attempts (started_at) WHERE cause IN ('revocation', 'deletion');
