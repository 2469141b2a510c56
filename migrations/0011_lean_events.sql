-- 0011: leaner events (issue 14 item 5). The rows keep small integer keys for the three text
-- columns that repeat on every event (member_id, domain, event code), so that the row and the
-- eight indexes that carried them as text (32, ~22 and ~15 bytes in each entry) shrink to a
-- byte or two each; `events` becomes a view with the columns of SPEC §7, so reports, ad hoc
-- queries and json_extract(data, ...) read what they always read. README ("Bytes per event")
-- has the measurements, and what upgrading a large database costs: this rebuilds the table.
--
-- The keys are never deleted (a purge deletes rows only), so a key, once committed, names the
-- same text for ever; INTEGER PRIMARY KEY keeps it through VACUUM.
CREATE TABLE event_portals (
  key       INTEGER PRIMARY KEY,
  member_id TEXT NOT NULL UNIQUE
);
CREATE TABLE event_domains (
  key    INTEGER PRIMARY KEY,
  domain TEXT NOT NULL UNIQUE
);
CREATE TABLE event_codes (
  key   INTEGER PRIMARY KEY,
  event TEXT NOT NULL UNIQUE      -- upper-cased event code
);

-- The stored events. Columns as in 0001 and 0007, in the order of the view below, except the
-- keys, `offline` for source, and data last: a column after a large data value would be read
-- from its overflow pages.
CREATE TABLE event_rows (
  id               INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused (0005)
  portal           INTEGER NOT NULL,    -- event_portals.key
  domain           INTEGER,             -- event_domains.key; NULL when the event named none
  code             INTEGER NOT NULL,    -- event_codes.key
  event_handler_id INTEGER,
  event_id         INTEGER,
  ts               INTEGER,             -- unix seconds, as Bitrix24 sent it
  received_at      INTEGER NOT NULL,    -- unix milliseconds, when it was committed here
  user_id          INTEGER,
  entity_id        INTEGER,
  entity_type_id   INTEGER,
  offline          INTEGER NOT NULL DEFAULT 0,  -- source: 0 online, 1 offline (0 costs no byte)
  offline_id       INTEGER,             -- the offline record's ID and MESSAGE_ID (0007)
  message_id       TEXT,
  data             TEXT NOT NULL        -- JSON, token values redacted
);

INSERT INTO event_portals(member_id) SELECT DISTINCT member_id FROM events ORDER BY member_id;
INSERT INTO event_codes(event) SELECT DISTINCT event FROM events ORDER BY event;
INSERT INTO event_domains(domain)
  SELECT DISTINCT domain FROM events WHERE domain IS NOT NULL ORDER BY domain;
-- CROSS JOIN keeps events the outer loop, read in id order; the keys are one seek each.
INSERT INTO event_rows(id, portal, domain, code, event_handler_id, event_id, ts, received_at,
                       user_id, entity_id, entity_type_id, offline, offline_id, message_id, data)
  SELECT e.id, p.key, d.key, c.key, e.event_handler_id, e.event_id, e.ts, e.received_at,
         e.user_id, e.entity_id, e.entity_type_id, e.source = 'offline', e.offline_id,
         e.message_id, e.data
  FROM events e
  CROSS JOIN event_portals p ON p.member_id = e.member_id
  CROSS JOIN event_codes c ON c.event = e.event
  LEFT JOIN event_domains d ON d.domain = e.domain
  ORDER BY e.id;
-- The largest id ever handed out (0005) carries over, even when the newest events are gone.
INSERT INTO sqlite_sequence(name, seq)
  SELECT 'event_rows', seq FROM sqlite_sequence WHERE name = 'events'
  AND NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'event_rows');
UPDATE sqlite_sequence
  SET seq = max(seq, coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0))
  WHERE name = 'event_rows';
-- Drops its indexes and its sqlite_sequence row with it. The report views of 0004 name
-- "events" and read the view below from now on.
DROP TABLE events;

-- The indexes of 0005 and 0007 under their names, on the keys. Each still ends with id for
-- keyset pagination; entity_member and user skip the events that have no entity or user (an
-- equality filter on them never matches NULL), as entity_type already did.
CREATE INDEX events_member_id ON event_rows(portal, id);
CREATE INDEX events_member_event ON event_rows(portal, code, id);
CREATE INDEX events_event ON event_rows(code, id);
CREATE INDEX events_ts ON event_rows(ts, id);
CREATE INDEX events_domain ON event_rows(domain, id);
CREATE INDEX events_user ON event_rows(user_id, id) WHERE user_id IS NOT NULL;
CREATE INDEX events_entity_type ON event_rows(entity_type_id, id) WHERE entity_type_id IS NOT NULL;
CREATE INDEX events_entity_member ON event_rows(entity_id, portal, id) WHERE entity_id IS NOT NULL;
CREATE UNIQUE INDEX events_offline_id ON event_rows(portal, offline_id) WHERE offline_id IS NOT NULL;
CREATE INDEX events_offline ON event_rows(id) WHERE offline = 1;

