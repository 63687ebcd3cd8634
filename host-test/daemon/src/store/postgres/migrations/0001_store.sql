-- Version 1: what serve keeps, shared by every node (issue 19). Times are
-- milliseconds since the Unix epoch on the database's clock, so nodes whose
-- clocks differ still pace a channel by one clock.

-- Alert ids: each node reserves a block at a time (ids stay unique across
-- nodes without a round trip per alert).
CREATE SEQUENCE alert_ids INCREMENT BY 1000;
-- The order endings and messages were recorded in (GET /spool's cursors).
CREATE SEQUENCE ended_seq;
CREATE SEQUENCE kept_seq;

-- Accepted alerts. Pending until an ending is recorded; a node claims one
-- under a lease (claimed_by, lease_until_ms) while its request is out.
CREATE TABLE alerts (
    id              bigint PRIMARY KEY,
    -- The order alerts became visible in: inserts take an advisory lock
    -- until they commit, so a lower seq is never committed after a higher
    -- one is seen (nodes read arrivals by seq).
    seq             bigserial NOT NULL UNIQUE,
    accepted_ms     bigint NOT NULL,
    -- Kapacitor's alert JSON as received, and the handler options
    -- ([["key", "value"], ...]) it came with.
    alert           text NOT NULL,
    options         text NOT NULL,
    -- One alert key's events go in order.
    alert_key       text NOT NULL,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'delivered', 'failed', 'repeat')),
    attempts        integer NOT NULL DEFAULT 0,
    not_before_ms   bigint NOT NULL DEFAULT 0,
    claimed_by      text,
    lease_until_ms  bigint,
    -- The pacing key it was claimed for.
    channel         text,
    ended_seq       bigint,
    ended_ms        bigint,
    detail          text,
    -- A failed alert sent again, as this alert.
    resent_as       bigint
);
CREATE INDEX alerts_pending ON alerts (seq) WHERE status = 'pending';
CREATE INDEX alerts_pending_by_key ON alerts (alert_key, seq) WHERE status = 'pending';
CREATE INDEX alerts_ended ON alerts (ended_seq) WHERE status <> 'pending';
CREATE INDEX alerts_resendable ON alerts (id) WHERE status = 'failed' AND resent_as IS NULL;
CREATE INDEX alerts_claimed ON alerts (claimed_by) WHERE claimed_by IS NOT NULL;

-- Each alert key's Slack message so far (for on-recovery update and thread);
-- for alerts whose repeats are not sent (Alertmanager's), also the level
-- of the last event delivered and a digest of what it showed.
CREATE TABLE messages (
    alert_key   text PRIMARY KEY,
    workspace   text NOT NULL,
    channel_id  text NOT NULL,
    ts          text NOT NULL,
    level       text,
    digest      text,
    kept_seq    bigint NOT NULL
);
CREATE INDEX messages_kept ON messages (kept_seq);

-- Each channel's pacing, by the rule every node follows (the scheduler's
-- Pace): when its next message may leave, a Retry-After block, the jitter
-- margin; and the node sending to it now (one request out per channel).
CREATE TABLE channels (
    pacing_key        text PRIMARY KEY,
    earliest_ms       bigint,
    blocked_until_ms  bigint,
    margin_ms         bigint NOT NULL,
    held_by           text,
    held_until_ms     bigint
);

-- Aggregate windows, one per handler across nodes (the window as JSON).
CREATE TABLE windows (
    handler  text PRIMARY KEY,
    state    text NOT NULL
);

-- The nodes that run on this database.
CREATE TABLE nodes (
    id          text PRIMARY KEY,
    started_ms  bigint NOT NULL,
    seen_ms     bigint NOT NULL
);
