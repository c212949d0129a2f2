-- approval-gate schema version 2 (SQLite): the audit trail, written in the same
-- transaction as the change each record is about. `seq` numbers records in the order
-- they were committed; `prev_hash` and `hash` chain them (see `verify_chain`); `body` is
-- the record as JSON, chain fields included; the other columns copy what queries filter on.

CREATE TABLE IF NOT EXISTS approval_audit (
    seq INTEGER PRIMARY KEY NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    at INTEGER NOT NULL,
    event TEXT NOT NULL,
    run_id TEXT NOT NULL,
    request_id TEXT,
    actor TEXT,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS approval_audit_request ON approval_audit (request_id, seq);
CREATE INDEX IF NOT EXISTS approval_audit_run ON approval_audit (run_id, seq);
CREATE INDEX IF NOT EXISTS approval_audit_actor ON approval_audit (actor, seq);
CREATE INDEX IF NOT EXISTS approval_audit_at ON approval_audit (at, seq);
