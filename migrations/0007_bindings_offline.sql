-- Issue 12 (SPEC §7, §8.2, §8.3): event bindings per portal, events pulled from Bitrix24's
-- offline queue, and the offline queue's own state.

-- online: posted to the ingest path; offline: pulled with event.offline.get.
ALTER TABLE events ADD COLUMN source TEXT NOT NULL DEFAULT 'online';
-- The offline record's ID and MESSAGE_ID; NULL for online events.
ALTER TABLE events ADD COLUMN offline_id INTEGER;
ALTER TABLE events ADD COLUMN message_id TEXT;
-- Bitrix24 may hand a record out again before it is cleared (a lapsed reservation, two
-- processes pulling at once): it is stored once.
CREATE UNIQUE INDEX events_offline_id ON events(member_id, offline_id)
  WHERE offline_id IS NOT NULL;
-- The source=offline filter of /api/v1/events; online events, the bulk, are not indexed.
CREATE INDEX events_offline ON events(id) WHERE source = 'offline';

-- What the last sync found or did per (portal, event, type); type online or offline, state
-- bound or error.
CREATE TABLE bindings (
  member_id TEXT NOT NULL,
  event TEXT NOT NULL,
  type TEXT NOT NULL CHECK (type IN ('online', 'offline')),
  state TEXT NOT NULL CHECK (state IN ('bound', 'error')),
  error TEXT,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (member_id, event, type)
);

-- Per portal: reserve (event.offline.get clear=0, then clear by process_id) or clear
-- (clear=1, after the portal answered WRONG_LICENSE), and how the last pass went.
CREATE TABLE offline_state (
  member_id TEXT PRIMARY KEY,
  mode TEXT NOT NULL DEFAULT 'reserve' CHECK (mode IN ('reserve', 'clear')),
  last_pass_at INTEGER,
  last_error TEXT,
  fetched INTEGER NOT NULL DEFAULT 0
);

-- A batch committed but not yet cleared at Bitrix24: written in the transaction that stores
-- its records, dropped once event.offline.clear succeeded. ids is a JSON array of record IDs.
CREATE TABLE offline_batches (
  member_id TEXT NOT NULL,
  process_id TEXT NOT NULL,
  ids TEXT NOT NULL,
  noted_at INTEGER NOT NULL,
  PRIMARY KEY (member_id, process_id)
);
