-- Version 2: clicks on an alert's buttons (issue 21). Each key's message
-- keeps the last event it showed (to draw it again after a click) and who
-- acknowledged or silenced the alert; an event sent during a silence ends
-- as 'silenced', a redraw whose alert recovered first as 'superseded'.
ALTER TABLE messages
    ADD COLUMN alert text,
    ADD COLUMN acknowledged_by text,
    ADD COLUMN acknowledged_ms bigint,
    ADD COLUMN silenced_by text,
    ADD COLUMN silenced_until_ms bigint;

ALTER TABLE alerts DROP CONSTRAINT alerts_status_check;
ALTER TABLE alerts ADD CONSTRAINT alerts_status_check
    CHECK (status IN ('pending', 'delivered', 'failed', 'repeat', 'silenced', 'superseded'));
