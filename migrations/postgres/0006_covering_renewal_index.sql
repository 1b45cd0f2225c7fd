-- The renewal scan, the census on /metrics and its per-certificate series read only names,
-- key type, renewal time and expiry: an index holding all four lets them be index-only scans
-- instead of reads of the rows, whose PEMs make most of the table.
CREATE INDEX certificates_renewal ON certificates (renew_after, not_after, names, key_type);
DROP INDEX certificates_renew_after;
