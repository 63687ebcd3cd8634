-- Version 6: arrivals without one lock across nodes (issue 33). Inserts no
-- longer take an advisory lock until they commit (it made every node's
-- group commits wait on each other's). Each process inserts as an origin
-- of its own (its node name and a random part), and one process commits
-- its inserts one group commit after another, so an origin's alerts
-- become visible in `seq` order: a node reads arrivals by origin, past the
-- last `seq` it read of each (an origin it has not read yet: all its
-- pending alerts), and misses none. An origin is registered in the
-- statement of its first insert, and its registration refreshed with
-- each.
--
-- Rows written by version 5 nodes (still running during a rolling
-- upgrade) are origin '': those nodes still take the lock, so their rows
-- too become visible in `seq` order. A version 5 node reads by `seq`
-- alone and may hear late of an alert a newer node committed; the newer
-- nodes hear of every one.
ALTER TABLE alerts ADD COLUMN origin text NOT NULL DEFAULT '';
CREATE INDEX alerts_pending_by_origin ON alerts (origin, seq) WHERE status = 'pending';
CREATE TABLE origins (
    origin text PRIMARY KEY,
    -- Its last insert (an origin with no pending alert, unseen for an
    -- hour, is forgotten).
    seen_ms bigint NOT NULL
);
INSERT INTO origins (origin, seen_ms) VALUES ('', 0);
