-- approval-gate schema version 3 (SQLite): fewer index writes per transition.
--
-- A transition rewrites only `version`, `state`, `approval_expires_at` and `body` (what
-- a request was filed with never changes), and SQLite rewrites an index entry whenever
-- an `UPDATE` sets one of its columns. So the indexes that held `state` for every
-- request, rewritten on every transition, become partial indexes that hold only the
-- requests a query looks for in that state, and the dedupe index holds only columns
-- that never change (it serves lookups by run too).
--
-- The audit indexes on `request_id` and `actor` skip the records without one.

DROP INDEX IF EXISTS approval_requests_dedupe;
DROP INDEX IF EXISTS approval_requests_expiry;
DROP INDEX IF EXISTS approval_requests_approval_expiry;
CREATE INDEX IF NOT EXISTS approval_requests_call
    ON approval_requests (run_id, tool, args_hash);
CREATE INDEX IF NOT EXISTS approval_requests_pending_expiry
    ON approval_requests (expires_at) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS approval_requests_approved_expiry
    ON approval_requests (approval_expires_at) WHERE state = 'approved';

DROP INDEX IF EXISTS approval_audit_request;
DROP INDEX IF EXISTS approval_audit_actor;
CREATE INDEX IF NOT EXISTS approval_audit_request
    ON approval_audit (request_id, seq) WHERE request_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS approval_audit_actor
    ON approval_audit (actor, seq) WHERE actor IS NOT NULL;
