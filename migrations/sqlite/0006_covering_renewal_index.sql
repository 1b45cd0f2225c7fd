-- The renewal scan, the census on /metrics and its per-certificate series read only names,
-- key type, renewal time and expiry. An index on (renew_after, not_after) holds all four (a
-- WITHOUT ROWID table's indexes carry its primary key), so those reads walk the small index
-- instead of the table's rows, whose PEMs make most of the file.
CREATE INDEX certificates_renewal ON certificates (renew_after, not_after);
DROP INDEX certificates_renew_after;
