-- approval-gate schema version 6 (SQLite): the places of the trail's readers (a notifier's
-- channels, say), each held under a lease (`CursorStore`). `after_seq` is the `seq` of the
-- last audit record the reader is done with; `lease_until` is in Unix nanoseconds.

CREATE TABLE IF NOT EXISTS approval_cursors (
    name TEXT PRIMARY KEY NOT NULL,
    after_seq INTEGER NOT NULL,
    holder TEXT NOT NULL,
    lease_until INTEGER NOT NULL
);
