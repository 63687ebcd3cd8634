-- Version 3: trust on a bad day (issue 27).
--
-- Fencing: every claim of an alert takes the next generation of the alert
-- (claim_gen). An ending, a release and the key's message take effect only
-- under the generation they were claimed with: a node whose lease ran out
-- while its request was at Slack cannot re-point the message of a node
-- that claimed the alert after it. What it sent is recorded as a duplicate.
ALTER TABLE alerts ADD COLUMN claim_gen bigint NOT NULL DEFAULT 0;

-- A send whose ending came after its claim had passed to another node (or
-- after the alert ended): Slack holds both messages; the kept one is the
-- current claim's. Bounded like the endings (pruned with them).
CREATE TABLE duplicates (
    id          bigserial PRIMARY KEY,
    alert_id    bigint NOT NULL,
    node        text NOT NULL,
    recorded_ms bigint NOT NULL,
    -- What the late ending said (its channel and ts) and what the alert's
    -- recorded ending says (the kept message's channel and ts).
    detail      text NOT NULL,
    kept        text
);

-- One live process per node name: a process holds its name by its
-- instance (random per process) and proves it is alive by seen_ms; the
-- address says where it runs (host, process, listen address).
ALTER TABLE nodes
    ADD COLUMN instance text,
    ADD COLUMN address text;

-- Clicks already acted on, by Slack's identity of the click (a payload's
-- trigger_id and action_ts, a Socket Mode envelope's id): the same click
-- sent again is answered and does nothing, on every node. Kept past the
-- signature window (5 minutes), then pruned.
CREATE TABLE clicks (
    identity    text PRIMARY KEY,
    recorded_ms bigint NOT NULL
);
CREATE INDEX clicks_recorded ON clicks (recorded_ms);