-- SPEC §7's events, column for column. LEFT JOINs on unique keys: a query that does not use a
-- key's text (count(*), max(id)) does not read its table at all, and a filter on the text
-- (member_id = 'x') is one seek in the key table, then the key's index range.
CREATE VIEW events AS
SELECT
  r.id AS id,
  p.member_id AS member_id,
  d.domain AS domain,
  c.event AS event,
  r.event_handler_id AS event_handler_id,
  r.event_id AS event_id,
  r.ts AS ts,
  r.received_at AS received_at,
  r.user_id AS user_id,
  r.entity_id AS entity_id,
  r.entity_type_id AS entity_type_id,
  r.data AS data,
  CASE r.offline WHEN 0 THEN 'online' ELSE 'offline' END AS source,
  r.offline_id AS offline_id,
  r.message_id AS message_id
FROM event_rows r
LEFT JOIN event_portals p ON p.key = r.portal
LEFT JOIN event_codes c ON c.key = r.code
LEFT JOIN event_domains d ON d.key = r.domain;

-- Writes through the view (a person with sqlite3, a test): an INSERT takes the columns of SPEC
-- §7 and finds or makes the keys (an absent source is online); a DELETE deletes the rows. The
-- store itself writes event_rows directly. Neither keeps the counters of 0006, as writing to the
-- table never did.
CREATE TRIGGER events_insert INSTEAD OF INSERT ON events
BEGIN
  INSERT OR IGNORE INTO event_portals(member_id) VALUES(NEW.member_id);
  INSERT OR IGNORE INTO event_codes(event) VALUES(NEW.event);
  INSERT OR IGNORE INTO event_domains(domain) SELECT NEW.domain WHERE NEW.domain IS NOT NULL;
  INSERT INTO event_rows(id, portal, domain, code, event_handler_id, event_id, ts, received_at,
                         user_id, entity_id, entity_type_id, offline, offline_id, message_id,
                         data)
  VALUES(NEW.id, (SELECT key FROM event_portals WHERE member_id = NEW.member_id),
         (SELECT key FROM event_domains WHERE domain = NEW.domain),
         (SELECT key FROM event_codes WHERE event = NEW.event), NEW.event_handler_id,
         NEW.event_id, NEW.ts, NEW.received_at, NEW.user_id, NEW.entity_id, NEW.entity_type_id,
         coalesce(NEW.source = 'offline', 0), NEW.offline_id, NEW.message_id, NEW.data);
END;
CREATE TRIGGER events_delete INSTEAD OF DELETE ON events
BEGIN
  DELETE FROM event_rows WHERE id = OLD.id;
END;

-- 0004's portal_activity, column for column, on event_rows and the keys: through the view above
-- its aggregate would read every row and join its texts, and SQLite materializes a view that
-- is a join on the right of a LEFT JOIN (f and l), so each read copied every event (2.2 s for
-- 1,000,000 events instead of 0.05 s). Over event_rows it walks the covering index
-- events_member_id (portal, id), and the first and last events are rowid seeks.
DROP VIEW portal_activity;
CREATE VIEW portal_activity AS
SELECT
  p.member_id,
  p.domain,
  p.status,
  CASE
    WHEN p.uninstalled_at IS NOT NULL THEN 'uninstalled'
    WHEN p.installed_at IS NULL THEN 'never installed'  -- known only through a static token
    ELSE 'installed'
  END AS state,
  strftime('%Y-%m-%dT%H:%M:%SZ', p.installed_at, 'unixepoch') AS installed_utc,
  strftime('%Y-%m-%dT%H:%M:%SZ', p.uninstalled_at, 'unixepoch') AS uninstalled_utc,
  coalesce(a.event_count, 0) AS event_count,
  f.received_at AS first_received_at,
  strftime('%Y-%m-%dT%H:%M:%SZ', f.received_at / 1000, 'unixepoch') AS first_received_utc,
  l.received_at AS last_received_at,
  strftime('%Y-%m-%dT%H:%M:%SZ', l.received_at / 1000, 'unixepoch') AS last_received_utc,
  lc.event AS last_event,
  l.ts AS last_event_ts,
  round((CAST(strftime('%s', 'now') AS INTEGER) - l.received_at / 1000) / 3600.0, 1)
    AS hours_since_last_event,
  (SELECT count(*) FROM tokens t WHERE t.member_id = p.member_id) AS token_count
FROM portals p
LEFT JOIN (
  SELECT k.member_id, n.event_count, n.first_id, n.last_id
  FROM (
    SELECT portal, count(*) AS event_count, min(id) AS first_id, max(id) AS last_id
    FROM event_rows
    GROUP BY portal
  ) n
  JOIN event_portals k ON k.key = n.portal
) a ON a.member_id = p.member_id
LEFT JOIN event_rows f ON f.id = a.first_id
LEFT JOIN event_rows l ON l.id = a.last_id
LEFT JOIN event_codes lc ON lc.key = l.code;
