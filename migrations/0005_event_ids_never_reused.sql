-- 0005: an event id is never given to two events (SPEC §10, issue 13). Without AUTOINCREMENT
-- SQLite gives a new row max(id) + 1, so ids of the newest events come back once those rows are
-- gone: after a purge or retention run deleted them, or after a lost WAL tail took them (the
-- review saw acknowledged ids handed to other events after the WAL was deleted while serving).
-- AUTOINCREMENT keeps the largest id ever used in sqlite_sequence and never goes below it.
--
-- sqlite_sequence lives in the same WAL as the events, so it does not by itself survive losing
-- the WAL; what makes that loss impossible for acknowledged events is the writer (storage faults,
-- README): it commits only after checking that the WAL it writes is the one at the path, and
-- when one is removed it copies the open database, sqlite_sequence included, to the path. And
-- when it must continue on another file, it raises that file's sqlite_sequence to the largest
-- id it committed. A separate high-water mark in this database would sit in the same WAL and
-- add nothing.
--
-- SQLite cannot add AUTOINCREMENT to a table, so the table is rebuilt with the same columns
-- (SPEC §7) and indexes, rows and ids kept. legacy_alter_table keeps the RENAME from checking
-- the report views of 0004, which name "events" and stand for the new table once renamed.
PRAGMA legacy_alter_table = ON;

CREATE TABLE events_0005 (
  id               INTEGER PRIMARY KEY AUTOINCREMENT,
  member_id        TEXT NOT NULL,
  domain           TEXT,
  event            TEXT NOT NULL,       -- upper-cased event code
  event_handler_id INTEGER,
  event_id         INTEGER,
  ts               INTEGER,             -- unix seconds, as Bitrix24 sent it
  received_at      INTEGER NOT NULL,    -- unix milliseconds, when it was committed here
  user_id          INTEGER,
  entity_id        INTEGER,
  entity_type_id   INTEGER,
  data             TEXT NOT NULL        -- JSON, token values redacted
);
INSERT INTO events_0005(id, member_id, domain, event, event_handler_id, event_id, ts,
                        received_at, user_id, entity_id, entity_type_id, data)
  SELECT id, member_id, domain, event, event_handler_id, event_id, ts, received_at, user_id,
         entity_id, entity_type_id, data FROM events;
DROP TABLE events;
ALTER TABLE events_0005 RENAME TO events;

-- The indexes of 0001 and 0002 as they stand after 0002.
CREATE INDEX events_member_id ON events(member_id, id);
CREATE INDEX events_member_event ON events(member_id, event, id);
CREATE INDEX events_event ON events(event, id);
CREATE INDEX events_ts ON events(ts, id);
CREATE INDEX events_domain ON events(domain, id);
CREATE INDEX events_user ON events(user_id, id);
CREATE INDEX events_entity_type ON events(entity_type_id, id) WHERE entity_type_id IS NOT NULL;
CREATE INDEX events_entity_member ON events(entity_id, member_id, id);

PRAGMA legacy_alter_table = OFF;

-- The writer's probe (storage faults): after a failed commit it writes this one row once a
-- second, so /healthz turns 200 again once the disk has room, even with no event arriving.
CREATE TABLE writer_probe (
  id        INTEGER PRIMARY KEY CHECK (id = 1),
  probed_at INTEGER NOT NULL            -- unix milliseconds
);
