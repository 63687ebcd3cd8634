-- Version 1: what serve keeps, shared by every node (issue 19).

-- Accepted alerts. Pending until an ending is recorded; a node claims one
-- under a lease (claimed_by, lease_until) while its request is out.
CREATE TABLE alerts (
    id           bigserial PRIMARY KEY,
    accepted_at  timestamptz NOT NULL DEFAULT now(),
    -- Kapacitor's alert JSON as received, and the handler options
    -- ([[key, value], ...]) it came with.
    alert        text NOT NULL,
    options      jsonb NOT NULL,
    -- One alert key's events go in order; a channel is paced.
    alert_key    text NOT NULL,
    channel      text NOT NULL,
    status       text NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts     integer NOT NULL DEFAULT 0,
    not_before   timestamptz NOT NULL DEFAULT now(),
    claimed_by   text,
    lease_until  timestamptz,
    finished_at  timestamptz,
    detail       text
);
CREATE INDEX alerts_pending_by_channel ON alerts (channel, id) WHERE status = 'pending';
CREATE INDEX alerts_pending_by_key ON alerts (alert_key, id) WHERE status = 'pending';
CREATE INDEX alerts_finished ON alerts (finished_at) WHERE status <> 'pending';

-- Each alert's Slack message so far (for on-recovery update and thread).
CREATE TABLE messages (
    alert_key   text PRIMARY KEY,
    workspace   text NOT NULL,
    channel_id  text NOT NULL,
    ts          text NOT NULL,
    kept_at     timestamptz NOT NULL DEFAULT now()
);

-- Each channel's pacing, the same rule every node follows (the scheduler's):
-- when its next message may leave, a Retry-After block, the jitter margin.
CREATE TABLE channels (
    pacing_key     text PRIMARY KEY,
    earliest       timestamptz,
    blocked_until  timestamptz,
    margin_ms      integer NOT NULL DEFAULT 30
);

-- Aggregate windows, one per handler across nodes, and what they collected.
CREATE TABLE windows (
    handler    text PRIMARY KEY,
    opened_at  timestamptz NOT NULL DEFAULT now(),
    state      jsonb NOT NULL
);

-- The nodes that run on this database, for /metrics and for taking over.
CREATE TABLE nodes (
    id          text PRIMARY KEY,
    started_at  timestamptz NOT NULL DEFAULT now(),
    seen_at     timestamptz NOT NULL DEFAULT now()
);
