-- Version 4: a silence from Slack of an Alertmanager alert is a silence in
-- Alertmanager (issue 31): its id is kept with the message's silence mark,
-- so Unsilence expires it there.
ALTER TABLE messages ADD COLUMN silence_id text;
