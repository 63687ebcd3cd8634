-- Version 8: each read of pending alerts has one index that fits it, so
-- that no statistics can send it to another (issue 33).
--
-- Statistics taken while few alerts were pending make every partial index
-- of pending alerts look nearly empty, and then alike. Seen with
-- auto_explain over the intake bench: the arrivals read (by origin, past
-- a seq) scanned the index of pending alerts by seq, filtering every other
-- origin's (10 ms a read, thousands of rows filtered); the owner's check
-- for an earlier event of a key scanned the index by origin whole.
--
-- alerts_pending (seq) goes: the arrivals read takes the index by origin,
-- the count of pending alerts and the read of a slot taken over (once,
-- when a slot changes hands) the index by key. The index by origin is
-- kept for reads that name an origin (`origin IS NOT NULL` in its
-- predicate, which a condition on origin implies and the check by key
-- does not), so the check by key is left the index by key.
DROP INDEX alerts_pending;
DROP INDEX alerts_pending_by_origin;
CREATE INDEX alerts_pending_by_origin ON alerts (origin, seq)
    WHERE status = 'pending' AND origin IS NOT NULL;
