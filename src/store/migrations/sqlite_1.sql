-- approval-gate schema version 1 (SQLite). Times are Unix nanoseconds (INTEGER); `body`
-- holds the whole value as JSON, the other columns copy the fields queries filter on.

CREATE TABLE IF NOT EXISTS approval_requests (
    id TEXT PRIMARY KEY NOT NULL,
    version INTEGER NOT NULL,
    state TEXT NOT NULL,
    run_id TEXT NOT NULL,
    tool TEXT NOT NULL,
    args_hash TEXT NOT NULL,
    tenant TEXT,
    tier TEXT,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    approval_expires_at INTEGER,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS approval_requests_dedupe
    ON approval_requests (run_id, tool, args_hash, state);
CREATE INDEX IF NOT EXISTS approval_requests_expiry
    ON approval_requests (state, expires_at);
CREATE INDEX IF NOT EXISTS approval_requests_approval_expiry
    ON approval_requests (state, approval_expires_at);
CREATE INDEX IF NOT EXISTS approval_requests_created
    ON approval_requests (created_at, id);

CREATE TABLE IF NOT EXISTS approval_grants (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    expires_at INTEGER NOT NULL,
    max_uses INTEGER,
    uses INTEGER NOT NULL,
    revoked_at INTEGER,
    body TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS approval_run_usage (
    run_id TEXT PRIMARY KEY NOT NULL,
    steps INTEGER NOT NULL,
    tool_calls INTEGER NOT NULL,
    usd REAL NOT NULL,
    started_at INTEGER
);

CREATE TABLE IF NOT EXISTS approval_kill_switches (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    scope TEXT NOT NULL UNIQUE
);

CREATE TABLE IF NOT EXISTS approval_settings (
    name TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);
