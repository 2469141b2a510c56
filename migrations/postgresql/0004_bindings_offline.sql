-- 0004 (PostgreSQL): event bindings per portal, events pulled from Bitrix24's offline queue, and
-- the offline queue's own state (SPEC §7, §8.2, §8.3; SQLite's 0007).

-- online: posted to the ingest path; offline: pulled with event.offline.get.
ALTER TABLE events ADD COLUMN source text NOT NULL DEFAULT 'online'
  CHECK (source IN ('online', 'offline'));
-- The offline record's ID and MESSAGE_ID; NULL for online events.
ALTER TABLE events ADD COLUMN offline_id bigint;
ALTER TABLE events ADD COLUMN message_id text;
-- Bitrix24 may hand a record out again before it is cleared (a lapsed reservation, two
-- receivers pulling at once): it is stored once (INSERT ... ON CONFLICT DO NOTHING).
CREATE UNIQUE INDEX events_offline_id ON events(member_id, offline_id)
  WHERE offline_id IS NOT NULL;
-- The source=offline filter of /api/v1/events; online events, the bulk, are not indexed.
CREATE INDEX events_offline ON events(id) WHERE source = 'offline';

-- What the last sync found or did per (portal, event, type).
CREATE TABLE bindings (
  member_id  text NOT NULL,
  event      text NOT NULL,
  type       text NOT NULL CHECK (type IN ('online', 'offline')),
  state      text NOT NULL CHECK (state IN ('bound', 'error')),
  error      text,
  updated_at bigint NOT NULL,
  PRIMARY KEY (member_id, event, type)
);

-- Per portal: reserve (event.offline.get clear=0, then clear by process_id) or clear
-- (clear=1, after the portal answered WRONG_LICENSE), and how the last pass went.
CREATE TABLE offline_state (
  member_id    text PRIMARY KEY,
  mode         text NOT NULL DEFAULT 'reserve' CHECK (mode IN ('reserve', 'clear')),
  last_pass_at bigint,
  last_error   text,
  fetched      bigint NOT NULL DEFAULT 0
);

-- A batch committed but not yet cleared at Bitrix24: written in the transaction that stores
-- its records, dropped once event.offline.clear succeeded.
CREATE TABLE offline_batches (
  member_id  text NOT NULL,
  process_id text NOT NULL,
  ids        bigint[] NOT NULL,
  noted_at   bigint NOT NULL,
  PRIMARY KEY (member_id, process_id)
);
