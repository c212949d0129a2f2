-- approval-gate schema version 5 (SQLite): the queue of pending requests, in order.
--
-- A page of the pending queue (oldest first, 50 at a time) walks this index in order
-- and stops after the page: it reads the rows it shows, not every pending request.
-- `expires_at` is in the index so that a request whose time ran out is skipped without
-- reading its row.

CREATE INDEX IF NOT EXISTS approval_requests_pending_queue
    ON approval_requests (created_at, id, expires_at) WHERE state = 'pending';
