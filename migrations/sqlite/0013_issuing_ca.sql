-- A fallback CA (acme.fallback): which ACME directory issued each certificate, so that its
-- renewal information (ARI) and its revocation go to that CA. NULL: the primary directory
-- (acme.directoryUrl) of the version that stored it, before fallbacks existed.
ALTER TABLE certificates ADD COLUMN ca TEXT;
