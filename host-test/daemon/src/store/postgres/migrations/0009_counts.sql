-- Version 9: the pending count, counted by one node (issue 33). Every
-- node counted every pending alert every two seconds for its /metrics
-- (alerts_pending and oldest_pending_age_seconds are the store's, the
-- same on every node): with N nodes, N counts of the whole backlog. Now
-- the node owning slot 0 counts and keeps the figures here; the others
-- read this one row, and count (and keep) themselves only when it is
-- missing or stale (its counter gone, slot 0 passing on).
CREATE TABLE pending_counts (
    one         boolean PRIMARY KEY DEFAULT true CHECK (one),
    pending     bigint NOT NULL,
    oldest_ms   bigint,
    counted_ms  bigint NOT NULL,
    counted_by  text NOT NULL
);
