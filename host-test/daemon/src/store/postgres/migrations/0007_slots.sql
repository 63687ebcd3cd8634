-- Version 7: a node reads only its own channels' alerts (issue 33). The
-- node that accepts an alert files it under the channel it plans for it
-- (its pacing key, before any alias a node learns from Slack's answers)
-- and that channel's slot (store::slot_of). A node reads the arrivals of
-- the slots it owns, and, when it comes to own a slot, that slot's
-- pending alerts: no node reads, decodes or queues the alerts of another
-- node's channels.
--
-- Rows without a slot (written by version 6 nodes during a rolling
-- upgrade, or by `spool resend`, which plans nothing) are read by every
-- node, as before.
ALTER TABLE alerts ADD COLUMN slot smallint, ADD COLUMN planned_channel text;
CREATE INDEX alerts_pending_by_slot ON alerts (slot, seq) WHERE status = 'pending';
