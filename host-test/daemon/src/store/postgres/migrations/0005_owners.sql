-- Version 5: channels have owners (issue 33). The channels are shared out
-- in 64 slots (a channel's pacing key hashes to one: store::slot_of); a
-- node plans and sends only the alerts of the channels in the slots it
-- owns, under a lease renewed with its claims, and the live nodes share
-- the slots evenly (taken when free or run out, given back past a node's
-- share).
CREATE TABLE channel_slots (
    slot integer PRIMARY KEY,
    owner text,
    until_ms bigint
);
INSERT INTO channel_slots (slot) SELECT generate_series(0, 63);
