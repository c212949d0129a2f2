-- approval-gate schema version 2 (PostgreSQL): the audit trail, written in the same
-- transaction as the change each record is about. `seq` numbers records in the order
-- they were committed; `body` is the record as JSON.

CREATE TABLE IF NOT EXISTS approval_audit (
    seq BIGINT PRIMARY KEY,
    at BIGINT NOT NULL,
    event TEXT NOT NULL,
    run_id TEXT NOT NULL,
    request_id TEXT,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS approval_audit_request ON approval_audit (request_id, seq);
CREATE INDEX IF NOT EXISTS approval_audit_run ON approval_audit (run_id, seq);
