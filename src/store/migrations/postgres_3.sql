-- approval-gate schema version 3 (PostgreSQL): a grant's version, for compare-and-set.
--
-- Which grant covers a call, counting its use and revoking it are decided above the
-- store, which writes the grant only if its stored version is the one before.

ALTER TABLE approval_grants ADD COLUMN IF NOT EXISTS version BIGINT NOT NULL DEFAULT 1;
